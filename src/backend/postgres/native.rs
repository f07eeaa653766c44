//! The native handle: the connection under an fsmeta transaction, a SeaORM
//! [`ConnectionTrait`](sea_orm::ConnectionTrait),
//! for a host that keeps its own typed tables (its own entities, its own
//! migrations) and wants their writes to commit or vanish with fsmeta's.
//!
//! # Rules
//!
//! - Run only the host's own statements. fsmeta's tables (`files`, `locks`,
//!   `nodes`, `epoch_records`, `server_state`, `ext_records`) are written
//!   through fsmeta; `verify` checks only those.
//! - Never end the transaction from inside (no `COMMIT`, `ROLLBACK` or
//!   `SET TRANSACTION` as SQL): fsmeta's `commit`/`rollback` end it. Nested
//!   transactions are savepoints ([`TxConnection::savepoint`]): one rolled
//!   back leaves the outer transaction usable.
//! - A host statement is sent when it runs, after the writes fsmeta still
//!   holds back (in the same message): it sees them, and a failure of one of
//!   those is reported to the host statement.
//! - Map the host's errors with [`host_error`] and propagate them with `?`:
//!   a serialization failure is then [`Error::Conflict`] and
//!   [`crate::MetadataStoreExt::transact`] reruns the host's writes with
//!   fsmeta's. Conflicts PostgreSQL detects at `COMMIT` come back from
//!   `commit` as `Conflict` on their own.
//! - A host statement that fails aborts the server transaction. If the host
//!   ignores the error, `commit` still never reports success: once `native`
//!   was called, `commit` probes the transaction (in the same message as
//!   `COMMIT`) and fails when it was aborted, with nothing stored.

use sea_orm::DbErr;

use super::batch::TxConnection;
use super::errors::db_error;
use super::tx::PgTx;
use crate::error::{Error, Result};
use crate::tx::MetadataTransaction;

/// The connection of a PostgreSQL fsmeta transaction, to run the host's own
/// statements in it (see the module docs for the rules).
///
/// [`Error::Invalid`] when `tx` is not a PostgreSQL transaction (memory,
/// fjall, a wrapper that does not expose its inner transaction); the
/// transaction's own error when an earlier fsmeta statement already aborted it.
///
/// ```no_run
/// # use fsmeta::*;
/// # async fn f(store: &PostgresStore) -> Result<()> {
/// use sea_orm::ConnectionTrait;
/// use fsmeta::backend::postgres::{host_error, native};
/// let mut tx = store.begin().await?;
/// native(&mut *tx)?
///     .execute_unprepared("INSERT INTO inodes (ino) VALUES (7)")
///     .await
///     .map_err(host_error)?;
/// tx.commit().await
/// # }
/// ```
pub fn native<'t>(tx: &'t mut (dyn MetadataTransaction + '_)) -> Result<&'t TxConnection> {
    let pg = tx
        .as_any()
        .and_then(|any| any.downcast_mut::<PgTx>())
        .ok_or_else(|| {
            Error::Invalid(
                "native: not a PostgreSQL transaction (fsmeta::backend::postgres::native \
                 needs one begun by a PostgresStore)"
                    .into(),
            )
        })?;
    pg.usable("native")?;
    pg.native_used = true;
    Ok(&pg.tx)
}

/// A SeaORM error from a host statement as fsmeta's error: serialization
/// failures and deadlocks (SQLSTATE `40001`, `40P01`) are [`Error::Conflict`]
/// (so `transact` retries), values that cannot be decoded
/// [`Error::Corrupt`], everything else [`Error::Backend`].
pub fn host_error(e: DbErr) -> Error {
    db_error("host statement", e)
}
