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
    /// A copy's destination already holds records.
    #[error("destination {url} is not empty")]
    DestinationNotEmpty {
        /// The destination, as given (credentials redacted).
        url: String,
    },
    /// The transaction was already finished, or the store was closed.
    #[error("transaction closed: {0}")]
    Closed(String),
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
