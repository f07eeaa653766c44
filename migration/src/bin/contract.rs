//! Runs fsmeta's contract migrations ([`migration::ContractMigrator`]) by
//! hand, once every server of a cluster runs the new release.
use sea_orm_migration::prelude::*;

#[tokio::main]
async fn main() {
    cli::run_cli(migration::ContractMigrator).await;
}
