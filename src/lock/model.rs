//! The lock value types: what a lock is, who holds it, how it is stored and
//! queried. A leaf below validation and the [`LockStore`](super::LockStore)
//! trait, which both use it.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::range::ByteRange;
use crate::error::{Error, Result};
use crate::file::FileHandle;
use crate::time::Timestamp;

/// Read (shared) or write (exclusive) byte-range lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum LockType {
    /// A read lock: any number may overlap.
    Shared = 0,
    /// A write lock: overlaps no other owner's lock.
    Exclusive = 1,
}

impl TryFrom<u8> for LockType {
    type Error = Error;
    fn try_from(value: u8) -> Result<Self> {
        match value {
            0 => Ok(LockType::Shared),
            1 => Ok(LockType::Exclusive),
            other => Err(Error::Corrupt(format!("lock type {other} is not in 0..=1"))),
        }
    }
}

/// Which protocol's byte-range rules a lock follows.
///
/// The flavour decides what a lock's `offset`/`length` mean and how the
/// arbiter treats it (see [`acquire_lock`](crate::acquire_lock)):
///
/// - [`Posix`](LockFlavor::Posix) (NLM, NFSv4, `fcntl`): length 0 (and the
///   all-ones length) = to end of file; an owner's locks merge, split,
///   upgrade and downgrade.
/// - [`Windows`](LockFlavor::Windows) (SMB, MS-FSA): length 0 = a zero-byte
///   lock at `offset` (it covers no byte); `offset + length` may not pass
///   2^64; locks never merge or split, identical ones stack, and each is
///   removed by [`unlock_exact`](crate::unlock_exact).
///
/// Records written before flavours existed read as `Posix`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[repr(u8)]
pub enum LockFlavor {
    /// POSIX `fcntl` semantics (the default).
    #[default]
    Posix = 0,
    /// Windows (SMB / MS-FSA) semantics.
    Windows = 1,
}

impl TryFrom<u8> for LockFlavor {
    type Error = Error;
    fn try_from(value: u8) -> Result<Self> {
        match value {
            0 => Ok(LockFlavor::Posix),
            1 => Ok(LockFlavor::Windows),
            other => Err(Error::Corrupt(format!(
                "lock flavor {other} is not in 0..=1"
            ))),
        }
    }
}

/// The bytes a lock covers, by its flavour's meaning: an inclusive span of
/// bytes, or a zero-byte lock at one offset (Windows length 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LockExtent {
    /// Bytes `first..=last`.
    Bytes {
        /// First byte covered.
        first: u64,
        /// Last byte covered (inclusive; `u64::MAX` for to end of file).
        last: u64,
    },
    /// A Windows zero-byte lock at `offset`: covers no byte.
    ZeroByte {
        /// Where the lock sits.
        offset: u64,
    },
}

impl LockExtent {
    /// The extent of a lock of `flavor` at `offset` of `length` bytes.
    /// A Windows range whose end passes 2^64 is clamped to `u64::MAX`
    /// (validation rejects it before anything is stored).
    pub const fn of(flavor: LockFlavor, offset: u64, length: u64) -> Self {
        match flavor {
            LockFlavor::Posix => LockExtent::Bytes {
                first: offset,
                last: ByteRange::new(offset, length).last(),
            },
            LockFlavor::Windows => {
                if length == 0 {
                    LockExtent::ZeroByte { offset }
                } else {
                    LockExtent::Bytes {
                        first: offset,
                        last: offset.saturating_add(length - 1),
                    }
                }
            }
        }
    }

    /// The extent of an I/O of `range.length` bytes at `range.offset`:
    /// `None` for a zero-length I/O (it touches nothing).
    pub const fn io(range: ByteRange) -> Option<Self> {
        if range.length == 0 {
            None
        } else {
            Some(LockExtent::Bytes {
                first: range.offset,
                last: range.offset.saturating_add(range.length - 1),
            })
        }
    }

    /// True when the two share at least one byte (a zero-byte extent shares none).
    pub const fn shares_bytes(&self, other: &LockExtent) -> bool {
        match (*self, *other) {
            (LockExtent::Bytes { first: a, last: b }, LockExtent::Bytes { first: c, last: d }) => {
                a <= d && c <= b
            }
            _ => false,
        }
    }

    /// True when a zero-byte lock at `offset` lies strictly inside this
    /// extent (MS-FSA / Samba `brl_overlap`: `first < offset <= last`; a
    /// zero-byte lock at a lock's first byte does not overlap it).
    pub const fn strictly_holds(&self, offset: u64) -> bool {
        match *self {
            LockExtent::Bytes { first, last } => first < offset && offset <= last,
            LockExtent::ZeroByte { .. } => false,
        }
    }

