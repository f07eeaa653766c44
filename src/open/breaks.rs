//! Lease/oplock breaks, delegation recalls, acknowledgements, revocation
//! tombstones; the decision tables are in the module docs of [`crate::open`].

use uuid::Uuid;

use super::model::{
    DelegationRecord, DelegationType, LeaseRecord, LeaseState, OpenRecord, ShareMask,
};
use super::store::DelegationQuery;
use crate::error::{Error, Result};
use crate::time::Timestamp;
use crate::tx::MetadataTransaction;
use crate::validate;

/// The state a lease caches now: its break target while a break runs.
fn effective(lease: &LeaseRecord) -> LeaseState {
    if lease.breaking {
        lease.break_to
    } else {
        lease.state
    }
}

/// True when `lease` is the requester's own lease (never broken by its opens).
fn own(lease: &LeaseRecord, open: &OpenRecord) -> bool {
    lease.client_id == open.client_id && open.lease_key == Some(lease.lease_key)
}

/// The breaks one request requires: each lease with the state it must go to.
#[derive(Default)]
pub(super) struct BreakPlan(Vec<(LeaseRecord, LeaseState)>);

impl BreakPlan {
    fn push(&mut self, lease: &LeaseRecord, target: LeaseState) {
        if target != effective(lease) {
            self.0.push((lease.clone(), target));
        }
    }

    /// H breaks for a denied open: every lease with handle caching held by
    /// an open that conflicts (an oplock also loses W: a batch oplock
    /// breaks to level II).
    pub(super) fn handle_breaks(leases: &[LeaseRecord], holders: &[&OpenRecord]) -> Self {
        let mut plan = BreakPlan::default();
        for lease in leases {
            let held = holders.iter().any(|o| own(lease, o));
            let state = effective(lease);
            if held && state.contains(LeaseState::HANDLE) {
                let drop = if lease.oplock {
                    LeaseState::HANDLE.union(LeaseState::WRITE)
                } else {
                    LeaseState::HANDLE
                };
                plan.push(lease, state.without(drop));
            }
        }
        plan
    }

