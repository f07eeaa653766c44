//! Crash tests: a child process commits transactions in a loop and is killed
//! with SIGKILL at random or chosen moments; after every kill the store is
//! reopened and must hold every acknowledged commit and no part of any
//! transaction that did not commit, and `verify()` must find every index true.
//!
//! The child is this test binary, re-executed with `--exact crash_child` and
//! the store directory, durability and workload in environment variables. It
//! prints a line after each commit returns (the acknowledgement), and for the
//! big transactions one right before it calls commit, so the parent can aim.
//!
//! Three workloads, each in both durability modes:
//!
//! - **mixed**: transaction `i` writes file `i`, lock `i` on that file, moves
//!   lock `i - 1` to client `moved` (an index-changing overwrite) and
//!   increments the server epoch; every few transactions a "ghost" pair is
//!   written and rolled back. After any kill, with `n` the epoch: files and
//!   locks are exactly `0..n`, locks `0..n-1` belong to client `moved` and
//!   lock `n-1` to its own client, every index agrees, no ghost exists.
//! - **bulk**: generation `g` fills 10,000 locks of client `bulk` (stamped
//!   with epoch `g`) plus a marker file in one transaction, then deletes them
//!   in one transaction (`delete_locks_by_client`) that also deletes the
//!   marker and increments the epoch to `g + 1`. Most kills are aimed into
//!   the delete's commit (a random delay after "COMMITTING DELETE", spread
//!   over the commit's measured duration), some into the fill's. After any
//!   kill: 0 or exactly the 10,000 locks of generation `epoch`, the marker
//!   with them and only with them; an interrupted commit is counted as
//!   applied (all) or not (nothing): anything else fails.
//! - **epoch**: `begin_recovery` (read the clean flag, increment the epoch,
//!   record the epoch and the node's new state) then `mark_clean_shutdown`, in
//!   a loop. After any kill: epoch records are exactly `1..=epoch`, node
//!   `default`'s epoch is the global one, at most one unacknowledged
//!   increment survived, and an acknowledged clean flag of the current epoch
//!   is still set.
//!
//! - **ext**: the host's metadata with its locks. Transaction `i` writes
//!   lock `i` and the extension record `held/be64(i)` naming it (its value is
//!   the lock id, then a filler of 0 to 3 KiB), and increments the epoch;
//!   every third transaction also deletes the previous transaction's lock
//!   and record together. Every few transactions a ghost lock and ghost
//!   record are written and rolled back. After any kill, with `n` the epoch:
//!   the locks and the `held` records are exactly the live ones of `0..n`,
//!   with their values; a record without its lock or a lock without its
//!   record (torn) fails the test, and so does a missing acknowledged one.
//!
//! Every fifth kill lands while the child is still opening (journal recovery
//! included). `FSMETA_CRASH_KILLS` sets the kills per test (default 20, and
//! 6 for the bulk workload, whose rounds take seconds in a debug build;
//! eight tests). Bulk rounds move to a fresh store every five kills, since
//! every reopen replays fjall's journal, which grows by ~5 MB a generation.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fsmeta::{
    DEFAULT_NODE, Durability, FileHandle, FileKind, FileMeta, FjallOptions, FjallStore, KeyRange,
    LockQuery, LockType, MetadataStore, PersistedLock, ShareReservation, Timestamp,
};
use uuid::Uuid;

const CHILD_DIR_ENV: &str = "FSMETA_CRASH_CHILD_DIR";
const CHILD_MODE_ENV: &str = "FSMETA_CRASH_CHILD_MODE";
const CHILD_WORKLOAD_ENV: &str = "FSMETA_CRASH_CHILD_WORKLOAD";
const SHARE: &str = "crash";
const GHOST_SHARE: &str = "ghosts";
const MOVED: &str = "moved";

// ---------------------------------------------------------------------------
// The records of transaction `i`

fn file_handle(i: u64) -> FileHandle {
    FileHandle::new(format!("file-{i}")).expect("valid handle")
}

fn file(i: u64) -> FileMeta {
    FileMeta {
        handle: file_handle(i),
        share_name: SHARE.into(),
        kind: FileKind::Regular,
        mode: 0o100644,
        uid: 1,
        gid: 1,
        nlink: 1,
        size: i,
        atime: Timestamp::from_micros(1_700_000_000_000_000),
        mtime: Timestamp::from_micros(1_700_000_000_000_000),
        ctime: Timestamp::from_micros(1_700_000_000_000_000),
    }
}

