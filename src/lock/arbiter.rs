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
use crate::lock::{
    ByteRange, LockFlavor, LockOwner, LockQuery, LockType, PersistedLock, ShareReservation,
};
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
    /// The lock conflicts with stored locks, and at least one of them is
    /// from a dead epoch: reclaimable by its client until its grace period
    /// ends (NFSv4 `NFS4ERR_GRACE`, NLM `NLM4_DENIED_GRACE_PERIOD`: retry
    /// after the grace period). A request that conflicts with no reclaimable
    /// lock is decided as usual, grace or not. Nothing was written.
    Grace {
        /// The stored locks that conflict with the request (as stored, id
        /// order; the dead epochs' among them).
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
pub(super) use lock_span;

/// Records an arbiter call's outcome on its span.
pub(super) fn record(span: &Span, decision: &Result<impl Decided>) {
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
pub(super) trait Decided {
    fn decided(&self) -> (&'static str, usize);
}

impl Decided for Acquire {
    fn decided(&self) -> (&'static str, usize) {
        match self {
            Acquire::Granted => ("granted", 0),
            Acquire::Denied { conflicts } => ("denied", conflicts.len()),
            Acquire::Grace { conflicts } => ("grace", conflicts.len()),
        }
    }
}

/// The arbiter's decision on a request, before anything is written.
pub(super) enum Decision {
    /// No conflict: granting the request reshapes the stored locks this way.
    Grant(Plan),
    /// These stored locks conflict with the request (as stored, id order).
    Deny(Vec<PersistedLock>),
}

/// What granting `request` does to the stored locks.
pub(super) struct Plan {
    /// Records to delete (the owner's locks the request replaces or absorbs).
    delete: Vec<Uuid>,
    /// Records to write: the request (possibly widened by merging) and the
    /// leftover fragments of the owner's replaced locks (with fresh ids).
    put: Vec<PersistedLock>,
}

pub(crate) fn same_owner(a: &PersistedLock, b: &PersistedLock) -> bool {
    a.owner_id == b.owner_id && a.client_id == b.client_id
}

/// Same owner and the same attributes: pieces that may merge into one record.
pub(super) fn mergeable(a: &PersistedLock, b: &PersistedLock) -> bool {
    same_owner(a, b)
        && a.lock_type == b.lock_type
        && a.share_reservation == b.share_reservation
        && a.share_name == b.share_name
}

pub(super) fn with_range(lock: &PersistedLock, range: ByteRange, id: Uuid) -> PersistedLock {
    PersistedLock {
        id,
        offset: range.offset,
        length: range.length,
        ..lock.clone()
    }
}

/// True when `stored` keeps `request` from being granted.
///
/// Between different owners (of any flavours): the ranges overlap, each read
/// by its own flavour ([`LockExtent::overlaps`](crate::LockExtent::overlaps)), and one is exclusive; or a
/// deny mode forbids the other's type ([`EnhancedLock::conflicts_with`](crate::EnhancedLock::conflicts_with)).
/// Between two Windows locks of the same open (MS-FSA 2.1.5.8, Samba
/// `brl_conflict`): two shared locks never conflict, a shared request may
/// stack on the open's own exclusive lock, and an exclusive request conflicts
/// with the open's own overlapping lock of either type. POSIX locks of one
/// owner, and a POSIX and a Windows lock of one owner, never conflict.
pub(crate) fn conflicts(request: &PersistedLock, stored: &PersistedLock) -> bool {
    if request.file_id != stored.file_id {
        return false;
    }
    if same_owner(request, stored) {
        return request.flavor == LockFlavor::Windows
            && stored.flavor == LockFlavor::Windows
            && request.lock_type == LockType::Exclusive
            && request.extent().overlaps(&stored.extent());
    }
    request.to_enhanced().conflicts_with(&stored.to_enhanced())
}

/// Reads the file's locks and decides.
pub(super) async fn decide(
    tx: &mut (dyn MetadataTransaction + '_),
    request: &PersistedLock,
) -> Result<Decision> {
    validate::lock(request)?;
    if let Some(under_id) = tx.get_lock(request.id).await? {
        if under_id.file_id != request.file_id || !same_owner(&under_id, request) {
            return Err(Error::Invalid(format!(
                "id: {} is the id of a lock of owner {:?} (client {:?}) on file {}; a request \
                 may reuse only the id of its own owner's lock on the same file",
                request.id, under_id.owner_id, under_id.client_id, under_id.file_id,
            )));
        }
        if request.flavor == LockFlavor::Windows || under_id.flavor == LockFlavor::Windows {
            return Err(Error::Invalid(format!(
                "id: {} is the id of a stored {:?} lock; a Windows lock is a record of its \
                 own (stacked locks are separate records) and needs a fresh id, and a POSIX \
                 request cannot take over a Windows lock's id",
                request.id, under_id.flavor,
            )));
        }
    }
    let stored = tx.list_locks(&LockQuery::by_file(&request.file_id)).await?;
    let conflicting: Vec<PersistedLock> = stored
        .iter()
        .filter(|s| conflicts(request, s))
        .cloned()
        .collect();
    if !conflicting.is_empty() {
        return Ok(Decision::Deny(conflicting));
    }
    if request.flavor == LockFlavor::Windows {
        // MS-FSA: no merge, no split; the request is a record of its own.
        return Ok(Decision::Grant(Plan {
            delete: Vec::new(),
            put: vec![request.clone()],
        }));
    }

    // POSIX fcntl for the same owner, within one deny mode: the request
    // replaces what it covers of the owner's records with its deny mode, what
    // is left of them keeps its attributes, and same-kind pieces that overlap
    // or touch the request merge into it. Records with another deny mode stay
    // whole (a share reservation is never lost to a byte-range request).
    let mut delete = Vec::new();
    let mut leftovers = Vec::new();
    let mut untouched = Vec::new();
    // The owner's Windows locks are never reshaped by a POSIX request.
    for own in stored
        .iter()
        .filter(|s| same_owner(s, request) && s.flavor == LockFlavor::Posix)
    {
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
///
/// # Flavours
///
/// The request's [`flavor`](PersistedLock::flavor) chooses the rules. A
/// [`LockFlavor::Posix`] request follows the above and reshapes only its
/// owner's POSIX records. A [`LockFlavor::Windows`] request (MS-FSA
/// 2.1.5.8, Samba `brlock.c`'s Windows flavour) is written as one record of
/// its own, never merged or split: identical stacked locks are separate
/// records, each with the id its request carried (which must be new:
/// reusing a stored id is [`Error::Invalid`]). Its owner is the SMB open:
/// `owner_id` carries the open (FileId), `client_id` the client. Conflicts
/// (see `conflicts` in the source; the same rules for every flavour pair):
///
/// - different owners: the ranges overlap, each by its own flavour's
///   meaning ([`LockExtent::overlaps`](crate::LockExtent::overlaps): shared bytes, or a Windows zero-byte
///   lock strictly inside the other's range, never at its first byte), and
///   one of the two is exclusive; this is also the cross-protocol rule
///   between a Windows and a POSIX lock;
/// - the same open, both Windows: a shared request never conflicts (it
///   stacks on the open's shared or exclusive locks); an exclusive request
///   conflicts with the open's own overlapping locks of either type;
/// - the same owner otherwise (POSIX with POSIX or with Windows): no conflict.
///
/// A Windows range whose `offset + length - 1` passes 2^64 is
/// [`Error::Invalid`] (`STATUS_INVALID_LOCK_RANGE`), checked before anything
/// is read or written.
pub async fn acquire_lock(
    tx: &mut (dyn MetadataTransaction + '_),
    lock: &PersistedLock,
) -> Result<Acquire> {
    let span = lock_span!("acquire_lock", lock);
    let result = async {
        match decide(tx, lock).await? {
            Decision::Deny(conflicts) => super::reclaim::denial(tx, conflicts).await,
            Decision::Grant(plan) => {
                // Ids read in this transaction: no count to wait for.
                tx.delete_locks_uncounted(&plan.delete).await?;
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
        match decide(tx, lock).await? {
            Decision::Deny(conflicts) => super::reclaim::denial(tx, conflicts).await,
            Decision::Grant(_) => Ok(Acquire::Granted),
        }
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
/// [share reservations](acquire_lock#share-reservations)). Only
/// [`LockFlavor::Posix`] records are trimmed: the owner's Windows locks stay
/// (they go one at a time, through [`unlock_exact`](crate::unlock_exact)).
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
pub(super) async fn release_range_untraced(
    tx: &mut (dyn MetadataTransaction + '_),
    file: &FileHandle,
    owner: &LockOwner,
    range: ByteRange,
) -> Result<u64> {
    validate::file_handle(file)?;
    validate::id("owner_id", &owner.owner_id)?;
    validate::id("client_id", &owner.client_id)?;
    let stored = tx.list_locks(&LockQuery::by_file(file)).await?;
    let touched: Vec<&PersistedLock> = stored
        .iter()
        .filter(|l| {
            l.owner_id == owner.owner_id
                && l.client_id == owner.client_id
                && l.share_reservation == ShareReservation::None
                && l.flavor == LockFlavor::Posix
                && l.range().overlaps(&range)
        })
        .collect();
    // Ids just read: no count to wait for. The pieces left get fresh ids.
    let ids: Vec<Uuid> = touched.iter().map(|l| l.id).collect();
    tx.delete_locks_uncounted(&ids).await?;
    for lock in &touched {
        for rest in lock.range().subtract(&range) {
            tx.put_lock(&with_range(lock, rest, Uuid::new_v4())).await?;
        }
    }
    Ok(touched.len() as u64)
}
