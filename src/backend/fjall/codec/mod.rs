//! Value encoding: one format-version byte, then postcard.
//!
//! Records are encoded through private `*V1` structs rather than the public
//! types' serde derives, so that adding a field to
//! [`PersistedLock`](crate::lock::PersistedLock) or
//! [`FileMeta`] cannot silently change what is on disk: a new on-disk shape
//! gets a new version byte and a new struct, and old values stay readable.
//! The key of a record (lock id, file handle) is not repeated in its value.
//!
//! Decoding never panics and never skips: bytes that do not decode, trailing
//! bytes, an unknown version byte, or a decoded record that breaks the
//! model's rules (bad enum tag, empty id, timestamp out of range) are all
//! [`Error::Corrupt`] naming the keyspace and key.

use serde::{Deserialize, Serialize};

use super::keys::{self, names};
use crate::error::{Error, Result};
use crate::file::{FileHandle, FileKind, FileMeta};
use crate::time::Timestamp;
use crate::validate;

mod lock;
mod node;

pub(super) use lock::{decode_lock, encode_lock};
pub(super) use node::{decode_epoch_record, decode_node, encode_epoch_record, encode_node};

/// The version byte in front of every value this build writes.
const VALUE_FORMAT: u8 = 1;

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
}
