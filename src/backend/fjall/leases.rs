//! The lease family ([`LeaseRecord`]s in `leases`, keyed by id16, indexed by
//! `leases_by_file`, `leases_by_client`, `leases_by_key`) and the delegation
//! family ([`DelegationRecord`]s in `delegations`, indexed by
//! `delegations_by_file`, `delegations_by_client`); every entry
//! `len16(value) | id16`. Values: format byte 1 | postcard of [`LeaseV1`] /
//! [`DelegationV1`].

use async_trait::async_trait;
use fjall::OptimisticTxKeyspace;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Keyspaces;
use super::codec::{self, Fault};
use super::keys::{self, names};
use super::opens::entry;
use super::table::{Family, Index, Table};
use super::tx::FjallTx;
use crate::error::Result;
use crate::file::FileHandle;
use crate::open::{
    DelegationQuery, DelegationRecord, DelegationType, LeaseKey, LeaseQuery, LeaseRecord,
    LeaseState, LeaseStore,
};
use crate::time::Timestamp;
use crate::validate;

/// A lease, format 1 (the id is the key).
#[derive(Serialize, Deserialize)]
struct LeaseV1 {
    lease_key: LeaseKey,
    parent_lease_key: Option<LeaseKey>,
    file: Vec<u8>,
    share_name: String,
    client_id: String,
    state: u8,
    lease_epoch: u16,
    breaking: bool,
    break_to: u8,
    break_started_at: Option<i64>,
    directory: bool,
    oplock: bool,
    server_epoch: u64,
}

/// A delegation, format 1 (the id is the key).
#[derive(Serialize, Deserialize)]
struct DelegationV1 {
    file: Vec<u8>,
    share_name: String,
    client_id: String,
    kind: u8,
    recalled: bool,
    revoked: bool,
    notification_mask: u32,
    server_epoch: u64,
    granted_at: i64,
}

fn decode_lease(id: Uuid, raw: &[u8], bytes: &[u8]) -> Result<LeaseRecord, Fault> {
    let ctx = codec::stored(names::LEASES, raw);
    let v: LeaseV1 = codec::decode(names::LEASES, raw, bytes)?;
    let lease = LeaseRecord {
        id,
        lease_key: v.lease_key,
        parent_lease_key: v.parent_lease_key,
        file: FileHandle::new(v.file).map_err(&ctx)?,
        share_name: v.share_name,
        client_id: v.client_id,
        state: LeaseState::from_bits(v.state).map_err(&ctx)?,
        lease_epoch: v.lease_epoch,
        breaking: v.breaking,
        break_to: LeaseState::from_bits(v.break_to).map_err(&ctx)?,
        break_started_at: v.break_started_at.map(Timestamp::from_micros),
        directory: v.directory,
        oplock: v.oplock,
        server_epoch: v.server_epoch,
    };
    validate::lease(&lease).map_err(&ctx)?;
    Ok(lease)
}

fn decode_delegation(id: Uuid, raw: &[u8], bytes: &[u8]) -> Result<DelegationRecord, Fault> {
    let ctx = codec::stored(names::DELEGATIONS, raw);
    let v: DelegationV1 = codec::decode(names::DELEGATIONS, raw, bytes)?;
    let delegation = DelegationRecord {
        id,
        file: FileHandle::new(v.file).map_err(&ctx)?,
        share_name: v.share_name,
        client_id: v.client_id,
        kind: DelegationType::try_from(v.kind).map_err(&ctx)?,
        recalled: v.recalled,
        revoked: v.revoked,
        notification_mask: v.notification_mask,
        server_epoch: v.server_epoch,
        granted_at: Timestamp::from_micros(v.granted_at),
    };
    validate::delegation(&delegation).map_err(&ctx)?;
    Ok(delegation)
}

macro_rules! len16_index {
    ($name:ident: $record:ty, $ks:ident, $layout:literal, |$r:ident| $component:expr) => {
        const $name: Index<$record> = Index {
            name: names::$name,
            layout: $layout,
            keyspace: |ks| &ks.$ks,
            entry: |$r| entry($component, $r.id),
            target: keys::after_len16,
        };
    };
}

len16_index!(LEASES_BY_FILE: LeaseRecord, leases_by_file, "len16(file handle) | id16", |l| l.file.as_bytes());
len16_index!(LEASES_BY_CLIENT: LeaseRecord, leases_by_client, "len16(client_id) | id16", |l| l.client_id.as_bytes());
len16_index!(LEASES_BY_KEY: LeaseRecord, leases_by_key, "len16(lease key) | id16", |l| &l.lease_key);
len16_index!(DELEGATIONS_BY_FILE: DelegationRecord, delegations_by_file, "len16(file handle) | id16", |d| d.file.as_bytes());
len16_index!(DELEGATIONS_BY_CLIENT: DelegationRecord, delegations_by_client, "len16(client_id) | id16", |d| d.client_id.as_bytes());

