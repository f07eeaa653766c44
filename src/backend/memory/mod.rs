//! The in-memory backend: copy-on-write maps with optimistic, serializable transactions.
//!
//! The committed state is a set of persistent maps (`imbl`'s, and
//! `id_map::IdMap` for records keyed by random ids). `begin` clones them, which is
//! O(1) thanks to structural sharing, so a transaction costs what it touches,
//! not the size of the store. A transaction records what it read (keys and
//! query predicates) and replays its writes onto the newest state at commit,
//! after checking that no transaction committed since its snapshot wrote
//! anything it read (backward validation). That makes every committed
//! transaction equivalent to running alone at its commit point:
//! serializable, with [`Error::Conflict`] for the loser of a race.
//!
//! Layout: `table.rs` is the one generic indexed table (records by key, in
//! a `record_map.rs` map, an `imbl::OrdMap` or the radix trie of
//! `id_map/`, plus secondary indexes, of the two kinds in `index_set.rs`
//! and `group_set.rs`); `files.rs`, `locks.rs`, `nodes.rs`, `ext.rs` and the
//! other family files each declare one family over it (key, index
//! extractors, read-set and commit-record bookkeeping: `Bookkeeping`) and
//! implement its trait; this file holds the store, `begin` and `commit`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::obs::{TxOp, traced};
use crate::report::VerifyReport;
use crate::tx::verify_records;
use crate::tx::{MetadataStore, MetadataTransaction};

mod group_set;
mod id_map;
mod index_set;
mod record_map;
#[macro_use]
mod table;
mod clients;
mod ext;
mod files;
mod leases;
mod locks;
mod nodes;
mod opens;
#[cfg(test)]
mod tests;
mod waiters;

/// A store that lives in process memory and vanishes with it.
///
/// Cloning gives another handle to the same store.
#[derive(Clone, Default)]
pub struct MemoryStore {
    shared: Arc<Mutex<Shared>>,
    /// Announces the files a commit deleted locks or waiters of.
    wake: crate::waiter::WakeHub,
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
        // Poisoning carries no meaning here: a replayed commit is built on a
        // clone and swapped in, and an in-place commit (`commit_untraced`,
        // alone) runs code that does not panic on any input (imbl's tree
        // operations and `Pending::apply`).
        self.shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What one family needs at commit: how a write of it is replayed onto the
/// newest tables (noting what it changed), and whether what another
/// transaction changed invalidates what this one read. A new family declares
/// these four types and two functions, and gets a field in [`Tables`],
/// [`Writes`], [`ReadSet`] and [`CommitRecord`].
trait Bookkeeping {
    /// The family's tables (one or more `table::Table`s).
    type Tables: Clone + Default;
    /// One write, as the transaction logged it.
    type Write;
    /// What a transaction read of the family.
    type Reads: Default;
    /// What a commit changed in the family.
    type Changes: Default;
    /// Applies `write` to `tables`, noting the change in `changes`; an error
    /// (a write that finds the tables corrupt) fails the commit, which then
    /// publishes nothing: the replay runs on a copy.
    fn replay(
        tables: &mut Self::Tables,
        write: Self::Write,
        changes: &mut Self::Changes,
    ) -> Result<()>;
    /// True when `changes` touched anything in `reads`.
    fn invalidates(changes: &Self::Changes, reads: &Self::Reads) -> bool;
}

/// Records and their secondary indexes, one field per family; cloning is O(1).
#[derive(Clone, Default)]
struct Tables {
    files: <files::Files as Bookkeeping>::Tables,
    locks: <locks::Locks as Bookkeeping>::Tables,
    nodes: <nodes::Nodes as Bookkeeping>::Tables,
    ext: <ext::Ext as Bookkeeping>::Tables,
    clients: <clients::Clients as Bookkeeping>::Tables,
    opens: <opens::Opens as Bookkeeping>::Tables,
    leases: <leases::LeaseFamily as Bookkeeping>::Tables,
    waiters: <waiters::Waiters as Bookkeeping>::Tables,
}

/// A transaction's writes, per family, in the order it made them.
#[derive(Default)]
struct Writes {
    files: Vec<<files::Files as Bookkeeping>::Write>,
    locks: Vec<<locks::Locks as Bookkeeping>::Write>,
    nodes: Vec<<nodes::Nodes as Bookkeeping>::Write>,
    ext: Vec<<ext::Ext as Bookkeeping>::Write>,
    clients: Vec<<clients::Clients as Bookkeeping>::Write>,
    opens: Vec<<opens::Opens as Bookkeeping>::Write>,
    leases: Vec<<leases::LeaseFamily as Bookkeeping>::Write>,
    waiters: Vec<<waiters::Waiters as Bookkeeping>::Write>,
}

impl Writes {
    fn is_empty(&self) -> bool {
        self.files.is_empty()
            && self.locks.is_empty()
            && self.nodes.is_empty()
            && self.ext.is_empty()
            && self.clients.is_empty()
            && self.opens.is_empty()
            && self.leases.is_empty()
            && self.waiters.is_empty()
    }
}

/// What a transaction's result depended on, per family.
#[derive(Default)]
struct ReadSet {
    files: <files::Files as Bookkeeping>::Reads,
    locks: <locks::Locks as Bookkeeping>::Reads,
    nodes: <nodes::Nodes as Bookkeeping>::Reads,
    ext: <ext::Ext as Bookkeeping>::Reads,
    clients: <clients::Clients as Bookkeeping>::Reads,
    opens: <opens::Opens as Bookkeeping>::Reads,
    leases: <leases::LeaseFamily as Bookkeeping>::Reads,
    waiters: <waiters::Waiters as Bookkeeping>::Reads,
}

/// What one commit changed, as validation of later-committing transactions needs it.
#[derive(Default)]
struct CommitRecord {
    version: u64,
    files: <files::Files as Bookkeeping>::Changes,
    locks: <locks::Locks as Bookkeeping>::Changes,
    nodes: <nodes::Nodes as Bookkeeping>::Changes,
    ext: <ext::Ext as Bookkeeping>::Changes,
    clients: <clients::Clients as Bookkeeping>::Changes,
    opens: <opens::Opens as Bookkeeping>::Changes,
    leases: <leases::LeaseFamily as Bookkeeping>::Changes,
    waiters: <waiters::Waiters as Bookkeeping>::Changes,
}

impl CommitRecord {
    fn invalidates(&self, reads: &ReadSet) -> bool {
        files::Files::invalidates(&self.files, &reads.files)
            || locks::Locks::invalidates(&self.locks, &reads.locks)
            || nodes::Nodes::invalidates(&self.nodes, &reads.nodes)
            || ext::Ext::invalidates(&self.ext, &reads.ext)
            || clients::Clients::invalidates(&self.clients, &reads.clients)
            || opens::Opens::invalidates(&self.opens, &reads.opens)
            || leases::LeaseFamily::invalidates(&self.leases, &reads.leases)
            || waiters::Waiters::invalidates(&self.waiters, &reads.waiters)
    }
}

/// The committed state plus what validation needs.
#[derive(Default)]
struct Shared {
    version: u64,
    tables: Tables,
    /// Changes of recent commits, oldest first (ascending versions), kept
    /// while an open transaction's snapshot predates them.
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

