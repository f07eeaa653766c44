//! The records: [`OpenRecord`], [`LeaseRecord`], [`DelegationRecord`], and
//! the small types they are made of.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::file::FileHandle;
use crate::time::Timestamp;

/// The number of entries of an SMB open's lock-sequence array (MS-SMB2
/// 3.3.1.10, `Open.LockSequenceArray`).
pub const LOCK_SEQUENCE_ENTRIES: usize = 64;

/// The largest value of one lock-sequence entry: bit 4 is the entry's
/// `Valid` flag, bits 0..=3 its sequence number.
pub const MAX_LOCK_SEQUENCE_ENTRY: u8 = 0x1f;

/// A set of the three share-mode rights: read, write, delete.
///
/// Used both as what an open may do (`access`) and as what it denies every
/// other open (`deny`, the complement of SMB's `ShareAccess`; NFSv4's
/// `share_deny`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct ShareMask(u8);

impl ShareMask {
    /// No right.
    pub const NONE: ShareMask = ShareMask(0);
    /// Read data.
    pub const READ: ShareMask = ShareMask(1);
    /// Write or append data.
    pub const WRITE: ShareMask = ShareMask(2);
    /// Delete or rename (SMB only; NFSv4 has no such share right).
    pub const DELETE: ShareMask = ShareMask(4);
    /// Read and write.
    pub const READ_WRITE: ShareMask = ShareMask(3);
    /// Every right.
    pub const ALL: ShareMask = ShareMask(7);

    /// The mask of these bits; [`Error::Invalid`] for a bit above `DELETE`.
    pub fn from_bits(bits: u8) -> Result<Self> {
        if bits & !Self::ALL.0 != 0 {
            return Err(Error::Invalid(format!(
                "share mask {bits:#x}: only read (1), write (2) and delete (4) exist"
            )));
        }
        Ok(ShareMask(bits))
    }
    /// The bits.
    pub fn bits(self) -> u8 {
        self.0
    }
    /// True when no right is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// True when every right of `other` is set here.
    pub fn contains(self, other: ShareMask) -> bool {
        self.0 & other.0 == other.0
    }
    /// True when a right is set in both.
    pub fn intersects(self, other: ShareMask) -> bool {
        self.0 & other.0 != 0
    }
    /// Both masks' rights.
    pub fn union(self, other: ShareMask) -> ShareMask {
        ShareMask(self.0 | other.0)
    }
}

/// Which protocol an open, lease or delegation was granted through.
#[non_exhaustive]
#[repr(u8)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum OpenProtocol {
    /// NFSv4 OPEN (share_access / share_deny).
    #[default]
    Nfs4 = 0,
    /// SMB2/3 CREATE (DesiredAccess / ShareAccess).
    Smb = 1,
    /// NLM SHARE (NFSv3's DOS share modes).
    Nlm = 2,
}

impl TryFrom<u8> for OpenProtocol {
    type Error = Error;
    fn try_from(v: u8) -> Result<Self> {
        match v {
            0 => Ok(OpenProtocol::Nfs4),
            1 => Ok(OpenProtocol::Smb),
            2 => Ok(OpenProtocol::Nlm),
            _ => Err(Error::Invalid(format!("protocol {v}: 0..=2 expected"))),
        }
    }
}

/// Whether an open survives its client's disconnect.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DurableState {
    /// An ordinary open: a disconnect closes it.
    #[default]
    None,
    /// An SMB durable handle: kept for `timeout_ms` milliseconds after a
    /// disconnect ([`crate::expire_durable`] scavenges it after that).
    Durable {
        /// The durable timeout (SMB2 `Timeout`, milliseconds).
        timeout_ms: u32,
    },
    /// An SMB3 persistent handle: kept until reconnected or closed; survives
    /// a server failover and is never scavenged by time.
    Persistent,
}

