//! One generic indexed table: the record map of a family plus its secondary
//! indexes, all copy-on-write (`imbl`, and [`IdMap`] for the record maps of
//! families keyed by random ids), so cloning a table is O(1).
//!
//! A family declares its key ([`Family::key`]), its indexes (one
//! [`Index`] per extractor, gathered by [`indexes!`](crate::memory_indexes))
//! and nothing else; [`Table`] does put (dropping the old record's index
//! entries), get, delete, paging in key order, scans of an index by value or
//! by range, and the check that indexes and records agree.
//!
//! Records are immutable once stored and held by `Arc`: the record map, every
//! index entry and every transaction's snapshot share one allocation per
//! record, so copying a tree node copies pointers, not strings. An index entry
//! *is* the record pointer, ordered by (indexed value, key) in an
//! [`IndexSet`] and by (value, cluster, key) in a [`GroupSet`]; a scan finds its
//! records by walking the index and confirms each against the record map, so
//! an entry whose record is gone or was replaced is [`Error::Corrupt`], never
//! silently skipped or returned. (A scan whose records are all deleted leaves
//! that check to the removal from the record map: [`Confirm`].)

use std::borrow::Borrow;
use std::fmt::Debug;
use std::ops::Bound;
use std::sync::Arc;

use imbl::OrdMap;

use crate::error::{Error, Result};
use crate::verify::Problem;

pub(super) use super::group_set::GroupSet;
pub(super) use super::id_map::IdMap;
pub(super) use super::index_set::IndexSet;
use super::index_set::{At, Probe};
pub(super) use super::record_map::RecordMap;

/// The record map of a family with structured keys: `type Map = Ordered<Self>;`.
pub(super) type Ordered<F> = OrdMap<<F as Family>::Key, Arc<<F as Family>::Record>>;
/// The record map of a family keyed by a random id: `type Map = ById<Self>;`.
pub(super) type ById<F> = IdMap<Arc<<F as Family>::Record>>;

/// A record family stored in a [`Table`].
pub(super) trait Family: Sized + 'static {
    /// The primary key; records are kept and paged in its order.
    type Key: Ord + Clone + Debug + Send + Sync + 'static;
    /// The stored record.
    type Record: Debug + Send + Sync + 'static;
    /// Where the records are kept by key: [`Ordered`], or [`ById`] for
    /// random ids (see [`RecordMap`]).
    type Map: RecordMap<Self::Key, Arc<Self::Record>>;
    /// The family's secondary indexes (a struct made by `memory_indexes!`).
    type Indexes: Indexes<Self>;
    /// The family's name, for error messages and verify reports.
    const NAME: &'static str;
    /// The record's primary key.
    fn key(record: &Self::Record) -> &Self::Key;
    /// Which records a [`GroupSet`] group keeps side by side: records that
    /// are deleted together should share this value (see [`GroupSet`] for
    /// why). The default puts a group in key order.
    fn cluster(_record: &Self::Record) -> u64 {
        0
    }
}

/// One secondary index of family `F`: what it sorts records by.
pub(super) trait Index<F: Family>: 'static {
    /// The indexed value (records with one value are kept in key order).
    type Value: Ord + Debug + ?Sized;
    /// The index's name, for error messages and verify reports.
    const NAME: &'static str;
    /// The extractor: the record's value in this index.
    fn value(record: &F::Record) -> &Self::Value;
}

/// Every secondary index of a family, maintained together.
pub(super) trait Indexes<F: Family>: Clone + Default + Send + Sync {
    /// Adds the record's entry to every index.
    fn insert(&mut self, record: &Arc<F::Record>);
    /// Removes the record's entry from every index.
    fn remove(&mut self, record: &Arc<F::Record>);
    /// Removes the entries of all `records` from every index, each index in
    /// its own order (see [`IndexSet::remove_all`]); may reorder `records`.
    fn remove_all(&mut self, records: &mut [Arc<F::Record>]);
    /// Appends what disagrees between the indexes and `table`'s records.
    fn verify(&self, table: &Table<F>, problems: &mut Vec<Problem>);
}

