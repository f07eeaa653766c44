//! Value encoding: one format-version byte, then postcard.
//!
//! Records are encoded through private `*V1` structs rather than the public
//! types' serde derives, so that adding a field to [`PersistedLock`] or
//! [`FileMeta`] cannot silently change what is on disk: a new on-disk shape
//! gets a new version byte and a new struct, and old values stay readable.
//! The key of a record (lock id, file handle) is not repeated in its value.
//!
//! Decoding never panics and never skips: bytes that do not decode, trailing
//! bytes, an unknown version byte, or a decoded record that breaks the
//! model's rules (bad enum tag, empty id, timestamp out of range) are all
//! [`Error::Corrupt`] naming the keyspace and key.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::keys::{self, names};
use crate::error::{Error, Result};
use crate::file::{FileHandle, FileKind, FileMeta};
use crate::lock::{LockFlavor, LockType, PersistedLock, ShareReservation};
use crate::node::{EpochRecord, NodeState};
use crate::time::Timestamp;
use crate::validate;

/// The version byte in front of every value this build writes.
const VALUE_FORMAT: u8 = 1;

/// A lock record, format 1 (the id is the key).
///
/// The strings and the handle are borrowed both ways: encoding copies
/// nothing, and decoding reads them in place and copies each once, into the
/// [`PersistedLock`] (reads of locks decode thousands of these). A borrowed
/// `&[u8]` is written as postcard writes a `Vec<u8>` (its length, then its
/// bytes), so the bytes on disk are those of an owned record.
#[derive(Serialize, Deserialize)]
struct LockV1<'a> {
    share_name: &'a str,
    file_id: &'a [u8],
    owner_id: &'a str,
    client_id: &'a str,
    lock_type: u8,
    offset: u64,
    length: u64,
    share_reservation: u8,
    acquired_at: i64,
    server_epoch: u64,
}

/// The version byte of a lock record with a flavour ([`LockV2`]). Only
/// Windows locks are written in it: a POSIX lock keeps format 1 (its
/// encoding is unchanged, and an older build still reads it).
const LOCK_FORMAT_FLAVOR: u8 = 2;

/// A lock record, format 2: format 1 and the flavour.
#[derive(Serialize, Deserialize)]
struct LockV2<'a> {
    #[serde(borrow)]
    v1: LockV1<'a>,
    flavor: u8,
}

/// A file record, format 1 (the handle is the key).
#[derive(Serialize, Deserialize)]
struct FileV1 {
    share_name: String,
    kind: u8,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u32,
    size: u64,
    atime: i64,
    mtime: i64,
    ctime: i64,
}

/// Why a stored value was rejected, and where it is.
#[derive(Debug)]
pub(super) struct Fault {
    /// Bytes that do not decode, or a decoded record that breaks the rules.
    pub kind: FaultKind,
    /// The keyspace and key, as [`keys::describe`] prints them.
    pub location: String,
    /// What is wrong.
    pub detail: String,
}

/// The two ways a stored value can be bad.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FaultKind {
    /// An unknown version byte, bytes postcard cannot decode, or trailing bytes.
    Undecodable,
    /// A value that decodes but breaks the model's rules.
    Invalid,
}

impl Fault {
    fn new(kind: FaultKind, keyspace: &str, key: &[u8], detail: impl std::fmt::Display) -> Self {
        Fault {
            kind,
            location: keys::describe(keyspace, key),
            detail: detail.to_string(),
        }
    }
}

impl From<Fault> for Error {
    fn from(fault: Fault) -> Self {
        Error::Corrupt(format!("{}: {}", fault.location, fault.detail))
    }
}

/// `VALUE_FORMAT | postcard(value)`.
pub(super) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    postcard::to_extend(value, vec![VALUE_FORMAT])
        .map_err(|e| Error::backend("fjall: encoding a value with postcard", e))
}

/// The inverse of [`encode`]. `T` may borrow from `bytes`.
pub(super) fn decode<'de, T: Deserialize<'de>>(
    keyspace: &str,
    key: &[u8],
    bytes: &'de [u8],
) -> Result<T, Fault> {
    decode_body(keyspace, key, body(keyspace, key, bytes)?)
}

/// The postcard body of a value in this build's format (after its version byte).
fn body<'de>(keyspace: &str, key: &[u8], bytes: &'de [u8]) -> Result<&'de [u8], Fault> {
    let undecodable =
        |detail: std::fmt::Arguments<'_>| Fault::new(FaultKind::Undecodable, keyspace, key, detail);
    let Some((&version, body)) = bytes.split_first() else {
        return Err(undecodable(format_args!("empty value")));
    };
    if version != VALUE_FORMAT {
        return Err(undecodable(format_args!(
            "unknown value format {version} (this build reads {VALUE_FORMAT})"
        )));
    }
    Ok(body)
}

