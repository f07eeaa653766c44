//! The random operations a task runs, and the task loop that keeps its model.

use super::*;

#[derive(Clone, Debug)]
pub(super) enum Op {
    Acquire(PersistedLock, usize),
    Release(usize, ByteRange),
    PutFile(FileMeta),
    DeleteFile(usize),
    GetFile(usize),
    ListFiles,
    ListLocks(usize),
    DeleteByClient,
    Increment,
}

pub(super) fn random_range(rng: &mut fastrand::Rng) -> ByteRange {
    let offset = rng.u64(0..960);
    // One request in twenty runs to EOF.
    let length = if rng.u8(0..20) == 0 {
        0
    } else {
        rng.u64(1..=64)
    };
    ByteRange::new(offset, length)
}

pub(super) fn plan(rng: &mut fastrand::Rng, task: usize, i: usize) -> Vec<Op> {
    let owner = owner_of(task);
    (0..rng.usize(1..=3))
        .map(|_| match rng.u8(0..100) {
            0..30 => {
                let file = rng.usize(0..LOCK_FILES);
                let range = random_range(rng);
                let lock = PersistedLock {
                    id: Uuid::from_u64_pair(rng.u64(..), rng.u64(..)),
                    share_name: LOCK_SHARE.into(),
                    file_id: lock_file(file),
                    owner_id: owner.owner_id.clone(),
                    client_id: owner.client_id.clone(),
                    lock_type: if rng.bool() {
                        LockType::Shared
                    } else {
                        LockType::Exclusive
                    },
                    offset: range.offset,
                    length: range.length,
                    share_reservation: if rng.u8(0..100) == 0 {
                        ShareReservation::DenyWrite
                    } else {
                        ShareReservation::None
                    },
                    acquired_at: Timestamp::from_micros(T0 + i as i64),
                    server_epoch: 1,
                    flavor: crate::LockFlavor::Posix,
                };
                Op::Acquire(lock, file)
            }
            30..42 => Op::Release(rng.usize(0..LOCK_FILES), random_range(rng)),
            42..57 => {
                let k = rng.usize(0..OWN_FILES);
                Op::PutFile(FileMeta {
                    handle: own_file(task, k),
                    share_name: share_of(task),
                    kind: FileKind::Regular,
                    mode: 0o100600 | rng.u32(0..0o777),
                    uid: task as u32,
                    gid: rng.u32(..),
                    nlink: 1,
                    size: rng.u64(..),
                    atime: Timestamp::from_micros(T0 + i as i64),
                    mtime: Timestamp::from_micros(T0 + i as i64),
                    ctime: Timestamp::from_micros(T0 + i as i64),
                })
            }
            57..60 => Op::DeleteFile(rng.usize(0..OWN_FILES)),
            60..68 => Op::GetFile(rng.usize(0..OWN_FILES)),
            68..73 => Op::ListFiles,
            73..85 => Op::ListLocks(rng.usize(0..LOCK_FILES)),
            85..88 => Op::DeleteByClient,
            _ => Op::Increment,
        })
        .collect()
}

/// What one run of a transaction's closure produced: the model as it would
/// be after commit, and what it observed, to be checked once it committed.
pub(super) struct Run {
    pub(super) model: Model,
    pub(super) increments: Vec<u64>,
    pub(super) granted: u64,
    pub(super) denied: u64,
    /// Listings of a shared file's locks: checked for conflicts after commit.
    pub(super) listings: Vec<Vec<PersistedLock>>,
    /// Differences from the model (reported only if the transaction commits).
    pub(super) mismatches: Vec<String>,
}

