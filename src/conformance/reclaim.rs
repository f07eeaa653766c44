//! Checks of the arbiter and reclaim defects of issue 14 (items 2, 3, 4, 5
//! and 11): reclaim by meaning, idempotent and unambiguous reclaim, reclaim
//! only with the reclaiming node's own epoch, lock ids that belong to another
//! owner or file, and share reservations that byte-range requests and
//! releases never drop.

use uuid::Uuid;

use super::TestStore;
use super::sample::{
    acquire, all_locks, assert_invalid, begin, by_id, commit, handle, read_lock, request, seed,
    shape,
};
use super::sessions::start_node;
use crate::{
    Acquire, ByteRange, DEFAULT_NODE, Error, FileHandle, LockQuery, LockType, MetadataStoreExt,
    PersistedLock, Reclaim, ShareReservation,
};

/// Reclaims `lock` through node [`DEFAULT_NODE`] in its own transaction.
async fn reclaim_through(t: &dyn TestStore, lock: &PersistedLock) -> Reclaim {
    let store = t.store();
    store
        .transact(|tx| Box::pin(async move { crate::reclaim_lock(tx, lock).await }))
        .await
        .expect("reclaim_lock")
}

/// Releases `range` of the owner of `like` on `file` in its own transaction.
async fn release(
    t: &dyn TestStore,
    file: &FileHandle,
    like: &PersistedLock,
    range: ByteRange,
) -> u64 {
    let store = t.store();
    let owner = &like.owner();
    store
        .transact(|tx| Box::pin(async move { crate::release_range(tx, file, owner, range).await }))
        .await
        .expect("release_range")
}

fn stamped(epoch: u64, lock: PersistedLock) -> PersistedLock {
    PersistedLock {
        server_epoch: epoch,
        ..lock
    }
}

/// A to-EOF lock that the arbiter stored with length 0 (after a split or a
/// merge) is reclaimed with NFSv4's all-ones length, and one stored with the
/// all-ones length is reclaimed with length 0: ranges match by meaning
/// (`offset` and `last()`), not by their raw `length`. A range one byte short
/// of EOF is not EOF.
pub async fn reclaim_compares_ranges_by_meaning(t: &mut dyn TestStore) {
    use LockType::*;
    let store = t.store();
    let first = crate::begin_recovery(&*store).await.unwrap();
    let (f, g, h) = (handle(b"f"), handle(b"g"), handle(b"h"));
    // a: all-ones to EOF, unlocked in the middle: [0,100) and [110, EOF) stored with length 0.
    let split = stamped(first.epoch, request(&f, "a", Exclusive, 0, u64::MAX));
    assert_eq!(acquire(t, &split).await, Acquire::Granted);
    assert_eq!(release(t, &f, &split, ByteRange::new(100, 10)).await, 1);
    assert_eq!(
        shape(t, &f, "a").await,
        vec![(Exclusive, 0, 100), (Exclusive, 110, 0)]
    );
    // b: widened to EOF by a merge with an all-ones request: stored with length 0.
    let b = stamped(first.epoch, request(&g, "b", Shared, 0, 10));
    assert_eq!(acquire(t, &b).await, Acquire::Granted);
    let widen = stamped(first.epoch, request(&g, "b", Shared, 5, u64::MAX));
    assert_eq!(acquire(t, &widen).await, Acquire::Granted);
    assert_eq!(shape(t, &g, "b").await, vec![(Shared, 0, 0)]);
    // c: all-ones, left alone: stored as given.
    let c = stamped(first.epoch, request(&h, "c", Exclusive, 7, u64::MAX));
    assert_eq!(acquire(t, &c).await, Acquire::Granted);
    let before = all_locks(t, &LockQuery::default()).await;
    // Crash and restart: every lock above is reclaimable.
    let second = crate::begin_recovery(&*store).await.unwrap();
    assert_eq!(second.reclaimable, before);
    for (what, wanted, answer) in [
        (
            "all-ones reclaim of a split lock stored with length 0",
            request(&f, "a", Exclusive, 110, u64::MAX),
            Reclaim::Granted,
        ),
        (
            "the split's head",
            request(&f, "a", Exclusive, 0, 100),
            Reclaim::Granted,
        ),
        (
            "all-ones reclaim of a merged lock stored with length 0",
            request(&g, "b", Shared, 0, u64::MAX),
            Reclaim::Granted,
        ),
        (
            "one byte short of EOF is another range",
            request(&h, "c", Exclusive, 7, u64::MAX - 7),
            Reclaim::NoSuchLock,
        ),
        (
            "length-0 reclaim of a lock stored with the all-ones length",
            request(&h, "c", Exclusive, 7, 0),
            Reclaim::Granted,
        ),
    ] {
        let wanted = stamped(second.epoch, wanted);
        assert_eq!(reclaim_through(t, &wanted).await, answer, "{what}");
    }
    let restamped: Vec<PersistedLock> = before
        .into_iter()
        .map(|l| stamped(second.epoch, l))
        .collect();
    assert_eq!(
        all_locks(t, &LockQuery::default()).await,
        restamped,
        "each record restamped in place, its range as stored"
    );
    assert_eq!(crate::end_grace(&*store, second.epoch).await.unwrap(), 0);
}

