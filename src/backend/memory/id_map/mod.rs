//! [`IdMap`]: the record map of the families keyed by a 128-bit id (locks,
//! opens, leases, delegations, waiters), a persistent radix trie in id order.
//!
//! Why not `imbl::OrdMap`, as the other families use: ids are random, so a
//! bulk delete (a client's 1,000 locks) removes keys scattered over the whole
//! map, and in a store of a million records nearly every removal lands in a
//! node no other removal touched, out of the CPU caches. A 16-way B-tree
//! reaches it through six levels of nodes, each searched by comparing keys,
//! several cache lines per level; issue 20 measured that as the only part
//! of a cleanup that grows with the store (docs/performance.md, sessions 8,
//! 13 and 15). Here each level is one array index computed from the id's
//! next six bits, with no keys to compare, and a leaf is a single
//! allocation of at most [`LEAF_MAX`] entries: at 1M records a removal
//! passes three 64-way levels, the first two always in cache, and reads
//! one small leaf. 1,000 removals among 1M locks: 1.0–1.1 ms in the
//! `OrdMap`, 0.45–0.55 ms here, on the bench machine.
//!
//! Persistence is by `Arc` as in `imbl`: a clone is O(1) and shares every
//! node; a write copies the nodes on its path that another clone still
//! holds (`Arc::make_mut`) and changes the others in place.
//!
//! Ids that share long prefixes (time-ordered UUIDv7, small integers) would
//! make chains of one-child branches, so a branch records the level it
//! sorts by (path compression): a branch is made where its ids first
//! differ. Removals may later leave it fewer children, and its `prefix` an
//! id no longer stored; what the code relies on still holds: every id
//! below shares the prefix's bits above the branch's level.

use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::Arc;

use uuid::Uuid;

#[cfg(test)]
mod tests;

/// Bits of the id each level sorts by: 64-way branches.
const BITS: u32 = 6;
/// Children per branch.
const WIDTH: usize = 1 << BITS;
/// The most entries a leaf holds; one more and it becomes a branch.
const LEAF_MAX: usize = 32;
/// A branch whose entries fall to this many becomes a leaf again, so a
/// map that shrank does not keep the branches it grew.
const COLLAPSE_AT: usize = LEAF_MAX / 4;
/// The least room a leaf has. Leaves are small (at 1M ids a leaf holds
/// about four), and a leaf that is rebuilt whenever it grows or shrinks by
/// one frees a small block each time: glibc gathers those up on the next
/// large allocation (`malloc_consolidate`), which in a bulk delete cost more
/// than the rebuilds themselves. Eight entries (208 bytes) rarely move.
const MIN_ROOM: usize = 8;

/// A leaf's slot: the entries in use come first, in id order, then `None`s
/// (spare room, so an insert into a leaf nobody else holds does not
/// reallocate it).
type Entry<V> = Option<(Uuid, V)>;

/// What a branch's child (or the root) is.
#[derive(Clone)]
enum Slot<V> {
    /// No ids here.
    Empty,
    /// Up to [`LEAF_MAX`] entries: `entries[..len]` are `Some`, in id order.
    Leaf { entries: Arc<[Entry<V>]>, len: u8 },
    /// More than a leaf holds.
    Branch(Arc<Branch<V>>),
}

/// A node whose children split its ids by one digit (six bits) of the id.
#[derive(Clone)]
struct Branch<V> {
    /// Which digit the children are chosen by (0: the id's top six bits).
    level: u8,
    /// One id below this branch: all of them share its digits above `level`.
    prefix: u128,
    /// Entries below this branch.
    len: usize,
    /// The children, by digit.
    kids: [Slot<V>; WIDTH],
}

/// A persistent map from id to `V`, iterated in id order (see the module docs).
#[derive(Clone)]
pub(super) struct IdMap<V> {
    root: Slot<V>,
    len: usize,
}

impl<V> Default for IdMap<V> {
    fn default() -> Self {
        IdMap {
            root: Slot::Empty,
            len: 0,
        }
    }
}

/// Digit `level` of `id`: the six bits below the first `6 · level`.
fn digit(id: u128, level: u8) -> usize {
    // level ≤ 21 (22 digits cover 128 bits), so the shift stays below 128.
    ((id << (BITS * u32::from(level))) >> (128 - BITS)) as usize
}

/// The bits above digit `level`: those every id below a branch at `level` shares.
fn above(level: u8) -> u128 {
    match level {
        0 => 0,
        _ => !0u128 << (128 - BITS * u32::from(level)),
    }
}

