//! Opening a store: fsmeta's keyspaces in a database (its own, or the
//! host's behind [`HOSTED_PREFIX`](super::HOSTED_PREFIX)), the format check, and bringing a new or
//! older store up to date.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fjall::{
    KeyspaceCreateOptions, OptimisticTxDatabase, OptimisticTxKeyspace, OptimisticWriteTx, Readable,
};

use super::keys::{self, names};
use super::{Durability, FORMAT_VERSION, FjallStore, Inner, Keyspaces, codec, commit};
use crate::error::{Error, Result};

impl FjallStore {
    /// Opens fsmeta's keyspaces (names behind `prefix`) in `db`, checks the
    /// format and brings a new or old store up to date. `path` is the
    /// database's directory when the caller knows it.
    pub(super) fn start(
        db: OptimisticTxDatabase,
        path: Option<PathBuf>,
        prefix: &'static str,
        durability: Durability,
    ) -> Result<Self> {
        let open = |name: &str| {
            let full = format!("{prefix}{name}");
            db.keyspace(&full, KeyspaceCreateOptions::default)
                .map_err(|e| {
                    let place = path.as_ref().map_or_else(
                        || "the host's database".to_owned(),
                        |p| format!("fjall store {}", p.display()),
                    );
                    Error::backend(format!("opening keyspace `{full}` of {place}"), e)
                })
        };
        // `meta` first, and the format checked before any other keyspace is
        // created, so that opening a newer store does not modify it.
        let meta = open(names::META)?;
        let found = check_format(&db, &meta)?;
        let ks = Keyspaces {
            files: open(names::FILES)?,
            files_by_share: open(names::FILES_BY_SHARE)?,
            locks: open(names::LOCKS)?,
            locks_by_file: open(names::LOCKS_BY_FILE)?,
            locks_by_owner: open(names::LOCKS_BY_OWNER)?,
            locks_by_client: open(names::LOCKS_BY_CLIENT)?,
            locks_by_share: open(names::LOCKS_BY_SHARE)?,
            locks_by_epoch: open(names::LOCKS_BY_EPOCH)?,
            // Stores written before extension tables existed have no `ext`:
            // opening one creates it, empty (same format version: nothing
            // older builds read has changed).
            ext: open(names::EXT)?,
            // Likewise the client keyspaces (client records came later still).
            clients: open(names::CLIENTS)?,
            clients_by_node: open(names::CLIENTS_BY_NODE)?,
            clients_by_owner: open(names::CLIENTS_BY_OWNER)?,
            clients_by_epoch: open(names::CLIENTS_BY_EPOCH)?,
            // Opens, leases and delegations (issue 18): created empty in an
            // older store, like `ext`; nothing older builds read changed.
            opens: open(names::OPENS)?,
            opens_by_file: open(names::OPENS_BY_FILE)?,
            opens_by_client: open(names::OPENS_BY_CLIENT)?,
            opens_by_share: open(names::OPENS_BY_SHARE)?,
            opens_by_create_guid: open(names::OPENS_BY_CREATE_GUID)?,
            opens_by_app_instance: open(names::OPENS_BY_APP_INSTANCE)?,
            opens_by_disconnect: open(names::OPENS_BY_DISCONNECT)?,
            leases: open(names::LEASES)?,
            leases_by_file: open(names::LEASES_BY_FILE)?,
            leases_by_client: open(names::LEASES_BY_CLIENT)?,
            leases_by_key: open(names::LEASES_BY_KEY)?,
            delegations: open(names::DELEGATIONS)?,
            delegations_by_file: open(names::DELEGATIONS_BY_FILE)?,
            delegations_by_client: open(names::DELEGATIONS_BY_CLIENT)?,
            // Likewise the waiter keyspaces (created empty on older stores).
            waiters: open(names::WAITERS)?,
            waiters_by_file: open(names::WAITERS_BY_FILE)?,
            waiters_by_owner: open(names::WAITERS_BY_OWNER)?,
            waiters_by_client: open(names::WAITERS_BY_CLIENT)?,
            waiters_by_node: open(names::WAITERS_BY_NODE)?,
            meta,
        };
        // A keyspace lives in `<database>/keyspaces/<id>`.
        let path = path.unwrap_or_else(|| {
            let ks = ks.meta.path();
            ks.parent()
                .and_then(Path::parent)
                .map_or_else(|| ks.clone(), Path::to_path_buf)
        });
        let group_sync = Arc::new(super::group_sync::GroupSync::new(
            super::journal_sync::JournalSync::new(&path),
        ));
        let inner = Inner {
            path,
            prefix,
            durability,
            db,
            ks,
            wake: Default::default(),
            group_sync,
        };
        match found {
            None => inner.initialize()?,
            Some(_) => inner.upgrade_single_node_state()?,
        }
        Ok(FjallStore {
            inner: Arc::new(inner),
        })
    }
}

/// Reads the store's format version: `None` for a brand-new store, an error
/// for one this build cannot read.
fn check_format(db: &OptimisticTxDatabase, meta: &OptimisticTxKeyspace) -> Result<Option<u32>> {
    let raw = db
        .read_tx()
        .get(meta, keys::META_FORMAT_VERSION)
        .map_err(|e| Error::backend("fjall: reading the store format version", e))?;
    let Some(raw) = raw else { return Ok(None) };
    let found = codec::decode_format_version(&raw)?;
    if found == 0 || found > FORMAT_VERSION {
        return Err(Error::UnsupportedFormat {
            found,
            supported: FORMAT_VERSION,
        });
    }
    Ok(Some(found))
}

impl Inner {
    /// Moves the clean flag of a store written before node state existed to
    /// node [`DEFAULT_NODE`](crate::DEFAULT_NODE), with the store's epoch as
    /// that node's current epoch, in one transaction. A no-op on any other store.
    pub(super) fn upgrade_single_node_state(&self) -> Result<()> {
        let mut tx = Self::write_tx(&self.db, self.durability)?;
        let read = |tx: &OptimisticWriteTx, key: &[u8]| {
            tx.get(&self.ks.meta, key)
                .map_err(|e| Error::backend("fjall: upgrading single-node state", e))
        };
        let Some(flag) = read(&tx, keys::META_LEGACY_CLEAN_SHUTDOWN)? else {
            return Ok(());
        };
        let clean_shutdown = codec::decode_legacy_clean_shutdown(&flag).map_err(Error::from)?;
        let default_key = keys::node(crate::DEFAULT_NODE);
        if read(&tx, &default_key)?.is_none() {
            let epoch = match read(&tx, keys::META_SERVER_EPOCH)? {
                Some(raw) => codec::decode_epoch(&raw).map_err(Error::from)?,
                None => 0,
            };
            let node = crate::NodeState {
                epoch,
                clean_shutdown,
                ..crate::NodeState::new(crate::DEFAULT_NODE)
            };
            tx.insert(&self.ks.meta, default_key, codec::encode_node(&node)?);
        }
        tx.remove(&self.ks.meta, keys::META_LEGACY_CLEAN_SHUTDOWN);
        commit(tx)
    }

    /// Records the format version of a brand-new store. Everything else stays
    /// absent: an absent epoch is 0, an absent node has never run (clean).
    pub(super) fn initialize(&self) -> Result<()> {
        let mut tx = Self::write_tx(&self.db, self.durability)?;
        tx.insert(
            &self.ks.meta,
            keys::META_FORMAT_VERSION,
            codec::encode_format_version(FORMAT_VERSION).as_slice(),
        );
        commit(tx)
    }
}
