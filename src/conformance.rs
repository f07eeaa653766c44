//! The behaviour suite every backend must pass (feature `conformance`).
//!
//! Semantics live here once; each backend's test file is a few lines:
//!
//! ```ignore
//! struct Fresh;
//! #[async_trait::async_trait]
//! impl fsmeta::conformance::Harness for Fresh {
//!     async fn create(&self) -> Option<Box<dyn fsmeta::conformance::TestStore>> { … }
//! }
//! fsmeta::conformance_tests!(Fresh);
//! ```
//!
//! A check panics (like `assert!`) on the first behaviour that differs from
//! the contract, with a message that names it.

pub mod load;
#[cfg(feature = "postgres")]
pub mod postgres;
mod reclaim;
pub use reclaim::*;

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use crate::{
    Acquire, ByteRange, EpochRecord, Error, FileHandle, FileKind, FileMeta, LockOwner, LockQuery,
    LockType, MetadataStore, MetadataStoreExt, MetadataTransaction, NodeState, PersistedLock,
    Reclaim, Result, ShareReservation, Timestamp,
};

/// Makes fresh, empty stores for the checks.
#[async_trait]
pub trait Harness: Send + Sync {
    /// A new, empty store, independent of every other one it made (checks run in
    /// parallel). `None` skips the check: only for a backend whose server is not
    /// reachable when the environment does not require it.
    async fn create(&self) -> Option<Box<dyn TestStore>>;
}

/// One store under test.
#[async_trait]
pub trait TestStore: Send + Sync {
    /// A handle to the store. Checks drop their handles before [`TestStore::reopen`].
    fn store(&self) -> Arc<dyn MetadataStore>;

    /// Drops every handle the fixture holds, closing the store, and opens the
    /// same store again (same path, same database). Only persistent backends
    /// support it; they run [`persistence_tests!`](crate::persistence_tests).
    async fn reopen(&mut self) -> Result<()> {
        Err(Error::Invalid(
            "this backend keeps nothing across reopen".into(),
        ))
    }

    /// Removes what the store left behind (a schema, a directory). Called after a check passed.
    async fn teardown(self: Box<Self>) {}
}

/// Generates one `#[tokio::test]` per conformance check, each on a fresh store
/// from the given [`Harness`] expression.
#[macro_export]
macro_rules! conformance_tests {
    ($harness:expr) => {
        $crate::__conformance_each!($harness;
            files_put_get_upsert, file_delete_missing_is_not_found, list_files_by_share,
            locks_put_get_upsert, lock_delete_missing_is_not_found, list_locks_filters_are_anded,
            list_locks_by_epoch_below, delete_locks_by_client_counts, delete_locks_by_file_counts,
            epoch_starts_at_zero_and_increments, clean_shutdown_flag_round_trips,
            commit_publishes_file_and_lock_together, rollback_discards_file_and_lock,
            drop_discards_file_and_lock, failed_transact_discards_everything,
            bulk_deletes_roll_back, epoch_increment_rolls_back, reads_own_writes_in_get,
            reads_own_writes_in_list, uncommitted_writes_are_invisible, reads_are_repeatable,
            lost_update_is_a_conflict, write_skew_is_prevented, concurrent_epoch_increments_are_exact,
            concurrent_read_modify_write_loses_nothing, overwrite_moves_index_entries,
            overwrite_keeps_entries_equal_across_indexes, ids_with_separators_round_trip,
            prefix_ids_stay_apart, integer_extremes_round_trip,
            timestamp_extremes_round_trip, lock_id_validation, file_validation,
            query_validation, timestamp_validation,
            arbiter_denies_conflicts_and_changes_nothing, arbiter_applies_share_reservations,
            arbiter_upgrades_and_downgrades_sub_ranges, arbiter_merges_same_type_neighbours,
            release_range_splits_and_trims, arbiter_handles_u64_edges, test_lock_writes_nothing,
            recovery_cycle, concurrent_acquisitions_never_double_grant,
            node_state_round_trips, nodes_recover_independently, simultaneous_node_recoveries_stay_apart,
            pages_walk_everything,
            reclaim_compares_ranges_by_meaning, reclaim_is_idempotent_and_says_why,
            reclaim_stamps_only_the_nodes_own_epoch, acquire_rejects_a_foreign_lock_id,
            acquire_with_an_own_lock_id_replaces_posix_style,
            share_reservations_survive_byte_range_requests,
        );
    };
}

