//! Bad input, one table: every validation rule at and past its limit, and
//! damaged storage on fjall and PostgreSQL. Each row names the typed result
//! it must give (the error variant, or a `verify()` finding, or `Ok` at a
//! limit); no row may panic, and afterwards the other data must still read
//! back (for input errors: in the same transaction, which stays usable, and
//! with nothing written).
//!
//! Input rows run on every backend (memory, fjall, PostgreSQL when
//! reachable); storage rows on the backend whose storage they damage, each on
//! a store of its own. The table complements, and does not repeat, the
//! damaged-storage checks in tests/fjall.rs (a garbage lock value, an
//! undecodable file, epoch and node value, a dangling `locks_by_client`
//! entry, a newer format version, verify/repair of planted damage) and
//! tests/postgres.rs (`rows_that_break_the_model_are_corrupt`: nine CHECKed
//! columns, a missing `server_state` row). The run prints the table.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use fsmeta::conformance::{handle, sample_file, sample_lock};
use fsmeta::{
    ByteRange, EpochRecord, Error, FileHandle, FileMeta, FjallStore, LockOwner, LockQuery,
    MetadataStore, MetadataTransaction, NodeState, PersistedLock, ProblemKind, Timestamp, TxFuture,
};
use uuid::Uuid;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

// ---------------------------------------------------------------------------
// The seed every row starts from

const GOOD_ID: Uuid = Uuid::from_u128(1);
const VICTIM_ID: Uuid = Uuid::from_u128(2);

fn good_file() -> FileMeta {
    sample_file(b"good", "s")
}

fn victim_file() -> FileMeta {
    sample_file(b"victim", "s")
}

fn good_lock() -> PersistedLock {
    PersistedLock {
        id: GOOD_ID,
        ..sample_lock(&handle(b"good"), "good-owner", "good-client", "s")
    }
}

fn victim_lock() -> PersistedLock {
    PersistedLock {
        id: VICTIM_ID,
        ..sample_lock(&handle(b"victim"), "victim-owner", "victim-client", "s")
    }
}

async fn seed(store: &dyn MetadataStore) {
    let mut tx = store.begin().await.expect("begin");
    for f in [good_file(), victim_file()] {
        tx.put_file(&f).await.expect("seed file");
    }
    for l in [good_lock(), victim_lock()] {
        tx.put_lock(&l).await.expect("seed lock");
    }
    tx.commit().await.expect("seed commit");
}

// ---------------------------------------------------------------------------
// The table

/// The typed result a row must give.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Ok,
    Invalid,
    Corrupt,
    UnsupportedFormat,
    EpochExhausted,
    LockNotFound,
    FileNotFound,
    NodeNotStarted,
    /// `verify()` reports this kind of problem (the store itself reads on).
    Finding(ProblemKind),
}

fn classify(r: &fsmeta::Result<()>) -> String {
    match r {
        Ok(()) => "Ok".into(),
        Err(Error::Invalid(_)) => "Invalid".into(),
        Err(Error::Corrupt(_)) => "Corrupt".into(),
        Err(Error::UnsupportedFormat { .. }) => "UnsupportedFormat".into(),
        Err(Error::EpochExhausted) => "EpochExhausted".into(),
        Err(Error::LockNotFound(_)) => "LockNotFound".into(),
        Err(Error::FileNotFound(_)) => "FileNotFound".into(),
        Err(Error::NodeNotStarted { .. }) => "NodeNotStarted".into(),
        Err(other) => format!("{other:?}"),
    }
}

fn expected_label(e: Expect) -> String {
    match e {
        Expect::Finding(kind) => format!("verify: {kind:?}"),
        other => format!("{other:?}"),
    }
}

type TxOp = for<'a> fn(&'a mut (dyn MetadataTransaction + 'a)) -> TxFuture<'a, ()>;
type StoreOp = for<'a> fn(&'a dyn MetadataStore) -> BoxFuture<'a, fsmeta::Result<()>>;

/// What a row does.
#[derive(Clone, Copy)]
enum Action {
    /// No store: a constructor or parser.
    Plain(fn() -> fsmeta::Result<()>),
    /// In a transaction of the seeded store (every backend).
    Tx(TxOp),
    /// On the seeded store itself: a recovery function (every backend).
    Store(StoreOp),
    /// Opening or connecting with a bad argument.
    Open(fn() -> BoxFuture<'static, fsmeta::Result<()>>),
    /// fjall: damage the closed store on disk, reopen it, probe.
    Fjall(fn(&Path), Probe),
    /// PostgreSQL: edit the tables by hand (CHECKs dropped), probe.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Sql(&'static str, Probe),
}

/// How a damaged store is read.
#[derive(Clone, Copy)]
enum Probe {
    /// Reopen the store (fjall) and run this in a transaction.
    Tx(TxOp),
    /// Reopen the store: the open itself must refuse it.
    Open,
    /// `verify()`.
    Verify,
}

struct Row {
    name: &'static str,
    expect: Expect,
    action: Action,
}

macro_rules! tx_op {
    (|$tx:ident| $body:expr) => {{
        fn op<'a>($tx: &'a mut (dyn MetadataTransaction + 'a)) -> TxFuture<'a, ()> {
            Box::pin(async move {
                $body;
                ::core::result::Result::Ok(())
            })
        }
        op as TxOp
    }};
}

macro_rules! store_op {
    (|$store:ident| $body:expr) => {{
        fn op<'a>($store: &'a dyn MetadataStore) -> BoxFuture<'a, fsmeta::Result<()>> {
            Box::pin(async move {
                $body;
                ::core::result::Result::Ok(())
            })
        }
        op as StoreOp
    }};
}

