//! Restart recovery: epochs, clean-shutdown flags and the grace period, per node.
//!
//! A server starts an incarnation with [`Node::start`](crate::Node::start),
//! lets clients reclaim their locks through its
//! [`NodeSession`](crate::NodeSession) during the grace period, then calls
//! [`NodeSession::end_grace`](crate::NodeSession::end_grace) to drop what
//! nobody reclaimed, and [`NodeSession::shutdown`](crate::NodeSession::shutdown)
//! when it stops in an orderly way. The free functions here
//! ([`begin_recovery`], [`end_grace`], [`mark_clean_shutdown`],
//! [`reclaim_lock`](crate::reclaim_lock)) do the same for node
//! [`DEFAULT_NODE`], without a lease or fencing: a single server needs
//! nothing else. Each step is one transaction; the session and the free
//! functions share one session-free core.
//!
//! See [`NodeState`] for the model: one global epoch counter, each epoch
//! handed to one node, live while it is its node's current epoch and the
//! node was not declared dead.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use tracing::{Instrument, field};

use crate::client::ClientRecord;
use crate::error::{Error, Result};
use crate::lock::{LockQuery, LockStore, PersistedLock};
use crate::node::{DEFAULT_NODE, EpochRecord, NodeState, NodeStore};
use crate::time::Timestamp;
use crate::tx::{MetadataStore, MetadataStoreExt, MetadataTransaction};
use crate::validate;

/// What a starting server learns about its node's previous incarnations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// True when the node's previous incarnation shut down cleanly
    /// ([`NodeSession::shutdown`](crate::NodeSession::shutdown),
    /// [`mark_clean_shutdown`]), or the node never ran before.
    pub previous_shutdown_clean: bool,
    /// This incarnation's epoch (a session stamps its locks with it).
    pub epoch: u64,
    /// Locks granted by the node's dead epochs: clients may reclaim them during the grace period.
    pub reclaimable: Vec<PersistedLock>,
    /// The clients that may reclaim: the client records of the node's dead
    /// epochs and of the nodes it took over, not expired, in id order (the
    /// recovery set, see [`crate::may_reclaim`]).
    pub clients: Vec<ClientRecord>,
}

impl Recovery {
    /// The clients holding reclaimable locks (whether or not they have a record).
    pub fn lock_holders(&self) -> BTreeSet<String> {
        self.reclaimable
            .iter()
            .map(|l| l.client_id.clone())
            .collect()
    }
}

/// Who owns which epoch, as one transaction sees it: the rule that tells a
/// dead epoch from a live one, for tools that show it (`fsmeta locks` marks
/// the locks of dead epochs STALE).
///
/// An epoch is *live* while it is the current epoch of the node it was handed
/// to and that node was not declared dead; it is *dead* once that node has
/// started a newer incarnation or was declared dead
/// ([`declare_dead`](crate::declare_dead)). An epoch no node was handed
/// (written before nodes existed, or taken with a bare
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
    /// The live epoch of each node that has one.
    current: BTreeMap<String, u64>,
    /// Node → the node that declared it dead.
    taken_over: BTreeMap<String, String>,
    global: u64,
}

impl Epochs {
    /// Reads the epoch records, node states and global counter in `tx`.
    pub async fn load<T: NodeStore + ?Sized>(tx: &mut T) -> Result<Self> {
        let global = tx.server_epoch().await?;
        let (records, nodes) = tx.list_epoch_records_and_nodes().await?;
        Ok(Self::from_records(records, nodes, global))
    }

    /// The epochs that `records`, `nodes` and the counter `global` describe.
    fn from_records(records: Vec<EpochRecord>, nodes: Vec<NodeState>, global: u64) -> Self {
        let owner = records.into_iter().map(|r| (r.epoch, r.node_id)).collect();
        let mut current = BTreeMap::new();
        let mut taken_over = BTreeMap::new();
        for node in nodes {
            match node.taken_over {
                Some(takeover) => {
                    taken_over.insert(node.node_id, takeover.by);
                }
                None => {
                    current.insert(node.node_id, node.epoch);
                }
            }
        }
        Epochs {
            owner,
            current,
            taken_over,
            global,
        }
    }

    /// The node an epoch belongs to: its record's node, or [`DEFAULT_NODE`] for
    /// an epoch no node was handed (written before nodes existed).
    pub fn node_of(&self, epoch: u64) -> &str {
        self.owner.get(&epoch).map_or(DEFAULT_NODE, String::as_str)
    }

    /// True when no incarnation runs with `epoch` any more: its locks are
    /// reclaimable, and swept at the end of their grace period.
    pub fn is_dead(&self, epoch: u64) -> bool {
        match self.owner.get(&epoch) {
            Some(node) => self.current.get(node) != Some(&epoch),
            // Unrecorded epochs predate node records; one not yet reached by the
            // counter was never handed out, so nothing can have died with it.
            None => epoch < self.global && self.current.get(DEFAULT_NODE) != Some(&epoch),
        }
    }

    /// The global epoch counter: every dead epoch is below it.
    pub fn global(&self) -> u64 {
        self.global
    }

