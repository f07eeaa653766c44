//! The fjall backend: the conformance and persistence suites in both
//! durability modes, plus what only an on-disk store can get wrong (reopen,
//! corrupt bytes, a newer format, a directory that is already open).
//!
//! The raw-fjall tests write the documented key layout
//! (`src/backend/fjall/keys.rs`) directly, so they also pin that layout.

use std::path::Path;
use std::sync::Arc;

use fsmeta::conformance::{Harness, TestStore, handle, sample_file, sample_lock};
use fsmeta::{
    Durability, Error, FjallOptions, FjallStore, LockQuery, MetadataStore, MetadataTransaction,
};
use tempfile::TempDir;

/// A fresh store in its own temporary directory.
struct Fresh(Durability);

struct Fixture {
    dir: TempDir,
    options: FjallOptions,
    store: Option<FjallStore>,
}

#[async_trait::async_trait]
impl Harness for Fresh {
    async fn create(&self) -> Option<Box<dyn TestStore>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = FjallOptions {
            durability: self.0,
            ..Default::default()
        };
        let store = FjallStore::open_with(dir.path(), options.clone()).expect("open fjall store");
        Some(Box::new(Fixture {
            dir,
            options,
            store: Some(store),
        }))
    }
}

#[async_trait::async_trait]
impl TestStore for Fixture {
    fn store(&self) -> Arc<dyn MetadataStore> {
        Arc::new(self.store.clone().expect("the store failed to reopen"))
    }

    async fn reopen(&mut self) -> fsmeta::Result<()> {
        // Dropping the last handle closes the database and releases its lock.
        self.store = None;
        self.store = Some(FjallStore::open_with(
            self.dir.path(),
            self.options.clone(),
        )?);
        Ok(())
    }
}

/// A fresh store inside a host's own database ([`FjallStore::from_database`]),
/// next to host keyspaces named like fsmeta's unprefixed ones and holding
/// junk: any read of them by fsmeta fails a check.
struct Hosted;

struct HostedFixture {
    dir: TempDir,
    store: Option<FjallStore>,
}

/// Keyspaces a host happens to name like fsmeta's own (when fsmeta has the
/// database to itself), with entries fsmeta would choke on or list.
const HOST_LOOKALIKES: [(&str, &[u8], &[u8]); 5] = [
    ("meta", b"format_version", b"host junk"),
    ("locks", &[7; 16], b"host junk"),
    ("files", b"fh-host", b"host junk"),
    ("locks_by_client", b"\x00\x01c-not-an-entry", b""),
    ("ext", b"\x05hosts1", b"\x01looks like an ext record"),
];

fn host_db(path: &Path) -> fjall::OptimisticTxDatabase {
    fjall::OptimisticTxDatabase::builder(path)
        .open()
        .expect("host opens its database")
}

/// The host's database in `path`, its lookalike keyspaces planted.
fn host_db_with_lookalikes(path: &Path) -> fjall::OptimisticTxDatabase {
    let db = host_db(path);
    for (name, key, value) in HOST_LOOKALIKES {
        db.keyspace(name, fjall::KeyspaceCreateOptions::default)
            .expect("host keyspace")
            .insert(key, value)
            .expect("host insert");
    }
    db
}

#[async_trait::async_trait]
impl Harness for Hosted {
    async fn create(&self) -> Option<Box<dyn TestStore>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = host_db_with_lookalikes(dir.path());
        let store = FjallStore::from_database(db, FjallOptions::default()).expect("from_database");
        Some(Box::new(HostedFixture {
            dir,
            store: Some(store),
        }))
    }
}

#[async_trait::async_trait]
impl TestStore for HostedFixture {
    fn store(&self) -> Arc<dyn MetadataStore> {
        Arc::new(self.store.clone().expect("the store failed to reopen"))
    }

    async fn reopen(&mut self) -> fsmeta::Result<()> {
        // The store holds the last handle to the host's database.
        self.store = None;
        let db = host_db(self.dir.path());
        self.store = Some(FjallStore::from_database(db, FjallOptions::default())?);
        Ok(())
    }
}

mod hosted {
    fsmeta::conformance_tests!(super::Hosted);
    fsmeta::persistence_tests!(super::Hosted);
}

mod buffered {
    fsmeta::conformance_tests!(super::Fresh(fsmeta::Durability::Buffered));
    fsmeta::persistence_tests!(super::Fresh(fsmeta::Durability::Buffered));
}

mod sync {
    fsmeta::conformance_tests!(super::Fresh(fsmeta::Durability::Sync));
    fsmeta::persistence_tests!(super::Fresh(fsmeta::Durability::Sync));
}

// ---------------------------------------------------------------------------
// Helpers

async fn begin(store: &FjallStore) -> Box<dyn MetadataTransaction> {
    store.begin().await.expect("begin")
}

/// Writes raw key/value pairs with plain fjall into a closed store.
fn raw_insert(path: &Path, keyspace: &str, entries: &[(&[u8], &[u8])]) {
    let db = fjall::OptimisticTxDatabase::builder(path)
        .open()
        .expect("raw open");
    let ks = db
        .keyspace(keyspace, fjall::KeyspaceCreateOptions::default)
        .expect("raw keyspace");
    for (key, value) in entries {
        ks.insert(*key, *value).expect("raw insert");
    }
    db.persist(fjall::PersistMode::SyncAll)
        .expect("raw persist");
}

/// Removes raw keys with plain fjall from a closed store.
fn raw_remove(path: &Path, keyspace: &str, keys: &[&[u8]]) {
    let db = fjall::OptimisticTxDatabase::builder(path)
        .open()
        .expect("raw open");
    let ks = db
        .keyspace(keyspace, fjall::KeyspaceCreateOptions::default)
        .expect("raw keyspace");
    for key in keys {
        ks.remove(*key).expect("raw remove");
    }
    db.persist(fjall::PersistMode::SyncAll)
        .expect("raw persist");
}

/// `len16(component) | id16`, as keys.rs draws lock index keys.
fn index_key(component: &[u8], id: uuid::Uuid) -> Vec<u8> {
    let len = u16::try_from(component.len()).expect("short component");
    [&len.to_be_bytes()[..], component, id.as_bytes()].concat()
}

