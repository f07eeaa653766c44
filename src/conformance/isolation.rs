//! Transactions: atomicity (commit, rollback, drop, failed `transact`),
//! read-your-writes, snapshot reads, conflicts and concurrent writers.

use super::TestStore;
use super::sample::{
    all_locks, assert_conflict, begin, by_id, commit, handle, read_file, read_lock, sample_file,
    sample_lock, seed,
};
use crate::{
    Error, FileMeta, LockQuery, MetadataStoreExt, MetadataTransaction, PersistedLock, Result,
};

/// A file and a lock written in one transaction appear together at commit, not before.
pub async fn commit_publishes_file_and_lock_together(t: &mut dyn TestStore) {
    let file = sample_file(b"fh", "s");
    let lock = sample_lock(&file.handle, "o", "c", "s");
    let mut writer = begin(t).await;
    writer.put_file(&file).await.unwrap();
    writer.put_lock(&lock).await.unwrap();
    assert_eq!(
        read_file(t, &file.handle).await,
        None,
        "uncommitted file visible"
    );
    assert_eq!(
        read_lock(t, lock.id).await,
        None,
        "uncommitted lock visible"
    );
    commit(writer).await;
    assert_eq!(read_file(t, &file.handle).await, Some(file));
    assert_eq!(read_lock(t, lock.id).await, Some(lock));
}

pub(super) async fn write_pair_then(t: &dyn TestStore, finish: &str) -> (FileMeta, PersistedLock) {
    let file = sample_file(b"fh", "s");
    let lock = sample_lock(&file.handle, "o", "c", "s");
    let mut tx = begin(t).await;
    tx.put_file(&file).await.unwrap();
    tx.put_lock(&lock).await.unwrap();
    match finish {
        "rollback" => tx.rollback().await.unwrap(),
        _ => drop(tx),
    }
    (file, lock)
}

pub(super) async fn assert_pair_absent(
    t: &dyn TestStore,
    file: &FileMeta,
    lock: &PersistedLock,
    how: &str,
) {
    assert_eq!(
        read_file(t, &file.handle).await,
        None,
        "file survived {how}"
    );
    assert_eq!(read_lock(t, lock.id).await, None, "lock survived {how}");
    assert!(
        all_locks(t, &LockQuery::by_file(&file.handle))
            .await
            .is_empty(),
        "index entry survived {how}"
    );
    assert!(
        begin(t).await.list_files("s").await.unwrap().is_empty(),
        "file listing survived {how}"
    );
}

/// Rollback discards the file and the lock.
pub async fn rollback_discards_file_and_lock(t: &mut dyn TestStore) {
    let (file, lock) = write_pair_then(t, "rollback").await;
    assert_pair_absent(t, &file, &lock, "rollback").await;
}

/// Dropping a transaction without commit discards the file and the lock.
pub async fn drop_discards_file_and_lock(t: &mut dyn TestStore) {
    let (file, lock) = write_pair_then(t, "drop").await;
    assert_pair_absent(t, &file, &lock, "drop").await;
}

/// A `transact` closure that fails midway leaves nothing behind.
pub async fn failed_transact_discards_everything(t: &mut dyn TestStore) {
    let file = sample_file(b"fh", "s");
    let lock = sample_lock(&file.handle, "o", "c", "s");
    let store = t.store();
    let (f, l) = (&file, &lock);
    let result: Result<()> = store
        .transact(|tx| {
            Box::pin(async move {
                tx.put_file(f).await?;
                tx.put_lock(l).await?;
                tx.increment_server_epoch().await?;
                tx.delete_file(&handle(b"missing")).await
            })
        })
        .await;
    assert!(
        matches!(result, Err(Error::FileNotFound(_))),
        "transact returns the closure's error: {result:?}"
    );
    drop(store);
    assert_pair_absent(t, &file, &lock, "a failed transact").await;
    assert_eq!(
        begin(t).await.server_epoch().await.unwrap(),
        0,
        "the epoch bump survived"
    );
}

