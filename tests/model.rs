//! Model-based property test: random sequences of transactions on every
//! backend, each answer compared with a plain reference model.
//!
//! A case is a random list of steps. A step is either a transaction — a random
//! list of operations (puts, gets, deletes, listings with random queries,
//! paged listings, bulk deletes, epoch and clean-shutdown reads and writes)
//! ending in commit,
//! rollback or drop — or, on a persistent backend, a reopen (every handle
//! dropped, the same directory or schema opened again). The model is a few
//! `BTreeMap`s with transaction semantics: a working copy per transaction,
//! published at commit. After every operation the backend's answer must equal
//! the model's: the same values, lists in the documented order (locks by id,
//! files by handle) and the same error variant (`Invalid`, `LockNotFound`,
//! `FileNotFound`). After a reopen the whole state is read back and compared;
//! at the end of each case so is every index (each file's, share's, owner's,
//! client's locks, each share's files, locks below an epoch), and
//! `MetadataStore::verify` must report a healthy store with the model's counts.
//!
//! The model re-implements validation and filtering itself (it does not call
//! `fsmeta::validate` or `LockQuery::matches`), so a bug there shows up too.
//!
//! Transactions run one at a time, so no `Conflict` is expected.
//!
//! Stores: memory, new per case; fjall (feature `fjall`), a new directory per
//! case, in `/dev/shm` where it exists (a new store's fsyncs dominated the run
//! time; durability is the crash tests' subject); PostgreSQL (feature
//! `postgres`), one schema per test, emptied through the API before each case
//! (the epoch cannot be reset, so the model starts from the one it finds) and
//! dropped at the end. `--nocapture` prints how often each operation met each
//! kind of answer, and where the time went.
//!
//! Environment:
//! - `FSMETA_MODEL_CASES`: cases per backend (default 256).
//! - `PROPTEST_RNG_SEED`: a fixed seed, to replay a run.
//! - `FSMETA_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`);
//!   without a reachable server the PostgreSQL test prints a notice and passes,
//!   unless `FSMETA_REQUIRE_POSTGRES=1`.
//!
//! Failures are not persisted to `proptest-regressions/` (the input shape
//! changes with the strategies, which would make old seeds meaningless): a
//! failure prints the shrunk sequence, which belongs in a regression test at
//! the end of this file.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;
use std::sync::Arc;

use async_trait::async_trait;
use fsmeta::{
    Error, FileHandle, FileKind, FileMeta, LockQuery, LockType, MetadataStore, MetadataTransaction,
    PersistedLock, ShareReservation, Timestamp,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use uuid::Uuid;

/// Transactions (and reopens) per case, at most.
const MAX_STEPS: usize = 10;
/// Operations per transaction, at most.
const MAX_OPS: usize = 12;

// ---------------------------------------------------------------------------
// Input pools

/// Owner and client ids: separators, prefixes of each other, non-ASCII, the
/// 1024-byte limit (in bytes, not characters); the invalid ones come last.
fn valid_ids() -> Vec<String> {
    vec![
        "client1".into(),
        "client10".into(),
        "c:1".into(),
        "c/1".into(),
        "c 1".into(),
        "clïent".into(),
        "客户端".into(),
        "ö".repeat(512), // 1024 bytes, 512 characters
    ]
}

fn invalid_ids() -> Vec<String> {
    vec!["".into(), "a\0b".into(), format!("{}x", "ö".repeat(512))]
}

/// Share names, likewise, around the 255-byte limit.
fn valid_shares() -> Vec<String> {
    vec![
        "export".into(),
        "export1".into(),
        "ex:port".into(),
        "ex/port".into(),
        "ex port".into(),
        "ëxport".into(),
        format!("{}a", "é".repeat(127)), // 255 bytes
    ]
}

fn invalid_shares() -> Vec<String> {
    vec!["".into(), "s\0".into(), "é".repeat(128)] // the last: 128 characters, 256 bytes
}

/// File handles: prefixes of each other, separator bytes, 0x00/0xff, 128 bytes.
/// (An invalid handle cannot be built through the public API.)
fn handles() -> Vec<FileHandle> {
    let raw: [&[u8]; 8] = [
        &[1, 2],
        &[1, 2, 3],
        &[1],
        &[0],
        &[0xff, 0xff],
        b"a:b",
        b"/",
        &[7; 128],
    ];
    raw.iter()
        .map(|b| FileHandle::new(*b).expect("valid handle"))
        .collect()
}

/// Lock ids: the extremes, ids that differ only in their first or last byte.
fn lock_ids() -> Vec<Uuid> {
    vec![
        Uuid::from_u128(0x67e5_5044_10b1_426f_9247_bb68_0e5f_e0c8),
        Uuid::nil(),
        Uuid::max(),
        Uuid::from_u128(1),
        Uuid::from_u128(1 << 120),
        Uuid::from_u128(0x67e5_5044_10b1_426f_9247_bb68_0e5f_e0c9),
    ]
}

/// Half the draws come from the first three values of a pool (the prefix
/// pairs among them), so that queries and bulk deletes often hit something.
fn pool<T: Clone + fmt::Debug + 'static>(
    valid: Vec<T>,
    invalid: Vec<T>,
) -> impl Strategy<Value = T> {
    let hot = valid[..3].to_vec();
    if invalid.is_empty() {
        prop_oneof![1 => select(hot), 1 => select(valid)].boxed()
    } else {
        prop_oneof![10 => select(hot), 9 => select(valid), 1 => select(invalid)].boxed()
    }
}

