//! Transactions: the traits every backend implements and the `transact` retry helper.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tracing::Instrument;

use crate::client::ClientStore;
use crate::error::Result;
use crate::ext::ExtStore;
use crate::file::FileStore;
use crate::lock::LockStore;
use crate::node::NodeStore;
use crate::obs::metrics;
use crate::open::{LeaseStore, OpenStore};
use crate::report::VerifyReport;
use crate::verify::verify_transaction;
use crate::waiter::WaiterStore;

/// One transaction over every record family (files, locks, nodes). Everything it writes becomes visible
/// at [`commit`](MetadataTransaction::commit), all at once, or never.
///
/// Dropping it without `commit` rolls it back.
#[async_trait]
pub trait MetadataTransaction:
    FileStore + LockStore + NodeStore + ExtStore + ClientStore + OpenStore + LeaseStore + WaiterStore
{
    /// Makes every write of this transaction visible and durable, atomically.
    /// [`crate::Error::Conflict`] when a concurrent transaction made it impossible
    /// to serialize: nothing was written, run the whole transaction again.
    async fn commit(self: Box<Self>) -> Result<()>;
    /// Discards every write of this transaction.
    async fn rollback(self: Box<Self>) -> Result<()>;

    /// The backend's own transaction object, for that backend's `native`
    /// function to downcast (`fsmeta::backend::postgres::native`,
    /// `fsmeta::backend::fjall::native`): hosts call those, not this. `None` for
    /// backends without a native handle (memory: its extension is
    /// [`ExtStore`](crate::ExtStore)).
    fn as_any(&mut self) -> Option<&mut (dyn std::any::Any + Send)> {
        None
    }
}

/// A store of file metadata and locks: the entry point of every backend.
#[async_trait]
pub trait MetadataStore: Send + Sync {
    /// Starts a transaction. Never waits for another open transaction to finish.
    async fn begin(&self) -> Result<Box<dyn MetadataTransaction>>;

    /// Checks the whole store: every record decodes and keeps the model's
    /// rules, and (where the backend keeps its own indexes) every index entry
    /// matches a record and every record has its index entries. Reports what it
    /// finds; changes nothing.
    async fn verify(&self) -> Result<VerifyReport> {
        verify_records(self).await
    }

    /// Rebuilds the backend's own indexes from the records; returns how many
    /// index entries were added or removed. fjall works in bounded, retried
    /// chunks (one key range per transaction), so it is safe while the
    /// server runs. Backends whose indexes the database maintains (memory,
    /// PostgreSQL) have nothing to rebuild.
    async fn repair(&self) -> Result<u64> {
        Ok(0)
    }

    /// Announcements of the files whose locks or waiters committed
    /// transactions deleted, for a [`Waiters`](crate::Waiters) subscription.
    /// The default announces nothing: subscribers poll.
    async fn wake_feed(&self, options: &crate::WaitersOptions) -> Result<crate::WakeFeed> {
        let _ = options;
        Ok(crate::WakeFeed::polling_only())
    }
}

/// Boxed future returned by a [`MetadataStoreExt::transact`] closure.
pub type TxFuture<'t, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 't>>;

/// How [`MetadataStoreExt::transact_with`] retries a transaction that lost a
/// serialization race: jittered exponential backoff, bounded in total time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first backoff (before jitter).
    pub initial_backoff: Duration,
    /// The largest backoff (before jitter).
    pub max_backoff: Duration,
    /// Give up (returning the last error) once this much time has passed since the first attempt.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    /// 5 ms doubling to 200 ms, giving up after 5 s.
    fn default() -> Self {
        RetryPolicy {
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(200),
            max_elapsed: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The pause before retry number `retry` (0-based): full jitter over the
    /// exponential bound, so that racing transactions spread out.
    pub(crate) fn backoff(&self, retry: u32) -> Duration {
        let bound = self
            .initial_backoff
            .saturating_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX))
            .min(self.max_backoff);
        let micros = u64::try_from(bound.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(fastrand::u64(micros / 2..=micros.max(1)))
    }
}

