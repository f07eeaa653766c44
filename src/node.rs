//! Server nodes and the epochs they were handed.
//!
//! Several file servers (nodes) may share one store. The server epoch is one
//! global counter, so every incarnation of every node gets a distinct epoch;
//! the store records which node each epoch went to and each node's current
//! epoch and clean-shutdown flag. An epoch is *live* while it is the current
//! epoch of its node and *dead* once that node has started a newer
//! incarnation *or* was declared dead ([`declare_dead`](crate::declare_dead)).
//! Recovery works on one node's dead epochs only, so a node that restarts
//! never disturbs the live locks of the others.
//!
//! A node started through [`Node::start`](crate::Node::start) also holds a
//! liveness lease ([`NodeState::lease_expires_at`]), renewed by its session.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::time::Timestamp;

/// The node that the single-node API (`begin_recovery`, `end_grace`,
/// `mark_clean_shutdown`, `reclaim_lock`, `clean_shutdown`) works on. A store
/// written before nodes existed belongs to it: its epoch and clean flag become
/// this node's, and locks stamped with an epoch that no node was handed count
/// as this node's.
pub const DEFAULT_NODE: &str = "default";

/// One node's recovery state.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeState {
    /// The node's id (validated like a client id).
    pub node_id: String,
    /// The node's current (live) epoch; 0 before its first `begin_recovery`.
    pub epoch: u64,
    /// True when the node's last incarnation shut down cleanly (or it never ran).
    pub clean_shutdown: bool,
    /// Until when the current incarnation's liveness lease runs (set by
    /// [`Node::start`](crate::Node::start) and
    /// [`NodeSession::renew`](crate::NodeSession::renew), cleared by a clean
    /// shutdown). `None`: no lease (a node run through the single-node API, or
    /// one that shut down), so nothing keeps another incarnation from starting.
    pub lease_expires_at: Option<Timestamp>,
    /// Set when the current epoch was ended by
    /// [`declare_dead`](crate::declare_dead) rather than by a restart: the epoch
    /// is dead, and the node named here runs the grace period of its locks.
    /// Cleared when the node starts again.
    pub taken_over: Option<Takeover>,
}

/// Who declared a node dead, and when ([`NodeState::taken_over`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Takeover {
    /// The node whose [`end_grace`](crate::NodeSession::end_grace) drops the
    /// dead node's locks that nobody reclaimed.
    pub by: String,
    /// When the node was declared dead.
    pub at: Timestamp,
}

impl NodeState {
    /// The state of a node the store has never seen: epoch 0, clean.
    pub fn new(node_id: &str) -> Self {
        NodeState {
            node_id: node_id.to_owned(),
            epoch: 0,
            clean_shutdown: true,
            lease_expires_at: None,
            taken_over: None,
        }
    }

    /// True when the node's current epoch is live: the node has started an
    /// incarnation that was not declared dead.
    pub fn is_live(&self) -> bool {
        self.epoch > 0 && self.taken_over.is_none()
    }

    /// True when the current incarnation holds a lease that has not expired at `now`.
    pub fn lease_held_at(&self, now: Timestamp) -> bool {
        self.is_live() && self.lease_expires_at.is_some_and(|until| until > now)
    }
}

/// Which node an epoch was handed to, and when.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EpochRecord {
    /// The epoch.
    pub epoch: u64,
    /// The node that started an incarnation with it.
    pub node_id: String,
    /// When that incarnation started.
    pub started_at: Timestamp,
}

/// The epoch counter and node records of a transaction: the node family.
///
/// Policy over these records (recovery, grace, clean-shutdown flags) lives in
/// [`crate::recovery`](crate::begin_recovery), written once over this trait.
#[async_trait]
pub trait NodeStore: Send {
    /// The store's global server epoch counter; 0 on a new store.
    async fn server_epoch(&mut self) -> Result<u64>;
    /// Adds one to the global server epoch and returns the new value;
    /// [`Error::EpochExhausted`](crate::Error::EpochExhausted) at `u64::MAX`.
    async fn increment_server_epoch(&mut self) -> Result<u64>;
    /// Raises the global server epoch to at least `at_least`, in one write
    /// (nothing is written when it is already there), and returns the
    /// resulting value, `max(current, at_least)`.
    async fn advance_server_epoch(&mut self, at_least: u64) -> Result<u64>;
    /// The state of a node, if the store has seen it.
    async fn get_node(&mut self, node_id: &str) -> Result<Option<NodeState>>;
    /// Inserts or replaces a node's state.
    async fn put_node(&mut self, node: &NodeState) -> Result<()>;
    /// Every node the store has seen, in id order.
    async fn list_nodes(&mut self) -> Result<Vec<NodeState>>;
    /// Records which node an epoch was handed to (inserts or replaces by epoch).
    async fn put_epoch_record(&mut self, record: &EpochRecord) -> Result<()>;
    /// Every recorded epoch, in epoch order.
    async fn list_epoch_records(&mut self) -> Result<Vec<EpochRecord>>;
    /// [`list_epoch_records`](Self::list_epoch_records) and
    /// [`list_nodes`](Self::list_nodes) together: what an incarnation's start
    /// reads first. A backend with round trips (PostgreSQL) answers both in
    /// one; the default asks for each in turn.
    async fn list_epoch_records_and_nodes(&mut self) -> Result<(Vec<EpochRecord>, Vec<NodeState>)> {
        let records = self.list_epoch_records().await?;
        Ok((records, self.list_nodes().await?))
    }
}