    /// The position in the log of the first commit after `snapshot`: the log
    /// is in version order, so a binary search finds it, and validation
    /// examines only the commits a transaction did not see, however old the
    /// oldest open snapshot is.
    fn first_after(&self, snapshot: u64) -> usize {
        self.log.partition_point(|r| r.version <= snapshot)
    }

    /// True when a commit after `snapshot` changed something in `reads`.
    fn invalidated(&self, snapshot: u64, reads: &ReadSet) -> bool {
        self.log.range(self.first_after(snapshot)..).any(|record| {
            #[cfg(test)]
            tests::examined();
            record.invalidates(reads)
        })
    }
}

impl MemoryStore {
    /// [`MetadataStore::begin`] without its span.
    async fn begin_untraced(&self) -> Result<Box<dyn MetadataTransaction>> {
        let mut shared = self.lock_shared();
        let version = shared.version;
        *shared.open.entry(version).or_default() += 1;
        Ok(Box::new(MemoryTx {
            store: self.clone(),
            snapshot: version,
            working: shared.tables.clone(),
            writes: Writes::default(),
            reads: ReadSet::default(),
            freed: Default::default(),
            pending_locks: Default::default(),
        }))
    }
}

#[async_trait]
impl MetadataStore for MemoryStore {
    async fn begin(&self) -> Result<Box<dyn MetadataTransaction>> {
        traced(TxOp::Begin, "memory", self.begin_untraced()).await
    }

    /// The record checks every backend runs, plus the check that every
    /// index entry is its record's and every record has its entries.
    async fn verify(&self) -> Result<VerifyReport> {
        let mut report = verify_records(self).await?;
        let tables = self.lock_shared().tables.clone();
        report.problems.extend(tables.files.verify());
        report.problems.extend(tables.locks.verify());
        report.problems.extend(tables.clients.verify());
        report.problems.extend(tables.opens.verify());
        report.problems.extend(tables.leases.leases.verify());
        report.problems.extend(tables.leases.delegations.verify());
        report.problems.extend(tables.waiters.verify());
        Ok(report)
    }

