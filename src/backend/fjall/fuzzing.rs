//! Fuzzing entry points for the fjall key and value decoders (cargo feature
//! `fuzzing`). Not part of the API: `fuzz/` (cargo fuzz) and
//! `tests/fuzz_decoders.rs` call these, and nothing else should.
//!
//! Why the decoders directly and not through a store: a store costs a
//! database open per input (milliseconds) and reaches a decoder only behind
//! fjall's own checks; calling the decoders gives libFuzzer millions of
//! executions per minute on exactly the code that reads bytes from disk.
//!
//! Each function takes arbitrary bytes, the first choosing the decoder, and
//! panics only when a property breaks:
//!
//! - no decoder panics, whatever the bytes;
//! - every rejection is [`Error::Corrupt`] (or [`Error::UnsupportedFormat`]
//!   for the format version), never another variant;
//! - a value that decodes is a valid record (it passes `validate`), and
//!   encoding it again gives bytes that decode to the same record;
//! - a key that decodes is canonical: drawing the key of what it decoded to
//!   gives back exactly the input.

use uuid::Uuid;

use super::codec;
use super::keys::{self, names};
use crate::error::Error;
use crate::file::FileHandle;
use crate::validate;

fn corrupt(what: &str, e: Error) {
    assert!(
        matches!(e, Error::Corrupt(_)),
        "{what}: a rejected input must be Error::Corrupt, got {e:?}"
    );
}

/// The lock id and file handle decoders receive with a value (from the key).
fn lock_id() -> Uuid {
    Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef)
}

fn handle() -> FileHandle {
    FileHandle::new(*b"fuzz").expect("valid handle")
}

/// Runs one value decoder on `data[1..]`, chosen by `data[0]`.
pub fn values(data: &[u8]) {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 8 {
        0 => match codec::decode_lock(lock_id(), bytes) {
            Ok(lock) => {
                validate::lock(&lock).expect("a decoded lock is valid");
                assert_eq!(lock.id, lock_id());
                let again = codec::encode_lock(&lock).expect("encode");
                assert_eq!(
                    codec::decode_lock(lock_id(), &again).expect("re-decode"),
                    lock
                );
            }
            Err(fault) => corrupt("lock", fault.into()),
        },
        1 => match codec::decode_file(&handle(), bytes) {
            Ok(file) => {
                validate::file(&file).expect("a decoded file is valid");
                let again = codec::encode_file(&file).expect("encode");
                assert_eq!(
                    codec::decode_file(&handle(), &again).expect("re-decode"),
                    file
                );
            }
            Err(fault) => corrupt("file", fault.into()),
        },
        2 => match codec::decode_epoch(bytes) {
            Ok(epoch) => {
                let again = codec::encode_epoch(epoch).expect("encode");
                assert_eq!(codec::decode_epoch(&again).expect("re-decode"), epoch);
            }
            Err(fault) => corrupt("epoch", fault.into()),
        },
        3 => {
            if let Err(fault) = codec::decode_legacy_clean_shutdown(bytes) {
                corrupt("clean flag", fault.into());
            }
        }
        4 => {
            let key = keys::node("node-1");
            match codec::decode_node("node-1".into(), &key, bytes) {
                Ok(node) => {
                    let again = codec::encode_node(&node).expect("encode");
                    let back =
                        codec::decode_node("node-1".into(), &key, &again).expect("re-decode");
                    assert_eq!(back, node);
                }
                Err(fault) => corrupt("node", fault.into()),
            }
        }
        5 => {
            let key = keys::epoch_record(7);
            match codec::decode_epoch_record(7, &key, bytes) {
                Ok(record) => {
                    validate::epoch_record(&record).expect("a decoded record is valid");
                    let again = codec::encode_epoch_record(&record).expect("encode");
                    let back = codec::decode_epoch_record(7, &key, &again).expect("re-decode");
                    assert_eq!(back, record);
                }
                Err(fault) => corrupt("epoch record", fault.into()),
            }
        }
        6 => match codec::decode_format_version(bytes) {
            Ok(version) => assert_eq!(codec::encode_format_version(version).as_slice(), bytes),
            Err(e) => corrupt("format version", e),
        },
        _ => match codec::decode_ext_value(b"\x01tk", bytes) {
            Ok(value) => {
                validate::ext_value(&value).expect("a decoded value is valid");
                assert_eq!(codec::encode_ext_value(&value), bytes);
            }
            Err(fault) => corrupt("extension value", fault.into()),
        },
    }
}

