//! SMB (Windows-flavoured) byte-range locks beside POSIX ones (generic
//! code, checked on every backend): zero-byte locks, stacking, exact
//! unlock, ranges near 2^64, cross-protocol conflicts, `check_io`, the
//! flavour's round trip, and a table of cases from smbtorture's `smb2.lock`
//! and `raw.lock` suites.

use uuid::Uuid;

use super::TestStore;
use super::sample::{
    T0, all_locks, assert_invalid, begin, by_id, commit, handle, request, sample_lock,
};
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
    let nfs = request(&f, "nfs", Shared, 0, 10);
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
        ..request(&g, "o", Exclusive, 100, 10)
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
                ..request(&g, "o", Shared, 5, 1)
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

mod rules;
mod torture;

pub use rules::*;
pub use torture::*;