/// The first digit in which two different ids differ.
fn first_difference(a: u128, b: u128) -> u8 {
    ((a ^ b).leading_zeros() / BITS) as u8
}

/// A leaf's buffer for `used` entries, from `entries` (exactly `used`
/// `Some`s), with room to the next power of two (at least [`MIN_ROOM`]).
/// One allocation: the iterator's length is known, so `Arc` sizes it at once.
fn buffer<V>(used: usize, entries: impl Iterator<Item = Entry<V>>) -> Arc<[Entry<V>]> {
    let room = used.next_power_of_two().max(MIN_ROOM);
    entries
        .chain(std::iter::repeat_with(|| None))
        .take(room)
        .collect()
}

/// Where `id` is among a leaf's used entries (as `binary_search`).
fn search<V>(used: &[Entry<V>], id: &Uuid) -> Result<usize, usize> {
    used.binary_search_by(|entry| entry.as_ref().map_or(Ordering::Greater, |(k, _)| k.cmp(id)))
}

impl<V: Clone> Slot<V> {
    /// A leaf of `items` (in id order, at most [`LEAF_MAX`]), with room to
    /// the next power of two, at least [`MIN_ROOM`] (see [`buffer`]).
    fn leaf(items: Vec<(Uuid, V)>) -> Slot<V> {
        if items.is_empty() {
            return Slot::Empty;
        }
        let len = items.len() as u8;
        Slot::Leaf {
            entries: buffer(items.len(), items.into_iter().map(Some)),
            len,
        }
    }

    /// A branch or leaf of `items` (in id order, more than [`LEAF_MAX`]
    /// allowed): a branch at the digit where the first and last part.
    fn node(items: Vec<(Uuid, V)>) -> Slot<V> {
        let (Some(first), Some(last)) = (items.first(), items.last()) else {
            return Slot::Empty;
        };
        if items.len() <= LEAF_MAX {
            return Slot::leaf(items);
        }
        let prefix = first.0.as_u128();
        let level = first_difference(prefix, last.0.as_u128());
        let mut branch = Branch {
            level,
            prefix,
            len: items.len(),
            kids: std::array::from_fn(|_| Slot::Empty),
        };
        // The items are in id order, so each child's are one run.
        let mut run: Vec<(Uuid, V)> = Vec::new();
        let mut run_digit = digit(prefix, level);
        for item in items {
            let d = digit(item.0.as_u128(), level);
            if d != run_digit {
                branch.kids[run_digit] = Slot::node(std::mem::take(&mut run));
                run_digit = d;
            }
            run.push(item);
        }
        branch.kids[run_digit] = Slot::node(run);
        Slot::Branch(Arc::new(branch))
    }

    /// Entries below this slot.
    fn len(&self) -> usize {
        match self {
            Slot::Empty => 0,
            Slot::Leaf { len, .. } => usize::from(*len),
            Slot::Branch(branch) => branch.len,
        }
    }

    /// Appends every entry below `self` to `out`, in id order: moved out of
    /// the nodes only this map holds, cloned from those it shares.
    fn drain_into(self, out: &mut Vec<(Uuid, V)>) {
        match self {
            Slot::Empty => {}
            Slot::Leaf { mut entries, len } => {
                let used = usize::from(len);
                match Arc::get_mut(&mut entries) {
                    Some(mine) => out.extend(mine[..used].iter_mut().filter_map(Option::take)),
                    None => out.extend(entries[..used].iter().flatten().cloned()),
                }
            }
            Slot::Branch(branch) => match Arc::try_unwrap(branch) {
                Ok(branch) => branch.kids.into_iter().for_each(|kid| kid.drain_into(out)),
                Err(shared) => shared
                    .kids
                    .iter()
                    .for_each(|kid| kid.clone().drain_into(out)),
            },
        }
    }

