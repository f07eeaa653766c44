//! The in-memory backend: copy-on-write maps with optimistic, serializable transactions.
//!
//! The committed state is a set of `imbl` maps. `begin` clones them, which is
//! O(1) thanks to structural sharing, so a transaction costs what it touches,
//! not the size of the store. A transaction records what it read (keys and
//! query predicates) and replays its writes onto the newest state at commit,
//! after checking that no transaction committed since its snapshot wrote
//! anything it read (backward validation). That makes every committed
//! transaction equivalent to running alone at its commit point:
//! serializable, with [`Error::Conflict`] for the loser of a race.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use imbl::{OrdMap, OrdSet};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::file::{FileHandle, FileMeta, FileStore};
use crate::lock::{EpochRecord, LockQuery, LockStore, NodeState, PersistedLock};
use crate::tx::{MetadataStore, MetadataTransaction};
use crate::validate;

/// A store that lives in process memory and vanishes with it.
///
/// Cloning gives another handle to the same store.
#[derive(Clone, Default)]
pub struct MemoryStore {
    shared: Arc<Mutex<Shared>>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shared = self.lock_shared();
        f.debug_struct("MemoryStore")
            .field("version", &shared.version)
            .field("files", &shared.tables.files.len())
            .field("locks", &shared.tables.locks.len())
            .finish()
    }
}

impl MemoryStore {
    /// A new, empty store (epoch 0, clean shutdown).
    pub fn new() -> Self {
        MemoryStore::default()
    }