/// `delete_locks_uncounted` deletes the ids given (skipping missing and
/// repeated ones), reads in the same transaction see it at once, and a
/// rollback undoes it.
pub async fn uncounted_deletes_are_seen_and_roll_back(t: &mut dyn TestStore) {
    let file = handle(b"f");
    let locks: Vec<_> = (0..3).map(|_| sample_lock(&file, "o", "c", "s")).collect();
    seed(t, &[], &locks).await;
    let mut tx = begin(t).await;
    let missing = uuid::Uuid::new_v4();
    tx.delete_locks_uncounted(&[locks[0].id, missing, locks[0].id, locks[2].id])
        .await
        .unwrap();
    tx.delete_locks_uncounted(&[]).await.unwrap();
    assert_eq!(
        tx.list_locks(&LockQuery::by_file(&file)).await.unwrap(),
        vec![locks[1].clone()],
        "seen by a read in the transaction"
    );
    assert_eq!(tx.get_lock(locks[0].id).await.unwrap(), None);
    tx.rollback().await.unwrap();
    assert_eq!(
        all_locks(t, &LockQuery::default()).await,
        by_id(locks.clone()),
        "rolled back"
    );
    let mut tx = begin(t).await;
    tx.delete_locks_uncounted(&[locks[1].id]).await.unwrap();
    tx.commit().await.unwrap();
    let mut left = locks.clone();
    left.remove(1);
    assert_eq!(
        all_locks(t, &LockQuery::default()).await,
        by_id(left),
        "committed"
    );
}

/// Rolled-back and dropped bulk deletes leave every lock in place.
pub async fn bulk_deletes_roll_back(t: &mut dyn TestStore) {
    let file = handle(b"f");
    let locks: Vec<_> = (0..4)
        .map(|i| sample_lock(&file, "o", &format!("c{}", i % 2), "s"))
        .collect();
    seed(t, &[], &locks).await;
    let mut tx = begin(t).await;
    assert_eq!(tx.delete_locks_by_client("c0").await.unwrap(), 2);
    assert_eq!(tx.delete_locks_by_file(&file).await.unwrap(), 2);
    tx.rollback().await.unwrap();
    let mut tx = begin(t).await;
    assert_eq!(tx.delete_locks_by_file(&file).await.unwrap(), 4);
    drop(tx);
    assert_eq!(
        all_locks(t, &LockQuery::default()).await,
        by_id(locks.clone())
    );
    assert_eq!(
        all_locks(t, &LockQuery::by_client("c0")).await.len(),
        2,
        "client index intact"
    );
    assert_eq!(
        all_locks(t, &LockQuery::by_file(&file)).await.len(),
        4,
        "file index intact"
    );
}

/// A rolled-back or dropped epoch increment leaves the epoch where it was.
pub async fn epoch_increment_rolls_back(t: &mut dyn TestStore) {
    let mut tx = begin(t).await;
    assert_eq!(tx.increment_server_epoch().await.unwrap(), 1);
    commit(tx).await;
    let mut tx = begin(t).await;
    assert_eq!(tx.increment_server_epoch().await.unwrap(), 2);
    tx.rollback().await.unwrap();
    let mut tx = begin(t).await;
    assert_eq!(tx.increment_server_epoch().await.unwrap(), 2);
    drop(tx);
    assert_eq!(begin(t).await.server_epoch().await.unwrap(), 1);
}

/// get_file and get_lock see the transaction's own puts and deletes.
pub async fn reads_own_writes_in_get(t: &mut dyn TestStore) {
    let old = sample_lock(&handle(b"f"), "o", "c", "s");
    seed(t, &[], std::slice::from_ref(&old)).await;
    let file = sample_file(b"fh", "s");
    let lock = sample_lock(&file.handle, "o", "c", "s");
    let mut tx = begin(t).await;
    tx.put_file(&file).await.unwrap();
    tx.put_lock(&lock).await.unwrap();
    tx.delete_lock(old.id).await.unwrap();
    assert_eq!(tx.get_file(&file.handle).await.unwrap(), Some(file.clone()));
    assert_eq!(tx.get_lock(lock.id).await.unwrap(), Some(lock.clone()));
    assert_eq!(tx.get_lock(old.id).await.unwrap(), None);
    tx.delete_file(&file.handle).await.unwrap();
    assert_eq!(tx.get_file(&file.handle).await.unwrap(), None);
}

