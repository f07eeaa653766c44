//! The operations whose PostgreSQL messages (round trips) issue 20 counts,
//! shared by `tests/postgres_statements.rs` (which counts them in the
//! server's statement log and asserts the exact counts) and
//! `examples/bench.rs` (which counts them on the wire and prints each
//! against its target). They run in order on one fresh store: the merge
//! and the split work on the lock the first acquisition took.

use fsmeta::{
    Acquire, ByteRange, FileHandle, FileKind, FileMeta, LockFlavor, LockOwner, LockType,
    MetadataStore, MetadataStoreExt, PersistedLock, ShareReservation, Timestamp, acquire_lock,
    begin_recovery, release_range,
};
use uuid::Uuid;

/// One counted operation.
#[derive(Clone, Copy, Debug)]
pub struct Counted {
    /// What it is, as the tables in docs/performance.md name it.
    pub name: &'static str,
    /// A name for a bench line.
    pub slug: &'static str,
    /// The messages it takes by design (see `src/backend/postgres/batch.rs`).
    pub expected: usize,
    /// Issue 20's target.
    pub target: usize,
    op: Op,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    TransactFileAndLock,
    Nothing,
    AcquireOnEmptyFile,
    AcquireMerging,
    ReleaseSplitting,
    BeginRecovery,
}

/// Every counted operation, in the order they must run.
pub const COUNTED: [Counted; 6] = [
    Counted {
        name: "transact(put_file + put_lock)",
        slug: "transact-file-and-lock",
        expected: 1,
        target: 1,
        op: Op::TransactFileAndLock,
    },
    Counted {
        name: "a transaction that does nothing",
        slug: "empty-transaction",
        expected: 0,
        target: 0,
        op: Op::Nothing,
    },
    Counted {
        name: "acquire_lock on a file with no locks",
        slug: "acquire-on-empty-file",
        expected: 3,
        target: 3,
        op: Op::AcquireOnEmptyFile,
    },
    Counted {
        name: "acquire_lock merging with one own lock",
        slug: "acquire-merging",
        expected: 3,
        target: 3,
        op: Op::AcquireMerging,
    },
    Counted {
        name: "release_range splitting a lock",
        slug: "release-splitting",
        expected: 2,
        target: 3,
        op: Op::ReleaseSplitting,
    },
    Counted {
        name: "begin_recovery",
        slug: "begin-recovery",
        expected: 5,
        target: 5,
        op: Op::BeginRecovery,
    },
];

type Res<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn handle(name: &[u8]) -> FileHandle {
    FileHandle::new(name.to_vec()).expect("a short handle")
}

fn owner() -> LockOwner {
    LockOwner {
        owner_id: "counted-owner".into(),
        client_id: "counted-client".into(),
        share_name: "counted".into(),
    }
}

/// A POSIX write lock of [`owner`] on `file`, `length` bytes at `offset`.
fn lock(file: &FileHandle, offset: u64, length: u64) -> PersistedLock {
    let owner = owner();
    PersistedLock {
        id: Uuid::new_v4(),
        share_name: owner.share_name,
        file_id: file.clone(),
        owner_id: owner.owner_id,
        client_id: owner.client_id,
        lock_type: LockType::Exclusive,
        offset,
        length,
        share_reservation: ShareReservation::None,
        acquired_at: Timestamp::from_micros(1_764_000_000_000_000),
        server_epoch: 0,
        flavor: LockFlavor::Posix,
    }
}

/// Takes `lock` in one transaction; it must be granted.
async fn acquire_granted(store: &dyn MetadataStore, lock: &PersistedLock) -> Res {
    let mut tx = store.begin().await?;
    match acquire_lock(&mut *tx, lock).await? {
        Acquire::Granted => Ok(tx.commit().await?),
        other => Err(format!("acquire_lock {lock:?}: {other:?}, expected Granted").into()),
    }
}

/// The file the counted acquisitions and the release work on: after all of
/// [`COUNTED`] it holds two locks, the pieces of the split.
pub fn locked_file() -> FileHandle {
    handle(b"counted-locks")
}

impl Counted {
    /// Runs the operation on `store` (after the ones before it in
    /// [`COUNTED`]), checking that it did what it is counted for.
    pub async fn run(&self, store: &dyn MetadataStore) -> Res {
        let locked = locked_file();
        match self.op {
            Op::TransactFileAndLock => {
                let file = FileMeta {
                    handle: handle(b"counted-file"),
                    share_name: "counted".into(),
                    kind: FileKind::Regular,
                    mode: 0o644,
                    uid: 1,
                    gid: 1,
                    nlink: 1,
                    size: 0,
                    atime: Timestamp::from_micros(1_764_000_000_000_000),
                    mtime: Timestamp::from_micros(1_764_000_000_000_000),
                    ctime: Timestamp::from_micros(1_764_000_000_000_000),
                };
                let lock = lock(&file.handle, 0, 10);
                let (file, lock) = (&file, &lock);
                store
                    .transact(|tx| {
                        Box::pin(async move {
                            tx.put_file(file).await?;
                            tx.put_lock(lock).await
                        })
                    })
                    .await?;
            }
            Op::Nothing => store.begin().await?.commit().await?,
            Op::AcquireOnEmptyFile => acquire_granted(store, &lock(&locked, 0, 10)).await?,
            Op::AcquireMerging => acquire_granted(store, &lock(&locked, 10, 10)).await?,
            Op::ReleaseSplitting => {
                let mut tx = store.begin().await?;
                let range = ByteRange {
                    offset: 5,
                    length: 5,
                };
                let released = release_range(&mut *tx, &locked, &owner(), range).await?;
                tx.commit().await?;
                if released != 1 {
                    return Err(
                        format!("release_range released {released} locks, expected 1").into(),
                    );
                }
            }
            Op::BeginRecovery => {
                begin_recovery(store).await?;
            }
        }
        Ok(())
    }
}
