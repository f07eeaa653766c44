//! Lock flavours: `locks.flavor`, which protocol's byte-range rules a lock
//! follows (`fsmeta::LockFlavor`: 0 = POSIX, 1 = Windows/SMB).
//!
//! ```sql
//! ALTER TABLE locks ADD COLUMN IF NOT EXISTS
//!     flavor SMALLINT NOT NULL DEFAULT 0 CONSTRAINT locks_flavor_check CHECK (flavor IN (0, 1));
//! ```
//!
//! An expand migration: it only adds a column whose default (0, POSIX) is
//! what every row written before it means. Servers of the previous release
//! neither read nor write it; the rows they insert get the default, which is
//! right for them (they only write POSIX locks). `down` drops the column.
use sea_orm_migration::prelude::*;

/// Adds `locks.flavor`.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// Table and column names of `locks`.
#[derive(DeriveIden)]
enum Locks {
    Table,
    Flavor,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Locks::Table)
                    .add_column_if_not_exists(
                        ColumnDef::new(Locks::Flavor)
                            .small_integer()
                            .not_null()
                            .default(0)
                            .check(Check::named(
                                "locks_flavor_check",
                                Expr::col(Locks::Flavor).is_in([0, 1]),
                            )),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Locks::Table)
                    .drop_column_if_exists(Locks::Flavor)
                    .to_owned(),
            )
            .await
    }
}