    /// Inserts or replaces; returns the value replaced.
    fn insert(&mut self, id: Uuid, value: V) -> Option<V> {
        match self {
            Slot::Empty => {
                *self = Slot::leaf(vec![(id, value)]);
                None
            }
            Slot::Branch(branch) => {
                let key = id.as_u128();
                if (key ^ branch.prefix) & above(branch.level) != 0 {
                    // The id parts from this branch's ids above its level: a
                    // new branch where they part, holding both.
                    let level = first_difference(key, branch.prefix);
                    let old_digit = digit(branch.prefix, level);
                    let old = std::mem::replace(self, Slot::Empty);
                    let mut parent = Branch {
                        level,
                        prefix: key,
                        len: old.len() + 1,
                        kids: std::array::from_fn(|_| Slot::Empty),
                    };
                    parent.kids[old_digit] = old;
                    parent.kids[digit(key, level)] = Slot::leaf(vec![(id, value)]);
                    *self = Slot::Branch(Arc::new(parent));
                    return None;
                }
                let branch = Arc::make_mut(branch);
                let replaced = branch.kids[digit(key, branch.level)].insert(id, value);
                if replaced.is_none() {
                    branch.len += 1;
                }
                replaced
            }
            Slot::Leaf { entries, len } => {
                let used = usize::from(*len);
                match search(&entries[..used], &id) {
                    Ok(i) => match &mut Arc::make_mut(entries)[i] {
                        Some((_, old)) => Some(std::mem::replace(old, value)),
                        None => None, // unreachable: the used entries are `Some`
                    },
                    Err(i) if used < entries.len() => {
                        let entries = Arc::make_mut(entries);
                        entries[i..=used].rotate_right(1);
                        entries[i] = Some((id, value));
                        *len += 1;
                        None
                    }
                    Err(i) if used < LEAF_MAX => {
                        // Full: a leaf with twice the room, the entries moved
                        // over (from a copy if another clone holds this leaf).
                        let (below, above) = Arc::make_mut(entries)[..used].split_at_mut(i);
                        let take = |e: &mut Entry<V>| e.take();
                        let moved = below.iter_mut().map(take);
                        let rest = above.iter_mut().map(take);
                        let grown = buffer(
                            used + 1,
                            moved.chain(std::iter::once(Some((id, value)))).chain(rest),
                        );
                        *entries = grown;
                        *len += 1;
                        None
                    }
                    Err(i) => {
                        // Full at the most a leaf holds: a branch.
                        let mut items = Vec::with_capacity(used + 1);
                        std::mem::replace(self, Slot::Empty).drain_into(&mut items);
                        items.insert(i, (id, value));
                        *self = Slot::node(items);
                        None
                    }
                }
            }
        }
    }

    /// Removes `id`; returns its value.
    fn remove(&mut self, id: &Uuid) -> Option<V> {
        match self {
            Slot::Empty => None,
            Slot::Branch(branch) => {
                let key = id.as_u128();
                if (key ^ branch.prefix) & above(branch.level) != 0 {
                    return None; // not below this branch
                }
                let branch = Arc::make_mut(branch);
                let removed = branch.kids[digit(key, branch.level)].remove(id)?;
                branch.len -= 1;
                if branch.len <= COLLAPSE_AT {
                    let mut items = Vec::with_capacity(branch.len);
                    std::mem::replace(self, Slot::Empty).drain_into(&mut items);
                    *self = Slot::leaf(items);
                }
                Some(removed)
            }
            Slot::Leaf { entries, len } => {
                let used = usize::from(*len);
                let i = search(&entries[..used], id).ok()?;
                if used == 1 || (entries.len() > MIN_ROOM && used - 1 <= entries.len() / 4) {
                    // Empty, or a quarter full or less: none, or a smaller leaf.
                    let mut items = Vec::with_capacity(used);
                    std::mem::replace(self, Slot::Empty).drain_into(&mut items);
                    let (_, removed) = items.remove(i);
                    *self = Slot::leaf(items);
                    return Some(removed);
                }
                let entries = Arc::make_mut(entries);
                let removed = entries[i].take();
                entries[i..used].rotate_left(1);
                *len -= 1;
                removed.map(|(_, value)| value)
            }
        }
    }
}

impl<V: Clone> IdMap<V> {
    /// Number of entries.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The value under `id`.
    pub(super) fn get(&self, id: &Uuid) -> Option<&V> {
        let key = id.as_u128();
        let mut slot = &self.root;
        loop {
            match slot {
                Slot::Empty => return None,
                // No prefix check: the leaf compares whole ids.
                Slot::Branch(branch) => slot = &branch.kids[digit(key, branch.level)],
                Slot::Leaf { entries, len } => {
                    let used = &entries[..usize::from(*len)];
                    let i = search(used, id).ok()?;
                    return used[i].as_ref().map(|(_, value)| value);
                }
            }
        }
    }

