//! The fsync of a group commit, run outside fjall's journal lock.
//!
//! `OptimisticTxDatabase::persist(SyncAll)` holds fjall's journal lock
//! through the fsync. While it runs no batch can be written, so every
//! committer waits for it, holding fjall's commit mutex, and `begin` (which
//! takes that mutex) waits too: the transaction bodies of the next group
//! cannot run while the disk works on this one. Here only the hand-over of
//! fjall's buffered bytes to the kernel (`persist(Buffer)`, microseconds)
//! runs under the lock; the `fdatasync` runs on a descriptor of our own for
//! the same file, while the next transactions begin, run and write. (A
//! committer alone has nothing to overlap with; it takes fjall's own sync,
//! [`JournalSync::sync_under_lock`], and skips the directory listing below.)
//!
//! **Why this covers every batch below the leader's mark.** A batch takes
//! its sequence number and is written under the journal lock, so once
//! `persist(Buffer)` holds that lock, every batch numbered below a mark read
//! before it is in the kernel's cache, in some journal file. That is the
//! active one (the newest) or an older one, and fjall syncs a journal
//! (`SyncAll`) *before* it creates the next (fjall 3.1 `journal/writer.rs`,
//! `rotate`). So syncing the newest journal that exists *after*
//! `persist(Buffer)` covers them all (a sync of it that began after
//! `persist(Buffer)` returned, before or after the listing): if a rotation
//! runs meanwhile, the file we sync may be the sealed one (synced again,
//! harmless) or the new one (no batch below the mark is in it, harmless).
//! fjall also deletes sealed journals, oldest first, once their memtables
//! are flushed: the directory is read on every sync, so a journal synced
//! before and deleted since is never mistaken for the newest.
//! `fdatasync` suffices: fjall syncs a new journal and its directory entry
//! before writing to it, and `fdatasync` also writes what the data needs to
//! be read back (the block allocations of writes into the sparse range
//! fjall's `set_len` made, a size past it).
//!
//! **What this relies on.** fjall 3's journal layout: files `<id>.jnl` in
//! the database's directory, the active one the highest id, sealed ones
//! deleted oldest first. When that directory holds no journal (a layout
//! this code does not know), off Unix, or when the file cannot be opened,
//! a sync falls back to `persist(SyncAll)`: correct, only without the
//! overlap. The unit test
//! `the_synced_journal_is_the_one_fjall_writes` pins the layout.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use fjall::{OptimisticTxDatabase, PersistMode};

use crate::error::{Error, Result};

/// What a failed journal sync is reported as, whichever way it ran.
const SYNC_FAILED: &str = "fjall: syncing the journal (group commit)";

/// Syncs one database's journal; used by the group-commit leader only.
pub(super) struct JournalSync {
    /// The directory holding `<id>.jnl`, when it was found.
    folder: Option<PathBuf>,
    /// The newest journal seen, open for its fsyncs.
    active: Mutex<Option<Journal>>,
    /// Tests: the next sync fails as an `fdatasync` error would.
    #[cfg(test)]
    pub(super) fail_next: std::sync::atomic::AtomicBool,
    /// Tests: how many syncs ran outside fjall's lock ([`Self::sync`]).
    #[cfg(test)]
    pub(super) overlapped: std::sync::atomic::AtomicUsize,
}

/// One journal file, open read-only (fsync needs no write access).
struct Journal {
    id: u64,
    file: File,
}

impl JournalSync {
    /// The journal of the database in directory `db_dir`.
    pub(super) fn new(db_dir: &Path) -> Self {
        // Absolute: a later change of the working directory must not move it.
        // Unix only: elsewhere a read-only handle cannot be synced (Windows'
        // `FlushFileBuffers` wants write access) and an open handle would
        // keep fjall from deleting a sealed journal.
        let folder = std::path::absolute(db_dir)
            .ok()
            .filter(|_| cfg!(unix))
            .filter(|dir| newest_journal(dir).ok().flatten().is_some());
        if folder.is_none() {
            tracing::warn!(
                dir = %db_dir.display(),
                "fjall: no journal file found in the database's directory; Sync commits will fsync under fjall's journal lock"
            );
        }
        JournalSync {
            folder,
            active: Mutex::new(None),
            #[cfg(test)]
            fail_next: Default::default(),
            #[cfg(test)]
            overlapped: Default::default(),
        }
    }

