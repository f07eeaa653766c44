//! Input validation shared by every backend.
//!
//! Each backend calls these before it sends or writes anything, so a rejected
//! input is [`Error::Invalid`] on every backend alike and leaves the
//! transaction usable.

use crate::error::{Error, Result};
use crate::ext::{KeyRange, MAX_EXT_KEY_LEN, MAX_EXT_TABLE_LEN, MAX_EXT_VALUE_LEN};
use crate::file::{FileHandle, FileMeta};
use crate::lock::model::{LockFlavor, LockQuery, PersistedLock};
use crate::node::{EpochRecord, NodeState};
use crate::time::Timestamp;

/// The longest owner, client or node id accepted, in bytes.
pub const MAX_ID_LEN: usize = 1024;
/// The longest share name accepted, in bytes.
pub const MAX_SHARE_NAME_LEN: usize = 255;

/// An owner, client or node id: 1 to 1024 bytes, no NUL.
pub fn id(field: &str, value: &str) -> Result<()> {
    text(field, value, MAX_ID_LEN)
}

/// A share name: 1 to 255 bytes, no NUL.
pub fn share_name(value: &str) -> Result<()> {
    text("share_name", value, MAX_SHARE_NAME_LEN)
}

/// A file handle read back from storage or built without [`FileHandle::new`]:
/// 1 to 128 bytes.
pub fn file_handle(handle: &FileHandle) -> Result<()> {
    FileHandle::new(handle.as_bytes()).map(drop)
}

/// A timestamp in the years 1 to 9999.
pub fn timestamp(field: &str, value: Timestamp) -> Result<()> {
    if value.is_valid() {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{field}: {} µs since the epoch is outside the years 1 to 9999",
            value.as_micros()
        )))
    }
}

/// Every field of a lock.
pub fn lock(lock: &PersistedLock) -> Result<()> {
    share_name(&lock.share_name)?;
    file_handle(&lock.file_id)?;
    id("owner_id", &lock.owner_id)?;
    id("client_id", &lock.client_id)?;
    windows_range(lock.flavor, lock.offset, lock.length)?;
    timestamp("acquired_at", lock.acquired_at)
}

/// A Windows lock's range may not run past 2^64: `offset + length - 1`
/// must not overflow (MS-FSA `STATUS_INVALID_LOCK_RANGE`). Length 0 (a
/// zero-byte lock) is valid at any offset. POSIX ranges saturate instead.
pub fn windows_range(flavor: LockFlavor, offset: u64, length: u64) -> Result<()> {
    if flavor == LockFlavor::Windows && length > 0 && offset.checked_add(length - 1).is_none() {
        return Err(Error::Invalid(format!(
            "offset/length: a Windows lock of {length} bytes at {offset} runs past 2^64 \
             (STATUS_INVALID_LOCK_RANGE)"
        )));
    }
    Ok(())
}

/// Every field of a file record.
pub fn file(file: &FileMeta) -> Result<()> {
    file_handle(&file.handle)?;
    share_name(&file.share_name)?;
    timestamp("atime", file.atime)?;
    timestamp("mtime", file.mtime)?;
    timestamp("ctime", file.ctime)
}

/// A node's state: a valid node id.
pub fn node(node: &NodeState) -> Result<()> {
    id("node_id", &node.node_id)
}

/// An epoch record: a valid node id and start time.
pub fn epoch_record(record: &EpochRecord) -> Result<()> {
    id("node_id", &record.node_id)?;
    timestamp("started_at", record.started_at)
}

/// A page size: at least 1.
pub fn page_limit(limit: usize) -> Result<()> {
    if limit == 0 {
        Err(Error::Invalid(
            "limit: a page holds at least one record".into(),
        ))
    } else {
        Ok(())
    }
}

/// A lock query: a filter that is set must not be empty (an empty id matches
/// nothing and signals a bug in the caller).
pub fn query(query: &LockQuery) -> Result<()> {
    if let Some(owner) = &query.owner_id {
        id("owner_id", owner)?;
    }
    if let Some(client) = &query.client_id {
        id("client_id", client)?;
    }
    if let Some(share) = &query.share_name {
        share_name(share)?;
    }
    if let Some(file) = &query.file_id {
        file_handle(file)?;
    }
    Ok(())
}

/// An extension table name: 1 to 64 bytes of `[a-z0-9_]`.
pub fn ext_table(table: &str) -> Result<()> {
    if table.is_empty() || table.len() > MAX_EXT_TABLE_LEN {
        return Err(Error::Invalid(format!(
            "table: {} bytes, 1 to {MAX_EXT_TABLE_LEN} allowed",
            table.len()
        )));
    }
    if let Some(bad) = table
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        return Err(Error::Invalid(format!(
            "table: {table:?} contains {bad:?}; only a-z, 0-9 and _ are allowed"
        )));
    }
    Ok(())
}

