//! The one generic indexed table every fjall record family is stored through.
//!
//! A family ([`Family`]) declares where its records live (a keyspace, and a
//! key prefix inside it when it shares the keyspace with others), how its key
//! is drawn and read back, its codec, and its secondary indexes ([`Index`]):
//! for each, the index keyspace, the entry a record owns there (drawn by
//! `keys.rs`) and how to read the record key back out of an entry. [`Table`]
//! does the rest, the same way for every family: put with stale-index
//! removal, get, delete, index scans in key order, paging, and the two-way
//! checks between records and index entries that `verify` and `repair` run
//! (`check.rs`). Index entries have empty values; the key says everything.
//!
//! Every read goes through the caller's [`Readable`]: inside a write
//! transaction it is recorded for conflict detection (a scan as its whole key
//! range), in a snapshot it is just a read.

use std::marker::PhantomData;
use std::ops::Bound;

use fjall::{OptimisticTxKeyspace, OptimisticWriteTx, Readable, UserKey};

use super::Keyspaces;
use super::codec::{Fault, FaultKind};
use super::keys;
use crate::error::{Error, Result};

/// I/O error while reading `keyspace`.
pub(super) fn read_error(keyspace: &str) -> impl FnOnce(fjall::Error) -> Error + '_ {
    move |e| Error::backend(format!("fjall: reading keyspace `{keyspace}`"), e)
}

/// A key range inside one keyspace.
pub(super) type KeyRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// What a record family stores and how; see the module docs.
pub(super) trait Family: 'static {
    /// The key the API names a record by (lock id, file handle, node id, epoch).
    type Key: std::fmt::Display;
    /// The record.
    type Record: 'static;
    /// The record keyspace's name, for messages.
    const NAME: &'static str;
    /// What one record is called in messages (`"lock"`, `"file"`).
    const RECORD: &'static str;
    /// The prefix of every record key in the keyspace; empty when the family
    /// has the keyspace to itself.
    const PREFIX: &'static [u8];
    /// What a well-formed record key is, for messages about one that is not.
    const KEY_RULE: &'static str;
    /// The secondary indexes; a record owns exactly one entry in each.
    const INDEXES: &'static [Index<Self::Record>];

    /// The record keyspace.
    fn keyspace(ks: &Keyspaces) -> &OptimisticTxKeyspace;
    /// The key of a record.
    fn key_of(record: &Self::Record) -> Self::Key;
    /// The raw key a record is stored under (starts with [`Family::PREFIX`]).
    fn encode_key(key: &Self::Key) -> Vec<u8>;
    /// The key of a raw record key; `None` when it is not well formed.
    fn decode_key(raw: &[u8]) -> Option<Self::Key>;
    /// The stored value of a record.
    fn encode(record: &Self::Record) -> Result<Vec<u8>>;
    /// The record stored under `key` (`raw_key` drawn) with `value`.
    fn decode(key: &Self::Key, raw_key: &[u8], value: &[u8]) -> Result<Self::Record, Fault>;
}

/// A secondary index of records of type `R`.
pub(super) struct Index<R> {
    /// The index keyspace's name, for messages.
    pub name: &'static str,
    /// The shape of an entry (keys.rs notation), for messages.
    pub layout: &'static str,
    /// The index keyspace.
    pub keyspace: for<'k> fn(&'k Keyspaces) -> &'k OptimisticTxKeyspace,
    /// The entry a record owns in this index.
    pub entry: fn(&R) -> Result<Vec<u8>>,
    /// The raw record key an entry names (its tail); `None` when malformed.
    pub target: fn(&[u8]) -> Option<&[u8]>,
}

/// Which keys of a table a check walks: its records or one of its indexes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Part {
    /// The records (their keys under [`Family::PREFIX`]).
    Records,
    /// The entries of `F::INDEXES[i]`.
    Index(usize),
}

/// One thing a check found wrong.
pub(super) enum Finding {
    /// A record (or `meta` value) that is bad; repair cannot fix it.
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

/// The records of family `F`, over the keyspaces of one store.
pub(super) struct Table<'k, F> {
    ks: &'k Keyspaces,
    family: PhantomData<fn() -> F>,
}

