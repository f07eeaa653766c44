//! A concurrent mixed load for any backend (feature `conformance`), with the
//! invariants checked afterwards.
//!
//! [`mixed_load`] runs `tasks` tokio tasks, each committing `transactions`
//! transactions through [`MetadataStoreExt::transact`]. A transaction is one
//! to three operations drawn at random (seeded, so a run can be replayed):
//! `acquire_lock` and `release_range` on a few shared files (so tasks contend
//! and conflict), `put_file`, `get_file`, `delete_file`, `list_files`,
//! `list_locks`, `delete_locks_by_client` and `increment_server_epoch`.
//!
//! Each task is its own lock owner and client and has its own share of files,
//! so it can keep an exact model of everything it owns: its files, and for
//! every shared file which of its bytes it holds shared or exclusive. A model
//! changes only when `transact` returns `Ok` (the transaction committed);
//! what a transaction read is compared with the model only after it committed
//! (a serializable transaction that later fails may have read anything).
//!
//! Afterwards, in one transaction:
//! - the epoch equals the number of committed increments, and the values the
//!   increments returned are exactly `1..=n` (no lost or doubled update);
//! - no two stored locks conflict;
//! - each task's locks cover exactly the bytes its model says, with the types
//!   it says, and its pieces do not overlap each other; each task's files
//!   are exactly its model's (nothing committed is lost, nothing rolled back
//!   is there);
//! - every lock query (by file, owner, client, share, epoch) agrees with a
//!   filter over all locks;
//! - [`MetadataStore::verify`] reports a healthy store with the same counts.
//!
//! A transaction that still conflicts when `transact` gives up (its retry
//! budget is bounded in time) committed nothing; it is counted, not an error.
//! Any other error fails the load.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::{
    Acquire, ByteRange, Error, FileHandle, FileKind, FileMeta, LockOwner, LockQuery, LockType,
    MetadataStore, MetadataStoreExt, MetadataTransaction, PersistedLock, Result, ShareReservation,
    Timestamp,
};

/// Shared files the tasks lock.
const LOCK_FILES: usize = 8;
/// Files of its own each task writes.
const OWN_FILES: usize = 8;
/// Bytes 0..CELLS-1 are modelled one by one; the last cell stands for every
/// byte from `CELLS - 1` to EOF (no request starts or ends inside it).
const CELLS: usize = 1025;
/// The share every lock is taken through.
const LOCK_SHARE: &str = "load";
const T0: i64 = 1_700_000_000_000_000;

/// How big a [`mixed_load`] is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadConfig {
    /// Concurrent tasks.
    pub tasks: usize,
    /// Committed-or-abandoned transactions per task.
    pub transactions: usize,
    /// Seed of every random choice (task `i` uses `seed + i`).
    pub seed: u64,
}

impl LoadConfig {
    /// The full size: 64 tasks × 500 transactions.
    pub fn full() -> Self {
        LoadConfig {
            tasks: 64,
            transactions: 500,
            seed: fastrand::u64(..),
        }
    }

    /// 64 tasks × `ci_transactions`, unless the environment asks otherwise:
    /// `FSMETA_LOAD_FULL=1` runs [`LoadConfig::full`]; `FSMETA_LOAD_TASKS`,
    /// `FSMETA_LOAD_TXS` and `FSMETA_LOAD_SEED` set one value each.
    pub fn from_env(ci_transactions: usize) -> Self {
        let mut config = if std::env::var("FSMETA_LOAD_FULL").is_ok_and(|v| v == "1") {
            LoadConfig::full()
        } else {
            LoadConfig {
                transactions: ci_transactions,
                ..LoadConfig::full()
            }
        };
        let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        if let Some(tasks) = var("FSMETA_LOAD_TASKS") {
            config.tasks = tasks as usize;
        }
        if let Some(txs) = var("FSMETA_LOAD_TXS") {
            config.transactions = txs as usize;
        }
        if let Some(seed) = var("FSMETA_LOAD_SEED") {
            config.seed = seed;
        }
        config
    }
}