fn id() -> impl Strategy<Value = String> {
    pool(valid_ids(), invalid_ids())
}

fn share() -> impl Strategy<Value = String> {
    pool(valid_shares(), invalid_shares())
}

fn handle() -> impl Strategy<Value = FileHandle> {
    pool(handles(), Vec::new())
}

fn lock_id() -> impl Strategy<Value = Uuid> {
    select(lock_ids())
}

/// u64 biased to the edges and to small values (epochs that queries split).
fn u64_edge() -> impl Strategy<Value = u64> {
    prop_oneof![
        2 => Just(0u64),
        2 => Just(1u64),
        1 => Just(2u64),
        2 => Just(1u64 << 63),
        1 => Just((1u64 << 63) - 1),
        2 => Just(u64::MAX),
        1 => Just(u64::MAX - 1),
        2 => any::<u64>(),
    ]
}

fn u32_edge() -> impl Strategy<Value = u32> {
    prop_oneof![
        2 => Just(0u32),
        1 => Just(1u32),
        1 => Just(1u32 << 31),
        2 => Just(u32::MAX),
        2 => any::<u32>(),
    ]
}

/// Valid timestamps, edges first; one in 21 is outside the years 1 to 9999.
fn timestamp() -> impl Strategy<Value = Timestamp> {
    let (min, max) = (
        Timestamp::MIN_VALID.as_micros(),
        Timestamp::MAX_VALID.as_micros(),
    );
    prop_oneof![
        12 => select(vec![0, min, max, -1, 1, min + 1, max - 1, 1_700_000_000_123_456]),
        8 => min..=max,
        1 => select(vec![min - 1, max + 1, i64::MIN, i64::MAX]),
    ]
    .prop_map(Timestamp::from_micros)
}

fn file_kind() -> impl Strategy<Value = FileKind> {
    select(vec![
        FileKind::Regular,
        FileKind::Directory,
        FileKind::Symlink,
        FileKind::Other,
    ])
}

fn file_meta() -> impl Strategy<Value = FileMeta> {
    (
        (handle(), share(), file_kind()),
        (u32_edge(), u32_edge(), u32_edge(), u32_edge(), u64_edge()),
        (timestamp(), timestamp(), timestamp()),
    )
        .prop_map(
            |((handle, share_name, kind), (mode, uid, gid, nlink, size), (atime, mtime, ctime))| {
                FileMeta {
                    handle,
                    share_name,
                    kind,
                    mode,
                    uid,
                    gid,
                    nlink,
                    size,
                    atime,
                    mtime,
                    ctime,
                }
            },
        )
}

fn persisted_lock() -> impl Strategy<Value = PersistedLock> {
    (
        (lock_id(), share(), handle(), id(), id()),
        (
            select(vec![LockType::Shared, LockType::Exclusive]),
            u64_edge(),
            u64_edge(),
            select(vec![
                ShareReservation::None,
                ShareReservation::DenyRead,
                ShareReservation::DenyWrite,
                ShareReservation::DenyAll,
            ]),
            timestamp(),
            u64_edge(),
        ),
    )
        .prop_map(
            |(
                (id, share_name, file_id, owner_id, client_id),
                (lock_type, offset, length, share_reservation, acquired_at, server_epoch),
            )| PersistedLock {
                id,
                share_name,
                file_id,
                owner_id,
                client_id,
                lock_type,
                offset,
                length,
                share_reservation,
                acquired_at,
                server_epoch,
                flavor: fsmeta::LockFlavor::Posix,
            },
        )
}

/// A page size: 0 is invalid, `usize::MAX` means "all".
fn page_limit() -> impl Strategy<Value = usize> {
    prop_oneof![6 => 1..=3usize, 1 => Just(usize::MAX), 1 => Just(1000), 1 => Just(0)]
}

fn lock_query() -> impl Strategy<Value = LockQuery> {
    (
        proptest::option::weighted(0.3, handle()),
        proptest::option::weighted(0.3, id()),
        proptest::option::weighted(0.3, id()),
        proptest::option::weighted(0.3, share()),
        proptest::option::weighted(0.3, u64_edge()),
        proptest::option::weighted(0.2, u64_edge()),
    )
        .prop_map(
            |(file_id, owner_id, client_id, share_name, server_epoch_below, server_epoch)| {
                LockQuery {
                    file_id,
                    owner_id,
                    client_id,
                    share_name,
                    server_epoch_below,
                    server_epoch,
                }
            },
        )
}

// ---------------------------------------------------------------------------
// Operations and steps