/// Lock `i` as transaction `i` writes it (ids sort in `i` order).
fn lock(i: u64) -> PersistedLock {
    PersistedLock {
        id: Uuid::from_u128(u128::from(i) + 1),
        share_name: SHARE.into(),
        file_id: file_handle(i),
        owner_id: format!("owner-{i}"),
        client_id: format!("client-{}", i % 7),
        lock_type: LockType::Exclusive,
        offset: i,
        length: 1,
        share_reservation: ShareReservation::None,
        acquired_at: Timestamp::from_micros(1_700_000_000_000_000),
        server_epoch: i,
        flavor: fsmeta::LockFlavor::Posix,
    }
}

/// Lock `i` after transaction `i + 1` moved it.
fn moved_lock(i: u64) -> PersistedLock {
    PersistedLock {
        client_id: MOVED.into(),
        ..lock(i)
    }
}

// ---------------------------------------------------------------------------
// The records of the bulk workload

const BULK_CLIENT: &str = "bulk";
const BULK_SHARE: &str = "bulk";
const BULK_LOCKS: u64 = 10_000;

/// Lock `k` of bulk generation `g`: ids differ per generation, so an entry
/// left behind by an earlier generation cannot pass for a current one.
fn bulk_lock(g: u64, k: u64) -> PersistedLock {
    PersistedLock {
        id: Uuid::from_u64_pair(g + 1, k),
        share_name: BULK_SHARE.into(),
        file_id: FileHandle::new(format!("bulk-file-{}", k % 100)).expect("valid handle"),
        owner_id: format!("owner-{}", k % 10),
        client_id: BULK_CLIENT.into(),
        lock_type: if k.is_multiple_of(2) {
            LockType::Shared
        } else {
            LockType::Exclusive
        },
        offset: k,
        length: 1,
        share_reservation: ShareReservation::None,
        acquired_at: Timestamp::from_micros(1_700_000_000_000_000),
        server_epoch: g,
        flavor: fsmeta::LockFlavor::Posix,
    }
}

/// The marker file of bulk generation `g`: present exactly while its locks are.
fn bulk_marker(g: u64) -> FileMeta {
    FileMeta {
        handle: FileHandle::new(format!("filled-{g}")).expect("valid handle"),
        share_name: BULK_SHARE.into(),
        ..file(g)
    }
}

// ---------------------------------------------------------------------------
// The records of the ext workload

const EXT_SHARE: &str = "crash-ext";
const EXT_TABLE: &str = "held";
const EXT_GHOST_TABLE: &str = "ghosts";

/// Lock `i` of the ext workload.
fn ext_lock(i: u64) -> PersistedLock {
    PersistedLock {
        id: Uuid::from_u64_pair(0xe7, i),
        share_name: EXT_SHARE.into(),
        ..lock(i)
    }
}

/// The key of the extension record that goes with lock `i`.
fn ext_key(i: u64) -> [u8; 8] {
    i.to_be_bytes()
}

/// Its value: the lock id, then a filler of 0 to 3 KiB, so that
/// transactions differ in size.
fn ext_value(i: u64) -> Vec<u8> {
    let filler = usize::try_from(i % 4).expect("small") * 1024;
    let mut value = ext_lock(i).id.as_bytes().to_vec();
    value.extend((0..filler).map(|k| (k as u64 ^ i) as u8));
    value
}

/// Transaction `j` of the ext workload deletes lock `j - 1` and its record.
fn ext_deletes_previous(j: u64) -> bool {
    j % 3 == 2
}

/// Whether lock and record `i` are live once transactions `0..n` committed.
fn ext_live(i: u64, n: u64) -> bool {
    i < n && !(i + 1 < n && ext_deletes_previous(i + 1))
}

// ---------------------------------------------------------------------------
// Child

/// What the child runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    Mixed,
    Bulk,
    Epoch,
    Ext,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Mixed => "mixed",
            Workload::Bulk => "bulk",
            Workload::Epoch => "epoch",
            Workload::Ext => "ext",
        }
    }
}

/// The child's entry point; a no-op in an ordinary test run.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let durability = match std::env::var(CHILD_MODE_ENV).as_deref() {
        Ok("sync") => Durability::Sync,
        _ => Durability::Buffered,
    };
    let workload = match std::env::var(CHILD_WORKLOAD_ENV).as_deref() {
        Ok("bulk") => Workload::Bulk,
        Ok("epoch") => Workload::Epoch,
        Ok("ext") => Workload::Ext,
        _ => Workload::Mixed,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let options = FjallOptions {
        durability,
        ..Default::default()
    };
    let store = FjallStore::open_with(&dir, options).expect("child: open");
    match workload {
        Workload::Mixed => runtime.block_on(child_mixed(&store)),
        Workload::Bulk => runtime.block_on(child_bulk(&store)),
        Workload::Epoch => runtime.block_on(child_epoch(&store)),
        Workload::Ext => runtime.block_on(child_ext(&store)),
    }
}

