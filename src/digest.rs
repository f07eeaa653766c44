//! Showing that two stores hold the same records ([`digest`]), whatever
//! their backends: for `fsmeta copy` and for operators comparing stores.

use std::fmt;

use sha2::{Digest as _, Sha256};
use tracing::{Instrument, field};

use crate::client::ClientRecord;
use crate::error::Result;
use crate::ext::ExtRecord;
use crate::file::FileMeta;
use crate::lock::PersistedLock;
use crate::node::{EpochRecord, NodeState};
use crate::open::{DelegationRecord, LeaseRecord, OpenRecord};
use crate::pages;
use crate::tx::{MetadataStore, MetadataTransaction};

/// Records per page when [`digest`] walks a store.
const DIGEST_PAGE: usize = 1024;

/// Counts and a SHA-256 over every record of a store: two stores with equal
/// digests hold the same files, locks, node states, epoch records, extension
/// records, client records and server epoch, whatever their backends.
///
/// The hash covers a fixed binary encoding of each record, fed in key order
/// (files by handle, locks by id, nodes by id, epoch records by epoch,
/// extension records by table and key, clients by id): every
/// field, integers big-endian, strings and handles length-prefixed, one tag
/// byte per record kind (a lock's flavour only when it is not POSIX). It does not depend on a backend's storage format or
/// on serde, so it stays comparable across backends and versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StoreDigest {
    /// Number of file records.
    pub files: u64,
    /// Number of lock records.
    pub locks: u64,
    /// Number of node states.
    pub nodes: u64,
    /// Number of epoch records.
    pub epoch_records: u64,
    /// Number of extension records (every table).
    pub ext_records: u64,
    /// Number of client records.
    pub clients: u64,
    /// Number of open, lease and delegation records.
    pub open_states: u64,
    /// Number of waiters.
    pub waiters: u64,
    /// The global server epoch.
    pub epoch: u64,
    /// SHA-256 of every record (see the type's docs).
    pub sha256: [u8; 32],
}

impl StoreDigest {
    /// The SHA-256 as lowercase hex.
    pub fn hex(&self) -> String {
        self.sha256.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for StoreDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} files, {} locks, {} nodes, {} epoch records, {} extension records, {} clients, epoch {}, sha256 {}",
            self.files,
            self.locks,
            self.nodes,
            self.epoch_records,
            self.ext_records,
            self.clients,
            self.epoch,
            self.hex()
        )?;
        if self.open_states > 0 {
            write!(f, ", {} open states", self.open_states)?;
        }
        Ok(())
    }
}

/// The [`StoreDigest`] of `store`, read in one transaction (a consistent snapshot).
pub async fn digest(store: &(impl MetadataStore + ?Sized)) -> Result<StoreDigest> {
    let span = tracing::info_span!(
        "digest",
        files = field::Empty,
        locks = field::Empty,
        ext_records = field::Empty,
        outcome = field::Empty,
    );
    let result = async {
        let mut tx = store.begin().await?;
        let result = digest_in(&mut *tx).await;
        // Read-only: ending it cannot change the outcome.
        let _ = tx.rollback().await;
        result
    }
    .instrument(span.clone())
    .await;
    if let Ok(digest) = &result {
        span.record("files", digest.files);
        span.record("locks", digest.locks);
        span.record("ext_records", digest.ext_records);
    }
    span.record("outcome", crate::obs::outcome(&result));
    result
}

