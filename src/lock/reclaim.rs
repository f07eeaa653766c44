//! Reclaim during the grace period: a client re-grants a lock it held
//! before a restart or failover, matched by meaning and stamped with the
//! reclaiming node's own epoch.

use tracing::{Instrument, field};

use crate::error::{Error, Result};
use crate::lock::{LockFlavor, LockQuery, PersistedLock};
use crate::node::DEFAULT_NODE;
use crate::recovery::Epochs;
use crate::tx::MetadataTransaction;
use crate::validate;

use super::arbiter::lock_span;
use super::arbiter::*;

/// The answer to a reclaim ([`reclaim_lock`], [`SessionTx::reclaim`](crate::SessionTx::reclaim)) during the grace period.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reclaim {
    /// The client holds the lock again, stamped with the reclaiming node's
    /// current epoch. Also the answer to a retransmitted reclaim of a lock
    /// already reclaimed (nothing is written the second time).
    Granted,
    /// No stored lock matches the request: the client did not hold it, or
    /// not in a dead epoch (NFSv4 `NFS4ERR_RECLAIM_BAD`). Nothing was written.
    NoSuchLock,
    /// A matching lock exists, but stored locks of other owners conflict with
    /// it (NFSv4 `NFS4ERR_DENIED`); they are listed as stored, in id order.
    /// Nothing was written.
    Denied {
        /// The stored locks that conflict with the reclaimed one.
        conflicts: Vec<PersistedLock>,
    },
    /// The client may not reclaim at all (a session's reclaim checks its
    /// client record first, see [`may_reclaim`](crate::may_reclaim)): NFSv4
    /// `NFS4ERR_NO_GRACE` and friends. Nothing was written.
    NotAllowed(crate::client::ReclaimRefusal),
}

/// True when `stored` is the lock `request` describes: same file, owner,
/// client, type and deny mode, and the same bytes (`offset` and
/// [`ByteRange::last`]: length 0 and NFSv4's all-ones length both mean "to EOF").
/// Windows locks match by flavour and the exact offset and length.
fn describes(request: &PersistedLock, stored: &PersistedLock) -> bool {
    stored.file_id == request.file_id
        && same_owner(stored, request)
        && stored.lock_type == request.lock_type
        && stored.share_reservation == request.share_reservation
        && stored.flavor == request.flavor
        && match request.flavor {
            LockFlavor::Posix => stored.range().same_bytes(&request.range()),
            LockFlavor::Windows => {
                stored.offset == request.offset && stored.length == request.length
            }
        }
}

