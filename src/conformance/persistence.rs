//! The reopen checks (persistent backends only, [`persistence_tests!`](crate::persistence_tests)):
//! records, indexes, the epoch, the clean flag and node states survive a close and reopen.

use super::TestStore;
use super::isolation::write_pair_then;
use super::nodes::{epoch_owners, node_summary};
use super::sample::{
    acquire, all_locks, begin, by_id, commit, handle, read_file, read_lock, request, sample_file,
    sample_lock, seed,
};
use crate::{LockQuery, LockType, PersistedLock};

/// Files, locks and every index are there after the store is closed and opened again.
pub async fn reopen_keeps_files_locks_and_indexes(t: &mut dyn TestStore) {
    let files: Vec<_> = (0..3u8).map(|i| sample_file(&[i], "s")).collect();
    let locks: Vec<_> = (0..3u8)
        .map(|i| {
            sample_lock(
                &files[i as usize].handle,
                &format!("o{i}"),
                &format!("c{i}"),
                "s",
            )
        })
        .collect();
    seed(t, &files, &locks).await;
    t.reopen().await.expect("reopen");
    let mut tx = begin(t).await;
    assert_eq!(tx.list_files("s").await.unwrap(), files);
    assert_eq!(
        tx.list_locks(&LockQuery::default()).await.unwrap(),
        by_id(locks.clone())
    );
    for lock in &locks {
        assert_eq!(tx.get_lock(lock.id).await.unwrap().as_ref(), Some(lock));
        for q in [
            LockQuery::by_file(&lock.file_id),
            LockQuery::by_owner(&lock.owner_id),
            LockQuery::by_client(&lock.client_id),
        ] {
            assert_eq!(
                tx.list_locks(&q).await.unwrap(),
                vec![lock.clone()],
                "after reopen: {q:?}"
            );
        }
    }
    assert_eq!(tx.delete_locks_by_client("c1").await.unwrap(), 1);
    commit(tx).await;
    t.reopen().await.expect("second reopen");
    assert_eq!(
        all_locks(t, &LockQuery::default()).await.len(),
        2,
        "a bulk delete survives reopen"
    );
}

/// Writes that were rolled back or dropped are not there after reopen; committed ones are.
pub async fn reopen_keeps_rolled_back_writes_out(t: &mut dyn TestStore) {
    let kept = sample_file(b"kept", "s");
    let kept_lock = sample_lock(&kept.handle, "o", "c", "s");
    seed(
        t,
        std::slice::from_ref(&kept),
        std::slice::from_ref(&kept_lock),
    )
    .await;
    let (file, lock) = write_pair_then(t, "rollback").await;
    let mut tx = begin(t).await;
    tx.delete_locks_by_client("c").await.unwrap();
    drop(tx);
    t.reopen().await.expect("reopen");
    assert_eq!(read_file(t, &kept.handle).await, Some(kept));
    assert_eq!(
        all_locks(t, &LockQuery::by_client("c")).await,
        vec![kept_lock]
    );
    assert_eq!(read_file(t, &file.handle).await, None);
    assert_eq!(read_lock(t, lock.id).await, None);
}

/// The epoch and the clean flag survive reopen; the epoch never goes backwards.
pub async fn reopen_keeps_epoch_and_flag(t: &mut dyn TestStore) {
    let mut tx = begin(t).await;
    tx.increment_server_epoch().await.unwrap();
    tx.increment_server_epoch().await.unwrap();
    crate::set_clean_shutdown(&mut *tx, false).await.unwrap();
    commit(tx).await;
    t.reopen().await.expect("reopen");
    let mut tx = begin(t).await;
    assert_eq!(tx.server_epoch().await.unwrap(), 2);
    assert!(!crate::clean_shutdown(&mut *tx).await.unwrap());
    assert_eq!(tx.increment_server_epoch().await.unwrap(), 3);
    commit(tx).await;
    t.reopen().await.expect("second reopen");
    assert_eq!(begin(t).await.server_epoch().await.unwrap(), 3);
}

/// The epoch and the clean flag carry recovery across a real close and reopen.
pub async fn recovery_survives_reopen(t: &mut dyn TestStore) {
    let first = crate::begin_recovery(&*t.store()).await.unwrap();
    let lock = PersistedLock {
        server_epoch: first.epoch,
        ..request(&handle(b"f"), "a", LockType::Exclusive, 0, 0)
    };
    acquire(t, &lock).await;
    t.reopen().await.expect("reopen after a crash");
    let second = crate::begin_recovery(&*t.store()).await.unwrap();
    assert!(
        !second.previous_shutdown_clean,
        "the crash is remembered across reopen"
    );
    assert!(second.epoch > first.epoch, "the epoch never goes backwards");
    assert_eq!(second.reclaimable, vec![lock]);
    crate::mark_clean_shutdown(&*t.store()).await.unwrap();
    t.reopen().await.expect("reopen after a clean shutdown");
    let third = crate::begin_recovery(&*t.store()).await.unwrap();
    assert!(third.previous_shutdown_clean);
    assert_eq!(third.epoch, second.epoch + 1);
}

/// Node states and epoch records survive reopen.
pub async fn nodes_survive_reopen(t: &mut dyn TestStore) {
    let a = super::sessions::start_node(t, "node-a").await;
    a.shutdown().await.unwrap();
    let b = super::sessions::start_node(t, "node-b").await;
    let (a_session, b_session) = (a, b);
    let (a, b) = (a_session.recovery().clone(), b_session.recovery().clone());
    // Sessions hold store handles: drop them before the reopen.
    drop((a_session, b_session));
    let b_state = begin(t).await.get_node("node-b").await.unwrap();
    assert!(
        b_state
            .as_ref()
            .is_some_and(|s| s.lease_expires_at.is_some()),
        "a started node holds a lease: {b_state:?}"
    );
    t.reopen().await.expect("reopen");
    assert_eq!(
        begin(t).await.get_node("node-b").await.unwrap(),
        b_state,
        "the lease survives reopen"
    );
    let mut tx = begin(t).await;
    let nodes = node_summary(&mut *tx).await;
    assert_eq!(
        nodes,
        vec![
            ("node-a".into(), a.epoch, true),
            ("node-b".into(), b.epoch, false)
        ]
    );
    let handed = epoch_owners(&mut *tx).await;
    assert_eq!(
        handed,
        vec![
            (a.epoch, "node-a".to_owned()),
            (b.epoch, "node-b".to_owned())
        ]
    );
}