fn assert_corrupt<T: std::fmt::Debug>(what: &str, r: fsmeta::Result<T>, names: &[&str]) {
    match r {
        Err(Error::Corrupt(msg)) => {
            for name in names {
                assert!(msg.contains(name), "{what}: {msg:?} should name {name:?}");
            }
        }
        other => panic!("{what}: expected Error::Corrupt, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// fjall-only checks

/// Garbage under a lock key is `Corrupt` naming keyspace and key, for a get and
/// for every listing that reaches it; other records stay readable.
#[tokio::test]
async fn corrupt_lock_value_is_reported_not_skipped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (f1, f2) = (sample_file(b"f1", "s"), sample_file(b"f2", "s"));
    let (bad, good) = (
        sample_lock(&f1.handle, "o", "c", "s"),
        sample_lock(&f2.handle, "o", "c", "s"),
    );
    {
        let store = FjallStore::open(dir.path()).expect("open");
        let mut tx = begin(&store).await;
        for f in [&f1, &f2] {
            tx.put_file(f).await.expect("put_file");
        }
        for l in [&bad, &good] {
            tx.put_lock(l).await.expect("put_lock");
        }
        tx.commit().await.expect("commit");
    }
    raw_insert(
        dir.path(),
        "locks",
        &[(bad.id.as_bytes(), b"\x01\xff\xff\xff garbage")],
    );

    let store = FjallStore::open(dir.path()).expect("reopen");
    let mut tx = begin(&store).await;
    let key_hex: String = bad
        .id
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_corrupt(
        "get_lock",
        tx.get_lock(bad.id).await,
        &["`locks`", &key_hex],
    );
    for q in [
        LockQuery::default(),
        LockQuery::by_file(&f1.handle),
        LockQuery::by_client("c"),
    ] {
        assert_corrupt(
            &format!("list_locks({q:?})"),
            tx.list_locks(&q).await,
            &["`locks`"],
        );
    }
    assert_corrupt(
        "delete_locks_by_client",
        tx.delete_locks_by_client("c").await,
        &["`locks`"],
    );
    assert_eq!(
        tx.get_lock(good.id).await.expect("get good"),
        Some(good.clone())
    );
    assert_eq!(
        tx.list_locks(&LockQuery::by_file(&f2.handle))
            .await
            .expect("list good"),
        vec![good]
    );
    assert_eq!(tx.get_file(&f1.handle).await.expect("get_file"), Some(f1));
}

/// File records, the epoch and node states are checked the same way.
#[tokio::test]
async fn corrupt_file_and_meta_values_are_reported() {
    let dir = tempfile::tempdir().expect("temp dir");
    drop(FjallStore::open(dir.path()).expect("create"));
    raw_insert(dir.path(), "files", &[(b"f1", b"\x01")]);
    raw_insert(dir.path(), "files_by_share", &[(b"\x00\x01sf1", b"")]);
    raw_insert(
        dir.path(),
        "meta",
        &[(b"server_epoch", b"\x07\x01"), (b"node/n1", b"\x01\x05")],
    );
    let store = FjallStore::open(dir.path()).expect("reopen");
    let mut tx = begin(&store).await;
    assert_corrupt("get_file", tx.get_file(&handle(b"f1")).await, &["`files`"]);
    assert_corrupt("list_files", tx.list_files("s").await, &["`files`"]);
    assert_corrupt("server_epoch", tx.server_epoch().await, &["`meta`"]);
    assert_corrupt("increment", tx.increment_server_epoch().await, &["`meta`"]);
    assert_corrupt(
        "get_node",
        tx.get_node("n1").await,
        &["`meta`", "6e6f64652f6e31"],
    );
    assert_corrupt("list_nodes", tx.list_nodes().await, &["`meta`"]);
}

/// An index entry whose record is missing is corruption, not an empty result.
#[tokio::test]
async fn dangling_index_entry_is_reported() {
    let dir = tempfile::tempdir().expect("temp dir");
    drop(FjallStore::open(dir.path()).expect("create"));
    let mut key = b"\x00\x01c".to_vec();
    key.extend_from_slice(uuid::Uuid::from_u128(5).as_bytes());
    raw_insert(dir.path(), "locks_by_client", &[(&key, b"")]);
    let store = FjallStore::open(dir.path()).expect("reopen");
    let r = begin(&store)
        .await
        .list_locks(&LockQuery::by_client("c"))
        .await;
    assert_corrupt("list_locks", r, &["`locks`", "no record"]);
}

/// A store written by a newer format is refused with both versions, and left alone.
#[tokio::test]
async fn newer_format_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    drop(FjallStore::open(dir.path()).expect("create"));
    let newer = FjallStore::FORMAT_VERSION + 1;
    raw_insert(
        dir.path(),
        "meta",
        &[(b"format_version", &newer.to_be_bytes())],
    );
    match FjallStore::open(dir.path()) {
        Err(Error::UnsupportedFormat { found, supported }) => {
            assert_eq!((found, supported), (newer, FjallStore::FORMAT_VERSION));
        }
        other => panic!("expected UnsupportedFormat, got {other:?}"),
    }
    // The refusal released the directory: raw fjall can open it again.
    raw_insert(
        dir.path(),
        "meta",
        &[(b"format_version", &FjallStore::FORMAT_VERSION.to_be_bytes())],
    );
    FjallStore::open(dir.path()).expect("open once the format is readable again");
}

/// A store written before node state existed kept its clean flag in
/// `meta/clean_shutdown`: opening it moves the flag, with the store's epoch,
/// to node `default`.
#[tokio::test]
async fn single_node_store_is_upgraded_to_node_default() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = FjallStore::open(dir.path()).expect("create");
    let mut tx = store.begin().await.expect("begin");
    for _ in 0..7 {
        tx.increment_server_epoch().await.expect("increment");
    }
    tx.commit().await.expect("commit");
    drop(store);
    // The old layout: a version byte, then postcard's `false`.
    raw_insert(dir.path(), "meta", &[(b"clean_shutdown", b"\x01\x00")]);
    let store = FjallStore::open(dir.path()).expect("open an old store");
    let mut tx = store.begin().await.expect("begin");
    assert_eq!(
        tx.get_node(fsmeta::DEFAULT_NODE).await.expect("get_node"),
        Some(fsmeta::NodeState {
            node_id: "default".into(),
            epoch: 7,
            clean_shutdown: false,
            lease_expires_at: None,
            taken_over: None,
        })
    );
    assert!(
        !fsmeta::clean_shutdown(&mut *tx)
            .await
            .expect("clean_shutdown")
    );
    drop(tx);
    let recovery = fsmeta::begin_recovery(&store)
        .await
        .expect("begin_recovery");
    assert!(
        !recovery.previous_shutdown_clean,
        "the old store's unclean flag carried over"
    );
    assert_eq!(recovery.epoch, 8);
    drop(store);
    // The old key is gone, so a second open changes nothing.
    let store = FjallStore::open(dir.path()).expect("reopen");
    let mut tx = store.begin().await.expect("begin");
    assert_eq!(
        tx.get_node("default")
            .await
            .expect("get_node")
            .map(|n| n.epoch),
        Some(8)
    );
}