fn row(name: &'static str, expect: Expect, action: Action) -> Row {
    Row {
        name,
        expect,
        action,
    }
}

fn id(len: usize) -> String {
    "x".repeat(len)
}

fn lock_with(f: impl FnOnce(&mut PersistedLock)) -> PersistedLock {
    let mut lock = PersistedLock {
        id: Uuid::from_u128(99),
        ..sample_lock(&handle(b"new"), "o", "c", "s")
    };
    f(&mut lock);
    lock
}

fn file_with(f: impl FnOnce(&mut FileMeta)) -> FileMeta {
    let mut file = sample_file(b"new", "s");
    f(&mut file);
    file
}

fn owner(owner_id: &str, client_id: &str) -> LockOwner {
    LockOwner {
        owner_id: owner_id.into(),
        client_id: client_id.into(),
        share_name: "s".into(),
    }
}

fn before_year_1() -> Timestamp {
    Timestamp::from_micros(Timestamp::MIN_VALID.as_micros() - 1)
}

fn after_year_9999() -> Timestamp {
    Timestamp::from_micros(Timestamp::MAX_VALID.as_micros() + 1)
}

/// Every row that runs on every backend: API input at and past each limit.
fn input_rows() -> Vec<Row> {
    use Action::{Open, Plain, Store, Tx};
    use Expect::*;
    vec![
        // Owner and client ids: 1..=1024 bytes, no NUL.
        row(
            "owner_id of 1024 bytes",
            Ok,
            Tx(tx_op!(|tx| tx
                .put_lock(&lock_with(|l| l.owner_id = id(1024)))
                .await?)),
        ),
        row(
            "owner_id of 1025 bytes",
            Invalid,
            Tx(tx_op!(|tx| tx
                .put_lock(&lock_with(|l| l.owner_id = id(1025)))
                .await?)),
        ),
        row(
            "owner_id of 512 two-byte chars (1024 bytes)",
            Ok,
            Tx(tx_op!(|tx| tx
                .put_lock(&lock_with(|l| l.owner_id = "é".repeat(512)))
                .await?)),
        ),
        row(
            "client_id of 513 two-byte chars (1026 bytes)",
            Invalid,
            Tx(tx_op!(|tx| tx
                .put_lock(&lock_with(|l| l.client_id = "é".repeat(513)))
                .await?)),
        ),
        row(
            "client_id empty",
            Invalid,
            Tx(tx_op!(|tx| tx
                .put_lock(&lock_with(|l| l.client_id.clear()))
                .await?)),
        ),
        row(
            "client_id with NUL",
            Invalid,
            Tx(tx_op!(|tx| tx
                .put_lock(&lock_with(|l| l.client_id = "c\0".into()))
                .await?)),
        ),
        // Share names: 1..=255 bytes, no NUL.
        row(
            "share_name of 255 bytes",
            Ok,
            Tx(tx_op!(|tx| tx
                .put_file(&file_with(|f| f.share_name = id(255)))
                .await?)),
        ),
        row(
            "share_name of 256 bytes",
            Invalid,
            Tx(tx_op!(|tx| tx
                .put_file(&file_with(|f| f.share_name = id(256)))
                .await?)),
        ),
        row(
            "share_name empty (lock)",
            Invalid,
            Tx(tx_op!(|tx| tx
                .put_lock(&lock_with(|l| l.share_name.clear()))
                .await?)),
        ),
        row(
            "share_name with NUL (list_files)",
            Invalid,
            Tx(tx_op!(|tx| tx.list_files("s\0").await?)),
        ),
        // File handles: 1..=128 bytes.
        row(
            "handle of 128 bytes",
            Ok,
            Tx(tx_op!(|tx| tx
                .put_file(&file_with(|f| f.handle = handle(&[0xff; 128])))
                .await?)),
        ),
        row(
            "handle of 129 bytes",
            Invalid,
            Plain(|| FileHandle::new(vec![1; 129]).map(drop)),
        ),
        row(
            "handle empty",
            Invalid,
            Plain(|| FileHandle::new(Vec::new()).map(drop)),
        ),
        row(
            "handle from odd-length hex",
            Invalid,
            Plain(|| FileHandle::from_hex("abc").map(drop)),
        ),
        row(
            "handle from non-hex text",
            Invalid,
            Plain(|| FileHandle::from_hex("zz").map(drop)),
        ),
        row(
            "handle of 129 bytes through TryFrom (serde's path)",
            Invalid,
            Plain(|| FileHandle::try_from(vec![1; 129]).map(drop)),
        ),
        // Timestamps: years 1..=9999.
        row(
            "acquired_at = year 1 exactly",
            Ok,
            Tx(tx_op!(|tx| tx
                .put_lock(&lock_with(|l| l.acquired_at = Timestamp::MIN_VALID))
                .await?)),
        ),
        row(
            "acquired_at 1 µs before year 1",
            Invalid,
            Tx(tx_op!(|tx| tx
                .put_lock(&lock_with(|l| l.acquired_at = before_year_1()))
                .await?)),
        ),
        row(
            "mtime = end of year 9999 exactly",
            Ok,
            Tx(tx_op!(|tx| tx
                .put_file(&file_with(|f| f.mtime = Timestamp::MAX_VALID))
                .await?)),
        ),
        row(
            "mtime 1 µs after year 9999",
            Invalid,
            Tx(tx_op!(|tx| tx
                .put_file(&file_with(|f| f.mtime = after_year_9999()))
                .await?)),
        ),
        row(
            "ctime = i64::MIN",
            Invalid,
            Tx(tx_op!(|tx| tx
                .put_file(&file_with(|f| f.ctime = Timestamp::from_micros(i64::MIN)))
                .await?)),
        ),
        row(
            "epoch record started_at after year 9999",
            Invalid,
            Tx(tx_op!(|tx| tx
                .put_epoch_record(&EpochRecord {
                    epoch: 5,
                    node_id: "n".into(),
                    started_at: after_year_9999()
                })
                .await?)),
        ),
        // Queries and bulk deletes: a filter that is set is a valid id.
        row(
            "query owner_id empty",
            Invalid,
            Tx(tx_op!(|tx| tx.list_locks(&LockQuery::by_owner("")).await?)),
        ),
        row(
            "query client_id of 1025 bytes",
            Invalid,
            Tx(tx_op!(|tx| tx
                .list_locks(&LockQuery::by_client(&id(1025)))
                .await?)),
        ),
        row(
            "query share_name with NUL",
            Invalid,
            Tx(tx_op!(|tx| tx
                .list_locks(&LockQuery::by_share("s\0"))
                .await?)),
        ),
        row(
            "query with every filter at its limit",
            Ok,
            Tx(tx_op!(|tx| {
                let q = LockQuery {
                    file_id: Some(handle(&[7; 128])),
                    owner_id: Some(id(1024)),
                    client_id: Some(id(1024)),
                    share_name: Some(id(255)),
                    server_epoch_below: Some(u64::MAX),
                    server_epoch: Some(u64::MAX),
                };
                assert_eq!(tx.list_locks(&q).await?, vec![]);
            })),
        ),
        row(
            "delete_locks_by_client empty",
            Invalid,
            Tx(tx_op!(|tx| tx.delete_locks_by_client("").await?)),
        ),
        row(
            "delete_locks_by_client of 1025 bytes",
            Invalid,
            Tx(tx_op!(|tx| tx.delete_locks_by_client(&id(1025)).await?)),
        ),
        // Page limits: at least 1.
        row(
            "list_files_page limit 0",
            Invalid,
            Tx(tx_op!(|tx| tx.list_files_page(None, 0).await?)),
        ),
        row(
            "list_locks_page limit 0",
            Invalid,
            Tx(tx_op!(|tx| tx.list_locks_page(None, 0).await?)),
        ),
        row(
            "list_files_page limit 1",
            Ok,
            Tx(tx_op!(|tx| assert_eq!(
                tx.list_files_page(None, 1).await?.len(),
                1
            ))),
        ),
        row(
            "list_locks_page limit usize::MAX",
            Ok,
            Tx(tx_op!(|tx| assert_eq!(
                tx.list_locks_page(None, usize::MAX).await?.len(),
                2
            ))),
        ),
        // Node ids: like client ids.
        row(
            "node_id of 1024 bytes",
            Ok,
            Tx(tx_op!(|tx| tx.put_node(&NodeState::new(&id(1024))).await?)),
        ),
        row(
            "node_id of 1025 bytes",
            Invalid,
            Tx(tx_op!(|tx| tx.put_node(&NodeState::new(&id(1025))).await?)),
        ),
        row(
            "get_node empty id",
            Invalid,
            Tx(tx_op!(|tx| tx.get_node("").await?)),
        ),
        row(
            "epoch record node_id with NUL",
            Invalid,
            Tx(tx_op!(|tx| tx
                .put_epoch_record(&EpochRecord {
                    epoch: 5,
                    node_id: "n\0".into(),
                    started_at: Timestamp::MIN_VALID
                })
                .await?)),
        ),
        row(
            "declare_dead of an empty node",
            Invalid,
            Store(store_op!(
                |store| fsmeta::declare_dead(store, "", "b").await?
            )),
        ),
        row(
            "declare_dead by a node of 1025 bytes",
            Invalid,
            Store(store_op!(|store| fsmeta::declare_dead(
                store,
                "a",
                &id(1025)
            )
            .await?)),
        ),
        row(
            "declare_dead of a node that never started",
            NodeNotStarted,
            Store(store_op!(|store| fsmeta::declare_dead(
                store,
                "never-started",
                "b"
            )
            .await?)),
        ),
        row(
            "reclaim_lock before the default node began recovery",
            NodeNotStarted,
            Tx(tx_op!(|tx| fsmeta::reclaim_lock(tx, &good_lock()).await?)),
        ),
        // Arbitration validates before it reads.
        row(
            "acquire_lock with an empty owner",
            Invalid,
            Tx(tx_op!(|tx| fsmeta::acquire_lock(
                tx,
                &lock_with(|l| l.owner_id.clear())
            )
            .await?)),
        ),
        row(
            "release_range with an owner id of 1025 bytes",
            Invalid,
            Tx(tx_op!(|tx| fsmeta::release_range(
                tx,
                &handle(b"good"),
                &owner(&id(1025), "c"),
                ByteRange::new(0, 0)
            )
            .await?)),
        ),
        row(
            "release_range with an empty client",
            Invalid,
            Tx(tx_op!(|tx| fsmeta::release_range(
                tx,
                &handle(b"good"),
                &owner("o", ""),
                ByteRange::new(0, 1)
            )
            .await?)),
        ),
        // Missing records.
        row(
            "delete_lock of a missing id",
            LockNotFound,
            Tx(tx_op!(|tx| tx.delete_lock(Uuid::from_u128(12345)).await?)),
        ),
        row(
            "delete_file of a missing handle",
            FileNotFound,
            Tx(tx_op!(|tx| tx.delete_file(&handle(b"missing")).await?)),
        ),
        // Opening.
        row(
            "open an unknown URL scheme",
            Invalid,
            Open(|| Box::pin(async { fsmeta::open("sqlite://x").await.map(drop) })),
        ),
    ]
}

