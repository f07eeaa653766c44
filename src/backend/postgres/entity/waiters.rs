//! The `waiters` table: one row per queued lock request (migration 9).

use sea_orm::entity::prelude::*;

/// A row of `waiters`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "waiters")]
pub struct Model {
    /// The waiter id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The file's handle (`BYTEA`).
    pub file_id: Vec<u8>,
    /// The share the request came through.
    pub share_name: String,
    /// The owner within the client.
    pub owner_id: String,
    /// The client.
    pub client_id: String,
    /// The node that queued it (`TEXT COLLATE "C"`).
    pub node_id: String,
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
    /// `LockFlavor` as `SMALLINT` 0..=1.
    pub flavor: i16,
    /// The queue position, u64 as `NUMERIC(20,0)`.
    #[sea_orm(column_type = "Decimal(Some((20, 0)))")]
    pub position: Decimal,
    /// `TIMESTAMPTZ`.
    pub since: DateTimeUtc,
    /// The server's opaque context (`BYTEA`, at most 1 KiB).
    pub context: Vec<u8>,
}

/// No foreign keys: a waiter names a file by handle, like a lock.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
