//! Group commit for [`Durability::Sync`](super::Durability::Sync): commits
//! write their journal batch without an fsync (fjall's `PersistMode::Buffer`)
//! and then wait, asynchronously, until the journal is synced past it.
//!
//! One *driver* per store runs the syncs, one after another while anyone
//! waits for a batch not yet durable. Each syncs the journal up to fjall's
//! sequence number as read just before it. The committer that finds no
//! driver running starts one ([`Driver::lead`]): in place when no other
//! Sync transaction is open and the runtime is multi-threaded (a lone
//! committer so pays one fsync per commit, fjall's own, and no hand-off
//! between threads), on tokio's blocking pool otherwise. Every other
//! committer awaits the driver's progress without blocking a thread. The
//! driver's syncs run outside fjall's journal lock (`journal_sync.rs`), so
//! while the disk works the committers begin, run and write the batches the
//! next sync covers: under load one sync covers what the CPUs committed
//! during the last.
//!
//! **What a reader can see before the fsync.** A batch is visible to other
//! transactions as soon as it is written, before its fsync: B may read A's
//! not-yet-synced commit (say, A released a lock) and decide on it (grant the
//! lock to B). That must not reach a client unless A's commit survives a
//! crash, so *every* commit — read-only ones included — waits until the
//! journal is synced up to fjall's sequence number as it stands when the
//! commit returns from fjall: that covers the commit's own batch and every
//! batch it could have read. The journal is one sequential file (fjall syncs
//! a journal before it rotates to the next), so B's answer is acknowledged
//! only once A's batch is on disk too. A read-only commit with nothing
//! unsynced before it returns at once. What a crash loses is, as before, a
//! suffix of commits none of which was acknowledged.
//!
//! A failed sync is fatal, as fjall makes a failed fsync: the kernel may have
//! dropped the pages it could not write, so nothing written since can be
//! known durable. The commits waiting get the error, and so does every later
//! Sync commit of the store.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::watch;

use super::Inner;
use super::journal_sync::JournalSync;
use crate::error::{Error, Result};

/// The shared sync state of one store.
pub(super) struct GroupSync {
    state: Mutex<State>,
    /// What the driver has made durable, for the committers awaiting it.
    progress: watch::Sender<Progress>,
    journal: JournalSync,
    /// Sync transactions begun whose batch is not yet written ([`OpenTx`]).
    open: AtomicUsize,
}

/// What committers ask of the driver, and whether one runs.
#[derive(Default)]
struct State {
    /// The highest sequence number a committer waits to see durable.
    requested: u64,
    /// A driver runs (and will see `requested` before it stops).
    running: bool,
}

/// What the driver publishes after each sync.
#[derive(Clone, Default)]
struct Progress {
    /// Every batch with a sequence number below this is on disk.
    durable: u64,
    /// Why a sync failed; then `durable` never moves again.
    failed: Option<Arc<str>>,
}

impl GroupSync {
    /// Group commit over `journal`.
    pub(super) fn new(journal: JournalSync) -> Self {
        GroupSync {
            state: Mutex::default(),
            progress: watch::Sender::new(Progress::default()),
            journal,
            open: AtomicUsize::new(0),
        }
    }

    /// Counts a Sync transaction of `store` as open until the returned
    /// guard drops (once its commit wrote its batch, or at rollback).
    pub(super) fn open(store: &Arc<Inner>) -> OpenTx {
        store.group_sync.open.fetch_add(1, Ordering::Relaxed);
        OpenTx(store.clone())
    }

    /// Whether syncs leave fjall's journal lock free, so that beginning a
    /// transaction or writing a batch waits for no fsync but, at most, the
    /// one of a committer that found itself alone ([`SyncIn::Lock`]).
    pub(super) fn leaves_journal_free(&self) -> bool {
        self.journal.outside_lock()
    }

    /// Refuses a commit once a sync failed: its batch would become visible
    /// to other transactions and yet could never be acknowledged durable.
    pub(super) fn usable(&self) -> Result<()> {
        match &self.progress.borrow().failed {
            Some(failed) => Err(failed_error(failed)),
            None => Ok(()),
        }
    }

    /// Waits until every batch written so far (below fjall's next sequence
    /// number, read now) is on disk.
    pub(super) async fn wait_durable(store: &Arc<Inner>) -> Result<()> {
        let this = &store.group_sync;
        let needed = store.db.inner().seqno();
        let mut progress = this.progress.subscribe();
        if let Some(done) = outcome(&progress.borrow(), needed) {
            return done;
        }
        let start = {
            let mut state = this.lock()?;
            state.requested = state.requested.max(needed);
            !std::mem::replace(&mut state.running, true)
        };
        if start {
            let alone = this.open.load(Ordering::Relaxed) == 0;
            Driver::new(store).lead(needed, alone);
        }
        let seen = progress
            .wait_for(|p| outcome(p, needed).is_some())
            .await
            .map_err(|_| Error::backend("fjall: group commit", "the store closed"))?;
        outcome(&seen, needed).unwrap_or(Ok(()))
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| Error::backend("fjall: group commit", "a committer panicked"))
    }
}