// ---------------------------------------------------------------------------
// fjall: raw access to a closed store (the layout of src/backend/fjall/keys.rs)

fn raw<T>(path: &Path, keyspace: &str, f: impl FnOnce(&fjall::OptimisticTxKeyspace) -> T) -> T {
    let db = fjall::OptimisticTxDatabase::builder(path)
        .open()
        .expect("raw open");
    let ks = db
        .keyspace(keyspace, fjall::KeyspaceCreateOptions::default)
        .expect("raw keyspace");
    let out = f(&ks);
    db.persist(fjall::PersistMode::SyncAll)
        .expect("raw persist");
    out
}

fn raw_get(path: &Path, keyspace: &str, key: &[u8]) -> Vec<u8> {
    raw(path, keyspace, |ks| {
        ks.get(key).expect("raw get").expect("raw value").to_vec()
    })
}

fn raw_put(path: &Path, keyspace: &str, key: &[u8], value: &[u8]) {
    raw(path, keyspace, |ks| {
        ks.insert(key, value).expect("raw insert")
    });
}

fn raw_remove(path: &Path, keyspace: &str, key: &[u8]) {
    raw(path, keyspace, |ks| ks.remove(key).expect("raw remove"));
}

/// `len16(component) | id16`.
fn index_key(component: &[u8], id: Uuid) -> Vec<u8> {
    let len = u16::try_from(component.len()).expect("short component");
    [&len.to_be_bytes()[..], component, id.as_bytes()].concat()
}

