//! P1-sync-8-vs-1 (issue 20): fjall `Durability::Sync` commit throughput of
//! eight concurrent committers over one, on one store. Without group commit
//! every commit pays its own fsync and the ratio is about 1; with it, the
//! eight share fsyncs. The same eight committers on a `Buffered` store (no
//! fsync at all) are the ceiling the machine's CPUs set, printed beside it:
//! when one fsync is cheap (≈0.1 ms on this VM's disk), one Sync committer
//! already runs at a good part of that ceiling, and 8 vs 1 cannot reach
//! much more than ceiling ÷ one.

use std::sync::Arc;

use fsmeta::{Durability, FjallOptions, FjallStore};

use super::{Goal, Res, report, run_concurrent, transact_write_pair, write_pair};

/// Commits (a file and a lock each) per committer per round.
const PER_COMMITTER: u64 = 50;
const COMMITTERS: usize = 8;

/// Seconds for `committers` tasks to commit [`PER_COMMITTER`] transactions
/// each; `base` keeps every round's files and locks new.
async fn round(store: &Arc<FjallStore>, committers: usize, base: u64) -> Res<f64> {
    run_concurrent(committers, |t| {
        let store = store.clone();
        async move {
            for k in 0..PER_COMMITTER {
                let (file, lock) = write_pair(4, base + t as u64 * PER_COMMITTER + k);
                transact_write_pair(&*store, &file, &lock).await?;
            }
            Ok(())
        }
    })
    .await
}

/// Alternates one-committer and eight-committer rounds; reports the ratio
/// of their median throughputs.
pub async fn p1_sync_concurrency(rounds: usize) -> Res {
    let dir = tempfile::tempdir()?;
    let open = |name: &str, durability| {
        FjallStore::open_with(
            dir.path().join(name),
            FjallOptions {
                durability,
                ..Default::default()
            },
        )
        .map(Arc::new)
    };
    let store = open("group", Durability::Sync)?;
    let ceiling_store = open("ceiling", Durability::Buffered)?;
    let (mut one, mut eight, mut ceiling) = (Vec::new(), Vec::new(), Vec::new());
    let mut base = 0;
    let many = (PER_COMMITTER * COMMITTERS as u64) as f64;
    // Round 0 warms up and is not counted.
    for r in 0..=rounds {
        let single = round(&store, 1, base).await?;
        base += PER_COMMITTER;
        let concurrent = round(&store, COMMITTERS, base).await?;
        let buffered = round(&ceiling_store, COMMITTERS, base).await?;
        base += PER_COMMITTER * COMMITTERS as u64;
        if r > 0 {
            one.push(PER_COMMITTER as f64 / single);
            eight.push(many / concurrent);
            ceiling.push(many / buffered);
        }
    }
    let median = super::median;
    let (one, eight, ceiling) = (median(one), median(eight), median(ceiling));
    report(
        "P1-fjall-sync-8-vs-1",
        eight / one,
        Goal::AtLeast(3.0),
        &format!(
            "Sync commits (put_file + put_lock): 1 committer {one:.0} tx/s, {COMMITTERS} concurrent {eight:.0} tx/s; \
             ceiling (the {COMMITTERS} on Buffered, no fsync) {ceiling:.0} tx/s, so 8 vs 1 can reach at most {:.2} here \
             (median of {rounds} rounds; 2 tokio workers)",
            ceiling / one
        ),
    );
    Ok(())
}