/// Postcard `body` (after the version byte) as a whole `T`, nothing left over.
fn decode_body<'de, T: Deserialize<'de>>(
    keyspace: &str,
    key: &[u8],
    body: &'de [u8],
) -> Result<T, Fault> {
    decode_body_with(keyspace, key, body, Ok)
}

/// [`decode_body`], handing the value to `build` where postcard left it. A
/// record that borrows its strings is wide, and moving it out of postcard's
/// `Result`, then out of ours, took longer than building the owned record
/// from it (lock reads decode thousands: issue 20's P3).
fn decode_body_with<'de, T: Deserialize<'de>, R>(
    keyspace: &str,
    key: &[u8],
    body: &'de [u8],
    build: impl FnOnce(T) -> Result<R, Fault>,
) -> Result<R, Fault> {
    let undecodable =
        |detail: std::fmt::Arguments<'_>| Fault::new(FaultKind::Undecodable, keyspace, key, detail);
    match postcard::take_from_bytes::<T>(body) {
        Ok((value, [])) => build(value),
        Ok((_, rest)) => Err(undecodable(format_args!(
            "{} trailing bytes after the value",
            rest.len()
        ))),
        Err(e) => Err(undecodable(format_args!("undecodable value: {e}"))),
    }
}

/// Turns a model-rule violation found in stored data into an invalid-record fault at `keyspace`/`key`.
pub(super) fn stored<'a>(keyspace: &'a str, key: &'a [u8]) -> impl Fn(Error) -> Fault + 'a {
    move |e| {
        let detail = match e {
            Error::Invalid(why) | Error::Corrupt(why) => why,
            other => other.to_string(),
        };
        Fault::new(FaultKind::Invalid, keyspace, key, detail)
    }
}

/// Encodes a lock record.
///
/// A POSIX lock is written in format 1 (as before flavours existed), a
/// Windows lock in format [`LOCK_FORMAT_FLAVOR`].
pub(super) fn encode_lock(lock: &PersistedLock) -> Result<Vec<u8>> {
    let v1 = LockV1 {
        share_name: &lock.share_name,
        file_id: lock.file_id.as_bytes(),
        owner_id: &lock.owner_id,
        client_id: &lock.client_id,
        lock_type: lock.lock_type as u8,
        offset: lock.offset,
        length: lock.length,
        share_reservation: lock.share_reservation as u8,
        acquired_at: lock.acquired_at.as_micros(),
        server_epoch: lock.server_epoch,
    };
    match lock.flavor {
        LockFlavor::Posix => encode(&v1),
        LockFlavor::Windows => postcard::to_extend(
            &LockV2 {
                v1,
                flavor: lock.flavor as u8,
            },
            vec![LOCK_FORMAT_FLAVOR],
        )
        .map_err(|e| Error::backend("fjall: encoding a value with postcard", e)),
    }
}

/// Decodes the lock stored under `id`.
pub(super) fn decode_lock(id: Uuid, bytes: &[u8]) -> Result<PersistedLock, Fault> {
    let key = keys::lock(id);
    match bytes.split_first() {
        Some((&LOCK_FORMAT_FLAVOR, body)) => {
            decode_body_with(names::LOCKS, &key, body, |v2: LockV2<'_>| {
                let flavor = LockFlavor::try_from(v2.flavor).map_err(stored(names::LOCKS, &key))?;
                owned_lock(id, &key, &v2.v1, flavor)
            })
        }
        _ => {
            let body = body(names::LOCKS, &key, bytes)?;
            decode_body_with(names::LOCKS, &key, body, |v1: LockV1<'_>| {
                owned_lock(id, &key, &v1, LockFlavor::Posix)
            })
        }
    }
}

/// The lock a decoded value describes, checked by the model's rules.
fn owned_lock(
    id: Uuid,
    key: &[u8],
    v: &LockV1<'_>,
    flavor: LockFlavor,
) -> Result<PersistedLock, Fault> {
    let ctx = stored(names::LOCKS, key);
    let lock = PersistedLock {
        id,
        share_name: v.share_name.to_owned(),
        file_id: FileHandle::new(v.file_id.to_vec()).map_err(&ctx)?,
        owner_id: v.owner_id.to_owned(),
        client_id: v.client_id.to_owned(),
        lock_type: LockType::try_from(v.lock_type).map_err(&ctx)?,
        offset: v.offset,
        length: v.length,
        share_reservation: ShareReservation::try_from(v.share_reservation).map_err(&ctx)?,
        acquired_at: Timestamp::from_micros(v.acquired_at),
        server_epoch: v.server_epoch,
        flavor,
    };
    validate::lock(&lock).map_err(&ctx)?;
    Ok(lock)
}