/// Declares an id-keyed family.
macro_rules! id_family {
    ($family:ident: $record:ty, $ks:ident, $name:ident, $what:literal, [$($index:ident),*], $encode:expr, $decode:ident) => {
        /// An id-keyed family (see the module docs).
        pub(super) struct $family;
        impl Family for $family {
            type Key = Uuid;
            type Record = $record;
            const NAME: &'static str = names::$name;
            const RECORD: &'static str = $what;
            const PREFIX: &'static [u8] = b"";
            const KEY_RULE: &'static str = concat!("a ", $what, " key must be a 16-byte id");
            const INDEXES: &'static [Index<$record>] = &[$($index),*];
            fn keyspace(ks: &Keyspaces) -> &OptimisticTxKeyspace {
                &ks.$ks
            }
            fn key_of(r: &$record) -> Uuid {
                r.id
            }
            fn encode_key(id: &Uuid) -> Vec<u8> {
                id.as_bytes().to_vec()
            }
            fn decode_key(raw: &[u8]) -> Option<Uuid> {
                <[u8; 16]>::try_from(raw).ok().map(Uuid::from_bytes)
            }
            fn encode(r: &$record) -> Result<Vec<u8>> {
                codec::encode(&$encode(r))
            }
            fn decode(id: &Uuid, raw: &[u8], value: &[u8]) -> Result<$record, Fault> {
                $decode(*id, raw, value)
            }
        }
    };
}

id_family!(Leases: LeaseRecord, leases, LEASES, "lease",
    [LEASES_BY_FILE, LEASES_BY_CLIENT, LEASES_BY_KEY],
    |l: &LeaseRecord| LeaseV1 {
        lease_key: l.lease_key,
        parent_lease_key: l.parent_lease_key,
        file: l.file.as_bytes().to_vec(),
        share_name: l.share_name.clone(),
        client_id: l.client_id.clone(),
        state: l.state.bits(),
        lease_epoch: l.lease_epoch,
        breaking: l.breaking,
        break_to: l.break_to.bits(),
        break_started_at: l.break_started_at.map(Timestamp::as_micros),
        directory: l.directory,
        oplock: l.oplock,
        server_epoch: l.server_epoch,
    },
    decode_lease);

id_family!(Delegations: DelegationRecord, delegations, DELEGATIONS, "delegation",
    [DELEGATIONS_BY_FILE, DELEGATIONS_BY_CLIENT],
    |d: &DelegationRecord| DelegationV1 {
        file: d.file.as_bytes().to_vec(),
        share_name: d.share_name.clone(),
        client_id: d.client_id.clone(),
        kind: d.kind as u8,
        recalled: d.recalled,
        revoked: d.revoked,
        notification_mask: d.notification_mask,
        server_epoch: d.server_epoch,
        granted_at: d.granted_at.as_micros(),
    },
    decode_delegation);

#[async_trait]
impl LeaseStore for FjallTx {
    async fn put_lease(&mut self, lease: &LeaseRecord) -> Result<()> {
        validate::lease(lease)?;
        Table::<Leases>::new(&self.store.ks).put(&mut self.tx, lease)
    }

    async fn get_lease(&mut self, id: Uuid) -> Result<Option<LeaseRecord>> {
        Table::<Leases>::new(&self.store.ks).get(&self.tx, &id)
    }

    async fn delete_lease(&mut self, id: Uuid) -> Result<bool> {
        Ok(Table::<Leases>::new(&self.store.ks)
            .delete(&mut self.tx, &id)?
            .is_some())
    }

    async fn list_leases(&mut self, q: &LeaseQuery) -> Result<Vec<LeaseRecord>> {
        validate::lease_query(q)?;
        let mut found = if let Some(file) = &q.file {
            self.by_index::<Leases>(&LEASES_BY_FILE, file.as_bytes())?
        } else if let Some(key) = &q.lease_key {
            self.by_index::<Leases>(&LEASES_BY_KEY, key)?
        } else if let Some(client) = &q.client_id {
            self.by_index::<Leases>(&LEASES_BY_CLIENT, client.as_bytes())?
        } else {
            Table::<Leases>::new(&self.store.ks).all(&self.tx)?
        };
        found.retain(|l| q.matches(l));
        Ok(found)
    }

    async fn list_leases_page(
        &mut self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<LeaseRecord>> {
        validate::page_limit(limit)?;
        Table::<Leases>::new(&self.store.ks).page(&self.tx, after.as_ref(), limit)
    }

    async fn put_delegation(&mut self, d: &DelegationRecord) -> Result<()> {
        validate::delegation(d)?;
        Table::<Delegations>::new(&self.store.ks).put(&mut self.tx, d)
    }

    async fn get_delegation(&mut self, id: Uuid) -> Result<Option<DelegationRecord>> {
        Table::<Delegations>::new(&self.store.ks).get(&self.tx, &id)
    }

    async fn delete_delegation(&mut self, id: Uuid) -> Result<bool> {
        Ok(Table::<Delegations>::new(&self.store.ks)
            .delete(&mut self.tx, &id)?
            .is_some())
    }

    /// Through the file or client index; `revoked` alone reads every delegation.
    async fn list_delegations(&mut self, q: &DelegationQuery) -> Result<Vec<DelegationRecord>> {
        validate::delegation_query(q)?;
        let mut found = if let Some(file) = &q.file {
            self.by_index::<Delegations>(&DELEGATIONS_BY_FILE, file.as_bytes())?
        } else if let Some(client) = &q.client_id {
            self.by_index::<Delegations>(&DELEGATIONS_BY_CLIENT, client.as_bytes())?
        } else {
            Table::<Delegations>::new(&self.store.ks).all(&self.tx)?
        };
        found.retain(|d| q.matches(d));
        Ok(found)
    }

    async fn list_delegations_page(
        &mut self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<DelegationRecord>> {
        validate::page_limit(limit)?;
        Table::<Delegations>::new(&self.store.ks).page(&self.tx, after.as_ref(), limit)
    }
}
