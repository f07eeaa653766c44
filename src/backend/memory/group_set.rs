//! [`GroupSet`]: the second kind of secondary index of a [`Table`], for a
//! value that many records share (see the type's docs for why).

use std::borrow::Borrow;
use std::ops::Bound;
use std::sync::Arc;

use imbl::OrdMap;

#[cfg(doc)]
use super::table::IndexSet;
use super::table::{At, Family, Index, Probe, Scan, Table, sort_in_index_order};
use crate::verify::{Problem, ProblemKind};

/// The owned form of an index value, the key of a [`GroupSet`]'s groups.
type Owned<F, X> = <<X as Index<F>>::Value as ToOwned>::Owned;

/// A secondary index for a value that many records share (a share name, a
/// server epoch): each value once, with its records by key.
///
/// Why a second kind: in an [`IndexSet`] every comparison reads the value and
/// the key through the record pointer. Where most records have one value,
/// the entries of a bulk delete are scattered among many others', and each
/// comparison on the way down to them reads a record that is not in cache:
/// in a store of 1M locks that made the share and epoch indexes cost three
/// times the record map per delete. Here the search compares values only
/// among the few groups, then keys held in the entries themselves, as the
/// record map does. The price is the key copy in each entry, so the indexes
/// whose values are nearly unique (file, owner, client) stay `IndexSet`s.
pub(super) struct GroupSet<F: Family, X: Index<F>>(OrdMap<Owned<F, X>, Group<F>>)
where
    X::Value: ToOwned;

/// The records of one value in a [`GroupSet`], by key.
type Group<F> = OrdMap<<F as Family>::Key, Arc<<F as Family>::Record>>;

impl<F: Family, X: Index<F>> Clone for GroupSet<F, X>
where
    X::Value: ToOwned,
{
    fn clone(&self) -> Self {
        GroupSet(self.0.clone())
    }
}

impl<F: Family, X: Index<F>> Default for GroupSet<F, X>
where
    X::Value: ToOwned,
{
    fn default() -> Self {
        GroupSet(OrdMap::new())
    }
}

impl<F: Family, X: Index<F>> GroupSet<F, X>
where
    X::Value: ToOwned,
    Owned<F, X>: Ord + Clone + Borrow<X::Value>,
{
    /// Adds the record's entry (replacing an entry with its value and key).
    pub(super) fn insert(&mut self, record: &Arc<F::Record>) {
        let (value, key) = (X::value(record), F::key(record));
        if let Some(group) = self.0.get_mut(value) {
            group.insert(key.clone(), record.clone());
        } else {
            self.0
                .insert(value.to_owned(), OrdMap::unit(key.clone(), record.clone()));
        }
    }

    /// Removes the record's entry (matched by value and key), and its
    /// group once empty.
    pub(super) fn remove(&mut self, record: &Arc<F::Record>) {
        let value = X::value(record);
        if let Some(group) = self.0.get_mut(value) {
            group.remove(F::key(record));
            if group.is_empty() {
                self.0.remove(value);
            }
        }
    }

    /// Removes the entries of all `records`, in (value, key) order (it sorts
    /// `records` so), as [`IndexSet::remove_all`] does.
    pub(super) fn remove_all(&mut self, records: &mut [Arc<F::Record>]) {
        sort_in_index_order::<F, X>(records);
        for record in records.iter() {
            self.remove(record);
        }
    }

    /// Appends the entries whose record is not the one stored under its key
    /// or is filed under another value or key (stale), and the records
    /// without an entry here (missing).
    pub(super) fn verify(&self, table: &Table<F>, problems: &mut Vec<Problem>) {
        for (value, group) in self.0.iter() {
            for (key, record) in group.iter() {
                let misfiled = X::value(record) != value.borrow() || F::key(record) != key;
                let detail = match table.live::<X>(record) {
                    Err(e) => e.to_string(),
                    Ok(_) if misfiled => format!(
                        "the entry under {:?}/{key:?} holds a record with {:?}/{:?}",
                        value.borrow(),
                        X::value(record),
                        F::key(record)
                    ),
                    Ok(_) => continue,
                };
                problems.push(Problem {
                    kind: ProblemKind::StaleIndexEntry,
                    location: format!("memory {}/{}/{key:?}", F::NAME, X::NAME),
                    detail,
                });
            }
        }
        for record in table.iter() {
            let filed = self
                .0
                .get(X::value(record))
                .is_some_and(|group| group.contains_key(F::key(record)));
            if !filed {
                problems.push(Problem {
                    kind: ProblemKind::MissingIndexEntry,
                    location: format!("memory {}/{}/{:?}", F::NAME, X::NAME, F::key(record)),
                    detail: format!("the record has no entry under {:?}", X::value(record)),
                });
            }
        }
    }
}

impl<F: Family, X: Index<F>> Scan<F> for GroupSet<F, X>
where
    X::Value: ToOwned,
    Owned<F, X>: Ord + Clone + Borrow<X::Value>,
{
    type X = X;
    fn entries<'a>(
        &'a self,
        lo: Bound<Probe<'a, F, X>>,
        hi: Bound<Probe<'a, F, X>>,
    ) -> impl Iterator<Item = &'a Arc<F::Record>> + 'a {
        // The groups whose value lies between the probes' values; within the
        // first and last of them, the keys the probes' places allow.
        let value_of = |bound: &Bound<Probe<'a, F, X>>| match bound {
            Bound::Included(p) | Bound::Excluded(p) => Bound::Included(p.value),
            Bound::Unbounded => Bound::Unbounded,
        };
        let groups = self.0.range::<_, X::Value>((value_of(&lo), value_of(&hi)));
        groups.flat_map(move |(value, group)| {
            let value: &X::Value = value.borrow();
            let from = key_bound(&lo, value, true);
            let to = key_bound(&hi, value, false);
            let keys = match (from, to) {
                (Some(from), Some(to)) => Some(group.range::<_, F::Key>((from, to))),
                _ => None,
            };
            keys.into_iter().flatten().map(|(_, record)| record)
        })
    }
}

/// The keys of the group of `value` that a probe bound allows (`lower`: the
/// scan's start, else its end), or `None` when it allows none of them.
fn key_bound<'a, F: Family, X: Index<F>>(
    bound: &Bound<Probe<'a, F, X>>,
    value: &X::Value,
    lower: bool,
) -> Option<Bound<&'a F::Key>> {
    let (probe, included) = match bound {
        Bound::Included(p) => (p, true),
        Bound::Excluded(p) => (p, false),
        Bound::Unbounded => return Some(Bound::Unbounded),
    };
    if probe.value != value {
        // The probe's value is beyond this group's: the whole group is inside.
        return Some(Bound::Unbounded);
    }
    match (probe.at, lower) {
        (At::First, true) | (At::Last, false) => Some(Bound::Unbounded),
        (At::Last, true) | (At::First, false) => None,
        (At::Key(key), _) if included => Some(Bound::Included(key)),
        (At::Key(key), _) => Some(Bound::Excluded(key)),
    }
}
