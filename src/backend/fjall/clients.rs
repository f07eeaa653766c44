//! The client family: [`ClientRecord`]s in `clients`, keyed by the client
//! id's bytes, with three indexes: `clients_by_node` and `clients_by_owner`
//! (`len16(value) | client_id`) and `clients_by_epoch` (`be64(epoch) |
//! client_id`). The client id is the last component of every key, so it
//! needs no length prefix and a scan of one value yields its clients in id
//! order. Values: a format byte, then postcard of [`ClientV1`].

use std::ops::Bound;

use async_trait::async_trait;
use fjall::OptimisticTxKeyspace;
use serde::{Deserialize, Serialize};

use super::Keyspaces;
use super::codec::{self, Fault};
use super::keys::{self, names};
use super::table::{Family, Index, Table};
use super::tx::FjallTx;
use crate::client::{ClientProtocol, ClientQuery, ClientRecord, ClientStore};
use crate::error::Result;
use crate::time::Timestamp;
use crate::validate;

/// The client family.
pub(super) struct Clients;

/// A client record, format 1 (the client id is the key).
#[derive(Serialize, Deserialize)]
struct ClientV1 {
    node_id: String,
    protocol: u8,
    owner: Vec<u8>,
    verifier: [u8; 8],
    principal: Option<Vec<u8>>,
    epoch: u64,
    reclaim_complete: bool,
    last_renewed: i64,
    expired: bool,
    callback: Option<String>,
}

/// `len16(component) | client_id`: an entry of `clients_by_node` or `clients_by_owner`.
fn by_value(component: &[u8], client: &ClientRecord) -> Result<Vec<u8>> {
    let mut key = keys::prefix(component)?;
    key.extend_from_slice(client.client_id.as_bytes());
    Ok(key)
}

/// `clients_by_node`: a node's clients, in id order.
const BY_NODE: Index<ClientRecord> = Index {
    name: names::CLIENTS_BY_NODE,
    layout: "len16(node_id) | client_id",
    keyspace: |ks| &ks.clients_by_node,
    entry: |c| by_value(c.node_id.as_bytes(), c),
    target: keys::after_len16,
};

/// `clients_by_owner`: the clients with one owner, in id order.
const BY_OWNER: Index<ClientRecord> = Index {
    name: names::CLIENTS_BY_OWNER,
    layout: "len16(owner) | client_id",
    keyspace: |ks| &ks.clients_by_owner,
    entry: |c| by_value(&c.owner, c),
    target: keys::after_len16,
};

/// `clients_by_epoch`: the clients of one epoch, in id order.
const BY_EPOCH: Index<ClientRecord> = Index {
    name: names::CLIENTS_BY_EPOCH,
    layout: "be64(epoch) | client_id",
    keyspace: |ks| &ks.clients_by_epoch,
    entry: |c| Ok([&c.epoch.to_be_bytes()[..], c.client_id.as_bytes()].concat()),
    target: keys::after_be64,
};

impl Family for Clients {
    type Key = String;
    type Record = ClientRecord;
    const NAME: &'static str = names::CLIENTS;
    const RECORD: &'static str = "client";
    const PREFIX: &'static [u8] = b"";
    const KEY_RULE: &'static str = "a client key must be a 1..=1024-byte UTF-8 client id";
    const INDEXES: &'static [Index<ClientRecord>] = &[BY_NODE, BY_OWNER, BY_EPOCH];

    fn keyspace(ks: &Keyspaces) -> &OptimisticTxKeyspace {
        &ks.clients
    }
    fn key_of(client: &ClientRecord) -> String {
        client.client_id.clone()
    }
    fn encode_key(id: &String) -> Vec<u8> {
        id.as_bytes().to_vec()
    }
    fn decode_key(raw: &[u8]) -> Option<String> {
        let id = std::str::from_utf8(raw).ok()?;
        validate::id("client_id", id).ok()?;
        Some(id.to_owned())
    }
    fn encode(client: &ClientRecord) -> Result<Vec<u8>> {
        codec::encode(&ClientV1 {
            node_id: client.node_id.clone(),
            protocol: client.protocol as u8,
            owner: client.owner.clone(),
            verifier: client.verifier,
            principal: client.principal.clone(),
            epoch: client.epoch,
            reclaim_complete: client.reclaim_complete,
            last_renewed: client.last_renewed.as_micros(),
            expired: client.expired,
            callback: client.callback.clone(),
        })
    }
    fn decode(id: &String, raw: &[u8], value: &[u8]) -> Result<ClientRecord, Fault> {
        let v: ClientV1 = codec::decode(names::CLIENTS, raw, value)?;
        let ctx = codec::stored(names::CLIENTS, raw);
        let client = ClientRecord {
            client_id: id.clone(),
            node_id: v.node_id,
            protocol: ClientProtocol::try_from(v.protocol).map_err(&ctx)?,
            owner: v.owner,
            verifier: v.verifier,
            principal: v.principal,
            epoch: v.epoch,
            reclaim_complete: v.reclaim_complete,
            last_renewed: Timestamp::from_micros(v.last_renewed),
            expired: v.expired,
            callback: v.callback,
        };
        validate::client(&client).map_err(&ctx)?;
        Ok(client)
    }
}

impl FjallTx {
    /// Every stored client matching `query`, in id order, read through its
    /// most selective index (the memory backend's choice). Each listing is
    /// an index prefix scan, so a concurrent insert into it conflicts.
    fn matching_clients(&self, query: &ClientQuery) -> Result<Vec<ClientRecord>> {
        let table = Table::<Clients>::new(&self.store.ks);
        let mut clients = if let Some(owner) = &query.owner {
            table.index_prefix(&self.tx, &BY_OWNER, &keys::prefix(owner)?)?
        } else if let Some(node) = &query.node_id {
            table.index_prefix(&self.tx, &BY_NODE, &keys::prefix(node.as_bytes())?)?
        } else if let Some(epoch) = query.epoch {
            table.index_prefix(&self.tx, &BY_EPOCH, &epoch.to_be_bytes())?
        } else {
            table.all(&self.tx)?
        };
        clients.retain(|c| query.matches(c));
        Ok(clients)
    }
}

#[async_trait]
impl ClientStore for FjallTx {
    async fn put_client(&mut self, client: &ClientRecord) -> Result<()> {
        validate::client(client)?;
        Table::<Clients>::new(&self.store.ks).put(&mut self.tx, client)
    }

    async fn get_client(&mut self, client_id: &str) -> Result<Option<ClientRecord>> {
        validate::id("client_id", client_id)?;
        Table::<Clients>::new(&self.store.ks).get(&self.tx, &client_id.to_owned())
    }

    async fn delete_client(&mut self, client_id: &str) -> Result<bool> {
        validate::id("client_id", client_id)?;
        Ok(Table::<Clients>::new(&self.store.ks)
            .delete(&mut self.tx, &client_id.to_owned())?
            .is_some())
    }

    async fn list_clients(&mut self, query: &ClientQuery) -> Result<Vec<ClientRecord>> {
        validate::client_query(query)?;
        self.matching_clients(query)
    }

    async fn list_clients_page(
        &mut self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ClientRecord>> {
        validate::page_limit(limit)?;
        if let Some(after) = after {
            validate::id("after", after)?;
        }
        let table = Table::<Clients>::new(&self.store.ks);
        let start = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.as_bytes().to_vec()));
        table.range(&self.tx, (start, Bound::Unbounded), limit)
    }
}
