//! Shared by `examples/bench.rs` and the criterion benches: deterministic
//! test data, and the raw-fjall baseline that writes what the library writes.
#![allow(dead_code)] // each user takes a different part

use std::path::Path;

use fjall::{
    KeyspaceCreateOptions, OptimisticTxDatabase, OptimisticTxKeyspace, OptimisticWriteTx,
    PersistMode, Readable,
};
use fsmeta::{
    FileHandle, FileKind, FileMeta, LockType, MetadataStore, MetadataStoreExt, PersistedLock,
    ShareReservation, Timestamp,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Res<T = ()> = std::result::Result<T, BoxError>;

// ---------------------------------------------------------------------------
// Data: deterministic locks. In a store of `n` locks (n a multiple of 10),
// every file, owner and client holds exactly 10 locks, each grouped differently.

pub fn mix(mut x: u64) -> u64 {
    // splitmix64
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A 32-byte file handle (a typical NFS handle size) for file number `g` of namespace `ns`.
pub fn handle(ns: u8, g: u64) -> FileHandle {
    let mut h = [0u8; 32];
    h[0] = ns;
    h[8..16].copy_from_slice(&g.to_be_bytes());
    h[16..24].copy_from_slice(&mix(g).to_be_bytes());
    h[24..32].copy_from_slice(b"fsmeta.b");
    FileHandle::new(h.to_vec()).expect("32 bytes is a valid handle")
}

pub fn owner(g: u64) -> String {
    format!("open-owner-{g:012}")
}

pub fn client(g: u64) -> String {
    format!("nfs4-client-{g:010}.example.net")
}

/// Lock number `i` of a store of `n` locks.
pub fn store_lock(n: u64, i: u64) -> PersistedLock {
    let groups = n / 10;
    let file_group = i / 10;
    let owner_group = i % groups;
    // 7919 is prime, so i ↦ i·7919 mod n is a bijection of 0..n (n = 10^k · 5^j).
    let client_group = (i.wrapping_mul(7919) % n) / 10;
    PersistedLock {
        id: Uuid::from_u128(((mix(i) as u128) << 64) | i as u128),
        share_name: format!("export{}", i % 4),
        file_id: handle(0, file_group),
        owner_id: owner(owner_group),
        client_id: client(client_group),
        lock_type: if i.is_multiple_of(3) {
            LockType::Exclusive
        } else {
            LockType::Shared
        },
        offset: (i % 10) * 4096,
        length: 4096,
        share_reservation: ShareReservation::None,
        acquired_at: Timestamp::from_micros(1_764_000_000_000_000 + i as i64),
        server_epoch: 1,
        flavor: fsmeta::LockFlavor::Posix,
    }
}

/// Lock `j` of the extra client `name` (P5, P4, P1): ids and files of their own.
pub fn extra_lock(ns: u8, name: &str, tag: u64, j: u64) -> PersistedLock {
    let seq = (tag << 32) | j;
    PersistedLock {
        id: Uuid::from_u128(((mix(seq ^ 0xabcd) as u128) << 64) | (1u128 << 63) | seq as u128),
        share_name: "export0".to_owned(),
        file_id: handle(ns, seq / 10),
        owner_id: format!("{name}-owner-{:06}", j % 97),
        client_id: name.to_owned(),
        lock_type: LockType::Shared,
        offset: (j % 10) * 4096,
        length: 4096,
        share_reservation: ShareReservation::None,
        acquired_at: Timestamp::from_micros(1_764_000_000_000_000 + j as i64),
        server_epoch: 1,
        flavor: fsmeta::LockFlavor::Posix,
    }
}

pub fn file_meta(ns: u8, g: u64) -> FileMeta {
    let t = Timestamp::from_micros(1_764_000_000_000_000 + g as i64);
    FileMeta {
        handle: handle(ns, g),
        share_name: "export0".to_owned(),
        kind: FileKind::Regular,
        mode: 0o100644,
        uid: 1000,
        gid: 1000,
        nlink: 1,
        size: g * 512,
        atime: t,
        mtime: t,
        ctime: t,
    }
}

/// What one P1/P2 transaction writes: a file and a lock on it.
pub fn write_pair(ns: u8, k: u64) -> (FileMeta, PersistedLock) {
    let file = file_meta(ns, k);
    let mut lock = extra_lock(ns, &client(k % 1000), u64::from(ns), k);
    lock.file_id = file.handle.clone();
    (file, lock)
}

/// The library side of P1/P2 and the write benches: `file` and `lock` in
/// one `transact` (retried on conflicts).
pub async fn transact_write_pair(
    store: &(impl MetadataStore + ?Sized),
    file: &FileMeta,
    lock: &PersistedLock,
) -> fsmeta::Result<()> {
    store
        .transact(|tx| {
            Box::pin(async move {
                tx.put_file(file).await?;
                tx.put_lock(lock).await
            })
        })
        .await
}

// ---------------------------------------------------------------------------
// Raw fjall: the same keys and values the library writes (keys.rs, codec.rs),
// replicated here from the documented layout.

/// `len16(component)`.
pub fn raw_prefix(component: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + component.len() + 16);
    key.extend_from_slice(&(component.len() as u16).to_be_bytes());
    key.extend_from_slice(component);
    key
}

pub fn raw_index(component: &[u8], id: Uuid) -> Vec<u8> {
    let mut key = raw_prefix(component);
    key.extend_from_slice(id.as_bytes());
    key
}

/// A lock value as stored (after the version byte), the strings and the
/// handle borrowed both ways: written by the raw loads, and read in place by
/// the P3 baseline, which copies each field once into a [`RawLockOwned`] —
/// the quickest owned lock a hand-written reader gets from these bytes (an
/// owned serde struct fills the handle byte by byte). Postcard writes a
/// `Vec<u8>` as a length and its bytes, which is what a borrowed `&[u8]`
/// reads, so these are the library's bytes.
#[derive(Serialize, Deserialize)]
struct RawLockV1<'a> {
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

#[derive(Serialize)]
struct RawFileV1<'a> {
    share_name: &'a str,
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

/// A lock value as stored (after the version byte), decoded by hand.
#[derive(Deserialize)]
pub struct RawLockOwned {
    share_name: String,
    file_id: Vec<u8>,
    owner_id: String,
    client_id: String,
    _lock_type: u8,
    _offset: u64,
    _length: u64,
    _share_reservation: u8,
    _acquired_at: i64,
    server_epoch: u64,
}

/// How the raw baseline decodes a lock value into a [`RawLockOwned`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decode {
    /// Through [`RawLockV1`], each field copied once (the library's way).
    InPlace,
    /// Straight into the owned struct by its serde derive (the handle
    /// filled byte by byte): the baseline of sessions 7 to 9.
    Owned,
}