/// Prints one line and flushes: the parent reads it as it comes.
fn say(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .expect("stdout");
}

async fn child_mixed(store: &FjallStore) {
    let mut next = store
        .begin()
        .await
        .expect("begin")
        .server_epoch()
        .await
        .expect("epoch");
    // A newline first: libtest has already printed "test crash_child ... ".
    say(format_args!("\nREADY {next}"));
    loop {
        let mut tx = store.begin().await.expect("begin");
        tx.put_file(&file(next)).await.expect("put_file");
        tx.put_lock(&lock(next)).await.expect("put_lock");
        if next > 0 {
            tx.put_lock(&moved_lock(next - 1)).await.expect("move lock");
        }
        assert_eq!(
            tx.increment_server_epoch().await.expect("increment"),
            next + 1
        );
        tx.commit().await.expect("commit");
        // Only now is the commit acknowledged.
        say(format_args!("COMMITTED {next}"));
        if next % 4 == 0 {
            let mut ghost = store.begin().await.expect("begin");
            let ghost_file = FileMeta {
                share_name: GHOST_SHARE.into(),
                ..file(next + 1_000_000_000)
            };
            ghost.put_file(&ghost_file).await.expect("ghost file");
            ghost
                .put_lock(&PersistedLock {
                    id: Uuid::new_v4(),
                    ..lock(next)
                })
                .await
                .expect("ghost lock");
            ghost.rollback().await.expect("rollback");
        }
        next += 1;
    }
}

async fn child_bulk(store: &FjallStore) {
    let mut tx = store.begin().await.expect("begin");
    let mut g = tx.server_epoch().await.expect("epoch");
    let held = tx
        .list_locks(&LockQuery::by_client(BULK_CLIENT))
        .await
        .expect("list bulk locks")
        .len() as u64;
    drop(tx);
    // The parent checked the store: a generation is there in full or not at all.
    let mut filled = match held {
        0 => false,
        BULK_LOCKS => true,
        other => panic!("child: {other} bulk locks stored"),
    };
    say(format_args!("\nREADY {g}"));
    loop {
        if !filled {
            let mut tx = store.begin().await.expect("begin");
            for k in 0..BULK_LOCKS {
                tx.put_lock(&bulk_lock(g, k)).await.expect("put_lock");
            }
            tx.put_file(&bulk_marker(g)).await.expect("put marker");
            say(format_args!("COMMITTING FILL {g}"));
            let started = Instant::now();
            tx.commit().await.expect("commit fill");
            say(format_args!("FILLED {g} {}", started.elapsed().as_micros()));
        }
        let mut tx = store.begin().await.expect("begin");
        assert_eq!(
            tx.delete_locks_by_client(BULK_CLIENT)
                .await
                .expect("delete_locks_by_client"),
            BULK_LOCKS
        );
        tx.delete_file(&bulk_marker(g).handle)
            .await
            .expect("delete marker");
        assert_eq!(tx.increment_server_epoch().await.expect("increment"), g + 1);
        say(format_args!("COMMITTING DELETE {g}"));
        let started = Instant::now();
        tx.commit().await.expect("commit delete");
        say(format_args!(
            "DELETED {g} {}",
            started.elapsed().as_micros()
        ));
        g += 1;
        filled = false;
    }
}

async fn child_epoch(store: &FjallStore) {
    say(format_args!("\nREADY 0"));
    loop {
        let recovery = fsmeta::begin_recovery(store).await.expect("begin_recovery");
        say(format_args!("RECOVERED {}", recovery.epoch));
        fsmeta::mark_clean_shutdown(store)
            .await
            .expect("mark_clean_shutdown");
        say(format_args!("CLEAN {}", recovery.epoch));
    }
}

