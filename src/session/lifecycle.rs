//! A session's lease renewal, end of grace and clean shutdown, each fenced.

use super::NodeSession;
use crate::error::Result;
use crate::recovery::{self, lease_expiry};
use crate::time::Timestamp;

impl NodeSession {
    /// Extends the liveness lease to [`lease`](NodeSession::lease) from now,
    /// in a fenced transaction; returns the new expiry. Call it well within
    /// the lease (every third of it, say): once it has run out, another node
    /// may [`declare_dead`](crate::declare_dead) this one, and from then on
    /// every transaction of this session is [`Fenced`](crate::Error::Fenced).
    ///
    /// It writes the node record, which every in-flight transaction of the
    /// session has read (the fence): on fjall and memory those conflict once
    /// and are retried.
    pub async fn renew(&self) -> Result<Timestamp> {
        let (node, lease) = (self.node_id.as_str(), self.lease);
        self.transact(|tx| {
            Box::pin(async move {
                let epoch = tx.epoch();
                let until = lease_expiry(Timestamp::now(), lease)?;
                // The state as fenced (a second read of the record in this transaction).
                let mut state = super::tx::fence(tx.raw(), node, epoch).await?;
                state.lease_expires_at = Some(until);
                tx.raw().put_node(&state).await?;
                Ok(until)
            })
        })
        .await
    }

    /// Ends the grace period this session runs: deletes, in one fenced
    /// transaction and one bulk delete, the locks still stamped with a dead
    /// epoch of this node (below this session's) or of a node it took over
    /// ([`declare_dead`](crate::declare_dead) with this node as the taker),
    /// which no client reclaimed; and the client records of this node's
    /// recovery set (clients that did not send RECLAIM_COMPLETE) with every
    /// lock they still hold. Returns how many locks. Live epochs are never
    /// swept. A later takeover opens a new grace period: call it again.
    pub async fn end_grace(&self) -> Result<u64> {
        let (node, epoch) = (self.node_id.as_str(), self.epoch);
        recovery::traced_end_grace(
            node,
            epoch,
            self.transact(|tx| {
                Box::pin(async move {
                    let swept = recovery::sweep_in(tx.raw(), node, epoch).await?;
                    // The clients that did not reclaim go, with what they still hold.
                    let (_, locks) = crate::client::end_grace_clients(tx.raw(), node).await?;
                    Ok(swept + locks)
                })
            }),
        )
        .await
    }

    /// Records that this incarnation is shutting down cleanly: the clean flag
    /// is set and the lease dropped, so the next start needs no wait and
    /// reports a clean shutdown. Fenced like every transaction of the session.
    pub async fn shutdown(&self) -> Result<()> {
        let node = self.node_id.as_str();
        recovery::traced_mark_clean(
            node,
            self.transact(|tx| {
                Box::pin(async move { recovery::mark_clean_in(tx.raw(), node).await })
            }),
        )
        .await
    }
}
