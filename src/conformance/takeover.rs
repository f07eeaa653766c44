//! Takeover of a dead node and fine-grained grace, across several handles
//! of one store (one per node, as several processes would hold).

use std::sync::Mutex;
use std::time::Duration;

use super::TestStore;
use super::sample::{assert_invalid, begin, by_id, handle, read_lock, request};
use super::sessions::{acquire_interrupted, assert_fenced, expired, start_node};
use crate::{
    Acquire, DEFAULT_NODE, Epochs, Error, LockType, Node, PersistedLock, Reclaim, StartOptions,
    declare_dead, declare_dead_forced,
};

/// `declare_dead` waits for the lease (or is forced), fences the dead node
/// (a transaction of it in flight included), hands its locks to any node for
/// reclaim and its grace period to the taker; meanwhile a new request that
/// conflicts with one of them gets `Acquire::Grace` on every node and one
/// that conflicts with none is granted; the taker's `end_grace` drops what
/// nobody reclaimed.
pub async fn declare_dead_takes_over_and_runs_grace(t: &mut dyn TestStore) {
    let hour = StartOptions {
        lease: Duration::from_secs(3600),
        ..Default::default()
    };
    let a = Node::new(t.store(), "node-a")
        .unwrap()
        .start(hour)
        .await
        .unwrap();
    let b = start_node(t, "node-b").await;
    let c = start_node(t, "node-c").await;
    let (f1, f2) = (handle(b"f1"), handle(b"f2"));
    let l1 = request(&f1, "a1", LockType::Exclusive, 0, 100);
    let l2 = request(&f2, "a2", LockType::Shared, 0, 0);
    for l in [&l1, &l2] {
        assert_eq!(a.acquire(l).await.unwrap(), Acquire::Granted);
    }
    let held = |l: &PersistedLock| PersistedLock {
        server_epoch: a.epoch(),
        ..l.clone()
    };
    let store = t.store();
    match declare_dead(&*store, "node-a", "node-b").await {
        Err(Error::NodeAlive { node, .. }) => assert_eq!(node, "node-a"),
        other => panic!("declare_dead during the lease: expected NodeAlive, got {other:?}"),
    }
    assert_invalid(
        "a node taking over itself",
        declare_dead(&*store, "node-a", "node-a").await,
    );
    assert!(matches!(
        declare_dead(&*store, "never-started", "node-b").await,
        Err(Error::NodeNotStarted { .. })
    ));
    // The operator forces it while node-a has a grant in flight.
    let zombie_lock = request(&handle(b"g"), "z", LockType::Exclusive, 0, 0);
    let dead_slot = Mutex::new(None);
    let (dead_ref, store2) = (&dead_slot, t.store());
    let interrupt = Box::pin(async move {
        let dead = declare_dead_forced(&*store2, "node-a", "node-b")
            .await
            .unwrap();
        *dead_ref.lock().unwrap() = Some(dead);
    });
    let (outcome, attempts) = acquire_interrupted(&a, &zombie_lock, interrupt).await;
    let dead = dead_slot.lock().unwrap().take().expect("the takeover ran");
    assert_fenced("the dead node's in-flight grant", &a, a.epoch(), outcome);
    assert_eq!(
        attempts, 1,
        "the body ran once: its commit failed, and the retry was fenced before the body"
    );
    assert_eq!(read_lock(t, zombie_lock.id).await, None);
    assert_eq!(
        (dead.node.as_str(), dead.epoch, dead.by.as_str()),
        ("node-a", a.epoch(), "node-b")
    );
    assert_eq!(dead.reclaimable, by_id(vec![held(&l1), held(&l2)]));
    assert_eq!(dead.clients.len(), 2);
    let mut tx = begin(t).await;
    let state = tx.get_node("node-a").await.unwrap().unwrap();
    assert_eq!(
        state.taken_over.as_ref().map(|t| t.by.as_str()),
        Some("node-b")
    );
    assert_eq!(state.lease_expires_at, None);
    assert!(
        Epochs::load(&mut *tx).await.unwrap().is_dead(a.epoch()),
        "the epoch died"
    );
    drop(tx);
    // Grace, on every node: conflicting new requests wait, others go ahead.
    let conflicting = request(&f1, "x", LockType::Exclusive, 50, 10);
    for (who, s) in [("node-b", &b), ("node-c", &c)] {
        assert_eq!(
            s.acquire(&conflicting).await.unwrap(),
            Acquire::Grace {
                conflicts: vec![held(&l1)]
            },
            "{who}: a request conflicting with a reclaimable lock"
        );
    }
    assert_eq!(
        c.test(&conflicting).await.unwrap(),
        Acquire::Grace {
            conflicts: vec![held(&l1)]
        }
    );
    let elsewhere = request(&f1, "y", LockType::Exclusive, 200, 10);
    assert_eq!(
        c.acquire(&elsewhere).await.unwrap(),
        Acquire::Granted,
        "no conflict: granted"
    );
    // l1's client fails over to node-c and reclaims there: the host moves
    // its record (of the dead epoch) to node-c first.
    super::clients::seed_clients(
        &*t,
        &[crate::ClientRecord::new(
            &l1.client_id,
            "node-c",
            crate::ClientProtocol::Nfs4,
            l1.client_id.as_bytes().to_vec(),
            [0; 8],
            a.epoch(),
        )],
    )
    .await;
    assert_eq!(c.reclaim(&l1).await.unwrap(), Reclaim::Granted);
    // RECLAIM_COMPLETE: node-c's end of grace keeps the client and its lock.
    c.reclaim_complete(&l1.client_id).await.unwrap();
    assert_eq!(
        read_lock(t, l1.id).await.map(|l| l.server_epoch),
        Some(c.epoch())
    );
    assert!(
        matches!(
            b.acquire(&conflicting).await.unwrap(),
            Acquire::Denied { .. }
        ),
        "reclaimed: a live conflict now, no grace"
    );
    // node-b runs the dead node's grace: l2 was not reclaimed.
    assert_eq!(
        c.end_grace().await.unwrap(),
        0,
        "node-c runs no grace for node-a"
    );
    assert_eq!(b.end_grace().await.unwrap(), 1);
    assert_eq!(read_lock(t, l2.id).await, None);
    let after = request(&f2, "x", LockType::Exclusive, 0, 0);
    assert_eq!(
        b.acquire(&after).await.unwrap(),
        Acquire::Granted,
        "after grace"
    );
    // The dead node comes back: its takeover mark is cleared.
    let a2 = Node::new(t.store(), "node-a")
        .unwrap()
        .start(hour)
        .await
        .unwrap();
    assert!(!a2.recovery().previous_shutdown_clean);
    assert!(
        a2.recovery().reclaimable.is_empty(),
        "everything was reclaimed or swept"
    );
    let state = begin(t).await.get_node("node-a").await.unwrap().unwrap();
    assert_eq!((state.epoch, state.taken_over), (a2.epoch(), None));
    // An expired lease needs no force; the default node may take over.
    let d = Node::new(t.store(), "node-d")
        .unwrap()
        .start(expired())
        .await
        .unwrap();
    let dl = request(&handle(b"f4"), "d", LockType::Exclusive, 0, 0);
    assert_eq!(d.acquire(&dl).await.unwrap(), Acquire::Granted);
    let dead = declare_dead(&*store, "node-d", DEFAULT_NODE).await.unwrap();
    assert_eq!(dead.reclaimable.len(), 1);
    assert_fenced(
        "node-d after the takeover",
        &d,
        d.epoch(),
        d.acquire(&dl).await,
    );
    crate::begin_recovery(&*store).await.unwrap();
    assert_eq!(
        crate::end_grace(&*store, 0).await.unwrap(),
        1,
        "the default node's grace"
    );
}
