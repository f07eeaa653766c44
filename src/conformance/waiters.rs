//! Waiters: the record family (round trip of every field, indexes, paging,
//! validation) and the policy over it ([`acquire_or_wait`]: queue order,
//! retries, fairness, the cap, deadlocks of two and three owners across
//! nodes; [`Waiters`]: a wake on release, none on an unrelated release,
//! removal waking the next).

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::TestStore;
use super::sample::{assert_invalid, begin, commit, handle, request};
use crate::{
    Fairness, FileHandle, LockFlavor, LockOwner, LockType, MetadataStoreExt, PersistedLock,
    ShareReservation, Timestamp, Wait, WaitOptions, Waiter, WaiterQuery, Waiters, WaitersOptions,
    WakeCause, acquire_or_wait, cancel_wait, release_range, remove_client_waiters, remove_waiter,
};

/// A waiter with every field away from its default.
fn odd_waiter(file: &FileHandle, owner: &str, client: &str, node: &str) -> Waiter {
    Waiter {
        id: Uuid::new_v4(),
        file_id: file.clone(),
        share_name: "share: /ü".into(),
        owner_id: owner.into(),
        client_id: client.into(),
        node_id: node.into(),
        lock_type: LockType::Exclusive,
        offset: u64::MAX,
        length: 1,
        share_reservation: ShareReservation::DenyAll,
        flavor: LockFlavor::Windows,
        position: u64::MAX,
        since: Timestamp::MAX_VALID,
        context: (0..=255u8)
            .cycle()
            .take(crate::MAX_WAITER_CONTEXT_LEN)
            .collect(),
    }
}

async fn list(t: &dyn TestStore, query: &WaiterQuery) -> Vec<Waiter> {
    begin(t)
        .await
        .list_waiters(query)
        .await
        .expect("list_waiters")
}

/// `acquire_or_wait` in its own retried transaction.
async fn wait(t: &dyn TestStore, lock: &PersistedLock, options: &WaitOptions) -> Wait {
    t.store()
        .transact(|tx| Box::pin(async move { acquire_or_wait(tx, lock, options).await }))
        .await
        .expect("acquire_or_wait")
}

fn queued(answer: Wait) -> Waiter {
    match answer {
        Wait::Queued { waiter } => waiter,
        other => panic!("expected the request to be queued, got {other:?}"),
    }
}

/// An exclusive POSIX request of `owner` (client `client-of-<owner>`).
fn ex(file: &FileHandle, owner: &str, offset: u64, length: u64) -> PersistedLock {
    request(file, owner, LockType::Exclusive, offset, length)
}

/// Commits `release_range` of the owner of `lock` over `lock`'s range.
async fn release(t: &dyn TestStore, lock: &PersistedLock) {
    let owner = LockOwner {
        owner_id: lock.owner_id.clone(),
        client_id: lock.client_id.clone(),
        share_name: lock.share_name.clone(),
    };
    let (file, owner, range) = (&lock.file_id, &owner, lock.range());
    t.store()
        .transact(|tx| Box::pin(async move { release_range(tx, file, owner, range).await }))
        .await
        .expect("release_range");
}

/// A subscription that relies on announcements alone (no poll), so a wake
/// shows that the backend announced the release.
async fn subscribe(t: &dyn TestStore) -> Waiters {
    let options = WaitersOptions {
        poll_interval: None,
        ..Default::default()
    };
    Waiters::subscribe(Arc::clone(&t.store()), options)
        .await
        .expect("subscribe")
}

/// The next woken waiter; a check that gets none in 60 s fails (a guard
/// against hanging, not a timing assertion).
async fn next_woken(waiters: &mut Waiters) -> crate::Woken {
    tokio::time::timeout(Duration::from_secs(60), waiters.next())
        .await
        .expect("no waiter was woken within 60 s")
        .expect("Waiters::next")
}