/// `len16(share)`: the prefix of `files_by_share` and the lock indexes.
fn prefix(component: &[u8]) -> Vec<u8> {
    let len = u16::try_from(component.len()).expect("short component");
    [&len.to_be_bytes()[..], component].concat()
}

/// The on-disk shape of a lock record, format 1 (codec.rs's `LockV1`),
/// written here independently so the table also pins it.
#[derive(serde::Serialize)]
struct LockV1 {
    share_name: String,
    file_id: Vec<u8>,
    owner_id: String,
    client_id: String,
    lock_type: u8,
    offset: u64,
    length: u64,
    share_reservation: u8,
    acquired_at: i64,
    server_epoch: u64,
}

/// The on-disk shape of a file record, format 1.
#[derive(serde::Serialize)]
struct FileV1 {
    share_name: String,
    kind: u8,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u32,
    size: u64,
    atime: i64,
    mtime: i64,
    ctime: i64,
}

fn lock_v1(l: &PersistedLock) -> LockV1 {
    LockV1 {
        share_name: l.share_name.clone(),
        file_id: l.file_id.as_bytes().to_vec(),
        owner_id: l.owner_id.clone(),
        client_id: l.client_id.clone(),
        lock_type: l.lock_type as u8,
        offset: l.offset,
        length: l.length,
        share_reservation: l.share_reservation as u8,
        acquired_at: l.acquired_at.as_micros(),
        server_epoch: l.server_epoch,
    }
}

fn file_v1(f: &FileMeta) -> FileV1 {
    FileV1 {
        share_name: f.share_name.clone(),
        kind: f.kind as u8,
        mode: f.mode,
        uid: f.uid,
        gid: f.gid,
        nlink: f.nlink,
        size: f.size,
        atime: f.atime.as_micros(),
        mtime: f.mtime.as_micros(),
        ctime: f.ctime.as_micros(),
    }
}

/// Format byte 1, then postcard.
fn encode(value: &impl serde::Serialize) -> Vec<u8> {
    postcard::to_extend(value, vec![1]).expect("postcard")
}

fn victim_lock_key() -> Vec<u8> {
    VICTIM_ID.as_bytes().to_vec()
}

