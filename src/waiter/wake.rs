//! How a committed transaction that freed locks reaches the subscribers:
//! the set of files a backend transaction notes ([`FreedFiles`]), the
//! in-process broadcast of memory and fjall ([`WakeHub`]), and what a
//! subscriber reads ([`WakeFeed`]).

use std::collections::BTreeSet;

use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::error::Result;
use crate::file::FileHandle;

/// Announcements a [`WakeHub`] buffers per subscriber before the slowest one
/// lags; a subscriber that lagged rescans all its waiters instead.
const HUB_CAPACITY: usize = 4096;

/// The files a backend transaction deleted locks or waiters of, announced
/// when (and only if) it commits.
#[derive(Debug, Default)]
pub(crate) struct FreedFiles(BTreeSet<FileHandle>);

impl FreedFiles {
    /// Notes that this transaction deleted (or shrank) a lock or a waiter on `file`.
    pub(crate) fn note(&mut self, file: &FileHandle) {
        if !self.0.contains(file) {
            self.0.insert(file.clone());
        }
    }

    /// Takes the set, leaving this one empty.
    pub(crate) fn take(&mut self) -> FreedFiles {
        std::mem::take(self)
    }

    /// Announces the files on `hub` when `committed` is `Ok`, and passes
    /// `committed` through: a rolled-back or failed commit announces nothing.
    pub(crate) fn after_commit(self, hub: &WakeHub, committed: Result<()>) -> Result<()> {
        if committed.is_ok() {
            for file in self.0 {
                hub.announce(file);
            }
        }
        committed
    }
}

/// An in-process broadcast of freed files, one per store (memory and fjall
/// keep one; clones share it). A third-party backend that runs in one
/// process can use it for [`MetadataStore::wake_feed`](crate::MetadataStore::wake_feed).
#[derive(Clone, Debug)]
pub struct WakeHub {
    sender: broadcast::Sender<FileHandle>,
}

impl Default for WakeHub {
    fn default() -> Self {
        WakeHub::new()
    }
}

impl WakeHub {
    /// A hub without subscribers.
    pub fn new() -> Self {
        WakeHub {
            sender: broadcast::channel(HUB_CAPACITY).0,
        }
    }

    /// Tells every current subscriber that locks or waiters on `file` went
    /// away. Costs nothing without subscribers.
    pub fn announce(&self, file: FileHandle) {
        // No receiver is not an error: nobody waits.
        let _ = self.sender.send(file);
    }

    /// A new subscription: every file announced from now on.
    pub fn feed(&self) -> WakeFeed {
        WakeFeed::from_receiver(self.sender.subscribe(), None)
    }
}

/// What a [`Waiters`](crate::Waiters) subscription reads besides its polls:
/// announcements of freed files.
#[derive(Debug)]
pub struct WakeFeed {
    receiver: Option<broadcast::Receiver<FileHandle>>,
    /// The task that feeds `receiver` (PostgreSQL's listener); stopped with the feed.
    task: Option<JoinHandle<()>>,
}

impl Drop for WakeFeed {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// One thing a feed reports.
#[derive(Debug)]
pub(crate) enum Announced {
    /// Locks or waiters on this file went away.
    File(FileHandle),
    /// Announcements were dropped (the subscriber fell behind): rescan all.
    Lagged,
}

impl WakeFeed {
    /// A feed that never announces anything: subscribers rely on polling
    /// alone (the default for backends without notifications).
    pub fn polling_only() -> Self {
        WakeFeed {
            receiver: None,
            task: None,
        }
    }

    /// A feed reading `receiver`, fed by `task` (aborted when the feed is dropped).
    pub fn from_receiver(
        receiver: broadcast::Receiver<FileHandle>,
        task: Option<JoinHandle<()>>,
    ) -> Self {
        WakeFeed {
            receiver: Some(receiver),
            task,
        }
    }

    /// The next announcement; pending for ever once the feed has none left
    /// (polling-only, or its sender is gone).
    pub(crate) async fn recv(&mut self) -> Announced {
        loop {
            let Some(receiver) = &mut self.receiver else {
                return std::future::pending().await;
            };
            match receiver.recv().await {
                Ok(file) => return Announced::File(file),
                Err(broadcast::error::RecvError::Lagged(_)) => return Announced::Lagged,
                Err(broadcast::error::RecvError::Closed) => self.receiver = None,
            }
        }
    }

    /// An announcement that is already there, without waiting.
    pub(crate) fn try_recv(&mut self) -> Option<Announced> {
        let receiver = self.receiver.as_mut()?;
        match receiver.try_recv() {
            Ok(file) => Some(Announced::File(file)),
            Err(broadcast::error::TryRecvError::Lagged(_)) => Some(Announced::Lagged),
            Err(_) => None,
        }
    }
}
