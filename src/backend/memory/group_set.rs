//! [`GroupSet`]: the second kind of secondary index of a [`Table`], for a
//! value that many records share (see the type's docs for why).

use std::borrow::Borrow;
use std::ops::Bound;
use std::sync::Arc;

use imbl::OrdMap;

#[cfg(doc)]
use super::table::IndexSet;
use super::table::{Family, Index, Table};
use crate::verify::{Problem, ProblemKind};

/// The owned form of an index value, the key of a [`GroupSet`]'s groups.
type Owned<F, X> = <<X as Index<F>>::Value as ToOwned>::Owned;

/// A secondary index for a value that many records share (a share name, a
/// server epoch): each value once, with its records by (cluster, key).
///
/// Why a second kind: in an [`IndexSet`] every comparison reads the value and
/// the key through the record pointer. Where most records have one value,
/// the entries of a bulk delete are scattered among many others', and each
/// comparison on the way down to them reads a record that is not in cache:
/// in a store of 1M locks that made the share and epoch indexes cost three
/// times the record map per delete. Here the search compares values only
/// among the few groups, then (cluster, key) pairs held in the entries
/// themselves, as the record map does. The price is that copy in each entry,
/// so the indexes whose values are nearly unique (file, owner, client) stay
/// `IndexSet`s.
///
/// Why the cluster ([`Family::cluster`]): ordered by key alone, a group puts
/// the records that are deleted together (a lock client's, whose lock ids
/// are random) in as many different leaves as there are records, and in a
/// big store every one of those leaves is cold. Ordered by the cluster
/// first, they sit side by side, and a bulk delete walks a few neighbouring
/// leaves, as it does in the client's own index. The price: a scan of a
/// group is in (cluster, key) order, so [`Table::find_grouped`] sorts what
/// it returns by key.
pub(super) struct GroupSet<F: Family, X: Index<F>>(OrdMap<Owned<F, X>, Group<F>>)
where
    X::Value: ToOwned;

/// The records of one value in a [`GroupSet`], by (cluster, key).
type Group<F> = OrdMap<Place<F>, Arc<<F as Family>::Record>>;

/// Where a record sits in its group: its cluster, then its key.
type Place<F> = (u64, <F as Family>::Key);

/// The record's [`Place`].
fn place<F: Family>(record: &F::Record) -> Place<F> {
    (F::cluster(record), F::key(record).clone())
}

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
    /// Adds the record's entry (replacing an entry with its value, cluster and key).
    pub(super) fn insert(&mut self, record: &Arc<F::Record>) {
        let value = X::value(record);
        let place = place::<F>(record);
        if let Some(group) = self.0.get_mut(value) {
            group.insert(place, record.clone());
        } else {
            self.0
                .insert(value.to_owned(), OrdMap::unit(place, record.clone()));
        }
    }

    /// Removes the record's entry (matched by value, cluster and key), and
    /// its group once empty.
    pub(super) fn remove(&mut self, record: &Arc<F::Record>) {
        self.remove_at(X::value(record), &place::<F>(record));
    }

    /// Removes the entry at `place` of the group of `value`, and the group once empty.
    fn remove_at(&mut self, value: &X::Value, place: &Place<F>) {
        if let Some(group) = self.0.get_mut(value) {
            group.remove(place);
            if group.is_empty() {
                self.0.remove(value);
            }
        }
    }

    /// Removes the entries of all `records`, in (value, cluster, key) order,
    /// for the reason [`IndexSet::remove_all`] gives (it sorts a list of
    /// places, so `records` keeps its order).
    pub(super) fn remove_all(&mut self, records: &mut [Arc<F::Record>]) {
        // Each record's place computed once (the cluster is a hash), not per comparison.
        let mut order: Vec<(Place<F>, &Arc<F::Record>)> =
            records.iter().map(|r| (place::<F>(r), r)).collect();
        order.sort_unstable_by(|(a, ra), (b, rb)| {
            X::value(ra).cmp(X::value(rb)).then_with(|| a.cmp(b))
        });
        for (place, record) in &order {
            self.remove_at(X::value(record), place);
        }
    }

    /// The records of the groups whose value lies between `lo` and `hi`, in
    /// (value, cluster, key) order: not key order (see the type's docs).
    pub(super) fn records<'a>(
        &'a self,
        lo: Bound<&'a X::Value>,
        hi: Bound<&'a X::Value>,
    ) -> impl Iterator<Item = &'a Arc<F::Record>> + 'a {
        self.0
            .range::<_, X::Value>((lo, hi))
            .flat_map(|(_, group)| group.values())
    }

    /// Appends the entries whose record is not the one stored under its key
    /// or is filed under another value, cluster or key (stale), and the
    /// records without an entry here (missing).
    pub(super) fn verify(&self, table: &Table<F>, problems: &mut Vec<Problem>) {
        for (value, group) in self.0.iter() {
            for ((cluster, key), record) in group.iter() {
                let misfiled = X::value(record) != value.borrow()
                    || F::key(record) != key
                    || F::cluster(record) != *cluster;
                let detail = match table.live::<X>(record) {
                    Err(e) => e.to_string(),
                    Ok(_) if misfiled => format!(
                        "the entry under {:?}/{cluster:x}/{key:?} holds a record with {:?}/{:x}/{:?}",
                        value.borrow(),
                        X::value(record),
                        F::cluster(record),
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
                .is_some_and(|group| group.contains_key(&place::<F>(record)));
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