/// Encodes a file record.
pub(super) fn encode_file(file: &FileMeta) -> Result<Vec<u8>> {
    encode(&FileV1 {
        share_name: file.share_name.clone(),
        kind: file.kind as u8,
        mode: file.mode,
        uid: file.uid,
        gid: file.gid,
        nlink: file.nlink,
        size: file.size,
        atime: file.atime.as_micros(),
        mtime: file.mtime.as_micros(),
        ctime: file.ctime.as_micros(),
    })
}

/// Decodes the file stored under `handle`.
pub(super) fn decode_file(handle: &FileHandle, bytes: &[u8]) -> Result<FileMeta, Fault> {
    let key = handle.as_bytes();
    let ctx = stored(names::FILES, key);
    let v: FileV1 = decode(names::FILES, key, bytes)?;
    let file = FileMeta {
        handle: handle.clone(),
        share_name: v.share_name,
        kind: FileKind::try_from(v.kind).map_err(&ctx)?,
        mode: v.mode,
        uid: v.uid,
        gid: v.gid,
        nlink: v.nlink,
        size: v.size,
        atime: Timestamp::from_micros(v.atime),
        mtime: Timestamp::from_micros(v.mtime),
        ctime: Timestamp::from_micros(v.ctime),
    };
    validate::file(&file).map_err(&ctx)?;
    Ok(file)
}

/// Encodes the server epoch.
pub(super) fn encode_epoch(epoch: u64) -> Result<Vec<u8>> {
    encode(&epoch)
}

/// Decodes the server epoch.
pub(super) fn decode_epoch(bytes: &[u8]) -> Result<u64, Fault> {
    decode(names::META, keys::META_SERVER_EPOCH, bytes)
}

/// Decodes the clean-shutdown flag that builds before node state kept in `meta`.
pub(super) fn decode_legacy_clean_shutdown(bytes: &[u8]) -> Result<bool, Fault> {
    decode(names::META, keys::META_LEGACY_CLEAN_SHUTDOWN, bytes)
}

/// A node's state, format 1 (the id is the key).
#[derive(Serialize, Deserialize)]
struct NodeV1 {
    epoch: u64,
    clean_shutdown: bool,
}

/// An epoch record, format 1 (the epoch is the key).
#[derive(Serialize, Deserialize)]
struct EpochRecordV1 {
    node_id: String,
    started_at: i64,
}

/// The version byte of a node state with a lease and a takeover
/// ([`NodeV2`]). Every node state is written in it; format 1 (before leases)
/// is still read, as a node without a lease that was never taken over.
const NODE_FORMAT_LEASE: u8 = 2;

/// A node's state, format 2: format 1, the lease expiry (µs) and the takeover.
#[derive(Serialize, Deserialize)]
struct NodeV2 {
    v1: NodeV1,
    lease_expires_at: Option<i64>,
    taken_over: Option<TakeoverV1>,
}

/// Who declared a node dead, and when (µs), inside [`NodeV2`].
#[derive(Serialize, Deserialize)]
struct TakeoverV1 {
    by: String,
    at: i64,
}

/// Encodes a node's state (format [`NODE_FORMAT_LEASE`]).
pub(super) fn encode_node(node: &NodeState) -> Result<Vec<u8>> {
    let value = NodeV2 {
        v1: NodeV1 {
            epoch: node.epoch,
            clean_shutdown: node.clean_shutdown,
        },
        lease_expires_at: node.lease_expires_at.map(Timestamp::as_micros),
        taken_over: node.taken_over.as_ref().map(|t| TakeoverV1 {
            by: t.by.clone(),
            at: t.at.as_micros(),
        }),
    };
    postcard::to_extend(&value, vec![NODE_FORMAT_LEASE])
        .map_err(|e| Error::backend("fjall: encoding a value with postcard", e))
}