    fn lock_shared(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding the mutex cannot leave `Shared` half-updated: every
        // mutation is built on a clone and swapped in, so poisoning carries no meaning.
        self.shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The committed state plus what validation needs.
#[derive(Default)]
struct Shared {
    version: u64,
    tables: Tables,
    /// Changes of recent commits, oldest first, kept while an open transaction's snapshot predates them.
    log: VecDeque<CommitRecord>,
    /// Snapshot version → number of open transactions on it.
    open: BTreeMap<u64, usize>,
}

impl Shared {
    fn forget_snapshot(&mut self, version: u64) {
        if let Some(count) = self.open.get_mut(&version) {
            *count -= 1;
            if *count == 0 {
                self.open.remove(&version);
            }
        }
        let oldest_needed = self.open.keys().next().copied().unwrap_or(self.version);
        while self.log.front().is_some_and(|r| r.version <= oldest_needed) {
            self.log.pop_front();
        }
    }
}

/// Records and their secondary indexes; cloning is O(1).
#[derive(Clone)]
struct Tables {
    files: OrdMap<FileHandle, FileMeta>,
    files_by_share: OrdSet<(String, FileHandle)>,
    locks: OrdMap<Uuid, PersistedLock>,
    locks_by_file: OrdSet<(FileHandle, Uuid)>,
    locks_by_owner: OrdSet<(String, Uuid)>,
    locks_by_client: OrdSet<(String, Uuid)>,
    locks_by_share: OrdSet<(String, Uuid)>,
    locks_by_epoch: OrdSet<(u64, Uuid)>,
    epoch: u64,
    nodes: OrdMap<String, NodeState>,
    epoch_records: OrdMap<u64, EpochRecord>,
}

impl Default for Tables {
    fn default() -> Self {
        Tables {
            files: OrdMap::new(),
            files_by_share: OrdSet::new(),
            locks: OrdMap::new(),
            locks_by_file: OrdSet::new(),
            locks_by_owner: OrdSet::new(),
            locks_by_client: OrdSet::new(),
            locks_by_share: OrdSet::new(),
            locks_by_epoch: OrdSet::new(),
            epoch: 0,
            nodes: OrdMap::new(),
            epoch_records: OrdMap::new(),
        }
    }
}

/// The ids in an index under one key, in id order.
fn ids_under<K: Ord + Clone>(index: &OrdSet<(K, Uuid)>, key: &K) -> Vec<Uuid> {
    index
        .range((key.clone(), Uuid::nil())..=(key.clone(), Uuid::max()))
        .map(|(_, id)| *id)
        .collect()
}

impl Tables {
    /// Inserts or replaces a file; returns the share of the record it replaced.
    fn put_file(&mut self, file: FileMeta) -> Option<String> {
        let old = self.files.insert(file.handle.clone(), file.clone());
        if let Some(old) = &old {
            self.files_by_share
                .remove(&(old.share_name.clone(), old.handle.clone()));
        }
        self.files_by_share.insert((file.share_name, file.handle));
        old.map(|o| o.share_name)
    }

    fn delete_file(&mut self, handle: &FileHandle) -> Option<FileMeta> {
        let old = self.files.remove(handle)?;
        self.files_by_share
            .remove(&(old.share_name.clone(), old.handle.clone()));
        Some(old)
    }

    /// Inserts or replaces a lock and its index entries; returns the record it replaced.
    fn put_lock(&mut self, lock: PersistedLock) -> Option<PersistedLock> {
        let old = self.delete_lock(lock.id);
        self.locks_by_file.insert((lock.file_id.clone(), lock.id));
        self.locks_by_owner.insert((lock.owner_id.clone(), lock.id));
        self.locks_by_client
            .insert((lock.client_id.clone(), lock.id));
        self.locks_by_share
            .insert((lock.share_name.clone(), lock.id));
        self.locks_by_epoch.insert((lock.server_epoch, lock.id));
        self.locks.insert(lock.id, lock);
        old
    }

    fn delete_lock(&mut self, id: Uuid) -> Option<PersistedLock> {
        let old = self.locks.remove(&id)?;
        self.locks_by_file.remove(&(old.file_id.clone(), id));
        self.locks_by_owner.remove(&(old.owner_id.clone(), id));
        self.locks_by_client.remove(&(old.client_id.clone(), id));
        self.locks_by_share.remove(&(old.share_name.clone(), id));
        self.locks_by_epoch.remove(&(old.server_epoch, id));
        Some(old)
    }

    /// Candidate ids for a query from its most selective index; `None` = scan all.
    fn candidates(&self, query: &LockQuery) -> Option<Vec<Uuid>> {
        if let Some(file) = &query.file_id {
            Some(ids_under(&self.locks_by_file, file))
        } else if let Some(client) = &query.client_id {
            Some(ids_under(&self.locks_by_client, client))
        } else if let Some(owner) = &query.owner_id {
            Some(ids_under(&self.locks_by_owner, owner))
        } else if let Some(share) = &query.share_name {
            Some(ids_under(&self.locks_by_share, share))
        } else {
            query.server_epoch_below.map(|below| {
                let mut ids: Vec<Uuid> = self
                    .locks_by_epoch
                    .range(..(below, Uuid::nil()))
                    .map(|(_, id)| *id)
                    .collect();
                ids.sort_unstable();
                ids
            })
        }
    }

    fn list_locks(&self, query: &LockQuery) -> Vec<PersistedLock> {
        match self.candidates(query) {
            Some(ids) => ids
                .into_iter()
                .filter_map(|id| self.locks.get(&id))
                .filter(|lock| query.matches(lock))
                .cloned()
                .collect(),
            None => self
                .locks
                .values()
                .filter(|l| query.matches(l))
                .cloned()
                .collect(),
        }
    }
}

/// One write of a transaction, replayed onto the newest state at commit.
enum Write {
    PutFile(FileMeta),
    DeleteFile(FileHandle),
    PutLock(PersistedLock),
    DeleteLock(Uuid),
    Epoch(u64),
    PutNode(NodeState),
    PutEpochRecord(EpochRecord),
}

/// What a transaction's result depended on.
#[derive(Default)]
struct ReadSet {
    files: HashSet<FileHandle>,
    shares: HashSet<String>,
    all_files: bool,
    locks: HashSet<Uuid>,
    queries: Vec<LockQuery>,
    epoch: bool,
    nodes: HashSet<String>,
    all_nodes: bool,
    epoch_records: bool,
}

/// What one commit changed, as validation of later-committing transactions needs it.
struct CommitRecord {
    version: u64,
    files: Vec<(FileHandle, Option<String>, Option<String>)>,
    locks: Vec<(Option<PersistedLock>, Option<PersistedLock>)>,
    epoch: bool,
    nodes: Vec<String>,
    epoch_records: bool,
}

impl CommitRecord {
    fn invalidates(&self, reads: &ReadSet) -> bool {
        (self.epoch && reads.epoch)
            || (self.epoch_records && reads.epoch_records)
            || (!self.nodes.is_empty() && reads.all_nodes)
            || self.nodes.iter().any(|n| reads.nodes.contains(n))
            || (reads.all_files && !self.files.is_empty())
            || self.files.iter().any(|(handle, old_share, new_share)| {
                reads.files.contains(handle)
                    || [old_share, new_share]
                        .into_iter()
                        .flatten()
                        .any(|s| reads.shares.contains(s))
            })
            || self.locks.iter().any(|(old, new)| {
                [old, new].into_iter().flatten().any(|lock| {
                    reads.locks.contains(&lock.id) || reads.queries.iter().any(|q| q.matches(lock))
                })
            })
    }
}

#[async_trait]
impl MetadataStore for MemoryStore {
    async fn begin(&self) -> Result<Box<dyn MetadataTransaction>> {
        let mut shared = self.lock_shared();
        let version = shared.version;
        *shared.open.entry(version).or_default() += 1;
        Ok(Box::new(MemoryTx {
            store: self.clone(),
            snapshot: version,
            working: shared.tables.clone(),
            writes: Vec::new(),
            reads: ReadSet::default(),
        }))
    }
}

struct MemoryTx {
    store: MemoryStore,
    snapshot: u64,
    /// The snapshot with this transaction's own writes applied.
    working: Tables,
    writes: Vec<Write>,
    reads: ReadSet,
}

impl Drop for MemoryTx {
    fn drop(&mut self) {
        self.store.lock_shared().forget_snapshot(self.snapshot);
    }
}

#[async_trait]
impl FileStore for MemoryTx {
    async fn put_file(&mut self, file: &FileMeta) -> Result<()> {
        validate::file(file)?;
        self.working.put_file(file.clone());
        self.writes.push(Write::PutFile(file.clone()));
        Ok(())
    }

    async fn get_file(&mut self, handle: &FileHandle) -> Result<Option<FileMeta>> {
        validate::file_handle(handle)?;
        self.reads.files.insert(handle.clone());
        Ok(self.working.files.get(handle).cloned())
    }

    async fn delete_file(&mut self, handle: &FileHandle) -> Result<()> {
        validate::file_handle(handle)?;
        self.reads.files.insert(handle.clone());
        self.working
            .delete_file(handle)
            .ok_or_else(|| Error::FileNotFound(handle.clone()))?;
        self.writes.push(Write::DeleteFile(handle.clone()));
        Ok(())
    }

    async fn list_files_page(
        &mut self,
        after: Option<&FileHandle>,
        limit: usize,
    ) -> Result<Vec<FileMeta>> {
        validate::page_limit(limit)?;
        let start = after.cloned().unwrap_or_else(FileHandle::min);
        self.reads.all_files = true;
        Ok(self
            .working
            .files
            .range(start..)
            .filter(|(handle, _)| Some(*handle) != after)
            .take(limit)
            .map(|(_, file)| file.clone())
            .collect())
    }

    async fn list_files(&mut self, share_name: &str) -> Result<Vec<FileMeta>> {
        validate::share_name(share_name)?;
        self.reads.shares.insert(share_name.to_owned());
        let share = share_name.to_owned();
        Ok(self
            .working
            .files_by_share
            .range((share.clone(), FileHandle::min())..)
            .take_while(|(s, _)| *s == share)
            .filter_map(|(_, handle)| self.working.files.get(handle).cloned())
            .collect())
    }
}

#[async_trait]
impl LockStore for MemoryTx {
    async fn put_lock(&mut self, lock: &PersistedLock) -> Result<()> {
        validate::lock(lock)?;
        self.working.put_lock(lock.clone());
        self.writes.push(Write::PutLock(lock.clone()));
        Ok(())
    }

    async fn get_lock(&mut self, id: Uuid) -> Result<Option<PersistedLock>> {
        self.reads.locks.insert(id);
        Ok(self.working.locks.get(&id).cloned())
    }

    async fn delete_lock(&mut self, id: Uuid) -> Result<()> {
        self.reads.locks.insert(id);
        self.working
            .delete_lock(id)
            .ok_or(Error::LockNotFound(id))?;
        self.writes.push(Write::DeleteLock(id));
        Ok(())
    }

    async fn list_locks_page(
        &mut self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<PersistedLock>> {
        validate::page_limit(limit)?;
        self.reads.queries.push(LockQuery::default());
        Ok(self
            .working
            .locks
            .range(after.unwrap_or(Uuid::nil())..)
            .filter(|(id, _)| Some(**id) != after)
            .take(limit)
            .map(|(_, lock)| lock.clone())
            .collect())
    }

    async fn list_locks(&mut self, query: &LockQuery) -> Result<Vec<PersistedLock>> {
        validate::query(query)?;
        self.reads.queries.push(query.clone());
        Ok(self.working.list_locks(query))
    }

    async fn delete_locks_by_client(&mut self, client_id: &str) -> Result<u64> {
        validate::id("client_id", client_id)?;
        self.delete_matching(LockQuery::by_client(client_id))
    }

    async fn delete_locks_by_file(&mut self, file: &FileHandle) -> Result<u64> {
        validate::file_handle(file)?;
        self.delete_matching(LockQuery::by_file(file))
    }

    async fn server_epoch(&mut self) -> Result<u64> {
        self.reads.epoch = true;
        Ok(self.working.epoch)
    }

    async fn increment_server_epoch(&mut self) -> Result<u64> {
        self.reads.epoch = true;
        let next =
            self.working.epoch.checked_add(1).ok_or_else(|| {
                Error::Invalid("server epoch is at u64::MAX and cannot grow".into())
            })?;
        self.working.epoch = next;
        self.writes.push(Write::Epoch(next));
        Ok(next)
    }

    async fn get_node(&mut self, node_id: &str) -> Result<Option<NodeState>> {
        validate::id("node_id", node_id)?;
        self.reads.nodes.insert(node_id.to_owned());
        Ok(self.working.nodes.get(node_id).cloned())
    }

    async fn put_node(&mut self, node: &NodeState) -> Result<()> {
        validate::node(node)?;
        self.working
            .nodes
            .insert(node.node_id.clone(), node.clone());
        self.writes.push(Write::PutNode(node.clone()));
        Ok(())
    }

    async fn list_nodes(&mut self) -> Result<Vec<NodeState>> {
        self.reads.all_nodes = true;
        Ok(self.working.nodes.values().cloned().collect())
    }

    async fn put_epoch_record(&mut self, record: &EpochRecord) -> Result<()> {
        validate::epoch_record(record)?;
        self.working
            .epoch_records
            .insert(record.epoch, record.clone());
        self.writes.push(Write::PutEpochRecord(record.clone()));
        Ok(())
    }

    async fn list_epoch_records(&mut self) -> Result<Vec<EpochRecord>> {
        self.reads.epoch_records = true;
        Ok(self.working.epoch_records.values().cloned().collect())
    }
}

impl MemoryTx {
    fn delete_matching(&mut self, query: LockQuery) -> Result<u64> {
        let ids: Vec<Uuid> = self
            .working
            .list_locks(&query)
            .into_iter()
            .map(|l| l.id)
            .collect();
        self.reads.queries.push(query);
        for &id in &ids {
            self.working.delete_lock(id);
            self.writes.push(Write::DeleteLock(id));
        }
        Ok(ids.len() as u64)
    }
}

#[async_trait]
impl MetadataTransaction for MemoryTx {
    async fn commit(mut self: Box<Self>) -> Result<()> {
        if self.writes.is_empty() {
            // A read-only transaction saw one committed state: it serializes at its snapshot.
            return Ok(());
        }
        let store = self.store.clone();
        let mut shared = store.lock_shared();
        if shared
            .log
            .iter()
            .any(|r| r.version > self.snapshot && r.invalidates(&self.reads))
        {
            return Err(Error::Conflict(
                "a transaction committed since this one began changed what it read".into(),
            ));
        }
        let mut tables = shared.tables.clone();
        let mut record = CommitRecord {
            version: shared.version + 1,
            files: Vec::new(),
            locks: Vec::new(),
            epoch: false,
            nodes: Vec::new(),
            epoch_records: false,
        };
        for write in std::mem::take(&mut self.writes) {
            match write {
                Write::PutFile(file) => {
                    let (handle, share) = (file.handle.clone(), file.share_name.clone());
                    let old_share = tables.put_file(file);
                    record.files.push((handle, old_share, Some(share)));
                }
                Write::DeleteFile(handle) => {
                    let old = tables.delete_file(&handle).map(|f| f.share_name);
                    record.files.push((handle, old, None));
                }
                Write::PutLock(lock) => {
                    let old = tables.put_lock(lock.clone());
                    record.locks.push((old, Some(lock)));
                }
                Write::DeleteLock(id) => {
                    let old = tables.delete_lock(id);
                    record.locks.push((old, None));
                }
                Write::Epoch(epoch) => {
                    tables.epoch = epoch;
                    record.epoch = true;
                }
                Write::PutNode(node) => {
                    record.nodes.push(node.node_id.clone());
                    tables.nodes.insert(node.node_id.clone(), node);
                }
                Write::PutEpochRecord(epoch_record) => {
                    tables
                        .epoch_records
                        .insert(epoch_record.epoch, epoch_record);
                    record.epoch_records = true;
                }
            }
        }
        shared.tables = tables;
        shared.version = record.version;
        shared.log.push_back(record);
        Ok(())
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}