    /// The store's in-process announcements.
    async fn wake_feed(&self, _: &crate::WaitersOptions) -> Result<crate::WakeFeed> {
        Ok(self.wake.feed())
    }
}

struct MemoryTx {
    store: MemoryStore,
    snapshot: u64,
    /// The snapshot with this transaction's own writes applied, except
    /// the lock writes still in `pending_locks`.
    working: Tables,
    writes: Writes,
    reads: ReadSet,
    /// The files whose locks or waiters this transaction deleted.
    freed: crate::waiter::FreedFiles,
    /// Lock writes logged in `writes` but not yet applied to `working`.
    pending_locks: locks::Pending,
}

impl Drop for MemoryTx {
    fn drop(&mut self) {
        self.store.lock_shared().forget_snapshot(self.snapshot);
    }
}

/// Replays a family's writes onto `tables`, noting the changes in `changes`.
fn replay<B: Bookkeeping>(
    tables: &mut B::Tables,
    writes: Vec<B::Write>,
    changes: &mut B::Changes,
) -> Result<()> {
    for write in writes {
        B::replay(tables, write, changes)?;
    }
    Ok(())
}

#[async_trait]
impl MetadataTransaction for MemoryTx {
    async fn commit(mut self: Box<Self>) -> Result<()> {
        let (freed, hub) = (self.freed.take(), self.store.wake.clone());
        freed.after_commit(
            &hub,
            traced(TxOp::Commit, "memory", self.commit_untraced()).await,
        )
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        traced(TxOp::Rollback, "memory", self.rollback_untraced()).await
    }
}

impl MemoryTx {
    /// [`MetadataTransaction::commit`] without its span.
    async fn commit_untraced(mut self: Box<Self>) -> Result<()> {
        if self.writes.is_empty() {
            // A read-only transaction saw one committed state: it serializes at its snapshot.
            return Ok(());
        }
        let store = self.store.clone();
        let mut shared = store.lock_shared();
        if shared.invalidated(self.snapshot, &self.reads) {
            return Err(Error::Conflict(
                "a transaction committed since this one began changed what it read".into(),
            ));
        }
        let alone = shared.version == self.snapshot
            && shared.open.len() == 1
            && shared.open.get(&self.snapshot) == Some(&1);
        if alone {
            // Nothing committed since this transaction's snapshot, so its
            // working tables plus its pending lock writes are exactly what
            // replaying its writes onto the committed state would build; and
            // no other transaction is open, so nobody will validate against
            // this commit's record. Publish them as they are: half the
            // tree-node copies of a replay, and no record to keep.
            let mut committed =
                std::mem::replace(&mut shared.tables, std::mem::take(&mut self.working));
            // The deferred lock writes go onto the published lock table. The
            // committed one is dropped first, so every node of the published
            // one is held once (no snapshot is open; a running `verify` may
            // hold a clone, which costs only copies) and the writes change its
            // trees in place, with no path copies and nothing to free later.
            // Unless this transaction applied lock writes before (then the
            // committed table is the only copy of the state to fall back on
            // and is kept, at the price of those copies). This runs under the
            // store's mutex (a `begin` arriving now waits for it), which no
            // open transaction can feel: there is none.
            let committed_locks = std::mem::take(&mut committed.locks);
            let fallback = self.pending_locks.settled().then_some(committed_locks);
            if let Err(corrupt) = self.pending_locks.apply(&mut shared.tables.locks) {
                // A delete found an index entry that is not the stored record
                // and undid itself: the published lock table is the committed
                // one again, or `fallback` is. Publish nothing.
                committed.locks =
                    fallback.unwrap_or_else(|| std::mem::take(&mut shared.tables.locks));
                shared.tables = committed;
                return Err(corrupt);
            }
            drop((committed, fallback));
            shared.version += 1;
            self.writes = Writes::default();
            return Ok(());
        }
        let mut tables = shared.tables.clone();
        let mut record = CommitRecord {
            version: shared.version + 1,
            ..CommitRecord::default()
        };
        let writes = std::mem::take(&mut self.writes);
        replay::<files::Files>(&mut tables.files, writes.files, &mut record.files)?;
        replay::<locks::Locks>(&mut tables.locks, writes.locks, &mut record.locks)?;
        replay::<nodes::Nodes>(&mut tables.nodes, writes.nodes, &mut record.nodes)?;
        replay::<ext::Ext>(&mut tables.ext, writes.ext, &mut record.ext)?;
        replay::<clients::Clients>(&mut tables.clients, writes.clients, &mut record.clients)?;
        replay::<opens::Opens>(&mut tables.opens, writes.opens, &mut record.opens)?;
        replay::<leases::LeaseFamily>(&mut tables.leases, writes.leases, &mut record.leases)?;
        replay::<waiters::Waiters>(&mut tables.waiters, writes.waiters, &mut record.waiters)?;
        shared.tables = tables;
        shared.version = record.version;
        shared.log.push_back(record);
        Ok(())
    }

    /// [`MetadataTransaction::rollback`] without its span.
    async fn rollback_untraced(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}