/// A retransmitted reclaim (the reply was lost) is granted again without a
/// second record; a reclaim nobody can match is `NoSuchLock` (even when the
/// requested range conflicts with a stored lock); `Denied` names the stored
/// locks of other owners that block a matching reclaim, and writes nothing.
pub async fn reclaim_is_idempotent_and_says_why(t: &mut dyn TestStore) {
    use LockType::*;
    let store = t.store();
    let first = crate::begin_recovery(&*store).await.unwrap();
    let (f, g) = (handle(b"f"), handle(b"g"));
    let held = stamped(first.epoch, request(&f, "a", Exclusive, 0, 10));
    assert_eq!(acquire(t, &held).await, Acquire::Granted);
    // A lock on g, and a conflicting one of another owner written around the arbiter.
    let blocked = stamped(first.epoch, request(&g, "c", Exclusive, 0, 10));
    seed(t, &[], std::slice::from_ref(&blocked)).await;
    let second = crate::begin_recovery(&*store).await.unwrap();
    let intruder = stamped(second.epoch, request(&g, "d", Shared, 5, 1));
    seed(t, &[], std::slice::from_ref(&intruder)).await;

    assert_eq!(reclaim_through(t, &held).await, Reclaim::Granted);
    let reclaimed = stamped(second.epoch, held.clone());
    assert_eq!(read_lock(t, held.id).await.as_ref(), Some(&reclaimed));
    assert_eq!(
        reclaim_through(t, &held).await,
        Reclaim::Granted,
        "a retransmitted reclaim is granted again"
    );
    let retransmit = PersistedLock {
        id: Uuid::new_v4(),
        ..reclaimed.clone()
    };
    assert_eq!(
        reclaim_through(t, &retransmit).await,
        Reclaim::Granted,
        "a retransmit matches by content, not id"
    );
    assert_eq!(
        all_locks(t, &LockQuery::by_file(&f)).await,
        vec![reclaimed.clone()],
        "no second record, nothing rewritten"
    );
    for (what, wanted) in [
        (
            "another owner's reclaim of a's lock",
            PersistedLock {
                owner_id: "b".into(),
                client_id: "client-of-b".into(),
                ..held.clone()
            },
        ),
        (
            "a range a never held",
            stamped(second.epoch, request(&f, "a", Exclusive, 50, 10)),
        ),
    ] {
        assert_eq!(
            reclaim_through(t, &wanted).await,
            Reclaim::NoSuchLock,
            "{what}"
        );
    }
    assert_eq!(
        reclaim_through(t, &blocked).await,
        Reclaim::Denied {
            conflicts: vec![intruder.clone()]
        },
        "a matching lock blocked by another owner's lock"
    );
    assert_eq!(
        read_lock(t, blocked.id).await.as_ref(),
        Some(&blocked),
        "a denied reclaim writes nothing"
    );
    assert_eq!(crate::end_grace(&*store, second.epoch).await.unwrap(), 1);
    assert_eq!(
        all_locks(t, &LockQuery::default()).await,
        by_id(vec![reclaimed, intruder])
    );
}

