//! SeaORM/sqlx errors as fsmeta errors: SQLSTATEs, conflicts, lost
//! connections, undecodable values.

use sea_orm::{DbErr, RuntimeErr};

use crate::error::Error;

/// SQLSTATE `serialization_failure`.
pub(super) const SERIALIZATION_FAILURE: &str = "40001";
/// SQLSTATE `deadlock_detected`.
pub(super) const DEADLOCK_DETECTED: &str = "40P01";
/// SQLSTATE `in_failed_sql_transaction`: a statement sent after an earlier
/// one aborted the transaction.
pub(super) const IN_FAILED_SQL_TRANSACTION: &str = "25P02";
/// SQLSTATE `admin_shutdown`: the server ended the session
/// (`pg_terminate_backend`, a fast or smart shutdown).
pub(super) const ADMIN_SHUTDOWN: &str = "57P01";
/// SQLSTATE `undefined_table`: a relation named in a statement does not exist.
pub const UNDEFINED_TABLE: &str = "42P01";

/// Classifies a SeaORM error: serialization failures and deadlocks are
/// [`Error::Conflict`] (retry the transaction), undecodable stored values
/// [`Error::Corrupt`], everything else [`Error::Backend`] naming `op`.
///
/// `DbErr::sql_err()` recognizes only unique and foreign-key violations, so
/// the SQLSTATE is read from the sqlx database error itself, wherever in the
/// error chain SeaORM put it (`DbErr::Exec` for statements, `DbErr::Query`
/// for queries and for `COMMIT`).
pub(super) fn db_error(op: &'static str, e: DbErr) -> Error {
    if is_conflict(&e) {
        return Error::Conflict(format!("{op}: {e}"));
    }
    if is_decode_error(&e) {
        return Error::Corrupt(format!("{op}: a stored value cannot be decoded: {e}"));
    }
    Error::backend(op, e)
}

/// True for SQLSTATE 40001 or 40P01: the transaction lost a serialization race.
pub(super) fn is_conflict(e: &DbErr) -> bool {
    sqlstate(e).is_some_and(|code| code == SERIALIZATION_FAILURE || code == DEADLOCK_DETECTED)
}

/// The sqlx error inside a SeaORM error, if any.
fn sqlx_error(e: &DbErr) -> Option<&sea_orm::sqlx::Error> {
    match e {
        DbErr::Exec(RuntimeErr::SqlxError(s))
        | DbErr::Query(RuntimeErr::SqlxError(s))
        | DbErr::Conn(RuntimeErr::SqlxError(s)) => Some(s),
        _ => None,
    }
}

/// The SQLSTATE of the database error behind `e`, if there is one.
pub(super) fn sqlstate(e: &DbErr) -> Option<String> {
    if let Some(sea_orm::sqlx::Error::Database(db)) = sqlx_error(e) {
        return db.code().map(|c| c.into_owned());
    }
    chain_sqlstate(e)
}

/// Walks a source chain to the driver's database error.
fn chain_sqlstate(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(sea_orm::sqlx::Error::Database(db)) = err.downcast_ref::<sea_orm::sqlx::Error>()
        {
            return db.code().map(|c| c.into_owned());
        }
        if let Some(pg) = err.downcast_ref::<sea_orm::sqlx::postgres::PgDatabaseError>() {
            return Some(pg.code().to_owned());
        }
        if let Some(db) = err.downcast_ref::<DbErr>()
            && let Some(sea_orm::sqlx::Error::Database(db)) = sqlx_error(db)
        {
            return db.code().map(|c| c.into_owned());
        }
        source = err.source();
    }
    None
}

/// The SQLSTATE (e.g. [`UNDEFINED_TABLE`]) of the PostgreSQL error behind an
/// fsmeta error, when the server sent one: `None` for errors fsmeta raised
/// itself ([`Error::Invalid`], [`Error::Corrupt`], …), for other backends'
/// errors, and for I/O failures.
///
/// A tool can tell "no fsmeta tables here" from any other failure with it,
/// without matching message text (which depends on the server's locale).
pub fn sqlstate_of(error: &Error) -> Option<String> {
    match error {
        // `Error::Backend` does not expose its payload as `source()`: start there.
        Error::Backend(inner) => chain_sqlstate(inner.as_ref()),
        _ => None,
    }
}

/// True when `e` says the connection itself is gone: an I/O error, or the
/// server ending the session (SQLSTATE class `08`, connection exception, or
/// `57P01`..`57P03`: terminated by an administrator, crash shutdown, cannot
/// connect now).
pub(super) fn is_connection_lost(e: &DbErr) -> bool {
    match sqlx_error(e) {
        Some(sea_orm::sqlx::Error::Io(_)) => true,
        _ => sqlstate(e).is_some_and(|code| {
            code.starts_with("08") || matches!(code.as_str(), "57P01" | "57P02" | "57P03")
        }),
    }
}

/// True for a stored value the driver could not turn into its Rust type
/// (NUMERIC `NaN`, a NULL from `rows::checked_time`, …). The server
/// answered the statement normally, so the transaction is still usable.
pub(super) fn is_decode_error(e: &DbErr) -> bool {
    match e {
        DbErr::Type(_) | DbErr::TryIntoErr { .. } => true,
        _ => matches!(
            sqlx_error(e),
            Some(sea_orm::sqlx::Error::ColumnDecode { .. } | sea_orm::sqlx::Error::Decode(_))
        ),
    }
}