/// What a [`mixed_load`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Concurrent tasks.
    pub tasks: usize,
    /// Transactions that committed.
    pub committed: u64,
    /// Transactions abandoned after `transact` ran out of retries (committed nothing).
    pub abandoned: u64,
    /// Runs of a transaction's closure that did not commit (conflicts retried).
    pub retries: u64,
    /// Operations in committed transactions.
    pub operations: u64,
    /// Committed epoch increments (the final epoch).
    pub increments: u64,
    /// `acquire_lock` calls granted / denied, in committed transactions.
    pub granted: u64,
    /// See [`LoadReport::granted`].
    pub denied: u64,
    /// Locks and files stored at the end.
    pub locks: u64,
    /// See [`LoadReport::locks`].
    pub files: u64,
    /// Wall time of the load (not of the final checks).
    pub elapsed: Duration,
    /// The seed, to replay the run.
    pub seed: u64,
}

impl LoadReport {
    /// Committed transactions per second.
    pub fn tx_per_sec(&self) -> f64 {
        self.committed as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} tasks: {} transactions committed in {:.1} s ({:.0} tx/s), {} conflicts retried, \
             {} abandoned after retrying; {} operations, {} epoch increments, {} locks granted, \
             {} denied; {} locks and {} files stored at the end; invariants hold (seed {})",
            self.tasks,
            self.committed,
            self.elapsed.as_secs_f64(),
            self.tx_per_sec(),
            self.retries,
            self.abandoned,
            self.operations,
            self.increments,
            self.granted,
            self.denied,
            self.locks,
            self.files,
            self.seed,
        )
    }
}

// ---------------------------------------------------------------------------
// Names

fn lock_file(i: usize) -> FileHandle {
    FileHandle::new(format!("load-lock-{i}")).expect("valid handle")
}

fn owner_of(task: usize) -> LockOwner {
    LockOwner {
        owner_id: format!("owner-{task}"),
        // `client-1` is a prefix of `client-10`..`client-19`: indexes must keep them apart.
        client_id: format!("client-{task}"),
        share_name: LOCK_SHARE.into(),
    }
}

fn share_of(task: usize) -> String {
    format!("load-share-{task}")
}

fn own_file(task: usize, k: usize) -> FileHandle {
    FileHandle::new(format!("load/{task}/{k}")).expect("valid handle")
}

mod model;
mod ops;

use model::*;
use ops::*;

fn assert_no_conflicts(locks: &[PersistedLock], context: &str) {
    let mut by_file: BTreeMap<&FileHandle, Vec<&PersistedLock>> = BTreeMap::new();
    for lock in locks {
        by_file.entry(&lock.file_id).or_default().push(lock);
    }
    for locks in by_file.values() {
        for (i, a) in locks.iter().enumerate() {
            let ea = a.to_enhanced();
            for b in &locks[i + 1..] {
                assert!(
                    !ea.conflicts_with(&b.to_enhanced()),
                    "{context}: two stored locks conflict:\n{a:?}\n{b:?}"
                );
            }
        }
    }
}

/// Runs the load on `store` (which must be empty) and checks every invariant
/// listed in the module docs; panics on the first violation.
pub async fn mixed_load(store: Arc<dyn MetadataStore>, config: &LoadConfig) -> LoadReport {
    let started = Instant::now();
    let handles: Vec<_> = (0..config.tasks)
        .map(|task| tokio::spawn(task_loop(store.clone(), task, config.clone())))
        .collect();
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        match handle.await {
            Ok(result) => results.push(result),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("load task failed: {e}"),
        }
    }
    let elapsed = started.elapsed();
    let mut report = LoadReport {
        tasks: config.tasks,
        elapsed,
        seed: config.seed,
        ..Default::default()
    };
    let mut increments = Vec::new();
    for r in &results {
        report.committed += r.committed;
        report.abandoned += r.abandoned;
        report.retries += r.retries;
        report.operations += r.operations;
        report.granted += r.granted;
        report.denied += r.denied;
        increments.extend_from_slice(&r.increments);
    }
    report.increments = increments.len() as u64;
    check_final_state(&*store, &results, increments, &mut report).await;
    report
}

