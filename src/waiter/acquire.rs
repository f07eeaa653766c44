//! [`acquire_or_wait`]: a lock request that queues a [`Waiter`] when it
//! cannot be granted, in the same transaction, with FIFO fairness, a
//! per-file cap and deadlock detection; and the removal of waiters.

use uuid::Uuid;

use super::deadlock::find_cycle;
use super::record::{Waiter, WaiterQuery};
use crate::error::Result;
use crate::lock::arbiter::{conflicts, same_owner};
use crate::lock::{LockFlavor, LockQuery, PersistedLock};
use crate::tx::MetadataTransaction;
use crate::validate;
use crate::{Acquire, acquire_lock};

/// Whether older waiters go first.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Fairness {
    /// A request is not granted ahead of an older waiter on the same file
    /// whose request conflicts with it, unless that waiter waits for a lock
    /// the requester holds (it could never go first). What NLM servers do.
    #[default]
    Fifo,
    /// Whatever the stored locks allow is granted, queue or not (POSIX does
    /// not require FIFO; a stream of readers may starve a writer).
    None,
}

/// How [`acquire_or_wait`] decides and queues.
///
/// Build with struct-update syntax so new fields keep compiling:
/// `WaitOptions { node_id: "nfs-1".into(), ..Default::default() }`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WaitOptions {
    /// The node (server) queueing the waiter; its [`Waiters`](crate::Waiters)
    /// subscription hands the waiter back. Default [`crate::DEFAULT_NODE`].
    pub node_id: String,
    /// Whether older waiters go first (default [`Fairness::Fifo`]).
    pub fairness: Fairness,
    /// The most waiters one file may have (default 128); a request that
    /// would be the next is [`Wait::QueueFull`] (`NLM4_DENIED_NOLOCKS`).
    pub max_waiters_per_file: usize,
    /// `false` for a non-blocking request (`F_SETLK`, NLM `LOCK` with
    /// `block` false): never queued, answered [`Wait::Denied`], but still
    /// behind older waiters when fair. Default `true`.
    pub block: bool,
    /// Stored in a new waiter's [`Waiter::context`] (at most
    /// [`MAX_WAITER_CONTEXT_LEN`](crate::MAX_WAITER_CONTEXT_LEN) bytes).
    pub context: Vec<u8>,
}

impl Default for WaitOptions {
    fn default() -> Self {
        WaitOptions {
            node_id: crate::DEFAULT_NODE.to_owned(),
            fairness: Fairness::Fifo,
            max_waiters_per_file: 128,
            block: true,
            context: Vec::new(),
        }
    }
}

/// The answer of [`acquire_or_wait`].
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wait {
    /// The lock is granted and written (as [`acquire_lock`] writes it); the
    /// request's own waiter, if it had one, is gone.
    Granted,
    /// The request waits: this is its waiter, new or (for a retry of a
    /// queued request) the one it already had, with its place kept.
    Queued {
        /// The stored waiter.
        waiter: Waiter,
    },
    /// A non-blocking request ([`WaitOptions::block`] false) that cannot be
    /// granted now; nothing was written.
    Denied {
        /// The stored locks in its way (id order).
        conflicts: Vec<PersistedLock>,
        /// The older waiters fairness lets go first (queue order).
        ahead: Vec<Waiter>,
    },
    /// The file already has [`WaitOptions::max_waiters_per_file`] waiters;
    /// nothing was written (`NLM4_DENIED_NOLOCKS`).
    QueueFull {
        /// The stored locks in its way (id order).
        conflicts: Vec<PersistedLock>,
    },
    /// Queueing this POSIX request would close a cycle of owners each
    /// waiting for the next (`EDEADLK`); nothing was written.
    Deadlock {
        /// The waiters of the cycle, from an owner the request waits for
        /// to one that waits for the requester.
        cycle: Vec<Waiter>,
    },
}

/// What keeps `request` from being granted: the stored locks that conflict
/// with it, and (when fair) the older waiters of `queue` that go first.
/// `own` is the request's own waiter, if it is queued: only waiters older
/// than it count, and never itself.
pub(crate) fn blockers(
    request: &PersistedLock,
    own: Option<&Waiter>,
    queue: &[Waiter],
    locks: &[PersistedLock],
    fairness: Fairness,
) -> (Vec<PersistedLock>, Vec<Waiter>) {
    let in_way: Vec<PersistedLock> = locks
        .iter()
        .filter(|l| conflicts(request, l))
        .cloned()
        .collect();
    let ahead = match fairness {
        Fairness::None => Vec::new(),
        Fairness::Fifo => queue
            .iter()
            .filter(|w| own.is_none_or(|own| w.id != own.id && w.position < own.position))
            .filter(|w| {
                let theirs = as_request(w);
                conflicts(request, &theirs)
                    // A waiter blocked by the requester's own lock never goes first.
                    && !locks
                        .iter()
                        .any(|l| same_owner(l, request) && conflicts(&theirs, l))
            })
            .cloned()
            .collect(),
    };
    (in_way, ahead)
}

/// A waiter's request as a lock, for the conflict rules.
pub(crate) fn as_request(waiter: &Waiter) -> PersistedLock {
    waiter.to_lock(Uuid::nil(), 0, waiter.since)
}

