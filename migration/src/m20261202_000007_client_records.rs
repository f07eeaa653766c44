//! Client records: the stable storage of NFSv4 (and the NSM monitor list of
//! NLM), one row per client a node confirmed (`fsmeta::ClientStore`).
//!
//! ```sql
//! CREATE TABLE client_records (
//!     client_id TEXT COLLATE "C" NOT NULL PRIMARY KEY    -- 1..=1024 bytes
//!     node_id   TEXT COLLATE "C" NOT NULL                -- 1..=1024 bytes
//!     protocol  SMALLINT NOT NULL                        -- 0..=2 (nfs4, nlm, smb)
//!     owner     BYTEA NOT NULL                           -- 1..=1024 bytes
//!     verifier  BYTEA NOT NULL                           -- exactly 8 bytes
//!     principal BYTEA                                    -- NULL or 1..=1024 bytes
//!     epoch     NUMERIC(20,0) NOT NULL                   -- 0..=u64::MAX
//!     reclaim_complete BOOLEAN NOT NULL,
//!     last_renewed TIMESTAMPTZ NOT NULL                  -- years 1..=9999
//!     expired   BOOLEAN NOT NULL,
//!     callback  TEXT                                     -- NULL or 1..=1024 bytes
//! );
//! -- and indexes (node_id, client_id), (epoch, client_id), (owner, client_id)
//! ```
//!
//! Each index ends with the client id, so a listing by node, epoch or owner
//! comes back in id order without a sort. The CHECKs mirror
//! `fsmeta::validate::client`. An expand migration: it only adds a table
//! that servers of the previous release never read; `down` drops it.
use sea_orm_migration::prelude::*;

use crate::columns::{enum_col, node_id_col, sized_col, timestamp_col, u64_col};

/// Creates `client_records` and its indexes.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// Table and column names of `client_records`.
#[derive(DeriveIden, Clone, Copy)]
enum ClientRecords {
    Table,
    ClientId,
    NodeId,
    Protocol,
    Owner,
    Verifier,
    Principal,
    Epoch,
    ReclaimComplete,
    LastRenewed,
    Expired,
    Callback,
}

/// A nullable column whose byte length, when set, must be in `1..=1024`.
fn optional_sized(col: ClientRecords, check: &'static str, bytes: bool) -> ColumnDef {
    let len = Expr::expr(Func::cust("octet_length").arg(Expr::col(col)));
    let mut def = ColumnDef::new(col);
    if bytes {
        def.blob();
    } else {
        def.text();
    }
    def.null()
        .check(Check::named(check, len.between(1, 1024)))
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use ClientRecords as C;
        let verifier_len = Expr::expr(Func::cust("octet_length").arg(Expr::col(C::Verifier)));
        manager
            .create_table(
                Table::create()
                    .table(C::Table)
                    .if_not_exists()
                    .col(node_id_col(C::ClientId, "client_records_client_id_check").primary_key())
                    .col(node_id_col(C::NodeId, "client_records_node_id_check"))
                    .col(enum_col(C::Protocol, "client_records_protocol_check", 2))
                    .col(sized_col(
                        C::Owner,
                        "client_records_owner_check",
                        1024,
                        true,
                    ))
                    .col(
                        ColumnDef::new(C::Verifier)
                            .blob()
                            .not_null()
                            .check(Check::named(
                                "client_records_verifier_check",
                                verifier_len.eq(8),
                            )),
                    )
                    .col(optional_sized(
                        C::Principal,
                        "client_records_principal_check",
                        true,
                    ))
                    .col(u64_col(C::Epoch, "client_records_epoch_check"))
                    .col(ColumnDef::new(C::ReclaimComplete).boolean().not_null())
                    .col(timestamp_col(
                        C::LastRenewed,
                        "client_records_last_renewed_check",
                    ))
                    .col(ColumnDef::new(C::Expired).boolean().not_null())
                    .col(optional_sized(
                        C::Callback,
                        "client_records_callback_check",
                        false,
                    ))
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("client_records_node_id_idx", C::NodeId),
            ("client_records_epoch_idx", C::Epoch),
            ("client_records_owner_idx", C::Owner),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(C::Table)
                        .col(col)
                        .col(C::ClientId)
                        .if_not_exists()
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(ClientRecords::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