    /// The overlap used for lock conflicts: shared bytes, or a zero-byte
    /// lock strictly inside the other extent. Two zero-byte locks never overlap.
    pub const fn overlaps(&self, other: &LockExtent) -> bool {
        match (*self, *other) {
            (LockExtent::ZeroByte { offset }, b) | (b, LockExtent::ZeroByte { offset }) => {
                b.strictly_holds(offset)
            }
            _ => self.shares_bytes(other),
        }
    }
}

/// An SMB/NFSv4 share reservation (deny mode). Applies to the whole file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum ShareReservation {
    /// Denies nothing.
    None = 0,
    /// Denies other owners' shared (read) locks.
    DenyRead = 1,
    /// Denies other owners' exclusive (write) locks.
    DenyWrite = 2,
    /// Denies every lock of other owners.
    DenyAll = 3,
}

impl ShareReservation {
    /// True when this reservation denies another owner a lock of type `lock_type`.
    pub const fn denies(self, lock_type: LockType) -> bool {
        matches!(
            (self, lock_type),
            (ShareReservation::DenyRead, LockType::Shared)
                | (ShareReservation::DenyWrite, LockType::Exclusive)
                | (ShareReservation::DenyAll, _)
        )
    }
}

impl TryFrom<u8> for ShareReservation {
    type Error = Error;
    fn try_from(value: u8) -> Result<Self> {
        Ok(match value {
            0 => ShareReservation::None,
            1 => ShareReservation::DenyRead,
            2 => ShareReservation::DenyWrite,
            3 => ShareReservation::DenyAll,
            other => {
                return Err(Error::Corrupt(format!(
                    "share reservation {other} is not in 0..=3"
                )));
            }
        })
    }
}

/// Who holds a lock: an owner (NFSv4 lock-owner, SMB open) of a client, on a share.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LockOwner {
    /// The owner within the client.
    pub owner_id: String,
    /// The client (NFS client id, SMB session).
    pub client_id: String,
    /// The share the lock was taken through.
    pub share_name: String,
}

impl LockOwner {
    /// True when both name the same owner (same `owner_id` and `client_id`; the share does not matter).
    pub fn same_owner(&self, other: &LockOwner) -> bool {
        self.owner_id == other.owner_id && self.client_id == other.client_id
    }
}

/// The lock manager's in-memory lock.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EnhancedLock {
    /// The lock's id.
    pub id: Uuid,
    /// Who holds it.
    pub owner: LockOwner,
    /// The locked file.
    pub file: FileHandle,
    /// The locked bytes.
    pub range: ByteRange,
    /// Read or write.
    pub lock_type: LockType,
    /// Whole-file deny mode held with the lock.
    pub share_reservation: ShareReservation,
    /// When it was granted.
    pub acquired_at: Timestamp,
    /// POSIX or Windows rules (what `range` means).
    pub flavor: LockFlavor,
}

impl EnhancedLock {
    /// The bytes the lock covers, by its flavour.
    pub const fn extent(&self) -> LockExtent {
        LockExtent::of(self.flavor, self.range.offset, self.range.length)
    }

    /// True when `self` and `other` cannot both be held.
    ///
    /// Only locks on the same file conflict, and an owner (same `owner_id` and
    /// `client_id`) never conflicts with itself. Byte ranges conflict when they
    /// overlap and at least one is exclusive. Share reservations apply to the
    /// whole file, in both directions: `DenyRead` conflicts with the other's
    /// shared lock, `DenyWrite` with the other's exclusive lock, `DenyAll` with both.
    ///
    /// Each range is read by its own lock's [`flavor`](LockFlavor) (see
    /// [`LockExtent::overlaps`]), so a Windows and a POSIX lock conflict by
    /// the same rule.
    pub fn conflicts_with(&self, other: &EnhancedLock) -> bool {
        if self.file != other.file || self.owner.same_owner(&other.owner) {
            return false;
        }
        let ranges = self.extent().overlaps(&other.extent())
            && (self.lock_type == LockType::Exclusive || other.lock_type == LockType::Exclusive);
        ranges
            || self.share_reservation.denies(other.lock_type)
            || other.share_reservation.denies(self.lock_type)
    }
}

/// The stored form of an [`EnhancedLock`], stamped with the server epoch that granted it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PersistedLock {
    /// The lock's id (the record's key).
    pub id: Uuid,
    /// The share the lock was taken through.
    pub share_name: String,
    /// The locked file.
    pub file_id: FileHandle,
    /// The owner within the client.
    pub owner_id: String,
    /// The client.
    pub client_id: String,
    /// Read or write.
    pub lock_type: LockType,
    /// First locked byte.
    pub offset: u64,
    /// Locked bytes; 0 = to end of file ([`LockFlavor::Posix`]) or a
    /// zero-byte lock ([`LockFlavor::Windows`]).
    pub length: u64,
    /// Whole-file deny mode.
    pub share_reservation: ShareReservation,
    /// When it was granted.
    pub acquired_at: Timestamp,
    /// The server epoch (incarnation) that granted it.
    pub server_epoch: u64,
    /// POSIX or Windows rules. For a Windows lock, `owner_id` is the SMB
    /// open (its FileId) and `client_id` the client (session / client GUID).
    pub flavor: LockFlavor,
}

