//! [`PgTx`]: one SERIALIZABLE transaction on a pooled connection, and the
//! rule that it never reports a commit the server did not make.
//!
//! # Aborted transactions
//!
//! Once a statement fails on the server (a serialization failure, a CHECK,
//! a timeout, a lost connection), PostgreSQL aborts the transaction: every
//! later statement is refused and `COMMIT` is answered `ROLLBACK`, which the
//! driver reports as success. So the first such failure is remembered, and
//! from then on every operation and [`MetadataTransaction::commit`] fail
//! without sending anything: with [`Error::Conflict`] when the first failure
//! was a serialization failure or deadlock (so `transact` reruns the whole
//! transaction), otherwise with an [`Error::Backend`] naming that failure.
//! `commit` returns `Ok` only when the server committed.
//!
//! Writes are kept and sent with the next message (see [`super::batch`]): a
//! write that fails on the server is reported by the operation that sent
//! it, a later read or `commit`.
//!
//! # Native handles
//!
//! A host that took the connection with [`super::native`] runs its own
//! statements in the transaction, unseen by `PgTx`: one that fails aborts
//! the server transaction without this flag being set. So once `native` was
//! handed out, `commit` sends a probe (`SELECT 1`) in its message before
//! `COMMIT`; on an aborted transaction the probe fails (SQLSTATE `25P02`),
//! `COMMIT` is not run, and `commit` rolls back and returns an
//! [`Error::Backend`] saying so. (The answer to `COMMIT` cannot tell: the
//! server answers `ROLLBACK`, and the driver reports both as success.) The
//! probe rides in the commit's message: no extra round trip.
//!
//! Errors fsmeta raises before sending anything ([`Error::Invalid`],
//! `LockNotFound`, `FileNotFound` learnt from a row count) and stored values
//! that fail to decode ([`Error::Corrupt`]: the server answered normally)
//! leave the transaction usable.

use async_trait::async_trait;
use sea_orm::{DbBackend, DbErr, EntityTrait, QueryTrait};

use super::batch::TxConnection;
use super::entity::server_state;
use super::errors::{IN_FAILED_SQL_TRANSACTION, db_error, is_conflict, is_decode_error, sqlstate};
use super::rows::missing_state;
use crate::error::{Error, Result};
use crate::obs::{TxOp, traced};
use crate::tx::MetadataTransaction;

/// One PostgreSQL transaction. Dropped without an end, it is rolled back on
/// the server (see [`super::batch`]).
pub(super) struct PgTx {
    /// The transaction's connection (begun lazily, writes batched).
    pub(super) tx: TxConnection,
    /// The first statement that failed on the server, if one did: the
    /// server has aborted the transaction.
    aborted: Option<Aborted>,
    /// Whether [`super::native`] handed the transaction out: the host may
    /// have run statements that aborted it, so `commit` probes first.
    pub(super) native_used: bool,
}

/// A write whose answer nobody needs (an insert, an upsert), kept by the
/// transaction and sent with its next message.
pub(super) trait DeferIn {
    /// Keeps the statement in `tx` for its next message.
    fn defer_in(self, tx: &mut PgTx);
}

impl<Q: QueryTrait> DeferIn for Q {
    fn defer_in(self, tx: &mut PgTx) {
        tx.tx.defer(self.build(DbBackend::Postgres));
    }
}

/// `commit` after a statement run through the native handle failed.
#[derive(Debug, thiserror::Error)]
#[error(
    "the transaction was aborted by the server: a statement run through the native \
     handle (fsmeta::backend::postgres::native) failed ({detail}); nothing was committed"
)]
struct NativeAborted {
    detail: String,
}

/// What made the server abort a transaction.
#[derive(Clone, Debug)]
struct Aborted {
    /// The operation whose statement failed.
    op: &'static str,
    /// Whether it was a serialization failure or deadlock (retryable).
    conflict: bool,
    /// The failure, as the driver reported it.
    detail: String,
}

