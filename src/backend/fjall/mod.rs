//! The fjall backend: the embedded, persistent default for one server.
//!
//! State lives in a fjall 3 [`OptimisticTxDatabase`] in one directory: one
//! keyspace per record kind (`files`, `locks`, `meta`) and one per secondary
//! index (`files_by_share`, `locks_by_file`, `locks_by_owner`,
//! `locks_by_client`, `locks_by_share`, `locks_by_epoch`); `keys.rs` draws
//! every key. Each record family (`files.rs`, `locks.rs`, `nodes.rs`) only
//! declares its keyspace, key, codec and index extractors; one generic
//! indexed table (`table.rs`) stores them all. Values are postcard behind a one-byte format version
//! (`codec.rs`); `meta` records the store's format version, and a store written
//! by a newer format is refused with [`Error::UnsupportedFormat`]. `meta` also
//! holds the global server epoch, node states and epoch records.
//!
//! # Transactions and serializability
//!
//! A [`MetadataTransaction`] is one fjall optimistic write transaction. Reads
//! see a snapshot plus the transaction's own writes; at commit fjall checks
//! whether a transaction that committed after this one's snapshot wrote any
//! key this one *read*, and if so the commit fails with [`Error::Conflict`].
//! fjall only detects read-write conflicts, so every operation reads what its
//! result depends on before it writes: `put_lock` reads the old record (to
//! drop its stale index entries), `increment_server_epoch` reads the epoch,
//! bulk deletes walk their index inside the transaction. Blind writes that
//! depend on nothing (`put_node`, `put_epoch_record`) read nothing: two
//! concurrent blind writes serialize in commit order either way.
//!
//! **Phantoms.** fjall records a range or prefix scan as a key *range* in the
//! transaction's read set, and a later-committed write of any key inside that
//! range conflicts, even a key that did not exist when the scan ran (fjall
//! 3.1's `ConflictManager::has_conflict`, exercised by its `tx_ssi_range` and
//! `tx_ssi_prefix` tests). Every listing here is such a scan over an index
//! prefix, and every lock write inserts into those indexes, so two
//! transactions that each see "no lock on file F" and each add one cannot
//! both commit: the second finds the first's `locks_by_file` entry inside the
//! prefix it scanned. No extra version keys are needed; the unit test
//! `fjall_range_reads_detect_phantoms` pins this behaviour of the dependency.
//!
//! # Checking a store
//!
//! [`MetadataStore::verify`] decodes every record and `meta` value and checks
//! every index entry against its record and every record against its index
//! entries; [`MetadataStore::repair`] rebuilds the indexes from the records,
//! in small retried transactions, so it can run while the server does (see
//! `check.rs` for how, and for what it will not touch).
//!
//! # Durability
//!
//! See [`Durability`]. Either way a commit is atomic on disk: fjall writes the
//! whole transaction as one checksummed journal batch, and recovery drops a
//! torn tail batch, so after a crash a transaction is entirely there or not
//! at all.

mod check;
mod codec;
mod files;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod keys;
mod locks;
mod nodes;
mod table;
mod tx;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use fjall::{
    KeyspaceCreateOptions, OptimisticTxDatabase, OptimisticTxKeyspace, OptimisticWriteTx,
    PersistMode, Readable,
};

use crate::error::{Error, Result};
use crate::obs::{TxOp, traced};
use crate::tx::{MetadataStore, MetadataTransaction};
use crate::verify::VerifyReport;
use keys::names;

/// How hard a commit works to reach the disk before it returns.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Durability {
    /// Commit hands the transaction's journal batch to the operating system
    /// (a `write`, no `fsync`) before it returns.
    ///
    /// A committed transaction survives a crash or kill of the **process**
    /// (the kernel still writes its buffers out), but not a power loss or
    /// kernel crash: the last commits before one may be lost. What is lost
    /// is always a suffix of whole transactions, never part of one.
    /// Commits are microseconds and run inline on the calling task.
    #[default]
    Buffered,
    /// Commit `fsync`s the journal before it returns (and before other
    /// transactions can see the commit).
    ///
    /// A committed transaction survives power loss and kernel crashes, as far
    /// as the disk honours `fsync`. A commit costs one `fsync` (typically 0.1
    /// to 10 ms), so commit and `begin` (which waits for a commit in flight
    /// to finish) run on tokio's blocking thread pool, never blocking an async
    /// worker thread. A commit already handed to that pool finishes even if
    /// its future is dropped: a cancelled commit may or may not have happened.
    Sync,
}