impl RawLockV1<'_> {
    fn to_owned_lock(&self) -> RawLockOwned {
        RawLockOwned {
            share_name: self.share_name.to_owned(),
            file_id: self.file_id.to_vec(),
            owner_id: self.owner_id.to_owned(),
            client_id: self.client_id.to_owned(),
            _lock_type: self.lock_type,
            _offset: self.offset,
            _length: self.length,
            _share_reservation: self.share_reservation,
            _acquired_at: self.acquired_at,
            server_epoch: self.server_epoch,
        }
    }
}

pub fn raw_encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_extend(value, vec![1u8]).expect("postcard encodes into a Vec")
}

pub struct RawFjall {
    pub db: OptimisticTxDatabase,
    pub files: OptimisticTxKeyspace,
    pub files_by_share: OptimisticTxKeyspace,
    pub locks: OptimisticTxKeyspace,
    pub by_file: OptimisticTxKeyspace,
    pub by_owner: OptimisticTxKeyspace,
    pub by_client: OptimisticTxKeyspace,
    pub by_share: OptimisticTxKeyspace,
    pub by_epoch: OptimisticTxKeyspace,
    pub mode: PersistMode,
}

impl RawFjall {
    /// `delete_locks_by_client` by hand, in one transaction: scan the client's
    /// index prefix, read and decode each record (its other index keys are in
    /// it), remove the record and its five index entries, commit.
    pub fn delete_client(&self, client_id: &str) -> Res<usize> {
        let mut tx = self.db.write_tx()?.durability(Some(self.mode));
        let prefix = raw_prefix(client_id.as_bytes());
        let keys = tx
            .prefix(&self.by_client, &prefix)
            .map(|guard| guard.key())
            .collect::<Result<Vec<_>, _>>()?;
        for key in &keys {
            let id = &key[prefix.len()..];
            let value = tx
                .get(&self.locks, id)?
                .ok_or("index entry without record")?;
            let lock: RawLockOwned = postcard::from_bytes(&value[1..])?;
            let id = Uuid::from_slice(id)?;
            let mut epoch_key = lock.server_epoch.to_be_bytes().to_vec();
            epoch_key.extend_from_slice(id.as_bytes());
            tx.remove(&self.by_file, raw_index(&lock.file_id, id));
            tx.remove(&self.by_owner, raw_index(lock.owner_id.as_bytes(), id));
            tx.remove(&self.by_client, raw_index(lock.client_id.as_bytes(), id));
            tx.remove(&self.by_share, raw_index(lock.share_name.as_bytes(), id));
            tx.remove(&self.by_epoch, epoch_key);
            tx.remove(&self.locks, id.as_bytes().as_slice());
        }
        tx.commit()?.map_err(|_| "conflict")?;
        Ok(keys.len())
    }