async fn child_ext(store: &FjallStore) {
    let mut next = store
        .begin()
        .await
        .expect("begin")
        .server_epoch()
        .await
        .expect("epoch");
    say(format_args!("\nREADY {next}"));
    loop {
        let mut tx = store.begin().await.expect("begin");
        tx.put_lock(&ext_lock(next)).await.expect("put_lock");
        tx.ext_put(EXT_TABLE, &ext_key(next), &ext_value(next))
            .await
            .expect("ext_put");
        if next > 0 && ext_deletes_previous(next) {
            tx.delete_lock(ext_lock(next - 1).id)
                .await
                .expect("delete_lock");
            assert!(
                tx.ext_delete(EXT_TABLE, &ext_key(next - 1))
                    .await
                    .expect("ext_delete"),
                "the record of lock {} exists",
                next - 1
            );
        }
        assert_eq!(
            tx.increment_server_epoch().await.expect("increment"),
            next + 1
        );
        tx.commit().await.expect("commit");
        say(format_args!("COMMITTED {next}"));
        if next % 4 == 0 {
            let mut ghost = store.begin().await.expect("begin");
            ghost
                .put_lock(&PersistedLock {
                    id: Uuid::new_v4(),
                    ..ext_lock(next)
                })
                .await
                .expect("ghost lock");
            ghost
                .ext_put(EXT_GHOST_TABLE, &ext_key(next), b"rolled back")
                .await
                .expect("ghost record");
            ghost.rollback().await.expect("rollback");
        }
        next += 1;
    }
}

// ---------------------------------------------------------------------------
// Parent

/// When the parent kills the child.
#[derive(Clone, Copy, Debug)]
enum KillAt {
    /// While it starts (opening the store, journal recovery).
    Startup,
    /// A random moment once it is ready.
    Anytime,
    /// A random delay of at most `window` after the child prints a line starting with `prefix`.
    After {
        prefix: &'static str,
        window: Duration,
    },
}

struct Outcome {
    /// Every line the child printed, in order.
    lines: Vec<String>,
    killed_before_ready: bool,
}

impl Outcome {
    /// The numbers after `prefix` on the lines that start with it.
    fn numbers(&self, prefix: &str) -> Vec<u64> {
        self.lines
            .iter()
            .filter_map(|line| line.strip_prefix(prefix))
            .map(|rest| {
                rest.split_whitespace()
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("bad child line after {prefix:?}: {rest:?}"))
            })
            .collect()
    }

    /// The last line starting with one of `prefixes`.
    fn last_of(&self, prefixes: &[&str]) -> Option<&str> {
        self.lines
            .iter()
            .rev()
            .find(|line| prefixes.iter().any(|p| line.starts_with(p)))
            .map(String::as_str)
    }
}

/// Runs one child on `dir` and kills it as `at` says; returns what it printed.
fn run_and_kill(dir: &std::path::Path, mode: &str, workload: Workload, at: KillAt) -> Outcome {
    let exe = std::env::current_exe().expect("current exe");
    let mut child: Child = Command::new(exe)
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_MODE_ENV, mode)
        .env(CHILD_WORKLOAD_ENV, workload.name())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let stderr = child.stderr.take().expect("child stderr");
    let (lines_tx, lines_rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let errors = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());

    let mut seen = Vec::new();
    // Waits for a line starting with `prefix`, keeping every line read.
    let wait_for = |prefix: &str, child: &mut Child, seen: &mut Vec<String>| {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.starts_with(prefix);
                    seen.push(line);
                    if hit {
                        return;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("the child never printed {prefix:?}");
                }
            }
        }
    };
    let pause = match at {
        KillAt::Startup => Duration::from_millis(fastrand::u64(0..30)),
        KillAt::Anytime => {
            wait_for("READY", &mut child, &mut seen);
            Duration::from_millis(fastrand::u64(1..80))
        }
        KillAt::After { prefix, window } => {
            wait_for("READY", &mut child, &mut seen);
            wait_for(prefix, &mut child, &mut seen);
            let micros = u64::try_from(window.as_micros()).unwrap_or(u64::MAX);
            Duration::from_micros(fastrand::u64(0..=micros))
        }
    };
    std::thread::sleep(pause);
    if let Ok(Some(status)) = child.try_wait() {
        panic!(
            "child exited by itself ({status}); stderr:\n{}",
            errors.join().unwrap_or_default()
        );
    }
    // std's Child::kill sends SIGKILL on Unix: no destructor, no flush, no goodbye.
    child.kill().expect("SIGKILL child");
    child.wait().expect("reap child");
    reader.join().expect("stdout reader");
    let _ = errors.join();
    seen.extend(lines_rx.try_iter());
    let ready = seen.iter().any(|line| line.starts_with("READY"));
    Outcome {
        lines: seen,
        killed_before_ready: matches!(at, KillAt::Startup) && !ready,
    }
}

/// `assert_eq!` for long lists, reporting lengths and the first difference only.
fn assert_same<T: PartialEq + std::fmt::Debug>(what: &str, got: &[T], expected: &[T]) {
    if got == expected {
        return;
    }
    let at = got
        .iter()
        .zip(expected)
        .position(|(g, e)| g != e)
        .unwrap_or(got.len().min(expected.len()));
    panic!(
        "{what}: {} stored, {} expected; first difference at {at}: stored {:?}, expected {:?}",
        got.len(),
        expected.len(),
        got.get(at),
        expected.get(at)
    );
}