/// put/get/list/page return a waiter with every field away from its default
/// equal; an overwrite moves its index entries; delete reports existence.
pub async fn waiters_round_trip_every_field(t: &mut dyn TestStore) {
    let file = handle(&[0xff; 128]);
    let mut waiter = odd_waiter(&file, "owner:/ 1", "client1", "node/ä");
    let other = odd_waiter(&handle(b"f"), "owner:/ 10", "client10", "node/ä0");
    let mut tx = begin(t).await;
    tx.put_waiter(&waiter).await.expect("put_waiter");
    tx.put_waiter(&other).await.expect("put_waiter");
    commit(tx).await;
    let mut tx = begin(t).await;
    assert_eq!(
        tx.get_waiter(waiter.id).await.unwrap(),
        Some(waiter.clone())
    );
    let page = tx.list_waiters_page(None, 1000).await.unwrap();
    let mut by_id = vec![waiter.clone(), other.clone()];
    by_id.sort_by_key(|w| w.id);
    assert_eq!(page, by_id, "list_waiters_page: every waiter, in id order");
    for query in [
        WaiterQuery::by_file(&file),
        WaiterQuery::by_owner("owner:/ 1", "client1"),
        WaiterQuery::by_client("client1"),
        WaiterQuery::by_node("node/ä"),
    ] {
        assert_eq!(
            tx.list_waiters(&query).await.unwrap(),
            [waiter.clone()],
            "{query:?} (a prefix of another id must not match it)"
        );
    }
    drop(tx);
    // Overwrite with other indexed values: the old ones find nothing.
    waiter.file_id = handle(b"moved");
    waiter.owner_id = "o2".into();
    waiter.client_id = "c2".into();
    waiter.node_id = "n2".into();
    waiter.flavor = LockFlavor::Posix;
    waiter.offset = 0;
    waiter.length = u64::MAX;
    waiter.position = 0;
    waiter.since = Timestamp::MIN_VALID;
    waiter.context.clear();
    let mut tx = begin(t).await;
    tx.put_waiter(&waiter).await.unwrap();
    commit(tx).await;
    for stale in [
        WaiterQuery::by_file(&file),
        WaiterQuery::by_owner("owner:/ 1", "client1"),
        WaiterQuery::by_client("client1"),
        WaiterQuery::by_node("node/ä"),
    ] {
        assert_eq!(list(t, &stale).await, [], "{stale:?} after the overwrite");
    }
    assert_eq!(list(t, &WaiterQuery::by_node("n2")).await, [waiter.clone()]);
    let mut tx = begin(t).await;
    assert!(tx.delete_waiter(waiter.id).await.unwrap());
    assert!(!tx.delete_waiter(waiter.id).await.unwrap(), "deleted twice");
    commit(tx).await;
    assert_eq!(list(t, &WaiterQuery::default()).await, [other]);
    let digest = crate::digest(&*t.store()).await.expect("digest");
    assert_eq!(digest.waiters, 1, "digest counts waiters");
}

/// Bad waiters, queries and contexts are `Invalid`, and the transaction stays usable.
pub async fn waiter_validation(t: &mut dyn TestStore) {
    let good = odd_waiter(&handle(b"f"), "o", "c", "n");
    let mut tx = begin(t).await;
    for bad in [
        Waiter {
            owner_id: String::new(),
            ..good.clone()
        },
        Waiter {
            client_id: "a\0b".into(),
            ..good.clone()
        },
        Waiter {
            node_id: "n".repeat(1025),
            ..good.clone()
        },
        Waiter {
            share_name: String::new(),
            ..good.clone()
        },
        Waiter {
            context: vec![0; crate::MAX_WAITER_CONTEXT_LEN + 1],
            ..good.clone()
        },
        Waiter {
            offset: u64::MAX,
            length: 2,
            ..good.clone()
        },
        Waiter {
            since: Timestamp::from_micros(i64::MAX),
            ..good.clone()
        },
    ] {
        assert_invalid("put_waiter", tx.put_waiter(&bad).await);
    }
    assert_invalid(
        "list_waiters",
        tx.list_waiters(&WaiterQuery::by_client("")).await,
    );
    assert_invalid(
        "delete_waiters (empty query)",
        tx.delete_waiters(&WaiterQuery::default()).await,
    );
    assert_invalid("list_waiters_page", tx.list_waiters_page(None, 0).await);
    let options = WaitOptions {
        context: vec![0; 1025],
        ..Default::default()
    };
    let lock = ex(&handle(b"f"), "o", 0, 1);
    assert_invalid(
        "acquire_or_wait",
        acquire_or_wait(&mut *tx, &lock, &options).await,
    );
    tx.put_waiter(&good)
        .await
        .expect("the transaction is still usable");
    commit(tx).await;
    assert_eq!(list(t, &WaiterQuery::default()).await, [good]);
}

