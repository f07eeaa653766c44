//! [`PgOptions`] and [`PostgresStore`]: connecting, migrating, beginning
//! transactions, closing.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use migration::{ContractMigrator, Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, IsolationLevel,
    Statement, TransactionTrait,
};

use super::batch::TxConnection;
use super::errors::db_error;
use super::tx::PgTx;
use crate::error::{Error, Result};
use crate::obs::{TxOp, traced};
use crate::tx::{MetadataStore, MetadataTransaction};
use crate::verify::VerifyReport;

/// How [`PostgresStore::connect_with`] connects.
///
/// Build it with struct-update syntax so new fields keep your code compiling:
///
/// ```
/// let options = fsmeta::PgOptions { max_connections: 32, ..Default::default() };
/// # let _ = options;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgOptions {
    /// The most connections the pool opens (default 16). Each open transaction
    /// holds one, so this bounds how many transactions can be open at once;
    /// [`MetadataStore::begin`] waits (up to `acquire_timeout`) when all are in
    /// use. With 1, a second `begin` waits for the first transaction to end,
    /// which breaks the "begin never waits" rule: use at least 2.
    pub max_connections: u32,
    /// The schema holding fsmeta's tables (the connection's `search_path`);
    /// `None` leaves the server's default (normally `public`). With `migrate`,
    /// the schema is created if missing.
    pub schema: Option<String>,
    /// Run the expand migrations (create the tables, or add what this release
    /// needs) while connecting (default `true`). They only add: the drops
    /// wait for [`PostgresStore::contract`]. Turn it off when an operator runs the `migration`
    /// CLI instead, or the database role may not create tables.
    pub migrate: bool,
    /// How long `begin` waits for a free connection before failing (default 30 s).
    pub acquire_timeout: Duration,
    /// `false` sets `synchronous_commit = off` on every connection: commits no
    /// longer wait for the WAL flush, so a server crash may lose the latest
    /// commits, whole (default `true`: every acknowledged commit is durable).
    pub synchronous_commit: bool,
    /// The `application_name` every connection reports (default `None`: the
    /// driver's default). It shows in `pg_stat_activity` and the server log,
    /// so an operator can tell which server's connections are which, and
    /// terminate them. PostgreSQL keeps the first 63 bytes; NUL is refused.
    pub application_name: Option<String>,
    /// The server ends a session whose transaction has sat idle this long
    /// (`idle_in_transaction_session_timeout`; default 30 s, `None`: never).
    /// A paused or partitioned node (a stopped VM, a zombie) can hold an
    /// open transaction, and with it row locks, for as long as its TCP
    /// connection looks alive: a surviving node's takeover
    /// ([`declare_dead`](crate::declare_dead)) or any write to those rows
    /// would wait that long. fsmeta's own transactions never sit idle; a host
    /// that keeps one open while it waits on something else for longer must
    /// raise this. Whole milliseconds, 1 ms to 24 days.
    pub idle_in_transaction_timeout: Option<Duration>,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            max_connections: 16,
            schema: None,
            migrate: true,
            acquire_timeout: Duration::from_secs(30),
            synchronous_commit: true,
            application_name: None,
            idle_in_transaction_timeout: Some(Duration::from_secs(30)),
        }
    }
}

/// A store in a PostgreSQL database, shared by any number of file servers.
///
/// Cloning gives another handle to the same connection pool; the pool closes
/// when the last handle is dropped.
#[derive(Clone)]
pub struct PostgresStore {
    db: DatabaseConnection,
    schema: Option<String>,
    max_connections: u32,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// First key of the advisory lock that serializes concurrent migrations
/// (`b"fsmt"` as an integer); the second key is the schema's hash.
const MIGRATION_LOCK_CLASS: i32 = 0x6673_6d74;

impl PostgresStore {
    /// Connects with [`PgOptions::default`] (16 connections, the server's
    /// default schema) and runs the migrations.
    ///
    /// `url` is a libpq-style URL: `postgres://user:password@host:5432/dbname`.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, PgOptions::default()).await
    }