pub(super) async fn run_ops(
    tx: &mut (dyn MetadataTransaction + '_),
    task: usize,
    ops: &[Op],
    mut model: Model,
) -> Result<Run> {
    let owner = owner_of(task);
    let mut run = Run {
        model: Model::new(),
        increments: Vec::new(),
        granted: 0,
        denied: 0,
        listings: Vec::new(),
        mismatches: Vec::new(),
    };
    for op in ops {
        match op {
            Op::Acquire(lock, file) => match crate::acquire_lock(tx, lock).await? {
                Acquire::Granted => {
                    run.granted += 1;
                    let kind = cell_of(lock.lock_type);
                    let layer = if lock.share_reservation == ShareReservation::None {
                        &mut model.locks[*file]
                    } else {
                        &mut model.reserved[*file]
                    };
                    for cell in cells(lock.range()).expect("planned ranges are modelled") {
                        layer[cell] = kind;
                    }
                }
                Acquire::Denied { conflicts } | Acquire::Grace { conflicts } => {
                    run.denied += 1;
                    let wanted = lock.to_enhanced();
                    if conflicts.is_empty()
                        || conflicts.iter().any(|c| {
                            c.owner_id == owner.owner_id || !wanted.conflicts_with(&c.to_enhanced())
                        })
                    {
                        run.mismatches
                            .push(format!("{lock:?} denied because of {conflicts:?}"));
                    }
                    run.listings.push(conflicts);
                }
            },
            Op::Release(file, range) => {
                let touched = crate::release_range(tx, &lock_file(*file), &owner, *range).await?;
                let held = cells(*range)
                    .expect("planned ranges are modelled")
                    .any(|c| model.locks[*file][c] != 0);
                if (touched > 0) != held {
                    run.mismatches.push(format!(
                        "release {range:?} on file {file} touched {touched} locks, but the model holds {}",
                        describe_cells(&model.locks[*file])
                    ));
                }
                for cell in cells(*range).expect("planned ranges are modelled") {
                    model.locks[*file][cell] = 0;
                }
            }
            Op::PutFile(file) => {
                tx.put_file(file).await?;
                model.files.insert(file.handle.clone(), file.clone());
            }
            Op::DeleteFile(k) => {
                let handle = own_file(task, *k);
                let got = match tx.delete_file(&handle).await {
                    Ok(()) => true,
                    Err(Error::FileNotFound(_)) => false,
                    Err(e) => return Err(e),
                };
                let expected = model.files.remove(&handle).is_some();
                if got != expected {
                    run.mismatches.push(format!(
                        "delete_file {handle}: deleted {got}, the model has it: {expected}"
                    ));
                }
            }
            Op::GetFile(k) => {
                let handle = own_file(task, *k);
                let got = tx.get_file(&handle).await?;
                if got.as_ref() != model.files.get(&handle) {
                    run.mismatches.push(format!(
                        "get_file {handle}: {got:?}, the model has {:?}",
                        model.files.get(&handle)
                    ));
                }
            }
            Op::ListFiles => {
                let got = tx.list_files(&share_of(task)).await?;
                let expected: Vec<&FileMeta> = model.files.values().collect();
                if got.iter().collect::<Vec<_>>() != expected {
                    run.mismatches.push(format!(
                        "list_files: {} files, the model has {}",
                        got.len(),
                        expected.len()
                    ));
                }
            }
            Op::ListLocks(file) => {
                let listed = tx
                    .list_locks(&LockQuery::by_file(&lock_file(*file)))
                    .await?;
                let own: Vec<&PersistedLock> = listed
                    .iter()
                    .filter(|l| l.owner_id == owner.owner_id)
                    .collect();
                let (locks, reserved) = (&model.locks[*file], &model.reserved[*file]);
                match coverage_by_mode(&own) {
                    Ok((plain, deny)) if plain == *locks && deny == *reserved => {}
                    Ok((plain, deny)) => run.mismatches.push(format!(
                        "list_locks of file {file}: own locks cover {} (deny-write records {}), \
                         the model holds {} ({})",
                        describe_cells(&plain),
                        describe_cells(&deny),
                        describe_cells(locks),
                        describe_cells(reserved)
                    )),
                    Err(e) => run
                        .mismatches
                        .push(format!("list_locks of file {file}: {e}")),
                }
                run.listings.push(listed);
            }
            Op::DeleteByClient => {
                let deleted = tx.delete_locks_by_client(&owner.client_id).await?;
                if (deleted > 0) != model.holds_any() {
                    run.mismatches.push(format!(
                        "delete_locks_by_client deleted {deleted}, the model holds {}",
                        if model.holds_any() { "some" } else { "none" }
                    ));
                }
                for file in model.locks.iter_mut().chain(&mut model.reserved) {
                    file.fill(0);
                }
            }
            Op::Increment => run.increments.push(tx.increment_server_epoch().await?),
        }
    }
    run.model = model;
    Ok(run)
}

#[derive(Default)]
pub(super) struct TaskResult {
    pub(super) model: Option<Model>,
    pub(super) increments: Vec<u64>,
    pub(super) committed: u64,
    pub(super) abandoned: u64,
    pub(super) retries: u64,
    pub(super) operations: u64,
    pub(super) granted: u64,
    pub(super) denied: u64,
}

pub(super) async fn task_loop(
    store: Arc<dyn MetadataStore>,
    task: usize,
    config: LoadConfig,
) -> TaskResult {
    let mut rng = fastrand::Rng::with_seed(config.seed.wrapping_add(task as u64));
    let mut model = Model::new();
    let mut result = TaskResult::default();
    for i in 0..config.transactions {
        let ops = plan(&mut rng, task, i);
        let mut runs = 0u64;
        let outcome = {
            let (ops, model, runs) = (&ops, &model, &mut runs);
            store
                .transact(|tx| {
                    *runs += 1;
                    let model = model.clone();
                    Box::pin(async move { run_ops(tx, task, ops, model).await })
                })
                .await
        };
        match outcome {
            Ok(run) => {
                result.retries += runs - 1;
                result.committed += 1;
                result.operations += ops.len() as u64;
                result.granted += run.granted;
                result.denied += run.denied;
                assert!(
                    run.mismatches.is_empty(),
                    "task {task}, transaction {i} {ops:?} committed after reading what its model \
                     does not say:\n{}",
                    run.mismatches.join("\n")
                );
                for listing in &run.listings {
                    assert_no_conflicts(listing, &format!("task {task}, transaction {i}"));
                }
                result.increments.extend(run.increments);
                model = run.model;
            }
            Err(e) if e.is_retryable() => {
                // transact gave up: the last attempt conflicted, so nothing committed.
                result.retries += runs;
                result.abandoned += 1;
            }
            Err(e) => panic!("task {task}, transaction {i} {ops:?}: {e}"),
        }
    }
    result.model = Some(model);
    result
}
