//! `fsmeta nodes` (each node's epoch, lease, clean flag, live and stale lock
//! counts, status) and `fsmeta node declare-dead` (takeover by an operator).

use std::collections::BTreeMap;

use fsmeta::{
    Epochs, MetadataStore, NodeState, Timestamp, declare_dead, declare_dead_forced, pages,
};
use serde::Serialize;

use crate::args::{NodeArgs, NodeCommand, NodesArgs};
use crate::output::{Out, Table, cell, rfc3339, yes_no};
use crate::{CliError, Outcome};

/// Locks per page of the whole-store walk.
const PAGE: usize = 1024;

/// One node of `fsmeta nodes --json` (number policy: see `json.rs`).
#[derive(Serialize)]
struct NodeJson<'a> {
    node_id: &'a str,
    epoch: String,
    lease_expires_at: Option<String>,
    clean_shutdown: bool,
    /// Locks of the node's current epoch.
    live_locks: u64,
    /// Locks of the node's dead epochs (reclaimable until its grace ends).
    stale_locks: u64,
    /// `ALIVE`, `EXPIRED` or `DEAD`.
    status: &'static str,
    /// The node that took it over, when it was declared dead.
    taken_over_by: Option<&'a str>,
}

/// `DEAD` once declared dead; `ALIVE` while its lease runs; `EXPIRED`
/// otherwise (a lapsed lease, or none: nothing shows it is running).
fn status(node: &NodeState, now: Timestamp) -> &'static str {
    if node.taken_over.is_some() {
        "DEAD"
    } else if node.lease_expires_at.is_some_and(|until| until > now) {
        "ALIVE"
    } else {
        "EXPIRED"
    }
}

pub async fn list(
    store: &dyn MetadataStore,
    args: &NodesArgs,
    out: &mut Out,
) -> Result<Outcome, CliError> {
    // One snapshot: the nodes, the epoch model and the lock counts agree.
    let mut tx = store.begin().await?;
    let nodes = tx.list_nodes().await?;
    let epochs = Epochs::load(&mut *tx).await?;
    // (live, stale) per node, over every lock once.
    let mut counts: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut walk = pages::locks(PAGE);
    while let Some(page) = walk.next(&mut *tx).await? {
        for lock in &page {
            let entry = counts
                .entry(epochs.node_of(lock.server_epoch).to_owned())
                .or_default();
            if epochs.is_dead(lock.server_epoch) {
                entry.1 += 1;
            } else {
                entry.0 += 1;
            }
        }
    }
    let _ = tx.rollback().await;
    let now = Timestamp::now();
    let count = |node: &NodeState| counts.get(&node.node_id).copied().unwrap_or_default();
    if args.json {
        let rows: Vec<NodeJson<'_>> = nodes
            .iter()
            .map(|n| NodeJson {
                node_id: &n.node_id,
                epoch: n.epoch.to_string(),
                lease_expires_at: n.lease_expires_at.map(rfc3339),
                clean_shutdown: n.clean_shutdown,
                live_locks: count(n).0,
                stale_locks: count(n).1,
                status: status(n, now),
                taken_over_by: n.taken_over.as_ref().map(|t| t.by.as_str()),
            })
            .collect();
        out.line(serde_json::to_string_pretty(&rows)?)?;
        return Ok(Outcome::Ok);
    }
    let mut table = Table::new(&[
        "NODE", "EPOCH", "LEASE", "CLEAN", "LIVE", "STALE", "STATUS", "BY",
    ]);
    for n in &nodes {
        let (live, stale) = count(n);
        table.row(
            out,
            vec![
                cell(&n.node_id),
                n.epoch.to_string(),
                n.lease_expires_at.map_or_else(|| "-".to_owned(), rfc3339),
                yes_no(n.clean_shutdown).to_owned(),
                live.to_string(),
                stale.to_string(),
                status(n, now).to_owned(),
                n.taken_over
                    .as_ref()
                    .map_or_else(String::new, |t| cell(&t.by)),
            ],
        )?;
    }
    if table.finish(out)? == 0 {
        out.line("no nodes")?;
    }
    Ok(Outcome::Ok)
}

pub async fn node(
    store: &dyn MetadataStore,
    args: &NodeArgs,
    out: &mut Out,
) -> Result<Outcome, CliError> {
    match &args.command {
        NodeCommand::DeclareDead { node, by, force } => {
            let dead = if *force {
                declare_dead_forced(store, node, by).await?
            } else {
                declare_dead(store, node, by).await?
            };
            out.line(format!(
                "node {} declared dead: epoch {} ended; {} locks of {} clients reclaimable, grace run by {}",
                cell(&dead.node),
                dead.epoch,
                dead.reclaimable.len(),
                dead.clients.len(),
                cell(&dead.by)
            ))?;
            Ok(Outcome::Ok)
        }
    }
}
