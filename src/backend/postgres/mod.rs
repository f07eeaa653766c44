//! The PostgreSQL backend: several file servers share one database.
//!
//! Built on SeaORM (sqlx underneath); the schema comes from the `migration`
//! crate (sea-orm-migration), which [`PostgresStore::connect`] runs at start-up.
//!
//! # Isolation
//!
//! Every transaction runs at `SERIALIZABLE`. The level is a connection
//! start-up parameter (`default_transaction_isolation`), so `BEGIN` is the only
//! round trip a transaction starts with (no `SET TRANSACTION`). PostgreSQL's
//! serializable snapshot isolation never blocks readers; when it cannot order
//! two transactions it fails one with SQLSTATE `40001` (or `40P01` for a
//! deadlock). Both become [`Error::Conflict`], on any statement or at commit,
//! and [`crate::MetadataStoreExt::transact`] retries them.
//!
//! # Column types
//!
//! u64 fields are `NUMERIC(20,0)` with a range CHECK (`BIGINT` stops at
//! 2^63 - 1), u32 fields `BIGINT` with a range CHECK, enums `SMALLINT`, file
//! handles `BYTEA`, timestamps `TIMESTAMPTZ` (microseconds, exact). The
//! migration's module docs give the reasons.
//!
//! # Durability
//!
//! A commit returns after PostgreSQL has flushed its WAL (`synchronous_commit
//! = on`, the server default): a committed transaction survives a crash of
//! the client, the server, or the machine, as far as the server's storage
//! honours fsync. [`PgOptions::synchronous_commit`] = `false` trades that for
//! latency: a server crash may then lose the last few hundred milliseconds of
//! commits (never part of one).

mod entity;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use migration::{Migrator, MigratorTrait};
use sea_orm::prelude::{DateTimeUtc, Decimal};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectOptions, ConnectionTrait, Database,
    DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, EntityTrait, IsolationLevel,
    QueryFilter, QueryOrder, QuerySelect, RuntimeErr, Select, Statement, TransactionTrait,
};
use uuid::Uuid;

