//! [`Waiters`]: a server's subscription to its woken waiters.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::acquire::{Fairness, as_request, blockers};
use super::record::{Waiter, WaiterQuery};
use super::wake::{Announced, WakeFeed};
use crate::error::Result;
use crate::file::FileHandle;
use crate::lock::LockQuery;
use crate::tx::{MetadataStore, MetadataStoreExt};

/// What a [`Waiters`] subscription hands out and how it looks.
///
/// Build with struct-update syntax: `WaitersOptions { node_id: Some("nfs-1".into()), ..Default::default() }`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WaitersOptions {
    /// Only the waiters this node queued (default [`crate::DEFAULT_NODE`]);
    /// `None` hands out every node's.
    pub node_id: Option<String>,
    /// The fairness [`acquire_or_wait`](crate::acquire_or_wait) decides with
    /// (default [`Fairness::Fifo`]): a waiter behind an older conflicting one
    /// is not woken before it.
    pub fairness: Fairness,
    /// How often every waiter of the node is checked besides announcements
    /// (default 1 s): the fallback for lost PostgreSQL notifications, and
    /// for locks that went away without a delete (an overwrite with
    /// `put_lock`). `None` relies on announcements alone.
    pub poll_interval: Option<Duration>,
    /// PostgreSQL: how long the listener waits before it connects again
    /// after losing its connection (default 1 s). Notifications sent in
    /// between are lost; the poll finds their waiters.
    pub relisten_after: Duration,
}

impl Default for WaitersOptions {
    fn default() -> Self {
        WaitersOptions {
            node_id: Some(crate::DEFAULT_NODE.to_owned()),
            fairness: Fairness::Fifo,
            poll_interval: Some(Duration::from_secs(1)),
            relisten_after: Duration::from_secs(1),
        }
    }
}

/// Why a waiter was handed out.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WakeCause {
    /// A committed transaction announced that locks or waiters on its file went away.
    Announced,
    /// The periodic check found it ([`WaitersOptions::poll_interval`]).
    Poll,
    /// The check of every waiter when the subscription starts, or after
    /// announcements were dropped because the subscriber fell behind.
    Resync,
}

/// A waiter whose request may now be granted: retry it with
/// [`acquire_or_wait`](crate::acquire_or_wait) and [`Waiter::to_lock`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Woken {
    /// The waiter, as stored when it was found.
    pub waiter: Waiter,
    /// What found it.
    pub cause: WakeCause,
}

/// The files a check covers.
enum Scope {
    Files(BTreeSet<FileHandle>),
    All,
}

/// A server's subscription to its waiters whose requests may now be
/// granted. Constructed from a store with [`Waiters::subscribe`]; `next`
/// returns each such waiter. Nothing is changed by handing one out: the
/// server retries it (which grants it and deletes the waiter, or leaves it
/// queued), or removes it. A waiter that stays grantable and stored is
/// handed out again by the next check that looks at its file.
pub struct Waiters {
    store: Arc<dyn MetadataStore>,
    feed: WakeFeed,
    options: WaitersOptions,
    ready: VecDeque<Woken>,
    poll: Option<Interval>,
}

impl std::fmt::Debug for Waiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiters")
            .field("options", &self.options)
            .field("ready", &self.ready.len())
            .finish_non_exhaustive()
    }
}

impl Waiters {
    /// Subscribes to `store`'s announcements ([`MetadataStore::wake_feed`]:
    /// in process for memory and fjall, `LISTEN` on a dedicated connection
    /// for PostgreSQL), then checks every waiter once, so nothing freed
    /// before the subscription is missed (those come first, as
    /// [`WakeCause::Resync`]).
    pub async fn subscribe(store: Arc<dyn MetadataStore>, options: WaitersOptions) -> Result<Self> {
        if let Some(node) = &options.node_id {
            crate::validate::id("node_id", node)?;
        }
        if options.poll_interval.is_some_and(|p| p.is_zero()) {
            return Err(crate::Error::Invalid(
                "poll_interval: must be above zero (or None)".into(),
            ));
        }
        let feed = store.wake_feed(&options).await?;
        let poll = options.poll_interval.map(|period| {
            let mut poll = tokio::time::interval_at(Instant::now() + period, period);
            poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
            poll
        });
        let mut waiters = Waiters {
            store,
            feed,
            options,
            ready: VecDeque::new(),
            poll,
        };
        waiters.ready = waiters.check(&Scope::All, WakeCause::Resync).await?.into();
        Ok(waiters)
    }

    /// The next waiter whose request may now be granted: no stored lock is
    /// in its way and, when fair, no older conflicting waiter goes first.
    /// Waits for an announcement or a poll when there is none.
    ///
    /// Cancel-safe: a waiter found but not yet returned stays queued here.
    pub async fn next(&mut self) -> Result<Woken> {
        loop {
            if let Some(woken) = self.ready.pop_front() {
                return Ok(woken);
            }
            let (scope, cause) = self.event().await;
            self.ready = self.check(&scope, cause).await?.into();
        }
    }

    /// Waits for what calls for a check, and coalesces the announcements
    /// that are already there.
    async fn event(&mut self) -> (Scope, WakeCause) {
        let first = match &mut self.poll {
            Some(poll) => tokio::select! {
                announced = self.feed.recv() => Some(announced),
                _ = poll.tick() => None,
            },
            None => Some(self.feed.recv().await),
        };
        let mut files = BTreeSet::new();
        let mut next = match first {
            None => return (Scope::All, WakeCause::Poll),
            Some(announced) => Some(announced),
        };
        while let Some(announced) = next {
            match announced {
                Announced::File(file) => {
                    files.insert(file);
                }
                Announced::Lagged => return (Scope::All, WakeCause::Resync),
            }
            next = self.feed.try_recv();
        }
        (Scope::Files(files), WakeCause::Announced)
    }

    /// The waiters of this node in `scope` whose requests may be granted now.
    async fn check(&self, scope: &Scope, cause: WakeCause) -> Result<Vec<Woken>> {
        let options = &self.options;
        self.store
            .transact(|tx| {
                Box::pin(async move {
                    let files: Vec<FileHandle> = match scope {
                        Scope::Files(files) => files.iter().cloned().collect(),
                        Scope::All => {
                            let query = WaiterQuery {
                                node_id: options.node_id.clone(),
                                ..Default::default()
                            };
                            let mine = tx.list_waiters(&query).await?;
                            let files: BTreeSet<FileHandle> =
                                mine.into_iter().map(|w| w.file_id).collect();
                            files.into_iter().collect()
                        }
                    };
                    let mut woken = Vec::new();
                    for file in &files {
                        let queue = tx.list_waiters(&WaiterQuery::by_file(file)).await?;
                        if !queue.iter().any(|w| mine(options, w)) {
                            continue;
                        }
                        let locks = tx.list_locks(&LockQuery::by_file(file)).await?;
                        for waiter in queue.iter().filter(|w| mine(options, w)) {
                            let (in_way, ahead) = blockers(
                                &as_request(waiter),
                                Some(waiter),
                                &queue,
                                &locks,
                                options.fairness,
                            );
                            if in_way.is_empty() && ahead.is_empty() {
                                woken.push(Woken {
                                    waiter: waiter.clone(),
                                    cause,
                                });
                            }
                        }
                    }
                    Ok(woken)
                })
            })
            .await
    }
}

/// True when this subscription hands out `waiter`.
fn mine(options: &WaitersOptions, waiter: &Waiter) -> bool {
    options
        .node_id
        .as_ref()
        .is_none_or(|node| *node == waiter.node_id)
}
