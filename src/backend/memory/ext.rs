//! The extension family: the host's `key → value` tables, one record map
//! keyed by (table, key), so a scan is one range of it.

use std::collections::HashSet;
use std::ops::Bound;
use std::sync::Arc;

use async_trait::async_trait;

use super::table::{Family, Table};
use super::{Bookkeeping, MemoryTx};
use crate::error::Result;
use crate::ext::{ExtRecord, ExtStore, KeyRange};
use crate::validate;

/// A record's primary key: its table, then its key (both ordered bytewise).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct ExtKey {
    table: String,
    key: Vec<u8>,
}

impl ExtKey {
    fn new(table: &str, key: &[u8]) -> Self {
        ExtKey {
            table: table.to_owned(),
            key: key.to_vec(),
        }
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
        let above = match &self.lo {
            Bound::Included(lo) => id.key >= *lo,
            Bound::Excluded(lo) => id.key > *lo,
            Bound::Unbounded => true,
        };
        let below = match &self.hi {
            None | Some(Bound::Unbounded) => true,
            Some(Bound::Included(hi)) => id.key <= *hi,
            Some(Bound::Excluded(hi)) => id.key < *hi,
        };
        id.table == self.table && above && below
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

    fn replay(table: &mut Table<Ext>, write: Write, changes: &mut Changes) {
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
        validate::ext_table(table)?;
        validate::ext_key("key", key)?;
        validate::ext_value(value)?;
        let entry = Arc::new(ExtEntry {
            id: ExtKey::new(table, key),
            value: value.to_vec(),
        });
        self.working.ext.put(entry.clone());
        self.writes.ext.push(Write::Put(entry));
        Ok(())
    }

    async fn ext_get(&mut self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        validate::ext_table(table)?;
        validate::ext_key("key", key)?;
        let id = ExtKey::new(table, key);
        let value = self.working.ext.get(&id).map(|e| e.value.clone());
        self.reads.ext.keys.insert(id);
        Ok(value)
    }

    async fn ext_delete(&mut self, table: &str, key: &[u8]) -> Result<bool> {
        validate::ext_table(table)?;
        validate::ext_key("key", key)?;
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
            Bound::Unbounded => Bound::Excluded(ExtKey::new(&next_table(table), &[])),
            other => bound_in(table, other),
        };
        let records: Vec<ExtRecord> = self
            .working
            .ext
            .range(lo.as_ref(), hi.as_ref())
            .take(limit)
            .map(|e| ExtRecord {
                key: e.id.key.clone(),
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
                .map(|first| first.id.table.clone());
            let Some(table) = next else { break };
            from = ExtKey::new(&next_table(&table), &[]);
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

/// The smallest table name above every key of `table`: table names are
/// `[a-z0-9_]`, so nothing sorts between `table` and `table + "\0"` but
/// `table`'s own keys.
fn next_table(table: &str) -> String {
    format!("{table}\0")
}
