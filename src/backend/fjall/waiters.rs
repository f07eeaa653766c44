//! The waiter family: [`Waiter`] records in `waiters`, keyed by id, with four
//! indexes: `waiters_by_file` (`len16(file handle) | be64(position) | id16`,
//! so a file's queue is one prefix scan in queue order), `waiters_by_owner`
//! (`len16(owner_id) | len16(client_id) | id16`), `waiters_by_client` and
//! `waiters_by_node` (`len16(value) | id16`). Values are format 1
//! ([`WaiterV1`]) behind the version byte.

use async_trait::async_trait;
use fjall::OptimisticTxKeyspace;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Keyspaces;
use super::codec::{self, Fault};
use super::keys::{self, names};
use super::table::{Family, Index, Table};
use super::tx::FjallTx;
use crate::error::{Error, Result};
use crate::file::FileHandle;
use crate::lock::{LockFlavor, LockType, ShareReservation};
use crate::time::Timestamp;
use crate::validate;
use crate::waiter::{Waiter, WaiterQuery, WaiterStore, queue_cmp};

/// The waiter family.
pub(super) struct Waiters;

/// A waiter record, format 1 (the id is the key).
#[derive(Serialize, Deserialize)]
struct WaiterV1 {
    file_id: Vec<u8>,
    share_name: String,
    owner_id: String,
    client_id: String,
    node_id: String,
    lock_type: u8,
    offset: u64,
    length: u64,
    share_reservation: u8,
    flavor: u8,
    position: u64,
    since: i64,
    context: Vec<u8>,
}

/// `len16(file) | be64(position) | id16`.
fn by_file_entry(waiter: &Waiter) -> Result<Vec<u8>> {
    let mut key = keys::prefix(waiter.file_id.as_bytes())?;
    key.extend_from_slice(&waiter.position.to_be_bytes());
    key.extend_from_slice(waiter.id.as_bytes());
    Ok(key)
}

/// `len16(owner_id) | len16(client_id)`: the scan prefix of one owner.
fn owner_prefix(owner_id: &str, client_id: &str) -> Result<Vec<u8>> {
    let mut key = keys::prefix(owner_id.as_bytes())?;
    key.extend_from_slice(&keys::prefix(client_id.as_bytes())?);
    Ok(key)
}

/// `waiters_by_file`: a file's queue, in position order.
const BY_FILE: Index<Waiter> = Index {
    name: names::WAITERS_BY_FILE,
    layout: "len16(file handle) | be64(position) | id16",
    keyspace: |ks| &ks.waiters_by_file,
    entry: by_file_entry,
    target: |entry| keys::after_len16(entry).and_then(keys::after_be64),
};

/// `waiters_by_owner`: an owner's waiters, in id order.
const BY_OWNER: Index<Waiter> = Index {
    name: names::WAITERS_BY_OWNER,
    layout: "len16(owner_id) | len16(client_id) | id16",
    keyspace: |ks| &ks.waiters_by_owner,
    entry: |w| {
        let mut key = owner_prefix(&w.owner_id, &w.client_id)?;
        key.extend_from_slice(w.id.as_bytes());
        Ok(key)
    },
    target: |entry| keys::after_len16(entry).and_then(keys::after_len16),
};

/// `waiters_by_client`: a client's waiters, in id order.
const BY_CLIENT: Index<Waiter> = Index {
    name: names::WAITERS_BY_CLIENT,
    layout: "len16(client_id) | id16",
    keyspace: |ks| &ks.waiters_by_client,
    entry: |w| keys::lock_index(w.client_id.as_bytes(), w.id),
    target: keys::after_len16,
};

/// `waiters_by_node`: a node's waiters, in id order.
const BY_NODE: Index<Waiter> = Index {
    name: names::WAITERS_BY_NODE,
    layout: "len16(node_id) | id16",
    keyspace: |ks| &ks.waiters_by_node,
    entry: |w| keys::lock_index(w.node_id.as_bytes(), w.id),
    target: keys::after_len16,
};

impl Family for Waiters {
    type Key = Uuid;
    type Record = Waiter;
    const NAME: &'static str = names::WAITERS;
    const RECORD: &'static str = "waiter";
    const PREFIX: &'static [u8] = b"";
    const KEY_RULE: &'static str = "a waiter key must be a 16-byte id";
    const INDEXES: &'static [Index<Waiter>] = &[BY_FILE, BY_OWNER, BY_CLIENT, BY_NODE];

