//! The extension family: the host file server's own metadata (inodes,
//! directory entries, xattrs, quotas …) as named tables of `key → value`
//! bytes, written in the same transaction as fsmeta's files and locks, on
//! every backend, with the same semantics.
//!
//! A table exists while it holds a record; there is nothing to create. Keys
//! are ordered bytewise, so a host that encodes `(parent, name)` with a
//! length prefix or a fixed-width parent gets its directory listing as one
//! prefix scan. Scans are serializable reads of the whole range they
//! covered: a concurrent insert into that range makes one of the two
//! transactions fail with [`Error::Conflict`](crate::Error::Conflict).
//!
//! ```
//! # use fsmeta::*;
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
//! let store = MemoryStore::new();
//! store.transact(|tx| Box::pin(async move {
//!     tx.ext_put("dirents", b"\x00\x01/a.txt", b"inode 7").await?;
//!     tx.ext_put("dirents", b"\x00\x01/b.txt", b"inode 8").await
//! })).await?;
//! let mut tx = store.begin().await?;
//! let entries = tx.ext_scan("dirents", &KeyRange::Prefix(b"\x00\x01/".to_vec()), None, 100).await?;
//! assert_eq!(entries.len(), 2);
//! # Ok(()) }
//! ```

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// The longest extension table name, in bytes (`[a-z0-9_]`, at least one).
pub const MAX_EXT_TABLE_LEN: usize = 64;
/// The longest extension key, in bytes (at least one).
pub const MAX_EXT_KEY_LEN: usize = 1024;
/// The longest extension value, in bytes (empty values are allowed).
pub const MAX_EXT_VALUE_LEN: usize = 1 << 20;

/// One record of an extension table.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ExtRecord {
    /// The record's key (1..=1024 bytes).
    pub key: Vec<u8>,
    /// The record's value (0..=1 MiB).
    pub value: Vec<u8>,
}

/// Which keys of a table an [`ExtStore::ext_scan`] covers.
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum KeyRange {
    /// Every key of the table.
    #[default]
    All,
    /// The keys that start with these bytes (`[1, 2]` covers `[1, 2]` and
    /// `[1, 2, 3]`, not `[1, 3]`). An empty prefix covers every key.
    Prefix(Vec<u8>),
    /// The keys `k` with `start <= k` and, when `end` is set, `k < end`.
    Between {
        /// The first key covered (inclusive).
        start: Vec<u8>,
        /// The first key no longer covered (exclusive); `None` = to the end.
        end: Option<Vec<u8>>,
    },
}

impl KeyRange {
    /// True when `key` is in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        match self {
            KeyRange::All => true,
            KeyRange::Prefix(prefix) => key.starts_with(prefix),
            KeyRange::Between { start, end } => {
                key >= start.as_slice() && end.as_ref().is_none_or(|end| key < end.as_slice())
            }
        }
    }

    /// The range as inclusive lower and exclusive upper bounds (`None` = unbounded).
    pub fn bounds(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        match self {
            KeyRange::All => (Vec::new(), None),
            KeyRange::Prefix(prefix) => (prefix.clone(), prefix_successor(prefix)),
            KeyRange::Between { start, end } => (start.clone(), end.clone()),
        }
    }
}

/// The smallest byte string above every string that starts with `prefix`;
/// `None` when there is none (the prefix is empty or all `0xff`).
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut next = prefix.to_vec();
    while let Some(last) = next.pop() {
        if last < 0xff {
            next.push(last + 1);
            return Some(next);
        }
    }
    None
}

/// Extension-table operations of a transaction: the host's own metadata.
///
/// Every argument is validated before anything is sent or written
/// ([`crate::validate::ext_table`], [`crate::validate::ext_key`],
/// [`crate::validate::ext_value`]); a rejected one is
/// [`Error::Invalid`](crate::Error::Invalid) naming the field and leaves the
/// transaction usable.
#[async_trait]
pub trait ExtStore: Send {
    /// Inserts or replaces the record `key` of `table`.
    async fn ext_put(&mut self, table: &str, key: &[u8], value: &[u8]) -> Result<()>;
    /// The value of `key` in `table`, if stored.
    async fn ext_get(&mut self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Deletes the record; returns whether it existed.
    async fn ext_delete(&mut self, table: &str, key: &[u8]) -> Result<bool>;
    /// At most `limit` (≥ 1) records of `table` in `range` with a key above
    /// `after` (from the start of the range when `None`), in key order.
    /// A read of everything it covered: from the cursor to the last key
    /// returned, or to the end of the range when fewer than `limit` came back.
    async fn ext_scan(
        &mut self,
        table: &str,
        range: &KeyRange,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<ExtRecord>>;
    /// The tables that hold at least one record, in name order.
    async fn ext_tables(&mut self) -> Result<Vec<String>>;
}
