//! The lock model, written only against DESIGN.md's public API.

use fsmeta::*;
use proptest::prelude::*;
use uuid::Uuid;

fn r(offset: u64, length: u64) -> ByteRange {
    ByteRange { offset, length }
}

/// The u128 reference: inclusive last byte without saturation, clamped to u64::MAX.
fn ref_last(range: ByteRange) -> u128 {
    if range.length == 0 || range.length == u64::MAX {
        u64::MAX as u128
    } else {
        (range.offset as u128 + range.length as u128 - 1).min(u64::MAX as u128)
    }
}

#[test]
fn byte_range_edges() {
    assert_eq!(r(0, 0).last(), u64::MAX, "length 0 reaches EOF");
    assert_eq!(r(10, 1).last(), 10);
    assert_eq!(r(u64::MAX, 1).last(), u64::MAX);
    assert_eq!(r(u64::MAX, 0).last(), u64::MAX);
    assert_eq!(
        r(50, u64::MAX).last(),
        u64::MAX,
        "all-ones length reaches EOF from any offset"
    );
    assert_eq!(r(0, u64::MAX).last(), u64::MAX, "even from offset 0");
    assert!(r(0, u64::MAX).contains(&r(u64::MAX, 1)));
    assert_eq!(
        r(1, u64::MAX - 1).last(),
        u64::MAX - 1,
        "one byte short of all-ones is not EOF"
    );
    assert!(r(50, u64::MAX).overlaps(&r(100, 10)));
    assert!(r(50, u64::MAX).contains(&r(100, 10)));
    assert!(r(u64::MAX, 1).overlaps(&r(0, 0)));
    assert!(r(0, 0).contains(&r(u64::MAX, 1)));
    assert!(
        !r(0, 10).overlaps(&r(10, 5)),
        "[0,10) and [10,15) only touch"
    );
    assert!(r(0, 11).overlaps(&r(10, 5)));
    assert!(!r(u64::MAX - 1, 1).overlaps(&r(u64::MAX, 1)));
    assert!(!r(5, 1).contains(&r(5, 2)));
}

fn lock(
    owner: &str,
    client: &str,
    range: ByteRange,
    lock_type: LockType,
    deny: ShareReservation,
) -> EnhancedLock {
    EnhancedLock {
        id: Uuid::new_v4(),
        owner: LockOwner {
            owner_id: owner.into(),
            client_id: client.into(),
            share_name: "s".into(),
        },
        file: FileHandle::new(*b"file").unwrap(),
        range,
        lock_type,
        share_reservation: deny,
        acquired_at: Timestamp::from_micros(0),
        flavor: fsmeta::LockFlavor::Posix,
    }
}

fn conflict_both_ways(a: &EnhancedLock, b: &EnhancedLock) -> bool {
    let (ab, ba) = (a.conflicts_with(b), b.conflicts_with(a));
    assert_eq!(ab, ba, "conflicts_with is symmetric: {a:?} vs {b:?}");
    ab
}

#[test]
fn byte_range_conflict_rules() {
    use LockType::*;
    use ShareReservation::None as NoDeny;
    let cases = [
        (Shared, Shared, r(0, 10), r(5, 10), false),
        (Shared, Exclusive, r(0, 10), r(5, 10), true),
        (Exclusive, Shared, r(0, 10), r(5, 10), true),
        (Exclusive, Exclusive, r(0, 10), r(5, 10), true),
        (Exclusive, Exclusive, r(0, 10), r(10, 10), false),
        (Exclusive, Exclusive, r(50, u64::MAX), r(100, 10), true),
        (Exclusive, Exclusive, r(u64::MAX, 1), r(0, 0), true),
    ];
    for (ta, tb, ra, rb, expected) in cases {
        let a = lock("o1", "c1", ra, ta, NoDeny);
        let b = lock("o2", "c1", rb, tb, NoDeny);
        assert_eq!(
            conflict_both_ways(&a, &b),
            expected,
            "{ta:?} {ra:?} vs {tb:?} {rb:?}"
        );
    }
}

#[test]
fn same_owner_and_other_files_never_conflict() {
    let a = lock(
        "o",
        "c",
        r(0, 0),
        LockType::Exclusive,
        ShareReservation::DenyAll,
    );
    let b = lock(
        "o",
        "c",
        r(0, 0),
        LockType::Exclusive,
        ShareReservation::DenyAll,
    );
    assert!(
        !conflict_both_ways(&a, &b),
        "an owner never conflicts with itself"
    );
    let other_client = lock(
        "o",
        "c2",
        r(0, 0),
        LockType::Exclusive,
        ShareReservation::None,
    );
    assert!(
        conflict_both_ways(&a, &other_client),
        "same owner id on another client is another owner"
    );
    let mut elsewhere = lock(
        "x",
        "y",
        r(0, 0),
        LockType::Exclusive,
        ShareReservation::DenyAll,
    );
    elsewhere.file = FileHandle::new(*b"other").unwrap();
    assert!(
        !conflict_both_ways(&a, &elsewhere),
        "locks on different files never conflict"
    );
}

#[test]
fn share_reservation_rules_ignore_ranges() {
    use LockType::*;
    use ShareReservation::*;
    // Disjoint ranges, so only the deny mode can cause a conflict.
    let cases = [
        (DenyRead, Shared, true),
        (DenyRead, Exclusive, false),
        (DenyWrite, Shared, false),
        (DenyWrite, Exclusive, true),
        (DenyAll, Shared, true),
        (DenyAll, Exclusive, true),
        (None, Shared, false),
        (None, Exclusive, false),
    ];
    for (deny, other_type, expected) in cases {
        let holder = lock("o1", "c1", r(0, 1), Shared, deny);
        let other = lock("o2", "c2", r(100, 1), other_type, None);
        assert_eq!(
            conflict_both_ways(&holder, &other),
            expected,
            "{deny:?} vs {other_type:?}"
        );
    }
}

