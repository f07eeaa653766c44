//! The lock family: `PersistedLock` by id, indexed by file, owner, client,
//! share and epoch.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::ops::Bound;
use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use super::table::{ById, Confirm, Doomed, Family, Table};
use super::{Bookkeeping, MemoryTx};
use crate::error::{Error, Result};
use crate::file::FileHandle;
use crate::lock::{LockQuery, LockStore, PersistedLock};
use crate::validate;

/// The lock family.
pub(super) struct Locks;

impl Family for Locks {
    type Key = Uuid;
    type Map = ById<Self>;
    type Record = PersistedLock;
    type Indexes = LockIndexes;
    const NAME: &'static str = "locks";
    fn key(lock: &PersistedLock) -> &Uuid {
        &lock.id
    }
    /// The client's: a client's locks are deleted together (its lease
    /// expired, or it rebooted), so the share and epoch groups keep them
    /// side by side. A hash, so the entries stay fixed-size.
    fn cluster(lock: &PersistedLock) -> u64 {
        let mut hasher = std::hash::DefaultHasher::new();
        lock.client_id.hash(&mut hasher);
        hasher.finish()
    }
}

memory_index!(ByFile: Locks => FileHandle, |l| &l.file_id);
memory_index!(ByOwner: Locks => str, |l| &l.owner_id);
memory_index!(ByClient: Locks => str, |l| &l.client_id);
memory_index!(ByShare: Locks => str, |l| &l.share_name);
memory_index!(ByEpoch: Locks => u64, |l| &l.server_epoch);
memory_indexes!(pub(super) struct LockIndexes for Locks {
    by_file: ByFile,
    by_owner: ByOwner,
    by_client: ByClient,
    // Most locks share one of a few shares and epochs: grouped (see `GroupSet`).
    by_share: ByShare as GroupSet,
    by_epoch: ByEpoch as GroupSet,
});

/// A stored lock, shared by the record map, every index and every snapshot.
type LockRef = Arc<PersistedLock>;

/// One lock write of a transaction.
pub(super) enum Write {
    Put(LockRef),
    /// The delete of an id, with the record found through an index and not
    /// yet confirmed against the record map ([`Confirm::AtDelete`]), if so.
    Delete(Uuid, Option<LockRef>),
}

/// What a transaction read of the locks: ids it looked up, queries it ran.
#[derive(Default)]
pub(super) struct Reads {
    ids: HashSet<Uuid>,
    queries: Vec<LockQuery>,
}

/// The locks a commit changed: record before, record after.
#[derive(Default)]
pub(super) struct Changes(Vec<(Option<LockRef>, Option<LockRef>)>);

impl Bookkeeping for Locks {
    type Tables = Table<Locks>;
    type Write = Write;
    type Reads = Reads;
    type Changes = Changes;

    fn replay(table: &mut Table<Locks>, write: Write, changes: &mut Changes) -> Result<()> {
        match write {
            Write::Put(lock) => {
                let old = table.put(lock.clone());
                changes.0.push((old, Some(lock)));
            }
            Write::Delete(id, found) => {
                let old = table.delete(&id);
                if let Some(found) = found {
                    // Validation passed, so no commit since the snapshot
                    // changed this record: the one found must still be there.
                    if !old.as_ref().is_some_and(|old| Arc::ptr_eq(old, &found)) {
                        return Err(found_not_stored(id));
                    }
                }
                changes.0.push((old, None));
            }
        }
        Ok(())
    }

    fn invalidates(changes: &Changes, reads: &Reads) -> bool {
        changes.0.iter().any(|(old, new)| {
            [old, new].into_iter().flatten().any(|lock| {
                reads.ids.contains(&lock.id) || reads.queries.iter().any(|q| q.matches(lock))
            })
        })
    }
}