/// Options for [`FjallStore::open_with`].
///
/// Build with struct-update syntax so that new options keep compiling:
/// `FjallOptions { durability: Durability::Sync, ..Default::default() }`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FjallOptions {
    /// What a commit guarantees before it returns (default [`Durability::Buffered`]).
    pub durability: Durability,
    /// Size of fjall's block cache in bytes; `None` keeps fjall's default (32 MiB).
    pub cache_size: Option<u64>,
}

/// The store format this build writes and the newest it reads.
const FORMAT_VERSION: u32 = 1;

/// A store in a local directory, on fjall.
///
/// Cloning is cheap and gives another handle to the same open database.
/// Dropping the last handle (and every transaction begun from it) closes the
/// database and releases its directory lock, so the same path can be opened
/// again, in this process or another. Only one open database may use a
/// directory at a time: opening a directory that is already open (by another
/// process, or by a live handle in this one) is an error.
///
/// ```
/// use fsmeta::*;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
/// # let dir = tempfile::tempdir().map_err(|e| Error::backend("temp dir", e))?;
/// let options = FjallOptions { durability: Durability::Sync, ..Default::default() };
/// let store = FjallStore::open_with(dir.path(), options)?;
/// store.transact(|tx| Box::pin(async move { tx.increment_server_epoch().await })).await?;
/// drop(store); // the last handle: the database closes and the directory is free again
///
/// let store = FjallStore::open(dir.path())?;
/// assert_eq!(store.begin().await?.server_epoch().await?, 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct FjallStore {
    inner: Arc<Inner>,
}

/// The open database and its keyspace handles.
struct Inner {
    path: PathBuf,
    durability: Durability,
    db: OptimisticTxDatabase,
    ks: Keyspaces,
}

/// Handles to every keyspace (cheap to clone: each is reference-counted).
#[derive(Clone)]
struct Keyspaces {
    files: OptimisticTxKeyspace,
    files_by_share: OptimisticTxKeyspace,
    locks: OptimisticTxKeyspace,
    locks_by_file: OptimisticTxKeyspace,
    locks_by_owner: OptimisticTxKeyspace,
    locks_by_client: OptimisticTxKeyspace,
    locks_by_share: OptimisticTxKeyspace,
    locks_by_epoch: OptimisticTxKeyspace,
    meta: OptimisticTxKeyspace,
}

impl fmt::Debug for FjallStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FjallStore")
            .field("path", &self.inner.path)
            .field("durability", &self.inner.durability)
            .finish_non_exhaustive()
    }
}

impl FjallStore {
    /// The store format version this build writes, and the newest it can open.
    pub const FORMAT_VERSION: u32 = FORMAT_VERSION;

    /// Opens (creating it if needed) the store in directory `path`, with
    /// [`Durability::Buffered`].
    ///
    /// This call does blocking I/O (journal recovery); from async code on a
    /// busy runtime, consider `tokio::task::spawn_blocking`.
    ///
    /// # Errors
    /// [`Error::Backend`] when the directory cannot be opened or is already
    /// open, [`Error::UnsupportedFormat`] when a newer fsmeta wrote the store,
    /// [`Error::Corrupt`] when its format record is unreadable.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, FjallOptions::default())
    }

    /// [`FjallStore::open`] with options (durability, cache size).
    ///
    /// # Errors
    /// As [`FjallStore::open`].
    pub fn open_with(path: impl AsRef<Path>, options: FjallOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut builder = OptimisticTxDatabase::builder(&path);
        if let Some(bytes) = options.cache_size {
            builder = builder.cache_size(bytes);
        }
        let db = builder.open().map_err(|e| match e {
            fjall::Error::Locked => Error::backend(
                format!(
                    "opening fjall store {}: the directory is already open (by another process, or by a live handle in this one)",
                    path.display()
                ),
                e,
            ),
            e => Error::backend(format!("opening fjall store {}", path.display()), e),
        })?;
        let ks_ctx = |name: &str| {
            format!(
                "opening keyspace `{name}` of fjall store {}",
                path.display()
            )
        };
        // `meta` first, and the format checked before any other keyspace is
        // created, so that opening a newer store does not modify it.
        let meta = db
            .keyspace(names::META, KeyspaceCreateOptions::default)
            .map_err(|e| Error::backend(ks_ctx(names::META), e))?;
        let found = check_format(&db, &meta)?;
        let open = |name: &str| {
            db.keyspace(name, KeyspaceCreateOptions::default)
                .map_err(|e| Error::backend(ks_ctx(name), e))
        };
        let ks = Keyspaces {
            files: open(names::FILES)?,
            files_by_share: open(names::FILES_BY_SHARE)?,
            locks: open(names::LOCKS)?,
            locks_by_file: open(names::LOCKS_BY_FILE)?,
            locks_by_owner: open(names::LOCKS_BY_OWNER)?,
            locks_by_client: open(names::LOCKS_BY_CLIENT)?,
            locks_by_share: open(names::LOCKS_BY_SHARE)?,
            locks_by_epoch: open(names::LOCKS_BY_EPOCH)?,
            meta,
        };
        let inner = Inner {
            path,
            durability: options.durability,
            db,
            ks,
        };
        match found {
            None => inner.initialize()?,
            Some(_) => inner.upgrade_single_node_state()?,
        }
        Ok(FjallStore {
            inner: Arc::new(inner),
        })
    }

    /// The directory this store lives in.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The durability commits of this handle use.
    pub fn durability(&self) -> Durability {
        self.inner.durability
    }
}