/// Decides `request` in `tx`: grants it (writing it as [`acquire_lock`]
/// does) when no stored lock conflicts and, with [`Fairness::Fifo`], no
/// older conflicting waiter goes first; otherwise queues it as a [`Waiter`]
/// of `options.node_id`, in the same transaction.
///
/// A retry of a queued request (the same file, owner, client, range, type,
/// deny mode and flavour: [`Waiter::is_request`]) keeps its waiter and its
/// place: granted, the waiter is deleted with the grant; still blocked, the
/// same waiter is answered (nothing is written). So a server retries each
/// woken waiter by calling this again with [`Waiter::to_lock`], and a
/// client's retransmission of a blocked request queues nothing new.
///
/// Not granted and new, a POSIX request is first checked for a deadlock:
/// the wait-for graph goes from each owner to the owners of the locks (and,
/// when fair, the waiters) in the way of its POSIX waiters, over every
/// node's records; a path from an owner in the request's way back to the
/// requester is [`Wait::Deadlock`]. Then the cap: [`Wait::QueueFull`]. Only
/// then is the waiter written. Windows (SMB) requests have no deadlock
/// answer in their protocol and are queued without the check.
///
/// # Errors
/// [`Error::Invalid`](crate::Error::Invalid) for an invalid request, node id or context (before
/// anything is read), and whatever [`acquire_lock`] refuses.
pub async fn acquire_or_wait(
    tx: &mut (dyn MetadataTransaction + '_),
    request: &PersistedLock,
    options: &WaitOptions,
) -> Result<Wait> {
    let span = tracing::debug_span!(
        "acquire_or_wait",
        file = %crate::obs::hex(request.file_id.as_bytes()),
        owner = %request.owner_id,
        client = %request.client_id,
        offset = request.offset,
        length = request.length,
        decision = tracing::field::Empty,
    );
    let result = tracing::Instrument::instrument(decide(tx, request, options), span.clone()).await;
    span.record(
        "decision",
        match &result {
            Ok(Wait::Granted) => "granted",
            Ok(Wait::Queued { .. }) => "queued",
            Ok(Wait::Denied { .. }) => "denied",
            Ok(Wait::QueueFull { .. }) => "queue_full",
            Ok(Wait::Deadlock { .. }) => "deadlock",
            Err(e) => crate::obs::kind(e),
        },
    );
    result
}

/// [`acquire_or_wait`] without its span.
async fn decide(
    tx: &mut (dyn MetadataTransaction + '_),
    request: &PersistedLock,
    options: &WaitOptions,
) -> Result<Wait> {
    validate::lock(request)?;
    validate::id("node_id", &options.node_id)?;
    validate::waiter_context(&options.context)?;
    let queue = tx
        .list_waiters(&WaiterQuery::by_file(&request.file_id))
        .await?;
    let own = queue.iter().find(|w| w.is_request(request)).cloned();
    let locks = tx.list_locks(&LockQuery::by_file(&request.file_id)).await?;
    let (mut in_way, ahead) = blockers(request, own.as_ref(), &queue, &locks, options.fairness);
    if ahead.is_empty() && in_way.is_empty() {
        match acquire_lock(tx, request).await? {
            Acquire::Granted => {
                if let Some(own) = &own {
                    tx.delete_waiter(own.id).await?;
                }
                return Ok(Wait::Granted);
            }
            Acquire::Denied { conflicts } => in_way = conflicts,
        }
    }
    if !options.block {
        return Ok(Wait::Denied {
            conflicts: in_way,
            ahead,
        });
    }
    if let Some(own) = own {
        return Ok(Wait::Queued { waiter: own });
    }
    if request.flavor == LockFlavor::Posix
        && let Some(cycle) = find_cycle(tx, request, &in_way, &ahead, options.fairness).await?
    {
        return Ok(Wait::Deadlock { cycle });
    }
    let position = match queue.iter().map(|w| w.position).max() {
        None => Some(0),
        Some(last) => last.checked_add(1),
    };
    let (Some(position), true) = (position, queue.len() < options.max_waiters_per_file) else {
        return Ok(Wait::QueueFull { conflicts: in_way });
    };
    let waiter = Waiter {
        id: Uuid::new_v4(),
        file_id: request.file_id.clone(),
        share_name: request.share_name.clone(),
        owner_id: request.owner_id.clone(),
        client_id: request.client_id.clone(),
        node_id: options.node_id.clone(),
        lock_type: request.lock_type,
        offset: request.offset,
        length: request.length,
        share_reservation: request.share_reservation,
        flavor: request.flavor,
        position,
        since: request.acquired_at,
        context: options.context.clone(),
    };
    tx.put_waiter(&waiter).await?;
    Ok(Wait::Queued { waiter })
}

/// Removes a waiter the server gives up on (a timeout, a client that went
/// away); returns whether it was stored. Its file's younger waiters are
/// woken when the transaction commits (one may have waited only for it).
pub async fn remove_waiter(tx: &mut (dyn MetadataTransaction + '_), id: Uuid) -> Result<bool> {
    tx.delete_waiter(id).await
}

/// Removes the waiter whose request `request` is ([`Waiter::is_request`]:
/// NLM `CANCEL` and SMB cancel name the lock, not the waiter); returns
/// whether there was one.
pub async fn cancel_wait(
    tx: &mut (dyn MetadataTransaction + '_),
    request: &PersistedLock,
) -> Result<bool> {
    validate::lock(request)?;
    let queue = tx
        .list_waiters(&WaiterQuery::by_file(&request.file_id))
        .await?;
    match queue.iter().find(|w| w.is_request(request)) {
        Some(waiter) => tx.delete_waiter(waiter.id).await,
        None => Ok(false),
    }
}

/// Removes every waiter of `client_id` (its lease expired, it rebooted);
/// returns how many.
pub async fn remove_client_waiters(
    tx: &mut (dyn MetadataTransaction + '_),
    client_id: &str,
) -> Result<u64> {
    validate::id("client_id", client_id)?;
    tx.delete_waiters(&WaiterQuery::by_client(client_id)).await
}
