//! Several nodes on one store: per-node state and the record of which node
//! each epoch was handed to.
//!
//! - `nodes`: one row per node (`node_id` TEXT in the C collation, so it
//!   sorts bytewise like the other backends), with its current epoch
//!   (`NUMERIC(20,0)`, as every u64) and clean-shutdown flag.
//! - `epoch_records`: one row per epoch handed out (`epoch` `NUMERIC(20,0)`
//!   primary key), with the node and the start time.
//! - The clean-shutdown flag moves from `server_state` to the default node.
//!   A store that was used before nodes existed (epoch above 0, or an unclean
//!   flag) becomes the default node's: the node gets the store's epoch and
//!   flag, so a server that crashed before the upgrade still recovers as
//!   unclean. An unused store gets no node row, exactly like a new one.
//!
//! This is an *expand* migration: it only adds. `server_state.clean_shutdown`
//! stays, so servers of the previous release, which still read and write it,
//! keep working during a rolling upgrade; new servers no longer use it. Its
//! drop is the contract migration
//! `m20261201_000003_drop_server_state_clean_shutdown`, run explicitly once
//! every server is upgraded (see [`crate::ContractMigrator`]). (The first
//! release of this migration dropped the column itself; a database migrated
//! by it simply has nothing left for the contract step to drop.)
//!
//! `down` reverses it: the default node's flag goes back into
//! `server_state.clean_shutdown` (re-added if a contract step dropped it),
//! and the two tables are dropped.
use sea_orm_migration::prelude::*;

use crate::LEGACY_NODE_ID;
use crate::columns::{node_id_col, timestamp_col, u64_col};

/// Creates `nodes` and `epoch_records`, copies the clean flag to the default node.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// Table and column names of `nodes`.
#[derive(DeriveIden)]
enum Nodes {
    Table,
    NodeId,
    Epoch,
    CleanShutdown,
}

/// Table and column names of `epoch_records`.
#[derive(DeriveIden)]
enum EpochRecords {
    Table,
    Epoch,
    NodeId,
    StartedAt,
}

/// The columns of `server_state` this migration touches.
#[derive(DeriveIden)]
enum ServerState {
    Table,
    Epoch,
    CleanShutdown,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Nodes::Table)
                    .if_not_exists()
                    .col(node_id_col(Nodes::NodeId, "nodes_node_id_check").primary_key())
                    .col(u64_col(Nodes::Epoch, "nodes_epoch_check"))
                    .col(ColumnDef::new(Nodes::CleanShutdown).boolean().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(EpochRecords::Table)
                    .if_not_exists()
                    .col(u64_col(EpochRecords::Epoch, "epoch_records_epoch_check").primary_key())
                    .col(node_id_col(
                        EpochRecords::NodeId,
                        "epoch_records_node_id_check",
                    ))
                    .col(timestamp_col(
                        EpochRecords::StartedAt,
                        "epoch_records_started_at_check",
                    ))
                    .to_owned(),
            )
            .await?;

        // The pre-node store's state becomes the default node's, if it was used.
        let legacy = Query::select()
            .expr(Expr::val(LEGACY_NODE_ID))
            .column(ServerState::Epoch)
            .column(ServerState::CleanShutdown)
            .from(ServerState::Table)
            .cond_where(
                Cond::any()
                    .add(Expr::col(ServerState::Epoch).gt(0))
                    .add(Expr::col(ServerState::CleanShutdown).eq(false)),
            )
            .to_owned();
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(Nodes::Table)
                    .columns([Nodes::NodeId, Nodes::Epoch, Nodes::CleanShutdown])
                    .select_from(legacy)
                    .map_err(|e| DbErr::Migration(e.to_string()))?
                    .on_conflict(OnConflict::column(Nodes::NodeId).do_nothing().to_owned())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        restore_clean_shutdown_column(manager).await?;
        for table in [EpochRecords::Table.into_iden(), Nodes::Table.into_iden()] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

/// Puts `server_state.clean_shutdown` back (if it is gone), filled from the
/// default node's flag (true when there is no default node): this
/// migration's `down`, and the contract migration's.
pub(crate) async fn restore_clean_shutdown_column(
    manager: &SchemaManager<'_>,
) -> Result<(), DbErr> {
    manager
        .alter_table(
            Table::alter()
                .table(ServerState::Table)
                .add_column_if_not_exists(
                    ColumnDef::new(ServerState::CleanShutdown)
                        .boolean()
                        .not_null()
                        .default(true),
                )
                .to_owned(),
        )
        .await?;
    // clean_shutdown = COALESCE((SELECT clean_shutdown FROM nodes WHERE node_id = 'default'), TRUE)
    let default_flag = Query::select()
        .column(Nodes::CleanShutdown)
        .from(Nodes::Table)
        .and_where(Expr::col(Nodes::NodeId).eq(LEGACY_NODE_ID))
        .to_owned();
    manager
        .exec_stmt(
            Query::update()
                .table(ServerState::Table)
                .value(
                    ServerState::CleanShutdown,
                    Func::coalesce([Expr::from(default_flag), Expr::val(true)]),
                )
                .to_owned(),
        )
        .await?;
    Ok(())
}