/// Generates the reopen checks for a persistent backend (fjall, PostgreSQL).
#[macro_export]
macro_rules! persistence_tests {
    ($harness:expr) => {
        $crate::__conformance_each!($harness;
            reopen_keeps_files_locks_and_indexes, reopen_keeps_rolled_back_writes_out,
            reopen_keeps_epoch_and_flag, recovery_survives_reopen, nodes_survive_reopen,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_each {
    ($harness:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                let harness = $harness;
                let Some(mut fixture) = $crate::conformance::Harness::create(&harness).await else {
                    return;
                };
                $crate::conformance::$check(&mut *fixture).await;
                fixture.teardown().await;
            }
        )*
    };
}

// ---------------------------------------------------------------------------
// Sample data

const T0: Timestamp = Timestamp::from_micros(1_700_000_000_123_456);

/// A file handle from bytes (panics on an invalid one: test data only).
pub fn handle(bytes: &[u8]) -> FileHandle {
    FileHandle::new(bytes).expect("valid test handle")
}

/// A regular file on `share`.
pub fn sample_file(handle_bytes: &[u8], share: &str) -> FileMeta {
    FileMeta {
        handle: handle(handle_bytes),
        share_name: share.to_owned(),
        kind: FileKind::Regular,
        mode: 0o100644,
        uid: 1000,
        gid: 1000,
        nlink: 1,
        size: 4096,
        atime: T0,
        mtime: T0,
        ctime: T0,
    }
}

/// An exclusive lock on bytes 0..100 with a fresh id, epoch 1.
pub fn sample_lock(file: &FileHandle, owner: &str, client: &str, share: &str) -> PersistedLock {
    PersistedLock {
        id: Uuid::new_v4(),
        share_name: share.to_owned(),
        file_id: file.clone(),
        owner_id: owner.to_owned(),
        client_id: client.to_owned(),
        lock_type: LockType::Exclusive,
        offset: 0,
        length: 100,
        share_reservation: ShareReservation::None,
        acquired_at: T0,
        server_epoch: 1,
    }
}

pub(crate) fn by_id(mut locks: Vec<PersistedLock>) -> Vec<PersistedLock> {
    locks.sort_by_key(|l| l.id);
    locks
}

pub(crate) async fn begin(t: &dyn TestStore) -> Box<dyn MetadataTransaction> {
    t.store().begin().await.expect("begin")
}

pub(crate) async fn commit(tx: Box<dyn MetadataTransaction>) {
    tx.commit().await.expect("commit");
}

/// Commits `files` and `locks` in one transaction.
pub(crate) async fn seed(t: &dyn TestStore, files: &[FileMeta], locks: &[PersistedLock]) {
    let mut tx = begin(t).await;
    for f in files {
        tx.put_file(f).await.expect("put_file");
    }
    for l in locks {
        tx.put_lock(l).await.expect("put_lock");
    }
    commit(tx).await;
}

async fn read_file(t: &dyn TestStore, h: &FileHandle) -> Option<FileMeta> {
    begin(t).await.get_file(h).await.expect("get_file")
}

pub(crate) async fn read_lock(t: &dyn TestStore, id: Uuid) -> Option<PersistedLock> {
    begin(t).await.get_lock(id).await.expect("get_lock")
}

pub(crate) async fn all_locks(t: &dyn TestStore, q: &LockQuery) -> Vec<PersistedLock> {
    begin(t).await.list_locks(q).await.expect("list_locks")
}

pub(crate) fn assert_invalid<T: std::fmt::Debug>(what: &str, r: Result<T>) {
    assert!(
        matches!(r, Err(Error::Invalid(_))),
        "{what}: expected Error::Invalid, got {r:?}"
    );
}

fn assert_conflict<T: std::fmt::Debug>(what: &str, r: &Result<T>) {
    assert!(
        matches!(r, Err(e @ Error::Conflict(_)) if e.is_retryable()),
        "{what}: expected a retryable Error::Conflict, got {r:?}"
    );
}

// ---------------------------------------------------------------------------
// CRUD

/// put_file inserts, get_file returns it equal, a second put replaces it.
pub async fn files_put_get_upsert(t: &mut dyn TestStore) {
    let mut file = sample_file(b"fh-1", "export");
    assert_eq!(
        read_file(t, &file.handle).await,
        None,
        "a new store has no files"
    );
    seed(t, std::slice::from_ref(&file), &[]).await;
    assert_eq!(read_file(t, &file.handle).await, Some(file.clone()));
    file.size = 1;
    file.kind = FileKind::Directory;
    file.share_name = "other".into();
    seed(t, std::slice::from_ref(&file), &[]).await;
    assert_eq!(
        read_file(t, &file.handle).await,
        Some(file.clone()),
        "put_file upserts"
    );
    let mut tx = begin(t).await;
    assert!(
        tx.list_files("export").await.unwrap().is_empty(),
        "the upsert left the old share's listing"
    );
    assert_eq!(tx.list_files("other").await.unwrap(), vec![file]);
}

/// delete_file removes; deleting a missing file is FileNotFound and the transaction stays usable.
pub async fn file_delete_missing_is_not_found(t: &mut dyn TestStore) {
    let file = sample_file(b"fh-1", "export");
    seed(t, std::slice::from_ref(&file), &[]).await;
    let missing = handle(b"missing");
    let mut tx = begin(t).await;
    match tx.delete_file(&missing).await {
        Err(Error::FileNotFound(h)) => assert_eq!(h, missing),
        other => panic!("delete of a missing file: expected FileNotFound, got {other:?}"),
    }
    tx.delete_file(&file.handle)
        .await
        .expect("the transaction is usable after FileNotFound");
    assert!(
        matches!(
            tx.delete_file(&file.handle).await,
            Err(Error::FileNotFound(_))
        ),
        "deleted twice"
    );
    commit(tx).await;
    assert_eq!(read_file(t, &file.handle).await, None);
}

/// list_files returns exactly one share's files, in handle order.
pub async fn list_files_by_share(t: &mut dyn TestStore) {
    let files = [
        sample_file(&[2], "share1"),
        sample_file(&[1], "share1"),
        sample_file(&[1, 0], "share1"),
        sample_file(&[3], "share10"),
        sample_file(&[4], "share"),
        sample_file(&[5], "share1/sub"),
    ];
    seed(t, &files, &[]).await;
    let mut tx = begin(t).await;
    let listed: Vec<Vec<u8>> = tx
        .list_files("share1")
        .await
        .unwrap()
        .iter()
        .map(|f| f.handle.as_bytes().to_vec())
        .collect();
    assert_eq!(
        listed,
        vec![vec![1], vec![1, 0], vec![2]],
        "share1's files in handle order, no others"
    );
    assert_eq!(
        tx.list_files("share10").await.unwrap(),
        vec![files[3].clone()]
    );
    assert_eq!(
        tx.list_files("share").await.unwrap(),
        vec![files[4].clone()]
    );
    assert!(tx.list_files("nobody").await.unwrap().is_empty());
}

/// put_lock inserts, get_lock returns it equal, a second put with the same id replaces it.
pub async fn locks_put_get_upsert(t: &mut dyn TestStore) {
    let file = handle(b"fh-1");
    let mut lock = sample_lock(&file, "owner", "client", "export");
    assert_eq!(read_lock(t, lock.id).await, None);
    seed(t, &[], std::slice::from_ref(&lock)).await;
    assert_eq!(read_lock(t, lock.id).await, Some(lock.clone()));
    lock.lock_type = LockType::Shared;
    lock.offset = 7;
    lock.length = 0;
    lock.share_reservation = ShareReservation::DenyWrite;
    lock.server_epoch = 9;
    seed(t, &[], std::slice::from_ref(&lock)).await;
    assert_eq!(
        read_lock(t, lock.id).await,
        Some(lock.clone()),
        "put_lock upserts by id"
    );
    assert_eq!(
        all_locks(t, &LockQuery::default()).await,
        vec![lock],
        "an upsert makes no second record"
    );
}

/// delete_lock removes; deleting a missing id is LockNotFound and the transaction stays usable.
pub async fn lock_delete_missing_is_not_found(t: &mut dyn TestStore) {
    let lock = sample_lock(&handle(b"f"), "o", "c", "s");
    seed(t, &[], std::slice::from_ref(&lock)).await;
    let missing = Uuid::new_v4();
    let mut tx = begin(t).await;
    match tx.delete_lock(missing).await {
        Err(Error::LockNotFound(id)) => assert_eq!(id, missing),
        other => panic!("delete of a missing lock: expected LockNotFound, got {other:?}"),
    }
    tx.delete_lock(lock.id)
        .await
        .expect("the transaction is usable after LockNotFound");
    assert!(
        matches!(tx.delete_lock(lock.id).await, Err(Error::LockNotFound(_))),
        "deleted twice"
    );
    commit(tx).await;
    assert_eq!(read_lock(t, lock.id).await, None);
}

/// Every set filter must match; the empty query lists everything; results come in id order.
pub async fn list_locks_filters_are_anded(t: &mut dyn TestStore) {
    let (f1, f2) = (handle(b"f1"), handle(b"f2"));
    let mut locks = Vec::new();
    for file in [&f1, &f2] {
        for owner in ["o1", "o2"] {
            for client in ["c1", "c2"] {
                for share in ["s1", "s2"] {
                    locks.push(sample_lock(file, owner, client, share));
                }
            }
        }
    }
    seed(t, &[], &locks).await;
    let queries = [
        LockQuery::default(),
        LockQuery::by_file(&f1),
        LockQuery::by_owner("o2"),
        LockQuery::by_client("c1"),
        LockQuery::by_share("s2"),
        LockQuery {
            file_id: Some(f2.clone()),
            owner_id: Some("o1".into()),
            ..Default::default()
        },
        LockQuery {
            client_id: Some("c2".into()),
            share_name: Some("s1".into()),
            ..Default::default()
        },
        LockQuery {
            file_id: Some(f1.clone()),
            owner_id: Some("o2".into()),
            client_id: Some("c1".into()),
            share_name: Some("s2".into()),
            server_epoch_below: None,
        },
        LockQuery {
            file_id: Some(f1.clone()),
            owner_id: Some("nobody".into()),
            ..Default::default()
        },
    ];
    let mut tx = begin(t).await;
    for q in &queries {
        let expected = by_id(locks.iter().filter(|l| q.matches(l)).cloned().collect());
        assert_eq!(
            tx.list_locks(q).await.unwrap(),
            expected,
            "list_locks({q:?})"
        );
    }
}

/// `server_epoch_below` selects locks granted by earlier epochs, alone or with other filters.
pub async fn list_locks_by_epoch_below(t: &mut dyn TestStore) {
    let file = handle(b"f");
    let locks: Vec<PersistedLock> = [0, 1, 2, 3, u64::MAX]
        .into_iter()
        .map(|epoch| PersistedLock {
            server_epoch: epoch,
            ..sample_lock(&file, "o", "c", "s")
        })
        .collect();
    seed(t, &[], &locks).await;
    let mut tx = begin(t).await;
    for below in [0, 1, 3, u64::MAX] {
        let expected = by_id(
            locks
                .iter()
                .filter(|l| l.server_epoch < below)
                .cloned()
                .collect(),
        );
        let q = LockQuery::epoch_below(below);
        assert_eq!(
            tx.list_locks(&q).await.unwrap(),
            expected,
            "server_epoch_below {below}"
        );
        let q = LockQuery {
            client_id: Some("c".into()),
            ..q
        };
        assert_eq!(
            tx.list_locks(&q).await.unwrap(),
            expected,
            "client + server_epoch_below {below}"
        );
    }
}

/// delete_locks_by_client removes exactly that client's locks and counts them.
pub async fn delete_locks_by_client_counts(t: &mut dyn TestStore) {
    let file = handle(b"f");
    let mine: Vec<_> = (0..5)
        .map(|_| sample_lock(&file, "o", "client1", "s"))
        .collect();
    let other = sample_lock(&file, "o", "client10", "s");
    seed(t, &[], &[mine.clone(), vec![other.clone()]].concat()).await;
    let mut tx = begin(t).await;
    assert_eq!(tx.delete_locks_by_client("client1").await.unwrap(), 5);
    assert_eq!(
        tx.delete_locks_by_client("client1").await.unwrap(),
        0,
        "nothing left to delete"
    );
    assert_eq!(tx.delete_locks_by_client("absent").await.unwrap(), 0);
    commit(tx).await;
    assert_eq!(all_locks(t, &LockQuery::default()).await, vec![other]);
}

/// delete_locks_by_file removes exactly that file's locks and counts them.
pub async fn delete_locks_by_file_counts(t: &mut dyn TestStore) {
    let (f, g) = (handle(&[1, 2]), handle(&[1, 2, 3]));
    let on_f: Vec<_> = (0..3)
        .map(|i| sample_lock(&f, &format!("o{i}"), "c", "s"))
        .collect();
    let on_g = sample_lock(&g, "o", "c", "s");
    seed(t, &[], &[on_f, vec![on_g.clone()]].concat()).await;
    let mut tx = begin(t).await;
    assert_eq!(tx.delete_locks_by_file(&f).await.unwrap(), 3);
    assert_eq!(tx.delete_locks_by_file(&f).await.unwrap(), 0);
    commit(tx).await;
    assert_eq!(all_locks(t, &LockQuery::default()).await, vec![on_g]);
}

/// A new store has epoch 0; each committed increment adds exactly one.
pub async fn epoch_starts_at_zero_and_increments(t: &mut dyn TestStore) {
    let mut tx = begin(t).await;
    assert_eq!(
        tx.server_epoch().await.unwrap(),
        0,
        "a new store starts at epoch 0"
    );
    assert_eq!(tx.increment_server_epoch().await.unwrap(), 1);
    assert_eq!(tx.increment_server_epoch().await.unwrap(), 2);
    assert_eq!(tx.server_epoch().await.unwrap(), 2);
    commit(tx).await;
    let mut tx = begin(t).await;
    assert_eq!(tx.server_epoch().await.unwrap(), 2);
    assert_eq!(tx.increment_server_epoch().await.unwrap(), 3);
    commit(tx).await;
    assert_eq!(begin(t).await.server_epoch().await.unwrap(), 3);
}

/// The clean-shutdown flag is true on a new store and keeps what was committed.
pub async fn clean_shutdown_flag_round_trips(t: &mut dyn TestStore) {
    let mut tx = begin(t).await;
    assert!(
        crate::clean_shutdown(&mut *tx).await.unwrap(),
        "a new store counts as cleanly shut down"
    );
    crate::set_clean_shutdown(&mut *tx, false).await.unwrap();
    assert!(
        !crate::clean_shutdown(&mut *tx).await.unwrap(),
        "reads its own write"
    );
    commit(tx).await;
    assert!(!crate::clean_shutdown(&mut *begin(t).await).await.unwrap());
    let mut tx = begin(t).await;
    crate::set_clean_shutdown(&mut *tx, true).await.unwrap();
    tx.rollback().await.unwrap();
    assert!(
        !crate::clean_shutdown(&mut *begin(t).await).await.unwrap(),
        "a rolled-back flag change is gone"
    );
    let mut tx = begin(t).await;
    crate::set_clean_shutdown(&mut *tx, true).await.unwrap();
    commit(tx).await;
    assert!(crate::clean_shutdown(&mut *begin(t).await).await.unwrap());
}

// ---------------------------------------------------------------------------
// Atomicity

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

async fn write_pair_then(t: &dyn TestStore, finish: &str) -> (FileMeta, PersistedLock) {
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

async fn assert_pair_absent(t: &dyn TestStore, file: &FileMeta, lock: &PersistedLock, how: &str) {
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

// ---------------------------------------------------------------------------
// Isolation

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
async fn finish_second(mut tx: Box<dyn MetadataTransaction>, lock: &PersistedLock) -> Result<()> {
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

// ---------------------------------------------------------------------------
// Indexes and values

/// Overwriting a lock with another file, owner, client and share leaves no stale index entry.
pub async fn overwrite_moves_index_entries(t: &mut dyn TestStore) {
    let (old_file, new_file) = (handle(b"old-file"), handle(b"new-file"));
    let before = PersistedLock {
        server_epoch: 1,
        ..sample_lock(&old_file, "old-o", "old-c", "old-s")
    };
    seed(t, &[], std::slice::from_ref(&before)).await;
    let after = PersistedLock {
        file_id: new_file.clone(),
        owner_id: "new-o".into(),
        client_id: "new-c".into(),
        share_name: "new-s".into(),
        server_epoch: 5,
        ..before.clone()
    };
    seed(t, &[], std::slice::from_ref(&after)).await;
    for q in [
        LockQuery::by_file(&old_file),
        LockQuery::by_owner("old-o"),
        LockQuery::by_client("old-c"),
        LockQuery::by_share("old-s"),
        LockQuery::epoch_below(2),
    ] {
        assert!(
            all_locks(t, &q).await.is_empty(),
            "stale index entry found by {q:?}"
        );
    }
    for q in [
        LockQuery::by_file(&new_file),
        LockQuery::by_owner("new-o"),
        LockQuery::by_client("new-c"),
        LockQuery::by_share("new-s"),
        LockQuery::epoch_below(6),
    ] {
        assert_eq!(
            all_locks(t, &q).await,
            vec![after.clone()],
            "missing index entry for {q:?}"
        );
    }
    let mut tx = begin(t).await;
    assert_eq!(
        tx.delete_locks_by_client("old-c").await.unwrap(),
        0,
        "bulk delete by the old client"
    );
    assert_eq!(
        tx.delete_locks_by_file(&old_file).await.unwrap(),
        0,
        "bulk delete by the old file"
    );
    assert_eq!(tx.delete_locks_by_client("new-c").await.unwrap(), 1);
    commit(tx).await;
    assert!(
        all_locks(t, &LockQuery::by_file(&new_file))
            .await
            .is_empty()
    );
}

/// An overwrite that changes one indexed value keeps no stale entry even when
/// the old value equals, byte for byte, another index's kept value (owner
/// `x` → `y` while the client stays `x`).
pub async fn overwrite_keeps_entries_equal_across_indexes(t: &mut dyn TestStore) {
    let file = handle(b"x");
    let first = sample_lock(&file, "x", "x", "x");
    seed(t, &[], std::slice::from_ref(&first)).await;
    let moved = PersistedLock {
        owner_id: "y".into(),
        ..first.clone()
    };
    seed(t, &[], std::slice::from_ref(&moved)).await;
    assert!(
        all_locks(t, &LockQuery::by_owner("x")).await.is_empty(),
        "stale owner entry"
    );
    assert_eq!(
        all_locks(t, &LockQuery::by_client("x")).await,
        vec![moved.clone()]
    );
    let mut tx = begin(t).await;
    tx.delete_lock(moved.id).await.unwrap();
    commit(tx).await;
    for q in [
        LockQuery::by_owner("x"),
        LockQuery::by_owner("y"),
        LockQuery::by_client("x"),
        LockQuery::by_share("x"),
        LockQuery::by_file(&file),
    ] {
        assert!(
            all_locks(t, &q).await.is_empty(),
            "an entry outlived its record: {q:?}"
        );
    }
    let report = t.store().verify().await.expect("verify");
    assert!(report.is_healthy(), "{:?}", report.problems);
}

const AWKWARD_IDS: &[&str] = &[
    "a:b",
    "a/b",
    "/",
    ":",
    "with space",
    " leading",
    "trailing ",
    "ünïcødé-客户端-🔒",
    "client1",
    "client10",
    "client1:0",
    "'; DROP TABLE locks; --",
    "%_*",
    "\\",
    "\u{7f}\u{1}",
];

/// IDs with separators, spaces, quotes and non-ASCII round-trip and are found by every query.
pub async fn ids_with_separators_round_trip(t: &mut dyn TestStore) {
    let locks: Vec<_> = AWKWARD_IDS
        .iter()
        .map(|id| sample_lock(&handle(id.as_bytes()), id, id, id))
        .collect();
    let files: Vec<_> = AWKWARD_IDS
        .iter()
        .map(|id| sample_file(id.as_bytes(), id))
        .collect();
    seed(t, &files, &locks).await;
    let mut tx = begin(t).await;
    for (lock, file) in locks.iter().zip(&files) {
        assert_eq!(tx.get_lock(lock.id).await.unwrap().as_ref(), Some(lock));
        assert_eq!(
            tx.get_file(&file.handle).await.unwrap().as_ref(),
            Some(file)
        );
        assert_eq!(
            tx.list_files(&file.share_name).await.unwrap(),
            vec![file.clone()]
        );
        for q in [
            LockQuery::by_owner(&lock.owner_id),
            LockQuery::by_client(&lock.client_id),
            LockQuery::by_share(&lock.share_name),
            LockQuery::by_file(&lock.file_id),
        ] {
            assert_eq!(
                tx.list_locks(&q).await.unwrap(),
                vec![lock.clone()],
                "{q:?}"
            );
        }
    }
}

/// `client1` never matches `client10`, file `[1,2]` never `[1,2,3]`, in queries and bulk deletes.
pub async fn prefix_ids_stay_apart(t: &mut dyn TestStore) {
    let (short, long) = (handle(&[1, 2]), handle(&[1, 2, 3]));
    let a = sample_lock(&short, "owner1", "client1", "share1");
    let b = sample_lock(&long, "owner10", "client10", "share10");
    let c = sample_lock(&handle(&[1]), "owner", "client", "share");
    seed(t, &[], &[a.clone(), b.clone(), c.clone()]).await;
    let mut tx = begin(t).await;
    assert_eq!(
        tx.list_locks(&LockQuery::by_client("client1"))
            .await
            .unwrap(),
        vec![a.clone()]
    );
    assert_eq!(
        tx.list_locks(&LockQuery::by_owner("owner1")).await.unwrap(),
        vec![a.clone()]
    );
    assert_eq!(
        tx.list_locks(&LockQuery::by_share("share1")).await.unwrap(),
        vec![a.clone()]
    );
    assert_eq!(
        tx.list_locks(&LockQuery::by_file(&short)).await.unwrap(),
        vec![a.clone()]
    );
    assert_eq!(
        tx.list_locks(&LockQuery::by_client("client"))
            .await
            .unwrap(),
        vec![c.clone()]
    );
    assert_eq!(tx.delete_locks_by_client("client1").await.unwrap(), 1);
    assert_eq!(tx.delete_locks_by_file(&handle(&[1])).await.unwrap(), 1);
    commit(tx).await;
    assert_eq!(all_locks(t, &LockQuery::default()).await, vec![b]);
}

/// Every integer field round-trips exactly over its whole range.
pub async fn integer_extremes_round_trip(t: &mut dyn TestStore) {
    let big = [0, 1, 2, (1 << 63) - 1, 1 << 63, u64::MAX - 1, u64::MAX];
    let small = [0, 1, (1 << 31) - 1, 1 << 31, u32::MAX];
    let file = handle(b"f");
    let locks: Vec<_> = big
        .iter()
        .enumerate()
        .map(|(i, &v)| PersistedLock {
            offset: v,
            length: big[(i + 1) % big.len()],
            server_epoch: big[(i + 2) % big.len()],
            ..sample_lock(&file, "o", "c", "s")
        })
        .collect();
    let files: Vec<_> = big
        .iter()
        .enumerate()
        .map(|(i, &v)| FileMeta {
            size: v,
            mode: small[i % small.len()],
            uid: small[(i + 1) % small.len()],
            gid: small[(i + 2) % small.len()],
            nlink: small[(i + 3) % small.len()],
            ..sample_file(&[i as u8], "s")
        })
        .collect();
    seed(t, &files, &locks).await;
    let mut tx = begin(t).await;
    for lock in &locks {
        assert_eq!(tx.get_lock(lock.id).await.unwrap().as_ref(), Some(lock));
    }
    assert_eq!(
        tx.list_locks(&LockQuery::by_file(&file)).await.unwrap(),
        by_id(locks.clone())
    );
    assert_eq!(tx.list_files("s").await.unwrap(), files);
}

/// Timestamps at the edges of the years 1 to 9999 (and around the Unix epoch) round-trip exactly.
pub async fn timestamp_extremes_round_trip(t: &mut dyn TestStore) {
    let stamps = [
        Timestamp::MIN_VALID,
        Timestamp::from_micros(Timestamp::MIN_VALID.as_micros() + 1),
        Timestamp::from_micros(-1),
        Timestamp::from_micros(0),
        Timestamp::from_micros(1),
        Timestamp::from_micros(951_782_400_000_001), // 2000-02-29, leap day
        Timestamp::MAX_VALID,
    ];
    let file = handle(b"f");
    let locks: Vec<_> = stamps
        .iter()
        .map(|&at| PersistedLock {
            acquired_at: at,
            ..sample_lock(&file, "o", "c", "s")
        })
        .collect();
    let files: Vec<_> = stamps
        .iter()
        .enumerate()
        .map(|(i, &at)| FileMeta {
            atime: at,
            mtime: stamps[(i + 1) % stamps.len()],
            ctime: stamps[(i + 2) % stamps.len()],
            ..sample_file(&[i as u8], "s")
        })
        .collect();
    seed(t, &files, &locks).await;
    let mut tx = begin(t).await;
    assert_eq!(
        tx.list_locks(&LockQuery::default()).await.unwrap(),
        by_id(locks)
    );
    assert_eq!(tx.list_files("s").await.unwrap(), files);
}

// ---------------------------------------------------------------------------
// Validation

/// Each rejected input is Invalid, is not written, and the transaction stays usable:
/// a valid write after it commits.
async fn assert_rejected_then_usable(
    t: &dyn TestStore,
    bad_locks: &[(&str, PersistedLock)],
    bad_files: &[(&str, FileMeta)],
) {
    let mut tx = begin(t).await;
    for (what, lock) in bad_locks {
        assert_invalid(what, tx.put_lock(lock).await);
        assert_eq!(
            tx.get_lock(lock.id).await.unwrap(),
            None,
            "{what}: written despite Invalid"
        );
    }
    for (what, file) in bad_files {
        assert_invalid(what, tx.put_file(file).await);
        assert_eq!(
            tx.get_file(&file.handle).await.unwrap(),
            None,
            "{what}: written despite Invalid"
        );
    }
    let good = sample_lock(&handle(b"good"), "o", "c", "s");
    tx.put_lock(&good)
        .await
        .expect("the transaction is usable after Invalid");
    commit(tx).await;
    assert_eq!(all_locks(t, &LockQuery::default()).await, vec![good]);
    assert!(begin(t).await.list_files("s").await.unwrap().is_empty());
}

/// Owner, client and share ids: empty, too long or containing NUL are Invalid;
/// exactly at the limit is fine.
pub async fn lock_id_validation(t: &mut dyn TestStore) {
    let f = handle(b"f");
    let base = || sample_lock(&f, "o", "c", "s");
    let max_id = "x".repeat(crate::validate::MAX_ID_LEN);
    let long_id = "x".repeat(crate::validate::MAX_ID_LEN + 1);
    let bad = [
        (
            "empty owner",
            PersistedLock {
                owner_id: String::new(),
                ..base()
            },
        ),
        (
            "empty client",
            PersistedLock {
                client_id: String::new(),
                ..base()
            },
        ),
        (
            "empty share",
            PersistedLock {
                share_name: String::new(),
                ..base()
            },
        ),
        (
            "1025-byte owner",
            PersistedLock {
                owner_id: long_id.clone(),
                ..base()
            },
        ),
        (
            "1025-byte client",
            PersistedLock {
                client_id: long_id.clone(),
                ..base()
            },
        ),
        (
            "256-byte share",
            PersistedLock {
                share_name: "s".repeat(256),
                ..base()
            },
        ),
        (
            "NUL in owner",
            PersistedLock {
                owner_id: "o\0".into(),
                ..base()
            },
        ),
        (
            "NUL in client",
            PersistedLock {
                client_id: "\0c".into(),
                ..base()
            },
        ),
        (
            "NUL in share",
            PersistedLock {
                share_name: "s\0s".into(),
                ..base()
            },
        ),
        // 1024 bytes of a multi-byte character: the limit counts bytes, not characters.
        (
            "1026-byte owner in 2-byte chars",
            PersistedLock {
                owner_id: "é".repeat(513),
                ..base()
            },
        ),
    ];
    assert_rejected_then_usable(t, &bad, &[]).await;
    let at_limit = PersistedLock {
        owner_id: max_id.clone(),
        client_id: max_id,
        share_name: "s".repeat(255),
        ..base()
    };
    seed(t, &[], std::slice::from_ref(&at_limit)).await;
    assert_eq!(read_lock(t, at_limit.id).await, Some(at_limit));
}

/// File records: empty, over-long or NUL share names are Invalid; handles are
/// 1 to 128 bytes by construction.
pub async fn file_validation(t: &mut dyn TestStore) {
    assert_invalid("empty handle", FileHandle::new(Vec::new()));
    assert_invalid("129-byte handle", FileHandle::new(vec![7; 129]));
    let bad = [
        (
            "empty share",
            FileMeta {
                share_name: String::new(),
                ..sample_file(b"a", "s")
            },
        ),
        (
            "256-byte share",
            FileMeta {
                share_name: "s".repeat(256),
                ..sample_file(b"b", "s")
            },
        ),
        (
            "NUL in share",
            FileMeta {
                share_name: "\0".into(),
                ..sample_file(b"c", "s")
            },
        ),
    ];
    assert_rejected_then_usable(t, &[], &bad).await;
    let at_limit = FileMeta {
        share_name: "s".repeat(255),
        ..sample_file(&[0xff; 128], "s")
    };
    seed(t, std::slice::from_ref(&at_limit), &[]).await;
    assert_eq!(read_file(t, &at_limit.handle).await, Some(at_limit));
}

/// Empty strings in filters and bulk deletes are Invalid; the transaction stays usable.
pub async fn query_validation(t: &mut dyn TestStore) {
    let lock = sample_lock(&handle(b"f"), "o", "c", "s");
    seed(t, &[], std::slice::from_ref(&lock)).await;
    let mut tx = begin(t).await;
    for q in [
        LockQuery::by_owner(""),
        LockQuery::by_client(""),
        LockQuery::by_share(""),
        LockQuery {
            file_id: Some(handle(b"f")),
            client_id: Some(String::new()),
            ..Default::default()
        },
        LockQuery::by_client("c\0"),
        LockQuery::by_owner(&"o".repeat(1025)),
    ] {
        assert_invalid(&format!("list_locks({q:?})"), tx.list_locks(&q).await);
    }
    assert_invalid(
        "delete_locks_by_client(\"\")",
        tx.delete_locks_by_client("").await,
    );
    assert_invalid(
        "delete_locks_by_client(NUL)",
        tx.delete_locks_by_client("\0").await,
    );
    assert_invalid("list_files(\"\")", tx.list_files("").await);
    assert_eq!(
        tx.list_locks(&LockQuery::default()).await.unwrap(),
        vec![lock.clone()]
    );
    assert_eq!(
        tx.delete_locks_by_client("c").await.unwrap(),
        1,
        "usable after Invalid"
    );
    commit(tx).await;
    assert!(all_locks(t, &LockQuery::default()).await.is_empty());
}

/// Timestamps outside the years 1 to 9999 are Invalid on locks and files.
pub async fn timestamp_validation(t: &mut dyn TestStore) {
    let early = Timestamp::from_micros(Timestamp::MIN_VALID.as_micros() - 1);
    let late = Timestamp::from_micros(Timestamp::MAX_VALID.as_micros() + 1);
    let f = handle(b"f");
    let bad_locks = [
        (
            "acquired_at before year 1",
            PersistedLock {
                acquired_at: early,
                ..sample_lock(&f, "o", "c", "s")
            },
        ),
        (
            "acquired_at after 9999",
            PersistedLock {
                acquired_at: late,
                ..sample_lock(&f, "o", "c", "s")
            },
        ),
        (
            "acquired_at i64::MIN",
            PersistedLock {
                acquired_at: Timestamp::from_micros(i64::MIN),
                ..sample_lock(&f, "o", "c", "s")
            },
        ),
    ];
    let bad_files = [
        (
            "atime before year 1",
            FileMeta {
                atime: early,
                ..sample_file(b"a", "s")
            },
        ),
        (
            "mtime after 9999",
            FileMeta {
                mtime: late,
                ..sample_file(b"b", "s")
            },
        ),
        (
            "ctime i64::MAX",
            FileMeta {
                ctime: Timestamp::from_micros(i64::MAX),
                ..sample_file(b"c", "s")
            },
        ),
    ];
    assert_rejected_then_usable(t, &bad_locks, &bad_files).await;
}

// ---------------------------------------------------------------------------
// Persistence (persistent backends only)

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

// ---------------------------------------------------------------------------
// Lock arbitration and recovery (generic code, checked on every backend)

pub(crate) fn request(
    file: &FileHandle,
    owner: &str,
    lock_type: LockType,
    offset: u64,
    length: u64,
) -> PersistedLock {
    PersistedLock {
        lock_type,
        offset,
        length,
        ..sample_lock(file, owner, &format!("client-of-{owner}"), "s")
    }
}

pub(crate) async fn acquire(t: &dyn TestStore, lock: &PersistedLock) -> Acquire {
    let store = t.store();
    store
        .transact(|tx| Box::pin(async move { crate::acquire_lock(tx, lock).await }))
        .await
        .expect("acquire_lock")
}

/// The owner's locks on a file as (type, offset, length), in offset order.
pub(crate) async fn shape(
    t: &dyn TestStore,
    file: &FileHandle,
    owner: &str,
) -> Vec<(LockType, u64, u64)> {
    let mut locks: Vec<_> = all_locks(
        t,
        &LockQuery {
            file_id: Some(file.clone()),
            owner_id: Some(owner.into()),
            ..Default::default()
        },
    )
    .await
    .into_iter()
    .map(|l| (l.lock_type, l.offset, l.length))
    .collect();
    locks.sort_by_key(|&(_, offset, _)| offset);
    locks
}

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
        Acquire::Granted => panic!("an overlapping exclusive lock of another owner was granted"),
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
        Acquire::Granted => panic!("test_lock granted a conflicting lock"),
    }
    commit(tx).await;
    assert_eq!(all_locks(t, &LockQuery::default()).await, before);
}

/// The recovery cycle: new store, crash, reclaim, end of grace, clean shutdown.
pub async fn recovery_cycle(t: &mut dyn TestStore) {
    let store = t.store();
    let first = crate::begin_recovery(&*store).await.unwrap();
    assert!(
        first.previous_shutdown_clean,
        "a brand-new store needs no grace period"
    );
    assert_eq!((first.epoch, first.reclaimable.len()), (1, 0));
    let f = handle(b"f");
    let kept = PersistedLock {
        server_epoch: first.epoch,
        ..request(&f, "a", LockType::Exclusive, 0, 10)
    };
    let lost = PersistedLock {
        server_epoch: first.epoch,
        ..request(&f, "b", LockType::Shared, 100, 0)
    };
    acquire(t, &kept).await;
    acquire(t, &lost).await;
    // Crash: no mark_clean_shutdown.
    let second = crate::begin_recovery(&*store).await.unwrap();
    assert!(!second.previous_shutdown_clean);
    assert_eq!(second.epoch, 2);
    assert_eq!(second.reclaimable, by_id(vec![kept.clone(), lost.clone()]));
    assert_eq!(
        second.clients.iter().cloned().collect::<Vec<_>>(),
        vec!["client-of-a", "client-of-b"]
    );
    let reclaim = |lock: PersistedLock| {
        let store = store.clone();
        async move {
            let lock = &lock;
            store
                .transact(|tx| Box::pin(async move { crate::reclaim_lock(tx, lock).await }))
                .await
                .unwrap()
        }
    };
    let fresh_id = PersistedLock {
        id: Uuid::new_v4(),
        acquired_at: Timestamp::now(),
        server_epoch: 2,
        ..kept.clone()
    };
    assert_eq!(
        reclaim(fresh_id).await,
        Reclaim::Granted,
        "reclaim matches by content, not id"
    );
    for (what, wrong) in [
        (
            "another length",
            PersistedLock {
                length: 11,
                ..kept.clone()
            },
        ),
        (
            "another type",
            PersistedLock {
                lock_type: LockType::Shared,
                ..kept.clone()
            },
        ),
        (
            "another client",
            PersistedLock {
                client_id: "impostor".into(),
                ..kept.clone()
            },
        ),
        (
            "a range nobody held",
            request(&f, "a", LockType::Exclusive, 500, 1),
        ),
    ] {
        assert_eq!(reclaim(wrong).await, Reclaim::NoSuchLock, "{what}");
    }
    assert_eq!(
        read_lock(t, kept.id).await,
        Some(PersistedLock {
            server_epoch: 2,
            ..kept.clone()
        }),
        "restamped in place"
    );
    assert_eq!(
        reclaim(kept.clone()).await,
        Reclaim::Granted,
        "a retransmitted reclaim: already reclaimed in the current epoch"
    );
    assert_eq!(
        all_locks(t, &LockQuery::by_owner("a")).await.len(),
        1,
        "no second record"
    );
    assert_eq!(crate::end_grace(&*store, second.epoch).await.unwrap(), 1);
    assert_eq!(
        all_locks(t, &LockQuery::default()).await,
        vec![PersistedLock {
            server_epoch: 2,
            ..kept
        }]
    );
    crate::mark_clean_shutdown(&*store).await.unwrap();
    let third = crate::begin_recovery(&*store).await.unwrap();
    assert!(third.previous_shutdown_clean);
    assert_eq!(third.epoch, 3);
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
                        Err(e) => panic!("acquire_lock failed: {e}"),
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

trait ExpectDenied {
    fn expect_denied(self);
}

impl ExpectDenied for Acquire {
    #[track_caller]
    fn expect_denied(self) {
        assert!(
            matches!(self, Acquire::Denied { .. }),
            "expected a denial, got {self:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Several nodes on one store

/// Node states and epoch records round-trip, roll back, and validate their ids;
/// the single-node clean flag is node `default`'s.
pub async fn node_state_round_trips(t: &mut dyn TestStore) {
    let mut tx = begin(t).await;
    assert_eq!(tx.get_node("a").await.unwrap(), None);
    assert!(tx.list_nodes().await.unwrap().is_empty());
    assert!(tx.list_epoch_records().await.unwrap().is_empty());
    let nodes = [
        NodeState {
            node_id: "b:1/ü".into(),
            epoch: u64::MAX,
            clean_shutdown: false,
        },
        NodeState {
            node_id: "a".into(),
            epoch: 3,
            clean_shutdown: true,
        },
        NodeState {
            node_id: "a0".into(),
            epoch: 0,
            clean_shutdown: false,
        },
    ];
    for n in &nodes {
        tx.put_node(n).await.unwrap();
    }
    let records = [
        EpochRecord {
            epoch: u64::MAX,
            node_id: "b:1/ü".into(),
            started_at: Timestamp::MAX_VALID,
        },
        EpochRecord {
            epoch: 3,
            node_id: "a".into(),
            started_at: Timestamp::MIN_VALID,
        },
    ];
    for r in &records {
        tx.put_epoch_record(r).await.unwrap();
    }
    for bad in ["", "x\0", &"n".repeat(1025)] {
        assert_invalid(
            "put_node with a bad id",
            tx.put_node(&NodeState::new(bad)).await,
        );
        assert_invalid("get_node with a bad id", tx.get_node(bad).await);
        let record = EpochRecord {
            epoch: 9,
            node_id: bad.to_owned(),
            started_at: T0,
        };
        assert_invalid(
            "put_epoch_record with a bad id",
            tx.put_epoch_record(&record).await,
        );
    }
    let bad_time = EpochRecord {
        epoch: 9,
        node_id: "a".into(),
        started_at: Timestamp::from_micros(i64::MIN),
    };
    assert_invalid(
        "put_epoch_record with a bad time",
        tx.put_epoch_record(&bad_time).await,
    );
    commit(tx).await;
    let mut tx = begin(t).await;
    let mut sorted = nodes.to_vec();
    sorted.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    assert_eq!(tx.list_nodes().await.unwrap(), sorted, "nodes in id order");
    assert_eq!(tx.get_node("a").await.unwrap(), Some(nodes[1].clone()));
    assert_eq!(
        tx.list_epoch_records().await.unwrap(),
        vec![records[1].clone(), records[0].clone()]
    );
    assert!(
        crate::clean_shutdown(&mut *tx).await.unwrap(),
        "no default node yet: clean"
    );
    crate::set_clean_shutdown(&mut *tx, false).await.unwrap();
    assert_eq!(
        tx.get_node(crate::DEFAULT_NODE).await.unwrap(),
        Some(NodeState {
            clean_shutdown: false,
            ..NodeState::new(crate::DEFAULT_NODE)
        })
    );
    tx.put_node(&NodeState {
        epoch: 1,
        ..nodes[1].clone()
    })
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    let mut tx = begin(t).await;
    assert_eq!(
        tx.get_node("a").await.unwrap(),
        Some(nodes[1].clone()),
        "a rolled-back node write"
    );
    assert!(crate::clean_shutdown(&mut *tx).await.unwrap());
}

/// Every node as (id, epoch, clean flag), in id order.
async fn node_summary(tx: &mut dyn MetadataTransaction) -> Vec<(String, u64, bool)> {
    let nodes = tx.list_nodes().await.expect("list_nodes");
    nodes
        .into_iter()
        .map(|n| (n.node_id, n.epoch, n.clean_shutdown))
        .collect()
}

/// Every epoch record as (epoch, node), in epoch order.
async fn epoch_owners(tx: &mut dyn MetadataTransaction) -> Vec<(u64, String)> {
    let records = tx.list_epoch_records().await.expect("list_epoch_records");
    records.into_iter().map(|r| (r.epoch, r.node_id)).collect()
}

async fn take(t: &dyn TestStore, file: &FileHandle, owner: &str, epoch: u64) -> PersistedLock {
    let lock = PersistedLock {
        server_epoch: epoch,
        ..request(file, owner, LockType::Exclusive, 0, 0)
    };
    assert_eq!(
        acquire(t, &lock).await,
        Acquire::Granted,
        "{owner} locks {file}"
    );
    lock
}

/// Nodes A and B share a store: A's crash and recovery touch only A's locks;
/// A's client fails over and reclaims through B; B restarts cleanly.
pub async fn nodes_recover_independently(t: &mut dyn TestStore) {
    let store = t.store();
    let a1 = crate::begin_recovery_as(&*store, "node-a").await.unwrap();
    let b1 = crate::begin_recovery_as(&*store, "node-b").await.unwrap();
    assert!(
        a1.previous_shutdown_clean && b1.previous_shutdown_clean,
        "first starts are clean"
    );
    assert_ne!(a1.epoch, b1.epoch, "every incarnation gets its own epoch");
    let a_locks = vec![
        take(t, &handle(b"fa1"), "a-owner1", a1.epoch).await,
        take(t, &handle(b"fa2"), "a-owner2", a1.epoch).await,
    ];
    let b_locks = [take(t, &handle(b"fb1"), "b-owner1", b1.epoch).await];
    // A crashes (no clean mark) and restarts.
    let a2 = crate::begin_recovery_as(&*store, "node-a").await.unwrap();
    assert!(!a2.previous_shutdown_clean);
    assert!(a2.epoch > b1.epoch);
    assert_eq!(
        a2.reclaimable,
        by_id(a_locks.clone()),
        "A's reclaimable set is exactly A's old locks"
    );
    assert_eq!(a2.clients.len(), 2);
    // A's first client reclaims through A; the second fails over and reclaims through B.
    let reclaim_as = |node: &'static str, lock: PersistedLock| {
        let store = store.clone();
        async move {
            let lock = &lock;
            store
                .transact(|tx| {
                    Box::pin(async move { crate::reclaim_lock_as(tx, node, lock).await })
                })
                .await
                .unwrap()
        }
    };
    assert_eq!(
        reclaim_as("node-a", b_locks[0].clone()).await,
        Reclaim::NoSuchLock,
        "B's live epoch: its locks are not reclaimable"
    );
    assert_eq!(
        reclaim_as("node-b", b_locks[0].clone()).await,
        Reclaim::Granted,
        "the holder's own lock in its node's current epoch: a retransmit, nothing written"
    );
    assert_eq!(
        read_lock(t, b_locks[0].id).await.as_ref(),
        Some(&b_locks[0])
    );
    assert_eq!(
        reclaim_as("node-a", a_locks[0].clone()).await,
        Reclaim::Granted
    );
    assert_eq!(
        reclaim_as("node-b", a_locks[1].clone()).await,
        Reclaim::Granted,
        "fail-over reclaim"
    );
    assert_eq!(
        read_lock(t, a_locks[0].id).await.unwrap().server_epoch,
        a2.epoch
    );
    assert_eq!(
        read_lock(t, a_locks[1].id).await.unwrap().server_epoch,
        b1.epoch,
        "restamped with B's epoch"
    );
    // Another crash of A: its grace sweep must spare B's live locks, including the failed-over one.
    let orphan = take(t, &handle(b"fa3"), "a-owner3", a2.epoch).await;
    let a3 = crate::begin_recovery_as(&*store, "node-a").await.unwrap();
    assert_eq!(
        a3.reclaimable.iter().map(|l| l.id).collect::<Vec<_>>(),
        by_id(vec![a_locks[0].clone(), orphan.clone()])
            .iter()
            .map(|l| l.id)
            .collect::<Vec<_>>()
    );
    assert_eq!(
        crate::end_grace_as(&*store, "node-a", a3.epoch)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        crate::end_grace_as(&*store, "node-b", b1.epoch + 100)
            .await
            .unwrap(),
        0,
        "B has no dead epochs"
    );
    let left = all_locks(t, &LockQuery::default()).await;
    assert_eq!(
        left.len(),
        2,
        "B's own and the failed-over lock survive: {left:?}"
    );
    assert!(left.iter().all(|l| l.server_epoch == b1.epoch));
    // B shuts down cleanly and restarts.
    crate::mark_clean_shutdown_as(&*store, "node-b")
        .await
        .unwrap();
    let b2 = crate::begin_recovery_as(&*store, "node-b").await.unwrap();
    assert!(b2.previous_shutdown_clean);
    assert_eq!(
        b2.reclaimable.len(),
        2,
        "B's previous epoch is dead now: its locks are reclaimable"
    );
    let mut tx = begin(t).await;
    let nodes = node_summary(&mut *tx).await;
    assert_eq!(
        nodes,
        vec![
            ("node-a".into(), a3.epoch, false),
            ("node-b".into(), b2.epoch, false)
        ]
    );
    let handed = epoch_owners(&mut *tx).await;
    assert_eq!(handed.len(), 5, "one record per incarnation: {handed:?}");
    assert_eq!(
        tx.server_epoch().await.unwrap(),
        b2.epoch,
        "the counter stays global"
    );
    assert_invalid(
        "begin_recovery_as(\"\")",
        crate::begin_recovery_as(&*store, "").await,
    );
}

/// Several nodes recovering at the same moment get distinct epochs and never sweep each other.
pub async fn simultaneous_node_recoveries_stay_apart(t: &mut dyn TestStore) {
    const NODES: usize = 6;
    let store = t.store();
    let mut firsts = Vec::new();
    for n in 0..NODES {
        let r = crate::begin_recovery_as(&*store, &format!("node-{n}"))
            .await
            .unwrap();
        take(
            t,
            &handle(format!("f{n}").as_bytes()),
            &format!("o{n}"),
            r.epoch,
        )
        .await;
        firsts.push(r.epoch);
    }
    let tasks: Vec<_> = (0..NODES)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let node = format!("node-{n}");
                let r = crate::begin_recovery_as(&*store, &node)
                    .await
                    .expect("begin_recovery_as");
                let swept = crate::end_grace_as(&*store, &node, r.epoch)
                    .await
                    .expect("end_grace_as");
                (r, swept)
            })
        })
        .collect();
    let mut epochs = BTreeSet::new();
    for (n, task) in tasks.into_iter().enumerate() {
        let (r, swept) = task.await.expect("task");
        assert_eq!(
            r.reclaimable.len(),
            1,
            "node-{n} sees exactly its own old lock"
        );
        assert_eq!(r.reclaimable[0].owner_id, format!("o{n}"));
        assert_eq!(swept, 1, "node-{n} swept exactly its own old lock");
        assert!(epochs.insert(r.epoch), "epoch {} handed out twice", r.epoch);
    }
    assert!(epochs.iter().all(|e| !firsts.contains(e)));
    drop(store);
    assert!(all_locks(t, &LockQuery::default()).await.is_empty());
}

/// Node states and epoch records survive reopen.
pub async fn nodes_survive_reopen(t: &mut dyn TestStore) {
    let a = crate::begin_recovery_as(&*t.store(), "node-a")
        .await
        .unwrap();
    crate::mark_clean_shutdown_as(&*t.store(), "node-a")
        .await
        .unwrap();
    let b = crate::begin_recovery_as(&*t.store(), "node-b")
        .await
        .unwrap();
    t.reopen().await.expect("reopen");
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

// ---------------------------------------------------------------------------
// Walking a whole store

/// Pages of files and locks walk everything exactly once, in key order.
pub async fn pages_walk_everything(t: &mut dyn TestStore) {
    let files: Vec<_> = (0..23u8)
        .map(|i| sample_file(&[i % 5, i], &format!("share{}", i % 3)))
        .collect();
    let locks: Vec<_> = (0..23u8)
        .map(|i| sample_lock(&files[i as usize].handle, "o", "c", "s"))
        .collect();
    seed(t, &files, &locks).await;
    let mut tx = begin(t).await;
    let mut walked_files = Vec::new();
    let mut after: Option<FileHandle> = None;
    loop {
        let page = tx.list_files_page(after.as_ref(), 7).await.unwrap();
        assert!(page.len() <= 7);
        walked_files.extend(page.iter().cloned());
        match page.last() {
            Some(last) => after = Some(last.handle.clone()),
            None => break,
        }
    }
    let mut expected = files.clone();
    expected.sort_by(|a, b| a.handle.cmp(&b.handle));
    assert_eq!(walked_files, expected);
    let mut walked_locks = Vec::new();
    let mut after = None;
    loop {
        let page = tx.list_locks_page(after, 5).await.unwrap();
        walked_locks.extend(page.iter().cloned());
        match page.last() {
            Some(last) => after = Some(last.id),
            None => break,
        }
    }
    assert_eq!(walked_locks, by_id(locks.clone()));
    let middle = by_id(locks.clone())[10].id;
    assert_eq!(
        tx.list_locks_page(Some(middle), 100).await.unwrap().len(),
        12,
        "strictly after"
    );
    assert_invalid("list_locks_page limit 0", tx.list_locks_page(None, 0).await);
    assert_invalid("list_files_page limit 0", tx.list_files_page(None, 0).await);
    assert_eq!(
        tx.list_locks_page(Some(Uuid::max()), 3).await.unwrap(),
        vec![]
    );
    drop(tx);
    let report = t.store().verify().await.expect("verify");
    assert!(
        report.is_healthy(),
        "a healthy store: {:?}",
        report.problems
    );
    assert_eq!((report.files, report.locks), (23, 23));
}
