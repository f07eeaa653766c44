//! The open family: [`OpenRecord`]s in `opens`, keyed by id16, with six
//! indexes: `opens_by_file`, `opens_by_client`, `opens_by_share`,
//! `opens_by_create_guid`, `opens_by_app_instance` (`len16(value) | id16`;
//! an absent GUID is the empty value) and `opens_by_disconnect` (`00 | id16`
//! while connected, `01 | be64(biased disconnected_at) | id16` after, so
//! "disconnected before T" is one range). Values: format byte 1 | postcard
//! of [`OpenV1`]. Also the helpers `leases.rs` shares: id keys, `len16`
//! entries, listing through the most selective index.

use std::ops::Bound;

use async_trait::async_trait;
use fjall::OptimisticTxKeyspace;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Keyspaces;
use super::codec::{self, Fault};
use super::keys::{self, names};
use super::table::{Family, Index, Table};
use super::tx::FjallTx;
use crate::error::Result;
use crate::file::FileHandle;
use crate::open::{
    DurableState, LeaseKey, OpenProtocol, OpenQuery, OpenRecord, OpenStore, ShareMask,
};
use crate::time::Timestamp;
use crate::validate;

/// An open, format 1 (the id is the key).
#[derive(Serialize, Deserialize)]
struct OpenV1 {
    file: Vec<u8>,
    share_name: String,
    client_id: String,
    owner_id: String,
    access: u8,
    deny: u8,
    protocol: u8,
    durable: u8,
    timeout_ms: u32,
    create_guid: Option<[u8; 16]>,
    app_instance_id: Option<[u8; 16]>,
    lease_key: Option<LeaseKey>,
    disconnected_at: Option<i64>,
    lock_sequences: Vec<u8>,
    server_epoch: u64,
    opened_at: i64,
}

fn encode_open(o: &OpenRecord) -> Result<Vec<u8>> {
    codec::encode(&OpenV1 {
        file: o.file.as_bytes().to_vec(),
        share_name: o.share_name.clone(),
        client_id: o.client_id.clone(),
        owner_id: o.owner_id.clone(),
        access: o.access.bits(),
        deny: o.deny.bits(),
        protocol: o.protocol as u8,
        durable: o.durable.tag(),
        timeout_ms: o.durable.timeout_ms(),
        create_guid: o.create_guid.map(Uuid::into_bytes),
        app_instance_id: o.app_instance_id.map(Uuid::into_bytes),
        lease_key: o.lease_key,
        disconnected_at: o.disconnected_at.map(Timestamp::as_micros),
        lock_sequences: o.lock_sequences.clone(),
        server_epoch: o.server_epoch,
        opened_at: o.opened_at.as_micros(),
    })
}

fn decode_open(id: Uuid, raw: &[u8], bytes: &[u8]) -> Result<OpenRecord, Fault> {
    let ctx = codec::stored(names::OPENS, raw);
    let v: OpenV1 = codec::decode(names::OPENS, raw, bytes)?;
    let open = OpenRecord {
        id,
        file: FileHandle::new(v.file).map_err(&ctx)?,
        share_name: v.share_name,
        client_id: v.client_id,
        owner_id: v.owner_id,
        access: ShareMask::from_bits(v.access).map_err(&ctx)?,
        deny: ShareMask::from_bits(v.deny).map_err(&ctx)?,
        protocol: OpenProtocol::try_from(v.protocol).map_err(&ctx)?,
        durable: DurableState::from_parts(v.durable, v.timeout_ms).map_err(&ctx)?,
        create_guid: v.create_guid.map(Uuid::from_bytes),
        app_instance_id: v.app_instance_id.map(Uuid::from_bytes),
        lease_key: v.lease_key,
        disconnected_at: v.disconnected_at.map(Timestamp::from_micros),
        lock_sequences: v.lock_sequences,
        server_epoch: v.server_epoch,
        opened_at: Timestamp::from_micros(v.opened_at),
    };
    validate::open(&open).map_err(&ctx)?;
    Ok(open)
}

/// `len16(component) | id16`.
pub(super) fn entry(component: &[u8], id: Uuid) -> Result<Vec<u8>> {
    keys::lock_index(component, id)
}

/// The bytes of an optional GUID as an index component (empty when absent).
fn guid(g: Option<Uuid>) -> Vec<u8> {
    g.map_or_else(Vec::new, |g| g.as_bytes().to_vec())
}

/// A timestamp as 8 bytes in its order (sign bit flipped, big-endian).
fn biased(at: Timestamp) -> [u8; 8] {
    ((at.as_micros() as u64) ^ (1 << 63)).to_be_bytes()
}

fn disconnect_entry(o: &OpenRecord) -> Vec<u8> {
    let mut key = match o.disconnected_at {
        None => vec![0],
        Some(at) => [&[1][..], &biased(at)].concat(),
    };
    key.extend_from_slice(o.id.as_bytes());
    key
}

fn after_disconnect(key: &[u8]) -> Option<&[u8]> {
    match key.first()? {
        0 => key.get(1..),
        1 => key.get(9..),
        _ => None,
    }
}

macro_rules! len16_index {
    ($name:ident, $ks:ident, $layout:literal, |$o:ident| $component:expr) => {
        const $name: Index<OpenRecord> = Index {
            name: names::$name,
            layout: $layout,
            keyspace: |ks| &ks.$ks,
            entry: |$o| entry(&$component, $o.id),
            target: keys::after_len16,
        };
    };
}

