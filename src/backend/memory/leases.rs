//! The lease family (`LeaseRecord` by id, indexed by file, client and lease
//! key) and the delegation family (`DelegationRecord` by id, indexed by file
//! and client), over the bookkeeping in `opens.rs`.

use async_trait::async_trait;
use uuid::Uuid;

use super::opens::{Changes, Keyed, Ops, Reads, Write, invalidates, replay};
use super::table::{ById, Family, Table};
use super::{Bookkeeping, MemoryTx};
use crate::error::Result;
use crate::file::FileHandle;
use crate::open::{
    DelegationQuery, DelegationRecord, LeaseKey, LeaseQuery, LeaseRecord, LeaseStore,
};
use crate::validate;

impl Keyed for LeaseRecord {
    type Query = LeaseQuery;
    fn id(&self) -> Uuid {
        self.id
    }
    fn selected_by(&self, query: &LeaseQuery) -> bool {
        query.matches(self)
    }
}

impl Keyed for DelegationRecord {
    type Query = DelegationQuery;
    fn id(&self) -> Uuid {
        self.id
    }
    fn selected_by(&self, query: &DelegationQuery) -> bool {
        query.matches(self)
    }
}

/// The lease family.
pub(super) struct Leases;

impl Family for Leases {
    type Key = Uuid;
    type Map = ById<Self>;
    type Record = LeaseRecord;
    type Indexes = LeaseIndexes;
    const NAME: &'static str = "leases";
    fn key(lease: &LeaseRecord) -> &Uuid {
        &lease.id
    }
}

memory_index!(LeaseByFile: Leases => FileHandle, |l| &l.file);
memory_index!(LeaseByClient: Leases => str, |l| &l.client_id);
memory_index!(LeaseByKey: Leases => LeaseKey, |l| &l.lease_key);
memory_indexes!(pub(super) struct LeaseIndexes for Leases {
    by_file: LeaseByFile,
    by_client: LeaseByClient,
    by_key: LeaseByKey,
});

/// The delegation family.
pub(super) struct Delegations;

impl Family for Delegations {
    type Key = Uuid;
    type Map = ById<Self>;
    type Record = DelegationRecord;
    type Indexes = DelegationIndexes;
    const NAME: &'static str = "delegations";
    fn key(delegation: &DelegationRecord) -> &Uuid {
        &delegation.id
    }
}

memory_index!(DelegationByFile: Delegations => FileHandle, |d| &d.file);
memory_index!(DelegationByClient: Delegations => str, |d| &d.client_id);
memory_indexes!(pub(super) struct DelegationIndexes for Delegations {
    by_file: DelegationByFile,
    by_client: DelegationByClient,
});

/// Leases and delegations: one field of `Tables`, `Writes`, `ReadSet` and
/// `CommitRecord` each, as one family of the store.
pub(super) struct LeaseFamily;

/// The two tables.
#[derive(Clone, Default)]
pub(super) struct LeaseTables {
    pub(super) leases: Table<Leases>,
    pub(super) delegations: Table<Delegations>,
}

/// One write of either table.
pub(super) enum LeaseWrite {
    Lease(Write<LeaseRecord>),
    Delegation(Write<DelegationRecord>),
}

/// What a transaction read of either table.
#[derive(Default)]
pub(super) struct LeaseReads {
    leases: Reads<LeaseRecord>,
    delegations: Reads<DelegationRecord>,
}

/// What a commit changed in either table.
#[derive(Default)]
pub(super) struct LeaseChanges {
    leases: Changes<LeaseRecord>,
    delegations: Changes<DelegationRecord>,
}

