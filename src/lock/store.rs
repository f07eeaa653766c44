//! The [`LockStore`] trait: the lock family's operations in a transaction.

use async_trait::async_trait;
use uuid::Uuid;

use super::model::{LockQuery, PersistedLock};
use crate::error::Result;
use crate::file::FileHandle;

/// Lock-state operations of a transaction.
#[async_trait]
pub trait LockStore: Send {
    /// Inserts or replaces the lock with `lock.id`.
    async fn put_lock(&mut self, lock: &PersistedLock) -> Result<()>;
    /// Inserts or replaces many locks, as [`put_lock`](LockStore::put_lock)
    /// of each in slice order would (a later lock with the same id wins).
    /// Every lock is validated before anything is written, so an
    /// [`Error::Invalid`](crate::Error::Invalid) leaves the transaction as it was.
    ///
    /// For bulk loads: backends may write the batch in fewer round trips
    /// (PostgreSQL sends multi-row `INSERT`s); the default calls `put_lock`
    /// for each.
    async fn put_locks(&mut self, locks: &[PersistedLock]) -> Result<()> {
        for lock in locks {
            crate::validate::lock(lock)?;
        }
        for lock in locks {
            self.put_lock(lock).await?;
        }
        Ok(())
    }
    /// The lock with this id, if stored.
    async fn get_lock(&mut self, id: Uuid) -> Result<Option<PersistedLock>>;
    /// Deletes the lock; [`Error::LockNotFound`](crate::Error::LockNotFound) when it is not stored.
    async fn delete_lock(&mut self, id: Uuid) -> Result<()>;
    /// Every lock that matches `query`, in id order.
    async fn list_locks(&mut self, query: &LockQuery) -> Result<Vec<PersistedLock>>;
    /// One page of all locks: those with an id above `after` (from the first
    /// when `None`), in id order, at most `limit` (≥ 1). For walking a whole
    /// store without holding it in memory.
    async fn list_locks_page(
        &mut self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<PersistedLock>>;
    /// Deletes every lock of a client; returns how many.
    async fn delete_locks_by_client(&mut self, client_id: &str) -> Result<u64>;
    /// Deletes every lock on a file; returns how many.
    async fn delete_locks_by_file(&mut self, file: &FileHandle) -> Result<u64>;
    /// Deletes the locks with these ids; ids that are not stored (or repeat)
    /// are skipped. Returns how many locks were deleted. Backends may do it in
    /// fewer round trips; the default reads and deletes each.
    async fn delete_locks(&mut self, ids: &[Uuid]) -> Result<u64> {
        let mut deleted = 0;
        for &id in ids {
            if self.get_lock(id).await?.is_some() {
                self.delete_lock(id).await?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }
    /// Deletes the locks with these ids like [`delete_locks`](Self::delete_locks),
    /// without saying how many: for ids the transaction has just read (the
    /// lock arbiter's replaced pieces), whose count the caller knows. Without
    /// an answer to wait for, a backend may send the delete with its next
    /// message (PostgreSQL does); reads in the transaction see it either
    /// way. The default calls `delete_locks`.
    async fn delete_locks_uncounted(&mut self, ids: &[Uuid]) -> Result<()> {
        self.delete_locks(ids).await.map(|_| ())
    }
}