/// Lock writes a transaction made but has not applied to its working tables
/// yet: the record each id gets, the last write of each id, and what a bulk
/// delete found for it through an index, still to be confirmed
/// ([`PendingWrite`]).
///
/// Why deferred: a write applied to the working tables copies the tree path
/// of its key in the record map and in every index (the snapshot shares the
/// committed nodes), and the commit then frees the committed originals. For
/// a bulk delete whose locks are scattered over a big store (random ids)
/// that is a few node copies per lock per tree, which grows with the store;
/// for a write-only transaction (a load, a grant whose reads came first) it
/// is every put's path, copied once and freed once. Deferred, the writes are
/// applied at commit: onto the committed tables themselves when the
/// transaction commits alone (nobody else holds their nodes, so the trees
/// are changed in place, without copies), by the replay otherwise. Before
/// then, a read by id (`get_lock`, `delete_lock`, `delete_locks`) looks here
/// first ([`MemoryTx::lock`]); `list_locks` and `list_locks_page` apply them
/// first ([`MemoryTx::settled_locks`]); a delete by client or file applies
/// them when a put is pending and otherwise skips the pending deletes' ids.
/// So the transaction always reads its own writes.
#[derive(Default)]
pub(super) struct Pending {
    writes: HashMap<Uuid, PendingWrite>,
    /// Whether `writes` may hold a put (the scans that skip pending deletes
    /// by id cannot add pending puts, so they settle first).
    puts: bool,
    /// Whether writes were applied to the working tables before the commit
    /// (they then differ from the snapshot's).
    settled: bool,
}

/// The last pending write of one id, and what it must find stored.
struct PendingWrite {
    /// The record the id gets; `None`: deleted.
    record: Option<LockRef>,
    /// The record a bulk delete of this transaction found for the id through
    /// an index, unconfirmed ([`Doomed::found`]). Whatever was written
    /// after, the stored record must be this one, or the index was corrupt.
    found: Option<LockRef>,
}

impl Pending {
    /// Records a put of `lock`, superseding any pending write of its id
    /// (but not what a bulk delete found for it).
    fn put(&mut self, lock: LockRef) {
        let id = lock.id;
        self.entry(id).record = Some(lock);
        self.puts = true;
    }

    /// Records the delete of `id` (`found`: the record an index gave,
    /// unconfirmed), superseding any pending write of it.
    fn delete(&mut self, id: Uuid, found: Option<LockRef>) {
        let write = self.entry(id);
        write.record = None;
        if found.is_some() {
            write.found = found;
        }
    }

    /// The pending write of `id`, made if there is none.
    fn entry(&mut self, id: Uuid) -> &mut PendingWrite {
        self.writes.entry(id).or_insert(PendingWrite {
            record: None,
            found: None,
        })
    }

    /// The pending write of `id` (`Some(None)`: a delete), once what a bulk
    /// delete found for it is confirmed to be what `table` stores.
    fn get(&self, id: &Uuid, table: &Table<Locks>) -> Result<Option<Option<&LockRef>>> {
        let Some(write) = self.writes.get(id) else {
            return Ok(None);
        };
        if let Some(found) = &write.found {
            confirm_found(table, *id, found)?;
        }
        Ok(Some(write.record.as_ref()))
    }

    /// Whether writes were applied before the commit (the working lock
    /// table then differs from the snapshot's).
    pub(super) fn settled(&self) -> bool {
        self.settled
    }

    /// Applies the writes to `table`: the deletes in one bulk delete, the
    /// puts in id order; and forgets them. A write whose id a bulk delete
    /// found through a corrupt index entry (the stored record is another,
    /// or none) fails with [`Error::Corrupt`] and leaves `table` and the
    /// writes as they were, so a later commit fails the same way.
    pub(super) fn apply(&mut self, table: &mut Table<Locks>) -> Result<()> {
        if self.writes.is_empty() {
            return Ok(());
        }
        // A put over an id a bulk delete found is checked here, before
        // anything changes; the deletes are checked by their removal.
        for (id, write) in &self.writes {
            if let (Some(_), Some(found)) = (&write.record, &write.found) {
                confirm_found(table, *id, found)?;
            }
        }
        let (mut puts, mut deletes) = (Vec::new(), Vec::new());
        for (key, PendingWrite { record, found }) in self.writes.drain() {
            match record {
                Some(lock) => puts.push((lock, found)),
                None => deletes.push(Doomed { key, found }),
            }
        }
        if let Err(corrupt) = table.delete_all(&mut deletes) {
            // Put back as they were: the deletes, then the puts.
            for Doomed { key, found } in deletes {
                self.writes.insert(
                    key,
                    PendingWrite {
                        record: None,
                        found,
                    },
                );
            }
            for (lock, found) in puts {
                let id = lock.id;
                let record = Some(lock);
                self.writes.insert(id, PendingWrite { record, found });
            }
            return Err(corrupt);
        }
        puts.sort_unstable_by_key(|(lock, _)| lock.id);
        for (lock, _) in puts {
            table.put(lock);
        }
        self.puts = false;
        self.settled = true;
        Ok(())
    }
}

