//! The waiter record family: [`Waiter`], [`WaiterQuery`] and the
//! [`WaiterStore`] operations every backend implements.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::Result;
use crate::file::FileHandle;
use crate::lock::{LockFlavor, LockType, PersistedLock, ShareReservation};
use crate::time::Timestamp;

/// The longest [`Waiter::context`], in bytes.
pub const MAX_WAITER_CONTEXT_LEN: usize = 1024;

/// A blocked lock request, queued until the locks in its way go away.
///
/// Who waits (`owner_id`, `client_id`, on server `node_id`), for what (the
/// request's file, range, type, deny mode and flavour), since when, and its
/// place in the file's queue (`position`: smaller is older; unique per file).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Waiter {
    /// The waiter's own id (not the id of the lock it will become).
    pub id: Uuid,
    /// The file the request is for.
    pub file_id: FileHandle,
    /// The share the request came through.
    pub share_name: String,
    /// The owner within the client (a POSIX process, an NLM `svid`/`oh`, an SMB open).
    pub owner_id: String,
    /// The client.
    pub client_id: String,
    /// The server (node) that queued it and answers the client when it is granted.
    pub node_id: String,
    /// The requested lock type.
    pub lock_type: LockType,
    /// The requested range's first byte.
    pub offset: u64,
    /// The requested range's length (0 = to end of file for POSIX).
    pub length: u64,
    /// The requested deny mode.
    pub share_reservation: ShareReservation,
    /// Which protocol's rules the request follows.
    pub flavor: LockFlavor,
    /// The place in the file's queue: the older, the smaller.
    pub position: u64,
    /// When the request was first queued.
    pub since: Timestamp,
    /// Opaque to fsmeta, at most [`MAX_WAITER_CONTEXT_LEN`] bytes: what the
    /// server needs to answer the client once the lock is granted (an NLM
    /// cookie and caller name, an NFSv4 lock-owner, an SMB message id).
    pub context: Vec<u8>,
}

impl Waiter {
    /// The lock this waiter asks for, as a request to retry: with the given
    /// lock id, epoch and timestamp (the server's, as for any request).
    pub fn to_lock(&self, id: Uuid, server_epoch: u64, acquired_at: Timestamp) -> PersistedLock {
        PersistedLock {
            id,
            share_name: self.share_name.clone(),
            file_id: self.file_id.clone(),
            owner_id: self.owner_id.clone(),
            client_id: self.client_id.clone(),
            lock_type: self.lock_type,
            offset: self.offset,
            length: self.length,
            share_reservation: self.share_reservation,
            acquired_at,
            server_epoch,
            flavor: self.flavor,
        }
    }

    /// True when `lock` is this waiter's request again (a retry or a
    /// retransmission): the same file, owner, client, range, type, deny mode
    /// and flavour. Its id, epoch and timestamp do not matter.
    pub fn is_request(&self, lock: &PersistedLock) -> bool {
        self.file_id == lock.file_id
            && self.owner_id == lock.owner_id
            && self.client_id == lock.client_id
            && self.lock_type == lock.lock_type
            && self.offset == lock.offset
            && self.length == lock.length
            && self.share_reservation == lock.share_reservation
            && self.flavor == lock.flavor
    }
}

/// Filters over waiters; every field that is set must match (AND).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct WaiterQuery {
    /// Only waiters on this file.
    pub file_id: Option<FileHandle>,
    /// Only waiters of this owner.
    pub owner_id: Option<String>,
    /// Only waiters of this client.
    pub client_id: Option<String>,
    /// Only waiters queued by this node.
    pub node_id: Option<String>,
}

impl WaiterQuery {
    /// The waiters on `file`.
    pub fn by_file(file: &FileHandle) -> Self {
        WaiterQuery {
            file_id: Some(file.clone()),
            ..Default::default()
        }
    }

    /// The waiters of one owner (`owner_id` within `client_id`).
    pub fn by_owner(owner_id: &str, client_id: &str) -> Self {
        WaiterQuery {
            owner_id: Some(owner_id.to_owned()),
            client_id: Some(client_id.to_owned()),
            ..Default::default()
        }
    }

    /// The waiters of `client_id`.
    pub fn by_client(client_id: &str) -> Self {
        WaiterQuery {
            client_id: Some(client_id.to_owned()),
            ..Default::default()
        }
    }

    /// The waiters queued by `node_id`.
    pub fn by_node(node_id: &str) -> Self {
        WaiterQuery {
            node_id: Some(node_id.to_owned()),
            ..Default::default()
        }
    }

    /// True when no field is set (the query matches every waiter).
    pub fn is_empty(&self) -> bool {
        self.file_id.is_none()
            && self.owner_id.is_none()
            && self.client_id.is_none()
            && self.node_id.is_none()
    }

    /// True when `waiter` passes every filter that is set.
    pub fn matches(&self, waiter: &Waiter) -> bool {
        self.file_id.as_ref().is_none_or(|f| *f == waiter.file_id)
            && self.owner_id.as_ref().is_none_or(|o| *o == waiter.owner_id)
            && self
                .client_id
                .as_ref()
                .is_none_or(|c| *c == waiter.client_id)
            && self.node_id.as_ref().is_none_or(|n| *n == waiter.node_id)
    }
}

/// The order listings promise: by file (bytewise), then queue position, then id.
pub(crate) fn queue_cmp(a: &Waiter, b: &Waiter) -> std::cmp::Ordering {
    (a.file_id.as_bytes(), a.position, a.id).cmp(&(b.file_id.as_bytes(), b.position, b.id))
}

/// Waiter records of a transaction.
///
/// Every argument is validated before anything is sent or written
/// ([`crate::validate::waiter`], [`crate::validate::waiter_query`]); a
/// rejected one is [`Error::Invalid`](crate::Error::Invalid) and leaves the
/// transaction usable. Deleting waiters announces their files to
/// [`Waiters`](crate::Waiters) subscribers when the transaction commits (an
/// older waiter gone may let a younger one through).
#[async_trait]
pub trait WaiterStore: Send {
    /// Inserts or replaces the waiter with this id.
    async fn put_waiter(&mut self, waiter: &Waiter) -> Result<()>;
    /// The waiter with this id, if stored.
    async fn get_waiter(&mut self, id: Uuid) -> Result<Option<Waiter>>;
    /// Deletes the waiter; returns whether it existed.
    async fn delete_waiter(&mut self, id: Uuid) -> Result<bool>;
    /// The waiters matching `query`, ordered by file (bytewise), then
    /// [`Waiter::position`], then id: one file's waiters come in queue order.
    /// A listing by file is a read of that file's whole queue, so a waiter
    /// queued concurrently on it conflicts.
    async fn list_waiters(&mut self, query: &WaiterQuery) -> Result<Vec<Waiter>>;
    /// Deletes the waiters matching `query` (which must set at least one
    /// field: [`Error::Invalid`](crate::Error::Invalid) otherwise); returns how many.
    async fn delete_waiters(&mut self, query: &WaiterQuery) -> Result<u64>;
    /// At most `limit` (≥ 1) waiters with an id above `after` (from the
    /// first when `None`), in id order: the page walker's listing.
    async fn list_waiters_page(&mut self, after: Option<Uuid>, limit: usize)
    -> Result<Vec<Waiter>>;
}
