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
//! ```
//! use fsmeta::*;
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
//! let store = MemoryStore::new();
//! let file = FileMeta {
//!     handle: FileHandle::new(*b"fh-1")?, share_name: "export".into(), kind: FileKind::Regular,
//!     mode: 0o644, uid: 0, gid: 0, nlink: 1, size: 0,
//!     atime: Timestamp::now(), mtime: Timestamp::now(), ctime: Timestamp::now(),
//! };
//! let file = &file;
//! store.transact(|tx| Box::pin(async move { tx.put_file(file).await })).await?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod backend;
mod copy;
mod error;
mod ext;
mod file;
mod handle;
mod lock;
mod node;
mod obs;
pub mod pages;
mod recovery;
mod report;
mod time;
mod tx;
pub mod validate;
mod verify;

#[cfg(feature = "conformance")]
pub mod conformance;

use std::sync::Arc;

#[cfg(feature = "fjall")]
pub use backend::fjall::{Durability, FjallOptions, FjallStore};
pub use backend::memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use backend::postgres::{PgOptions, PostgresStore};
pub use copy::{
    CopyOptions, CopyPhase, CopyProgress, CopyReport, StoreDigest, copy_store, digest, digest_in,
    store_is_empty,
};
pub use error::{Error, Result};
pub use ext::{
    ExtRecord, ExtStore, KeyRange, MAX_EXT_KEY_LEN, MAX_EXT_TABLE_LEN, MAX_EXT_VALUE_LEN,
    prefix_successor,
};
pub use file::{FileHandle, FileKind, FileMeta, FileStore};
pub use lock::arbiter::{
    Acquire, Reclaim, acquire_lock, reclaim_lock, reclaim_lock_as, release_range, test_lock,
};
pub use lock::{
    ByteRange, EnhancedLock, LockOwner, LockQuery, LockStore, LockType, PersistedLock,
    ShareReservation,
};
pub use node::{DEFAULT_NODE, EpochRecord, NodeState, NodeStore};
pub use recovery::{
    Epochs, Recovery, begin_recovery, begin_recovery_as, clean_shutdown, end_grace, end_grace_as,
    mark_clean_shutdown, mark_clean_shutdown_as, set_clean_shutdown,
};
pub use report::{Problem, ProblemKind, VerifyReport};
pub use time::Timestamp;
pub use tx::{
    MetadataStore, MetadataStoreExt, MetadataTransaction, RetryPolicy, TxFuture, verify_records,
};
pub use verify::verify_transaction;

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
