//! Input validation shared by every backend.
//!
//! Each backend calls these before it sends or writes anything, so a rejected
//! input is [`Error::Invalid`] on every backend alike and leaves the
//! transaction usable.

use crate::error::{Error, Result};
use crate::file::{FileHandle, FileMeta};
use crate::lock::model::{LockQuery, PersistedLock};
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
    timestamp("acquired_at", lock.acquired_at)
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