/// Damaged-storage rows for fjall.
fn fjall_rows() -> Vec<Row> {
    use Expect::*;
    use ProblemKind::{MissingIndexEntry, StaleIndexEntry};
    let get_victim_lock = tx_op!(|tx| tx.get_lock(VICTIM_ID).await?);
    let get_victim_file = tx_op!(|tx| tx.get_file(&handle(b"victim")).await?);
    let list_share = tx_op!(|tx| tx.list_files("s").await?);
    vec![
        row(
            "fjall: lock value cut short by one byte",
            Corrupt,
            Action::Fjall(
                |p| {
                    let v = raw_get(p, "locks", &victim_lock_key());
                    raw_put(p, "locks", &victim_lock_key(), &v[..v.len() - 1]);
                },
                Probe::Tx(get_victim_lock),
            ),
        ),
        row(
            "fjall: file value cut in half",
            Corrupt,
            Action::Fjall(
                |p| {
                    let v = raw_get(p, "files", b"victim");
                    raw_put(p, "files", b"victim", &v[..v.len() / 2]);
                },
                Probe::Tx(get_victim_file),
            ),
        ),
        row(
            "fjall: lock value with unknown format byte 2",
            Corrupt,
            Action::Fjall(
                |p| {
                    let mut v = raw_get(p, "locks", &victim_lock_key());
                    v[0] = 2;
                    raw_put(p, "locks", &victim_lock_key(), &v);
                },
                Probe::Tx(tx_op!(|tx| tx
                    .list_locks(&LockQuery::by_client("victim-client"))
                    .await?)),
            ),
        ),
        row(
            "fjall: file value with format byte 0",
            Corrupt,
            Action::Fjall(
                |p| {
                    let mut v = raw_get(p, "files", b"victim");
                    v[0] = 0;
                    raw_put(p, "files", b"victim", &v);
                },
                Probe::Tx(list_share),
            ),
        ),
        row(
            "fjall: lock value with a trailing byte",
            Corrupt,
            Action::Fjall(
                |p| {
                    let mut v = raw_get(p, "locks", &victim_lock_key());
                    v.push(0);
                    raw_put(p, "locks", &victim_lock_key(), &v);
                },
                Probe::Tx(tx_op!(|tx| tx.list_locks(&LockQuery::default()).await?)),
            ),
        ),
        row(
            "fjall: lock record with lock type 7",
            Corrupt,
            Action::Fjall(
                |p| {
                    let v = LockV1 {
                        lock_type: 7,
                        ..lock_v1(&victim_lock())
                    };
                    raw_put(p, "locks", &victim_lock_key(), &encode(&v));
                },
                Probe::Tx(get_victim_lock),
            ),
        ),
        row(
            "fjall: lock record with an empty owner id",
            Corrupt,
            Action::Fjall(
                |p| {
                    let v = LockV1 {
                        owner_id: String::new(),
                        ..lock_v1(&victim_lock())
                    };
                    raw_put(p, "locks", &victim_lock_key(), &encode(&v));
                },
                Probe::Tx(get_victim_lock),
            ),
        ),
        row(
            "fjall: file record in the year 10000",
            Corrupt,
            Action::Fjall(
                |p| {
                    let v = FileV1 {
                        mtime: after_year_9999().as_micros(),
                        ..file_v1(&victim_file())
                    };
                    raw_put(p, "files", b"victim", &encode(&v));
                },
                Probe::Tx(get_victim_file),
            ),
        ),
        row(
            "fjall: empty server_epoch value",
            Corrupt,
            Action::Fjall(
                |p| {
                    raw_put(p, "meta", b"server_epoch", b"");
                },
                Probe::Tx(tx_op!(|tx| tx.server_epoch().await?)),
            ),
        ),
        row(
            "fjall: server_epoch at u64::MAX cannot grow",
            EpochExhausted,
            Action::Fjall(
                |p| {
                    raw_put(p, "meta", b"server_epoch", &encode(&u64::MAX));
                },
                Probe::Tx(tx_op!(|tx| {
                    assert_eq!(tx.server_epoch().await?, u64::MAX);
                    tx.increment_server_epoch().await?
                })),
            ),
        ),
        row(
            "fjall: node value with unknown format byte 9",
            Corrupt,
            Action::Fjall(
                |p| {
                    raw_put(p, "meta", b"node/victim", &[9, 0, 1]);
                },
                Probe::Tx(tx_op!(|tx| tx.list_nodes().await?)),
            ),
        ),
        row(
            "fjall: epoch record key with a 3-byte epoch",
            Corrupt,
            Action::Fjall(
                |p| {
                    raw_put(p, "meta", b"epoch/\x01\x02\x03", &[1, 1, b'n', 0]);
                },
                Probe::Tx(tx_op!(|tx| tx.list_epoch_records().await?)),
            ),
        ),
        row(
            "fjall: format_version 0",
            UnsupportedFormat,
            Action::Fjall(
                |p| {
                    raw_put(p, "meta", b"format_version", &0u32.to_be_bytes());
                },
                Probe::Open,
            ),
        ),
        row(
            "fjall: format_version of 3 bytes",
            Corrupt,
            Action::Fjall(
                |p| {
                    raw_put(p, "meta", b"format_version", &[0, 0, 1]);
                },
                Probe::Open,
            ),
        ),
        row(
            "fjall: garbage key in locks_by_file (3-byte id)",
            Corrupt,
            Action::Fjall(
                |p| {
                    raw_put(
                        p,
                        "locks_by_file",
                        &[prefix(b"victim"), vec![1, 2, 3]].concat(),
                        b"",
                    );
                },
                Probe::Tx(tx_op!(|tx| tx
                    .list_locks(&LockQuery::by_file(&handle(b"victim")))
                    .await?)),
            ),
        ),
        row(
            "fjall: garbage key in files_by_share (200-byte handle)",
            Corrupt,
            Action::Fjall(
                |p| {
                    raw_put(
                        p,
                        "files_by_share",
                        &[prefix(b"s"), vec![b'h'; 200]].concat(),
                        b"",
                    );
                },
                Probe::Tx(list_share),
            ),
        ),
        row(
            "fjall: garbage key in locks_by_epoch (5 bytes)",
            Corrupt,
            Action::Fjall(
                |p| {
                    raw_put(p, "locks_by_epoch", &[0, 0, 0, 0, 1], b"");
                },
                Probe::Tx(tx_op!(|tx| tx
                    .list_locks(&LockQuery::epoch_below(u64::MAX))
                    .await?)),
            ),
        ),
        row(
            "fjall: garbage key in locks (15 bytes)",
            Corrupt,
            Action::Fjall(
                |p| {
                    raw_put(p, "locks", &[7; 15], &[1]);
                },
                Probe::Tx(tx_op!(|tx| tx.list_locks(&LockQuery::default()).await?)),
            ),
        ),
        row(
            "fjall: garbage key in files (200 bytes)",
            Corrupt,
            Action::Fjall(
                |p| {
                    raw_put(p, "files", &[b'f'; 200], &[1]);
                },
                Probe::Tx(tx_op!(|tx| tx.list_files_page(None, 10).await?)),
            ),
        ),
        row(
            "fjall: locks_by_owner entry without its record",
            Corrupt,
            Action::Fjall(
                |p| {
                    raw_put(
                        p,
                        "locks_by_owner",
                        &index_key(b"victim-owner", Uuid::from_u128(77)),
                        b"",
                    );
                },
                Probe::Tx(tx_op!(|tx| tx
                    .list_locks(&LockQuery::by_owner("victim-owner"))
                    .await?)),
            ),
        ),
        row(
            "fjall: files_by_share entry without its record",
            Corrupt,
            Action::Fjall(
                |p| {
                    raw_put(
                        p,
                        "files_by_share",
                        &[prefix(b"s"), b"ghost".to_vec()].concat(),
                        b"",
                    );
                },
                Probe::Tx(list_share),
            ),
        ),
        row(
            "fjall: lock record without its locks_by_client entry",
            Finding(MissingIndexEntry),
            Action::Fjall(
                |p| {
                    raw_remove(
                        p,
                        "locks_by_client",
                        &index_key(b"victim-client", VICTIM_ID),
                    );
                },
                Probe::Verify,
            ),
        ),
        row(
            "fjall: file record without its files_by_share entry",
            Finding(MissingIndexEntry),
            Action::Fjall(
                |p| {
                    raw_remove(
                        p,
                        "files_by_share",
                        &[prefix(b"s"), b"victim".to_vec()].concat(),
                    );
                },
                Probe::Verify,
            ),
        ),
        row(
            "fjall: locks_by_share entry naming a share the lock is not in",
            Finding(StaleIndexEntry),
            Action::Fjall(
                |p| {
                    raw_put(p, "locks_by_share", &index_key(b"zz", VICTIM_ID), b"");
                },
                Probe::Verify,
            ),
        ),
    ]
}