/// The backend's own check of every record and index entry.
async fn assert_healthy(store: &FjallStore, what: &str) {
    let report = store.verify().await.expect("verify");
    assert!(
        report.is_healthy(),
        "verify after kill ({what}): {:?}",
        report.problems
    );
}

/// What the rounds of one test found.
#[derive(Default)]
struct Tally {
    /// The epoch after the last kill.
    epoch: u64,
    /// Acknowledged commits (all present).
    acked: usize,
    /// Commits that survived although the kill came before their acknowledgement.
    unacked_durable: u64,
    /// Kills that landed before the child was ready.
    early: usize,
    /// Kills between "COMMITTING …" and its acknowledgement, by what reopening found.
    interrupted_applied: usize,
    interrupted_absent: usize,
    /// Ext workload: records without their lock plus locks without their
    /// record, over every kill (any is a failure; counted for the summary).
    torn: usize,
    /// Ext workload: lock + record pairs found whole, over every kill.
    pairs_checked: usize,
}

// --- mixed --------------------------------------------------------------------

/// Checks the store after a kill of the mixed workload.
async fn check_mixed(dir: &std::path::Path, outcome: &Outcome, tally: &mut Tally) {
    let acked = outcome.numbers("COMMITTED ");
    let before = tally.epoch;
    let store = FjallStore::open(dir).expect("reopen after SIGKILL");
    let mut tx = store.begin().await.expect("begin");
    let n = tx.server_epoch().await.expect("epoch");
    assert!(n >= before, "the epoch went back from {before} to {n}");
    if let Some(&last) = acked.iter().max() {
        assert!(
            last < n,
            "acknowledged commit {last} is missing (epoch {n})"
        );
        assert!(
            n <= last + 2,
            "more than one unacknowledged commit survived: epoch {n}, last ack {last}"
        );
    }
    // Files and locks are exactly 0..n: every transaction is whole, or absent.
    let mut expected_files: Vec<FileMeta> = (0..n).map(file).collect();
    expected_files.sort_by(|a, b| a.handle.cmp(&b.handle)); // list_files is in handle order
    let files = tx.list_files(SHARE).await.expect("list_files");
    assert_same(&format!("files (epoch {n})"), &files, &expected_files);
    let expected_locks: Vec<PersistedLock> = (0..n)
        .map(|i| if i + 1 < n { moved_lock(i) } else { lock(i) })
        .collect();
    let locks = tx
        .list_locks(&LockQuery::default())
        .await
        .expect("list_locks");
    assert_same(&format!("locks (epoch {n})"), &locks, &expected_locks);
    // Every index agrees with the records.
    let queries = [
        LockQuery::by_client(MOVED),
        LockQuery::by_share(SHARE),
        LockQuery::epoch_below(n / 2),
    ]
    .into_iter()
    .chain((0..7).map(|c| LockQuery::by_client(&format!("client-{c}"))))
    .chain(
        (0..n)
            .rev()
            .take(50)
            .map(|i| LockQuery::by_file(&file_handle(i))),
    )
    .chain(
        (0..n)
            .rev()
            .take(50)
            .map(|i| LockQuery::by_owner(&format!("owner-{i}"))),
    );
    for q in queries {
        let expected: Vec<_> = expected_locks
            .iter()
            .filter(|l| q.matches(l))
            .cloned()
            .collect();
        let got = tx.list_locks(&q).await.expect("indexed list_locks");
        assert_same(&format!("{q:?} (epoch {n})"), &got, &expected);
    }
    drop(tx);
    assert_healthy(&store, &format!("mixed, epoch {n}")).await;
    let mut tx = store.begin().await.expect("begin");
    // Rolled-back transactions left nothing.
    assert_eq!(
        tx.list_files(GHOST_SHARE).await.expect("ghosts"),
        vec![],
        "a rolled-back file is stored"
    );
    // verify() checked that every acknowledged commit is in the first n.
    let acked_end = acked.iter().max().map_or(before, |&last| last + 1);
    tally.acked += acked.len();
    tally.unacked_durable += n - acked_end;
    tally.epoch = n;
}

// --- ext ----------------------------------------------------------------------

