//! Deadlock detection on the wait-for graph stored in the database.
//!
//! The graph is not stored as edges: it is read from the records every node
//! writes. An owner (`owner_id` within `client_id`) waits for another when
//! one of its POSIX waiters is blocked by a lock of the other (or, when fair,
//! queued behind a waiter of the other). A new request waits for the owners
//! of what blocks it; it would close a cycle when one of those owners
//! reaches the requester. The search reads only what it walks (each owner's
//! waiters, each visited file's queue and locks) inside the caller's
//! serializable transaction, so two requests that close a cycle between them
//! at the same moment conflict and one is retried, then sees the other.

use std::collections::{HashMap, VecDeque};

use super::acquire::{Fairness, as_request, blockers};
use super::record::{Waiter, WaiterQuery};
use crate::error::Result;
use crate::file::FileHandle;
use crate::lock::{LockFlavor, LockQuery, PersistedLock};
use crate::tx::MetadataTransaction;

/// An owner: `(owner_id, client_id)`, the same-owner rule's identity.
type Owner = (String, String);

/// The most owners one search visits; a larger graph is searched this far
/// and then assumed free of a cycle (the request is queued).
const MAX_OWNERS: usize = 10_000;

fn lock_owner(lock: &PersistedLock) -> Owner {
    (lock.owner_id.clone(), lock.client_id.clone())
}

fn waiter_owner(waiter: &Waiter) -> Owner {
    (waiter.owner_id.clone(), waiter.client_id.clone())
}

/// The waiters of a cycle that `request`, blocked by `in_way` and `ahead`,
/// would close; `None` when it would close none.
pub(super) async fn find_cycle(
    tx: &mut (dyn MetadataTransaction + '_),
    request: &PersistedLock,
    in_way: &[PersistedLock],
    ahead: &[Waiter],
    fairness: Fairness,
) -> Result<Option<Vec<Waiter>>> {
    let target = lock_owner(request);
    // Each owner found, with the waiter (of the owner before it) that led to
    // it; `None` for the owners the request itself waits for.
    let mut reached: HashMap<Owner, Option<Waiter>> = HashMap::new();
    let mut frontier = VecDeque::new();
    for owner in in_way
        .iter()
        .map(lock_owner)
        .chain(ahead.iter().map(waiter_owner))
    {
        if !reached.contains_key(&owner) {
            reached.insert(owner.clone(), None);
            frontier.push_back(owner);
        }
    }
    let mut files: HashMap<FileHandle, (Vec<Waiter>, Vec<PersistedLock>)> = HashMap::new();
    while let Some(owner) = frontier.pop_front() {
        let waiters = tx
            .list_waiters(&WaiterQuery::by_owner(&owner.0, &owner.1))
            .await?;
        for waiter in waiters
            .into_iter()
            .filter(|w| w.flavor == LockFlavor::Posix)
        {
            if !files.contains_key(&waiter.file_id) {
                let queue = tx
                    .list_waiters(&WaiterQuery::by_file(&waiter.file_id))
                    .await?;
                let locks = tx.list_locks(&LockQuery::by_file(&waiter.file_id)).await?;
                files.insert(waiter.file_id.clone(), (queue, locks));
            }
            let (queue, locks) = &files[&waiter.file_id];
            let (locks_in_way, waiters_ahead) =
                blockers(&as_request(&waiter), Some(&waiter), queue, locks, fairness);
            let next_owners = locks_in_way
                .iter()
                .map(lock_owner)
                .chain(waiters_ahead.iter().map(waiter_owner));
            for next in next_owners {
                if next == target {
                    return Ok(Some(path_to(&reached, owner, waiter)));
                }
                if !reached.contains_key(&next) && reached.len() < MAX_OWNERS {
                    reached.insert(next.clone(), Some(waiter.clone()));
                    frontier.push_back(next);
                }
            }
        }
    }
    Ok(None)
}

/// The waiters from an owner the request waits for to `last` (a waiter of
/// `owner` that waits for the requester).
fn path_to(reached: &HashMap<Owner, Option<Waiter>>, owner: Owner, last: Waiter) -> Vec<Waiter> {
    let mut cycle = vec![last];
    let mut at = owner;
    while let Some(Some(via)) = reached.get(&at) {
        at = waiter_owner(via);
        cycle.push(via.clone());
    }
    cycle.reverse();
    cycle
}
