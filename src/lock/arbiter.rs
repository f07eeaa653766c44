//! Lock arbitration inside the caller's transaction.
//!
//! The decision (which stored locks conflict) and the write (the new lock and
//! the owner's reshaped locks) happen in one serializable transaction, so two
//! servers sharing a database can never both grant conflicting locks: one of
//! the two transactions reads what the other wrote, or fails with
//! [`Error::Conflict`](crate::Error::Conflict) and is retried. Only
//! [`LockStore`](crate::LockStore) methods are used, so this holds on every
//! backend that passes the conformance suite.

use uuid::Uuid;

use crate::error::{Error, Result};
use crate::file::FileHandle;
use crate::lock::{ByteRange, LockOwner, LockQuery, PersistedLock};
use crate::node::DEFAULT_NODE;
use crate::recovery::Epochs;
use crate::tx::MetadataTransaction;
use crate::validate;

/// The answer to a lock request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Acquire {
    /// The lock is (or, for [`test_lock`], would be) granted.
    Granted,
    /// The lock conflicts with these stored locks, as stored (id order).
    /// Nothing was written.
    Denied {
        /// The stored locks that conflict with the request.
        conflicts: Vec<PersistedLock>,
    },
}

/// What granting `request` does to the stored locks.
struct Plan {
    /// Records to delete (the owner's locks the request replaces or absorbs).
    delete: Vec<Uuid>,
    /// Records to write: the request (possibly widened by merging) and the
    /// leftover fragments of the owner's replaced locks (with fresh ids).
    put: Vec<PersistedLock>,
}

fn same_owner(a: &PersistedLock, b: &PersistedLock) -> bool {
    a.owner_id == b.owner_id && a.client_id == b.client_id
}

/// Same owner and the same attributes: pieces that may merge into one record.
fn mergeable(a: &PersistedLock, b: &PersistedLock) -> bool {
    same_owner(a, b)
        && a.lock_type == b.lock_type
        && a.share_reservation == b.share_reservation
        && a.share_name == b.share_name
}

fn with_range(lock: &PersistedLock, range: ByteRange, id: Uuid) -> PersistedLock {
    PersistedLock {
        id,
        offset: range.offset,
        length: range.length,
        ..lock.clone()
    }
}

