//! The reclaim rules over client records (nfsdcld semantics, per node),
//! written once over the traits: who may reclaim, RECLAIM_COMPLETE, lease
//! renewal, the end of grace, and courteous and strict lease expiry. Each
//! function works inside the caller's transaction, for a node and its live
//! epoch; the session methods (`session.rs`) call them in fenced transactions.
//!
//! # The recovery set
//!
//! A node's *recovery set* is the client records that are not expired, whose
//! epoch is dead, and that belong to the node itself or to a node it took
//! over ([`declare_dead`](crate::declare_dead) with it as the taker). Those
//! clients, and only those, may reclaim. A record leaves the set by
//! `reclaim_complete_in` (it moves to the live epoch) or at the end of
//! grace (it is deleted with its locks). A restart during grace keeps the
//! set: its records are still of dead epochs, now one more of them.
//!
use std::collections::BTreeSet;
use std::time::Duration;

use super::{ClientQuery, ClientRecord};
use crate::error::{Error, Result};
use crate::lock::PersistedLock;
use crate::lock::arbiter::{Acquire, acquire_lock};
use crate::recovery::Epochs;
use crate::time::Timestamp;
use crate::tx::MetadataTransaction;
use crate::validate;

/// Why a reclaim was refused ([`Reclaim::NotAllowed`](crate::Reclaim::NotAllowed)).
/// NFSv4 answers the first three `NFS4ERR_NO_GRACE`, `Expired`
/// `NFS4ERR_EXPIRED` and `WrongPrincipal` `NFS4ERR_PERM`.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReclaimRefusal {
    /// No record of the client: it held no state before the restart.
    UnknownClient,
    /// The record is of this incarnation: the client was confirmed after the
    /// restart, or already sent RECLAIM_COMPLETE.
    NotInRecovery,
    /// The record belongs to another node (live, or taken over by another).
    OtherNode,
    /// The client's state was revoked after its lease lapsed.
    Expired,
    /// The record names a principal, and the caller's is another (or none).
    WrongPrincipal,
}

/// The nodes whose recovery set `node` holds: itself and those it took over.
fn grace_nodes<'a>(epochs: &'a Epochs, node: &'a str) -> BTreeSet<&'a str> {
    std::iter::once(node)
        .chain(epochs.taken_over_by(node))
        .collect()
}

/// True when `record` is in the recovery set of `node` (see the module docs).
fn in_recovery_set(epochs: &Epochs, node: &str, record: &ClientRecord) -> bool {
    !record.expired
        && epochs.is_dead(record.epoch)
        && grace_nodes(epochs, node).contains(record.node_id.as_str())
}

