//! Moving a whole store to another backend ([`copy_store`]), for `fsmeta
//! copy`; [`digest`] (in `crate::digest`) shows the result is the same.
//!
//! Both walk the stores page by page ([`crate::pages`]: files, locks, each
//! extension table): memory stays flat however many records there are. Node states and epoch records are read whole (one per node and
//! one per server incarnation: few).

use tracing::{Instrument, field};

use crate::digest::{StoreDigest, digest, store_is_empty};
use crate::error::{Error, Result};
use crate::pages;
use crate::tx::{MetadataStore, MetadataStoreExt, MetadataTransaction};

/// How [`copy_store`] copies.
///
/// Build it with struct-update syntax so new fields keep your code compiling:
/// `CopyOptions { batch_size: 5000, ..Default::default() }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyOptions {
    /// Records read per page and written per destination transaction
    /// (default 1000; at least 1).
    pub batch_size: usize,
    /// Copy into a destination that already holds records (default `false`:
    /// such a destination is refused before anything is written). Records
    /// with the same key are overwritten and the others stay, so re-running an
    /// interrupted copy with this set completes it; a destination holding
    /// records the source does not have fails the final comparison.
    pub allow_non_empty: bool,
    /// How to name the destination in [`Error::DestinationNotEmpty`] (a URL
    /// with its credentials redacted, as the `fsmeta` command passes it).
    pub destination_name: Option<String>,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            batch_size: 1000,
            allow_non_empty: false,
            destination_name: None,
        }
    }
}

/// What [`copy_store`] is doing when it reports progress.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CopyPhase {
    /// Counting the source's files and locks (`total` is not known yet).
    Counting,
    /// Copying the server epoch, node states and epoch records.
    State,
    /// Copying files.
    Files,
    /// Copying locks.
    Locks,
    /// Copying extension records (`total` counts them as they come: 0 up front).
    Ext,
    /// Copying client records (`total` counts them as they come).
    Clients,
    /// Copying opens, leases and delegations (counted as they come).
    OpenStates,
    /// Copying waiters (`total` counts them as they come).
    Waiters,
    /// Computing the digests of both stores.
    Verifying,
}

/// A progress report of [`copy_store`]: `done` of `total` in `phase`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CopyProgress {
    /// The current phase.
    pub phase: CopyPhase,
    /// Records of this phase handled so far.
    pub done: u64,
    /// Records of this phase in all (0 while counting).
    pub total: u64,
}

/// What [`copy_store`] copied, and the digests of both stores afterwards.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CopyReport {
    /// Files written to the destination.
    pub files: u64,
    /// Locks written to the destination.
    pub locks: u64,
    /// Node states written.
    pub nodes: u64,
    /// Epoch records written.
    pub epoch_records: u64,
    /// Extension records written (every table).
    pub ext_records: u64,
    /// Client records written.
    pub clients: u64,
    /// Open, lease and delegation records written.
    pub open_states: u64,
    /// Waiters written.
    pub waiters: u64,
    /// The source, digested after the copy.
    pub source: StoreDigest,
    /// The destination, digested after the copy.
    pub destination: StoreDigest,
}

impl CopyReport {
    /// True when both stores hold the same records (counts and hash agree).
    pub fn matches(&self) -> bool {
        self.source == self.destination
    }
}

/// Copies every record of `from` into `to`: the server epoch, node states
/// (with their clean-shutdown flags), epoch records, files, locks,
/// extension records and client records. Then
/// digests both stores and returns the two [`StoreDigest`]s in the report: a
/// copy is complete when [`CopyReport::matches`].
///
/// - The source is read in one transaction, so the copy is one consistent
///   snapshot of it; stop the servers using it first, or the final digest
///   (taken afterwards) shows what changed meanwhile.
/// - The destination is written in transactions of `options.batch_size`
///   records (the epoch, node states and epoch records in the first), each
///   retried on a serialization conflict. A failed copy leaves the batches
///   already committed; run it again with `allow_non_empty`.
/// - Nothing is held in memory beyond one page.
/// - The destination's epoch is raised to the source's; one ahead of the
///   source's cannot be lowered and is [`Error::Invalid`], like a destination
///   that is not empty (see [`store_is_empty`]) without `allow_non_empty`. Both are
///   checked before anything is written.
///
/// `progress` is called after every batch and at each phase change.
pub async fn copy_store<F, T, P>(
    from: &F,
    to: &T,
    options: &CopyOptions,
    mut progress: P,
) -> Result<CopyReport>
where
    F: MetadataStore + ?Sized,
    T: MetadataStore + ?Sized,
    P: FnMut(CopyProgress) + Send,
{
    let span = tracing::info_span!(
        "copy_store",
        batch_size = options.batch_size,
        allow_non_empty = options.allow_non_empty,
        files = field::Empty,
        locks = field::Empty,
        nodes = field::Empty,
        epoch_records = field::Empty,
        matches = field::Empty,
        outcome = field::Empty,
    );
    // Each phase change is an event in the span (the phases follow each other).
    let traced_progress = |p: CopyProgress| {
        if p.done == 0 {
            tracing::info!(phase = ?p.phase, total = p.total, "fsmeta: copy phase");
        }
        progress(p)
    };
    let result = copy_store_untraced(from, to, options, traced_progress)
        .instrument(span.clone())
        .await;
    if let Ok(report) = &result {
        span.record("files", report.files);
        span.record("locks", report.locks);
        span.record("nodes", report.nodes);
        span.record("epoch_records", report.epoch_records);
        span.record("matches", report.matches());
    }
    span.record("outcome", crate::obs::outcome(&result));
    result
}

