//! One generic indexed table: the record map of a family plus its secondary
//! indexes, all copy-on-write (`imbl`), so cloning a table is O(1).
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
//! silently skipped or returned.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt::Debug;
use std::marker::PhantomData;
use std::ops::Bound;
use std::sync::Arc;

use imbl::{OrdMap, OrdSet};

use crate::error::{Error, Result};
use crate::verify::{Problem, ProblemKind};

pub(super) use super::group_set::GroupSet;

/// A record family stored in a [`Table`].
pub(super) trait Family: Sized + 'static {
    /// The primary key; records are kept and paged in its order.
    type Key: Ord + Clone + Debug + Send + Sync + 'static;
    /// The stored record.
    type Record: Debug + Send + Sync + 'static;
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

/// Where a search key sits among the records with one indexed value.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum At<'a, K> {
    /// Before every record.
    First,
    /// At the record with this key.
    Key(&'a K),
    /// After every record.
    Last,
}

impl<K> Clone for At<'_, K> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K> Copy for At<'_, K> {}

/// What an index is searched by: a position (value, place among its records).
/// Both a stored entry and a probe are one, so `imbl` can seek an entry with a probe.
trait Seek<F: Family, X: Index<F>> {
    fn value(&self) -> &X::Value;
    fn at(&self) -> At<'_, F::Key>;
}

impl<F: Family, X: Index<F>> PartialEq for dyn Seek<F, X> + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<F: Family, X: Index<F>> Eq for dyn Seek<F, X> + '_ {}

impl<F: Family, X: Index<F>> PartialOrd for dyn Seek<F, X> + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<F: Family, X: Index<F>> Ord for dyn Seek<F, X> + '_ {
    fn cmp(&self, other: &Self) -> Ordering {
        self.value()
            .cmp(other.value())
            .then_with(|| self.at().cmp(&other.at()))
    }
}

/// An index entry: the record itself (one pointer), ordered by (value, key).
pub(super) struct Entry<F: Family, X>(Arc<F::Record>, PhantomData<fn() -> X>);

impl<F: Family, X> Clone for Entry<F, X> {
    fn clone(&self) -> Self {
        Entry(self.0.clone(), PhantomData)
    }
}

impl<F: Family, X: Index<F>> Seek<F, X> for Entry<F, X> {
    fn value(&self) -> &X::Value {
        X::value(&self.0)
    }
    fn at(&self) -> At<'_, F::Key> {
        At::Key(F::key(&self.0))
    }
}

impl<'a, F: Family, X: Index<F>> Borrow<dyn Seek<F, X> + 'a> for Entry<F, X> {
    fn borrow(&self) -> &(dyn Seek<F, X> + 'a) {
        self
    }
}

impl<F: Family, X: Index<F>> PartialEq for Entry<F, X> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<F: Family, X: Index<F>> Eq for Entry<F, X> {}

impl<F: Family, X: Index<F>> PartialOrd for Entry<F, X> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<F: Family, X: Index<F>> Ord for Entry<F, X> {
    fn cmp(&self, other: &Self) -> Ordering {
        // The same order as `dyn Seek`'s, as `Borrow` requires.
        X::value(&self.0)
            .cmp(X::value(&other.0))
            .then_with(|| F::key(&self.0).cmp(F::key(&other.0)))
    }
}

/// A search key: a value and a place among its records.
pub(super) struct Probe<'a, F: Family, X: Index<F>> {
    pub(super) value: &'a X::Value,
    pub(super) at: At<'a, F::Key>,
}

impl<F: Family, X: Index<F>> Seek<F, X> for Probe<'_, F, X> {
    fn value(&self) -> &X::Value {
        self.value
    }
    fn at(&self) -> At<'_, F::Key> {
        self.at
    }
}

/// One secondary index: a set of record pointers ordered by (value, key).
pub(super) struct IndexSet<F: Family, X: Index<F>>(OrdSet<Entry<F, X>>);