/// One call on a transaction.
#[derive(Clone, Debug)]
enum Op {
    PutFile(FileMeta),
    GetFile(FileHandle),
    DeleteFile(FileHandle),
    ListFiles(String),
    ListFilesPage(Option<FileHandle>, usize),
    PutLock(PersistedLock),
    GetLock(Uuid),
    DeleteLock(Uuid),
    ListLocks(LockQuery),
    ListLocksPage(Option<Uuid>, usize),
    DeleteLocksByClient(String),
    DeleteLocksByFile(FileHandle),
    ServerEpoch,
    IncrementServerEpoch,
    CleanShutdown,
    SetCleanShutdown(bool),
}

/// How a transaction ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Commit,
    Rollback,
    Drop,
}

#[derive(Clone, Debug)]
enum Step {
    Tx(Vec<Op>, End),
    /// Drop every handle and open the same store again (persistent backends).
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => file_meta().prop_map(Op::PutFile),
        2 => handle().prop_map(Op::GetFile),
        2 => handle().prop_map(Op::DeleteFile),
        2 => share().prop_map(Op::ListFiles),
        1 => (proptest::option::of(handle()), page_limit())
            .prop_map(|(after, limit)| Op::ListFilesPage(after, limit)),
        6 => persisted_lock().prop_map(Op::PutLock),
        2 => lock_id().prop_map(Op::GetLock),
        3 => lock_id().prop_map(Op::DeleteLock),
        4 => lock_query().prop_map(Op::ListLocks),
        1 => (proptest::option::of(lock_id()), page_limit())
            .prop_map(|(after, limit)| Op::ListLocksPage(after, limit)),
        1 => id().prop_map(Op::DeleteLocksByClient),
        1 => handle().prop_map(Op::DeleteLocksByFile),
        1 => Just(Op::ServerEpoch),
        1 => Just(Op::IncrementServerEpoch),
        1 => Just(Op::CleanShutdown),
        1 => any::<bool>().prop_map(Op::SetCleanShutdown),
    ]
}

fn end() -> impl Strategy<Value = End> {
    prop_oneof![3 => Just(End::Commit), 1 => Just(End::Rollback), 1 => Just(End::Drop)]
}

fn steps(reopen: bool) -> impl Strategy<Value = Vec<Step>> {
    let tx = (vec(op(), 0..=MAX_OPS), end()).prop_map(|(ops, end)| Step::Tx(ops, end));
    let step = if reopen {
        prop_oneof![9 => tx, 1 => Just(Step::Reopen)].boxed()
    } else {
        tx.boxed()
    };
    vec(step, 1..=MAX_STEPS)
}

// ---------------------------------------------------------------------------
// The reference model

/// What an operation answered, comparable between the model and a backend.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Done,
    File(Option<FileMeta>),
    Files(Vec<FileMeta>),
    Lock(Option<PersistedLock>),
    Locks(Vec<PersistedLock>),
    Count(u64),
    Epoch(u64),
    Flag(bool),
    Err(ErrorKind),
}

/// An error, reduced to what the contract fixes (not the message).
#[derive(Clone, Debug, PartialEq, Eq)]
enum ErrorKind {
    Invalid,
    LockNotFound(Uuid),
    FileNotFound(FileHandle),
    /// Anything else (the model never predicts it): the error as printed.
    Unexpected(String),
}

impl From<Error> for ErrorKind {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(_) => ErrorKind::Invalid,
            Error::LockNotFound(id) => ErrorKind::LockNotFound(id),
            Error::FileNotFound(h) => ErrorKind::FileNotFound(h),
            other => ErrorKind::Unexpected(format!("{other:?}")),
        }
    }
}

/// The committed state, or a transaction's working copy of it.
#[derive(Clone, Debug)]
struct Model {
    /// By handle bytes: byte-wise order, a prefix first.
    files: BTreeMap<Vec<u8>, FileMeta>,
    /// By id as a big-endian integer: byte-wise order of the 16 bytes.
    locks: BTreeMap<u128, PersistedLock>,
    epoch: u64,
    clean_shutdown: bool,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            files: BTreeMap::new(),
            locks: BTreeMap::new(),
            epoch: 0,
            clean_shutdown: true,
        }
    }
}

/// The contract's rules, written out again: 1..=max bytes, no NUL.
fn text_ok(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && !s.as_bytes().contains(&0)
}

fn id_ok(s: &str) -> bool {
    text_ok(s, 1024)
}

fn share_ok(s: &str) -> bool {
    text_ok(s, 255)
}

fn timestamp_ok(t: Timestamp) -> bool {
    // 0001-01-01T00:00:00Z ..= 9999-12-31T23:59:59.999999Z
    (-62_135_596_800_000_000..=253_402_300_799_999_999).contains(&t.as_micros())
}

fn file_ok(f: &FileMeta) -> bool {
    share_ok(&f.share_name) && [f.atime, f.mtime, f.ctime].into_iter().all(timestamp_ok)
}

fn lock_ok(l: &PersistedLock) -> bool {
    share_ok(&l.share_name)
        && id_ok(&l.owner_id)
        && id_ok(&l.client_id)
        && timestamp_ok(l.acquired_at)
}

fn query_ok(q: &LockQuery) -> bool {
    q.owner_id.as_deref().is_none_or(id_ok)
        && q.client_id.as_deref().is_none_or(id_ok)
        && q.share_name.as_deref().is_none_or(share_ok)
}