/// Checks the store after a kill of the ext workload.
async fn check_ext(dir: &std::path::Path, outcome: &Outcome, tally: &mut Tally) {
    let acked = outcome.numbers("COMMITTED ");
    let before = tally.epoch;
    let store = FjallStore::open(dir).expect("reopen after SIGKILL");
    let mut tx = store.begin().await.expect("begin");
    let n = tx.server_epoch().await.expect("epoch");
    assert!(n >= before, "the epoch went back from {before} to {n}");
    if let Some(&last) = acked.iter().max() {
        assert!(
            last < n,
            "acknowledged commit {last} is missing (epoch {n})"
        );
        assert!(
            n <= last + 2,
            "more than one unacknowledged commit survived: epoch {n}, last ack {last}"
        );
    }
    let locks = tx
        .list_locks(&LockQuery::by_share(EXT_SHARE))
        .await
        .expect("list_locks");
    let mut records = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = tx
            .ext_scan(EXT_TABLE, &KeyRange::All, after.as_deref(), 256)
            .await
            .expect("ext_scan");
        let Some(last) = page.last() else { break };
        after = Some(last.key.clone());
        let full = page.len() == 256;
        records.extend(page);
        if !full {
            break;
        }
    }
    // Torn pairs first: a record whose lock is gone, or a lock without its record.
    let lock_ids: std::collections::BTreeSet<u64> =
        locks.iter().map(|l| l.id.as_u64_pair().1).collect();
    let record_ids: std::collections::BTreeSet<u64> = records
        .iter()
        .map(|r| u64::from_be_bytes(r.key.as_slice().try_into().expect("8-byte key")))
        .collect();
    let torn: Vec<u64> = lock_ids
        .symmetric_difference(&record_ids)
        .copied()
        .collect();
    tally.torn += torn.len();
    assert!(
        torn.is_empty(),
        "torn after a kill (epoch {n}): lock xor record for {torn:?}"
    );
    // Then exactly the live pairs of 0..n, with their values.
    let live: Vec<u64> = (0..n).filter(|&i| ext_live(i, n)).collect();
    let expected_locks: Vec<PersistedLock> = live.iter().map(|&i| ext_lock(i)).collect();
    assert_same(&format!("ext locks (epoch {n})"), &locks, &expected_locks);
    let expected_records: Vec<fsmeta::ExtRecord> = live
        .iter()
        .map(|&i| fsmeta::ExtRecord {
            key: ext_key(i).to_vec(),
            value: ext_value(i),
        })
        .collect();
    assert_same(
        &format!("ext records (epoch {n})"),
        &records,
        &expected_records,
    );
    // Rolled-back transactions left nothing.
    assert_eq!(
        tx.ext_tables().await.expect("ext_tables"),
        if live.is_empty() {
            vec![]
        } else {
            vec![EXT_TABLE.to_owned()]
        },
        "a rolled-back record is stored"
    );
    drop(tx);
    assert_healthy(&store, &format!("ext, epoch {n}")).await;
    let acked_end = acked.iter().max().map_or(before, |&last| last + 1);
    tally.acked += acked.len();
    tally.unacked_durable += n - acked_end;
    tally.pairs_checked += live.len();
    tally.epoch = n;
}

// --- bulk ---------------------------------------------------------------------