/// Damaged-storage rows for PostgreSQL: rows edited by hand, their CHECKs dropped.
#[cfg(feature = "postgres")]
fn postgres_rows() -> Vec<Row> {
    use Action::Sql;
    use Expect::*;
    let get_victim_lock = tx_op!(|tx| tx.get_lock(VICTIM_ID).await?);
    let get_victim_file = tx_op!(|tx| tx.get_file(&handle(b"victim")).await?);
    vec![
        row(
            "postgres: files.size = u64::MAX + 1",
            Corrupt,
            Sql(
                "UPDATE files SET size = 18446744073709551616 WHERE handle = 'victim'",
                Probe::Tx(get_victim_file),
            ),
        ),
        row(
            "postgres: files.nlink = u32::MAX + 1",
            Corrupt,
            Sql(
                "UPDATE files SET nlink = 4294967296 WHERE handle = 'victim'",
                Probe::Tx(get_victim_file),
            ),
        ),
        row(
            "postgres: files.uid = -1",
            Corrupt,
            Sql(
                "UPDATE files SET uid = -1 WHERE handle = 'victim'",
                Probe::Tx(tx_op!(|tx| tx.list_files("s").await?)),
            ),
        ),
        row(
            "postgres: files.kind = -1",
            Corrupt,
            Sql(
                "UPDATE files SET kind = -1 WHERE handle = 'victim'",
                Probe::Tx(get_victim_file),
            ),
        ),
        row(
            "postgres: files.share_name = ''",
            Corrupt,
            Sql(
                "UPDATE files SET share_name = '' WHERE handle = 'victim'",
                Probe::Tx(get_victim_file),
            ),
        ),
        row(
            "postgres: files.handle of 129 bytes",
            Corrupt,
            Sql(
                "UPDATE files SET handle = decode(repeat('ab', 129), 'hex') WHERE handle = 'victim'",
                Probe::Tx(tx_op!(|tx| tx.list_files_page(None, 10).await?)),
            ),
        ),
        row(
            "postgres: locks.length = -1",
            Corrupt,
            Sql(
                "UPDATE locks SET length = -1 WHERE client_id = 'victim-client'",
                Probe::Tx(get_victim_lock),
            ),
        ),
        row(
            "postgres: locks.offset = u64::MAX + 1",
            Corrupt,
            Sql(
                "UPDATE locks SET \"offset\" = 18446744073709551616 WHERE client_id = 'victim-client'",
                Probe::Tx(tx_op!(|tx| tx
                    .list_locks(&LockQuery::by_client("victim-client"))
                    .await?)),
            ),
        ),
        row(
            "postgres: locks.owner_id = ''",
            Corrupt,
            Sql(
                "UPDATE locks SET owner_id = '' WHERE client_id = 'victim-client'",
                Probe::Tx(get_victim_lock),
            ),
        ),
        row(
            "postgres: locks.client_id of 1025 bytes",
            Corrupt,
            Sql(
                "UPDATE locks SET client_id = repeat('x', 1025) WHERE client_id = 'victim-client'",
                Probe::Tx(get_victim_lock),
            ),
        ),
        row(
            "postgres: locks.acquired_at in 1 BC",
            Corrupt,
            Sql(
                "UPDATE locks SET acquired_at = '0001-12-31 23:59:59.999999+00 BC' WHERE client_id = 'victim-client'",
                Probe::Tx(get_victim_lock),
            ),
        ),
        row(
            "postgres: server_state.epoch = u64::MAX cannot grow",
            EpochExhausted,
            Sql(
                "UPDATE server_state SET epoch = 18446744073709551615",
                Probe::Tx(tx_op!(|tx| {
                    assert_eq!(tx.server_epoch().await?, u64::MAX);
                    tx.increment_server_epoch().await?
                })),
            ),
        ),
        row(
            "postgres: server_state.epoch = -1",
            Corrupt,
            Sql(
                "UPDATE server_state SET epoch = -1",
                Probe::Tx(tx_op!(|tx| tx.server_epoch().await?)),
            ),
        ),
        row(
            "postgres: nodes.epoch = -1",
            Corrupt,
            Sql(
                "INSERT INTO nodes (node_id, epoch, clean_shutdown) VALUES ('victim', -1, true)",
                Probe::Tx(tx_op!(|tx| tx.get_node("victim").await?)),
            ),
        ),
        row(
            "postgres: epoch_records.started_at = -infinity",
            Corrupt,
            Sql(
                "INSERT INTO epoch_records (epoch, node_id, started_at) VALUES (3, 'victim', '-infinity')",
                Probe::Tx(tx_op!(|tx| tx.list_epoch_records().await?)),
            ),
        ),
    ]
}

