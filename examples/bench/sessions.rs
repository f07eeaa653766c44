//! RECOVERY (issue 15): `start` + `end_grace` of a node with 1k locks, in a
//! store of 1M other nodes' locks vs one of 10k. Recovery reads the node's
//! own dead epochs by index range and deletes them in bulk, so the big
//! store's other locks must not show in the time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fsmeta::{MetadataStore, MetadataStoreExt, Node, PersistedLock, StartOptions};

use super::{Goal, Res, extra_lock, median, report, us};

/// Locks of the recovering node.
const NODE_LOCKS: u64 = 1_000;

fn options() -> StartOptions {
    StartOptions {
        lease: Duration::from_secs(3600),
        // The bench "crashes" a session by dropping it; its lease still runs.
        take_over_live: true,
    }
}

/// Gives the store's preloaded locks (epoch 1) a live owner, so they are
/// other nodes' locks and not the bench node's: the first epoch a store
/// hands out is 1.
async fn adopt_preloaded(store: &Arc<dyn MetadataStore>) -> Res {
    // A store kept from an earlier run (FSMETA_BENCH_FJALL_DIR) has the node
    // already: epoch 1 is one of its dead epochs, still not the bench nodes'.
    let kept = store
        .begin()
        .await?
        .get_node("preloaded-locks")
        .await?
        .is_some();
    let session = Node::new(store.clone(), "preloaded-locks")?
        .start(options())
        .await?;
    if !kept && session.epoch() != 1 {
        return Err(format!(
            "recovery bench: the preloaded locks' node got epoch {}, not 1",
            session.epoch()
        )
        .into());
    }
    Ok(())
}

/// One sample: node `bench-node-K` takes 1k locks and crashes (untimed);
/// then its restart (`start`, which lists the 1k as reclaimable) and
/// `end_grace` (which deletes them) are timed.
async fn sample(store: &Arc<dyn MetadataStore>, k: u64) -> Res<f64> {
    let node = Node::new(store.clone(), format!("bench-node-{k}"))?;
    let crashed = node.start(options()).await?;
    let name = format!("bench-node-{k}-client");
    let locks: Vec<PersistedLock> = (0..NODE_LOCKS)
        .map(|j| PersistedLock {
            server_epoch: crashed.epoch(),
            ..extra_lock(3, &name, 500 + k, j)
        })
        .collect();
    let locks = &locks;
    store
        .transact(|tx| Box::pin(async move { tx.put_locks(locks).await }))
        .await?;
    drop(crashed);
    let started = Instant::now();
    let session = node.start(options()).await?;
    let removed = session.end_grace().await?;
    let secs = started.elapsed().as_secs_f64();
    let listed = session.recovery().reclaimable.len() as u64;
    if listed != NODE_LOCKS || removed != NODE_LOCKS {
        return Err(format!(
            "recovery bench: {listed} locks listed and {removed} removed, expected {NODE_LOCKS}"
        )
        .into());
    }
    Ok(secs)
}

/// The RECOVERY target of one backend: the median of `samples` restarts in
/// each store, the big store's over the small one's.
pub async fn recovery(
    backend: &str,
    samples: usize,
    small: (u64, Arc<dyn MetadataStore>),
    big: (u64, Arc<dyn MetadataStore>),
) -> Res {
    adopt_preloaded(&small.1).await?;
    adopt_preloaded(&big.1).await?;
    let (mut s, mut b) = (Vec::new(), Vec::new());
    for k in 0..samples as u64 {
        s.push(sample(&small.1, k).await?);
        b.push(sample(&big.1, k).await?);
    }
    let (s, b) = (median(s), median(b));
    report(
        &format!("RECOVERY-{backend}-start-end-grace"),
        b / s,
        Goal::AtMost(1.5),
        &format!(
            "median start + end_grace of a node with {NODE_LOCKS} locks: store of {} other locks {}, of {} {} ({samples} samples)",
            big.0,
            us(b),
            small.0,
            us(s),
        ),
    );
    Ok(())
}
