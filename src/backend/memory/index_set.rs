//! [`IndexSet`]: the first kind of secondary index of a [`Table`], a set of
//! record pointers ordered by (indexed value, key), and the search keys
//! ([`Probe`]) its scans seek with.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::marker::PhantomData;
use std::ops::Bound;
use std::sync::Arc;

use imbl::OrdSet;

use super::table::{Family, Index, Table};
use crate::verify::{Problem, ProblemKind};

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
        for record in table.iter() {
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