/// Reads the store's format version: `None` for a brand-new store, an error
/// for one this build cannot read.
fn check_format(db: &OptimisticTxDatabase, meta: &OptimisticTxKeyspace) -> Result<Option<u32>> {
    let raw = db
        .read_tx()
        .get(meta, keys::META_FORMAT_VERSION)
        .map_err(|e| Error::backend("fjall: reading the store format version", e))?;
    let Some(raw) = raw else { return Ok(None) };
    let found = codec::decode_format_version(&raw)?;
    if found == 0 || found > FORMAT_VERSION {
        return Err(Error::UnsupportedFormat {
            found,
            supported: FORMAT_VERSION,
        });
    }
    Ok(Some(found))
}

impl Inner {
    /// Starts a fjall transaction with this store's durability.
    fn write_tx(db: &OptimisticTxDatabase, durability: Durability) -> Result<OptimisticWriteTx> {
        let tx = db
            .write_tx()
            .map_err(|e| Error::backend("fjall: beginning a transaction", e))?;
        Ok(match durability {
            Durability::Buffered => tx.durability(Some(PersistMode::Buffer)),
            Durability::Sync => tx.durability(Some(PersistMode::SyncAll)),
        })
    }

    /// Moves the clean flag of a store written before node state existed to
    /// node [`DEFAULT_NODE`](crate::DEFAULT_NODE), with the store's epoch as
    /// that node's current epoch, in one transaction. A no-op on any other store.
    fn upgrade_single_node_state(&self) -> Result<()> {
        let mut tx = Self::write_tx(&self.db, self.durability)?;
        let read = |tx: &OptimisticWriteTx, key: &[u8]| {
            tx.get(&self.ks.meta, key)
                .map_err(|e| Error::backend("fjall: upgrading single-node state", e))
        };
        let Some(flag) = read(&tx, keys::META_LEGACY_CLEAN_SHUTDOWN)? else {
            return Ok(());
        };
        let clean_shutdown = codec::decode_legacy_clean_shutdown(&flag).map_err(Error::from)?;
        let default_key = keys::node(crate::DEFAULT_NODE);
        if read(&tx, &default_key)?.is_none() {
            let epoch = match read(&tx, keys::META_SERVER_EPOCH)? {
                Some(raw) => codec::decode_epoch(&raw).map_err(Error::from)?,
                None => 0,
            };
            let node = crate::NodeState {
                epoch,
                clean_shutdown,
                ..crate::NodeState::new(crate::DEFAULT_NODE)
            };
            tx.insert(&self.ks.meta, default_key, codec::encode_node(&node)?);
        }
        tx.remove(&self.ks.meta, keys::META_LEGACY_CLEAN_SHUTDOWN);
        commit(tx)
    }

