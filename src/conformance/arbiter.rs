//! Lock arbitration (generic code, checked on every backend): conflicts,
//! share reservations, upgrades/downgrades, merges, releases, `u64` edges,
//! test-only requests and concurrent acquisitions.

use uuid::Uuid;

use super::TestStore;
use super::sample::{
    ExpectDenied, acquire, all_locks, begin, by_id, commit, handle, request, shape,
};
use crate::{
    Acquire, ByteRange, FileHandle, LockOwner, LockQuery, LockType, MetadataStoreExt,
    PersistedLock, ShareReservation,
};

/// Another owner's overlapping exclusive lock is denied with the stored conflicts;
/// shared locks coexist; a denial changes nothing, the requester's own locks included.
pub async fn arbiter_denies_conflicts_and_changes_nothing(t: &mut dyn TestStore) {
    use LockType::*;
    let f = handle(b"f");
    let held = request(&f, "a", Exclusive, 0, 100);
    assert_eq!(acquire(t, &held).await, Acquire::Granted);
    let mine = request(&f, "b", Shared, 200, 10);
    assert_eq!(acquire(t, &mine).await, Acquire::Granted);
    assert_eq!(
        acquire(t, &request(&f, "c", Shared, 200, 5)).await,
        Acquire::Granted,
        "shared locks coexist"
    );
    let before = all_locks(t, &LockQuery::default()).await;
    // b asks for a range that would also upgrade its own lock: denied as a whole.
    let wanted = request(&f, "b", Exclusive, 50, 200);
    match acquire(t, &wanted).await {
        Acquire::Denied { conflicts } => {
            let mut expected = vec![held.clone()];
            expected.extend(before.iter().filter(|l| l.owner_id == "c").cloned());
            assert_eq!(conflicts, by_id(expected), "the conflicts, as stored");
        }
        other => panic!("an overlapping exclusive lock of another owner: {other:?}"),
    }
    assert_eq!(
        all_locks(t, &LockQuery::default()).await,
        before,
        "a denial wrote something"
    );
    let elsewhere = request(&handle(b"g"), "b", Exclusive, 0, 0);
    assert_eq!(
        acquire(t, &elsewhere).await,
        Acquire::Granted,
        "another file is independent"
    );
}

/// Deny modes apply to the whole file, in both directions.
pub async fn arbiter_applies_share_reservations(t: &mut dyn TestStore) {
    let f = handle(b"f");
    let deny_write = PersistedLock {
        share_reservation: ShareReservation::DenyWrite,
        ..request(&f, "a", LockType::Shared, 0, 1)
    };
    assert_eq!(acquire(t, &deny_write).await, Acquire::Granted);
    assert!(matches!(
        acquire(t, &request(&f, "b", LockType::Exclusive, 1000, 1)).await,
        Acquire::Denied { .. }
    ));
    assert_eq!(
        acquire(t, &request(&f, "b", LockType::Shared, 1000, 1)).await,
        Acquire::Granted
    );
    let deny_read = PersistedLock {
        share_reservation: ShareReservation::DenyRead,
        ..request(&f, "c", LockType::Shared, 5000, 1)
    };
    assert!(
        matches!(acquire(t, &deny_read).await, Acquire::Denied { .. }),
        "a DenyRead request conflicts with the shared locks already held"
    );
}

/// Upgrading a sub-range splits the owner's shared lock around an exclusive one.
pub async fn arbiter_upgrades_and_downgrades_sub_ranges(t: &mut dyn TestStore) {
    use LockType::*;
    let f = handle(b"f");
    let base = request(&f, "a", Shared, 0, 100);
    acquire(t, &base).await;
    let upgrade = request(&f, "a", Exclusive, 10, 10);
    assert_eq!(acquire(t, &upgrade).await, Acquire::Granted);
    assert_eq!(
        shape(t, &f, "a").await,
        vec![(Shared, 0, 10), (Exclusive, 10, 10), (Shared, 20, 80)]
    );
    let ids: Vec<Uuid> = all_locks(t, &LockQuery::by_file(&f))
        .await
        .iter()
        .map(|l| l.id)
        .collect();
    assert!(ids.contains(&upgrade.id), "the request keeps its id");
    assert!(
        !ids.contains(&base.id),
        "fragments of the replaced lock get fresh ids"
    );
    assert_eq!(ids.len(), 3);
    let downgrade = request(&f, "a", Shared, 0, 15);
    assert_eq!(acquire(t, &downgrade).await, Acquire::Granted);
    assert_eq!(
        shape(t, &f, "a").await,
        vec![(Shared, 0, 15), (Exclusive, 15, 5), (Shared, 20, 80)]
    );
}