/// Re-grants a lock held before a restart, during the grace period, on node
/// [`DEFAULT_NODE`]. A node session reclaims with
/// [`SessionTx::reclaim`](crate::SessionTx::reclaim), which works the same way
/// with the session's epoch.
///
/// The request matches a stored lock with the same file, owner, client, type,
/// deny mode and bytes: ranges are compared by meaning (`offset` and
/// [`ByteRange::last`](crate::ByteRange::last)), so a lock the arbiter stores with length 0 after a
/// split or merge matches a reclaim spelled with NFSv4's all-ones length, and
/// the reverse. Ids, timestamps and epochs of the request are ignored.
///
/// - [`Reclaim::Granted`]: a matching lock from a dead epoch (of any node: a
///   client may fail over to another server) is restamped with the node's
///   current epoch, in place (it keeps its id and range as stored: no second
///   record). A retransmitted reclaim, whose lock the same client already
///   holds in the node's current epoch, is granted again and writes nothing.
/// - [`Reclaim::NoSuchLock`]: no stored lock matches (the client did not
///   hold it, or holds it in another node's live epoch). Nothing is written.
/// - [`Reclaim::Denied`]: a matching lock from a dead epoch exists, but stored
///   locks of other owners conflict with it (locks written around the
///   arbiter; [`acquire_lock`] never grants one). Nothing is written.
///
/// Before [`DEFAULT_NODE`]'s first [`begin_recovery`](crate::begin_recovery)
/// (or once it was declared dead) it owns no live epoch:
/// [`Error::NodeNotStarted`], and nothing is written.
pub async fn reclaim_lock(
    tx: &mut (dyn MetadataTransaction + '_),
    lock: &PersistedLock,
) -> Result<Reclaim> {
    let span = lock_span!("reclaim", lock, node = DEFAULT_NODE);
    let result = async {
        validate::lock(lock)?;
        let epoch = match tx.get_node(DEFAULT_NODE).await? {
            Some(state) if state.is_live() => state.epoch,
            _ => {
                return Err(Error::NodeNotStarted {
                    node: DEFAULT_NODE.to_owned(),
                });
            }
        };
        reclaim_in_epoch(tx, epoch, lock).await
    }
    .instrument(span.clone())
    .await;
    record(&span, &result);
    result
}

/// A reclaim through a node session: [`reclaim_in_epoch`] in the `reclaim` span.
pub(crate) async fn reclaim_traced(
    tx: &mut (dyn MetadataTransaction + '_),
    node: &str,
    epoch: u64,
    lock: &PersistedLock,
) -> Result<Reclaim> {
    let span = lock_span!("reclaim", lock, node = node);
    let result = reclaim_in_epoch(tx, epoch, lock)
        .instrument(span.clone())
        .await;
    record(&span, &result);
    result
}

/// The core of every reclaim: re-grants `lock` stamped with `epoch`, which
/// the caller made sure is the reclaiming node's live epoch.
pub(crate) async fn reclaim_in_epoch(
    tx: &mut (dyn MetadataTransaction + '_),
    epoch: u64,
    lock: &PersistedLock,
) -> Result<Reclaim> {
    validate::lock(lock)?;
    let epochs = Epochs::load(tx).await?;
    let stored = tx.list_locks(&LockQuery::by_file(&lock.file_id)).await?;
    let matching = |live: bool| {
        stored.iter().find(|s| {
            describes(lock, s)
                && if live {
                    s.server_epoch == epoch
                } else {
                    epochs.is_dead(s.server_epoch)
                }
        })
    };
    let Some(found) = matching(false) else {
        return Ok(if matching(true).is_some() {
            Reclaim::Granted
        } else {
            Reclaim::NoSuchLock
        });
    };
    let held = found.to_enhanced();
    let conflicting: Vec<PersistedLock> = stored
        .iter()
        .filter(|s| held.conflicts_with(&s.to_enhanced()))
        .cloned()
        .collect();
    if !conflicting.is_empty() {
        return Ok(Reclaim::Denied {
            conflicts: conflicting,
        });
    }
    tx.put_lock(&PersistedLock {
        server_epoch: epoch,
        ..found.clone()
    })
    .await?;
    Ok(Reclaim::Granted)
}

/// The answer to a request that conflicts with `conflicts`: [`Acquire::Grace`]
/// when one of them is a lock of a dead epoch (reclaimable until its grace
/// period ends), else [`Acquire::Denied`]. Only the denied path reads the
/// epochs, so a grant costs nothing more.
pub(super) async fn denial(
    tx: &mut (dyn MetadataTransaction + '_),
    conflicts: Vec<PersistedLock>,
) -> Result<Acquire> {
    // An epoch above the global counter was never handed out, so it cannot
    // have died: one read of the counter settles a store no node has started
    // in, without reading every node and epoch record.
    let global = tx.server_epoch().await?;
    if conflicts.iter().all(|l| l.server_epoch > global) {
        return Ok(Acquire::Denied { conflicts });
    }
    let epochs = Epochs::load(tx).await?;
    Ok(
        if conflicts.iter().any(|l| epochs.is_dead(l.server_epoch)) {
            Acquire::Grace { conflicts }
        } else {
            Acquire::Denied { conflicts }
        },
    )
}

impl Decided for Reclaim {
    fn decided(&self) -> (&'static str, usize) {
        match self {
            Reclaim::Granted => ("granted", 0),
            Reclaim::NoSuchLock => ("no_such_lock", 0),
            Reclaim::Denied { conflicts } => ("denied", conflicts.len()),
            Reclaim::NotAllowed(_) => ("not_allowed", 0),
        }
    }
}