/// Declares a family's index struct: one field per index, and its
/// [`Indexes`] implementation. `memory_indexes!(pub(super) struct LockIndexes
/// for Locks { by_file: ByFile, by_epoch: ByEpoch as GroupSet, … });` (an
/// [`IndexSet`] unless `as` names another kind).
macro_rules! memory_indexes {
    ($vis:vis struct $name:ident for $family:ty {
        $($field:ident: $index:ty $(as $set:ident)?),* $(,)?
    }) => {
        /// The secondary indexes of one family.
        #[derive(Clone, Default)]
        $vis struct $name {
            $(pub(super) $field: memory_indexes!(@set $family, $index $(, $set)?),)*
        }

        impl $crate::backend::memory::table::Indexes<$family> for $name {
            fn insert(&mut self, _record: &std::sync::Arc<<$family as $crate::backend::memory::table::Family>::Record>) {
                $(self.$field.insert(_record);)*
            }
            fn remove(&mut self, _record: &std::sync::Arc<<$family as $crate::backend::memory::table::Family>::Record>) {
                $(self.$field.remove(_record);)*
            }
            fn remove_all(&mut self, _records: &mut [std::sync::Arc<<$family as $crate::backend::memory::table::Family>::Record>]) {
                $(self.$field.remove_all(_records);)*
            }
            fn verify(
                &self,
                _table: &$crate::backend::memory::table::Table<$family>,
                _problems: &mut Vec<$crate::verify::Problem>,
            ) {
                $(self.$field.verify(_table, _problems);)*
            }
        }
    };
    // A field's set: an `IndexSet` unless the index names another kind (`as GroupSet`).
    (@set $family:ty, $index:ty) => {
        $crate::backend::memory::table::IndexSet<$family, $index>
    };
    (@set $family:ty, $index:ty, $set:ident) => {
        $crate::backend::memory::table::$set<$family, $index>
    };
}

/// Declares an index type: `memory_index!(ByFile: Locks => FileHandle, |l| &l.file_id);`
macro_rules! memory_index {
    ($name:ident: $family:ty => $value:ty, |$r:ident| $body:expr) => {
        /// A secondary index (see `table.rs`).
        pub(super) struct $name;
        impl $crate::backend::memory::table::Index<$family> for $name {
            type Value = $value;
            const NAME: &'static str = stringify!($name);
            fn value($r: &<$family as $crate::backend::memory::table::Family>::Record) -> &$value {
                $body
            }
        }
    };
}

/// When a scan confirms that each index entry it walks is the record stored
/// under its key (the check that turns a corrupt index into
/// [`Error::Corrupt`] instead of a wrong answer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Confirm {
    /// At the scan: one lookup in the record map per entry. For every read.
    Now,
    /// At the delete of what the scan found ([`Table::delete_all`]), whose
    /// removal from the record map is that lookup: for a scan whose records
    /// are all deleted, which so visits the record map once per record
    /// instead of twice. A corrupt entry then fails the commit, not the scan.
    AtDelete,
}

/// One record a bulk delete ([`Table::delete_all`]) removes.
pub(super) struct Doomed<F: Family> {
    /// Its key.
    pub(super) key: F::Key,
    /// The record the caller found through an index and left unconfirmed
    /// ([`Confirm::AtDelete`]), which must be the one stored under `key`;
    /// `None` when the caller read it by key or deletes whatever is there.
    pub(super) found: Option<Arc<F::Record>>,
}

/// A family's records by key, plus its secondary indexes. Cloning is O(1).
pub(super) struct Table<F: Family> {
    records: F::Map,
    indexes: F::Indexes,
}

impl<F: Family> Clone for Table<F> {
    fn clone(&self) -> Self {
        Table {
            records: self.records.clone(),
            indexes: self.indexes.clone(),
        }
    }
}

impl<F: Family> Default for Table<F> {
    fn default() -> Self {
        Table {
            records: F::Map::default(),
            indexes: F::Indexes::default(),
        }
    }
}

impl<F: Family> Table<F> {
    /// Number of records.
    pub(super) fn len(&self) -> usize {
        self.records.len()
    }

    /// The record under `key`.
    pub(super) fn get(&self, key: &F::Key) -> Option<&Arc<F::Record>> {
        self.records.get(key)
    }

    /// Inserts or replaces the record under its key, moving its index
    /// entries; returns the record it replaced.
    pub(super) fn put(&mut self, record: Arc<F::Record>) -> Option<Arc<F::Record>> {
        let old = self.records.insert(F::key(&record).clone(), record.clone());
        if let Some(old) = &old {
            self.indexes.remove(old);
        }
        self.indexes.insert(&record);
        old
    }