/// Touching or overlapping pieces of the same type merge into the request's record.
pub async fn arbiter_merges_same_type_neighbours(t: &mut dyn TestStore) {
    use LockType::*;
    let f = handle(b"f");
    acquire(t, &request(&f, "a", Exclusive, 0, 10)).await;
    acquire(t, &request(&f, "a", Exclusive, 20, 10)).await;
    let bridge = request(&f, "a", Exclusive, 10, 10);
    assert_eq!(acquire(t, &bridge).await, Acquire::Granted);
    assert_eq!(
        shape(t, &f, "a").await,
        vec![(Exclusive, 0, 30)],
        "three touching pieces become one"
    );
    assert_eq!(all_locks(t, &LockQuery::by_file(&f)).await[0].id, bridge.id);
    acquire(t, &request(&f, "a", Shared, 30, 10)).await;
    assert_eq!(
        shape(t, &f, "a").await,
        vec![(Exclusive, 0, 30), (Shared, 30, 10)],
        "other types stay apart"
    );
    acquire(t, &request(&f, "a", Exclusive, 25, 0)).await;
    assert_eq!(
        shape(t, &f, "a").await,
        vec![(Exclusive, 0, 0)],
        "to EOF swallows the rest"
    );
}

/// Unlocking splits a lock into at most two fresh-id fragments, also in the middle of a to-EOF lock.
pub async fn release_range_splits_and_trims(t: &mut dyn TestStore) {
    use LockType::*;
    let f = handle(b"f");
    let owner = request(&f, "a", Exclusive, 0, 0);
    acquire(t, &owner).await;
    acquire(t, &request(&f, "b", Shared, 0, 0))
        .await
        .expect_denied();
    let store = t.store();
    let who = owner.owner();
    let release = |range: ByteRange| {
        let (store, f, who) = (store.clone(), f.clone(), who.clone());
        async move {
            let (f, who) = (&f, &who);
            store
                .transact(|tx| {
                    Box::pin(async move { crate::release_range(tx, f, who, range).await })
                })
                .await
                .expect("release_range")
        }
    };
    assert_eq!(release(ByteRange::new(100, 10)).await, 1);
    assert_eq!(
        shape(t, &f, "a").await,
        vec![(Exclusive, 0, 100), (Exclusive, 110, 0)]
    );
    assert!(
        !all_locks(t, &LockQuery::by_file(&f))
            .await
            .iter()
            .any(|l| l.id == owner.id),
        "fresh ids"
    );
    assert_eq!(
        release(ByteRange::new(50, 100)).await,
        2,
        "one lock shrunk, one trimmed"
    );
    assert_eq!(
        shape(t, &f, "a").await,
        vec![(Exclusive, 0, 50), (Exclusive, 150, 0)]
    );
    assert_eq!(
        release(ByteRange::new(u64::MAX, 1)).await,
        1,
        "the last byte of the file"
    );
    assert_eq!(
        shape(t, &f, "a").await,
        vec![(Exclusive, 0, 50), (Exclusive, 150, u64::MAX - 150)]
    );
    let other = LockOwner {
        owner_id: "b".into(),
        client_id: "client-of-b".into(),
        share_name: "s".into(),
    };
    let f2 = &f;
    let other = &other;
    assert_eq!(
        store
            .transact(|tx| Box::pin(async move {
                crate::release_range(tx, f2, other, ByteRange::new(0, 0)).await
            }))
            .await
            .unwrap(),
        0,
        "another owner releases nothing of a's"
    );
    assert_eq!(release(ByteRange::new(0, 0)).await, 2);
    assert!(shape(t, &f, "a").await.is_empty());
}

/// u64 edges: a lock on the last byte, all-ones lengths, and ranges that only touch.
pub async fn arbiter_handles_u64_edges(t: &mut dyn TestStore) {
    use LockType::*;
    let f = handle(b"f");
    assert_eq!(
        acquire(t, &request(&f, "a", Exclusive, u64::MAX, 1)).await,
        Acquire::Granted
    );
    acquire(t, &request(&f, "b", Exclusive, 50, u64::MAX))
        .await
        .expect_denied();
    assert_eq!(
        acquire(t, &request(&f, "b", Exclusive, 50, u64::MAX - 50)).await,
        Acquire::Granted,
        "[50, MAX) stops short of MAX"
    );
    assert_eq!(
        acquire(t, &request(&f, "a", Exclusive, 0, 50)).await,
        Acquire::Granted,
        "touching ranges do not conflict"
    );
    assert_eq!(
        shape(t, &f, "a").await,
        vec![(Exclusive, 0, 50), (Exclusive, u64::MAX, 1)]
    );
}

