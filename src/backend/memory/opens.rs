//! The open family (`OpenRecord` by id, indexed by file, client, share,
//! create GUID, app instance id and disconnect time), plus the bookkeeping
//! the three open-state families (opens, leases, delegations) share: each is
//! a table of records keyed by a `Uuid`, read by id or by a query.

use std::collections::HashSet;
use std::ops::Bound;
use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use super::table::{ById, Family, Table};
use super::{Bookkeeping, MemoryTx};
use crate::error::Result;
use crate::open::{OpenQuery, OpenRecord, OpenStore};
use crate::time::Timestamp;
use crate::validate;

/// A record of an open-state family, and the query that selects its records.
pub(super) trait Keyed: Send + Sync + 'static {
    /// The query type.
    type Query: Clone + Send + Sync;
    /// The record's id.
    fn id(&self) -> Uuid;
    /// True when `query` selects this record.
    fn selected_by(&self, query: &Self::Query) -> bool;
}

/// One write of an open-state family.
pub(super) enum Write<R> {
    Put(Arc<R>),
    Delete(Uuid),
}

/// What a transaction read of an open-state family: ids, queries, pages.
pub(super) struct Reads<R: Keyed> {
    pub(super) ids: HashSet<Uuid>,
    pub(super) queries: Vec<R::Query>,
    /// A page walk over every record.
    pub(super) all: bool,
}

impl<R: Keyed> Default for Reads<R> {
    fn default() -> Self {
        Reads {
            ids: HashSet::new(),
            queries: Vec::new(),
            all: false,
        }
    }
}

/// What a commit changed: record before, record after.
pub(super) struct Changes<R>(Vec<Change<R>>);

/// One changed record: before, after.
type Change<R> = (Option<Arc<R>>, Option<Arc<R>>);

impl<R> Default for Changes<R> {
    fn default() -> Self {
        Changes(Vec::new())
    }
}

/// Replays one write onto `table`, noting the change.
pub(super) fn replay<F>(
    table: &mut Table<F>,
    write: Write<F::Record>,
    changes: &mut Changes<F::Record>,
) where
    F: Family<Key = Uuid>,
    F::Record: Keyed,
{
    match write {
        Write::Put(record) => {
            let old = table.put(record.clone());
            changes.0.push((old, Some(record)));
        }
        Write::Delete(id) => {
            let old = table.delete(&id);
            changes.0.push((old, None));
        }
    }
}

/// True when a change touched a record the reads looked up or selected.
pub(super) fn invalidates<R: Keyed>(changes: &Changes<R>, reads: &Reads<R>) -> bool {
    (reads.all && !changes.0.is_empty())
        || changes.0.iter().any(|(old, new)| {
            [old, new].into_iter().flatten().any(|r| {
                reads.ids.contains(&r.id()) || reads.queries.iter().any(|q| r.selected_by(q))
            })
        })
}

/// The shared operations of an open-state family over a working table, its
/// write log and its read set.
pub(super) struct Ops<'a, F: Family<Key = Uuid>>
where
    F::Record: Keyed,
{
    pub(super) table: &'a mut Table<F>,
    pub(super) writes: &'a mut Vec<Write<F::Record>>,
    pub(super) reads: &'a mut Reads<F::Record>,
}

impl<F: Family<Key = Uuid>> Ops<'_, F>
where
    F::Record: Keyed + Clone,
{
    pub(super) fn put(&mut self, record: &F::Record) {
        let record = Arc::new(record.clone());
        self.table.put(record.clone());
        self.writes.push(Write::Put(record));
    }

    pub(super) fn get(&mut self, id: Uuid) -> Option<F::Record> {
        self.reads.ids.insert(id);
        self.table.get(&id).map(|r| F::Record::clone(r))
    }

    pub(super) fn delete(&mut self, id: Uuid) -> bool {
        self.reads.ids.insert(id);
        let existed = self.table.delete(&id).is_some();
        if existed {
            self.writes.push(Write::Delete(id));
        }
        existed
    }

    pub(super) fn page(&mut self, after: Option<Uuid>, limit: usize) -> Result<Vec<F::Record>> {
        validate::page_limit(limit)?;
        self.reads.all = true;
        Ok(self
            .table
            .page(after.as_ref(), limit)
            .iter()
            .map(|r| F::Record::clone(r))
            .collect())
    }

    /// Notes the query as read and returns `candidates` it selects, in id order.
    pub(super) fn select(
        &mut self,
        query: &<F::Record as Keyed>::Query,
        candidates: Vec<Arc<F::Record>>,
        sort: bool,
    ) -> Vec<F::Record> {
        self.reads.queries.push(query.clone());
        let mut out: Vec<F::Record> = candidates
            .iter()
            .filter(|r| r.selected_by(query))
            .map(|r| F::Record::clone(r))
            .collect();
        if sort {
            out.sort_unstable_by_key(Keyed::id);
        }
        out
    }
}

