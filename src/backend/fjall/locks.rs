//! The locks family: [`PersistedLock`] records in `locks`, keyed by id, with
//! five indexes: `locks_by_file`, `locks_by_owner`, `locks_by_client`,
//! `locks_by_share` (`len16(value) | id16`) and `locks_by_epoch`
//! (`be64(server_epoch) | id16`).

use std::ops::Bound;

use async_trait::async_trait;
use fjall::OptimisticTxKeyspace;
use uuid::Uuid;

use super::Keyspaces;
use super::codec::{self, Fault};
use super::keys::{self, names};
use super::table::{Family, Index, Table};
use super::tx::FjallTx;
use crate::error::{Error, Result};
use crate::file::FileHandle;
use crate::lock::{LockQuery, LockStore, PersistedLock};
use crate::validate;

/// The locks family.
pub(super) struct Locks;

/// `locks_by_file`: a file's locks, in id order.
const BY_FILE: Index<PersistedLock> = Index {
    name: names::LOCKS_BY_FILE,
    layout: "len16(file handle) | id16",
    keyspace: |ks| &ks.locks_by_file,
    entry: |lock| keys::lock_index(lock.file_id.as_bytes(), lock.id),
    target: keys::after_len16,
};

/// `locks_by_owner`: an owner's locks, in id order.
const BY_OWNER: Index<PersistedLock> = Index {
    name: names::LOCKS_BY_OWNER,
    layout: "len16(owner_id) | id16",
    keyspace: |ks| &ks.locks_by_owner,
    entry: |lock| keys::lock_index(lock.owner_id.as_bytes(), lock.id),
    target: keys::after_len16,
};

/// `locks_by_client`: a client's locks, in id order.
const BY_CLIENT: Index<PersistedLock> = Index {
    name: names::LOCKS_BY_CLIENT,
    layout: "len16(client_id) | id16",
    keyspace: |ks| &ks.locks_by_client,
    entry: |lock| keys::lock_index(lock.client_id.as_bytes(), lock.id),
    target: keys::after_len16,
};

/// `locks_by_share`: a share's locks, in id order.
const BY_SHARE: Index<PersistedLock> = Index {
    name: names::LOCKS_BY_SHARE,
    layout: "len16(share_name) | id16",
    keyspace: |ks| &ks.locks_by_share,
    entry: |lock| keys::lock_index(lock.share_name.as_bytes(), lock.id),
    target: keys::after_len16,
};

/// `locks_by_epoch`: locks in epoch order ("granted before epoch E" is a range).
const BY_EPOCH: Index<PersistedLock> = Index {
    name: names::LOCKS_BY_EPOCH,
    layout: "be64(server_epoch) | id16",
    keyspace: |ks| &ks.locks_by_epoch,
    entry: |lock| Ok(keys::lock_by_epoch(lock.server_epoch, lock.id)),
    target: keys::after_be64,
};

impl Family for Locks {
    type Key = Uuid;
    type Record = PersistedLock;
    const NAME: &'static str = names::LOCKS;
    const RECORD: &'static str = "lock";
    const PREFIX: &'static [u8] = b"";
    const KEY_RULE: &'static str = "a lock key must be a 16-byte id";
    const INDEXES: &'static [Index<PersistedLock>] =
        &[BY_FILE, BY_OWNER, BY_CLIENT, BY_SHARE, BY_EPOCH];

    fn keyspace(ks: &Keyspaces) -> &OptimisticTxKeyspace {
        &ks.locks
    }
    fn key_of(lock: &PersistedLock) -> Uuid {
        lock.id
    }
    fn encode_key(id: &Uuid) -> Vec<u8> {
        keys::lock(*id).to_vec()
    }
    fn decode_key(raw: &[u8]) -> Option<Uuid> {
        keys::lock_id(raw).ok()
    }
    fn encode(lock: &PersistedLock) -> Result<Vec<u8>> {
        codec::encode_lock(lock)
    }
    fn decode(id: &Uuid, _raw: &[u8], value: &[u8]) -> Result<PersistedLock, Fault> {
        codec::decode_lock(*id, value)
    }
}