impl<'k, F: Family> Table<'k, F> {
    /// The table of family `F` in these keyspaces.
    pub(super) fn new(ks: &'k Keyspaces) -> Self {
        Table {
            ks,
            family: PhantomData,
        }
    }

    fn records(&self) -> &'k OptimisticTxKeyspace {
        F::keyspace(self.ks)
    }

    /// Decodes a stored record; a malformed key or value is [`Error::Corrupt`].
    fn decode_raw(raw_key: &[u8], value: &[u8]) -> Result<F::Record> {
        let key = F::decode_key(raw_key)
            .ok_or_else(|| keys::corrupt_key(F::NAME, raw_key, F::KEY_RULE))?;
        Ok(F::decode(&key, raw_key, value)?)
    }

    /// The record under `key`, if stored.
    pub(super) fn get(&self, r: &impl Readable, key: &F::Key) -> Result<Option<F::Record>> {
        self.get_raw(r, key, &F::encode_key(key))
    }

    /// [`Table::get`] when the caller has the raw key `raw` of `key` already.
    fn get_raw(&self, r: &impl Readable, key: &F::Key, raw: &[u8]) -> Result<Option<F::Record>> {
        r.get(self.records(), raw)
            .map_err(read_error(F::NAME))?
            .map(|value| Ok(F::decode(key, raw, &value)?))
            .transpose()
    }

    /// The entries `record` owns, index by index.
    fn entries(&self, record: &F::Record) -> Result<Vec<(&'k OptimisticTxKeyspace, Vec<u8>)>> {
        F::INDEXES
            .iter()
            .map(|index| Ok(((index.keyspace)(self.ks), (index.entry)(record)?)))
            .collect()
    }

    /// Inserts or replaces `record`. A table with indexes reads the record it
    /// replaces and drops every index entry of it: an overwrite that changes an
    /// indexed value leaves nothing stale (the read also makes concurrent
    /// overwrites conflict). Every old entry is removed and every new one
    /// inserted; an entry both have is simply written again (the last write
    /// to a key wins). A table without indexes writes blind.
    pub(super) fn put(&self, tx: &mut OptimisticWriteTx, record: &F::Record) -> Result<()> {
        let key = F::key_of(record);
        let value = F::encode(record)?;
        let entries = self.entries(record)?;
        if !F::INDEXES.is_empty()
            && let Some(old) = self.get(tx, &key)?
        {
            for (index, entry) in self.entries(&old)? {
                tx.remove(index, entry);
            }
        }
        tx.insert(self.records(), F::encode_key(&key), value);
        for (index, entry) in entries {
            tx.insert(index, entry, b"".as_slice());
        }
        Ok(())
    }

    /// Removes a stored record (as read in this transaction) and its index entries.
    pub(super) fn remove(&self, tx: &mut OptimisticWriteTx, record: &F::Record) -> Result<()> {
        for (index, entry) in self.entries(record)? {
            tx.remove(index, entry);
        }
        tx.remove(self.records(), F::encode_key(&F::key_of(record)));
        Ok(())
    }

    /// Deletes the record under `key` with its index entries; returns it, or
    /// `None` when nothing is stored there.
    pub(super) fn delete(
        &self,
        tx: &mut OptimisticWriteTx,
        key: &F::Key,
    ) -> Result<Option<F::Record>> {
        let old = self.get(tx, key)?;
        if let Some(old) = &old {
            self.remove(tx, old)?;
        }
        Ok(old)
    }

    /// Every record, in key order.
    pub(super) fn all(&self, r: &impl Readable) -> Result<Vec<F::Record>> {
        let iter = if F::PREFIX.is_empty() {
            r.iter(self.records())
        } else {
            r.prefix(self.records(), F::PREFIX)
        };
        iter.map(|guard| {
            let (key, value) = guard.into_inner().map_err(read_error(F::NAME))?;
            Self::decode_raw(&key, &value)
        })
        .collect()
    }

    /// At most `limit` records with keys after `after` (from the first when
    /// `None`), in key order. The read set is the whole range past `after`,
    /// not just the page: coarser than needed, never too fine.
    pub(super) fn page(
        &self,
        r: &impl Readable,
        after: Option<&F::Key>,
        limit: usize,
    ) -> Result<Vec<F::Record>> {
        let (start, end) = Self::scope(Part::Records);
        let start = after.map_or(start, |key| Bound::Excluded(F::encode_key(key)));
        self.range(r, (start, end), limit)
    }

    /// At most `limit` records whose raw keys lie in `range` (which must stay
    /// inside [`Family::PREFIX`]), in key order. The read set is the whole
    /// range, however few records come back.
    pub(super) fn range(
        &self,
        r: &impl Readable,
        range: KeyRange,
        limit: usize,
    ) -> Result<Vec<F::Record>> {
        r.range(self.records(), range)
            .take(limit)
            .map(|guard| {
                let (key, value) = guard.into_inner().map_err(read_error(F::NAME))?;
                Self::decode_raw(&key, &value)
            })
            .collect()
    }

    /// The records named by the entries of `index` under `prefix`, in entry order.
    pub(super) fn index_prefix(
        &self,
        r: &impl Readable,
        index: &Index<F::Record>,
        prefix: &[u8],
    ) -> Result<Vec<F::Record>> {
        let entries = r
            .prefix((index.keyspace)(self.ks), prefix)
            .map(|guard| guard.key().map_err(read_error(index.name)))
            .collect::<Result<Vec<_>>>()?;
        self.named_by(r, index, &entries)
    }

    /// The records named by the entries of `index` in `range`, in entry order.
    pub(super) fn index_range(
        &self,
        r: &impl Readable,
        index: &Index<F::Record>,
        range: KeyRange,
    ) -> Result<Vec<F::Record>> {
        let entries = r
            .range((index.keyspace)(self.ks), range)
            .map(|guard| guard.key().map_err(read_error(index.name)))
            .collect::<Result<Vec<_>>>()?;
        self.named_by(r, index, &entries)
    }

    /// Reads the record each entry names. A malformed entry, or one whose
    /// record is missing, is corruption, not something to skip.
    fn named_by(
        &self,
        r: &impl Readable,
        index: &Index<F::Record>,
        entries: &[UserKey],
    ) -> Result<Vec<F::Record>> {
        // A loop, not `collect::<Result<Vec<_>>>()`, which cannot size the
        // vector up front and grows it (moving every record) as it fills.
        let mut records = Vec::with_capacity(entries.len());
        for entry in entries {
            // The entry's tail is the record's raw key: read it as it is
            // (no decode-and-encode round trip per record).
            let (raw, key) = (index.target)(entry)
                .and_then(|raw| Some((raw, F::decode_key(raw)?)))
                .ok_or_else(|| {
                    keys::corrupt_key(index.name, entry, format_args!("expected {}", index.layout))
                })?;
            let value = r
                .get(self.records(), raw)
                .map_err(read_error(F::NAME))?
                .ok_or_else(|| {
                    keys::corrupt_key(
                        F::NAME,
                        raw,
                        format_args!(
                            "index `{}` names this {}, but no record is stored",
                            index.name,
                            F::RECORD
                        ),
                    )
                })?;
            // Decoded straight into the answer rather than returned through
            // `get_raw`'s `Result<Option<_>>`: one move of the record fewer
            // per hit, which list queries pay per lock (issue 20's P3).
            records.push(F::decode(&key, raw, &value)?);
        }
        Ok(records)
    }

    /// Records, then each index.
    pub(super) fn parts() -> impl Iterator<Item = Part> {
        std::iter::once(Part::Records).chain((0..F::INDEXES.len()).map(Part::Index))
    }

    /// The keyspace a part lives in, and its name.
    pub(super) fn part_keyspace(&self, part: Part) -> (&'k OptimisticTxKeyspace, &'static str) {
        match part {
            Part::Records => (self.records(), F::NAME),
            Part::Index(i) => ((F::INDEXES[i].keyspace)(self.ks), F::INDEXES[i].name),
        }
    }

    /// Every key of a part: the records' prefix, or a whole index keyspace.
    pub(super) fn scope(part: Part) -> KeyRange {
        match (part, keys::prefix_end(F::PREFIX)) {
            (Part::Records, _) if F::PREFIX.is_empty() => (Bound::Unbounded, Bound::Unbounded),
            (Part::Records, Some(end)) => {
                (Bound::Included(F::PREFIX.to_vec()), Bound::Excluded(end))
            }
            (Part::Records, None) => (Bound::Included(F::PREFIX.to_vec()), Bound::Unbounded),
            (Part::Index(_), _) => (Bound::Unbounded, Bound::Unbounded),
        }
    }

    /// Checks the keys of `part` in `range` (inside its scope) and pushes what
    /// is wrong to `out`; returns how many keys it visited. Records: each
    /// decodes and owns its entry in every index. Index entries: each names a
    /// stored record whose own entry in this index is exactly this key. An
    /// entry that names an undecodable record is left alone: the record walk
    /// reports that record, and what the entry should say is unknown.
    pub(super) fn check(
        &self,
        r: &impl Readable,
        part: Part,
        range: KeyRange,
        out: &mut Vec<Finding>,
    ) -> Result<u64> {
        let (keyspace, name) = self.part_keyspace(part);
        let mut visited = 0;
        for guard in r.range(keyspace, range) {
            visited += 1;
            match part {
                Part::Records => {
                    let (key, value) = guard.into_inner().map_err(read_error(name))?;
                    self.check_record(r, &key, &value, out)?;
                }
                Part::Index(i) => {
                    let key = guard.key().map_err(read_error(name))?;
                    self.check_entry(r, &F::INDEXES[i], key, out)?;
                }
            }
        }
        Ok(visited)
    }

    fn check_record(
        &self,
        r: &impl Readable,
        raw_key: &[u8],
        value: &[u8],
        out: &mut Vec<Finding>,
    ) -> Result<()> {
        let Some(key) = F::decode_key(raw_key) else {
            out.push(Finding::Record(Fault {
                kind: FaultKind::Invalid,
                location: keys::describe(F::NAME, raw_key),
                detail: F::KEY_RULE.into(),
            }));
            return Ok(());
        };
        let record = match F::decode(&key, raw_key, value) {
            Ok(record) => record,
            Err(fault) => {
                out.push(Finding::Record(fault));
                return Ok(());
            }
        };
        for (index, (keyspace, entry)) in F::INDEXES.iter().zip(self.entries(&record)?) {
            if !r
                .contains_key(keyspace, &entry)
                .map_err(read_error(index.name))?
            {
                out.push(Finding::Missing {
                    index: keyspace.clone(),
                    name: index.name,
                    key: entry,
                });
            }
        }
        Ok(())
    }

    fn check_entry(
        &self,
        r: &impl Readable,
        index: &Index<F::Record>,
        entry: UserKey,
        out: &mut Vec<Finding>,
    ) -> Result<()> {
        let stale = match (index.target)(&entry).and_then(F::decode_key) {
            None => Some(format!("not an entry of this index ({})", index.layout)),
            Some(key) => {
                let raw = F::encode_key(&key);
                match r.get(self.records(), &raw).map_err(read_error(F::NAME))? {
                    None => Some(format!("no {} {key} is stored", F::RECORD)),
                    Some(value) => match F::decode(&key, &raw, &value) {
                        // A bad record is reported once, by the record walk.
                        Err(_) => None,
                        Ok(record) => ((index.entry)(&record)? != *entry).then(|| {
                            format!(
                                "{} {key} does not carry the value this entry indexes",
                                F::RECORD
                            )
                        }),
                    },
                }
            }
        };
        if let Some(detail) = stale {
            out.push(Finding::Stale {
                index: (index.keyspace)(self.ks).clone(),
                name: index.name,
                key: entry,
                detail,
            });
        }
        Ok(())
    }
}
