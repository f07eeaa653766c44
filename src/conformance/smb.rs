//! SMB (Windows-flavoured) byte-range locks beside POSIX ones (generic
//! code, checked on every backend): zero-byte locks, stacking, exact
//! unlock, ranges near 2^64, cross-protocol conflicts, `check_io`, the
//! flavour's round trip, and a table of cases from smbtorture's `smb2.lock`
//! and `raw.lock` suites.

use uuid::Uuid;

use super::TestStore;
use super::sample::{T0, all_locks, assert_invalid, begin, by_id, commit, handle, sample_lock};
use crate::{
    Acquire, ByteRange, FileHandle, Io, LockFlavor, LockOwner, LockQuery, LockType,
    MetadataStoreExt, PersistedLock, Result, ShareReservation, Timestamp, Unlock,
};

/// The SMB client (session) every open of these checks belongs to.
const CLIENT: &str = "smb-client-1";

/// A Windows lock request of `open` (its `owner_id`), client [`CLIENT`], fresh id.
fn win(
    file: &FileHandle,
    open: &str,
    lock_type: LockType,
    offset: u64,
    length: u64,
) -> PersistedLock {
    PersistedLock {
        lock_type,
        offset,
        length,
        flavor: LockFlavor::Windows,
        ..sample_lock(file, open, CLIENT, "s")
    }
}

/// A POSIX lock request of `owner` (client `nfs-<owner>`), fresh id.
fn posix(
    file: &FileHandle,
    owner: &str,
    lock_type: LockType,
    offset: u64,
    length: u64,
) -> PersistedLock {
    PersistedLock {
        lock_type,
        offset,
        length,
        ..sample_lock(file, owner, &format!("nfs-{owner}"), "s")
    }
}

fn open_of(open: &str) -> LockOwner {
    LockOwner {
        owner_id: open.to_owned(),
        client_id: CLIENT.to_owned(),
        share_name: "s".to_owned(),
    }
}

async fn try_acquire(t: &dyn TestStore, lock: &PersistedLock) -> Result<Acquire> {
    t.store()
        .transact(|tx| Box::pin(async move { crate::acquire_lock(tx, lock).await }))
        .await
}

async fn acquire(t: &dyn TestStore, lock: &PersistedLock) -> Acquire {
    try_acquire(t, lock).await.expect("acquire_lock")
}

async fn granted(t: &dyn TestStore, lock: &PersistedLock) -> bool {
    matches!(acquire(t, lock).await, Acquire::Granted)
}

async fn try_unlock(
    t: &dyn TestStore,
    file: &FileHandle,
    owner: &LockOwner,
    offset: u64,
    length: u64,
) -> Result<Unlock> {
    let (file, owner) = (file.clone(), owner.clone());
    t.store()
        .transact(move |tx| {
            let (file, owner) = (file.clone(), owner.clone());
            Box::pin(async move { crate::unlock_exact(tx, &file, &owner, offset, length).await })
        })
        .await
}

async fn unlock(
    t: &dyn TestStore,
    file: &FileHandle,
    open: &str,
    offset: u64,
    length: u64,
) -> Unlock {
    try_unlock(t, file, &open_of(open), offset, length)
        .await
        .expect("unlock_exact")
}

async fn io_as(
    t: &dyn TestStore,
    file: &FileHandle,
    owner: &LockOwner,
    offset: u64,
    length: u64,
    write: bool,
) -> Io {
    let mut tx = begin(t).await;
    let answer = crate::check_io(&mut *tx, file, owner, ByteRange::new(offset, length), write)
        .await
        .expect("check_io");
    commit(tx).await;
    answer
}

async fn io(
    t: &dyn TestStore,
    file: &FileHandle,
    open: &str,
    offset: u64,
    length: u64,
    write: bool,
) -> bool {
    matches!(
        io_as(t, file, &open_of(open), offset, length, write).await,
        Io::Allowed
    )
}

/// One `zero_byte_tests` row: the first lock's (offset, length), the
/// second's, and whether the second is granted.
type ZeroByteCase = ((u64, u64), (u64, u64), bool);

/// The (offset, length, zero-byte-lock-at-10) pairs of smbtorture's
/// `zero_byte_tests` (`smb2.lock.zerobytelength`, `raw.lock.zerobytelocks`):
/// the first lock, the second, and whether the second is granted. Both
/// exclusive.
const ZERO_BYTE_TESTS: [ZeroByteCase; 15] = [
    ((10, 0), (10, 0), true),
    ((10, 0), (9, 1), true),
    ((10, 0), (10, 1), true),
    ((10, 0), (11, 1), true),
    ((10, 0), (9, 2), false),
    ((10, 0), (10, 2), true),
    ((10, 0), (9, 3), false),
    ((10, 0), (10, 0), true),
    ((9, 1), (10, 0), true),
    ((10, 1), (10, 0), true),
    ((11, 1), (10, 0), true),
    ((9, 2), (10, 0), false),
    ((10, 2), (10, 0), true),
    ((9, 3), (10, 0), false),
    ((0, 0), (0, 0), true),
];