    /// Deletes the record under `key` and its index entries; returns it.
    pub(super) fn delete(&mut self, key: &F::Key) -> Option<Arc<F::Record>> {
        let old = self.records.remove(key)?;
        self.indexes.remove(&old);
        Some(old)
    }

    /// Deletes the records of `doomed` (those that exist) and their index
    /// entries, each structure in its own order (it sorts `doomed` by key).
    /// `doomed` names each key once (a repeat of a found key would read as
    /// corrupt: its record is gone by then).
    ///
    /// The same end state as [`Table::delete`] of each key, for less: the
    /// record map is walked in key order and each index in its own order
    /// ((value, key), or (value, cluster, key) for a group), so one bulk
    /// delete touches each affected tree path once while it is hot, and the
    /// cost follows the deleted records. Except in the record map: keys that
    /// are random (lock ids) put each removal in a leaf of its own, which in
    /// a big store is out of the CPU caches; that part grows with the store
    /// (1,000 removals in an [`IdMap`]: about 0.13 ms among 10k locks, 0.5 ms
    /// among 1M on the bench machine; docs/performance.md, session 15). So
    /// the record map reads every path first ([`RecordMap::warm`]).
    ///
    /// A record a caller found through an index without confirming it
    /// ([`Confirm::AtDelete`]) is confirmed here, by the removal itself: if
    /// the record map holds another record under its key, or none, the index
    /// was corrupt, the removals made so far are undone, nothing else is
    /// touched and the answer is [`Error::Corrupt`].
    pub(super) fn delete_all(&mut self, doomed: &mut [Doomed<F>]) -> Result<()> {
        doomed.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        let mut removed: Vec<Arc<F::Record>> = Vec::with_capacity(doomed.len());
        // Every path read first, then the removals: see `RecordMap::warm`.
        self.records.warm(doomed.iter().map(|d| &d.key));
        for Doomed { key, found } in doomed.iter() {
            let old = self.records.remove(key);
            let problem = match (&old, found) {
                (Some(old), Some(found)) if !Arc::ptr_eq(old, found) => {
                    "an index holds an old version of the record"
                }
                (None, Some(_)) => "an index has an entry for a key with no record",
                _ => {
                    removed.extend(old);
                    continue;
                }
            };
            for record in removed.into_iter().chain(old) {
                self.records.insert(F::key(&record).clone(), record);
            }
            return Err(Error::Corrupt(format!(
                "memory {}: deleting {key:?}: {problem}",
                F::NAME
            )));
        }
        self.indexes.remove_all(&mut removed);
        Ok(())
    }

