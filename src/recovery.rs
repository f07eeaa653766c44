//! Restart recovery: epochs, the clean-shutdown flag and the grace period.
//!
//! A server calls [`begin_recovery`] when it starts, lets clients reclaim
//! their locks with [`reclaim_lock`](crate::reclaim_lock) during the grace
//! period, then calls [`end_grace`] to drop what nobody reclaimed, and
//! [`mark_clean_shutdown`] when it stops in an orderly way. Each step is one
//! transaction.

use std::collections::BTreeSet;

use crate::error::Result;
use crate::lock::{LockQuery, PersistedLock};
use crate::tx::{MetadataStore, MetadataStoreExt};

/// What a starting server learns about the incarnation before it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// True when the previous incarnation called [`mark_clean_shutdown`]
    /// (or the store is brand new).
    pub previous_shutdown_clean: bool,
    /// This incarnation's epoch: stamp new locks with it.
    pub epoch: u64,
    /// Locks granted by earlier epochs: clients may reclaim them during the grace period.
    pub reclaimable: Vec<PersistedLock>,
    /// The clients holding reclaimable locks.
    pub clients: BTreeSet<String>,
}

/// Starts a new server incarnation, in one transaction: reads the clean flag,
/// sets it to unclean (only [`mark_clean_shutdown`] sets it back; a crash
/// leaves it unclean), increments the epoch and lists the locks of earlier epochs.
pub async fn begin_recovery(store: &dyn MetadataStore) -> Result<Recovery> {
    store
        .transact(|tx| {
            Box::pin(async move {
                let previous_shutdown_clean = tx.clean_shutdown().await?;
                tx.set_clean_shutdown(false).await?;
                let epoch = tx.increment_server_epoch().await?;
                let reclaimable = tx.list_locks(&LockQuery::epoch_below(epoch)).await?;
                let clients = reclaimable.iter().map(|l| l.client_id.clone()).collect();
                Ok(Recovery {
                    previous_shutdown_clean,
                    epoch,
                    reclaimable,
                    clients,
                })
            })
        })
        .await
}

/// Ends the grace period: deletes every lock still stamped with an epoch below
/// `epoch` (held by clients that did not reclaim). Returns how many.
pub async fn end_grace(store: &dyn MetadataStore, epoch: u64) -> Result<u64> {
    store
        .transact(|tx| {
            Box::pin(async move {
                let stale = tx.list_locks(&LockQuery::epoch_below(epoch)).await?;
                for lock in &stale {
                    tx.delete_lock(lock.id).await?;
                }
                Ok(stale.len() as u64)
            })
        })
        .await
}

/// Records that this incarnation is shutting down cleanly.
pub async fn mark_clean_shutdown(store: &dyn MetadataStore) -> Result<()> {
    store
        .transact(|tx| Box::pin(async move { tx.set_clean_shutdown(true).await }))
        .await
}