/// list_locks and list_files see the transaction's own puts, overwrites and deletes.
pub async fn reads_own_writes_in_list(t: &mut dyn TestStore) {
    let file = handle(b"f");
    let kept = sample_lock(&file, "o", "c1", "s");
    let deleted = sample_lock(&file, "o", "c1", "s");
    let bulk = sample_lock(&file, "o", "c2", "s");
    seed(
        t,
        &[sample_file(b"f", "s")],
        &[kept.clone(), deleted.clone(), bulk.clone()],
    )
    .await;
    let mut tx = begin(t).await;
    let added = sample_lock(&file, "o", "c1", "s");
    tx.put_lock(&added).await.unwrap();
    tx.delete_lock(deleted.id).await.unwrap();
    let moved = PersistedLock {
        client_id: "c3".into(),
        ..kept.clone()
    };
    tx.put_lock(&moved).await.unwrap();
    assert_eq!(
        tx.list_locks(&LockQuery::by_client("c1")).await.unwrap(),
        vec![added.clone()]
    );
    assert_eq!(
        tx.list_locks(&LockQuery::by_client("c3")).await.unwrap(),
        vec![moved.clone()]
    );
    assert_eq!(tx.delete_locks_by_client("c2").await.unwrap(), 1);
    assert_eq!(
        tx.list_locks(&LockQuery::by_file(&file)).await.unwrap(),
        by_id(vec![added, moved]),
        "listing by file after put, overwrite, delete and bulk delete"
    );
    let second = sample_file(b"g", "s");
    tx.put_file(&second).await.unwrap();
    tx.delete_file(&handle(b"f")).await.unwrap();
    assert_eq!(tx.list_files("s").await.unwrap(), vec![second]);
}