impl DurableState {
    /// The stored tag: 0 none, 1 durable, 2 persistent.
    pub fn tag(self) -> u8 {
        match self {
            DurableState::None => 0,
            DurableState::Durable { .. } => 1,
            DurableState::Persistent => 2,
        }
    }
    /// The durable timeout (0 unless `Durable`).
    pub fn timeout_ms(self) -> u32 {
        match self {
            DurableState::Durable { timeout_ms } => timeout_ms,
            _ => 0,
        }
    }
    /// The state from its tag and timeout; [`Error::Invalid`] for an unknown
    /// tag or a timeout on a state that has none.
    pub fn from_parts(tag: u8, timeout_ms: u32) -> Result<Self> {
        match (tag, timeout_ms) {
            (0, 0) => Ok(DurableState::None),
            (1, timeout_ms) => Ok(DurableState::Durable { timeout_ms }),
            (2, 0) => Ok(DurableState::Persistent),
            _ => Err(Error::Invalid(format!(
                "durable: tag {tag} with timeout {timeout_ms} ms (0 none, 1 durable, 2 persistent; only durable has a timeout)"
            ))),
        }
    }
}

/// An SMB2/3 lease key (16 bytes, chosen by the client).
pub type LeaseKey = [u8; 16];

/// An open of a file with its share mode: an NFSv4 open stateid, an SMB
/// open (file id), or an NLM share.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OpenRecord {
    /// The open's id (SMB persistent file id, NFSv4 stateid "other").
    pub id: Uuid,
    /// The opened file.
    pub file: FileHandle,
    /// The share the file was opened through.
    pub share_name: String,
    /// The client.
    pub client_id: String,
    /// The open owner (NFSv4 open-owner; SMB: the open itself, or its session).
    pub owner_id: String,
    /// What the open may do.
    pub access: ShareMask,
    /// What the open denies every other open.
    pub deny: ShareMask,
    /// The protocol it was opened through.
    pub protocol: OpenProtocol,
    /// Whether it survives a disconnect.
    pub durable: DurableState,
    /// SMB2 `CreateGuid` (durable v2 / persistent handles).
    pub create_guid: Option<Uuid>,
    /// SMB2 `AppInstanceId` (cluster failover of an application instance).
    pub app_instance_id: Option<Uuid>,
    /// The lease this open holds, if any (SMB lease key of `client_id`).
    pub lease_key: Option<LeaseKey>,
    /// When the client disconnected; `None` while connected.
    pub disconnected_at: Option<Timestamp>,
    /// SMB lock-sequence replay array: empty, or exactly
    /// [`LOCK_SEQUENCE_ENTRIES`] entries of at most [`MAX_LOCK_SEQUENCE_ENTRY`].
    pub lock_sequences: Vec<u8>,
    /// The server epoch the open was granted (or last reconnected) in.
    pub server_epoch: u64,
    /// When it was opened.
    pub opened_at: Timestamp,
}

impl OpenRecord {
    /// An ordinary connected open with a fresh id: no durability, no GUIDs,
    /// no lease, no lock sequences, epoch 0, opened now.
    pub fn new(
        file: FileHandle,
        share_name: &str,
        client_id: &str,
        owner_id: &str,
        access: ShareMask,
        deny: ShareMask,
    ) -> Self {
        OpenRecord {
            id: Uuid::new_v4(),
            file,
            share_name: share_name.to_owned(),
            client_id: client_id.to_owned(),
            owner_id: owner_id.to_owned(),
            access,
            deny,
            protocol: OpenProtocol::Nfs4,
            durable: DurableState::None,
            create_guid: None,
            app_instance_id: None,
            lease_key: None,
            disconnected_at: None,
            lock_sequences: Vec::new(),
            server_epoch: 0,
            opened_at: Timestamp::now(),
        }
    }
}

/// Lease (or oplock) caching state: SMB2 `LeaseState` bits.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct LeaseState(u8);

impl LeaseState {
    /// No caching.
    pub const NONE: LeaseState = LeaseState(0);
    /// Read caching (`SMB2_LEASE_READ_CACHING`); an oplock level II.
    pub const READ: LeaseState = LeaseState(1);
    /// Handle caching (`SMB2_LEASE_HANDLE_CACHING`).
    pub const HANDLE: LeaseState = LeaseState(2);
    /// Write caching (`SMB2_LEASE_WRITE_CACHING`).
    pub const WRITE: LeaseState = LeaseState(4);
    /// R|H.
    pub const READ_HANDLE: LeaseState = LeaseState(3);
    /// R|W (an exclusive oplock).
    pub const READ_WRITE: LeaseState = LeaseState(5);
    /// R|W|H (a batch oplock).
    pub const ALL: LeaseState = LeaseState(7);