len16_index!(
    OPENS_BY_FILE,
    opens_by_file,
    "len16(file handle) | id16",
    |o| o.file.as_bytes()
);
len16_index!(
    OPENS_BY_CLIENT,
    opens_by_client,
    "len16(client_id) | id16",
    |o| o.client_id.as_bytes()
);
len16_index!(
    OPENS_BY_SHARE,
    opens_by_share,
    "len16(share_name) | id16",
    |o| o.share_name.as_bytes()
);
len16_index!(
    OPENS_BY_CREATE_GUID,
    opens_by_create_guid,
    "len16(create guid or empty) | id16",
    |o| guid(o.create_guid)
);
len16_index!(
    OPENS_BY_APP_INSTANCE,
    opens_by_app_instance,
    "len16(app instance id or empty) | id16",
    |o| guid(o.app_instance_id)
);

const OPENS_BY_DISCONNECT: Index<OpenRecord> = Index {
    name: names::OPENS_BY_DISCONNECT,
    layout: "00 | id16, or 01 | be64(biased disconnected_at) | id16",
    keyspace: |ks| &ks.opens_by_disconnect,
    entry: |o| Ok(disconnect_entry(o)),
    target: after_disconnect,
};

/// The open family.
pub(super) struct Opens;

impl Family for Opens {
    type Key = Uuid;
    type Record = OpenRecord;
    const NAME: &'static str = names::OPENS;
    const RECORD: &'static str = "open";
    const PREFIX: &'static [u8] = b"";
    const KEY_RULE: &'static str = "an open key must be a 16-byte id";
    const INDEXES: &'static [Index<OpenRecord>] = &[
        OPENS_BY_FILE,
        OPENS_BY_CLIENT,
        OPENS_BY_SHARE,
        OPENS_BY_CREATE_GUID,
        OPENS_BY_APP_INSTANCE,
        OPENS_BY_DISCONNECT,
    ];
    fn keyspace(ks: &Keyspaces) -> &OptimisticTxKeyspace {
        &ks.opens
    }
    fn key_of(o: &OpenRecord) -> Uuid {
        o.id
    }
    fn encode_key(id: &Uuid) -> Vec<u8> {
        id.as_bytes().to_vec()
    }
    fn decode_key(raw: &[u8]) -> Option<Uuid> {
        <[u8; 16]>::try_from(raw).ok().map(Uuid::from_bytes)
    }
    fn encode(o: &OpenRecord) -> Result<Vec<u8>> {
        encode_open(o)
    }
    fn decode(id: &Uuid, raw: &[u8], value: &[u8]) -> Result<OpenRecord, Fault> {
        decode_open(*id, raw, value)
    }
}

impl FjallTx {
    /// The records of `index` under `len16(component)`, in id order.
    pub(super) fn by_index<F: Family>(
        &self,
        index: &Index<F::Record>,
        component: &[u8],
    ) -> Result<Vec<F::Record>> {
        Table::<F>::new(&self.store.ks).index_prefix(&self.tx, index, &keys::prefix(component)?)
    }

    /// The opens matching `query`, through its most selective index (the
    /// memory backend's order). Each listing is a prefix or range scan, so
    /// a concurrent insert into it conflicts.
    fn matching_opens(&self, q: &OpenQuery) -> Result<Vec<OpenRecord>> {
        let mut found = if let Some(g) = q.create_guid {
            self.by_index::<Opens>(&OPENS_BY_CREATE_GUID, g.as_bytes())?
        } else if let Some(file) = &q.file {
            self.by_index::<Opens>(&OPENS_BY_FILE, file.as_bytes())?
        } else if let Some(a) = q.app_instance_id {
            self.by_index::<Opens>(&OPENS_BY_APP_INSTANCE, a.as_bytes())?
        } else if let Some(client) = &q.client_id {
            self.by_index::<Opens>(&OPENS_BY_CLIENT, client.as_bytes())?
        } else if let Some(share) = &q.share_name {
            self.by_index::<Opens>(&OPENS_BY_SHARE, share.as_bytes())?
        } else if let Some(before) = q.disconnected_before {
            let end = [&[1][..], &biased(before)].concat();
            let range = (Bound::Included(vec![1]), Bound::Excluded(end));
            let mut opens = Table::<Opens>::new(&self.store.ks).index_range(
                &self.tx,
                &OPENS_BY_DISCONNECT,
                range,
            )?;
            opens.sort_unstable_by_key(|o| o.id);
            opens
        } else {
            Table::<Opens>::new(&self.store.ks).all(&self.tx)?
        };
        found.retain(|o| q.matches(o));
        Ok(found)
    }
}

#[async_trait]
impl OpenStore for FjallTx {
    async fn put_open(&mut self, open: &OpenRecord) -> Result<()> {
        validate::open(open)?;
        Table::<Opens>::new(&self.store.ks).put(&mut self.tx, open)
    }

    async fn get_open(&mut self, id: Uuid) -> Result<Option<OpenRecord>> {
        Table::<Opens>::new(&self.store.ks).get(&self.tx, &id)
    }

    async fn delete_open(&mut self, id: Uuid) -> Result<bool> {
        Ok(Table::<Opens>::new(&self.store.ks)
            .delete(&mut self.tx, &id)?
            .is_some())
    }

    async fn list_opens(&mut self, query: &OpenQuery) -> Result<Vec<OpenRecord>> {
        validate::open_query(query)?;
        self.matching_opens(query)
    }

    async fn list_opens_page(
        &mut self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<OpenRecord>> {
        validate::page_limit(limit)?;
        Table::<Opens>::new(&self.store.ks).page(&self.tx, after.as_ref(), limit)
    }
}