/// The recovery set of `node`, in client id order: the records of its dead
/// epochs and of the nodes it took over, not expired (one index query per node).
pub(crate) async fn recovery_set(
    tx: &mut (dyn MetadataTransaction + '_),
    epochs: &Epochs,
    node: &str,
) -> Result<Vec<ClientRecord>> {
    let mut set = Vec::new();
    for owner in grace_nodes(epochs, node) {
        let records = tx.list_clients(&ClientQuery::by_node(owner)).await?;
        set.extend(
            records
                .into_iter()
                .filter(|r| in_recovery_set(epochs, node, r)),
        );
    }
    set.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    Ok(set)
}

/// Whether `client_id` may reclaim through `node` now: `None` when it may,
/// else why not.
///
/// # Decision table
///
/// | the client's record | answer |
/// | --- | --- |
/// | none | [`ReclaimRefusal::UnknownClient`] (it held no state before the restart) |
/// | expired (state revoked after its lease lapsed) | [`ReclaimRefusal::Expired`] |
/// | of this node's live epoch (confirmed after the restart, or RECLAIM_COMPLETE sent) | [`ReclaimRefusal::NotInRecovery`] |
/// | of another node's live epoch, or of a dead node another node took over | [`ReclaimRefusal::OtherNode`] |
/// | in the recovery set, with a principal other than the caller's | [`ReclaimRefusal::WrongPrincipal`] |
/// | in the recovery set, no principal or the caller's | allowed (the lock itself must still match) |
///
/// The *recovery set* of a node: the client records that are not expired,
/// whose epoch is dead, and that belong to the node or to a node it took
/// over ([`declare_dead`](crate::declare_dead) with it as the taker).
///
/// `principal` is the caller's, checked when the record names one. Reads the record and the
/// epochs in `tx`, so a concurrent RECLAIM_COMPLETE or end of grace conflicts.
pub async fn may_reclaim(
    tx: &mut (dyn MetadataTransaction + '_),
    node: &str,
    client_id: &str,
    principal: Option<&[u8]>,
) -> Result<Option<ReclaimRefusal>> {
    validate::id("node_id", node)?;
    validate::id("client_id", client_id)?;
    let Some(record) = tx.get_client(client_id).await? else {
        return Ok(Some(ReclaimRefusal::UnknownClient));
    };
    if record.expired {
        return Ok(Some(ReclaimRefusal::Expired));
    }
    let epochs = Epochs::load(tx).await?;
    if !epochs.is_dead(record.epoch) {
        return Ok(Some(if record.node_id == node {
            ReclaimRefusal::NotInRecovery
        } else {
            ReclaimRefusal::OtherNode
        }));
    }
    if !in_recovery_set(&epochs, node, &record) {
        return Ok(Some(ReclaimRefusal::OtherNode));
    }
    if record.principal.is_some() && record.principal.as_deref() != principal {
        return Ok(Some(ReclaimRefusal::WrongPrincipal));
    }
    Ok(None)
}

/// The record of `client_id`, or [`Error::ClientNotFound`]; an expired one is
/// [`Error::ClientExpired`].
async fn live_record(
    tx: &mut (dyn MetadataTransaction + '_),
    client_id: &str,
) -> Result<ClientRecord> {
    validate::id("client_id", client_id)?;
    match tx.get_client(client_id).await? {
        None => Err(Error::ClientNotFound(client_id.to_owned())),
        Some(record) if record.expired => Err(Error::ClientExpired(client_id.to_owned())),
        Some(record) => Ok(record),
    }
}

/// RECLAIM_COMPLETE of `client_id` on `node` (live epoch `epoch`): a record
/// of the recovery set moves to `node` and `epoch`, reclaim-complete, renewed
/// now; a record confirmed in `epoch` is marked reclaim-complete. A second
/// call is [`Error::AlreadyComplete`]; a missing record
/// [`Error::ClientNotFound`]; another node's record [`Error::WrongNode`];
/// nothing is written on an error. Returns the record as stored.
pub(crate) async fn reclaim_complete_in(
    tx: &mut (dyn MetadataTransaction + '_),
    node: &str,
    epoch: u64,
    client_id: &str,
) -> Result<ClientRecord> {
    let record = live_record(tx, client_id).await?;
    let updated = if record.epoch == epoch && record.node_id == node {
        if record.reclaim_complete {
            return Err(Error::AlreadyComplete(client_id.to_owned()));
        }
        ClientRecord {
            reclaim_complete: true,
            ..record
        }
    } else if in_recovery_set(&Epochs::load(tx).await?, node, &record) {
        ClientRecord {
            node_id: node.to_owned(),
            epoch,
            reclaim_complete: true,
            last_renewed: Timestamp::now(),
            ..record
        }
    } else {
        return Err(Error::WrongNode {
            client: client_id.to_owned(),
            node: record.node_id,
        });
    };
    tx.put_client(&updated).await?;
    Ok(updated)
}

/// Renews `client_id`'s lease on `node`: `last_renewed` becomes now. The
/// record must be `node`'s (or in its recovery set): [`Error::WrongNode`]
/// otherwise, [`Error::ClientNotFound`] / [`Error::ClientExpired`] as named.
pub(crate) async fn renew_in(
    tx: &mut (dyn MetadataTransaction + '_),
    node: &str,
    client_id: &str,
) -> Result<ClientRecord> {
    let record = live_record(tx, client_id).await?;
    if record.node_id != node && !in_recovery_set(&Epochs::load(tx).await?, node, &record) {
        return Err(Error::WrongNode {
            client: client_id.to_owned(),
            node: record.node_id,
        });
    }
    let renewed = ClientRecord {
        last_renewed: Timestamp::now(),
        ..record
    };
    tx.put_client(&renewed).await?;
    Ok(renewed)
}

/// The end of `node`'s grace for clients: deletes every record of its
/// recovery set (clients that did not send RECLAIM_COMPLETE) with all their
/// locks; returns (records, locks) deleted.
pub(crate) async fn end_grace_clients(
    tx: &mut (dyn MetadataTransaction + '_),
    node: &str,
) -> Result<(u64, u64)> {
    let epochs = Epochs::load(tx).await?;
    let set = recovery_set(tx, &epochs, node).await?;
    let mut locks = 0;
    for record in &set {
        locks += tx.delete_locks_by_client(&record.client_id).await?;
        tx.delete_client(&record.client_id).await?;
    }
    Ok((set.len() as u64, locks))
}

/// Strict expiry: every client of `node`'s live epoch `epoch` not renewed
/// since `before` (and not expired yet) loses all its locks and is marked
/// expired. Returns how many clients expired.
pub(crate) async fn expire_in(
    tx: &mut (dyn MetadataTransaction + '_),
    node: &str,
    epoch: u64,
    before: Timestamp,
) -> Result<u64> {
    validate::timestamp("before", before)?;
    let query = ClientQuery {
        node_id: Some(node.to_owned()),
        epoch: Some(epoch),
        ..ClientQuery::default()
    };
    let lapsed: Vec<ClientRecord> = tx
        .list_clients(&query)
        .await?
        .into_iter()
        .filter(|c| !c.expired && c.last_renewed < before)
        .collect();
    for client in &lapsed {
        tx.delete_locks_by_client(&client.client_id).await?;
        tx.put_client(&ClientRecord {
            expired: true,
            ..client.clone()
        })
        .await?;
    }
    Ok(lapsed.len() as u64)
}

/// [`acquire_lock`], courteous to clients whose lease lapsed: when the
/// request is denied only by locks of other clients that have a record, are
/// not in a recovery set, and were not renewed within `lease` before now,
/// those locks are deleted, their clients' records marked expired, and the
/// request decided again (granted, unless something else conflicts), all in
/// `tx`. A denial by any live client's lock, or a grace answer, is returned
/// as it is, and nothing is revoked.
pub(crate) async fn acquire_courteous(
    tx: &mut (dyn MetadataTransaction + '_),
    lock: &PersistedLock,
    lease: Duration,
) -> Result<Acquire> {
    let conflicts = match acquire_lock(tx, lock).await? {
        Acquire::Denied { conflicts } => conflicts,
        other => return Ok(other),
    };
    let lease_us = i64::try_from(lease.as_micros()).unwrap_or(i64::MAX);
    let cutoff = Timestamp::from_micros(Timestamp::now().as_micros().saturating_sub(lease_us));
    let clients: BTreeSet<String> = conflicts.iter().map(|c| c.client_id.clone()).collect();
    let mut lapsed = Vec::with_capacity(clients.len());
    for client in clients {
        if client == lock.client_id {
            return Ok(Acquire::Denied { conflicts });
        }
        match tx.get_client(&client).await? {
            Some(record) if record.expired || record.last_renewed < cutoff => lapsed.push(record),
            _ => return Ok(Acquire::Denied { conflicts }),
        }
    }
    let epochs = Epochs::load(tx).await?;
    if lapsed.iter().any(|r| epochs.is_dead(r.epoch) && !r.expired) {
        // A client of a dead epoch is in some node's grace, not out of lease.
        return Ok(Acquire::Denied { conflicts });
    }
    let ids: Vec<_> = conflicts.iter().map(|c| c.id).collect();
    tx.delete_locks(&ids).await?;
    for record in lapsed.into_iter().filter(|r| !r.expired) {
        tx.put_client(&ClientRecord {
            expired: true,
            ..record
        })
        .await?;
    }
    acquire_lock(tx, lock).await
}
