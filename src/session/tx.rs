//! Fenced transactions: [`NodeSession::transact`] and [`SessionTx`].

use std::ops::{Deref, DerefMut};
use std::time::Instant;

use tracing::Instrument;

use super::NodeSession;
use crate::error::{Error, Result};
use crate::node::{NodeState, NodeStore};
use crate::obs::metrics;
use crate::tx::{MetadataTransaction, RetryPolicy, TxFuture};

/// A transaction of a [`NodeSession`], already fenced: the node's record was
/// read in it and names the session's epoch as the node's live one.
///
/// It dereferences to the raw [`MetadataTransaction`] (also
/// [`SessionTx::raw`]), so every record family is at hand; the lock methods
/// of the session ([`acquire`](SessionTx::acquire), [`test`](SessionTx::test),
/// [`release`](SessionTx::release), [`reclaim`](SessionTx::reclaim)) stamp the
/// session's epoch themselves.
pub struct SessionTx<'a> {
    pub(crate) tx: Box<dyn MetadataTransaction>,
    pub(crate) session: &'a NodeSession,
}

impl SessionTx<'_> {
    /// The session's epoch.
    pub fn epoch(&self) -> u64 {
        self.session.epoch
    }

    /// The session's node id.
    pub fn node_id(&self) -> &str {
        &self.session.node_id
    }

    /// The session this transaction belongs to.
    pub fn session(&self) -> &NodeSession {
        self.session
    }

    /// The raw transaction (what the arbiter functions and the record
    /// families take). Writes through it are fenced like every other write of
    /// this transaction; epochs written through it are the caller's.
    pub fn raw(&mut self) -> &mut (dyn MetadataTransaction + 'static) {
        &mut *self.tx
    }
}

impl Deref for SessionTx<'_> {
    type Target = dyn MetadataTransaction;
    fn deref(&self) -> &Self::Target {
        &*self.tx
    }
}

impl DerefMut for SessionTx<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut *self.tx
    }
}

/// Reads `node`'s record in `tx` and checks that `epoch` is its live epoch:
/// [`Error::Fenced`] otherwise. The read is the transaction's dependency on
/// the record, which a restart or takeover writes.
pub(crate) async fn fence<T: NodeStore + ?Sized>(
    tx: &mut T,
    node: &str,
    epoch: u64,
) -> Result<NodeState> {
    match tx.get_node(node).await? {
        Some(state) if state.epoch == epoch && state.taken_over.is_none() => Ok(state),
        other => Err(Error::Fenced {
            node: node.to_owned(),
            epoch,
            current: other.map_or(0, |s| s.epoch),
        }),
    }
}

impl NodeSession {
    /// Runs `f` in a fenced transaction and commits: the node's record is
    /// read first, and the transaction fails with [`Error::Fenced`] (nothing
    /// written) once this incarnation is no longer the node's current one.
    /// Like [`MetadataStoreExt::transact`](crate::MetadataStoreExt::transact),
    /// a retryable error (from `f` or from commit) rolls back and runs the
    /// whole closure again (fence included), with jittered backoff bounded in
    /// time; the closure borrows what it needs:
    ///
    /// ```
    /// # use fsmeta::*;
    /// # async fn demo(session: &NodeSession, file: FileMeta, lock: PersistedLock) -> Result<()> {
    /// let (file, lock) = (&file, &lock);
    /// session.transact(|tx| Box::pin(async move {
    ///     tx.acquire(lock).await?;   // stamped with session.epoch()
    ///     tx.put_file(file).await    // any record family, through the raw transaction
    /// })).await?;
    /// # Ok(()) }
    /// ```
    pub async fn transact<'a, T, F>(&'a self, mut f: F) -> Result<T>
    where
        T: Send + 'a,
        F: for<'t> FnMut(&'t mut SessionTx<'a>) -> TxFuture<'t, T> + Send + 'a,
    {
        let policy = RetryPolicy::default();
        let started = Instant::now();
        let mut retry = 0u32;
        loop {
            let span = tracing::debug_span!(
                "session_transact",
                node = %self.node_id,
                epoch = self.epoch,
                retry,
                outcome = tracing::field::Empty,
            );
            let error = match self.attempt(&mut f).instrument(span.clone()).await {
                Ok(value) => {
                    span.record("outcome", "ok");
                    return Ok(value);
                }
                Err(e) => e,
            };
            span.record("outcome", crate::obs::kind(&error));
            if !error.is_retryable() {
                return Err(error);
            }
            if started.elapsed() >= policy.max_elapsed {
                metrics::gave_up();
                return Err(error);
            }
            let pause = policy.backoff(retry);
            retry += 1;
            metrics::retry();
            tokio::time::sleep(pause).await;
        }
    }

    /// One attempt of [`NodeSession::transact`]: begin, fence, `f`, commit.
    async fn attempt<'a, T, F>(&'a self, f: &mut F) -> Result<T>
    where
        T: Send + 'a,
        F: for<'t> FnMut(&'t mut SessionTx<'a>) -> TxFuture<'t, T> + Send + 'a,
    {
        let mut tx = self.store.begin().await?;
        // Fenced: nothing was written, and dropping the transaction rolls it back.
        fence(&mut *tx, &self.node_id, self.epoch).await?;
        let mut stx = SessionTx { tx, session: self };
        let result = f(&mut stx).await;
        let SessionTx { tx, .. } = stx;
        match result {
            Ok(value) => tx.commit().await.map(|()| value),
            Err(e) => {
                if e.is_retryable() {
                    metrics::conflict("body");
                }
                // Best effort: dropping the transaction rolls it back anyway.
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }
}