    /// Writes the breaks: a lease not breaking yet starts breaking at `at`
    /// to its target; one already breaking keeps its start and lowers its
    /// target to what both breaks allow. Each raises the lease epoch.
    /// Returns the leases as now stored.
    pub(super) async fn record(
        self,
        tx: &mut (dyn MetadataTransaction + '_),
        at: Timestamp,
    ) -> Result<Vec<LeaseRecord>> {
        let mut out = Vec::with_capacity(self.0.len());
        for (mut lease, target) in self.0 {
            if lease.breaking {
                lease.break_to = lease.break_to.intersection(target);
            } else {
                lease.breaking = true;
                lease.break_to = target;
                lease.break_started_at = Some(at);
            }
            lease.lease_epoch = lease.lease_epoch.wrapping_add(1);
            tx.put_lease(&lease).await?;
            out.push(lease);
        }
        Ok(out)
    }
}

/// The breaks a granted open requires: every other lease or oplock holding
/// write caching loses it (an oplock also loses handle caching: exclusive
/// and batch oplocks break to level II).
pub(super) fn plan_breaks(open: &OpenRecord, leases: &[LeaseRecord]) -> BreakPlan {
    let mut plan = BreakPlan::default();
    for lease in leases.iter().filter(|l| !own(l, open)) {
        let state = effective(lease);
        if state.contains(LeaseState::WRITE) {
            let drop = if lease.oplock {
                LeaseState::HANDLE.union(LeaseState::WRITE)
            } else {
                LeaseState::WRITE
            };
            plan.push(lease, state.without(drop));
        }
    }
    plan
}

/// Recalls the delegations a granted open conflicts with: another client's
/// write delegation on any open; another client's read delegation on an
/// open for write or one that denies read. Already recalled or revoked
/// ones are left alone. Returns the newly recalled, as stored.
pub(super) async fn record_recalls(
    tx: &mut (dyn MetadataTransaction + '_),
    open: &OpenRecord,
) -> Result<Vec<DelegationRecord>> {
    let query = DelegationQuery {
        file: Some(open.file.clone()),
        revoked: Some(false),
        ..DelegationQuery::default()
    };
    let mut recalled = Vec::new();
    for mut delegation in tx.list_delegations(&query).await? {
        let conflicts = match delegation.kind {
            DelegationType::Write => true,
            DelegationType::Read => {
                open.access.contains(ShareMask::WRITE) || open.deny.contains(ShareMask::READ)
            }
        };
        if delegation.client_id != open.client_id && !delegation.recalled && conflicts {
            delegation.recalled = true;
            tx.put_delegation(&delegation).await?;
            recalled.push(delegation);
        }
    }
    Ok(recalled)
}

/// Records a client's acknowledgement of a break: the lease now caches
/// `state`, which must be within the break's target, and no break runs.
///
/// # Errors
/// [`Error::OpenStateNotFound`] for an unknown lease; [`Error::Invalid`]
/// when no break runs or `state` is above the target (nothing written).
pub async fn ack_break(
    tx: &mut (dyn MetadataTransaction + '_),
    lease_id: Uuid,
    state: LeaseState,
) -> Result<LeaseRecord> {
    let mut lease = tx
        .get_lease(lease_id)
        .await?
        .ok_or(Error::OpenStateNotFound {
            kind: "lease",
            id: lease_id,
        })?;
    if !lease.breaking {
        return Err(Error::Invalid(format!(
            "lease {lease_id}: no break in progress to acknowledge"
        )));
    }
    if !lease.break_to.contains(state) {
        return Err(Error::Invalid(format!(
            "state {:#x}: above the break's target {:#x}",
            state.bits(),
            lease.break_to.bits()
        )));
    }
    lease.state = state;
    lease.breaking = false;
    lease.break_to = LeaseState::NONE;
    lease.break_started_at = None;
    validate::lease(&lease)?;
    tx.put_lease(&lease).await?;
    Ok(lease)
}

/// Revokes a delegation: it stays stored, `revoked`, as a tombstone (a
/// reclaim of it is refused) until [`drop_revoked_delegations`] or
/// [`return_delegation`] removes it. Returns it as now stored.
///
/// # Errors
/// [`Error::OpenStateNotFound`] for an unknown delegation.
pub async fn revoke_delegation(
    tx: &mut (dyn MetadataTransaction + '_),
    id: Uuid,
) -> Result<DelegationRecord> {
    let mut delegation = stored_delegation(tx, id).await?;
    delegation.revoked = true;
    tx.put_delegation(&delegation).await?;
    Ok(delegation)
}

/// DELEGRETURN (or FREE_STATEID of a revoked one): deletes the delegation
/// and returns it as it was.
///
/// # Errors
/// [`Error::OpenStateNotFound`] for an unknown delegation.
pub async fn return_delegation(
    tx: &mut (dyn MetadataTransaction + '_),
    id: Uuid,
) -> Result<DelegationRecord> {
    let delegation = stored_delegation(tx, id).await?;
    tx.delete_delegation(id).await?;
    Ok(delegation)
}

async fn stored_delegation(
    tx: &mut (dyn MetadataTransaction + '_),
    id: Uuid,
) -> Result<DelegationRecord> {
    tx.get_delegation(id)
        .await?
        .ok_or(Error::OpenStateNotFound {
            kind: "delegation",
            id,
        })
}

/// The outcome of [`reclaim_delegation`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DelegationReclaim {
    /// Reclaimed: the delegation, restamped with the new epoch.
    Reclaimed(DelegationRecord),
    /// Refused: the delegation was revoked (its tombstone is stored).
    Revoked(DelegationRecord),
    /// Refused: no delegation of this client with this id is stored.
    Unknown,
}

/// CLAIM_DELEGATE_PREV / a delegation reclaim during grace: granted only
/// for a stored, unrevoked delegation of `client_id`, which is restamped
/// with `epoch`; a revoked one is refused for as long as its tombstone lives.
///
/// # Errors
/// [`Error::Invalid`] for a bad client id; backend errors.
pub async fn reclaim_delegation(
    tx: &mut (dyn MetadataTransaction + '_),
    id: Uuid,
    client_id: &str,
    epoch: u64,
) -> Result<DelegationReclaim> {
    validate::id("client_id", client_id)?;
    let Some(mut delegation) = tx.get_delegation(id).await? else {
        return Ok(DelegationReclaim::Unknown);
    };
    if delegation.client_id != client_id {
        return Ok(DelegationReclaim::Unknown);
    }
    if delegation.revoked {
        return Ok(DelegationReclaim::Revoked(delegation));
    }
    delegation.server_epoch = epoch;
    tx.put_delegation(&delegation).await?;
    Ok(DelegationReclaim::Reclaimed(delegation))
}

/// End of grace: deletes the tombstones of delegations revoked in epochs
/// before `epoch` (the grace period's epoch); returns how many. The
/// session's `end_grace` calls it in the same transaction.
pub async fn drop_revoked_delegations(
    tx: &mut (dyn MetadataTransaction + '_),
    epoch: u64,
) -> Result<u64> {
    let query = DelegationQuery {
        revoked: Some(true),
        ..DelegationQuery::default()
    };
    let mut dropped = 0;
    for delegation in tx.list_delegations(&query).await? {
        if delegation.server_epoch < epoch {
            tx.delete_delegation(delegation.id).await?;
            dropped += 1;
        }
    }
    Ok(dropped)
}
