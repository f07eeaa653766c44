//! Observability: the tracing spans of transactions (one helper every backend
//! calls at `begin`, `commit` and `rollback`) and, with feature `metrics`,
//! the counters and the commit-latency histogram.
//!
//! Spans carry ids only (file handles as hex, owner and client ids, ranges,
//! epochs, counts), never record contents.

use std::fmt::Write as _;
use std::future::Future;
use std::time::{Duration, Instant};

use tracing::{Instrument, field};

use crate::error::{Error, Result};

/// A transaction step every backend traces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TxOp {
    Begin,
    Commit,
    Rollback,
}

/// Runs `op` of `backend` in its span (`begin`, `commit` or `rollback`, at
/// `debug`) and records its `outcome` (`ok` or the error kind) and
/// `duration_us`; a commit also moves the metrics.
pub(crate) async fn traced<T>(
    op: TxOp,
    backend: &'static str,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    let span = match op {
        TxOp::Begin => tracing::debug_span!(
            "begin",
            backend,
            outcome = field::Empty,
            duration_us = field::Empty
        ),
        TxOp::Commit => tracing::debug_span!(
            "commit",
            backend,
            outcome = field::Empty,
            duration_us = field::Empty
        ),
        TxOp::Rollback => tracing::debug_span!(
            "rollback",
            backend,
            outcome = field::Empty,
            duration_us = field::Empty
        ),
    };
    let started = Instant::now();
    let result = work.instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let outcome = outcome(&result);
    span.record("outcome", outcome);
    span.record("duration_us", micros(elapsed));
    if op == TxOp::Commit {
        metrics::commit(backend, outcome, elapsed);
    }
    result
}

/// `ok`, or the kind of the error: what a span's `outcome` field holds.
pub(crate) fn outcome<T>(result: &Result<T>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => kind(e),
    }
}

/// A short, stable name for the kind of `error` (no payload).
pub(crate) fn kind(error: &Error) -> &'static str {
    match error {
        Error::LockNotFound(_) => "lock_not_found",
        Error::FileNotFound(_) => "file_not_found",
        Error::Conflict(_) => "conflict",
        Error::Invalid(_) => "invalid",
        Error::Corrupt(_) => "corrupt",
        Error::UnsupportedFormat { .. } => "unsupported_format",
        Error::EpochExhausted => "epoch_exhausted",
        Error::NodeNotStarted { .. } => "node_not_started",
        Error::Fenced { .. } => "fenced",
        Error::NodeAlive { .. } => "node_alive",
        Error::LockNotHeld { .. } => "lock_not_held",
        Error::DestinationNotEmpty { .. } => "destination_not_empty",
        Error::Closed(_) => "closed",
        Error::ClientNotFound(_) => "client_not_found",
        Error::ClientExpired(_) => "client_expired",
        Error::AlreadyComplete(_) => "already_complete",
        Error::WrongNode { .. } => "wrong_node",
        Error::OpenStateNotFound { .. } => "open_state_not_found",
        Error::Backend(_) => "backend",
    }
}

/// Microseconds, saturating.
pub(crate) fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// A file handle as lowercase hex, for a span field.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The metric names (feature `metrics`); every one but the retry and give-up
/// counters carries a `backend` label where the backend is known.
#[cfg(feature = "metrics")]
pub(crate) mod metrics {
    use std::time::Duration;

    /// Committed transactions, by `backend`.
    pub(crate) const COMMITS: &str = "fsmeta_commits_total";
    /// Serialization conflicts, by `stage` (`begin`, `body`, `commit`).
    pub(crate) const CONFLICTS: &str = "fsmeta_conflicts_total";
    /// Transactions `transact` ran again after a conflict.
    pub(crate) const RETRIES: &str = "fsmeta_transaction_retries_total";
    /// Transactions `transact` gave up on (its time bound passed while they kept conflicting).
    pub(crate) const GAVE_UP: &str = "fsmeta_transactions_gave_up_total";
    /// Commit latency in seconds, by `backend` and `outcome`.
    pub(crate) const COMMIT_SECONDS: &str = "fsmeta_commit_seconds";

    pub(crate) fn commit(backend: &'static str, outcome: &'static str, elapsed: Duration) {
        match outcome {
            "ok" => metrics::counter!(COMMITS, "backend" => backend).increment(1),
            "conflict" => conflict("commit"),
            _ => {}
        }
        metrics::histogram!(COMMIT_SECONDS, "backend" => backend, "outcome" => outcome)
            .record(elapsed.as_secs_f64());
    }

    pub(crate) fn conflict(stage: &'static str) {
        metrics::counter!(CONFLICTS, "stage" => stage).increment(1);
    }

    pub(crate) fn retry() {
        metrics::counter!(RETRIES).increment(1);
    }

    pub(crate) fn gave_up() {
        metrics::counter!(GAVE_UP).increment(1);
    }
}

/// Without feature `metrics`: nothing to record.
#[cfg(not(feature = "metrics"))]
pub(crate) mod metrics {
    use std::time::Duration;

    pub(crate) fn commit(_backend: &'static str, _outcome: &'static str, _elapsed: Duration) {}
    pub(crate) fn conflict(_stage: &'static str) {}
    pub(crate) fn retry() {}
    pub(crate) fn gave_up() {}
}
