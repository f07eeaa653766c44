//! The `files` table: one row per file handle.

use sea_orm::entity::prelude::*;

/// A row of `files`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "files")]
pub struct Model {
    /// The file handle (`BYTEA`, 1..=128 bytes).
    #[sea_orm(primary_key, auto_increment = false)]
    pub handle: Vec<u8>,
    /// The share the file belongs to.
    pub share_name: String,
    /// `FileKind` as `SMALLINT` 0..=3.
    pub kind: i16,
    /// u32 as `BIGINT` 0..=4294967295.
    pub mode: i64,
    /// u32 as `BIGINT`.
    pub uid: i64,
    /// u32 as `BIGINT`.
    pub gid: i64,
    /// u32 as `BIGINT`.
    pub nlink: i64,
    /// u64 as `NUMERIC(20,0)`.
    #[sea_orm(column_type = "Decimal(Some((20, 0)))")]
    pub size: Decimal,
    /// `TIMESTAMPTZ`.
    pub atime: DateTimeUtc,
    /// `TIMESTAMPTZ`.
    pub mtime: DateTimeUtc,
    /// `TIMESTAMPTZ`.
    pub ctime: DateTimeUtc,
}

/// `files` has no foreign keys: a lock may name a handle that has no `files` row.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
