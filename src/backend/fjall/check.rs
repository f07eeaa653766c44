//! `verify` and `repair` for the fjall backend: fjall keeps its own indexes,
//! so besides decoding every record they check both directions between
//! records and index entries, table by table, through [`Table::check`].
//!
//! `verify` walks the whole store in one snapshot and streams: records and
//! index entries are visited in key order and each cross-check is a point
//! read, so memory stays flat however large the store is. Only the findings
//! are collected, and a bad record never stops the walk: every problem it can
//! reach is reported.
//!
//! `repair` removes stale index entries and adds missing ones for every
//! record that decodes. It runs while the server runs: the store is walked in
//! chunks of at most [`CHUNK_MAX`] keys of one keyspace, each checked and
//! fixed in its own short transaction whose read set is exactly that key range
//! (plus the point reads of its cross-checks), so a concurrent writer only
//! conflicts with the chunk it touches. A chunk that conflicts is retried
//! after a jittered, growing pause and at half the size; a chunk with nothing
//! to fix commits nothing. Each chunk is serializable on its own: an entry it
//! removes and the record it found missing, or a record and the entry it
//! adds, were read in the same transaction, so a writer that changed either
//! in between makes the chunk conflict rather than undo that write.
//!
//! What `repair` never does: delete or rewrite a record. An undecodable or
//! invalid record is left for the operator (the report names its key), and
//! index entries that point at one are left alone, since what they should say
//! is unknown.

use std::ops::Bound;
use std::time::{Duration, Instant};

use fjall::Readable;

use super::clients::Clients;
use super::codec::FaultKind;
use super::ext::Ext;
use super::files::Files;
use super::keys;
use super::leases::{Delegations, Leases};
use super::locks::Locks;
use super::nodes::{self, Epochs, Nodes};
use super::opens::Opens;
use super::table::{Family, Finding, KeyRange, Part, Table, read_error};
use super::waiters::Waiters;
use super::{Inner, commit};
use crate::error::{Error, Result};
use crate::verify::{Problem, ProblemKind, VerifyReport};

/// The most keys one repair transaction checks.
const CHUNK_MAX: usize = 512;
/// The first pause after a chunk conflicts (before jitter); it doubles per retry.
const BACKOFF_INITIAL: Duration = Duration::from_millis(1);
/// The longest pause between two attempts at one chunk (before jitter).
const BACKOFF_MAX: Duration = Duration::from_millis(100);
/// How long one chunk may keep conflicting before repair gives up with
/// [`Error::Conflict`] (the chunks before it stay repaired: run it again).
const CHUNK_PATIENCE: Duration = Duration::from_secs(30);

impl Finding {
    fn problem(&self) -> Problem {
        match self {
            Finding::Record(fault) => Problem {
                kind: match fault.kind {
                    FaultKind::Undecodable => ProblemKind::Undecodable,
                    FaultKind::Invalid => ProblemKind::InvalidRecord,
                },
                location: fault.location.clone(),
                detail: fault.detail.clone(),
            },
            Finding::Stale {
                name, key, detail, ..
            } => Problem {
                kind: ProblemKind::StaleIndexEntry,
                location: keys::describe(name, key),
                detail: detail.clone(),
            },
            Finding::Missing { name, key, .. } => Problem {
                kind: ProblemKind::MissingIndexEntry,
                location: keys::describe(name, key),
                detail: "a record has no entry here".into(),
            },
        }
    }
}

/// Checks every part of family `F`'s table in `r`; returns its record count.
fn verify_table<F: Family>(
    r: &impl Readable,
    inner: &Inner,
    out: &mut Vec<Finding>,
) -> Result<u64> {
    let table = Table::<F>::new(&inner.ks);
    let mut records = 0;
    for part in Table::<F>::parts() {
        let visited = table.check(r, part, Table::<F>::scope(part), out)?;
        if part == Part::Records {
            records = visited;
        }
    }
    Ok(records)
}

impl Inner {
    /// Checks the whole store in one snapshot; changes nothing. Blocking.
    pub(super) fn verify_blocking(&self) -> Result<VerifyReport> {
        let snapshot = self.db.read_tx();
        let mut findings = Vec::new();
        let files = verify_table::<Files>(&snapshot, self, &mut findings)?;
        let locks = verify_table::<Locks>(&snapshot, self, &mut findings)?;
        verify_table::<Nodes>(&snapshot, self, &mut findings)?;
        verify_table::<Epochs>(&snapshot, self, &mut findings)?;
        nodes::check_meta(&snapshot, &self.ks, &mut findings)?;
        // Every `ext` key names a valid table and key, every value decodes.
        let ext_records = verify_table::<Ext>(&snapshot, self, &mut findings)?;
        let clients = verify_table::<Clients>(&snapshot, self, &mut findings)?;
        let open_states = verify_table::<Opens>(&snapshot, self, &mut findings)?
            + verify_table::<Leases>(&snapshot, self, &mut findings)?
            + verify_table::<Delegations>(&snapshot, self, &mut findings)?;
        let waiters = verify_table::<Waiters>(&snapshot, self, &mut findings)?;
        Ok(VerifyReport {
            files,
            locks,
            ext_records,
            clients,
            open_states,
            waiters,
            problems: findings.iter().map(Finding::problem).collect(),
        })
    }

