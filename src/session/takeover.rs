//! Declaring a node dead: its epoch ends without a restart, and another node
//! runs the grace period of its locks.

use std::collections::BTreeSet;

use tracing::{Instrument, field};

use crate::error::{Error, Result};
use crate::lock::PersistedLock;
use crate::node::Takeover;
use crate::recovery::{Epochs, dead_locks_of};
use crate::time::Timestamp;
use crate::tx::{MetadataStore, MetadataStoreExt};
use crate::validate;

/// What [`declare_dead`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadNode {
    /// The node declared dead.
    pub node: String,
    /// Its epoch that ended (dead from now on).
    pub epoch: u64,
    /// The node that runs the grace period of its locks.
    pub by: String,
    /// The dead node's locks (of every dead epoch of it), now reclaimable
    /// through any node.
    pub reclaimable: Vec<PersistedLock>,
    /// The clients holding them.
    pub clients: BTreeSet<String>,
}

/// Declares `node` dead once its lease has expired, in one transaction: its
/// current epoch ends (dead, as if it had restarted: its locks become
/// reclaimable through any node, and its sessions are
/// [`Fenced`](Error::Fenced) from now on), and `by` runs the grace period of
/// its locks ([`NodeSession::end_grace`](crate::NodeSession::end_grace) of
/// `by`, or [`end_grace`](crate::end_grace) when `by` is
/// [`DEFAULT_NODE`](crate::DEFAULT_NODE), drops what nobody reclaimed).
///
/// - [`Error::NodeAlive`] while the node's lease runs (see
///   [`declare_dead_forced`]). A node without a lease (run through the
///   single-node API) has nothing to wait for.
/// - [`Error::NodeNotStarted`] for a node that never started.
/// - [`Error::Invalid`] when `by` is `node`, or either id is invalid.
/// - A node already declared dead is handed to `by` (the answer lists its
///   locks again); its epoch stays dead.
///
/// The transaction reads the dead epochs' locks by epoch (the answer's
/// [`reclaimable`](DeadNode::reclaimable)), which is also what makes a
/// zombie's in-flight grant conflict with it on PostgreSQL (see the
/// [session docs](crate::NodeSession#fencing)).
pub async fn declare_dead(store: &dyn MetadataStore, node: &str, by: &str) -> Result<DeadNode> {
    declare(store, node, by, false).await
}

/// [`declare_dead`] even while the node's lease runs: the operator knows it is
/// dead (a fenced VM, a powered-off host). Its zombie, if it is running after
/// all, is fenced from now on.
pub async fn declare_dead_forced(
    store: &dyn MetadataStore,
    node: &str,
    by: &str,
) -> Result<DeadNode> {
    declare(store, node, by, true).await
}

async fn declare(store: &dyn MetadataStore, node: &str, by: &str, force: bool) -> Result<DeadNode> {
    let span = tracing::info_span!(
        "declare_dead",
        node,
        by,
        force,
        epoch = field::Empty,
        reclaimable = field::Empty,
        outcome = field::Empty,
    );
    let result = declare_untraced(store, node, by, force)
        .instrument(span.clone())
        .await;
    if let Ok(dead) = &result {
        span.record("epoch", dead.epoch);
        span.record("reclaimable", dead.reclaimable.len());
        tracing::info!(parent: &span, epoch = dead.epoch, reclaimable = dead.reclaimable.len(), "fsmeta: node declared dead");
    }
    span.record("outcome", crate::obs::outcome(&result));
    result
}

async fn declare_untraced(
    store: &dyn MetadataStore,
    node: &str,
    by: &str,
    force: bool,
) -> Result<DeadNode> {
    validate::id("node_id", node)?;
    validate::id("by", by)?;
    if node == by {
        return Err(Error::Invalid(format!(
            "by: node {node:?} cannot take over itself (start it again instead)"
        )));
    }
    store
        .transact(|tx| {
            Box::pin(async move {
                let now = Timestamp::now();
                let mut state = match tx.get_node(node).await? {
                    Some(state) if state.epoch > 0 => state,
                    _ => {
                        return Err(Error::NodeNotStarted {
                            node: node.to_owned(),
                        });
                    }
                };
                if !force
                    && state.lease_held_at(now)
                    && let Some(until) = state.lease_expires_at
                {
                    return Err(Error::NodeAlive {
                        node: node.to_owned(),
                        until,
                    });
                }
                state.lease_expires_at = None;
                state.taken_over = Some(Takeover {
                    by: by.to_owned(),
                    at: now,
                });
                tx.put_node(&state).await?;
                let epochs = Epochs::load(tx).await?;
                let reclaimable = dead_locks_of(tx, &epochs, node, u64::MAX).await?;
                let clients = reclaimable.iter().map(|l| l.client_id.clone()).collect();
                Ok(DeadNode {
                    node: node.to_owned(),
                    epoch: state.epoch,
                    by: by.to_owned(),
                    reclaimable,
                    clients,
                })
            })
        })
        .await
}
