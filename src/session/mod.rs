//! Node sessions: one incarnation of a file server, its liveness lease, and
//! fenced transactions.
//!
//! A file server is a *node*; each start of it is an *incarnation* with its
//! own epoch from the store's global counter. [`Node::start`] takes the new
//! epoch, a liveness lease, and the [`Recovery`] of the node's dead epochs;
//! the [`NodeSession`] it returns stamps that epoch on every lock it grants
//! and runs every transaction *fenced*:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use fsmeta::*;
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
//! let store: Arc<dyn MetadataStore> = Arc::new(MemoryStore::new());
//! let node = Node::new(store.clone(), "nfs-1")?;
//! let session = node
//!     .start(StartOptions { lease: Duration::from_secs(90), ..Default::default() })
//!     .await?;
//! # let request = PersistedLock {
//! #     id: uuid::Uuid::new_v4(), share_name: "export".into(), file_id: FileHandle::new(*b"fh")?,
//! #     owner_id: "o".into(), client_id: "c".into(), lock_type: LockType::Exclusive, offset: 0,
//! #     length: 0, share_reservation: ShareReservation::None, acquired_at: Timestamp::now(),
//! #     server_epoch: 0, flavor: LockFlavor::Posix,
//! # };
//! let request = &request;
//! let answer = session
//!     .transact(|tx| Box::pin(async move { tx.acquire(request).await })) // epoch stamped
//!     .await?;
//! assert_eq!(answer, Acquire::Granted);
//! session.renew().await?; // the liveness lease (heartbeat), every lease / 3 or so
//! session.end_grace().await?; // drop what was not reclaimed
//! session.shutdown().await?; // clean flag; the lease ends
//! # Ok(()) }
//! ```
//!
//! # Fencing
//!
//! Every transaction run through a session ([`NodeSession::transact`]) first
//! reads the node's record in the same transaction. When the node's current
//! epoch is no longer the session's (another process started the node id,
//! or [`declare_dead`] ended it), the transaction fails with
//! [`Error::Fenced`] and writes nothing: the session is a zombie and must
//! stop. The read is what makes a concurrent restart or takeover conflict
//! with a zombie's commit:
//!
//! - memory and fjall detect read-write conflicts on the node record
//!   itself: a zombie transaction that read it before the takeover committed
//!   fails to commit ([`Error::Conflict`]), and its retry is fenced.
//! - PostgreSQL SERIALIZABLE orders a reader before a writer without
//!   aborting either, so a read of the node row alone would let a zombie's
//!   in-flight transaction commit *after* the takeover, ordered before it.
//!   [`Node::start`] and [`declare_dead`] therefore also read the locks of
//!   the ended epoch, by epoch: a zombie's in-flight grant (a lock of that
//!   epoch) and the takeover then read each other's writes, and PostgreSQL
//!   aborts one of them. A zombie transaction that grants no lock (it only
//!   writes host metadata) and was already past its fence read when the
//!   takeover committed may still commit on PostgreSQL, serialized before
//!   the takeover; [`require_lock`] makes such a write depend on a lock,
//!   so it conflicts with whoever deletes or restamps that lock.
//!
//! # Liveness and takeover
//!
//! A session holds a lease until [`NodeSession::renew`] extends it. While it
//! runs, [`Node::start`] of the same node id refuses with
//! [`Error::NodeAlive`] (unless [`StartOptions::take_over_live`]), and so does
//! [`declare_dead`] (unless [`declare_dead_forced`]). Once it has expired,
//! another node may declare the node dead: its epoch dies, its locks become
//! reclaimable through any node, and the declaring node's
//! [`NodeSession::end_grace`] drops what nobody reclaimed.
//!
//! # Grace
//!
//! While locks of dead epochs exist, a new request that conflicts with one of
//! them is answered [`Acquire::Grace`](crate::Acquire::Grace) on every node;
//! a request that conflicts with none is decided as usual.

