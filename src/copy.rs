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
/// (with their clean-shutdown flags), epoch records, files, locks and
/// extension records. Then
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::memory::MemoryStore;
    use crate::file::{FileHandle, FileKind, FileMeta};
    use crate::lock::{LockType, PersistedLock, ShareReservation};
    use crate::node::EpochRecord;
    use crate::time::Timestamp;
    use uuid::Uuid;

    fn file(n: u8, share: &str) -> FileMeta {
        FileMeta {
            handle: FileHandle::new(vec![n, 0xff]).expect("handle"),
            share_name: share.into(),
            kind: FileKind::Regular,
            mode: 0o644,
            uid: u32::MAX,
            gid: 0,
            nlink: 1,
            size: u64::MAX,
            atime: Timestamp::from_micros(1),
            mtime: Timestamp::from_micros(2),
            ctime: Timestamp::from_micros(3),
        }
    }

    fn lock(n: u128, file: &FileMeta, epoch: u64) -> PersistedLock {
        PersistedLock {
            id: Uuid::from_u128(n),
            share_name: file.share_name.clone(),
            file_id: file.handle.clone(),
            owner_id: format!("owner {n}"),
            client_id: format!("client:{}", n % 3),
            lock_type: LockType::Exclusive,
            offset: n as u64 * 10,
            length: 0,
            share_reservation: ShareReservation::DenyWrite,
            acquired_at: Timestamp::from_micros(1_700_000_000_000_000),
            server_epoch: epoch,
            flavor: crate::LockFlavor::Posix,
        }
    }

    async fn fill(store: &MemoryStore, files: u8, locks: u128) {
        store
            .transact(|tx| {
                Box::pin(async move {
                    tx.increment_server_epoch().await?;
                    tx.increment_server_epoch().await?;
                    crate::set_clean_shutdown(&mut *tx, false).await?;
                    tx.put_epoch_record(&EpochRecord {
                        epoch: 2,
                        node_id: "default".into(),
                        started_at: Timestamp::from_micros(5),
                    })
                    .await?;
                    for n in 0..files {
                        let f = file(n, if n % 2 == 0 { "a" } else { "b" });
                        tx.put_file(&f).await?;
                        for l in 0..locks {
                            tx.put_lock(&lock(u128::from(n) * 1000 + l, &f, 1 + (l as u64 % 2)))
                                .await?;
                        }
                    }
                    Ok(())
                })
            })
            .await
            .expect("fill");
    }

    #[tokio::test]
    async fn copy_reproduces_every_record_across_small_batches() {
        let (from, to) = (MemoryStore::new(), MemoryStore::new());
        fill(&from, 7, 5).await;
        let mut calls = Vec::new();
        let options = CopyOptions {
            batch_size: 3,
            ..Default::default()
        };
        let report = copy_store(&from, &to, &options, |p| calls.push(p))
            .await
            .expect("copy");
        assert!(report.matches(), "{report:?}");
        assert_eq!((report.files, report.locks), (7, 35));
        assert_eq!(report.source.epoch, 2);
        assert_eq!((report.source.nodes, report.source.epoch_records), (1, 1));
        assert!(calls.contains(&CopyProgress {
            phase: CopyPhase::Locks,
            done: 35,
            total: 35
        }));
        assert_eq!(digest(&to).await.expect("digest"), report.source);
    }

    #[tokio::test]
    async fn non_empty_destination_is_refused_unless_allowed() {
        let (from, to) = (MemoryStore::new(), MemoryStore::new());
        fill(&from, 2, 2).await;
        to.transact(|tx| Box::pin(async move { tx.put_file(&file(9, "z")).await }))
            .await
            .expect("put");
        let refused = copy_store(&from, &to, &CopyOptions::default(), |_| {}).await;
        assert!(
            matches!(refused, Err(Error::DestinationNotEmpty { .. })),
            "{refused:?}"
        );
        assert_eq!(
            digest(&to).await.expect("digest").files,
            1,
            "nothing written"
        );
        let options = CopyOptions {
            allow_non_empty: true,
            ..Default::default()
        };
        let report = copy_store(&from, &to, &options, |_| {})
            .await
            .expect("copy");
        assert!(!report.matches(), "the extra file shows");
        assert_eq!(report.destination.files, report.source.files + 1);
    }

    #[tokio::test]
    async fn digest_sees_every_field() {
        let (a, b) = (MemoryStore::new(), MemoryStore::new());
        fill(&a, 1, 1).await;
        fill(&b, 1, 1).await;
        assert_eq!(digest(&a).await.expect("a"), digest(&b).await.expect("b"));
        let f = file(0, "a");
        let mut changed = lock(0, &f, 1);
        changed.acquired_at = Timestamp::from_micros(changed.acquired_at.as_micros() + 1);
        let changed = &changed;
        b.transact(|tx| Box::pin(async move { tx.put_lock(changed).await }))
            .await
            .expect("put");
        let (da, db) = (digest(&a).await.expect("a"), digest(&b).await.expect("b"));
        assert_eq!((da.files, da.locks), (db.files, db.locks));
        assert_ne!(da.sha256, db.sha256);
    }

    #[tokio::test]
    async fn extension_records_are_copied_and_digested() {
        let (from, to) = (MemoryStore::new(), MemoryStore::new());
        fill(&from, 1, 1).await;
        from.transact(|tx| {
            Box::pin(async move {
                for n in 0u16..25 {
                    tx.ext_put("dirents", &n.to_be_bytes(), b"entry").await?;
                }
                tx.ext_put("inodes", b"7", &[0xff; 300]).await
            })
        })
        .await
        .expect("seed ext");
        let options = CopyOptions {
            batch_size: 4,
            ..Default::default()
        };
        let report = copy_store(&from, &to, &options, |_| {})
            .await
            .expect("copy");
        assert_eq!(report.ext_records, 26);
        assert_eq!(report.source.ext_records, 26);
        assert!(report.matches(), "{report:?}");
        let mut tx = to.begin().await.expect("begin");
        assert_eq!(
            tx.ext_tables().await.expect("tables"),
            ["dirents", "inodes"]
        );
        assert_eq!(
            tx.ext_get("inodes", b"7").await.expect("get"),
            Some(vec![0xff; 300])
        );
        drop(tx);
        // A different value is a different digest.
        to.transact(|tx| Box::pin(async move { tx.ext_put("inodes", b"7", b"x").await }))
            .await
            .expect("change");
        assert_ne!(
            digest(&from).await.expect("a"),
            digest(&to).await.expect("b")
        );
        assert!(!store_is_empty(&to).await.expect("empty?"));
    }

    /// Issue 14 item 10: the destination's epoch is raised in one write. With
    /// one increment per step (the old way) a source at epoch 10^15 would take
    /// 10^15 statements; this finishes at once.
    #[tokio::test]
    async fn a_huge_epoch_is_copied_in_one_write() {
        let (from, to) = (MemoryStore::new(), MemoryStore::new());
        fill(&from, 1, 1).await;
        from.transact(|tx| {
            Box::pin(async move { tx.advance_server_epoch(1_000_000_000_000_000).await })
        })
        .await
        .expect("advance");
        let report = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            copy_store(&from, &to, &CopyOptions::default(), |_| {}),
        )
        .await
        .expect("copy ends")
        .expect("copy");
        assert!(report.matches());
        assert_eq!(report.destination.epoch, 1_000_000_000_000_000);
    }
}
