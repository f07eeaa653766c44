//! `fsmeta stats`: counts, locks per share, top clients, epoch, nodes.

use std::collections::{BTreeMap, HashMap};

use fsmeta::{DEFAULT_NODE, Epochs, MetadataStore, NodeState};

use crate::args::StatsArgs;
use crate::json::{ClientCount, NodeJson, ShareCount, StatsJson};
use crate::output::{Out, Table, cell, yes_no};
use crate::{CliError, Outcome};

/// Records per page while counting.
const PAGE: usize = 1024;
/// Clients listed under "top clients".
const TOP_CLIENTS: usize = 10;

pub async fn run(
    store: &dyn MetadataStore,
    args: &StatsArgs,
    out: &mut Out,
) -> Result<Outcome, CliError> {
    let stats = collect(store).await?;
    if args.json {
        serde_json::to_writer_pretty(out.writer(), &stats)?;
        out.line("")?;
    } else {
        print(&stats, out)?;
    }
    Ok(Outcome::Ok)
}

/// Walks the store page by page in one transaction; memory grows with the
/// number of shares, clients and nodes, not with the number of records.
async fn collect(store: &dyn MetadataStore) -> Result<StatsJson, CliError> {
    let mut tx = store.begin().await?;
    let epochs = Epochs::load(&mut *tx).await?;
    let clean_shutdown = fsmeta::clean_shutdown(&mut *tx).await?;
    let nodes = tx.list_nodes().await?;

    let mut files = 0u64;
    let mut pages = fsmeta::pages::files(PAGE);
    while let Some(page) = pages.next(&mut *tx).await? {
        files += page.len() as u64;
    }

    let (mut locks, mut stale_locks) = (0u64, 0u64);
    let mut per_share: HashMap<String, u64> = HashMap::new();
    let mut per_client: HashMap<String, u64> = HashMap::new();
    // node id -> (locks, stale locks)
    let mut per_node: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut pages = fsmeta::pages::locks(PAGE);
    while let Some(page) = pages.next(&mut *tx).await? {
        for lock in &page {
            locks += 1;
            let stale = epochs.is_dead(lock.server_epoch);
            stale_locks += u64::from(stale);
            *per_share.entry(lock.share_name.clone()).or_default() += 1;
            *per_client.entry(lock.client_id.clone()).or_default() += 1;
            let node = per_node
                .entry(epochs.node_of(lock.server_epoch).to_owned())
                .or_default();
            node.0 += 1;
            node.1 += u64::from(stale);
        }
    }
    let _ = tx.rollback().await;

    let mut locks_per_share: Vec<ShareCount> = per_share
        .into_iter()
        .map(|(share_name, locks)| ShareCount { share_name, locks })
        .collect();
    locks_per_share.sort_by(|a, b| b.locks.cmp(&a.locks).then(a.share_name.cmp(&b.share_name)));
    let mut top_clients: Vec<ClientCount> = per_client
        .into_iter()
        .map(|(client_id, locks)| ClientCount { client_id, locks })
        .collect();
    top_clients.sort_by(|a, b| b.locks.cmp(&a.locks).then(a.client_id.cmp(&b.client_id)));
    top_clients.truncate(TOP_CLIENTS);

    // Nodes with a state, plus any node that only locks name (epochs from
    // before node states existed belong to the default node).
    let mut node_states: BTreeMap<String, NodeState> =
        nodes.into_iter().map(|n| (n.node_id.clone(), n)).collect();
    for id in per_node.keys() {
        node_states
            .entry(id.clone())
            .or_insert_with(|| NodeState::new(id));
    }
    let nodes = node_states
        .values()
        .map(|n| {
            let (locks, stale) = per_node.get(&n.node_id).copied().unwrap_or_default();
            NodeJson::new(n, locks, stale)
        })
        .collect();
    Ok(StatsJson {
        files,
        locks,
        stale_locks,
        epoch: epochs.global().to_string(),
        clean_shutdown,
        locks_per_share,
        top_clients,
        nodes,
    })
}

fn print(stats: &StatsJson, out: &mut Out) -> Result<(), CliError> {
    out.line(format!("files           {}", stats.files))?;
    out.line(format!(
        "locks           {} ({} stale)",
        stats.locks, stats.stale_locks
    ))?;
    out.line(format!("epoch           {}", stats.epoch))?;
    out.line(format!(
        "clean shutdown  {} (node {DEFAULT_NODE})",
        yes_no(stats.clean_shutdown)
    ))?;
    if !stats.locks_per_share.is_empty() {
        out.line("")?;
        let mut table = Table::new(&["SHARE", "LOCKS"]);
        for s in &stats.locks_per_share {
            table.row(out, vec![cell(&s.share_name), s.locks.to_string()])?;
        }
        table.finish(out)?;
    }
    if !stats.top_clients.is_empty() {
        out.line("")?;
        let mut table = Table::new(&["TOP CLIENT", "LOCKS"]);
        for c in &stats.top_clients {
            table.row(out, vec![cell(&c.client_id), c.locks.to_string()])?;
        }
        table.finish(out)?;
    }
    if !stats.nodes.is_empty() {
        out.line("")?;
        let mut table = Table::new(&["NODE", "EPOCH", "CLEAN", "LOCKS", "STALE"]);
        for n in &stats.nodes {
            table.row(
                out,
                vec![
                    cell(&n.node_id),
                    n.epoch.clone(),
                    yes_no(n.clean_shutdown).to_owned(),
                    n.locks.to_string(),
                    n.stale_locks.to_string(),
                ],
            )?;
        }
        table.finish(out)?;
    }
    Ok(())
}
