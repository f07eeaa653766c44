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

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use imbl::{OrdMap, OrdSet};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::file::{FileHandle, FileMeta, FileStore};
use crate::lock::{LockQuery, LockStore, LockType, PersistedLock, ShareReservation};
use crate::node::NodeStore;
use crate::node::{EpochRecord, NodeState};
use crate::time::Timestamp;
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

/// A stored lock. Records are immutable once stored, so the record map, every
/// index and every transaction's snapshot share one allocation per lock:
/// copying a tree node (copy-on-write) copies pointers, not strings.
type LockRef = Arc<PersistedLock>;

/// The sort order of one lock index: a field of the lock, then its id.
trait IndexOrder {
    fn cmp(a: &PersistedLock, b: &PersistedLock) -> Ordering;
}

macro_rules! index_order {
    ($name:ident, $field:ident) => {
        struct $name;
        impl IndexOrder for $name {
            fn cmp(a: &PersistedLock, b: &PersistedLock) -> Ordering {
                (&a.$field, a.id).cmp(&(&b.$field, b.id))
            }
        }
    };
}
index_order!(ByFile, file_id);
index_order!(ByOwner, owner_id);
index_order!(ByClient, client_id);
index_order!(ByShare, share_name);
index_order!(ByEpoch, server_epoch);

/// An index entry: the lock itself (one pointer), ordered by `O`. The index
/// yields the records directly, with no second lookup in `locks`.
struct Indexed<O>(LockRef, PhantomData<O>);

impl<O> Indexed<O> {
    fn new(lock: &LockRef) -> Self {
        Indexed(lock.clone(), PhantomData)
    }
}

impl<O> Clone for Indexed<O> {
    fn clone(&self) -> Self {
        Indexed::new(&self.0)
    }
}

impl<O: IndexOrder> PartialEq for Indexed<O> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<O: IndexOrder> Eq for Indexed<O> {}

impl<O: IndexOrder> PartialOrd for Indexed<O> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<O: IndexOrder> Ord for Indexed<O> {
    fn cmp(&self, other: &Self) -> Ordering {
        O::cmp(&self.0, &other.0)
    }
}

/// A search key for an index: a lock that is blank but for the fields `set` fills in and `id`.
fn probe<O>(id: Uuid, set: impl FnOnce(&mut PersistedLock)) -> Indexed<O> {
    let mut lock = PersistedLock {
        id,
        share_name: String::new(),
        file_id: FileHandle::min(),
        owner_id: String::new(),
        client_id: String::new(),
        lock_type: LockType::Shared,
        offset: 0,
        length: 0,
        share_reservation: ShareReservation::None,
        acquired_at: Timestamp::from_micros(0),
        server_epoch: 0,
    };
    set(&mut lock);
    Indexed(Arc::new(lock), PhantomData)
}

/// The locks in an index whose field (set by `set`) has one value, in id order.
fn locks_under<O: IndexOrder>(
    index: &OrdSet<Indexed<O>>,
    set: impl Fn(&mut PersistedLock),
) -> Vec<LockRef> {
    let (lo, hi) = (probe(Uuid::nil(), &set), probe(Uuid::max(), &set));
    index.range(lo..=hi).map(|entry| entry.0.clone()).collect()
}

/// Records and their secondary indexes; cloning is O(1).
#[derive(Clone)]
struct Tables {
    files: OrdMap<FileHandle, FileMeta>,
    files_by_share: OrdSet<(String, FileHandle)>,
    locks: OrdMap<Uuid, LockRef>,
    locks_by_file: OrdSet<Indexed<ByFile>>,
    locks_by_owner: OrdSet<Indexed<ByOwner>>,
    locks_by_client: OrdSet<Indexed<ByClient>>,
    locks_by_share: OrdSet<Indexed<ByShare>>,
    locks_by_epoch: OrdSet<Indexed<ByEpoch>>,
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
    fn put_lock(&mut self, lock: LockRef) -> Option<LockRef> {
        let old = self.delete_lock(lock.id);
        self.locks_by_file.insert(Indexed::new(&lock));
        self.locks_by_owner.insert(Indexed::new(&lock));
        self.locks_by_client.insert(Indexed::new(&lock));
        self.locks_by_share.insert(Indexed::new(&lock));
        self.locks_by_epoch.insert(Indexed::new(&lock));
        self.locks.insert(lock.id, lock);
        old
    }

