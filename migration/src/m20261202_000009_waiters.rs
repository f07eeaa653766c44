//! Waiters (blocked lock requests, `fsmeta::Waiter`) and the wake-up
//! notifications of freed locks.
//!
//! ```sql
//! CREATE TABLE waiters (
//!     id UUID PRIMARY KEY,
//!     file_id BYTEA NOT NULL CHECK (octet_length(file_id) BETWEEN 1 AND 128),
//!     share_name TEXT NOT NULL CHECK (octet_length(share_name) BETWEEN 1 AND 255),
//!     owner_id, client_id, node_id: TEXT NOT NULL, 1..=1024 bytes,
//!     lock_type SMALLINT 0..=1, "offset"/length NUMERIC(20,0) 0..=u64::MAX,
//!     share_reservation SMALLINT 0..=3, flavor SMALLINT 0..=1,
//!     position NUMERIC(20,0) 0..=u64::MAX, since TIMESTAMPTZ (years 1..=9999),
//!     context BYTEA NOT NULL CHECK (octet_length(context) <= 1024)
//! );
//! CREATE INDEX waiters_file_idx ON waiters (file_id, position, id);  -- a file's queue
//! CREATE INDEX waiters_owner_idx ON waiters (owner_id, client_id);   -- the wait-for graph
//! CREATE INDEX waiters_client_idx ON waiters (client_id);
//! CREATE INDEX waiters_node_idx ON waiters (node_id);
//! ```
//!
//! Wake-ups: one statement-level trigger on `locks` and one on `waiters`
//! (`AFTER DELETE … REFERENCING OLD TABLE`) run `fsmeta_notify_freed()`,
//! which sends one `pg_notify` per distinct file the statement deleted rows
//! of, on channel `fsmeta_wake_` || md5(the table's schema) (so stores in
//! different schemas of one database never hear each other), payload the
//! file handle in hex. A notification sent inside a transaction is
//! delivered when it commits, never if it rolls back; identical ones of one
//! transaction are folded into one. The trigger adds no round trip: it runs
//! inside the `DELETE`.
//!
//! An expand migration: it only adds a table, a function and two triggers.
//! Servers of the previous release never read `waiters`; their deletes of
//! locks now also notify, which nobody of theirs listens to. `down` drops
//! all of it.
use sea_orm_migration::prelude::*;

/// Creates `waiters`, its indexes, `fsmeta_notify_freed()` and its triggers.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// Constant DDL: nothing from outside is spliced into it.
const UP: &[&str] = &[
    r#"CREATE TABLE IF NOT EXISTS waiters (
        id UUID NOT NULL CONSTRAINT waiters_pkey PRIMARY KEY,
        file_id BYTEA NOT NULL CONSTRAINT waiters_file_id_check CHECK (octet_length(file_id) BETWEEN 1 AND 128),
        share_name TEXT NOT NULL CONSTRAINT waiters_share_name_check CHECK (octet_length(share_name) BETWEEN 1 AND 255),
        owner_id TEXT NOT NULL CONSTRAINT waiters_owner_id_check CHECK (octet_length(owner_id) BETWEEN 1 AND 1024),
        client_id TEXT NOT NULL CONSTRAINT waiters_client_id_check CHECK (octet_length(client_id) BETWEEN 1 AND 1024),
        node_id TEXT COLLATE "C" NOT NULL CONSTRAINT waiters_node_id_check CHECK (octet_length(node_id) BETWEEN 1 AND 1024),
        lock_type SMALLINT NOT NULL CONSTRAINT waiters_lock_type_check CHECK (lock_type BETWEEN 0 AND 1),
        "offset" NUMERIC(20,0) NOT NULL CONSTRAINT waiters_offset_check CHECK ("offset" BETWEEN 0 AND 18446744073709551615),
        length NUMERIC(20,0) NOT NULL CONSTRAINT waiters_length_check CHECK (length BETWEEN 0 AND 18446744073709551615),
        share_reservation SMALLINT NOT NULL CONSTRAINT waiters_share_reservation_check CHECK (share_reservation BETWEEN 0 AND 3),
        flavor SMALLINT NOT NULL CONSTRAINT waiters_flavor_check CHECK (flavor BETWEEN 0 AND 1),
        position NUMERIC(20,0) NOT NULL CONSTRAINT waiters_position_check CHECK (position BETWEEN 0 AND 18446744073709551615),
        since TIMESTAMPTZ NOT NULL CONSTRAINT waiters_since_check CHECK (since BETWEEN TIMESTAMPTZ '0001-01-01 00:00:00+00' AND TIMESTAMPTZ '9999-12-31 23:59:59.999999+00'),
        context BYTEA NOT NULL CONSTRAINT waiters_context_check CHECK (octet_length(context) <= 1024)
    )"#,
    "CREATE INDEX IF NOT EXISTS waiters_file_idx ON waiters (file_id, position, id)",
    "CREATE INDEX IF NOT EXISTS waiters_owner_idx ON waiters (owner_id, client_id)",
    "CREATE INDEX IF NOT EXISTS waiters_client_idx ON waiters (client_id)",
    "CREATE INDEX IF NOT EXISTS waiters_node_idx ON waiters (node_id)",
    r#"CREATE OR REPLACE FUNCTION fsmeta_notify_freed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('fsmeta_wake_' || md5(TG_TABLE_SCHEMA), encode(f.file_id, 'hex'))
        FROM (SELECT DISTINCT file_id FROM freed) AS f;
        RETURN NULL;
    END
    $$"#,
    "DROP TRIGGER IF EXISTS locks_notify_freed ON locks",
    "CREATE TRIGGER locks_notify_freed AFTER DELETE ON locks REFERENCING OLD TABLE AS freed \
     FOR EACH STATEMENT EXECUTE FUNCTION fsmeta_notify_freed()",
    "DROP TRIGGER IF EXISTS waiters_notify_freed ON waiters",
    "CREATE TRIGGER waiters_notify_freed AFTER DELETE ON waiters REFERENCING OLD TABLE AS freed \
     FOR EACH STATEMENT EXECUTE FUNCTION fsmeta_notify_freed()",
];

/// The inverse of [`UP`].
const DOWN: &[&str] = &[
    "DROP TRIGGER IF EXISTS locks_notify_freed ON locks",
    "DROP TABLE IF EXISTS waiters",
    "DROP FUNCTION IF EXISTS fsmeta_notify_freed()",
];

async fn run(manager: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    let db = manager.get_connection();
    for statement in statements {
        db.execute_unprepared(statement).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, DOWN).await
    }
}
