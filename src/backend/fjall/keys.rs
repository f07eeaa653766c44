//! Every key the fjall backend writes, in one place.
//!
//! Notation: `len16(x)` is the byte length of `x` as a big-endian `u16`
//! followed by the bytes of `x`, `len8(x)` the same with one length byte;
//! `id16` is a lock id's 16 bytes (big-endian, so byte order is [`Uuid`]
//! order); `be64` is a big-endian `u64`.
//!
//! ```text
//! keyspace          key                                         value
//! ----------------  ------------------------------------------  -----------------------------
//! files             handle (1..=128 raw bytes)                  codec: file record
//! files_by_share    len16(share_name) | handle                  empty
//! locks             id16                                        codec: lock record
//! locks_by_file     len16(file handle) | id16                   empty
//! locks_by_owner    len16(owner_id)    | id16                   empty
//! locks_by_client   len16(client_id)   | id16                   empty
//! locks_by_share    len16(share_name)  | id16                   empty
//! locks_by_epoch    be64(server_epoch) | id16                   empty
//! meta              "format_version"                            u32, big-endian, raw
//! meta              "server_epoch"                              codec: u64 (the global counter)
//! meta              "node/" | node_id (1..=1024 bytes)          codec: node epoch + clean flag
//! meta              "epoch/" | be64(epoch)                      codec: node id + start time
//! (meta             "clean_shutdown"                            codec: bool; only in stores written before node state: moved to node default on open)
//! ext               len8(table) | key (1..=1024 raw bytes)      format byte 1 | the value's raw bytes
//! clients           client_id                                   codec: client record
//! clients_by_node   len16(node_id) | client_id                  empty
//! clients_by_owner  len16(owner)   | client_id                  empty
//! clients_by_epoch  be64(epoch)    | client_id                  empty
//! opens, leases, delegations  id16                              codec: open / lease / delegation record
//! opens_by_{file,client,share,create_guid,app_instance}, leases_by_{file,client,key},
//!   delegations_by_{file,client}   len16(value) | id16 (absent GUID: empty value)   empty
//! opens_by_disconnect  00 | id16, or 01 | be64(disconnected_at ^ 2^63) | id16        empty
//! waiters           id16 (the waiter's id)                      codec: waiter record
//! waiters_by_file   len16(file handle) | be64(position) | id16  empty
//! waiters_by_owner  len16(owner_id) | len16(client_id) | id16   empty
//! waiters_by_client len16(client_id) | id16                     empty
//! waiters_by_node   len16(node_id)   | id16                     empty
//! ```
//!
//! These are the names [`FjallStore::open`](super::FjallStore::open) uses;
//! a store opened inside a host's database with
//! [`FjallStore::from_database`](super::FjallStore::from_database) has the
//! same keyspaces with [`HOSTED_PREFIX`](super::HOSTED_PREFIX) in front
//! (`fsmeta_files`, …, `fsmeta_ext`), and the same keys in them.
//!
//! Why it is shaped like this:
//!
//! - The length prefix makes every variable component self-delimiting: the
//!   scan prefix for client `client1` is `00 07 "client1"`, which no key of
//!   `client10` (`00 08 "client10" …`) starts with, and file `[1,2]`
//!   (`00 02 01 02`) never reaches file `[1,2,3]` (`00 03 01 02 03`). No
//!   separator byte is needed, so components may contain any byte (`:`, `/`,
//!   spaces, non-ASCII). Every validated component fits: the longest is 1024 bytes.
//! - The lock id comes last, so a prefix scan yields one value's locks in id
//!   order, which is the order `list_locks` promises; the handle comes last in
//!   `files_by_share`, so `list_files` is in handle order for free.
//! - `locks_by_epoch` starts with the big-endian epoch, so "granted before
//!   epoch E" is the key range `..be64(E)`.
//! - `meta` holds singletons under ASCII names and two small record kinds
//!   under ASCII prefixes that no name starts with. A node id is the last
//!   component of its key, so it needs no length prefix, and a scan of
//!   `node/` yields nodes in id order (UTF-8 byte order is `str` order);
//!   `epoch/` + big-endian epoch yields epoch records in epoch order. The
//!   `node/` scan is recorded as a range read, so a node added concurrently
//!   is a conflict, like a lock added under a scanned index prefix.
//! - `ext` holds every extension table in one keyspace, because fjall
//!   keyspaces are created when the store opens and table names arrive at
//!   run time. The table comes first, length-prefixed (names are 1..=64
//!   bytes of `[a-z0-9_]`), so a table is one contiguous key range: table
//!   `dir` (`03 "dir"`) never reaches into `dirents` (`07 "dirents"`), and a
//!   scan of a table's prefix or range is one range read, which fjall's
//!   conflict check sees whole (phantoms included). The record key is the
//!   last component, so it needs no length and keeps bytewise order. The
//!   listing of tables jumps from one table's first key to the next's with
//!   one short range read per table; tables sort by (length, name) on disk,
//!   so it sorts the names it found.
//! - `format_version` is deliberately not behind the value codec: every
//!   future version must be able to read it to refuse a store it cannot read.

