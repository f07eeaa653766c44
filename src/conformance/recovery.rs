//! Single-node recovery: the clean-shutdown flag and the grace-period cycle.

use uuid::Uuid;

use super::TestStore;
use super::sample::{acquire, all_locks, begin, by_id, commit, handle, read_lock, request};
use crate::{LockQuery, LockType, MetadataStoreExt, PersistedLock, Reclaim, Timestamp};

/// The clean-shutdown flag is true on a new store and keeps what was committed.
pub async fn clean_shutdown_flag_round_trips(t: &mut dyn TestStore) {
    let mut tx = begin(t).await;
    assert!(
        crate::clean_shutdown(&mut *tx).await.unwrap(),
        "a new store counts as cleanly shut down"
    );
    crate::set_clean_shutdown(&mut *tx, false).await.unwrap();
    assert!(
        !crate::clean_shutdown(&mut *tx).await.unwrap(),
        "reads its own write"
    );
    commit(tx).await;
    assert!(!crate::clean_shutdown(&mut *begin(t).await).await.unwrap());
    let mut tx = begin(t).await;
    crate::set_clean_shutdown(&mut *tx, true).await.unwrap();
    tx.rollback().await.unwrap();
    assert!(
        !crate::clean_shutdown(&mut *begin(t).await).await.unwrap(),
        "a rolled-back flag change is gone"
    );
    let mut tx = begin(t).await;
    crate::set_clean_shutdown(&mut *tx, true).await.unwrap();
    commit(tx).await;
    assert!(crate::clean_shutdown(&mut *begin(t).await).await.unwrap());
}

/// The recovery cycle: new store, crash, reclaim, end of grace, clean shutdown.
pub async fn recovery_cycle(t: &mut dyn TestStore) {
    let store = t.store();
    let first = crate::begin_recovery(&*store).await.unwrap();
    assert!(
        first.previous_shutdown_clean,
        "a brand-new store needs no grace period"
    );
    assert_eq!((first.epoch, first.reclaimable.len()), (1, 0));
    let f = handle(b"f");
    let kept = PersistedLock {
        server_epoch: first.epoch,
        ..request(&f, "a", LockType::Exclusive, 0, 10)
    };
    let lost = PersistedLock {
        server_epoch: first.epoch,
        ..request(&f, "b", LockType::Shared, 100, 0)
    };
    acquire(t, &kept).await;
    acquire(t, &lost).await;
    // Crash: no mark_clean_shutdown.
    let second = crate::begin_recovery(&*store).await.unwrap();
    assert!(!second.previous_shutdown_clean);
    assert_eq!(second.epoch, 2);
    assert_eq!(second.reclaimable, by_id(vec![kept.clone(), lost.clone()]));
    assert_eq!(
        second.lock_holders().into_iter().collect::<Vec<_>>(),
        vec!["client-of-a", "client-of-b"]
    );
    let reclaim = |lock: PersistedLock| {
        let store = store.clone();
        async move {
            let lock = &lock;
            store
                .transact(|tx| Box::pin(async move { crate::reclaim_lock(tx, lock).await }))
                .await
                .unwrap()
        }
    };
    let fresh_id = PersistedLock {
        id: Uuid::new_v4(),
        acquired_at: Timestamp::now(),
        server_epoch: 2,
        ..kept.clone()
    };
    assert_eq!(
        reclaim(fresh_id).await,
        Reclaim::Granted,
        "reclaim matches by content, not id"
    );
    for (what, wrong) in [
        (
            "another length",
            PersistedLock {
                length: 11,
                ..kept.clone()
            },
        ),
        (
            "another type",
            PersistedLock {
                lock_type: LockType::Shared,
                ..kept.clone()
            },
        ),
        (
            "another client",
            PersistedLock {
                client_id: "impostor".into(),
                ..kept.clone()
            },
        ),
        (
            "a range nobody held",
            request(&f, "a", LockType::Exclusive, 500, 1),
        ),
    ] {
        assert_eq!(reclaim(wrong).await, Reclaim::NoSuchLock, "{what}");
    }
    assert_eq!(
        read_lock(t, kept.id).await,
        Some(PersistedLock {
            server_epoch: 2,
            ..kept.clone()
        }),
        "restamped in place"
    );
    assert_eq!(
        reclaim(kept.clone()).await,
        Reclaim::Granted,
        "a retransmitted reclaim: already reclaimed in the current epoch"
    );
    assert_eq!(
        all_locks(t, &LockQuery::by_owner("a")).await.len(),
        1,
        "no second record"
    );
    assert_eq!(crate::end_grace(&*store, second.epoch).await.unwrap(), 1);
    assert_eq!(
        all_locks(t, &LockQuery::default()).await,
        vec![PersistedLock {
            server_epoch: 2,
            ..kept
        }]
    );
    crate::mark_clean_shutdown(&*store).await.unwrap();
    let third = crate::begin_recovery(&*store).await.unwrap();
    assert!(third.previous_shutdown_clean);
    assert_eq!(third.epoch, 3);
}
