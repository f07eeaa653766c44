//! Node states (formats 1 and 2: the lease and takeover came with 2) and
//! epoch records, both kept in `meta`.

use serde::{Deserialize, Serialize};

use super::{Fault, decode, decode_body, encode, stored};
use crate::backend::fjall::keys::names;
use crate::error::{Error, Result};
use crate::node::{EpochRecord, NodeState};
use crate::time::Timestamp;
use crate::validate;

/// A node's state, format 1 (the id is the key).
#[derive(Serialize, Deserialize)]
struct NodeV1 {
    epoch: u64,
    clean_shutdown: bool,
}

/// An epoch record, format 1 (the epoch is the key).
#[derive(Serialize, Deserialize)]
struct EpochRecordV1 {
    node_id: String,
    started_at: i64,
}

/// The version byte of a node state with a lease and a takeover
/// ([`NodeV2`]). Every node state is written in it; format 1 (before leases)
/// is still read, as a node without a lease that was never taken over.
const NODE_FORMAT_LEASE: u8 = 2;

/// A node's state, format 2: format 1, the lease expiry (µs) and the takeover.
#[derive(Serialize, Deserialize)]
struct NodeV2 {
    v1: NodeV1,
    lease_expires_at: Option<i64>,
    taken_over: Option<TakeoverV1>,
}

/// Who declared a node dead, and when (µs), inside [`NodeV2`].
#[derive(Serialize, Deserialize)]
struct TakeoverV1 {
    by: String,
    at: i64,
}

/// Encodes a node's state (format [`NODE_FORMAT_LEASE`]).
pub(in crate::backend::fjall) fn encode_node(node: &NodeState) -> Result<Vec<u8>> {
    let value = NodeV2 {
        v1: NodeV1 {
            epoch: node.epoch,
            clean_shutdown: node.clean_shutdown,
        },
        lease_expires_at: node.lease_expires_at.map(Timestamp::as_micros),
        taken_over: node.taken_over.as_ref().map(|t| TakeoverV1 {
            by: t.by.clone(),
            at: t.at.as_micros(),
        }),
    };
    postcard::to_extend(&value, vec![NODE_FORMAT_LEASE])
        .map_err(|e| Error::backend("fjall: encoding a value with postcard", e))
}

/// Decodes the state stored under `key` for node `node_id` (format 1 or 2).
pub(in crate::backend::fjall) fn decode_node(
    node_id: String,
    key: &[u8],
    bytes: &[u8],
) -> Result<NodeState, Fault> {
    let v = match bytes.split_first() {
        Some((&NODE_FORMAT_LEASE, body)) => decode_body::<NodeV2>(names::META, key, body)?,
        _ => NodeV2 {
            v1: decode(names::META, key, bytes)?,
            lease_expires_at: None,
            taken_over: None,
        },
    };
    let node = NodeState {
        node_id,
        epoch: v.v1.epoch,
        clean_shutdown: v.v1.clean_shutdown,
        lease_expires_at: v.lease_expires_at.map(Timestamp::from_micros),
        taken_over: v.taken_over.map(|t| crate::node::Takeover {
            by: t.by,
            at: Timestamp::from_micros(t.at),
        }),
    };
    validate::node(&node).map_err(stored(names::META, key))?;
    Ok(node)
}

/// Encodes an epoch record.
pub(in crate::backend::fjall) fn encode_epoch_record(record: &EpochRecord) -> Result<Vec<u8>> {
    encode(&EpochRecordV1 {
        node_id: record.node_id.clone(),
        started_at: record.started_at.as_micros(),
    })
}

/// Decodes the epoch record stored under `key` for `epoch`.
pub(in crate::backend::fjall) fn decode_epoch_record(
    epoch: u64,
    key: &[u8],
    bytes: &[u8],
) -> Result<EpochRecord, Fault> {
    let v: EpochRecordV1 = decode(names::META, key, bytes)?;
    let record = EpochRecord {
        epoch,
        node_id: v.node_id,
        started_at: Timestamp::from_micros(v.started_at),
    };
    validate::epoch_record(&record).map_err(stored(names::META, key))?;
    Ok(record)
}