/// Checks the store after a kill of the bulk workload.
async fn check_bulk(dir: &std::path::Path, outcome: &Outcome, tally: &mut Tally) {
    let store = FjallStore::open(dir).expect("reopen after SIGKILL");
    let mut tx = store.begin().await.expect("begin");
    let e = tx.server_epoch().await.expect("epoch");
    assert!(
        e >= tally.epoch,
        "the epoch went back from {} to {e}",
        tally.epoch
    );
    let bulk = tx
        .list_locks(&LockQuery::by_client(BULK_CLIENT))
        .await
        .expect("list bulk locks");
    let all = tx
        .list_locks(&LockQuery::default())
        .await
        .expect("list all locks");
    assert_eq!(
        all.len(),
        bulk.len(),
        "locks outside client {BULK_CLIENT} (epoch {e})"
    );
    let held = bulk.len() as u64;
    assert!(
        held == 0 || held == BULK_LOCKS,
        "half a bulk transaction: {held} of {BULK_LOCKS} locks stored (epoch {e})"
    );
    let markers = tx.list_files(BULK_SHARE).await.expect("list markers");
    if held == BULK_LOCKS {
        let mut expected: Vec<PersistedLock> = (0..BULK_LOCKS).map(|k| bulk_lock(e, k)).collect();
        expected.sort_by_key(|l| l.id);
        assert_same(&format!("bulk locks (epoch {e})"), &bulk, &expected);
        assert_eq!(
            markers,
            vec![bulk_marker(e)],
            "the marker goes with the locks"
        );
    } else {
        assert_eq!(markers, vec![], "a marker without its locks (epoch {e})");
    }
    drop(tx);
    assert_healthy(&store, &format!("bulk, epoch {e}, {held} locks")).await;

    // Acknowledgements.
    let filled = outcome.numbers("FILLED ");
    let deleted = outcome.numbers("DELETED ");
    if let Some(&d) = deleted.iter().max() {
        assert!(
            e > d,
            "acknowledged delete of generation {d} is missing (epoch {e})"
        );
        assert!(e <= d + 2, "more than one unacknowledged delete survived");
    } else {
        assert!(
            e <= tally.epoch + 1,
            "more than one unacknowledged delete survived"
        );
    }
    if let Some(&f) = filled.iter().max()
        && f == e
    {
        assert_eq!(
            held, BULK_LOCKS,
            "acknowledged fill of generation {f} is missing"
        );
    }
    tally.acked += filled.len() + deleted.len();
    // The commit in flight at the kill, if any: whole or absent.
    match outcome.last_of(&["COMMITTING ", "FILLED ", "DELETED "]) {
        Some(line) if line.starts_with("COMMITTING DELETE ") => {
            let g = outcome
                .numbers("COMMITTING DELETE ")
                .last()
                .copied()
                .unwrap_or_default();
            if e == g + 1 && held == 0 {
                tally.interrupted_applied += 1;
                tally.unacked_durable += 1;
            } else if e == g && held == BULK_LOCKS {
                tally.interrupted_absent += 1;
            } else {
                panic!("interrupted delete of generation {g}: epoch {e}, {held} locks");
            }
        }
        Some(line) if line.starts_with("COMMITTING FILL ") => {
            let g = outcome
                .numbers("COMMITTING FILL ")
                .last()
                .copied()
                .unwrap_or_default();
            assert_eq!(e, g, "interrupted fill of generation {g}: epoch {e}");
            if held == BULK_LOCKS {
                tally.interrupted_applied += 1;
                tally.unacked_durable += 1;
            } else {
                tally.interrupted_absent += 1;
            }
        }
        _ => {}
    }
    tally.epoch = e;
}

// --- epoch --------------------------------------------------------------------

/// Checks the store after a kill of the epoch workload.
async fn check_epoch(dir: &std::path::Path, outcome: &Outcome, tally: &mut Tally) {
    let store = FjallStore::open(dir).expect("reopen after SIGKILL");
    let mut tx = store.begin().await.expect("begin");
    let e = tx.server_epoch().await.expect("epoch");
    assert!(
        e >= tally.epoch,
        "the epoch went back from {} to {e}",
        tally.epoch
    );
    let records = tx.list_epoch_records().await.expect("epoch records");
    let epochs: Vec<u64> = records.iter().map(|r| r.epoch).collect();
    assert!(
        epochs.iter().copied().eq(1..=e),
        "epoch records {epochs:?} are not 1..={e}: an increment and its record were split"
    );
    assert!(records.iter().all(|r| r.node_id == DEFAULT_NODE));
    let node = tx.get_node(DEFAULT_NODE).await.expect("get_node");
    match &node {
        Some(node) => assert_eq!(node.epoch, e, "node state and global epoch were split"),
        None => assert_eq!(e, 0, "epoch {e} without a node state"),
    }
    drop(tx);
    assert_healthy(&store, &format!("epoch {e}")).await;

    let recovered = outcome.numbers("RECOVERED ");
    let clean = outcome.numbers("CLEAN ");
    let acked_end = recovered.iter().max().copied().unwrap_or(tally.epoch);
    assert!(
        e >= acked_end,
        "acknowledged epoch {acked_end} is missing (epoch {e})"
    );
    assert!(
        e <= acked_end + 1,
        "more than one unacknowledged increment survived"
    );
    if clean.iter().max() == Some(&e) {
        assert!(
            node.as_ref().is_some_and(|n| n.clean_shutdown),
            "the acknowledged clean flag of epoch {e} is lost"
        );
    }
    tally.acked += recovered.len() + clean.len();
    tally.unacked_durable += e - acked_end;
    tally.epoch = e;
}

// --- driver -------------------------------------------------------------------