    fn keyspace(ks: &Keyspaces) -> &OptimisticTxKeyspace {
        &ks.waiters
    }
    fn key_of(waiter: &Waiter) -> Uuid {
        waiter.id
    }
    fn encode_key(id: &Uuid) -> Vec<u8> {
        id.as_bytes().to_vec()
    }
    fn decode_key(raw: &[u8]) -> Option<Uuid> {
        <[u8; 16]>::try_from(raw).ok().map(Uuid::from_bytes)
    }
    fn encode(w: &Waiter) -> Result<Vec<u8>> {
        codec::encode(&WaiterV1 {
            file_id: w.file_id.as_bytes().to_vec(),
            share_name: w.share_name.clone(),
            owner_id: w.owner_id.clone(),
            client_id: w.client_id.clone(),
            node_id: w.node_id.clone(),
            lock_type: w.lock_type as u8,
            offset: w.offset,
            length: w.length,
            share_reservation: w.share_reservation as u8,
            flavor: w.flavor as u8,
            position: w.position,
            since: w.since.as_micros(),
            context: w.context.clone(),
        })
    }
    fn decode(id: &Uuid, raw: &[u8], value: &[u8]) -> Result<Waiter, Fault> {
        let v: WaiterV1 = codec::decode(names::WAITERS, raw, value)?;
        let ctx = codec::stored(names::WAITERS, raw);
        let waiter = Waiter {
            id: *id,
            file_id: FileHandle::new(v.file_id).map_err(&ctx)?,
            share_name: v.share_name,
            owner_id: v.owner_id,
            client_id: v.client_id,
            node_id: v.node_id,
            lock_type: LockType::try_from(v.lock_type).map_err(&ctx)?,
            offset: v.offset,
            length: v.length,
            share_reservation: ShareReservation::try_from(v.share_reservation).map_err(&ctx)?,
            flavor: LockFlavor::try_from(v.flavor).map_err(&ctx)?,
            position: v.position,
            since: Timestamp::from_micros(v.since),
            context: v.context,
        };
        validate::waiter(&waiter).map_err(&ctx)?;
        Ok(waiter)
    }
}

impl FjallTx {
    /// Every stored waiter matching `query`, in queue order, read through
    /// its most selective index (every listing is a scan of an index prefix,
    /// so a concurrent insert into it conflicts at commit).
    fn matching_waiters(&self, query: &WaiterQuery) -> Result<Vec<Waiter>> {
        let table = Table::<Waiters>::new(&self.store.ks);
        let by =
            |index: &Index<Waiter>, prefix: Vec<u8>| table.index_prefix(&self.tx, index, &prefix);
        let mut found = if let Some(file) = &query.file_id {
            by(&BY_FILE, keys::prefix(file.as_bytes())?)?
        } else if let (Some(owner), Some(client)) = (&query.owner_id, &query.client_id) {
            by(&BY_OWNER, owner_prefix(owner, client)?)?
        } else if let Some(client) = &query.client_id {
            by(&BY_CLIENT, keys::prefix(client.as_bytes())?)?
        } else if let Some(node) = &query.node_id {
            by(&BY_NODE, keys::prefix(node.as_bytes())?)?
        } else {
            table.all(&self.tx)?
        };
        found.retain(|w| query.matches(w));
        found.sort_by(queue_cmp);
        Ok(found)
    }
}

#[async_trait]
impl WaiterStore for FjallTx {
    async fn put_waiter(&mut self, waiter: &Waiter) -> Result<()> {
        validate::waiter(waiter)?;
        Table::<Waiters>::new(&self.store.ks).put(&mut self.tx, waiter)
    }

    async fn get_waiter(&mut self, id: Uuid) -> Result<Option<Waiter>> {
        Table::<Waiters>::new(&self.store.ks).get(&self.tx, &id)
    }

    async fn delete_waiter(&mut self, id: Uuid) -> Result<bool> {
        let old = Table::<Waiters>::new(&self.store.ks).delete(&mut self.tx, &id)?;
        if let Some(old) = &old {
            self.freed.note(&old.file_id);
        }
        Ok(old.is_some())
    }

    async fn list_waiters(&mut self, query: &WaiterQuery) -> Result<Vec<Waiter>> {
        validate::waiter_query(query)?;
        self.matching_waiters(query)
    }

    async fn delete_waiters(&mut self, query: &WaiterQuery) -> Result<u64> {
        validate::waiter_query(query)?;
        if query.is_empty() {
            return Err(Error::Invalid(
                "delete_waiters: the query sets no field (it would delete every waiter)".into(),
            ));
        }
        let found = self.matching_waiters(query)?;
        let table = Table::<Waiters>::new(&self.store.ks);
        for waiter in &found {
            table.remove(&mut self.tx, waiter)?;
            self.freed.note(&waiter.file_id);
        }
        Ok(found.len() as u64)
    }

    async fn list_waiters_page(
        &mut self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Waiter>> {
        validate::page_limit(limit)?;
        Table::<Waiters>::new(&self.store.ks).page(&self.tx, after.as_ref(), limit)
    }
}
