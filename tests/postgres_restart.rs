//! The PostgreSQL server restarts (`pg_ctlcluster … restart`) under a write
//! load: every acknowledged commit survives, no transaction is split, and the
//! same store resumes by itself once the server is back (no reconnect, no new
//! store: the callers just keep calling `transact`).
//!
//! A restart breaks every other session on the server, so this is one test
//! in a target of its own: `cargo test` runs test binaries one after another,
//! so in CI it disturbs only itself. Outside CI it runs only when asked:
//!
//! - runs when `CI` is set (`.ci/run` sets it) or `FSMETA_PG_RESTART=1`;
//! - restarts with `FSMETA_PG_RESTART_CMD` (a shell command) if set, else
//!   `pg_ctlcluster --skip-systemctl-redirect <newest version> main restart`;
//! - server: `FSMETA_TEST_POSTGRES_URL`, as for the other PostgreSQL tests.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fsmeta::conformance::postgres::TestSchema;
use fsmeta::{
    Error, FileHandle, FileKind, FileMeta, LockQuery, LockType, MetadataStore, MetadataStoreExt,
    PersistedLock, PostgresStore, ShareReservation, Timestamp,
};
use uuid::Uuid;

const TASKS: usize = 8;

fn enabled() -> bool {
    let set =
        |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    set("CI") || set("FSMETA_PG_RESTART")
}

/// The shell command that restarts the server.
fn restart_command() -> String {
    if let Ok(cmd) = std::env::var("FSMETA_PG_RESTART_CMD") {
        return cmd;
    }
    let version = std::fs::read_dir("/etc/postgresql")
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter_map(|name| name.parse::<u32>().ok().map(|v| (v, name)))
        .max()
        .map(|(_, name)| name)
        .expect("no cluster in /etc/postgresql: set FSMETA_PG_RESTART_CMD");
    format!("pg_ctlcluster --skip-systemctl-redirect {version} main restart")
}

fn file(task: usize, i: u64) -> FileMeta {
    FileMeta {
        handle: FileHandle::new(format!("restart/{task}/{i}")).expect("handle"),
        share_name: format!("share-{task}"),
        kind: FileKind::Regular,
        mode: 0o100644,
        uid: task as u32,
        gid: 0,
        nlink: 1,
        size: i,
        atime: Timestamp::from_micros(1_700_000_000_000_000),
        mtime: Timestamp::from_micros(1_700_000_000_000_000),
        ctime: Timestamp::from_micros(1_700_000_000_000_000),
    }
}

fn lock(task: usize, i: u64) -> PersistedLock {
    PersistedLock {
        id: Uuid::from_u64_pair(task as u64 + 1, i),
        share_name: format!("share-{task}"),
        file_id: file(task, i).handle,
        owner_id: format!("owner-{task}"),
        client_id: format!("client-{task}"),
        lock_type: LockType::Exclusive,
        offset: 0,
        length: 0,
        share_reservation: ShareReservation::None,
        acquired_at: Timestamp::from_micros(1_700_000_000_000_000),
        server_epoch: i,
        flavor: fsmeta::LockFlavor::Posix,
    }
}

/// True for the transactions that also increment the epoch: one in eight,
/// so that the tasks spend their time inside transactions, not in the
/// backoff of conflicts on the one epoch row.
fn bumps(i: u64) -> bool {
    i.is_multiple_of(8)
}

/// What one task saw.
#[derive(Default)]
struct Seen {
    /// Transactions whose `transact` returned `Ok`.
    acked: Vec<u64>,
    /// Transactions whose `transact` failed: committed or not, nobody knows.
    failed: Vec<u64>,
    /// The errors, by kind.
    errors: BTreeMap<String, u64>,
    /// Commits acknowledged after the restart command returned.
    after_restart: u64,
    /// When the first of those came, since the restart command returned.
    first_after_restart: Option<Duration>,
}