/// A directory that is open cannot be opened a second time; once every
/// handle is gone it can, over and over (the lock file is released on drop).
#[tokio::test]
async fn open_is_exclusive_and_released_on_drop() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = FjallStore::open(dir.path()).expect("open");
    match FjallStore::open(dir.path()) {
        Err(e @ Error::Backend(_)) => assert!(e.to_string().contains("already open"), "{e}"),
        other => panic!("second open: expected a Backend error, got {other:?}"),
    }
    drop(store);
    for i in 0..20u64 {
        let store = FjallStore::open(dir.path()).expect("reopen after drop");
        let mut tx = begin(&store).await;
        assert_eq!(tx.increment_server_epoch().await.expect("increment"), i + 1);
        tx.commit().await.expect("commit");
    }
}

/// `open("fjall:PATH")` gives a working store that persists across reopen.
#[tokio::test]
async fn url_open_persists() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("fjall:{}", dir.path().display());
    let file = sample_file(b"u", "s");
    {
        let store = fsmeta::open(&url).await.expect("open url");
        let mut tx = store.begin().await.expect("begin");
        tx.put_file(&file).await.expect("put_file");
        tx.commit().await.expect("commit");
    }
    let store = fsmeta::open(&url).await.expect("reopen url");
    let got = store
        .begin()
        .await
        .expect("begin")
        .get_file(&file.handle)
        .await
        .expect("get");
    assert_eq!(got, Some(file));
}

/// An overwrite that moves a lock to another file, owner, client, share and
/// epoch leaves no stale index entry, also after a reopen.
#[tokio::test]
async fn moved_lock_indexes_are_exact_after_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let old = sample_lock(&handle(b"old"), "o1", "c1", "s1");
    let new = fsmeta::PersistedLock {
        file_id: handle(b"new"),
        owner_id: "o2".into(),
        client_id: "c2".into(),
        share_name: "s2".into(),
        server_epoch: 9,
        ..old.clone()
    };
    let moved_file = fsmeta::FileMeta {
        share_name: "s2".into(),
        ..sample_file(b"old", "s1")
    };
    {
        let store = FjallStore::open(dir.path()).expect("open");
        let mut tx = begin(&store).await;
        tx.put_lock(&old).await.expect("put old");
        tx.put_file(&sample_file(b"old", "s1"))
            .await
            .expect("put file");
        tx.commit().await.expect("commit");
        let mut tx = begin(&store).await;
        tx.put_lock(&new).await.expect("put new");
        tx.put_file(&moved_file).await.expect("move file");
        tx.commit().await.expect("commit");
    }
    let store = FjallStore::open(dir.path()).expect("reopen");
    let mut tx = begin(&store).await;
    let stale = [
        LockQuery::by_file(&old.file_id),
        LockQuery::by_owner("o1"),
        LockQuery::by_client("c1"),
        LockQuery::by_share("s1"),
        LockQuery::epoch_below(2),
    ];
    for q in stale {
        assert_eq!(tx.list_locks(&q).await.expect("list"), vec![], "{q:?}");
    }
    let fresh = [
        LockQuery::by_file(&new.file_id),
        LockQuery::by_owner("o2"),
        LockQuery::by_client("c2"),
        LockQuery::by_share("s2"),
        LockQuery::epoch_below(10),
    ];
    for q in fresh {
        assert_eq!(
            tx.list_locks(&q).await.expect("list"),
            vec![new.clone()],
            "{q:?}"
        );
    }
    assert_eq!(tx.list_files("s1").await.expect("list_files s1"), vec![]);
    assert_eq!(
        tx.list_files("s2").await.expect("list_files s2"),
        vec![moved_file]
    );
    assert_eq!(
        tx.delete_locks_by_file(&old.file_id)
            .await
            .expect("delete old"),
        0
    );
    assert_eq!(
        tx.delete_locks_by_client("c2").await.expect("delete new"),
        1
    );
}

