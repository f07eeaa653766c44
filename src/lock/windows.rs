//! The Windows (SMB) operations beside the arbiter's: exact unlock of one
//! stacked lock and the mandatory I/O check.

use tracing::{Instrument, field};
use uuid::Uuid;

use crate::error::Result;
use crate::file::FileHandle;
use crate::lock::{
    ByteRange, LockExtent, LockFlavor, LockOwner, LockQuery, LockType, PersistedLock,
    ShareReservation,
};
use crate::tx::MetadataTransaction;
use crate::validate;

/// The answer to [`unlock_exact`].
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unlock {
    /// This lock record was deleted.
    Unlocked {
        /// The id of the deleted record.
        id: Uuid,
    },
    /// No Windows lock of the owner has exactly that offset and length
    /// (SMB `STATUS_RANGE_NOT_LOCKED`). Nothing was written.
    NotLocked,
}

/// The answer to [`check_io`].
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Io {
    /// No stored lock of another owner forbids the I/O.
    Allowed,
    /// This stored lock forbids it (SMB `STATUS_FILE_LOCK_CONFLICT`); the
    /// first such lock in id order, as stored.
    Conflict {
        /// The lock that blocks the I/O.
        lock: PersistedLock,
    },
}

/// Removes one Windows lock of `owner` on `file` with exactly this `offset`
/// and `length` (SMB2 LOCK with `SMB2_LOCKFLAG_UNLOCK`, MS-FSA 2.1.5.9).
///
/// Only [`LockFlavor::Windows`] records without a deny mode match, by owner
/// (`owner_id` = the open, `client_id`), offset and length (raw values: a
/// zero-byte lock is unlocked with length 0); the lock type does not matter.
/// When several are stacked, an exclusive one goes before any shared one
/// (smbtorture `smb2.lock.unlock`: "exclusive locks should be unlocked
/// before shared"), and among those of one type the most recent: the
/// greatest `acquired_at`, then the greatest id. None matching is
/// [`Unlock::NotLocked`] (`STATUS_RANGE_NOT_LOCKED`) and nothing is written.
/// A range past 2^64 is [`Error::Invalid`](crate::Error::Invalid). POSIX records are never touched
/// (see [`release_range`](crate::release_range)).
pub async fn unlock_exact(
    tx: &mut (dyn MetadataTransaction + '_),
    file: &FileHandle,
    owner: &LockOwner,
    offset: u64,
    length: u64,
) -> Result<Unlock> {
    let span = tracing::debug_span!(
        "unlock_exact",
        file = %crate::obs::hex(file.as_bytes()),
        owner = %owner.owner_id,
        client = %owner.client_id,
        offset = offset,
        length = length,
        decision = field::Empty,
    );
    let result = async {
        validate::file_handle(file)?;
        validate::id("owner_id", &owner.owner_id)?;
        validate::id("client_id", &owner.client_id)?;
        validate::windows_range(LockFlavor::Windows, offset, length)?;
        let stored = tx.list_locks(&LockQuery::by_file(file)).await?;
        let Some(latest) = stored
            .iter()
            .filter(|l| {
                l.flavor == LockFlavor::Windows
                    && l.share_reservation == ShareReservation::None
                    && l.owner_id == owner.owner_id
                    && l.client_id == owner.client_id
                    && l.offset == offset
                    && l.length == length
            })
            .max_by_key(|l| (l.lock_type == LockType::Exclusive, l.acquired_at, l.id))
        else {
            return Ok(Unlock::NotLocked);
        };
        tx.delete_lock(latest.id).await?;
        Ok(Unlock::Unlocked { id: latest.id })
    }
    .instrument(span.clone())
    .await;
    match &result {
        Ok(Unlock::Unlocked { .. }) => span.record("decision", "unlocked"),
        Ok(Unlock::NotLocked) => span.record("decision", "not_locked"),
        Err(e) => span.record("decision", crate::obs::kind(e)),
    };
    result
}

/// Whether `owner` may read (`write == false`) or write `range` of `file`,
/// against the stored locks (SMB's mandatory byte-range locks). Writes nothing.
///
/// `range` is an I/O: `range.length` bytes from `range.offset` (a length
/// that runs past 2^64 stops at the last byte), and a zero-length I/O
/// touches nothing and is always allowed. A stored lock blocks the I/O
/// when its bytes (by its flavour: a POSIX length 0 reaches EOF, a Windows
/// zero-byte lock covers nothing and so blocks nothing) share a byte with it
/// and either
///
/// - it is another owner's exclusive lock (reads and writes are blocked), or
/// - it is a shared lock and the I/O writes: any owner's, the caller's own
///   included (MS-FSA 2.1.4.10; smbtorture `smb2.lock.rw-shared` expects
///   the holder's own write to fail with `STATUS_FILE_LOCK_CONFLICT`).
///
/// The owner's own exclusive locks never block it. POSIX locks count too: they are
/// advisory between POSIX owners, who never call this, but an SMB server
/// checking an I/O honours them (so an NFS client's write lock keeps SMB
/// clients out). The answer names the first blocking lock in id order.
///
/// One index read: [`list_locks`](crate::LockStore::list_locks) by file.
pub async fn check_io(
    tx: &mut (dyn MetadataTransaction + '_),
    file: &FileHandle,
    owner: &LockOwner,
    range: ByteRange,
    write: bool,
) -> Result<Io> {
    validate::file_handle(file)?;
    validate::id("owner_id", &owner.owner_id)?;
    validate::id("client_id", &owner.client_id)?;
    let Some(io) = LockExtent::io(range) else {
        return Ok(Io::Allowed);
    };
    let stored = tx.list_locks(&LockQuery::by_file(file)).await?;
    Ok(stored
        .into_iter()
        .find(|l| {
            let own = l.owner_id == owner.owner_id && l.client_id == owner.client_id;
            let blocks = match l.lock_type {
                LockType::Exclusive => !own,
                LockType::Shared => write,
            };
            blocks && l.extent().shares_bytes(&io)
        })
        .map_or(Io::Allowed, |lock| Io::Conflict { lock }))
}
