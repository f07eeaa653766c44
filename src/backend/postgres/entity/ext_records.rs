//! The `ext_records` table: every record of every extension table.

use sea_orm::entity::prelude::*;

/// A row of `ext_records`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ext_records")]
pub struct Model {
    /// The extension table (`TEXT COLLATE "C"`, 1..=64 bytes of `[a-z0-9_]`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub table_name: String,
    /// The record's key (`BYTEA`, 1..=1024 bytes).
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: Vec<u8>,
    /// The record's value (`BYTEA`, at most 1 MiB).
    pub value: Vec<u8>,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
