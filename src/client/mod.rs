//! The client family: the stable storage an NFSv4 server (and the NSM
//! monitor list of an NLM server) keeps so that, after a restart, only the
//! clients that held state before may reclaim it.
//!
//! One [`ClientRecord`] per client, keyed by `client_id` (the id its locks
//! carry), with the node and epoch it was confirmed in and whether it has
//! sent RECLAIM_COMPLETE. The records are plain data here, stored alike by
//! every backend ([`ClientStore`]); the rules over them (who may reclaim,
//! RECLAIM_COMPLETE, grace, courteous lease expiry) are written once, over
//! this trait, in the session code.
//!
//! ```
//! # use fsmeta::*;
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
//! let store = MemoryStore::new();
//! let client = ClientRecord::new("c-1", "nfs-1", ClientProtocol::Nfs4, b"host-a".to_vec(), [7; 8], 1);
//! let record = &client;
//! store.transact(|tx| Box::pin(async move { tx.put_client(record).await })).await?;
//! let mut tx = store.begin().await?;
//! assert_eq!(tx.list_clients(&ClientQuery::by_node("nfs-1")).await?, [client]);
//! # Ok(()) }
//! ```

mod rules;
mod session;

pub use rules::{ReclaimRefusal, may_reclaim};
pub(crate) use rules::{acquire_courteous, end_grace_clients, recovery_set};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::time::Timestamp;

/// The longest client owner (NFSv4 `co_ownerid`, NSM `mon_name`), in bytes (at least one).
pub const MAX_CLIENT_OWNER_LEN: usize = 1024;
/// The longest client principal, in bytes (at least one when set).
pub const MAX_CLIENT_PRINCIPAL_LEN: usize = 1024;
/// The longest NLM callback address, in bytes (at least one when set).
pub const MAX_CLIENT_CALLBACK_LEN: usize = 1024;

/// The protocol a client speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum ClientProtocol {
    /// NFSv4 (SETCLIENTID / EXCHANGE_ID).
    Nfs4 = 0,
    /// NLM with NSM monitoring (NFSv3 locking).
    Nlm = 1,
    /// SMB2/3.
    Smb = 2,
}

impl TryFrom<u8> for ClientProtocol {
    type Error = Error;
    fn try_from(value: u8) -> Result<Self> {
        match value {
            0 => Ok(ClientProtocol::Nfs4),
            1 => Ok(ClientProtocol::Nlm),
            2 => Ok(ClientProtocol::Smb),
            other => Err(Error::Corrupt(format!(
                "client protocol {other} is not in 0..=2"
            ))),
        }
    }
}

impl std::fmt::Display for ClientProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClientProtocol::Nfs4 => "nfs4",
            ClientProtocol::Nlm => "nlm",
            ClientProtocol::Smb => "smb",
        })
    }
}

/// One client a node has confirmed: what a restarted node needs to decide
/// whether the client may reclaim.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClientRecord {
    /// The client's id: the `client_id` its locks carry (validated like one).
    pub client_id: String,
    /// The node the client was confirmed on (validated like a node id).
    pub node_id: String,
    /// The protocol it speaks.
    pub protocol: ClientProtocol,
    /// The client's own long-lived name: NFSv4 `co_ownerid`, NSM `mon_name`
    /// (opaque, 1..=1024 bytes).
    pub owner: Vec<u8>,
    /// The client's boot verifier (NFSv4 `co_verifier`): a new one means the client rebooted.
    pub verifier: [u8; 8],
    /// The principal that established the client (opaque, 1..=1024 bytes), if
    /// the server checks one: another principal may not reclaim its state.
    pub principal: Option<Vec<u8>>,
    /// The node epoch the record was confirmed (or last reclaim-completed) in.
    pub epoch: u64,
    /// True once the client sent RECLAIM_COMPLETE in `epoch`.
    pub reclaim_complete: bool,
    /// When the client last renewed its lease.
    pub last_renewed: Timestamp,
    /// True once the server revoked the client's state after its lease
    /// lapsed (courteous expiry): answer it NFS4ERR_EXPIRED.
    pub expired: bool,
    /// For NLM: the address the server notifies (SM_NOTIFY) after a reboot
    /// (1..=1024 bytes, no NUL).
    pub callback: Option<String>,
}

impl ClientRecord {
    /// A record with no principal, no callback, not reclaim-complete, not
    /// expired, renewed now.
    pub fn new(
        client_id: &str,
        node_id: &str,
        protocol: ClientProtocol,
        owner: Vec<u8>,
        verifier: [u8; 8],
        epoch: u64,
    ) -> Self {
        ClientRecord {
            client_id: client_id.to_owned(),
            node_id: node_id.to_owned(),
            protocol,
            owner,
            verifier,
            principal: None,
            epoch,
            reclaim_complete: false,
            last_renewed: Timestamp::now(),
            expired: false,
            callback: None,
        }
    }
}

/// Filters of [`ClientStore::list_clients`]; every field that is set must
/// match (AND). Empty = every client.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ClientQuery {
    /// Only clients of this node.
    pub node_id: Option<String>,
    /// Only clients confirmed in this epoch.
    pub epoch: Option<u64>,
    /// Only clients with this owner.
    pub owner: Option<Vec<u8>>,
}

impl ClientQuery {
    /// The clients of one node.
    pub fn by_node(node_id: &str) -> Self {
        ClientQuery {
            node_id: Some(node_id.to_owned()),
            ..ClientQuery::default()
        }
    }

    /// The clients confirmed in one epoch.
    pub fn by_epoch(epoch: u64) -> Self {
        ClientQuery {
            epoch: Some(epoch),
            ..ClientQuery::default()
        }
    }

    /// The clients with one owner.
    pub fn by_owner(owner: &[u8]) -> Self {
        ClientQuery {
            owner: Some(owner.to_vec()),
            ..ClientQuery::default()
        }
    }

    /// True when `client` passes every filter that is set.
    pub fn matches(&self, client: &ClientRecord) -> bool {
        self.node_id.as_ref().is_none_or(|n| *n == client.node_id)
            && self.epoch.is_none_or(|e| e == client.epoch)
            && self.owner.as_ref().is_none_or(|o| *o == client.owner)
    }
}

/// Client-record operations of a transaction: the client family.
///
/// Every argument is validated before anything is sent or written
/// ([`crate::validate::client`], [`crate::validate::client_query`]); a
/// rejected one is [`Error::Invalid`] naming the field and leaves the
/// transaction usable.
#[async_trait]
pub trait ClientStore: Send {
    /// Inserts or replaces the record of `client.client_id`.
    async fn put_client(&mut self, client: &ClientRecord) -> Result<()>;
    /// The record of `client_id`, if stored.
    async fn get_client(&mut self, client_id: &str) -> Result<Option<ClientRecord>>;
    /// Deletes the record; returns whether it existed (a missing one is `Ok(false)`).
    async fn delete_client(&mut self, client_id: &str) -> Result<bool>;
    /// Every record matching `query`, in `client_id` order.
    async fn list_clients(&mut self, query: &ClientQuery) -> Result<Vec<ClientRecord>>;
    /// At most `limit` (≥ 1) records with a `client_id` above `after` (from
    /// the first when `None`), in `client_id` order: for whole-store walks.
    async fn list_clients_page(
        &mut self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ClientRecord>>;
}
