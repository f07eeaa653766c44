//! Share-mode arbitration ([`open_file`]) and [`close_open`]; the decision
//! tables are in the module docs of [`crate::open`].

use uuid::Uuid;

use super::breaks::{BreakPlan, plan_breaks};
use super::model::{DelegationRecord, LeaseRecord, OpenProtocol, OpenRecord, ShareMask};
use super::store::{LeaseQuery, OpenQuery};
use crate::error::{Error, Result};
use crate::lock::{LockQuery, PersistedLock, ShareReservation};
use crate::time::Timestamp;
use crate::tx::MetadataTransaction;
use crate::validate;

/// What stands in the way of an open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShareConflict {
    /// A stored open whose access or deny mask conflicts with the request's.
    Open(OpenRecord),
    /// A lock record written before opens existed whose `share_reservation`
    /// denies what the request wants to do.
    Reservation(PersistedLock),
}

/// The outcome of [`open_file`].
// The grant carries the open as stored (a few hundred bytes): boxing it
// would only cost callers a deref on the common path.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Open {
    /// The open was written as given; `breaks` and `recalls` were recorded
    /// in the same transaction and must be sent by the server.
    Granted {
        /// The stored open.
        open: OpenRecord,
        /// Leases and oplocks now breaking (their new `break_to`).
        breaks: Vec<LeaseRecord>,
        /// Delegations now recalled.
        recalls: Vec<DelegationRecord>,
    },
    /// Nothing of the open was written. `conflicts` holds what denies it, as
    /// stored; `breaks` the handle-caching (H) breaks recorded so that the
    /// holders can close their cached handles (SMB: send them, wait for the
    /// acknowledgements, then try again).
    Denied {
        /// The conflicting opens and reservations.
        conflicts: Vec<ShareConflict>,
        /// Leases now breaking their H bit.
        breaks: Vec<LeaseRecord>,
    },
}

/// An open request: the open to store, as the server built it (its id,
/// epoch and times are the caller's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenRequest {
    /// The open to write when granted (`open.lease_key`: the requester's
    /// lease, which is never broken by its own opens).
    pub open: OpenRecord,
    /// When a break recorded for this request started.
    pub at: Timestamp,
}

/// True when the two opens' share modes conflict (either direction).
///
/// An open without read, write or delete access (attributes only) takes
/// part in no check (MS-FSA 2.1.5.1.2.1). NFSv4 and NLM opens of the same
/// client and owner never conflict with each other (the server merges an
/// upgrade into its existing open); SMB opens are checked against every
/// other open, the same client's included.
pub fn share_modes_conflict(a: &OpenRecord, b: &OpenRecord) -> bool {
    if a.id == b.id || a.file != b.file || a.access.is_empty() || b.access.is_empty() {
        return false;
    }
    let same_owner = a.client_id == b.client_id && a.owner_id == b.owner_id;
    if same_owner && a.protocol != OpenProtocol::Smb && b.protocol != OpenProtocol::Smb {
        return false;
    }
    a.access.intersects(b.deny) || b.access.intersects(a.deny)
}

/// The rights a legacy `share_reservation` denies.
fn reservation_denies(reservation: ShareReservation) -> ShareMask {
    match reservation {
        ShareReservation::None => ShareMask::NONE,
        ShareReservation::DenyRead => ShareMask::READ,
        ShareReservation::DenyWrite => ShareMask::WRITE,
        ShareReservation::DenyAll => ShareMask::READ_WRITE,
    }
}

