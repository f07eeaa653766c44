//! P3 on raw fjall: the library's lock queries against the same reads
//! written by hand on the engine (issue 20: the library within 1.15× of
//! raw fjall, cold and warm), and the engine's own big-vs-small scaling.
//!
//! Both sides run on one open database (the library's store opened with
//! `FjallStore::from_database`, the raw side over its keyspaces), sample by
//! sample, taking turns at going first; a warm sample's untimed run comes
//! right before its timed one, on either side. Each side draws its own
//! groups, so neither reads blocks the other has just brought into the
//! block cache: a cold sample of either is cold. Only the query is timed
//! on either side (not `begin` nor the raw transaction's start), and the
//! raw side decodes each record it reads into an owned lock and returns
//! them all, as `list_locks` does: a server needs the locks, not their
//! bytes.
//!
//! The raw side decodes in place ([`Decode::InPlace`]: strings and handle
//! borrowed from the value, each copied once), as the library has since
//! session 10; the target is measured against it. A third side, decoding
//! with a plain owned serde struct as sessions 7 to 9's baseline did, is
//! timed in the same samples and printed beside it (no target), so the
//! two baselines can be told apart.

use std::time::Instant;

use fjall::OptimisticTxKeyspace;
use fsmeta::FjallStore;

use super::common::{Decode, RawFjall, client, handle, mix, owner};
use super::{By, Cfg, Goal, Res, info, median, query_for, report, time_query, us};

/// The index keyspace and key component of the P3 query `by` for `group`.
fn raw_query(raw: &RawFjall, by: By, group: u64) -> (&OptimisticTxKeyspace, Vec<u8>) {
    match by {
        By::File => (&raw.by_file, handle(0, group).as_bytes().to_vec()),
        By::Owner => (&raw.by_owner, owner(group).into_bytes()),
        By::Client => (&raw.by_client, client(group).into_bytes()),
    }
}

/// One raw query's latency (its transaction started before the clock).
fn time_raw(raw: &RawFjall, by: By, group: u64, decode: Decode) -> Res<f64> {
    let tx = raw.db.write_tx()?;
    let (index, component) = raw_query(raw, by, group);
    let started = Instant::now();
    let locks = raw.query_in(&tx, index, &component, decode)?;
    let secs = started.elapsed().as_secs_f64();
    tx.rollback();
    let found = locks.len();
    if found != 10 {
        return Err(format!("raw {by:?} query found {found}, expected 10").into());
    }
    Ok(secs)
}

/// One raw sample of `group`: an untimed run first when `warm`, then the
/// timed one, its latency pushed to `out`.
fn sample_raw(
    raw: &RawFjall,
    by: By,
    group: u64,
    decode: Decode,
    warm: bool,
    out: &mut Vec<f64>,
) -> Res {
    if warm {
        time_raw(raw, by, group, decode)?;
    }
    out.push(time_raw(raw, by, group, decode)?);
    Ok(())
}

/// One store of the comparison: the library's handle and the raw one on
/// the same database, and how many locks it holds.
pub struct Pair<'a> {
    pub lib: &'a FjallStore,
    pub raw: &'a RawFjall,
    pub locks: u64,
}

/// Median latencies of `by` queries on `pair`: the library, raw decoding in
/// place, raw decoding owned.
async fn medians(cfg: &Cfg, by: By, warm: bool, pair: &Pair<'_>) -> Res<(f64, f64, f64)> {
    let groups = pair.locks / 10;
    let salt = if warm { 0x3a11 } else { 0x0c01d };
    let (mut lib, mut raw, mut owned) = (Vec::new(), Vec::new(), Vec::new());
    for k in 0..cfg.p3_samples as u64 {
        let lib_group = mix(k ^ (salt << 20) ^ 0x11b) % groups;
        let raw_group = mix(k ^ (salt << 20) ^ 0x7a3) % groups;
        let owned_group = mix(k ^ (salt << 20) ^ 0x0d5) % groups;
        let query = query_for(by, lib_group);
        // Each side's untimed run (when warm) right before its timed one, so
        // none finds its blocks further back in the CPU caches than the
        // others'; the sides take turns at going first.
        for side in 0..3 {
            match (side + k) % 3 {
                0 => {
                    if warm {
                        time_query(pair.lib, &query).await?;
                    }
                    lib.push(time_query(pair.lib, &query).await?);
                }
                1 => sample_raw(pair.raw, by, raw_group, Decode::InPlace, warm, &mut raw)?,
                _ => sample_raw(pair.raw, by, owned_group, Decode::Owned, warm, &mut owned)?,
            }
        }
    }
    Ok((median(lib), median(raw), median(owned)))
}

/// P3-fjall[-warm]-vs-raw-by-*: the library's median over raw fjall's, the
/// worse of the two stores.
pub async fn p3_vs_raw(cfg: &Cfg, warm: bool, small: Pair<'_>, big: Pair<'_>) -> Res {
    for by in [By::File, By::Owner, By::Client] {
        let (bl, br, bo) = medians(cfg, by, warm, &big).await?;
        let (sl, sr, so) = medians(cfg, by, warm, &small).await?;
        let name = format!(
            "P3-fjall{}-vs-raw-by-{}",
            if warm { "-warm" } else { "" },
            format!("{by:?}").to_lowercase()
        );
        report(
            &name,
            (bl / br).max(sl / sr),
            Goal::AtMost(1.15),
            &format!(
                "median list_locks returning 10{}, library vs the same reads on raw fjall decoding in place (same database, interleaved): {} stored {} vs {} ({:.2}), {} stored {} vs {} ({:.2}); ratio = the worse ({} samples each). Raw decoding owned (the baseline before session 10): {} vs {} ({:.2}), {} vs {} ({:.2})",
                if warm { " (warm caches)" } else { "" },
                big.locks,
                us(bl),
                us(br),
                bl / br,
                small.locks,
                us(sl),
                us(sr),
                sl / sr,
                cfg.p3_samples,
                us(bl),
                us(bo),
                bl / bo,
                us(sl),
                us(so),
                sl / so
            ),
        );
    }
    Ok(())
}

/// The P3 queries by hand on raw fjall, big store vs small (no target: the
/// engine's own scaling, to compare the library's with).
pub fn p3_raw_scaling(cfg: &Cfg, small: &RawFjall, big: &RawFjall) -> Res {
    for by in [By::File, By::Owner, By::Client] {
        let (mut s, mut b) = (Vec::new(), Vec::new());
        for k in 0..cfg.p3_samples as u64 {
            let r = mix(k ^ 0x5eed);
            s.push(time_raw(small, by, r % (cfg.small / 10), Decode::InPlace)?);
            b.push(time_raw(big, by, r % (cfg.big / 10), Decode::InPlace)?);
        }
        let (s, b) = (median(s), median(b));
        info(&format!(
            "P3 raw fjall by {}: {} locks stored {}, {} stored {}: raw ratio {:.2}",
            format!("{by:?}").to_lowercase(),
            cfg.big,
            us(b),
            cfg.small,
            us(s),
            b / s
        ));
    }
    Ok(())
}
