//! Node sessions: epochs stamped by the session, fencing of a restarted or
//! taken-over incarnation, liveness leases, takeover and grace, and
//! `require_lock`. "Several nodes" are several handles on one store
//! (`TestStore::store` each time), as several processes would hold.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::TestStore;
use super::sample::{assert_invalid, begin, handle, read_lock, request};
use crate::{
    Acquire, ByteRange, Error, LockOwner, LockType, Node, NodeSession, PersistedLock, Result,
    StartOptions, require_lock,
};

/// Start options of a restart after a crash: the operator knows the
/// previous incarnation is dead, whatever its lease says.
pub fn restart() -> StartOptions {
    StartOptions {
        take_over_live: true,
        ..Default::default()
    }
}

/// A lease that has expired as soon as it is taken.
pub fn expired() -> StartOptions {
    StartOptions {
        lease: Duration::ZERO,
        take_over_live: true,
    }
}

/// Starts an incarnation of `node` on a fresh handle of the fixture's store,
/// as a restart after a crash ([`restart`]).
pub async fn start_node(t: &dyn TestStore, node: &str) -> NodeSession {
    Node::new(t.store(), node)
        .expect("a valid node id")
        .start(restart())
        .await
        .unwrap_or_else(|e| panic!("start {node}: {e}"))
}

/// Asserts that `result` is `Error::Fenced` for `session`, naming `current`.
pub fn assert_fenced<T: std::fmt::Debug>(
    what: &str,
    session: &NodeSession,
    current: u64,
    result: Result<T>,
) {
    match result {
        Err(Error::Fenced {
            node,
            epoch,
            current: now,
        }) => assert_eq!(
            (node.as_str(), epoch, now),
            (session.node_id(), session.epoch(), current),
            "{what}: the fence names the session and the node's current epoch"
        ),
        other => panic!("{what}: expected Error::Fenced, got {other:?}"),
    }
}

/// Runs `lock`'s acquisition through `session`, with `interrupt` run inside
/// the first attempt, after its fence read and before its write (a restart
/// or takeover committing while the zombie's transaction is in flight).
/// Returns the outcome and how many times the body ran.
pub async fn acquire_interrupted(
    session: &NodeSession,
    lock: &PersistedLock,
    interrupt: Pin<Box<dyn Future<Output = ()> + Send + '_>>,
) -> (Result<crate::Acquire>, u32) {
    let attempts = AtomicU32::new(0);
    let slot = Mutex::new(Some(interrupt));
    let (attempts_ref, slot) = (&attempts, &slot);
    let outcome = session
        .transact(|tx| {
            Box::pin(async move {
                attempts_ref.fetch_add(1, Ordering::SeqCst);
                let pending = slot.lock().expect("slot").take();
                if let Some(interrupt) = pending {
                    interrupt.await;
                }
                tx.acquire(lock).await
            })
        })
        .await;
    (outcome, attempts.load(Ordering::SeqCst))
}

