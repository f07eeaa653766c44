//! Lock indexes shaped for the lock queries: `(column, id)` in place of
//! `(column)` for each `LockQuery` filter.
//!
//! ```sql
//! CREATE INDEX IF NOT EXISTS locks_file_id_id_idx ON locks (file_id, id);
//! CREATE INDEX IF NOT EXISTS locks_owner_id_id_idx ON locks (owner_id, id);
//! CREATE INDEX IF NOT EXISTS locks_client_id_id_idx ON locks (client_id, id);
//! CREATE INDEX IF NOT EXISTS locks_share_name_id_idx ON locks (share_name, id);
//! CREATE INDEX IF NOT EXISTS locks_server_epoch_id_idx ON locks (server_epoch, id);
//! DROP INDEX IF EXISTS locks_file_id_idx, locks_owner_id_idx, locks_client_id_idx,
//!     locks_share_name_idx, locks_server_epoch_idx;
//! ```
//!
//! Why: every lock list query filters on one of these columns and returns
//! the rows `ORDER BY id` (`list_locks`), so with `(column)` alone PostgreSQL
//! reads the matching rows and sorts them; with `(column, id)` an index scan
//! returns them in id order already, with no `Sort` node (for an epoch, a
//! share or a big client that sort was of thousands of rows). The equality
//! lookups and bulk deletes by a column (`delete_locks_by_client`, by file)
//! use the new index's leading column as they used the old index, and the
//! predicate (SIRead) locks SERIALIZABLE takes stay on the pages of that
//! column's value, so the single-column indexes are redundant and go: one
//! index per column to keep up to date on every lock write, not two.
//!
//! An expand migration, though it drops indexes: no query of any release
//! depends on an index by name, and the previous release's queries are the
//! same ones, which the new indexes serve at least as well; so servers of
//! the previous release keep working, and faster. The new indexes are built
//! before the old ones are dropped, so no moment is without one. `down`
//! builds the single-column indexes again, then drops the composite ones.
use sea_orm_migration::prelude::*;

/// Replaces the single-column lock indexes with `(column, id)` ones.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// Table and column names of `locks`.
#[derive(DeriveIden, Clone, Copy)]
enum Locks {
    Table,
    Id,
    FileId,
    OwnerId,
    ClientId,
    ShareName,
    ServerEpoch,
}

/// Each indexed column: its `(column, id)` index, and the `(column)` index
/// of migration 1 that it replaces.
const INDEXES: [(Locks, &str, &str); 5] = [
    (Locks::FileId, "locks_file_id_id_idx", "locks_file_id_idx"),
    (
        Locks::OwnerId,
        "locks_owner_id_id_idx",
        "locks_owner_id_idx",
    ),
    (
        Locks::ClientId,
        "locks_client_id_id_idx",
        "locks_client_id_idx",
    ),
    (
        Locks::ShareName,
        "locks_share_name_id_idx",
        "locks_share_name_idx",
    ),
    (
        Locks::ServerEpoch,
        "locks_server_epoch_id_idx",
        "locks_server_epoch_idx",
    ),
];

/// `CREATE INDEX IF NOT EXISTS name ON locks (cols…)`.
fn create(name: &str, cols: &[Locks]) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(Locks::Table).if_not_exists();
    for &col in cols {
        index.col(col);
    }
    index.to_owned()
}

/// `DROP INDEX IF EXISTS name` (in the schema the manager works on).
fn drop_stmt(name: &str) -> IndexDropStatement {
    Index::drop()
        .name(name)
        .table(Locks::Table)
        .if_exists()
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (col, composite, _) in INDEXES {
            manager
                .create_index(create(composite, &[col, Locks::Id]))
                .await?;
        }
        for (_, _, single) in INDEXES {
            manager.drop_index(drop_stmt(single)).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (col, _, single) in INDEXES {
            manager.create_index(create(single, &[col])).await?;
        }
        for (_, composite, _) in INDEXES {
            manager.drop_index(drop_stmt(composite)).await?;
        }
        Ok(())
    }
}