    /// Removes stale index entries and adds missing ones, chunk by chunk;
    /// returns how many entries changed. Blocking.
    pub(super) fn repair_blocking(&self) -> Result<u64> {
        // Nodes, epoch records and extension records have no indexes:
        // nothing to rebuild.
        Ok(self.repair_table::<Files>()?
            + self.repair_table::<Locks>()?
            + self.repair_table::<Clients>()?
            + self.repair_table::<Opens>()?
            + self.repair_table::<Leases>()?
            + self.repair_table::<Delegations>()?
            + self.repair_table::<Waiters>()?)
    }

    fn repair_table<F: Family>(&self) -> Result<u64> {
        let table = Table::<F>::new(&self.ks);
        let mut changed = 0;
        for part in Table::<F>::parts() {
            changed += self.repair_part(&table, part)?;
        }
        Ok(changed)
    }

    /// Repairs one part (records or one index) in chunks, in key order.
    fn repair_part<F: Family>(&self, table: &Table<'_, F>, part: Part) -> Result<u64> {
        let (keyspace, name) = table.part_keyspace(part);
        let (mut start, scope_end) = Table::<F>::scope(part);
        let mut size = CHUNK_MAX;
        let mut changed = 0;
        let mut retry = Retry::new();
        loop {
            // The chunk's last key, from a fresh snapshot: the chunk's
            // transaction then reads exactly (start, end], so only a write
            // inside that range (or to a key it cross-checks) conflicts.
            let mut end = None;
            for guard in self
                .db
                .read_tx()
                .range(keyspace, (start.clone(), scope_end.clone()))
                .take(size)
            {
                end = Some(guard.key().map_err(read_error(name))?);
            }
            let Some(end) = end else { return Ok(changed) };
            let chunk = (start.clone(), Bound::Included(end.to_vec()));
            match self.repair_chunk(table, part, chunk) {
                Ok(fixed) => {
                    changed += fixed;
                    start = Bound::Excluded(end.to_vec());
                    size = (size * 2).min(CHUNK_MAX);
                    retry = Retry::new();
                }
                Err(e @ Error::Conflict(_)) => {
                    retry.pause(e)?;
                    size = (size / 2).max(1);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Checks and fixes the keys of `part` in `range`, in one transaction;
    /// returns how many index entries it added or removed.
    fn repair_chunk<F: Family>(
        &self,
        table: &Table<'_, F>,
        part: Part,
        range: KeyRange,
    ) -> Result<u64> {
        let mut tx = Inner::write_tx(&self.db, self.durability)?;
        let mut findings = Vec::new();
        table.check(&tx, part, range, &mut findings)?;
        let mut changed = 0;
        for finding in findings {
            match finding {
                Finding::Record(_) => {}
                Finding::Stale { index, key, .. } => {
                    tx.remove(&index, key);
                    changed += 1;
                }
                Finding::Missing { index, key, .. } => {
                    tx.insert(&index, key, b"".as_slice());
                    changed += 1;
                }
            }
        }
        if changed == 0 {
            // Read only: nothing to write, so nothing to conflict.
            tx.rollback();
            return Ok(0);
        }
        commit(tx)?;
        Ok(changed)
    }
}

/// Jittered exponential backoff for one chunk, bounded in time.
struct Retry {
    started: Instant,
    attempt: u32,
}

impl Retry {
    fn new() -> Self {
        Retry {
            started: Instant::now(),
            attempt: 0,
        }
    }

    /// Sleeps before the next attempt, or gives up with `error` once the
    /// chunk has kept conflicting for [`CHUNK_PATIENCE`].
    fn pause(&mut self, error: Error) -> Result<()> {
        if self.started.elapsed() >= CHUNK_PATIENCE {
            return Err(error);
        }
        let bound = BACKOFF_INITIAL
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(BACKOFF_MAX);
        self.attempt += 1;
        let micros = u64::try_from(bound.as_micros()).unwrap_or(u64::MAX);
        let pause = Duration::from_micros(fastrand::u64(micros / 2..=micros));
        tracing::debug!(attempt = self.attempt, ?pause, %error, "fsmeta: fjall repair chunk conflicted, retrying");
        std::thread::sleep(pause);
        Ok(())
    }
}