/// A Windows zero-byte lock covers no byte: it conflicts only with an
/// exclusive lock of another range that holds its offset strictly inside
/// (never at that range's first byte), and two zero-byte locks never
/// conflict; by the same rule on one open (an exclusive request) and
/// across opens. Length 0 is not "to EOF" for Windows locks, and it stays a
/// zero-byte lock once stored.
pub async fn windows_zero_byte_locks_overlap_by_ms_fsa(t: &mut dyn TestStore) {
    use LockType::*;
    for (same_open, second) in [(true, "h"), (false, "h2")] {
        for (i, &((o1, l1), (o2, l2), ok)) in ZERO_BYTE_TESTS.iter().enumerate() {
            let f = handle(format!("zb-{same_open}-{i}").as_bytes());
            let first = win(&f, "h", Exclusive, o1, l1);
            assert!(granted(t, &first).await, "case {i}: the first lock");
            assert_eq!(
                granted(t, &win(&f, second, Exclusive, o2, l2)).await,
                ok,
                "zero_byte_tests[{i}] {{{o1},{l1}}} + {{{o2},{l2}}}, same open: {same_open}"
            );
        }
    }
    // Not to EOF: a zero-byte lock at 0 leaves the whole file to others.
    let f = handle(b"zb-eof");
    let zero = win(&f, "h", Exclusive, 0, 0);
    assert_eq!(acquire(t, &zero).await, Acquire::Granted);
    assert!(granted(t, &win(&f, "h2", Exclusive, 0, 1000)).await);
    assert!(granted(t, &win(&f, "h3", Exclusive, 1 << 40, 1)).await);
    let stored = all_locks(t, &LockQuery::by_file(&f)).await;
    assert!(
        stored.contains(&zero),
        "the zero-byte lock is stored as given"
    );
    // A shared request strictly containing another open's exclusive zero-byte lock conflicts.
    let g = handle(b"zb-shared");
    assert!(granted(t, &win(&g, "h", Exclusive, 10, 0)).await);
    assert!(!granted(t, &win(&g, "h2", Shared, 5, 10)).await);
    assert!(
        granted(t, &win(&g, "h2", Shared, 10, 10)).await,
        "at the first byte: no overlap"
    );
}

/// Windows locks never merge or split: identical locks stack as records of
/// their own, each with its request's id; a shared lock stacks on the same
/// open's shared or exclusive lock, an exclusive one conflicts with the same
/// open's overlapping locks of either type; a Windows request must carry a
/// fresh id.
pub async fn windows_locks_stack_and_never_merge(t: &mut dyn TestStore) {
    use LockType::*;
    let f = handle(b"stack");
    let x = win(&f, "h", Exclusive, 0, 10);
    let s1 = win(&f, "h", Shared, 0, 10);
    let s2 = win(&f, "h", Shared, 0, 10);
    for l in [&x, &s1, &s2] {
        assert_eq!(acquire(t, l).await, Acquire::Granted, "stacking {l:?}");
    }
    assert_eq!(
        all_locks(t, &LockQuery::by_file(&f)).await,
        by_id(vec![x.clone(), s1.clone(), s2.clone()]),
        "three records, as requested"
    );
    match acquire(t, &win(&f, "h2", Shared, 5, 1)).await {
        Acquire::Denied { conflicts } => assert_eq!(conflicts, vec![x.clone()]),
        other => panic!("another open's shared request on an exclusive lock: {other:?}"),
    }
    assert!(
        !granted(t, &win(&f, "h", Exclusive, 9, 1)).await,
        "exclusive on own locks"
    );
    // Adjacent and overlapping shared locks of one open do not coalesce.
    let g = handle(b"nomerge");
    assert!(granted(t, &win(&g, "h", Shared, 10, 4)).await);
    assert!(granted(t, &win(&g, "h", Shared, 12, 4)).await);
    assert!(granted(t, &win(&g, "h", Shared, 16, 4)).await);
    assert_eq!(all_locks(t, &LockQuery::by_file(&g)).await.len(), 3);
    assert_eq!(unlock(t, &g, "h", 10, 6).await, Unlock::NotLocked);
    // An exclusive request on one's own shared lock is denied, and changes nothing.
    let before = all_locks(t, &LockQuery::by_file(&g)).await;
    assert!(!granted(t, &win(&g, "h", Exclusive, 13, 1)).await);
    assert_eq!(all_locks(t, &LockQuery::by_file(&g)).await, before);
    // A stored id cannot be reused by a Windows request, nor by a POSIX one on a Windows record.
    let again = PersistedLock {
        id: x.id,
        ..win(&f, "h", Shared, 100, 1)
    };
    assert_invalid(
        "a Windows request with a stored id",
        try_acquire(t, &again).await,
    );
    let posix_over = PersistedLock {
        id: s1.id,
        flavor: LockFlavor::Posix,
        ..s1.clone()
    };
    assert_invalid(
        "a POSIX request with a Windows lock's id",
        try_acquire(t, &posix_over).await,
    );
    assert_eq!(
        all_locks(t, &LockQuery::by_file(&f)).await.len(),
        3,
        "nothing was written"
    );
}

