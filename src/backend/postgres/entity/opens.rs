//! The `opens` table: one row per open (migration 8).

use sea_orm::entity::prelude::*;

/// A row of `opens`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "opens")]
pub struct Model {
    /// The open id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The opened file's handle (`BYTEA`, 1..=128 bytes).
    pub file: Vec<u8>,
    /// The share.
    pub share_name: String,
    /// The client.
    pub client_id: String,
    /// The open owner.
    pub owner_id: String,
    /// `ShareMask` bits, `SMALLINT` 0..=7.
    pub access: i16,
    /// `ShareMask` bits, `SMALLINT` 0..=7.
    pub deny: i16,
    /// `OpenProtocol`, `SMALLINT` 0..=2.
    pub protocol: i16,
    /// `DurableState` tag, `SMALLINT` 0..=2.
    pub durable: i16,
    /// The durable timeout in ms, `BIGINT` 0..=u32::MAX (0 unless durable).
    pub timeout_ms: i64,
    /// SMB `CreateGuid`.
    pub create_guid: Option<Uuid>,
    /// SMB `AppInstanceId`.
    pub app_instance_id: Option<Uuid>,
    /// The lease key (`BYTEA`, 16 bytes).
    pub lease_key: Option<Vec<u8>>,
    /// `TIMESTAMPTZ NULL`.
    pub disconnected_at: Option<DateTimeUtc>,
    /// The lock-sequence array (`BYTEA`, 0 or 64 bytes).
    pub lock_sequences: Vec<u8>,
    /// u64 as `NUMERIC(20,0)`.
    #[sea_orm(column_type = "Decimal(Some((20, 0)))")]
    pub server_epoch: Decimal,
    /// `TIMESTAMPTZ`.
    pub opened_at: DateTimeUtc,
}

/// No foreign keys: opens of handles without metadata are allowed.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