/// Decodes the state stored under `key` for node `node_id` (format 1 or 2).
pub(super) fn decode_node(node_id: String, key: &[u8], bytes: &[u8]) -> Result<NodeState, Fault> {
    let v = match bytes.split_first() {
        Some((&NODE_FORMAT_LEASE, body)) => decode_body::<NodeV2>(names::META, key, body)?,
        _ => NodeV2 {
            v1: decode(names::META, key, bytes)?,
            lease_expires_at: None,
            taken_over: None,
        },
    };
    let node = NodeState {
        node_id,
        epoch: v.v1.epoch,
        clean_shutdown: v.v1.clean_shutdown,
        lease_expires_at: v.lease_expires_at.map(Timestamp::from_micros),
        taken_over: v.taken_over.map(|t| crate::node::Takeover {
            by: t.by,
            at: Timestamp::from_micros(t.at),
        }),
    };
    validate::node(&node).map_err(stored(names::META, key))?;
    Ok(node)
}

/// Encodes an epoch record.
pub(super) fn encode_epoch_record(record: &EpochRecord) -> Result<Vec<u8>> {
    encode(&EpochRecordV1 {
        node_id: record.node_id.clone(),
        started_at: record.started_at.as_micros(),
    })
}

/// Decodes the epoch record stored under `key` for `epoch`.
pub(super) fn decode_epoch_record(
    epoch: u64,
    key: &[u8],
    bytes: &[u8],
) -> Result<EpochRecord, Fault> {
    let v: EpochRecordV1 = decode(names::META, key, bytes)?;
    let record = EpochRecord {
        epoch,
        node_id: v.node_id,
        started_at: Timestamp::from_micros(v.started_at),
    };
    validate::epoch_record(&record).map_err(stored(names::META, key))?;
    Ok(record)
}

/// Encodes an extension value: `VALUE_FORMAT | the value's bytes`. The
/// bytes are the host's, stored as given (no postcard: there is nothing to
/// describe); the version byte leaves room for another layout later.
pub(super) fn encode_ext_value(value: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(1 + value.len());
    bytes.push(VALUE_FORMAT);
    bytes.extend_from_slice(value);
    bytes
}

/// Decodes the extension value stored under `ext` key `key`.
pub(super) fn decode_ext_value(key: &[u8], bytes: &[u8]) -> Result<Vec<u8>, Fault> {
    match bytes.split_first() {
        None => Err(Fault::new(
            FaultKind::Undecodable,
            names::EXT,
            key,
            "empty value",
        )),
        Some((&VALUE_FORMAT, value)) if value.len() <= crate::ext::MAX_EXT_VALUE_LEN => {
            Ok(value.to_vec())
        }
        Some((&VALUE_FORMAT, value)) => Err(Fault::new(
            FaultKind::Invalid,
            names::EXT,
            key,
            format_args!(
                "a {}-byte value; at most {} allowed",
                value.len(),
                crate::ext::MAX_EXT_VALUE_LEN
            ),
        )),
        Some((&version, _)) => Err(Fault::new(
            FaultKind::Undecodable,
            names::EXT,
            key,
            format_args!("unknown value format {version} (this build reads {VALUE_FORMAT})"),
        )),
    }
}

/// Encodes the store format version (raw big-endian, see [`keys`]).
pub(super) fn encode_format_version(version: u32) -> [u8; 4] {
    version.to_be_bytes()
}