/// [`copy_store`] without its span.
async fn copy_store_untraced<F, T, P>(
    from: &F,
    to: &T,
    options: &CopyOptions,
    mut progress: P,
) -> Result<CopyReport>
where
    F: MetadataStore + ?Sized,
    T: MetadataStore + ?Sized,
    P: FnMut(CopyProgress) + Send,
{
    let batch = options.batch_size;
    if batch == 0 {
        return Err(Error::Invalid("copy: batch size must be at least 1".into()));
    }
    if !options.allow_non_empty && !store_is_empty(to).await? {
        return Err(Error::DestinationNotEmpty {
            url: options
                .destination_name
                .clone()
                .unwrap_or_else(|| "the destination store".to_owned()),
        });
    }
    let mut source_tx = from.begin().await?;
    let src = &mut *source_tx;

    progress(CopyProgress {
        phase: CopyPhase::Counting,
        done: 0,
        total: 0,
    });
    let (total_files, total_locks) = count(src, batch).await?;

    let epoch = src.server_epoch().await?;
    let nodes = src.list_nodes().await?;
    let records = src.list_epoch_records().await?;
    progress(CopyProgress {
        phase: CopyPhase::State,
        done: 0,
        total: (nodes.len() + records.len()) as u64,
    });
    {
        let (nodes, records) = (&nodes, &records);
        to.transact(|tx| {
            Box::pin(async move {
                let current = tx.server_epoch().await?;
                if current > epoch {
                    return Err(Error::Invalid(format!(
                        "copy: the destination's epoch {current} is ahead of the source's {epoch}; \
                         it cannot be lowered"
                    )));
                }
                // One write, whatever the distance (the counter has no "set").
                tx.advance_server_epoch(epoch).await?;
                for node in nodes {
                    tx.put_node(node).await?;
                }
                for record in records {
                    tx.put_epoch_record(record).await?;
                }
                Ok(())
            })
        })
        .await?;
    }

    let mut files = 0;
    progress(CopyProgress {
        phase: CopyPhase::Files,
        done: 0,
        total: total_files,
    });
    let mut pages = pages::files(batch);
    while let Some(page) = pages.next(src).await? {
        let page = &page;
        to.transact(|tx| {
            Box::pin(async move {
                for file in page {
                    tx.put_file(file).await?;
                }
                Ok(())
            })
        })
        .await?;
        files += page.len() as u64;
        progress(CopyProgress {
            phase: CopyPhase::Files,
            done: files,
            total: total_files.max(files),
        });
    }

    let mut locks = 0;
    progress(CopyProgress {
        phase: CopyPhase::Locks,
        done: 0,
        total: total_locks,
    });
    let mut pages = pages::locks(batch);
    while let Some(page) = pages.next(src).await? {
        let page = &page;
        // One call per batch: PostgreSQL writes it as multi-row INSERTs.
        to.transact(|tx| Box::pin(async move { tx.put_locks(page).await }))
            .await?;
        locks += page.len() as u64;
        progress(CopyProgress {
            phase: CopyPhase::Locks,
            done: locks,
            total: total_locks.max(locks),
        });
    }
    let mut ext_records = 0;
    for table in src.ext_tables().await? {
        let mut pages = pages::ext(&table, batch);
        while let Some(page) = pages.next(src).await? {
            let (page, table) = (&page, table.as_str());
            to.transact(|tx| {
                Box::pin(async move {
                    for record in page {
                        tx.ext_put(table, &record.key, &record.value).await?;
                    }
                    Ok(())
                })
            })
            .await?;
            ext_records += page.len() as u64;
            progress(CopyProgress {
                phase: CopyPhase::Ext,
                done: ext_records,
                total: ext_records,
            });
        }
    }
    let mut clients = 0;
    let mut pages = pages::clients(batch);
    while let Some(page) = pages.next(src).await? {
        let page = &page;
        to.transact(|tx| {
            Box::pin(async move {
                for client in page {
                    tx.put_client(client).await?;
                }
                Ok(())
            })
        })
        .await?;
        clients += page.len() as u64;
        progress(CopyProgress {
            phase: CopyPhase::Clients,
            done: clients,
            total: clients,
        });
    }
    let open_states = open_states::copy(src, to, batch, &mut progress).await?;
    let waiters = crate::waiter::copy_waiters(src, to, batch, |done| {
        progress(CopyProgress {
            phase: CopyPhase::Waiters,
            done,
            total: done,
        })
    })
    .await?;
    // The source transaction only read: ending it cannot change the outcome.
    let _ = source_tx.rollback().await;

    progress(CopyProgress {
        phase: CopyPhase::Verifying,
        done: 0,
        total: 2,
    });
    let source = digest(from).await?;
    progress(CopyProgress {
        phase: CopyPhase::Verifying,
        done: 1,
        total: 2,
    });
    let destination = digest(to).await?;
    progress(CopyProgress {
        phase: CopyPhase::Verifying,
        done: 2,
        total: 2,
    });
    Ok(CopyReport {
        files,
        locks,
        nodes: nodes.len() as u64,
        epoch_records: records.len() as u64,
        ext_records,
        clients,
        open_states,
        waiters,
        source,
        destination,
    })
}

/// Counts the files and locks `tx` sees, page by page.
async fn count(tx: &mut (dyn MetadataTransaction + '_), page: usize) -> Result<(u64, u64)> {
    let mut files = 0;
    let mut pages = pages::files(page);
    while let Some(page) = pages.next(tx).await? {
        files += page.len() as u64;
    }
    let mut locks = 0;
    let mut pages = pages::locks(page);
    while let Some(page) = pages.next(tx).await? {
        locks += page.len() as u64;
    }
    Ok((files, locks))
}

mod open_states;
#[cfg(test)]
mod tests;
