//! P5-memory-floor: what the memory backend's record map alone costs in a
//! P5 cleanup, on a bare `imbl` map of the bench's sizes, so the library's
//! growth from the small store to the big one can be read against the part
//! of it that no index layout removes (issue 20).
//!
//! A cleanup must remove each deleted lock from the record map (the removal
//! is also the check that the index entry found is the stored record:
//! `Confirm::AtDelete`). The lock ids are random, so at 1M locks each of the
//! 1,000 lands in a different leaf of a tree bigger than the CPU caches; at
//! 10k the tree fits in them. Some id-ordered map of every lock must exist:
//! the contract's `list_locks_page` pages in id order.

use imbl::OrdMap;

use super::*;

/// A bare record map: the memory backend's, without the backend.
type RecordMap = OrdMap<Uuid, Arc<PersistedLock>>;

fn record_map(n: u64) -> RecordMap {
    (0..n)
        .map(|i| {
            let lock = store_lock(n, i);
            (lock.id, Arc::new(lock))
        })
        .collect()
}

/// Adds a client's `count` locks (untimed), then times what the record map
/// does in its cleanup: each id removed, in id order.
fn time_floor(map: &mut RecordMap, name: &str, tag: u64, count: u64) -> Res<f64> {
    let mut ids: Vec<Uuid> = (0..count)
        .map(|j| {
            let lock = extra_lock(1, name, tag, j);
            let id = lock.id;
            map.insert(id, Arc::new(lock));
            id
        })
        .collect();
    ids.sort_unstable();
    let started = Instant::now();
    let removed: Vec<Arc<PersistedLock>> = ids.iter().filter_map(|id| map.remove(id)).collect();
    let found = removed.len();
    drop(removed);
    let secs = started.elapsed().as_secs_f64();
    if found as u64 != count {
        return Err(format!("the floor found {found} of {count} ids").into());
    }
    Ok(secs)
}

/// The floor, interleaved like P5; `library` is P5-memory's (small, big) medians.
pub(super) fn p5_memory_floor(cfg: &Cfg, library: (f64, f64)) -> Res {
    let (mut small, mut big) = (record_map(cfg.small), record_map(cfg.big));
    let (mut s, mut b) = (Vec::new(), Vec::new());
    // Three times P5's samples: a floor sample is cheap, and its spread
    // between runs is wide (it shares the heap with the library's stores).
    for k in 0..3 * cfg.p5_samples as u64 {
        let name = format!("floor-client-{k}");
        s.push(time_floor(&mut small, &name, k, cfg.p5_locks)?);
        b.push(time_floor(&mut big, &name, k, cfg.p5_locks)?);
    }
    let (s, b) = (median(s), median(b));
    let (lib_small, lib_big) = library;
    info(&format!(
        "P5-memory-floor: the record map alone (bare imbl map, remove {} random ids, \
         median of {}): {} stored {}, {} stored {} (ratio {:.2}); it grows by {}, the library by {}; \
         the library's small-store time plus that growth alone gives a ratio of {:.2}",
        cfg.p5_locks,
        3 * cfg.p5_samples,
        cfg.big,
        us(b),
        cfg.small,
        us(s),
        b / s,
        us(b - s),
        us(lib_big - lib_small),
        (lib_small + (b - s)) / lib_small
    ));
    Ok(())
}
