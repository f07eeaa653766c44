//! The extension family: the host's `key → value` tables, one record map
//! keyed by (table, key), so a scan is one range of it.

use std::collections::HashSet;
use std::ops::Bound;
use std::sync::Arc;

use async_trait::async_trait;

use super::table::{Family, Ordered, Table};
use super::{Bookkeeping, MemoryTx};
use crate::error::Result;
use crate::ext::{ExtRecord, ExtStore, KeyRange};
use crate::validate;

/// A record's primary key: `table | 0x00 | key` in one shared allocation.
/// Table names are `[a-z0-9_]` (no NUL), so the bytewise order is the order
/// of (table, key) pairs, and copying a tree node on write bumps a reference
/// count instead of allocating a table name and a key per entry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct ExtKey(Arc<[u8]>);

impl ExtKey {
    fn new(table: &str, key: &[u8]) -> Self {
        let mut bytes = Vec::with_capacity(table.len() + 1 + key.len());
        bytes.extend_from_slice(table.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(key);
        ExtKey(bytes.into())
    }

    /// Above every key of `table` and below every key of the tables after it.
    fn table_end(table: &str) -> Self {
        let mut bytes = table.as_bytes().to_vec();
        bytes.push(1);
        ExtKey(bytes.into())
    }

    fn split(&self) -> (&[u8], &[u8]) {
        let nul = self.0.iter().position(|&b| b == 0).unwrap_or(self.0.len());
        (&self.0[..nul], self.0.get(nul + 1..).unwrap_or(&[]))
    }

    fn table(&self) -> &[u8] {
        self.split().0
    }

    fn key(&self) -> &[u8] {
        self.split().1
    }
}

/// One stored record.
#[derive(Debug)]
pub(super) struct ExtEntry {
    id: ExtKey,
    value: Vec<u8>,
}

/// The extension family.
pub(super) struct Ext;

impl Family for Ext {
    type Key = ExtKey;
    type Map = Ordered<Self>;
    type Record = ExtEntry;
    type Indexes = ExtIndexes;
    const NAME: &'static str = "ext";
    fn key(entry: &ExtEntry) -> &ExtKey {
        &entry.id
    }
}

memory_indexes!(pub(super) struct ExtIndexes for Ext {});

/// One extension write of a transaction.
pub(super) enum Write {
    Put(Arc<ExtEntry>),
    Delete(ExtKey),
}

/// A key range of one table that a scan covered (`hi` `None` = to the end).
struct Covered {
    table: String,
    lo: Bound<Vec<u8>>,
    hi: Option<Bound<Vec<u8>>>,
}

impl Covered {
    fn contains(&self, id: &ExtKey) -> bool {
        let (table, key) = id.split();
        let above = match &self.lo {
            Bound::Included(lo) => key >= lo.as_slice(),
            Bound::Excluded(lo) => key > lo.as_slice(),
            Bound::Unbounded => true,
        };
        let below = match &self.hi {
            None | Some(Bound::Unbounded) => true,
            Some(Bound::Included(hi)) => key <= hi.as_slice(),
            Some(Bound::Excluded(hi)) => key < hi.as_slice(),
        };
        table == self.table.as_bytes() && above && below
    }
}

/// What a transaction read of the extension tables.
#[derive(Default)]
pub(super) struct Reads {
    keys: HashSet<ExtKey>,
    ranges: Vec<Covered>,
    /// `ext_tables`: any change may change which tables exist.
    tables: bool,
}

/// The keys a commit put or deleted.
#[derive(Default)]
pub(super) struct Changes(Vec<ExtKey>);

impl Bookkeeping for Ext {
    type Tables = Table<Ext>;
    type Write = Write;
    type Reads = Reads;
    type Changes = Changes;

    fn replay(table: &mut Table<Ext>, write: Write, changes: &mut Changes) -> Result<()> {
        match write {
            Write::Put(entry) => {
                changes.0.push(entry.id.clone());
                table.put(entry);
            }
            Write::Delete(id) => {
                table.delete(&id);
                changes.0.push(id);
            }
        }
        Ok(())
    }

