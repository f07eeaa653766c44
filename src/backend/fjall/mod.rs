//! The fjall backend: the embedded, persistent default for one server.
//!
//! State lives in a fjall 3 [`OptimisticTxDatabase`] in one directory: one
//! keyspace per record kind (`files`, `locks`, `meta`, `clients`, and `ext`
//! for every extension table) and one per secondary index (`files_by_share`,
//! `locks_by_file`, `locks_by_owner`, `locks_by_client`, `locks_by_share`,
//! `locks_by_epoch`, `clients_by_node`, `clients_by_owner`,
//! `clients_by_epoch`); `keys.rs` draws every key. Each record family
//! (`files.rs`, `locks.rs`, `nodes.rs`, `ext.rs`, `clients.rs`) only declares its keyspace,
//! key, codec and index extractors; one generic indexed table (`table.rs`)
//! stores them all. Values are postcard (extension values: the host's raw
//! bytes) behind a one-byte format version (`codec.rs`); `meta` records the
//! store's format version, and a store written by a newer format is refused
//! with [`Error::UnsupportedFormat`]. `meta` also holds the global server
//! epoch, node states and epoch records.
//!
//! # Inside the host's database
//!
//! [`FjallStore::from_database`] opens a store in a database the host
//! already has, its keyspaces named behind [`HOSTED_PREFIX`]
//! (`fsmeta_locks`, …); [`native`] hands the host the fjall transaction
//! under an fsmeta transaction, so the host's own keyspaces are written,
//! read and conflict-checked in it. fsmeta never opens, reads or checks a
//! keyspace outside its own names; `verify` and `repair` cover only those.

//! # Transactions and serializability
//!
//! A [`MetadataTransaction`] is one fjall optimistic write transaction. Reads
//! see a snapshot plus the transaction's own writes; at commit fjall checks
//! whether a transaction that committed after this one's snapshot wrote any
//! key this one *read*, and if so the commit fails with [`Error::Conflict`].
//! fjall only detects read-write conflicts, so every operation reads what its
//! result depends on before it writes: `put_lock` reads the old record (to
//! drop its stale index entries), `increment_server_epoch` reads the epoch,
//! bulk deletes walk their index inside the transaction, `ext_delete` reads
//! the record it reports on. Blind writes that depend on nothing
//! (`put_node`, `put_epoch_record`, `ext_put`) read nothing: two
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
//! prefix it scanned. An extension scan is one range read of its table's
//! keys in the same way, so an insert into a range another transaction
//! scanned conflicts too. No extra version keys are needed; the unit test
//! `fjall_range_reads_detect_phantoms` pins this behaviour of the dependency.
//!
//! # Checking a store
//!
//! [`MetadataStore::verify`] decodes every record (extension records
//! included: a key that names no valid table and key is a problem) and
//! `meta` value and checks
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
mod clients;
mod codec;
mod ext;
mod files;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod group_sync;
mod journal_sync;
mod keys;
mod leases;
mod locks;
mod nodes;
mod open;
mod opens;
mod table;
mod tx;
mod waiters;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use fjall::{OptimisticTxDatabase, OptimisticTxKeyspace, OptimisticWriteTx, PersistMode};

use crate::error::{Error, Result};
use crate::obs::{TxOp, traced};
use crate::tx::{MetadataStore, MetadataTransaction};
use crate::verify::VerifyReport;
pub use tx::native;

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
    /// Commit returns only after an `fsync` of the journal that began after
    /// the commit's batch was written.
    ///
    /// A committed transaction survives power loss and kernel crashes, as far
    /// as the disk honours `fsync`. Concurrent commits share fsyncs (group
    /// commit): one committer pays one `fsync` (typically 0.1 to 10 ms) per
    /// commit, eight pay far fewer than eight. Other transactions can read a
    /// commit before its fsync, so every commit, read-only ones included,
    /// also waits until everything it could have read is synced: no answer a
    /// caller gets rests on a commit a crash could still lose.
    ///
    /// `begin` and the batch write run inline, as for `Buffered`: the group
    /// fsync runs outside fjall's journal lock, so neither waits for it
    /// (fjall's own fsyncs, when it seals a memtable or a journal, still
    /// hold that lock, for `Buffered` stores alike). The
    /// commit then awaits the fsync without blocking its thread, except
    /// that a committer that finds no fsync running and no other Sync
    /// transaction open syncs in place (`block_in_place` on a
    /// multi-threaded tokio runtime: the worker's other tasks move to
    /// another thread), which saves a lone committer a hand-off between
    /// threads; fsyncs for others run on tokio's blocking pool. A commit
    /// whose future is dropped while it waits has happened, but may not be
    /// durable yet: a cancelled commit may or may not have happened.
    Sync,
}