fn query_matches(q: &LockQuery, l: &PersistedLock) -> bool {
    q.file_id
        .as_ref()
        .is_none_or(|f| f.as_bytes() == l.file_id.as_bytes())
        && q.owner_id.as_ref().is_none_or(|o| *o == l.owner_id)
        && q.client_id.as_ref().is_none_or(|c| *c == l.client_id)
        && q.share_name.as_ref().is_none_or(|s| *s == l.share_name)
        && q.server_epoch_below.is_none_or(|e| l.server_epoch < e)
        && q.server_epoch.is_none_or(|e| l.server_epoch == e)
}

const INVALID: Outcome = Outcome::Err(ErrorKind::Invalid);

impl Model {
    fn list_locks(&self, q: &LockQuery) -> Vec<PersistedLock> {
        self.locks
            .values()
            .filter(|l| query_matches(q, l))
            .cloned()
            .collect()
    }

    fn list_files(&self, share: &str) -> Vec<FileMeta> {
        self.files
            .values()
            .filter(|f| f.share_name == share)
            .cloned()
            .collect()
    }

    fn delete_matching(&mut self, q: &LockQuery) -> u64 {
        let before = self.locks.len();
        self.locks.retain(|_, l| !query_matches(q, l));
        (before - self.locks.len()) as u64
    }

    /// Applies `op` to this (working) state and returns what the contract says it answers.
    fn apply(&mut self, op: &Op) -> Outcome {
        match op {
            Op::PutFile(f) if !file_ok(f) => INVALID,
            Op::PutFile(f) => {
                self.files.insert(f.handle.as_bytes().to_vec(), f.clone());
                Outcome::Done
            }
            Op::GetFile(h) => Outcome::File(self.files.get(h.as_bytes()).cloned()),
            Op::DeleteFile(h) => match self.files.remove(h.as_bytes()) {
                Some(_) => Outcome::Done,
                None => Outcome::Err(ErrorKind::FileNotFound(h.clone())),
            },
            Op::ListFiles(s) if !share_ok(s) => INVALID,
            Op::ListFiles(s) => Outcome::Files(self.list_files(s)),
            Op::ListFilesPage(_, 0) => INVALID,
            Op::ListFilesPage(after, limit) => {
                let start = match after {
                    Some(h) => Bound::Excluded(h.as_bytes().to_vec()),
                    None => Bound::Unbounded,
                };
                let files = self.files.range((start, Bound::Unbounded));
                Outcome::Files(files.take(*limit).map(|(_, f)| f.clone()).collect())
            }
            Op::PutLock(l) if !lock_ok(l) => INVALID,
            Op::PutLock(l) => {
                self.locks.insert(l.id.as_u128(), l.clone());
                Outcome::Done
            }
            Op::GetLock(id) => Outcome::Lock(self.locks.get(&id.as_u128()).cloned()),
            Op::DeleteLock(id) => match self.locks.remove(&id.as_u128()) {
                Some(_) => Outcome::Done,
                None => Outcome::Err(ErrorKind::LockNotFound(*id)),
            },
            Op::ListLocks(q) if !query_ok(q) => INVALID,
            Op::ListLocks(q) => Outcome::Locks(self.list_locks(q)),
            Op::ListLocksPage(_, 0) => INVALID,
            Op::ListLocksPage(after, limit) => {
                let start = after.map_or(Bound::Unbounded, |id| Bound::Excluded(id.as_u128()));
                let locks = self.locks.range((start, Bound::Unbounded));
                Outcome::Locks(locks.take(*limit).map(|(_, l)| l.clone()).collect())
            }
            Op::DeleteLocksByClient(c) if !id_ok(c) => INVALID,
            Op::DeleteLocksByClient(c) => {
                Outcome::Count(self.delete_matching(&LockQuery::by_client(c)))
            }
            Op::DeleteLocksByFile(h) => {
                Outcome::Count(self.delete_matching(&LockQuery::by_file(h)))
            }
            Op::ServerEpoch => Outcome::Epoch(self.epoch),
            Op::IncrementServerEpoch => {
                self.epoch += 1;
                Outcome::Epoch(self.epoch)
            }
            Op::CleanShutdown => Outcome::Flag(self.clean_shutdown),
            Op::SetCleanShutdown(clean) => {
                self.clean_shutdown = *clean;
                Outcome::Done
            }
        }
    }
}