    /// Whether syncs run outside fjall's journal lock (so `begin` never
    /// waits for an fsync).
    pub(super) fn outside_lock(&self) -> bool {
        self.folder.is_some()
    }

    /// Makes every batch fjall numbered before this call durable.
    pub(super) fn sync(&self, db: &OptimisticTxDatabase) -> Result<()> {
        let Some(folder) = &self.folder else {
            return self.sync_under_lock(db);
        };
        #[cfg(test)]
        self.overlapped
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        db.persist(PersistMode::Buffer)
            .map_err(|e| Error::backend("fjall: flushing the journal (group commit)", e))?;
        let mut active = self
            .active
            .lock()
            .map_err(|_| Error::backend("fjall: group commit", "a journal sync panicked"))?;
        // The journal synced last is the newest unless fjall rotated since:
        // sync it first, then read the directory (after `persist(Buffer)`,
        // as the module docs require) and sync the newest too if it is
        // another. A listing, not an `fstat` or `open` of the known file:
        // those cost tens of microseconds after a sync here, and a journal
        // we synced before may be deleted, the next one too.
        if let Some(journal) = active.as_ref() {
            self.sync_file(db, journal)?;
        }
        let newest = match newest_journal(folder) {
            Ok(Some(id)) => id,
            // Nothing is lost when the journal cannot be listed or opened
            // (say, out of descriptors): fjall's own sync covers this round.
            Ok(None) => return self.fallback(db, &mut active, &"no journal file"),
            Err(e) => return self.fallback(db, &mut active, &e),
        };
        if active.as_ref().is_some_and(|journal| journal.id == newest) {
            return Ok(());
        }
        let file = match File::open(journal_path(folder, newest)) {
            Ok(file) => file,
            Err(e) => return self.fallback(db, &mut active, &e),
        };
        let journal = active.insert(Journal { id: newest, file });
        self.sync_file(db, journal)
    }

    /// fjall's own fsync of its active journal, holding its journal lock.
    pub(super) fn sync_under_lock(&self, db: &OptimisticTxDatabase) -> Result<()> {
        #[cfg(test)]
        self.injected(Ok(()))
            .map_err(|e| Error::backend(SYNC_FAILED, e))?;
        db.persist(PersistMode::SyncAll)
            .map_err(|e| Error::backend(SYNC_FAILED, e))
    }

    /// The journal could not be found or opened (`why`): fjall's own sync,
    /// and no journal kept to sync first next time.
    fn fallback(
        &self,
        db: &OptimisticTxDatabase,
        active: &mut Option<Journal>,
        why: &dyn std::fmt::Display,
    ) -> Result<()> {
        tracing::warn!(error = %why, "fjall: cannot open the journal to sync it; syncing under fjall's lock");
        *active = None;
        self.sync_under_lock(db)
    }

    /// Tests: `synced`, or an injected failure when one is asked for.
    #[cfg(test)]
    fn injected(&self, synced: std::io::Result<()>) -> std::io::Result<()> {
        match self
            .fail_next
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            true => Err(std::io::Error::other("injected fdatasync failure")),
            false => synced,
        }
    }

    /// `fdatasync` of one journal; a failure is fatal (module docs).
    fn sync_file(&self, db: &OptimisticTxDatabase, journal: &Journal) -> Result<()> {
        let synced = journal.file.sync_data();
        #[cfg(test)]
        let synced = self.injected(synced);
        synced.map_err(|e| {
            // fjall's descriptor was open when the write failed, so its own
            // fsync reports the failure too and fjall poisons the database:
            // no writer of it goes on as if nothing happened.
            let _ = db.persist(PersistMode::SyncAll);
            Error::backend(SYNC_FAILED, e)
        })
    }
}

