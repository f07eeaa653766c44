//! Column definitions shared by the migrations.
//!
//! Released migrations call these, so they are frozen: a change here would
//! change what an old migration creates on a new database but not on an
//! existing one. Add a new helper instead of editing one.

use sea_orm_migration::prelude::*;

/// `CHECK (col BETWEEN lo AND hi)`, named `<table>_<column>_check`.
pub(crate) fn between(name: &'static str, col: impl IntoIden, lo: u64, hi: u64) -> Check {
    Check::named(name, Expr::col(col).between(lo, hi))
}

/// A u64 column: `NUMERIC(20,0) NOT NULL CHECK (0..=u64::MAX)` (`m20261127_000001_create_tables` says why).
pub(crate) fn u64_col(col: impl IntoIden, check: &'static str) -> ColumnDef {
    let col = col.into_iden();
    ColumnDef::new(col.clone())
        .decimal_len(20, 0)
        .not_null()
        .check(between(check, col, 0, u64::MAX))
        .to_owned()
}

/// A u32 column: `BIGINT NOT NULL CHECK (0..=u32::MAX)`.
pub(crate) fn u32_col(col: impl IntoIden, check: &'static str) -> ColumnDef {
    let col = col.into_iden();
    ColumnDef::new(col.clone())
        .big_integer()
        .not_null()
        .check(between(check, col, 0, u32::MAX.into()))
        .to_owned()
}

/// A small enum column: `SMALLINT NOT NULL CHECK (0..=max)`.
pub(crate) fn enum_col(col: impl IntoIden, check: &'static str, max: u64) -> ColumnDef {
    let col = col.into_iden();
    ColumnDef::new(col.clone())
        .small_integer()
        .not_null()
        .check(between(check, col, 0, max))
        .to_owned()
}

/// A text or bytea column whose byte length must be in `1..=max`.
pub(crate) fn sized_col(
    col: impl IntoIden,
    check: &'static str,
    max: u64,
    bytes: bool,
) -> ColumnDef {
    let col = col.into_iden();
    let mut def = ColumnDef::new(col.clone());
    if bytes {
        def.blob();
    } else {
        def.text();
    }
    let len = Expr::expr(Func::cust("octet_length").arg(Expr::col(col)));
    def.not_null()
        .check(Check::named(check, len.between(1, max)))
        .to_owned()
}

/// A timestamp column: `TIMESTAMPTZ NOT NULL`, limited to the years 1..=9999
/// (what `fsmeta::Timestamp` accepts; it also keeps out `infinity`, which no
/// client type can decode).
pub(crate) fn timestamp_col(col: impl IntoIden, check: &'static str) -> ColumnDef {
    let col = col.into_iden();
    let range = Expr::col(col.clone()).between(
        Expr::cust("TIMESTAMPTZ '0001-01-01 00:00:00+00'"),
        Expr::cust("TIMESTAMPTZ '9999-12-31 23:59:59.999999+00'"),
    );
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .not_null()
        .check(Check::named(check, range))
        .to_owned()
}

/// A node id column: `TEXT COLLATE "C" NOT NULL`, 1..=1024 bytes. The C
/// collation orders by bytes, as Rust's `String` does, whatever the
/// database's default collation, so `ORDER BY node_id` matches the other
/// backends.
pub(crate) fn node_id_col(col: impl IntoIden, check: &'static str) -> ColumnDef {
    sized_col(col, check, 1024, false)
        .extra("COLLATE \"C\"")
        .to_owned()
}
