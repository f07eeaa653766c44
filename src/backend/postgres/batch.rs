//! [`TxConnection`]: the connection of one fsmeta transaction, begun when it
//! first needs the server, its writes held back and sent with the next
//! message.
//!
//! Loopback round trips, not the server, bound a transaction's latency: every
//! statement sent alone waits for its answer. So:
//!
//! - Nothing is sent at `begin`. A write that needs no answer (an upsert, an
//!   insert: [`TxConnection::defer`]) is kept, in order.
//! - A statement that needs an answer (a read, a delete whose row count
//!   decides the result) is sent in one message with what has to precede
//!   it: `BEGIN` if the transaction has not begun, then the kept writes, then
//!   the statement. Reads therefore see the transaction's own writes: the
//!   writes are flushed first, in the same round trip.
//! - `commit` sends the kept writes and `COMMIT` in one message. A
//!   transaction that never needed an answer sends its writes alone: one
//!   message, which PostgreSQL runs as one implicit transaction (at
//!   `SERIALIZABLE`, the connection's default), so it commits or fails whole.
//!
//! # SQL text
//!
//! SeaQuery produces every statement. One message of several statements is
//! the simple query protocol, which has no bind parameters, so the values are
//! rendered into the text by SeaQuery's own renderer
//! ([`sea_query::inject_parameters`]), and only values whose rendering is
//! exact: numbers, booleans, NULL, UUIDs, byte strings (hex literals;
//! `standard_conforming_strings` is forced on at connect), timestamps of
//! years 1 to 9999, and strings without NUL (SeaQuery's PostgreSQL escaping:
//! `E'…'` with backslash escapes, octal for control characters;
//! `tests/postgres_statements.rs` round-trips quotes, backslashes, dollar
//! quotes, control characters, non-ASCII and 1 KiB runs through every text
//! column). A statement with any other value is sent on its own with its
//! values bound (the extended protocol), between messages of the others:
//! correct for every value, one round trip more. No SQL text is assembled
//! here beyond joining SeaQuery's statements with `;`.
//!
//! # Lost connections
//!
//! A pooled connection can be dead (a server restart, a failover). If the
//! transaction's first message fails so, and it began the transaction
//! explicitly (`BEGIN; …` without `COMMIT`), nothing can have committed: the
//! message is sent again on another connection. A first message that
//! commits (a transaction of writes only, `BEGIN; …; COMMIT`) is sent again
//! only when the server reported terminating the session (57P01) before
//! completing any of its statements (see `commit`); otherwise the server
//! may have committed before the connection broke, and the failure is
//! reported.
//!
//! # Dropped without an end
//!
//! A transaction dropped while open on the server sends `ROLLBACK` from a
//! task, then returns its connection to the pool. One dropped while a
//! message was unanswered (its future was dropped) closes its connection:
//! its state is unknown, and the server rolls back when the session ends.

use std::sync::Arc;

use async_trait::async_trait;
use futures_util::TryStreamExt;
use sea_orm::sea_query::{self, PostgresQueryBuilder, Value};
use sea_orm::sqlx::pool::PoolConnection;
use sea_orm::sqlx::postgres::{PgPool, PgQueryResult, PgRow};
use sea_orm::sqlx::{self, AssertSqlSafe, Either, Postgres};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, ExecResult, QueryResult, RuntimeErr, Statement};
use sea_query_sqlx::SqlxValues;
use tokio::sync::Mutex;

use super::errors::{ADMIN_SHUTDOWN, is_connection_lost, sqlstate};

/// The connection of one fsmeta transaction on PostgreSQL, and the handle
/// [`super::native`] gives a host for its own statements.
///
/// It implements SeaORM's [`ConnectionTrait`], so the host's entities and
/// queries run on it like on a `DatabaseTransaction`. A host statement is
/// sent at once (with fsmeta's writes held back before it, so it sees them);
/// see [`super::native`] for the rules.
pub struct TxConnection {
    pool: PgPool,
    /// How many connections a transaction's first message may try.
    attempts: u32,
    state: Mutex<State>,
}

/// What has been sent, and what is waiting.
#[derive(Default)]
struct State {
    conn: Option<PoolConnection<Postgres>>,
    /// `BEGIN` was sent: the server holds an open transaction on `conn`.
    open: bool,
    /// A message was sent and its answer not read to the end (the future was
    /// dropped): the connection's state is unknown.
    in_flight: bool,
    /// A message of this transaction was answered (so a lost connection is
    /// no longer a connection to replace).
    answered: bool,
    /// Writes kept for the next message, in order.
    pending: Vec<Statement>,
    /// Statements the server reported complete in the last `run`.
    completed: usize,
}

/// The answer a message must give back.
#[derive(Clone, Copy)]
enum Want {
    /// The rows of the last statement.
    Rows,
    /// The row count of the last statement.
    Count,
}