/// A reclaim stamps only an epoch the reclaiming node owns: before the
/// default node ever began recovery, `reclaim_lock` must not stamp the global
/// counter (in a multi-node store, another node's live epoch); it is
/// `Error::NodeNotStarted`, like a reclaim through any node that never
/// started, and writes nothing.
pub async fn reclaim_stamps_only_the_nodes_own_epoch(t: &mut dyn TestStore) {
    let store = t.store();
    let a1 = start_node(t, "node-a").await;
    let held = stamped(
        a1.epoch(),
        request(&handle(b"f"), "a", LockType::Exclusive, 0, 0),
    );
    assert_eq!(acquire(t, &held).await, Acquire::Granted);
    let a2 = start_node(t, "node-a").await;
    assert_eq!(a2.recovery().reclaimable, vec![held.clone()]);
    let b1 = start_node(t, "node-b").await;
    let mut tx = begin(t).await;
    assert_eq!(
        tx.server_epoch().await.unwrap(),
        b1.epoch(),
        "the global counter is node-b's live epoch"
    );
    match crate::reclaim_lock(&mut *tx, &held).await {
        Err(Error::NodeNotStarted { node }) => assert_eq!(node, DEFAULT_NODE),
        other => {
            panic!("reclaim_lock before begin_recovery: expected NodeNotStarted, got {other:?}")
        }
    }
    // (A named node reclaims through its session, which exists only once
    // the node has started: there is nothing to get wrong there.)
    assert_eq!(
        tx.get_lock(held.id).await.unwrap().as_ref(),
        Some(&held),
        "nothing written, the transaction usable"
    );
    commit(tx).await;
    assert_eq!(read_lock(t, held.id).await.as_ref(), Some(&held));
    // Once the default node has started, it reclaims with its own epoch.
    let d1 = crate::begin_recovery(&*store).await.unwrap();
    assert_eq!(reclaim_through(t, &held).await, Reclaim::Granted);
    assert_eq!(
        read_lock(t, held.id).await.map(|l| l.server_epoch),
        Some(d1.epoch)
    );
}

/// A request whose id is another owner's lock, or a lock on another file, is
/// `Error::Invalid` from `acquire_lock` (and `test_lock`) with nothing
/// written, and the transaction stays usable.
pub async fn acquire_rejects_a_foreign_lock_id(t: &mut dyn TestStore) {
    use LockType::*;
    let (f, g) = (handle(b"f"), handle(b"g"));
    let held = request(&f, "a", Exclusive, 0, 10);
    assert_eq!(acquire(t, &held).await, Acquire::Granted);
    let before = all_locks(t, &LockQuery::default()).await;
    let mut tx = begin(t).await;
    for (what, forged) in [
        (
            "another owner's lock id, same range",
            PersistedLock {
                id: held.id,
                ..request(&f, "b", Exclusive, 0, 10)
            },
        ),
        (
            "another owner's lock id, a range that does not conflict",
            PersistedLock {
                id: held.id,
                ..request(&f, "b", Shared, 500, 10)
            },
        ),
        (
            "the same owner_id of another client",
            PersistedLock {
                id: held.id,
                client_id: "another-client".into(),
                ..held.clone()
            },
        ),
        (
            "another owner's lock id, another file",
            PersistedLock {
                id: held.id,
                ..request(&g, "b", Exclusive, 0, 10)
            },
        ),
        (
            "the owner's own lock id, another file",
            PersistedLock {
                id: held.id,
                ..request(&g, "a", Exclusive, 0, 10)
            },
        ),
    ] {
        assert_invalid(
            &format!("acquire_lock: {what}"),
            crate::acquire_lock(&mut *tx, &forged).await,
        );
        assert_invalid(
            &format!("test_lock: {what}"),
            crate::test_lock(&mut *tx, &forged).await,
        );
    }
    assert_eq!(
        crate::acquire_lock(&mut *tx, &request(&g, "b", Exclusive, 0, 10))
            .await
            .unwrap(),
        Acquire::Granted,
        "the transaction stays usable"
    );
    commit(tx).await;
    assert_eq!(
        all_locks(t, &LockQuery::by_file(&f)).await,
        before,
        "nothing written on f"
    );
    assert_eq!(shape(t, &g, "a").await, vec![], "a's lock did not move");
}