/// Blocked requests queue in arrival order; a retry keeps its waiter and
/// place; a retry that can be granted takes the lock and drops its waiter.
pub async fn waiters_queue_in_fifo_order(t: &mut dyn TestStore) {
    let file = handle(b"queue");
    let options = WaitOptions::default();
    let holder = ex(&file, "holder", 0, 100);
    assert_eq!(wait(t, &holder, &options).await, Wait::Granted);
    let mut queue = Vec::new();
    for owner in ["b", "c", "d"] {
        queue.push(queued(wait(t, &ex(&file, owner, 10, 10), &options).await));
    }
    assert!(
        queue.windows(2).all(|p| p[0].position < p[1].position),
        "positions grow"
    );
    assert_eq!(
        list(t, &WaiterQuery::by_file(&file)).await,
        queue,
        "listing is queue order"
    );
    let retry = Uuid::new_v4();
    let again = queued(
        wait(
            t,
            &PersistedLock {
                id: retry,
                ..ex(&file, "c", 10, 10)
            },
            &options,
        )
        .await,
    );
    assert_eq!(again, queue[1], "a retry keeps its waiter and place");
    assert_eq!(
        list(t, &WaiterQuery::by_file(&file)).await.len(),
        3,
        "no second waiter"
    );
    release(t, &holder).await;
    // Fair: c and d may not pass b.
    let c = queue[1].to_lock(Uuid::new_v4(), 1, Timestamp::now());
    queued(wait(t, &c, &options).await);
    let b = queue[0].to_lock(Uuid::new_v4(), 1, Timestamp::now());
    assert_eq!(wait(t, &b, &options).await, Wait::Granted);
    assert_eq!(
        list(t, &WaiterQuery::by_file(&file)).await,
        queue[1..],
        "b's waiter is gone"
    );
    let mut tx = begin(t).await;
    assert!(
        tx.get_lock(b.id).await.unwrap().is_some(),
        "b's lock is written"
    );
}

/// Fairness: a request that conflicts only with an older waiter waits (FIFO)
/// or is granted (`Fairness::None`); a waiter that waits for the requester's
/// own lock does not hold the requester back; a non-blocking request is
/// `Denied` naming the waiter ahead.
pub async fn waiters_fairness_rules(t: &mut dyn TestStore) {
    let file = handle(b"fair");
    let fifo = WaitOptions::default();
    assert_eq!(wait(t, &ex(&file, "a", 0, 10), &fifo).await, Wait::Granted);
    let b = queued(wait(t, &ex(&file, "b", 0, 100), &fifo).await);
    let non_blocking = WaitOptions {
        block: false,
        ..Default::default()
    };
    match wait(t, &ex(&file, "c", 50, 10), &non_blocking).await {
        Wait::Denied { conflicts, ahead } => {
            assert_eq!(
                (conflicts, ahead),
                (vec![], vec![b.clone()]),
                "only b is in the way"
            );
        }
        other => panic!("a non-blocking request behind b: expected Denied, got {other:?}"),
    }
    queued(wait(t, &ex(&file, "c", 50, 10), &fifo).await);
    let unfair = WaitOptions {
        fairness: Fairness::None,
        ..Default::default()
    };
    assert_eq!(
        wait(t, &ex(&file, "e", 60, 10), &unfair).await,
        Wait::Granted
    );
    // a holds what b waits for: a's own new request never queues behind b.
    assert_eq!(wait(t, &ex(&file, "a", 90, 5), &fifo).await, Wait::Granted);
}