impl Keyed for OpenRecord {
    type Query = OpenQuery;
    fn id(&self) -> Uuid {
        self.id
    }
    fn selected_by(&self, query: &OpenQuery) -> bool {
        query.matches(self)
    }
}

/// The open family.
pub(super) struct Opens;

impl Family for Opens {
    type Key = Uuid;
    type Map = ById<Self>;
    type Record = OpenRecord;
    type Indexes = OpenIndexes;
    const NAME: &'static str = "opens";
    fn key(open: &OpenRecord) -> &Uuid {
        &open.id
    }
}

memory_index!(ByFile: Opens => crate::file::FileHandle, |o| &o.file);
memory_index!(ByClient: Opens => str, |o| &o.client_id);
memory_index!(ByShare: Opens => str, |o| &o.share_name);
memory_index!(ByCreateGuid: Opens => Option<Uuid>, |o| &o.create_guid);
memory_index!(ByAppInstance: Opens => Option<Uuid>, |o| &o.app_instance_id);
memory_index!(ByDisconnect: Opens => Option<Timestamp>, |o| &o.disconnected_at);
memory_indexes!(pub(super) struct OpenIndexes for Opens {
    by_file: ByFile,
    by_client: ByClient,
    by_share: ByShare,
    by_create_guid: ByCreateGuid,
    by_app_instance: ByAppInstance,
    by_disconnect: ByDisconnect,
});

impl Bookkeeping for Opens {
    type Tables = Table<Opens>;
    type Write = Write<OpenRecord>;
    type Reads = Reads<OpenRecord>;
    type Changes = Changes<OpenRecord>;
    fn replay(
        table: &mut Table<Opens>,
        write: Self::Write,
        changes: &mut Self::Changes,
    ) -> Result<()> {
        replay(table, write, changes);
        Ok(())
    }
    fn invalidates(changes: &Self::Changes, reads: &Self::Reads) -> bool {
        invalidates(changes, reads)
    }
}

impl MemoryTx {
    fn opens(&mut self) -> Ops<'_, Opens> {
        Ops {
            table: &mut self.working.opens,
            writes: &mut self.writes.opens,
            reads: &mut self.reads.opens,
        }
    }
}

#[async_trait]
impl OpenStore for MemoryTx {
    async fn put_open(&mut self, open: &OpenRecord) -> Result<()> {
        validate::open(open)?;
        self.opens().put(open);
        Ok(())
    }

    async fn get_open(&mut self, id: Uuid) -> Result<Option<OpenRecord>> {
        Ok(self.opens().get(id))
    }

    async fn delete_open(&mut self, id: Uuid) -> Result<bool> {
        Ok(self.opens().delete(id))
    }

    /// Through the most selective index the query sets (the same order as fjall's).
    async fn list_opens(&mut self, query: &OpenQuery) -> Result<Vec<OpenRecord>> {
        validate::open_query(query)?;
        let t = &self.working.opens;
        let (candidates, sort) = if let Some(guid) = query.create_guid {
            (t.find(|ix| &ix.by_create_guid, &Some(guid))?, false)
        } else if let Some(file) = &query.file {
            (t.find(|ix| &ix.by_file, file)?, false)
        } else if let Some(app) = query.app_instance_id {
            (t.find(|ix| &ix.by_app_instance, &Some(app))?, false)
        } else if let Some(client) = &query.client_id {
            (t.find(|ix| &ix.by_client, client.as_str())?, false)
        } else if let Some(share) = &query.share_name {
            (t.find(|ix| &ix.by_share, share.as_str())?, false)
        } else if let Some(before) = query.disconnected_before {
            let lo = Some(Timestamp::from_micros(i64::MIN));
            let hi = Some(before);
            let found = t.find_range(
                |ix| &ix.by_disconnect,
                Bound::Included(&lo),
                Bound::Excluded(&hi),
            )?;
            (found, true)
        } else {
            (t.iter().cloned().collect(), false)
        };
        Ok(self.opens().select(query, candidates, sort))
    }

    async fn list_opens_page(
        &mut self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<OpenRecord>> {
        self.opens().page(after, limit)
    }
}
