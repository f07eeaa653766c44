//! Lock records: format 1 ([`LockV1`]) for POSIX locks, format 2
//! ([`LockV2`], format 1 and the flavour) for Windows locks.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Fault, body, decode_body_with, encode, stored};
use crate::backend::fjall::keys::{self, names};
use crate::error::{Error, Result};
use crate::file::FileHandle;
use crate::lock::{LockFlavor, LockType, PersistedLock, ShareReservation};
use crate::time::Timestamp;
use crate::validate;

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

/// Encodes a lock record.
///
/// A POSIX lock is written in format 1 (as before flavours existed), a
/// Windows lock in format [`LOCK_FORMAT_FLAVOR`].
pub(in crate::backend::fjall) fn encode_lock(lock: &PersistedLock) -> Result<Vec<u8>> {
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
pub(in crate::backend::fjall) fn decode_lock(
    id: Uuid,
    bytes: &[u8],
) -> Result<PersistedLock, Fault> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::fjall::codec::{FaultKind, VALUE_FORMAT};
    use crate::error::Error;
    use serde::Serialize;

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
