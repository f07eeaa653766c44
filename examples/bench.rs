//! The performance targets of issue 8, each measured as a ratio against a
//! baseline taken in the same run (the machine is shared: absolute times
//! drift, ratios hold). Prints one line per target:
//!
//! ```text
//! NAME ratio=R target=T PASS|MISS
//! ```
//!
//! and `# …` lines with the figures behind each ratio (latencies, load times,
//! footprint). See `docs/performance.md` for the method.
//!
//! ```text
//! cargo run --release --example bench              # full: 1M-lock stores
//! cargo run --release --example bench -- --quick   # smoke run, under a minute
//! cargo run --release --example bench -- --only P1,P3 --backends memory,fjall
//! cargo run --release --example bench -- --quick --only P4-OLD-TX --backends memory
//! cargo run --release --example bench -- --quick --only EXT         # ext_put vs put_file, with a lock
//! cargo run --release --example bench -- --quick --only CHECKIO     # check_io, 10 vs 1,000 locks on the file
//! cargo run --release --example bench -- --quick --only RECOVERY    # start + end_grace, big store vs small
//! ```
//!
//! PostgreSQL: `FSMETA_BENCH_POSTGRES_URL` (or `FSMETA_TEST_POSTGRES_URL`,
//! default `postgres://postgres@127.0.0.1:5432/test`). Every store lives in its
//! own schema, dropped at the end. Without a server the PostgreSQL targets
//! print `SKIP`.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fjall::{KeyspaceCreateOptions, OptimisticTxDatabase, PersistMode, Readable};
use fsmeta::backend::fjall::HOSTED_PREFIX;
use fsmeta::{
    Durability, FileMeta, FjallOptions, FjallStore, LockQuery, MemoryStore, MetadataStore,
    MetadataStoreExt, PersistedLock, PgOptions, PostgresStore, Timestamp,
};
use uuid::Uuid;

#[path = "../benches/common/mod.rs"]
mod common;

use common::*;

#[path = "bench/sessions.rs"]
mod sessions;

#[path = "bench/group_commit.rs"]
mod group_commit;
#[path = "bench/latency.rs"]
mod latency;
#[path = "bench/versus_raw.rs"]
mod versus_raw;
#[path = "bench/wire_count.rs"]
mod wire_count;

#[path = "../benches/common/counted.rs"]
mod counted;

// ---------------------------------------------------------------------------
// Configuration

#[derive(Clone)]
struct Cfg {
    quick: bool,
    only: Option<Vec<String>>,
    backends: Option<Vec<String>>,
    pg_url: String,
    /// The large store of P3, P5, P6 and the footprint.
    big: u64,
    /// The small store of P3 and P5.
    small: u64,
    /// The small store of P4.
    p4_small: u64,
    /// Rounds × transactions per round, lib and raw alternating.
    p1_rounds: usize,
    p1_batch: usize,
    p1_sync_batch: usize,
    p2_rounds: usize,
    p2_batch: usize,
    p3_samples: usize,
    p4_rounds: usize,
    p4_batch: usize,
    p5_samples: usize,
    /// Locks of the client P5 deletes.
    p5_locks: u64,
    /// Locks of the client deleted in one transaction (P5-bulk).
    bulk: u64,
    p6_runs: usize,
}

impl Cfg {
    fn from_args() -> Res<Cfg> {
        let mut quick = false;
        let mut only = None;
        let mut backends = None;
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => quick = true,
                "--only" => {
                    let list = args.next().ok_or("--only needs a list, e.g. P1,P3")?;
                    only = Some(list.split(',').map(|s| s.trim().to_uppercase()).collect());
                }
                "--backends" => {
                    let list = args
                        .next()
                        .ok_or("--backends needs a list, e.g. memory,fjall")?;
                    backends = Some(list.split(',').map(|s| s.trim().to_lowercase()).collect());
                }
                "--bench" => {} // passed by `cargo bench`-style runners
                other => return Err(format!("unknown argument {other:?}").into()),
            }
        }
        let pg_url = std::env::var("FSMETA_BENCH_POSTGRES_URL")
            .or_else(|_| std::env::var("FSMETA_TEST_POSTGRES_URL"))
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        Ok(if quick {
            Cfg {
                quick,
                only,
                backends,
                pg_url,
                big: 50_000,
                small: 5_000,
                p4_small: 1_000,
                p1_rounds: 5,
                p1_batch: 300,
                p1_sync_batch: 10,
                p2_rounds: 3,
                p2_batch: 80,
                p3_samples: 100,
                p4_rounds: 5,
                p4_batch: 500,
                p5_samples: 3,
                p5_locks: 1_000,
                bulk: 10_000,
                p6_runs: 1,
            }
        } else {
            Cfg {
                quick,
                only,
                backends,
                pg_url,
                big: 1_000_000,
                small: 10_000,
                p4_small: 1_000,
                p1_rounds: 15,
                p1_batch: 2_000,
                p1_sync_batch: 40,
                p2_rounds: 9,
                p2_batch: 400,
                p3_samples: 1_000,
                p4_rounds: 15,
                p4_batch: 2_000,
                p5_samples: 9,
                p5_locks: 1_000,
                bulk: 100_000,
                p6_runs: 3,
            }
        })
    }

    fn backend(&self, name: &str) -> bool {
        self.backends
            .as_ref()
            .is_none_or(|b| b.iter().any(|t| t == name))
    }

    fn wants(&self, target: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|t| t == target))
    }
}

// ---------------------------------------------------------------------------
// Output

#[derive(Clone, Copy)]
enum Goal {
    /// The ratio must be at least this.
    AtLeast(f64),
    /// The ratio must be at most this.
    AtMost(f64),
    /// No target: the figure is reported (printed as `target=none REPORT`).
    Report,
}

fn report(name: &str, ratio: f64, goal: Goal, detail: &str) {
    let verdict = |pass: bool| if pass { "PASS" } else { "MISS" };
    let (target, verdict) = match goal {
        Goal::AtLeast(t) => (format!(">={t:.2}"), verdict(ratio >= t)),
        Goal::AtMost(t) => (format!("<={t:.2}"), verdict(ratio <= t)),
        Goal::Report => ("none".to_owned(), "REPORT"),
    };
    println!("{name} ratio={ratio:.2} target={target} {verdict}");
    if !detail.is_empty() {
        println!("#   {name}: {detail}");
    }
}

