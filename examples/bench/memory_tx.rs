//! P4: memory transactions, big store vs small (issue 8).

use super::*;

pub(super) async fn p4(cfg: &Cfg, small: &MemoryStore, big: &MemoryStore) -> Res {
    async fn round(store: &MemoryStore, locks: &[PersistedLock]) -> Res<f64> {
        let started = Instant::now();
        for lock in locks {
            let mut tx = store.begin().await?;
            tx.put_lock(lock).await?;
            tx.commit().await?;
        }
        let secs = started.elapsed().as_secs_f64();
        // Put the store back to its size (untimed).
        let mut tx = store.begin().await?;
        for lock in locks {
            tx.delete_lock(lock.id).await?;
        }
        tx.commit().await?;
        Ok(secs / locks.len() as f64)
    }
    let (mut s, mut b) = (Vec::new(), Vec::new());
    for r in 0..=cfg.p4_rounds as u64 {
        let locks: Vec<_> = (0..cfg.p4_batch as u64)
            .map(|j| extra_lock(3, "p4-client", r, j))
            .collect();
        let small_secs = round(small, &locks).await?;
        let big_secs = round(big, &locks).await?;
        if r > 0 {
            s.push(small_secs);
            b.push(big_secs);
        }
    }
    let (s, b) = (median(s), median(b));
    report(
        "P4-memory-tx",
        b / s,
        Goal::AtMost(2.0),
        &format!(
            "begin+put_lock+commit: {} stored {}, {} stored {} (median of {} rounds of {})",
            cfg.big,
            us(b),
            cfg.p4_small,
            us(s),
            cfg.p4_rounds,
            cfg.p4_batch
        ),
    );
    Ok(())
}

/// Commits made in each P4-old-tx run; the last `P4_OLD_MEASURED` are timed.
pub(super) const P4_OLD_COMMITS: u64 = 10_000;
pub(super) const P4_OLD_MEASURED: u64 = 1_000;

/// What stays open while a P4-old-tx run commits.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Bystander {
    /// One transaction begun before the first commit and kept open to the end
    /// (`copy_store`'s source snapshot): the commit log keeps every commit.
    Old,
    /// A fresh transaction begun before each commit and dropped after it
    /// (inside the timing): the same commit path (replay plus log record), a
    /// log of one record.
    Fresh,
    /// Nothing: each commit is alone and publishes its working tables.
    None,
}

/// Commit cost while an old transaction stays open (issue 14 item 7):
/// validation must examine only the commits after the committer's snapshot,
/// so the 10,000th commit costs what the 1st does.
pub(super) async fn p4_old_tx(cfg: &Cfg) -> Res {
    async fn run(bystander: Bystander) -> Res<f64> {
        let store = MemoryStore::new();
        let old = match bystander {
            Bystander::Old => Some(store.begin().await?),
            _ => None,
        };
        let mut secs = 0.0;
        for j in 0..P4_OLD_COMMITS {
            let lock = extra_lock(4, "p4-old-client", 0, j);
            let fresh = match bystander {
                Bystander::Fresh => Some(store.begin().await?),
                _ => None,
            };
            let started = Instant::now();
            let mut tx = store.begin().await?;
            tx.put_lock(&lock).await?;
            tx.commit().await?;
            // Timed: the fresh bystander is the last holder of the tree
            // nodes the commit replaced, so its end frees them, as the
            // committer's own end does with an old bystander or none.
            drop(fresh);
            if j >= P4_OLD_COMMITS - P4_OLD_MEASURED {
                secs += started.elapsed().as_secs_f64();
            }
        }
        drop(old);
        Ok(secs / P4_OLD_MEASURED as f64)
    }
    let (mut old, mut fresh, mut none) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..cfg.p4_rounds.min(5) {
        old.push(run(Bystander::Old).await?);
        fresh.push(run(Bystander::Fresh).await?);
        none.push(run(Bystander::None).await?);
    }
    let (old, fresh, none) = (median(old), median(fresh), median(none));
    report(
        "P4-memory-old-tx",
        old / fresh,
        Goal::AtMost(1.5),
        &format!(
            "begin+put_lock+commit, commits {}..{}: one transaction open since before commit 0 {}, \
             a fresh one open {}, none open {} (old/none {:.2}; median of {} rounds)",
            P4_OLD_COMMITS - P4_OLD_MEASURED,
            P4_OLD_COMMITS,
            us(old),
            us(fresh),
            us(none),
            old / none,
            cfg.p4_rounds.min(5)
        ),
    );
    Ok(())
}