/// verify finds planted damage of every kind with its location; repair fixes
/// the indexes (only), and verify then reports only the bad record.
#[tokio::test]
async fn verify_finds_planted_damage_and_repair_fixes_indexes() {
    use fsmeta::ProblemKind::*;
    let dir = tempfile::tempdir().expect("temp dir");
    let files: Vec<_> = (0..4u8).map(|i| sample_file(&[b'f', i], "s")).collect();
    let locks: Vec<_> = files
        .iter()
        .map(|f| sample_lock(&f.handle, "o", "c", "s"))
        .collect();
    {
        let store = FjallStore::open(dir.path()).expect("open");
        let mut tx = begin(&store).await;
        for f in &files {
            tx.put_file(f).await.expect("put_file");
        }
        for l in &locks {
            tx.put_lock(l).await.expect("put_lock");
        }
        tx.increment_server_epoch().await.expect("increment");
        tx.commit().await.expect("commit");
        let report = store.verify().await.expect("verify");
        assert!(report.is_healthy(), "{:?}", report.problems);
        assert_eq!((report.files, report.locks), (4, 4));
        assert_eq!(store.repair().await.expect("repair healthy"), 0);
    }
    let ghost = uuid::Uuid::from_u128(99);
    // Stale: an entry for a lock that does not exist, and one for a value the lock does not carry.
    raw_insert(
        dir.path(),
        "locks_by_client",
        &[
            (&index_key(b"c", ghost), b""),
            (&index_key(b"zz", locks[0].id), b""),
        ],
    );
    // Missing: lock 1 loses its file-index entry, file 2 its share-index entry.
    raw_remove(
        dir.path(),
        "locks_by_file",
        &[&index_key(files[1].handle.as_bytes(), locks[1].id)],
    );
    raw_remove(
        dir.path(),
        "files_by_share",
        &[&[b"\x00\x01s".as_slice(), files[2].handle.as_bytes()].concat()],
    );
    // Undecodable: lock 3's value.
    raw_insert(
        dir.path(),
        "locks",
        &[(locks[3].id.as_bytes(), b"\x01\xff")],
    );

    let store = FjallStore::open(dir.path()).expect("reopen");
    let report = store.verify().await.expect("verify");
    let mut kinds: Vec<_> = report.problems.iter().map(|p| p.kind).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            Undecodable,
            StaleIndexEntry,
            StaleIndexEntry,
            MissingIndexEntry,
            MissingIndexEntry
        ],
        "{:#?}",
        report.problems
    );
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.kind == Undecodable && p.location.contains("`locks`"))
    );
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.kind == MissingIndexEntry && p.location.contains("`files_by_share`"))
    );

    assert_eq!(store.repair().await.expect("repair"), 4);
    let report = store.verify().await.expect("verify after repair");
    let kinds: Vec<_> = report.problems.iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        vec![Undecodable],
        "repair leaves the bad record to the operator"
    );
    let mut tx = begin(&store).await;
    assert_eq!(tx.list_files("s").await.expect("list_files").len(), 4);
    assert_eq!(
        tx.list_locks(&LockQuery::by_file(&files[1].handle))
            .await
            .expect("by file"),
        vec![locks[1].clone()]
    );
    assert_eq!(
        tx.list_locks(&LockQuery::by_client("zz"))
            .await
            .expect("by client"),
        vec![]
    );
}

/// verify reports every damaged record it reaches and keeps walking: a bad
/// file value does not hide a bad lock value, nor either a bad `meta` entry.
#[tokio::test]
async fn verify_reports_every_damaged_record_in_every_keyspace() {
    use fsmeta::ProblemKind::*;
    let dir = tempfile::tempdir().expect("temp dir");
    let files: Vec<_> = (0..3u8).map(|i| sample_file(&[b'f', i], "s")).collect();
    let locks: Vec<_> = files
        .iter()
        .map(|f| sample_lock(&f.handle, "o", "c", "s"))
        .collect();
    {
        let store = FjallStore::open(dir.path()).expect("open");
        let mut tx = begin(&store).await;
        for f in &files {
            tx.put_file(f).await.expect("put_file");
        }
        tx.put_locks(&locks).await.expect("put_locks");
        tx.commit().await.expect("commit");
    }
    raw_insert(
        dir.path(),
        "files",
        &[(files[0].handle.as_bytes(), b"\x01")],
    );
    raw_insert(
        dir.path(),
        "locks",
        &[(locks[1].id.as_bytes(), b"\x02\x00")],
    );
    raw_insert(
        dir.path(),
        "meta",
        &[(b"node/n1", b"\x01\x05"), (b"epoch/\x01", b"\x01")],
    );

    let store = FjallStore::open(dir.path()).expect("reopen");
    let report = store.verify().await.expect("verify");
    assert_eq!(
        (report.files, report.locks),
        (3, 3),
        "every record is counted"
    );
    let found = |kind, keyspace: &str| {
        report
            .problems
            .iter()
            .filter(|p| p.kind == kind && p.location.contains(&format!("`{keyspace}`")))
            .count()
    };
    assert_eq!(found(Undecodable, "files"), 1, "{:#?}", report.problems);
    assert_eq!(found(Undecodable, "locks"), 1, "{:#?}", report.problems);
    assert_eq!(found(Undecodable, "meta"), 1, "{:#?}", report.problems);
    assert_eq!(found(InvalidRecord, "meta"), 1, "{:#?}", report.problems);
    assert_eq!(report.problems.len(), 4, "{:#?}", report.problems);
}