    fn invalidates(changes: &Changes, reads: &Reads) -> bool {
        (reads.tables && !changes.0.is_empty())
            || changes
                .0
                .iter()
                .any(|id| reads.keys.contains(id) || reads.ranges.iter().any(|r| r.contains(id)))
    }
}

#[async_trait]
impl ExtStore for MemoryTx {
    async fn ext_put(&mut self, table: &str, key: &[u8], value: &[u8]) -> Result<()> {
        validate::ext_record(table, key, value)?;
        let entry = Arc::new(ExtEntry {
            id: ExtKey::new(table, key),
            value: value.to_vec(),
        });
        self.working.ext.put(entry.clone());
        self.writes.ext.push(Write::Put(entry));
        Ok(())
    }

    async fn ext_get(&mut self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        validate::ext_address(table, key)?;
        let id = ExtKey::new(table, key);
        let value = self.working.ext.get(&id).map(|e| e.value.clone());
        self.reads.ext.keys.insert(id);
        Ok(value)
    }

    async fn ext_delete(&mut self, table: &str, key: &[u8]) -> Result<bool> {
        validate::ext_address(table, key)?;
        let id = ExtKey::new(table, key);
        self.reads.ext.keys.insert(id.clone());
        if self.working.ext.delete(&id).is_none() {
            return Ok(false);
        }
        self.writes.ext.push(Write::Delete(id));
        Ok(true)
    }

    async fn ext_scan(
        &mut self,
        table: &str,
        range: &KeyRange,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<ExtRecord>> {
        validate::ext_scan(table, range, after, limit)?;
        let (start, end) = range.bounds();
        // The scan starts at the later of the range's start and the cursor.
        let lo_key = match after {
            Some(after) if after >= start.as_slice() => Bound::Excluded(after.to_vec()),
            _ => Bound::Included(start),
        };
        let hi_key = end.map_or(Bound::Unbounded, Bound::Excluded);
        let lo = bound_in(table, &lo_key);
        let hi = match &hi_key {
            Bound::Unbounded => Bound::Excluded(ExtKey::table_end(table)),
            other => bound_in(table, other),
        };
        let records: Vec<ExtRecord> = self
            .working
            .ext
            .range(lo.as_ref(), hi.as_ref())
            .take(limit)
            .map(|e| ExtRecord {
                key: e.id.key().to_vec(),
                value: e.value.clone(),
            })
            .collect();
        // What the scan covered: to its last key when the page is full, else
        // to the end of the range (an insert anywhere there is a phantom).
        let covered_hi = match records.last() {
            Some(last) if records.len() == limit => Some(Bound::Included(last.key.clone())),
            _ => Some(hi_key),
        };
        self.reads.ext.ranges.push(Covered {
            table: table.to_owned(),
            lo: lo_key,
            hi: covered_hi,
        });
        Ok(records)
    }

    async fn ext_tables(&mut self) -> Result<Vec<String>> {
        self.reads.ext.tables = true;
        let mut tables = Vec::new();
        let mut from = ExtKey::new("", &[]);
        // One probe per table: jump past every key of the table just found.
        loop {
            let next = self
                .working
                .ext
                .range(Bound::Included(&from), Bound::Unbounded)
                .next()
                .map(|first| String::from_utf8_lossy(first.id.table()).into_owned());
            let Some(table) = next else { break };
            from = ExtKey::table_end(&table);
            tables.push(table);
        }
        Ok(tables)
    }
}

/// A bound on keys of `table` as a bound on the record map.
fn bound_in(table: &str, bound: &Bound<Vec<u8>>) -> Bound<ExtKey> {
    match bound {
        Bound::Included(key) => Bound::Included(ExtKey::new(table, key)),
        Bound::Excluded(key) => Bound::Excluded(ExtKey::new(table, key)),
        Bound::Unbounded => Bound::Unbounded,
    }
}
