//! fsmeta: the metadata-transaction layer of a network file server (NFS, SMB).
//!
//! A lock write and a file-metadata write made in the same transaction commit
//! together or vanish together, on every backend:
//!
//! | backend | for | storage |
//! | --- | --- | --- |
//! | [`MemoryStore`] | tests, ephemeral servers | copy-on-write maps |
//! | `FjallStore` (feature `fjall`) | one server, state on local disk | fjall keyspaces |
//! | `PostgresStore` (feature `postgres`) | several servers sharing one database | PostgreSQL |
//!
//! Locks carry the server epoch that granted them, so a restarted server can
//! tell which locks clients must reclaim during a grace period.
//!
//! There are three ways in.
//!
//! # 1. Files and locks in one transaction: `transact`
//!
//! [`MetadataStoreExt::transact`] runs a closure in a transaction, commits,
//! and on [`Error::Conflict`] runs the whole closure again (jittered backoff,
//! bounded in time). The closure may run several times, so it borrows:
//!
//! ```
//! use fsmeta::*;
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
//! let store = MemoryStore::new(); // or fsmeta::open("fjall:/var/lib/srv/meta").await?
//! let now = Timestamp::now();
//! let file = FileMeta {
//!     handle: FileHandle::new(*b"fh-1")?, share_name: "export".into(), kind: FileKind::Regular,
//!     mode: 0o644, uid: 0, gid: 0, nlink: 1, size: 0, atime: now, mtime: now, ctime: now,
//! };
//! let lock = PersistedLock {
//!     id: uuid::Uuid::new_v4(), share_name: "export".into(), file_id: file.handle.clone(),
//!     owner_id: "owner-1".into(), client_id: "client-1".into(), lock_type: LockType::Exclusive,
//!     offset: 0, length: 100, share_reservation: ShareReservation::None,
//!     acquired_at: now, server_epoch: 1, flavor: LockFlavor::Posix,
//! };
//! let (file_ref, lock_ref) = (&file, &lock);
//! store
//!     .transact(|tx| Box::pin(async move {
//!         tx.put_file(file_ref).await?;
//!         tx.put_lock(lock_ref).await // both commit, or neither
//!     }))
//!     .await?;
//! # let mut tx = store.begin().await?;
//! # assert_eq!(tx.get_lock(lock.id).await?, Some(lock.clone()));
//! # Ok(()) }
//! ```
//!
//! # 2. Deciding locks: the arbiter
//!
//! [`acquire_lock`] reads the file's locks, decides and writes in the
//! caller's transaction, so two servers sharing a database never both grant
//! conflicting locks; [`test_lock`], [`release_range`] (POSIX unlock) and
//! [`reclaim_lock`] (after a restart, see [`begin_recovery`] and
//! [`end_grace`]) work the same way.
//! SMB servers set [`LockFlavor::Windows`] on their locks (MS-FSA rules:
//! zero-byte locks, stacking, no merge) and use [`unlock_exact`] and
//! [`check_io`] (mandatory locks on READ/WRITE).
//!
//! ```
//! use fsmeta::*;
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
//! let store = MemoryStore::new();
//! let recovery = begin_recovery(&store).await?; // a new epoch for this server
//! let request = |owner: &str| PersistedLock {
//!     id: uuid::Uuid::new_v4(), share_name: "export".into(),
//!     file_id: FileHandle::new(*b"fh-1").unwrap(), owner_id: owner.into(),
//!     client_id: "client-1".into(), lock_type: LockType::Exclusive, offset: 0, length: 0,
//!     share_reservation: ShareReservation::None, acquired_at: Timestamp::now(),
//!     server_epoch: recovery.epoch, flavor: LockFlavor::Posix,
//! };
//! let (first, second) = (&request("a"), &request("b"));
//! let answer = store.transact(|tx| Box::pin(async move { acquire_lock(tx, first).await })).await?;
//! assert_eq!(answer, Acquire::Granted);
//! let answer = store.transact(|tx| Box::pin(async move { acquire_lock(tx, second).await })).await?;
//! assert!(matches!(answer, Acquire::Denied { conflicts } if conflicts == [first.clone()]));
//! # Ok(()) }
//! ```
//!
//! # 3. Bringing your own metadata: extension tables
//!
//! The host's own records (inodes, directory entries, xattrs, quotas) go
//! into named tables of `key → value` bytes ([`ExtStore`]: `ext_put`,
//! `ext_get`, `ext_delete`, `ext_scan`), in the same transaction as fsmeta's
//! files and locks, with the same semantics on every backend; they commit or
//! vanish with them. Keys order bytewise, so a directory listing is one
//! prefix scan:
//!
//! ```no_run
//! use fsmeta::*;
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
//! let store = fsmeta::open("memory:").await?;
//! # let lock = PersistedLock {
//! #     id: uuid::Uuid::new_v4(), share_name: "export".into(), file_id: FileHandle::new(*b"fh-7")?,
//! #     owner_id: "o".into(), client_id: "c".into(), lock_type: LockType::Shared, offset: 0,
//! #     length: 0, share_reservation: ShareReservation::None, acquired_at: Timestamp::now(),
//! #     server_epoch: 1, flavor: LockFlavor::Posix,
//! # };
//! let lock = &lock;
//! store
//!     .transact(|tx| Box::pin(async move {
//!         tx.ext_put("dirents", b"\x00\x01/a.txt", b"inode 7").await?; // the host's record
//!         tx.put_lock(lock).await // and fsmeta's, atomically
//!     }))
//!     .await?;
//! let mut tx = store.begin().await?;
//! let entries = tx
//!     .ext_scan("dirents", &KeyRange::Prefix(b"\x00\x01/".to_vec()), None, 100)
//!     .await?;
//! assert_eq!(entries[0].value, b"inode 7");
//! # Ok(()) }
//! ```
//!
//! Hosts with their own typed schema can instead run their writes in the
//! backend's native transaction (a SeaORM `ConnectionTrait` on the
//! transaction's connection on PostgreSQL, the `OptimisticWriteTx` on fjall) through each backend's
//! `native` function (see [`MetadataTransaction::as_any`]).
//!
//! # Observability
//!
//! fsmeta emits [`tracing`](https://docs.rs/tracing) spans, with ids only
//! (file handles as hex, owner and client ids, ranges, epochs, counts), never
//! record contents:
//!
//! | span | level | fields |
//! | --- | --- | --- |
//! | `begin`, `commit`, `rollback` | debug | `backend`, `outcome` (`ok` or the error kind), `duration_us` |
//! | `transact` (one per attempt) | debug | `retry`, `outcome`, `stage` (`begin`, `body`, `commit`) of a failure |
//! | `acquire_lock`, `test_lock`, `reclaim` | debug | `file`, `owner`, `client`, `offset`, `length`, `lock_type`, `decision`, `conflicts` (`reclaim`: `node`) |
//! | `release_range` | debug | `file`, `owner`, `client`, `offset`, `length`, `decision`, `released` |
//! | `unlock_exact` | debug | `file`, `owner`, `client`, `offset`, `length`, `decision` (`unlocked`, `not_locked` or the error kind) |
//! | `begin_recovery` | info | `node`, `epoch`, `previous_shutdown_clean`, `reclaimable`, `clients`, `outcome` |
//! | `end_grace` | info | `node`, `epoch`, `deleted`, `outcome` |
//! | `mark_clean_shutdown` | info | `node`, `outcome` |
//! | `copy_store` | info | `batch_size`, `allow_non_empty`, `files`, `locks`, `nodes`, `epoch_records`, `matches`, `outcome`; an event per phase |
//! | `digest`, `verify_records` | info | `files`, `locks` (`verify_records`: `problems`), `outcome` |
//! | `verify`, `repair` (fjall) | info | `backend` |
//!
//! With feature `metrics`, the [`metrics`](https://docs.rs/metrics) facade
//! gets the counters `fsmeta_commits_total{backend}`,
//! `fsmeta_conflicts_total{stage}`, `fsmeta_transaction_retries_total` and
//! `fsmeta_transactions_gave_up_total`, and the histogram
//! `fsmeta_commit_seconds{backend, outcome}`; install any recorder (e.g. a
//! Prometheus exporter) to collect them.
//!
//! # Features
//!
//! `fjall` and `postgres` (default) bring those backends; `conformance` the
//! shared behaviour suite for a third-party backend; `metrics` the metrics
//! above; `cli` the `fsmeta` command.
#![warn(missing_docs)]

