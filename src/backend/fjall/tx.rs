//! One fsmeta transaction over one fjall optimistic write transaction.
//!
//! The families implement their traits on [`FjallTx`] in their own files
//! (`files.rs`, `locks.rs`, `nodes.rs`, `ext.rs`), each through the generic
//! table of `table.rs`; this file holds the transaction itself and
//! [`native`], the host's way to the fjall transaction underneath.
//!
//! Reads, writes and commits run inline: they touch memtables, the block
//! cache and the journal's buffer and take microseconds, less than a hop to
//! the blocking pool would cost. A [`Durability::Sync`] commit then awaits a
//! group fsync (`group_sync.rs`) without blocking its thread.

use std::sync::Arc;

use async_trait::async_trait;
use fjall::OptimisticWriteTx;

use super::group_sync::GroupSync;
use super::{Durability, Inner, blocking, commit};
use crate::error::{Error, Result};
use crate::obs::{TxOp, traced};
use crate::tx::MetadataTransaction;

/// A transaction of a [`super::FjallStore`]. Dropping it rolls it back.
pub(super) struct FjallTx {
    /// The store's keyspaces and durability.
    pub(super) store: Arc<Inner>,
    /// The fjall transaction every read and write goes through.
    pub(super) tx: OptimisticWriteTx,
    /// The files whose locks or waiters this transaction deleted.
    pub(super) freed: crate::waiter::FreedFiles,
    /// A Sync transaction's place among the open ones (`group_sync.rs`).
    pub(super) open: Option<super::group_sync::OpenTx>,
}

impl FjallTx {
    pub(super) fn new(
        store: Arc<Inner>,
        tx: OptimisticWriteTx,
        open: Option<super::group_sync::OpenTx>,
    ) -> Self {
        FjallTx {
            store,
            tx,
            freed: Default::default(),
            open,
        }
    }
}

/// The fjall transaction under an fsmeta transaction of a [`FjallStore`]
/// (opened with [`FjallStore::from_database`]), so the host writes its own
/// keyspaces in it: they commit or vanish with fsmeta's writes.
///
/// The host uses its own [`OptimisticTxKeyspace`](fjall::OptimisticTxKeyspace)
/// handles from the same database. It must not touch fsmeta's keyspaces
/// (those named behind [`HOSTED_PREFIX`](super::HOSTED_PREFIX)), nor commit
/// or roll back the returned transaction itself: `commit` of the fsmeta
/// transaction does that. Reads through it take part in conflict detection
/// like fsmeta's own, so a concurrent commit of a key the host read makes
/// [`MetadataTransaction::commit`] fail with [`Error::Conflict`], and
/// [`transact`](crate::MetadataStoreExt::transact) reruns the host's writes
/// together with fsmeta's.
///
/// ```
/// # use fsmeta::*;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// use fjall::Readable;
/// let db = fjall::OptimisticTxDatabase::builder(dir.path()).open()?;
/// let dirents = db.keyspace("dirents", fjall::KeyspaceCreateOptions::default)?;
/// let store = FjallStore::from_database(db, FjallOptions::default())?;
/// let dirents = &dirents;
/// store.transact(|tx| Box::pin(async move {
///     let fjall_tx = fsmeta::backend::fjall::native(tx)?;
///     if fjall_tx.get(dirents, "1/a.txt").map_err(|e| Error::backend("host read", e))?.is_none() {
///         fjall_tx.insert(dirents, "1/a.txt", "7");
///     }
///     tx.increment_server_epoch().await.map(drop)
/// })).await?;
///
/// let memory = MemoryStore::new();
/// let mut tx = memory.begin().await?;
/// assert!(matches!(fsmeta::backend::fjall::native(&mut *tx), Err(Error::Invalid(_))));
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::Invalid`] when `tx` is not a fjall transaction (another
/// backend's); the transaction is left as it was.
///
/// [`FjallStore`]: super::FjallStore
/// [`FjallStore::from_database`]: super::FjallStore::from_database
pub fn native<'t>(tx: &'t mut (dyn MetadataTransaction + '_)) -> Result<&'t mut OptimisticWriteTx> {
    tx.as_any()
        .and_then(|any| any.downcast_mut::<FjallTx>())
        .map(|fjall| &mut fjall.tx)
        .ok_or_else(|| {
            Error::Invalid(
                "fsmeta::backend::fjall::native: this transaction is not a fjall transaction (it belongs to another backend)"
                    .into(),
            )
        })
}

#[async_trait]
impl MetadataTransaction for FjallTx {
    async fn commit(mut self: Box<Self>) -> Result<()> {
        let (freed, store) = (self.freed.take(), self.store.clone());
        freed.after_commit(
            &store.wake,
            traced(TxOp::Commit, "fjall", self.commit_untraced()).await,
        )
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        traced(TxOp::Rollback, "fjall", self.rollback_untraced()).await
    }

    /// This transaction, for [`native`] to downcast.
    fn as_any(&mut self) -> Option<&mut (dyn std::any::Any + Send)> {
        Some(self)
    }
}

impl FjallTx {
    /// [`MetadataTransaction::commit`] without its span.
    async fn commit_untraced(self: Box<Self>) -> Result<()> {
        let FjallTx {
            store, tx, open, ..
        } = *self;
        match store.durability {
            Durability::Buffered => commit(tx),
            Durability::Sync => {
                // Writing the batch waits for fjall's journal lock, which a
                // group sync leaves free unless it cannot (`journal_sync.rs`)
                // or a lone committer holds it for its one fsync.
                store.group_sync.usable()?;
                let written = if store.group_sync.leaves_journal_free() {
                    commit(tx)
                } else {
                    blocking("committing a transaction", move || commit(tx)).await
                };
                drop(open);
                written?;
                GroupSync::wait_durable(&store).await
            }
        }
    }

    /// [`MetadataTransaction::rollback`] without its span.
    async fn rollback_untraced(self: Box<Self>) -> Result<()> {
        self.tx.rollback();
        Ok(())
    }
}
