//! [`RecordMap`]: what a [`Table`](super::table::Table) keeps its records in,
//! by key. A family chooses one ([`Family::Map`](super::table::Family::Map)):
//! an `imbl::OrdMap` for keys with structure (file handles, names), an
//! [`IdMap`] for random 128-bit ids, whose scattered removals it makes cheap
//! in a big store (see its module docs).

use std::ops::Bound;

use imbl::OrdMap;
use uuid::Uuid;

use super::id_map::IdMap;

/// A persistent map (O(1) clones that share their nodes) iterated in key order.
pub(super) trait RecordMap<K: 'static, V: 'static>:
    Clone + Default + Send + Sync + 'static
{
    /// Number of entries.
    fn len(&self) -> usize;
    /// The value under `key`.
    fn get(&self, key: &K) -> Option<&V>;
    /// Inserts or replaces; returns the value replaced.
    fn insert(&mut self, key: K, value: V) -> Option<V>;
    /// Removes `key`; returns its value.
    fn remove(&mut self, key: &K) -> Option<V>;
    /// The values with a key between `lo` and `hi`, in key order.
    fn range<'a>(&'a self, lo: Bound<&'a K>, hi: Bound<&'a K>) -> impl Iterator<Item = &'a V> + 'a;
    /// Reads the way to each of `keys` ahead of their removal, where that
    /// makes the removals cheaper (a bulk delete calls it first). None by
    /// default: in an `imbl::OrdMap` it did not pay (session 14).
    fn warm<'k>(&self, _keys: impl Iterator<Item = &'k K>)
    where
        K: 'k,
    {
    }
}

impl<K, V> RecordMap<K, V> for OrdMap<K, V>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn len(&self) -> usize {
        OrdMap::len(self)
    }
    fn get(&self, key: &K) -> Option<&V> {
        OrdMap::get(self, key)
    }
    fn insert(&mut self, key: K, value: V) -> Option<V> {
        OrdMap::insert(self, key, value)
    }
    fn remove(&mut self, key: &K) -> Option<V> {
        OrdMap::remove(self, key)
    }
    fn range<'a>(&'a self, lo: Bound<&'a K>, hi: Bound<&'a K>) -> impl Iterator<Item = &'a V> + 'a {
        OrdMap::range::<_, K>(self, (lo, hi)).map(|(_, value)| value)
    }
}

impl<V> RecordMap<Uuid, V> for IdMap<V>
where
    V: Clone + Send + Sync + 'static,
{
    fn len(&self) -> usize {
        IdMap::len(self)
    }
    fn get(&self, key: &Uuid) -> Option<&V> {
        IdMap::get(self, key)
    }
    fn insert(&mut self, key: Uuid, value: V) -> Option<V> {
        IdMap::insert(self, key, value)
    }
    fn remove(&mut self, key: &Uuid) -> Option<V> {
        IdMap::remove(self, key)
    }
    fn range<'a>(
        &'a self,
        lo: Bound<&'a Uuid>,
        hi: Bound<&'a Uuid>,
    ) -> impl Iterator<Item = &'a V> + 'a {
        IdMap::range(self, lo, hi).map(|(_, value)| value)
    }
    fn warm<'k>(&self, keys: impl Iterator<Item = &'k Uuid>) {
        for key in keys {
            IdMap::warm(self, key);
        }
    }
}