/// Options for [`FjallStore::open_with`] and [`FjallStore::from_database`].
///
/// Build with struct-update syntax so that new options keep compiling:
/// `FjallOptions { durability: Durability::Sync, ..Default::default() }`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FjallOptions {
    /// What a commit guarantees before it returns (default [`Durability::Buffered`]).
    pub durability: Durability,
    /// Size of fjall's block cache in bytes; `None` keeps fjall's default
    /// (32 MiB). Set when the database is opened, so
    /// [`FjallStore::from_database`] refuses it: the host's builder chose.
    pub cache_size: Option<u64>,
}

/// The store format this build writes and the newest it reads.
const FORMAT_VERSION: u32 = 1;

/// What [`FjallStore::from_database`] puts in front of each of fsmeta's
/// keyspace names (`fsmeta_files`, `fsmeta_locks`, …, `fsmeta_meta`,
/// `fsmeta_ext`) in a database the host shares with it. Keyspace names
/// starting with it belong to fsmeta: a host names its own keyspaces otherwise.
pub const HOSTED_PREFIX: &str = "fsmeta_";

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
    /// In front of every keyspace name: empty, or [`HOSTED_PREFIX`].
    prefix: &'static str,
    durability: Durability,
    db: OptimisticTxDatabase,
    ks: Keyspaces,
    /// Announces the files a commit deleted locks or waiters of.
    wake: crate::waiter::WakeHub,
    /// The fsyncs [`Durability::Sync`] commits share.
    group_sync: Arc<group_sync::GroupSync>,
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
    ext: OptimisticTxKeyspace,
    clients: OptimisticTxKeyspace,
    clients_by_node: OptimisticTxKeyspace,
    clients_by_owner: OptimisticTxKeyspace,
    clients_by_epoch: OptimisticTxKeyspace,
    opens: OptimisticTxKeyspace,
    opens_by_file: OptimisticTxKeyspace,
    opens_by_client: OptimisticTxKeyspace,
    opens_by_share: OptimisticTxKeyspace,
    opens_by_create_guid: OptimisticTxKeyspace,
    opens_by_app_instance: OptimisticTxKeyspace,
    opens_by_disconnect: OptimisticTxKeyspace,
    leases: OptimisticTxKeyspace,
    leases_by_file: OptimisticTxKeyspace,
    leases_by_client: OptimisticTxKeyspace,
    leases_by_key: OptimisticTxKeyspace,
    delegations: OptimisticTxKeyspace,
    delegations_by_file: OptimisticTxKeyspace,
    delegations_by_client: OptimisticTxKeyspace,
    waiters: OptimisticTxKeyspace,
    waiters_by_file: OptimisticTxKeyspace,
    waiters_by_owner: OptimisticTxKeyspace,
    waiters_by_client: OptimisticTxKeyspace,
    waiters_by_node: OptimisticTxKeyspace,
}