use uuid::Uuid;

use crate::error::{Error, Result};
use crate::file::FileHandle;

/// Names of the keyspaces, as they appear on disk.
pub(super) mod names {
    pub const FILES: &str = "files";
    pub const FILES_BY_SHARE: &str = "files_by_share";
    pub const LOCKS: &str = "locks";
    pub const LOCKS_BY_FILE: &str = "locks_by_file";
    pub const LOCKS_BY_OWNER: &str = "locks_by_owner";
    pub const LOCKS_BY_CLIENT: &str = "locks_by_client";
    pub const LOCKS_BY_SHARE: &str = "locks_by_share";
    pub const LOCKS_BY_EPOCH: &str = "locks_by_epoch";
    pub const META: &str = "meta";
    pub const EXT: &str = "ext";
    pub const CLIENTS: &str = "clients";
    pub const CLIENTS_BY_NODE: &str = "clients_by_node";
    pub const CLIENTS_BY_OWNER: &str = "clients_by_owner";
    pub const CLIENTS_BY_EPOCH: &str = "clients_by_epoch";
    pub const OPENS: &str = "opens";
    pub const OPENS_BY_FILE: &str = "opens_by_file";
    pub const OPENS_BY_CLIENT: &str = "opens_by_client";
    pub const OPENS_BY_SHARE: &str = "opens_by_share";
    pub const OPENS_BY_CREATE_GUID: &str = "opens_by_create_guid";
    pub const OPENS_BY_APP_INSTANCE: &str = "opens_by_app_instance";
    pub const OPENS_BY_DISCONNECT: &str = "opens_by_disconnect";
    pub const LEASES: &str = "leases";
    pub const LEASES_BY_FILE: &str = "leases_by_file";
    pub const LEASES_BY_CLIENT: &str = "leases_by_client";
    pub const LEASES_BY_KEY: &str = "leases_by_key";
    pub const DELEGATIONS: &str = "delegations";
    pub const DELEGATIONS_BY_FILE: &str = "delegations_by_file";
    pub const DELEGATIONS_BY_CLIENT: &str = "delegations_by_client";
    pub const WAITERS: &str = "waiters";
    pub const WAITERS_BY_FILE: &str = "waiters_by_file";
    pub const WAITERS_BY_OWNER: &str = "waiters_by_owner";
    pub const WAITERS_BY_CLIENT: &str = "waiters_by_client";
    pub const WAITERS_BY_NODE: &str = "waiters_by_node";
}

/// `meta` key holding the store format version (raw big-endian `u32`).
pub(super) const META_FORMAT_VERSION: &[u8] = b"format_version";
/// `meta` key of the clean-shutdown flag as builds before node state wrote it
/// (codec: `bool`). Opening such a store moves it to node `default`.
pub(super) const META_LEGACY_CLEAN_SHUTDOWN: &[u8] = b"clean_shutdown";
/// `meta` key holding the server epoch.
pub(super) const META_SERVER_EPOCH: &[u8] = b"server_epoch";
/// Prefix of the `meta` keys holding node states.
pub(super) const META_NODE_PREFIX: &[u8] = b"node/";
/// Prefix of the `meta` keys holding epoch records.
pub(super) const META_EPOCH_PREFIX: &[u8] = b"epoch/";

/// Length of a lock id inside a key.
const ID_LEN: usize = 16;

/// `len16(component)`: the scan prefix of one index value.
pub(super) fn prefix(component: &[u8]) -> Result<Vec<u8>> {
    // Validation caps every component far below u16::MAX; this guards the
    // encoding itself, so a future caller that skips validation gets an error,
    // not a key that aliases another.
    let len = u16::try_from(component.len()).map_err(|_| {
        Error::Invalid(format!(
            "key component of {} bytes is too long",
            component.len()
        ))
    })?;
    let mut key = Vec::with_capacity(2 + component.len() + ID_LEN);
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(component);
    Ok(key)
}

/// `len16(component) | id16`: an entry of `locks_by_file/owner/client/share`.
pub(super) fn lock_index(component: &[u8], id: Uuid) -> Result<Vec<u8>> {
    let mut key = prefix(component)?;
    key.extend_from_slice(id.as_bytes());
    Ok(key)
}

/// `id16`: a record of `locks`.
pub(super) fn lock(id: Uuid) -> [u8; ID_LEN] {
    *id.as_bytes()
}

