//! The `--json` output: stable field names, documented in the README
//! ("Inspecting a store").
//!
//! Number policy: every 64-bit field of a record (`offset`, `length`,
//! `size`, `server_epoch`, `epoch`) is a **string of decimal digits**, because
//! JSON numbers above 2^53 lose precision in JavaScript and in jq, and these
//! fields really use the full u64 range (NFSv4's all-ones length is
//! 2^64 - 1). 32-bit fields (`mode`, `uid`, `gid`, `nlink`) and record counts
//! are JSON numbers: they are exact everywhere. Timestamps are RFC 3339 in
//! UTC with six fractional digits (exact to the microsecond the store keeps).
//! Enums are lowercase snake_case strings. New fields may be added; existing
//! ones keep their name, type and meaning.

use fsmeta::{FileKind, FileMeta, NodeState, PersistedLock};
use serde::Serialize;

use crate::output::{deny_mode, lock_type, rfc3339};

/// One lock of `fsmeta locks --json`.
#[derive(Serialize)]
pub struct LockJson<'a> {
    pub id: String,
    pub share_name: &'a str,
    /// The file handle in lowercase hex.
    pub file_id: String,
    pub owner_id: &'a str,
    pub client_id: &'a str,
    /// `shared` or `exclusive`.
    pub lock_type: &'static str,
    pub offset: String,
    /// `"0"` = to end of file.
    pub length: String,
    /// `none`, `deny_read`, `deny_write` or `deny_all`.
    pub share_reservation: &'static str,
    pub acquired_at: String,
    pub server_epoch: String,
    /// The lock's epoch is dead: its node has restarted since.
    pub stale: bool,
}

impl<'a> LockJson<'a> {
    pub fn new(lock: &'a PersistedLock, stale: bool) -> Self {
        LockJson {
            id: lock.id.to_string(),
            share_name: &lock.share_name,
            file_id: lock.file_id.to_hex(),
            owner_id: &lock.owner_id,
            client_id: &lock.client_id,
            lock_type: lock_type(lock.lock_type),
            offset: lock.offset.to_string(),
            length: lock.length.to_string(),
            share_reservation: deny_mode(lock.share_reservation),
            acquired_at: rfc3339(lock.acquired_at),
            server_epoch: lock.server_epoch.to_string(),
            stale,
        }
    }
}

/// One file of `fsmeta files --json`.
#[derive(Serialize)]
pub struct FileJson<'a> {
    /// The handle in lowercase hex.
    pub handle: String,
    pub share_name: &'a str,
    /// `regular`, `directory`, `symlink` or `other`.
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub size: String,
    pub atime: String,
    pub mtime: String,
    pub ctime: String,
}

impl<'a> FileJson<'a> {
    pub fn new(file: &'a FileMeta) -> Self {
        FileJson {
            handle: file.handle.to_hex(),
            share_name: &file.share_name,
            kind: file_kind(file.kind),
            mode: file.mode,
            uid: file.uid,
            gid: file.gid,
            nlink: file.nlink,
            size: file.size.to_string(),
            atime: rfc3339(file.atime),
            mtime: rfc3339(file.mtime),
            ctime: rfc3339(file.ctime),
        }
    }
}

pub fn file_kind(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Regular => "regular",
        FileKind::Directory => "directory",
        FileKind::Symlink => "symlink",
        FileKind::Other => "other",
    }
}

/// `fsmeta stats --json`.
#[derive(Serialize)]
pub struct StatsJson {
    pub files: u64,
    pub locks: u64,
    /// Locks from dead epochs.
    pub stale_locks: u64,
    /// The global server epoch.
    pub epoch: String,
    /// Node `default`'s clean-shutdown flag (what the single-node API reads).
    pub clean_shutdown: bool,
    /// Every share with locks, most locks first.
    pub locks_per_share: Vec<ShareCount>,
    /// The clients with the most locks (at most 10), most first.
    pub top_clients: Vec<ClientCount>,
    /// Every node the store has seen, by id.
    pub nodes: Vec<NodeJson>,
}

#[derive(Serialize)]
pub struct ShareCount {
    pub share_name: String,
    pub locks: u64,
}

#[derive(Serialize)]
pub struct ClientCount {
    pub client_id: String,
    pub locks: u64,
}

#[derive(Serialize)]
pub struct NodeJson {
    pub node_id: String,
    /// The node's current epoch ("0" before its first start).
    pub epoch: String,
    pub clean_shutdown: bool,
    /// Locks stamped with one of this node's epochs.
    pub locks: u64,
    /// Of those, locks from its dead epochs.
    pub stale_locks: u64,
}

impl NodeJson {
    pub fn new(node: &NodeState, locks: u64, stale_locks: u64) -> Self {
        NodeJson {
            node_id: node.node_id.clone(),
            epoch: node.epoch.to_string(),
            clean_shutdown: node.clean_shutdown,
            locks,
            stale_locks,
        }
    }
}