/// `unlock_exact` removes one lock with exactly that offset and length (the
/// exclusive one before shared ones, then the most recent), answers
/// `NotLocked` otherwise and writes nothing; it never touches another open's
/// locks or POSIX locks, and `release_range` never touches Windows locks.
pub async fn unlock_exact_removes_exactly_one(t: &mut dyn TestStore) {
    use LockType::*;
    let f = handle(b"unlock");
    let older = PersistedLock {
        acquired_at: T0,
        ..win(&f, "h", Shared, 0, 10)
    };
    let newer = PersistedLock {
        acquired_at: Timestamp::from_micros(T0.as_micros() + 1),
        ..win(&f, "h", Shared, 0, 10)
    };
    let excl = PersistedLock {
        acquired_at: T0,
        ..win(&f, "h", Exclusive, 0, 10)
    };
    for l in [&excl, &older, &newer] {
        assert_eq!(acquire(t, l).await, Acquire::Granted);
    }
    let nfs = posix(&f, "nfs", Shared, 0, 10);
    assert_eq!(
        acquire(t, &nfs).await,
        Acquire::Denied {
            conflicts: vec![excl.clone()]
        }
    );
    assert_eq!(
        unlock(t, &f, "h2", 0, 10).await,
        Unlock::NotLocked,
        "another open"
    );
    assert_eq!(
        unlock(t, &f, "h", 0, 9).await,
        Unlock::NotLocked,
        "another length"
    );
    assert_eq!(
        unlock(t, &f, "h", 1, 9).await,
        Unlock::NotLocked,
        "another offset"
    );
    assert_eq!(
        unlock(t, &f, "h", 0, 10).await,
        Unlock::Unlocked { id: excl.id },
        "exclusive first"
    );
    assert_eq!(
        unlock(t, &f, "h", 0, 10).await,
        Unlock::Unlocked { id: newer.id },
        "then the most recent"
    );
    assert_eq!(
        unlock(t, &f, "h", 0, 10).await,
        Unlock::Unlocked { id: older.id }
    );
    assert_eq!(unlock(t, &f, "h", 0, 10).await, Unlock::NotLocked);
    assert!(all_locks(t, &LockQuery::by_file(&f)).await.is_empty());
    // POSIX and Windows locks of one owner id: each unlock touches only its flavour.
    let g = handle(b"unlock-mixed");
    let w = win(&g, "o", Exclusive, 0, 10);
    let p = PersistedLock {
        client_id: CLIENT.into(),
        ..posix(&g, "o", Exclusive, 100, 10)
    };
    assert_eq!(acquire(t, &w).await, Acquire::Granted);
    assert_eq!(acquire(t, &p).await, Acquire::Granted);
    assert_eq!(
        unlock(t, &g, "o", 100, 10).await,
        Unlock::NotLocked,
        "a POSIX lock is not unlocked exactly"
    );
    let store = t.store();
    let (gg, owner) = (&g, &open_of("o"));
    let released = store
        .transact(|tx| {
            Box::pin(async move { crate::release_range(tx, gg, owner, ByteRange::new(0, 0)).await })
        })
        .await
        .expect("release_range");
    assert_eq!(released, 1, "release_range trims only the POSIX lock");
    assert_eq!(all_locks(t, &LockQuery::by_file(&g)).await, vec![w.clone()]);
    // A POSIX request of the same owner does not reshape the Windows lock.
    assert_eq!(
        acquire(
            t,
            &PersistedLock {
                client_id: CLIENT.into(),
                ..posix(&g, "o", Shared, 5, 1)
            }
        )
        .await,
        Acquire::Granted
    );
    assert!(all_locks(t, &LockQuery::by_file(&g)).await.contains(&w));
    // Validation before anything is read.
    assert_invalid(
        "unlock past 2^64",
        try_unlock(t, &g, &open_of("o"), u64::MAX, 2).await,
    );
    assert_invalid(
        "unlock with an empty owner",
        try_unlock(t, &g, &open_of(""), 0, 10).await,
    );
}

/// A Windows range may end at byte 2^64 − 1 but not past it
/// (`STATUS_INVALID_LOCK_RANGE`); POSIX ranges keep saturating. Checked by
/// `acquire_lock`, `test_lock` and `put_lock` before anything is written.
pub async fn windows_ranges_near_2_pow_64(t: &mut dyn TestStore) {
    use LockType::*;
    let f = handle(b"edge");
    let max = u64::MAX;
    for (offset, length, valid) in [
        (max, 0, true),
        (max, 1, true),
        (0, max, true),
        (1, max - 1, true),
        (1 << 63, 1 << 63, true),
        (1, max, true),
        (max, 2, false),
        (2, max, false),
        (max, max, false),
        ((1 << 63) + 1, 1 << 63, false),
    ] {
        let req = win(&f, "edge", Exclusive, offset, length);
        if valid {
            assert_eq!(
                acquire(t, &req).await,
                Acquire::Granted,
                "{offset}/{length}"
            );
            assert_eq!(
                unlock(t, &f, "edge", offset, length).await,
                Unlock::Unlocked { id: req.id }
            );
        } else {
            assert_invalid("acquire_lock", try_acquire(t, &req).await);
            let store = t.store();
            let r = &req;
            assert_invalid(
                "test_lock",
                store
                    .transact(|tx| Box::pin(async move { crate::test_lock(tx, r).await }))
                    .await,
            );
            let mut tx = begin(t).await;
            assert_invalid("put_lock", tx.put_lock(&req).await);
            drop(tx);
            let posix_same = PersistedLock {
                flavor: LockFlavor::Posix,
                ..req.clone()
            };
            assert_eq!(
                acquire(t, &posix_same).await,
                Acquire::Granted,
                "POSIX saturates"
            );
            let mut tx = begin(t).await;
            tx.delete_lock(posix_same.id).await.expect("delete");
            commit(tx).await;
        }
    }
    assert!(all_locks(t, &LockQuery::by_file(&f)).await.is_empty());
    // max/1 (the last byte) conflicts with another open's lock to 2^64.
    assert!(granted(t, &win(&f, "a", Exclusive, max, 1)).await);
    assert!(!granted(t, &win(&f, "b", Shared, 1 << 63, 1 << 63)).await);
    assert!(
        !granted(t, &posix(&f, "c", Shared, max, 0)).await,
        "POSIX to EOF holds the last byte"
    );
    assert!(
        granted(t, &win(&f, "b", Exclusive, max, 0)).await,
        "a zero-byte lock at the last byte"
    );
}