/// A release wakes the waiter it unblocks, announced by the backend.
pub async fn waiters_wake_on_release(t: &mut dyn TestStore) {
    let file = handle(b"wake");
    let options = WaitOptions::default();
    let holder = ex(&file, "holder", 0, 0);
    assert_eq!(wait(t, &holder, &options).await, Wait::Granted);
    let waiter = queued(wait(t, &ex(&file, "w", 5, 5), &options).await);
    let mut waiters = subscribe(t).await;
    release(t, &holder).await;
    let woken = next_woken(&mut waiters).await;
    assert_eq!(woken.waiter, waiter);
    assert_eq!(
        woken.cause,
        WakeCause::Announced,
        "the release was announced"
    );
}

/// A release that unblocks nothing (another range of the file, another
/// file) wakes nobody: the next waiter handed out is the one a later,
/// related release unblocks.
pub async fn waiters_no_wake_on_unrelated_release(t: &mut dyn TestStore) {
    let (f1, f2) = (handle(b"one"), handle(b"two"));
    let options = WaitOptions::default();
    let blocker = ex(&f1, "x", 0, 10);
    let unrelated = ex(&f1, "y", 500, 10);
    let elsewhere = ex(&handle(b"three"), "x", 0, 10);
    let related = ex(&f2, "x", 0, 10);
    for lock in [&blocker, &unrelated, &elsewhere, &related] {
        assert_eq!(wait(t, lock, &options).await, Wait::Granted);
    }
    let still_blocked = queued(wait(t, &ex(&f1, "w1", 0, 100), &options).await);
    let freed = queued(wait(t, &ex(&f2, "w2", 0, 100), &options).await);
    let mut waiters = subscribe(t).await;
    release(t, &unrelated).await;
    release(t, &elsewhere).await;
    release(t, &related).await;
    let woken = next_woken(&mut waiters).await;
    assert_eq!(woken.waiter, freed, "only the waiter the release unblocked");
    assert_ne!(woken.waiter, still_blocked);
}

/// Removing a waiter wakes the one behind it; cancel and client removal count.
pub async fn waiters_removal(t: &mut dyn TestStore) {
    let file = handle(b"removal");
    let options = WaitOptions::default();
    assert_eq!(
        wait(t, &ex(&file, "a", 0, 10), &options).await,
        Wait::Granted
    );
    let b = queued(wait(t, &ex(&file, "b", 0, 100), &options).await);
    let c = queued(wait(t, &ex(&file, "c", 50, 10), &options).await);
    let mut waiters = subscribe(t).await;
    let id = b.id;
    let removed = t
        .store()
        .transact(|tx| Box::pin(async move { remove_waiter(tx, id).await }))
        .await
        .unwrap();
    assert!(removed);
    assert_eq!(
        next_woken(&mut waiters).await.waiter,
        c,
        "c waited only for b"
    );
    let request = &c.to_lock(Uuid::new_v4(), 1, Timestamp::now());
    let store = t.store();
    let cancelled = store
        .transact(|tx| Box::pin(async move { cancel_wait(tx, request).await }))
        .await
        .unwrap();
    assert!(cancelled, "cancel_wait finds the waiter by its request");
    queued(wait(t, &ex(&file, "d", 0, 100), &options).await);
    queued(
        wait(
            t,
            &PersistedLock {
                client_id: "client-of-d".into(),
                ..ex(&file, "d2", 0, 100)
            },
            &options,
        )
        .await,
    );
    let gone = store
        .transact(|tx| Box::pin(async move { remove_client_waiters(tx, "client-of-d").await }))
        .await
        .unwrap();
    assert_eq!(gone, 2);
    assert_eq!(list(t, &WaiterQuery::by_file(&file)).await, []);
}

