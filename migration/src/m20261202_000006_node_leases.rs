//! Node leases and takeover: `nodes.lease_expires_at`, `nodes.taken_over_by`
//! and `nodes.taken_over_at` (`fsmeta::NodeState::lease_expires_at` and
//! `fsmeta::NodeState::taken_over`).
//!
//! ```sql
//! ALTER TABLE nodes
//!     ADD COLUMN IF NOT EXISTS lease_expires_at TIMESTAMPTZ NULL
//!         CONSTRAINT nodes_lease_expires_at_check CHECK (lease_expires_at BETWEEN '0001-01-01' AND '9999-12-31 23:59:59.999999'),
//!     ADD COLUMN IF NOT EXISTS taken_over_by TEXT COLLATE "C" NULL
//!         CONSTRAINT nodes_taken_over_by_check CHECK (octet_length(taken_over_by) BETWEEN 1 AND 1024),
//!     ADD COLUMN IF NOT EXISTS taken_over_at TIMESTAMPTZ NULL
//!         CONSTRAINT nodes_taken_over_at_check CHECK (taken_over_at BETWEEN '0001-01-01' AND '9999-12-31 23:59:59.999999');
//! ALTER TABLE nodes ADD CONSTRAINT nodes_taken_over_check
//!     CHECK ((taken_over_by IS NULL) = (taken_over_at IS NULL));
//! ```
//!
//! An expand migration: it only adds nullable columns, and NULL (no lease,
//! never taken over) is what every row written before it means. Servers of
//! the previous release neither read nor write them: their `put_node` upserts
//! leave them as they are, and the rows they insert get NULL. `down` drops
//! the columns.
use sea_orm_migration::prelude::*;

/// Adds the lease and takeover columns to `nodes`.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// Table and column names of `nodes`.
#[derive(DeriveIden, Clone, Copy)]
enum Nodes {
    Table,
    LeaseExpiresAt,
    TakenOverBy,
    TakenOverAt,
}

/// A nullable `TIMESTAMPTZ` limited to the years 1..=9999 when set.
fn optional_time(col: Nodes, check: &'static str) -> ColumnDef {
    let range = Expr::col(col).between(
        Expr::cust("TIMESTAMPTZ '0001-01-01 00:00:00+00'"),
        Expr::cust("TIMESTAMPTZ '9999-12-31 23:59:59.999999+00'"),
    );
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .null()
        .check(Check::named(check, range))
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let by_len = Expr::expr(Func::cust("octet_length").arg(Expr::col(Nodes::TakenOverBy)));
        manager
            .alter_table(
                Table::alter()
                    .table(Nodes::Table)
                    .add_column_if_not_exists(optional_time(
                        Nodes::LeaseExpiresAt,
                        "nodes_lease_expires_at_check",
                    ))
                    .add_column_if_not_exists(
                        ColumnDef::new(Nodes::TakenOverBy)
                            .text()
                            .null()
                            .extra("COLLATE \"C\"")
                            .check(Check::named(
                                "nodes_taken_over_by_check",
                                by_len.between(1, 1024),
                            ))
                            .to_owned(),
                    )
                    .add_column_if_not_exists(optional_time(
                        Nodes::TakenOverAt,
                        "nodes_taken_over_at_check",
                    ))
                    .to_owned(),
            )
            .await?;
        // Both or neither: a takeover has a taker and a time.
        manager
            .get_connection()
            .execute_unprepared(
                "DO $$ BEGIN \
                 ALTER TABLE nodes ADD CONSTRAINT nodes_taken_over_check \
                 CHECK ((taken_over_by IS NULL) = (taken_over_at IS NULL)); \
                 EXCEPTION WHEN duplicate_object THEN NULL; END $$",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Nodes::Table)
                    .drop_column_if_exists(Nodes::LeaseExpiresAt)
                    .drop_column_if_exists(Nodes::TakenOverBy)
                    .drop_column_if_exists(Nodes::TakenOverAt)
                    .to_owned(),
            )
            .await
    }
}
