//! The initial schema: `files`, `locks` and the single-row `server_state`.
//!
//! Column types, and why:
//!
//! - **u64 fields** (`files.size`, `locks.offset`, `locks.length`,
//!   `locks.server_epoch`, `server_state.epoch`) are `NUMERIC(20,0)` with a
//!   `CHECK (… BETWEEN 0 AND 18446744073709551615)`. PostgreSQL has no unsigned
//!   integer type and `BIGINT` stops at 2^63 - 1, yet NFSv4 uses the all-ones
//!   length (u64::MAX) to mean "to end of file" and offsets may use the whole
//!   range. `NUMERIC(20,0)` holds every u64 exactly (20 decimal digits), keeps
//!   the natural order for `server_epoch < $n`, and shows the true value to
//!   anyone reading the table with `psql`; the CHECK rejects the negative and
//!   over-large values NUMERIC would otherwise allow.
//! - **u32 fields** (`mode`, `uid`, `gid`, `nlink`) are `BIGINT` with a CHECK to
//!   `0..=4294967295`: `INTEGER` is signed 32-bit and cannot hold u32::MAX.
//! - **Small enums** (`files.kind`, `locks.lock_type`,
//!   `locks.share_reservation`) are `SMALLINT` with a CHECK on their range, so
//!   a stray value cannot be written by a buggy client either.
//! - **File handles** are `BYTEA` (opaque bytes, 1..=128): they sort bytewise,
//!   exactly like `Vec<u8>`, so `ORDER BY handle` matches the other backends.
//! - **Timestamps** are `TIMESTAMPTZ`: PostgreSQL stores microseconds, the
//!   unit of `fsmeta::Timestamp`, so every valid timestamp (years 1..=9999)
//!   round-trips exactly.
//! - **IDs and share names** are `TEXT`, with CHECKs on their byte length that
//!   mirror `fsmeta::validate`.
//!
//! The CHECK constraints are named (`<table>_<column>_check`) so an operator
//! can find them; fsmeta validates every input before it sends a statement, so
//! in normal operation no CHECK ever fires.
use sea_orm_migration::prelude::*;

use crate::columns::{between, enum_col, sized_col, timestamp_col, u32_col, u64_col};

/// Creates the three tables, their indexes and the `server_state` row.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// Table and column names of `files`.
#[derive(DeriveIden)]
enum Files {
    Table,
    Handle,
    ShareName,
    Kind,
    Mode,
    Uid,
    Gid,
    Nlink,
    Size,
    Atime,
    Mtime,
    Ctime,
}

/// Table and column names of `locks`.
#[derive(DeriveIden)]
enum Locks {
    Table,
    Id,
    ShareName,
    FileId,
    OwnerId,
    ClientId,
    LockType,
    Offset,
    Length,
    ShareReservation,
    AcquiredAt,
    ServerEpoch,
}

/// Table and column names of `server_state`.
#[derive(DeriveIden)]
enum ServerState {
    Table,
    Id,
    Epoch,
    CleanShutdown,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Files::Table)
                    .if_not_exists()
                    .col(sized_col(Files::Handle, "files_handle_check", 128, true).primary_key())
                    .col(sized_col(
                        Files::ShareName,
                        "files_share_name_check",
                        255,
                        false,
                    ))
                    .col(enum_col(Files::Kind, "files_kind_check", 3))
                    .col(u32_col(Files::Mode, "files_mode_check"))
                    .col(u32_col(Files::Uid, "files_uid_check"))
                    .col(u32_col(Files::Gid, "files_gid_check"))
                    .col(u32_col(Files::Nlink, "files_nlink_check"))
                    .col(u64_col(Files::Size, "files_size_check"))
                    .col(timestamp_col(Files::Atime, "files_atime_check"))
                    .col(timestamp_col(Files::Mtime, "files_mtime_check"))
                    .col(timestamp_col(Files::Ctime, "files_ctime_check"))
                    .to_owned(),
            )
            .await?;
        // `list_files` filters by share and returns handle order: this index
        // serves both, with no sort.
        manager
            .create_index(
                Index::create()
                    .name("files_share_name_handle_idx")
                    .table(Files::Table)
                    .col(Files::ShareName)
                    .col(Files::Handle)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Locks::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Locks::Id).uuid().not_null().primary_key())
                    .col(sized_col(
                        Locks::ShareName,
                        "locks_share_name_check",
                        255,
                        false,
                    ))
                    .col(sized_col(Locks::FileId, "locks_file_id_check", 128, true))
                    .col(sized_col(
                        Locks::OwnerId,
                        "locks_owner_id_check",
                        1024,
                        false,
                    ))
                    .col(sized_col(
                        Locks::ClientId,
                        "locks_client_id_check",
                        1024,
                        false,
                    ))
                    .col(enum_col(Locks::LockType, "locks_lock_type_check", 1))
                    .col(u64_col(Locks::Offset, "locks_offset_check"))
                    .col(u64_col(Locks::Length, "locks_length_check"))
                    .col(enum_col(
                        Locks::ShareReservation,
                        "locks_share_reservation_check",
                        3,
                    ))
                    .col(timestamp_col(Locks::AcquiredAt, "locks_acquired_at_check"))
                    .col(u64_col(Locks::ServerEpoch, "locks_server_epoch_check"))
                    .to_owned(),
            )
            .await?;
        // One index per `LockQuery` filter and bulk delete. Under SERIALIZABLE
        // they matter twice: PostgreSQL takes its predicate (SIRead) locks on
        // the index pages a query reads, so an indexed lookup by file conflicts
        // only with writers of that file instead of with every writer of the table.
        for (name, col) in [
            ("locks_file_id_idx", Locks::FileId),
            ("locks_owner_id_idx", Locks::OwnerId),
            ("locks_client_id_idx", Locks::ClientId),
            ("locks_share_name_idx", Locks::ShareName),
            ("locks_server_epoch_idx", Locks::ServerEpoch),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Locks::Table)
                        .col(col)
                        .if_not_exists()
                        .to_owned(),
                )
                .await?;
        }

        // Store-wide state lives in exactly one row (id = 1). Later per-node
        // state goes into its own table keyed by node id, so this row keeps
        // its meaning.
        manager
            .create_table(
                Table::create()
                    .table(ServerState::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(ServerState::Id)
                            .small_integer()
                            .not_null()
                            .primary_key()
                            .check(between("server_state_id_check", ServerState::Id, 1, 1)),
                    )
                    .col(u64_col(ServerState::Epoch, "server_state_epoch_check").default(0))
                    .col(
                        ColumnDef::new(ServerState::CleanShutdown)
                            .boolean()
                            .not_null()
                            .default(true),
                    )
                    .to_owned(),
            )
            .await?;
        // A new store: epoch 0, clean shutdown (as on every backend).
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(ServerState::Table)
                    .columns([
                        ServerState::Id,
                        ServerState::Epoch,
                        ServerState::CleanShutdown,
                    ])
                    .values_panic([1i16.into(), 0u64.into(), true.into()])
                    .on_conflict(OnConflict::column(ServerState::Id).do_nothing().to_owned())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ServerState::Table.into_iden(),
            Locks::Table.into_iden(),
            Files::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
