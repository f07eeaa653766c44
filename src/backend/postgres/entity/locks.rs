//! The `locks` table: one row per persisted lock.

use sea_orm::entity::prelude::*;

/// A row of `locks`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "locks")]
pub struct Model {
    /// The lock id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The share the lock was taken through.
    pub share_name: String,
    /// The locked file's handle (`BYTEA`).
    pub file_id: Vec<u8>,
    /// The owner within the client.
    pub owner_id: String,
    /// The client.
    pub client_id: String,
    /// `LockType` as `SMALLINT` 0..=1.
    pub lock_type: i16,
    /// u64 as `NUMERIC(20,0)`.
    #[sea_orm(column_type = "Decimal(Some((20, 0)))")]
    pub offset: Decimal,
    /// u64 as `NUMERIC(20,0)`.
    #[sea_orm(column_type = "Decimal(Some((20, 0)))")]
    pub length: Decimal,
    /// `ShareReservation` as `SMALLINT` 0..=3.
    pub share_reservation: i16,
    /// `TIMESTAMPTZ`.
    pub acquired_at: DateTimeUtc,
    /// u64 as `NUMERIC(20,0)`.
    #[sea_orm(column_type = "Decimal(Some((20, 0)))")]
    pub server_epoch: Decimal,
    /// `LockFlavor` as `SMALLINT` 0..=1 (migration 5; 0 = POSIX for older rows).
    pub flavor: i16,
}

/// No foreign key to `files`: locks on handles without metadata are allowed.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