/// A Windows and a POSIX lock on one file conflict when their ranges (each
/// by its own flavour's meaning) overlap, one is exclusive and the owners
/// differ, in both directions.
pub async fn cross_protocol_locks_conflict_both_directions(t: &mut dyn TestStore) {
    use LockType::*;
    // POSIX held, Windows asks.
    let f = handle(b"x-posix-first");
    let nfs = posix(&f, "nfs", Exclusive, 100, 0); // 100 to EOF
    assert_eq!(acquire(t, &nfs).await, Acquire::Granted);
    match acquire(t, &win(&f, "h", Shared, 1 << 40, 1)).await {
        Acquire::Denied { conflicts } => assert_eq!(conflicts, vec![nfs.clone()]),
        other => panic!("a Windows lock inside a POSIX lock to EOF: {other:?}"),
    }
    assert!(
        granted(t, &win(&f, "h", Exclusive, 0, 100)).await,
        "bytes 0..=99 are free"
    );
    assert!(
        granted(t, &win(&f, "h", Exclusive, 100, 0)).await,
        "zero-byte at the POSIX lock's first byte"
    );
    assert!(
        !granted(t, &win(&f, "h", Exclusive, 101, 0)).await,
        "zero-byte strictly inside"
    );
    // Windows held, POSIX asks.
    let g = handle(b"x-windows-first");
    let smb = win(&g, "h", Exclusive, 100, 10);
    assert_eq!(acquire(t, &smb).await, Acquire::Granted);
    match acquire(t, &posix(&g, "nfs", Shared, 0, 0)).await {
        Acquire::Denied { conflicts } => assert_eq!(conflicts, vec![smb.clone()]),
        other => panic!("a POSIX lock to EOF over a Windows lock: {other:?}"),
    }
    assert!(!granted(t, &posix(&g, "nfs", Exclusive, 109, 1)).await);
    assert!(
        granted(t, &posix(&g, "nfs", Exclusive, 110, 0)).await,
        "after it"
    );
    assert!(
        granted(t, &posix(&g, "nfs2", Exclusive, 0, 100)).await,
        "before it"
    );
    // Shared with shared never conflicts across protocols.
    let h = handle(b"x-shared");
    assert!(granted(t, &win(&h, "h", Shared, 0, 10)).await);
    assert!(granted(t, &posix(&h, "nfs", Shared, 0, 0)).await);
    assert!(!granted(t, &win(&h, "h2", Exclusive, 5, 1)).await);
    assert!(!granted(t, &posix(&h, "nfs2", Exclusive, 5, 1)).await);
    // A Windows zero-byte exclusive lock is seen by POSIX requests that strictly contain it.
    let z = handle(b"x-zero");
    assert!(granted(t, &win(&z, "h", Exclusive, 50, 0)).await);
    assert!(!granted(t, &posix(&z, "nfs", Shared, 40, 20)).await);
    assert!(
        granted(t, &posix(&z, "nfs", Shared, 50, 20)).await,
        "from its offset: no overlap"
    );
    // test_lock decides the same across protocols.
    let store = t.store();
    let probe = &posix(&g, "nfs3", Shared, 105, 1);
    let answer = store
        .transact(|tx| Box::pin(async move { crate::test_lock(tx, probe).await }))
        .await
        .expect("test_lock");
    assert_eq!(
        answer,
        Acquire::Denied {
            conflicts: vec![smb.clone()]
        }
    );
}