/// repair works in small retried transactions, so a writer committing lock
/// writes the whole time does not make it fail: it fixes exactly the planted
/// damage and the store verifies healthy afterwards. (A repair that is one
/// transaction over the whole store reads every lock, so any commit during
/// it turns the repair into `Conflict`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_succeeds_while_locks_are_written() {
    use fsmeta::MetadataStoreExt;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    const LOCKS: u128 = 2000;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = sample_file(b"f", "s");
    // Even ids for locks; odd ids for the ghosts planted below.
    let locks: Vec<_> = (1..=LOCKS)
        .map(|i| fsmeta::PersistedLock {
            id: uuid::Uuid::from_u128(i * 2),
            ..sample_lock(&file.handle, "o", "c", "s")
        })
        .collect();
    {
        let store = FjallStore::open(dir.path()).expect("open");
        let mut tx = begin(&store).await;
        tx.put_file(&file).await.expect("put_file");
        tx.put_locks(&locks).await.expect("put_locks");
        tx.commit().await.expect("commit");
    }
    // 20 stale entries (ghost locks) and 20 missing ones, spread over the key space.
    let ghosts: Vec<_> = (0..20u128)
        .map(|k| index_key(b"c", uuid::Uuid::from_u128(k * 200 + 1)))
        .collect();
    let ghost_entries: Vec<(&[u8], &[u8])> = ghosts
        .iter()
        .map(|k| (k.as_slice(), b"".as_slice()))
        .collect();
    raw_insert(dir.path(), "locks_by_client", &ghost_entries);
    let damaged: Vec<usize> = (0..20).map(|k| k * 100 + 7).collect();
    let missing: Vec<_> = damaged
        .iter()
        .map(|&i| index_key(file.handle.as_bytes(), locks[i].id))
        .collect();
    let missing_keys: Vec<&[u8]> = missing.iter().map(Vec::as_slice).collect();
    raw_remove(dir.path(), "locks_by_file", &missing_keys);

    let store = FjallStore::open(dir.path()).expect("reopen");
    assert_eq!(store.verify().await.expect("verify").problems.len(), 40);

    // The writer rewrites healthy locks (moving their owner index entries) and
    // adds new ones, committing as fast as it can until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let commits = Arc::new(AtomicU64::new(0));
    let hot: Vec<_> = locks
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 40 == 3 && !damaged.contains(i))
        .map(|(_, l)| l.clone())
        .collect();
    let writer = tokio::spawn({
        let (store, stop, commits) = (store.clone(), stop.clone(), commits.clone());
        async move {
            let mut round = 0usize;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                let mut moved = hot[round % hot.len()].clone();
                moved.owner_id = format!("o{}", round % 3);
                let fresh = fsmeta::PersistedLock {
                    id: uuid::Uuid::from_u128(u128::from(fastrand::u64(..)) << 1),
                    ..moved.clone()
                };
                let batch = [moved, fresh];
                let batch = &batch;
                store
                    .transact(|tx| Box::pin(async move { tx.put_locks(batch).await }))
                    .await
                    .expect("writer commit");
                commits.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        }
    });
    while commits.load(Ordering::Relaxed) < 20 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let before = commits.load(Ordering::Relaxed);
    let repaired = store.repair().await;
    let during = commits.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("writer task");
    assert!(
        during > 0,
        "the writer must have committed while repair ran"
    );
    assert_eq!(
        repaired.expect("repair while a writer commits"),
        40,
        "exactly the planted damage is repaired, each entry once ({during} writer commits during repair)"
    );
    let report = store.verify().await.expect("verify after repair");
    assert!(report.is_healthy(), "{:#?}", report.problems);
}

// ---------------------------------------------------------------------------
// Extension records on disk

/// The documented `ext` layout (`len8(table) | key`, value behind format
/// byte 1) reads back; garbage keys and values are `Corrupt` for the
/// operations that reach them and problems for verify, never a panic, and
/// repair leaves them to the operator.
#[tokio::test]
async fn ext_layout_is_pinned_and_garbage_is_reported() {
    use fsmeta::KeyRange;
    use fsmeta::ProblemKind::*;
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let store = FjallStore::open(dir.path()).expect("open");
        let mut tx = begin(&store).await;
        tx.ext_put("inodes", b"7", b"v7").await.expect("ext_put");
        tx.commit().await.expect("commit");
    }
    raw_insert(dir.path(), "ext", &[(b"\x06inodes8", b"\x01raw")]);
    let store = FjallStore::open(dir.path()).expect("reopen");
    let mut tx = begin(&store).await;
    assert_eq!(
        tx.ext_get("inodes", b"8").await.expect("ext_get"),
        Some(b"raw".to_vec())
    );
    let keys: Vec<_> = tx
        .ext_scan("inodes", &KeyRange::All, None, 10)
        .await
        .expect("ext_scan")
        .into_iter()
        .map(|r| r.key)
        .collect();
    assert_eq!(keys, [b"7".to_vec(), b"8".to_vec()]);
    assert_eq!(tx.ext_tables().await.expect("ext_tables"), ["inodes"]);
    drop((tx, store));

    raw_insert(
        dir.path(),
        "ext",
        &[
            (b"\x03Dir k", b"\x01x"),  // not a table name
            (b"\x05ab", b"\x01x"),     // length past the end
            (b"\x05quota1", b"\x09x"), // unknown value format
            (b"\x05quota2", b""),      // empty value
        ],
    );
    let store = FjallStore::open(dir.path()).expect("reopen");
    let mut tx = begin(&store).await;
    assert_corrupt(
        "ext_get of an unknown format",
        tx.ext_get("quota", b"1").await,
        &["`ext`", "71756f746131"],
    );
    assert_corrupt(
        "ext_scan reaching an empty value",
        tx.ext_scan("quota", &KeyRange::All, None, 10).await,
        &["`ext`"],
    );
    assert_corrupt(
        "ext_tables reaching a bad key",
        tx.ext_tables().await,
        &["`ext`"],
    );
    assert_eq!(
        tx.ext_get("inodes", b"7").await.expect("a good record"),
        Some(b"v7".to_vec())
    );
    drop(tx);
    let report = store.verify().await.expect("verify");
    let found = |kind| {
        report
            .problems
            .iter()
            .filter(|p| p.kind == kind && p.location.contains("`ext`"))
            .count()
    };
    assert_eq!(found(InvalidRecord), 2, "{:#?}", report.problems);
    assert_eq!(found(Undecodable), 2, "{:#?}", report.problems);
    assert_eq!(report.problems.len(), 4, "{:#?}", report.problems);
    assert_eq!(store.repair().await.expect("repair"), 0);
    assert_eq!(store.verify().await.expect("verify").problems.len(), 4);
}

/// A store written before extension tables existed has no `ext` keyspace:
/// it opens (same format version), gains the keyspace, and keeps what it
/// had.
#[tokio::test]
async fn store_from_before_ext_opens_and_gains_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    raw_insert(
        dir.path(),
        "meta",
        &[
            (b"format_version", &1u32.to_be_bytes()),
            (b"server_epoch", b"\x01\x05"),
        ],
    );
    assert!(!host_db(dir.path()).keyspace_exists("ext"));
    let store = FjallStore::open(dir.path()).expect("open an old store");
    let mut tx = begin(&store).await;
    assert_eq!(tx.server_epoch().await.expect("epoch"), 5);
    assert!(tx.ext_tables().await.expect("ext_tables").is_empty());
    tx.ext_put("t", b"k", b"v").await.expect("ext_put");
    tx.commit().await.expect("commit");
    drop(store);
    let store = FjallStore::open(dir.path()).expect("reopen");
    assert_eq!(
        begin(&store)
            .await
            .ext_get("t", b"k")
            .await
            .expect("ext_get"),
        Some(b"v".to_vec())
    );
    assert!(store.verify().await.expect("verify").is_healthy());
}

