//! The client family: [`ClientRecord`] by client id, indexed by node, epoch
//! and owner.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;

use super::table::{Family, Ordered, Table};
use super::{Bookkeeping, MemoryTx};
use crate::client::{ClientQuery, ClientRecord, ClientStore};
use crate::error::Result;
use crate::validate;

/// The client family.
pub(super) struct Clients;

impl Family for Clients {
    type Key = String;
    type Map = Ordered<Self>;
    type Record = ClientRecord;
    type Indexes = ClientIndexes;
    const NAME: &'static str = "clients";
    fn key(client: &ClientRecord) -> &String {
        &client.client_id
    }
}

memory_index!(ByNode: Clients => str, |c| &c.node_id);
memory_index!(ByEpoch: Clients => u64, |c| &c.epoch);
memory_index!(ByOwner: Clients => [u8], |c| &c.owner);
memory_indexes!(pub(super) struct ClientIndexes for Clients {
    by_node: ByNode,
    by_epoch: ByEpoch,
    by_owner: ByOwner,
});

/// A stored client record, shared by the record map, every index and every snapshot.
type ClientRef = Arc<ClientRecord>;

/// One client write of a transaction.
pub(super) enum Write {
    Put(ClientRef),
    Delete(String),
}

/// What a transaction read of the clients: ids it looked up, queries it ran
/// (a page walk is recorded as the empty query: coarser than needed, never too fine).
#[derive(Default)]
pub(super) struct Reads {
    ids: HashSet<String>,
    queries: Vec<ClientQuery>,
}

/// The clients a commit changed: record before, record after.
#[derive(Default)]
pub(super) struct Changes(Vec<(Option<ClientRef>, Option<ClientRef>)>);

impl Bookkeeping for Clients {
    type Tables = Table<Clients>;
    type Write = Write;
    type Reads = Reads;
    type Changes = Changes;

    fn replay(table: &mut Table<Clients>, write: Write, changes: &mut Changes) -> Result<()> {
        match write {
            Write::Put(client) => {
                let old = table.put(client.clone());
                changes.0.push((old, Some(client)));
            }
            Write::Delete(id) => {
                let old = table.delete(&id);
                changes.0.push((old, None));
            }
        }
        Ok(())
    }

    fn invalidates(changes: &Changes, reads: &Reads) -> bool {
        changes.0.iter().any(|(old, new)| {
            [old, new].into_iter().flatten().any(|client| {
                reads.ids.contains(&client.client_id)
                    || reads.queries.iter().any(|q| q.matches(client))
            })
        })
    }
}

/// Every stored client matching `query`, in id order, found through its most
/// selective index (all clients when it sets no field).
fn matching(table: &Table<Clients>, query: &ClientQuery) -> Result<Vec<ClientRef>> {
    let candidates = if let Some(owner) = &query.owner {
        table.find(|ix| &ix.by_owner, owner.as_slice())?
    } else if let Some(node) = &query.node_id {
        table.find(|ix| &ix.by_node, node.as_str())?
    } else if let Some(epoch) = &query.epoch {
        table.find(|ix| &ix.by_epoch, epoch)?
    } else {
        return Ok(table.iter().cloned().collect());
    };
    Ok(candidates
        .into_iter()
        .filter(|c| query.matches(c))
        .collect())
}

#[async_trait]
impl ClientStore for MemoryTx {
    async fn put_client(&mut self, client: &ClientRecord) -> Result<()> {
        validate::client(client)?;
        let client = Arc::new(client.clone());
        self.working.clients.put(client.clone());
        self.writes.clients.push(Write::Put(client));
        Ok(())
    }

    async fn get_client(&mut self, client_id: &str) -> Result<Option<ClientRecord>> {
        validate::id("client_id", client_id)?;
        self.reads.clients.ids.insert(client_id.to_owned());
        Ok(self
            .working
            .clients
            .get_borrowed(client_id)
            .map(|c| ClientRecord::clone(c)))
    }

    async fn delete_client(&mut self, client_id: &str) -> Result<bool> {
        validate::id("client_id", client_id)?;
        let id = client_id.to_owned();
        self.reads.clients.ids.insert(id.clone());
        if self.working.clients.delete(&id).is_none() {
            return Ok(false);
        }
        self.writes.clients.push(Write::Delete(id));
        Ok(true)
    }

    async fn list_clients(&mut self, query: &ClientQuery) -> Result<Vec<ClientRecord>> {
        validate::client_query(query)?;
        self.reads.clients.queries.push(query.clone());
        Ok(matching(&self.working.clients, query)?
            .iter()
            .map(|c| ClientRecord::clone(c))
            .collect())
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
        self.reads.clients.queries.push(ClientQuery::default());
        let after = after.map(str::to_owned);
        Ok(self
            .working
            .clients
            .page(after.as_ref(), limit)
            .iter()
            .map(|c| ClientRecord::clone(c))
            .collect())
    }
}
