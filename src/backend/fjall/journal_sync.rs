//! The fsync of a group commit, run outside fjall's journal lock.
//!
//! `OptimisticTxDatabase::persist(SyncAll)` holds fjall's journal lock
//! through the fsync. While it runs no batch can be written, so every
//! committer waits for it, holding fjall's commit mutex, and `begin` (which
//! takes that mutex) waits too: the transaction bodies of the next group
//! cannot run while the disk works on this one. Here only the hand-over of
//! fjall's buffered bytes to the kernel (`persist(Buffer)`, microseconds)
//! runs under the lock; the `fdatasync` runs on a descriptor of our own for
//! the same file, while the next transactions begin, run and write.
//!
//! **Why this covers every batch below the leader's mark.** A batch takes
//! its sequence number and is written under the journal lock, so once
//! `persist(Buffer)` holds that lock, every batch numbered below a mark read
//! before it is in the kernel's cache, in some journal file. That is the
//! active one (the newest) or an older one, and fjall syncs a journal
//! (`SyncAll`) *before* it creates the next (fjall 3.1 `journal/writer.rs`,
//! `rotate`). So syncing the newest journal that exists *after*
//! `persist(Buffer)` covers them all: if a rotation runs meanwhile, the file
//! we sync may be the sealed one (synced again, harmless) or the new one
//! (no batch below the mark is in it, harmless). `fdatasync` suffices: fjall
//! creates a journal at its full size (`set_len`) and syncs it and its
//! directory entry before writing to it, and `fdatasync` also writes the
//! block allocations a write into that preallocated range makes.
//!
//! **What this relies on.** fjall 3's journal layout: files `<id>.jnl` in
//! the database's directory, the active one the highest id. When that
//! directory holds no journal (a layout this code does not know), every sync falls back to
//! `persist(SyncAll)`: correct, only without the overlap. The unit test
//! `the_synced_journal_is_the_one_fjall_writes` pins the layout.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use fjall::{OptimisticTxDatabase, PersistMode};

use crate::error::{Error, Result};

/// Syncs one database's journal; used by the group-commit leader only.
pub(super) struct JournalSync {
    /// The directory holding `<id>.jnl`, when it was found.
    folder: Option<PathBuf>,
    /// The newest journal seen, open for its fsyncs.
    active: Mutex<Option<Journal>>,
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
        let folder = std::path::absolute(db_dir)
            .ok()
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
            return db
                .persist(PersistMode::SyncAll)
                .map_err(|e| Error::backend("fjall: syncing the journal (group commit)", e));
        };
        db.persist(PersistMode::Buffer)
            .map_err(|e| Error::backend("fjall: flushing the journal (group commit)", e))?;
        let mut active = self
            .active
            .lock()
            .map_err(|_| Error::backend("fjall: group commit", "a journal sync panicked"))?;
        let journal = newest_open(folder, active.take())?;
        let synced = journal.file.sync_data();
        *active = Some(journal);
        synced.map_err(|e| Error::backend("fjall: syncing the journal (group commit)", e))
    }
}

/// The newest journal in `folder`, reusing `known` while no newer one exists.
fn newest_open(folder: &Path, known: Option<Journal>) -> Result<Journal> {
    let opening = |e| Error::backend("fjall: opening the journal to sync it", e);
    let mut journal = match known {
        Some(journal) => journal,
        None => {
            let id = newest_journal(folder)
                .map_err(opening)?
                .ok_or_else(|| Error::backend("fjall: group commit", "the journal disappeared"))?;
            let file = File::open(journal_path(folder, id)).map_err(opening)?;
            Journal { id, file }
        }
    };
    // Rotations only ever add the next id; step forward while one exists.
    loop {
        let next = journal.id + 1;
        match File::open(journal_path(folder, next)) {
            Ok(file) => journal = Journal { id: next, file },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(journal),
            Err(e) => return Err(opening(e)),
        }
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
    /// journal (which it does past 64 MB, from a background worker).
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
        for i in 0..80u32 {
            let mut tx = db.write_tx()?.durability(Some(PersistMode::Buffer));
            tx.insert(&ks, i.to_be_bytes(), value.as_slice());
            tx.commit()??;
        }
        // fjall's worker checks the journal's size when it flushes a sealed
        // memtable: seal one (with something in it) until it has rotated.
        let waited = std::time::Instant::now();
        for i in 0u32.. {
            // (The sealed one may be gone again by now: fjall deletes it
            // once its memtables are flushed.)
            if newest_journal(dir.path())? > Some(first) {
                break;
            }
            assert!(
                waited.elapsed().as_secs() < 60,
                "fjall never rotated its journal"
            );
            ks.insert(format!("nudge-{i}"), b"v")?;
            ks.inner().rotate_memtable()?;
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let second = commit_and_find(b"after-rotate-9c2d")?;
        assert!(
            second > first,
            "the journal after rotation is {second}, before {first}"
        );
        Ok(())
    }
}
