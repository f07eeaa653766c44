//! Schema migrations for fsmeta's PostgreSQL backend.
pub use sea_orm_migration::prelude::*;

/// The ordered list of fsmeta's migrations.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![]
    }
}