    /// The nodes declared dead whose grace period `by` runs, in id order.
    pub fn taken_over_by<'a>(&'a self, by: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.taken_over
            .iter()
            .filter(move |(_, taker)| taker.as_str() == by)
            .map(|(node, _)| node.as_str())
    }

    /// True when `epoch` is a dead epoch of `node`.
    fn is_dead_of(&self, epoch: u64, node: &str) -> bool {
        self.node_of(epoch) == node && self.is_dead(epoch)
    }
}

/// Locks of `node`'s dead epochs below `below`, in id order.
///
/// A named node's dead epochs are read one index range each (its epoch
/// records say which), so the cost follows the node's own locks, not the
/// store's. [`DEFAULT_NODE`] also owns the unrecorded epochs of stores
/// written before nodes existed, which no record lists: its locks are found
/// by one range over every epoch below `below`.
pub(crate) async fn dead_locks_of<T: LockStore + NodeStore + ?Sized>(
    tx: &mut T,
    epochs: &Epochs,
    node: &str,
    below: u64,
) -> Result<Vec<PersistedLock>> {
    if node == DEFAULT_NODE {
        let candidates = tx.list_locks(&LockQuery::epoch_below(below)).await?;
        return Ok(candidates
            .into_iter()
            .filter(|l| epochs.is_dead_of(l.server_epoch, node))
            .collect());
    }
    let dead: Vec<u64> = epochs
        .owner
        .range(..below)
        .filter(|(epoch, owner)| owner.as_str() == node && epochs.is_dead(**epoch))
        .map(|(epoch, _)| *epoch)
        .collect();
    let mut locks = Vec::new();
    for epoch in dead {
        locks.extend(tx.list_locks(&LockQuery::in_epoch(epoch)).await?);
    }
    locks.sort_unstable_by_key(|l| l.id);
    Ok(locks)
}

/// The locks whose grace period `node` runs: its own dead epochs' below
/// `below`, and every dead epoch's of the nodes it took over (see
/// [`declare_dead`](crate::declare_dead)), in id order.
pub(crate) async fn grace_locks_of<T: LockStore + NodeStore + ?Sized>(
    tx: &mut T,
    node: &str,
    below: u64,
) -> Result<Vec<PersistedLock>> {
    let epochs = Epochs::load(tx).await?;
    let mut locks = dead_locks_of(tx, &epochs, node, below).await?;
    let taken: Vec<String> = epochs.taken_over_by(node).map(str::to_owned).collect();
    for dead in taken {
        locks.extend(dead_locks_of(tx, &epochs, &dead, u64::MAX).await?);
    }
    locks.sort_unstable_by_key(|l| l.id);
    Ok(locks)
}

/// `now + lease`, or `Invalid` when that is past the last valid timestamp.
pub(crate) fn lease_expiry(now: Timestamp, lease: Duration) -> Result<Timestamp> {
    i64::try_from(lease.as_micros())
        .ok()
        .and_then(|us| now.as_micros().checked_add(us))
        .map(Timestamp::from_micros)
        .filter(|t| t.is_valid())
        .ok_or_else(|| Error::Invalid(format!("lease: {lease:?} runs past the year 9999")))
}

/// How an incarnation starts: the lease it takes, and whether a live lease of
/// the previous incarnation is overridden.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Start {
    /// The liveness lease; `None` takes none (the single-node API).
    pub lease: Option<Duration>,
    /// Start even while the previous incarnation's lease runs.
    pub take_over_live: bool,
}

