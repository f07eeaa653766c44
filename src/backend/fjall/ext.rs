//! The extension family: the host's own tables of `key → value` bytes, all
//! in one keyspace, `ext`, under `len8(table) | key` (`keys.rs` says why),
//! each value behind a format byte (`codec.rs`). A table without indexes
//! over the generic table of `table.rs`, like node states.
//!
//! Serializability comes from fjall's optimistic transaction, as for every
//! other family: a get or delete is a point read of its key, so a concurrent
//! write of it conflicts; a scan is one range read of the keys it covers
//! (from the cursor to the end of the range, a little more than the page it
//! returns when the page is full), so a concurrent insert into it conflicts
//! too (a phantom). `ext_put` writes blind: two concurrent puts of one key
//! that read nothing serialize in commit order. `ext_tables` reads the whole
//! keyspace (every jump to the next table is a range read to the end), so
//! any concurrent extension write conflicts with a transaction that listed
//! the tables: coarse, never too fine, and listing tables is rare.

use std::fmt;
use std::ops::Bound;

use async_trait::async_trait;
use fjall::{OptimisticTxKeyspace, Readable};

use super::Keyspaces;
use super::codec::{self, Fault};
use super::keys::{self, names};
use super::table::{Family, Index, KeyRange as RawRange, Table, read_error};
use super::tx::FjallTx;
use crate::error::{Error, Result};
use crate::ext::{ExtRecord, ExtStore, KeyRange};
use crate::validate;

/// The extension family.
pub(super) struct Ext;

/// Where an extension record lives: its table, its key in the table, and the
/// raw `ext` key those two make.
#[derive(Clone, Debug)]
pub(super) struct ExtKey {
    table: String,
    key: Vec<u8>,
    raw: Vec<u8>,
}

impl ExtKey {
    /// The key `key` of `table`; both validated by the caller.
    fn new(table: &str, key: &[u8]) -> Result<Self> {
        Ok(ExtKey {
            table: table.to_owned(),
            key: key.to_vec(),
            raw: keys::ext(table, key)?,
        })
    }
}

impl fmt::Display for ExtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} 0x", self.table)?;
        self.key.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// One stored extension record.
pub(super) struct ExtEntry {
    key: ExtKey,
    value: Vec<u8>,
}

impl Family for Ext {
    type Key = ExtKey;
    type Record = ExtEntry;
    const NAME: &'static str = names::EXT;
    const RECORD: &'static str = "extension record";
    const PREFIX: &'static [u8] = b"";
    const KEY_RULE: &'static str =
        "expected len8(table) | key: a 1..=64-byte [a-z0-9_] table name and a 1..=1024-byte key";
    const INDEXES: &'static [Index<ExtEntry>] = &[];

    fn keyspace(ks: &Keyspaces) -> &OptimisticTxKeyspace {
        &ks.ext
    }
    fn key_of(entry: &ExtEntry) -> ExtKey {
        entry.key.clone()
    }
    fn encode_key(key: &ExtKey) -> Vec<u8> {
        key.raw.clone()
    }
    fn decode_key(raw: &[u8]) -> Option<ExtKey> {
        let (table, key) = keys::split_ext(raw)?;
        Some(ExtKey {
            table: table.to_owned(),
            key: key.to_vec(),
            raw: raw.to_vec(),
        })
    }
    fn encode(entry: &ExtEntry) -> Result<Vec<u8>> {
        Ok(codec::encode_ext_value(&entry.value))
    }
    fn decode(key: &ExtKey, raw: &[u8], value: &[u8]) -> Result<ExtEntry, Fault> {
        Ok(ExtEntry {
            key: key.clone(),
            value: codec::decode_ext_value(raw, value)?,
        })
    }
}

/// The raw key range of `ext` a scan of `table` covers: `range` inside the
/// table, above `after` when it is set. `None` when no key can be in it
/// (then there is nothing to read, and nothing a phantom could enter).
fn scan_bounds(table: &str, range: &KeyRange, after: Option<&[u8]>) -> Result<Option<RawRange>> {
    let prefix = keys::ext_table(table)?;
    let at = |key: &[u8]| [prefix.as_slice(), key].concat();
    let (start, end) = range.bounds();
    let upper = match end {
        Some(end) => at(&end),
        // The first byte is a length of at most 64, so the table has an end.
        None => keys::prefix_end(&prefix)
            .ok_or_else(|| Error::Invalid(format!("table: {table:?} has no key range")))?,
    };
    let (low, after_it) = match after {
        Some(after) if after >= start.as_slice() => (at(after), true),
        _ => (at(&start), false),
    };
    if low >= upper {
        return Ok(None);
    }
    let lower = if after_it {
        Bound::Excluded(low)
    } else {
        Bound::Included(low)
    };
    Ok(Some((lower, Bound::Excluded(upper))))
}

