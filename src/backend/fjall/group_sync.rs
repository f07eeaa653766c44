//! Group commit for [`Durability::Sync`](super::Durability::Sync): commits
//! write their journal batch without an fsync (fjall's `PersistMode::Buffer`)
//! and then wait for an fsync of the journal that began after that write.
//! Whoever finds no fsync running starts one (the leader) and covers every
//! batch written so far; the others wait for it, or for the next one when
//! theirs was written after the running one began. Concurrent committers so
//! share fsyncs, and one committer pays one fsync per commit, as before.
//!
//! fjall holds its journal lock through an fsync, so no batch can be written
//! (and no transaction begun) while one runs, and the committers run their
//! transaction bodies between fsyncs. A leader that started at once would
//! cover only its own batch, or one more, each time. So a leader first
//! waits, up to [`GATHER`], while other Sync transactions are open (begun,
//! batch not yet written: [`OpenTx`]), and covers their batches too:
//! PostgreSQL's `commit_delay`, but only when someone is about to commit. A
//! lone committer never waits.
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
//! A failed fsync poisons the fjall database (fjall's rule: it is fatal), so
//! every later commit fails; the commits waiting on it get the error.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use fjall::{OptimisticTxDatabase, PersistMode};

use crate::error::{Error, Result};

/// The shared fsync state of one store.
#[derive(Default)]
pub(super) struct GroupSync {
    state: Mutex<State>,
    synced: Condvar,
}

/// The longest a leader waits for open Sync transactions before its fsync.
const GATHER: Duration = Duration::from_micros(500);

#[derive(Default)]
struct State {
    /// Sync transactions open: begun, their batch not yet written.
    open: usize,
    /// Every batch with a sequence number below this is on disk.
    durable: u64,
    /// A leader is gathering or running its fsync (it covers the batches
    /// below the sequence number it reads just before the fsync).
    running: bool,
}

impl GroupSync {
    /// Counts a Sync transaction of `store` as open until the returned
    /// guard drops (after its commit wrote its batch, or at rollback).
    pub(super) fn open(store: &Arc<super::Inner>) -> Result<OpenTx> {
        store.group_sync.lock()?.open += 1;
        Ok(OpenTx(store.clone()))
    }

    fn close(&self) {
        if let Ok(mut state) = self.lock() {
            state.open -= 1;
            if state.open == 0 {
                self.synced.notify_all();
            }
        }
    }

    /// Waits until every batch written so far (below fjall's next sequence
    /// number, read now) is on disk, leading an fsync when none runs.
    /// Blocking: call it off the async workers.
    pub(super) fn wait_durable(&self, db: &OptimisticTxDatabase) -> Result<()> {
        let needed = db.inner().seqno();
        let mut state = self.lock()?;
        loop {
            if state.durable >= needed {
                return Ok(());
            }
            if state.running {
                state = self.synced.wait(state).map_err(|_| poisoned())?;
                continue;
            }
            state.running = true;
            let gathering = Instant::now();
            while state.open > 0 {
                let Some(left) = GATHER.checked_sub(gathering.elapsed()) else {
                    break;
                };
                state = self
                    .synced
                    .wait_timeout(state, left)
                    .map_err(|_| poisoned())?
                    .0;
            }
            drop(state);
            // Read before the fsync: every batch below it is written by the
            // time `persist` holds the journal (batches take their sequence
            // number and write under the journal's lock).
            let mark = db.inner().seqno();
            let synced = db.persist(PersistMode::SyncAll);
            state = self.lock()?;
            state.running = false;
            if synced.is_ok() {
                state.durable = state.durable.max(mark);
            }
            self.synced.notify_all();
            synced.map_err(|e| Error::backend("fjall: syncing the journal (group commit)", e))?;
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>> {
        self.state.lock().map_err(|_| poisoned())
    }
}

/// The error of a wait on the state after a committer panicked holding it.
fn poisoned() -> Error {
    Error::backend("fjall: group commit", "a committer panicked")
}

/// An open Sync transaction, as a leader counts it (see the module docs).
pub(super) struct OpenTx(Arc<super::Inner>);

impl Drop for OpenTx {
    fn drop(&mut self) {
        self.0.group_sync.close();
    }
}