#[test]
fn persisted_round_trip_and_share_argument_wins() {
    let enhanced = lock(
        "o",
        "c",
        r(7, 0),
        LockType::Shared,
        ShareReservation::DenyWrite,
    );
    let persisted = PersistedLock::from_enhanced(&enhanced, "s", u64::MAX);
    assert_eq!(persisted.server_epoch, u64::MAX);
    assert_eq!((persisted.offset, persisted.length), (7, 0));
    assert_eq!(persisted.to_enhanced(), enhanced);
    let renamed = PersistedLock::from_enhanced(&enhanced, "other-share", 1);
    assert_eq!(
        renamed.share_name, "other-share",
        "the share_name argument wins"
    );
    assert_eq!(renamed.to_enhanced().owner.share_name, "other-share");
}

#[test]
fn file_handle_limits() {
    assert!(matches!(
        FileHandle::new(Vec::new()),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        FileHandle::new(vec![0; 129]),
        Err(Error::Invalid(_))
    ));
    assert_eq!(
        FileHandle::new(vec![0xab; 128]).unwrap().as_bytes().len(),
        128
    );
    assert_eq!(
        FileHandle::new([0u8, 1, 0xff]).unwrap().as_bytes(),
        &[0, 1, 0xff]
    );
}

fn any_range() -> impl Strategy<Value = ByteRange> {
    let edge = prop_oneof![
        Just(0u64),
        Just(1),
        Just(u64::MAX - 1),
        Just(u64::MAX),
        Just(1 << 63),
        0..200u64,
        any::<u64>()
    ];
    (edge.clone(), edge).prop_map(|(offset, length)| ByteRange { offset, length })
}

proptest! {
    #[test]
    fn last_agrees_with_u128_reference(a in any_range()) {
        prop_assert_eq!(a.last() as u128, ref_last(a));
    }

    #[test]
    fn overlap_is_symmetric_and_matches_reference(a in any_range(), b in any_range()) {
        let reference = (a.offset as u128) <= ref_last(b) && (b.offset as u128) <= ref_last(a);
        prop_assert_eq!(a.overlaps(&b), reference);
        prop_assert_eq!(a.overlaps(&b), b.overlaps(&a));
    }

    #[test]
    fn contains_matches_reference_and_implies_overlap(a in any_range(), b in any_range()) {
        let reference = a.offset <= b.offset && ref_last(b) <= ref_last(a);
        prop_assert_eq!(a.contains(&b), reference);
        if a.contains(&b) {
            prop_assert!(a.overlaps(&b));
        }
        prop_assert!(a.contains(&a));
    }
}

/// Small ranges near both ends of u64, so pieces and spans hit the edges.
fn edge_range() -> impl Strategy<Value = ByteRange> {
    let near = prop_oneof![0..40u64, (u64::MAX - 40)..=u64::MAX];
    (near, prop_oneof![Just(0u64), 1..30u64, Just(u64::MAX)])
        .prop_map(|(offset, length)| ByteRange { offset, length })
}

fn covers(ranges: &[ByteRange], byte: u64) -> bool {
    ranges.iter().any(|r| r.offset <= byte && byte <= r.last())
}

proptest! {
    #[test]
    fn subtract_leaves_exactly_the_uncovered_bytes(a in edge_range(), b in edge_range()) {
        let pieces = a.subtract(&b);
        prop_assert!(pieces.len() <= 2);
        for p in &pieces {
            prop_assert!(a.contains(p) && !p.overlaps(&b), "{p:?} of {a:?} minus {b:?}");
        }
        // Probe the bytes where pieces can start or end.
        // The one remainder the encoding cannot hold, bytes 0..=2^64-2 (its
        // length would be the all-ones "to EOF"), comes back one byte short
        // (`ByteRange::from_bounds`): that byte is expected uncovered.
        let unwritable = a.offset == 0 && a.reaches_eof() && b.offset == u64::MAX;
        for probe in [a.offset, a.last(), b.offset.saturating_sub(1), b.offset, b.last(), b.last().saturating_add(1)] {
            let expected = a.contains(&ByteRange::new(probe, 1))
                && !b.contains(&ByteRange::new(probe, 1))
                && !(unwritable && probe == u64::MAX - 1);
            prop_assert_eq!(covers(&pieces, probe), expected, "byte {} of {:?} minus {:?}", probe, a, b);
        }
    }

    #[test]
    fn span_covers_both_and_touching_is_symmetric(a in edge_range(), b in edge_range()) {
        let s = a.span(&b);
        prop_assert!(s.contains(&a) && s.contains(&b));
        prop_assert_eq!(s.offset, a.offset.min(b.offset));
        let last = a.last().max(b.last());
        if s.offset == 0 && last == u64::MAX - 1 {
            // The unwritable bytes 0..=2^64-2 widen to EOF (`ByteRange::span`).
            prop_assert!(s.reaches_eof(), "{s:?} spans {a:?} and {b:?}");
        } else {
            prop_assert_eq!(s.last(), last);
        }
        prop_assert_eq!(a.touches(&b), b.touches(&a));
        let gap = (a.last() as u128 + 1 < b.offset as u128) || (b.last() as u128 + 1 < a.offset as u128);
        prop_assert_eq!(a.touches(&b), !gap);
    }
}
