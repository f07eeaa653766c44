//! `verify` and `repair` for the fjall backend: fjall keeps its own indexes,
//! so besides decoding every record it checks both directions between
//! records and index entries.
//!
//! The walk streams: records and index entries are visited in key order and
//! each cross-check is a point read, so memory stays flat however large the
//! store is. Only the findings are collected.
//!
//! What `repair` does and does not do: it removes stale index entries and
//! adds missing ones for every record that decodes, in one transaction. It
//! never deletes or rewrites a record: an undecodable or invalid record is
//! left for the operator (the report names its key), and index entries that
//! point at one are left alone, since what they should say is unknown.

use fjall::{OptimisticTxKeyspace, Readable, UserKey};
use uuid::Uuid;

use super::codec::{self, Fault, FaultKind};
use super::keys::{self, names};
use super::tx::{LOCK_INDEX_NAMES, lock_index_entries};
use super::{Inner, Keyspaces, commit};
use crate::error::{Error, Result};
use crate::file::{FileHandle, FileMeta};
use crate::lock::PersistedLock;
use crate::verify::{Problem, ProblemKind, VerifyReport};

/// One thing the walk found wrong.
enum Finding {
    /// A record (or meta value) that is bad; repair cannot fix it.
    Record(Fault),
    /// An index entry that names no record, or a record that does not carry its value.
    Stale {
        index: OptimisticTxKeyspace,
        name: &'static str,
        key: UserKey,
        detail: String,
    },
    /// A record without one of its index entries.
    Missing {
        index: OptimisticTxKeyspace,
        name: &'static str,
        key: Vec<u8>,
    },
}

impl Finding {
    fn problem(&self) -> Problem {
        match self {
            Finding::Record(fault) => Problem {
                kind: match fault.kind {
                    FaultKind::Undecodable => ProblemKind::Undecodable,
                    FaultKind::Invalid => ProblemKind::InvalidRecord,
                },
                location: fault.location.clone(),
                detail: fault.detail.clone(),
            },
            Finding::Stale {
                name, key, detail, ..
            } => Problem {
                kind: ProblemKind::StaleIndexEntry,
                location: keys::describe(name, key),
                detail: detail.clone(),
            },
            Finding::Missing { name, key, .. } => Problem {
                kind: ProblemKind::MissingIndexEntry,
                location: keys::describe(name, key),
                detail: "a record has no entry here".into(),
            },
        }
    }
}

/// Walks the whole store as `reader` sees it.
struct Walk<'a, R> {
    reader: &'a R,
    ks: &'a Keyspaces,
    files: u64,
    locks: u64,
    findings: Vec<Finding>,
}

/// I/O error while walking `keyspace`.
fn io(keyspace: &str) -> impl FnOnce(fjall::Error) -> Error + '_ {
    move |e| Error::backend(format!("fjall: verifying keyspace `{keyspace}`"), e)
}

impl<'a, R: Readable> Walk<'a, R> {
    fn run(reader: &'a R, ks: &'a Keyspaces) -> Result<Self> {
        let mut walk = Walk {
            reader,
            ks,
            files: 0,
            locks: 0,
            findings: Vec::new(),
        };
        walk.files()?;
        walk.files_by_share()?;
        walk.locks()?;
        walk.lock_indexes()?;
        walk.meta()?;
        Ok(walk)
    }

    fn exists(&self, ks: &OptimisticTxKeyspace, name: &str, key: &[u8]) -> Result<bool> {
        self.reader.contains_key(ks, key).map_err(io(name))
    }

    /// The file under `handle`: `Ok(None)` when absent *or* bad (bad records are
    /// reported by the record walk, not again here).
    fn file(&self, handle: &FileHandle) -> Result<Option<FileMeta>> {
        let value = self
            .reader
            .get(&self.ks.files, handle.as_bytes())
            .map_err(io(names::FILES))?;
        Ok(value.and_then(|v| codec::decode_file(handle, &v).ok()))
    }

