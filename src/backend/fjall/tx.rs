//! One fsmeta transaction over one fjall optimistic write transaction.
//!
//! The families implement their traits on [`FjallTx`] in their own files
//! (`files.rs`, `locks.rs`, `nodes.rs`), each through the generic table of
//! `table.rs`; this file holds the transaction itself.
//!
//! Reads and writes run inline: they touch memtables and the block cache and
//! take microseconds, less than a hop to the blocking pool would cost. Only a
//! [`Durability::Sync`] commit, which waits for an fsync, leaves the async
//! worker thread.

use std::sync::Arc;

use async_trait::async_trait;
use fjall::OptimisticWriteTx;

use super::{Durability, Inner, blocking, commit};
use crate::error::Result;
use crate::obs::{TxOp, traced};
use crate::tx::MetadataTransaction;

/// A transaction of a [`super::FjallStore`]. Dropping it rolls it back.
pub(super) struct FjallTx {
    /// The store's keyspaces and durability.
    pub(super) store: Arc<Inner>,
    /// The fjall transaction every read and write goes through.
    pub(super) tx: OptimisticWriteTx,
}

impl FjallTx {
    pub(super) fn new(store: Arc<Inner>, tx: OptimisticWriteTx) -> Self {
        FjallTx { store, tx }
    }
}

// TRANSITIONAL: extension tables come in the next commits.
impl crate::ext::ExtStore for FjallTx {}

#[async_trait]
impl MetadataTransaction for FjallTx {
    async fn commit(self: Box<Self>) -> Result<()> {
        traced(TxOp::Commit, "fjall", self.commit_untraced()).await
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        traced(TxOp::Rollback, "fjall", self.rollback_untraced()).await
    }
}

impl FjallTx {
    /// [`MetadataTransaction::commit`] without its span.
    async fn commit_untraced(self: Box<Self>) -> Result<()> {
        let FjallTx { store, tx } = *self;
        match store.durability {
            Durability::Buffered => commit(tx),
            Durability::Sync => blocking("committing a transaction", move || commit(tx)).await,
        }
    }

    /// [`MetadataTransaction::rollback`] without its span.
    async fn rollback_untraced(self: Box<Self>) -> Result<()> {
        self.tx.rollback();
        Ok(())
    }
}