async fn check_final_state(
    store: &dyn MetadataStore,
    results: &[TaskResult],
    mut increments: Vec<u64>,
    report: &mut LoadReport,
) {
    let mut tx = store.begin().await.expect("begin the final check");
    // The epoch: every committed increment counted once, none lost.
    let epoch = tx.server_epoch().await.expect("server_epoch");
    increments.sort_unstable();
    assert_eq!(
        epoch,
        increments.len() as u64,
        "the epoch is not the number of committed increments"
    );
    assert!(
        increments.iter().copied().eq(1..=epoch),
        "committed increments returned {increments:?}, not 1..={epoch}"
    );

    // No two stored locks conflict.
    let all = tx
        .list_locks(&LockQuery::default())
        .await
        .expect("list all locks");
    assert_no_conflicts(&all, "after the load");

    // Each task's locks and files are exactly its model's.
    let mut files_total = 0;
    for (task, result) in results.iter().enumerate() {
        let model = result.model.as_ref().expect("every task returns its model");
        let owner = owner_of(task);
        for (file, expected) in model.locks.iter().enumerate() {
            let handle = lock_file(file);
            let own: Vec<&PersistedLock> = all
                .iter()
                .filter(|l| l.owner_id == owner.owner_id && l.file_id == handle)
                .collect();
            for piece in &own {
                assert!(
                    piece.client_id == owner.client_id && piece.share_name == LOCK_SHARE,
                    "task {task}: a piece changed hands: {piece:?}"
                );
            }
            let (got, got_reserved) =
                coverage_by_mode(&own).unwrap_or_else(|e| panic!("task {task}, file {file}: {e}"));
            assert!(
                got == *expected,
                "task {task}, file {file}: stored locks cover {}, the task committed {}",
                describe_cells(&got),
                describe_cells(expected)
            );
            let reserved = &model.reserved[file];
            assert!(
                got_reserved == *reserved,
                "task {task}, file {file}: stored deny-write records cover {}, the task committed {}",
                describe_cells(&got_reserved),
                describe_cells(reserved)
            );
        }
        let files = tx.list_files(&share_of(task)).await.expect("list_files");
        let expected: Vec<FileMeta> = model.files.values().cloned().collect();
        assert_eq!(
            files, expected,
            "task {task}: files differ from what it committed"
        );
        for file in &expected {
            assert_eq!(
                tx.get_file(&file.handle).await.expect("get_file").as_ref(),
                Some(file)
            );
        }
        files_total += files.len() as u64;
    }
    assert!(
        all.iter()
            .all(|l| l.owner_id.starts_with("owner-")
                && l.file_id.as_bytes().starts_with(b"load-lock-")),
        "a lock nobody took is stored"
    );

    // Every index agrees with the full list.
    let mut queries: Vec<LockQuery> = (0..LOCK_FILES)
        .map(|f| LockQuery::by_file(&lock_file(f)))
        .collect();
    for task in 0..results.len() {
        let owner = owner_of(task);
        queries.push(LockQuery::by_client(&owner.client_id));
        queries.push(LockQuery::by_owner(&owner.owner_id));
    }
    queries.push(LockQuery::by_share(LOCK_SHARE));
    queries.push(LockQuery::epoch_below(2));
    queries.push(LockQuery::epoch_below(1));
    for q in &queries {
        let got = tx.list_locks(q).await.expect("indexed list_locks");
        let expected: Vec<PersistedLock> = all.iter().filter(|l| q.matches(l)).cloned().collect();
        assert!(
            got == expected,
            "{q:?}: {} locks listed, {} match",
            got.len(),
            expected.len()
        );
    }
    drop(tx);

    let verified = store.verify().await.expect("verify");
    assert!(
        verified.is_healthy(),
        "verify after the load: {:#?}",
        verified.problems
    );
    assert_eq!(
        (verified.files, verified.locks),
        (files_total, all.len() as u64),
        "verify counted other records than the listings"
    );
    report.files = files_total;
    report.locks = all.len() as u64;
}