/// `check_io`: another owner's exclusive lock blocks reads and writes, any
/// shared lock (the caller's own included) blocks writes, the caller's own
/// exclusive lock blocks nothing, a zero-byte lock blocks nothing, a
/// zero-length I/O touches nothing, and POSIX locks count (by their
/// meaning: length 0 to EOF).
pub async fn check_io_follows_smb_rules(t: &mut dyn TestStore) {
    use LockType::*;
    let f = handle(b"io");
    let x = win(&f, "h", Exclusive, 0, 100);
    let s = win(&f, "h", Shared, 200, 100);
    assert_eq!(acquire(t, &x).await, Acquire::Granted);
    assert_eq!(acquire(t, &s).await, Acquire::Granted);
    assert!(io(t, &f, "h", 0, 100, true).await, "own exclusive: write");
    assert!(io(t, &f, "h", 50, 10, false).await, "own exclusive: read");
    assert_eq!(
        io_as(t, &f, &open_of("h2"), 99, 2, false).await,
        Io::Conflict { lock: x.clone() },
        "another open's exclusive lock blocks a read"
    );
    assert!(!io(t, &f, "h2", 0, 1, true).await);
    assert!(io(t, &f, "h2", 100, 100, true).await, "between the locks");
    assert!(
        io(t, &f, "h2", 250, 10, false).await,
        "a shared lock lets others read"
    );
    assert_eq!(
        io_as(t, &f, &open_of("h2"), 299, 1, true).await,
        Io::Conflict { lock: s.clone() }
    );
    assert!(
        !io(t, &f, "h", 250, 1, true).await,
        "a shared lock blocks its own open's write"
    );
    assert!(
        io(t, &f, "h2", 50, 0, true).await,
        "a zero-length I/O touches nothing"
    );
    // Zero-byte locks block nothing.
    let z = handle(b"io-zero");
    assert!(granted(t, &win(&z, "h", Exclusive, 5, 0)).await);
    assert!(granted(t, &win(&z, "h", Shared, 7, 0)).await);
    for offset in [0, 4, 5, 6, 7] {
        assert!(
            io(t, &z, "h2", offset, 10, true).await,
            "zero-byte locks at {offset}"
        );
    }
    // POSIX locks are seen by an SMB server's I/O check, by their meaning.
    let p = handle(b"io-posix");
    let nfs = posix(&p, "nfs", Exclusive, 1000, 0);
    assert_eq!(acquire(t, &nfs).await, Acquire::Granted);
    assert!(io(t, &p, "h", 0, 1000, true).await);
    assert_eq!(
        io_as(t, &p, &open_of("h"), u64::MAX, 1, false).await,
        Io::Conflict { lock: nfs.clone() }
    );
    assert!(
        matches!(io_as(t, &p, &nfs.owner(), 5000, 1, true).await, Io::Allowed),
        "its own owner"
    );
    // An I/O whose end passes 2^64 stops at the last byte.
    assert!(!io(t, &p, "h", u64::MAX - 1, u64::MAX, false).await);
    // A bad owner is Invalid.
    let mut tx = begin(t).await;
    assert_invalid(
        "check_io with an empty owner",
        crate::check_io(&mut *tx, &p, &open_of(""), ByteRange::new(0, 1), false).await,
    );
}

/// The flavour round-trips with every other field away from its default,
/// beside POSIX records, through get, list and overwrite.
pub async fn windows_flavor_round_trips(t: &mut dyn TestStore) {
    let f = handle(b"\x00rt\xff");
    let w = PersistedLock {
        id: Uuid::from_u128(u128::MAX - 7),
        share_name: "share/ü".into(),
        file_id: f.clone(),
        owner_id: "open:0xffffffffffffffff".into(),
        client_id: "client-guid-1".into(),
        lock_type: LockType::Shared,
        offset: u64::MAX,
        length: 1,
        share_reservation: ShareReservation::DenyWrite,
        acquired_at: Timestamp::MAX_VALID,
        server_epoch: u64::MAX,
        flavor: LockFlavor::Windows,
    };
    let zero = PersistedLock {
        id: Uuid::from_u128(3),
        offset: 0,
        length: 0,
        share_reservation: ShareReservation::None,
        ..w.clone()
    };
    let p = PersistedLock {
        id: Uuid::from_u128(5),
        flavor: LockFlavor::Posix,
        offset: 7,
        length: 0,
        ..w.clone()
    };
    let mut tx = begin(t).await;
    for l in [&w, &zero, &p] {
        tx.put_lock(l).await.expect("put_lock");
    }
    commit(tx).await;
    let mut tx = begin(t).await;
    assert_eq!(tx.get_lock(w.id).await.expect("get").as_ref(), Some(&w));
    assert_eq!(
        tx.get_lock(zero.id).await.expect("get").as_ref(),
        Some(&zero)
    );
    assert_eq!(tx.get_lock(p.id).await.expect("get").as_ref(), Some(&p));
    assert_eq!(
        tx.list_locks(&LockQuery::by_file(&f)).await.expect("list"),
        by_id(vec![w.clone(), zero.clone(), p.clone()])
    );
    drop(tx);
    let before = crate::digest(&*t.store()).await.expect("digest");
    // Overwriting flips the flavour both ways.
    let mut tx = begin(t).await;
    tx.put_lock(&PersistedLock {
        flavor: LockFlavor::Posix,
        ..w.clone()
    })
    .await
    .expect("put");
    tx.put_lock(&PersistedLock {
        flavor: LockFlavor::Windows,
        ..p.clone()
    })
    .await
    .expect("put");
    commit(tx).await;
    let mut tx = begin(t).await;
    assert_eq!(
        tx.get_lock(w.id).await.expect("get").map(|l| l.flavor),
        Some(LockFlavor::Posix)
    );
    assert_eq!(
        tx.get_lock(p.id).await.expect("get").map(|l| l.flavor),
        Some(LockFlavor::Windows)
    );
    drop(tx);
    let after = crate::digest(&*t.store()).await.expect("digest");
    assert_eq!(after.locks, before.locks);
    assert_ne!(after, before, "the digest covers the flavour");
}