/// Runs `op` on a backend transaction.
async fn run(tx: &mut dyn MetadataTransaction, op: &Op) -> Outcome {
    fn out<T>(r: fsmeta::Result<T>, ok: impl FnOnce(T) -> Outcome) -> Outcome {
        r.map_or_else(|e| Outcome::Err(e.into()), ok)
    }
    match op {
        Op::PutFile(f) => out(tx.put_file(f).await, |()| Outcome::Done),
        Op::GetFile(h) => out(tx.get_file(h).await, Outcome::File),
        Op::DeleteFile(h) => out(tx.delete_file(h).await, |()| Outcome::Done),
        Op::ListFiles(s) => out(tx.list_files(s).await, Outcome::Files),
        Op::ListFilesPage(after, limit) => out(
            tx.list_files_page(after.as_ref(), *limit).await,
            Outcome::Files,
        ),
        Op::PutLock(l) => out(tx.put_lock(l).await, |()| Outcome::Done),
        Op::GetLock(id) => out(tx.get_lock(*id).await, Outcome::Lock),
        Op::DeleteLock(id) => out(tx.delete_lock(*id).await, |()| Outcome::Done),
        Op::ListLocks(q) => out(tx.list_locks(q).await, Outcome::Locks),
        Op::ListLocksPage(after, limit) => {
            out(tx.list_locks_page(*after, *limit).await, Outcome::Locks)
        }
        Op::DeleteLocksByClient(c) => out(tx.delete_locks_by_client(c).await, Outcome::Count),
        Op::DeleteLocksByFile(h) => out(tx.delete_locks_by_file(h).await, Outcome::Count),
        Op::ServerEpoch => out(tx.server_epoch().await, Outcome::Epoch),
        Op::IncrementServerEpoch => out(tx.increment_server_epoch().await, Outcome::Epoch),
        Op::CleanShutdown => out(fsmeta::clean_shutdown(&mut *tx).await, Outcome::Flag),
        Op::SetCleanShutdown(c) => out(fsmeta::set_clean_shutdown(&mut *tx, *c).await, |()| {
            Outcome::Done
        }),
    }
}

/// The reads that see the whole state: every lock, every file, epoch, flag.
fn state_ops() -> Vec<Op> {
    vec![
        Op::ListLocks(LockQuery::default()),
        Op::ListLocksPage(None, usize::MAX),
        Op::ListFilesPage(None, usize::MAX),
        Op::ServerEpoch,
        Op::CleanShutdown,
    ]
}

/// [`state_ops`], plus every index under every valid pool value: each file's
/// and share's locks, each share's files, each owner's and client's locks,
/// the locks below a few epochs.
fn index_ops() -> Vec<Op> {
    let mut ops = state_ops();
    for h in handles() {
        ops.push(Op::ListLocks(LockQuery::by_file(&h)));
    }
    for s in valid_shares() {
        ops.push(Op::ListFiles(s.clone()));
        ops.push(Op::ListLocks(LockQuery::by_share(&s)));
    }
    for i in valid_ids() {
        ops.push(Op::ListLocks(LockQuery::by_owner(&i)));
        ops.push(Op::ListLocks(LockQuery::by_client(&i)));
    }
    for e in [0, 1, 2, 1 << 63, u64::MAX] {
        ops.push(Op::ListLocks(LockQuery::epoch_below(e)));
    }
    ops
}

// ---------------------------------------------------------------------------
// Backends

/// One store under test, fresh for a case.
#[async_trait]
trait Fixture: Send {
    fn store(&self) -> Arc<dyn MetadataStore>;
    /// The server epoch the case starts with (0: a new store).
    fn initial_epoch(&self) -> u64 {
        0
    }
    /// Drops every handle and opens the same store again.
    async fn reopen(&mut self) -> fsmeta::Result<()>;
    /// Removes what the store left behind.
    async fn teardown(self: Box<Self>);
}

#[async_trait]
trait Backend: Sync {
    /// Whether the store survives [`Fixture::reopen`] (so reopen steps are generated).
    fn persistent(&self) -> bool;
    async fn create(&self) -> Box<dyn Fixture + '_>;
}

struct Memory;

struct MemoryFixture(fsmeta::MemoryStore);

#[async_trait]
impl Fixture for MemoryFixture {
    fn store(&self) -> Arc<dyn MetadataStore> {
        Arc::new(self.0.clone())
    }
    async fn reopen(&mut self) -> fsmeta::Result<()> {
        unreachable!("no reopen steps on the memory backend")
    }
    async fn teardown(self: Box<Self>) {}
}

#[async_trait]
impl Backend for Memory {
    fn persistent(&self) -> bool {
        false
    }
    async fn create(&self) -> Box<dyn Fixture + '_> {
        Box::new(MemoryFixture(fsmeta::MemoryStore::new()))
    }
}

#[cfg(feature = "fjall")]
mod fjall_backend {
    use super::*;
    use fsmeta::FjallStore;

    /// A store in a fresh temporary directory per case.
    pub struct Fjall;

    struct FjallFixture {
        dir: tempfile::TempDir,
        store: Option<FjallStore>,
    }

    #[async_trait]
    impl Fixture for FjallFixture {
        fn store(&self) -> Arc<dyn MetadataStore> {
            Arc::new(self.store.clone().expect("open store"))
        }
        async fn reopen(&mut self) -> fsmeta::Result<()> {
            drop(self.store.take());
            self.store = Some(FjallStore::open(self.dir.path())?);
            Ok(())
        }
        async fn teardown(mut self: Box<Self>) {
            drop(self.store.take());
        }
    }

