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
//! record that decodes, in one transaction.
//!
//! What `repair` never does: delete or rewrite a record. An undecodable or
//! invalid record is left for the operator (the report names its key), and
//! index entries that point at one are left alone, since what they should say
//! is unknown.

use fjall::Readable;

use super::codec::FaultKind;
use super::files::Files;
use super::keys;
use super::locks::Locks;
use super::nodes::{self, Epochs, Nodes};
use super::table::{Family, Finding, Part, Table};
use super::{Inner, commit};
use crate::error::Result;
use crate::verify::{Problem, ProblemKind, VerifyReport};

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
        Ok(VerifyReport {
            files,
            locks,
            problems: findings.iter().map(Finding::problem).collect(),
        })
    }

    /// Removes stale index entries and adds missing ones, in one transaction;
    /// returns how many entries changed. Blocking.
    pub(super) fn repair_blocking(&self) -> Result<u64> {
        let mut tx = Inner::write_tx(&self.db, self.durability)?;
        let mut findings = Vec::new();
        verify_table::<Files>(&tx, self, &mut findings)?;
        verify_table::<Locks>(&tx, self, &mut findings)?;
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
        // A repair racing a writer conflicts and changes nothing: run it again.
        commit(tx)?;
        Ok(changed)
    }
}