/// Checks that `found` (what a bulk delete found for `id` through an index)
/// is the record `table` stores under `id`.
fn confirm_found(table: &Table<Locks>, id: Uuid, found: &LockRef) -> Result<()> {
    match table.get(&id) {
        Some(stored) if Arc::ptr_eq(stored, found) => Ok(()),
        _ => Err(found_not_stored(id)),
    }
}

/// The error for a lock a bulk delete found through an index entry that is
/// not the record stored under `id`.
fn found_not_stored(id: Uuid) -> Error {
    Error::Corrupt(format!(
        "memory locks: {id}: a bulk delete found it through an index entry \
         that is not the stored record"
    ))
}

/// Every stored lock matching `query`, in id order, found through its most
/// selective index (all locks when it sets no field).
fn matching(table: &Table<Locks>, query: &LockQuery, confirm: Confirm) -> Result<Vec<LockRef>> {
    let candidates = if let Some(file) = &query.file_id {
        table.find_as(|ix| &ix.by_file, file, confirm)?
    } else if let Some(client) = &query.client_id {
        table.find_as(|ix| &ix.by_client, client.as_str(), confirm)?
    } else if let Some(owner) = &query.owner_id {
        table.find_as(|ix| &ix.by_owner, owner.as_str(), confirm)?
    } else if let Some(share) = &query.share_name {
        let share = share.as_str();
        table.find_grouped(
            |ix| &ix.by_share,
            Bound::Included(share),
            Bound::Included(share),
            confirm,
        )?
    } else if let Some(epoch) = query.server_epoch {
        table.find_grouped(
            |ix| &ix.by_epoch,
            Bound::Included(&epoch),
            Bound::Included(&epoch),
            confirm,
        )?
    } else if let Some(below) = query.server_epoch_below {
        table.find_grouped(
            |ix| &ix.by_epoch,
            Bound::Unbounded,
            Bound::Excluded(&below),
            confirm,
        )?
    } else {
        return Ok(table.iter().filter(|l| query.matches(l)).cloned().collect());
    };
    Ok(candidates
        .into_iter()
        .filter(|l| query.matches(l))
        .collect())
}

#[async_trait]
impl LockStore for MemoryTx {
    async fn put_lock(&mut self, lock: &PersistedLock) -> Result<()> {
        validate::lock(lock)?;
        let lock = Arc::new(lock.clone());
        // The last write of an id wins.
        self.pending_locks.put(lock.clone());
        self.writes.locks.push(Write::Put(lock));
        Ok(())
    }

    async fn get_lock(&mut self, id: Uuid) -> Result<Option<PersistedLock>> {
        self.reads.locks.ids.insert(id);
        Ok(self.lock(id)?.map(|l| PersistedLock::clone(l)))
    }

    async fn delete_lock(&mut self, id: Uuid) -> Result<()> {
        self.reads.locks.ids.insert(id);
        let old = self.lock(id)?.cloned().ok_or(Error::LockNotFound(id))?;
        self.defer_delete(old, Confirm::Now);
        Ok(())
    }