impl fmt::Debug for FjallStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FjallStore")
            .field("path", &self.inner.path)
            .field("keyspace_prefix", &self.inner.prefix)
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
        Self::start(db, Some(path), "", options.durability)
    }

    /// Opens (creating it if needed) an fsmeta store inside a database the
    /// host already has open, so the host's own keyspaces and fsmeta's can
    /// be written in one transaction (see [`native`]).
    ///
    /// fsmeta's keyspaces get [`HOSTED_PREFIX`] in front of their names
    /// (`fsmeta_files`, …, `fsmeta_ext`); a host keyspace named anything else
    /// (`locks`, `files` included) is never touched, read or checked by
    /// fsmeta. The store behaves as one opened with [`FjallStore::open_with`]:
    /// same format rules, same keys. It is a different store from the one
    /// [`FjallStore::open`] would find in the same directory (that one uses
    /// the unprefixed names). The database stays open while the host's
    /// handles or this store's do; to reopen, the host opens the database
    /// again and calls this again.
    ///
    /// ```
    /// use fsmeta::*;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// let db = fjall::OptimisticTxDatabase::builder(dir.path()).open()?;
    /// let inodes = db.keyspace("inodes", fjall::KeyspaceCreateOptions::default)?;
    /// let store = FjallStore::from_database(db, FjallOptions::default())?;
    /// let mut tx = store.begin().await?;
    /// tx.increment_server_epoch().await?;
    /// fsmeta::backend::fjall::native(&mut *tx)?.insert(&inodes, "7", "mode=644");
    /// tx.commit().await?; // the epoch and the inode, together
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Invalid`] when `options.cache_size` is set (the database is
    /// already open), [`Error::UnsupportedFormat`] when a newer fsmeta wrote
    /// the store, [`Error::Corrupt`] when its format record is unreadable,
    /// [`Error::Backend`] when a keyspace cannot be opened.
    pub fn from_database(db: OptimisticTxDatabase, options: FjallOptions) -> Result<Self> {
        if options.cache_size.is_some() {
            return Err(Error::Invalid(
                "cache_size: the host's database is already open with its own cache; leave it None"
                    .into(),
            ));
        }
        Self::start(db, None, HOSTED_PREFIX, options.durability)
    }

    /// The directory this store lives in (for a store opened with
    /// [`FjallStore::from_database`], the host database's directory).
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The durability commits of this handle use.
    pub fn durability(&self) -> Durability {
        self.inner.durability
    }
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

/// Runs blocking fjall work without stalling tokio's async workers: in place
/// on a multi-threaded runtime (`block_in_place` hands the worker's other
/// tasks to another thread: no hop for this one), on the blocking pool on a
/// current-thread runtime (where `block_in_place` is not allowed), inline
/// outside any runtime.
async fn blocking<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::CurrentThread) => tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| Error::backend(format!("fjall: {what} on the blocking pool"), e))?,
        Ok(_) => tokio::task::block_in_place(work),
        Err(_) => work(),
    }
}

impl FjallStore {
    /// [`MetadataStore::begin`] without its span.
    async fn begin_untraced(&self) -> Result<Box<dyn MetadataTransaction>> {
        let durability = self.inner.durability;
        let open =
            (durability == Durability::Sync).then(|| group_sync::GroupSync::open(&self.inner));
        // Beginning takes fjall's commit mutex, which a commit holds while
        // it writes its batch: microseconds, cheaper inline than a thread
        // hop. A Sync commit writes its batch as a Buffered one does and
        // then waits for a group fsync outside that mutex; only when that
        // fsync has to hold fjall's journal lock (`journal_sync.rs`) would
        // the mutex, and so begin, wait for every group fsync. (A lone
        // committer's fsync holds the lock, `group_sync.rs` `SyncIn::Lock`,
        // and fjall's own when it seals a memtable, Buffered or not: a
        // begin that meets one waits for that one fsync.)
        let inline =
            durability == Durability::Buffered || self.inner.group_sync.leaves_journal_free();
        let tx = match inline {
            true => Inner::write_tx(&self.inner.db, Durability::Buffered)?,
            false => {
                let db = self.inner.db.clone();
                blocking("beginning a transaction", move || {
                    Inner::write_tx(&db, Durability::Buffered)
                })
                .await?
            }
        };
        Ok(Box::new(tx::FjallTx::new(self.inner.clone(), tx, open)))
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

    /// The store's in-process announcements.
    async fn wake_feed(&self, _: &crate::WaitersOptions) -> Result<crate::WakeFeed> {
        Ok(self.inner.wake.feed())
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