/// The same owner's record under the request's id goes through POSIX
/// replacement like any other of its locks: what the request does not cover
/// stays, with a fresh id.
pub async fn acquire_with_an_own_lock_id_replaces_posix_style(t: &mut dyn TestStore) {
    use LockType::*;
    let f = handle(b"f");
    let held = request(&f, "a", Exclusive, 0, 100);
    assert_eq!(acquire(t, &held).await, Acquire::Granted);
    let head = PersistedLock {
        id: held.id,
        ..request(&f, "a", Shared, 0, 10)
    };
    assert_eq!(acquire(t, &head).await, Acquire::Granted);
    assert_eq!(
        shape(t, &f, "a").await,
        vec![(Shared, 0, 10), (Exclusive, 10, 90)],
        "a downgrade of the head under the lock's own id keeps the rest"
    );
    assert_eq!(read_lock(t, held.id).await.as_ref(), Some(&head));
    let elsewhere = PersistedLock {
        id: held.id,
        ..request(&f, "a", Exclusive, 500, 10)
    };
    assert_eq!(acquire(t, &elsewhere).await, Acquire::Granted);
    assert_eq!(
        shape(t, &f, "a").await,
        vec![(Shared, 0, 10), (Exclusive, 10, 90), (Exclusive, 500, 10)],
        "the old record under the id stays, with a fresh id"
    );
    assert_eq!(read_lock(t, held.id).await.as_ref(), Some(&elsewhere));
    let ids: std::collections::BTreeSet<Uuid> = all_locks(t, &LockQuery::by_file(&f))
        .await
        .iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(ids.len(), 3, "distinct ids");
}

/// A record with a deny mode (a share reservation) is never replaced, trimmed
/// or dropped by its owner's byte-range requests or `release_range`: the new
/// record is written beside it, and the deny mode keeps denying. Requests
/// with another deny mode leave it whole too.
pub async fn share_reservations_survive_byte_range_requests(t: &mut dyn TestStore) {
    use LockType::*;
    let f = handle(b"f");
    let open = PersistedLock {
        share_reservation: ShareReservation::DenyWrite,
        ..request(&f, "a", Shared, 0, 100)
    };
    assert_eq!(acquire(t, &open).await, Acquire::Granted);
    let writer = request(&f, "b", Exclusive, 1000, 1);
    // An upgrade of the whole range, then a sub-range downgrade, by the same owner.
    assert_eq!(
        acquire(t, &request(&f, "a", Exclusive, 0, 100)).await,
        Acquire::Granted
    );
    assert_eq!(
        read_lock(t, open.id).await.as_ref(),
        Some(&open),
        "the share reservation stays whole beside the byte-range lock"
    );
    assert_eq!(
        acquire(t, &request(&f, "a", Shared, 10, 10)).await,
        Acquire::Granted
    );
    assert_eq!(read_lock(t, open.id).await.as_ref(), Some(&open));
    assert_denied_by(t, &writer, vec![open.clone()]).await;
    // Another deny mode of the same owner is written beside it as well.
    let deny_read = PersistedLock {
        share_reservation: ShareReservation::DenyRead,
        ..request(&f, "a", Shared, 0, 100)
    };
    assert_eq!(acquire(t, &deny_read).await, Acquire::Granted);
    assert_eq!(read_lock(t, open.id).await.as_ref(), Some(&open));
    assert_eq!(read_lock(t, deny_read.id).await.as_ref(), Some(&deny_read));
    // Unlocking everything removes the byte-range locks only.
    assert_eq!(
        release(t, &f, &open, ByteRange::new(0, 0)).await,
        3,
        "the three byte-range pieces, not the reservations"
    );
    assert_eq!(
        all_locks(t, &LockQuery::by_owner("a")).await,
        by_id(vec![open.clone(), deny_read.clone()])
    );
    assert_denied_by(t, &writer, vec![open]).await;
}

async fn assert_denied_by(t: &dyn TestStore, writer: &PersistedLock, expected: Vec<PersistedLock>) {
    assert_eq!(
        acquire(t, writer).await,
        Acquire::Denied {
            conflicts: expected
        },
        "the DenyWrite still denies another owner's writes"
    );
}