/// Decodes the store format version.
pub(super) fn decode_format_version(bytes: &[u8]) -> Result<u32> {
    <[u8; 4]>::try_from(bytes)
        .map(u32::from_be_bytes)
        .map_err(|_| {
            keys::corrupt_key(
                names::META,
                keys::META_FORMAT_VERSION,
                format_args!("expected 4 bytes, found {}", bytes.len()),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock() -> PersistedLock {
        PersistedLock {
            id: Uuid::from_u128(42),
            share_name: "export".into(),
            file_id: FileHandle::new(vec![0, 1, 2]).expect("handle"),
            owner_id: "owner:/ ü".into(),
            client_id: "client".into(),
            lock_type: LockType::Shared,
            offset: u64::MAX,
            length: u64::MAX,
            share_reservation: ShareReservation::DenyAll,
            acquired_at: Timestamp::MIN_VALID,
            server_epoch: u64::MAX,
            flavor: LockFlavor::Posix,
        }
    }

    #[test]
    fn lock_round_trips() {
        let l = lock();
        let bytes = encode_lock(&l).expect("encode");
        assert_eq!(bytes[0], VALUE_FORMAT);
        assert_eq!(decode_lock(l.id, &bytes).expect("decode"), l);
    }

    /// The borrowed record writes the bytes an owned one (`String`s and a
    /// `Vec<u8>` handle, as earlier builds had it) writes, at the longest
    /// lengths too (a 128-byte handle's length takes two varint bytes).
    #[test]
    fn borrowed_lock_encodes_as_the_owned_record() {
        #[derive(Serialize)]
        struct OwnedV1 {
            share_name: String,
            file_id: Vec<u8>,
            owner_id: String,
            client_id: String,
            lock_type: u8,
            offset: u64,
            length: u64,
            share_reservation: u8,
            acquired_at: i64,
            server_epoch: u64,
        }
        let l = PersistedLock {
            share_name: "s".repeat(255),
            file_id: FileHandle::new((0..=127).collect::<Vec<u8>>()).expect("handle"),
            owner_id: "ö".repeat(512),
            client_id: "c".repeat(1024),
            ..lock()
        };
        let owned = encode(&OwnedV1 {
            share_name: l.share_name.clone(),
            file_id: l.file_id.as_bytes().to_vec(),
            owner_id: l.owner_id.clone(),
            client_id: l.client_id.clone(),
            lock_type: l.lock_type as u8,
            offset: l.offset,
            length: l.length,
            share_reservation: l.share_reservation as u8,
            acquired_at: l.acquired_at.as_micros(),
            server_epoch: l.server_epoch,
        })
        .expect("encode");
        assert_eq!(encode_lock(&l).expect("encode"), owned);
        assert_eq!(decode_lock(l.id, &owned).expect("decode"), l);
    }

    #[test]
    fn windows_lock_round_trips_in_format_2_and_posix_stays_format_1() {
        let w = PersistedLock {
            flavor: LockFlavor::Windows,
            offset: u64::MAX,
            length: 1,
            ..lock()
        };
        let bytes = encode_lock(&w).expect("encode");
        assert_eq!(bytes[0], LOCK_FORMAT_FLAVOR);
        assert_eq!(decode_lock(w.id, &bytes).expect("decode"), w);
        // Format 2 is format 1's body and the flavour byte.
        let v1 = encode_lock(&PersistedLock {
            flavor: LockFlavor::Posix,
            ..w.clone()
        })
        .expect("encode");
        assert_eq!(&bytes[1..bytes.len() - 1], &v1[1..]);
        assert_eq!(bytes.last(), Some(&1));
        // A bad flavour is an invalid record; a truncated one undecodable.
        let mut bad = bytes.clone();
        *bad.last_mut().expect("byte") = 7;
        assert_eq!(
            decode_lock(w.id, &bad).expect_err("flavor 7").kind,
            FaultKind::Invalid
        );
        assert_eq!(
            decode_lock(w.id, &bytes[..bytes.len() - 1])
                .expect_err("truncated")
                .kind,
            FaultKind::Undecodable
        );
    }

    #[test]
    fn garbage_is_corrupt_and_names_the_key() {
        let l = lock();
        let mut bytes = encode_lock(&l).expect("encode");
        for bad in [vec![], vec![VALUE_FORMAT], vec![9, 1, 2], {
            bytes.push(0);
            bytes.clone()
        }] {
            match decode_lock(l.id, &bad).map_err(Error::from) {
                Err(Error::Corrupt(msg)) => assert!(msg.contains("`locks`"), "{msg}"),
                other => panic!("expected Corrupt, got {other:?}"),
            }
        }
    }

    #[test]
    fn ext_values_round_trip_and_garbage_is_corrupt() {
        for value in [&b""[..], b"\x00", &[0xff; 300]] {
            let bytes = encode_ext_value(value);
            assert_eq!(bytes[0], VALUE_FORMAT);
            assert_eq!(decode_ext_value(b"k", &bytes).expect("decode"), value);
        }
        let kind = |bytes: &[u8]| decode_ext_value(b"k", bytes).map_err(|f| f.kind).err();
        assert_eq!(kind(&[]), Some(FaultKind::Undecodable));
        assert_eq!(kind(&[9, 1]), Some(FaultKind::Undecodable));
        let too_big = encode_ext_value(&vec![0; crate::ext::MAX_EXT_VALUE_LEN + 1]);
        assert_eq!(kind(&too_big), Some(FaultKind::Invalid));
        let msg = Error::from(decode_ext_value(b"k", &[]).expect_err("empty")).to_string();
        assert!(msg.contains("`ext`"), "{msg}");
    }

    #[test]
    fn model_violations_are_corrupt() {
        let mut l = lock();
        l.owner_id.clear();
        let bytes = encode_lock(&l).expect("encode");
        let fault = decode_lock(l.id, &bytes).expect_err("an empty owner is invalid");
        assert_eq!(fault.kind, FaultKind::Invalid);
        assert!(matches!(
            decode_lock(l.id, &[9]),
            Err(Fault {
                kind: FaultKind::Undecodable,
                ..
            })
        ));
    }
}