/// test_lock answers like acquire_lock and writes nothing.
pub async fn test_lock_writes_nothing(t: &mut dyn TestStore) {
    let f = handle(b"f");
    acquire(t, &request(&f, "a", LockType::Shared, 0, 10)).await;
    let before = all_locks(t, &LockQuery::default()).await;
    let mut tx = begin(t).await;
    assert_eq!(
        crate::test_lock(&mut *tx, &request(&f, "b", LockType::Shared, 0, 10))
            .await
            .unwrap(),
        Acquire::Granted
    );
    assert_eq!(
        crate::test_lock(&mut *tx, &request(&f, "a", LockType::Exclusive, 5, 100))
            .await
            .unwrap(),
        Acquire::Granted
    );
    match crate::test_lock(&mut *tx, &request(&f, "b", LockType::Exclusive, 9, 1))
        .await
        .unwrap()
    {
        Acquire::Denied { conflicts } => assert_eq!(conflicts, before),
        other => panic!("test_lock of a conflicting lock: {other:?}"),
    }
    commit(tx).await;
    assert_eq!(all_locks(t, &LockQuery::default()).await, before);
}

/// 32 tasks contend for overlapping ranges of a few files: no two stored locks
/// conflict, and a request was granted exactly when it is stored.
pub async fn concurrent_acquisitions_never_double_grant(t: &mut dyn TestStore) {
    const TASKS: usize = 32;
    const ROUNDS: usize = 6;
    let files: Vec<FileHandle> = (0..3u8).map(|i| handle(&[b'f', i])).collect();
    let store = t.store();
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let (store, files) = (store.clone(), files.clone());
            tokio::spawn(async move {
                let mut granted = Vec::new();
                for round in 0..ROUNDS {
                    // Each owner's own requests never touch each other (disjoint 1000-byte slots),
                    // so a granted request stays stored as requested.
                    let slot = (round * TASKS + task) as u64;
                    let offset = (slot % 7) * 1000 + (slot * 37 % 500);
                    let lock_type = if (task + round) % 3 == 0 {
                        LockType::Exclusive
                    } else {
                        LockType::Shared
                    };
                    let req = PersistedLock {
                        offset: offset + round as u64 * 10_000,
                        length: 300 + (slot % 5) * 200,
                        ..request(
                            &files[(task + round) % files.len()],
                            &format!("owner-{task}"),
                            lock_type,
                            0,
                            0,
                        )
                    };
                    let r = &req;
                    match store
                        .transact(|tx| Box::pin(async move { crate::acquire_lock(tx, r).await }))
                        .await
                    {
                        Ok(Acquire::Granted) => granted.push(req),
                        Ok(Acquire::Denied { conflicts }) => {
                            assert!(!conflicts.is_empty(), "denied without a conflict")
                        }
                        other => panic!("acquire_lock: {other:?}"),
                    }
                }
                granted
            })
        })
        .collect();
    let mut granted = Vec::new();
    for task in tasks {
        granted.extend(task.await.expect("task"));
    }
    drop(store);
    let stored = all_locks(t, &LockQuery::default()).await;
    assert_eq!(
        stored,
        by_id(granted.clone()),
        "a request was granted exactly when it is stored"
    );
    for (i, a) in stored.iter().enumerate() {
        for b in &stored[i + 1..] {
            assert!(
                !a.to_enhanced().conflicts_with(&b.to_enhanced()),
                "double grant: {a:?} and {b:?}"
            );
        }
    }
    assert!(
        granted.len() >= files.len(),
        "the contest granted too little to mean anything: {}",
        granted.len()
    );
    let denied = TASKS * ROUNDS - granted.len();
    assert!(
        denied > 0,
        "no request was denied: the contest did not contend"
    );
    eprintln!(
        "concurrent acquisitions: {} requests, {} granted, {denied} denied, 0 double grants",
        TASKS * ROUNDS,
        granted.len()
    );
}
