//! The node family: the global epoch counter, node states by id and epoch
//! records by epoch.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;

use super::table::{Family, Ordered, Table};
use super::{Bookkeeping, MemoryTx};
use crate::error::{Error, Result};
use crate::node::{EpochRecord, NodeState, NodeStore};
use crate::validate;

/// The node family (its bookkeeping covers the counter and both tables).
pub(super) struct Nodes;

impl Family for Nodes {
    type Key = String;
    type Map = Ordered<Self>;
    type Record = NodeState;
    type Indexes = NodeIndexes;
    const NAME: &'static str = "nodes";
    fn key(node: &NodeState) -> &String {
        &node.node_id
    }
}

memory_indexes!(pub(super) struct NodeIndexes for Nodes {});

/// Epoch records, by epoch.
pub(super) struct EpochRecords;

impl Family for EpochRecords {
    type Key = u64;
    type Map = Ordered<Self>;
    type Record = EpochRecord;
    type Indexes = EpochRecordIndexes;
    const NAME: &'static str = "epoch_records";
    fn key(record: &EpochRecord) -> &u64 {
        &record.epoch
    }
}

memory_indexes!(pub(super) struct EpochRecordIndexes for EpochRecords {});

/// The node family's state.
#[derive(Clone, Default)]
pub(super) struct NodeTables {
    epoch: u64,
    nodes: Table<Nodes>,
    epoch_records: Table<EpochRecords>,
}

/// One node-family write of a transaction.
pub(super) enum Write {
    Epoch(u64),
    PutNode(Arc<NodeState>),
    PutEpochRecord(Arc<EpochRecord>),
}

/// What a transaction read of the node family.
#[derive(Default)]
pub(super) struct Reads {
    epoch: bool,
    nodes: HashSet<String>,
    all_nodes: bool,
    epoch_records: bool,
}

/// What a commit changed in the node family.
#[derive(Default)]
pub(super) struct Changes {
    epoch: bool,
    nodes: Vec<String>,
    epoch_records: bool,
}

impl Bookkeeping for Nodes {
    type Tables = NodeTables;
    type Write = Write;
    type Reads = Reads;
    type Changes = Changes;

    fn replay(tables: &mut NodeTables, write: Write, changes: &mut Changes) -> Result<()> {
        match write {
            Write::Epoch(epoch) => {
                tables.epoch = epoch;
                changes.epoch = true;
            }
            Write::PutNode(node) => {
                changes.nodes.push(node.node_id.clone());
                tables.nodes.put(node);
            }
            Write::PutEpochRecord(record) => {
                tables.epoch_records.put(record);
                changes.epoch_records = true;
            }
        }
        Ok(())
    }

    fn invalidates(changes: &Changes, reads: &Reads) -> bool {
        (changes.epoch && reads.epoch)
            || (changes.epoch_records && reads.epoch_records)
            || (!changes.nodes.is_empty() && reads.all_nodes)
            || changes.nodes.iter().any(|n| reads.nodes.contains(n))
    }
}

#[async_trait]
impl NodeStore for MemoryTx {
    async fn server_epoch(&mut self) -> Result<u64> {
        self.reads.nodes.epoch = true;
        Ok(self.working.nodes.epoch)
    }

    async fn increment_server_epoch(&mut self) -> Result<u64> {
        self.reads.nodes.epoch = true;
        let next = self
            .working
            .nodes
            .epoch
            .checked_add(1)
            .ok_or(Error::EpochExhausted)?;
        self.working.nodes.epoch = next;
        self.writes.nodes.push(Write::Epoch(next));
        Ok(next)
    }

    async fn advance_server_epoch(&mut self, at_least: u64) -> Result<u64> {
        self.reads.nodes.epoch = true;
        let tables = &mut self.working.nodes;
        if tables.epoch >= at_least {
            return Ok(tables.epoch);
        }
        tables.epoch = at_least;
        self.writes.nodes.push(Write::Epoch(at_least));
        Ok(at_least)
    }

    async fn get_node(&mut self, node_id: &str) -> Result<Option<NodeState>> {
        validate::id("node_id", node_id)?;
        self.reads.nodes.nodes.insert(node_id.to_owned());
        Ok(self
            .working
            .nodes
            .nodes
            .get_borrowed(node_id)
            .map(|n| NodeState::clone(n)))
    }

    async fn put_node(&mut self, node: &NodeState) -> Result<()> {
        validate::node(node)?;
        let node = Arc::new(node.clone());
        self.working.nodes.nodes.put(node.clone());
        self.writes.nodes.push(Write::PutNode(node));
        Ok(())
    }

    async fn list_nodes(&mut self) -> Result<Vec<NodeState>> {
        self.reads.nodes.all_nodes = true;
        Ok(self
            .working
            .nodes
            .nodes
            .iter()
            .map(|n| NodeState::clone(n))
            .collect())
    }

    async fn put_epoch_record(&mut self, record: &EpochRecord) -> Result<()> {
        validate::epoch_record(record)?;
        let record = Arc::new(record.clone());
        self.working.nodes.epoch_records.put(record.clone());
        self.writes.nodes.push(Write::PutEpochRecord(record));
        Ok(())
    }

    async fn list_epoch_records(&mut self) -> Result<Vec<EpochRecord>> {
        self.reads.nodes.epoch_records = true;
        Ok(self
            .working
            .nodes
            .epoch_records
            .iter()
            .map(|r| EpochRecord::clone(r))
            .collect())
    }
}
