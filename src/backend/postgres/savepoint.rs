//! [`Savepoint`]: nested work inside a [`TxConnection`]'s transaction, for
//! a host's statements through [`super::native`].

use async_trait::async_trait;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, ExecResult, QueryResult, Statement};

use super::batch::TxConnection;

/// A savepoint inside a [`TxConnection`]'s transaction (what SeaORM's nested
/// `begin` is on a `DatabaseTransaction`): [`Savepoint::rollback`] undoes the
/// statements run since it was taken and leaves the transaction usable even
/// if one of them failed; [`Savepoint::release`] keeps them. Dropped without
/// either, it is released (its statements stay).
///
/// Savepoints nest ([`Savepoint::savepoint`]); they share one name, which
/// PostgreSQL resolves to the innermost, as borrowing makes them end
/// innermost first.
pub struct Savepoint<'c> {
    conn: &'c TxConnection,
    /// `rollback` or `release` ran.
    ended: bool,
}

/// The savepoint command of a savepoint dropped without an end.
const RELEASE: &str = "RELEASE SAVEPOINT fsmeta_savepoint";

impl Drop for Savepoint<'_> {
    fn drop(&mut self) {
        if !self.ended {
            // Released with the next message, so that an outer savepoint's
            // name means the outer one again.
            self.conn.send_later(RELEASE);
        }
    }
}

impl TxConnection {
    /// Takes a savepoint (beginning the transaction and sending fsmeta's
    /// kept writes first, in the same message).
    pub async fn savepoint(&self) -> Result<Savepoint<'_>, DbErr> {
        self.execute_unprepared("SAVEPOINT fsmeta_savepoint")
            .await?;
        Ok(Savepoint {
            conn: self,
            ended: false,
        })
    }
}

impl<'c> Savepoint<'c> {
    /// A savepoint inside this one.
    pub async fn savepoint(&self) -> Result<Savepoint<'c>, DbErr> {
        self.conn.savepoint().await
    }

    /// Undoes what was run since the savepoint was taken.
    pub async fn rollback(mut self) -> Result<(), DbErr> {
        self.ended = true;
        self.conn
            .execute_unprepared(
                "ROLLBACK TO SAVEPOINT fsmeta_savepoint; RELEASE SAVEPOINT fsmeta_savepoint",
            )
            .await
            .map(|_| ())
    }

    /// Keeps what was run since the savepoint was taken.
    pub async fn release(mut self) -> Result<(), DbErr> {
        self.ended = true;
        self.conn.execute_unprepared(RELEASE).await.map(|_| ())
    }
}

#[async_trait]
impl ConnectionTrait for Savepoint<'_> {
    fn get_database_backend(&self) -> DbBackend {
        DbBackend::Postgres
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.conn.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.conn.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.conn.query_one_raw(stmt).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.conn.query_all_raw(stmt).await
    }
}