    /// Like [`Walk::file`], for locks; the outer `Option` is "a record is stored".
    fn lock(&self, id: Uuid) -> Result<Option<Option<PersistedLock>>> {
        let value = self
            .reader
            .get(&self.ks.locks, keys::lock(id))
            .map_err(io(names::LOCKS))?;
        Ok(value.map(|v| codec::decode_lock(id, &v).ok()))
    }

    fn files(&mut self) -> Result<()> {
        for guard in self.reader.iter(&self.ks.files) {
            let (key, value) = guard.into_inner().map_err(io(names::FILES))?;
            self.files += 1;
            let Ok(handle) = FileHandle::new(key.as_ref()) else {
                self.findings.push(Finding::Record(Fault {
                    kind: FaultKind::Invalid,
                    location: keys::describe(names::FILES, &key),
                    detail: "a file key must be a 1..=128-byte handle".into(),
                }));
                continue;
            };
            match codec::decode_file(&handle, &value) {
                Err(fault) => self.findings.push(Finding::Record(fault)),
                Ok(file) => {
                    let entry = keys::file_by_share(&file.share_name, &handle)?;
                    if !self.exists(&self.ks.files_by_share, names::FILES_BY_SHARE, &entry)? {
                        self.findings.push(Finding::Missing {
                            index: self.ks.files_by_share.clone(),
                            name: names::FILES_BY_SHARE,
                            key: entry,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    fn files_by_share(&mut self) -> Result<()> {
        for guard in self.reader.iter(&self.ks.files_by_share) {
            let key = guard.key().map_err(io(names::FILES_BY_SHARE))?;
            let handle = keys::split_file_by_share(&key).and_then(|(_, h)| FileHandle::new(h).ok());
            let stale = match handle {
                None => Some("not a length-prefixed share followed by a handle".to_owned()),
                Some(handle) => match self.reader.contains_key(&self.ks.files, handle.as_bytes()) {
                    Err(e) => return Err(io(names::FILES)(e)),
                    Ok(false) => Some(format!("no file {handle} is stored")),
                    // A bad record is reported once, by the record walk.
                    Ok(true) => match self.file(&handle)? {
                        Some(file) if keys::file_by_share(&file.share_name, &handle)? != *key => {
                            Some(format!("file {handle} is on share {:?}", file.share_name))
                        }
                        _ => None,
                    },
                },
            };
            if let Some(detail) = stale {
                let index = self.ks.files_by_share.clone();
                self.findings.push(Finding::Stale {
                    index,
                    name: names::FILES_BY_SHARE,
                    key,
                    detail,
                });
            }
        }
        Ok(())
    }

    fn locks(&mut self) -> Result<()> {
        for guard in self.reader.iter(&self.ks.locks) {
            let (key, value) = guard.into_inner().map_err(io(names::LOCKS))?;
            self.locks += 1;
            let Ok(id) = keys::lock_id(&key) else {
                self.findings.push(Finding::Record(Fault {
                    kind: FaultKind::Invalid,
                    location: keys::describe(names::LOCKS, &key),
                    detail: "a lock key must be a 16-byte id".into(),
                }));
                continue;
            };
            match codec::decode_lock(id, &value) {
                Err(fault) => self.findings.push(Finding::Record(fault)),
                Ok(lock) => {
                    for ((index, entry), name) in lock_index_entries(self.ks, &lock)?
                        .into_iter()
                        .zip(LOCK_INDEX_NAMES)
                    {
                        if !self.exists(index, name, &entry)? {
                            self.findings.push(Finding::Missing {
                                index: index.clone(),
                                name,
                                key: entry,
                            });
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Every lock index entry must name a stored lock whose own entry in that
    /// index is exactly this key (which also checks the key's structure).
    fn lock_indexes(&mut self) -> Result<()> {
        let ks = self.ks;
        let indexes = [
            &ks.locks_by_file,
            &ks.locks_by_owner,
            &ks.locks_by_client,
            &ks.locks_by_share,
            &ks.locks_by_epoch,
        ];
        for (position, (index, name)) in indexes.into_iter().zip(LOCK_INDEX_NAMES).enumerate() {
            for guard in self.reader.iter(index) {
                let key = guard.key().map_err(io(name))?;
                let id = key
                    .len()
                    .checked_sub(16)
                    .and_then(|start| keys::lock_id_after(name, &key, start).ok());
                let stale = match id {
                    None => Some("too short to end in a lock id".to_owned()),
                    Some(id) => match self.lock(id)? {
                        None => Some(format!("no lock {id} is stored")),
                        // A bad record is reported once, by the record walk.
                        Some(None) => None,
                        Some(Some(lock)) => {
                            let expected = lock_index_entries(ks, &lock)?
                                .into_iter()
                                .nth(position)
                                .map(|(_, k)| k);
                            (expected.as_deref() != Some(key.as_ref())).then(|| {
                                format!("lock {id} does not carry the value this entry indexes")
                            })
                        }
                    },
                };
                if let Some(detail) = stale {
                    self.findings.push(Finding::Stale {
                        index: index.clone(),
                        name,
                        key,
                        detail,
                    });
                }
            }
        }
        Ok(())
    }

    /// Every `meta` value decodes and every key is one this build knows.
    fn meta(&mut self) -> Result<()> {
        for guard in self.reader.iter(&self.ks.meta) {
            let (key, value) = guard.into_inner().map_err(io(names::META))?;
            let checked: Result<(), Fault> = if *key == *keys::META_FORMAT_VERSION {
                // Checked (and found readable) when the store was opened.
                Ok(())
            } else if *key == *keys::META_SERVER_EPOCH {
                codec::decode_epoch(&value).map(drop)
            } else if key.starts_with(keys::META_NODE_PREFIX) {
                keys::node_id(&key)
                    .map_err(|e| invalid(&key, e))
                    .and_then(|id| codec::decode_node(id, &key, &value).map(drop))
            } else if key.starts_with(keys::META_EPOCH_PREFIX) {
                keys::epoch_of_record(&key)
                    .map_err(|e| invalid(&key, e))
                    .and_then(|epoch| codec::decode_epoch_record(epoch, &key, &value).map(drop))
            } else {
                Err(invalid(&key, "a key this version of fsmeta does not know"))
            };
            if let Err(fault) = checked {
                self.findings.push(Finding::Record(fault));
            }
        }
        Ok(())
    }
}

/// An invalid-record fault for a `meta` key.
fn invalid(key: &[u8], detail: impl std::fmt::Display) -> Fault {
    Fault {
        kind: FaultKind::Invalid,
        location: keys::describe(names::META, key),
        detail: detail.to_string(),
    }
}

impl Inner {
    /// Checks the whole store in one snapshot; changes nothing. Blocking.
    pub(super) fn verify_blocking(&self) -> Result<VerifyReport> {
        let snapshot = self.db.read_tx();
        let walk = Walk::run(&snapshot, &self.ks)?;
        Ok(VerifyReport {
            files: walk.files,
            locks: walk.locks,
            problems: walk.findings.iter().map(Finding::problem).collect(),
        })
    }

    /// Removes stale index entries and adds missing ones, in one transaction;
    /// returns how many entries changed. Blocking.
    pub(super) fn repair_blocking(&self) -> Result<u64> {
        let mut tx = Inner::write_tx(&self.db, self.durability)?;
        let findings = Walk::run(&tx, &self.ks)?.findings;
        let mut changed = 0;
        for finding in findings {
            match finding {
                Finding::Record(_) => {}
                Finding::Stale { index, key, .. } => {
                    tx.remove(&index, key);
                    changed += 1;
                }
                Finding::Missing { index, key, .. } => {
                    tx.insert(&index, key, b"".as_slice());
                    changed += 1;
                }
            }
        }
        // A repair racing a writer conflicts and changes nothing: run it again.
        commit(tx)?;
        Ok(changed)
    }
}