    /// Reads the way to `id`, so that its removal right after finds it in
    /// cache. A bulk delete calls this for all its ids, then removes them:
    /// the reads of different ids do not wait for one another, so the CPU
    /// fetches many paths at once, where each removal (whose `Arc::make_mut`
    /// is an atomic read-modify-write that orders memory) waits for its
    /// own. Measured on 1,000 removals among 1M ids: 0.6–0.8 ms without this
    /// pass, 0.45–0.55 ms with it, the pass included (docs/performance.md,
    /// session 15).
    pub(super) fn warm(&self, id: &Uuid) {
        std::hint::black_box(self.get(id));
    }

    /// Inserts or replaces the value under `id`; returns the one replaced.
    pub(super) fn insert(&mut self, id: Uuid, value: V) -> Option<V> {
        let replaced = self.root.insert(id, value);
        if replaced.is_none() {
            self.len += 1;
        }
        replaced
    }

    /// Removes `id`; returns its value.
    pub(super) fn remove(&mut self, id: &Uuid) -> Option<V> {
        // Looked up first: the removal copies each node on its path that a
        // clone shares before it reaches the leaf, which for an absent id
        // would be copies for nothing. (In a bulk delete the path is in
        // cache by now: `warm`.)
        self.get(id)?;
        let removed = self.root.remove(id)?;
        self.len -= 1;
        Some(removed)
    }

    /// The entries with an id between `lo` and `hi`, in id order.
    pub(super) fn range<'a>(
        &'a self,
        lo: Bound<&Uuid>,
        hi: Bound<&'a Uuid>,
    ) -> impl Iterator<Item = (&'a Uuid, &'a V)> + 'a {
        self.seek(lo).take_while(move |(id, _)| match hi {
            Bound::Included(hi) => *id <= hi,
            Bound::Excluded(hi) => *id < hi,
            Bound::Unbounded => true,
        })
    }

    /// Every entry, in id order.
    #[cfg(test)]
    pub(super) fn iter(&self) -> Iter<'_, V> {
        self.seek(Bound::Unbounded)
    }

    /// An iterator from the first entry not below `lo`.
    fn seek(&self, lo: Bound<&Uuid>) -> Iter<'_, V> {
        let mut iter = Iter {
            stack: Vec::new(),
            leaf: [].iter(),
        };
        let (id, inclusive) = match lo {
            Bound::Unbounded => {
                iter.enter(&self.root);
                return iter;
            }
            Bound::Included(id) => (id, true),
            Bound::Excluded(id) => (id, false),
        };
        let key = id.as_u128();
        let mut slot = &self.root;
        loop {
            match slot {
                Slot::Empty => return iter,
                Slot::Leaf { entries, len } => {
                    let used = &entries[..usize::from(*len)];
                    let start = match search(used, id) {
                        Ok(i) if !inclusive => i + 1,
                        Ok(i) | Err(i) => i,
                    };
                    iter.leaf = used[start..].iter();
                    return iter;
                }
                Slot::Branch(branch) => {
                    let mask = above(branch.level);
                    match (key & mask).cmp(&(branch.prefix & mask)) {
                        // Every id below the branch is above the bound.
                        Ordering::Less => {
                            iter.stack.push(branch.kids.iter());
                            return iter;
                        }
                        // Every one is below it.
                        Ordering::Greater => return iter,
                        Ordering::Equal => {
                            let d = digit(key, branch.level);
                            iter.stack.push(branch.kids[d + 1..].iter());
                            slot = &branch.kids[d];
                        }
                    }
                }
            }
        }
    }
}

/// An [`IdMap`]'s entries in id order.
pub(super) struct Iter<'a, V> {
    /// The children still to visit, the innermost branch's last.
    stack: Vec<std::slice::Iter<'a, Slot<V>>>,
    /// The rest of the current leaf's used entries.
    leaf: std::slice::Iter<'a, Entry<V>>,
}

impl<'a, V> Iter<'a, V> {
    fn enter(&mut self, slot: &'a Slot<V>) {
        match slot {
            Slot::Empty => {}
            Slot::Leaf { entries, len } => self.leaf = entries[..usize::from(*len)].iter(),
            Slot::Branch(branch) => self.stack.push(branch.kids.iter()),
        }
    }
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = (&'a Uuid, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(Some((id, value))) = self.leaf.next() {
                return Some((id, value));
            }
            let kids = self.stack.last_mut()?;
            match kids.next() {
                Some(slot) => self.enter(slot),
                None => {
                    self.stack.pop();
                }
            }
        }
    }
}