impl<F: Family, X: Index<F>> Clone for IndexSet<F, X> {
    fn clone(&self) -> Self {
        IndexSet(self.0.clone())
    }
}

impl<F: Family, X: Index<F>> Default for IndexSet<F, X> {
    fn default() -> Self {
        IndexSet(OrdSet::new())
    }
}

impl<F: Family, X: Index<F>> IndexSet<F, X> {
    /// Adds the record's entry.
    pub(super) fn insert(&mut self, record: &Arc<F::Record>) {
        self.0.insert(Entry(record.clone(), PhantomData));
    }

    /// Removes the record's entry (matched by value and key).
    pub(super) fn remove(&mut self, record: &Arc<F::Record>) {
        self.0.remove(&Entry(record.clone(), PhantomData));
    }

    /// Removes the entries of all `records`, in this index's (value, key)
    /// order (it sorts `records` so): consecutive removals walk neighbouring
    /// paths of the tree, whose nodes are still in cache and, within one
    /// transaction, already copied, instead of jumping across it.
    pub(super) fn remove_all(&mut self, records: &mut [Arc<F::Record>]) {
        sort_in_index_order::<F, X>(records);
        for record in records.iter() {
            self.remove(record);
        }
    }

    /// The entries from `lo` to `hi`, in (value, key) order.
    pub(super) fn entries(
        &self,
        lo: Bound<Probe<'_, F, X>>,
        hi: Bound<Probe<'_, F, X>>,
    ) -> impl Iterator<Item = &Arc<F::Record>> {
        self.0
            .range::<_, dyn Seek<F, X> + '_>((bound_ref(&lo), bound_ref(&hi)))
            .map(|entry| &entry.0)
    }

    /// Appends the entries whose record is not the one stored under its key
    /// (stale), and the records without an entry here (missing).
    pub(super) fn verify(&self, table: &Table<F>, problems: &mut Vec<Problem>) {
        for entry in self.0.iter() {
            if let Err(e) = table.live::<X>(&entry.0) {
                problems.push(Problem {
                    kind: ProblemKind::StaleIndexEntry,
                    location: format!("memory {}/{}/{:?}", F::NAME, X::NAME, F::key(&entry.0)),
                    detail: e.to_string(),
                });
            }
        }
        for record in table.records.values() {
            if !self.0.contains(&Entry(record.clone(), PhantomData)) {
                problems.push(Problem {
                    kind: ProblemKind::MissingIndexEntry,
                    location: format!("memory {}/{}/{:?}", F::NAME, X::NAME, F::key(record)),
                    detail: format!("the record has no entry under {:?}", X::value(record)),
                });
            }
        }
    }
}

/// Sorts `records` in index `X`'s (value, key) order, the order a bulk
/// removal from an [`IndexSet`] walks.
fn sort_in_index_order<F: Family, X: Index<F>>(records: &mut [Arc<F::Record>]) {
    records.sort_unstable_by(|a, b| {
        X::value(a)
            .cmp(X::value(b))
            .then_with(|| F::key(a).cmp(F::key(b)))
    });
}

