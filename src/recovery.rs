//! Restart recovery: epochs, clean-shutdown flags and the grace period, per node.
//!
//! A server calls [`begin_recovery_as`] when it starts, lets clients reclaim
//! their locks with [`reclaim_lock_as`](crate::reclaim_lock_as) during the
//! grace period, then calls [`end_grace_as`] to drop what nobody reclaimed,
//! and [`mark_clean_shutdown_as`] when it stops in an orderly way. Each step
//! is one transaction. The functions without `_as` work on node
//! [`DEFAULT_NODE`]: a single server needs nothing else.
//!
//! See [`NodeState`] for the model: one global epoch counter, each epoch
//! handed to one node, live while it is its node's current epoch.

use std::collections::{BTreeMap, BTreeSet};

use tracing::{Instrument, field};

use crate::error::Result;
use crate::lock::{LockQuery, LockStore, PersistedLock};
use crate::node::{DEFAULT_NODE, EpochRecord, NodeState, NodeStore};
use crate::time::Timestamp;
use crate::tx::{MetadataStore, MetadataStoreExt};
use crate::validate;

/// What a starting server learns about its node's previous incarnations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// True when the node's previous incarnation called
    /// [`mark_clean_shutdown_as`] (or the node never ran before).
    pub previous_shutdown_clean: bool,
    /// This incarnation's epoch: stamp new locks with it.
    pub epoch: u64,
    /// Locks granted by the node's dead epochs: clients may reclaim them during the grace period.
    pub reclaimable: Vec<PersistedLock>,
    /// The clients holding reclaimable locks.
    pub clients: BTreeSet<String>,
}

/// Who owns which epoch, as one transaction sees it: the rule that tells a
/// dead epoch from a live one, for tools that show it (`fsmeta locks` marks
/// the locks of dead epochs STALE).
///
/// An epoch is *live* while it is the current epoch of the node it was handed
/// to and *dead* once that node has started a newer incarnation. An epoch no
/// node was handed (written before nodes existed, or taken with a bare
/// [`NodeStore::increment_server_epoch`]) counts as [`DEFAULT_NODE`]'s and is
/// dead once the global counter has moved past it.
///
/// ```
/// # use fsmeta::*;
/// # async fn demo(store: &dyn MetadataStore) -> Result<()> {
/// let mut tx = store.begin().await?;
/// let epochs = Epochs::load(&mut *tx).await?;
/// for lock in tx.list_locks(&LockQuery::default()).await? {
///     if epochs.is_dead(lock.server_epoch) {
///         println!("{} is from a dead epoch of node {}", lock.id, epochs.node_of(lock.server_epoch));
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Epochs {
    owner: BTreeMap<u64, String>,
    current: BTreeMap<String, u64>,
    global: u64,
}

impl Epochs {
    /// Reads the epoch records, node states and global counter in `tx`.
    pub async fn load<T: NodeStore + ?Sized>(tx: &mut T) -> Result<Self> {
        let owner = tx
            .list_epoch_records()
            .await?
            .into_iter()
            .map(|r| (r.epoch, r.node_id))
            .collect();
        let current = tx
            .list_nodes()
            .await?
            .into_iter()
            .map(|n| (n.node_id, n.epoch))
            .collect();
        let global = tx.server_epoch().await?;
        Ok(Epochs {
            owner,
            current,
            global,
        })
    }

    /// The node an epoch belongs to: its record's node, or [`DEFAULT_NODE`] for
    /// an epoch no node was handed (written before nodes existed).
    pub fn node_of(&self, epoch: u64) -> &str {
        self.owner.get(&epoch).map_or(DEFAULT_NODE, String::as_str)
    }

    /// True when no incarnation runs with `epoch` any more: its locks are
    /// reclaimable, and swept at the end of their node's grace period.
    pub fn is_dead(&self, epoch: u64) -> bool {
        match self.owner.get(&epoch) {
            Some(node) => self.current.get(node) != Some(&epoch),
            // Unrecorded epochs predate node records; one not yet reached by the
            // counter was never handed out, so nothing can have died with it.
            None => epoch < self.global,
        }
    }

    /// The global epoch counter: every dead epoch is below it.
    pub fn global(&self) -> u64 {
        self.global
    }

    /// True when `epoch` is a dead epoch of `node`.
    fn is_dead_of(&self, epoch: u64, node: &str) -> bool {
        self.node_of(epoch) == node && self.is_dead(epoch)
    }
}

/// Locks of `node`'s dead epochs below `below`.
async fn dead_locks_of<T: LockStore + NodeStore + ?Sized>(
    tx: &mut T,
    node: &str,
    below: u64,
) -> Result<Vec<PersistedLock>> {
    let epochs = Epochs::load(tx).await?;
    // Every dead epoch is below the global counter; the filter keeps this node's.
    let candidates = tx.list_locks(&LockQuery::epoch_below(below)).await?;
    Ok(candidates
        .into_iter()
        .filter(|l| epochs.is_dead_of(l.server_epoch, node))
        .collect())
}

/// Starts a new incarnation of node [`DEFAULT_NODE`]; see [`begin_recovery_as`].
pub async fn begin_recovery(store: &dyn MetadataStore) -> Result<Recovery> {
    begin_recovery_as(store, DEFAULT_NODE).await
}