/// The per-file cap: the request after the last place is `QueueFull` and
/// writes nothing; another file is not affected.
pub async fn waiters_cap_per_file(t: &mut dyn TestStore) {
    let file = handle(b"cap");
    let options = WaitOptions {
        max_waiters_per_file: 2,
        ..Default::default()
    };
    let holder = ex(&file, "h", 0, 0);
    assert_eq!(wait(t, &holder, &options).await, Wait::Granted);
    queued(wait(t, &ex(&file, "a", 0, 1), &options).await);
    queued(wait(t, &ex(&file, "b", 0, 1), &options).await);
    match wait(t, &ex(&file, "c", 0, 1), &options).await {
        Wait::QueueFull { conflicts } => assert_eq!(conflicts, [holder]),
        other => panic!("a third waiter with a cap of 2: expected QueueFull, got {other:?}"),
    }
    assert_eq!(list(t, &WaiterQuery::by_file(&file)).await.len(), 2);
    let other = handle(b"other");
    assert_eq!(
        wait(t, &ex(&other, "h", 0, 0), &options).await,
        Wait::Granted
    );
    queued(wait(t, &ex(&other, "c", 0, 1), &options).await);
}

/// Owners `owners[i]` hold file i and each waits for the next's file; the
/// last request closes the cycle and is `Deadlock`, naming the others'
/// waiters, with nothing written. Each owner on its own node.
async fn deadlock_ring(t: &dyn TestStore, owners: &[&str]) {
    let files: Vec<FileHandle> = owners.iter().map(|o| handle(o.as_bytes())).collect();
    let on = |i: usize| WaitOptions {
        node_id: format!("node-{i}"),
        ..Default::default()
    };
    for (i, owner) in owners.iter().enumerate() {
        assert_eq!(
            wait(t, &ex(&files[i], owner, 0, 0), &on(i)).await,
            Wait::Granted
        );
    }
    let n = owners.len();
    let mut ring = Vec::new();
    for i in 0..n - 1 {
        ring.push(queued(
            wait(t, &ex(&files[i + 1], owners[i], 0, 0), &on(i)).await,
        ));
    }
    let closing = ex(&files[0], owners[n - 1], 0, 0);
    match wait(t, &closing, &on(n - 1)).await {
        Wait::Deadlock { cycle } => assert_eq!(cycle, ring, "the cycle, in wait order"),
        other => panic!("{n} owners in a ring: expected Deadlock, got {other:?}"),
    }
    assert_eq!(
        list(t, &WaiterQuery::by_file(&files[0])).await,
        [],
        "a deadlocked request writes no waiter"
    );
    // A request that closes no cycle still queues.
    queued(wait(t, &ex(&files[0], "outsider", 0, 0), &on(n)).await);
}

/// Two owners on two nodes: the second cross request is `Deadlock`.
pub async fn waiters_deadlock_of_two(t: &mut dyn TestStore) {
    deadlock_ring(t, &["alpha", "beta"]).await;
}

/// Three owners on three nodes: the third request of the ring is `Deadlock`.
pub async fn waiters_deadlock_of_three(t: &mut dyn TestStore) {
    deadlock_ring(t, &["alpha", "beta", "gamma"]).await;
}

/// Waiters survive a close and reopen (persistent backends).
pub async fn waiters_survive_reopen(t: &mut dyn TestStore) {
    let waiter = odd_waiter(&handle(b"persist"), "o", "c", "n");
    let mut tx = begin(t).await;
    tx.put_waiter(&waiter).await.unwrap();
    commit(tx).await;
    t.reopen().await.expect("reopen");
    assert_eq!(
        list(t, &WaiterQuery::by_node("n")).await,
        std::slice::from_ref(&waiter)
    );
    assert_eq!(
        begin(t).await.get_waiter(waiter.id).await.unwrap(),
        Some(waiter)
    );
}
