//! Opens, leases and delegations (`fsmeta::OpenStore`, `fsmeta::LeaseStore`):
//! three tables, one row per record, every column typed and CHECKed like
//! the model's validation (`fsmeta::validate::{open, lease, delegation}`).
//!
//! - `opens`: id, file, share, client, owner, `access`/`deny` masks
//!   (SMALLINT 0..=7), protocol (0..=2), durable state (tag 0..=2 and
//!   `timeout_ms` BIGINT 0..=u32::MAX, non-zero only for tag 1),
//!   `create_guid`/`app_instance_id` (UUID NULL), `lease_key` (BYTEA NULL, 16
//!   bytes), `disconnected_at` (TIMESTAMPTZ NULL), `lock_sequences` (BYTEA of
//!   0 or 64 bytes), `server_epoch` (NUMERIC(20,0)), `opened_at`. Indexed by
//!   file, client, share, create GUID, app instance id and disconnect time.
//! - `leases`: id, `lease_key`/`parent_lease_key` (BYTEA, 16 bytes), file,
//!   share, client, `state`/`break_to` (SMALLINT in 0, 1, 3, 5, 7: W and H
//!   only with R), `lease_epoch` (INTEGER 0..=65535), `breaking`,
//!   `break_started_at` (NULL exactly when not breaking), `directory`,
//!   `oplock`, `server_epoch`. Indexed by file, client and lease key.
//! - `delegations`: id, file, share, client, `kind` (0..=1), `recalled`,
//!   `revoked`, `notification_mask` (BIGINT 0..=u32::MAX), `server_epoch`,
//!   `granted_at`. Indexed by file and client.
//!
//! An expand migration: it only adds tables that older servers never read.
//! `down` drops them.
use sea_orm_migration::prelude::*;

use crate::columns::{enum_col, sized_col, timestamp_col, u32_col, u64_col};

/// Creates `opens`, `leases` and `delegations`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(Clone, Copy, DeriveIden)]
enum Opens {
    Table,
    Id,
    File,
    ShareName,
    ClientId,
    OwnerId,
    Access,
    Deny,
    Protocol,
    Durable,
    TimeoutMs,
    CreateGuid,
    AppInstanceId,
    LeaseKey,
    DisconnectedAt,
    LockSequences,
    ServerEpoch,
    OpenedAt,
}

#[derive(Clone, Copy, DeriveIden)]
enum Leases {
    Table,
    Id,
    LeaseKey,
    ParentLeaseKey,
    File,
    ShareName,
    ClientId,
    State,
    LeaseEpoch,
    Breaking,
    BreakTo,
    BreakStartedAt,
    Directory,
    Oplock,
    ServerEpoch,
}

#[derive(Clone, Copy, DeriveIden)]
enum Delegations {
    Table,
    Id,
    File,
    ShareName,
    ClientId,
    Kind,
    Recalled,
    Revoked,
    NotificationMask,
    ServerEpoch,
    GrantedAt,
}

fn octet_length(col: impl IntoIden) -> SimpleExpr {
    Expr::expr(Func::cust("octet_length").arg(Expr::col(col.into_iden())))
}

/// `BYTEA NULL CHECK (octet_length = 16)`.
fn key_col(col: impl IntoIden + Clone, check: &'static str, null: bool) -> ColumnDef {
    let mut def = ColumnDef::new(col.clone());
    def.blob()
        .check(Check::named(check, Expr::expr(octet_length(col)).eq(16)));
    if !null {
        def.not_null();
    }
    def.to_owned()
}

/// A nullable timestamp, limited to the years 1..=9999 when set.
fn optional_time(col: impl IntoIden + Clone, check: &'static str) -> ColumnDef {
    let range = Expr::col(col.clone().into_iden()).between(
        Expr::cust("TIMESTAMPTZ '0001-01-01 00:00:00+00'"),
        Expr::cust("TIMESTAMPTZ '9999-12-31 23:59:59.999999+00'"),
    );
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .null()
        .check(Check::named(check, range))
        .to_owned()
}

/// A lease state column: `SMALLINT NOT NULL CHECK (col IN (0, 1, 3, 5, 7))`.
fn state_col(col: impl IntoIden + Clone, check: &'static str) -> ColumnDef {
    ColumnDef::new(col.clone())
        .small_integer()
        .not_null()
        .check(Check::named(
            check,
            Expr::col(col.into_iden()).is_in([0, 1, 3, 5, 7]),
        ))
        .to_owned()
}

fn index(name: &'static str, table: impl IntoIden, col: impl IntoIden) -> IndexCreateStatement {
    Index::create()
        .name(name)
        .table(table)
        .col(col)
        .if_not_exists()
        .to_owned()
}

