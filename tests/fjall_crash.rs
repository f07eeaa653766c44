//! Crash test: a child process commits transactions in a loop and is killed
//! with SIGKILL at random moments; after every kill the store must hold every
//! acknowledged commit and no half of any transaction.
//!
//! The child is this test binary, re-executed with `--exact crash_child` and
//! the store directory in an environment variable. Each child transaction `i`
//! writes file `i`, lock `i` on that file, moves lock `i - 1` to client
//! `moved` (an index-changing overwrite), and increments the server epoch;
//! after commit the child prints `COMMITTED i`. Every few transactions it also
//! writes a "ghost" pair and rolls it back. So after any crash, with `n` the
//! epoch: files and locks are exactly `0..n`, locks `0..n-1` belong to client
//! `moved` and lock `n-1` to its own client, every index agrees, and no ghost
//! exists.
//!
//! Some kills land while the child is still opening (journal recovery), the
//! rest while it commits. `FSMETA_CRASH_KILLS` sets the kills per durability
//! mode (default 20).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fsmeta::{
    Durability, FileHandle, FileKind, FileMeta, FjallOptions, FjallStore, LockQuery, LockType,
    MetadataStore, PersistedLock, ShareReservation, Timestamp,
};
use uuid::Uuid;

const CHILD_DIR_ENV: &str = "FSMETA_CRASH_CHILD_DIR";
const CHILD_MODE_ENV: &str = "FSMETA_CRASH_CHILD_MODE";
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
// Child

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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(child_loop(&dir, durability));
}

async fn child_loop(dir: &str, durability: Durability) {
    let options = FjallOptions {
        durability,
        ..Default::default()
    };
    let store = FjallStore::open_with(dir, options).expect("child: open");
    let mut next = store
        .begin()
        .await
        .expect("begin")
        .server_epoch()
        .await
        .expect("epoch");
    let mut out = std::io::stdout().lock();
    // A newline first: libtest has already printed "test crash_child ... ".
    writeln!(out, "\nREADY {next}")
        .and_then(|()| out.flush())
        .expect("stdout");
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
        writeln!(out, "COMMITTED {next}")
            .and_then(|()| out.flush())
            .expect("stdout");
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

// ---------------------------------------------------------------------------
// Parent

struct Outcome {
    acked: Vec<u64>,
    killed_before_ready: bool,
}

/// Runs one child on `dir`, kills it at a random moment, returns what it acknowledged.
fn run_and_kill(dir: &std::path::Path, mode: &str, round: usize) -> Outcome {
    let exe = std::env::current_exe().expect("current exe");
    let mut child: Child = Command::new(exe)
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_MODE_ENV, mode)
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

    // Every fifth kill lands during startup (journal recovery included);
    // the others a random time after the child is ready to commit.
    let early = round % 5 == 4;
    if early {
        std::thread::sleep(Duration::from_millis(fastrand::u64(0..30)));
    } else {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) if line.starts_with("READY") => break,
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "child never became ready; stderr:\n{}",
                        errors.join().unwrap_or_default()
                    );
                }
            }
        }
        std::thread::sleep(Duration::from_millis(fastrand::u64(1..80)));
    }
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
    let mut ready = false;
    let acked = lines_rx
        .try_iter()
        .filter_map(|line| {
            ready |= line.starts_with("READY");
            line.strip_prefix("COMMITTED ")
                .map(|n| n.parse::<u64>().expect("committed id"))
        })
        .collect();
    Outcome {
        acked,
        killed_before_ready: early && !ready,
    }
}

/// Checks the store after a kill; returns the number of committed transactions.
async fn verify(dir: &std::path::Path, acked: &[u64], before: u64) -> u64 {
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
    // And the whole store passes the backend's own check of every index entry.
    drop(tx);
    let report = store.verify().await.expect("verify");
    assert!(
        report.is_healthy(),
        "verify after kill (epoch {n}): {:?}",
        report.problems
    );
    let mut tx = store.begin().await.expect("begin");
    // Rolled-back transactions left nothing.
    assert_eq!(
        tx.list_files(GHOST_SHARE).await.expect("ghosts"),
        vec![],
        "a rolled-back file is stored"
    );
    n
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

fn crash_test(durability: Durability) {
    let mode = match durability {
        Durability::Sync => "sync",
        _ => "buffered",
    };
    let kills: usize = std::env::var("FSMETA_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (mut committed, mut acked_total, mut unacked_durable, mut early) =
        (0u64, 0usize, 0u64, 0usize);
    for round in 0..kills {
        let outcome = run_and_kill(dir.path(), mode, round);
        let n = runtime.block_on(verify(dir.path(), &outcome.acked, committed));
        acked_total += outcome.acked.len();
        // verify() checked that every acknowledged commit is in the first n.
        let acked_end = outcome
            .acked
            .iter()
            .max()
            .map_or(committed, |&last| last + 1);
        unacked_durable += n - acked_end;
        early += usize::from(outcome.killed_before_ready);
        committed = n;
    }
    eprintln!(
        "fjall crash test ({mode}): {kills} SIGKILLs ({early} before the child was ready), \
         {acked_total} acknowledged commits, all present; {committed} transactions committed in all, \
         {unacked_durable} of them committed but unacknowledged at the kill; 0 half transactions, verify() clean after every kill"
    );
    assert!(committed > 0, "the children never committed anything");
}

#[test]
fn sigkill_buffered_loses_no_acknowledged_commit() {
    if std::env::var(CHILD_DIR_ENV).is_ok() {
        return;
    }
    crash_test(Durability::Buffered);
}

#[test]
fn sigkill_sync_loses_no_acknowledged_commit() {
    if std::env::var(CHILD_DIR_ENV).is_ok() {
        return;
    }
    crash_test(Durability::Sync);
}
