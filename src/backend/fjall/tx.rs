//! One fsmeta transaction over one fjall optimistic write transaction.
//!
//! Reads and writes run inline: they touch memtables and the block cache and
//! take microseconds, less than a hop to the blocking pool would cost. Only a
//! [`Durability::Sync`] commit, which waits for an fsync, leaves the async
//! worker thread.

use std::ops::Bound;
use std::sync::Arc;

use async_trait::async_trait;
use fjall::{OptimisticTxKeyspace, OptimisticWriteTx, Readable};
use uuid::Uuid;

use super::keys::{self, names};
use super::{Durability, Inner, Keyspaces, blocking, codec, commit};
use crate::error::{Error, Result};
use crate::file::{FileHandle, FileMeta, FileStore};
use crate::lock::{LockQuery, LockStore, PersistedLock};
use crate::node::NodeStore;
use crate::node::{EpochRecord, NodeState};
use crate::tx::MetadataTransaction;
use crate::validate;

/// A transaction of a [`super::FjallStore`]. Dropping it rolls it back.
pub(super) struct FjallTx {
    store: Arc<Inner>,
    tx: OptimisticWriteTx,
}

/// I/O error while reading `keyspace`.
fn read_error(keyspace: &str) -> impl FnOnce(fjall::Error) -> Error + '_ {
    move |e| Error::backend(format!("fjall: reading keyspace `{keyspace}`"), e)
}

/// One secondary index of a lock: its keyspace and its key for a given lock.
pub(super) type IndexEntry<'a> = (&'a OptimisticTxKeyspace, Vec<u8>);

/// Names of the lock indexes, in the order [`lock_index_entries`] returns them.
pub(super) const LOCK_INDEX_NAMES: [&str; 5] = [
    names::LOCKS_BY_FILE,
    names::LOCKS_BY_OWNER,
    names::LOCKS_BY_CLIENT,
    names::LOCKS_BY_SHARE,
    names::LOCKS_BY_EPOCH,
];

/// The index entries a lock owns, in every lock index.
pub(super) fn lock_index_entries<'k>(
    ks: &'k Keyspaces,
    lock: &PersistedLock,
) -> Result<[IndexEntry<'k>; 5]> {
    Ok([
        (
            &ks.locks_by_file,
            keys::lock_index(lock.file_id.as_bytes(), lock.id)?,
        ),
        (
            &ks.locks_by_owner,
            keys::lock_index(lock.owner_id.as_bytes(), lock.id)?,
        ),
        (
            &ks.locks_by_client,
            keys::lock_index(lock.client_id.as_bytes(), lock.id)?,
        ),
        (
            &ks.locks_by_share,
            keys::lock_index(lock.share_name.as_bytes(), lock.id)?,
        ),
        (
            &ks.locks_by_epoch,
            keys::lock_by_epoch(lock.server_epoch, lock.id),
        ),
    ])
}

impl FjallTx {
    pub(super) fn new(store: Arc<Inner>, tx: OptimisticWriteTx) -> Self {
        FjallTx { store, tx }
    }

    /// Reads one key (recording the read for conflict detection).
    fn get(
        &self,
        ks: &OptimisticTxKeyspace,
        name: &str,
        key: &[u8],
    ) -> Result<Option<fjall::UserValue>> {
        self.tx.get(ks, key).map_err(read_error(name))
    }

    /// Every key under `prefix`, in key order. The scan is recorded as a key
    /// range, so a concurrent insert under the prefix is a conflict at commit.
    fn keys_with_prefix(
        &self,
        ks: &OptimisticTxKeyspace,
        name: &str,
        prefix: &[u8],
    ) -> Result<Vec<fjall::UserKey>> {
        self.tx
            .prefix(ks, prefix)
            .map(|guard| guard.key().map_err(read_error(name)))
            .collect()
    }

    // --- locks ------------------------------------------------------------

    fn read_lock(&self, id: Uuid) -> Result<Option<PersistedLock>> {
        let ks = &self.store.ks;
        self.get(&ks.locks, names::LOCKS, &keys::lock(id))?
            .map(|bytes| Ok(codec::decode_lock(id, &bytes)?))
            .transpose()
    }

