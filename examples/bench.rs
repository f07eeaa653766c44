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
//! cargo run --release --example bench -- --only P1-SYNC-8 --backends fjall  # group commit alone
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

#[path = "bench/checks.rs"]
mod checks;
#[path = "bench/memory_tx.rs"]
mod memory_tx;
#[path = "bench/postgres.rs"]
mod postgres;
#[path = "bench/restart.rs"]
mod restart;
#[path = "bench/waking.rs"]
mod waking;
use {checks::*, memory_tx::*, postgres::*, restart::*, waking::*};

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
                p5_samples: 31,
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

/// P5 on one backend.
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
        info(&huge_pages_in_use());
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
    } else if cfg.wants("P1-SYNC-8") {
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

/// The backends, in the order a run measures them.
const BACKENDS: [&str; 3] = ["fjall", "memory", "postgres"];

/// Runs the bench once per backend, each in a process of its own (this
/// program again, with the same arguments and `--backends` set to one).
///
/// Why: the heap a backend's figures are taken in should be its own. In one
/// process the memory backend's stores were built in a heap the fjall
/// sections had filled and freed (block caches, memtables, a million decoded
/// locks), so their records and tree nodes landed scattered among old free
/// chunks, and the same P5 cleanup took 2.2 ms in the 1M store instead of
/// 1.7 ms (the 10k store: 1.25 vs 1.15 ms). A backend's own history (P4's
/// million-lock store built and dropped before P3 and P5) stays in its run.
fn run_each_backend_alone(backends: &[&str]) -> Res {
    let started = Instant::now();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == "--backends") {
        args.drain(at..(at + 2).min(args.len()));
    }
    let program = std::env::current_exe()?;
    for backend in backends {
        info(&format!("backend {backend}, in a process of its own"));
        let status = std::process::Command::new(&program)
            .args(&args)
            .args(["--backends", backend])
            .status()?;
        if !status.success() {
            return Err(format!("the {backend} run failed: {status}").into());
        }
    }
    info(&format!("total {:.1} s", started.elapsed().as_secs_f64()));
    Ok(())
}

/// How much of this process's resident memory is on transparent huge pages,
/// printed once the memory backend's P3/P5 stores are loaded. None unless
/// the heap was put on them (`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`, THP
/// mode `madvise` or `always`), which shrank P5-memory's growth from the
/// 10k store to the 1M one while the lock record map was an `imbl::OrdMap`:
/// that growth was mostly address translation for its removals
/// (docs/performance.md, session 13; session 15 replaced the map).
fn huge_pages_in_use() -> String {
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
    let kib = |field: &str| {
        rollup
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse::<u64>().ok())
    };
    match (kib("AnonHugePages:"), kib("Rss:")) {
        (Some(huge), Some(rss)) => format!(
            "huge pages: {} MiB of {} MiB resident",
            huge / 1024,
            rss / 1024
        ),
        _ => "huge pages: unknown (no /proc/self/smaps_rollup)".to_owned(),
    }
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
    let selected: Vec<&str> = BACKENDS.into_iter().filter(|b| cfg.backend(b)).collect();
    if selected.len() > 1 {
        return run_each_backend_alone(&selected);
    }
    let started = Instant::now();
    let schemas = Schemas::new(cfg.pg_url.clone());
    let result = runtime.block_on(async {
        let result = run(&cfg, &schemas).await;
        schemas.drop_all().await;
        result
    });
    info(&format!("total {:.1} s", started.elapsed().as_secs_f64()));
    result
}
