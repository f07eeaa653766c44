//! Schema migrations for fsmeta's PostgreSQL backend.
//!
//! [`Migrator`] is what `fsmeta::PostgresStore::connect` runs at start-up; the
//! `migration` binary (feature `cli`) runs the same migrations by hand:
//!
//! ```text
//! DATABASE_URL=postgres://user@host/db cargo run -p migration --features cli -- up
//! DATABASE_URL=postgres://user@host/db cargo run -p migration --features cli -- -s my_schema status
//! ```
//!
//! Migrations are append-only: a released migration is never edited, a schema
//! change is a new `mYYYYMMDD_HHMMSS_*.rs` file added to the end of
//! [`Migrator::migrations`].
pub use sea_orm_migration::prelude::*;

mod columns;
mod m20261127_000001_create_tables;
mod m20261127_000002_nodes;

/// The node that owns a store written before nodes existed (`fsmeta::DEFAULT_NODE`;
/// a test checks they agree): migration 2 gives it the store's epoch and
/// clean-shutdown flag.
pub const LEGACY_NODE_ID: &str = "default";

/// The ordered list of fsmeta's migrations.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261127_000001_create_tables::Migration),
            Box::new(m20261127_000002_nodes::Migration),
        ]
    }
}