mod lifecycle;
mod locks;
mod takeover;
mod tx;

use std::sync::Arc;
use std::time::Duration;

pub use locks::require_lock;
pub use takeover::{DeadNode, declare_dead, declare_dead_forced};
pub use tx::SessionTx;

use crate::error::Result;
use crate::recovery::{self, Recovery, Start};
use crate::time::Timestamp;
use crate::tx::{MetadataStore, MetadataStoreExt};
use crate::validate;

#[cfg(doc)]
use crate::error::Error;

/// A file server node of a store: what starts incarnations ([`Node::start`]).
#[derive(Clone)]
pub struct Node {
    store: Arc<dyn MetadataStore>,
    id: String,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("id", &self.id).finish()
    }
}

/// How [`Node::start`] starts an incarnation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartOptions {
    /// The liveness lease: the incarnation counts as alive until this long
    /// after the start or the last [`NodeSession::renew`]. Default 90 s (the
    /// usual NFSv4 lease).
    pub lease: Duration,
    /// Start even while the node's current incarnation still holds an
    /// unexpired lease: the operator knows it is dead (its zombie, if any,
    /// is fenced from now on). Default false: [`Error::NodeAlive`].
    pub take_over_live: bool,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions {
            lease: Duration::from_secs(90),
            take_over_live: false,
        }
    }
}

impl Node {
    /// A node with id `id` (validated like a client id) on `store`. Nothing
    /// is read or written until [`Node::start`].
    pub fn new(store: Arc<dyn MetadataStore>, id: impl Into<String>) -> Result<Node> {
        let id = id.into();
        validate::id("node_id", &id)?;
        Ok(Node { store, id })
    }

    /// The node's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Starts a new incarnation, in one transaction: refuses with
    /// [`Error::NodeAlive`] while the current incarnation's lease runs
    /// (unless [`StartOptions::take_over_live`]); reads the clean flag and
    /// sets it to unclean (only [`NodeSession::shutdown`] sets it back, so a
    /// crash leaves it unclean); takes a new epoch from the global counter,
    /// records it as the node's and takes the lease; clears a takeover mark;
    /// and lists the locks of the node's dead epochs (one index range per
    /// dead epoch; other nodes' locks are never read).
    pub async fn start(&self, options: StartOptions) -> Result<NodeSession> {
        // Checked before anything is sent: a lease past the year 9999 is bad input.
        recovery::lease_expiry(Timestamp::now(), options.lease)?;
        let how = Start {
            lease: Some(options.lease),
            take_over_live: options.take_over_live,
        };
        let node = self.id.as_str();
        let recovery = recovery::traced_start(
            node,
            self.store
                .transact(|tx| Box::pin(async move { recovery::start_in(tx, node, how).await })),
        )
        .await?;
        Ok(NodeSession {
            store: self.store.clone(),
            node_id: self.id.clone(),
            epoch: recovery.epoch,
            lease: options.lease,
            recovery,
        })
    }
}

/// One running incarnation of a node: its epoch, its lease, and fenced
/// transactions ([`NodeSession::transact`]). Cheap to clone (the clones are
/// the same incarnation).
#[derive(Clone)]
pub struct NodeSession {
    pub(crate) store: Arc<dyn MetadataStore>,
    pub(crate) node_id: String,
    pub(crate) epoch: u64,
    pub(crate) lease: Duration,
    pub(crate) recovery: Recovery,
}

impl std::fmt::Debug for NodeSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeSession")
            .field("node_id", &self.node_id)
            .field("epoch", &self.epoch)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl NodeSession {
    /// This incarnation's epoch: every lock the session grants carries it.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The node's id.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// What the start found: the locks and clients of the node's dead epochs,
    /// and whether the previous incarnation shut down cleanly.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// The store the session runs on.
    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.store
    }

    /// The lease each [`renew`](NodeSession::renew) extends by.
    pub fn lease(&self) -> Duration {
        self.lease
    }
}