    async fn list_locks_page(
        &mut self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<PersistedLock>> {
        validate::page_limit(limit)?;
        self.reads.locks.queries.push(LockQuery::default());
        Ok(self
            .settled_locks()?
            .page(after.as_ref(), limit)
            .iter()
            .map(|l| PersistedLock::clone(l))
            .collect())
    }

    async fn list_locks(&mut self, query: &LockQuery) -> Result<Vec<PersistedLock>> {
        validate::query(query)?;
        self.reads.locks.queries.push(query.clone());
        Ok(matching(self.settled_locks()?, query, Confirm::Now)?
            .iter()
            .map(|l| PersistedLock::clone(l))
            .collect())
    }

    async fn delete_locks_by_client(&mut self, client_id: &str) -> Result<u64> {
        validate::id("client_id", client_id)?;
        self.delete_matching(LockQuery::by_client(client_id))
    }

    async fn delete_locks_by_file(&mut self, file: &FileHandle) -> Result<u64> {
        validate::file_handle(file)?;
        self.delete_matching(LockQuery::by_file(file))
    }

    /// One lookup per id, the deletes deferred ([`Pending`]): costs what it deletes.
    async fn delete_locks(&mut self, ids: &[Uuid]) -> Result<u64> {
        let mut deleted = 0;
        for &id in ids {
            self.reads.locks.ids.insert(id);
            if let Some(old) = self.lock(id)?.cloned() {
                self.defer_delete(old, Confirm::Now);
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}

impl MemoryTx {
    /// Deletes every lock matching `query`, found through its index, the
    /// deletes deferred ([`Pending`]): costs what it deletes, except in the
    /// record map (see [`Table::delete_all`]). The entries found are
    /// confirmed by their removal from the record map
    /// ([`Confirm::AtDelete`]): one visit there per lock instead of two, and
    /// the record map is the structure whose visits grow with the store
    /// (ordered by random ids). So a corrupt index entry fails the commit,
    /// or the next read that applies the pending writes or reads its id,
    /// instead of this call, and the count returned includes it.
    fn delete_matching(&mut self, query: LockQuery) -> Result<u64> {
        if self.pending_locks.puts {
            self.settled_locks()?;
        }
        // Only deletes are pending now: the scan skips their ids.
        let pending = &self.pending_locks.writes;
        let locks: Vec<LockRef> = matching(&self.working.locks, &query, Confirm::AtDelete)?
            .into_iter()
            .filter(|lock| !pending.contains_key(&lock.id))
            .collect();
        // In id order: one id twice is an index with two entries for it.
        if let Some(twice) = locks.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(Error::Corrupt(format!(
                "memory locks: an index has two entries for {}",
                twice[0].id
            )));
        }
        self.reads.locks.queries.push(query);
        let deleted = locks.len() as u64;
        for lock in locks {
            self.defer_delete(lock, Confirm::AtDelete);
        }
        Ok(deleted)
    }

    /// The lock stored under `id` as this transaction sees it (its pending
    /// writes applied); `Corrupt` if a bulk delete of this transaction found
    /// it through an index entry that is not the stored record.
    fn lock(&self, id: Uuid) -> Result<Option<&LockRef>> {
        Ok(match self.pending_locks.get(&id, &self.working.locks)? {
            Some(write) => write,
            None => self.working.locks.get(&id),
        })
    }

    /// Logs the delete of `lock` (as this transaction sees it) and defers
    /// applying it. `confirm`: whether `lock` came from the record map or
    /// the pending writes (`Now`: deleted as whatever is stored) or from an
    /// index, unconfirmed (`AtDelete`: it must be what is stored).
    fn defer_delete(&mut self, lock: LockRef, confirm: Confirm) {
        self.freed.note(&lock.file_id);
        let id = lock.id;
        let found = (confirm == Confirm::AtDelete).then_some(lock);
        self.writes.locks.push(Write::Delete(id, found.clone()));
        self.pending_locks.delete(id, found);
    }

    /// The working lock table with the pending writes applied: what the
    /// list reads go through (see [`Pending`] for the others).
    fn settled_locks(&mut self) -> Result<&Table<Locks>> {
        self.pending_locks.apply(&mut self.working.locks)?;
        Ok(&self.working.locks)
    }
}