/// Starts a new incarnation of `node`, in one transaction: reads the node's
/// clean flag and sets it to unclean (only [`mark_clean_shutdown_as`] sets it
/// back, so a crash leaves it unclean), takes a new epoch from the global
/// counter and records it as the node's, and lists the locks of the node's
/// dead epochs. Other nodes' locks are never listed.
pub async fn begin_recovery_as(store: &dyn MetadataStore, node: &str) -> Result<Recovery> {
    let span = tracing::info_span!(
        "begin_recovery",
        node,
        epoch = field::Empty,
        previous_shutdown_clean = field::Empty,
        reclaimable = field::Empty,
        clients = field::Empty,
        outcome = field::Empty,
    );
    let result = begin_recovery_untraced(store, node)
        .instrument(span.clone())
        .await;
    if let Ok(recovery) = &result {
        span.record("epoch", recovery.epoch);
        span.record("previous_shutdown_clean", recovery.previous_shutdown_clean);
        span.record("reclaimable", recovery.reclaimable.len());
        span.record("clients", recovery.clients.len());
        tracing::info!(parent: &span, epoch = recovery.epoch, reclaimable = recovery.reclaimable.len(), "fsmeta: node started a new incarnation");
    }
    span.record("outcome", crate::obs::outcome(&result));
    result
}

/// [`begin_recovery_as`] without its span.
async fn begin_recovery_untraced(store: &dyn MetadataStore, node: &str) -> Result<Recovery> {
    validate::id("node_id", node)?;
    store
        .transact(|tx| {
            Box::pin(async move {
                let mut state = tx
                    .get_node(node)
                    .await?
                    .unwrap_or_else(|| NodeState::new(node));
                let previous_shutdown_clean = state.clean_shutdown;
                let epoch = tx.increment_server_epoch().await?;
                let record = EpochRecord {
                    epoch,
                    node_id: node.to_owned(),
                    started_at: Timestamp::now(),
                };
                tx.put_epoch_record(&record).await?;
                state.epoch = epoch;
                state.clean_shutdown = false;
                tx.put_node(&state).await?;
                let reclaimable = dead_locks_of(tx, node, epoch).await?;
                let clients = reclaimable.iter().map(|l| l.client_id.clone()).collect();
                Ok(Recovery {
                    previous_shutdown_clean,
                    epoch,
                    reclaimable,
                    clients,
                })
            })
        })
        .await
}

/// Ends node [`DEFAULT_NODE`]'s grace period; see [`end_grace_as`].
pub async fn end_grace(store: &dyn MetadataStore, epoch: u64) -> Result<u64> {
    end_grace_as(store, DEFAULT_NODE, epoch).await
}

/// Ends `node`'s grace period: deletes the locks still stamped with one of
/// the node's dead epochs below `epoch` (held by clients that did not
/// reclaim). Returns how many. Live epochs, the node's own or another's, are
/// never swept.
pub async fn end_grace_as(store: &dyn MetadataStore, node: &str, epoch: u64) -> Result<u64> {
    let span = tracing::info_span!(
        "end_grace",
        node,
        epoch,
        deleted = field::Empty,
        outcome = field::Empty,
    );
    let result = end_grace_untraced(store, node, epoch)
        .instrument(span.clone())
        .await;
    if let Ok(deleted) = &result {
        span.record("deleted", deleted);
        tracing::info!(parent: &span, deleted, "fsmeta: grace period ended");
    }
    span.record("outcome", crate::obs::outcome(&result));
    result
}

/// [`end_grace_as`] without its span.
async fn end_grace_untraced(store: &dyn MetadataStore, node: &str, epoch: u64) -> Result<u64> {
    validate::id("node_id", node)?;
    store
        .transact(|tx| {
            Box::pin(async move {
                let stale = dead_locks_of(tx, node, epoch).await?;
                for lock in &stale {
                    tx.delete_lock(lock.id).await?;
                }
                Ok(stale.len() as u64)
            })
        })
        .await
}

/// Records that node [`DEFAULT_NODE`] is shutting down cleanly.
pub async fn mark_clean_shutdown(store: &dyn MetadataStore) -> Result<()> {
    mark_clean_shutdown_as(store, DEFAULT_NODE).await
}

/// Records that `node`'s current incarnation is shutting down cleanly.
pub async fn mark_clean_shutdown_as(store: &dyn MetadataStore, node: &str) -> Result<()> {
    let span = tracing::info_span!("mark_clean_shutdown", node, outcome = field::Empty);
    let result = mark_clean_shutdown_untraced(store, node)
        .instrument(span.clone())
        .await;
    span.record("outcome", crate::obs::outcome(&result));
    result
}

/// [`mark_clean_shutdown_as`] without its span.
async fn mark_clean_shutdown_untraced(store: &dyn MetadataStore, node: &str) -> Result<()> {
    validate::id("node_id", node)?;
    store
        .transact(|tx| {
            Box::pin(async move {
                let mut state = tx
                    .get_node(node)
                    .await?
                    .unwrap_or_else(|| NodeState::new(node));
                state.clean_shutdown = true;
                tx.put_node(&state).await
            })
        })
        .await
}

/// True when node [`DEFAULT_NODE`]'s last incarnation marked its shutdown
/// clean (true on a new store), as `tx` sees it.
pub async fn clean_shutdown<T: NodeStore + ?Sized>(tx: &mut T) -> Result<bool> {
    Ok(tx
        .get_node(DEFAULT_NODE)
        .await?
        .is_none_or(|n| n.clean_shutdown))
}

/// Records in `tx` whether node [`DEFAULT_NODE`]'s current incarnation has
/// shut down cleanly.
pub async fn set_clean_shutdown<T: NodeStore + ?Sized>(tx: &mut T, clean: bool) -> Result<()> {
    let mut node = tx
        .get_node(DEFAULT_NODE)
        .await?
        .unwrap_or_else(|| NodeState::new(DEFAULT_NODE));
    node.clean_shutdown = clean;
    tx.put_node(&node).await
}