// ---------------------------------------------------------------------------
// fsmeta inside the host's database, and the native handle

use fsmeta::backend::fjall::native;

/// fsmeta inside a fresh host database in `path`, with the host's own
/// `inodes` keyspace (and a handle to the database, as a host keeps one).
fn hosted(
    path: &Path,
) -> (
    FjallStore,
    fjall::OptimisticTxKeyspace,
    fjall::OptimisticTxDatabase,
) {
    let db = host_db(path);
    let inodes = db
        .keyspace("inodes", fjall::KeyspaceCreateOptions::default)
        .expect("host keyspace");
    let store =
        FjallStore::from_database(db.clone(), FjallOptions::default()).expect("from_database");
    (store, inodes, db)
}

/// A committed host value, read outside any fsmeta transaction.
fn host_get(
    db: &fjall::OptimisticTxDatabase,
    ks: &fjall::OptimisticTxKeyspace,
    key: &[u8],
) -> Option<Vec<u8>> {
    use fjall::Readable;
    db.read_tx()
        .get(ks, key)
        .expect("host read")
        .map(|v| v.to_vec())
}

fn host_error(e: fjall::Error) -> Error {
    Error::backend("the host's fjall call", e)
}

/// A host key and an fsmeta lock written in one transaction commit together;
/// both are visible to the transaction before, and to nobody else until then.
#[tokio::test]
async fn native_host_write_commits_with_fsmeta_lock() {
    use fjall::Readable;
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, inodes, db) = hosted(dir.path());
    let lock = sample_lock(&handle(b"fh-7"), "o", "c", "s");
    let mut tx = begin(&store).await;
    native(&mut *tx)
        .expect("native")
        .insert(&inodes, "7", "mode=644");
    tx.put_lock(&lock).await.expect("put_lock");
    let own = native(&mut *tx)
        .expect("native")
        .get(&inodes, "7")
        .expect("host read");
    assert_eq!(
        own.as_deref(),
        Some(&b"mode=644"[..]),
        "reads its own write"
    );
    assert_eq!(host_get(&db, &inodes, b"7"), None, "uncommitted");
    assert_eq!(
        begin(&store)
            .await
            .get_lock(lock.id)
            .await
            .expect("get_lock"),
        None
    );
    tx.commit().await.expect("commit");
    assert_eq!(host_get(&db, &inodes, b"7"), Some(b"mode=644".to_vec()));
    assert_eq!(
        begin(&store)
            .await
            .get_lock(lock.id)
            .await
            .expect("get_lock"),
        Some(lock)
    );
    assert!(store.verify().await.expect("verify").is_healthy());
}

/// Rolled back, dropped, or failed inside `transact`: neither the host's
/// write nor fsmeta's stays.
#[tokio::test]
async fn native_rollback_discards_host_and_fsmeta_writes() {
    use fsmeta::MetadataStoreExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, inodes, db) = hosted(dir.path());
    let lock = sample_lock(&handle(b"fh-7"), "o", "c", "s");
    for finish in ["rollback", "drop", "error"] {
        if finish == "error" {
            let (inodes, lock) = (&inodes, &lock);
            let outcome: fsmeta::Result<()> = store
                .transact(|tx| {
                    Box::pin(async move {
                        native(tx)?.insert(inodes, "7", "mode=644");
                        tx.put_lock(lock).await?;
                        Err(Error::Invalid("the host's next step failed".into()))
                    })
                })
                .await;
            assert!(matches!(outcome, Err(Error::Invalid(_))), "{outcome:?}");
        } else {
            let mut tx = begin(&store).await;
            native(&mut *tx)
                .expect("native")
                .insert(&inodes, "7", "mode=644");
            tx.put_lock(&lock).await.expect("put_lock");
            if finish == "rollback" {
                tx.rollback().await.expect("rollback");
            } else {
                drop(tx);
            }
        }
        assert_eq!(host_get(&db, &inodes, b"7"), None, "after {finish}");
        assert_eq!(
            begin(&store)
                .await
                .get_lock(lock.id)
                .await
                .expect("get_lock"),
            None,
            "after {finish}"
        );
    }
}

/// A host key read through the native handle and written by a concurrent
/// commit makes the fsmeta commit fail with `Conflict`, writing nothing;
/// `transact` reruns the host's read-modify-write with fsmeta's writes.
#[tokio::test]
async fn native_host_key_conflict_is_conflict_and_transact_reruns() {
    use fjall::Readable;
    use fsmeta::MetadataStoreExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, inodes, db) = hosted(dir.path());
    let count = |raw: Option<fjall::UserValue>| {
        raw.map_or(0, |v| {
            u64::from_be_bytes(v.as_ref().try_into().expect("8 bytes"))
        })
    };
    let host_write = |value: u64| {
        let mut other = db.write_tx().expect("host tx");
        other.insert(&inodes, "count", value.to_be_bytes());
        other.commit().expect("host commit").expect("no conflict");
    };

    let lock = sample_lock(&handle(b"fh-7"), "o", "c", "s");
    let mut tx = begin(&store).await;
    let n = count(
        native(&mut *tx)
            .expect("native")
            .get(&inodes, "count")
            .expect("read"),
    );
    tx.put_lock(&lock).await.expect("put_lock");
    host_write(9); // commits after `tx` read the key
    native(&mut *tx)
        .expect("native")
        .insert(&inodes, "count", (n + 1).to_be_bytes());
    match tx.commit().await {
        Err(Error::Conflict(_)) => {}
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(count(db.read_tx().get(&inodes, "count").expect("read")), 9);
    assert_eq!(
        begin(&store)
            .await
            .get_lock(lock.id)
            .await
            .expect("get_lock"),
        None,
        "the conflicted commit wrote nothing"
    );

    let attempts = AtomicU64::new(0);
    let (inodes_ref, lock_ref, attempts_ref, host_write) = (&inodes, &lock, &attempts, &host_write);
    store
        .transact(|tx| {
            Box::pin(async move {
                let attempt = attempts_ref.fetch_add(1, Ordering::SeqCst) + 1;
                let fjall_tx = native(tx)?;
                let n = count(fjall_tx.get(inodes_ref, "count").map_err(host_error)?);
                if attempt == 1 {
                    host_write(n + 100); // races the first attempt only
                }
                native(tx)?.insert(inodes_ref, "count", (n + 1).to_be_bytes());
                tx.put_lock(lock_ref).await
            })
        })
        .await
        .expect("transact");
    assert_eq!(attempts.load(Ordering::SeqCst), 2, "one rerun");
    assert_eq!(
        count(db.read_tx().get(&inodes, "count").expect("read")),
        9 + 100 + 1,
        "the rerun read the racing write"
    );
    assert_eq!(
        begin(&store)
            .await
            .get_lock(lock.id)
            .await
            .expect("get_lock"),
        Some(lock)
    );
}

