//! The client rules of a node session: RECLAIM_COMPLETE, lease renewal,
//! reclaims that check the client's record, the end of grace for clients,
//! and courteous and strict lease expiry. Each runs fenced, in the session's
//! transaction ([`SessionTx`]) or in one of its own ([`NodeSession`]).
//!
//! The client lease is the session's lease ([`NodeSession::lease`], from
//! [`StartOptions::lease`](crate::StartOptions::lease)): the lease time the
//! server announces to its clients (NFSv4 `lease_time`) is the one it keeps
//! itself alive with.

use super::ClientRecord;
use super::rules::{self, ReclaimRefusal};
use crate::error::Result;
use crate::lock::PersistedLock;
use crate::lock::reclaim::Reclaim;
use crate::lock::reclaim::reclaim_traced;
use crate::recovery::Epochs;
use crate::session::{NodeSession, SessionTx};
use crate::time::Timestamp;

impl SessionTx<'_> {
    /// Whether `client_id` may reclaim through this session now, `principal`
    /// being the caller's (see the decision table of [`may_reclaim`](crate::may_reclaim)):
    /// `None` when it may. Opens and delegations call it before they reclaim.
    pub async fn may_reclaim(
        &mut self,
        client_id: &str,
        principal: Option<&[u8]>,
    ) -> Result<Option<ReclaimRefusal>> {
        let node = self.node_id().to_owned();
        rules::may_reclaim(self.raw(), &node, client_id, principal).await
    }

    /// Reclaims `lock` for a client authenticated as `principal`: the client
    /// must be allowed to ([`SessionTx::may_reclaim`], else
    /// [`Reclaim::NotAllowed`] and nothing is written), and the lock must
    /// match a stored one of a dead epoch ([`SessionTx::reclaim`]'s rules).
    pub async fn reclaim_as(
        &mut self,
        lock: &PersistedLock,
        principal: Option<&[u8]>,
    ) -> Result<Reclaim> {
        if let Some(why) = self.may_reclaim(&lock.client_id, principal).await? {
            return Ok(Reclaim::NotAllowed(why));
        }
        let (epoch, node) = (self.epoch(), self.node_id().to_owned());
        reclaim_traced(self.raw(), &node, epoch, lock).await
    }

    /// RECLAIM_COMPLETE: the client's record moves to this session's node
    /// and epoch, reclaim-complete (it may not reclaim again in this
    /// incarnation). [`Error::AlreadyComplete`](crate::Error::AlreadyComplete)
    /// the second time, [`Error::ClientNotFound`](crate::Error::ClientNotFound)
    /// for an unknown client, [`Error::WrongNode`](crate::Error::WrongNode)
    /// for another node's, [`Error::ClientExpired`](crate::Error::ClientExpired)
    /// for an expired one; nothing is written then.
    pub async fn reclaim_complete(&mut self, client_id: &str) -> Result<ClientRecord> {
        let (node, epoch) = (self.node_id().to_owned(), self.epoch());
        rules::reclaim_complete_in(self.raw(), &node, epoch, client_id).await
    }

    /// Renews the client's lease (`last_renewed` = now); errors as
    /// [`SessionTx::reclaim_complete`]'s, except that a client of this
    /// incarnation may renew any number of times.
    pub async fn renew_client(&mut self, client_id: &str) -> Result<ClientRecord> {
        let node = self.node_id().to_owned();
        rules::renew_in(self.raw(), &node, client_id).await
    }

    /// The clients that may still reclaim through this session (the
    /// recovery set), in id order.
    pub async fn recovery_clients(&mut self) -> Result<Vec<ClientRecord>> {
        let node = self.node_id().to_owned();
        let epochs = Epochs::load(self.raw()).await?;
        rules::recovery_set(self.raw(), &epochs, &node).await
    }
}

impl NodeSession {
    /// [`SessionTx::reclaim_complete`] in a transaction of its own.
    pub async fn reclaim_complete(&self, client_id: &str) -> Result<ClientRecord> {
        self.transact(|tx| Box::pin(async move { tx.reclaim_complete(client_id).await }))
            .await
    }

    /// [`SessionTx::renew_client`] in a transaction of its own.
    pub async fn renew_client(&self, client_id: &str) -> Result<ClientRecord> {
        self.transact(|tx| Box::pin(async move { tx.renew_client(client_id).await }))
            .await
    }

    /// [`SessionTx::reclaim_as`] in a transaction of its own.
    pub async fn reclaim_as(
        &self,
        lock: &PersistedLock,
        principal: Option<&[u8]>,
    ) -> Result<Reclaim> {
        self.transact(|tx| Box::pin(async move { tx.reclaim_as(lock, principal).await }))
            .await
    }

    /// True when grace may end early: no client of the recovery set is left
    /// (every client expected to reclaim sent RECLAIM_COMPLETE).
    pub async fn grace_done(&self) -> Result<bool> {
        self.transact(|tx| Box::pin(async move { Ok(tx.recovery_clients().await?.is_empty()) }))
            .await
    }

    /// Strict lease expiry, for servers that prefer it to courtesy: every
    /// client of this incarnation not renewed since `before` loses all its
    /// locks and is marked expired, in one fenced transaction. Returns how
    /// many clients expired.
    pub async fn expire_clients(&self, before: Timestamp) -> Result<u64> {
        let (node, epoch) = (self.node_id(), self.epoch());
        self.transact(|tx| {
            Box::pin(async move { rules::expire_in(tx.raw(), node, epoch, before).await })
        })
        .await
    }
}