    /// Connects with explicit options: pool size, schema, whether to migrate.
    pub async fn connect_with(url: &str, options: PgOptions) -> Result<Self> {
        if options.max_connections == 0 {
            return Err(Error::Invalid("max_connections: must be at least 1".into()));
        }
        if let Some(schema) = &options.schema {
            validate_schema_name(schema)?;
        }
        if let Some(name) = &options.application_name
            && name.contains('\0')
        {
            return Err(Error::Invalid(
                "application_name: must not contain NUL".into(),
            ));
        }

        // Start-up parameters travel in the connection handshake, so they cost
        // no round trip, neither per connection nor per transaction.
        let mut startup: Vec<(&'static str, String)> = vec![
            ("default_transaction_isolation", "serializable".to_owned()),
            // Byte strings are written into batched statements as
            // `'\x…'` literals (batch.rs), which mean bytes only so.
            ("standard_conforming_strings", "on".to_owned()),
        ];
        if let Some(schema) = &options.schema {
            startup.push(("search_path", quote_ident(schema)));
        }
        if !options.synchronous_commit {
            startup.push(("synchronous_commit", "off".to_owned()));
        }
        if let Some(timeout) = options.idle_in_transaction_timeout {
            let ms = timeout.as_millis();
            if ms == 0 || ms > i32::MAX as u128 {
                return Err(Error::Invalid(format!(
                    "idle_in_transaction_timeout: {timeout:?}; 1 ms to {} ms allowed (None: no limit)",
                    i32::MAX
                )));
            }
            startup.push(("idle_in_transaction_session_timeout", ms.to_string()));
        }
        let application_name = options.application_name.clone();

        let mut connect = ConnectOptions::new(url);
        connect
            .max_connections(options.max_connections)
            .min_connections(0)
            .acquire_timeout(options.acquire_timeout)
            // Pinging on every checkout would add a round trip per transaction;
            // only connections idle long enough to have been cut are checked.
            .test_before_acquire_if_idle_for(Duration::from_secs(30))
            .sqlx_logging(false)
            .map_sqlx_postgres_opts(move |pg| {
                let pg = pg.options(startup.iter().map(|(k, v)| (*k, v)));
                match &application_name {
                    Some(name) => pg.application_name(name),
                    None => pg,
                }
            });
        let db = Database::connect(connect)
            .await
            .map_err(|e| db_error("connect", e))?;

        let store = PostgresStore {
            db,
            schema: options.schema,
            max_connections: options.max_connections,
        };
        if options.migrate {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// Applies every pending expand migration ([`migration::Migrator`]:
    /// what `connect` does unless [`PgOptions::migrate`] is off). A no-op
    /// when the schema is current.
    ///
    /// These migrations only add, so servers of the previous release keep
    /// working on the migrated schema (a rolling upgrade); what they replaced
    /// is removed by [`PostgresStore::contract`], run explicitly.
    ///
    /// Safe to run from several servers at once: a transaction-scoped
    /// advisory lock per schema lets one migrate while the others wait, then
    /// find nothing left to do.
    pub async fn migrate(&self) -> Result<()> {
        self.run_migrations("migrate", false).await
    }

    /// The contract step of an upgrade: applies the pending expand migrations,
    /// then the contract migrations ([`migration::ContractMigrator`]), which
    /// drop what older releases still use (today
    /// `server_state.clean_shutdown`). Run it once, after every server of
    /// the cluster runs this release; `connect` never does. A no-op when
    /// nothing is left to drop. Serialized with `migrate` by the same
    /// advisory lock.
    pub async fn contract(&self) -> Result<()> {
        self.run_migrations("contract", true).await
    }

    /// The expand migrations, then the contract ones when `contract`, in one
    /// transaction under the schema's advisory lock.
    async fn run_migrations(&self, op: &'static str, contract: bool) -> Result<()> {
        // READ COMMITTED, not the pool's SERIALIZABLE: after waiting for the
        // advisory lock, the next statement must see what the lock holder
        // committed (a serializable snapshot would predate it).
        let tx = self
            .db
            .begin_with_config(Some(IsolationLevel::ReadCommitted), None)
            .await
            .map_err(|e| db_error(op, e))?;
        let lock = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            [
                MIGRATION_LOCK_CLASS.into(),
                self.schema.clone().unwrap_or_default().into(),
            ],
        );
        tx.execute_raw(lock).await.map_err(|e| db_error(op, e))?;
        if let Some(schema) = &self.schema {
            // DDL takes no bind parameters: the name goes in as a quoted
            // identifier (validated, every `"` doubled), never as raw text.
            let create = format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(schema));
            tx.execute_unprepared(&create)
                .await
                .map_err(|e| db_error(op, e))?;
        }
        // Each migration runs in a savepoint of this transaction, so all of
        // them commit together with the migration tables' records.
        // Only fsmeta's missing migrations: versions in the history table
        // that fsmeta does not know (a host's own migrations sharing it, a
        // newer release's) are left alone.
        migration::apply_pending::<Migrator>(&tx)
            .await
            .map_err(|e| db_error(op, e))?;
        if contract {
            ContractMigrator::up(&tx, None)
                .await
                .map_err(|e| db_error(op, e))?;
        }
        tx.commit().await.map_err(|e| db_error(op, e))
    }