    #[async_trait]
    impl Backend for Fjall {
        fn persistent(&self) -> bool {
            true
        }
        async fn create(&self) -> Box<dyn Fixture + '_> {
            // A new store costs a few fsyncs (≈ 150 ms on a disk, ≈ 20 ms in
            // tmpfs), and what this test checks does not depend on them: use
            // tmpfs where the machine has one. (Durability: the crash tests.)
            let shm = std::path::Path::new("/dev/shm");
            let dir = if shm.is_dir() {
                tempfile::tempdir_in(shm)
            } else {
                tempfile::tempdir()
            }
            .expect("temporary directory");
            let store = FjallStore::open(dir.path()).expect("open fjall store");
            Box::new(FjallFixture {
                dir,
                store: Some(store),
            })
        }
    }
}

#[cfg(all(feature = "postgres", feature = "conformance"))]
mod postgres_backend {
    use super::*;
    use fsmeta::conformance::postgres::TestSchema;
    use fsmeta::{PgOptions, PostgresStore};

    /// One schema per test on the server of `FSMETA_TEST_POSTGRES_URL`,
    /// emptied through the API before each case (a fresh schema per case,
    /// migrations included, made the test several times slower).
    pub struct Postgres {
        schema: TestSchema,
        /// The open store, kept from one case to the next (taken by the running case).
        store: tokio::sync::Mutex<Option<PostgresStore>>,
    }

    impl Postgres {
        /// `None` (after a notice) when the server is unreachable and not required.
        pub async fn connect() -> Option<Postgres> {
            let backend = Postgres {
                schema: TestSchema::create().await?,
                store: tokio::sync::Mutex::new(None),
            };
            let store = backend.open().await.expect("connect to the test schema");
            *backend.store.lock().await = Some(store);
            Some(backend)
        }

        async fn open(&self) -> fsmeta::Result<PostgresStore> {
            let options = PgOptions {
                // Transactions run one at a time. With 2, the first `begin`
                // after each (re)open opened a second connection (measured:
                // ≈ 100 ms each, a third of this test's time).
                max_connections: 1,
                // Durability is the crash tests' business; this one checks answers.
                synchronous_commit: false,
                ..self.schema.options()
            };
            PostgresStore::connect_with(self.schema.url(), options).await
        }

        /// Closes the store and drops the schema (also after a failed case).
        pub async fn cleanup(self) {
            if let Some(store) = self.store.into_inner() {
                let _ = store.close().await;
            }
            self.schema.drop_now().await;
        }
    }

    /// Deletes every file and lock and sets the clean flag, through the API;
    /// returns the epoch, which only grows.
    async fn empty(store: &PostgresStore) -> fsmeta::Result<u64> {
        let mut tx = store.begin().await?;
        for lock in tx.list_locks(&LockQuery::default()).await? {
            tx.delete_lock(lock.id).await?;
        }
        for file in tx.list_files_page(None, usize::MAX).await? {
            tx.delete_file(&file.handle).await?;
        }
        fsmeta::set_clean_shutdown(&mut *tx, true).await?;
        let epoch = tx.server_epoch().await?;
        tx.commit().await?;
        Ok(epoch)
    }

    struct PgFixture<'a> {
        backend: &'a Postgres,
        store: Option<PostgresStore>,
        epoch: u64,
    }

    #[async_trait]
    impl Fixture for PgFixture<'_> {
        fn store(&self) -> Arc<dyn MetadataStore> {
            Arc::new(self.store.clone().expect("open store"))
        }
        fn initial_epoch(&self) -> u64 {
            self.epoch
        }
        async fn reopen(&mut self) -> fsmeta::Result<()> {
            if let Some(store) = self.store.take() {
                store.close().await?;
            }
            self.store = Some(self.backend.open().await?);
            Ok(())
        }
        async fn teardown(mut self: Box<Self>) {
            *self.backend.store.lock().await = self.store.take();
        }
    }

    #[async_trait]
    impl Backend for Postgres {
        fn persistent(&self) -> bool {
            true
        }
        async fn create(&self) -> Box<dyn Fixture + '_> {
            let store = match self.store.lock().await.take() {
                Some(store) => store,
                // The previous case failed before handing its store back.
                None => self.open().await.expect("connect"),
            };
            let epoch = empty(&store).await.expect("empty the schema");
            Box::new(PgFixture {
                backend: self,
                store: Some(store),
                epoch,
            })
        }
    }
}

// ---------------------------------------------------------------------------
// The property

/// A failure at `at` (which step, or which check).
fn fail(at: &str, detail: impl fmt::Display) -> TestCaseError {
    TestCaseError::fail(format!("{at}: {detail}"))
}

/// How often each kind of operation met each kind of answer (printed with `--nocapture`).
#[derive(Default)]
struct Stats {
    answers: std::sync::Mutex<BTreeMap<String, u64>>,
    time: std::sync::Mutex<BTreeMap<&'static str, std::time::Duration>>,
}

impl Stats {
    /// Adds the time since `since` to the total of `what`.
    fn time(&self, what: &'static str, since: std::time::Instant) {
        *self.time.lock().unwrap().entry(what).or_default() += since.elapsed();
    }