/// Runs one key decoder on `data[1..]`, chosen by `data[0]`.
pub fn keys(data: &[u8]) {
    let Some((&which, key)) = data.split_first() else {
        return;
    };
    match which % 7 {
        // `locks`: a bare 16-byte id.
        0 => match keys::lock_id(key) {
            Ok(id) => assert_eq!(keys::lock(id).as_slice(), key),
            Err(e) => corrupt("locks key", e),
        },
        // `locks_by_file/owner/client/share`: len16(component) | id16, read
        // the way a scan does: the prefix of the component it names, then the id.
        1 => {
            let Some((len, rest)) = key.split_first_chunk::<2>() else {
                return;
            };
            let len = usize::from(u16::from_be_bytes(*len));
            let Some(component) = rest.get(..len) else {
                return;
            };
            let prefix = keys::prefix(component).expect("a u16 length fits");
            assert!(key.starts_with(&prefix));
            match keys::lock_id_after(names::LOCKS_BY_CLIENT, key, prefix.len()) {
                Ok(id) => assert_eq!(keys::lock_index(component, id).expect("key"), key),
                Err(e) => corrupt("lock index key", e),
            }
        }
        // `locks_by_epoch`: be64(epoch) | id16.
        2 => {
            let Some((epoch, _)) = key.split_first_chunk::<8>() else {
                return;
            };
            match keys::lock_id_after(names::LOCKS_BY_EPOCH, key, 8) {
                Ok(id) => assert_eq!(keys::lock_by_epoch(u64::from_be_bytes(*epoch), id), key),
                Err(e) => corrupt("epoch index key", e),
            }
        }
        // `files_by_share`: len16(share) | handle, read the way a scan does:
        // the record key after the share, which must be a valid handle.
        3 => {
            if let Some((share, rest)) = keys::split_len16(key) {
                assert!(!rest.is_empty(), "a split leaves at least one handle byte");
                assert_eq!(keys::after_len16(key), Some(rest));
                match FileHandle::new(rest) {
                    Ok(handle) => {
                        if let Ok(share) = std::str::from_utf8(share) {
                            assert_eq!(keys::file_by_share(share, &handle).expect("key"), key);
                        }
                    }
                    Err(e) => {
                        assert!(
                            rest.len() > FileHandle::MAX_LEN,
                            "{rest:?} is a valid handle"
                        );
                        assert!(matches!(e, Error::Invalid(_)), "{e:?}");
                    }
                }
            }
        }
        // `meta`: "node/" | node id.
        4 => match keys::node_id(key) {
            Ok(id) => assert_eq!(keys::node(&id), key),
            Err(e) => corrupt("node key", e),
        },
        // `meta`: "epoch/" | be64(epoch).
        5 => match keys::epoch_of_record(key) {
            Ok(epoch) => assert_eq!(keys::epoch_record(epoch), key),
            Err(e) => corrupt("epoch record key", e),
        },
        // `ext`: len8(table) | key; a key that splits is a valid table and
        // key, and drawing them again gives the input.
        _ => {
            if let Some((table, record_key)) = keys::split_ext(key) {
                validate::ext_address(table, record_key)
                    .expect("a decoded table and key are valid");
                assert_eq!(keys::ext(table, record_key).expect("key"), key);
            }
        }
    }
}

/// Valid inputs for [`values`] and [`keys()`] (selector byte included): a seed
/// corpus, and the starting points of `tests/fuzz_decoders.rs`'s mutations.
pub fn seeds() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    use crate::lock::{LockType, PersistedLock, ShareReservation};
    use crate::node::{EpochRecord, NodeState};
    use crate::time::Timestamp;
    let lock = PersistedLock {
        id: lock_id(),
        share_name: "export".into(),
        file_id: handle(),
        owner_id: "owner:/ ü".into(),
        client_id: "client1".into(),
        lock_type: LockType::Exclusive,
        offset: u64::MAX,
        length: 0,
        share_reservation: ShareReservation::DenyWrite,
        acquired_at: Timestamp::MAX_VALID,
        server_epoch: 1 << 63,
        flavor: crate::LockFlavor::Posix,
    };
    let file = crate::file::FileMeta {
        handle: handle(),
        share_name: "export".into(),
        kind: crate::file::FileKind::Directory,
        mode: u32::MAX,
        uid: 0,
        gid: 1,
        nlink: 2,
        size: u64::MAX,
        atime: Timestamp::MIN_VALID,
        mtime: Timestamp::from_micros(0),
        ctime: Timestamp::from_micros(1_700_000_000_000_000),
    };
    let node = NodeState {
        node_id: "node-1".into(),
        epoch: 300,
        clean_shutdown: true,
        lease_expires_at: Some(Timestamp::from_micros(1_700_000_000_000_000)),
        taken_over: Some(crate::node::Takeover {
            by: "node-2".into(),
            at: Timestamp::from_micros(-5),
        }),
    };
    let record = EpochRecord {
        epoch: 7,
        node_id: "node-1".into(),
        started_at: Timestamp::from_micros(-1),
    };
    let tagged = |tag: u8, bytes: Vec<u8>| [vec![tag], bytes].concat();
    let values = vec![
        tagged(0, codec::encode_lock(&lock).expect("encode")),
        tagged(1, codec::encode_file(&file).expect("encode")),
        tagged(2, codec::encode_epoch(u64::MAX).expect("encode")),
        tagged(3, vec![1, 1]),
        tagged(4, codec::encode_node(&node).expect("encode")),
        tagged(5, codec::encode_epoch_record(&record).expect("encode")),
        tagged(6, codec::encode_format_version(1).to_vec()),
        tagged(7, codec::encode_ext_value(b"inode 7")),
        // A Windows lock: value format 2 (format 1 and the flavour byte).
        tagged(
            0,
            codec::encode_lock(&PersistedLock {
                flavor: crate::LockFlavor::Windows,
                offset: u64::MAX,
                length: 1,
                ..lock.clone()
            })
            .expect("encode"),
        ),
    ];
    let keys = vec![
        tagged(0, keys::lock(lock_id()).to_vec()),
        tagged(1, keys::lock_index(b"client1", lock_id()).expect("key")),
        tagged(2, keys::lock_by_epoch(u64::MAX, lock_id())),
        tagged(3, keys::file_by_share("export", &handle()).expect("key")),
        tagged(4, keys::node("node-1")),
        tagged(5, keys::epoch_record(7)),
        tagged(6, keys::ext("dirents", b"\x00\x01/a.txt").expect("key")),
    ];
    (values, keys)
}
