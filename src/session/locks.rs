//! A session's lock operations (the epoch stamped by the session) and
//! [`require_lock`].

use crate::error::{Error, Result};
use crate::file::FileHandle;
use crate::lock::arbiter::{Acquire, release_range, test_lock};
use crate::lock::reclaim::Reclaim;
use crate::lock::{ByteRange, LockFlavor, LockOwner, LockQuery, LockType, PersistedLock};
use crate::tx::MetadataTransaction;
use crate::validate;

use super::{NodeSession, SessionTx};

impl SessionTx<'_> {
    /// `lock` stamped with the session's epoch (whatever epoch it carried).
    fn stamped(&self, lock: &PersistedLock) -> PersistedLock {
        PersistedLock {
            server_epoch: self.epoch(),
            ..lock.clone()
        }
    }

    /// [`acquire_lock`](crate::acquire_lock) of `lock` stamped with the session's epoch (the
    /// request's own `server_epoch` is ignored), courteous to clients whose
    /// lease lapsed: when the only locks in the way belong to other clients
    /// with a record not renewed within the session's
    /// [`lease`](NodeSession::lease), those locks are deleted, the clients'
    /// records marked expired, and the request granted, in this transaction.
    pub async fn acquire(&mut self, lock: &PersistedLock) -> Result<Acquire> {
        let lock = self.stamped(lock);
        let lease = self.session.lease;
        crate::client::acquire_courteous(self.raw(), &lock, lease).await
    }

    /// [`test_lock`] of `lock` as this session would grant it; writes nothing.
    pub async fn test(&mut self, lock: &PersistedLock) -> Result<Acquire> {
        let lock = self.stamped(lock);
        test_lock(self.raw(), &lock).await
    }

    /// [`release_range`]: unlocks `range` of `owner`'s POSIX locks on `file`.
    pub async fn release(
        &mut self,
        file: &FileHandle,
        owner: &LockOwner,
        range: ByteRange,
    ) -> Result<u64> {
        release_range(self.raw(), file, owner, range).await
    }

    /// Reclaims `lock` during a grace period, restamped with the session's
    /// epoch: [`SessionTx::reclaim_as`] without a principal. The client must
    /// have a record in this session's recovery set
    /// ([`may_reclaim`](crate::may_reclaim), else [`Reclaim::NotAllowed`]);
    /// then the lock rules are [`reclaim_lock`](crate::reclaim_lock)'s.
    pub async fn reclaim(&mut self, lock: &PersistedLock) -> Result<Reclaim> {
        self.reclaim_as(lock, None).await
    }

    /// [`require_lock`] in this transaction.
    pub async fn require_lock(
        &mut self,
        file: &FileHandle,
        owner: &LockOwner,
        range: ByteRange,
        write: bool,
    ) -> Result<()> {
        require_lock(self.raw(), file, owner, range, write).await
    }
}

impl NodeSession {
    /// [`SessionTx::acquire`] in a transaction of its own.
    pub async fn acquire(&self, lock: &PersistedLock) -> Result<Acquire> {
        self.transact(|tx| Box::pin(async move { tx.acquire(lock).await }))
            .await
    }

    /// [`SessionTx::test`] in a transaction of its own.
    pub async fn test(&self, lock: &PersistedLock) -> Result<Acquire> {
        self.transact(|tx| Box::pin(async move { tx.test(lock).await }))
            .await
    }

    /// [`SessionTx::release`] in a transaction of its own.
    pub async fn release(
        &self,
        file: &FileHandle,
        owner: &LockOwner,
        range: ByteRange,
    ) -> Result<u64> {
        self.transact(|tx| Box::pin(async move { tx.release(file, owner, range).await }))
            .await
    }

    /// [`SessionTx::reclaim`] in a transaction of its own.
    pub async fn reclaim(&self, lock: &PersistedLock) -> Result<Reclaim> {
        self.transact(|tx| Box::pin(async move { tx.reclaim(lock).await }))
            .await
    }
}

/// Checks, in `tx`, that `owner` (its `owner_id` and `client_id`) holds locks
/// on `file` covering all of `range` (length 0: to the end of the file):
/// exclusive ones when `write`, of either type otherwise. Several adjacent
/// locks of the owner may cover it together. [`Error::LockNotHeld`] when they
/// do not (the lock was released, swept after a grace period, or never
/// taken); the transaction stays usable, and the host's write that relied on
/// the lock fails with it in the same transaction. Windows zero-byte locks
/// cover nothing.
///
/// The read of the file's locks is part of the transaction, so a concurrent
/// unlock, sweep or takeover of the lock conflicts with a write made under it.
pub async fn require_lock(
    tx: &mut (dyn MetadataTransaction + '_),
    file: &FileHandle,
    owner: &LockOwner,
    range: ByteRange,
    write: bool,
) -> Result<()> {
    validate::file_handle(file)?;
    validate::id("owner_id", &owner.owner_id)?;
    validate::id("client_id", &owner.client_id)?;
    let held = tx.list_locks(&LockQuery::by_file(file)).await?;
    let mut pieces: Vec<(u64, u64)> = held
        .iter()
        .filter(|l| {
            l.owner_id == owner.owner_id
                && l.client_id == owner.client_id
                && (!write || l.lock_type == LockType::Exclusive)
                && !(l.flavor == LockFlavor::Windows && l.length == 0)
        })
        .map(|l| (l.offset, l.range().last()))
        .collect();
    pieces.sort_unstable();
    // Sweep from the range's first byte: each piece that starts at or before
    // the next uncovered byte extends the covered prefix.
    let mut next = range.offset;
    let last = range.last();
    for (start, end) in pieces {
        if start > next {
            break;
        }
        if end >= last {
            return Ok(());
        }
        next = next.max(end + 1);
    }
    Err(Error::LockNotHeld {
        file: file.clone(),
        owner: owner.owner_id.clone(),
        client: owner.client_id.clone(),
        offset: range.offset,
        length: range.length,
        write,
    })
}