/// An extension key: 1 to 1024 bytes, any bytes.
pub fn ext_key(field: &str, key: &[u8]) -> Result<()> {
    if key.is_empty() || key.len() > MAX_EXT_KEY_LEN {
        return Err(Error::Invalid(format!(
            "{field}: {} bytes, 1 to {MAX_EXT_KEY_LEN} allowed",
            key.len()
        )));
    }
    Ok(())
}

/// An extension value: at most 1 MiB.
pub fn ext_value(value: &[u8]) -> Result<()> {
    if value.len() > MAX_EXT_VALUE_LEN {
        return Err(Error::Invalid(format!(
            "value: {} bytes, at most {MAX_EXT_VALUE_LEN} allowed",
            value.len()
        )));
    }
    Ok(())
}

/// The address of an extension record: its table name and key.
pub fn ext_address(table: &str, key: &[u8]) -> Result<()> {
    ext_table(table)?;
    ext_key("key", key)
}

/// Every field of an extension record: table name, key and value.
pub fn ext_record(table: &str, key: &[u8], value: &[u8]) -> Result<()> {
    ext_address(table, key)?;
    ext_value(value)
}

/// The bounds of an extension scan: each key in it at most 1024 bytes (a
/// prefix or start may be empty), and a start not above its end.
pub fn ext_range(range: &KeyRange) -> Result<()> {
    let long = |field: &str, key: &[u8]| {
        if key.len() > MAX_EXT_KEY_LEN {
            Err(Error::Invalid(format!(
                "{field}: {} bytes, at most {MAX_EXT_KEY_LEN} allowed",
                key.len()
            )))
        } else {
            Ok(())
        }
    };
    match range {
        KeyRange::All => Ok(()),
        KeyRange::Prefix(prefix) => long("prefix", prefix),
        KeyRange::Between { start, end } => {
            long("start", start)?;
            if let Some(end) = end {
                long("end", end)?;
                if start > end {
                    return Err(Error::Invalid("range: start is above end".into()));
                }
            }
            Ok(())
        }
    }
}

/// Everything an extension scan takes: table, range, cursor and page size.
pub fn ext_scan(table: &str, range: &KeyRange, after: Option<&[u8]>, limit: usize) -> Result<()> {
    ext_table(table)?;
    ext_range(range)?;
    if let Some(after) = after {
        ext_key("after", after)?;
    }
    page_limit(limit)
}

fn text(field: &str, value: &str, max: usize) -> Result<()> {
    if value.is_empty() {
        return Err(Error::Invalid(format!("{field}: must not be empty")));
    }
    if value.len() > max {
        return Err(Error::Invalid(format!(
            "{field}: {} bytes, at most {max} allowed",
            value.len()
        )));
    }
    if value.contains('\0') {
        return Err(Error::Invalid(format!("{field}: must not contain NUL")));
    }
    Ok(())
}

/// A waiter's context: at most [`MAX_WAITER_CONTEXT_LEN`](crate::MAX_WAITER_CONTEXT_LEN) bytes.
pub fn waiter_context(context: &[u8]) -> Result<()> {
    if context.len() > crate::waiter::MAX_WAITER_CONTEXT_LEN {
        return Err(Error::Invalid(format!(
            "context: {} bytes, at most {}",
            context.len(),
            crate::waiter::MAX_WAITER_CONTEXT_LEN
        )));
    }
    Ok(())
}

/// Every field of a waiter.
pub fn waiter(waiter: &crate::waiter::Waiter) -> Result<()> {
    share_name(&waiter.share_name)?;
    file_handle(&waiter.file_id)?;
    id("owner_id", &waiter.owner_id)?;
    id("client_id", &waiter.client_id)?;
    id("node_id", &waiter.node_id)?;
    windows_range(waiter.flavor, waiter.offset, waiter.length)?;
    timestamp("since", waiter.since)?;
    waiter_context(&waiter.context)
}

/// A waiter query: a filter that is set must be a valid value (an empty
/// string can match nothing and signals a bug).
pub fn waiter_query(query: &crate::waiter::WaiterQuery) -> Result<()> {
    if let Some(file) = &query.file_id {
        file_handle(file)?;
    }
    for (field, value) in [
        ("owner_id", &query.owner_id),
        ("client_id", &query.client_id),
        ("node_id", &query.node_id),
    ] {
        if let Some(value) = value {
            id(field, value)?;
        }
    }
    Ok(())
}
