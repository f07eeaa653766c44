//! The `leases` table: one row per lease or oplock (migration 8).

use sea_orm::entity::prelude::*;

/// A row of `leases`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "leases")]
pub struct Model {
    /// The lease id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The lease key (`BYTEA`, 16 bytes).
    pub lease_key: Vec<u8>,
    /// The parent lease key (`BYTEA`, 16 bytes).
    pub parent_lease_key: Option<Vec<u8>>,
    /// The leased file's handle.
    pub file: Vec<u8>,
    /// The share.
    pub share_name: String,
    /// The client.
    pub client_id: String,
    /// `LeaseState` bits, `SMALLINT` in (0, 1, 3, 5, 7).
    pub state: i16,
    /// The lease epoch, `INTEGER` 0..=65535.
    pub lease_epoch: i32,
    /// A break runs.
    pub breaking: bool,
    /// The break's target, like `state`.
    pub break_to: i16,
    /// `TIMESTAMPTZ NULL`: set exactly while breaking.
    pub break_started_at: Option<DateTimeUtc>,
    /// A directory lease.
    pub directory: bool,
    /// A traditional oplock.
    pub oplock: bool,
    /// u64 as `NUMERIC(20,0)`.
    #[sea_orm(column_type = "Decimal(Some((20, 0)))")]
    pub server_epoch: Decimal,
}

/// No foreign keys.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
