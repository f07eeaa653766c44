//! Delegations through `open_file` and the tombstone rules: which opens
//! recall which delegations, and a revoked delegation refusing its reclaim
//! until the end of grace drops it.

use uuid::Uuid;

use super::TestStore;
use super::leases::{delegation, granted, sample_delegation, seed};
use super::opens::{request_open, sample_open};
use crate::{DelegationReclaim, DelegationRecord, DelegationType, MetadataStoreExt, ShareMask};

/// Recalls: another client's write delegation on any open, a read
/// delegation on a write open; the client's own and already recalled ones
/// are left alone.
pub async fn conflicting_opens_recall_delegations(t: &mut dyn TestStore) {
    let read = sample_delegation(b"df", "c1", DelegationType::Read);
    let write = sample_delegation(b"dg", "c1", DelegationType::Write);
    let own = sample_delegation(b"dg", "c2", DelegationType::Read);
    seed(t, &[], &[read.clone(), write.clone(), own.clone()]).await;
    let reader = sample_open(b"df", "c2", ShareMask::READ, ShareMask::NONE);
    assert_eq!(
        granted(request_open(t, &reader).await).1,
        [],
        "a reader keeps read delegations"
    );
    let writer = sample_open(b"df", "c3", ShareMask::WRITE, ShareMask::NONE);
    let recalled = DelegationRecord {
        recalled: true,
        ..read.clone()
    };
    assert_eq!(
        granted(request_open(t, &writer).await).1,
        std::slice::from_ref(&recalled)
    );
    assert_eq!(delegation(t, read.id).await, Some(recalled));
    let second = sample_open(b"df", "c4", ShareMask::WRITE, ShareMask::NONE);
    assert_eq!(
        granted(request_open(t, &second).await).1,
        [],
        "recalled once"
    );
    let any = sample_open(b"dg", "c2", ShareMask::READ, ShareMask::NONE);
    let w = DelegationRecord {
        recalled: true,
        ..write.clone()
    };
    assert_eq!(
        granted(request_open(t, &any).await).1,
        [w],
        "a write delegation, any open"
    );
    assert_eq!(delegation(t, own.id).await, Some(own));
}

/// A revoked delegation stays as a tombstone: its reclaim is refused until
/// `drop_revoked_delegations` (end of grace) removes it; a live one is
/// reclaimed and restamped; another client's is unknown.
pub async fn revoked_delegations_are_tombstones_until_grace_ends(t: &mut dyn TestStore) {
    let gone = sample_delegation(b"tf", "c1", DelegationType::Write);
    let live = sample_delegation(b"tf", "c2", DelegationType::Read);
    let current = DelegationRecord {
        server_epoch: 5,
        ..sample_delegation(b"tg", "c1", DelegationType::Read)
    };
    seed(t, &[], &[gone.clone(), live.clone(), current.clone()]).await;
    let store = t.store();
    let (g, c) = (gone.id, current.id);
    store
        .transact(|tx| {
            Box::pin(async move {
                crate::revoke_delegation(tx, g).await?;
                crate::revoke_delegation(tx, c).await
            })
        })
        .await
        .expect("revoke");
    let reclaim = |id: Uuid, client: &'static str| {
        let store = store.clone();
        async move {
            store
                .transact(|tx| {
                    Box::pin(async move { crate::reclaim_delegation(tx, id, client, 5).await })
                })
                .await
                .expect("reclaim")
        }
    };
    assert_eq!(
        reclaim(g, "c1").await,
        DelegationReclaim::Revoked(DelegationRecord {
            revoked: true,
            ..gone.clone()
        })
    );
    assert_eq!(
        reclaim(live.id, "c1").await,
        DelegationReclaim::Unknown,
        "another client's"
    );
    assert_eq!(
        reclaim(live.id, "c2").await,
        DelegationReclaim::Reclaimed(DelegationRecord {
            server_epoch: 5,
            ..live.clone()
        })
    );
    let dropped = store
        .transact(|tx| Box::pin(async move { crate::drop_revoked_delegations(tx, 5).await }))
        .await
        .expect("drop");
    assert_eq!(dropped, 1, "only the tombstone from before epoch 5");
    assert_eq!(reclaim(g, "c1").await, DelegationReclaim::Unknown);
    assert!(
        delegation(t, c).await.is_some_and(|d| d.revoked),
        "this epoch's tombstone stays"
    );
    assert!(delegation(t, live.id).await.is_some());
}