// ---------------------------------------------------------------------------
// Running a row

/// What a row gave, or that it panicked.
fn outcome(r: Result<fsmeta::Result<()>, tokio::task::JoinError>) -> String {
    match r {
        Ok(r) => classify(&r),
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            format!("PANIC: {msg}")
        }
        Err(e) => format!("task failed: {e}"),
    }
}

/// The seed reads back in a new transaction (other data readable).
async fn assert_seed_readable(store: &dyn MetadataStore, what: &str) {
    let mut tx = store.begin().await.expect("begin");
    assert_eq!(
        tx.get_file(&handle(b"good")).await.expect("good file"),
        Some(good_file()),
        "{what}"
    );
    assert_eq!(
        tx.get_lock(GOOD_ID).await.expect("good lock"),
        Some(good_lock()),
        "{what}"
    );
    assert_eq!(
        tx.list_locks(&LockQuery::by_client("good-client"))
            .await
            .expect("good client"),
        vec![good_lock()],
        "{what}"
    );
}

/// Runs an input row on a seeded store: the result, then (for an error)
/// the same transaction still works and nothing was written; rolled back.
async fn run_input(store: Arc<dyn MetadataStore>, action: Action) -> fsmeta::Result<()> {
    match action {
        Action::Plain(f) => f(),
        Action::Open(f) => f().await,
        Action::Store(f) => {
            let result = f(&*store).await;
            assert_seed_readable(&*store, "after a store-level row").await;
            result
        }
        Action::Tx(op) => {
            let mut tx = store.begin().await.expect("begin");
            let result = op(&mut *tx).await;
            if let Err(e) = &result {
                assert!(!e.is_retryable(), "an input error is not a conflict: {e}");
                // Nothing written, and the transaction is still usable.
                assert_eq!(
                    tx.list_locks(&LockQuery::default())
                        .await
                        .expect("usable: list_locks"),
                    vec![good_lock(), victim_lock()],
                    "written despite {e}"
                );
                assert_eq!(
                    tx.list_files("s").await.expect("usable: list_files"),
                    vec![good_file(), victim_file()],
                    "written despite {e}"
                );
                let after = sample_file(b"after", "s");
                tx.put_file(&after).await.expect("usable: put_file");
                assert_eq!(
                    tx.get_file(&after.handle).await.expect("usable: get"),
                    Some(after)
                );
            }
            tx.rollback().await.expect("rollback");
            assert_seed_readable(&*store, "after an input row").await;
            result
        }
        Action::Fjall(..) | Action::Sql(..) => unreachable!("storage rows run on their backend"),
    }
}

async fn probe(store: &dyn MetadataStore, probe: Probe, expect: Expect) -> fsmeta::Result<()> {
    match probe {
        Probe::Tx(op) => {
            let mut tx = store.begin().await.expect("begin");
            op(&mut *tx).await
        }
        Probe::Verify => {
            let report = store.verify().await?;
            match expect {
                Expect::Finding(kind) if report.problems.iter().any(|p| p.kind == kind) => Ok(()),
                _ => Err(Error::Corrupt(format!(
                    "verify found {:?}",
                    report.problems
                ))),
            }
        }
        Probe::Open => unreachable!("handled by the backend"),
    }
}