/// The error of an operation on a transaction an earlier failure aborted.
#[derive(Debug, thiserror::Error)]
#[error(
    "the transaction was aborted by the server when {first_op} failed ({detail}); \
     nothing it wrote will be committed: roll it back"
)]
struct TransactionAborted {
    first_op: &'static str,
    detail: String,
}

impl Aborted {
    /// The error `op` returns on the aborted transaction.
    fn error(&self, op: &'static str) -> Error {
        if self.conflict {
            Error::Conflict(format!(
                "{op}: the transaction was aborted by a serialization failure in {}: {}",
                self.op, self.detail
            ))
        } else {
            Error::backend(
                op,
                TransactionAborted {
                    first_op: self.op,
                    detail: self.detail.clone(),
                },
            )
        }
    }
}

impl PgTx {
    /// Wraps a transaction just begun.
    pub(super) fn new(tx: TxConnection) -> Self {
        PgTx {
            tx,
            aborted: None,
            native_used: false,
        }
    }

    /// `Ok` unless an earlier statement failed on the server; every
    /// operation calls it before sending anything.
    pub(super) fn usable(&self, op: &'static str) -> Result<()> {
        match &self.aborted {
            Some(aborted) => Err(aborted.error(op)),
            None => Ok(()),
        }
    }

    /// Maps a failed statement of `op` to fsmeta's error and, unless the
    /// server answered normally (a value that does not decode), remembers
    /// that the transaction is aborted.
    pub(super) fn fail(&mut self, op: &'static str, e: DbErr) -> Error {
        if self.aborted.is_none() && !is_decode_error(&e) {
            self.aborted = Some(Aborted {
                op,
                conflict: is_conflict(&e),
                detail: e.to_string(),
            });
        }
        db_error(op, e)
    }

    /// The `server_state` row; `Corrupt` when it was deleted.
    pub(super) async fn state(&mut self, op: &'static str) -> Result<server_state::Model> {
        self.usable(op)?;
        server_state::Entity::find_by_id(server_state::ROW_ID)
            .one(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?
            .ok_or_else(missing_state)
    }
}

#[async_trait]
impl MetadataTransaction for PgTx {
    async fn commit(self: Box<Self>) -> Result<()> {
        traced(TxOp::Commit, "postgres", self.commit_untraced()).await
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        traced(TxOp::Rollback, "postgres", self.rollback_untraced()).await
    }

    /// This transaction, for [`super::native`] to downcast.
    fn as_any(&mut self) -> Option<&mut (dyn std::any::Any + Send)> {
        Some(self)
    }
}

impl PgTx {
    /// [`MetadataTransaction::commit`] without its span.
    async fn commit_untraced(self: Box<Self>) -> Result<()> {
        if let Some(aborted) = &self.aborted {
            // `COMMIT` would be answered `ROLLBACK`, and reported as success.
            let error = aborted.error("commit");
            if let Err(e) = self.tx.rollback().await {
                tracing::debug!(error = %e, "fsmeta: rollback of an aborted transaction failed");
            }
            return Err(error);
        }
        // Serialization failures are often detected only here (SSI checks
        // dangerous structures at commit): they are `Conflict` like on a statement.
        match self.tx.commit(self.native_used).await {
            Ok(()) => Ok(()),
            // 25P02 (in_failed_sql_transaction) on the probe: a host statement failed.
            Err(e)
                if self.native_used
                    && sqlstate(&e).as_deref() == Some(IN_FAILED_SQL_TRANSACTION) =>
            {
                Err(Error::backend(
                    "commit",
                    NativeAborted {
                        detail: e.to_string(),
                    },
                ))
            }
            Err(e) => Err(db_error("commit", e)),
        }
    }

    /// [`MetadataTransaction::rollback`] without its span.
    async fn rollback_untraced(self: Box<Self>) -> Result<()> {
        self.tx
            .rollback()
            .await
            .map_err(|e| db_error("rollback", e))
    }
}