/// One step of an smbtorture-derived case. Opens are names (`owner_id`);
/// `h` and `h2` share client [`CLIENT`], `h3` stands for a second session.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// SMB2 LOCK (FAIL_IMMEDIATELY) of one element: granted, denied, or invalid range.
    Lock(&'static str, LockType, u64, u64, Want),
    /// SMB2 LOCK with UNLOCK: true = unlocked, false = `RANGE_NOT_LOCKED`.
    Unlock(&'static str, u64, u64, bool),
    /// SMB2 READ: true = allowed, false = `FILE_LOCK_CONFLICT`.
    Read(&'static str, u64, u64, bool),
    /// SMB2 WRITE: true = allowed, false = `FILE_LOCK_CONFLICT`.
    Write(&'static str, u64, u64, bool),
    /// SMB2 CLOSE: the open's locks go (the server deletes them).
    Close(&'static str),
    /// SMB2 LOCK of two elements, all or nothing: both in one transaction,
    /// rolled back when one is denied.
    LockBoth(
        &'static str,
        (LockType, u64, u64),
        (LockType, u64, u64),
        Want,
    ),
}

/// What a lock step must answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    /// `STATUS_SUCCESS`.
    Granted,
    /// `STATUS_LOCK_NOT_GRANTED`.
    Denied,
    /// `STATUS_INVALID_LOCK_RANGE`.
    InvalidRange,
}

/// The cases, each named after the smbtorture test it comes from
/// (`source4/torture/smb2/lock.c`, `source4/torture/raw/lock.c`). Left
/// out: async, cancel, cancel-tdis, cancel-logoff (pending locks), rw-none
/// (a W2K8 bug), truncate (create dispositions), flags and lock-count
/// validation (protocol parsing), multiple-unlock test 4 (an unlock and a
/// lock in one request: INVALID_PARAMETER, protocol parsing), changetype
/// and pidhigh (SMB1 only).
fn smbtorture_cases() -> Vec<(String, Vec<Op>)> {
    use LockType::{Exclusive as X, Shared as S};
    use Op::*;
    use Want::{Denied as D, Granted as G, InvalidRange as I};
    let max = u64::MAX;
    let u32max = u64::from(u32::MAX);
    let mut cases: Vec<(String, Vec<Op>)> = vec![
        (
            "smb2.lock.valid-request".into(),
            vec![
                Lock("h", X, max, max, I),
                Lock("h", X, max, max, I),
                Lock("h", X, u32max, u32max, G),
                Lock("h", S, u32max, u32max, G),
                Lock("h", S, u32max, u32max, G),
                Unlock("h", u32max, u32max, true),
                Unlock("h", u32max, u32max, true),
                Unlock("h", u32max, u32max, true),
                Unlock("h", u32max, u32max, false),
                Unlock("h", 1, 1, false),
                Lock("h", S, 9999, 1, G),
                Lock("h", S, 9999, 1, G),
                Unlock("h", 9999, 1, true),
                Unlock("h", 9999, 1, true),
                Unlock("h", 9999, 1, false),
            ],
        ),
        (
            "smb2.lock.rw-shared".into(),
            vec![
                Lock("h", S, 0, 100, G),
                Lock("h", S, 100, 100, G),
                Write("h", 100, 100, false),
                Read("h", 100, 100, true),
                Write("h2", 100, 100, false),
                Read("h2", 100, 100, true),
                Unlock("h", 100, 100, true),
                Write("h2", 100, 100, true),
                Read("h2", 100, 100, true),
            ],
        ),
        (
            "smb2.lock.rw-exclusive".into(),
            vec![
                Lock("h", X, 0, 100, G),
                Lock("h", X, 100, 100, G),
                Write("h", 100, 100, true),
                Read("h", 100, 100, true),
                Write("h2", 100, 100, false),
                Read("h2", 100, 100, false),
                Unlock("h", 100, 100, true),
                Write("h2", 100, 100, true),
                Read("h2", 100, 100, true),
            ],
        ),
        (
            "smb2.lock.auto-unlock".into(),
            vec![
                Lock("h", X, 0, 1, G),
                Lock("h", X, 0, 1, D),
                Lock("h", X, 0, 1, D),
            ],
        ),
        (
            "smb2.lock.lock".into(),
            vec![
                // 0/0
                Lock("h", X, 0, 0, G),
                Lock("h2", X, 0, 0, G),
                Unlock("h", 0, 0, true),
                // 0/1
                Lock("h", X, 0, 1, G),
                Lock("h2", X, 0, 1, D),
                Unlock("h", 0, 1, true),
                Unlock("h", 0, 1, false),
                // 0xEEFFFFFF/4000
                Lock("h", X, 0xEEFF_FFFF, 4000, G),
                Lock("h2", X, 0xEEFF_FFFF, 4000, D),
                Unlock("h", 0xEEFF_FFFF, 4000, true),
                Unlock("h", 0xEEFF_FFFF, 4000, false),
                // 0xEF000000/4000
                Lock("h", X, 0xEF00_0000, 4000, G),
                Lock("h2", X, 0xEF00_0000, 4000, D),
                Unlock("h", 0xEF00_0000, 4000, true),
                Unlock("h", 0xEF00_0000, 4000, false),
                // (2^63 - 1)/1
                Lock("h", X, (1 << 63) - 1, 1, G),
                Lock("h2", X, (1 << 63) - 1, 1, D),
                Unlock("h", (1 << 63) - 1, 1, true),
                Unlock("h", (1 << 63) - 1, 1, false),
                // 2^63/1
                Lock("h", X, 1 << 63, 1, G),
                Lock("h2", X, 1 << 63, 1, D),
                Unlock("h", 1 << 63, 1, true),
                Unlock("h", 1 << 63, 1, false),
                // max/0
                Lock("h", X, max, 0, G),
                Lock("h2", X, max, 0, G),
                Unlock("h2", max, 0, true),
                Unlock("h", max, 0, true),
                Unlock("h", max, 0, false),
                // max/1
                Lock("h", X, max, 1, G),
                Lock("h2", X, max, 1, D),
                Unlock("h", max, 1, true),
                Unlock("h", max, 1, false),
                // max/2
                Lock("h", X, max, 2, I),
                // wrong handle unlock
                Lock("h", X, 10001, 40002, G),
                Unlock("h2", 10001, 40002, false),
                Unlock("h", 10001, 40002, true),
            ],
        ),
        (
            "smb2.lock.errorcode".into(),
            vec![
                Lock("h", X, 100, 10, G),
                Lock("h", X, 100, 10, D),
                Lock("h2", X, 100, 10, D),
                Lock("h", X, 102, 0, D),
                Lock("h2", X, 102, 0, D),
                Lock("h", X, 102, 5, D),
                Lock("h2", X, 102, 5, D),
            ],
        ),
        (
            "smb2.lock.unlock".into(),
            vec![
                // unlock exclusive (the type in the unlock does not matter)
                Lock("h", X, 0, 10, G),
                Lock("h2", S, 0, 10, D),
                Unlock("h", 0, 10, true),
                Lock("h", S, 0, 10, G),
                Lock("h2", X, 0, 10, D),
                Unlock("h", 0, 10, true),
                // stacked 0-byte locks: the exclusive goes first
                Lock("h", X, 10, 0, G),
                Lock("h", S, 10, 0, G),
                Lock("h2", X, 5, 10, D),
                Lock("h2", S, 5, 10, D),
                Unlock("h", 10, 0, true),
                Lock("h2", S, 5, 10, G),
                Unlock("h2", 5, 10, true),
                Unlock("h", 10, 0, true),
                // stacked exclusive/shared: the exclusive goes first
                Lock("h", X, 10, 10, G),
                Lock("h", S, 10, 10, G),
                Lock("h2", X, 5, 10, D),
                Lock("h2", S, 5, 10, D),
                Unlock("h", 10, 10, true),
                Lock("h2", S, 5, 10, G),
                Unlock("h2", 5, 10, true),
                Unlock("h", 10, 10, true),
                Unlock("h", 10, 10, false),
            ],
        ),
        (
            "smb2.lock.multiple-unlock".into(),
            vec![
                // test 1: the first element is not locked, the request stops there
                Lock("h", X, 10, 10, G),
                Unlock("h", 0, 10, false),
                Lock("h", X, 10, 10, D),
                Unlock("h", 10, 10, true),
                // test 2: the first element is unlocked, the second is not locked
                Lock("h", X, 0, 10, G),
                Unlock("h", 0, 10, true),
                Unlock("h", 10, 10, false),
                Lock("h", X, 0, 10, G),
                Unlock("h", 0, 10, true),
                // test 3: two elements, the second contends: neither is held
                Lock("h", X, 10, 10, G),
                LockBoth("h", (X, 0, 10), (X, 10, 10), D),
                Lock("h", X, 0, 10, G),
                Unlock("h", 0, 10, true),
                Unlock("h", 10, 10, true),
                Unlock("h", 10, 10, false),
            ],
        ),
        (
            "smb2.lock.stacking".into(),
            vec![
                Lock("h", S, 0, 10, G),
                Lock("h", S, 0, 10, G),
                Unlock("h", 0, 10, true),
                Unlock("h", 0, 10, true),
                Lock("h", X, 0, 10, G),
                Lock("h", S, 0, 10, G),
                Lock("h", S, 0, 10, G),
                Lock("h2", S, 0, 10, D),
                Unlock("h", 0, 10, true),
                Unlock("h", 0, 10, true),
                Unlock("h", 0, 10, true),
                Unlock("h", 0, 10, false),
                Lock("h2", S, 0, 10, G),
                Unlock("h2", 0, 10, true),
                Lock("h", X, 0, 10, G),
                Lock("h2", S, 0, 10, D),
                Unlock("h", 0, 10, true),
                Lock("h", S, 0, 10, G),
                Lock("h", X, 0, 10, D),
                Unlock("h", 0, 10, true),
                Lock("h", X, 0, 10, G),
                Lock("h", X, 0, 10, D),
                Unlock("h", 0, 10, true),
            ],
        ),
        (
            "smb2.lock.contend".into(),
            vec![
                Lock("h", X, 0, 10, G),
                Lock("h2", S, 0, 10, D),
                Unlock("h", 0, 10, true),
            ],
        ),
        (
            // The owner is the open: there is no pid in it to change.
            "smb2.lock.context".into(),
            vec![
                Lock("h", X, 0, 10, G),
                Unlock("h", 0, 10, true),
                Unlock("h", 0, 10, false),
            ],
        ),
        (
            "smb2.lock.overlap".into(),
            vec![
                Lock("h", X, 0, 4, G),
                Lock("h", X, 2, 4, D),
                Lock("h", S, 10, 4, G),
                Lock("h", S, 12, 4, G),
                Lock("h", X, 20, 4, G),
                Lock("h3", X, 22, 4, D),
                Lock("h", S, 30, 4, G),
                Lock("h3", S, 32, 4, G),
                Lock("h", X, 40, 4, G),
                Lock("h2", X, 42, 4, D),
                Lock("h", S, 50, 4, G),
                Lock("h2", S, 52, 4, G),
                Lock("h", S, 110, 4, G),
                Lock("h", S, 112, 4, G),
                Unlock("h", 110, 6, false),
                Close("h2"),
                Close("h"),
                // the NT byte range lock bug: absent
                Lock("h", S, 0, 8, G),
                Lock("h2", S, 0, 1, G),
                Close("h"),
                Lock("h", X, 7, 1, G),
            ],
        ),
    ];
    for suite in ["smb2.lock.zerobytelength", "raw.lock.zerobytelocks"] {
        for (same, second) in [("same handle", "h"), ("two handles", "h2")] {
            let mut steps = Vec::new();
            for &((o1, l1), (o2, l2), ok) in &ZERO_BYTE_TESTS {
                steps.push(Lock("h", X, o1, l1, G));
                steps.push(Lock(second, X, o2, l2, if ok { G } else { D }));
                if ok {
                    steps.push(Unlock(second, o2, l2, true));
                }
                steps.push(Unlock("h", o1, l1, true));
            }
            cases.push((format!("{suite} ({same})"), steps));
        }
    }
    for suite in ["smb2.lock.zerobyteread", "raw.lock.zerobyteread"] {
        cases.push((
            suite.into(),
            vec![
                Lock("h", X, 0, 10, G),
                Read("h2", 5, 0, true),
                Unlock("h", 0, 10, true),
                Lock("h", X, 5, 0, G),
                Read("h2", 4, 0, true),
                Read("h2", 5, 0, true),
                Read("h2", 6, 0, true),
                Unlock("h", 5, 0, true),
            ],
        ));
    }
    // smb2.lock.range with 100 offsets spread over the 64-bit space.
    let numops = 100u64;
    let offsets: Vec<u64> = (1..=numops).map(|i| i * (u64::MAX / numops)).collect();
    let mut steps = Vec::new();
    for &o in &offsets {
        steps.push(Lock("h", X, o - 1, 1, G));
        steps.push(Lock("h2", X, o - 2, 1, G));
    }
    for &o in &offsets {
        steps.push(Lock("h", X, o - 1, 1, D));
        steps.push(Lock("h", X, o - 2, 1, D));
        steps.push(Lock("h2", X, o - 1, 1, D));
        steps.push(Lock("h2", X, o - 2, 1, D));
    }
    for &o in &offsets {
        steps.push(Unlock("h", o - 1, 1, true));
        steps.push(Unlock("h2", o - 2, 1, true));
    }
    cases.push(("smb2.lock.range".into(), steps));
    cases
}

/// The owner of an open in the cases: `h3` is on another session.
fn case_owner(open: &str) -> LockOwner {
    LockOwner {
        client_id: if open == "h3" {
            "smb-client-2".into()
        } else {
            CLIENT.into()
        },
        ..open_of(open)
    }
}

/// Every smbtorture-derived case (`smbtorture_cases` in the source), step by step, one
/// transaction a step, each case on its own file; the message names the
/// case and step that differs.
pub async fn smbtorture_lock_cases(t: &mut dyn TestStore) {
    for (case, steps) in smbtorture_cases() {
        let f = handle(case.as_bytes());
        for (i, op) in steps.iter().enumerate() {
            let at = format!("{case}, step {i}: {op:?}");
            match *op {
                Op::Lock(open, lock_type, offset, length, want) => {
                    let owner = case_owner(open);
                    let req = PersistedLock {
                        client_id: owner.client_id.clone(),
                        ..win(&f, open, lock_type, offset, length)
                    };
                    let got = match try_acquire(t, &req).await {
                        Ok(Acquire::Granted) => Want::Granted,
                        Ok(Acquire::Denied { .. }) => Want::Denied,
                        Err(crate::Error::Invalid(_)) => Want::InvalidRange,
                        other => panic!("{at}: {other:?}"),
                    };
                    assert_eq!(got, want, "{at}");
                }
                Op::Unlock(open, offset, length, ok) => {
                    let got = try_unlock(t, &f, &case_owner(open), offset, length)
                        .await
                        .unwrap_or_else(|e| panic!("{at}: {e}"));
                    assert_eq!(matches!(got, Unlock::Unlocked { .. }), ok, "{at}: {got:?}");
                }
                Op::Read(open, offset, length, ok) | Op::Write(open, offset, length, ok) => {
                    let write = matches!(op, Op::Write(..));
                    let got = io_as(t, &f, &case_owner(open), offset, length, write).await;
                    assert_eq!(matches!(got, Io::Allowed), ok, "{at}: {got:?}");
                }
                Op::LockBoth(open, first, second, want) => {
                    let owner = case_owner(open);
                    let mut tx = begin(t).await;
                    let mut got = Want::Granted;
                    for (lock_type, offset, length) in [first, second] {
                        let req = PersistedLock {
                            client_id: owner.client_id.clone(),
                            ..win(&f, open, lock_type, offset, length)
                        };
                        match crate::acquire_lock(&mut *tx, &req).await {
                            Ok(Acquire::Granted) => {}
                            Ok(_) => {
                                got = Want::Denied;
                                break;
                            }
                            Err(e) => panic!("{at}: {e}"),
                        }
                    }
                    if got == Want::Granted {
                        commit(tx).await;
                    } else {
                        tx.rollback().await.expect("rollback");
                    }
                    assert_eq!(got, want, "{at}");
                }
                Op::Close(open) => {
                    let owner = case_owner(open);
                    let mut tx = begin(t).await;
                    let query = LockQuery {
                        file_id: Some(f.clone()),
                        owner_id: Some(owner.owner_id.clone()),
                        client_id: Some(owner.client_id.clone()),
                        ..Default::default()
                    };
                    for lock in tx.list_locks(&query).await.expect("list_locks") {
                        tx.delete_lock(lock.id).await.expect("delete_lock");
                    }
                    commit(tx).await;
                }
            }
        }
    }
}