/// A storage row on fjall: seed, close, damage, reopen, probe, read the seed.
async fn run_fjall(action: Action, expect: Expect) -> fsmeta::Result<()> {
    let Action::Fjall(damage, how) = action else {
        unreachable!()
    };
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let store = FjallStore::open(dir.path()).expect("open");
        seed(&store).await;
        // The records are where the layout says, shaped as the mirrors say.
        assert_eq!(
            raw_get_after_close(store, dir.path()),
            encode(&lock_v1(&victim_lock()))
        );
    }
    damage(dir.path());
    let result = match how {
        Probe::Open => {
            let opened = FjallStore::open(dir.path()).map(drop);
            // Refused, and left as it was: with the format record repaired it opens.
            raw_put(
                dir.path(),
                "meta",
                b"format_version",
                &FjallStore::FORMAT_VERSION.to_be_bytes(),
            );
            opened
        }
        _ => Ok(()),
    };
    let store = FjallStore::open(dir.path()).expect("reopen");
    let result = match how {
        Probe::Open => result,
        other => probe(&store, other, expect).await,
    };
    assert_seed_readable(&store, "after damage").await;
    result
}

fn raw_get_after_close(store: FjallStore, path: &Path) -> Vec<u8> {
    drop(store);
    raw_get(path, "locks", &victim_lock_key())
}

#[cfg(feature = "postgres")]
async fn run_sql(action: Action, expect: Expect) -> fsmeta::Result<()> {
    use sea_orm::ConnectionTrait;
    let Action::Sql(sql, how) = action else {
        unreachable!()
    };
    let Some(schema) = fsmeta::conformance::postgres::TestSchema::create().await else {
        return Err(Error::Closed("PostgreSQL unreachable".into()));
    };
    let store = schema.connect().await.expect("connect");
    seed(&store).await;
    let db = schema.sql().await;
    let drop_checks = "DO $$ DECLARE r record; BEGIN \
        FOR r IN SELECT conrelid::regclass AS t, conname FROM pg_constraint \
                 WHERE contype = 'c' AND connamespace = current_schema()::regnamespace LOOP \
            EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.t, r.conname); \
        END LOOP; END $$";
    db.execute_unprepared(drop_checks)
        .await
        .expect("drop CHECKs");
    db.execute_unprepared(sql).await.expect("damage");
    let _ = db.close().await;
    let result = probe(&store, how, expect).await;
    assert_seed_readable(&store, "after damage").await;
    let _ = store.close().await;
    schema.drop_now().await;
    result
}

// ---------------------------------------------------------------------------
// The test

struct Line {
    name: &'static str,
    backend: &'static str,
    expected: String,
    got: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_table() {
    let mut lines = Vec::new();
    let mut stores: Vec<(&'static str, Arc<dyn MetadataStore>)> =
        vec![("memory", Arc::new(fsmeta::MemoryStore::new()))];
    let dir = tempfile::tempdir().expect("temp dir");
    stores.push((
        "fjall",
        Arc::new(FjallStore::open(dir.path()).expect("open")),
    ));
    #[cfg(feature = "postgres")]
    let schema = fsmeta::conformance::postgres::TestSchema::create().await;
    #[cfg(feature = "postgres")]
    if let Some(schema) = &schema {
        stores.push((
            "postgres",
            Arc::new(schema.connect().await.expect("connect")),
        ));
    }
    let inputs = input_rows();
    for (backend, store) in &stores {
        seed(&**store).await;
        for r in &inputs {
            // Plain and open rows do not depend on the backend: once is enough.
            if matches!(r.action, Action::Plain(_) | Action::Open(_)) && *backend != "memory" {
                continue;
            }
            let (store, action) = (store.clone(), r.action);
            let got = outcome(tokio::spawn(run_input(store, action)).await);
            lines.push(Line {
                name: r.name,
                backend: if matches!(r.action, Action::Plain(_) | Action::Open(_)) {
                    "-"
                } else {
                    backend
                },
                expected: expected_label(r.expect),
                got,
            });
        }
    }
    for r in fjall_rows() {
        let got = outcome(tokio::spawn(run_fjall(r.action, r.expect)).await);
        let got = if got == "Ok" && matches!(r.expect, Expect::Finding(_)) {
            expected_label(r.expect)
        } else {
            got
        };
        lines.push(Line {
            name: r.name,
            backend: "fjall",
            expected: expected_label(r.expect),
            got,
        });
    }
    #[cfg(feature = "postgres")]
    if schema.is_some() {
        for r in postgres_rows() {
            let got = outcome(tokio::spawn(run_sql(r.action, r.expect)).await);
            lines.push(Line {
                name: r.name,
                backend: "postgres",
                expected: expected_label(r.expect),
                got,
            });
        }
    }
    #[cfg(feature = "postgres")]
    if let Some(schema) = schema {
        drop(stores);
        schema.drop_now().await;
    }

    let failed: Vec<&Line> = lines.iter().filter(|l| l.got != l.expected).collect();
    let rows = input_rows().len() + fjall_rows().len() + postgres_rows().len();
    eprintln!("| case | backend | expected | got |\n|---|---|---|---|");
    for l in &lines {
        let mark = if l.got == l.expected { "" } else { " ✗" };
        eprintln!(
            "| {} | {} | {} | {}{mark} |",
            l.name, l.backend, l.expected, l.got
        );
    }
    eprintln!(
        "bad input: {rows} rows, {} cases run, {} as documented, {} not (a panic counts as not)",
        lines.len(),
        lines.len() - failed.len(),
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} cases differ from the table (see above)",
        failed.len()
    );
    assert!(rows >= 30);
}

/// Without feature `postgres`, no PostgreSQL rows.
#[cfg(not(feature = "postgres"))]
fn postgres_rows() -> Vec<Row> {
    Vec::new()
}