/// Two transactions open in one task: neither waits, and neither sees the other's uncommitted writes.
pub async fn uncommitted_writes_are_invisible(t: &mut dyn TestStore) {
    let file = sample_file(b"fh", "s");
    let lock = sample_lock(&file.handle, "o", "c", "s");
    let mut writer = begin(t).await;
    let mut reader = begin(t).await;
    writer.put_file(&file).await.unwrap();
    writer.put_lock(&lock).await.unwrap();
    writer.increment_server_epoch().await.unwrap();
    assert_eq!(reader.get_file(&file.handle).await.unwrap(), None);
    assert_eq!(reader.get_lock(lock.id).await.unwrap(), None);
    assert!(
        reader
            .list_locks(&LockQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(reader.list_files("s").await.unwrap().is_empty());
    assert_eq!(reader.server_epoch().await.unwrap(), 0);
    commit(writer).await;
    drop(reader);
    assert_eq!(read_lock(t, lock.id).await, Some(lock));
}

/// What a transaction read stays the same while others commit changes to it.
pub async fn reads_are_repeatable(t: &mut dyn TestStore) {
    let lock = sample_lock(&handle(b"f"), "o", "c", "s");
    seed(t, &[sample_file(b"f", "s")], std::slice::from_ref(&lock)).await;
    let mut reader = begin(t).await;
    assert_eq!(reader.get_lock(lock.id).await.unwrap(), Some(lock.clone()));
    assert_eq!(reader.list_files("s").await.unwrap().len(), 1);
    let mut writer = begin(t).await;
    writer.delete_lock(lock.id).await.unwrap();
    writer.put_file(&sample_file(b"g", "s")).await.unwrap();
    commit(writer).await;
    assert_eq!(
        reader.get_lock(lock.id).await.unwrap(),
        Some(lock),
        "a committed delete leaked in"
    );
    assert_eq!(
        reader.list_files("s").await.unwrap().len(),
        1,
        "a committed insert leaked in"
    );
}

/// Runs the second transaction's last write and commit after the first committed:
/// returns the second's outcome (its write or its commit may fail).
pub(super) async fn finish_second(
    mut tx: Box<dyn MetadataTransaction>,
    lock: &PersistedLock,
) -> Result<()> {
    tx.put_lock(lock).await?;
    tx.commit().await
}

/// Two transactions read, then write, the same lock: the second to commit gets a Conflict.
pub async fn lost_update_is_a_conflict(t: &mut dyn TestStore) {
    let lock = sample_lock(&handle(b"f"), "o", "c", "s");
    seed(t, &[], std::slice::from_ref(&lock)).await;
    let mut first = begin(t).await;
    let mut second = begin(t).await;
    assert!(first.get_lock(lock.id).await.unwrap().is_some());
    assert!(second.get_lock(lock.id).await.unwrap().is_some());
    let by_first = PersistedLock {
        offset: 1,
        ..lock.clone()
    };
    let by_second = PersistedLock {
        offset: 2,
        ..lock.clone()
    };
    first.put_lock(&by_first).await.unwrap();
    commit(first).await;
    let outcome = finish_second(second, &by_second).await;
    assert_conflict("the second read-modify-write of one lock", &outcome);
    assert_eq!(
        read_lock(t, lock.id).await,
        Some(by_first),
        "the first update was lost"
    );
}

/// Both transactions see no lock on a file and each adds one: that cannot be
/// serialized (each would have seen the other's), so one gets a Conflict.
/// Lock arbitration relies on this.
pub async fn write_skew_is_prevented(t: &mut dyn TestStore) {
    let file = handle(b"contested");
    seed(t, &[], &[sample_lock(&handle(b"elsewhere"), "o", "c", "s")]).await;
    let mut first = begin(t).await;
    let mut second = begin(t).await;
    assert!(
        first
            .list_locks(&LockQuery::by_file(&file))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        second
            .list_locks(&LockQuery::by_file(&file))
            .await
            .unwrap()
            .is_empty()
    );
    let a = sample_lock(&file, "a", "ca", "s");
    let b = sample_lock(&file, "b", "cb", "s");
    let first_outcome = finish_second(first, &a).await;
    let second_outcome = finish_second(second, &b).await;
    let committed = [&first_outcome, &second_outcome]
        .iter()
        .filter(|o| o.is_ok())
        .count();
    assert_eq!(
        committed, 1,
        "exactly one commits: {first_outcome:?} / {second_outcome:?}"
    );
    let loser = if first_outcome.is_ok() {
        &second_outcome
    } else {
        &first_outcome
    };
    assert_conflict("the second writer of a phantom", loser);
    assert_eq!(all_locks(t, &LockQuery::by_file(&file)).await.len(), 1);
}

/// N tasks increment the epoch concurrently through `transact`: it rises by exactly N.
pub async fn concurrent_epoch_increments_are_exact(t: &mut dyn TestStore) {
    const TASKS: u64 = 16;
    let store = t.store();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .transact(|tx| Box::pin(async move { tx.increment_server_epoch().await }))
                    .await
            })
        })
        .collect();
    let mut seen = Vec::new();
    for task in tasks {
        seen.push(task.await.expect("task").expect("transact"));
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        (1..=TASKS).collect::<Vec<_>>(),
        "each increment returns a distinct new epoch"
    );
    drop(store);
    assert_eq!(begin(t).await.server_epoch().await.unwrap(), TASKS);
}

