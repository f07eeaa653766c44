//! Blocking locks: waiters that are woken when the lock they wait for frees,
//! across servers sharing one store.
//!
//! `F_SETLKW`, NLM blocking `LOCK` (answered later by a `GRANTED` callback),
//! NFSv4 blocking locks (`CB_NOTIFY_LOCK`) and SMB2 `LOCK` without
//! `FAIL_IMMEDIATELY` wait until a conflicting lock goes away. Here:
//!
//! - [`acquire_or_wait`] decides a request in the caller's transaction and,
//!   when it cannot be granted, queues a [`Waiter`] record **in the same
//!   transaction** (so a server that crashes between the decision and the
//!   queueing leaves neither). It answers [`Wait::Deadlock`] for a POSIX
//!   request that would close a cycle in the wait-for graph (the graph is the
//!   stored locks and waiters, so it spans every node), and
//!   [`Wait::QueueFull`] when the file already has
//!   [`WaitOptions::max_waiters_per_file`] waiters (NLM's
//!   `NLM4_DENIED_NOLOCKS`).
//! - **Fairness** ([`Fairness::Fifo`], the default): a request is not granted
//!   ahead of an older waiter on the same file whose request conflicts with
//!   it, unless that waiter waits for a lock of the requester itself (it
//!   could never go first: queueing behind it would deadlock). Waiters of one
//!   file are served in [`Waiter::position`] order. [`Fairness::None`] grants
//!   whatever the stored locks allow (POSIX does not require FIFO).
//! - **Wake-ups**: a committed transaction that deleted locks (an unlock, a
//!   release, a bulk delete by client or file, the end of grace, an expiry)
//!   or waiters announces the files it touched; [`Waiters`] (from
//!   [`Waiters::subscribe`]) turns those announcements into the waiters
//!   whose requests may now be granted, and the server retries each with
//!   [`acquire_or_wait`]. Memory and fjall announce in process, after the
//!   commit; PostgreSQL sends `NOTIFY` from a trigger inside the deleting
//!   transaction (delivered only if it commits) and every subscriber polls as
//!   well, because a notification is not durable.
//! - A waiter the server gives up on (NLM `CANCEL`, a client timeout) is
//!   removed with [`remove_waiter`]; the waiters of an expired client with
//!   [`remove_client_waiters`].
//!
//! ```
//! use fsmeta::*;
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
//! let store = std::sync::Arc::new(MemoryStore::new());
//! let lock = |owner: &str| PersistedLock {
//!     id: uuid::Uuid::new_v4(), share_name: "export".into(), file_id: FileHandle::new(*b"fh").expect("handle"),
//!     owner_id: owner.into(), client_id: "c".into(), lock_type: LockType::Exclusive,
//!     offset: 0, length: 0, share_reservation: ShareReservation::None,
//!     acquired_at: Timestamp::now(), server_epoch: 1, flavor: LockFlavor::Posix,
//! };
//! let (a, b) = (&lock("a"), &lock("b"));
//! let options = &WaitOptions::default();
//! let mut woken = Waiters::subscribe(store.clone(), WaitersOptions::default()).await?;
//! store.transact(|tx| Box::pin(async move { acquire_or_wait(tx, a, options).await })).await?;
//! let queued = store.transact(|tx| Box::pin(async move { acquire_or_wait(tx, b, options).await })).await?;
//! assert!(matches!(queued, Wait::Queued { .. }));
//! let owner = LockOwner { owner_id: "a".into(), client_id: "c".into(), share_name: "export".into() };
//! let (file, owner) = (&a.file_id, &owner);
//! store.transact(|tx| Box::pin(async move {
//!     release_range(tx, file, owner, ByteRange { offset: 0, length: 0 }).await
//! })).await?;
//! let waiter = woken.next().await?.waiter; // b's waiter: retry it
//! let retry = &waiter.to_lock(uuid::Uuid::new_v4(), 1, Timestamp::now());
//! let answer = store.transact(|tx| Box::pin(async move { acquire_or_wait(tx, retry, options).await })).await?;
//! assert_eq!(answer, Wait::Granted);
//! # Ok(()) }
//! ```

mod acquire;
mod carry;
mod deadlock;
mod record;
mod session;
mod subscribe;
mod wake;

pub use acquire::{
    Fairness, Wait, WaitOptions, acquire_or_wait, cancel_wait, remove_client_waiters, remove_waiter,
};
pub(crate) use carry::copy_waiters;
pub(crate) use record::queue_cmp;
pub use record::{MAX_WAITER_CONTEXT_LEN, Waiter, WaiterQuery, WaiterStore};
pub use subscribe::{Waiters, WaitersOptions, WakeCause, Woken};
pub(crate) use wake::FreedFiles;
pub use wake::{WakeFeed, WakeHub};