/// A commit's answer once `progress` settles it: durable, or failed first.
fn outcome(progress: &Progress, needed: u64) -> Option<Result<()>> {
    if progress.durable >= needed {
        return Some(Ok(()));
    }
    let failed = progress.failed.as_ref()?;
    Some(Err(failed_error(failed)))
}

fn failed_error(failed: &str) -> Error {
    Error::backend(
        "fjall: group commit after a failed journal sync",
        failed.to_owned(),
    )
}

/// The right to run a store's syncs; runs them when dropped unrun (a
/// runtime that shut down before the blocking task started), so that no
/// committer is left waiting on a driver that never comes.
///
/// A driver holds the store only weakly, and strongly only for each sync:
/// once the last committer is answered it holds nothing that keeps the
/// database open, so a host that drops the store can open the same
/// directory again at once.
struct Driver(Option<(Arc<GroupSync>, Weak<Inner>)>);

impl Driver {
    fn new(store: &Arc<Inner>) -> Self {
        Driver(Some((store.group_sync.clone(), Arc::downgrade(store))))
    }

    /// Drives for the committer that found no driver running, `needed`
    /// being what it waits for. When no other Sync transaction is open
    /// (`alone`) on a multi-threaded runtime, it syncs in place
    /// (`block_in_place`: the worker's other tasks move to another thread)
    /// until its own batch is durable, with fjall's own sync
    /// ([`SyncIn::Lock`]): a lone committer pays no hand-off between threads
    /// and no directory listing, and whatever others asked for meanwhile
    /// goes to a driver on tokio's blocking pool, so this committer returns. With
    /// other transactions open, the driver starts on the blocking pool at
    /// once: their bodies keep both workers while the disk syncs. So too on
    /// a current-thread runtime (no `block_in_place`). Outside a tokio
    /// runtime it drives here (the commit's caller blocks its thread for the
    /// sync anyway) until its own batch is durable (with fjall's own sync
    /// when `alone`), then hands what others wait for to a thread of its own.
    fn lead(mut self, needed: u64, alone: bool) {
        use tokio::runtime::{Handle, RuntimeFlavor};
        let Some((this, store)) = self.0.take() else {
            return;
        };
        match Handle::try_current() {
            Ok(runtime) if alone && runtime.runtime_flavor() == RuntimeFlavor::MultiThread => {
                let more = tokio::task::block_in_place(|| {
                    drive(&this, &store, Some(needed), SyncIn::Lock)
                });
                if more {
                    let driver = Driver(Some((this, store)));
                    drop(runtime.spawn_blocking(move || driver.run()));
                }
            }
            Ok(runtime) => {
                let driver = Driver(Some((this, store)));
                drop(runtime.spawn_blocking(move || driver.run()));
            }
            Err(_) => {
                let how = if alone { SyncIn::Lock } else { SyncIn::Overlap };
                if drive(&this, &store, Some(needed), how) {
                    // Others still wait: a thread of its own drives for them.
                    let driver = Driver(Some((this, store)));
                    let spawned = std::thread::Builder::new()
                        .name("fsmeta-group-sync".into())
                        .spawn(move || driver.run());
                    // Could not start one: the unstarted driver, dropped
                    // with the error, runs here (see `Drop`).
                    drop(spawned);
                }
            }
        }
    }