    /// Removes a stored lock and all its index entries.
    fn remove_lock(&mut self, old: &PersistedLock) -> Result<()> {
        let store = self.store.clone();
        for (ks, key) in lock_index_entries(&store.ks, old)? {
            self.tx.remove(ks, key);
        }
        self.tx
            .remove(&store.ks.locks, keys::lock(old.id).as_slice());
        Ok(())
    }

    /// The ids of an index prefix scan, in id order.
    fn ids_under(
        &self,
        ks: &OptimisticTxKeyspace,
        name: &str,
        component: &[u8],
    ) -> Result<Vec<Uuid>> {
        let prefix = keys::prefix(component)?;
        self.keys_with_prefix(ks, name, &prefix)?
            .iter()
            .map(|key| keys::lock_id_after(name, key, prefix.len()))
            .collect()
    }

    /// Candidate ids for a query from its most selective index (same choice as
    /// the memory backend); `None` = every lock must be scanned.
    fn candidates(&self, query: &LockQuery) -> Result<Option<Vec<Uuid>>> {
        let ks = &self.store.ks;
        Ok(Some(if let Some(file) = &query.file_id {
            self.ids_under(&ks.locks_by_file, names::LOCKS_BY_FILE, file.as_bytes())?
        } else if let Some(client) = &query.client_id {
            self.ids_under(
                &ks.locks_by_client,
                names::LOCKS_BY_CLIENT,
                client.as_bytes(),
            )?
        } else if let Some(owner) = &query.owner_id {
            self.ids_under(&ks.locks_by_owner, names::LOCKS_BY_OWNER, owner.as_bytes())?
        } else if let Some(share) = &query.share_name {
            self.ids_under(&ks.locks_by_share, names::LOCKS_BY_SHARE, share.as_bytes())?
        } else if let Some(below) = query.server_epoch_below {
            let bound = keys::epoch_bound(below);
            let mut ids = self
                .tx
                .range(&ks.locks_by_epoch, ..bound.as_slice())
                .map(|guard| {
                    let key = guard.key().map_err(read_error(names::LOCKS_BY_EPOCH))?;
                    keys::lock_id_after(names::LOCKS_BY_EPOCH, &key, bound.len())
                })
                .collect::<Result<Vec<Uuid>>>()?;
            ids.sort_unstable();
            ids
        } else {
            return Ok(None);
        }))
    }

    /// Every stored lock matching `query`, in id order. An index entry without
    /// its record is corruption, not something to skip.
    fn matching_locks(&self, query: &LockQuery) -> Result<Vec<PersistedLock>> {
        let ks = &self.store.ks;
        let Some(ids) = self.candidates(query)? else {
            let mut locks = Vec::new();
            for guard in self.tx.iter(&ks.locks) {
                let (key, value) = guard.into_inner().map_err(read_error(names::LOCKS))?;
                let lock = codec::decode_lock(keys::lock_id(&key)?, &value)?;
                if query.matches(&lock) {
                    locks.push(lock);
                }
            }
            return Ok(locks);
        };
        let mut locks = Vec::with_capacity(ids.len());
        for id in ids {
            let lock = self.read_lock(id)?.ok_or_else(|| {
                keys::corrupt_key(
                    names::LOCKS,
                    &keys::lock(id),
                    "an index names this lock, but no record is stored",
                )
            })?;
            if query.matches(&lock) {
                locks.push(lock);
            }
        }
        Ok(locks)
    }

    /// Deletes every lock matching `query` (record and index entries); returns how many.
    fn delete_matching(&mut self, query: &LockQuery) -> Result<u64> {
        let locks = self.matching_locks(query)?;
        for lock in &locks {
            self.remove_lock(lock)?;
        }
        Ok(locks.len() as u64)
    }

    // --- files ------------------------------------------------------------

    fn read_file(&self, handle: &FileHandle) -> Result<Option<FileMeta>> {
        self.get(&self.store.ks.files, names::FILES, handle.as_bytes())?
            .map(|bytes| Ok(codec::decode_file(handle, &bytes)?))
            .transpose()
    }
}

