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

mod m20261127_000001_create_tables;

/// The ordered list of fsmeta's migrations.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261127_000001_create_tables::Migration)]
    }
}
