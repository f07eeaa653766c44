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
    ByteRange, LockExtent, LockFlavor, LockOwner, LockQuery, LockType, PersistedLock,
    ShareReservation,
};
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

/// The answer to [`unlock_exact`].
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unlock {
    /// This lock record was deleted.
    Unlocked {
        /// The id of the deleted record.
        id: Uuid,
    },
    /// No Windows lock of the owner has exactly that offset and length
    /// (SMB `STATUS_RANGE_NOT_LOCKED`). Nothing was written.
    NotLocked,
}

/// The answer to [`check_io`].
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Io {
    /// No stored lock of another owner forbids the I/O.
    Allowed,
    /// This stored lock forbids it (SMB `STATUS_FILE_LOCK_CONFLICT`); the
    /// first such lock in id order, as stored.
    Conflict {
        /// The lock that blocks the I/O.
        lock: PersistedLock,
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

/// True when `stored` keeps `request` from being granted.
///
/// Between different owners (of any flavours): the ranges overlap, each read
/// by its own flavour ([`LockExtent::overlaps`]), and one is exclusive; or a
/// deny mode forbids the other's type ([`EnhancedLock::conflicts_with`](crate::EnhancedLock::conflicts_with)).
/// Between two Windows locks of the same open (MS-FSA 2.1.5.8, Samba
/// `brl_conflict`): two shared locks never conflict, a shared request may
/// stack on the open's own exclusive lock, and an exclusive request conflicts
/// with the open's own overlapping lock of either type. POSIX locks of one
/// owner, and a POSIX and a Windows lock of one owner, never conflict.
fn conflicts(request: &PersistedLock, stored: &PersistedLock) -> bool {
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
async fn decide(
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
///   meaning ([`LockExtent::overlaps`]: shared bytes, or a Windows zero-byte
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
/// [share reservations](acquire_lock#share-reservations)). Only
/// [`LockFlavor::Posix`] records are trimmed: the owner's Windows locks stay
/// (they go one at a time, through [`unlock_exact`]).
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
            && l.flavor == LockFlavor::Posix
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

/// Removes one Windows lock of `owner` on `file` with exactly this `offset`
/// and `length` (SMB2 LOCK with `SMB2_LOCKFLAG_UNLOCK`, MS-FSA 2.1.5.9).
///
/// Only [`LockFlavor::Windows`] records without a deny mode match, by owner
/// (`owner_id` = the open, `client_id`), offset and length (raw values: a
/// zero-byte lock is unlocked with length 0); the lock type does not matter.
/// When several are stacked, an exclusive one goes before any shared one
/// (smbtorture `smb2.lock.unlock`: "exclusive locks should be unlocked
/// before shared"), and among those of one type the most recent: the
/// greatest `acquired_at`, then the greatest id. None matching is
/// [`Unlock::NotLocked`] (`STATUS_RANGE_NOT_LOCKED`) and nothing is written.
/// A range past 2^64 is [`Error::Invalid`]. POSIX records are never touched
/// (see [`release_range`]).
pub async fn unlock_exact(
    tx: &mut (dyn MetadataTransaction + '_),
    file: &FileHandle,
    owner: &LockOwner,
    offset: u64,
    length: u64,
) -> Result<Unlock> {
    let span = tracing::debug_span!(
        "unlock_exact",
        file = %crate::obs::hex(file.as_bytes()),
        owner = %owner.owner_id,
        client = %owner.client_id,
        offset = offset,
        length = length,
        decision = field::Empty,
    );
    let result = async {
        validate::file_handle(file)?;
        validate::id("owner_id", &owner.owner_id)?;
        validate::id("client_id", &owner.client_id)?;
        validate::windows_range(LockFlavor::Windows, offset, length)?;
        let stored = tx.list_locks(&LockQuery::by_file(file)).await?;
        let Some(latest) = stored
            .iter()
            .filter(|l| {
                l.flavor == LockFlavor::Windows
                    && l.share_reservation == ShareReservation::None
                    && l.owner_id == owner.owner_id
                    && l.client_id == owner.client_id
                    && l.offset == offset
                    && l.length == length
            })
            .max_by_key(|l| (l.lock_type == LockType::Exclusive, l.acquired_at, l.id))
        else {
            return Ok(Unlock::NotLocked);
        };
        tx.delete_lock(latest.id).await?;
        Ok(Unlock::Unlocked { id: latest.id })
    }
    .instrument(span.clone())
    .await;
    match &result {
        Ok(Unlock::Unlocked { .. }) => span.record("decision", "unlocked"),
        Ok(Unlock::NotLocked) => span.record("decision", "not_locked"),
        Err(e) => span.record("decision", crate::obs::kind(e)),
    };
    result
}

/// Whether `owner` may read (`write == false`) or write `range` of `file`,
/// against the stored locks (SMB's mandatory byte-range locks). Writes nothing.
///
/// `range` is an I/O: `range.length` bytes from `range.offset` (a length
/// that runs past 2^64 stops at the last byte), and a zero-length I/O
/// touches nothing and is always allowed. A stored lock blocks the I/O
/// when its bytes (by its flavour: a POSIX length 0 reaches EOF, a Windows
/// zero-byte lock covers nothing and so blocks nothing) share a byte with it
/// and either
///
/// - it is another owner's exclusive lock (reads and writes are blocked), or
/// - it is a shared lock and the I/O writes: any owner's, the caller's own
///   included (MS-FSA 2.1.4.10; smbtorture `smb2.lock.rw-shared` expects
///   the holder's own write to fail with `STATUS_FILE_LOCK_CONFLICT`).
///
/// The owner's own exclusive locks never block it. POSIX locks count too: they are
/// advisory between POSIX owners, who never call this, but an SMB server
/// checking an I/O honours them (so an NFS client's write lock keeps SMB
/// clients out). The answer names the first blocking lock in id order.
///
/// One index read: [`list_locks`](crate::LockStore::list_locks) by file.
pub async fn check_io(
    tx: &mut (dyn MetadataTransaction + '_),
    file: &FileHandle,
    owner: &LockOwner,
    range: ByteRange,
    write: bool,
) -> Result<Io> {
    validate::file_handle(file)?;
    validate::id("owner_id", &owner.owner_id)?;
    validate::id("client_id", &owner.client_id)?;
    let Some(io) = LockExtent::io(range) else {
        return Ok(Io::Allowed);
    };
    let stored = tx.list_locks(&LockQuery::by_file(file)).await?;
    Ok(stored
        .into_iter()
        .find(|l| {
            let own = l.owner_id == owner.owner_id && l.client_id == owner.client_id;
            let blocks = match l.lock_type {
                LockType::Exclusive => !own,
                LockType::Shared => write,
            };
            blocks && l.extent().shares_bytes(&io)
        })
        .map_or(Io::Allowed, |lock| Io::Conflict { lock }))
}