    fn delete_lock(&mut self, id: Uuid) -> Option<LockRef> {
        let old = self.locks.remove(&id)?;
        self.locks_by_file.remove(&Indexed::new(&old));
        self.locks_by_owner.remove(&Indexed::new(&old));
        self.locks_by_client.remove(&Indexed::new(&old));
        self.locks_by_share.remove(&Indexed::new(&old));
        self.locks_by_epoch.remove(&Indexed::new(&old));
        Some(old)
    }

    /// Candidate locks for a query from its most selective index, in id
    /// order; `None` = scan all.
    fn candidates(&self, query: &LockQuery) -> Option<Vec<LockRef>> {
        if let Some(file) = &query.file_id {
            Some(locks_under(&self.locks_by_file, |l| {
                l.file_id = file.clone()
            }))
        } else if let Some(client) = &query.client_id {
            Some(locks_under(&self.locks_by_client, |l| {
                l.client_id = client.clone()
            }))
        } else if let Some(owner) = &query.owner_id {
            Some(locks_under(&self.locks_by_owner, |l| {
                l.owner_id = owner.clone()
            }))
        } else if let Some(share) = &query.share_name {
            Some(locks_under(&self.locks_by_share, |l| {
                l.share_name = share.clone()
            }))
        } else {
            query.server_epoch_below.map(|below| {
                let bound = probe::<ByEpoch>(Uuid::nil(), |l| l.server_epoch = below);
                let mut locks: Vec<LockRef> = self
                    .locks_by_epoch
                    .range(..bound)
                    .map(|entry| entry.0.clone())
                    .collect();
                locks.sort_unstable_by_key(|l| l.id);
                locks
            })
        }
    }

    /// Every stored lock matching `query`, in id order.
    fn matching_locks(&self, query: &LockQuery) -> Vec<LockRef> {
        match self.candidates(query) {
            Some(locks) => locks.into_iter().filter(|l| query.matches(l)).collect(),
            None => self
                .locks
                .values()
                .filter(|l| query.matches(l))
                .cloned()
                .collect(),
        }
    }

    fn list_locks(&self, query: &LockQuery) -> Vec<PersistedLock> {
        self.matching_locks(query)
            .into_iter()
            .map(|l| PersistedLock::clone(&l))
            .collect()
    }
}

/// One write of a transaction, replayed onto the newest state at commit.
enum Write {
    PutFile(FileMeta),
    DeleteFile(FileHandle),
    PutLock(LockRef),
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
    locks: Vec<(Option<LockRef>, Option<LockRef>)>,
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
        let lock = Arc::new(lock.clone());
        self.working.put_lock(lock.clone());
        self.writes.push(Write::PutLock(lock));
        Ok(())
    }

    async fn get_lock(&mut self, id: Uuid) -> Result<Option<PersistedLock>> {
        self.reads.locks.insert(id);
        Ok(self.working.locks.get(&id).map(|l| PersistedLock::clone(l)))
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
            .map(|(_, lock)| PersistedLock::clone(lock))
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
}

#[async_trait]
impl NodeStore for MemoryTx {
    async fn server_epoch(&mut self) -> Result<u64> {
        self.reads.epoch = true;
        Ok(self.working.epoch)
    }

    async fn increment_server_epoch(&mut self) -> Result<u64> {
        self.reads.epoch = true;
        let next = self
            .working
            .epoch
            .checked_add(1)
            .ok_or_else(|| Error::EpochExhausted)?;
        self.working.epoch = next;
        self.writes.push(Write::Epoch(next));
        Ok(next)
    }

    async fn advance_server_epoch(&mut self, at_least: u64) -> Result<u64> {
        self.reads.epoch = true;
        if self.working.epoch >= at_least {
            return Ok(self.working.epoch);
        }
        self.working.epoch = at_least;
        self.writes.push(Write::Epoch(at_least));
        Ok(at_least)
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
            .matching_locks(&query)
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
        let alone = shared.version == self.snapshot
            && shared.open.len() == 1
            && shared.open.get(&self.snapshot) == Some(&1);
        if alone {
            // Nothing committed since this transaction's snapshot, so its working
            // tables are exactly what replaying its writes onto the committed
            // state would build; and no other transaction is open, so nobody will
            // validate against this commit's record. Publish them as they are:
            // half the tree-node copies of a replay, and no record to keep.
            shared.tables = std::mem::take(&mut self.working);
            shared.version += 1;
            self.writes.clear();
            return Ok(());
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