#[async_trait]
impl FileStore for FjallTx {
    async fn put_file(&mut self, file: &FileMeta) -> Result<()> {
        validate::file(file)?;
        let value = codec::encode_file(file)?;
        let new_entry = keys::file_by_share(&file.share_name, &file.handle)?;
        // Read the old record: its share's index entry must go if the share changed.
        let old = self.read_file(&file.handle)?;
        let store = self.store.clone();
        let ks = &store.ks;
        if let Some(old) = old.filter(|old| old.share_name != file.share_name) {
            self.tx.remove(
                &ks.files_by_share,
                keys::file_by_share(&old.share_name, &old.handle)?,
            );
        }
        self.tx.insert(&ks.files, file.handle.as_bytes(), value);
        self.tx
            .insert(&ks.files_by_share, new_entry, b"".as_slice());
        Ok(())
    }

    async fn get_file(&mut self, handle: &FileHandle) -> Result<Option<FileMeta>> {
        validate::file_handle(handle)?;
        self.read_file(handle)
    }

    async fn delete_file(&mut self, handle: &FileHandle) -> Result<()> {
        validate::file_handle(handle)?;
        let old = self
            .read_file(handle)?
            .ok_or_else(|| Error::FileNotFound(handle.clone()))?;
        let store = self.store.clone();
        let ks = &store.ks;
        self.tx.remove(
            &ks.files_by_share,
            keys::file_by_share(&old.share_name, handle)?,
        );
        self.tx.remove(&ks.files, handle.as_bytes());
        Ok(())
    }

    async fn list_files_page(
        &mut self,
        after: Option<&FileHandle>,
        limit: usize,
    ) -> Result<Vec<FileMeta>> {
        validate::page_limit(limit)?;
        // The read set records the whole range past `after`, not just the page:
        // coarser than needed, never too fine.
        let start = after.map_or(Bound::Unbounded, |h| Bound::Excluded(h.as_bytes()));
        let mut files = Vec::new();
        for guard in self
            .tx
            .range::<&[u8], _>(&self.store.ks.files, (start, Bound::Unbounded))
            .take(limit)
        {
            let (key, value) = guard.into_inner().map_err(read_error(names::FILES))?;
            let handle = FileHandle::new(key.as_ref()).map_err(|_| {
                keys::corrupt_key(
                    names::FILES,
                    &key,
                    "a file key must be a 1..=128-byte handle",
                )
            })?;
            files.push(codec::decode_file(&handle, &value)?);
        }
        Ok(files)
    }

    async fn list_files(&mut self, share_name: &str) -> Result<Vec<FileMeta>> {
        validate::share_name(share_name)?;
        let ks = &self.store.ks;
        let prefix = keys::prefix(share_name.as_bytes())?;
        let mut files = Vec::new();
        for key in self.keys_with_prefix(&ks.files_by_share, names::FILES_BY_SHARE, &prefix)? {
            let handle = keys::handle_after(&key, prefix.len())?;
            let file = self.read_file(&handle)?.ok_or_else(|| {
                keys::corrupt_key(
                    names::FILES,
                    handle.as_bytes(),
                    "the share index names this file, but no record is stored",
                )
            })?;
            files.push(file);
        }
        Ok(files)
    }
}

#[async_trait]
impl LockStore for FjallTx {
    async fn put_lock(&mut self, lock: &PersistedLock) -> Result<()> {
        validate::lock(lock)?;
        let value = codec::encode_lock(lock)?;
        let store = self.store.clone();
        let new_entries = lock_index_entries(&store.ks, lock)?;
        // Read the old record: an overwrite that moves the lock to another
        // file, owner, client, share or epoch must not leave its old index
        // entries behind. (The read also makes concurrent overwrites conflict.)
        // Every old entry is removed and every new one inserted: an entry that
        // both have is re-inserted (the last write to a key wins), and no
        // comparison of key bytes across different index keyspaces can keep a
        // stale entry alive.
        if let Some(old) = self.read_lock(lock.id)? {
            for (ks, key) in lock_index_entries(&store.ks, &old)? {
                self.tx.remove(ks, key);
            }
        }
        self.tx
            .insert(&store.ks.locks, keys::lock(lock.id).as_slice(), value);
        for (ks, key) in new_entries {
            self.tx.insert(ks, key, b"".as_slice());
        }
        Ok(())
    }

    async fn get_lock(&mut self, id: Uuid) -> Result<Option<PersistedLock>> {
        self.read_lock(id)
    }

    async fn delete_lock(&mut self, id: Uuid) -> Result<()> {
        let old = self.read_lock(id)?.ok_or(Error::LockNotFound(id))?;
        self.remove_lock(&old)
    }

