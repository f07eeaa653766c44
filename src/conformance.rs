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

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use crate::{
    Error, FileHandle, FileKind, FileMeta, LockQuery, LockType, MetadataStore, MetadataStoreExt,
    MetadataTransaction, PersistedLock, Result, ShareReservation, Timestamp,
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
        Err(Error::Invalid("this backend keeps nothing across reopen".into()))
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
            ids_with_separators_round_trip, prefix_ids_stay_apart, integer_extremes_round_trip,
            timestamp_extremes_round_trip, lock_id_validation, file_validation,
            query_validation, timestamp_validation,
        );
    };
}

/// Generates the reopen checks for a persistent backend (fjall, PostgreSQL).
#[macro_export]
macro_rules! persistence_tests {
    ($harness:expr) => {
        $crate::__conformance_each!($harness;
            reopen_keeps_files_locks_and_indexes, reopen_keeps_rolled_back_writes_out,
            reopen_keeps_epoch_and_flag,
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

fn by_id(mut locks: Vec<PersistedLock>) -> Vec<PersistedLock> {
    locks.sort_by_key(|l| l.id);
    locks
}

async fn begin(t: &dyn TestStore) -> Box<dyn MetadataTransaction> {
    t.store().begin().await.expect("begin")
}

async fn commit(tx: Box<dyn MetadataTransaction>) {
    tx.commit().await.expect("commit");
}

/// Commits `files` and `locks` in one transaction.
async fn seed(t: &dyn TestStore, files: &[FileMeta], locks: &[PersistedLock]) {
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

async fn read_lock(t: &dyn TestStore, id: Uuid) -> Option<PersistedLock> {
    begin(t).await.get_lock(id).await.expect("get_lock")
}

async fn all_locks(t: &dyn TestStore, q: &LockQuery) -> Vec<PersistedLock> {
    begin(t).await.list_locks(q).await.expect("list_locks")
}

fn assert_invalid<T: std::fmt::Debug>(what: &str, r: Result<T>) {
    assert!(matches!(r, Err(Error::Invalid(_))), "{what}: expected Error::Invalid, got {r:?}");
}

fn assert_conflict<T: std::fmt::Debug>(what: &str, r: &Result<T>) {
    assert!(
        matches!(r, Err(e @ Error::Conflict(_)) if e.is_retryable()),
        "{what}: expected a retryable Error::Conflict, got {r:?}"
    );
}