    /// fsmeta's expand migrations ([`migration::Migrator`]'s list), for a
    /// host whose own sea-orm-migration `Migrator` keeps fsmeta's tables in
    /// its schema with one history table: list these first, then the host's.
    ///
    /// ```ignore
    /// impl MigratorTrait for HostMigrator {
    ///     fn migrations() -> Vec<Box<dyn MigrationTrait>> {
    ///         let mut all = fsmeta::PostgresStore::migrations();
    ///         all.push(Box::new(m20270101_000001_create_inodes::Migration));
    ///         all
    ///     }
    /// }
    /// ```
    ///
    /// Then connect with [`PgOptions::migrate`] off, or on: `migrate` applies
    /// only fsmeta's migrations the history table lacks and ignores the
    /// host's records. Append-only: a new release adds to the end, and the
    /// host's next `up` applies it.
    pub fn migrations() -> Vec<Box<dyn migration::MigrationTrait>> {
        Migrator::migrations()
    }

    /// The schema this store uses (`None`: the server's default search path).
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Closes every connection of the pool now, instead of when the last
    /// handle is dropped. Other clones of this store fail afterwards.
    pub async fn close(self) -> Result<()> {
        self.db.close().await.map_err(|e| db_error("close", e))
    }
}

impl PostgresStore {
    /// [`MetadataStore::begin`] without its span.
    async fn begin_untraced(&self) -> Result<Box<dyn MetadataTransaction>> {
        // Nothing is sent yet: `BEGIN` goes with the first statement, and a
        // dead pooled connection found then is replaced (batch.rs).
        let pool = self.db.get_postgres_connection_pool().clone();
        Ok(Box::new(PgTx::new(TxConnection::new(
            pool,
            // Every pooled connection may be dead, and one more is new.
            self.max_connections + 1,
        ))))
    }
}

#[async_trait]
impl MetadataStore for PostgresStore {
    async fn begin(&self) -> Result<Box<dyn MetadataTransaction>> {
        traced(TxOp::Begin, "postgres", self.begin_untraced()).await
    }

    /// Reads every row of every table in one transaction, decoding each on
    /// its own: every row that does not decode or breaks the model is a
    /// [`crate::Problem`], and the walk goes on past it.
    async fn verify(&self) -> Result<VerifyReport> {
        super::verify::verify(&self.db).await
    }

    /// `LISTEN` on a connection of the pool (held while the feed lives) for
    /// the notifications migration 9's triggers send.
    async fn wake_feed(&self, options: &crate::WaitersOptions) -> Result<crate::WakeFeed> {
        super::waiters::wake_feed(&self.db, options).await
    }
}

// ---------------------------------------------------------------------------
// Schema names

/// A schema name: 1..=63 bytes (PostgreSQL's identifier limit, beyond which
/// it silently truncates), no NUL.
pub(super) fn validate_schema_name(schema: &str) -> Result<()> {
    if schema.is_empty() || schema.len() > 63 || schema.contains('\0') {
        return Err(Error::Invalid(format!(
            "schema: {schema:?} must be 1 to 63 bytes without NUL"
        )));
    }
    Ok(())
}

/// `name` as a quoted SQL identifier: `"…"` with every `"` doubled.
pub(super) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
