//! [`IdMap`] against `BTreeMap` as the model: every answer, the order, the
//! persistence of clones, and the trie's own invariants after every step.

use std::collections::BTreeMap;
use std::ops::Bound;

use proptest::prelude::*;
use uuid::Uuid;

use super::*;

/// Checks the shape below `slot` (`parent`: the level, prefix and digit it
/// hangs from, which every id below must agree with); returns its entries
/// in the order the structure holds them.
fn check(slot: &Slot<u32>, parent: Option<(u8, u128, usize)>) -> Vec<(Uuid, u32)> {
    let mut out = Vec::new();
    let placed = |id: &Uuid| {
        if let Some((level, prefix, d)) = parent {
            let key = id.as_u128();
            assert_eq!(
                key & above(level),
                prefix & above(level),
                "{id} outside its branch"
            );
            assert_eq!(digit(key, level), d, "{id} under the wrong digit");
        }
    };
    match slot {
        Slot::Empty => {}
        Slot::Leaf { entries, len } => {
            let used = usize::from(*len);
            assert!(
                (1..=LEAF_MAX).contains(&used) && used <= entries.len(),
                "leaf of {used}"
            );
            let room = entries.len();
            assert!(
                room.is_power_of_two() && room >= MIN_ROOM,
                "leaf room {room}"
            );
            assert!(
                room == MIN_ROOM || used > room / 4,
                "leaf of {used} in room {room}"
            );
            assert!(
                entries[used..].iter().all(Option::is_none),
                "a spare entry is used"
            );
            for entry in &entries[..used] {
                let (id, value) = entry.as_ref().expect("a used entry is Some");
                placed(id);
                out.push((*id, *value));
            }
            assert!(out.windows(2).all(|w| w[0].0 < w[1].0), "leaf out of order");
        }
        Slot::Branch(branch) => {
            assert!(
                branch.len > COLLAPSE_AT,
                "a branch of {} not collapsed",
                branch.len
            );
            if let Some((level, _, _)) = parent {
                assert!(branch.level > level, "child branch not deeper");
            }
            for (d, kid) in branch.kids.iter().enumerate() {
                out.extend(check(kid, Some((branch.level, branch.prefix, d))));
            }
            out.iter().for_each(|(id, _)| placed(id));
            assert_eq!(branch.len, out.len(), "branch count");
        }
    }
    out
}

fn check_against(map: &IdMap<u32>, model: &BTreeMap<Uuid, u32>) {
    let stored = check(&map.root, None);
    let expected: Vec<(Uuid, u32)> = model.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(stored, expected, "structure");
    assert_eq!(map.len(), model.len());
    let iterated: Vec<(Uuid, u32)> = map.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(iterated, expected, "iteration");
}

/// The prefix the clustered ids share (as time-ordered ids do).
const CLUSTER: u128 = 0x0190_abcd_u128 << 96;

