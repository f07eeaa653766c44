//! The `client_records` table: one row per client a node confirmed
//! (migration `m20261202_000007_client_records`).

use sea_orm::entity::prelude::*;

/// A row of `client_records`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "client_records")]
pub struct Model {
    /// The client id (`TEXT COLLATE "C"`, so it sorts bytewise).
    #[sea_orm(primary_key, auto_increment = false)]
    pub client_id: String,
    /// The node (`TEXT COLLATE "C"`).
    pub node_id: String,
    /// `ClientProtocol` as `SMALLINT` 0..=2.
    pub protocol: i16,
    /// The owner (`BYTEA`, 1..=1024 bytes).
    pub owner: Vec<u8>,
    /// The boot verifier (`BYTEA`, exactly 8 bytes).
    pub verifier: Vec<u8>,
    /// The principal (`BYTEA`, NULL or 1..=1024 bytes).
    pub principal: Option<Vec<u8>>,
    /// u64 as `NUMERIC(20,0)`.
    #[sea_orm(column_type = "Decimal(Some((20, 0)))")]
    pub epoch: Decimal,
    /// Whether the client sent RECLAIM_COMPLETE in `epoch`.
    pub reclaim_complete: bool,
    /// `TIMESTAMPTZ`.
    pub last_renewed: DateTimeUtc,
    /// Whether the client's state was revoked after its lease lapsed.
    pub expired: bool,
    /// The NLM callback address (`TEXT`, NULL or 1..=1024 bytes).
    pub callback: Option<String>,
}

/// No foreign keys: a client may name a node the store has not seen yet.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
