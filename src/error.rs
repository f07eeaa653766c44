//! The one error type every fsmeta operation returns.

use crate::handle::FileHandle;

/// `Result` with fsmeta's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in fsmeta.
///
/// Errors about the caller's input ([`Error::Invalid`], [`Error::LockNotFound`],
/// [`Error::FileNotFound`]) leave the transaction usable. [`Error::Conflict`]
/// means the transaction lost a serialization race: roll back and run the
/// whole transaction again (see [`Error::is_retryable`] and
/// [`crate::MetadataStoreExt::transact`]).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No lock with this id is stored.
    #[error("lock {0} not found")]
    LockNotFound(uuid::Uuid),
    /// No file with this handle is stored.
    #[error("file {0} not found")]
    FileNotFound(FileHandle),
    /// A serialization conflict with a concurrent transaction: retry the whole transaction.
    #[error("transaction conflict: {0}")]
    Conflict(String),
    /// Bad input, rejected before anything was written.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// Stored bytes that cannot be decoded, or a stored value that breaks the model's rules.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// The store was written by a newer (or unknown) format version of fsmeta.
    #[error(
        "unsupported store format: the store has format version {found}, this fsmeta reads up to {supported}"
    )]
    UnsupportedFormat {
        /// The version recorded in the store.
        found: u32,
        /// The newest version this build understands.
        supported: u32,
    },
    /// The global server epoch counter is at `u64::MAX` and cannot grow.
    #[error("server epoch is at u64::MAX and cannot grow")]
    EpochExhausted,
    /// The operation needs an epoch of this node, and the node has not started
    /// an incarnation (no `begin_recovery` for it yet).
    #[error("node {node:?} has not started: it owns no epoch yet")]
    NodeNotStarted {
        /// The node.
        node: String,
    },
    /// A transaction of a node session whose incarnation is no longer its
    /// node's current one: the node started again elsewhere, or was declared
    /// dead. Nothing was written; this session must stop (it is a zombie).
    #[error(
        "node {node:?}: the session of epoch {epoch} is fenced (the node's current epoch is {current}: it restarted or was declared dead)"
    )]
    Fenced {
        /// The node.
        node: String,
        /// The session's epoch.
        epoch: u64,
        /// The node's current epoch as stored (equal to `epoch` when the node
        /// was declared dead: the epoch ended without a successor).
        current: u64,
    },
    /// The node's current incarnation still holds an unexpired liveness lease:
    /// it may be running, so it cannot be started again or declared dead
    /// (unless the operator says it is dead: `StartOptions::take_over_live`,
    /// `declare_dead_forced`).
    #[error("node {node:?} is alive: its lease runs until {until:?}")]
    NodeAlive {
        /// The node.
        node: String,
        /// When its lease expires.
        until: crate::time::Timestamp,
    },
    /// [`require_lock`](crate::require_lock): the owner holds no lock (of the
    /// needed type) over the whole range, so the write that relied on it must
    /// not happen. The transaction stays usable.
    #[error(
        "owner {owner:?} (client {client:?}) holds no {} lock over bytes {offset}+{length} of file {file}",
        if *write { "exclusive" } else { "" }
    )]
    LockNotHeld {
        /// The file.
        file: FileHandle,
        /// The owner id.
        owner: String,
        /// The client id.
        client: String,
        /// The range's offset.
        offset: u64,
        /// The range's length (0: to the end of the file).
        length: u64,
        /// True when an exclusive lock was needed (a write).
        write: bool,
    },
    /// A copy's destination already holds records.
    #[error("destination {url} is not empty")]
    DestinationNotEmpty {
        /// The destination, as given (credentials redacted).
        url: String,
    },
    /// The transaction was already finished, or the store was closed.
    #[error("transaction closed: {0}")]
    Closed(String),
    /// No client record with this id is stored (NFSv4 `NFS4ERR_STALE_CLIENTID`).
    #[error("client {0:?} not found")]
    ClientNotFound(String),
    /// The client's state was revoked after its lease lapsed (NFSv4 `NFS4ERR_EXPIRED`).
    #[error("client {0:?} expired: its state was revoked")]
    ClientExpired(String),
    /// The client already sent RECLAIM_COMPLETE in this epoch (NFSv4 `NFS4ERR_COMPLETE_ALREADY`).
    #[error("client {0:?} already completed its reclaim")]
    AlreadyComplete(String),
    /// The client's record belongs to another node than the one asked.
    #[error("client {client:?} belongs to node {node:?}")]
    WrongNode {
        /// The client.
        client: String,
        /// The node its record names.
        node: String,
    },
    /// No open, lease or delegation with this id is stored (`kind` says which).
    #[error("{kind} {id} not found")]
    OpenStateNotFound {
        /// `"open"`, `"lease"` or `"delegation"`.
        kind: &'static str,
        /// The id asked for.
        id: uuid::Uuid,
    },
    /// An I/O, database or driver error.
    #[error("backend error: {0}")]
    Backend(Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// True when running the whole transaction again may succeed
    /// (a serialization conflict or deadlock).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Conflict(_))
    }

    /// Wraps a backend error with a description of the operation that failed.
    pub fn backend(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Backend(Box::new(BackendError {
            context: context.into(),
            source: source.into(),
        }))
    }
}

/// A backend error together with the operation it interrupted.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {source}")]
struct BackendError {
    context: String,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}
