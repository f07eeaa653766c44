//! Extension tables: the host's own metadata as `key → value` bytes, in the
//! same transaction as fsmeta's files and locks (`fsmeta::ExtStore`).
//!
//! One table for every extension table of every host:
//!
//! ```sql
//! CREATE TABLE ext_records (
//!     table_name TEXT COLLATE "C" NOT NULL
//!         CONSTRAINT ext_records_table_name_check CHECK (octet_length(table_name) BETWEEN 1 AND 64),
//!     key   BYTEA NOT NULL CONSTRAINT ext_records_key_check CHECK (octet_length(key) BETWEEN 1 AND 1024),
//!     value BYTEA NOT NULL CONSTRAINT ext_records_value_check CHECK (octet_length(value) <= 1048576),
//!     CONSTRAINT ext_records_table_name_chars_check CHECK (table_name ~ '^[a-z0-9_]+$'),
//!     CONSTRAINT ext_records_pkey PRIMARY KEY (table_name, key)
//! );
//! ```
//!
//! - `table_name` is `TEXT COLLATE "C"`, so `ORDER BY table_name` is bytewise
//!   (the other backends' order) whatever the database's default collation;
//!   the CHECKs mirror `fsmeta::validate::ext_table` (1..=64 bytes of `[a-z0-9_]`).
//! - `key` and `value` are `BYTEA`, which compares bytewise, shorter first on a
//!   tie: exactly `Vec<u8>`'s order. A scan is one range of the primary key's
//!   B-tree (`table_name = $1 AND key >= $2 AND key < $3 ORDER BY key`), so a
//!   SERIALIZABLE transaction's predicate locks cover the range it read and a
//!   concurrent insert into it is a serialization failure.
//! - The CHECKs mirror `fsmeta::validate::ext_key` and `ext_value` (keys
//!   1..=1024 bytes, values at most 1 MiB). fsmeta validates before sending,
//!   so in normal operation none fires.
//!
//! An expand migration: it only adds a table, which servers of the previous
//! release never read. `down` drops it.
use sea_orm_migration::prelude::*;

use crate::columns::sized_col;

/// Creates `ext_records`.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// Table and column names of `ext_records`.
#[derive(DeriveIden)]
enum ExtRecords {
    Table,
    TableName,
    Key,
    Value,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let chars = Check::named(
            "ext_records_table_name_chars_check",
            // A constant pattern in the DDL: no input is spliced in here.
            Expr::cust("table_name ~ '^[a-z0-9_]+$'"),
        );
        let value_len = Expr::expr(Func::cust("octet_length").arg(Expr::col(ExtRecords::Value)));
        manager
            .create_table(
                Table::create()
                    .table(ExtRecords::Table)
                    .if_not_exists()
                    .col(
                        sized_col(
                            ExtRecords::TableName,
                            "ext_records_table_name_check",
                            64,
                            false,
                        )
                        .extra("COLLATE \"C\""),
                    )
                    .col(sized_col(
                        ExtRecords::Key,
                        "ext_records_key_check",
                        1024,
                        true,
                    ))
                    .col(
                        ColumnDef::new(ExtRecords::Value)
                            .blob()
                            .not_null()
                            .check(Check::named(
                                "ext_records_value_check",
                                value_len.lte(1_048_576),
                            )),
                    )
                    // A table constraint: a column takes one CHECK, the length's.
                    .check(chars)
                    .primary_key(
                        Index::create()
                            .name("ext_records_pkey")
                            .col(ExtRecords::TableName)
                            .col(ExtRecords::Key),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(ExtRecords::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
