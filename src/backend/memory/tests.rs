//! Unit tests of the memory backend's internals: damage planted in the tables
//! and the commit log's validation window. The behaviour every backend shares
//! is checked by the conformance suite (`tests/memory.rs`).

use std::cell::Cell;
use std::sync::Arc;

use uuid::Uuid;

use super::MemoryStore;
use crate::error::Error;
use crate::file::{FileHandle, FileKind, FileMeta};
use crate::lock::{LockQuery, LockType, PersistedLock, ShareReservation};
use crate::time::Timestamp;
use crate::tx::{MetadataStore, MetadataTransaction};
use crate::verify::ProblemKind;

thread_local! {
    static EXAMINED: Cell<usize> = const { Cell::new(0) };
}

/// Counts one commit-log record examined by validation (on this thread).
pub(super) fn examined() {
    EXAMINED.with(|c| c.set(c.get() + 1));
}

fn take_examined() -> usize {
    EXAMINED.with(|c| c.replace(0))
}

fn file(n: u8, share: &str) -> FileMeta {
    FileMeta {
        handle: FileHandle::new(vec![n]).unwrap(),
        share_name: share.to_owned(),
        kind: FileKind::Regular,
        mode: 0o644,
        uid: 1,
        gid: 1,
        nlink: 1,
        size: 0,
        atime: Timestamp::from_micros(0),
        mtime: Timestamp::from_micros(0),
        ctime: Timestamp::from_micros(0),
    }
}

fn lock(n: u8) -> PersistedLock {
    PersistedLock {
        id: Uuid::from_u128(n as u128 + 1),
        share_name: "share".into(),
        file_id: FileHandle::new(vec![n]).unwrap(),
        owner_id: "owner".into(),
        client_id: "client".into(),
        lock_type: LockType::Exclusive,
        offset: 0,
        length: 10,
        share_reservation: ShareReservation::None,
        acquired_at: Timestamp::from_micros(0),
        server_epoch: 1,
        flavor: crate::LockFlavor::Posix,
    }
}

async fn store_with(files: &[FileMeta], locks: &[PersistedLock]) -> MemoryStore {
    let store = MemoryStore::new();
    let mut tx = store.begin().await.unwrap();
    for f in files {
        tx.put_file(f).await.unwrap();
    }
    for l in locks {
        tx.put_lock(l).await.unwrap();
    }
    tx.commit().await.unwrap();
    store
}

/// Issue 14 item 12: an index entry whose record is gone is `Corrupt`, not
/// skipped (`list_files` used to `filter_map` it away).
#[tokio::test]
async fn list_files_with_a_dangling_index_entry_is_corrupt() {
    let store = store_with(&[file(1, "s"), file(2, "s")], &[]).await;
    {
        let mut shared = store.lock_shared();
        let handle = FileHandle::new(vec![2]).unwrap();
        // The record goes; its share-index entry stays.
        shared.tables.files.records_mut().remove(&handle);
    }
    let mut tx = store.begin().await.unwrap();
    match tx.list_files("s").await {
        Err(Error::Corrupt(msg)) => assert!(msg.contains("by_share") || msg.contains("ByShare")),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    drop(tx);
    let report = store.verify().await.unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.kind == ProblemKind::StaleIndexEntry),
        "{report:?}"
    );
}

/// A store of `lock(1)` and `lock(2)` with two damaged lock index entries:
/// `by_client` has one for a lock with no record (`lock(9)`), and `by_file`'s
/// entry for `lock(1)` holds another allocation than the stored record.
async fn store_with_damaged_lock_indexes() -> MemoryStore {
    let store = store_with(&[], &[lock(1), lock(2)]).await;
    {
        let mut shared = store.lock_shared();
        let stale = Arc::new(lock(1));
        let ghost = Arc::new(lock(9));
        let indexes = shared.tables.locks.indexes_mut();
        indexes.by_client.insert(&ghost);
        indexes.by_file.remove(&stale);
        indexes.by_file.insert(&stale);
    }
    store
}