fn info(line: &str) {
    println!("# {line}");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn us(d: f64) -> String {
    format!("{:.1} µs", d * 1e6)
}

/// Loads locks `0..n` of a store of `n` in transactions of `batch` through
/// `put_locks`; returns the seconds it took.
async fn load(store: &dyn MetadataStore, n: u64, batch: u64) -> Res<f64> {
    let started = Instant::now();
    let mut next = 0;
    while next < n {
        let end = (next + batch).min(n);
        let locks: Vec<PersistedLock> = (next..end).map(|i| store_lock(n, i)).collect();
        let locks = &locks;
        store
            .transact(|tx| Box::pin(async move { tx.put_locks(locks).await }))
            .await?;
        next = end;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// True when the last lock of a store of `n` is there (a kept store).
async fn loaded(store: &dyn MetadataStore, n: u64) -> Res<bool> {
    let mut tx = store.begin().await?;
    Ok(tx.get_lock(store_lock(n, n - 1).id).await?.is_some())
}

async fn load_extra(store: &dyn MetadataStore, name: &str, tag: u64, count: u64) -> Res {
    let mut next = 0;
    while next < count {
        let end = (next + 10_000).min(count);
        let locks: Vec<PersistedLock> = (next..end).map(|j| extra_lock(1, name, tag, j)).collect();
        let locks = &locks;
        store
            .transact(|tx| Box::pin(async move { tx.put_locks(locks).await }))
            .await?;
        next = end;
    }
    Ok(())
}

fn load_info(backend: &str, n: u64, secs: f64) {
    info(&format!(
        "load {backend}: {n} locks in {secs:.2} s ({:.0} locks/s)",
        n as f64 / secs
    ));
}

// ---------------------------------------------------------------------------
// P1: fjall write, library vs raw

async fn p1(cfg: &Cfg, durability: Durability) -> Res {
    // Buffered: >= 0.8 (issue 8); Sync: >= 0.9 (issue 20, with group commit).
    let (name, mode, batch, goal) = match durability {
        Durability::Buffered => (
            "P1-fjall-write-buffered",
            PersistMode::Buffer,
            cfg.p1_batch,
            Goal::AtLeast(0.8),
        ),
        // Sync (and any mode added later).
        _ => (
            "P1-fjall-write-sync",
            PersistMode::SyncAll,
            cfg.p1_sync_batch,
            Goal::AtLeast(0.9),
        ),
    };
    let dir = tempfile::tempdir()?;
    let store = FjallStore::open_with(
        dir.path().join("lib"),
        FjallOptions {
            durability,
            ..Default::default()
        },
    )?;
    let raw = RawFjall::open(&dir.path().join("raw"), mode)?;
    let mut ratios = Vec::new();
    let (mut lib_total, mut raw_total, mut count) = (0.0, 0.0, 0);
    let mut k = 0u64;
    // Round 0 warms both up and is not counted.
    for round in 0..=cfg.p1_rounds {
        let pairs: Vec<_> = (k..k + batch as u64).map(|k| write_pair(2, k)).collect();
        k += batch as u64;
        let started = Instant::now();
        for (file, lock) in &pairs {
            transact_write_pair(&store, file, lock).await?;
        }
        let lib = started.elapsed().as_secs_f64();
        let started = Instant::now();
        for (file, lock) in &pairs {
            raw.put_file_and_lock(file, lock)?;
        }
        let raw_secs = started.elapsed().as_secs_f64();
        if round > 0 {
            ratios.push(raw_secs / lib);
            lib_total += lib;
            raw_total += raw_secs;
            count += batch;
        }
    }
    let ratio = median(ratios);
    report(
        name,
        ratio,
        goal,
        &format!(
            "lib {} per tx ({:.0} tx/s), raw {} per tx ({:.0} tx/s), median of {} rounds of {}",
            us(lib_total / count as f64),
            count as f64 / lib_total,
            us(raw_total / count as f64),
            count as f64 / raw_total,
            cfg.p1_rounds,
            batch
        ),
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// P3 and P5 on any backend: two stores of different sizes, measured interleaved.

#[derive(Clone, Copy, Debug)]
enum By {
    File,
    Owner,
    Client,
}

fn query_for(by: By, group: u64) -> LockQuery {
    match by {
        By::File => LockQuery::by_file(&handle(0, group)),
        By::Owner => LockQuery::by_owner(&owner(group)),
        By::Client => LockQuery::by_client(&client(group)),
    }
}

/// Latency of one `list_locks` in an open transaction.
async fn time_query(store: &dyn MetadataStore, query: &LockQuery) -> Res<f64> {
    let mut tx = store.begin().await?;
    let started = Instant::now();
    let found = tx.list_locks(query).await?;
    let secs = started.elapsed().as_secs_f64();
    tx.rollback().await?;
    if found.len() != 10 {
        return Err(format!("{query:?} found {} locks, expected 10", found.len()).into());
    }
    Ok(secs)
}

/// P3 on one backend. `warm`: each sampled query runs once untimed first, so
/// the timed run finds its blocks in the backend's caches.
async fn p3(
    cfg: &Cfg,
    backend: &str,
    warm: bool,
    small: &dyn MetadataStore,
    big: &dyn MetadataStore,
) -> Res {
    for by in [By::File, By::Owner, By::Client] {
        let (mut s, mut b) = (Vec::new(), Vec::new());
        for k in 0..cfg.p3_samples as u64 {
            let r = mix(k ^ 0x5eed);
            let (qs, qb) = (
                query_for(by, r % (cfg.small / 10)),
                query_for(by, r % (cfg.big / 10)),
            );
            if warm {
                time_query(small, &qs).await?;
                time_query(big, &qb).await?;
            }
            s.push(time_query(small, &qs).await?);
            b.push(time_query(big, &qb).await?);
        }
        p3_report(cfg, backend, by, warm, median(s), median(b));
    }
    Ok(())
}

fn p3_report(cfg: &Cfg, backend: &str, by: By, warm: bool, s: f64, b: f64) {
    let name = format!(
        "P3-{backend}{}-by-{}",
        if warm { "-warm" } else { "" },
        format!("{by:?}").to_lowercase()
    );
    report(
        &name,
        b / s,
        Goal::AtMost(1.5),
        &format!(
            "median list_locks returning 10{}: {} locks stored {}, {} stored {} ({} samples each)",
            if warm { " (warm caches)" } else { "" },
            cfg.big,
            us(b),
            cfg.small,
            us(s),
            cfg.p3_samples
        ),
    );
}

/// Loads a client of `count` locks (untimed), then times one transaction
/// that deletes them all: begin + delete_locks_by_client + commit.
async fn time_cleanup(store: &dyn MetadataStore, name: &str, tag: u64, count: u64) -> Res<f64> {
    load_extra(store, name, tag, count).await?;
    let started = Instant::now();
    let mut tx = store.begin().await?;
    let deleted = tx.delete_locks_by_client(name).await?;
    tx.commit().await?;
    let secs = started.elapsed().as_secs_f64();
    if deleted != count {
        return Err(format!("deleted {deleted} locks of {name}, expected {count}").into());
    }
    Ok(secs)
}

async fn p5(cfg: &Cfg, backend: &str, small: &dyn MetadataStore, big: &dyn MetadataStore) -> Res {
    let (mut s, mut b) = (Vec::new(), Vec::new());
    for k in 0..cfg.p5_samples as u64 {
        let name = format!("cleanup-client-{k}");
        s.push(time_cleanup(small, &name, k, cfg.p5_locks).await?);
        b.push(time_cleanup(big, &name, k, cfg.p5_locks).await?);
    }
    let (s, b) = (median(s), median(b));
    report(
        &format!("P5-{backend}-cleanup"),
        b / s,
        Goal::AtMost(1.5),
        &format!(
            "median delete_locks_by_client of {} locks (one tx): store of {} {}, of {} {} ({} samples)",
            cfg.p5_locks,
            cfg.big,
            us(b),
            cfg.small,
            us(s),
            cfg.p5_samples
        ),
    );
    Ok(())
}

async fn p5_bulk(cfg: &Cfg, backend: &str, big: &dyn MetadataStore) -> Res {
    let started = Instant::now();
    load_extra(big, "bulk-client", 999_999, cfg.bulk).await?;
    let loaded = started.elapsed().as_secs_f64();
    if backend == "fjall" {
        // The same again for the raw-fjall delete that follows (p5_bulk_raw).
        load_extra(big, "bulk-client-raw", 999_998, cfg.bulk).await?;
    }
    let started = Instant::now();
    let mut tx = big.begin().await?;
    let deleted = tx.delete_locks_by_client("bulk-client").await?;
    tx.commit().await?;
    let secs = started.elapsed().as_secs_f64();
    if deleted != cfg.bulk {
        return Err(format!("bulk delete removed {deleted}, expected {}", cfg.bulk).into());
    }
    report(
        &format!("P5-{backend}-bulk-delete"),
        secs / 5.0,
        Goal::AtMost(1.0),
        &format!(
            "{} locks of one client deleted in one tx in {secs:.2} s (limit 5 s; ratio = time/limit) in a store of {}; loading them took {loaded:.2} s",
            cfg.bulk, cfg.big
        ),
    );
    Ok(())
}

/// The bulk delete by hand on raw fjall, on the same store (no target: the
/// engine's own time, to compare the library's with).
fn p5_bulk_raw(cfg: &Cfg, raw: &RawFjall) -> Res {
    let started = Instant::now();
    let deleted = raw.delete_client("bulk-client-raw")?;
    let secs = started.elapsed().as_secs_f64();
    if deleted as u64 != cfg.bulk {
        return Err(format!("raw bulk delete removed {deleted}, expected {}", cfg.bulk).into());
    }
    info(&format!(
        "P5 raw fjall: {} locks of one client deleted by hand in one tx in {secs:.2} s",
        cfg.bulk
    ));
    Ok(())
}

// ---------------------------------------------------------------------------
// P4: memory transactions

async fn p4(cfg: &Cfg, small: &MemoryStore, big: &MemoryStore) -> Res {
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
const P4_OLD_COMMITS: u64 = 10_000;
const P4_OLD_MEASURED: u64 = 1_000;

/// What stays open while a P4-old-tx run commits.
#[derive(Clone, Copy, PartialEq)]
enum Bystander {
    /// One transaction begun before the first commit and kept open to the end
    /// (`copy_store`'s source snapshot): the commit log keeps every commit.
    Old,
    /// A fresh transaction begun before each commit and dropped after it: the
    /// same commit path (replay plus log record), a log of one record.
    Fresh,
    /// Nothing: each commit is alone and publishes its working tables.
    None,
}

/// Commit cost while an old transaction stays open (issue 14 item 7):
/// validation must examine only the commits after the committer's snapshot,
/// so the 10,000th commit costs what the 1st does.
async fn p4_old_tx(cfg: &Cfg) -> Res {
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
            if j >= P4_OLD_COMMITS - P4_OLD_MEASURED {
                secs += started.elapsed().as_secs_f64();
            }
            drop(fresh);
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

// ---------------------------------------------------------------------------
// EXT: an extension record written with a lock vs a file record with a lock

/// Seconds per transaction of `rounds` alternating batches of `n`
/// `transact(put_file + put_lock)` and `transact(ext_put + put_lock)`
/// (a 100-byte inode value keyed like the file): (file, ext).
async fn ext_vs_file_secs(store: &dyn MetadataStore, n: u64, rounds: u64) -> Res<(f64, f64)> {
    let (mut file_secs, mut ext_secs) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for ext in [false, true] {
            let started = Instant::now();
            for k in 0..n {
                let (file, lock) = write_pair(7 + u8::from(ext), round * n + k);
                let (file, lock) = (&file, &lock);
                store
                    .transact(|tx| {
                        Box::pin(async move {
                            if ext {
                                tx.ext_put("inodes", file.handle.as_bytes(), &[7u8; 100])
                                    .await?;
                            } else {
                                tx.put_file(file).await?;
                            }
                            tx.put_lock(lock).await
                        })
                    })
                    .await?;
            }
            let per_tx = started.elapsed().as_secs_f64() / n as f64;
            if ext {
                ext_secs.push(per_tx);
            } else {
                file_secs.push(per_tx);
            }
        }
    }
    Ok((median(file_secs), median(ext_secs)))
}

async fn ext_vs_file(cfg: &Cfg, backend: &str, store: &dyn MetadataStore) -> Res {
    let n = if cfg.quick { 300 } else { 3000 };
    let (file, ext) = ext_vs_file_secs(store, n, 3).await?;
    report(
        &format!("EXT-{backend}-ext-vs-file"),
        ext / file,
        Goal::Report,
        &format!(
            "transact(ext_put + put_lock) {} vs transact(put_file + put_lock) {} (median of 3 rounds of {n})",
            us(ext),
            us(file)
        ),
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// CHECKIO: the cost of an SMB I/O check against a file's locks

/// Seconds per `check_io` call (in its own read transaction) on a file
/// holding `locks` Windows shared locks of other opens (one byte each,
/// every other byte, none in the checked range), median of 3 rounds of `calls`.
async fn check_io_secs(store: &dyn MetadataStore, tag: u8, locks: u64, calls: u64) -> Res<f64> {
    let file = fsmeta::FileHandle::new(vec![0xC0, tag])?;
    let all: Vec<PersistedLock> = (0..locks)
        .map(|i| PersistedLock {
            id: Uuid::from_u128((u128::from(tag) << 64) | u128::from(i)),
            share_name: "bench".into(),
            file_id: file.clone(),
            owner_id: format!("open-{i}"),
            client_id: "smb-client".into(),
            lock_type: fsmeta::LockType::Shared,
            offset: 1_000_000 + 2 * i,
            length: 1,
            share_reservation: fsmeta::ShareReservation::None,
            acquired_at: Timestamp::now(),
            server_epoch: 1,
            flavor: fsmeta::LockFlavor::Windows,
        })
        .collect();
    for chunk in all.chunks(500) {
        store
            .transact(|tx| {
                Box::pin(async move {
                    for lock in chunk {
                        tx.put_lock(lock).await?;
                    }
                    Ok(())
                })
            })
            .await?;
    }
    let owner = fsmeta::LockOwner {
        owner_id: "reader".into(),
        client_id: "smb-client".into(),
        share_name: "bench".into(),
    };
    let mut rounds = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        for _ in 0..calls {
            let mut tx = store.begin().await?;
            let answer = fsmeta::check_io(
                &mut *tx,
                &file,
                &owner,
                fsmeta::ByteRange::new(0, 4096),
                true,
            )
            .await?;
            assert!(matches!(answer, fsmeta::Io::Allowed), "{answer:?}");
            tx.rollback().await?;
        }
        rounds.push(started.elapsed().as_secs_f64() / calls as f64);
    }
    Ok(median(rounds))
}

async fn check_io_bench(cfg: &Cfg, backend: &str, store: &dyn MetadataStore) -> Res {
    let calls = if cfg.quick { 200 } else { 2000 };
    let few = check_io_secs(store, 1, 10, calls).await?;
    let many = check_io_secs(store, 2, 1000, calls / 10).await?;
    report(
        &format!("CHECKIO-{backend}-1000-vs-10"),
        many / few,
        Goal::Report,
        &format!(
            "check_io (one list_locks by file, in its own transaction): {} per call with 10 locks on the file, {} with 1,000",
            us(few),
            us(many)
        ),
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// P6: reopen a fjall store and list every lock, vs a raw scan

fn raw_scan(path: &Path) -> Res<usize> {
    let db = OptimisticTxDatabase::builder(path).open()?;
    // The bench's stores are hosted (see run_fjall).
    let locks = db.keyspace(
        &format!("{HOSTED_PREFIX}locks"),
        KeyspaceCreateOptions::default,
    )?;
    let mut all = Vec::new();
    for guard in db.read_tx().iter(&locks) {
        all.push(guard.into_inner()?);
    }
    Ok(all.len())
}

async fn lib_scan(path: &Path) -> Res<usize> {
    let store = FjallStore::from_database(open_bench_db(path)?, FjallOptions::default())?;
    let mut tx = store.begin().await?;
    let all = tx.list_locks(&LockQuery::default()).await?;
    tx.rollback().await?;
    Ok(all.len())
}

async fn p6(cfg: &Cfg, path: &Path, expected: usize) -> Res {
    let (mut lib, mut raw) = (Vec::new(), Vec::new());
    // One unmeasured pass each brings the files into the page cache.
    for run in 0..=cfg.p6_runs {
        let started = Instant::now();
        let n = lib_scan(path).await?;
        let lib_secs = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let m = raw_scan(path)?;
        let raw_secs = started.elapsed().as_secs_f64();
        if n != expected || m != expected {
            return Err(format!("P6 listed {n} (lib) and {m} (raw), expected {expected}").into());
        }
        if run > 0 {
            lib.push(lib_secs);
            raw.push(raw_secs);
        }
    }
    let (l, r) = (median(lib), median(raw));
    report(
        "P6-fjall-reopen-list",
        l / r,
        Goal::AtMost(2.0),
        &format!(
            "open + list_locks(all) of {expected} locks {l:.3} s, raw open + scan of `locks` {r:.3} s (median of {})",
            cfg.p6_runs
        ),
    );
    Ok(())
}

fn dir_size(path: &Path) -> Res<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

// ---------------------------------------------------------------------------
// Memory footprint, in a child process so that nothing else is in its heap.

fn rss_bytes() -> Res<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .ok_or("no RSS in /proc/self/statm")?
        .parse()?;
    Ok(pages * 4096)
}

/// Heap size of a lock value: the struct plus its strings' buffers.
fn lock_heap_size(lock: &PersistedLock) -> u64 {
    (std::mem::size_of::<PersistedLock>()
        + lock.share_name.capacity()
        + lock.file_id.as_bytes().len()
        + lock.owner_id.capacity()
        + lock.client_id.capacity()) as u64
}

async fn memory_footprint_child(n: u64) -> Res {
    let before = rss_bytes()?;
    let store = MemoryStore::new();
    load(&store, n, 10_000).await?;
    let after = rss_bytes()?;
    let heap: u64 = (0..n).map(|i| lock_heap_size(&store_lock(n, i))).sum();
    println!("{} {} {}", after - before, heap, n);
    drop(store);
    Ok(())
}

fn memory_footprint(cfg: &Cfg) -> Res {
    let exe = std::env::current_exe()?;
    let out = std::process::Command::new(exe)
        .args(["--memory-footprint-child", &cfg.big.to_string()])
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "footprint child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let text = String::from_utf8(out.stdout)?;
    let v: Vec<u64> = text
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let [rss, heap, n] = v[..] else {
        return Err(format!("footprint child printed {text:?}").into());
    };
    let (rss_per, heap_per) = (rss as f64 / n as f64, heap as f64 / n as f64);
    report(
        "FOOTPRINT-memory",
        rss_per / heap_per,
        Goal::AtMost(3.0),
        &format!(
            "RSS delta {rss_per:.0} bytes/lock for {n} locks, PersistedLock heap size {heap_per:.0} bytes/lock (struct {} + string buffers)",
            std::mem::size_of::<PersistedLock>()
        ),
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// PostgreSQL

async fn pg_reachable(url: &str) -> bool {
    match sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
    {
        Ok(pool) => {
            pool.close().await;
            true
        }
        Err(e) => {
            info(&format!("PostgreSQL at {url} unreachable: {e}"));
            false
        }
    }
}

/// Schemas created by this run, dropped at the end whatever happens.
struct Schemas {
    url: String,
    names: std::sync::Mutex<Vec<String>>,
}

impl Schemas {
    fn fresh(&self, what: &str) -> String {
        let name = format!("fsmeta_bench_{what}_{}", Uuid::new_v4().simple());
        self.names.lock().expect("schemas").push(name.clone());
        name
    }

    async fn drop_all(&self) {
        let names = std::mem::take(&mut *self.names.lock().expect("schemas"));
        if names.is_empty() {
            return;
        }
        match sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.url)
            .await
        {
            Ok(pool) => {
                for name in names {
                    if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(format!(
                        // A name this run generated: letters, digits, `_`.
                        "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
                    )))
                    .execute(&pool)
                    .await
                    {
                        eprintln!("warning: dropping schema {name}: {e}");
                    }
                }
                pool.close().await;
            }
            Err(e) => eprintln!("warning: cannot drop schemas {names:?}: {e}"),
        }
    }
}

async fn pg_store(cfg: &Cfg, schema: &str, connections: u32) -> Res<PostgresStore> {
    Ok(PostgresStore::connect_with(
        &cfg.pg_url,
        PgOptions {
            schema: Some(schema.to_owned()),
            max_connections: connections,
            ..Default::default()
        },
    )
    .await?)
}

/// A plain sqlx pool on `schema`, SERIALIZABLE by start-up parameter like the library's.
async fn sqlx_pool(cfg: &Cfg, schema: &str, connections: u32) -> Res<sqlx::PgPool> {
    let options: sqlx::postgres::PgConnectOptions = cfg.pg_url.parse()?;
    let options = options.options([
        ("default_transaction_isolation", "serializable"),
        ("search_path", &format!("\"{schema}\"")),
    ]);
    Ok(sqlx::postgres::PgPoolOptions::new()
        .max_connections(connections)
        .connect_with(options)
        .await?)
}

const RAW_INSERT_FILE: &str = r#"INSERT INTO "files" ("handle", "share_name", "kind", "mode", "uid", "gid", "nlink", "size", "atime", "mtime", "ctime") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT ("handle") DO UPDATE SET "share_name" = "excluded"."share_name", "kind" = "excluded"."kind", "mode" = "excluded"."mode", "uid" = "excluded"."uid", "gid" = "excluded"."gid", "nlink" = "excluded"."nlink", "size" = "excluded"."size", "atime" = "excluded"."atime", "mtime" = "excluded"."mtime", "ctime" = "excluded"."ctime""#;

const RAW_INSERT_LOCK: &str = r#"INSERT INTO "locks" ("id", "share_name", "file_id", "owner_id", "client_id", "lock_type", "offset", "length", "share_reservation", "acquired_at", "server_epoch") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT ("id") DO UPDATE SET "share_name" = "excluded"."share_name", "file_id" = "excluded"."file_id", "owner_id" = "excluded"."owner_id", "client_id" = "excluded"."client_id", "lock_type" = "excluded"."lock_type", "offset" = "excluded"."offset", "length" = "excluded"."length", "share_reservation" = "excluded"."share_reservation", "acquired_at" = "excluded"."acquired_at", "server_epoch" = "excluded"."server_epoch""#;

fn db_time(t: Timestamp) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_micros(t.as_micros()).expect("valid timestamp")
}

fn is_serialization_failure(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("40001" | "40P01")))
}

/// The library's transaction, by hand: BEGIN, the two upserts, COMMIT;
/// retried on a serialization failure like `transact`.
async fn raw_pg_write(pool: &sqlx::PgPool, file: &FileMeta, lock: &PersistedLock) -> Res {
    use rust_decimal::Decimal;
    loop {
        let attempt: Result<(), sqlx::Error> = async {
            let mut tx = pool.begin().await?;
            sqlx::query(RAW_INSERT_FILE)
                .bind(file.handle.as_bytes())
                .bind(&file.share_name)
                .bind(file.kind as u8 as i16)
                .bind(i64::from(file.mode))
                .bind(i64::from(file.uid))
                .bind(i64::from(file.gid))
                .bind(i64::from(file.nlink))
                .bind(Decimal::from(file.size))
                .bind(db_time(file.atime))
                .bind(db_time(file.mtime))
                .bind(db_time(file.ctime))
                .execute(&mut *tx)
                .await?;
            sqlx::query(RAW_INSERT_LOCK)
                .bind(lock.id)
                .bind(&lock.share_name)
                .bind(lock.file_id.as_bytes())
                .bind(&lock.owner_id)
                .bind(&lock.client_id)
                .bind(lock.lock_type as u8 as i16)
                .bind(Decimal::from(lock.offset))
                .bind(Decimal::from(lock.length))
                .bind(lock.share_reservation as u8 as i16)
                .bind(db_time(lock.acquired_at))
                .bind(Decimal::from(lock.server_epoch))
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        }
        .await;
        match attempt {
            Ok(()) => return Ok(()),
            Err(e) if is_serialization_failure(&e) => {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Runs `op(0..tasks)` as concurrent tasks; returns the wall time.
async fn run_concurrent<F, Fut>(tasks: usize, op: F) -> Res<f64>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Res> + Send + 'static,
{
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks).map(|t| tokio::spawn(op(t))).collect();
    for h in handles {
        h.await??;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// P2 through a proxy that delays each direction by `one_way` (see
/// `bench/latency.rs`): both sides pay the same network.
async fn p2_over_network(cfg: &Cfg, schemas: &Schemas, one_way: Duration) -> Res {
    let proxy = latency::start(pg_address(cfg).await?, one_way)?;
    let delayed = Cfg {
        pg_url: url_with_port(&cfg.pg_url, proxy.port())?,
        ..cfg.clone()
    };
    let rtt_ms = one_way.as_secs_f64() * 2_000.0;
    p2_named(
        &delayed,
        schemas,
        1,
        &format!("P2-postgres-write-1conn-rtt{rtt_ms}ms"),
        Goal::AtLeast(2.0),
    )
    .await
}

/// The PostgreSQL server's socket address.
async fn pg_address(cfg: &Cfg) -> Res<std::net::SocketAddr> {
    let options: sqlx::postgres::PgConnectOptions = cfg.pg_url.parse()?;
    Ok(
        tokio::net::lookup_host((options.get_host(), options.get_port()))
            .await?
            .next()
            .ok_or("no address for the PostgreSQL host")?,
    )
}

/// PG-round-trips-*: the operations of `benches/common/counted.rs` on one
/// connection through a proxy that counts the round trips on the wire
/// (`bench/wire_count.rs`). Each line's figure is the exact count.
async fn pg_round_trips(cfg: &Cfg, schemas: &Schemas) -> Res {
    let (proxy, trips) = wire_count::start(pg_address(cfg).await?)?;
    let mut url = url::Url::parse(&url_with_port(&cfg.pg_url, proxy.port())?)?;
    // The proxy reads the plain protocol.
    url.query_pairs_mut().append_pair("sslmode", "disable");
    let counted_cfg = Cfg {
        pg_url: url.into(),
        ..cfg.clone()
    };
    let store = pg_store(&counted_cfg, &schemas.fresh("trips"), 1).await?;
    // The pool's one connection is open before anything is counted.
    let mut probe = store.begin().await?;
    probe.get_file(&handle(0, 0)).await?;
    probe.rollback().await?;
    tokio::time::sleep(Duration::from_millis(50)).await;
    trips.take();
    for op in counted::COUNTED {
        op.run(&store).await?;
        // The pool's ping of the released connection runs in a task of its
        // own: let it finish, so it is counted with this operation.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (n, pings) = trips.take();
        report(
            &format!("PG-round-trips-{}", op.slug),
            n as f64,
            Goal::AtMost(op.target as f64),
            &format!(
                "{}: {n} round trip(s) counted on the wire ({} by design), target <= {}; and {pings} ping(s) by sqlx on releasing the connection, after the last answer",
                op.name, op.expected, op.target
            ),
        );
    }
    store.close().await?;
    Ok(())
}

/// `url` with its port replaced (or set) to `port`.
fn url_with_port(url: &str, port: u16) -> Res<String> {
    let mut url = url::Url::parse(url)?;
    url.set_port(Some(port))
        .map_err(|()| "the PostgreSQL URL takes no port")?;
    Ok(url.into())
}

async fn p2(cfg: &Cfg, schemas: &Schemas, connections: u32) -> Res {
    // One connection: round trips bound both sides, and the library sends
    // one message where the naive sqlx transaction sends four (issue 20).
    // Eight: the server's work dominates, parity is the goal.
    let goal = if connections == 1 {
        Goal::AtLeast(2.0)
    } else {
        Goal::AtLeast(0.8)
    };
    let name = format!("P2-postgres-write-{connections}conn");
    p2_named(cfg, schemas, connections, &name, goal).await
}

async fn p2_named(cfg: &Cfg, schemas: &Schemas, connections: u32, name: &str, goal: Goal) -> Res {
    let tasks = connections as usize;
    let lib_schema = schemas.fresh("p2lib");
    let raw_schema = schemas.fresh("p2raw");
    let store = Arc::new(pg_store(cfg, &lib_schema, connections).await?);
    // The raw side's tables come from the same migration.
    pg_store(cfg, &raw_schema, 1).await?.close().await?;
    let pool = sqlx_pool(cfg, &raw_schema, connections).await?;
    let mut ratios = Vec::new();
    let (mut lib_total, mut raw_total, mut count) = (0.0, 0.0, 0);
    let mut k = 0u64;
    for round in 0..=cfg.p2_rounds {
        let batch = cfg.p2_batch as u64;
        let pairs = Arc::new((k..k + batch).map(|k| write_pair(4, k)).collect::<Vec<_>>());
        k += batch;
        let lib = run_concurrent(tasks, |t| {
            let (store, pairs) = (store.clone(), pairs.clone());
            async move {
                for (file, lock) in pairs.iter().skip(t).step_by(tasks) {
                    transact_write_pair(&*store, file, lock).await?;
                }
                Ok(())
            }
        })
        .await?;
        let raw = run_concurrent(tasks, |t| {
            let (pool, pairs) = (pool.clone(), pairs.clone());
            async move {
                for (file, lock) in pairs.iter().skip(t).step_by(tasks) {
                    raw_pg_write(&pool, file, lock).await?;
                }
                Ok(())
            }
        })
        .await?;
        if round > 0 {
            ratios.push(raw / lib);
            lib_total += lib;
            raw_total += raw;
            count += cfg.p2_batch;
        }
    }
    pool.close().await;
    report(
        name,
        median(ratios),
        goal,
        &format!(
            "lib {:.0} tx/s, raw sqlx {:.0} tx/s on {connections} connection(s) (median of {} rounds of {})",
            count as f64 / lib_total,
            count as f64 / raw_total,
            cfg.p2_rounds,
            cfg.p2_batch
        ),
    );
    Ok(())
}

async fn pg_analyze(cfg: &Cfg, schema: &str) -> Res {
    let pool = sqlx_pool(cfg, schema, 1).await?;
    sqlx::query("ANALYZE").execute(&pool).await?;
    pool.close().await;
    Ok(())
}

async fn pg_footprint(cfg: &Cfg, schema: &str, n: u64) -> Res {
    let pool = sqlx_pool(cfg, schema, 1).await?;
    let (table, total): (i64, i64) =
        sqlx::query_as("SELECT pg_table_size('locks'), pg_total_relation_size('locks')")
            .fetch_one(&pool)
            .await?;
    pool.close().await;
    info(&format!(
        "footprint postgres: {:.0} bytes/lock on disk (table + indexes, pg_total_relation_size; {n} locks; table alone {:.0}, indexes {:.0})",
        total as f64 / n as f64,
        table as f64 / n as f64,
        (total - table) as f64 / n as f64
    ));
    Ok(())
}

// ---------------------------------------------------------------------------
// The run

async fn run_memory(cfg: &Cfg) -> Res {
    if cfg.wants("EXT") {
        ext_vs_file(cfg, "memory", &MemoryStore::new()).await?;
    }
    if cfg.wants("CHECKIO") {
        check_io_bench(cfg, "memory", &MemoryStore::new()).await?;
    }
    if cfg.wants("P4") || cfg.wants("P4-OLD-TX") {
        p4_old_tx(cfg).await?;
    }
    if cfg.wants("P4") {
        let small = MemoryStore::new();
        let big = MemoryStore::new();
        load(&small, cfg.p4_small, 10_000).await?;
        let secs = load(&big, cfg.big, 10_000).await?;
        load_info("memory", cfg.big, secs);
        p4(cfg, &small, &big).await?;
    }
    if cfg.wants("P3") || cfg.wants("P5") || cfg.wants("RECOVERY") {
        let small = MemoryStore::new();
        let big = MemoryStore::new();
        load(&small, cfg.small, 10_000).await?;
        let secs = load(&big, cfg.big, 10_000).await?;
        load_info("memory", cfg.big, secs);
        if cfg.wants("P3") {
            p3(cfg, "memory", false, &small, &big).await?;
        }
        if cfg.wants("P5") {
            p5(cfg, "memory", &small, &big).await?;
        }
        if cfg.wants("RECOVERY") {
            recovery(cfg, "memory", Arc::new(small), Arc::new(big)).await?;
        }
    }
    Ok(())
}

/// The database of a P3/P5/P6 fjall store: fjall's defaults, or the block
/// cache size in `FSMETA_BENCH_FJALL_CACHE_MB`.
fn open_bench_db(path: &Path) -> Res<OptimisticTxDatabase> {
    let mut builder = OptimisticTxDatabase::builder(path);
    if let Some(mb) = std::env::var("FSMETA_BENCH_FJALL_CACHE_MB")
        .ok()
        .and_then(|mb| mb.parse::<u64>().ok())
    {
        builder = builder.cache_size(mb << 20);
    }
    Ok(builder.open()?)
}

async fn run_fjall(cfg: &Cfg) -> Res {
    if cfg.wants("P1") {
        p1(cfg, Durability::Buffered).await?;
        p1(cfg, Durability::Sync).await?;
        group_commit::p1_sync_concurrency(cfg.p1_rounds).await?;
    }
    if cfg.wants("EXT") {
        let dir = tempfile::tempdir()?;
        ext_vs_file(cfg, "fjall", &FjallStore::open(dir.path().join("ext"))?).await?;
    }
    if cfg.wants("CHECKIO") {
        let dir = tempfile::tempdir()?;
        check_io_bench(cfg, "fjall", &FjallStore::open(dir.path().join("checkio"))?).await?;
    }
    if !(cfg.wants("P3")
        || cfg.wants("P5")
        || cfg.wants("P6")
        || cfg.wants("FOOTPRINT")
        || cfg.wants("RECOVERY"))
    {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    // FSMETA_BENCH_FJALL_DIR keeps the stores between runs (for profiling):
    // a store that already holds its locks is not loaded again.
    let root = std::env::var_os("FSMETA_BENCH_FJALL_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().to_path_buf());
    let big_path = root.join(format!("big-{}", cfg.big));
    let small_path = root.join(format!("small-{}", cfg.small));
    {
        // Loaded, then closed: the measurements below run on the stores as
        // a restarted server finds them, not while the engine is still
        // flushing and compacting what the load wrote (which, on two cores,
        // took turns with the queries and made every figure noisy).
        let small =
            FjallStore::from_database(open_bench_db(&small_path)?, FjallOptions::default())?;
        let big = FjallStore::from_database(open_bench_db(&big_path)?, FjallOptions::default())?;
        if !loaded(&small, cfg.small).await? {
            load(&small, cfg.small, 10_000).await?;
        }
        if !loaded(&big, cfg.big).await? {
            let secs = load(&big, cfg.big, 10_000).await?;
            load_info("fjall", cfg.big, secs);
        }
    }
    // P6 first: a restart right after the load, journal replay included
    // (as issue 8 measured it); the opens below find the store settled.
    if cfg.wants("P6") {
        p6(cfg, &big_path, cfg.big as usize).await?;
    }
    {
        // The bench opens the databases and hands them to the library, so
        // the raw-fjall baseline reads the same keyspaces in the same
        // process, interleaved with the library (versus_raw.rs).
        let small_db = open_bench_db(&small_path)?;
        let big_db = open_bench_db(&big_path)?;
        let small = FjallStore::from_database(small_db.clone(), FjallOptions::default())?;
        let big = FjallStore::from_database(big_db.clone(), FjallOptions::default())?;
        let small_raw = RawFjall::over(small_db, HOSTED_PREFIX, PersistMode::Buffer)?;
        let big_raw = RawFjall::over(big_db, HOSTED_PREFIX, PersistMode::Buffer)?;
        if cfg.wants("P3") {
            p3(cfg, "fjall", false, &small, &big).await?;
            p3(cfg, "fjall", true, &small, &big).await?;
            for warm in [false, true] {
                let small = versus_raw::Pair {
                    lib: &small,
                    raw: &small_raw,
                    locks: cfg.small,
                };
                let big = versus_raw::Pair {
                    lib: &big,
                    raw: &big_raw,
                    locks: cfg.big,
                };
                versus_raw::p3_vs_raw(cfg, warm, small, big).await?;
            }
            versus_raw::p3_raw_scaling(cfg, &small_raw, &big_raw)?;
        }
        if cfg.wants("P5") {
            p5(cfg, "fjall", &small, &big).await?;
            p5_bulk(cfg, "fjall", &big).await?;
            p5_bulk_raw(cfg, &big_raw)?;
        }
        if cfg.wants("RECOVERY") {
            recovery(cfg, "fjall", Arc::new(small), Arc::new(big)).await?;
        }
    }
    if cfg.wants("FOOTPRINT") {
        let bytes = dir_size(&big_path)?;
        info(&format!(
            "footprint fjall: {:.0} bytes/lock on disk (whole store directory, {} locks, {bytes} bytes, journal included)",
            bytes as f64 / cfg.big as f64,
            cfg.big
        ));
    }
    Ok(())
}

async fn run_postgres(cfg: &Cfg, schemas: &Schemas) -> Res {
    let wanted = [
        "ROUNDTRIPS",
        "P2",
        "P3",
        "P5",
        "FOOTPRINT",
        "EXT",
        "CHECKIO",
        "RECOVERY",
    ];
    if !wanted.iter().any(|t| cfg.wants(t)) {
        return Ok(());
    }
    if !pg_reachable(&cfg.pg_url).await {
        for t in wanted {
            if cfg.wants(t) {
                println!("{t}-postgres SKIP (no PostgreSQL server)");
            }
        }
        return Ok(());
    }
    if cfg.wants("ROUNDTRIPS") {
        pg_round_trips(cfg, schemas).await?;
    }
    if cfg.wants("P2") {
        p2(cfg, schemas, 1).await?;
        p2(cfg, schemas, 8).await?;
        // 0.25 ms each way: a round trip of 0.5 ms, a LAN's.
        p2_over_network(cfg, schemas, Duration::from_micros(250)).await?;
    }
    if cfg.wants("EXT") {
        let store = pg_store(cfg, &schemas.fresh("ext"), 1).await?;
        ext_vs_file(cfg, "postgres", &store).await?;
        store.close().await?;
    }
    if cfg.wants("CHECKIO") {
        let store = pg_store(cfg, &schemas.fresh("checkio"), 1).await?;
        check_io_bench(cfg, "postgres", &store).await?;
        store.close().await?;
    }
    if cfg.wants("P3") || cfg.wants("P5") || cfg.wants("FOOTPRINT") || cfg.wants("RECOVERY") {
        let small_schema = schemas.fresh("small");
        let big_schema = schemas.fresh("big");
        let small = pg_store(cfg, &small_schema, 4).await?;
        let big = pg_store(cfg, &big_schema, 4).await?;
        load(&small, cfg.small, 10_000).await?;
        let secs = load(&big, cfg.big, 10_000).await?;
        load_info("postgres", cfg.big, secs);
        let started = Instant::now();
        pg_analyze(cfg, &small_schema).await?;
        pg_analyze(cfg, &big_schema).await?;
        info(&format!(
            "postgres ANALYZE after the load: {:.2} s",
            started.elapsed().as_secs_f64()
        ));
        if cfg.wants("FOOTPRINT") {
            pg_footprint(cfg, &big_schema, cfg.big).await?;
        }
        if cfg.wants("P3") {
            p3(cfg, "postgres", false, &small, &big).await?;
        }
        if cfg.wants("P5") {
            p5(cfg, "postgres", &small, &big).await?;
            p5_bulk(cfg, "postgres", &big).await?;
        }
        if cfg.wants("RECOVERY") {
            recovery(
                cfg,
                "postgres",
                Arc::new(small.clone()),
                Arc::new(big.clone()),
            )
            .await?;
        }
        small.close().await?;
        big.close().await?;
    }
    Ok(())
}

/// RECOVERY on two loaded stores of one backend (see `bench/sessions.rs`).
async fn recovery<S: MetadataStore + 'static>(
    cfg: &Cfg,
    backend: &str,
    small: Arc<S>,
    big: Arc<S>,
) -> Res {
    sessions::recovery(backend, cfg.p5_samples, (cfg.small, small), (cfg.big, big)).await
}

async fn run(cfg: &Cfg, schemas: &Schemas) -> Res {
    info(&format!(
        "fsmeta bench, {} mode: big store {} locks, small {} (P4: {})",
        if cfg.quick { "quick" } else { "full" },
        cfg.big,
        cfg.small,
        cfg.p4_small
    ));
    if cfg.backend("memory") && cfg.wants("FOOTPRINT") {
        memory_footprint(cfg)?;
    }
    if cfg.backend("fjall") {
        run_fjall(cfg).await?;
    }
    if cfg.backend("memory") {
        run_memory(cfg).await?;
    }
    if cfg.backend("postgres") {
        run_postgres(cfg, schemas).await?;
    }
    wake(cfg, schemas).await?;
    Ok(())
}

// ---------------------------------------------------------------------------
// WAKE: wake-up latency of a blocked waiter (issue 19)

/// Wake-ups measured per backend.
const WAKE_ROUNDS: usize = 1000;

/// WAKE on fjall (in process) and PostgreSQL (the releasing store and the
/// subscribed one are two stores with their own pools: the notification
/// goes through the server, as between two processes).
async fn wake(cfg: &Cfg, schemas: &Schemas) -> Res {
    if !cfg.wants("WAKE") {
        return Ok(());
    }
    if cfg.backend("fjall") {
        let dir = tempfile::tempdir()?;
        let store: Arc<dyn MetadataStore> = Arc::new(FjallStore::open(dir.path().join("wake"))?);
        wake_latency("fjall", store.clone(), store).await?;
    }
    if cfg.backend("postgres") {
        if !pg_reachable(&cfg.pg_url).await {
            println!("WAKE-postgres SKIP (no PostgreSQL server)");
            return Ok(());
        }
        let schema = schemas.fresh("wake");
        let releasing: Arc<dyn MetadataStore> = Arc::new(pg_store(cfg, &schema, 2).await?);
        let waiting: Arc<dyn MetadataStore> = Arc::new(pg_store(cfg, &schema, 2).await?);
        wake_latency("postgres", releasing, waiting).await?;
    }
    Ok(())
}

/// [`WAKE_ROUNDS`] times: one owner holds the file, the other queues (on
/// `waiting`), the holder releases (on `releasing`); the time from just
/// before the releasing commit to the subscriber's `next()` returning. The
/// woken owner retries (granted) and holds for the next round. The
/// subscription does not poll: every wake-up is an announcement.
async fn wake_latency(
    backend: &str,
    releasing: Arc<dyn MetadataStore>,
    waiting: Arc<dyn MetadataStore>,
) -> Res {
    let options = fsmeta::WaitersOptions {
        poll_interval: None,
        ..Default::default()
    };
    let mut waiters = fsmeta::Waiters::subscribe(waiting.clone(), options).await?;
    let (woken_tx, mut woken_rx) = tokio::sync::mpsc::unbounded_channel();
    let subscriber = tokio::spawn(async move {
        while let Ok(woken) = waiters.next().await {
            if woken_tx.send((Instant::now(), woken)).is_err() {
                break;
            }
        }
    });
    let file = fsmeta::FileHandle::new(*b"wake-bench")?;
    let request = |owner: &str| PersistedLock {
        id: Uuid::new_v4(),
        share_name: "s".into(),
        file_id: file.clone(),
        owner_id: owner.into(),
        client_id: "c".into(),
        lock_type: fsmeta::LockType::Exclusive,
        offset: 0,
        length: 0,
        share_reservation: fsmeta::ShareReservation::None,
        acquired_at: Timestamp::now(),
        server_epoch: 1,
        flavor: fsmeta::LockFlavor::Posix,
    };
    let wait = &fsmeta::WaitOptions::default();
    let acquire = |store: Arc<dyn MetadataStore>, lock: PersistedLock| async move {
        let lock = &lock;
        store
            .transact(|tx| Box::pin(async move { fsmeta::acquire_or_wait(tx, lock, wait).await }))
            .await
    };
    let (mut holder, mut next) = ("a", "b");
    acquire(releasing.clone(), request(holder)).await?;
    let mut latencies = Vec::with_capacity(WAKE_ROUNDS);
    for round in 0..WAKE_ROUNDS {
        let queued = match acquire(waiting.clone(), request(next)).await? {
            fsmeta::Wait::Queued { waiter } => waiter,
            other => {
                return Err(format!("wake bench: expected a queued request, got {other:?}").into());
            }
        };
        let owner = fsmeta::LockOwner {
            owner_id: holder.into(),
            client_id: "c".into(),
            share_name: "s".into(),
        };
        let mut tx = releasing.begin().await?;
        fsmeta::release_range(
            &mut *tx,
            &file,
            &owner,
            fsmeta::ByteRange {
                offset: 0,
                length: 0,
            },
        )
        .await?;
        let started = Instant::now();
        tx.commit().await?;
        // A waiter may be handed out twice (two checks saw it grantable
        // before its retry deleted it): skip the stale copies.
        let (at, woken) = loop {
            let (at, woken) = woken_rx
                .recv()
                .await
                .ok_or("wake bench: the subscriber stopped")?;
            if woken.waiter.id == queued.id {
                break (at, woken);
            }
        };
        latencies.push(at.saturating_duration_since(started).as_secs_f64());
        let retry = woken.waiter.to_lock(Uuid::new_v4(), 1, Timestamp::now());
        let granted = acquire(waiting.clone(), retry).await?;
        if granted != fsmeta::Wait::Granted {
            return Err(format!("wake bench: round {round}: the retry got {granted:?}").into());
        }
        std::mem::swap(&mut holder, &mut next);
    }
    subscriber.abort();
    latencies.sort_by(f64::total_cmp);
    let p99 = latencies[(latencies.len() * 99).div_ceil(100) - 1];
    let median = median(latencies);
    report(
        &format!("WAKE-{backend}-p99-vs-median"),
        p99 / median,
        Goal::Report,
        &format!(
            "wake-up latency (releasing commit to next() returning) over {WAKE_ROUNDS} wake-ups: median {}, p99 {}",
            us(median),
            us(p99)
        ),
    );
    Ok(())
}

fn main() -> Res {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--memory-footprint-child") {
        let n: u64 = args.get(2).ok_or("count")?.parse()?;
        return runtime.block_on(memory_footprint_child(n));
    }
    let cfg = Cfg::from_args()?;
    let started = Instant::now();
    let schemas = Schemas {
        url: cfg.pg_url.clone(),
        names: std::sync::Mutex::new(Vec::new()),
    };
    let result = runtime.block_on(async {
        let result = run(&cfg, &schemas).await;
        schemas.drop_all().await;
        result
    });
    info(&format!("total {:.1} s", started.elapsed().as_secs_f64()));
    result
}