pub mod backend;
mod client;
mod copy;
mod digest;
mod error;
mod ext;
mod file;
mod handle;
mod lock;
mod node;
mod obs;
mod open;
pub mod pages;
mod recovery;
mod report;
mod session;
mod time;
mod tx;
pub mod validate;
mod verify;
mod waiter;

// Also in the crate's own unit tests, for its sample data.
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

use std::sync::Arc;

#[cfg(feature = "fjall")]
pub use backend::fjall::{Durability, FjallOptions, FjallStore};
pub use backend::memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use backend::postgres::{PgOptions, PostgresStore};
pub use client::{
    ClientProtocol, ClientQuery, ClientRecord, ClientStore, MAX_CLIENT_CALLBACK_LEN,
    MAX_CLIENT_OWNER_LEN, MAX_CLIENT_PRINCIPAL_LEN, ReclaimRefusal, may_reclaim,
};
pub use copy::{CopyOptions, CopyPhase, CopyProgress, CopyReport, copy_store};
pub use digest::{StoreDigest, digest, digest_in, store_is_empty};
pub use error::{Error, Result};
pub use ext::{
    ExtRecord, ExtStore, KeyRange, MAX_EXT_KEY_LEN, MAX_EXT_TABLE_LEN, MAX_EXT_VALUE_LEN,
    prefix_successor,
};
pub use file::{FileHandle, FileKind, FileMeta, FileStore};
pub use lock::arbiter::{Acquire, acquire_lock, release_range, test_lock};
pub use lock::reclaim::{Reclaim, reclaim_lock};
pub use lock::windows::{Io, Unlock, check_io, unlock_exact};
pub use lock::{
    ByteRange, EnhancedLock, LockExtent, LockFlavor, LockOwner, LockQuery, LockStore, LockType,
    PersistedLock, ShareReservation,
};
pub use node::{DEFAULT_NODE, EpochRecord, NodeState, NodeStore, Takeover};
pub use open::{
    DelegationQuery, DelegationReclaim, DelegationRecord, DelegationType, Disconnect, DurableState,
    LOCK_SEQUENCE_ENTRIES, LeaseKey, LeaseQuery, LeaseRecord, LeaseState, LeaseStore,
    MAX_LOCK_SEQUENCE_ENTRY, Open, OpenProtocol, OpenQuery, OpenRecord, OpenRequest, OpenStore,
    Reconnect, ShareConflict, ShareMask, ack_break, close_open, disconnect_open,
    drop_revoked_delegations, durable_expiry, expire_durable, open_file, reclaim_delegation,
    reconnect_open, return_delegation, revoke_delegation, share_modes_conflict,
};
pub use recovery::{
    Epochs, Recovery, begin_recovery, clean_shutdown, end_grace, mark_clean_shutdown,
    set_clean_shutdown,
};
pub use report::{Problem, ProblemKind, VerifyReport};
pub use session::{
    DeadNode, Node, NodeSession, SessionTx, StartOptions, declare_dead, declare_dead_forced,
    require_lock,
};
pub use time::Timestamp;
pub use tx::{
    MetadataStore, MetadataStoreExt, MetadataTransaction, RetryPolicy, TxFuture, verify_records,
};
pub use verify::verify_transaction;
pub use waiter::{
    Fairness, MAX_WAITER_CONTEXT_LEN, Wait, WaitOptions, Waiter, WaiterQuery, WaiterStore, Waiters,
    WaitersOptions, WakeCause, WakeFeed, WakeHub, Woken, acquire_or_wait, cancel_wait,
    remove_client_waiters, remove_waiter,
};

/// Opens a store by URL: `memory:`, `fjall:PATH` or `postgres://…`.
pub async fn open(url: &str) -> Result<Arc<dyn MetadataStore>> {
    if url == "memory:" || url == "memory://" {
        return Ok(Arc::new(MemoryStore::new()));
    }
    if let Some(_path) = url.strip_prefix("fjall:") {
        #[cfg(feature = "fjall")]
        return Ok(Arc::new(backend::fjall::FjallStore::open(_path)?));
        #[cfg(not(feature = "fjall"))]
        return Err(Error::Invalid(
            "fjall: URL, but fsmeta was built without feature `fjall`".into(),
        ));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        return Ok(Arc::new(
            backend::postgres::PostgresStore::connect(url).await?,
        ));
        #[cfg(not(feature = "postgres"))]
        return Err(Error::Invalid(
            "postgres URL, but fsmeta was built without feature `postgres`".into(),
        ));
    }
    Err(Error::Invalid(format!(
        "store URL {url:?}: expected memory:, fjall:PATH or postgres://…"
    )))
}
