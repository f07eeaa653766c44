//! The two record-family traits, [`OpenStore`] and [`LeaseStore`], and their queries.

use async_trait::async_trait;
use uuid::Uuid;

use super::model::{DelegationRecord, LeaseKey, LeaseRecord, OpenRecord};
use crate::error::Result;
use crate::file::FileHandle;
use crate::time::Timestamp;

/// Filters over opens; every field that is set must match (AND). Empty = all.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct OpenQuery {
    /// Opens of this file.
    pub file: Option<FileHandle>,
    /// Opens of this client.
    pub client_id: Option<String>,
    /// Opens through this share.
    pub share_name: Option<String>,
    /// The open with this SMB `CreateGuid`.
    pub create_guid: Option<Uuid>,
    /// Opens with this SMB `AppInstanceId`.
    pub app_instance_id: Option<Uuid>,
    /// Disconnected opens whose `disconnected_at` is before this instant.
    pub disconnected_before: Option<Timestamp>,
}

impl OpenQuery {
    /// The opens of one file.
    pub fn by_file(file: &FileHandle) -> Self {
        OpenQuery {
            file: Some(file.clone()),
            ..OpenQuery::default()
        }
    }

    /// True when `open` passes every filter that is set.
    pub fn matches(&self, open: &OpenRecord) -> bool {
        self.file.as_ref().is_none_or(|f| *f == open.file)
            && self.client_id.as_ref().is_none_or(|c| *c == open.client_id)
            && self
                .share_name
                .as_ref()
                .is_none_or(|s| *s == open.share_name)
            && self.create_guid.is_none_or(|g| open.create_guid == Some(g))
            && self
                .app_instance_id
                .is_none_or(|a| open.app_instance_id == Some(a))
            && self
                .disconnected_before
                .is_none_or(|t| open.disconnected_at.is_some_and(|at| at < t))
    }
}

/// Filters over leases and oplocks; every field that is set must match (AND).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LeaseQuery {
    /// Leases on this file.
    pub file: Option<FileHandle>,
    /// Leases of this client.
    pub client_id: Option<String>,
    /// Leases with this key.
    pub lease_key: Option<LeaseKey>,
}

impl LeaseQuery {
    /// True when `lease` passes every filter that is set.
    pub fn matches(&self, lease: &LeaseRecord) -> bool {
        self.file.as_ref().is_none_or(|f| *f == lease.file)
            && self
                .client_id
                .as_ref()
                .is_none_or(|c| *c == lease.client_id)
            && self.lease_key.is_none_or(|k| k == lease.lease_key)
    }
}

/// Filters over delegations; every field that is set must match (AND).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DelegationQuery {
    /// Delegations on this file.
    pub file: Option<FileHandle>,
    /// Delegations of this client.
    pub client_id: Option<String>,
    /// Revoked (tombstones) or live ones.
    pub revoked: Option<bool>,
}

impl DelegationQuery {
    /// True when `delegation` passes every filter that is set.
    pub fn matches(&self, delegation: &DelegationRecord) -> bool {
        self.file.as_ref().is_none_or(|f| *f == delegation.file)
            && self
                .client_id
                .as_ref()
                .is_none_or(|c| *c == delegation.client_id)
            && self.revoked.is_none_or(|r| r == delegation.revoked)
    }
}

/// Open records of a transaction (share modes, durable handles).
///
/// Every argument is validated before anything is sent or written
/// ([`crate::validate::open`], [`crate::validate::open_query`]); a rejected
/// one is [`Error::Invalid`](crate::Error::Invalid) and leaves the
/// transaction usable. Listings are in id order.
#[async_trait]
pub trait OpenStore: Send {
    /// Inserts or replaces the open `open.id`.
    async fn put_open(&mut self, open: &OpenRecord) -> Result<()>;
    /// The open with this id, if stored.
    async fn get_open(&mut self, id: Uuid) -> Result<Option<OpenRecord>>;
    /// Deletes the open; returns whether it existed.
    async fn delete_open(&mut self, id: Uuid) -> Result<bool>;
    /// The opens matching `query`, in id order.
    async fn list_opens(&mut self, query: &OpenQuery) -> Result<Vec<OpenRecord>>;
    /// At most `limit` (≥ 1) opens with an id above `after`, in id order.
    async fn list_opens_page(
        &mut self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<OpenRecord>>;
}

/// Lease, oplock and delegation records of a transaction: the caching state a
/// server grants on a file and must break or recall. One trait for both,
/// because the policy that grants an open breaks both in one pass
/// ([`crate::open_file`]) and a backend stores them the same way.
///
/// Validation and ordering as [`OpenStore`].
#[async_trait]
pub trait LeaseStore: Send {
    /// Inserts or replaces the lease `lease.id`.
    async fn put_lease(&mut self, lease: &LeaseRecord) -> Result<()>;
    /// The lease with this id, if stored.
    async fn get_lease(&mut self, id: Uuid) -> Result<Option<LeaseRecord>>;
    /// Deletes the lease; returns whether it existed.
    async fn delete_lease(&mut self, id: Uuid) -> Result<bool>;
    /// The leases matching `query`, in id order.
    async fn list_leases(&mut self, query: &LeaseQuery) -> Result<Vec<LeaseRecord>>;
    /// At most `limit` (≥ 1) leases with an id above `after`, in id order.
    async fn list_leases_page(
        &mut self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<LeaseRecord>>;

    /// Inserts or replaces the delegation `delegation.id`.
    async fn put_delegation(&mut self, delegation: &DelegationRecord) -> Result<()>;
    /// The delegation with this id, if stored.
    async fn get_delegation(&mut self, id: Uuid) -> Result<Option<DelegationRecord>>;
    /// Deletes the delegation; returns whether it existed.
    async fn delete_delegation(&mut self, id: Uuid) -> Result<bool>;
    /// The delegations matching `query`, in id order.
    async fn list_delegations(&mut self, query: &DelegationQuery) -> Result<Vec<DelegationRecord>>;
    /// At most `limit` (≥ 1) delegations with an id above `after`, in id order.
    async fn list_delegations_page(
        &mut self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<DelegationRecord>>;
}