/// The answer of a message: each completed statement's rows, and the last
/// statement's result.
#[derive(Default)]
struct Reply {
    /// One entry per statement the server completed, in order (empty for a
    /// write or a fixed command).
    sets: Vec<Vec<PgRow>>,
    last: Option<PgQueryResult>,
}

impl Reply {
    /// The rows of the last `n` statements, in order.
    fn last_sets(mut self, n: usize) -> Result<Vec<Vec<PgRow>>, DbErr> {
        let start = self.sets.len().checked_sub(n).ok_or_else(|| {
            DbErr::Custom(format!(
                "PostgreSQL completed {} statement(s) of a message, {n} expected",
                self.sets.len()
            ))
        })?;
        Ok(self.sets.split_off(start))
    }

    /// The rows of the last statement.
    fn last_rows(self) -> Vec<PgRow> {
        self.sets.into_iter().next_back().unwrap_or_default()
    }
}

/// A piece of a message, rendered once, when it is queued for sending.
enum Piece {
    /// SQL text with its values rendered (or a fixed command): goes in a
    /// simple-protocol message with its neighbours.
    Text(String),
    /// A statement with a value that does not render exactly: goes alone,
    /// its values bound.
    Bound(Statement),
}

impl Piece {
    /// A fixed command (`BEGIN`, `COMMIT`, `SELECT 1`).
    fn fixed(sql: &str) -> Self {
        Piece::Text(sql.to_owned())
    }

    /// `stmt` as text with its values rendered, if every value renders
    /// exactly (see the module docs), else bound.
    fn of(stmt: Statement) -> Self {
        match &stmt.values {
            None => Piece::Text(stmt.sql),
            Some(values) if values.0.iter().all(renders_exactly) => Piece::Text(
                sea_query::inject_parameters(&stmt.sql, &values.0, &PostgresQueryBuilder),
            ),
            Some(_) => Piece::Bound(stmt),
        }
    }
}

/// Whether SeaQuery's rendering of `value` into SQL text means exactly
/// `value` to PostgreSQL.
fn renders_exactly(value: &Value) -> bool {
    // Years 1 to 9999: SeaQuery writes `%Y`, which has a sign and more
    // digits outside them.
    const YEAR_1: i64 = -62_135_596_800;
    const YEAR_9999_END: i64 = 253_402_300_799;
    let plain_year = |seconds: i64| (YEAR_1..=YEAR_9999_END).contains(&seconds);
    match value {
        Value::Bool(_)
        | Value::TinyInt(_)
        | Value::SmallInt(_)
        | Value::Int(_)
        | Value::BigInt(_)
        | Value::TinyUnsigned(_)
        | Value::SmallUnsigned(_)
        | Value::Unsigned(_)
        | Value::BigUnsigned(_)
        | Value::Uuid(_)
        | Value::Decimal(_)
        | Value::Bytes(_) => true,
        Value::String(None) => true,
        // SeaQuery's PostgreSQL escaping (`E'…'`, octal for control
        // characters); tests/postgres_statements.rs round-trips hostile
        // strings through it. PostgreSQL text cannot hold NUL: such a
        // string goes bound, so the server refuses it as it always did.
        Value::String(Some(s)) => !s.contains('\0'),
        Value::ChronoDateTimeUtc(None) | Value::ChronoDateTimeWithTimeZone(None) => true,
        Value::ChronoDateTimeUtc(Some(t)) => plain_year(t.timestamp()),
        Value::ChronoDateTimeWithTimeZone(Some(t)) => plain_year(t.timestamp()),
        _ => false,
    }
}

/// A driver error as SeaORM reports one.
fn driver_error(e: sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(Arc::new(e)))
}

impl TxConnection {
    /// A transaction on `pool`; nothing is sent yet. `attempts` bounds the
    /// connections tried when the first message finds a dead one.
    pub(super) fn new(pool: PgPool, attempts: u32) -> Self {
        TxConnection {
            pool,
            attempts: attempts.max(1),
            state: Mutex::new(State::default()),
        }
    }

    /// Keeps `stmt`, a write whose answer nobody needs, for the next message.
    pub(super) fn defer(&mut self, stmt: Statement) {
        self.state.get_mut().pending.push(stmt);
    }