/// Transaction `i` of a task: its file, its lock, a read, and for one in
/// eight an epoch increment.
async fn task_loop(
    store: Arc<PostgresStore>,
    task: usize,
    restarted_at: Arc<std::sync::Mutex<Option<Instant>>>,
    stop: Arc<AtomicBool>,
    total_after: Arc<AtomicU64>,
) -> Seen {
    let mut seen = Seen::default();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let (f, l) = (file(task, i), lock(task, i));
        let (f, l) = (&f, &l);
        let bump = bumps(i);
        let result = store
            .transact(|tx| {
                Box::pin(async move {
                    tx.put_file(f).await?;
                    tx.put_lock(l).await?;
                    tx.get_file(&f.handle).await?;
                    if bump {
                        tx.increment_server_epoch().await?;
                    }
                    Ok(())
                })
            })
            .await;
        let restarted = *restarted_at.lock().expect("mutex");
        match result {
            Ok(_) => {
                seen.acked.push(i);
                if let Some(at) = restarted {
                    seen.after_restart += 1;
                    total_after.fetch_add(1, Ordering::Relaxed);
                    seen.first_after_restart.get_or_insert(at.elapsed());
                }
            }
            Err(e) => {
                let kind = match &e {
                    Error::Backend(_) => "Backend",
                    Error::Conflict(_) => "Conflict",
                    other => panic!("task {task}, transaction {i}: unexpected error {other:?}"),
                };
                *seen.errors.entry(kind.to_owned()).or_default() += 1;
                seen.failed.push(i);
                // A caller would retry later; so does the load.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        i += 1;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_restart_under_load() {
    if !enabled() {
        eprintln!(
            "notice: skipping the PostgreSQL restart test (it restarts the shared server); \
             CI runs it, FSMETA_PG_RESTART=1 runs it here"
        );
        return;
    }
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let store = Arc::new(schema.connect().await.expect("connect"));
    let restarted_at = Arc::new(std::sync::Mutex::new(None));
    let stop = Arc::new(AtomicBool::new(false));
    let total_after = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            tokio::spawn(task_loop(
                store.clone(),
                task,
                restarted_at.clone(),
                stop.clone(),
                total_after.clone(),
            ))
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(1)).await;
    let command = restart_command();
    let started = Instant::now();
    let status = tokio::process::Command::new("sh")
        .args(["-c", &command])
        .status()
        .await
        .expect("run the restart command");
    assert!(status.success(), "{command:?} failed: {status}");
    let restart_took = started.elapsed();
    *restarted_at.lock().expect("mutex") = Some(Instant::now());

    // The store must resume by itself: every task commits again.
    let deadline = Instant::now() + Duration::from_secs(60);
    while total_after.load(Ordering::Relaxed) < (TASKS * 20) as u64 {
        assert!(
            Instant::now() < deadline,
            "the store did not resume within 60 s of the restart ({} commits since)",
            total_after.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut seen = Vec::new();
    for task in tasks {
        seen.push(task.await.expect("load task"));
    }

    // Every acknowledged commit is there; every failed one is whole or absent.
    let mut tx = store.begin().await.expect("begin after the restart");
    let (mut present, mut present_bumps) = (0u64, 0u64);
    let (mut failed_present, mut failed_absent) = (0, 0);
    for (task, seen) in seen.iter().enumerate() {
        let files: BTreeMap<FileHandle, FileMeta> = tx
            .list_files(&format!("share-{task}"))
            .await
            .expect("list_files")
            .into_iter()
            .map(|f| (f.handle.clone(), f))
            .collect();
        let locks: BTreeMap<Uuid, PersistedLock> = tx
            .list_locks(&LockQuery::by_client(&format!("client-{task}")))
            .await
            .expect("list_locks")
            .into_iter()
            .map(|l| (l.id, l))
            .collect();
        assert_eq!(
            files.len(),
            locks.len(),
            "task {task}: a file without its lock, or the reverse"
        );
        for &i in &seen.acked {
            assert_eq!(
                files.get(&file(task, i).handle),
                Some(&file(task, i)),
                "task {task}: acknowledged transaction {i} lost its file"
            );
            assert_eq!(
                locks.get(&lock(task, i).id),
                Some(&lock(task, i)),
                "task {task}: acknowledged transaction {i} lost its lock"
            );
        }
        for &i in &seen.failed {
            let has_file = files.contains_key(&file(task, i).handle);
            assert_eq!(
                has_file,
                locks.contains_key(&lock(task, i).id),
                "task {task}: failed transaction {i} is half there"
            );
            if has_file {
                failed_present += 1;
            } else {
                failed_absent += 1;
            }
        }
        present += files.len() as u64;
        present_bumps += files.values().filter(|f| bumps(f.size)).count() as u64;
    }
    assert_eq!(
        tx.server_epoch().await.expect("epoch"),
        present_bumps,
        "the epoch is not the number of stored transactions that increment it"
    );
    drop(tx);
    let report = store.verify().await.expect("verify");
    assert!(report.is_healthy(), "{:?}", report.problems);

    let acked: usize = seen.iter().map(|s| s.acked.len()).sum();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for s in &seen {
        for (kind, n) in &s.errors {
            *errors.entry(kind.clone()).or_default() += n;
        }
    }
    let first = seen
        .iter()
        .filter_map(|s| s.first_after_restart)
        .min()
        .unwrap_or_default();
    let last_first = seen
        .iter()
        .filter_map(|s| s.first_after_restart)
        .max()
        .unwrap_or_default();
    eprintln!(
        "server restart under load: {TASKS} tasks, restart took {:.1} s; {acked} commits acknowledged, all present; \
         {} transactions failed ({errors:?}): {failed_present} committed whole, {failed_absent} absent, none split; \
         after the restart every task committed again (first commit {:.0} ms after it, every task within {:.0} ms) \
         on the same store, {} commits since; {present} transactions stored, epoch = their {present_bumps} increments; verify() healthy",
        restart_took.as_secs_f64(),
        failed_present + failed_absent,
        first.as_secs_f64() * 1000.0,
        last_first.as_secs_f64() * 1000.0,
        total_after.load(Ordering::Relaxed),
    );
    Arc::try_unwrap(store)
        .expect("one handle left")
        .close()
        .await
        .expect("close");
    schema.drop_now().await;
}