/// `be64(epoch) | id16`: an entry of `locks_by_epoch`.
pub(super) fn lock_by_epoch(epoch: u64, id: Uuid) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + ID_LEN);
    key.extend_from_slice(&epoch.to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

/// The exclusive upper bound of "epoch below `epoch`" in `locks_by_epoch`.
pub(super) fn epoch_bound(epoch: u64) -> [u8; 8] {
    epoch.to_be_bytes()
}

/// `len16(share) | handle`: an entry of `files_by_share`.
pub(super) fn file_by_share(share: &str, handle: &FileHandle) -> Result<Vec<u8>> {
    let mut key = prefix(share.as_bytes())?;
    key.extend_from_slice(handle.as_bytes());
    Ok(key)
}

/// `"node/" | node_id`: a node's state in `meta`.
pub(super) fn node(node_id: &str) -> Vec<u8> {
    [META_NODE_PREFIX, node_id.as_bytes()].concat()
}

/// The node id of a `meta` key under [`META_NODE_PREFIX`].
pub(super) fn node_id(key: &[u8]) -> Result<String> {
    key.strip_prefix(META_NODE_PREFIX)
        .and_then(|id| std::str::from_utf8(id).ok())
        .map(str::to_owned)
        .ok_or_else(|| {
            corrupt_key(
                names::META,
                key,
                "expected \"node/\" followed by a UTF-8 node id",
            )
        })
}

/// `"epoch/" | be64(epoch)`: an epoch record in `meta`.
pub(super) fn epoch_record(epoch: u64) -> Vec<u8> {
    [META_EPOCH_PREFIX, &epoch.to_be_bytes()].concat()
}

/// The epoch of a `meta` key under [`META_EPOCH_PREFIX`].
pub(super) fn epoch_of_record(key: &[u8]) -> Result<u64> {
    key.strip_prefix(META_EPOCH_PREFIX)
        .and_then(|be| <[u8; 8]>::try_from(be).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| {
            corrupt_key(
                names::META,
                key,
                "expected \"epoch/\" followed by an 8-byte epoch",
            )
        })
}

/// A `len16(component) | rest` key split into component and rest, if well
/// formed (`rest` not empty): an entry of `files_by_share` or of a
/// `len16`-keyed lock index.
pub(super) fn split_len16(key: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = key.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_be_bytes(*len));
    (rest.len() > len).then(|| rest.split_at(len))
}

/// The record key a `len16(component) | record key` index entry names.
pub(super) fn after_len16(key: &[u8]) -> Option<&[u8]> {
    split_len16(key).map(|(_, rest)| rest)
}

/// The record key a `be64(value) | record key` index entry names.
pub(super) fn after_be64(key: &[u8]) -> Option<&[u8]> {
    key.get(8..).filter(|rest| !rest.is_empty())
}

/// The smallest key above every key that starts with `prefix` (the exclusive
/// end of a prefix scan); `None` when there is none (empty or all `0xff`).
pub(super) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|&b| b != 0xff)?;
    let mut end = prefix[..=last].to_vec();
    end[last] += 1;
    Some(end)
}

/// The lock id at the end of an index key that starts with `prefix_len`
/// bytes of (already matched) prefix.
pub(super) fn lock_id_after(keyspace: &str, key: &[u8], prefix_len: usize) -> Result<Uuid> {
    match key.get(prefix_len..).map(<[u8; ID_LEN]>::try_from) {
        Some(Ok(id)) => Ok(Uuid::from_bytes(id)),
        _ => Err(corrupt_key(
            keyspace,
            key,
            "expected the prefix followed by a 16-byte lock id",
        )),
    }
}

/// The lock id of a `locks` key.
pub(super) fn lock_id(key: &[u8]) -> Result<Uuid> {
    lock_id_after(names::LOCKS, key, 0)
}

/// `len8(table)`: the first bytes of every key of one extension table.
pub(super) fn ext_table(table: &str) -> Result<Vec<u8>> {
    // Validation caps table names at 64 bytes; this guards the encoding.
    let len = u8::try_from(table.len())
        .map_err(|_| Error::Invalid(format!("table: {} bytes is too long", table.len())))?;
    let mut key = Vec::with_capacity(1 + table.len() + crate::ext::MAX_EXT_KEY_LEN);
    key.push(len);
    key.extend_from_slice(table.as_bytes());
    Ok(key)
}

/// `len8(table) | key`: a record of `ext`.
pub(super) fn ext(table: &str, key: &[u8]) -> Result<Vec<u8>> {
    let mut raw = ext_table(table)?;
    raw.extend_from_slice(key);
    Ok(raw)
}

/// The table and record key of an `ext` key, if well formed: a valid table
/// name and a key of 1..=1024 bytes.
pub(super) fn split_ext(raw: &[u8]) -> Option<(&str, &[u8])> {
    let (&len, rest) = raw.split_first()?;
    let len = usize::from(len);
    if rest.len() <= len {
        return None;
    }
    let (table, key) = rest.split_at(len);
    let table = std::str::from_utf8(table).ok()?;
    crate::validate::ext_address(table, key).ok()?;
    Some((table, key))
}

