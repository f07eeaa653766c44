//! [`LockStore`] on PostgreSQL: the `locks` table.

use std::collections::HashSet;

use async_trait::async_trait;
use sea_orm::{ColumnTrait, DeleteMany, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::entity::locks;
use super::rows::{
    LOCKS_PER_INSERT, lock_condition, lock_from_row, lock_row, lock_upsert, page_size, select_locks,
};
use super::tx::{DeferIn, PgTx};
use crate::error::{Error, Result};
use crate::file::FileHandle;
use crate::lock::{LockQuery, LockStore, PersistedLock};
use crate::validate;

/// Ids per statement of [`LockStore::delete_locks`]: one bind parameter
/// each, far below PostgreSQL's 65,535 per statement.
const IDS_PER_DELETE: usize = 10_000;

#[async_trait]
impl LockStore for PgTx {
    async fn put_lock(&mut self, lock: &PersistedLock) -> Result<()> {
        let op = "put_lock";
        self.usable(op)?;
        validate::lock(lock)?;
        locks::Entity::insert(lock_row(lock)?)
            .on_conflict(lock_upsert())
            .defer_in(self);
        Ok(())
    }

    /// Multi-row `INSERT … ON CONFLICT (id) DO UPDATE`, [`LOCKS_PER_INSERT`]
    /// rows per statement. PostgreSQL refuses to update one row twice in a
    /// statement, so only the last lock of each id is sent (the same result
    /// as writing them in order).
    async fn put_locks(&mut self, locks: &[PersistedLock]) -> Result<()> {
        let op = "put_locks";
        self.usable(op)?;
        let mut rows = Vec::with_capacity(locks.len());
        let mut seen = HashSet::with_capacity(locks.len());
        for lock in locks.iter().rev() {
            validate::lock(lock)?;
            if seen.insert(lock.id) {
                rows.push(lock_row(lock)?);
            }
        }
        rows.reverse();
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            locks::Entity::insert_many(rows.by_ref().take(LOCKS_PER_INSERT))
                .on_conflict(lock_upsert())
                .defer_in(self);
        }
        Ok(())
    }

    async fn get_lock(&mut self, id: Uuid) -> Result<Option<PersistedLock>> {
        let op = "get_lock";
        self.usable(op)?;
        let row = select_locks()
            .filter(locks::Column::Id.eq(id))
            .one(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?;
        row.map(lock_from_row).transpose()
    }

    async fn delete_lock(&mut self, id: Uuid) -> Result<()> {
        let op = "delete_lock";
        self.usable(op)?;
        let deleted = locks::Entity::delete_many()
            .filter(locks::Column::Id.eq(id))
            .exec(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?;
        if deleted.rows_affected == 0 {
            return Err(Error::LockNotFound(id));
        }
        Ok(())
    }

    async fn list_locks(&mut self, query: &LockQuery) -> Result<Vec<PersistedLock>> {
        let op = "list_locks";
        self.usable(op)?;
        validate::query(query)?;
        // UUIDs sort bytewise in PostgreSQL, like `Uuid`'s `Ord`.
        select_locks()
            .filter(lock_condition(query))
            .order_by_asc(locks::Column::Id)
            .all(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?
            .into_iter()
            .map(lock_from_row)
            .collect()
    }

    async fn list_locks_page(
        &mut self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<PersistedLock>> {
        let op = "list_locks_page";
        self.usable(op)?;
        validate::page_limit(limit)?;
        let mut query = select_locks();
        if let Some(after) = after {
            query = query.filter(locks::Column::Id.gt(after));
        }
        query
            .order_by_asc(locks::Column::Id)
            .limit(page_size(limit))
            .all(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?
            .into_iter()
            .map(lock_from_row)
            .collect()
    }

    async fn delete_locks_by_client(&mut self, client_id: &str) -> Result<u64> {
        let op = "delete_locks_by_client";
        self.usable(op)?;
        validate::id("client_id", client_id)?;
        let deleted = locks::Entity::delete_many()
            .filter(locks::Column::ClientId.eq(client_id))
            .exec(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?;
        Ok(deleted.rows_affected)
    }

    async fn delete_locks_by_file(&mut self, file: &FileHandle) -> Result<u64> {
        let op = "delete_locks_by_file";
        self.usable(op)?;
        validate::file_handle(file)?;
        let deleted = locks::Entity::delete_many()
            .filter(locks::Column::FileId.eq(file.as_bytes()))
            .exec(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?;
        Ok(deleted.rows_affected)
    }

    /// One `DELETE … WHERE id IN (…)` per [`IDS_PER_DELETE`] ids, each id a
    /// bind parameter; repeated ids are sent once, missing ones match nothing.
    async fn delete_locks(&mut self, ids: &[Uuid]) -> Result<u64> {
        let op = "delete_locks";
        self.usable(op)?;
        let mut deleted = 0;
        for delete in deletes_of(ids) {
            deleted += delete
                .exec(&self.tx)
                .await
                .map_err(|e| self.fail(op, e))?
                .rows_affected;
        }
        Ok(deleted)
    }

    /// The same `DELETE … WHERE id IN (…)` statements as `delete_locks`,
    /// kept and sent with the transaction's next message.
    async fn delete_locks_uncounted(&mut self, ids: &[Uuid]) -> Result<()> {
        self.usable("delete_locks_uncounted")?;
        for delete in deletes_of(ids) {
            delete.defer_in(self);
        }
        Ok(())
    }
}

/// The `DELETE … WHERE id IN (…)` statements for `ids`, [`IDS_PER_DELETE`]
/// ids each, every id once.
fn deletes_of(ids: &[Uuid]) -> Vec<DeleteMany<locks::Entity>> {
    let mut seen = HashSet::with_capacity(ids.len());
    let unique: Vec<Uuid> = ids.iter().copied().filter(|id| seen.insert(*id)).collect();
    unique
        .chunks(IDS_PER_DELETE)
        .map(|chunk| {
            locks::Entity::delete_many().filter(locks::Column::Id.is_in(chunk.iter().copied()))
        })
        .collect()
}