    /// Every record, in key order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Arc<F::Record>> {
        self.records.range(Bound::Unbounded, Bound::Unbounded)
    }

    /// At most `limit` records with a key above `after` (from the first when `None`), in key order.
    pub(super) fn page(&self, after: Option<&F::Key>, limit: usize) -> Vec<Arc<F::Record>> {
        let lo = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.records
            .range(lo, Bound::Unbounded)
            .take(limit)
            .cloned()
            .collect()
    }

    /// The records with a key in `(lo, hi)`, in key order.
    pub(super) fn range<'a>(
        &'a self,
        lo: Bound<&'a F::Key>,
        hi: Bound<&'a F::Key>,
    ) -> impl Iterator<Item = &'a Arc<F::Record>> + 'a {
        self.records.range(lo, hi)
    }

    /// The records whose value in index `X` is `value`, in key order.
    pub(super) fn find<X: Index<F>>(
        &self,
        index: fn(&F::Indexes) -> &IndexSet<F, X>,
        value: &X::Value,
    ) -> Result<Vec<Arc<F::Record>>> {
        self.find_as(index, value, Confirm::Now)
    }

    /// [`Table::find`], the entries confirmed as `confirm` says.
    pub(super) fn find_as<X: Index<F>>(
        &self,
        index: fn(&F::Indexes) -> &IndexSet<F, X>,
        value: &X::Value,
        confirm: Confirm,
    ) -> Result<Vec<Arc<F::Record>>> {
        let lo = Bound::Included(Probe {
            value,
            at: At::First,
        });
        let hi = Bound::Included(Probe {
            value,
            at: At::Last,
        });
        self.confirm::<X>(index(&self.indexes).entries(lo, hi), confirm)
    }

    /// The records whose value in index `X` lies between `lo` and `hi`, in (value, key) order.
    pub(super) fn find_range<X: Index<F>>(
        &self,
        index: fn(&F::Indexes) -> &IndexSet<F, X>,
        lo: Bound<&X::Value>,
        hi: Bound<&X::Value>,
    ) -> Result<Vec<Arc<F::Record>>> {
        let lo = match lo {
            Bound::Included(value) => Bound::Included(Probe {
                value,
                at: At::First,
            }),
            Bound::Excluded(value) => Bound::Included(Probe {
                value,
                at: At::Last,
            }),
            Bound::Unbounded => Bound::Unbounded,
        };
        let hi = match hi {
            Bound::Included(value) => Bound::Included(Probe {
                value,
                at: At::Last,
            }),
            Bound::Excluded(value) => Bound::Included(Probe {
                value,
                at: At::First,
            }),
            Bound::Unbounded => Bound::Unbounded,
        };
        self.confirm::<X>(index(&self.indexes).entries(lo, hi), Confirm::Now)
    }

    /// The records whose value in grouped index `X` lies between `lo` and
    /// `hi`, in key order (sorted here: a group is in cluster order),
    /// confirmed as `confirm` says.
    pub(super) fn find_grouped<X: Index<F>>(
        &self,
        index: fn(&F::Indexes) -> &GroupSet<F, X>,
        lo: Bound<&X::Value>,
        hi: Bound<&X::Value>,
        confirm: Confirm,
    ) -> Result<Vec<Arc<F::Record>>>
    where
        X::Value: ToOwned,
        <X::Value as ToOwned>::Owned: Ord + Clone + Borrow<X::Value>,
    {
        let mut records = self.confirm::<X>(index(&self.indexes).records(lo, hi), confirm)?;
        records.sort_unstable_by(|a, b| F::key(a).cmp(F::key(b)));
        Ok(records)
    }

    /// The records of index entries, each confirmed to be the stored record
    /// now or left for the delete to confirm ([`Confirm`]).
    fn confirm<'a, X: Index<F>>(
        &'a self,
        entries: impl Iterator<Item = &'a Arc<F::Record>>,
        confirm: Confirm,
    ) -> Result<Vec<Arc<F::Record>>> {
        match confirm {
            Confirm::Now => entries
                .map(|record| self.live::<X>(record).cloned())
                .collect(),
            Confirm::AtDelete => Ok(entries.cloned().collect()),
        }
    }

    /// `record` (from an entry of index `X`) if it is the record stored under its key.
    pub(super) fn live<X: Index<F>>(&self, record: &Arc<F::Record>) -> Result<&Arc<F::Record>> {
        let key = F::key(record);
        match self.records.get(key) {
            Some(stored) if Arc::ptr_eq(stored, record) => Ok(stored),
            Some(_) => Err(Error::Corrupt(format!(
                "memory {}: index {} holds an old version of the record {key:?}",
                F::NAME,
                X::NAME
            ))),
            None => Err(Error::Corrupt(format!(
                "memory {}: index {} has an entry for {key:?}, which has no record",
                F::NAME,
                X::NAME
            ))),
        }
    }

    /// Everything that disagrees between the indexes and the records.
    pub(super) fn verify(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        self.indexes.verify(self, &mut problems);
        problems
    }

    /// The indexes, for tests that damage them on purpose.
    #[cfg(test)]
    pub(super) fn indexes_mut(&mut self) -> &mut F::Indexes {
        &mut self.indexes
    }

    /// The record map, for tests that damage it on purpose.
    #[cfg(test)]
    pub(super) fn records_mut(&mut self) -> &mut F::Map {
        &mut self.records
    }
}

impl<F: Family<Map = Ordered<F>>> Table<F> {
    /// The record under a borrowed form of its key (a `&str` for a `String`
    /// key), for the families kept in an [`Ordered`] map.
    pub(super) fn get_borrowed<Q>(&self, key: &Q) -> Option<&Arc<F::Record>>
    where
        Q: Ord + ?Sized,
        F::Key: Borrow<Q>,
    {
        self.records.get(key)
    }
}
