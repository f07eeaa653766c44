//! Values that must come back exactly: ids with separators and shared
//! prefixes, integer and timestamp extremes.

use super::TestStore;
use super::sample::{all_locks, begin, by_id, commit, handle, sample_file, sample_lock, seed};
use crate::{FileMeta, LockQuery, PersistedLock, Timestamp};

pub(super) const AWKWARD_IDS: &[&str] = &[
    "a:b",
    "a/b",
    "/",
    ":",
    "with space",
    " leading",
    "trailing ",
    "ünïcødé-客户端-🔒",
    "client1",
    "client10",
    "client1:0",
    "'; DROP TABLE locks; --",
    "%_*",
    "\\",
    "\u{7f}\u{1}",
];

/// IDs with separators, spaces, quotes and non-ASCII round-trip and are found by every query.
pub async fn ids_with_separators_round_trip(t: &mut dyn TestStore) {
    let locks: Vec<_> = AWKWARD_IDS
        .iter()
        .map(|id| sample_lock(&handle(id.as_bytes()), id, id, id))
        .collect();
    let files: Vec<_> = AWKWARD_IDS
        .iter()
        .map(|id| sample_file(id.as_bytes(), id))
        .collect();
    seed(t, &files, &locks).await;
    let mut tx = begin(t).await;
    for (lock, file) in locks.iter().zip(&files) {
        assert_eq!(tx.get_lock(lock.id).await.unwrap().as_ref(), Some(lock));
        assert_eq!(
            tx.get_file(&file.handle).await.unwrap().as_ref(),
            Some(file)
        );
        assert_eq!(
            tx.list_files(&file.share_name).await.unwrap(),
            vec![file.clone()]
        );
        for q in [
            LockQuery::by_owner(&lock.owner_id),
            LockQuery::by_client(&lock.client_id),
            LockQuery::by_share(&lock.share_name),
            LockQuery::by_file(&lock.file_id),
        ] {
            assert_eq!(
                tx.list_locks(&q).await.unwrap(),
                vec![lock.clone()],
                "{q:?}"
            );
        }
    }
}

/// `client1` never matches `client10`, file `[1,2]` never `[1,2,3]`, in queries and bulk deletes.
pub async fn prefix_ids_stay_apart(t: &mut dyn TestStore) {
    let (short, long) = (handle(&[1, 2]), handle(&[1, 2, 3]));
    let a = sample_lock(&short, "owner1", "client1", "share1");
    let b = sample_lock(&long, "owner10", "client10", "share10");
    let c = sample_lock(&handle(&[1]), "owner", "client", "share");
    seed(t, &[], &[a.clone(), b.clone(), c.clone()]).await;
    let mut tx = begin(t).await;
    assert_eq!(
        tx.list_locks(&LockQuery::by_client("client1"))
            .await
            .unwrap(),
        vec![a.clone()]
    );
    assert_eq!(
        tx.list_locks(&LockQuery::by_owner("owner1")).await.unwrap(),
        vec![a.clone()]
    );
    assert_eq!(
        tx.list_locks(&LockQuery::by_share("share1")).await.unwrap(),
        vec![a.clone()]
    );
    assert_eq!(
        tx.list_locks(&LockQuery::by_file(&short)).await.unwrap(),
        vec![a.clone()]
    );
    assert_eq!(
        tx.list_locks(&LockQuery::by_client("client"))
            .await
            .unwrap(),
        vec![c.clone()]
    );
    assert_eq!(tx.delete_locks_by_client("client1").await.unwrap(), 1);
    assert_eq!(tx.delete_locks_by_file(&handle(&[1])).await.unwrap(), 1);
    commit(tx).await;
    assert_eq!(all_locks(t, &LockQuery::default()).await, vec![b]);
}

/// Every integer field round-trips exactly over its whole range.
pub async fn integer_extremes_round_trip(t: &mut dyn TestStore) {
    let big = [0, 1, 2, (1 << 63) - 1, 1 << 63, u64::MAX - 1, u64::MAX];
    let small = [0, 1, (1 << 31) - 1, 1 << 31, u32::MAX];
    let file = handle(b"f");
    let locks: Vec<_> = big
        .iter()
        .enumerate()
        .map(|(i, &v)| PersistedLock {
            offset: v,
            length: big[(i + 1) % big.len()],
            server_epoch: big[(i + 2) % big.len()],
            ..sample_lock(&file, "o", "c", "s")
        })
        .collect();
    let files: Vec<_> = big
        .iter()
        .enumerate()
        .map(|(i, &v)| FileMeta {
            size: v,
            mode: small[i % small.len()],
            uid: small[(i + 1) % small.len()],
            gid: small[(i + 2) % small.len()],
            nlink: small[(i + 3) % small.len()],
            ..sample_file(&[i as u8], "s")
        })
        .collect();
    seed(t, &files, &locks).await;
    let mut tx = begin(t).await;
    for lock in &locks {
        assert_eq!(tx.get_lock(lock.id).await.unwrap().as_ref(), Some(lock));
    }
    assert_eq!(
        tx.list_locks(&LockQuery::by_file(&file)).await.unwrap(),
        by_id(locks.clone())
    );
    assert_eq!(tx.list_files("s").await.unwrap(), files);
}

/// Timestamps at the edges of the years 1 to 9999 (and around the Unix epoch) round-trip exactly.
pub async fn timestamp_extremes_round_trip(t: &mut dyn TestStore) {
    let stamps = [
        Timestamp::MIN_VALID,
        Timestamp::from_micros(Timestamp::MIN_VALID.as_micros() + 1),
        Timestamp::from_micros(-1),
        Timestamp::from_micros(0),
        Timestamp::from_micros(1),
        Timestamp::from_micros(951_782_400_000_001), // 2000-02-29, leap day
        Timestamp::MAX_VALID,
    ];
    let file = handle(b"f");
    let locks: Vec<_> = stamps
        .iter()
        .map(|&at| PersistedLock {
            acquired_at: at,
            ..sample_lock(&file, "o", "c", "s")
        })
        .collect();
    let files: Vec<_> = stamps
        .iter()
        .enumerate()
        .map(|(i, &at)| FileMeta {
            atime: at,
            mtime: stamps[(i + 1) % stamps.len()],
            ctime: stamps[(i + 2) % stamps.len()],
            ..sample_file(&[i as u8], "s")
        })
        .collect();
    seed(t, &files, &locks).await;
    let mut tx = begin(t).await;
    assert_eq!(
        tx.list_locks(&LockQuery::default()).await.unwrap(),
        by_id(locks)
    );
    assert_eq!(tx.list_files("s").await.unwrap(), files);
}