/// Decides an open in the caller's transaction by the share-mode rules, and
/// on a grant writes it and records the lease breaks and delegation recalls
/// it requires (see the module docs of [`crate::open`] for both tables).
///
/// Legacy reservations (lock records with a `share_reservation`, written by
/// code from before opens) are checked too: one of another owner that denies
/// a right the request wants denies the open. They carry no access, so the
/// request's deny mask is not checked against them.
///
/// # Errors
/// [`Error::Invalid`] for a bad record (nothing written); backend errors.
pub async fn open_file(
    tx: &mut (dyn MetadataTransaction + '_),
    request: &OpenRequest,
) -> Result<Open> {
    let open = &request.open;
    validate::open(open)?;
    validate::timestamp("at", request.at)?;
    if open.disconnected_at.is_some() {
        return Err(Error::Invalid(
            "disconnected_at: a new open is connected".into(),
        ));
    }
    let others = tx.list_opens(&OpenQuery::by_file(&open.file)).await?;
    let mut conflicts: Vec<ShareConflict> = others
        .iter()
        .filter(|other| share_modes_conflict(open, other))
        .cloned()
        .map(ShareConflict::Open)
        .collect();
    if !open.access.is_empty() {
        for lock in tx.list_locks(&LockQuery::by_file(&open.file)).await? {
            let same = lock.owner_id == open.owner_id && lock.client_id == open.client_id;
            if !same && reservation_denies(lock.share_reservation).intersects(open.access) {
                conflicts.push(ShareConflict::Reservation(lock));
            }
        }
    }
    let leases = tx
        .list_leases(&LeaseQuery {
            file: Some(open.file.clone()),
            ..LeaseQuery::default()
        })
        .await?;
    if !conflicts.is_empty() {
        let holders: Vec<&OpenRecord> = conflicts
            .iter()
            .filter_map(|c| match c {
                ShareConflict::Open(o) => Some(o),
                ShareConflict::Reservation(_) => None,
            })
            .collect();
        let plan = BreakPlan::handle_breaks(&leases, &holders);
        let breaks = plan.record(tx, request.at).await?;
        return Ok(Open::Denied { conflicts, breaks });
    }
    let plan = plan_breaks(open, &leases);
    let breaks = plan.record(tx, request.at).await?;
    let recalls = super::breaks::record_recalls(tx, open).await?;
    tx.put_open(open).await?;
    Ok(Open::Granted {
        open: open.clone(),
        breaks,
        recalls,
    })
}

/// Closes an open: deletes it, the byte-range locks of its owner on its file
/// (an SMB close releases the open's locks; an NFSv4 lock owner is not an
/// open owner, so none match), and its lease once no other open of the
/// client holds that lease key. Returns the open as it was stored.
///
/// # Errors
/// [`Error::OpenStateNotFound`] when no such open is stored (nothing changed).
pub async fn close_open(tx: &mut (dyn MetadataTransaction + '_), id: Uuid) -> Result<OpenRecord> {
    let open = tx
        .get_open(id)
        .await?
        .ok_or(Error::OpenStateNotFound { kind: "open", id })?;
    remove_open(tx, &open).await?;
    Ok(open)
}

/// Deletes a stored open with its owner's locks on the file and its lease
/// when no other open of the client holds the lease key.
pub(super) async fn remove_open(
    tx: &mut (dyn MetadataTransaction + '_),
    open: &OpenRecord,
) -> Result<()> {
    tx.delete_open(open.id).await?;
    let locks = tx
        .list_locks(&LockQuery {
            file_id: Some(open.file.clone()),
            owner_id: Some(open.owner_id.clone()),
            client_id: Some(open.client_id.clone()),
            ..LockQuery::default()
        })
        .await?;
    let ids: Vec<Uuid> = locks.iter().map(|l| l.id).collect();
    if !ids.is_empty() {
        tx.delete_locks(&ids).await?;
    }
    if let Some(key) = open.lease_key {
        let still_used = tx
            .list_opens(&OpenQuery {
                client_id: Some(open.client_id.clone()),
                file: Some(open.file.clone()),
                ..OpenQuery::default()
            })
            .await?
            .iter()
            .any(|o| o.lease_key == Some(key));
        if !still_used {
            let leases = tx
                .list_leases(&LeaseQuery {
                    file: Some(open.file.clone()),
                    client_id: Some(open.client_id.clone()),
                    lease_key: Some(key),
                })
                .await?;
            for lease in leases {
                tx.delete_lease(lease.id).await?;
            }
        }
    }
    Ok(())
}
