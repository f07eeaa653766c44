//! The `epoch_records` table: which node each epoch was handed to.

use sea_orm::entity::prelude::*;

/// A row of `epoch_records`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "epoch_records")]
pub struct Model {
    /// The epoch, u64 as `NUMERIC(20,0)`.
    #[sea_orm(
        primary_key,
        auto_increment = false,
        column_type = "Decimal(Some((20, 0)))"
    )]
    pub epoch: Decimal,
    /// The node that started an incarnation with it.
    pub node_id: String,
    /// When that incarnation started (`TIMESTAMPTZ`).
    pub started_at: DateTimeUtc,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
