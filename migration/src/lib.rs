//! Schema migrations for fsmeta's PostgreSQL backend, in two sets
//! (expand/contract), so that a cluster can be upgraded one server at a time.
//!
//! Published as the package `fsmeta-migration`; the library keeps the name
//! `migration` (`use migration::Migrator;`). A host that includes fsmeta's
//! migrations in its own `Migrator` depends on it as
//! `migration = { package = "fsmeta-migration", version = "0.1" }`, or under
//! any other key, and uses the name it chose.
//!
//! - [`Migrator`], the **expand** set, is what `fsmeta::PostgresStore::connect`
//!   runs at start-up. Its migrations only add (tables, columns, indexes,
//!   copied data), or replace an index with one that serves the same
//!   queries (migration 10): servers of the previous release keep working
//!   on the expanded schema.
//! - [`ContractMigrator`], the **contract** set, removes what the expand set
//!   replaced (a column an older release still reads). Nothing runs it
//!   implicitly: an operator runs it once every server is upgraded
//!   (`fsmeta::PostgresStore::contract`, or the `contract` binary below). It
//!   keeps its own history table, [`CONTRACT_TABLE`], so the two sets never
//!   disturb each other.
//!
//! The `migration` binary (feature `cli`) runs the expand set by hand, the
//! `contract` binary the contract set (both take sea-orm-migration's
//! arguments: `up`, `down`, `status`, `-s SCHEMA`, `-u URL`):
//!
//! ```text
//! DATABASE_URL=postgres://user@host/db cargo run -p fsmeta-migration --features cli -- up
//! DATABASE_URL=postgres://user@host/db cargo run -p fsmeta-migration --features cli -- -s my_schema status
//! DATABASE_URL=postgres://user@host/db cargo run -p fsmeta-migration --features cli --bin contract -- -s my_schema up
//! ```
//!
//! # In a host's own `Migrator`
//!
//! A host with its own sea-orm-migration schema keeps fsmeta's tables in it,
//! with one history table, by listing fsmeta's migrations before its own
//! (`fsmeta::PostgresStore::migrations()` returns [`Migrator::migrations`]):
//!
//! ```ignore
//! struct HostMigrator;
//! impl MigratorTrait for HostMigrator {
//!     fn migrations() -> Vec<Box<dyn MigrationTrait>> {
//!         let mut all = fsmeta::PostgresStore::migrations();
//!         all.push(Box::new(m20270101_000001_create_inodes::Migration));
//!         all
//!     }
//! }
//! ```
//!
//! `HostMigrator::up` then creates both; fsmeta connects with
//! `PgOptions { migrate: false, .. }` (or with `migrate: true`: it applies
//! only fsmeta's missing migrations, see [`apply_pending`], and leaves the
//! host's records alone; with a history table of another name than
//! `seaql_migrations`, use `migrate: false`). A new fsmeta release's
//! migrations join the list and run at the host's next `up`. The contract
//! set ([`ContractMigrator`]) keeps its own table and stays fsmeta's to run.
//! On such a schema, run the host's migration CLI, not this crate's
//! `migration` binary: sea-orm-migration's own `up`/`status` refuse a
//! history table that records migrations they do not list (the host's).
//!
//! Migrations are append-only: a released migration is never edited, a schema
//! change is a new `mYYYYMMDD_HHMMSS_*.rs` file added to the end of
//! [`Migrator::migrations`] (it adds) or [`ContractMigrator::migrations`] (it
//! drops; and the expand migration that made the drop possible comes first).
//! The one exception, migration 2, lost its column drop to the contract set
//! because running it at connect broke rolling upgrades.
pub use sea_orm_migration::prelude::*;

mod columns;
mod m20261127_000001_create_tables;
mod m20261127_000002_nodes;
mod m20261201_000003_drop_server_state_clean_shutdown;
mod m20261201_000004_ext_records;
mod m20261201_000005_lock_flavor;
mod m20261202_000006_node_leases;
mod m20261202_000007_client_records;
mod m20261202_000008_opens_leases;
mod m20261202_000009_waiters;
mod m20261202_000010_lock_query_indexes;

/// The node that owns a store written before nodes existed (`fsmeta::DEFAULT_NODE`;
/// a test checks they agree): migration 2 gives it the store's epoch and
/// clean-shutdown flag.
pub const LEGACY_NODE_ID: &str = "default";

/// The history table of [`ContractMigrator`] (the expand set's is
/// sea-orm-migration's default, `seaql_migrations`).
pub const CONTRACT_TABLE: &str = "fsmeta_contract_migrations";

/// The expand set: the ordered list of fsmeta's migrations that only add,
/// run at every connect.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261127_000001_create_tables::Migration),
            Box::new(m20261127_000002_nodes::Migration),
            Box::new(m20261201_000004_ext_records::Migration),
            Box::new(m20261201_000005_lock_flavor::Migration),
            Box::new(m20261202_000006_node_leases::Migration),
            Box::new(m20261202_000007_client_records::Migration),
            Box::new(m20261202_000008_opens_leases::Migration),
            Box::new(m20261202_000009_waiters::Migration),
            Box::new(m20261202_000010_lock_query_indexes::Migration),
        ]
    }
}

/// Applies the migrations of `M` that its history table does not record
/// yet, in order, each in a savepoint of the transaction `db`, and records
/// each. Unlike [`MigratorTrait::up`], versions
/// recorded in the table that `M` does not list are no error: they are the
/// host's own migrations, when the host's `Migrator` includes fsmeta's and
/// shares the history table, or a newer fsmeta release's (an older server
/// restarting during a rolling upgrade). This is what
/// `fsmeta::PostgresStore::migrate` runs.
pub async fn apply_pending<M: MigratorTrait>(
    db: &sea_orm::DatabaseTransaction,
) -> Result<(), DbErr> {
    use sea_orm::TransactionTrait;

    let applied: std::collections::HashSet<String> = M::get_migration_models(db)
        .await?
        .into_iter()
        .map(|m| m.version)
        .collect();
    for migration in M::migrations() {
        if applied.contains(migration.name()) {
            continue;
        }
        let tx = db.begin().await?;
        let manager = SchemaManager::new(&tx);
        migration.up(&manager).await?;
        let applied_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        // The row sea-orm-migration itself writes: (version, applied_at).
        let record = Query::insert()
            .into_table(M::migration_table_name())
            .columns([Alias::new("version"), Alias::new("applied_at")])
            .values([migration.name().into(), applied_at.into()])
            .map_err(|e| DbErr::Migration(e.to_string()))?
            .to_owned();
        manager.exec_stmt(record).await?;
        tx.commit().await?;
    }
    Ok(())
}

/// The contract set: the ordered list of migrations that drop what an older
/// release still uses, run only when an operator asks, after every server of
/// the cluster was upgraded. Each checks that the expand migrations it
/// depends on have run.
pub struct ContractMigrator;

#[async_trait::async_trait]
impl MigratorTrait for ContractMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(
            m20261201_000003_drop_server_state_clean_shutdown::Migration,
        )]
    }

    fn migration_table_name() -> DynIden {
        Alias::new(CONTRACT_TABLE).into_iden()
    }
}