    fn run(mut self) {
        if let Some((this, store)) = self.0.take() {
            drive(&this, &store, None, SyncIn::Overlap);
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some((this, store)) = self.0.take() {
            drive(&this, &store, None, SyncIn::Overlap);
        }
    }
}

/// How a driver syncs.
#[derive(Clone, Copy)]
enum SyncIn {
    /// fjall's own `persist(SyncAll)`, under its journal lock: a lone
    /// committer has nobody to overlap with, and this spares it the
    /// directory listing of [`JournalSync::sync`] (about a tenth of a
    /// commit on a fast disk). A transaction that begins meanwhile waits
    /// for this one fsync at most when it writes.
    Lock,
    /// [`JournalSync::sync`], outside the lock, so that the next group's
    /// transactions begin, run and write while the disk works.
    Overlap,
}

/// Syncs while a committer waits for a batch not yet durable, or, with
/// `until`, only until that much is durable: then `true` when committers
/// still wait (the caller hands the driving on), `false` once it stopped.
fn drive(this: &GroupSync, store: &Weak<Inner>, until: Option<u64>, how: SyncIn) -> bool {
    let _unwinding = FailOnPanic(this);
    loop {
        {
            let Ok(mut state) = this.lock() else {
                // Cannot happen (nothing that holds it panics), but no
                // committer may wait forever on a driver that left.
                this.progress
                    .send_modify(|p| p.failed = Some("a committer panicked".into()));
                return false;
            };
            let progress = this.progress.borrow();
            if progress.failed.is_some() || state.requested <= progress.durable {
                state.running = false;
                return false;
            }
            if until.is_some_and(|until| progress.durable >= until) {
                return true;
            }
        }
        // Every committer waiting holds the store, so it is there while
        // anyone waits.
        let Some(store) = store.upgrade() else {
            if let Ok(mut state) = this.lock() {
                state.running = false;
            }
            return false;
        };
        // Read before the sync: it covers every batch numbered below
        // (see `journal_sync.rs`), each committer's included (each read its
        // `needed` before it asked).
        let mark = store.db.inner().seqno();
        let synced = match how {
            SyncIn::Lock => this.journal.sync_under_lock(&store.db),
            SyncIn::Overlap => this.journal.sync(&store.db),
        };
        drop(store);
        this.progress.send_modify(|progress| match &synced {
            Ok(()) => progress.durable = progress.durable.max(mark),
            Err(e) => progress.failed = Some(e.to_string().into()),
        });
    }
}

/// Fails the store's Sync commits if a driver panics, so that none waits
/// forever on a driver that is gone (`running` would stay set).
struct FailOnPanic<'a>(&'a GroupSync);

impl Drop for FailOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0
                .progress
                .send_modify(|p| p.failed = Some("a group commit driver panicked".into()));
            if let Ok(mut state) = self.0.state.lock() {
                state.running = false;
            }
        }
    }
}

/// An open Sync transaction, as a committer counts them (see [`Driver::lead`]).
pub(super) struct OpenTx(Arc<Inner>);

impl Drop for OpenTx {
    fn drop(&mut self) {
        self.0.group_sync.open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use crate::conformance::sample_file;
    use crate::{Durability, Error, FjallOptions, FjallStore, MetadataStore};

    /// A failed sync is fatal: the commit waiting on it fails, a later one
    /// is refused before its batch is written (nobody ever reads it), and a
    /// read-only one fails too; the commit before the failure stays. Both
    /// ways a driver syncs: a lone committer's fjall sync, and the
    /// overlapped one a committer gets while another transaction is open.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_sync_fails_every_later_sync_commit() {
        failed_sync_is_fatal(false).await;
        failed_sync_is_fatal(true).await;
    }

    async fn failed_sync_is_fatal(another_open: bool) {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = FjallOptions {
            durability: Durability::Sync,
            ..Default::default()
        };
        let store = FjallStore::open_with(dir.path(), options).expect("open");
        let commit_file = |name: &'static str| {
            let store = store.clone();
            async move {
                let mut tx = store.begin().await.expect("begin");
                tx.put_file(&sample_file(name.as_bytes(), "export"))
                    .await
                    .expect("put_file");
                tx.commit().await
            }
        };
        commit_file("before")
            .await
            .expect("a commit before the failure");
        let journal = &store.inner.group_sync.journal;
        journal.fail_next.store(true, Ordering::SeqCst);
        let overlapped = journal.overlapped.load(Ordering::SeqCst);
        let other = match another_open {
            true => Some(store.begin().await.expect("begin")),
            false => None,
        };
        let failed = commit_file("failing").await;
        drop(other);
        assert!(
            !journal.fail_next.load(Ordering::SeqCst),
            "the injected failure was not reached"
        );
        assert_eq!(
            journal.overlapped.load(Ordering::SeqCst) > overlapped,
            another_open,
            "a lone committer syncs under fjall's lock, one among others outside it"
        );
        assert!(matches!(failed, Err(Error::Backend(_))), "{failed:?}");
        let refused = commit_file("after").await;
        assert!(
            matches!(&refused, Err(Error::Backend(m)) if m.to_string().contains("failed journal sync")),
            "{refused:?}"
        );
        let mut reader = store.begin().await.expect("begin");
        let names: Vec<Vec<u8>> = reader
            .list_files("export")
            .await
            .expect("list")
            .into_iter()
            .map(|f| f.handle.as_bytes().to_vec())
            .collect();
        assert!(names.contains(&b"before".to_vec()), "{names:?}");
        assert!(
            !names.contains(&b"after".to_vec()),
            "the refused commit wrote: {names:?}"
        );
        let read_only = reader.commit().await;
        assert!(matches!(read_only, Err(Error::Backend(_))), "{read_only:?}");
    }
}