    /// Commits: the kept writes and `COMMIT` in one message (with `SELECT 1`
    /// before `COMMIT` when `probe`, which fails on a transaction the server
    /// aborted, where `COMMIT` would answer `ROLLBACK` like a success).
    pub(super) async fn commit(&self, probe: bool) -> Result<(), DbErr> {
        let mut state = self.state.lock().await;
        let pending = std::mem::take(&mut state.pending);
        let mut pieces: Vec<Piece> = pending.into_iter().map(Piece::of).collect();
        let result = if state.open {
            if probe {
                pieces.push(Piece::fixed("SELECT 1"));
            }
            pieces.push(Piece::fixed("COMMIT"));
            self.run(&mut state, &pieces, Want::Count).await
        } else if pieces.is_empty() {
            Ok(Reply::default())
        } else if let [Piece::Bound(_)] = pieces.as_slice() {
            // One bound statement: its own implicit transaction.
            self.run(&mut state, &pieces, Want::Count).await
        } else {
            // `BEGIN; …; COMMIT`: one message when every piece is text. A
            // connection the server terminated (57P01) before the message
            // completed anything is replaced: the server flushes what it
            // has answered before that error, so no completion means not
            // even `BEGIN` ran, and nothing committed. Any other failure (a
            // broken socket with no answer) may follow a commit, and is
            // reported.
            pieces.insert(0, Piece::fixed("BEGIN"));
            pieces.push(Piece::fixed("COMMIT"));
            self.run_first(&mut state, &pieces, Want::Count, |e, completed| {
                completed == 0 && sqlstate(e).as_deref() == Some(ADMIN_SHUTDOWN)
            })
            .await
        };
        match result {
            Ok(_) => {
                state.open = false;
                Ok(())
            }
            Err(e) => {
                // The server may still hold the (aborted) transaction.
                let _ = self.roll_back_open(&mut state).await;
                Err(e)
            }
        }
    }

    /// Rolls back: the kept writes are dropped, and `ROLLBACK` is sent if the
    /// server has a transaction open.
    pub(super) async fn rollback(&self) -> Result<(), DbErr> {
        let mut state = self.state.lock().await;
        state.pending.clear();
        self.roll_back_open(&mut state).await
    }

    /// Sends `ROLLBACK` if the server holds the transaction open; a
    /// connection that fails it, whatever its state, is not reused.
    async fn roll_back_open(&self, state: &mut State) -> Result<(), DbErr> {
        if !state.open {
            return Ok(());
        }
        let result = self
            .run(state, &[Piece::fixed("ROLLBACK")], Want::Count)
            .await;
        state.open = false;
        if result.is_err()
            && let Some(conn) = state.conn.as_mut()
        {
            conn.close_on_drop();
        }
        result.map(|_| ())
    }

    /// Runs `pieces`, the first message of a transaction that begins it on
    /// the server. When that fails in a way `replaceable` (given the error
    /// and how many statements the server completed) says left nothing
    /// done, the connection is dropped and the message sent again on
    /// another, at most `attempts` times in all.
    async fn run_first(
        &self,
        state: &mut State,
        pieces: &[Piece],
        want: Want,
        replaceable: impl Fn(&DbErr, usize) -> bool,
    ) -> Result<Reply, DbErr> {
        let fresh = !state.open && !state.answered;
        let mut tries = 1;
        loop {
            state.open = true;
            match self.run(state, pieces, want).await {
                Err(e) if fresh && tries < self.attempts && replaceable(&e, state.completed) => {
                    tracing::debug!(error = %e, "fsmeta: a pooled connection was lost; sending again on another");
                    tries += 1;
                    if let Some(mut dead) = state.conn.take() {
                        dead.close_on_drop();
                    }
                    state.open = false;
                }
                other => return other,
            }
        }
    }

    /// Sends `BEGIN` if needed, the kept writes, then `stmts`; the answer
    /// ends with `stmts`'. A first message that finds its pooled connection
    /// dead is sent again on another: it began the transaction explicitly
    /// and does not commit, so nothing of it can have committed.
    async fn send(
        &self,
        state: &mut State,
        stmts: Vec<Statement>,
        want: Want,
    ) -> Result<Reply, DbErr> {
        let mut pieces = Vec::with_capacity(state.pending.len() + stmts.len() + 1);
        if !state.open {
            pieces.push(Piece::fixed("BEGIN"));
        }
        pieces.extend(state.pending.drain(..).map(Piece::of));
        pieces.extend(stmts.into_iter().map(Piece::of));
        self.run_first(state, &pieces, want, |e, _| is_connection_lost(e))
            .await
    }

    /// Runs `pieces` on the transaction's connection (taken from the pool
    /// if it has none): each longest run of text pieces goes as one
    /// simple-protocol message, every bound piece alone. The answer holds
    /// every piece's rows.
    async fn run(&self, state: &mut State, pieces: &[Piece], want: Want) -> Result<Reply, DbErr> {
        if state.conn.is_none() {
            state.conn = Some(self.pool.acquire().await.map_err(driver_error)?);
        }
        state.completed = 0;
        let conn = state.conn.as_mut().expect("acquired above");
        let mut reply = Reply::default();
        let mut text = String::new();
        let mut pieces = pieces.iter().peekable();
        while let Some(piece) = pieces.next() {
            state.in_flight = true;
            let answer = match piece {
                Piece::Text(sql) => {
                    if !text.is_empty() {
                        text.push_str("; ");
                    }
                    text.push_str(sql);
                    if matches!(pieces.peek(), Some(Piece::Text(_))) {
                        continue;
                    }
                    simple(conn, std::mem::take(&mut text), &mut reply).await
                }
                Piece::Bound(stmt) => bound(conn, stmt, want, &mut reply).await,
            };
            state.completed = reply.sets.len();
            // Answered (even with an error): the exchange is over.
            state.in_flight = false;
            answer?;
            state.answered = true;
        }
        Ok(reply)
    }
}

