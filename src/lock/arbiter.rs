//! Lock arbitration inside the caller's transaction.
//!
//! The decision (which stored locks conflict) and the write (the new lock and
//! the owner's reshaped locks) happen in one serializable transaction, so two
//! servers sharing a database can never both grant conflicting locks: one of
//! the two transactions reads what the other wrote, or fails with
//! [`Error::Conflict`](crate::Error::Conflict) and is retried. Only
//! [`LockStore`](crate::LockStore) methods are used, so this holds on every
//! backend that passes the conformance suite.
//!
//! Records with a deny mode (share reservations) are never lost to a
//! byte-range request or an unlock: see [`acquire_lock`]'s "Share reservations".

use tracing::{Instrument, Span, field};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::file::FileHandle;
use crate::lock::{ByteRange, LockOwner, LockQuery, PersistedLock, ShareReservation};
use crate::node::DEFAULT_NODE;
use crate::recovery::Epochs;
use crate::tx::MetadataTransaction;
use crate::validate;

/// The answer to a lock request.
#[non_exhaustive]
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

/// The answer to a reclaim ([`reclaim_lock`], [`reclaim_lock_as`]) during the grace period.
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
}

/// The span of an arbiter call on `lock`: ids, range and type only, then
/// the `decision` (and `conflicts`, the count) once made.
macro_rules! lock_span {
    ($name:literal, $lock:expr $(, $field:ident = $value:expr)*) => {
        tracing::debug_span!(
            $name,
            file = %crate::obs::hex($lock.file_id.as_bytes()),
            owner = %$lock.owner_id,
            client = %$lock.client_id,
            offset = $lock.offset,
            length = $lock.length,
            lock_type = ?$lock.lock_type,
            $($field = $value,)*
            decision = field::Empty,
            conflicts = field::Empty,
        )
    };
}

/// Records an arbiter call's outcome on its span.
fn record(span: &Span, decision: &Result<impl Decided>) {
    match decision {
        Ok(d) => {
            let (name, conflicts) = d.decided();
            span.record("decision", name);
            span.record("conflicts", conflicts);
        }
        Err(e) => {
            span.record("decision", crate::obs::kind(e));
        }
    }
}

