//! Rows ↔ fsmeta's model: the `SELECT`s with their checked columns, the
//! rows written, and the conversions back, each stored value checked against
//! the model so that a row edited by hand is `Corrupt`, never a panic or a
//! silently wrong value.

use sea_orm::prelude::{DateTimeUtc, Decimal};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QuerySelect, Select};

use super::entity::{epoch_records, files, locks, nodes};
use crate::error::{Error, Result};
use crate::file::{FileHandle, FileKind, FileMeta};
use crate::lock::{LockFlavor, LockQuery, LockType, PersistedLock, ShareReservation};
use crate::node::{EpochRecord, NodeState};
use crate::time::Timestamp;
use crate::validate;

/// Rows per statement of [`crate::LockStore::put_locks`]: 11 bind parameters each,
/// far below PostgreSQL's 65,535 per statement.
pub(super) const LOCKS_PER_INSERT: usize = 1000;

/// The `files` row of a (validated) file.
pub(super) fn file_row(file: &FileMeta) -> Result<files::ActiveModel> {
    Ok(files::ActiveModel {
        handle: Set(file.handle.as_bytes().to_vec()),
        share_name: Set(file.share_name.clone()),
        kind: Set(i16::from(file.kind as u8)),
        mode: Set(file.mode.into()),
        uid: Set(file.uid.into()),
        gid: Set(file.gid.into()),
        nlink: Set(file.nlink.into()),
        size: Set(Decimal::from(file.size)),
        atime: Set(to_db_time("atime", file.atime)?),
        mtime: Set(to_db_time("mtime", file.mtime)?),
        ctime: Set(to_db_time("ctime", file.ctime)?),
    })
}

/// `ON CONFLICT (handle) DO UPDATE` of every other column: `put_file` is an upsert.
pub(super) fn file_upsert() -> OnConflict {
    use files::Column as C;
    OnConflict::column(C::Handle)
        .update_columns([
            C::ShareName,
            C::Kind,
            C::Mode,
            C::Uid,
            C::Gid,
            C::Nlink,
            C::Size,
            C::Atime,
            C::Mtime,
            C::Ctime,
        ])
        .to_owned()
}

/// The `nodes` row of a (validated) node state.
pub(super) fn node_row(node: &NodeState) -> Result<nodes::ActiveModel> {
    let lease = node
        .lease_expires_at
        .map(|t| to_db_time("lease_expires_at", t))
        .transpose()?;
    let taken_at = node
        .taken_over
        .as_ref()
        .map(|t| to_db_time("taken_over.at", t.at))
        .transpose()?;
    Ok(nodes::ActiveModel {
        node_id: Set(node.node_id.clone()),
        epoch: Set(Decimal::from(node.epoch)),
        clean_shutdown: Set(node.clean_shutdown),
        lease_expires_at: Set(lease),
        taken_over_by: Set(node.taken_over.as_ref().map(|t| t.by.clone())),
        taken_over_at: Set(taken_at),
    })
}

/// The `epoch_records` row of a (validated) epoch record.
pub(super) fn epoch_record_row(record: &EpochRecord) -> Result<epoch_records::ActiveModel> {
    Ok(epoch_records::ActiveModel {
        epoch: Set(Decimal::from(record.epoch)),
        node_id: Set(record.node_id.clone()),
        started_at: Set(to_db_time("started_at", record.started_at)?),
    })
}

/// The `locks` row of a (validated) lock.
pub(super) fn lock_row(lock: &PersistedLock) -> Result<locks::ActiveModel> {
    Ok(locks::ActiveModel {
        id: Set(lock.id),
        share_name: Set(lock.share_name.clone()),
        file_id: Set(lock.file_id.as_bytes().to_vec()),
        owner_id: Set(lock.owner_id.clone()),
        client_id: Set(lock.client_id.clone()),
        lock_type: Set(i16::from(lock.lock_type as u8)),
        offset: Set(Decimal::from(lock.offset)),
        length: Set(Decimal::from(lock.length)),
        share_reservation: Set(i16::from(lock.share_reservation as u8)),
        acquired_at: Set(to_db_time("acquired_at", lock.acquired_at)?),
        server_epoch: Set(Decimal::from(lock.server_epoch)),
        flavor: Set(i16::from(lock.flavor as u8)),
    })
}

/// `ON CONFLICT (id) DO UPDATE` of every other column: `put_lock` is an upsert.
pub(super) fn lock_upsert() -> OnConflict {
    use locks::Column as C;
    OnConflict::column(C::Id)
        .update_columns([
            C::ShareName,
            C::FileId,
            C::OwnerId,
            C::ClientId,
            C::LockType,
            C::Offset,
            C::Length,
            C::ShareReservation,
            C::AcquiredAt,
            C::ServerEpoch,
            C::Flavor,
        ])
        .to_owned()
}

