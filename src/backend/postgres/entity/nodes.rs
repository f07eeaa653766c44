//! The `nodes` table: one row per server node that shares the store.

use sea_orm::entity::prelude::*;

/// A row of `nodes`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "nodes")]
pub struct Model {
    /// The node id (`TEXT COLLATE "C"`, so it sorts bytewise).
    #[sea_orm(primary_key, auto_increment = false)]
    pub node_id: String,
    /// The node's current epoch, u64 as `NUMERIC(20,0)`.
    #[sea_orm(column_type = "Decimal(Some((20, 0)))")]
    pub epoch: Decimal,
    /// Whether the node's last incarnation shut down cleanly.
    pub clean_shutdown: bool,
    /// Until when the current incarnation's lease runs (`TIMESTAMPTZ NULL`).
    pub lease_expires_at: Option<DateTimeUtc>,
    /// The node that declared this one dead (`TEXT COLLATE "C" NULL`).
    pub taken_over_by: Option<String>,
    /// When it did (`TIMESTAMPTZ NULL`; set exactly when `taken_over_by` is).
    pub taken_over_at: Option<DateTimeUtc>,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