/// Runs closures in transactions with automatic retry. Implemented for every
/// [`MetadataStore`], sized or not (`FjallStore`, `Arc<dyn MetadataStore>`, …).
pub trait MetadataStoreExt: MetadataStore {
    /// Runs `f` in a transaction and commits; on a retryable error (from `f`
    /// or from commit) rolls back and runs the whole closure again, with
    /// jittered exponential backoff, bounded in time ([`RetryPolicy::default`]).
    ///
    /// The closure may run several times, so it borrows what it needs:
    ///
    /// ```
    /// # use fsmeta::*;
    /// # async fn demo(store: &dyn MetadataStore, file: FileMeta, lock: PersistedLock) -> Result<()> {
    /// let (file, lock) = (&file, &lock);
    /// store.transact(|tx| Box::pin(async move {
    ///     tx.put_file(file).await?;
    ///     tx.put_lock(lock).await
    /// })).await?;
    /// # Ok(()) }
    /// ```
    fn transact<'a, T, F>(&'a self, f: F) -> impl Future<Output = Result<T>> + Send + 'a
    where
        T: Send + 'a,
        F: for<'t> FnMut(&'t mut (dyn MetadataTransaction + 'a)) -> TxFuture<'t, T> + Send + 'a,
    {
        self.transact_with(RetryPolicy::default(), f)
    }

    /// [`transact`](MetadataStoreExt::transact) with a chosen retry policy.
    fn transact_with<'a, T, F>(
        &'a self,
        policy: RetryPolicy,
        mut f: F,
    ) -> impl Future<Output = Result<T>> + Send + 'a
    where
        T: Send + 'a,
        F: for<'t> FnMut(&'t mut (dyn MetadataTransaction + 'a)) -> TxFuture<'t, T> + Send + 'a,
    {
        async move {
            let started = Instant::now();
            let mut retry = 0u32;
            loop {
                let span = tracing::debug_span!(
                    "transact",
                    retry,
                    outcome = tracing::field::Empty,
                    stage = tracing::field::Empty,
                );
                let attempt = async {
                    let tx = match self.begin().await {
                        Ok(tx) => tx,
                        Err(e) => return Err(("begin", e)),
                    };
                    let mut tx: Box<dyn MetadataTransaction + 'a> = tx;
                    match f(&mut *tx).await {
                        Ok(value) => match tx.commit().await {
                            Ok(()) => Ok(value),
                            Err(e) => Err(("commit", e)),
                        },
                        Err(e) => {
                            if e.is_retryable() {
                                // Best effort: the retry below does not depend on it, and
                                // dropping the transaction rolls it back anyway.
                                let _ = tx.rollback().await;
                            }
                            Err(("body", e))
                        }
                    }
                }
                .instrument(span.clone())
                .await;
                let (stage, error) = match attempt {
                    Ok(value) => {
                        span.record("outcome", "ok");
                        return Ok(value);
                    }
                    Err(failed) => failed,
                };
                span.record("outcome", crate::obs::kind(&error));
                span.record("stage", stage);
                if error.is_retryable() && stage != "commit" {
                    // Commit conflicts are counted by the backend's commit span.
                    metrics::conflict(stage);
                }
                if !error.is_retryable() {
                    return Err(error);
                }
                if started.elapsed() >= policy.max_elapsed {
                    metrics::gave_up();
                    tracing::debug!(
                        retries = retry,
                        elapsed_us = crate::obs::micros(started.elapsed()),
                        "fsmeta: transaction kept conflicting; giving up"
                    );
                    return Err(error);
                }
                let pause = policy.backoff(retry);
                retry += 1;
                metrics::retry();
                tracing::debug!(retry, ?pause, %error, "fsmeta: transaction conflict, retrying");
                tokio::time::sleep(pause).await;
            }
        }
    }
}

impl<S: MetadataStore + ?Sized> MetadataStoreExt for S {}

/// The check every backend can run through the public API: in one
/// transaction, reads every record page by page and re-validates it
/// ([`verify_transaction`](crate::verify::verify_transaction)); the default
/// [`MetadataStore::verify`]. Backends with their own storage checks call it
/// for the record rules and add their own findings.
pub async fn verify_records(store: &(impl MetadataStore + ?Sized)) -> Result<VerifyReport> {
    let span = tracing::info_span!(
        "verify_records",
        files = tracing::field::Empty,
        locks = tracing::field::Empty,
        problems = tracing::field::Empty,
        outcome = tracing::field::Empty,
    );
    let result = async {
        let mut tx = store.begin().await?;
        let report = verify_transaction(&mut *tx).await?;
        // Read only: ending it cannot change the outcome.
        let _ = tx.rollback().await;
        Ok(report)
    }
    .instrument(span.clone())
    .await;
    if let Ok(report) = &result {
        span.record("files", report.files);
        span.record("locks", report.locks);
        span.record("problems", report.problems.len());
    }
    span.record("outcome", crate::obs::outcome(&result));
    result
}