/// Human-readable location of a key, for error messages.
pub(super) fn describe(keyspace: &str, key: &[u8]) -> String {
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    format!("fjall keyspace `{keyspace}`, key 0x{hex}")
}

/// [`Error::Corrupt`] naming the keyspace and key.
pub(super) fn corrupt_key(keyspace: &str, key: &[u8], why: impl std::fmt::Display) -> Error {
    Error::Corrupt(format!("{}: {why}", describe(keyspace, key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_of_prefix_ids_do_not_nest() {
        let id = Uuid::from_u128(7);
        let k10 = lock_index(b"client10", id).expect("key");
        assert!(!k10.starts_with(&prefix(b"client1").expect("prefix")));
        let f123 = lock_index(&[1, 2, 3], id).expect("key");
        assert!(!f123.starts_with(&prefix(&[1, 2]).expect("prefix")));
        assert_eq!(lock_id_after("t", &k10, 10).expect("id"), id);
    }

    #[test]
    fn meta_record_keys_round_trip_in_order() {
        assert_eq!(node_id(&node("n:1/ü")).expect("node id"), "n:1/ü");
        assert!(node("aa") < node("b"), "node keys sort like ids");
        assert_eq!(
            epoch_of_record(&epoch_record(u64::MAX)).expect("epoch"),
            u64::MAX
        );
        assert!(epoch_record(255) < epoch_record(256));
        for name in [META_FORMAT_VERSION, META_SERVER_EPOCH] {
            assert!(!name.starts_with(META_NODE_PREFIX) && !name.starts_with(META_EPOCH_PREFIX));
        }
    }

    #[test]
    fn ext_keys_keep_tables_apart_and_round_trip() {
        let dir = ext("dir", b"k").expect("key");
        let dirents = ext("dirents", b"k").expect("key");
        let dir_prefix = ext_table("dir").expect("prefix");
        assert!(dir.starts_with(&dir_prefix) && !dirents.starts_with(&dir_prefix));
        assert_eq!(split_ext(&dir), Some(("dir", &b"k"[..])));
        let every_byte: Vec<u8> = (0..=255).collect();
        let raw = ext("t", &every_byte).expect("key");
        assert_eq!(split_ext(&raw), Some(("t", every_byte.as_slice())));
        // Record keys of one table keep bytewise order.
        assert!(ext("t", &[1, 2]).expect("key") < ext("t", &[1, 2, 0]).expect("key"));
        assert!(ext("t", &[1, 2, 0xff]).expect("key") < ext("t", &[1, 3]).expect("key"));
        for bad in [
            &b""[..],
            b"\x03dir",       // no record key
            b"\x00k",         // empty table name
            b"\x03Dir k",     // not [a-z0-9_]
            b"\x09short",     // length past the end
            b"\x02\xff\xfek", // not UTF-8
        ] {
            assert_eq!(split_ext(bad), None, "{bad:?}");
        }
        let long_key = [&ext_table("t").expect("prefix")[..], &[0; 1025]].concat();
        assert_eq!(split_ext(&long_key), None);
        assert!(matches!(
            ext_table(&"t".repeat(256)),
            Err(Error::Invalid(_))
        ));
    }

    #[test]
    fn epoch_keys_sort_numerically() {
        let a = lock_by_epoch(255, Uuid::max());
        let b = lock_by_epoch(256, Uuid::nil());
        assert!(a < b);
        assert!(a.as_slice() < epoch_bound(256).as_slice());
        assert!(b.as_slice() >= epoch_bound(256).as_slice());
    }

    #[test]
    fn malformed_index_keys_are_corrupt() {
        assert!(matches!(
            lock_id_after("t", &[0, 1, 9, 1, 2], 3),
            Err(Error::Corrupt(_))
        ));
        assert_eq!(after_len16(&[0, 1, b'a']), None);
        assert_eq!(after_be64(&[0; 8]), None);
        assert_eq!(prefix_end(b"node/"), Some(b"node0".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff"), None);
        assert!(matches!(node_id(b"node/\xff"), Err(Error::Corrupt(_))));
        assert_eq!(split_len16(b"\x00\x01sH"), Some((&b"s"[..], &b"H"[..])));
        assert_eq!(split_len16(b"\x00\x01s"), None);
        assert_eq!(split_len16(b"\x00"), None);
        assert!(matches!(
            epoch_of_record(b"epoch/\x01"),
            Err(Error::Corrupt(_))
        ));
        let too_long = vec![b'x'; usize::from(u16::MAX) + 1];
        assert!(matches!(prefix(&too_long), Err(Error::Invalid(_))));
    }
}
