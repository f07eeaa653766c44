//! The single-row `server_state` table (`id = 1`): the global epoch counter.
//! (Its `clean_shutdown` column moved to the default node in migration 2;
//! the column itself stays, unread, for servers of older releases until the
//! contract step drops it.)

use sea_orm::entity::prelude::*;

/// The id of the one row.
pub(crate) const ROW_ID: i16 = 1;

/// The row of `server_state`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "server_state")]
pub struct Model {
    /// Always [`ROW_ID`] (a CHECK enforces it).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i16,
    /// The server epoch, u64 as `NUMERIC(20,0)`.
    #[sea_orm(column_type = "Decimal(Some((20, 0)))")]
    pub epoch: Decimal,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