/// One simple-protocol message of one or more statements, answered into
/// `reply`: a statement's rows come before the server reports it complete,
/// so each completion closes one statement's set.
async fn simple(
    conn: &mut PoolConnection<Postgres>,
    text: String,
    reply: &mut Reply,
) -> Result<(), DbErr> {
    let mut rows = Vec::new();
    let mut answers = sqlx::raw_sql(AssertSqlSafe(text)).fetch_many(&mut **conn);
    while let Some(answer) = answers.try_next().await.map_err(driver_error)? {
        match answer {
            Either::Left(done) => {
                reply.sets.push(std::mem::take(&mut rows));
                reply.last = Some(done);
            }
            Either::Right(row) => rows.push(row),
        }
    }
    Ok(())
}

/// One statement with its values bound (extended protocol), answered into
/// `reply`.
async fn bound(
    conn: &mut PoolConnection<Postgres>,
    stmt: &Statement,
    want: Want,
    reply: &mut Reply,
) -> Result<(), DbErr> {
    let values = stmt.values.clone().unwrap_or(sea_query::Values(Vec::new()));
    let query = sqlx::query_with(AssertSqlSafe(stmt.sql.clone()), SqlxValues(values));
    match want {
        Want::Rows => {
            let rows = query.fetch_all(&mut **conn).await.map_err(driver_error)?;
            reply.sets.push(rows);
        }
        Want::Count => {
            let done = query.execute(&mut **conn).await.map_err(driver_error)?;
            reply.sets.push(Vec::new());
            reply.last = Some(done);
        }
    }
    Ok(())
}

impl Drop for TxConnection {
    fn drop(&mut self) {
        let state = self.state.get_mut();
        let Some(mut conn) = state.conn.take() else {
            return;
        };
        if state.in_flight {
            // Its state is unknown: the server rolls back when the session ends.
            conn.close_on_drop();
        } else if state.open {
            // Dropped without an end (a read-only transaction let go, often):
            // roll back, then return the connection to the pool. Without a
            // runtime to do that on, close it instead.
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(async move {
                        if sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await.is_err() {
                            conn.close_on_drop();
                        }
                    });
                }
                Err(_) => conn.close_on_drop(),
            }
        }
    }
}

#[async_trait]
impl ConnectionTrait for TxConnection {
    fn get_database_backend(&self) -> DbBackend {
        DbBackend::Postgres
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        let mut state = self.state.lock().await;
        let reply = self.send(&mut state, vec![stmt], Want::Count).await?;
        Ok(reply.last.unwrap_or_default().into())
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        let stmt = Statement::from_string(DbBackend::Postgres, sql);
        self.execute_raw(stmt).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        Ok(self.query_all_raw(stmt).await?.into_iter().next())
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let mut state = self.state.lock().await;
        let reply = self.send(&mut state, vec![stmt], Want::Rows).await?;
        Ok(reply
            .last_rows()
            .into_iter()
            .map(QueryResult::from)
            .collect())
    }
}

impl TxConnection {
    /// Runs the reads `stmts` in one message (with `BEGIN` and the kept
    /// writes before them, as for any read) and returns each one's rows, in
    /// order. A read with a value that does not render exactly goes alone,
    /// bound, as in every message.
    pub(super) async fn query_several<const N: usize>(
        &self,
        stmts: [Statement; N],
    ) -> Result<[Vec<QueryResult>; N], DbErr> {
        let mut state = self.state.lock().await;
        let reply = self.send(&mut state, stmts.into(), Want::Rows).await?;
        let sets: Vec<Vec<QueryResult>> = reply
            .last_sets(N)?
            .into_iter()
            .map(|rows| rows.into_iter().map(QueryResult::from).collect())
            .collect();
        // `last_sets(N)` gave N sets.
        sets.try_into()
            .map_err(|_| DbErr::Custom("a message's answer lost a statement's rows".into()))
    }
}

impl TxConnection {
    /// Keeps `sql`, a fixed command, for the next message (a savepoint
    /// dropped without an end is released so).
    pub(super) fn send_later(&self, sql: &'static str) {
        if let Ok(mut state) = self.state.try_lock() {
            state
                .pending
                .push(Statement::from_string(DbBackend::Postgres, sql));
        }
    }
}