impl PersistedLock {
    /// The persisted form of `lock`. `share_name` wins over `lock.owner.share_name`.
    pub fn from_enhanced(lock: &EnhancedLock, share_name: &str, epoch: u64) -> Self {
        PersistedLock {
            id: lock.id,
            share_name: share_name.to_owned(),
            file_id: lock.file.clone(),
            owner_id: lock.owner.owner_id.clone(),
            client_id: lock.owner.client_id.clone(),
            lock_type: lock.lock_type,
            offset: lock.range.offset,
            length: lock.range.length,
            share_reservation: lock.share_reservation,
            acquired_at: lock.acquired_at,
            server_epoch: epoch,
            flavor: lock.flavor,
        }
    }

    /// The in-memory form (the epoch is dropped; the owner's share is `share_name`).
    pub fn to_enhanced(&self) -> EnhancedLock {
        EnhancedLock {
            id: self.id,
            owner: self.owner(),
            file: self.file_id.clone(),
            range: self.range(),
            lock_type: self.lock_type,
            share_reservation: self.share_reservation,
            acquired_at: self.acquired_at,
            flavor: self.flavor,
        }
    }

    /// The bytes the lock covers, by its [`flavor`](PersistedLock::flavor).
    pub const fn extent(&self) -> LockExtent {
        LockExtent::of(self.flavor, self.offset, self.length)
    }

    /// The locked bytes.
    pub fn range(&self) -> ByteRange {
        ByteRange::new(self.offset, self.length)
    }

    /// Who holds the lock.
    pub fn owner(&self) -> LockOwner {
        LockOwner {
            owner_id: self.owner_id.clone(),
            client_id: self.client_id.clone(),
            share_name: self.share_name.clone(),
        }
    }
}

/// A lock filter: every field that is set must match (AND). The default matches every lock.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LockQuery {
    /// Locks on this file.
    pub file_id: Option<FileHandle>,
    /// Locks of this owner id.
    pub owner_id: Option<String>,
    /// Locks of this client.
    pub client_id: Option<String>,
    /// Locks taken through this share.
    pub share_name: Option<String>,
    /// Locks granted by an epoch strictly below this one (earlier incarnations).
    pub server_epoch_below: Option<u64>,
    /// Locks stamped with exactly this epoch (one incarnation's locks: what
    /// recovery reads, one index range per dead epoch).
    pub server_epoch: Option<u64>,
}

impl LockQuery {
    /// Locks on `file`.
    pub fn by_file(file: &FileHandle) -> Self {
        LockQuery {
            file_id: Some(file.clone()),
            ..Default::default()
        }
    }

    /// Locks of `client_id`.
    pub fn by_client(client_id: &str) -> Self {
        LockQuery {
            client_id: Some(client_id.to_owned()),
            ..Default::default()
        }
    }

    /// Locks of `owner_id`.
    pub fn by_owner(owner_id: &str) -> Self {
        LockQuery {
            owner_id: Some(owner_id.to_owned()),
            ..Default::default()
        }
    }

    /// Locks taken through `share_name`.
    pub fn by_share(share_name: &str) -> Self {
        LockQuery {
            share_name: Some(share_name.to_owned()),
            ..Default::default()
        }
    }

    /// Locks granted before `epoch`.
    pub fn epoch_below(epoch: u64) -> Self {
        LockQuery {
            server_epoch_below: Some(epoch),
            ..Default::default()
        }
    }

    /// Locks stamped with exactly `epoch`.
    pub fn in_epoch(epoch: u64) -> Self {
        LockQuery {
            server_epoch: Some(epoch),
            ..Default::default()
        }
    }

    /// True when `lock` passes every filter that is set.
    pub fn matches(&self, lock: &PersistedLock) -> bool {
        self.file_id.as_ref().is_none_or(|f| *f == lock.file_id)
            && self.owner_id.as_ref().is_none_or(|o| *o == lock.owner_id)
            && self.client_id.as_ref().is_none_or(|c| *c == lock.client_id)
            && self
                .share_name
                .as_ref()
                .is_none_or(|s| *s == lock.share_name)
            && self
                .server_epoch_below
                .is_none_or(|e| lock.server_epoch < e)
            && self.server_epoch.is_none_or(|e| lock.server_epoch == e)
    }
}