    /// A lock index query by hand, as `list_locks` runs it: a prefix scan of
    /// the index in a write transaction, then a point read of each record.
    /// Returns how many records it read.
    pub fn query(&self, index: &OptimisticTxKeyspace, component: &[u8]) -> Res<usize> {
        let tx = self.db.write_tx()?;
        let found = self.query_in(&tx, index, component, Decode::InPlace)?.len();
        tx.rollback();
        Ok(found)
    }

    /// [`RawFjall::query`] in `tx`: the index prefix, then each record read
    /// and decoded as `decode` says, the locks returned owned (a server
    /// needs the locks, not their bytes, and keeps them while it uses them,
    /// as `list_locks`'s caller does).
    pub fn query_in(
        &self,
        tx: &OptimisticWriteTx,
        index: &OptimisticTxKeyspace,
        component: &[u8],
        decode: Decode,
    ) -> Res<Vec<RawLockOwned>> {
        let prefix = raw_prefix(component);
        let keys = tx
            .prefix(index, &prefix)
            .map(|guard| guard.key())
            .collect::<Result<Vec<_>, _>>()?;
        let mut locks = Vec::with_capacity(keys.len());
        for key in keys {
            let value = tx
                .get(&self.locks, &key[prefix.len()..])?
                .ok_or("index entry without record")?;
            let body = &value[1..];
            locks.push(match decode {
                Decode::InPlace => postcard::from_bytes::<RawLockV1<'_>>(body)?.to_owned_lock(),
                Decode::Owned => postcard::from_bytes(body)?,
            });
        }
        Ok(locks)
    }

    pub fn open(path: &Path, mode: PersistMode) -> Res<RawFjall> {
        Self::over(OptimisticTxDatabase::builder(path).open()?, "", mode)
    }

    /// The library's keyspaces in `db`, their names behind `prefix` (empty
    /// for a store of its own, `fsmeta_` for one opened with
    /// `FjallStore::from_database`).
    pub fn over(db: OptimisticTxDatabase, prefix: &str, mode: PersistMode) -> Res<RawFjall> {
        let ks =
            |name: &str| db.keyspace(&format!("{prefix}{name}"), KeyspaceCreateOptions::default);
        Ok(RawFjall {
            files: ks("files")?,
            files_by_share: ks("files_by_share")?,
            locks: ks("locks")?,
            by_file: ks("locks_by_file")?,
            by_owner: ks("locks_by_owner")?,
            by_client: ks("locks_by_client")?,
            by_share: ks("locks_by_share")?,
            by_epoch: ks("locks_by_epoch")?,
            db,
            mode,
        })
    }

    /// What `transact(put_file + put_lock)` does, by hand: read the old file
    /// and lock (a correct upsert must drop their stale index entries), write
    /// both records and their index entries, commit.
    pub fn put_file_and_lock(&self, file: &FileMeta, lock: &PersistedLock) -> Res {
        loop {
            let mut tx = self.db.write_tx()?.durability(Some(self.mode));
            let file_value = raw_encode(&RawFileV1 {
                share_name: &file.share_name,
                kind: file.kind as u8,
                mode: file.mode,
                uid: file.uid,
                gid: file.gid,
                nlink: file.nlink,
                size: file.size,
                atime: file.atime.as_micros(),
                mtime: file.mtime.as_micros(),
                ctime: file.ctime.as_micros(),
            });
            let mut share_key = raw_prefix(file.share_name.as_bytes());
            share_key.extend_from_slice(file.handle.as_bytes());
            if tx.get(&self.files, file.handle.as_bytes())?.is_some() {
                // (a rewrite would decode it and drop a changed share's entry)
            }
            tx.insert(&self.files, file.handle.as_bytes(), file_value);
            tx.insert(&self.files_by_share, share_key, b"".as_slice());

            let lock_value = raw_encode(&RawLockV1 {
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
            });
            let id = lock.id;
            let mut epoch_key = lock.server_epoch.to_be_bytes().to_vec();
            epoch_key.extend_from_slice(id.as_bytes());
            if tx.get(&self.locks, id.as_bytes())?.is_some() {
                // (a rewrite would decode it and drop its stale index entries)
            }
            tx.insert(&self.locks, id.as_bytes().as_slice(), lock_value);
            tx.insert(
                &self.by_file,
                raw_index(lock.file_id.as_bytes(), id),
                b"".as_slice(),
            );
            tx.insert(
                &self.by_owner,
                raw_index(lock.owner_id.as_bytes(), id),
                b"".as_slice(),
            );
            tx.insert(
                &self.by_client,
                raw_index(lock.client_id.as_bytes(), id),
                b"".as_slice(),
            );
            tx.insert(
                &self.by_share,
                raw_index(lock.share_name.as_bytes(), id),
                b"".as_slice(),
            );
            tx.insert(&self.by_epoch, epoch_key, b"".as_slice());
            match tx.commit()? {
                Ok(()) => return Ok(()),
                Err(_conflict) => continue,
            }
        }
    }
}