    fn record(&self, op: &Op, outcome: &Outcome) {
        let op = format!("{op:?}");
        let op = op.split(['(', ' ']).next().unwrap_or_default();
        let outcome = match outcome {
            Outcome::Done => "ok".to_owned(),
            Outcome::File(Some(_)) | Outcome::Lock(Some(_)) => "found".to_owned(),
            Outcome::File(None) | Outcome::Lock(None) => "absent".to_owned(),
            Outcome::Files(v) => format!("{} file(s)", v.len().min(3)),
            Outcome::Locks(v) => format!("{} lock(s)", v.len().min(3)),
            Outcome::Count(n) => format!("{} deleted", n.min(&3)),
            Outcome::Epoch(_) | Outcome::Flag(_) => "ok".to_owned(),
            Outcome::Err(e) => format!("{e:?}")
                .split('(')
                .next()
                .unwrap_or_default()
                .to_owned(),
        };
        *self
            .answers
            .lock()
            .unwrap()
            .entry(format!("{op}: {outcome}"))
            .or_default() += 1;
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (what, n) in self.answers.lock().unwrap().iter() {
            writeln!(f, "  {n:>7}  {what}")?;
        }
        writeln!(f, "time spent:")?;
        for (what, t) in self.time.lock().unwrap().iter() {
            writeln!(f, "  {:>7.1?}  {what}", t)?;
        }
        Ok(())
    }
}

/// Runs `ops` in one transaction on both sides and compares every answer.
async fn compare_ops(
    tx: &mut dyn MetadataTransaction,
    model: &mut Model,
    ops: &[Op],
    at: &str,
    stats: Option<&Stats>,
) -> Result<(), TestCaseError> {
    for (i, op) in ops.iter().enumerate() {
        let expected = model.apply(op);
        let actual = run(tx, op).await;
        if let Some(stats) = stats {
            stats.record(op, &expected);
        }
        if actual != expected {
            return Err(fail(
                at,
                format!(
                    "operation {i}, {op:?}: the backend answered\n  {actual:?}\nthe model expected\n  {expected:?}"
                ),
            ));
        }
    }
    Ok(())
}

/// Reads the whole state in a read-only transaction and compares it with
/// `model`. `thorough` (after the last step) also reads every index
/// ([`index_ops`]) and runs [`MetadataStore::verify`] (healthy, same record
/// counts); after a reopen the state reads are enough, and cheaper.
async fn check_state(
    store: &dyn MetadataStore,
    model: &Model,
    at: &str,
    thorough: bool,
) -> Result<(), TestCaseError> {
    let mut tx = store
        .begin()
        .await
        .map_err(|e| fail(at, format!("begin: {e:?}")))?;
    let ops = if thorough { index_ops() } else { state_ops() };
    compare_ops(&mut *tx, &mut model.clone(), &ops, at, None).await?;
    tx.rollback()
        .await
        .map_err(|e| fail(at, format!("rollback: {e:?}")))?;
    if !thorough {
        return Ok(());
    }
    let report = store
        .verify()
        .await
        .map_err(|e| fail(at, format!("verify: {e:?}")))?;
    let expected = (model.files.len() as u64, model.locks.len() as u64);
    if !report.is_healthy() || (report.files, report.locks) != expected {
        return Err(fail(
            at,
            format!("verify found {report:?}; the model holds {expected:?} (files, locks)"),
        ));
    }
    Ok(())
}

async fn run_steps(
    fixture: &mut dyn Fixture,
    steps: &[Step],
    stats: &Stats,
) -> Result<(), TestCaseError> {
    let mut committed = Model {
        epoch: fixture.initial_epoch(),
        ..Model::default()
    };
    for (step, s) in steps.iter().enumerate() {
        let at = format!("step {step}");
        match s {
            Step::Tx(ops, end) => {
                let t = std::time::Instant::now();
                let store = fixture.store();
                let mut tx = store
                    .begin()
                    .await
                    .map_err(|e| fail(&at, format!("begin: {e:?}")))?;
                let mut working = committed.clone();
                compare_ops(&mut *tx, &mut working, ops, &at, Some(stats)).await?;
                match end {
                    End::Commit => {
                        tx.commit()
                            .await
                            .map_err(|e| fail(&at, format!("commit: {e:?}")))?;
                        committed = working;
                    }
                    End::Rollback => tx
                        .rollback()
                        .await
                        .map_err(|e| fail(&at, format!("rollback: {e:?}")))?,
                    End::Drop => drop(tx),
                }
                stats.time("transactions", t);
            }
            Step::Reopen => {
                let t = std::time::Instant::now();
                fixture
                    .reopen()
                    .await
                    .map_err(|e| fail(&at, format!("reopen: {e:?}")))?;
                stats.time("reopen", t);
                let t = std::time::Instant::now();
                let at = format!("state check after reopen at step {step}");
                check_state(&*fixture.store(), &committed, &at, false).await?;
                stats.time("state checks after reopen", t);
            }
        }
    }
    let t = std::time::Instant::now();
    let at = "full check after the last step";
    let result = check_state(&*fixture.store(), &committed, at, true).await;
    stats.time("full check after the last step", t);
    result
}

/// `FSMETA_MODEL_CASES`, else 256.
fn cases() -> u32 {
    match std::env::var("FSMETA_MODEL_CASES") {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("FSMETA_MODEL_CASES={v:?} is not a number")),
        Err(_) => 256,
    }
}

