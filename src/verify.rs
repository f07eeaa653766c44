//! Consistency checks of a whole store (`fsmeta fsck`).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::tx::MetadataStore;
use crate::validate;

/// What kind of damage a [`Problem`] is.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ProblemKind {
    /// Stored bytes that do not decode (or carry an unknown format version).
    Undecodable,
    /// A record that decodes but breaks the model's rules (an out-of-range value,
    /// an empty id, a key that disagrees with the record).
    InvalidRecord,
    /// An index entry whose record is missing or no longer carries the indexed value.
    StaleIndexEntry,
    /// A record without one of its index entries.
    MissingIndexEntry,
}

/// One inconsistency found by [`MetadataStore::verify`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Problem {
    /// What is wrong.
    pub kind: ProblemKind,
    /// Where: a keyspace or table and a key, readable by an operator.
    pub location: String,
    /// Why it is wrong.
    pub detail: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} at {}: {}", self.kind, self.location, self.detail)
    }
}

/// The outcome of [`MetadataStore::verify`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// File records examined.
    pub files: u64,
    /// Lock records examined.
    pub locks: u64,
    /// Everything found wrong; empty for a healthy store.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// True when no problem was found.
    pub fn is_healthy(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Records per page when a check walks a whole store.
pub(crate) const PAGE: usize = 1024;

/// The check every backend can run through the public API: reads every file
/// and lock page by page in one transaction and re-validates each record.
/// Stops at the first record that cannot be decoded (the API cannot step over
/// it) and reports it.
pub async fn verify_records(store: &(impl MetadataStore + ?Sized)) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let mut tx = store.begin().await?;
    let mut after = None;
    loop {
        let page = match tx.list_files_page(after.as_ref(), PAGE).await {
            Ok(page) => page,
            Err(e) => return undecodable(report, "files", e),
        };
        for file in &page {
            report.files += 1;
            if let Err(e) = validate::file(file) {
                report.problems.push(Problem {
                    kind: ProblemKind::InvalidRecord,
                    location: format!("files/{}", file.handle),
                    detail: e.to_string(),
                });
            }
        }
        match page.last() {
            Some(last) if page.len() == PAGE => after = Some(last.handle.clone()),
            _ => break,
        }
    }
    let mut after = None;
    loop {
        let page = match tx.list_locks_page(after, PAGE).await {
            Ok(page) => page,
            Err(e) => return undecodable(report, "locks", e),
        };
        for lock in &page {
            report.locks += 1;
            if let Err(e) = validate::lock(lock) {
                report.problems.push(Problem {
                    kind: ProblemKind::InvalidRecord,
                    location: format!("locks/{}", lock.id),
                    detail: e.to_string(),
                });
            }
        }
        match page.last() {
            Some(last) if page.len() == PAGE => after = Some(last.id),
            _ => break,
        }
    }
    Ok(report)
}

fn undecodable(mut report: VerifyReport, table: &str, error: Error) -> Result<VerifyReport> {
    match error {
        Error::Corrupt(detail) => {
            report.problems.push(Problem {
                kind: ProblemKind::Undecodable,
                location: table.to_owned(),
                detail,
            });
            Ok(report)
        }
        other => Err(other),
    }
}
