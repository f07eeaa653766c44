//! What a consistency check of a store reports: [`VerifyReport`] and its
//! [`Problem`]s. A leaf module: the checks (`verify`, each backend's own) use
//! it, it uses none of them.

use serde::{Deserialize, Serialize};

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

/// One inconsistency found by [`MetadataStore::verify`](crate::MetadataStore::verify).
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

/// The outcome of [`MetadataStore::verify`](crate::MetadataStore::verify).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// File records examined.
    pub files: u64,
    /// Lock records examined.
    pub locks: u64,
    /// Extension records examined (where the check reads them).
    pub ext_records: u64,
    /// Client records examined (where the check reads them).
    pub clients: u64,
    /// Open, lease and delegation records examined.
    #[serde(default)]
    pub open_states: u64,
    /// Waiters examined (where the check reads them).
    #[serde(default)]
    pub waiters: u64,
    /// Everything found wrong; empty for a healthy store.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// True when no problem was found.
    pub fn is_healthy(&self) -> bool {
        self.problems.is_empty()
    }
}