/// The filters of a [`LockQuery`], ANDed; no filter matches every lock.
pub(super) fn lock_condition(query: &LockQuery) -> Condition {
    use locks::Column as C;
    Condition::all()
        .add_option(query.file_id.as_ref().map(|f| C::FileId.eq(f.as_bytes())))
        .add_option(query.owner_id.as_deref().map(|o| C::OwnerId.eq(o)))
        .add_option(query.client_id.as_deref().map(|c| C::ClientId.eq(c)))
        .add_option(query.share_name.as_deref().map(|s| C::ShareName.eq(s)))
        .add_option(
            query
                .server_epoch_below
                .map(|e| C::ServerEpoch.lt(Decimal::from(e))),
        )
        .add_option(
            query
                .server_epoch
                .map(|e| C::ServerEpoch.eq(Decimal::from(e))),
        )
}

/// `SELECT` of `files` whose timestamps read as NULL when outside the years
/// 1..=9999 (see [`checked_time`]).
pub(super) fn select_files() -> Select<files::Entity> {
    use files::Column as C;
    files::Entity::find()
        .select_only()
        .columns([
            C::Handle,
            C::ShareName,
            C::Kind,
            C::Mode,
            C::Uid,
            C::Gid,
            C::Nlink,
            C::Size,
        ])
        .expr_as(checked_time(C::Atime), "atime")
        .expr_as(checked_time(C::Mtime), "mtime")
        .expr_as(checked_time(C::Ctime), "ctime")
}

/// `SELECT` of `epoch_records`, with `started_at` checked like [`select_files`].
pub(super) fn select_epoch_records() -> Select<epoch_records::Entity> {
    use epoch_records::Column as C;
    epoch_records::Entity::find()
        .select_only()
        .columns([C::Epoch, C::NodeId])
        .expr_as(checked_time(C::StartedAt), "started_at")
}

/// `SELECT` of `locks`, with `acquired_at` checked like [`select_files`].
pub(super) fn select_locks() -> Select<locks::Entity> {
    use locks::Column as C;
    locks::Entity::find()
        .select_only()
        .columns([
            C::Id,
            C::ShareName,
            C::FileId,
            C::OwnerId,
            C::ClientId,
            C::LockType,
            C::Offset,
            C::Length,
            C::ShareReservation,
            C::ServerEpoch,
            C::Flavor,
        ])
        .expr_as(checked_time(C::AcquiredAt), "acquired_at")
}

/// `CASE WHEN col BETWEEN <year 1> AND <year 9999> THEN col END`.
///
/// The migration's CHECKs keep other timestamps out, but a row written with
/// them disabled could hold `infinity` or a year past chrono's range, which
/// the driver cannot decode (it panics). Reading those as NULL turns them into
/// a decode error, reported as [`Error::Corrupt`].
pub(super) fn checked_time<C: ColumnTrait>(col: C) -> sea_orm::sea_query::Expr {
    let lo = to_db_time("", Timestamp::MIN_VALID).expect("MIN_VALID is a valid timestamp");
    let hi = to_db_time("", Timestamp::MAX_VALID).expect("MAX_VALID is a valid timestamp");
    Expr::case(col.between(lo, hi), Expr::col((col.entity_name(), col))).into()
}

// ---------------------------------------------------------------------------
// Conversions back: every stored value is checked against the model.

/// The file a `files` row holds; `Corrupt` when it breaks the model.
pub(super) fn file_from_row(row: files::Model) -> Result<FileMeta> {
    let file = FileMeta {
        handle: handle_from_db("files.handle", row.handle)?,
        share_name: row.share_name,
        kind: small_enum::<FileKind>("files.kind", row.kind)?,
        mode: u32_from_db("files.mode", row.mode)?,
        uid: u32_from_db("files.uid", row.uid)?,
        gid: u32_from_db("files.gid", row.gid)?,
        nlink: u32_from_db("files.nlink", row.nlink)?,
        size: u64_from_db("files.size", row.size)?,
        atime: time_from_db(row.atime),
        mtime: time_from_db(row.mtime),
        ctime: time_from_db(row.ctime),
    };
    validate::file(&file).map_err(stored("files"))?;
    Ok(file)
}

/// The lock a `locks` row holds; `Corrupt` when it breaks the model.
pub(super) fn lock_from_row(row: locks::Model) -> Result<PersistedLock> {
    let lock = PersistedLock {
        id: row.id,
        share_name: row.share_name,
        file_id: handle_from_db("locks.file_id", row.file_id)?,
        owner_id: row.owner_id,
        client_id: row.client_id,
        lock_type: small_enum::<LockType>("locks.lock_type", row.lock_type)?,
        offset: u64_from_db("locks.offset", row.offset)?,
        length: u64_from_db("locks.length", row.length)?,
        share_reservation: small_enum::<ShareReservation>(
            "locks.share_reservation",
            row.share_reservation,
        )?,
        acquired_at: time_from_db(row.acquired_at),
        server_epoch: u64_from_db("locks.server_epoch", row.server_epoch)?,
        flavor: small_enum::<LockFlavor>("locks.flavor", row.flavor)?,
    };
    validate::lock(&lock).map_err(stored("locks"))?;
    Ok(lock)
}