/// Runs the property on `backend`, panicking with the shrunk sequence on failure.
fn check(name: &str, rt: &tokio::runtime::Runtime, backend: &dyn Backend) {
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        // A shrink step on PostgreSQL creates a schema: bound the time, not only the count.
        max_shrink_time: 120_000,
        ..Config::default()
    };
    let started = std::time::Instant::now();
    let mut runner = TestRunner::new(config);
    let stats = Stats::default();
    let result = runner.run(&steps(backend.persistent()), |steps| {
        rt.block_on(async {
            let t = std::time::Instant::now();
            let mut fixture = backend.create().await;
            stats.time("create a store", t);
            let result = run_steps(&mut *fixture, &steps, &stats).await;
            let t = std::time::Instant::now();
            fixture.teardown().await;
            stats.time("tear down", t);
            result
        })
    });
    match result {
        Ok(()) => eprintln!(
            "model test on {name}: {} cases passed in {:.1?}; operations by answer:\n{stats}",
            runner.config().cases,
            started.elapsed()
        ),
        Err(TestError::Fail(reason, steps)) => {
            let steps: Vec<String> = steps
                .iter()
                .enumerate()
                .map(|(i, s)| format!("  step {i}: {s:?}"))
                .collect();
            panic!(
                "model test on {name} failed: {reason}\nminimal failing sequence:\n{}",
                steps.join("\n")
            )
        }
        Err(TestError::Abort(reason)) => panic!("model test on {name} aborted: {reason}"),
    }
}

/// Runs one fixed sequence on `backend` (the regression tests below).
fn replay(rt: &tokio::runtime::Runtime, backend: &dyn Backend, steps: &[Step]) {
    let result = rt.block_on(async {
        let mut fixture = backend.create().await;
        let result = run_steps(&mut *fixture, steps, &Stats::default()).await;
        fixture.teardown().await;
        result
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Runs `f` on the PostgreSQL backend in a fresh schema,
/// which it drops afterwards, even when `f` panics. Without a server: see [`postgres_backend::Postgres::connect`].
#[cfg(all(feature = "postgres", feature = "conformance"))]
fn with_postgres(rt: &tokio::runtime::Runtime, f: impl FnOnce(&dyn Backend)) {
    let Some(backend) = rt.block_on(postgres_backend::Postgres::connect()) else {
        return;
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&backend)));
    rt.block_on(backend.cleanup());
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

#[test]
fn model_memory() {
    check("memory", &runtime(), &Memory);
}

#[cfg(feature = "fjall")]
#[test]
fn model_fjall() {
    check("fjall", &runtime(), &fjall_backend::Fjall);
}

#[cfg(all(feature = "postgres", feature = "conformance"))]
#[test]
fn model_postgres() {
    let rt = runtime();
    with_postgres(&rt, |backend| check("PostgreSQL", &rt, backend));
}

// ---------------------------------------------------------------------------
// Regressions: sequences the property found, kept as fixed cases.

fn lock(id: u128, owner: &str, client: &str) -> PersistedLock {
    PersistedLock {
        id: Uuid::from_u128(id),
        share_name: "export".into(),
        file_id: FileHandle::new([1, 2]).unwrap(),
        owner_id: owner.into(),
        client_id: client.into(),
        lock_type: LockType::Shared,
        offset: 0,
        length: 0,
        share_reservation: ShareReservation::None,
        acquired_at: Timestamp::from_micros(0),
        server_epoch: 0,
        flavor: fsmeta::LockFlavor::Posix,
    }
}

/// Runs a fixed sequence on every backend this build has; fails naming the
/// sequence and every backend that failed.
fn replay_all(name: &str, steps: &[Step]) {
    let rt = runtime();
    let mut failed = Vec::new();
    let mut attempt = |backend: &'static str, run: &dyn Fn()| {
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).is_err() {
            failed.push(backend);
        }
    };
    attempt("memory", &|| replay(&rt, &Memory, steps));
    #[cfg(feature = "fjall")]
    attempt("fjall", &|| replay(&rt, &fjall_backend::Fjall, steps));
    #[cfg(all(feature = "postgres", feature = "conformance"))]
    attempt("PostgreSQL", &|| {
        with_postgres(&rt, |backend| replay(&rt, backend, steps))
    });
    assert!(failed.is_empty(), "sequence {name:?} fails on: {failed:?}");
}

/// fjall: an overwrite left an old index entry behind when its key bytes
/// equalled a new entry's key in another index (here: the old owner entry
/// `client1` and the kept client entry `client1`), because `put_lock`
/// compared index keys without their keyspace. `verify` reports the stale
/// entry; queries hide it until the record is deleted, then answer `Corrupt`.
/// Fixed in 443becf.
#[test]
fn overwrite_keeps_no_entry_that_matches_another_index() {
    let first = lock(1 << 120, "client1", "client1");
    let moved = PersistedLock {
        owner_id: "client10".into(),
        ..first.clone()
    };
    replay_all(
        "stale",
        &[
            Step::Tx(vec![Op::PutLock(first)], End::Commit),
            Step::Tx(vec![Op::PutLock(moved)], End::Commit),
            Step::Tx(vec![Op::DeleteLock(Uuid::from_u128(1 << 120))], End::Commit),
        ],
    );
}