/// Starts a new incarnation of `node` in `tx`: the core of [`begin_recovery`]
/// and [`Node::start`](crate::Node::start).
pub(crate) async fn start_in(
    tx: &mut (dyn MetadataTransaction + '_),
    node: &str,
    how: Start,
) -> Result<Recovery> {
    validate::id("node_id", node)?;
    let now = Timestamp::now();
    // Every epoch record and node in one read (one round trip on
    // PostgreSQL): the node's own state is among them, and the epochs after
    // this start are these with its two writes applied, so nothing is read
    // twice.
    let (mut records, mut nodes) = tx.list_epoch_records_and_nodes().await?;
    let mut state = nodes
        .iter()
        .find(|n| n.node_id == node)
        .cloned()
        .unwrap_or_else(|| NodeState::new(node));
    if !how.take_over_live
        && state.lease_held_at(now)
        && let Some(until) = state.lease_expires_at
    {
        return Err(Error::NodeAlive {
            node: node.to_owned(),
            until,
        });
    }
    let previous_shutdown_clean = state.clean_shutdown;
    let epoch = tx.increment_server_epoch().await?;
    let record = EpochRecord {
        epoch,
        node_id: node.to_owned(),
        started_at: now,
    };
    tx.put_epoch_record(&record).await?;
    state.epoch = epoch;
    state.clean_shutdown = false;
    state.lease_expires_at = how.lease.map(|l| lease_expiry(now, l)).transpose()?;
    state.taken_over = None;
    tx.put_node(&state).await?;
    // The new epoch is above every recorded one (the counter only grows), and
    // `epoch` is the counter's value now: this transaction just raised it.
    records.retain(|r| r.epoch != epoch);
    records.push(record);
    nodes.retain(|n| n.node_id != node);
    nodes.push(state);
    let epochs = Epochs::from_records(records, nodes, epoch);
    // Reading the dead epochs' locks by epoch is also what makes a zombie's
    // in-flight grant (a lock of its epoch) conflict with this start on
    // PostgreSQL: see `crate::session`.
    let reclaimable = dead_locks_of(tx, &epochs, node, epoch).await?;
    let clients = crate::client::recovery_set(tx, &epochs, node).await?;
    Ok(Recovery {
        previous_shutdown_clean,
        epoch,
        reclaimable,
        clients,
    })
}

/// Runs a start (`work`) of `node` in the `begin_recovery` span.
pub(crate) async fn traced_start(
    node: &str,
    work: impl Future<Output = Result<Recovery>>,
) -> Result<Recovery> {
    let span = tracing::info_span!(
        "begin_recovery",
        node,
        epoch = field::Empty,
        previous_shutdown_clean = field::Empty,
        reclaimable = field::Empty,
        clients = field::Empty,
        outcome = field::Empty,
    );
    let result = work.instrument(span.clone()).await;
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

/// Starts a new incarnation of node [`DEFAULT_NODE`], in one transaction:
/// reads the node's clean flag and sets it to unclean (only
/// [`mark_clean_shutdown`] sets it back, so a crash leaves it unclean), takes
/// a new epoch from the global counter and records it as the node's, and
/// lists the locks of the node's dead epochs. Other nodes' locks are never
/// listed. It takes no lease and is never refused: the single-node API has no
/// other incarnation to wait for. Several servers start
/// [`Node`](crate::Node)s instead.
pub async fn begin_recovery(store: &dyn MetadataStore) -> Result<Recovery> {
    let how = Start {
        lease: None,
        take_over_live: true,
    };
    traced_start(
        DEFAULT_NODE,
        store.transact(|tx| Box::pin(async move { start_in(tx, DEFAULT_NODE, how).await })),
    )
    .await
}

/// Deletes, in `tx`, the locks whose grace period `node` runs (its own dead
/// epochs' below `below`, and those of the nodes it took over), in one bulk
/// delete; returns how many.
pub(crate) async fn sweep_in(
    tx: &mut (dyn MetadataTransaction + '_),
    node: &str,
    below: u64,
) -> Result<u64> {
    let stale = grace_locks_of(tx, node, below).await?;
    let ids: Vec<_> = stale.iter().map(|l| l.id).collect();
    tx.delete_locks(&ids).await
}

/// Runs an end of grace (`work`) of `node` in the `end_grace` span.
pub(crate) async fn traced_end_grace(
    node: &str,
    epoch: u64,
    work: impl Future<Output = Result<u64>>,
) -> Result<u64> {
    let span = tracing::info_span!(
        "end_grace",
        node,
        epoch,
        deleted = field::Empty,
        outcome = field::Empty,
    );
    let result = work.instrument(span.clone()).await;
    if let Ok(deleted) = &result {
        span.record("deleted", deleted);
        tracing::info!(parent: &span, deleted, "fsmeta: grace period ended");
    }
    span.record("outcome", crate::obs::outcome(&result));
    result
}

/// Ends node [`DEFAULT_NODE`]'s grace period: deletes the locks still stamped
/// with one of its dead epochs below `epoch` (held by clients that did not
/// reclaim), and those of the nodes declared dead with
/// [`DEFAULT_NODE`] as the taker. Returns how many. Live epochs are never swept.
pub async fn end_grace(store: &dyn MetadataStore, epoch: u64) -> Result<u64> {
    traced_end_grace(
        DEFAULT_NODE,
        epoch,
        store.transact(|tx| Box::pin(async move { sweep_in(tx, DEFAULT_NODE, epoch).await })),
    )
    .await
}

/// Marks, in `tx`, `node`'s current incarnation as shut down cleanly: the
/// clean flag is set and the lease dropped (nothing is running any more).
pub(crate) async fn mark_clean_in<T: NodeStore + ?Sized>(tx: &mut T, node: &str) -> Result<()> {
    let mut state = tx
        .get_node(node)
        .await?
        .unwrap_or_else(|| NodeState::new(node));
    state.clean_shutdown = true;
    state.lease_expires_at = None;
    tx.put_node(&state).await
}

/// Runs a clean-shutdown mark (`work`) of `node` in the `mark_clean_shutdown` span.
pub(crate) async fn traced_mark_clean(
    node: &str,
    work: impl Future<Output = Result<()>>,
) -> Result<()> {
    let span = tracing::info_span!("mark_clean_shutdown", node, outcome = field::Empty);
    let result = work.instrument(span.clone()).await;
    span.record("outcome", crate::obs::outcome(&result));
    result
}

/// Records that node [`DEFAULT_NODE`] is shutting down cleanly.
pub async fn mark_clean_shutdown(store: &dyn MetadataStore) -> Result<()> {
    traced_mark_clean(
        DEFAULT_NODE,
        store.transact(|tx| Box::pin(async move { mark_clean_in(tx, DEFAULT_NODE).await })),
    )
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