/// N tasks read a file's size and write it back plus one: no update is lost.
pub async fn concurrent_read_modify_write_loses_nothing(t: &mut dyn TestStore) {
    const TASKS: u64 = 12;
    let file = FileMeta {
        size: 0,
        ..sample_file(b"counter", "s")
    };
    seed(t, std::slice::from_ref(&file), &[]).await;
    let store = t.store();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (store, h) = (store.clone(), file.handle.clone());
            tokio::spawn(async move {
                let h = &h;
                store
                    .transact(|tx| {
                        Box::pin(async move {
                            let mut f = tx
                                .get_file(h)
                                .await?
                                .ok_or_else(|| Error::FileNotFound(h.clone()))?;
                            f.size += 1;
                            tx.put_file(&f).await
                        })
                    })
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("transact");
    }
    drop(store);
    assert_eq!(read_file(t, &file.handle).await.unwrap().size, TASKS);
}

/// A transaction that puts locks, rewrites and deletes some of them, then
/// deletes in bulk by client and by file and puts a deleted id back commits
/// exactly what it last wrote, read by id and through every index, whether
/// it commits alone (round 0) or while another transaction is open (round
/// 1). The memory backend defers lock writes to the commit; this is what
/// the deferral must keep.
pub async fn writes_then_bulk_deletes_commit_as_made(t: &mut dyn TestStore) {
    for round in 0..2u8 {
        let (f1, f2, f3) = (
            handle(&[b'w', round, 1]),
            handle(&[b'w', round, 2]),
            handle(&[b'w', round, 3]),
        );
        let (keep, gone) = (format!("keep-{round}"), format!("gone-{round}"));
        let share = format!("s-{round}");
        let stored = sample_lock(&f1, "o", &gone, &share);
        seed(t, &[], std::slice::from_ref(&stored)).await;
        let other = if round == 1 {
            Some(begin(t).await)
        } else {
            None
        };

        let mut tx = begin(t).await;
        let kept = sample_lock(&f1, "o", &keep, &share);
        let rewritten = sample_lock(&f2, "o", &keep, &share);
        let deleted = sample_lock(&f1, "o", &keep, &share);
        let put_then_bulk_deleted = sample_lock(&f2, "o", &gone, &share);
        let on_f3 = sample_lock(&f3, "o", &keep, &share);
        let batch = [&kept, &rewritten, &deleted, &put_then_bulk_deleted, &on_f3];
        tx.put_locks(&batch.map(PersistedLock::clone))
            .await
            .unwrap();
        let rewritten = PersistedLock {
            owner_id: format!("o2-{round}"),
            server_epoch: 7 + u64::from(round),
            ..rewritten
        };
        tx.put_lock(&rewritten).await.unwrap();
        tx.delete_lock(deleted.id).await.unwrap();
        assert_eq!(tx.get_lock(deleted.id).await.unwrap(), None);
        assert_eq!(
            tx.get_lock(rewritten.id).await.unwrap(),
            Some(rewritten.clone())
        );
        assert_eq!(tx.delete_locks_by_client(&gone).await.unwrap(), 2);
        assert_eq!(tx.delete_locks_by_file(&f3).await.unwrap(), 1);
        let back = PersistedLock {
            offset: 99,
            ..deleted.clone()
        };
        tx.put_lock(&back).await.unwrap();
        commit(tx).await;
        drop(other);

        assert_eq!(
            all_locks(t, &LockQuery::by_client(&keep)).await,
            by_id(vec![kept.clone(), rewritten.clone(), back.clone()]),
            "round {round}: by client"
        );
        assert!(all_locks(t, &LockQuery::by_client(&gone)).await.is_empty());
        assert_eq!(
            all_locks(t, &LockQuery::by_file(&f1)).await,
            by_id(vec![kept.clone(), back.clone()])
        );
        assert_eq!(
            all_locks(t, &LockQuery::by_file(&f2)).await,
            vec![rewritten.clone()]
        );
        assert!(all_locks(t, &LockQuery::by_file(&f3)).await.is_empty());
        assert_eq!(
            all_locks(t, &LockQuery::by_owner(&rewritten.owner_id)).await,
            vec![rewritten.clone()]
        );
        assert_eq!(
            all_locks(t, &LockQuery::by_share(&share)).await,
            by_id(vec![kept.clone(), rewritten.clone(), back.clone()])
        );
        let epoch = |e: u64| LockQuery {
            server_epoch: Some(e),
            share_name: Some(share.clone()),
            ..LockQuery::default()
        };
        assert_eq!(
            all_locks(t, &epoch(rewritten.server_epoch)).await,
            vec![rewritten.clone()]
        );
        assert_eq!(
            all_locks(t, &epoch(1)).await,
            by_id(vec![kept.clone(), back.clone()])
        );
        // The epoch index alone (no other field set), against a full scan.
        assert_eq!(
            all_locks(
                t,
                &LockQuery {
                    server_epoch: Some(rewritten.server_epoch),
                    ..LockQuery::default()
                }
            )
            .await,
            vec![rewritten.clone()]
        );
        let everything = all_locks(t, &LockQuery::default()).await;
        for below in [1, 2, 8, 9] {
            let want: Vec<PersistedLock> = everything
                .iter()
                .filter(|l| l.server_epoch < below)
                .cloned()
                .collect();
            let query = LockQuery {
                server_epoch_below: Some(below),
                ..LockQuery::default()
            };
            assert_eq!(
                all_locks(t, &query).await,
                want,
                "round {round}: below {below}"
            );
        }
        assert_eq!(read_lock(t, stored.id).await, None);
        assert_eq!(read_lock(t, back.id).await, Some(back.clone()));
        let report = t.store().verify().await.unwrap();
        assert!(report.is_healthy(), "round {round}: {report:?}");
    }
}