/// An answer, as a span field: its name and how many conflicts it lists.
trait Decided {
    fn decided(&self) -> (&'static str, usize);
}

impl Decided for Acquire {
    fn decided(&self) -> (&'static str, usize) {
        match self {
            Acquire::Granted => ("granted", 0),
            Acquire::Denied { conflicts } => ("denied", conflicts.len()),
        }
    }
}

impl Decided for Reclaim {
    fn decided(&self) -> (&'static str, usize) {
        match self {
            Reclaim::Granted => ("granted", 0),
            Reclaim::NoSuchLock => ("no_such_lock", 0),
            Reclaim::Denied { conflicts } => ("denied", conflicts.len()),
        }
    }
}

/// The arbiter's decision on a request, before anything is written.
enum Decision {
    /// No conflict: granting the request reshapes the stored locks this way.
    Grant(Plan),
    /// These stored locks conflict with the request (as stored, id order).
    Deny(Vec<PersistedLock>),
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

/// Reads the file's locks and decides.
async fn decide(
    tx: &mut (dyn MetadataTransaction + '_),
    request: &PersistedLock,
) -> Result<Decision> {
    validate::lock(request)?;
    if let Some(under_id) = tx.get_lock(request.id).await?
        && (under_id.file_id != request.file_id || !same_owner(&under_id, request))
    {
        return Err(Error::Invalid(format!(
            "id: {} is the id of a lock of owner {:?} (client {:?}) on file {}; a request \
             may reuse only the id of its own owner's lock on the same file",
            request.id, under_id.owner_id, under_id.client_id, under_id.file_id,
        )));
    }
    let stored = tx.list_locks(&LockQuery::by_file(&request.file_id)).await?;
    let wanted = request.to_enhanced();
    let conflicts: Vec<PersistedLock> = stored
        .iter()
        .filter(|s| wanted.conflicts_with(&s.to_enhanced()))
        .cloned()
        .collect();
    if !conflicts.is_empty() {
        return Ok(Decision::Deny(conflicts));
    }

    // POSIX fcntl for the same owner, within one deny mode: the request
    // replaces what it covers of the owner's records with its deny mode, what
    // is left of them keeps its attributes, and same-kind pieces that overlap
    // or touch the request merge into it. Records with another deny mode stay
    // whole (a share reservation is never lost to a byte-range request).
    let mut delete = Vec::new();
    let mut leftovers = Vec::new();
    let mut untouched = Vec::new();
    for own in stored.iter().filter(|s| same_owner(s, request)) {
        let same_mode = own.share_reservation == request.share_reservation;
        if own.id == request.id {
            // The request takes over the id: the record it named is reshaped
            // like any other (or kept whole, for another deny mode), and what
            // is left of it moves to fresh ids.
            delete.push(own.id);
            let rest = if same_mode {
                own.range().subtract(&request.range())
            } else {
                vec![own.range()]
            };
            leftovers.extend(rest.into_iter().map(|r| (own, r)));
        } else if !same_mode {
            continue;
        } else if own.range().overlaps(&request.range()) {
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
    Ok(Decision::Grant(Plan { delete, put }))
}

/// Grants `lock` if no stored lock of another owner conflicts with it, deciding
/// and writing inside `tx`.
///
/// Denied: nothing is written. Granted: the request is written as given (its id,
/// epoch and timestamp are the caller's), and the same owner's locks on the file
/// with the request's deny mode follow POSIX `fcntl`: the parts the new range
/// covers are replaced (upgrade or downgrade), what is left of them keeps its
/// type, and pieces of the same type (and deny mode and share) that overlap or
/// touch the new range merge into it, widening the request's record. Every
/// leftover fragment gets a fresh id. The owner's records with another deny
/// mode are left whole (see below).
///
/// The request's id may be new, or the id of one of its owner's locks on the
/// same file: that record is then reshaped like the owner's others (what the
/// request does not cover stays, under a fresh id). An id that belongs to
/// another owner's lock, or to a lock on another file, is
/// [`Error::Invalid`], and nothing is written.
///
/// # Share reservations
///
/// A record whose `share_reservation` is not [`ShareReservation::None`] is a
/// share reservation (an open's deny mode) as well as a byte-range lock. Its
/// owner's requests reshape its records one deny mode at a time: a request
/// replaces, trims and merges only the owner's records with the same deny
/// mode as its own; records with another deny mode stay whole, and the new
/// record is written beside them. [`release_range`] trims only records
/// without a deny mode. So a plain byte-range request or an unlock never drops
/// (or narrows) a share reservation: it goes away when its record is deleted
/// (the open is closed: [`LockStore::delete_lock`](crate::LockStore::delete_lock)
/// or a bulk delete). Records without a deny mode follow POSIX `fcntl`
/// exactly.
pub async fn acquire_lock(
    tx: &mut (dyn MetadataTransaction + '_),
    lock: &PersistedLock,
) -> Result<Acquire> {
    let span = lock_span!("acquire_lock", lock);
    let result = async {
        match decide(tx, lock).await? {
            Decision::Deny(conflicts) => Ok(Acquire::Denied { conflicts }),
            Decision::Grant(plan) => {
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
    .instrument(span.clone())
    .await;
    record(&span, &result);
    result
}

/// Decides like [`acquire_lock`] (the same answer, the same
/// [`Error::Invalid`] for a foreign id) and writes nothing (NLM TEST, NFSv4 LOCKT).
pub async fn test_lock(
    tx: &mut (dyn MetadataTransaction + '_),
    lock: &PersistedLock,
) -> Result<Acquire> {
    let span = lock_span!("test_lock", lock);
    let result = async {
        Ok(match decide(tx, lock).await? {
            Decision::Deny(conflicts) => Acquire::Denied { conflicts },
            Decision::Grant(_) => Acquire::Granted,
        })
    }
    .instrument(span.clone())
    .await;
    record(&span, &result);
    result
}

/// Unlocks `range` of `owner`'s locks on `file` (POSIX `F_UNLCK`): a lock inside
/// the range is deleted, one that sticks out keeps what lies outside (a lock
/// split in two becomes two records with fresh ids). Returns how many locks were
/// removed or shrunk. The owner is matched by `owner_id` and `client_id`.
/// Records with a deny mode are share reservations and are left whole (see
/// [share reservations](acquire_lock#share-reservations)).
pub async fn release_range(
    tx: &mut (dyn MetadataTransaction + '_),
    file: &FileHandle,
    owner: &LockOwner,
    range: ByteRange,
) -> Result<u64> {
    let span = tracing::debug_span!(
        "release_range",
        file = %crate::obs::hex(file.as_bytes()),
        owner = %owner.owner_id,
        client = %owner.client_id,
        offset = range.offset,
        length = range.length,
        decision = field::Empty,
        released = field::Empty,
    );
    let result = release_range_untraced(tx, file, owner, range)
        .instrument(span.clone())
        .await;
    match &result {
        Ok(touched) => {
            span.record("decision", "released");
            span.record("released", touched);
        }
        Err(e) => {
            span.record("decision", crate::obs::kind(e));
        }
    }
    result
}

/// [`release_range`] without its span.
async fn release_range_untraced(
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
        l.owner_id == owner.owner_id
            && l.client_id == owner.client_id
            && l.share_reservation == ShareReservation::None
            && l.range().overlaps(&range)
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
) -> Result<Reclaim> {
    reclaim_lock_as(tx, DEFAULT_NODE, lock).await
}

/// True when `stored` is the lock `request` describes: same file, owner,
/// client, type and deny mode, and the same bytes (`offset` and
/// [`ByteRange::last`]: length 0 and NFSv4's all-ones length both mean "to EOF").
fn describes(request: &PersistedLock, stored: &PersistedLock) -> bool {
    stored.file_id == request.file_id
        && same_owner(stored, request)
        && stored.lock_type == request.lock_type
        && stored.share_reservation == request.share_reservation
        && stored.range().same_bytes(&request.range())
}

/// Re-grants a lock held before a restart, during the grace period, through `node`.
///
/// The request matches a stored lock with the same file, owner, client, type,
/// deny mode and bytes: ranges are compared by meaning (`offset` and
/// [`ByteRange::last`]), so a lock the arbiter stores with length 0 after a
/// split or merge matches a reclaim spelled with NFSv4's all-ones length, and
/// the reverse. Ids, timestamps and epochs of the request are ignored.
///
/// - [`Reclaim::Granted`]: a matching lock from a dead epoch (of any node: a
///   client may fail over to another server) is restamped with `node`'s
///   current epoch, in place (it keeps its id and range as stored: no second
///   record). A retransmitted reclaim, whose lock the same client already
///   holds in `node`'s current epoch, is granted again and writes nothing.
/// - [`Reclaim::NoSuchLock`]: no stored lock matches (the client did not
///   hold it, or holds it in another node's live epoch). Nothing is written.
/// - [`Reclaim::Denied`]: a matching lock from a dead epoch exists, but stored
///   locks of other owners conflict with it (locks written around the
///   arbiter; [`acquire_lock`] never grants one). Nothing is written.
///
/// The stamped epoch is always one `node` owns: its current epoch, handed to
/// it by [`begin_recovery_as`](crate::begin_recovery_as). A node that has not
/// started an incarnation (including [`DEFAULT_NODE`] before its first
/// [`begin_recovery`](crate::begin_recovery)) gets
/// [`Error::NodeNotStarted`], and nothing is written.
pub async fn reclaim_lock_as(
    tx: &mut (dyn MetadataTransaction + '_),
    node: &str,
    lock: &PersistedLock,
) -> Result<Reclaim> {
    let span = lock_span!("reclaim", lock, node = node);
    let result = reclaim_untraced(tx, node, lock)
        .instrument(span.clone())
        .await;
    record(&span, &result);
    result
}

/// [`reclaim_lock_as`] without its span.
async fn reclaim_untraced(
    tx: &mut (dyn MetadataTransaction + '_),
    node: &str,
    lock: &PersistedLock,
) -> Result<Reclaim> {
    validate::id("node_id", node)?;
    validate::lock(lock)?;
    let epochs = Epochs::load(tx).await?;
    let epoch = match tx.get_node(node).await? {
        Some(state) if state.epoch > 0 && epochs.node_of(state.epoch) == node => state.epoch,
        _ => {
            return Err(Error::NodeNotStarted {
                node: node.to_owned(),
            });
        }
    };
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
    let conflicts: Vec<PersistedLock> = stored
        .iter()
        .filter(|s| held.conflicts_with(&s.to_enhanced()))
        .cloned()
        .collect();
    if !conflicts.is_empty() {
        return Ok(Reclaim::Denied { conflicts });
    }
    tx.put_lock(&PersistedLock {
        server_epoch: epoch,
        ..found.clone()
    })
    .await?;
    Ok(Reclaim::Granted)
}