    /// Records the format version of a brand-new store. Everything else stays
    /// absent: an absent epoch is 0, an absent node has never run (clean).
    fn initialize(&self) -> Result<()> {
        let mut tx = Self::write_tx(&self.db, self.durability)?;
        tx.insert(
            &self.ks.meta,
            keys::META_FORMAT_VERSION,
            codec::encode_format_version(FORMAT_VERSION).as_slice(),
        );
        commit(tx)
    }
}

/// Commits a fjall transaction, mapping its outcome to fsmeta's errors.
fn commit(tx: OptimisticWriteTx) -> Result<()> {
    match tx.commit() {
        Ok(Ok(())) => Ok(()),
        Ok(Err(fjall::Conflict)) => Err(Error::Conflict(
            "fjall: a transaction that committed after this one began wrote something this one read".into(),
        )),
        Err(e) => Err(Error::backend("fjall: committing a transaction", e)),
    }
}

/// Runs blocking fjall work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::backend(format!("fjall: {what} on the blocking pool"), e))?
}

impl FjallStore {
    /// [`MetadataStore::begin`] without its span.
    async fn begin_untraced(&self) -> Result<Box<dyn MetadataTransaction>> {
        let durability = self.inner.durability;
        let tx = match durability {
            // Beginning takes fjall's commit mutex, which a Buffered commit
            // holds for microseconds: cheaper inline than a thread hop.
            Durability::Buffered => Inner::write_tx(&self.inner.db, durability)?,
            // A Sync commit holds that mutex through its fsync.
            Durability::Sync => {
                let db = self.inner.db.clone();
                blocking("beginning a transaction", move || {
                    Inner::write_tx(&db, durability)
                })
                .await?
            }
        };
        Ok(Box::new(tx::FjallTx::new(self.inner.clone(), tx)))
    }
}

#[async_trait]
impl MetadataStore for FjallStore {
    async fn begin(&self) -> Result<Box<dyn MetadataTransaction>> {
        traced(TxOp::Begin, "fjall", self.begin_untraced()).await
    }

    /// Decodes every record and `meta` value, and checks every index entry
    /// against its record and every record against its index entries, in one
    /// snapshot. Runs on the blocking pool (it reads the whole store).
    #[tracing::instrument(
        level = "info",
        name = "verify",
        skip_all,
        fields(backend = "fjall"),
        err(Display)
    )]
    async fn verify(&self) -> Result<VerifyReport> {
        let inner = self.inner.clone();
        blocking("verifying the store", move || inner.verify_blocking()).await
    }

    /// Removes stale index entries and adds missing ones, safe while writers
    /// run: in chunks of at most a few hundred keys of one keyspace, each its
    /// own transaction, retried with backoff (and halved) when a writer
    /// conflicts with it. [`Error::Conflict`] only if one chunk keeps
    /// conflicting for 30 seconds; the chunks before it stay repaired, and
    /// running repair again finishes the job. Records are never changed; see
    /// [`MetadataStore::verify`] for the ones that are bad. Runs on the
    /// blocking pool.
    #[tracing::instrument(
        level = "info",
        name = "repair",
        skip_all,
        fields(backend = "fjall"),
        ret,
        err(Display)
    )]
    async fn repair(&self) -> Result<u64> {
        let inner = self.inner.clone();
        blocking("repairing the indexes", move || inner.repair_blocking()).await
    }
}

#[cfg(test)]
mod tests {
    use fjall::{KeyspaceCreateOptions, OptimisticTxDatabase, Readable};

    /// Pins the dependency behaviour the phantom argument in the module docs
    /// relies on: a prefix scan conflicts with a concurrent insert into it.
    #[test]
    fn fjall_range_reads_detect_phantoms() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let db = OptimisticTxDatabase::builder(dir.path()).open()?;
        let index = db.keyspace("index", KeyspaceCreateOptions::default)?;
        let mut t1 = db.write_tx()?;
        let mut t2 = db.write_tx()?;
        assert_eq!(t1.prefix(&index, b"\x00\x01F").count(), 0);
        assert_eq!(t2.prefix(&index, b"\x00\x01F").count(), 0);
        t1.insert(&index, b"\x00\x01F-lock1".as_slice(), b"".as_slice());
        t2.insert(&index, b"\x00\x01F-lock2".as_slice(), b"".as_slice());
        assert!(t1.commit()?.is_ok());
        assert!(
            t2.commit()?.is_err(),
            "the second insert under a scanned prefix must conflict"
        );
        Ok(())
    }
}
