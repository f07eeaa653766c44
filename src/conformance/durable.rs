//! Durable and persistent handles (`disconnect_open`, `reconnect_open`,
//! `expire_durable`): DittoFS's durable-store cases (delete expired keeps
//! active, consume atomic by file / by create GUID) and the race of 16
//! reconnects of one handle, exactly one of which wins.

use std::sync::Arc;

use uuid::Uuid;

use super::TestStore;
use super::opens::{put_opens, read_open, sample_open};
use super::sample::{T0, begin, commit, read_lock, sample_lock};
use crate::{
    Disconnect, DurableState, Error, MetadataStore, MetadataStoreExt, OpenRecord, Reconnect,
    ShareMask, Timestamp,
};

/// A connected durable open of `client` on `file` with a `timeout_ms` timeout.
fn durable(file: &[u8], client: &str, timeout_ms: u32) -> OpenRecord {
    OpenRecord {
        durable: DurableState::Durable { timeout_ms },
        create_guid: Some(Uuid::new_v4()),
        ..sample_open(file, client, ShareMask::READ, ShareMask::NONE)
    }
}

fn at(ms: i64) -> Timestamp {
    Timestamp::from_micros(T0.as_micros() + ms * 1000)
}

async fn disconnect(store: &Arc<dyn MetadataStore>, id: Uuid, when: Timestamp) -> Disconnect {
    store
        .transact(|tx| Box::pin(async move { crate::disconnect_open(tx, id, when).await }))
        .await
        .expect("disconnect_open")
}

async fn reconnect(store: &Arc<dyn MetadataStore>, by: &Reconnect) -> Option<OpenRecord> {
    store
        .transact(|tx| Box::pin(async move { crate::reconnect_open(tx, by, 9).await }))
        .await
        .expect("reconnect_open")
}

/// A durable open is kept as disconnected with its locks; an ordinary one is
/// closed with its locks; disconnecting twice or an unknown id is an error.
pub async fn disconnect_keeps_durable_and_closes_others(t: &mut dyn TestStore) {
    let keep = durable(b"d1", "c1", 1000);
    let plain = sample_open(b"d1", "c2", ShareMask::READ, ShareMask::NONE);
    let lock = sample_lock(&keep.file, &keep.owner_id, "c1", "share");
    let plain_lock = sample_lock(&plain.file, &plain.owner_id, "c2", "share");
    super::sample::seed(t, &[], &[lock.clone(), plain_lock.clone()]).await;
    put_opens(t, &[keep.clone(), plain.clone()]).await;
    let store = t.store();
    let kept = OpenRecord {
        disconnected_at: Some(at(0)),
        ..keep.clone()
    };
    assert_eq!(
        disconnect(&store, keep.id, at(0)).await,
        Disconnect::Kept(kept.clone())
    );
    assert_eq!(read_open(t, keep.id).await, Some(kept));
    assert_eq!(
        read_lock(t, lock.id).await,
        Some(lock),
        "a durable open keeps its locks"
    );
    assert_eq!(
        disconnect(&store, plain.id, at(0)).await,
        Disconnect::Closed(plain.clone())
    );
    assert_eq!(read_open(t, plain.id).await, None);
    assert_eq!(read_lock(t, plain_lock.id).await, None);
    let id = keep.id;
    let twice = store
        .transact(|tx| Box::pin(async move { crate::disconnect_open(tx, id, at(1)).await }))
        .await;
    assert!(matches!(twice, Err(Error::Invalid(_))), "{twice:?}");
    let unknown = store
        .transact(|tx| {
            Box::pin(async move { crate::disconnect_open(tx, Uuid::nil(), at(1)).await })
        })
        .await;
    assert!(
        matches!(unknown, Err(Error::OpenStateNotFound { .. })),
        "{unknown:?}"
    );
}