/// The stale entries `verify` reports in `store`.
async fn stale_entries(store: &MemoryStore) -> usize {
    let report = store.verify().await.unwrap();
    report
        .problems
        .iter()
        .filter(|p| p.kind == ProblemKind::StaleIndexEntry)
        .count()
}

/// The same for every index of the lock family, and for an entry that points
/// to a replaced (old) version of its record.
#[tokio::test]
async fn lock_queries_with_a_dangling_or_stale_entry_are_corrupt() {
    let store = store_with_damaged_lock_indexes().await;
    let mut tx = store.begin().await.unwrap();
    for query in [
        LockQuery::by_client("client"),
        LockQuery::by_file(&FileHandle::new(vec![1]).unwrap()),
    ] {
        let result = tx.list_locks(&query).await;
        assert!(
            matches!(result, Err(Error::Corrupt(_))),
            "{query:?}: {result:?}"
        );
    }
    // Indexes without damage still answer.
    assert_eq!(
        tx.list_locks(&LockQuery::by_owner("owner"))
            .await
            .unwrap()
            .len(),
        2
    );
    drop(tx);
    // The ghost in by_client, the old allocation in by_file.
    assert_eq!(stale_entries(&store).await, 2);
}

/// Another transaction held open across a commit when `open` (the commit
/// then replays instead of applying in place).
async fn bystander(store: &MemoryStore, open: bool) -> Option<Box<dyn MetadataTransaction>> {
    match open {
        true => Some(store.begin().await.unwrap()),
        false => None,
    }
}

/// Commits `tx`, which must fail `Corrupt` (`what` says which case), then,
/// with `other` gone, checks that the store of
/// [`store_with_damaged_lock_indexes`] is as it was: both locks, no file 7,
/// both damaged entries.
async fn commit_is_corrupt_and_publishes_nothing(
    store: &MemoryStore,
    tx: Box<dyn MetadataTransaction>,
    other: Option<Box<dyn MetadataTransaction>>,
    what: &str,
) {
    let result = tx.commit().await;
    assert!(
        matches!(result, Err(Error::Corrupt(_))),
        "{what}: {result:?}"
    );
    drop(other);
    let mut tx = store.begin().await.unwrap();
    let owners = tx.list_locks(&LockQuery::by_owner("owner")).await.unwrap();
    let ids: Vec<Uuid> = owners.iter().map(|l| l.id).collect();
    assert_eq!(ids, [lock(1).id, lock(2).id], "{what}");
    assert!(tx.get_file(&file(7, "s").handle).await.unwrap().is_none());
    drop(tx);
    assert_eq!(stale_entries(store).await, 2, "{what}");
}