    /// The state of these bits; [`Error::Invalid`] for an unknown bit, or W
    /// or H without R (no SMB lease has those).
    pub fn from_bits(bits: u8) -> Result<Self> {
        let state = LeaseState(bits);
        if bits & !Self::ALL.0 != 0 || (bits != 0 && bits & Self::READ.0 == 0) {
            return Err(Error::Invalid(format!(
                "lease state {bits:#x}: R (1), H (2), W (4), and H or W only with R"
            )));
        }
        Ok(state)
    }
    /// The bits.
    pub fn bits(self) -> u8 {
        self.0
    }
    /// True when every bit of `other` is set here.
    pub fn contains(self, other: LeaseState) -> bool {
        self.0 & other.0 == other.0
    }
    /// This state without the bits of `other`, keeping the rule that W and
    /// H need R (removing R removes everything).
    pub fn without(self, other: LeaseState) -> LeaseState {
        let left = self.0 & !other.0;
        if left & Self::READ.0 == 0 {
            LeaseState::NONE
        } else {
            LeaseState(left)
        }
    }
    /// The bits of either (a mask for [`LeaseState::without`]; not
    /// necessarily a valid state by itself).
    pub fn union(self, other: LeaseState) -> LeaseState {
        LeaseState(self.0 | other.0)
    }
    /// The bits set in both.
    pub fn intersection(self, other: LeaseState) -> LeaseState {
        LeaseState(self.0 & other.0).without(LeaseState::NONE)
    }
}

/// An SMB2/3 lease or a traditional oplock on a file.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// The record's id (for an oplock: its open's id is a good choice).
    pub id: Uuid,
    /// The client's lease key (for an oplock: any key unique to the open).
    pub lease_key: LeaseKey,
    /// SMB3 parent (directory) lease key.
    pub parent_lease_key: Option<LeaseKey>,
    /// The leased file.
    pub file: FileHandle,
    /// The share it was granted through.
    pub share_name: String,
    /// The client.
    pub client_id: String,
    /// The granted caching state.
    pub state: LeaseState,
    /// SMB3 lease epoch, raised by every state change.
    pub lease_epoch: u16,
    /// A break was sent and is not acknowledged yet.
    pub breaking: bool,
    /// The state the break goes to (`NONE` unless `breaking`).
    pub break_to: LeaseState,
    /// When the break started (`Some` exactly when `breaking`).
    pub break_started_at: Option<Timestamp>,
    /// A directory lease.
    pub directory: bool,
    /// A traditional oplock (level II = R, exclusive = RW, batch = RWH), not a lease.
    pub oplock: bool,
    /// The server epoch it was granted in.
    pub server_epoch: u64,
}

/// NFSv4 delegation type.
#[repr(u8)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum DelegationType {
    /// OPEN_DELEGATE_READ.
    #[default]
    Read = 0,
    /// OPEN_DELEGATE_WRITE.
    Write = 1,
}

impl TryFrom<u8> for DelegationType {
    type Error = Error;
    fn try_from(v: u8) -> Result<Self> {
        match v {
            0 => Ok(DelegationType::Read),
            1 => Ok(DelegationType::Write),
            _ => Err(Error::Invalid(format!(
                "delegation type {v}: 0..=1 expected"
            ))),
        }
    }
}

/// An NFSv4 delegation (file or, with a notification mask, directory).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DelegationRecord {
    /// The delegation stateid's "other" part, as an id.
    pub id: Uuid,
    /// The delegated file.
    pub file: FileHandle,
    /// The share it was granted through.
    pub share_name: String,
    /// The client.
    pub client_id: String,
    /// Read or write.
    pub kind: DelegationType,
    /// A recall (CB_RECALL) was sent.
    pub recalled: bool,
    /// Revoked: kept as a tombstone until grace ends, so a reclaim of it is refused.
    pub revoked: bool,
    /// NFSv4.1 directory-delegation notification mask (`notify_type4` bits).
    pub notification_mask: u32,
    /// The server epoch it was granted in.
    pub server_epoch: u64,
    /// When it was granted.
    pub granted_at: Timestamp,
}