/// Consume by create GUID and by file + client: the first reconnect gets
/// the open back, connected and restamped; the second finds nothing; a
/// connected open is never "reconnected".
pub async fn reconnect_consumes_by_create_guid_and_by_file(t: &mut dyn TestStore) {
    let a = durable(b"r1", "c1", 1000);
    let b = OpenRecord {
        durable: DurableState::Persistent,
        ..durable(b"r2", "c1", 0)
    };
    let connected = durable(b"r3", "c1", 1000);
    put_opens(t, &[a.clone(), b.clone(), connected.clone()]).await;
    let store = t.store();
    disconnect(&store, a.id, at(0)).await;
    disconnect(&store, b.id, at(0)).await;
    let by_guid = Reconnect::CreateGuid(a.create_guid.expect("guid"));
    let back = OpenRecord {
        server_epoch: 9,
        ..a.clone()
    };
    assert_eq!(reconnect(&store, &by_guid).await, Some(back.clone()));
    assert_eq!(reconnect(&store, &by_guid).await, None, "consumed");
    assert_eq!(read_open(t, a.id).await, Some(back));
    let by_file = Reconnect::FileClient {
        file: b.file.clone(),
        client_id: "c1".into(),
    };
    assert_eq!(
        reconnect(
            &store,
            &Reconnect::FileClient {
                file: b.file.clone(),
                client_id: "c2".into()
            }
        )
        .await,
        None,
        "another client"
    );
    assert_eq!(
        reconnect(&store, &by_file).await,
        Some(OpenRecord {
            server_epoch: 9,
            ..b.clone()
        })
    );
    assert_eq!(reconnect(&store, &by_file).await, None, "consumed");
    let live = Reconnect::CreateGuid(connected.create_guid.expect("guid"));
    assert_eq!(
        reconnect(&store, &live).await,
        None,
        "a connected open is not reconnectable"
    );
}

/// `expire_durable(now)` removes durable opens past `disconnected_at +
/// timeout`, with their locks, in one transaction, and keeps connected ones,
/// persistent ones and those still within their timeout.
pub async fn expire_durable_removes_expired_and_keeps_active(t: &mut dyn TestStore) {
    let expired: Vec<OpenRecord> = (0..5)
        .map(|i| durable(format!("e{i}").as_bytes(), "c1", 1000))
        .collect();
    let waiting = durable(b"w", "c1", 60_000);
    let persistent = OpenRecord {
        durable: DurableState::Persistent,
        ..durable(b"p", "c1", 0)
    };
    let connected = durable(b"c", "c1", 0);
    let lock = sample_lock(&expired[0].file, &expired[0].owner_id, "c1", "share");
    super::sample::seed(t, &[], std::slice::from_ref(&lock)).await;
    let mut all = expired.clone();
    all.extend([waiting.clone(), persistent.clone(), connected.clone()]);
    put_opens(t, &all).await;
    let mut tx = begin(t).await;
    for o in expired.iter().chain([&waiting, &persistent]) {
        crate::disconnect_open(&mut *tx, o.id, at(0))
            .await
            .expect("disconnect");
    }
    commit(tx).await;
    let store = t.store();
    let early = store
        .transact(|tx| Box::pin(async move { crate::expire_durable(tx, at(999)).await }))
        .await
        .expect("expire");
    assert!(
        early.is_empty(),
        "nothing is past its timeout yet: {early:?}"
    );
    let gone = store
        .transact(|tx| Box::pin(async move { crate::expire_durable(tx, at(1000)).await }))
        .await
        .expect("expire");
    let mut gone_ids: Vec<Uuid> = gone.iter().map(|o| o.id).collect();
    let mut want: Vec<Uuid> = expired.iter().map(|o| o.id).collect();
    gone_ids.sort();
    want.sort();
    assert_eq!(gone_ids, want, "exactly the expired ones");
    for o in &expired {
        assert_eq!(read_open(t, o.id).await, None);
    }
    assert_eq!(read_lock(t, lock.id).await, None, "with their locks");
    for o in [&waiting, &persistent, &connected] {
        assert!(read_open(t, o.id).await.is_some(), "kept: {o:?}");
    }
}

/// 16 tasks race to reconnect one disconnected durable handle (by create
/// GUID), each in `transact` (retried on conflict): exactly one gets it.
pub async fn concurrent_reconnects_exactly_one_wins(t: &mut dyn TestStore) {
    let open = durable(b"race", "c1", 60_000);
    put_opens(t, std::slice::from_ref(&open)).await;
    let store = t.store();
    disconnect(&store, open.id, at(0)).await;
    let by = Arc::new(Reconnect::CreateGuid(open.create_guid.expect("guid")));
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (store, by, barrier) = (store.clone(), by.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let by = &*by;
                let policy = crate::RetryPolicy {
                    max_elapsed: std::time::Duration::from_secs(60),
                    ..Default::default()
                };
                store
                    .transact_with(policy, |tx| {
                        Box::pin(async move { crate::reconnect_open(tx, by, 9).await })
                    })
                    .await
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        if task.await.expect("task").expect("reconnect").is_some() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1, "exactly one reconnect wins");
    let stored = read_open(t, open.id).await.expect("the open");
    assert_eq!(stored.disconnected_at, None);
}