/// `native` on another backend's transaction is `Invalid` naming fjall, not
/// a panic, and the transaction stays usable.
#[tokio::test]
async fn native_on_a_memory_transaction_is_invalid() {
    let store = fsmeta::MemoryStore::new();
    let mut tx = store.begin().await.expect("begin");
    match native(&mut *tx).err() {
        Some(Error::Invalid(msg)) => assert!(msg.contains("fjall"), "{msg}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    let file = sample_file(b"fh", "s");
    tx.put_file(&file).await.expect("still usable");
    tx.commit().await.expect("commit");
    assert_eq!(
        store
            .begin()
            .await
            .expect("begin")
            .get_file(&file.handle)
            .await
            .expect("get"),
        Some(file)
    );
}

/// fsmeta's keyspaces in a host database carry the prefix, never read or
/// change the host's (lookalike names included), and survive reopening the
/// database and calling `from_database` again. A cache size cannot be set on
/// a database that is already open.
#[tokio::test]
async fn from_database_keeps_to_its_keyspaces_and_survives_reopen() {
    use fjall::Readable;
    use fsmeta::KeyRange;
    let dir = tempfile::tempdir().expect("temp dir");
    let db = host_db_with_lookalikes(dir.path());
    let sized = FjallOptions {
        cache_size: Some(1 << 20),
        ..Default::default()
    };
    match FjallStore::from_database(db.clone(), sized) {
        Err(Error::Invalid(msg)) => assert!(msg.contains("cache_size"), "{msg}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    let store = FjallStore::from_database(db, FjallOptions::default()).expect("from_database");
    assert_eq!(store.path(), dir.path());
    let file = sample_file(b"fh-1", "s");
    let lock = sample_lock(&file.handle, "o", "c", "s");
    let mut tx = begin(&store).await;
    tx.put_file(&file).await.expect("put_file");
    tx.put_lock(&lock).await.expect("put_lock");
    tx.ext_put("dirents", b"/a", b"fh-1")
        .await
        .expect("ext_put");
    tx.increment_server_epoch().await.expect("increment");
    tx.commit().await.expect("commit");
    drop(store);

    for round in 0..2 {
        let db = host_db(dir.path());
        let names: Vec<String> = db
            .list_keyspace_names()
            .iter()
            .map(|n| n.to_string())
            .collect();
        for name in [
            "fsmeta_meta",
            "fsmeta_files",
            "fsmeta_locks",
            "fsmeta_locks_by_epoch",
            "fsmeta_ext",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
        }
        // The host's lookalikes hold exactly what the host put there.
        for (name, key, value) in HOST_LOOKALIKES {
            let ks = db
                .keyspace(name, fjall::KeyspaceCreateOptions::default)
                .expect("host keyspace");
            let entries: Vec<_> = db
                .read_tx()
                .iter(&ks)
                .map(|g| g.into_inner().expect("read"))
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
                .collect();
            assert_eq!(
                entries,
                [(key.to_vec(), value.to_vec())],
                "{name} (round {round})"
            );
        }
        let store = FjallStore::from_database(db, FjallOptions::default()).expect("again");
        let mut tx = begin(&store).await;
        assert_eq!(tx.server_epoch().await.expect("epoch"), 1);
        assert_eq!(
            tx.list_files("s").await.expect("list_files"),
            std::slice::from_ref(&file)
        );
        assert_eq!(
            tx.list_locks(&LockQuery::default())
                .await
                .expect("list_locks"),
            std::slice::from_ref(&lock)
        );
        assert_eq!(tx.ext_tables().await.expect("ext_tables"), ["dirents"]);
        assert_eq!(
            tx.ext_scan("dirents", &KeyRange::All, None, 10)
                .await
                .expect("ext_scan")
                .len(),
            1
        );
        drop(tx);
        let report = store.verify().await.expect("verify");
        assert!(report.is_healthy(), "{:?}", report.problems);
        assert_eq!((report.files, report.locks), (1, 1));
    }
}

/// The lock value layout per flavour, pinned: a POSIX lock is format 1 (the
/// bytes every earlier build wrote, read as `LockFlavor::Posix`), a Windows
/// lock format 2 (format 1's body, then the flavour byte); the store writes
/// exactly these bytes and reads them back.
#[tokio::test]
async fn lock_flavor_layout_is_pinned() {
    use fsmeta::{LockFlavor, LockType, ShareReservation, Timestamp};
    // postcard: "s", "f", "o", "c", Exclusive, offset 10, length 0, no deny
    // mode, acquired_at 0 (zigzag), epoch 1.
    let body: &[u8] = b"\x01s\x01f\x01o\x01c\x01\x0a\x00\x00\x00\x01";
    let v1 = [b"\x01", body].concat();
    let v2 = [b"\x02", body, b"\x01"].concat();
    let lock = |n: u128, flavor| fsmeta::PersistedLock {
        id: uuid::Uuid::from_u128(n),
        share_name: "s".into(),
        file_id: fsmeta::FileHandle::new(*b"f").expect("handle"),
        owner_id: "o".into(),
        client_id: "c".into(),
        lock_type: LockType::Exclusive,
        offset: 10,
        length: 0,
        share_reservation: ShareReservation::None,
        acquired_at: Timestamp::from_micros(0),
        server_epoch: 1,
        flavor,
    };
    let (old, win) = (lock(1, LockFlavor::Posix), lock(2, LockFlavor::Windows));
    let dir = tempfile::tempdir().expect("temp dir");
    drop(FjallStore::open(dir.path()).expect("create"));
    raw_insert(
        dir.path(),
        "locks",
        &[(old.id.as_bytes(), &v1), (win.id.as_bytes(), &v2)],
    );
    {
        let store = FjallStore::open(dir.path()).expect("reopen");
        let mut tx = begin(&store).await;
        assert_eq!(tx.get_lock(old.id).await.expect("get"), Some(old.clone()));
        assert_eq!(tx.get_lock(win.id).await.expect("get"), Some(win.clone()));
        drop(tx);
        // Written by the store: the same bytes.
        let mut tx = begin(&store).await;
        tx.put_lock(&lock(3, LockFlavor::Posix)).await.expect("put");
        tx.put_lock(&lock(4, LockFlavor::Windows))
            .await
            .expect("put");
        tx.commit().await.expect("commit");
    }
    let db = fjall::OptimisticTxDatabase::builder(dir.path())
        .open()
        .expect("raw open");
    let ks = db
        .keyspace("locks", fjall::KeyspaceCreateOptions::default)
        .expect("raw keyspace");
    let raw = |n: u128| {
        ks.get(uuid::Uuid::from_u128(n).as_bytes())
            .expect("raw get")
            .map(|v| v.to_vec())
    };
    assert_eq!(raw(3), Some(v1));
    assert_eq!(raw(4), Some(v2));
}

/// Group commit (`Durability::Sync`): sixteen committers on a multi-threaded
/// runtime (the in-place blocking path) and four on a current-thread one
/// (the blocking pool) share fsyncs; every acknowledged commit is there after
/// a reopen, and a read-only transaction that follows them commits too.
#[test]
fn sync_group_commit_acknowledges_every_commit() {
    for multi_thread in [true, false] {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = FjallOptions {
            durability: Durability::Sync,
            ..Default::default()
        };
        let runtime = if multi_thread {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        }
        .expect("runtime");
        let committers: u64 = if multi_thread { 16 } else { 4 };
        runtime.block_on(async {
            let store = FjallStore::open_with(dir.path(), options.clone()).expect("open");
            let tasks: Vec<_> = (0..committers)
                .map(|t| {
                    let store = store.clone();
                    tokio::spawn(async move {
                        for k in 0..20u64 {
                            let mut file = sample_file(format!("gc-{t}-{k}").as_bytes(), "export");
                            file.size = t * 100 + k;
                            let mut tx = begin(&store).await;
                            tx.put_file(&file).await.expect("put_file");
                            tx.commit().await.expect("a Sync commit");
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.expect("committer");
            }
            let mut tx = begin(&store).await;
            let files = tx.list_files("export").await.expect("list");
            tx.commit().await.expect("a read-only Sync commit");
            assert_eq!(files.len() as u64, committers * 20);
        });
        let reopened = FjallStore::open_with(dir.path(), options).expect("reopen");
        runtime.block_on(async {
            let mut tx = begin(&reopened).await;
            for t in 0..committers {
                for k in 0..20u64 {
                    let file = tx
                        .get_file(&handle(format!("gc-{t}-{k}").as_bytes()))
                        .await
                        .expect("get_file")
                        .expect("every acknowledged commit survives");
                    assert_eq!(file.size, t * 100 + k);
                }
            }
        });
    }
}

/// When group commit cannot find or open the journal file to sync it (here:
/// moved out of the database's directory), Sync commits do not fail: fjall's
/// own fsync covers them, and they are there after a reopen. (A failed
/// fsync itself is fatal: `group_sync.rs`'s unit test.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_group_commit_cannot_open_falls_back_to_fjalls_sync() {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = FjallOptions {
        durability: Durability::Sync,
        ..Default::default()
    };
    let store = FjallStore::open_with(dir.path(), options.clone()).expect("open");
    let journals: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list the store")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "jnl"))
        .collect();
    assert!(!journals.is_empty(), "a fjall store has a journal file");
    let aside = |path: &Path| path.with_extension("aside");
    for journal in &journals {
        std::fs::rename(journal, aside(journal)).expect("move the journal aside");
    }
    for name in ["first", "second"] {
        let mut tx = begin(&store).await;
        tx.put_file(&sample_file(name.as_bytes(), "export"))
            .await
            .expect("put_file");
        tx.commit()
            .await
            .expect("a Sync commit without the journal in place");
    }
    for journal in &journals {
        std::fs::rename(aside(journal), journal).expect("put the journal back");
    }
    drop(store);
    let reopened = FjallStore::open_with(dir.path(), options).expect("reopen");
    let mut tx = begin(&reopened).await;
    for name in ["first", "second"] {
        let found = tx
            .get_file(&handle(name.as_bytes()))
            .await
            .expect("get_file");
        assert!(found.is_some(), "{name} is not there after a reopen");
    }
}

/// Polls a future to completion on this thread, with no tokio runtime
/// around: what a host with another executor does.
fn block_on_without_tokio<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// Group commit outside any tokio runtime: four threads commit Sync
/// transactions through their own executor; a committer that finds no
/// driver syncs itself and hands what others wait for to a thread of its
/// own. Every commit is acknowledged and there after a reopen.
#[test]
fn sync_group_commit_works_without_a_tokio_runtime() {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = FjallOptions {
        durability: Durability::Sync,
        ..Default::default()
    };
    let store = FjallStore::open_with(dir.path(), options.clone()).expect("open");
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for k in 0..20u64 {
                    block_on_without_tokio(async {
                        let mut tx = store.begin().await.expect("begin");
                        let mut file = sample_file(format!("nt-{t}-{k}").as_bytes(), "export");
                        file.size = t * 100 + k;
                        tx.put_file(&file).await.expect("put_file");
                        tx.commit().await.expect("a Sync commit without tokio");
                    });
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("committer thread");
    }
    drop(store);
    let reopened = FjallStore::open_with(dir.path(), options).expect("reopen");
    block_on_without_tokio(async {
        let mut tx = reopened.begin().await.expect("begin");
        let files = tx.list_files("export").await.expect("list");
        assert_eq!(files.len(), 80, "every acknowledged commit survives");
    });
}