/// Reads the file's locks and decides; `Ok(Err(conflicts))` for a denial.
async fn decide(
    tx: &mut (dyn MetadataTransaction + '_),
    request: &PersistedLock,
) -> Result<std::result::Result<Plan, Vec<PersistedLock>>> {
    validate::lock(request)?;
    let stored = tx.list_locks(&LockQuery::by_file(&request.file_id)).await?;
    let wanted = request.to_enhanced();
    let conflicts: Vec<PersistedLock> = stored
        .iter()
        .filter(|s| s.id != request.id && wanted.conflicts_with(&s.to_enhanced()))
        .cloned()
        .collect();
    if !conflicts.is_empty() {
        return Ok(Err(conflicts));
    }

    // POSIX fcntl for the same owner: the request replaces what it covers, what
    // is left of the owner's locks keeps its attributes, and same-kind pieces
    // that overlap or touch the request merge into it.
    let mut delete = Vec::new();
    let mut leftovers = Vec::new();
    let mut untouched = Vec::new();
    for own in stored
        .iter()
        .filter(|s| s.id != request.id && same_owner(s, request))
    {
        if own.range().overlaps(&request.range()) {
            delete.push(own.id);
            leftovers.extend(
                own.range()
                    .subtract(&request.range())
                    .into_iter()
                    .map(|r| (own, r)),
            );
        } else {
            untouched.push(own);
        }
    }
    let mut merged = request.range();
    loop {
        let before = merged;
        leftovers.retain(|(own, range)| {
            let absorb = mergeable(own, request) && range.touches(&merged);
            if absorb {
                merged = merged.span(range);
            }
            !absorb
        });
        untouched.retain(|own| {
            let absorb = mergeable(own, request) && own.range().touches(&merged);
            if absorb {
                merged = merged.span(&own.range());
                delete.push(own.id);
            }
            !absorb
        });
        if merged == before {
            break;
        }
    }
    let mut put: Vec<PersistedLock> = leftovers
        .into_iter()
        .map(|(own, range)| with_range(own, range, Uuid::new_v4()))
        .collect();
    put.push(with_range(request, merged, request.id));
    Ok(Ok(Plan { delete, put }))
}

/// Grants `lock` if no stored lock of another owner conflicts with it, deciding
/// and writing inside `tx`.
///
/// Denied: nothing is written. Granted: the request is written as given (its id,
/// epoch and timestamp are the caller's), and the same owner's locks on the file
/// follow POSIX `fcntl`: the parts the new range covers are replaced (upgrade or
/// downgrade), what is left of them keeps its type, and pieces of the same type
/// (and deny mode and share) that overlap or touch the new range merge into it,
/// widening the request's record. Every leftover fragment gets a fresh id.
pub async fn acquire_lock(
    tx: &mut (dyn MetadataTransaction + '_),
    lock: &PersistedLock,
) -> Result<Acquire> {
    match decide(tx, lock).await? {
        Err(conflicts) => Ok(Acquire::Denied { conflicts }),
        Ok(plan) => {
            for id in plan.delete {
                tx.delete_lock(id).await?;
            }
            for piece in &plan.put {
                tx.put_lock(piece).await?;
            }
            Ok(Acquire::Granted)
        }
    }
}

/// Decides like [`acquire_lock`] and writes nothing (NLM TEST, NFSv4 LOCKT).
pub async fn test_lock(
    tx: &mut (dyn MetadataTransaction + '_),
    lock: &PersistedLock,
) -> Result<Acquire> {
    Ok(match decide(tx, lock).await? {
        Err(conflicts) => Acquire::Denied { conflicts },
        Ok(_) => Acquire::Granted,
    })
}

/// Unlocks `range` of `owner`'s locks on `file` (POSIX `F_UNLCK`): a lock inside
/// the range is deleted, one that sticks out keeps what lies outside (a lock
/// split in two becomes two records with fresh ids). Returns how many locks were
/// removed or shrunk. The owner is matched by `owner_id` and `client_id`.
pub async fn release_range(
    tx: &mut (dyn MetadataTransaction + '_),
    file: &FileHandle,
    owner: &LockOwner,
    range: ByteRange,
) -> Result<u64> {
    validate::file_handle(file)?;
    validate::id("owner_id", &owner.owner_id)?;
    validate::id("client_id", &owner.client_id)?;
    let stored = tx.list_locks(&LockQuery::by_file(file)).await?;
    let mut touched = 0;
    for lock in stored.iter().filter(|l| {
        l.owner_id == owner.owner_id && l.client_id == owner.client_id && l.range().overlaps(&range)
    }) {
        tx.delete_lock(lock.id).await?;
        for rest in lock.range().subtract(&range) {
            tx.put_lock(&with_range(lock, rest, Uuid::new_v4())).await?;
        }
        touched += 1;
    }
    Ok(touched)
}

/// Re-grants a lock held before a restart, on node [`DEFAULT_NODE`]; see [`reclaim_lock_as`].
pub async fn reclaim_lock(
    tx: &mut (dyn MetadataTransaction + '_),
    lock: &PersistedLock,
) -> Result<Acquire> {
    reclaim_lock_as(tx, DEFAULT_NODE, lock).await
}

/// Re-grants a lock held before a restart, during the grace period, through `node`.
///
/// Granted only when a stored lock from a dead epoch (of any node: a client
/// may fail over to another server) matches the request's file, owner, client,
/// offset, length and type exactly; that record is restamped with `node`'s
/// current epoch (it keeps its id: no second record). Anything else is denied,
/// with the stored locks that would conflict with it. For [`DEFAULT_NODE`]
/// before it ever began recovery, the current epoch is the store's counter.
pub async fn reclaim_lock_as(
    tx: &mut (dyn MetadataTransaction + '_),
    node: &str,
    lock: &PersistedLock,
) -> Result<Acquire> {
    validate::id("node_id", node)?;
    validate::lock(lock)?;
    let epoch = match tx.get_node(node).await? {
        Some(state) if state.epoch > 0 => state.epoch,
        _ if node == DEFAULT_NODE => tx.server_epoch().await?,
        _ => {
            return Err(Error::Invalid(format!(
                "node_id: node {node:?} has no current epoch; call begin_recovery_as first"
            )));
        }
    };
    let epochs = Epochs::load(tx).await?;
    let query = LockQuery {
        file_id: Some(lock.file_id.clone()),
        owner_id: Some(lock.owner_id.clone()),
        client_id: Some(lock.client_id.clone()),
        ..Default::default()
    };
    let matching = tx.list_locks(&query).await?.into_iter().find(|stored| {
        stored.offset == lock.offset
            && stored.length == lock.length
            && stored.lock_type == lock.lock_type
            && epochs.is_dead(stored.server_epoch)
    });
    match matching {
        Some(stored) => {
            tx.put_lock(&PersistedLock {
                server_epoch: epoch,
                ..stored
            })
            .await?;
            Ok(Acquire::Granted)
        }
        None => {
            let wanted = lock.to_enhanced();
            let conflicts = tx
                .list_locks(&LockQuery::by_file(&lock.file_id))
                .await?
                .into_iter()
                .filter(|s| wanted.conflicts_with(&s.to_enhanced()))
                .collect();
            Ok(Acquire::Denied { conflicts })
        }
    }
}