fn crash_test(workload: Workload, durability: Durability) {
    let mode = match durability {
        Durability::Sync => "sync",
        _ => "buffered",
    };
    // A bulk round costs seconds in a debug build, the others milliseconds.
    let default_kills = if workload == Workload::Bulk { 6 } else { 20 };
    let kills: usize = std::env::var("FSMETA_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_kills);
    let mut dir = tempfile::tempdir().expect("temp dir");
    // Each bulk generation leaves ~5 MB in fjall's journal, which every
    // reopen replays (seconds per generation in a debug build): bulk kills
    // move to a fresh store every five rounds, after the startup kill.
    let mut earlier_generations = 0;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut tally = Tally::default();
    // The aim of bulk kills: a random delay of up to 1.25 times the latest
    // commit's duration after "COMMITTING", so most land inside the commit
    // and some just after it.
    let mut commit_time = Duration::from_millis(500);
    let mut longest_commit = Duration::ZERO;
    let started = Instant::now();
    for round in 0..kills {
        if workload == Workload::Bulk && round > 0 && round % 5 == 0 {
            dir = tempfile::tempdir().expect("temp dir");
            earlier_generations += tally.epoch;
            tally.epoch = 0;
        }
        let at = match (workload, round % 5) {
            (_, 4) => KillAt::Startup,
            (Workload::Bulk, 3) => KillAt::After {
                prefix: "COMMITTING FILL",
                window: commit_time * 5 / 4,
            },
            (Workload::Bulk, _) => KillAt::After {
                prefix: "COMMITTING DELETE",
                window: commit_time * 5 / 4,
            },
            _ => KillAt::Anytime,
        };
        let outcome = run_and_kill(dir.path(), mode, workload, at);
        // "FILLED g micros" and "DELETED g micros": how long those commits took.
        for line in &outcome.lines {
            if let Some(rest) = line
                .strip_prefix("FILLED ")
                .or_else(|| line.strip_prefix("DELETED "))
                && let Some(micros) = rest.split_whitespace().nth(1).and_then(|m| m.parse().ok())
            {
                commit_time = Duration::from_micros(micros);
                longest_commit = longest_commit.max(commit_time);
            }
        }
        tally.early += usize::from(outcome.killed_before_ready);
        runtime.block_on(async {
            match workload {
                Workload::Mixed => check_mixed(dir.path(), &outcome, &mut tally).await,
                Workload::Bulk => check_bulk(dir.path(), &outcome, &mut tally).await,
                Workload::Epoch => check_epoch(dir.path(), &outcome, &mut tally).await,
                Workload::Ext => check_ext(dir.path(), &outcome, &mut tally).await,
            }
        });
    }
    let name = workload.name();
    tally.epoch += earlier_generations;
    let interrupted = match workload {
        Workload::Bulk => format!(
            "; {} kills inside a 10k-lock commit: {} found it whole, {} found nothing of it \
             (longest commit {:.1} ms)",
            tally.interrupted_applied + tally.interrupted_absent,
            tally.interrupted_applied,
            tally.interrupted_absent,
            longest_commit.as_secs_f64() * 1000.0
        ),
        Workload::Ext => format!(
            "; {} lock + extension record pairs found whole across the kills, {} torn",
            tally.pairs_checked, tally.torn
        ),
        _ => String::new(),
    };
    eprintln!(
        "fjall crash test ({name}, {mode}): {kills} SIGKILLs ({} before the child was ready) in \
         {:.0} s, {} acknowledged commits, all present; {} epoch increments committed in all, {} commits \
         survived unacknowledged{interrupted}; 0 partial transactions, verify() clean after \
         every kill",
        tally.early,
        started.elapsed().as_secs_f64(),
        tally.acked,
        tally.epoch,
        tally.unacked_durable,
    );
    assert!(tally.epoch > 0, "the children never committed anything");
}

/// Runs `body` only in the parent (the child runs `crash_child` alone, but
/// a stray filter must not make a child start children of its own).
fn parent(workload: Workload, durability: Durability) {
    if std::env::var(CHILD_DIR_ENV).is_ok() {
        return;
    }
    crash_test(workload, durability);
}

#[test]
fn sigkill_buffered_loses_no_acknowledged_commit() {
    parent(Workload::Mixed, Durability::Buffered);
}

#[test]
fn sigkill_sync_loses_no_acknowledged_commit() {
    parent(Workload::Mixed, Durability::Sync);
}

#[test]
fn sigkill_during_bulk_delete_buffered_is_all_or_nothing() {
    parent(Workload::Bulk, Durability::Buffered);
}

#[test]
fn sigkill_during_bulk_delete_sync_is_all_or_nothing() {
    parent(Workload::Bulk, Durability::Sync);
}

#[test]
fn sigkill_during_epoch_increment_buffered_is_all_or_nothing() {
    parent(Workload::Epoch, Durability::Buffered);
}

#[test]
fn sigkill_during_epoch_increment_sync_is_all_or_nothing() {
    parent(Workload::Epoch, Durability::Sync);
}

#[test]
fn sigkill_ext_with_locks_buffered_is_never_torn() {
    parent(Workload::Ext, Durability::Buffered);
}

#[test]
fn sigkill_ext_with_locks_sync_is_never_torn() {
    parent(Workload::Ext, Durability::Sync);
}
