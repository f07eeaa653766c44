//! Sample data and the helpers the checks share: a handle, a file, a lock,
//! one-transaction reads and seeds, the error matchers and the arbiter's
//! request/acquire shorthands.

use uuid::Uuid;

use super::TestStore;
use crate::{
    Acquire, Error, FileHandle, FileKind, FileMeta, LockQuery, LockType, MetadataStoreExt,
    MetadataTransaction, PersistedLock, Result, ShareReservation, Timestamp,
};

pub(super) const T0: Timestamp = Timestamp::from_micros(1_700_000_000_123_456);

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
        flavor: crate::LockFlavor::Posix,
    }
}

pub(super) fn by_id(mut locks: Vec<PersistedLock>) -> Vec<PersistedLock> {
    locks.sort_by_key(|l| l.id);
    locks
}

pub(super) async fn begin(t: &dyn TestStore) -> Box<dyn MetadataTransaction> {
    t.store().begin().await.expect("begin")
}

pub(super) async fn commit(tx: Box<dyn MetadataTransaction>) {
    tx.commit().await.expect("commit");
}

/// Commits `files` and `locks` in one transaction.
pub(super) async fn seed(t: &dyn TestStore, files: &[FileMeta], locks: &[PersistedLock]) {
    let mut tx = begin(t).await;
    for f in files {
        tx.put_file(f).await.expect("put_file");
    }
    for l in locks {
        tx.put_lock(l).await.expect("put_lock");
    }
    commit(tx).await;
}

pub(super) async fn read_file(t: &dyn TestStore, h: &FileHandle) -> Option<FileMeta> {
    begin(t).await.get_file(h).await.expect("get_file")
}

pub(super) async fn read_lock(t: &dyn TestStore, id: Uuid) -> Option<PersistedLock> {
    begin(t).await.get_lock(id).await.expect("get_lock")
}

pub(super) async fn all_locks(t: &dyn TestStore, q: &LockQuery) -> Vec<PersistedLock> {
    begin(t).await.list_locks(q).await.expect("list_locks")
}

pub(super) fn assert_invalid<T: std::fmt::Debug>(what: &str, r: Result<T>) {
    assert!(
        matches!(r, Err(Error::Invalid(_))),
        "{what}: expected Error::Invalid, got {r:?}"
    );
}

pub(super) fn assert_conflict<T: std::fmt::Debug>(what: &str, r: &Result<T>) {
    assert!(
        matches!(r, Err(e @ Error::Conflict(_)) if e.is_retryable()),
        "{what}: expected a retryable Error::Conflict, got {r:?}"
    );
}

pub(super) fn request(
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

pub(super) async fn acquire(t: &dyn TestStore, lock: &PersistedLock) -> Acquire {
    let store = t.store();
    store
        .transact(|tx| Box::pin(async move { crate::acquire_lock(tx, lock).await }))
        .await
        .expect("acquire_lock")
}

/// The owner's locks on a file as (type, offset, length), in offset order.
pub(super) async fn shape(
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

pub(super) trait ExpectDenied {
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
