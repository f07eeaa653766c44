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
    // Checked in place: every record written or read back passes here.
    FileHandle::check(handle.as_bytes())
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

/// A node's state: a valid node id, lease expiry and takeover (a valid
/// taker's id and time).
pub fn node(node: &NodeState) -> Result<()> {
    id("node_id", &node.node_id)?;
    if let Some(until) = node.lease_expires_at {
        timestamp("lease_expires_at", until)?;
    }
    if let Some(takeover) = &node.taken_over {
        id("taken_over.by", &takeover.by)?;
        timestamp("taken_over.at", takeover.at)?;
    }
    Ok(())
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

/// Opaque client bytes (owner, principal): 1 to `max` bytes, any bytes.
fn client_bytes(field: &str, value: &[u8], max: usize) -> Result<()> {
    if value.is_empty() || value.len() > max {
        return Err(Error::Invalid(format!(
            "{field}: {} bytes, 1 to {max} allowed",
            value.len()
        )));
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

/// Every field of a client record: ids, owner (1..=1024 bytes), principal
/// and callback (1..=1024 bytes when set; the callback without NUL), last
/// renewal time. The verifier is 8 bytes by its type.
pub fn client(client: &crate::client::ClientRecord) -> Result<()> {
    use crate::client::{MAX_CLIENT_CALLBACK_LEN, MAX_CLIENT_OWNER_LEN, MAX_CLIENT_PRINCIPAL_LEN};
    id("client_id", &client.client_id)?;
    id("node_id", &client.node_id)?;
    client_bytes("owner", &client.owner, MAX_CLIENT_OWNER_LEN)?;
    if let Some(principal) = &client.principal {
        client_bytes("principal", principal, MAX_CLIENT_PRINCIPAL_LEN)?;
    }
    if let Some(callback) = &client.callback {
        text("callback", callback, MAX_CLIENT_CALLBACK_LEN)?;
    }
    timestamp("last_renewed", client.last_renewed)
}

/// A client query: a filter that is set must be valid (an empty node id or
/// owner matches nothing and signals a bug in the caller).
pub fn client_query(query: &crate::client::ClientQuery) -> Result<()> {
    if let Some(node) = &query.node_id {
        id("node_id", node)?;
    }
    if let Some(owner) = &query.owner {
        client_bytes("owner", owner, crate::client::MAX_CLIENT_OWNER_LEN)?;
    }
    Ok(())
}

/// Every field of an open: ids, share, handle, masks (already typed), the
/// lock-sequence array (empty or 64 entries of at most 0x1f), timestamps.
pub fn open(open: &crate::open::OpenRecord) -> Result<()> {
    use crate::open::{LOCK_SEQUENCE_ENTRIES, MAX_LOCK_SEQUENCE_ENTRY};
    file_handle(&open.file)?;
    share_name(&open.share_name)?;
    id("client_id", &open.client_id)?;
    id("owner_id", &open.owner_id)?;
    crate::open::ShareMask::from_bits(open.access.bits())?;
    crate::open::ShareMask::from_bits(open.deny.bits())?;
    let n = open.lock_sequences.len();
    if n != 0 && n != LOCK_SEQUENCE_ENTRIES {
        return Err(Error::Invalid(format!(
            "lock_sequences: {n} entries, 0 or {LOCK_SEQUENCE_ENTRIES} allowed"
        )));
    }
    if let Some(bad) = open
        .lock_sequences
        .iter()
        .find(|e| **e > MAX_LOCK_SEQUENCE_ENTRY)
    {
        return Err(Error::Invalid(format!(
            "lock_sequences: entry {bad:#x} is above {MAX_LOCK_SEQUENCE_ENTRY:#x} (valid bit 0x10, sequence 0..=15)"
        )));
    }
    if let Some(at) = open.disconnected_at {
        timestamp("disconnected_at", at)?;
    }
    timestamp("opened_at", open.opened_at)
}

/// Every field of a lease: ids, share, handle, a valid state and break
/// target, and the break fields consistent (`breaking` exactly when a break
/// start time is set; the target is below the state; no target otherwise).
pub fn lease(lease: &crate::open::LeaseRecord) -> Result<()> {
    use crate::open::LeaseState;
    file_handle(&lease.file)?;
    share_name(&lease.share_name)?;
    id("client_id", &lease.client_id)?;
    LeaseState::from_bits(lease.state.bits())?;
    LeaseState::from_bits(lease.break_to.bits())?;
    match (lease.breaking, lease.break_started_at) {
        (true, Some(at)) => {
            timestamp("break_started_at", at)?;
            if !lease.state.contains(lease.break_to) || lease.state == lease.break_to {
                return Err(Error::Invalid(format!(
                    "break_to: {:#x} is not below the state {:#x}",
                    lease.break_to.bits(),
                    lease.state.bits()
                )));
            }
            Ok(())
        }
        (false, None) if lease.break_to == LeaseState::NONE => Ok(()),
        _ => Err(Error::Invalid(
            "breaking, break_to and break_started_at: a break has a target and a start time, no break has neither".into(),
        )),
    }
}

/// Every field of a delegation: ids, share, handle, grant time.
pub fn delegation(delegation: &crate::open::DelegationRecord) -> Result<()> {
    file_handle(&delegation.file)?;
    share_name(&delegation.share_name)?;
    id("client_id", &delegation.client_id)?;
    timestamp("granted_at", delegation.granted_at)
}

/// An open query: a filter that is set must be valid (not empty).
pub fn open_query(query: &crate::open::OpenQuery) -> Result<()> {
    if let Some(file) = &query.file {
        file_handle(file)?;
    }
    if let Some(client) = &query.client_id {
        id("client_id", client)?;
    }
    if let Some(share) = &query.share_name {
        share_name(share)?;
    }
    if let Some(at) = query.disconnected_before {
        timestamp("disconnected_before", at)?;
    }
    Ok(())
}

/// A lease query: a filter that is set must be valid (not empty).
pub fn lease_query(query: &crate::open::LeaseQuery) -> Result<()> {
    if let Some(file) = &query.file {
        file_handle(file)?;
    }
    if let Some(client) = &query.client_id {
        id("client_id", client)?;
    }
    Ok(())
}

/// A delegation query: a filter that is set must be valid (not empty).
pub fn delegation_query(query: &crate::open::DelegationQuery) -> Result<()> {
    if let Some(file) = &query.file {
        file_handle(file)?;
    }
    if let Some(client) = &query.client_id {
        id("client_id", client)?;
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
