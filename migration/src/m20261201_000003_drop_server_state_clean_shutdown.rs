//! Contract: drops `server_state.clean_shutdown`, which migration 2 replaced
//! by the default node's flag in `nodes` but kept for servers of the
//! previous release.
//!
//! Part of [`crate::ContractMigrator`], never of [`crate::Migrator`]: run it
//! once every server runs a release that reads the flag from `nodes`. The
//! column may already be gone (the first release of migration 2 dropped it);
//! that is not an error.
//!
//! `down` puts the column back, filled from the default node's flag (true
//! when there is no default node), as migration 2's `down` would.
use sea_orm_migration::prelude::*;

use crate::LEGACY_NODE_ID;

/// Drops `server_state.clean_shutdown`.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// The columns of `server_state` this migration touches.
#[derive(DeriveIden)]
enum ServerState {
    Table,
    CleanShutdown,
}

/// The columns of `nodes` this migration reads.
#[derive(DeriveIden)]
enum Nodes {
    Table,
    NodeId,
    CleanShutdown,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The flag's new home must exist before its old one goes.
        if !manager.has_table("nodes").await? {
            return Err(DbErr::Migration(
                "the contract migrations need the expand migrations first: run \
                 `migration up` (or connect an fsmeta server) before `contract up`"
                    .into(),
            ));
        }
        manager
            .alter_table(
                Table::alter()
                    .table(ServerState::Table)
                    .drop_column_if_exists(ServerState::CleanShutdown)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
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
            .await
    }
}