/// A bulk delete leaves the check of the entries it found to their removal
/// from the record map (`Confirm::AtDelete`): the call counts a corrupt
/// entry, and the commit fails `Corrupt` and publishes nothing (not the
/// transaction's other writes either), whether it commits alone (in place),
/// alone after applying lock writes early (the kept fallback), or beside
/// another open transaction (the replay); a read that applies the pending
/// deletes, or reads a found id, fails the same way, and so does the commit
/// after it; a later put of a found id does not drop the check.
#[tokio::test]
async fn a_bulk_delete_through_a_corrupt_entry_fails_its_commit_and_publishes_nothing() {
    let store = store_with_damaged_lock_indexes().await;
    for (open, settle_first) in [(false, false), (false, true), (true, false)] {
        let other = bystander(&store, open).await;
        let mut tx = store.begin().await.unwrap();
        tx.put_file(&file(7, "s")).await.unwrap();
        if settle_first {
            tx.put_lock(&lock(5)).await.unwrap();
            assert_eq!(tx.list_locks_page(None, 10).await.unwrap().len(), 3);
        }
        let found = tx.delete_locks_by_client("client").await.unwrap();
        assert_eq!(
            found,
            if settle_first { 4 } else { 3 },
            "the ghost is counted"
        );
        let what = format!("bystander {open}, settled {settle_first}");
        commit_is_corrupt_and_publishes_nothing(&store, tx, other, &what).await;
    }
    // The stale by_file entry: the same at its commit.
    let mut tx = store.begin().await.unwrap();
    let file_1 = FileHandle::new(vec![1]).unwrap();
    assert_eq!(tx.delete_locks_by_file(&file_1).await.unwrap(), 1);
    commit_is_corrupt_and_publishes_nothing(&store, tx, None, "by file").await;
    // A read that applies the pending deletes, then the commit.
    let mut tx = store.begin().await.unwrap();
    tx.delete_locks_by_client("client").await.unwrap();
    let read = tx.list_locks(&LockQuery::by_owner("owner")).await;
    assert!(matches!(read, Err(Error::Corrupt(_))), "{read:?}");
    commit_is_corrupt_and_publishes_nothing(&store, tx, None, "after the read").await;
    // A read by id of what the bulk delete found through the stale entry.
    let mut tx = store.begin().await.unwrap();
    tx.delete_locks_by_file(&file_1).await.unwrap();
    let read = tx.get_lock(lock(1).id).await;
    assert!(matches!(read, Err(Error::Corrupt(_))), "{read:?}");
    drop(tx);
    // A put after the bulk delete, of the ghost's id, does not drop the
    // check: the commit fails alone and beside another transaction alike.
    for open in [false, true] {
        let other = bystander(&store, open).await;
        let mut tx = store.begin().await.unwrap();
        tx.delete_locks_by_client("client").await.unwrap();
        tx.put_lock(&lock(9)).await.unwrap();
        let what = format!("put after the delete, bystander {open}");
        commit_is_corrupt_and_publishes_nothing(&store, tx, other, &what).await;
    }
}

/// A record without its index entry is reported by `verify`.
#[tokio::test]
async fn verify_reports_a_missing_index_entry() {
    let store = store_with(&[file(1, "s")], &[lock(1)]).await;
    assert!(store.verify().await.unwrap().is_healthy());
    {
        let mut shared = store.lock_shared();
        let stored = shared
            .tables
            .locks
            .get(&Uuid::from_u128(2))
            .cloned()
            .unwrap();
        shared.tables.locks.indexes_mut().by_epoch.remove(&stored);
    }
    let report = store.verify().await.unwrap();
    assert_eq!(report.problems.len(), 1, "{report:?}");
    assert_eq!(report.problems[0].kind, ProblemKind::MissingIndexEntry);
}

/// Issue 14 item 7: while an old transaction stays open the log keeps every
/// later commit, but validating a new transaction examines only the commits
/// after its own snapshot (none here), not the whole log. Before the binary
/// search, the commit below examined all 100 records.
#[tokio::test]
async fn validation_examines_only_commits_after_the_snapshot() {
    let store = MemoryStore::new();
    let old = store.begin().await.unwrap();
    for n in 0..100u8 {
        let mut tx = store.begin().await.unwrap();
        tx.put_lock(&lock(n)).await.unwrap();
        tx.commit().await.unwrap();
    }
    assert_eq!(store.lock_shared().log.len(), 100);
    take_examined();

    let mut tx = store.begin().await.unwrap();
    let mut racer = store.begin().await.unwrap();
    tx.put_lock(&lock(200)).await.unwrap();
    racer.get_lock(lock(200).id).await.unwrap();
    racer.put_lock(&lock(201)).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(take_examined(), 0, "nothing committed since tx's snapshot");
    // The racer saw neither the 100 commits' absence nor tx: it examines tx's record only.
    assert!(matches!(racer.commit().await, Err(Error::Conflict(_))));
    assert_eq!(take_examined(), 1);
    drop(old);
    assert!(store.lock_shared().log.is_empty());
}

/// The search itself: the first record after each snapshot.
#[tokio::test]
async fn first_after_finds_the_first_later_commit() {
    let store = MemoryStore::new();
    let _old = store.begin().await.unwrap();
    for n in 0..10u8 {
        let mut tx = store.begin().await.unwrap();
        tx.put_lock(&lock(n)).await.unwrap();
        tx.commit().await.unwrap();
    }
    let shared = store.lock_shared();
    let versions: Vec<u64> = shared.log.iter().map(|r| r.version).collect();
    assert_eq!(versions, (1..=10).collect::<Vec<_>>());
    for snapshot in 0..=11 {
        let first = shared.first_after(snapshot);
        assert!(shared.log.range(..first).all(|r| r.version <= snapshot));
        assert!(shared.log.range(first..).all(|r| r.version > snapshot));
    }
}