fn id_col(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .uuid()
        .not_null()
        .primary_key()
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Opens::Table)
                    .if_not_exists()
                    .col(id_col(Opens::Id))
                    .col(sized_col(Opens::File, "opens_file_check", 128, true))
                    .col(sized_col(
                        Opens::ShareName,
                        "opens_share_name_check",
                        255,
                        false,
                    ))
                    .col(sized_col(
                        Opens::ClientId,
                        "opens_client_id_check",
                        1024,
                        false,
                    ))
                    .col(sized_col(
                        Opens::OwnerId,
                        "opens_owner_id_check",
                        1024,
                        false,
                    ))
                    .col(enum_col(Opens::Access, "opens_access_check", 7))
                    .col(enum_col(Opens::Deny, "opens_deny_check", 7))
                    .col(enum_col(Opens::Protocol, "opens_protocol_check", 2))
                    .col(enum_col(Opens::Durable, "opens_durable_check", 2))
                    .col(u32_col(Opens::TimeoutMs, "opens_timeout_ms_check"))
                    .col(ColumnDef::new(Opens::CreateGuid).uuid().null())
                    .col(ColumnDef::new(Opens::AppInstanceId).uuid().null())
                    .col(key_col(Opens::LeaseKey, "opens_lease_key_check", true))
                    .col(optional_time(
                        Opens::DisconnectedAt,
                        "opens_disconnected_at_check",
                    ))
                    .col(
                        ColumnDef::new(Opens::LockSequences)
                            .blob()
                            .not_null()
                            .check(Check::named(
                                "opens_lock_sequences_check",
                                Expr::expr(octet_length(Opens::LockSequences)).is_in([0, 64]),
                            )),
                    )
                    .col(u64_col(Opens::ServerEpoch, "opens_server_epoch_check"))
                    .col(timestamp_col(Opens::OpenedAt, "opens_opened_at_check"))
                    .check(Check::named(
                        "opens_timeout_only_durable_check",
                        Expr::col(Opens::Durable)
                            .eq(1)
                            .or(Expr::col(Opens::TimeoutMs).eq(0)),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Leases::Table)
                    .if_not_exists()
                    .col(id_col(Leases::Id))
                    .col(key_col(Leases::LeaseKey, "leases_lease_key_check", false))
                    .col(key_col(
                        Leases::ParentLeaseKey,
                        "leases_parent_lease_key_check",
                        true,
                    ))
                    .col(sized_col(Leases::File, "leases_file_check", 128, true))
                    .col(sized_col(
                        Leases::ShareName,
                        "leases_share_name_check",
                        255,
                        false,
                    ))
                    .col(sized_col(
                        Leases::ClientId,
                        "leases_client_id_check",
                        1024,
                        false,
                    ))
                    .col(state_col(Leases::State, "leases_state_check"))
                    .col(
                        ColumnDef::new(Leases::LeaseEpoch)
                            .integer()
                            .not_null()
                            .check(Check::named(
                                "leases_lease_epoch_check",
                                Expr::col(Leases::LeaseEpoch).between(0, 65535),
                            )),
                    )
                    .col(ColumnDef::new(Leases::Breaking).boolean().not_null())
                    .col(state_col(Leases::BreakTo, "leases_break_to_check"))
                    .col(optional_time(
                        Leases::BreakStartedAt,
                        "leases_break_started_at_check",
                    ))
                    .col(ColumnDef::new(Leases::Directory).boolean().not_null())
                    .col(ColumnDef::new(Leases::Oplock).boolean().not_null())
                    .col(u64_col(Leases::ServerEpoch, "leases_server_epoch_check"))
                    .check(Check::named(
                        "leases_break_check",
                        Expr::col(Leases::Breaking)
                            .eq(Expr::col(Leases::BreakStartedAt).is_not_null()),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Delegations::Table)
                    .if_not_exists()
                    .col(id_col(Delegations::Id))
                    .col(sized_col(
                        Delegations::File,
                        "delegations_file_check",
                        128,
                        true,
                    ))
                    .col(sized_col(
                        Delegations::ShareName,
                        "delegations_share_name_check",
                        255,
                        false,
                    ))
                    .col(sized_col(
                        Delegations::ClientId,
                        "delegations_client_id_check",
                        1024,
                        false,
                    ))
                    .col(enum_col(Delegations::Kind, "delegations_kind_check", 1))
                    .col(ColumnDef::new(Delegations::Recalled).boolean().not_null())
                    .col(ColumnDef::new(Delegations::Revoked).boolean().not_null())
                    .col(u32_col(
                        Delegations::NotificationMask,
                        "delegations_notification_mask_check",
                    ))
                    .col(u64_col(
                        Delegations::ServerEpoch,
                        "delegations_server_epoch_check",
                    ))
                    .col(timestamp_col(
                        Delegations::GrantedAt,
                        "delegations_granted_at_check",
                    ))
                    .to_owned(),
            )
            .await?;
        for statement in [
            index("opens_file_idx", Opens::Table, Opens::File),
            index("opens_client_id_idx", Opens::Table, Opens::ClientId),
            index("opens_share_name_idx", Opens::Table, Opens::ShareName),
            index("opens_create_guid_idx", Opens::Table, Opens::CreateGuid),
            index(
                "opens_app_instance_id_idx",
                Opens::Table,
                Opens::AppInstanceId,
            ),
            index(
                "opens_disconnected_at_idx",
                Opens::Table,
                Opens::DisconnectedAt,
            ),
            index("leases_file_idx", Leases::Table, Leases::File),
            index("leases_client_id_idx", Leases::Table, Leases::ClientId),
            index("leases_lease_key_idx", Leases::Table, Leases::LeaseKey),
            index(
                "delegations_file_idx",
                Delegations::Table,
                Delegations::File,
            ),
            index(
                "delegations_client_id_idx",
                Delegations::Table,
                Delegations::ClientId,
            ),
        ] {
            manager.create_index(statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Opens::Table.into_iden(),
            Leases::Table.into_iden(),
            Delegations::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
