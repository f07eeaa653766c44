//! The nodes family, in `meta`: the global server epoch (a singleton under
//! `server_epoch`), node states (`node/` | node id) and epoch records
//! (`epoch/` | be64(epoch)). The two record kinds are tables without
//! indexes under their own prefixes; [`check_meta`] checks the rest of `meta`.

use async_trait::async_trait;
use fjall::{OptimisticTxKeyspace, Readable};

use super::Keyspaces;
use super::codec::{self, Fault, FaultKind};
use super::keys::{self, names};
use super::table::{Family, Finding, Index, Table, read_error};
use super::tx::FjallTx;
use crate::error::{Error, Result};
use crate::node::{EpochRecord, NodeState, NodeStore};
use crate::validate;

/// Node states, under `node/` in `meta`.
pub(super) struct Nodes;

impl Family for Nodes {
    type Key = String;
    type Record = NodeState;
    const NAME: &'static str = names::META;
    const RECORD: &'static str = "node";
    const PREFIX: &'static [u8] = keys::META_NODE_PREFIX;
    const KEY_RULE: &'static str = "expected \"node/\" followed by a UTF-8 node id";
    const INDEXES: &'static [Index<NodeState>] = &[];

    fn keyspace(ks: &Keyspaces) -> &OptimisticTxKeyspace {
        &ks.meta
    }
    fn key_of(node: &NodeState) -> String {
        node.node_id.clone()
    }
    fn encode_key(node_id: &String) -> Vec<u8> {
        keys::node(node_id)
    }
    fn decode_key(raw: &[u8]) -> Option<String> {
        keys::node_id(raw).ok()
    }
    fn encode(node: &NodeState) -> Result<Vec<u8>> {
        codec::encode_node(node)
    }
    fn decode(node_id: &String, raw: &[u8], value: &[u8]) -> Result<NodeState, Fault> {
        codec::decode_node(node_id.clone(), raw, value)
    }
}

/// Epoch records, under `epoch/` in `meta`.
pub(super) struct Epochs;

impl Family for Epochs {
    type Key = u64;
    type Record = EpochRecord;
    const NAME: &'static str = names::META;
    const RECORD: &'static str = "epoch record";
    const PREFIX: &'static [u8] = keys::META_EPOCH_PREFIX;
    const KEY_RULE: &'static str = "expected \"epoch/\" followed by an 8-byte epoch";
    const INDEXES: &'static [Index<EpochRecord>] = &[];

    fn keyspace(ks: &Keyspaces) -> &OptimisticTxKeyspace {
        &ks.meta
    }
    fn key_of(record: &EpochRecord) -> u64 {
        record.epoch
    }
    fn encode_key(epoch: &u64) -> Vec<u8> {
        keys::epoch_record(*epoch)
    }
    fn decode_key(raw: &[u8]) -> Option<u64> {
        keys::epoch_of_record(raw).ok()
    }
    fn encode(record: &EpochRecord) -> Result<Vec<u8>> {
        codec::encode_epoch_record(record)
    }
    fn decode(epoch: &u64, raw: &[u8], value: &[u8]) -> Result<EpochRecord, Fault> {
        codec::decode_epoch_record(*epoch, raw, value)
    }
}

/// Checks the `meta` keys outside the two tables: the singletons decode and
/// every other key is one this build knows.
pub(super) fn check_meta(r: &impl Readable, ks: &Keyspaces, out: &mut Vec<Finding>) -> Result<()> {
    for guard in r.iter(&ks.meta) {
        let (key, value) = guard.into_inner().map_err(read_error(names::META))?;
        if key.starts_with(Nodes::PREFIX) || key.starts_with(Epochs::PREFIX) {
            continue; // checked by their tables
        }
        let checked = if *key == *keys::META_FORMAT_VERSION {
            // Checked (and found readable) when the store was opened.
            Ok(())
        } else if *key == *keys::META_SERVER_EPOCH {
            codec::decode_epoch(&value).map(drop)
        } else {
            Err(Fault {
                kind: FaultKind::Invalid,
                location: keys::describe(names::META, &key),
                detail: "a key this version of fsmeta does not know".into(),
            })
        };
        if let Err(fault) = checked {
            out.push(Finding::Record(fault));
        }
    }
    Ok(())
}

impl FjallTx {
    fn write_epoch(&mut self, epoch: u64) -> Result<()> {
        let value = codec::encode_epoch(epoch)?;
        self.tx
            .insert(&self.store.ks.meta, keys::META_SERVER_EPOCH, value);
        Ok(())
    }
}

#[async_trait]
impl NodeStore for FjallTx {
    async fn server_epoch(&mut self) -> Result<u64> {
        self.tx
            .get(&self.store.ks.meta, keys::META_SERVER_EPOCH)
            .map_err(read_error(names::META))?
            .map_or(Ok(0), |bytes| Ok(codec::decode_epoch(&bytes)?))
    }

    async fn increment_server_epoch(&mut self) -> Result<u64> {
        // The read is what makes N concurrent increments conflict instead of
        // losing updates: fjall only detects read-write conflicts.
        let next = self
            .server_epoch()
            .await?
            .checked_add(1)
            .ok_or(Error::EpochExhausted)?;
        self.write_epoch(next)?;
        Ok(next)
    }

    async fn advance_server_epoch(&mut self, at_least: u64) -> Result<u64> {
        // The read makes a concurrent increment or advance conflict with this one.
        let current = self.server_epoch().await?;
        if current >= at_least {
            return Ok(current);
        }
        self.write_epoch(at_least)?;
        Ok(at_least)
    }

    async fn get_node(&mut self, node_id: &str) -> Result<Option<NodeState>> {
        validate::id("node_id", node_id)?;
        Table::<Nodes>::new(&self.store.ks).get(&self.tx, &node_id.to_owned())
    }

    /// A blind write: it reads nothing (a table without indexes), so two
    /// concurrent writes of one node serialize in commit order.
    async fn put_node(&mut self, node: &NodeState) -> Result<()> {
        validate::node(node)?;
        Table::<Nodes>::new(&self.store.ks).put(&mut self.tx, node)
    }

    async fn list_nodes(&mut self) -> Result<Vec<NodeState>> {
        Table::<Nodes>::new(&self.store.ks).all(&self.tx)
    }

    async fn put_epoch_record(&mut self, record: &EpochRecord) -> Result<()> {
        validate::epoch_record(record)?;
        Table::<Epochs>::new(&self.store.ks).put(&mut self.tx, record)
    }

    async fn list_epoch_records(&mut self) -> Result<Vec<EpochRecord>> {
        Table::<Epochs>::new(&self.store.ks).all(&self.tx)
    }
}