#[async_trait]
impl ExtStore for FjallTx {
    async fn ext_put(&mut self, table: &str, key: &[u8], value: &[u8]) -> Result<()> {
        validate::ext_record(table, key, value)?;
        let entry = ExtEntry {
            key: ExtKey::new(table, key)?,
            value: value.to_vec(),
        };
        Table::<Ext>::new(&self.store.ks).put(&mut self.tx, &entry)
    }

    async fn ext_get(&mut self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        validate::ext_address(table, key)?;
        let key = ExtKey::new(table, key)?;
        Ok(Table::<Ext>::new(&self.store.ks)
            .get(&self.tx, &key)?
            .map(|entry| entry.value))
    }

    async fn ext_delete(&mut self, table: &str, key: &[u8]) -> Result<bool> {
        validate::ext_address(table, key)?;
        let key = ExtKey::new(table, key)?;
        Ok(Table::<Ext>::new(&self.store.ks)
            .delete(&mut self.tx, &key)?
            .is_some())
    }

    async fn ext_scan(
        &mut self,
        table: &str,
        range: &KeyRange,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<ExtRecord>> {
        validate::ext_scan(table, range, after, limit)?;
        let Some(bounds) = scan_bounds(table, range, after)? else {
            return Ok(Vec::new());
        };
        let entries = Table::<Ext>::new(&self.store.ks).range(&self.tx, bounds, limit)?;
        Ok(entries
            .into_iter()
            .map(|entry| ExtRecord {
                key: entry.key.key,
                value: entry.value,
            })
            .collect())
    }

    async fn ext_tables(&mut self) -> Result<Vec<String>> {
        let ks = &self.store.ks.ext;
        let mut tables = Vec::new();
        let mut from: Bound<Vec<u8>> = Bound::Unbounded;
        // The first key at or after `from` names the next table; the jump
        // past it is the end of that table's prefix.
        while let Some(guard) = self.tx.range(ks, (from, Bound::Unbounded)).next() {
            let raw = guard.key().map_err(read_error(names::EXT))?;
            let (table, _) = keys::split_ext(&raw)
                .ok_or_else(|| keys::corrupt_key(names::EXT, &raw, Ext::KEY_RULE))?;
            let next = keys::prefix_end(&keys::ext_table(table)?).ok_or_else(|| {
                keys::corrupt_key(names::EXT, &raw, "a table prefix without an end")
            })?;
            tables.push(table.to_owned());
            from = Bound::Included(next);
        }
        // On disk tables sort by (name length, name); the API promises name order.
        tables.sort_unstable();
        Ok(tables)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_bounds_stay_inside_the_table() {
        let t = |k: &[u8]| keys::ext("t", k).expect("key");
        let all = scan_bounds("t", &KeyRange::All, None).expect("bounds");
        assert_eq!(
            all,
            Some((
                Bound::Included(b"\x01t".to_vec()),
                Bound::Excluded(b"\x01u".to_vec())
            ))
        );
        let prefix = KeyRange::Prefix(vec![1, 2]);
        assert_eq!(
            scan_bounds("t", &prefix, Some(&[1, 2, 3])).expect("bounds"),
            Some((Bound::Excluded(t(&[1, 2, 3])), Bound::Excluded(t(&[1, 3]))))
        );
        // A cursor below the range starts at the range.
        assert_eq!(
            scan_bounds("t", &prefix, Some(&[1])).expect("bounds"),
            Some((Bound::Included(t(&[1, 2])), Bound::Excluded(t(&[1, 3]))))
        );
        // An all-0xff prefix reaches the end of the table, not past it.
        assert_eq!(
            scan_bounds("t", &KeyRange::Prefix(vec![0xff]), None).expect("bounds"),
            Some((
                Bound::Included(t(&[0xff])),
                Bound::Excluded(b"\x01u".to_vec())
            ))
        );
        let empty = KeyRange::Between {
            start: vec![5],
            end: Some(vec![5]),
        };
        assert_eq!(scan_bounds("t", &empty, None).expect("bounds"), None);
        let between = KeyRange::Between {
            start: vec![0],
            end: Some(vec![5]),
        };
        assert_eq!(
            scan_bounds("t", &between, Some(&[5])).expect("bounds"),
            None
        );
    }
}