/// `Bound<&dyn Seek>` of a `Bound<Probe>`: what `imbl`'s range takes.
fn bound_ref<'b, F: Family, X: Index<F>>(
    bound: &'b Bound<Probe<'_, F, X>>,
) -> Bound<&'b (dyn Seek<F, X> + 'b)> {
    match bound {
        Bound::Included(p) => Bound::Included(p as &dyn Seek<F, X>),
        Bound::Excluded(p) => Bound::Excluded(p as &dyn Seek<F, X>),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// A family's records by key, plus its secondary indexes. Cloning is O(1).
pub(super) struct Table<F: Family> {
    records: OrdMap<F::Key, Arc<F::Record>>,
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
            records: OrdMap::new(),
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
    pub(super) fn get<Q>(&self, key: &Q) -> Option<&Arc<F::Record>>
    where
        Q: Ord + ?Sized,
        F::Key: Borrow<Q>,
    {
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

    /// Deletes the records under `keys` (those that exist) and their index
    /// entries, each structure in its own order.
    ///
    /// The same end state as [`Table::delete`] of each key, for less: the
    /// record map is walked in key order and each index in its own order
    /// ((value, key), or (value, cluster, key) for a group), so one bulk
    /// delete touches each affected tree path once while it is hot, and the
    /// cost follows the deleted records, not the store.
    pub(super) fn delete_all(&mut self, mut keys: Vec<F::Key>) {
        keys.sort_unstable();
        keys.dedup();
        let mut removed: Vec<Arc<F::Record>> = keys
            .iter()
            .filter_map(|key| self.records.remove(key))
            .collect();
        self.indexes.remove_all(&mut removed);
    }

    /// Every record, in key order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Arc<F::Record>> {
        self.records.values()
    }

    /// At most `limit` records with a key above `after` (from the first when `None`), in key order.
    pub(super) fn page(&self, after: Option<&F::Key>, limit: usize) -> Vec<Arc<F::Record>> {
        let lo = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.records
            .range::<_, F::Key>((lo, Bound::Unbounded))
            .take(limit)
            .map(|(_, record)| record.clone())
            .collect()
    }

    /// The records with a key in `(lo, hi)`, in key order.
    pub(super) fn range<'a>(
        &'a self,
        lo: Bound<&'a F::Key>,
        hi: Bound<&'a F::Key>,
    ) -> impl Iterator<Item = &'a Arc<F::Record>> + 'a {
        self.records
            .range::<_, F::Key>((lo, hi))
            .map(|(_, record)| record)
    }

    /// The records whose value in index `X` is `value`, in key order.
    pub(super) fn find<X: Index<F>>(
        &self,
        index: fn(&F::Indexes) -> &IndexSet<F, X>,
        value: &X::Value,
    ) -> Result<Vec<Arc<F::Record>>> {
        self.find_page(index, value, None, usize::MAX)
    }

    /// At most `limit` records whose value in index `X` is `value` and whose
    /// key is above `after`, in key order.
    pub(super) fn find_page<X: Index<F>>(
        &self,
        index: fn(&F::Indexes) -> &IndexSet<F, X>,
        value: &X::Value,
        after: Option<&F::Key>,
        limit: usize,
    ) -> Result<Vec<Arc<F::Record>>> {
        let lo = match after {
            Some(key) => Bound::Excluded(Probe {
                value,
                at: At::Key(key),
            }),
            None => Bound::Included(Probe {
                value,
                at: At::First,
            }),
        };
        let hi = Bound::Included(Probe {
            value,
            at: At::Last,
        });
        self.confirm::<X>(index(&self.indexes).entries(lo, hi).take(limit))
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
        self.confirm::<X>(index(&self.indexes).entries(lo, hi))
    }

    /// The records whose value in grouped index `X` lies between `lo` and
    /// `hi`, in key order (sorted here: a group is in cluster order).
    pub(super) fn find_grouped<X: Index<F>>(
        &self,
        index: fn(&F::Indexes) -> &GroupSet<F, X>,
        lo: Bound<&X::Value>,
        hi: Bound<&X::Value>,
    ) -> Result<Vec<Arc<F::Record>>>
    where
        X::Value: ToOwned,
        <X::Value as ToOwned>::Owned: Ord + Clone + Borrow<X::Value>,
    {
        let mut records = self.confirm::<X>(index(&self.indexes).records(lo, hi))?;
        records.sort_unstable_by(|a, b| F::key(a).cmp(F::key(b)));
        Ok(records)
    }

    /// The records of index entries, each confirmed to be the stored record.
    fn confirm<'a, X: Index<F>>(
        &'a self,
        entries: impl Iterator<Item = &'a Arc<F::Record>>,
    ) -> Result<Vec<Arc<F::Record>>> {
        entries
            .map(|record| self.live::<X>(record).cloned())
            .collect()
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
    pub(super) fn records_mut(&mut self) -> &mut OrdMap<F::Key, Arc<F::Record>> {
        &mut self.records
    }
}
