//! The waiter family: [`Waiter`] by id, indexed by file, owner, client and node.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use super::table::{ById, Family, Table};
use super::{Bookkeeping, MemoryTx};
use crate::error::{Error, Result};
use crate::file::FileHandle;
use crate::validate;
use crate::waiter::{Waiter, WaiterQuery, WaiterStore, queue_cmp};

/// The waiter family.
pub(super) struct Waiters;

impl Family for Waiters {
    type Key = Uuid;
    type Map = ById<Self>;
    type Record = Waiter;
    type Indexes = WaiterIndexes;
    const NAME: &'static str = "waiters";
    fn key(waiter: &Waiter) -> &Uuid {
        &waiter.id
    }
}

memory_index!(ByFile: Waiters => FileHandle, |w| &w.file_id);
memory_index!(ByOwner: Waiters => str, |w| &w.owner_id);
memory_index!(ByClient: Waiters => str, |w| &w.client_id);
memory_index!(ByNode: Waiters => str, |w| &w.node_id);
memory_indexes!(pub(super) struct WaiterIndexes for Waiters {
    by_file: ByFile,
    by_owner: ByOwner,
    by_client: ByClient,
    by_node: ByNode,
});

/// A stored waiter, shared by the record map, every index and every snapshot.
type WaiterRef = Arc<Waiter>;

/// One waiter write of a transaction.
pub(super) enum Write {
    Put(WaiterRef),
    Delete(Uuid),
}

/// What a transaction read of the waiters: ids it looked up, queries it ran.
#[derive(Default)]
pub(super) struct Reads {
    ids: HashSet<Uuid>,
    queries: Vec<WaiterQuery>,
}

/// The waiters a commit changed: record before, record after.
#[derive(Default)]
pub(super) struct Changes(Vec<(Option<WaiterRef>, Option<WaiterRef>)>);

impl Bookkeeping for Waiters {
    type Tables = Table<Waiters>;
    type Write = Write;
    type Reads = Reads;
    type Changes = Changes;

    fn replay(table: &mut Table<Waiters>, write: Write, changes: &mut Changes) -> Result<()> {
        match write {
            Write::Put(waiter) => {
                let old = table.put(waiter.clone());
                changes.0.push((old, Some(waiter)));
            }
            Write::Delete(id) => {
                let old = table.delete(&id);
                changes.0.push((old, None));
            }
        }
        Ok(())
    }

    fn invalidates(changes: &Changes, reads: &Reads) -> bool {
        changes.0.iter().any(|(old, new)| {
            [old, new].into_iter().flatten().any(|waiter| {
                reads.ids.contains(&waiter.id) || reads.queries.iter().any(|q| q.matches(waiter))
            })
        })
    }
}

/// Every stored waiter matching `query` in queue order, found through its
/// most selective index (all waiters when it sets no field).
fn matching(table: &Table<Waiters>, query: &WaiterQuery) -> Result<Vec<WaiterRef>> {
    let candidates = if let Some(file) = &query.file_id {
        table.find(|ix| &ix.by_file, file)?
    } else if let Some(owner) = &query.owner_id {
        table.find(|ix| &ix.by_owner, owner.as_str())?
    } else if let Some(client) = &query.client_id {
        table.find(|ix| &ix.by_client, client.as_str())?
    } else if let Some(node) = &query.node_id {
        table.find(|ix| &ix.by_node, node.as_str())?
    } else {
        table.iter().cloned().collect()
    };
    let mut found: Vec<WaiterRef> = candidates
        .into_iter()
        .filter(|w| query.matches(w))
        .collect();
    found.sort_by(|a, b| queue_cmp(a, b));
    Ok(found)
}

#[async_trait]
impl WaiterStore for MemoryTx {
    async fn put_waiter(&mut self, waiter: &Waiter) -> Result<()> {
        validate::waiter(waiter)?;
        let waiter = Arc::new(waiter.clone());
        self.working.waiters.put(waiter.clone());
        self.writes.waiters.push(Write::Put(waiter));
        Ok(())
    }

    async fn get_waiter(&mut self, id: Uuid) -> Result<Option<Waiter>> {
        self.reads.waiters.ids.insert(id);
        Ok(self.working.waiters.get(&id).map(|w| Waiter::clone(w)))
    }

    async fn delete_waiter(&mut self, id: Uuid) -> Result<bool> {
        self.reads.waiters.ids.insert(id);
        let Some(old) = self.working.waiters.delete(&id) else {
            return Ok(false);
        };
        self.freed.note(&old.file_id);
        self.writes.waiters.push(Write::Delete(id));
        Ok(true)
    }

    async fn list_waiters(&mut self, query: &WaiterQuery) -> Result<Vec<Waiter>> {
        validate::waiter_query(query)?;
        self.reads.waiters.queries.push(query.clone());
        Ok(matching(&self.working.waiters, query)?
            .iter()
            .map(|w| Waiter::clone(w))
            .collect())
    }

    async fn delete_waiters(&mut self, query: &WaiterQuery) -> Result<u64> {
        validate::waiter_query(query)?;
        if query.is_empty() {
            return Err(Error::Invalid(
                "delete_waiters: the query sets no field (it would delete every waiter)".into(),
            ));
        }
        let found = matching(&self.working.waiters, query)?;
        self.reads.waiters.queries.push(query.clone());
        for waiter in &found {
            self.working.waiters.delete(&waiter.id);
            self.freed.note(&waiter.file_id);
            self.writes.waiters.push(Write::Delete(waiter.id));
        }
        Ok(found.len() as u64)
    }

    async fn list_waiters_page(
        &mut self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Waiter>> {
        validate::page_limit(limit)?;
        self.reads.waiters.queries.push(WaiterQuery::default());
        Ok(self
            .working
            .waiters
            .page(after.as_ref(), limit)
            .iter()
            .map(|w| Waiter::clone(w))
            .collect())
    }
}