    async fn list_locks_page(
        &mut self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<PersistedLock>> {
        validate::page_limit(limit)?;
        let after = after.map(keys::lock);
        let start = after
            .as_ref()
            .map_or(Bound::Unbounded, |k| Bound::Excluded(k.as_slice()));
        let mut locks = Vec::new();
        for guard in self
            .tx
            .range::<&[u8], _>(&self.store.ks.locks, (start, Bound::Unbounded))
            .take(limit)
        {
            let (key, value) = guard.into_inner().map_err(read_error(names::LOCKS))?;
            locks.push(codec::decode_lock(keys::lock_id(&key)?, &value)?);
        }
        Ok(locks)
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
}

#[async_trait]
impl NodeStore for FjallTx {
    async fn server_epoch(&mut self) -> Result<u64> {
        let ks = &self.store.ks;
        self.get(&ks.meta, names::META, keys::META_SERVER_EPOCH)?
            .map_or(Ok(0), |bytes| Ok(codec::decode_epoch(&bytes)?))
    }

    async fn increment_server_epoch(&mut self) -> Result<u64> {
        // The read is what makes N concurrent increments conflict instead of
        // losing updates: fjall only detects read-write conflicts.
        let next = self
            .server_epoch()
            .await?
            .checked_add(1)
            .ok_or_else(|| Error::EpochExhausted)?;
        let value = codec::encode_epoch(next)?;
        self.tx
            .insert(&self.store.ks.meta, keys::META_SERVER_EPOCH, value);
        Ok(next)
    }

    async fn advance_server_epoch(&mut self, at_least: u64) -> Result<u64> {
        // The read makes a concurrent increment or advance conflict with this one.
        let current = self.server_epoch().await?;
        if current >= at_least {
            return Ok(current);
        }
        let value = codec::encode_epoch(at_least)?;
        self.tx
            .insert(&self.store.ks.meta, keys::META_SERVER_EPOCH, value);
        Ok(at_least)
    }

    async fn get_node(&mut self, node_id: &str) -> Result<Option<NodeState>> {
        validate::id("node_id", node_id)?;
        let key = keys::node(node_id);
        self.get(&self.store.ks.meta, names::META, &key)?
            .map(|bytes| Ok(codec::decode_node(node_id.to_owned(), &key, &bytes)?))
            .transpose()
    }

    async fn put_node(&mut self, node: &NodeState) -> Result<()> {
        validate::node(node)?;
        let value = codec::encode_node(node)?;
        self.tx
            .insert(&self.store.ks.meta, keys::node(&node.node_id), value);
        Ok(())
    }

    async fn list_nodes(&mut self) -> Result<Vec<NodeState>> {
        let mut nodes = Vec::new();
        for guard in self.tx.prefix(&self.store.ks.meta, keys::META_NODE_PREFIX) {
            let (key, value) = guard.into_inner().map_err(read_error(names::META))?;
            nodes.push(codec::decode_node(keys::node_id(&key)?, &key, &value)?);
        }
        Ok(nodes)
    }

    async fn put_epoch_record(&mut self, record: &EpochRecord) -> Result<()> {
        validate::epoch_record(record)?;
        let value = codec::encode_epoch_record(record)?;
        self.tx
            .insert(&self.store.ks.meta, keys::epoch_record(record.epoch), value);
        Ok(())
    }

    async fn list_epoch_records(&mut self) -> Result<Vec<EpochRecord>> {
        let mut records = Vec::new();
        for guard in self.tx.prefix(&self.store.ks.meta, keys::META_EPOCH_PREFIX) {
            let (key, value) = guard.into_inner().map_err(read_error(names::META))?;
            records.push(codec::decode_epoch_record(
                keys::epoch_of_record(&key)?,
                &key,
                &value,
            )?);
        }
        Ok(records)
    }
}

#[async_trait]
impl MetadataTransaction for FjallTx {
    async fn commit(self: Box<Self>) -> Result<()> {
        let FjallTx { store, tx } = *self;
        match store.durability {
            Durability::Buffered => commit(tx),
            Durability::Sync => blocking("committing a transaction", move || commit(tx)).await,
        }
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        self.tx.rollback();
        Ok(())
    }
}