/// A `GroupSet` scan returns the records an `IndexSet` scan of the same
/// index does, for every kind of value bound a table scan builds (values
/// present and absent, included, excluded, unbounded), after inserts and
/// removals (one group emptied); and within a group each client's records
/// sit side by side, in key order.
#[test]
fn group_set_scans_agree_with_index_set_scans() {
    use std::ops::Bound;

    use super::index_set::{At, Probe};
    use super::locks::{ByEpoch, Locks};
    use super::table::{GroupSet, IndexSet};

    let records: Vec<Arc<PersistedLock>> = (0..60u8)
        .map(|n| {
            let mut l = lock(n);
            // Epochs 1, 2 and 4 (none with 0, 3 or 5), ids out of epoch order,
            // four clients interleaved by id.
            l.server_epoch = [1, 2, 4][(n as usize * 7) % 3];
            l.client_id = format!("client-{}", n % 4);
            Arc::new(l)
        })
        .collect();
    let mut flat = IndexSet::<Locks, ByEpoch>::default();
    let mut grouped = GroupSet::<Locks, ByEpoch>::default();
    for r in &records {
        flat.insert(r);
        grouped.insert(r);
    }
    let mut gone: Vec<_> = records
        .iter()
        .filter(|r| r.server_epoch == 2 || r.id.as_u128() % 5 == 0)
        .cloned()
        .collect();
    flat.remove_all(&mut gone.clone());
    grouped.remove_all(&mut gone);

    let values: &[u64] = &[0, 1, 2, 3, 4, 5];
    let mut bounds = vec![Bound::Unbounded];
    for value in values {
        bounds.push(Bound::Included(value));
        bounds.push(Bound::Excluded(value));
    }
    // The probe an `IndexSet` scan of the same value bound starts or ends at.
    fn probe(b: Bound<&u64>, lower: bool) -> Bound<Probe<'_, Locks, ByEpoch>> {
        let (first, last) = (At::First, At::Last);
        match b {
            Bound::Included(value) => Bound::Included(Probe {
                value,
                at: if lower { first } else { last },
            }),
            Bound::Excluded(value) => Bound::Excluded(Probe {
                value,
                at: if lower { last } else { first },
            }),
            Bound::Unbounded => Bound::Unbounded,
        }
    }
    for (i, &lo) in bounds.iter().enumerate() {
        for (j, &hi) in bounds.iter().enumerate() {
            let mut want: Vec<Uuid> = flat
                .entries(probe(lo, true), probe(hi, false))
                .map(|r| r.id)
                .collect();
            let mut got: Vec<Uuid> = grouped.records(lo, hi).map(|r| r.id).collect();
            want.sort();
            got.sort();
            assert_eq!(got, want, "bounds {i} and {j}");
        }
    }
    // Epoch 1's group: the clients' records in runs (one run per client),
    // each run in id order.
    let epoch1: Vec<&Arc<PersistedLock>> = grouped
        .records(Bound::Included(&1), Bound::Included(&1))
        .collect();
    assert!(epoch1.len() > 8, "{}", epoch1.len());
    let runs = epoch1
        .windows(2)
        .filter(|w| w[0].client_id != w[1].client_id)
        .count()
        + 1;
    assert_eq!(
        runs,
        4,
        "{:?}",
        epoch1.iter().map(|r| &r.client_id).collect::<Vec<_>>()
    );
    assert!(
        epoch1
            .windows(2)
            .all(|w| w[0].client_id != w[1].client_id || w[0].id < w[1].id)
    );
    // The sets are not both empty: 60 records, minus epoch 2's and every fifth.
    let left = grouped.records(Bound::Unbounded, Bound::Unbounded).count();
    assert!(left > 20, "{left}");
}