/// The [`StoreDigest`] of what `tx` sees.
pub async fn digest_in(tx: &mut (dyn MetadataTransaction + '_)) -> Result<StoreDigest> {
    let mut hasher = RecordHasher::new();
    let epoch = tx.server_epoch().await?;
    hasher.u64(epoch);
    let nodes = tx.list_nodes().await?;
    for node in &nodes {
        hasher.node(node);
    }
    let records = tx.list_epoch_records().await?;
    for record in &records {
        hasher.epoch_record(record);
    }
    let mut files = 0;
    let mut pages = pages::files(DIGEST_PAGE);
    while let Some(page) = pages.next(tx).await? {
        for file in &page {
            hasher.file(file);
        }
        files += page.len() as u64;
    }
    let mut locks = 0;
    let mut pages = pages::locks(DIGEST_PAGE);
    while let Some(page) = pages.next(tx).await? {
        for lock in &page {
            hasher.lock(lock);
        }
        locks += page.len() as u64;
    }
    let mut ext_records = 0;
    for table in tx.ext_tables().await? {
        hasher.u8(b'T');
        hasher.bytes(table.as_bytes());
        let mut pages = pages::ext(&table, DIGEST_PAGE);
        while let Some(page) = pages.next(tx).await? {
            for record in &page {
                hasher.ext(record);
            }
            ext_records += page.len() as u64;
        }
    }
    let mut clients = 0;
    let mut pages = pages::clients(DIGEST_PAGE);
    while let Some(page) = pages.next(tx).await? {
        for client in &page {
            hasher.client(client);
        }
        clients += page.len() as u64;
    }
    // Opens, leases and delegations after everything else, each under its
    // own tag: a store without them keeps the digest older builds printed.
    let mut open_states = 0;
    let mut pages = pages::opens(DIGEST_PAGE);
    while let Some(page) = pages.next(tx).await? {
        page.iter().for_each(|o| hasher.open(o));
        open_states += page.len() as u64;
    }
    let mut pages = pages::leases(DIGEST_PAGE);
    while let Some(page) = pages.next(tx).await? {
        page.iter().for_each(|l| hasher.lease(l));
        open_states += page.len() as u64;
    }
    let mut pages = pages::delegations(DIGEST_PAGE);
    while let Some(page) = pages.next(tx).await? {
        page.iter().for_each(|d| hasher.delegation(d));
        open_states += page.len() as u64;
    }
    // After every other family, and only when there are some: a store
    // without waiters keeps the digest builds before waiters printed.
    let mut waiters = 0;
    let mut pages = pages::waiters(DIGEST_PAGE);
    while let Some(page) = pages.next(tx).await? {
        for waiter in &page {
            hasher.waiter(waiter);
        }
        waiters += page.len() as u64;
    }
    Ok(StoreDigest {
        clients,
        open_states,
        files,
        locks,
        ext_records,
        waiters,
        nodes: nodes.len() as u64,
        epoch_records: records.len() as u64,
        epoch,
        sha256: hasher.finish(),
    })
}

/// True when `store` holds nothing: no file, lock, node state, epoch
/// record or extension record, and server epoch 0 (a store nothing was ever written to).
pub async fn store_is_empty(store: &(impl MetadataStore + ?Sized)) -> Result<bool> {
    let mut tx = store.begin().await?;
    let empty = tx.server_epoch().await? == 0
        && tx.list_files_page(None, 1).await?.is_empty()
        && tx.list_locks_page(None, 1).await?.is_empty()
        && tx.list_nodes().await?.is_empty()
        && tx.list_epoch_records().await?.is_empty()
        && tx.ext_tables().await?.is_empty()
        && tx.list_clients_page(None, 1).await?.is_empty()
        && tx.list_opens_page(None, 1).await?.is_empty()
        && tx.list_leases_page(None, 1).await?.is_empty()
        && tx.list_delegations_page(None, 1).await?.is_empty()
        && tx.list_waiters_page(None, 1).await?.is_empty();
    let _ = tx.rollback().await;
    Ok(empty)
}

/// Feeds records into SHA-256 in the encoding [`StoreDigest`] documents.
struct RecordHasher(Sha256);

impl RecordHasher {
    fn new() -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"fsmeta store digest v1\0");
        RecordHasher(hasher)
    }

    fn u8(&mut self, v: u8) {
        self.0.update([v]);
    }

    fn u32(&mut self, v: u32) {
        self.0.update(v.to_be_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.0.update(v.to_be_bytes());
    }

    fn i64(&mut self, v: i64) {
        self.0.update(v.to_be_bytes());
    }

    fn bytes(&mut self, v: &[u8]) {
        // Every stored string and handle is far below 4 GiB (validation caps them).
        self.u64(v.len() as u64);
        self.0.update(v);
    }

    fn node(&mut self, node: &NodeState) {
        self.u8(b'N');
        self.bytes(node.node_id.as_bytes());
        self.u64(node.epoch);
        self.u8(u8::from(node.clean_shutdown));
        // Fed only when set, so digests of nodes without a lease or takeover
        // stay what they were before these fields existed.
        if let Some(until) = node.lease_expires_at {
            self.u8(b'L');
            self.i64(until.as_micros());
        }
        if let Some(takeover) = &node.taken_over {
            self.u8(b'T');
            self.bytes(takeover.by.as_bytes());
            self.i64(takeover.at.as_micros());
        }
    }

    fn epoch_record(&mut self, record: &EpochRecord) {
        self.u8(b'E');
        self.u64(record.epoch);
        self.bytes(record.node_id.as_bytes());
        self.i64(record.started_at.as_micros());
    }

    fn file(&mut self, file: &FileMeta) {
        self.u8(b'F');
        self.bytes(file.handle.as_bytes());
        self.bytes(file.share_name.as_bytes());
        self.u8(file.kind as u8);
        self.u32(file.mode);
        self.u32(file.uid);
        self.u32(file.gid);
        self.u32(file.nlink);
        self.u64(file.size);
        self.i64(file.atime.as_micros());
        self.i64(file.mtime.as_micros());
        self.i64(file.ctime.as_micros());
    }

    fn lock(&mut self, lock: &PersistedLock) {
        self.u8(b'L');
        self.0.update(lock.id.as_bytes());
        self.bytes(lock.share_name.as_bytes());
        self.bytes(lock.file_id.as_bytes());
        self.bytes(lock.owner_id.as_bytes());
        self.bytes(lock.client_id.as_bytes());
        self.u8(lock.lock_type as u8);
        self.u64(lock.offset);
        self.u64(lock.length);
        self.u8(lock.share_reservation as u8);
        self.i64(lock.acquired_at.as_micros());
        self.u64(lock.server_epoch);
        // Only a non-default flavour is fed (one byte after the record,
        // never a record tag), so a POSIX-only store keeps the digest that
        // builds before flavours printed for it.
        if lock.flavor != crate::lock::LockFlavor::Posix {
            self.u8(lock.flavor as u8);
        }
    }

    fn ext(&mut self, record: &ExtRecord) {
        self.u8(b'X');
        self.bytes(&record.key);
        self.bytes(&record.value);
    }

    /// A client record (after every extension record; a store without
    /// clients keeps the digest that builds before client records printed).
    fn client(&mut self, client: &ClientRecord) {
        self.u8(b'C');
        self.bytes(client.client_id.as_bytes());
        self.bytes(client.node_id.as_bytes());
        self.u8(client.protocol as u8);
        self.bytes(&client.owner);
        self.0.update(client.verifier);
        self.option(client.principal.as_deref());
        self.u64(client.epoch);
        self.u8(u8::from(client.reclaim_complete));
        self.i64(client.last_renewed.as_micros());
        self.u8(u8::from(client.expired));
        self.option(client.callback.as_deref().map(str::as_bytes));
    }

    /// An optional byte string: a presence byte, then the bytes.
    fn option(&mut self, v: Option<&[u8]>) {
        self.u8(u8::from(v.is_some()));
        if let Some(v) = v {
            self.bytes(v);
        }
    }

    fn open(&mut self, o: &OpenRecord) {
        self.u8(b'O');
        self.0.update(o.id.as_bytes());
        self.bytes(o.file.as_bytes());
        self.bytes(o.share_name.as_bytes());
        self.bytes(o.client_id.as_bytes());
        self.bytes(o.owner_id.as_bytes());
        self.u8(o.access.bits());
        self.u8(o.deny.bits());
        self.u8(o.protocol as u8);
        self.u8(o.durable.tag());
        self.u32(o.durable.timeout_ms());
        self.option(o.create_guid.as_ref().map(|g| g.as_bytes().as_slice()));
        self.option(o.app_instance_id.as_ref().map(|g| g.as_bytes().as_slice()));
        self.option(o.lease_key.as_ref().map(|k| k.as_slice()));
        let at = o.disconnected_at.map(|t| t.as_micros().to_be_bytes());
        self.option(at.as_ref().map(|b| b.as_slice()));
        self.bytes(&o.lock_sequences);
        self.u64(o.server_epoch);
        self.i64(o.opened_at.as_micros());
    }

    fn lease(&mut self, l: &LeaseRecord) {
        self.u8(b'S');
        self.0.update(l.id.as_bytes());
        self.0.update(l.lease_key);
        self.option(l.parent_lease_key.as_ref().map(|k| k.as_slice()));
        self.bytes(l.file.as_bytes());
        self.bytes(l.share_name.as_bytes());
        self.bytes(l.client_id.as_bytes());
        self.u8(l.state.bits());
        self.u32(u32::from(l.lease_epoch));
        self.u8(u8::from(l.breaking));
        self.u8(l.break_to.bits());
        let at = l.break_started_at.map(|t| t.as_micros().to_be_bytes());
        self.option(at.as_ref().map(|b| b.as_slice()));
        self.u8(u8::from(l.directory));
        self.u8(u8::from(l.oplock));
        self.u64(l.server_epoch);
    }

    fn delegation(&mut self, d: &DelegationRecord) {
        self.u8(b'D');
        self.0.update(d.id.as_bytes());
        self.bytes(d.file.as_bytes());
        self.bytes(d.share_name.as_bytes());
        self.bytes(d.client_id.as_bytes());
        self.u8(d.kind as u8);
        self.u8(u8::from(d.recalled));
        self.u8(u8::from(d.revoked));
        self.u32(d.notification_mask);
        self.u64(d.server_epoch);
        self.i64(d.granted_at.as_micros());
    }

    fn waiter(&mut self, waiter: &crate::waiter::Waiter) {
        self.u8(b'W');
        self.0.update(waiter.id.as_bytes());
        self.bytes(waiter.file_id.as_bytes());
        self.bytes(waiter.share_name.as_bytes());
        self.bytes(waiter.owner_id.as_bytes());
        self.bytes(waiter.client_id.as_bytes());
        self.bytes(waiter.node_id.as_bytes());
        self.u8(waiter.lock_type as u8);
        self.u64(waiter.offset);
        self.u64(waiter.length);
        self.u8(waiter.share_reservation as u8);
        self.u8(waiter.flavor as u8);
        self.u64(waiter.position);
        self.i64(waiter.since.as_micros());
        self.bytes(&waiter.context);
    }

    fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}