fn journal_path(folder: &Path, id: u64) -> PathBuf {
    folder.join(format!("{id}.jnl"))
}

/// The highest id among the `<id>.jnl` files in `folder`.
fn newest_journal(folder: &Path) -> std::io::Result<Option<u64>> {
    let mut newest = None;
    for entry in std::fs::read_dir(folder)? {
        let name = entry?.file_name();
        let id = name
            .to_str()
            .and_then(|n| n.strip_suffix(".jnl"))
            .and_then(|n| n.parse::<u64>().ok());
        newest = newest.max(id);
    }
    Ok(newest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjall::KeyspaceCreateOptions;

    /// The layout this module relies on: the file it syncs is the one fjall
    /// wrote the last commit into, before and after fjall rotates its
    /// journal twice and deletes the sealed ones (rotation comes past 64 MB,
    /// from a background worker), the last one synced included.
    #[test]
    fn the_synced_journal_is_the_one_fjall_writes()
    -> std::result::Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let db = OptimisticTxDatabase::builder(dir.path()).open()?;
        let ks = db.keyspace("k", KeyspaceCreateOptions::default)?;
        let sync = JournalSync::new(dir.path());
        assert!(
            sync.outside_lock(),
            "no journal in {}",
            dir.path().display()
        );
        let commit_and_find =
            |marker: &[u8]| -> std::result::Result<u64, Box<dyn std::error::Error>> {
                let mut tx = db.write_tx()?.durability(Some(PersistMode::Buffer));
                tx.insert(&ks, marker, b"v");
                tx.commit()??;
                sync.sync(&db)?;
                let id = sync
                    .active
                    .lock()
                    .map_err(|_| "poisoned")?
                    .as_ref()
                    .ok_or("nothing synced")?
                    .id;
                let bytes = std::fs::read(journal_path(dir.path(), id))?;
                assert!(
                    bytes.windows(marker.len()).any(|w| w == marker),
                    "journal {id} does not hold the commit just made"
                );
                Ok(id)
            };
        let first = commit_and_find(b"first-marker-5e1f")?;
        // Past 64 MB of journal fjall's worker seals it and starts the next.
        // Incompressible values: fjall may compress what it journals.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let value: Vec<u8> = (0..1 << 20)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        // Two rotations, and both journals they sealed deleted (fjall does
        // once their memtables are flushed): the journal synced last, still
        // open here, and the next one are gone, so only reading the
        // directory again finds the one being written.
        let mut key = 0u32;
        for round in 1..=2u64 {
            for _ in 0..70 {
                key += 1;
                let mut tx = db.write_tx()?.durability(Some(PersistMode::Buffer));
                tx.insert(&ks, key.to_be_bytes(), value.as_slice());
                tx.commit()??;
            }
            // fjall's worker checks the journal's size when it flushes a
            // sealed memtable: seal one (with something in it) until it
            // has rotated, and, the second time, until both sealed ones
            // are deleted.
            let waited = std::time::Instant::now();
            loop {
                let rotated = newest_journal(dir.path())? >= Some(first + round);
                let deleted =
                    (first..first + round).all(|id| !journal_path(dir.path(), id).exists());
                if rotated && (round == 1 || deleted) {
                    break;
                }
                assert!(
                    waited.elapsed().as_secs() < 60,
                    "round {round}: rotated {rotated}, sealed journals deleted {deleted}"
                );
                key += 1;
                ks.insert(key.to_be_bytes(), b"nudge")?;
                ks.inner().rotate_memtable()?;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        let second = commit_and_find(b"after-rotate-9c2d")?;
        assert_eq!(
            Some(second),
            newest_journal(dir.path())?,
            "the journal synced after two rotations (the first was {first})"
        );
        Ok(())
    }
}