/// A session stamps its own epoch; a second start of the node id is refused
/// while the lease runs; a restart (take over) fences the first incarnation,
/// including a transaction of it in flight; a clean shutdown frees the id.
pub async fn sessions_stamp_epochs_and_fence_restarts(t: &mut dyn TestStore) {
    let hour = StartOptions {
        lease: Duration::from_secs(3600),
        ..Default::default()
    };
    let a1 = Node::new(t.store(), "node-a")
        .unwrap()
        .start(hour)
        .await
        .unwrap();
    let f = handle(b"f");
    let held = PersistedLock {
        server_epoch: 777,
        ..request(&f, "a", LockType::Exclusive, 0, 10)
    };
    assert_eq!(a1.acquire(&held).await.unwrap(), Acquire::Granted);
    let stored = read_lock(t, held.id).await.expect("granted lock stored");
    assert_eq!(
        stored.server_epoch,
        a1.epoch(),
        "the session's epoch, not the caller's"
    );
    let probe = request(&f, "b", LockType::Shared, 0, 1);
    assert!(matches!(
        a1.test(&probe).await.unwrap(),
        Acquire::Denied { .. }
    ));
    assert_eq!(read_lock(t, probe.id).await, None, "test writes nothing");
    let state = begin(t).await.get_node("node-a").await.unwrap().unwrap();
    let until = state
        .lease_expires_at
        .expect("a started node holds a lease");
    // Another process with the same node id: refused while the lease runs.
    let second = Node::new(t.store(), "node-a").unwrap();
    match second.start(hour).await {
        Err(Error::NodeAlive { node, until: u }) => {
            assert_eq!((node.as_str(), u), ("node-a", until))
        }
        other => panic!("a second start during the lease: expected NodeAlive, got {other:?}"),
    }
    let renewed = a1.renew().await.unwrap();
    assert!(renewed >= until, "renew extends the lease");
    let state = begin(t).await.get_node("node-a").await.unwrap().unwrap();
    assert_eq!(state.lease_expires_at, Some(renewed));
    // The operator restarts it elsewhere while a1 has a grant in flight.
    let zombie_lock = request(&handle(b"g"), "z", LockType::Exclusive, 0, 0);
    let (a2_slot, store2) = (Mutex::new(None), t.store());
    let a2_ref = &a2_slot;
    let interrupt = Box::pin(async move {
        let a2 = Node::new(store2, "node-a")
            .unwrap()
            .start(restart())
            .await
            .unwrap();
        *a2_ref.lock().unwrap() = Some(a2);
    });
    let (outcome, attempts) = acquire_interrupted(&a1, &zombie_lock, interrupt).await;
    let a2 = a2_slot.lock().unwrap().take().expect("the restart ran");
    assert_fenced("the zombie's in-flight grant", &a1, a2.epoch(), outcome);
    assert_eq!(
        attempts, 1,
        "the body ran once: its commit failed, and the retry was fenced before the body"
    );
    assert_eq!(
        read_lock(t, zombie_lock.id).await,
        None,
        "the zombie wrote nothing"
    );
    assert_eq!(a2.recovery().reclaimable, vec![stored.clone()]);
    assert!(!a2.recovery().previous_shutdown_clean);
    assert_fenced("renew", &a1, a2.epoch(), a1.renew().await);
    assert_fenced("end_grace", &a1, a2.epoch(), a1.end_grace().await);
    assert_fenced("shutdown", &a1, a2.epoch(), a1.shutdown().await);
    assert_fenced(
        "release",
        &a1,
        a2.epoch(),
        a1.release(&f, &held.owner(), held.range()).await,
    );
    assert_eq!(
        read_lock(t, held.id).await,
        Some(stored),
        "nothing the zombie did stuck"
    );
    // A clean shutdown drops the lease: the next start needs no override.
    a2.shutdown().await.unwrap();
    let state = begin(t).await.get_node("node-a").await.unwrap().unwrap();
    assert!(
        state.clean_shutdown && state.lease_expires_at.is_none(),
        "{state:?}"
    );
    let a3 = second.start(hour).await.unwrap();
    assert!(a3.recovery().previous_shutdown_clean);
    assert_eq!(
        a3.end_grace().await.unwrap(),
        1,
        "a1's lock was never reclaimed"
    );
    let too_long = StartOptions {
        lease: Duration::MAX,
        ..Default::default()
    };
    assert_invalid("a lease past the year 9999", second.start(too_long).await);
}

/// `require_lock` passes when the owner's locks cover the range (together,
/// exclusive ones for a write) and fails with `LockNotHeld` otherwise,
/// leaving the transaction usable; bad input is `Invalid`.
pub async fn require_lock_guards_host_writes(t: &mut dyn TestStore) {
    let s = start_node(t, "node-r").await;
    let f = handle(b"f");
    let x = |o, l| request(&f, "a", LockType::Exclusive, o, l);
    for lock in [
        x(0, 100),
        x(200, 100),
        request(&f, "a", LockType::Shared, 100, 100),
    ] {
        assert_eq!(s.acquire(&lock).await.unwrap(), Acquire::Granted);
    }
    let owner = &x(0, 1).owner();
    let other = &request(&f, "b", LockType::Shared, 0, 1).owner();
    let f = &f;
    let cases: [(ByteRange, bool, &LockOwner, bool); 8] = [
        (ByteRange::new(0, 100), true, owner, true),
        (ByteRange::new(10, 20), true, owner, true),
        (ByteRange::new(0, 300), false, owner, true),
        (ByteRange::new(50, 100), true, owner, false),
        (ByteRange::new(0, 301), false, owner, false),
        (ByteRange::new(250, 0), false, owner, false),
        (ByteRange::new(0, 10), false, other, false),
        (ByteRange::new(200, 100), true, owner, true),
    ];
    let written = s
        .transact(|tx| {
            Box::pin(async move {
                let mut held = Vec::new();
                for (range, write, who, _) in &cases {
                    held.push(match tx.require_lock(f, who, *range, *write).await {
                        Ok(()) => true,
                        Err(Error::LockNotHeld { .. }) => false,
                        Err(e) => return Err(e),
                    });
                }
                // The transaction stays usable after a refusal.
                tx.put_file(&super::sample::sample_file(b"f", "s")).await?;
                Ok(held)
            })
        })
        .await
        .unwrap();
    let expected: Vec<bool> = cases.iter().map(|c| c.3).collect();
    assert_eq!(written, expected, "require_lock per case");
    let mut tx = begin(t).await;
    let empty = LockOwner {
        owner_id: String::new(),
        ..owner.clone()
    };
    assert_invalid(
        "an empty owner",
        require_lock(&mut *tx, f, &empty, ByteRange::new(0, 1), true).await,
    );
}
