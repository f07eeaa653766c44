//! The PostgreSQL backend: several file servers share one database.
//!
//! Built on SeaORM (sqlx underneath); the schema comes from the `migration`
//! crate (sea-orm-migration). [`PostgresStore::connect`] runs its expand
//! migrations at start-up, which only add; the contract migrations, which
//! drop what older releases still use, run only when an operator calls
//! [`PostgresStore::contract`] after upgrading every server (a rolling
//! upgrade never breaks a server that is not upgraded yet).
//!
//! # Isolation
//!
//! Every transaction runs at `SERIALIZABLE`. The level is a connection
//! start-up parameter (`default_transaction_isolation`), so `BEGIN` is the only
//! statement a transaction starts with (no `SET TRANSACTION`), and it is sent
//! with the transaction's first statement (see `batch`). PostgreSQL's
//! serializable snapshot isolation never blocks readers; when it cannot order
//! two transactions it fails one with SQLSTATE `40001` (or `40P01` for a
//! deadlock). Both become [`crate::Error::Conflict`], on any statement or at commit,
//! and [`crate::MetadataStoreExt::transact`] retries them.
//!
//! # Column types
//!
//! u64 fields are `NUMERIC(20,0)` with a range CHECK (`BIGINT` stops at
//! 2^63 - 1), u32 fields `BIGINT` with a range CHECK, enums `SMALLINT`, file
//! handles `BYTEA`, timestamps `TIMESTAMPTZ` (microseconds, exact). The
//! migration's module docs give the reasons.
//!
//! # Extension tables and the host's own tables
//!
//! [`crate::ExtStore`] keeps every extension table in one table,
//! `ext_records(table_name TEXT COLLATE "C", key BYTEA, value BYTEA,
//! PRIMARY KEY (table_name, key))`, with CHECKs mirroring the limits; a
//! scan is one range of the primary key, so SERIALIZABLE covers it.
//!
//! A host with its own typed schema runs its own SeaORM statements in an
//! fsmeta transaction through [`native`] (rules there), and keeps fsmeta's
//! tables in its schema by listing [`PostgresStore::migrations`] first in its
//! own sea-orm-migration `Migrator` (one history table); it then connects
//! with [`PgOptions::migrate`] off, or on (fsmeta applies only its own
//! missing migrations and ignores the host's records). `examples/sea_orm_host.rs`
//! shows both.
//!
//! # Durability
//!
//! A commit returns after PostgreSQL has flushed its WAL (`synchronous_commit
//! = on`, the server default): a committed transaction survives a crash of
//! the client, the server, or the machine, as far as the server's storage
//! honours fsync. [`PgOptions::synchronous_commit`] = `false` trades that for
//! latency: a server crash may then lose the last few hundred milliseconds of
//! commits (never part of one).
//!
//! # Layout
//!
//! - `connect`: [`PgOptions`], [`PostgresStore`] (connect, migrate, close, begin);
//! - `batch`: [`TxConnection`], the transaction's connection: begun with its
//!   first message, writes held back and sent with the next one;
//! - `savepoint`: [`Savepoint`], nested work for a host's statements;
//! - `tx`: the transaction, `commit`/`rollback`, and the rule that a
//!   transaction the server aborted never commits;
//! - `files`, `locks`, `nodes`, `ext`: one record family each;
//! - `rows`: rows ↔ model, the checked column reads;
//! - `errors`: SQLSTATEs and the mapping of driver errors;
//! - `native`: [`native`], the SeaORM transaction for the host's own statements;
//! - `verify`: the row-by-row check of a whole store;
//! - `entity`: the SeaORM entities, one per table.

mod batch;
mod clients;
mod connect;
mod entity;
mod errors;
mod ext;
mod files;
mod leases;
mod locks;
mod native;
mod nodes;
mod opens;
mod rows;
mod savepoint;
mod tx;
mod verify;
mod waiters;

pub use batch::TxConnection;
pub use connect::{PgOptions, PostgresStore};
pub use errors::{UNDEFINED_TABLE, sqlstate_of};
pub use native::{host_error, native};
pub use savepoint::Savepoint;
