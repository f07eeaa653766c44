//! The `delegations` table: one row per NFSv4 delegation or tombstone (migration 8).

use sea_orm::entity::prelude::*;

/// A row of `delegations`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "delegations")]
pub struct Model {
    /// The delegation id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The delegated file's handle.
    pub file: Vec<u8>,
    /// The share.
    pub share_name: String,
    /// The client.
    pub client_id: String,
    /// `DelegationType`, `SMALLINT` 0..=1.
    pub kind: i16,
    /// A recall was sent.
    pub recalled: bool,
    /// Revoked (a tombstone).
    pub revoked: bool,
    /// Notification mask, `BIGINT` 0..=u32::MAX.
    pub notification_mask: i64,
    /// u64 as `NUMERIC(20,0)`.
    #[sea_orm(column_type = "Decimal(Some((20, 0)))")]
    pub server_epoch: Decimal,
    /// `TIMESTAMPTZ`.
    pub granted_at: DateTimeUtc,
}

/// No foreign keys.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