/// The node state a `nodes` row holds; `Corrupt` when it breaks the model.
pub(super) fn node_from_row(row: nodes::Model) -> Result<NodeState> {
    let node = NodeState {
        node_id: row.node_id,
        epoch: u64_from_db("nodes.epoch", row.epoch)?,
        clean_shutdown: row.clean_shutdown,
        lease_expires_at: row.lease_expires_at.map(time_from_db),
        taken_over: match (row.taken_over_by, row.taken_over_at) {
            (None, None) => None,
            (Some(by), Some(at)) => Some(crate::node::Takeover {
                by,
                at: time_from_db(at),
            }),
            _ => {
                return Err(Error::Corrupt(
                    "nodes: stored row: taken_over_by and taken_over_at must be set together"
                        .into(),
                ));
            }
        },
    };
    validate::node(&node).map_err(stored("nodes"))?;
    Ok(node)
}

/// The record an `epoch_records` row holds; `Corrupt` when it breaks the model.
pub(super) fn epoch_record_from_row(row: epoch_records::Model) -> Result<EpochRecord> {
    let record = EpochRecord {
        epoch: u64_from_db("epoch_records.epoch", row.epoch)?,
        node_id: row.node_id,
        started_at: time_from_db(row.started_at),
    };
    validate::epoch_record(&record).map_err(stored("epoch_records"))?;
    Ok(record)
}

/// A page size for `LIMIT`: PostgreSQL takes a BIGINT, and the driver cannot
/// bind a u64 above `i64::MAX`; no page is that large anyway.
pub(super) fn page_size(limit: usize) -> u64 {
    Ord::min(u64::try_from(limit).unwrap_or(u64::MAX), i64::MAX as u64)
}

/// Maps a validation failure of a stored record to `Corrupt`.
pub(super) fn stored(table: &'static str) -> impl Fn(Error) -> Error {
    move |e| match e {
        Error::Invalid(why) => Error::Corrupt(format!("{table}: stored row: {why}")),
        other => other,
    }
}

/// A `BYTEA` file handle column.
pub(super) fn handle_from_db(column: &str, bytes: Vec<u8>) -> Result<FileHandle> {
    FileHandle::new(bytes).map_err(|e| Error::Corrupt(format!("{column}: {e}")))
}

/// A `SMALLINT` enum column (kind, lock type, share reservation).
pub(super) fn small_enum<T: TryFrom<u8, Error = Error>>(column: &str, value: i16) -> Result<T> {
    let byte = u8::try_from(value)
        .map_err(|_| Error::Corrupt(format!("{column}: {value} is out of range")))?;
    T::try_from(byte).map_err(|e| match e {
        Error::Corrupt(why) => Error::Corrupt(format!("{column}: {why}")),
        other => other,
    })
}

/// A u32 stored as `BIGINT`.
pub(super) fn u32_from_db(column: &str, value: i64) -> Result<u32> {
    u32::try_from(value).map_err(|_| Error::Corrupt(format!("{column}: {value} is not a u32")))
}

/// A u64 stored as `NUMERIC(20,0)`.
pub(super) fn u64_from_db(column: &str, value: Decimal) -> Result<u64> {
    if !value.is_integer() {
        return Err(Error::Corrupt(format!(
            "{column}: {value} is not an integer"
        )));
    }
    u64::try_from(value).map_err(|_| Error::Corrupt(format!("{column}: {value} is not a u64")))
}

/// A `TIMESTAMPTZ` read through [`checked_time`].
pub(super) fn time_from_db(value: DateTimeUtc) -> Timestamp {
    // Exact: PostgreSQL keeps microseconds, and `checked_time` let only
    // years 1..=9999 through (the caller's `validate` checks it again).
    Timestamp::from_micros(value.timestamp_micros())
}

/// A timestamp as `TIMESTAMPTZ`; `Invalid` when chrono cannot represent it.
pub(super) fn to_db_time(field: &str, value: Timestamp) -> Result<DateTimeUtc> {
    DateTimeUtc::from_timestamp_micros(value.as_micros()).ok_or_else(|| {
        Error::Invalid(format!(
            "{field}: {} µs is not a representable instant",
            value.as_micros()
        ))
    })
}

/// The error for a deleted `server_state` row.
pub(super) fn missing_state() -> Error {
    Error::Corrupt("server_state: the row (id = 1) is missing".into())
}