impl Bookkeeping for LeaseFamily {
    type Tables = LeaseTables;
    type Write = LeaseWrite;
    type Reads = LeaseReads;
    type Changes = LeaseChanges;
    fn replay(
        tables: &mut LeaseTables,
        write: LeaseWrite,
        changes: &mut LeaseChanges,
    ) -> Result<()> {
        match write {
            LeaseWrite::Lease(w) => replay(&mut tables.leases, w, &mut changes.leases),
            LeaseWrite::Delegation(w) => {
                replay(&mut tables.delegations, w, &mut changes.delegations)
            }
        }
        Ok(())
    }
    fn invalidates(changes: &LeaseChanges, reads: &LeaseReads) -> bool {
        invalidates(&changes.leases, &reads.leases)
            || invalidates(&changes.delegations, &reads.delegations)
    }
}

/// Runs `f` on the lease table's operations and moves its writes to the log.
macro_rules! with_table {
    ($tx:expr, $field:ident, $variant:ident, |$ops:ident| $body:expr) => {{
        let mut writes = Vec::new();
        let mut $ops = Ops {
            table: &mut $tx.working.leases.$field,
            writes: &mut writes,
            reads: &mut $tx.reads.leases.$field,
        };
        let out = $body;
        $tx.writes
            .leases
            .extend(writes.into_iter().map(LeaseWrite::$variant));
        out
    }};
}

#[async_trait]
impl LeaseStore for MemoryTx {
    async fn put_lease(&mut self, lease: &LeaseRecord) -> Result<()> {
        validate::lease(lease)?;
        with_table!(self, leases, Lease, |ops| ops.put(lease));
        Ok(())
    }

    async fn get_lease(&mut self, id: Uuid) -> Result<Option<LeaseRecord>> {
        Ok(with_table!(self, leases, Lease, |ops| ops.get(id)))
    }

    async fn delete_lease(&mut self, id: Uuid) -> Result<bool> {
        Ok(with_table!(self, leases, Lease, |ops| ops.delete(id)))
    }

    async fn list_leases(&mut self, query: &LeaseQuery) -> Result<Vec<LeaseRecord>> {
        validate::lease_query(query)?;
        let t = &self.working.leases.leases;
        let candidates = if let Some(file) = &query.file {
            t.find(|ix| &ix.by_file, file)?
        } else if let Some(key) = &query.lease_key {
            t.find(|ix| &ix.by_key, key)?
        } else if let Some(client) = &query.client_id {
            t.find(|ix| &ix.by_client, client.as_str())?
        } else {
            t.iter().cloned().collect()
        };
        Ok(with_table!(self, leases, Lease, |ops| ops
            .select(query, candidates, false)))
    }

    async fn list_leases_page(
        &mut self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<LeaseRecord>> {
        with_table!(self, leases, Lease, |ops| ops.page(after, limit))
    }

    async fn put_delegation(&mut self, delegation: &DelegationRecord) -> Result<()> {
        validate::delegation(delegation)?;
        with_table!(self, delegations, Delegation, |ops| ops.put(delegation));
        Ok(())
    }

    async fn get_delegation(&mut self, id: Uuid) -> Result<Option<DelegationRecord>> {
        Ok(with_table!(self, delegations, Delegation, |ops| ops.get(id)))
    }

    async fn delete_delegation(&mut self, id: Uuid) -> Result<bool> {
        Ok(with_table!(self, delegations, Delegation, |ops| ops.delete(id)))
    }

    /// Through the file or client index; `revoked` alone walks every delegation.
    async fn list_delegations(&mut self, query: &DelegationQuery) -> Result<Vec<DelegationRecord>> {
        validate::delegation_query(query)?;
        let t = &self.working.leases.delegations;
        let candidates = if let Some(file) = &query.file {
            t.find(|ix| &ix.by_file, file)?
        } else if let Some(client) = &query.client_id {
            t.find(|ix| &ix.by_client, client.as_str())?
        } else {
            t.iter().cloned().collect()
        };
        Ok(with_table!(self, delegations, Delegation, |ops| ops
            .select(query, candidates, false)))
    }

    async fn list_delegations_page(
        &mut self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<DelegationRecord>> {
        with_table!(self, delegations, Delegation, |ops| ops.page(after, limit))
    }
}
