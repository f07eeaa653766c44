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

/// Drops `server_state.clean_shutdown`.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// The columns of `server_state` this migration touches.
#[derive(DeriveIden)]
enum ServerState {
    Table,
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
        crate::m20261127_000002_nodes::restore_clean_shutdown_column(manager).await
    }
}