impl FjallTx {
    /// Every stored lock matching `query`, in id order, read through its most
    /// selective index (the same choice as the memory backend). Every listing
    /// is a scan of an index prefix or range, so a concurrent insert into it
    /// conflicts at commit (see the module docs on phantoms).
    fn matching_locks(&self, query: &LockQuery) -> Result<Vec<PersistedLock>> {
        let table = Table::<Locks>::new(&self.store.ks);
        let by = |index: &Index<PersistedLock>, component: &[u8]| {
            table.index_prefix(&self.tx, index, &keys::prefix(component)?)
        };
        let mut locks = if let Some(file) = &query.file_id {
            by(&BY_FILE, file.as_bytes())?
        } else if let Some(client) = &query.client_id {
            by(&BY_CLIENT, client.as_bytes())?
        } else if let Some(owner) = &query.owner_id {
            by(&BY_OWNER, owner.as_bytes())?
        } else if let Some(share) = &query.share_name {
            by(&BY_SHARE, share.as_bytes())?
        } else if let Some(epoch) = query.server_epoch {
            // `be64(epoch) | id16`: one epoch's entries, already in id order.
            table.index_prefix(&self.tx, &BY_EPOCH, &keys::epoch_bound(epoch))?
        } else if let Some(below) = query.server_epoch_below {
            let bound = keys::epoch_bound(below).to_vec();
            let mut locks = table.index_range(
                &self.tx,
                &BY_EPOCH,
                (Bound::Unbounded, Bound::Excluded(bound)),
            )?;
            locks.sort_unstable_by_key(|lock| lock.id);
            locks
        } else {
            table.all(&self.tx)?
        };
        locks.retain(|lock| query.matches(lock));
        Ok(locks)
    }

    /// Deletes every lock matching `query` (record and index entries); returns how many.
    fn delete_matching(&mut self, query: &LockQuery) -> Result<u64> {
        let locks = self.matching_locks(query)?;
        let table = Table::<Locks>::new(&self.store.ks);
        for lock in &locks {
            table.remove(&mut self.tx, lock)?;
            self.freed.note(&lock.file_id);
        }
        Ok(locks.len() as u64)
    }
}

#[async_trait]
impl LockStore for FjallTx {
    async fn put_lock(&mut self, lock: &PersistedLock) -> Result<()> {
        validate::lock(lock)?;
        Table::<Locks>::new(&self.store.ks).put(&mut self.tx, lock)
    }

    async fn get_lock(&mut self, id: Uuid) -> Result<Option<PersistedLock>> {
        Table::<Locks>::new(&self.store.ks).get(&self.tx, &id)
    }

    async fn delete_lock(&mut self, id: Uuid) -> Result<()> {
        Table::<Locks>::new(&self.store.ks)
            .delete(&mut self.tx, &id)?
            .map(|old| self.freed.note(&old.file_id))
            .ok_or(Error::LockNotFound(id))
    }

    async fn list_locks_page(
        &mut self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<PersistedLock>> {
        validate::page_limit(limit)?;
        Table::<Locks>::new(&self.store.ks).page(&self.tx, after.as_ref(), limit)
    }

    async fn list_locks(&mut self, query: &LockQuery) -> Result<Vec<PersistedLock>> {
        validate::query(query)?;
        self.matching_locks(query)
    }

    async fn delete_locks_by_client(&mut self, client_id: &str) -> Result<u64> {
        validate::id("client_id", client_id)?;
        self.delete_matching(&LockQuery::by_client(client_id))
    }

    async fn delete_locks_by_file(&mut self, file: &FileHandle) -> Result<u64> {
        validate::file_handle(file)?;
        self.delete_matching(&LockQuery::by_file(file))
    }

    /// One point read per id, inside this transaction; an id that is not
    /// stored, or that repeats, reads as absent and is skipped.
    async fn delete_locks(&mut self, ids: &[Uuid]) -> Result<u64> {
        let table = Table::<Locks>::new(&self.store.ks);
        let mut deleted = 0;
        for id in ids {
            if let Some(old) = table.delete(&mut self.tx, id)? {
                self.freed.note(&old.file_id);
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}