/// Ids of several shapes: random, small integers, a cluster sharing a long
/// prefix, ids that part from the cluster at various depths above or below
/// it (so a bound or an insert meets a compressed branch from either side),
/// and ids that differ only in their last bits.
fn id() -> impl Strategy<Value = Uuid> {
    prop_oneof![
        1 => any::<u128>().prop_map(Uuid::from_u128),
        1 => (0u128..200).prop_map(Uuid::from_u128),
        3 => (0u128..300).prop_map(|low| Uuid::from_u128(CLUSTER | (low << 40))),
        1 => (0u32..88, any::<bool>()).prop_map(|(bit, up)| {
            let parted = CLUSTER ^ (1u128 << (40 + bit));
            Uuid::from_u128(if up { parted } else { parted.wrapping_sub(1) })
        }),
        1 => (0u128..64).prop_map(|low| Uuid::from_u128(u128::MAX - low)),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Insert(Uuid, u32),
    Remove(Uuid),
    /// Removes a stored id (the `Index` picks one), so maps also shrink.
    RemovePresent(prop::sample::Index),
    Get(Uuid),
    Range(Bound<Uuid>, Bound<Uuid>),
    /// Keep a clone; later steps must not change it.
    Snapshot,
}

fn bound() -> impl Strategy<Value = Bound<Uuid>> {
    prop_oneof![
        id().prop_map(Bound::Included),
        id().prop_map(Bound::Excluded),
        Just(Bound::Unbounded),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (id(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
        2 => id().prop_map(Op::Remove),
        4 => any::<prop::sample::Index>().prop_map(Op::RemovePresent),
        2 => id().prop_map(Op::Get),
        2 => (bound(), bound()).prop_map(|(lo, hi)| Op::Range(lo, hi)),
        1 => Just(Op::Snapshot),
    ]
}

fn in_range(id: &Uuid, lo: &Bound<Uuid>, hi: &Bound<Uuid>) -> bool {
    let above_lo = match lo {
        Bound::Included(lo) => id >= lo,
        Bound::Excluded(lo) => id > lo,
        Bound::Unbounded => true,
    };
    let below_hi = match hi {
        Bound::Included(hi) => id <= hi,
        Bound::Excluded(hi) => id < hi,
        Bound::Unbounded => true,
    };
    above_lo && below_hi
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn behaves_as_an_ordered_map(ops in prop::collection::vec(op(), 1..400)) {
        let mut map = IdMap::default();
        let mut model = BTreeMap::new();
        let mut snapshots: Vec<(IdMap<u32>, BTreeMap<Uuid, u32>)> = Vec::new();
        for op in ops {
            match op {
                Op::Insert(k, v) => prop_assert_eq!(map.insert(k, v), model.insert(k, v)),
                Op::Remove(k) => prop_assert_eq!(map.remove(&k), model.remove(&k)),
                Op::RemovePresent(pick) => {
                    if !model.is_empty() {
                        let k = *model.keys().nth(pick.index(model.len())).expect("in range");
                        prop_assert_eq!(map.remove(&k), model.remove(&k));
                    }
                }
                Op::Get(k) => prop_assert_eq!(map.get(&k), model.get(&k)),
                Op::Range(lo, hi) => {
                    let got: Vec<(Uuid, u32)> = map
                        .range(lo.as_ref(), hi.as_ref())
                        .map(|(k, v)| (*k, *v))
                        .collect();
                    let want: Vec<(Uuid, u32)> = model
                        .iter()
                        .filter(|(k, _)| in_range(k, &lo, &hi))
                        .map(|(k, v)| (*k, *v))
                        .collect();
                    prop_assert_eq!(got, want);
                }
                Op::Snapshot => snapshots.push((map.clone(), model.clone())),
            }
            check_against(&map, &model);
        }
        for (snapshot, model) in &snapshots {
            check_against(snapshot, model);
        }
    }
}

/// One family of ids per case: `n << shift` over a base, so up to 80 ids
/// share every bit above `shift` and compressed branches form at any level.
fn family() -> impl Strategy<Value = Vec<Uuid>> {
    (any::<u128>(), 0u32..=122, 1u128..80).prop_map(|(base, shift, n)| {
        let mask = 127u128 << shift;
        (0..n)
            .map(|i| Uuid::from_u128((base & !mask) | (i << shift)))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn grows_and_empties_at_any_depth(
        ids in family(),
        seed in any::<u64>(),
        bounds in prop::collection::vec((bound(), bound()), 4),
    ) {
        let mut map = IdMap::default();
        let mut model = BTreeMap::new();
        let mut snapshots = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            snapshots.push((map.clone(), model.clone()));
            prop_assert_eq!(map.insert(*id, i as u32), model.insert(*id, i as u32));
            check_against(&map, &model);
        }
        // Bounds of the strategy's, and bounds just beside stored ids, which
        // fall between the family's compressed branches.
        let beside = |id: &Uuid, by: i8| Uuid::from_u128(id.as_u128().wrapping_add_signed(i128::from(by)));
        let mut bounds = bounds;
        for id in ids.iter().step_by(7) {
            bounds.push((Bound::Excluded(beside(id, -1)), Bound::Included(beside(id, 1))));
            bounds.push((Bound::Included(beside(id, 1)), Bound::Unbounded));
            bounds.push((Bound::Unbounded, Bound::Excluded(beside(id, -1))));
        }
        for (lo, hi) in &bounds {
            let got: Vec<Uuid> = map.range(lo.as_ref(), hi.as_ref()).map(|(k, _)| *k).collect();
            let want: Vec<Uuid> = model.keys().filter(|k| in_range(k, lo, hi)).copied().collect();
            prop_assert_eq!(got, want);
        }
        // Empty it in an order of its own, keeping a clone before each removal.
        let mut doomed: Vec<Uuid> = model.keys().copied().collect();
        doomed.sort_by_key(|id| (id.as_u128() ^ u128::from(seed)).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835));
        for id in doomed {
            snapshots.push((map.clone(), model.clone()));
            prop_assert_eq!(map.remove(&id), model.remove(&id));
            check_against(&map, &model);
        }
        prop_assert!(matches!(map.root, Slot::Empty));
        for (snapshot, model) in &snapshots {
            check_against(snapshot, model);
        }
    }
}

#[test]
fn removing_an_absent_id_copies_nothing() {
    let mut map = IdMap::default();
    for i in 0..=40u128 {
        map.insert(Uuid::from_u128(i << 64), 0u32);
    }
    let before = map.clone();
    for absent in [1u128, (41 << 64), u128::MAX, (3 << 64) | 1] {
        assert_eq!(map.remove(&Uuid::from_u128(absent)), None);
    }
    let (Slot::Branch(now), Slot::Branch(then)) = (&map.root, &before.root) else {
        panic!("41 ids need a branch");
    };
    assert!(Arc::ptr_eq(now, then), "a miss copied the shared root");
}

#[test]
fn grows_and_shrinks_through_every_shape() {
    let mut map = IdMap::default();
    let ids: Vec<Uuid> = (0..5_000u64)
        .map(|i| {
            Uuid::from_u128(u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835))
        })
        .collect();
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(map.insert(*id, i as u32), None);
    }
    let before = map.clone();
    let mut model: BTreeMap<Uuid, u32> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, i as u32))
        .collect();
    check_against(&map, &model);
    assert!(
        matches!(map.root, Slot::Branch(_)),
        "5,000 ids need branches"
    );
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(map.remove(id), Some(i as u32));
        model.remove(id);
        if i % 500 == 0 {
            check_against(&map, &model);
        }
    }
    assert!(
        matches!(map.root, Slot::Empty),
        "an emptied map keeps no nodes"
    );
    assert_eq!(map.len(), 0);
    // The clone taken before the removals still holds every id.
    let model: BTreeMap<Uuid, u32> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, i as u32))
        .collect();
    check_against(&before, &model);
}

#[test]
fn ids_sharing_all_but_the_last_bits_make_no_chain() {
    let mut map = IdMap::default();
    for low in 0..100u128 {
        map.insert(Uuid::from_u128((7u128 << 100) | low), 0u32);
    }
    let Slot::Branch(branch) = &map.root else {
        panic!("100 ids need a branch");
    };
    // They first differ in the last two digits, so the root branch sits there.
    assert_eq!(
        branch.level,
        first_difference(7u128 << 100, (7u128 << 100) | 99)
    );
    assert!(branch.level >= 20);
}
