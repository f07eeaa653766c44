//! P6 (reopen a fjall store and list every lock, vs a raw scan) and the
//! memory footprint (in a child process, so nothing else is in its heap).

use super::*;

pub(super) fn raw_scan(path: &Path) -> Res<usize> {
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

pub(super) async fn lib_scan(path: &Path) -> Res<usize> {
    let store = FjallStore::from_database(open_bench_db(path)?, FjallOptions::default())?;
    let mut tx = store.begin().await?;
    let all = tx.list_locks(&LockQuery::default()).await?;
    tx.rollback().await?;
    Ok(all.len())
}

pub(super) async fn p6(cfg: &Cfg, path: &Path, expected: usize) -> Res {
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

pub(super) fn dir_size(path: &Path) -> Res<u64> {
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

pub(super) fn rss_bytes() -> Res<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .ok_or("no RSS in /proc/self/statm")?
        .parse()?;
    Ok(pages * 4096)
}

/// Heap size of a lock value: the struct plus its strings' buffers.
pub(super) fn lock_heap_size(lock: &PersistedLock) -> u64 {
    (std::mem::size_of::<PersistedLock>()
        + lock.share_name.capacity()
        + lock.file_id.as_bytes().len()
        + lock.owner_id.capacity()
        + lock.client_id.capacity()) as u64
}

pub(super) async fn memory_footprint_child(n: u64) -> Res {
    let before = rss_bytes()?;
    let store = MemoryStore::new();
    load(&store, n, 10_000).await?;
    let after = rss_bytes()?;
    let heap: u64 = (0..n).map(|i| lock_heap_size(&store_lock(n, i))).sum();
    println!("{} {} {}", after - before, heap, n);
    drop(store);
    Ok(())
}

pub(super) fn memory_footprint(cfg: &Cfg) -> Res {
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