use self::entity::{epoch_records, files, locks, nodes, server_state};
use crate::error::{Error, Result};
use crate::file::{FileHandle, FileKind, FileMeta, FileStore};
use crate::lock::{LockQuery, LockStore, LockType, PersistedLock, ShareReservation};
use crate::node::NodeStore;
use crate::node::{EpochRecord, NodeState};
use crate::time::Timestamp;
use crate::tx::{MetadataStore, MetadataTransaction};
use crate::validate;

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
    /// Run the migrations (create or upgrade the tables) while connecting
    /// (default `true`). Turn it off when an operator runs the `migration`
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
        let mut startup: Vec<(&'static str, String)> =
            vec![("default_transaction_isolation", "serializable".to_owned())];
        if let Some(schema) = &options.schema {
            startup.push(("search_path", quote_ident(schema)));
        }
        if !options.synchronous_commit {
            startup.push(("synchronous_commit", "off".to_owned()));
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

    /// Applies every pending migration (what `connect` does unless
    /// [`PgOptions::migrate`] is off). A no-op when the schema is current.
    ///
    /// Safe to run from several servers at once: a transaction-scoped
    /// advisory lock per schema lets one migrate while the others wait, then
    /// find nothing left to do.
    pub async fn migrate(&self) -> Result<()> {
        let op = "migrate";
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
        // them commit together with the migration table's records.
        Migrator::up(&tx, None).await.map_err(|e| db_error(op, e))?;
        tx.commit().await.map_err(|e| db_error(op, e))
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

#[async_trait]
impl MetadataStore for PostgresStore {
    async fn begin(&self) -> Result<Box<dyn MetadataTransaction>> {
        // A pooled connection may have died while idle (a server restart, a
        // failover, an administrator's `pg_terminate_backend`); the pool only
        // pings connections idle for 30 s, so its `BEGIN` is what finds out,
        // and the pool then discards it. No transaction exists yet, so taking
        // the next connection is safe. Each dead connection fails once: the
        // pool size bounds the retries.
        let mut lost = 0;
        loop {
            // Serializable by the connection's start-up parameter: this is one `BEGIN`.
            match self.db.begin().await {
                Ok(tx) => return Ok(Box::new(PgTx { tx })),
                Err(e) if lost < self.max_connections && is_connection_lost(&e) => {
                    lost += 1;
                    tracing::debug!(error = %e, "fsmeta: a pooled connection was lost; beginning on another");
                }
                Err(e) => return Err(db_error("begin", e)),
            }
        }
    }
}

/// One PostgreSQL transaction. Dropping SeaORM's `DatabaseTransaction`
/// without commit queues a `ROLLBACK` that runs before the connection is reused.
struct PgTx {
    tx: DatabaseTransaction,
}

#[async_trait]
impl FileStore for PgTx {
    async fn put_file(&mut self, file: &FileMeta) -> Result<()> {
        let op = "put_file";
        validate::file(file)?;
        let row = files::ActiveModel {
            handle: Set(file.handle.as_bytes().to_vec()),
            share_name: Set(file.share_name.clone()),
            kind: Set(i16::from(file.kind as u8)),
            mode: Set(file.mode.into()),
            uid: Set(file.uid.into()),
            gid: Set(file.gid.into()),
            nlink: Set(file.nlink.into()),
            size: Set(Decimal::from(file.size)),
            atime: Set(to_db_time("atime", file.atime)?),
            mtime: Set(to_db_time("mtime", file.mtime)?),
            ctime: Set(to_db_time("ctime", file.ctime)?),
        };
        use files::Column as C;
        files::Entity::insert(row)
            .on_conflict(
                OnConflict::column(C::Handle)
                    .update_columns([
                        C::ShareName,
                        C::Kind,
                        C::Mode,
                        C::Uid,
                        C::Gid,
                        C::Nlink,
                        C::Size,
                        C::Atime,
                        C::Mtime,
                        C::Ctime,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&self.tx)
            .await
            .map_err(|e| db_error(op, e))?;
        Ok(())
    }

    async fn get_file(&mut self, handle: &FileHandle) -> Result<Option<FileMeta>> {
        let op = "get_file";
        validate::file_handle(handle)?;
        let row = select_files()
            .filter(files::Column::Handle.eq(handle.as_bytes()))
            .one(&self.tx)
            .await
            .map_err(|e| db_error(op, e))?;
        row.map(file_from_row).transpose()
    }

    async fn delete_file(&mut self, handle: &FileHandle) -> Result<()> {
        validate::file_handle(handle)?;
        // "Missing" is learnt from the row count, never from a failing
        // statement: an error would abort the PostgreSQL transaction.
        let deleted = files::Entity::delete_many()
            .filter(files::Column::Handle.eq(handle.as_bytes()))
            .exec(&self.tx)
            .await
            .map_err(|e| db_error("delete_file", e))?;
        if deleted.rows_affected == 0 {
            return Err(Error::FileNotFound(handle.clone()));
        }
        Ok(())
    }

    async fn list_files(&mut self, share_name: &str) -> Result<Vec<FileMeta>> {
        validate::share_name(share_name)?;
        // BYTEA sorts bytewise, shorter first on a tie: the same order as `Vec<u8>`.
        select_files()
            .filter(files::Column::ShareName.eq(share_name))
            .order_by_asc(files::Column::Handle)
            .all(&self.tx)
            .await
            .map_err(|e| db_error("list_files", e))?
            .into_iter()
            .map(file_from_row)
            .collect()
    }

    async fn list_files_page(
        &mut self,
        after: Option<&FileHandle>,
        limit: usize,
    ) -> Result<Vec<FileMeta>> {
        validate::page_limit(limit)?;
        if let Some(after) = after {
            validate::file_handle(after)?;
        }
        let mut query = select_files();
        if let Some(after) = after {
            query = query.filter(files::Column::Handle.gt(after.as_bytes()));
        }
        query
            .order_by_asc(files::Column::Handle)
            .limit(page_size(limit))
            .all(&self.tx)
            .await
            .map_err(|e| db_error("list_files_page", e))?
            .into_iter()
            .map(file_from_row)
            .collect()
    }
}

#[async_trait]
impl LockStore for PgTx {
    async fn put_lock(&mut self, lock: &PersistedLock) -> Result<()> {
        validate::lock(lock)?;
        locks::Entity::insert(lock_row(lock)?)
            .on_conflict(lock_upsert())
            .exec_without_returning(&self.tx)
            .await
            .map_err(|e| db_error("put_lock", e))?;
        Ok(())
    }

    /// Multi-row `INSERT … ON CONFLICT (id) DO UPDATE`, [`LOCKS_PER_INSERT`]
    /// rows per statement. PostgreSQL refuses to update one row twice in a
    /// statement, so only the last lock of each id is sent (the same result
    /// as writing them in order).
    async fn put_locks(&mut self, locks: &[PersistedLock]) -> Result<()> {
        let mut rows = Vec::with_capacity(locks.len());
        let mut seen = std::collections::HashSet::with_capacity(locks.len());
        for lock in locks.iter().rev() {
            validate::lock(lock)?;
            if seen.insert(lock.id) {
                rows.push(lock_row(lock)?);
            }
        }
        rows.reverse();
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            locks::Entity::insert_many(rows.by_ref().take(LOCKS_PER_INSERT))
                .on_conflict(lock_upsert())
                .exec_without_returning(&self.tx)
                .await
                .map_err(|e| db_error("put_locks", e))?;
        }
        Ok(())
    }

    async fn get_lock(&mut self, id: Uuid) -> Result<Option<PersistedLock>> {
        let row = select_locks()
            .filter(locks::Column::Id.eq(id))
            .one(&self.tx)
            .await
            .map_err(|e| db_error("get_lock", e))?;
        row.map(lock_from_row).transpose()
    }

    async fn delete_lock(&mut self, id: Uuid) -> Result<()> {
        let deleted = locks::Entity::delete_many()
            .filter(locks::Column::Id.eq(id))
            .exec(&self.tx)
            .await
            .map_err(|e| db_error("delete_lock", e))?;
        if deleted.rows_affected == 0 {
            return Err(Error::LockNotFound(id));
        }
        Ok(())
    }

    async fn list_locks(&mut self, query: &LockQuery) -> Result<Vec<PersistedLock>> {
        validate::query(query)?;
        // UUIDs sort bytewise in PostgreSQL, like `Uuid`'s `Ord`.
        select_locks()
            .filter(lock_condition(query))
            .order_by_asc(locks::Column::Id)
            .all(&self.tx)
            .await
            .map_err(|e| db_error("list_locks", e))?
            .into_iter()
            .map(lock_from_row)
            .collect()
    }

    async fn list_locks_page(
        &mut self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<PersistedLock>> {
        validate::page_limit(limit)?;
        let mut query = select_locks();
        if let Some(after) = after {
            query = query.filter(locks::Column::Id.gt(after));
        }
        query
            .order_by_asc(locks::Column::Id)
            .limit(page_size(limit))
            .all(&self.tx)
            .await
            .map_err(|e| db_error("list_locks_page", e))?
            .into_iter()
            .map(lock_from_row)
            .collect()
    }

    async fn delete_locks_by_client(&mut self, client_id: &str) -> Result<u64> {
        validate::id("client_id", client_id)?;
        let deleted = locks::Entity::delete_many()
            .filter(locks::Column::ClientId.eq(client_id))
            .exec(&self.tx)
            .await
            .map_err(|e| db_error("delete_locks_by_client", e))?;
        Ok(deleted.rows_affected)
    }

    async fn delete_locks_by_file(&mut self, file: &FileHandle) -> Result<u64> {
        validate::file_handle(file)?;
        let deleted = locks::Entity::delete_many()
            .filter(locks::Column::FileId.eq(file.as_bytes()))
            .exec(&self.tx)
            .await
            .map_err(|e| db_error("delete_locks_by_file", e))?;
        Ok(deleted.rows_affected)
    }
}

#[async_trait]
impl NodeStore for PgTx {
    async fn server_epoch(&mut self) -> Result<u64> {
        let state = self.state("server_epoch").await?;
        u64_from_db("server_state.epoch", state.epoch)
    }

    async fn increment_server_epoch(&mut self) -> Result<u64> {
        let op = "increment_server_epoch";
        use server_state::Column as C;
        // One statement, so concurrent increments cannot lose one: under
        // SERIALIZABLE the second writer of the row gets 40001 and retries.
        // The `epoch < u64::MAX` guard keeps the CHECK from firing (which would
        // abort the transaction); a saturated epoch is reported below instead.
        let updated = server_state::Entity::update_many()
            .col_expr(C::Epoch, Expr::col(C::Epoch).add(1))
            .filter(C::Id.eq(server_state::ROW_ID))
            .filter(C::Epoch.lt(Decimal::from(u64::MAX)))
            .exec_with_returning(&self.tx)
            .await
            .map_err(|e| db_error(op, e))?;
        match updated.into_iter().next() {
            Some(row) => u64_from_db("server_state.epoch", row.epoch),
            None => {
                let state = self.state(op).await?;
                if u64_from_db("server_state.epoch", state.epoch)? == u64::MAX {
                    Err(Error::EpochExhausted)
                } else {
                    Err(Error::Corrupt(
                        "server_state: the epoch row was not updated".into(),
                    ))
                }
            }
        }
    }

    async fn advance_server_epoch(&mut self, at_least: u64) -> Result<u64> {
        let op = "advance_server_epoch";
        use server_state::Column as C;
        // One conditional UPDATE: it writes only when the counter is below
        // `at_least`, and its read of the row takes part in SERIALIZABLE
        // conflict detection like `increment_server_epoch`'s.
        let updated = server_state::Entity::update_many()
            .col_expr(C::Epoch, Expr::value(Decimal::from(at_least)))
            .filter(C::Id.eq(server_state::ROW_ID))
            .filter(C::Epoch.lt(Decimal::from(at_least)))
            .exec_with_returning(&self.tx)
            .await
            .map_err(|e| db_error(op, e))?;
        match updated.into_iter().next() {
            Some(row) => u64_from_db("server_state.epoch", row.epoch),
            None => u64_from_db("server_state.epoch", self.state(op).await?.epoch),
        }
    }

    async fn get_node(&mut self, node_id: &str) -> Result<Option<NodeState>> {
        validate::id("node_id", node_id)?;
        nodes::Entity::find_by_id(node_id.to_owned())
            .one(&self.tx)
            .await
            .map_err(|e| db_error("get_node", e))?
            .map(node_from_row)
            .transpose()
    }

    async fn put_node(&mut self, node: &NodeState) -> Result<()> {
        validate::node(node)?;
        let row = nodes::ActiveModel {
            node_id: Set(node.node_id.clone()),
            epoch: Set(Decimal::from(node.epoch)),
            clean_shutdown: Set(node.clean_shutdown),
        };
        use nodes::Column as C;
        nodes::Entity::insert(row)
            .on_conflict(
                OnConflict::column(C::NodeId)
                    .update_columns([C::Epoch, C::CleanShutdown])
                    .to_owned(),
            )
            .exec_without_returning(&self.tx)
            .await
            .map_err(|e| db_error("put_node", e))?;
        Ok(())
    }

    async fn list_nodes(&mut self) -> Result<Vec<NodeState>> {
        // `node_id` is in the C collation: bytewise order, like `String`'s.
        nodes::Entity::find()
            .order_by_asc(nodes::Column::NodeId)
            .all(&self.tx)
            .await
            .map_err(|e| db_error("list_nodes", e))?
            .into_iter()
            .map(node_from_row)
            .collect()
    }

    async fn put_epoch_record(&mut self, record: &EpochRecord) -> Result<()> {
        validate::epoch_record(record)?;
        let row = epoch_records::ActiveModel {
            epoch: Set(Decimal::from(record.epoch)),
            node_id: Set(record.node_id.clone()),
            started_at: Set(to_db_time("started_at", record.started_at)?),
        };
        use epoch_records::Column as C;
        epoch_records::Entity::insert(row)
            .on_conflict(
                OnConflict::column(C::Epoch)
                    .update_columns([C::NodeId, C::StartedAt])
                    .to_owned(),
            )
            .exec_without_returning(&self.tx)
            .await
            .map_err(|e| db_error("put_epoch_record", e))?;
        Ok(())
    }

    async fn list_epoch_records(&mut self) -> Result<Vec<EpochRecord>> {
        use epoch_records::Column as C;
        epoch_records::Entity::find()
            .select_only()
            .columns([C::Epoch, C::NodeId])
            .expr_as(checked_time(C::StartedAt), "started_at")
            .order_by_asc(C::Epoch)
            .all(&self.tx)
            .await
            .map_err(|e| db_error("list_epoch_records", e))?
            .into_iter()
            .map(epoch_record_from_row)
            .collect()
    }
}

impl PgTx {
    /// The `server_state` row; `Corrupt` when it was deleted.
    async fn state(&self, op: &'static str) -> Result<server_state::Model> {
        server_state::Entity::find_by_id(server_state::ROW_ID)
            .one(&self.tx)
            .await
            .map_err(|e| db_error(op, e))?
            .ok_or_else(missing_state)
    }
}

#[async_trait]
impl MetadataTransaction for PgTx {
    async fn commit(self: Box<Self>) -> Result<()> {
        // Serialization failures are often detected only here (SSI checks
        // dangerous structures at commit): they are `Conflict` like on a statement.
        self.tx.commit().await.map_err(|e| db_error("commit", e))
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        self.tx
            .rollback()
            .await
            .map_err(|e| db_error("rollback", e))
    }
}

// ---------------------------------------------------------------------------
// Queries

/// Rows per statement of [`LockStore::put_locks`]: 11 bind parameters each,
/// far below PostgreSQL's 65,535 per statement.
const LOCKS_PER_INSERT: usize = 1000;

/// The `locks` row of a (validated) lock.
fn lock_row(lock: &PersistedLock) -> Result<locks::ActiveModel> {
    Ok(locks::ActiveModel {
        id: Set(lock.id),
        share_name: Set(lock.share_name.clone()),
        file_id: Set(lock.file_id.as_bytes().to_vec()),
        owner_id: Set(lock.owner_id.clone()),
        client_id: Set(lock.client_id.clone()),
        lock_type: Set(i16::from(lock.lock_type as u8)),
        offset: Set(Decimal::from(lock.offset)),
        length: Set(Decimal::from(lock.length)),
        share_reservation: Set(i16::from(lock.share_reservation as u8)),
        acquired_at: Set(to_db_time("acquired_at", lock.acquired_at)?),
        server_epoch: Set(Decimal::from(lock.server_epoch)),
    })
}

/// `ON CONFLICT (id) DO UPDATE` of every other column: `put_lock` is an upsert.
fn lock_upsert() -> OnConflict {
    use locks::Column as C;
    OnConflict::column(C::Id)
        .update_columns([
            C::ShareName,
            C::FileId,
            C::OwnerId,
            C::ClientId,
            C::LockType,
            C::Offset,
            C::Length,
            C::ShareReservation,
            C::AcquiredAt,
            C::ServerEpoch,
        ])
        .to_owned()
}

/// The filters of a [`LockQuery`], ANDed; no filter matches every lock.
fn lock_condition(query: &LockQuery) -> Condition {
    use locks::Column as C;
    Condition::all()
        .add_option(query.file_id.as_ref().map(|f| C::FileId.eq(f.as_bytes())))
        .add_option(query.owner_id.as_deref().map(|o| C::OwnerId.eq(o)))
        .add_option(query.client_id.as_deref().map(|c| C::ClientId.eq(c)))
        .add_option(query.share_name.as_deref().map(|s| C::ShareName.eq(s)))
        .add_option(
            query
                .server_epoch_below
                .map(|e| C::ServerEpoch.lt(Decimal::from(e))),
        )
}

/// `SELECT` of `files` whose timestamps read as NULL when outside the years
/// 1..=9999 (see [`checked_time`]).
fn select_files() -> Select<files::Entity> {
    use files::Column as C;
    files::Entity::find()
        .select_only()
        .columns([
            C::Handle,
            C::ShareName,
            C::Kind,
            C::Mode,
            C::Uid,
            C::Gid,
            C::Nlink,
            C::Size,
        ])
        .expr_as(checked_time(C::Atime), "atime")
        .expr_as(checked_time(C::Mtime), "mtime")
        .expr_as(checked_time(C::Ctime), "ctime")
}

/// `SELECT` of `locks`, with `acquired_at` checked like [`select_files`].
fn select_locks() -> Select<locks::Entity> {
    use locks::Column as C;
    locks::Entity::find()
        .select_only()
        .columns([
            C::Id,
            C::ShareName,
            C::FileId,
            C::OwnerId,
            C::ClientId,
            C::LockType,
            C::Offset,
            C::Length,
            C::ShareReservation,
            C::ServerEpoch,
        ])
        .expr_as(checked_time(C::AcquiredAt), "acquired_at")
}

/// `CASE WHEN col BETWEEN <year 1> AND <year 9999> THEN col END`.
///
/// The migration's CHECKs keep other timestamps out, but a row written with
/// them disabled could hold `infinity` or a year past chrono's range, which
/// the driver cannot decode (it panics). Reading those as NULL turns them into
/// a decode error, reported as [`Error::Corrupt`].
fn checked_time<C: ColumnTrait>(col: C) -> sea_orm::sea_query::Expr {
    let lo = to_db_time("", Timestamp::MIN_VALID).expect("MIN_VALID is a valid timestamp");
    let hi = to_db_time("", Timestamp::MAX_VALID).expect("MAX_VALID is a valid timestamp");
    Expr::case(col.between(lo, hi), Expr::col((col.entity_name(), col))).into()
}

// ---------------------------------------------------------------------------
// Conversions: every stored value is checked against the model, so a row
// edited by hand is `Corrupt`, never a panic or a silently wrong value.

fn file_from_row(row: files::Model) -> Result<FileMeta> {
    let file = FileMeta {
        handle: handle_from_db("files.handle", row.handle)?,
        share_name: row.share_name,
        kind: small_enum::<FileKind>("files.kind", row.kind)?,
        mode: u32_from_db("files.mode", row.mode)?,
        uid: u32_from_db("files.uid", row.uid)?,
        gid: u32_from_db("files.gid", row.gid)?,
        nlink: u32_from_db("files.nlink", row.nlink)?,
        size: u64_from_db("files.size", row.size)?,
        atime: time_from_db(row.atime),
        mtime: time_from_db(row.mtime),
        ctime: time_from_db(row.ctime),
    };
    validate::file(&file).map_err(stored("files"))?;
    Ok(file)
}

fn lock_from_row(row: locks::Model) -> Result<PersistedLock> {
    let lock = PersistedLock {
        id: row.id,
        share_name: row.share_name,
        file_id: handle_from_db("locks.file_id", row.file_id)?,
        owner_id: row.owner_id,
        client_id: row.client_id,
        lock_type: small_enum::<LockType>("locks.lock_type", row.lock_type)?,
        offset: u64_from_db("locks.offset", row.offset)?,
        length: u64_from_db("locks.length", row.length)?,
        share_reservation: small_enum::<ShareReservation>(
            "locks.share_reservation",
            row.share_reservation,
        )?,
        acquired_at: time_from_db(row.acquired_at),
        server_epoch: u64_from_db("locks.server_epoch", row.server_epoch)?,
    };
    validate::lock(&lock).map_err(stored("locks"))?;
    Ok(lock)
}

fn node_from_row(row: nodes::Model) -> Result<NodeState> {
    let node = NodeState {
        node_id: row.node_id,
        epoch: u64_from_db("nodes.epoch", row.epoch)?,
        clean_shutdown: row.clean_shutdown,
    };
    validate::node(&node).map_err(stored("nodes"))?;
    Ok(node)
}

fn epoch_record_from_row(row: epoch_records::Model) -> Result<EpochRecord> {
    let record = EpochRecord {
        epoch: u64_from_db("epoch_records.epoch", row.epoch)?,
        node_id: row.node_id,
        started_at: time_from_db(row.started_at),
    };
    validate::epoch_record(&record).map_err(stored("epoch_records"))?;
    Ok(record)
}

/// A page size for `LIMIT`: PostgreSQL takes a BIGINT, and the driver cannot
/// bind a u64 above `i64::MAX`; no page is that large anyway.
fn page_size(limit: usize) -> u64 {
    Ord::min(u64::try_from(limit).unwrap_or(u64::MAX), i64::MAX as u64)
}

/// Maps a validation failure of a stored record to `Corrupt`.
fn stored(table: &'static str) -> impl Fn(Error) -> Error {
    move |e| match e {
        Error::Invalid(why) => Error::Corrupt(format!("{table}: stored row: {why}")),
        other => other,
    }
}

fn handle_from_db(column: &str, bytes: Vec<u8>) -> Result<FileHandle> {
    FileHandle::new(bytes).map_err(|e| Error::Corrupt(format!("{column}: {e}")))
}

/// A `SMALLINT` enum column (kind, lock type, share reservation).
fn small_enum<T: TryFrom<u8, Error = Error>>(column: &str, value: i16) -> Result<T> {
    let byte = u8::try_from(value)
        .map_err(|_| Error::Corrupt(format!("{column}: {value} is out of range")))?;
    T::try_from(byte).map_err(|e| match e {
        Error::Corrupt(why) => Error::Corrupt(format!("{column}: {why}")),
        other => other,
    })
}

fn u32_from_db(column: &str, value: i64) -> Result<u32> {
    u32::try_from(value).map_err(|_| Error::Corrupt(format!("{column}: {value} is not a u32")))
}

fn u64_from_db(column: &str, value: Decimal) -> Result<u64> {
    if !value.is_integer() {
        return Err(Error::Corrupt(format!(
            "{column}: {value} is not an integer"
        )));
    }
    u64::try_from(value).map_err(|_| Error::Corrupt(format!("{column}: {value} is not a u64")))
}

fn time_from_db(value: DateTimeUtc) -> Timestamp {
    // Exact: PostgreSQL keeps microseconds, and `checked_time` let only
    // years 1..=9999 through (the caller's `validate` checks it again).
    Timestamp::from_micros(value.timestamp_micros())
}

fn to_db_time(field: &str, value: Timestamp) -> Result<DateTimeUtc> {
    DateTimeUtc::from_timestamp_micros(value.as_micros()).ok_or_else(|| {
        Error::Invalid(format!(
            "{field}: {} µs is not a representable instant",
            value.as_micros()
        ))
    })
}

fn missing_state() -> Error {
    Error::Corrupt("server_state: the row (id = 1) is missing".into())
}

// ---------------------------------------------------------------------------
// Errors

/// SQLSTATE `serialization_failure`.
const SERIALIZATION_FAILURE: &str = "40001";
/// SQLSTATE `deadlock_detected`.
const DEADLOCK_DETECTED: &str = "40P01";

/// Classifies a SeaORM error: serialization failures and deadlocks are
/// [`Error::Conflict`] (retry the transaction), undecodable stored values
/// [`Error::Corrupt`], everything else [`Error::Backend`] naming `op`.
///
/// `DbErr::sql_err()` recognizes only unique and foreign-key violations, so
/// the SQLSTATE is read from the sqlx database error itself, wherever in the
/// error chain SeaORM put it (`DbErr::Exec` for statements, `DbErr::Query`
/// for queries and for `COMMIT`).
fn db_error(op: &'static str, e: DbErr) -> Error {
    if let Some(code) = sqlstate(&e)
        && (code == SERIALIZATION_FAILURE || code == DEADLOCK_DETECTED)
    {
        return Error::Conflict(format!("{op}: {e}"));
    }
    if is_decode_error(&e) {
        return Error::Corrupt(format!("{op}: a stored value cannot be decoded: {e}"));
    }
    Error::backend(op, e)
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
fn sqlstate(e: &DbErr) -> Option<String> {
    if let Some(sea_orm::sqlx::Error::Database(db)) = sqlx_error(e) {
        return db.code().map(|c| c.into_owned());
    }
    // Any other wrapping: walk the source chain to the driver's error.
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(sea_orm::sqlx::Error::Database(db)) = err.downcast_ref::<sea_orm::sqlx::Error>()
        {
            return db.code().map(|c| c.into_owned());
        }
        if let Some(pg) = err.downcast_ref::<sea_orm::sqlx::postgres::PgDatabaseError>() {
            return Some(pg.code().to_owned());
        }
        source = err.source();
    }
    None
}

/// True when `e` says the connection itself is gone: an I/O error, or the
/// server ending the session (SQLSTATE class `08`, connection exception, or
/// `57P01`..`57P03`: terminated by an administrator, crash shutdown, cannot
/// connect now).
fn is_connection_lost(e: &DbErr) -> bool {
    match sqlx_error(e) {
        Some(sea_orm::sqlx::Error::Io(_)) => true,
        _ => sqlstate(e).is_some_and(|code| {
            code.starts_with("08") || matches!(code.as_str(), "57P01" | "57P02" | "57P03")
        }),
    }
}

/// True for a stored value the driver could not turn into its Rust type
/// (NUMERIC `NaN`, a NULL from [`checked_time`], …).
fn is_decode_error(e: &DbErr) -> bool {
    match e {
        DbErr::Type(_) | DbErr::TryIntoErr { .. } => true,
        _ => matches!(
            sqlx_error(e),
            Some(sea_orm::sqlx::Error::ColumnDecode { .. } | sea_orm::sqlx::Error::Decode(_))
        ),
    }
}

// ---------------------------------------------------------------------------
// Schema names

/// A schema name: 1..=63 bytes (PostgreSQL's identifier limit, beyond which
/// it silently truncates), no NUL.
fn validate_schema_name(schema: &str) -> Result<()> {
    if schema.is_empty() || schema.len() > 63 || schema.contains('\0') {
        return Err(Error::Invalid(format!(
            "schema: {schema:?} must be 1 to 63 bytes without NUL"
        )));
    }
    Ok(())
}

/// `name` as a quoted SQL identifier: `"…"` with every `"` doubled.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
