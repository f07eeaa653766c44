//! Node state: the epoch counter, node states and epoch records, and
//! several nodes recovering on one store.

use std::collections::BTreeSet;

use super::TestStore;
use super::sample::{
    T0, acquire, all_locks, assert_conflict, assert_invalid, begin, by_id, commit, handle,
    read_lock, request,
};
use super::sessions::{assert_fenced, restart, start_node};
use crate::{
    Acquire, EpochRecord, FileHandle, LockQuery, LockType, MetadataTransaction, NodeState,
    PersistedLock, Reclaim, ReclaimRefusal, Timestamp,
};

/// A new store has epoch 0; each committed increment adds exactly one.
pub async fn epoch_starts_at_zero_and_increments(t: &mut dyn TestStore) {
    let mut tx = begin(t).await;
    assert_eq!(
        tx.server_epoch().await.unwrap(),
        0,
        "a new store starts at epoch 0"
    );
    assert_eq!(tx.increment_server_epoch().await.unwrap(), 1);
    assert_eq!(tx.increment_server_epoch().await.unwrap(), 2);
    assert_eq!(tx.server_epoch().await.unwrap(), 2);
    commit(tx).await;
    let mut tx = begin(t).await;
    assert_eq!(tx.server_epoch().await.unwrap(), 2);
    assert_eq!(tx.increment_server_epoch().await.unwrap(), 3);
    commit(tx).await;
    assert_eq!(begin(t).await.server_epoch().await.unwrap(), 3);
}

/// `advance_server_epoch` raises the counter to at least a value in one
/// call, never lowers it, reads its own write, rolls back, reaches
/// `u64::MAX`, and races with a concurrent increment like one.
pub async fn advance_server_epoch_raises_never_lowers(t: &mut dyn TestStore) {
    let mut tx = begin(t).await;
    assert_eq!(
        tx.advance_server_epoch(1_000_000_000_000).await.unwrap(),
        1_000_000_000_000
    );
    assert_eq!(
        tx.server_epoch().await.unwrap(),
        1_000_000_000_000,
        "reads its own write"
    );
    assert_eq!(
        tx.advance_server_epoch(5).await.unwrap(),
        1_000_000_000_000,
        "never lowers"
    );
    assert_eq!(
        tx.increment_server_epoch().await.unwrap(),
        1_000_000_000_001
    );
    commit(tx).await;
    let mut tx = begin(t).await;
    assert_eq!(tx.advance_server_epoch(u64::MAX).await.unwrap(), u64::MAX);
    tx.rollback().await.unwrap();
    assert_eq!(
        begin(t).await.server_epoch().await.unwrap(),
        1_000_000_000_001,
        "rolled back"
    );
    let mut tx = begin(t).await;
    assert_eq!(tx.advance_server_epoch(u64::MAX).await.unwrap(), u64::MAX);
    assert!(
        matches!(
            tx.increment_server_epoch().await,
            Err(crate::Error::EpochExhausted)
        ),
        "the counter cannot grow past u64::MAX"
    );
    drop(tx);
    // An advance and an increment racing: one wins, the other conflicts.
    let mut first = begin(t).await;
    let mut second = begin(t).await;
    first.advance_server_epoch(2_000_000_000_000).await.unwrap();
    second.server_epoch().await.unwrap();
    let a = first.commit().await;
    let b = match second.increment_server_epoch().await {
        Ok(_) => second.commit().await,
        Err(e) => Err(e),
    };
    assert_eq!(
        [&a, &b].iter().filter(|r| r.is_ok()).count(),
        1,
        "{a:?} / {b:?}"
    );
    assert_conflict(
        "the second writer of the counter",
        if a.is_ok() { &b } else { &a },
    );
}

/// Node states and epoch records round-trip, roll back, and validate their ids;
/// the single-node clean flag is node `default`'s.
pub async fn node_state_round_trips(t: &mut dyn TestStore) {
    let mut tx = begin(t).await;
    assert_eq!(tx.get_node("a").await.unwrap(), None);
    assert!(tx.list_nodes().await.unwrap().is_empty());
    assert!(tx.list_epoch_records().await.unwrap().is_empty());
    let nodes = [
        // Every field away from its default, at its extremes.
        NodeState {
            node_id: "b:1/ü".into(),
            epoch: u64::MAX,
            clean_shutdown: false,
            lease_expires_at: Some(Timestamp::MAX_VALID),
            taken_over: Some(crate::Takeover {
                by: "a0 :/ü".into(),
                at: Timestamp::MIN_VALID,
            }),
        },
        NodeState {
            node_id: "a".into(),
            epoch: 3,
            clean_shutdown: true,
            lease_expires_at: Some(Timestamp::MIN_VALID),
            taken_over: None,
        },
        NodeState {
            node_id: "a0".into(),
            epoch: 0,
            clean_shutdown: false,
            lease_expires_at: None,
            taken_over: Some(crate::Takeover {
                by: "n".repeat(1024),
                at: Timestamp::MAX_VALID,
            }),
        },
    ];
    for n in &nodes {
        tx.put_node(n).await.unwrap();
    }
    let records = [
        EpochRecord {
            epoch: u64::MAX,
            node_id: "b:1/ü".into(),
            started_at: Timestamp::MAX_VALID,
        },
        EpochRecord {
            epoch: 3,
            node_id: "a".into(),
            started_at: Timestamp::MIN_VALID,
        },
    ];
    for r in &records {
        tx.put_epoch_record(r).await.unwrap();
    }
    for bad in ["", "x\0", &"n".repeat(1025)] {
        assert_invalid(
            "put_node with a bad id",
            tx.put_node(&NodeState::new(bad)).await,
        );
        assert_invalid("get_node with a bad id", tx.get_node(bad).await);
        let record = EpochRecord {
            epoch: 9,
            node_id: bad.to_owned(),
            started_at: T0,
        };
        assert_invalid(
            "put_epoch_record with a bad id",
            tx.put_epoch_record(&record).await,
        );
    }
    for (what, bad) in [
        (
            "a lease expiry out of range",
            NodeState {
                lease_expires_at: Some(Timestamp::from_micros(i64::MAX)),
                ..NodeState::new("a")
            },
        ),
        (
            "an empty taker",
            NodeState {
                taken_over: Some(crate::Takeover {
                    by: String::new(),
                    at: T0,
                }),
                ..NodeState::new("a")
            },
        ),
        (
            "a takeover time out of range",
            NodeState {
                taken_over: Some(crate::Takeover {
                    by: "b".into(),
                    at: Timestamp::from_micros(i64::MIN),
                }),
                ..NodeState::new("a")
            },
        ),
    ] {
        assert_invalid(what, tx.put_node(&bad).await);
    }
    let bad_time = EpochRecord {
        epoch: 9,
        node_id: "a".into(),
        started_at: Timestamp::from_micros(i64::MIN),
    };
    assert_invalid(
        "put_epoch_record with a bad time",
        tx.put_epoch_record(&bad_time).await,
    );
    let mut sorted = nodes.to_vec();
    sorted.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    let in_order = vec![records[1].clone(), records[0].clone()];
    assert_eq!(
        tx.list_epoch_records_and_nodes().await.unwrap(),
        (in_order.clone(), sorted.clone()),
        "both lists together, the transaction's own writes in them"
    );
    commit(tx).await;
    let mut tx = begin(t).await;
    assert_eq!(tx.list_nodes().await.unwrap(), sorted, "nodes in id order");
    assert_eq!(tx.get_node("a").await.unwrap(), Some(nodes[1].clone()));
    assert_eq!(tx.list_epoch_records().await.unwrap(), in_order);
    assert_eq!(
        tx.list_epoch_records_and_nodes().await.unwrap(),
        (in_order, sorted),
        "both lists together, committed"
    );
    assert!(
        crate::clean_shutdown(&mut *tx).await.unwrap(),
        "no default node yet: clean"
    );
    crate::set_clean_shutdown(&mut *tx, false).await.unwrap();
    assert_eq!(
        tx.get_node(crate::DEFAULT_NODE).await.unwrap(),
        Some(NodeState {
            clean_shutdown: false,
            ..NodeState::new(crate::DEFAULT_NODE)
        })
    );
    tx.put_node(&NodeState {
        epoch: 1,
        ..nodes[1].clone()
    })
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    let mut tx = begin(t).await;
    assert_eq!(
        tx.get_node("a").await.unwrap(),
        Some(nodes[1].clone()),
        "a rolled-back node write"
    );
    assert!(crate::clean_shutdown(&mut *tx).await.unwrap());
}

/// Every node as (id, epoch, clean flag), in id order.
pub(super) async fn node_summary(tx: &mut dyn MetadataTransaction) -> Vec<(String, u64, bool)> {
    let nodes = tx.list_nodes().await.expect("list_nodes");
    nodes
        .into_iter()
        .map(|n| (n.node_id, n.epoch, n.clean_shutdown))
        .collect()
}

/// Every epoch record as (epoch, node), in epoch order.
pub(super) async fn epoch_owners(tx: &mut dyn MetadataTransaction) -> Vec<(u64, String)> {
    let records = tx.list_epoch_records().await.expect("list_epoch_records");
    records.into_iter().map(|r| (r.epoch, r.node_id)).collect()
}

pub(super) async fn take(
    t: &dyn TestStore,
    file: &FileHandle,
    owner: &str,
    epoch: u64,
) -> PersistedLock {
    let lock = PersistedLock {
        server_epoch: epoch,
        ..request(file, owner, LockType::Exclusive, 0, 0)
    };
    assert_eq!(
        acquire(t, &lock).await,
        Acquire::Granted,
        "{owner} locks {file}"
    );
    lock
}

/// Nodes A and B share a store: A's crash and recovery touch only A's locks;
/// A's client fails over and reclaims through B; B restarts cleanly.
pub async fn nodes_recover_independently(t: &mut dyn TestStore) {
    let a1 = start_node(t, "node-a").await;
    let b1 = start_node(t, "node-b").await;
    assert!(
        a1.recovery().previous_shutdown_clean && b1.recovery().previous_shutdown_clean,
        "first starts are clean"
    );
    assert_ne!(
        a1.epoch(),
        b1.epoch(),
        "every incarnation gets its own epoch"
    );
    let a_locks = vec![
        take(t, &handle(b"fa1"), "a-owner1", a1.epoch()).await,
        take(t, &handle(b"fa2"), "a-owner2", a1.epoch()).await,
    ];
    let b_locks = [take(t, &handle(b"fb1"), "b-owner1", b1.epoch()).await];
    // The clients' records (only a client with one may reclaim through a
    // session). The second of A's clients will fail over: the host moved its
    // record to B, keeping the epoch it was confirmed in.
    let record =
        |client: &str, node: &str, epoch| super::clients::sample_client(client, node, epoch);
    super::clients::seed_clients(
        t,
        &[
            record("client-of-a-owner1", "node-a", a1.epoch()),
            record("client-of-a-owner2", "node-b", a1.epoch()),
            record("client-of-b-owner1", "node-b", b1.epoch()),
        ],
    )
    .await;
    // A crashes (no clean mark) and restarts.
    let a2 = start_node(t, "node-a").await;
    assert!(!a2.recovery().previous_shutdown_clean);
    assert!(a2.epoch() > b1.epoch());
    assert_eq!(
        a2.recovery().reclaimable,
        by_id(a_locks.clone()),
        "A's reclaimable set is exactly A's old locks"
    );
    assert_eq!(a2.recovery().lock_holders().len(), 2);
    assert_fenced(
        "A's first incarnation",
        &a1,
        a2.epoch(),
        a1.reclaim(&a_locks[0]).await,
    );
    // A's first client reclaims through A; the second fails over and reclaims through B.
    assert_eq!(
        a2.reclaim(&b_locks[0]).await.unwrap(),
        Reclaim::NotAllowed(ReclaimRefusal::OtherNode),
        "B's live epoch: its clients are not A's to reclaim"
    );
    assert_eq!(
        b1.reclaim(&b_locks[0]).await.unwrap(),
        Reclaim::NotAllowed(ReclaimRefusal::NotInRecovery),
        "a client of B's live epoch is in no grace period: nothing written"
    );
    assert_eq!(
        read_lock(t, b_locks[0].id).await.as_ref(),
        Some(&b_locks[0])
    );
    assert_eq!(a2.reclaim(&a_locks[0]).await.unwrap(), Reclaim::Granted);
    assert_eq!(
        b1.reclaim(&a_locks[1]).await.unwrap(),
        Reclaim::Granted,
        "fail-over reclaim"
    );
    b1.reclaim_complete("client-of-a-owner2").await.unwrap();
    assert_eq!(
        read_lock(t, a_locks[0].id).await.unwrap().server_epoch,
        a2.epoch()
    );
    assert_eq!(
        read_lock(t, a_locks[1].id).await.unwrap().server_epoch,
        b1.epoch(),
        "restamped with B's epoch"
    );
    // Another crash of A: its grace sweep must spare B's live locks, including the failed-over one.
    let orphan = take(t, &handle(b"fa3"), "a-owner3", a2.epoch()).await;
    let a3 = start_node(t, "node-a").await;
    assert_eq!(
        a3.recovery()
            .reclaimable
            .iter()
            .map(|l| l.id)
            .collect::<Vec<_>>(),
        by_id(vec![a_locks[0].clone(), orphan.clone()])
            .iter()
            .map(|l| l.id)
            .collect::<Vec<_>>()
    );
    assert_eq!(a3.end_grace().await.unwrap(), 2);
    assert_eq!(b1.end_grace().await.unwrap(), 0, "B has no dead epochs");
    let left = all_locks(t, &LockQuery::default()).await;
    assert_eq!(
        left.len(),
        2,
        "B's own and the failed-over lock survive: {left:?}"
    );
    assert!(left.iter().all(|l| l.server_epoch == b1.epoch()));
    // B shuts down cleanly and restarts.
    b1.shutdown().await.unwrap();
    let b2 = start_node(t, "node-b").await;
    assert!(b2.recovery().previous_shutdown_clean);
    assert_eq!(
        b2.recovery().reclaimable.len(),
        2,
        "B's previous epoch is dead now: its locks are reclaimable"
    );
    let mut tx = begin(t).await;
    let nodes = node_summary(&mut *tx).await;
    assert_eq!(
        nodes,
        vec![
            ("node-a".into(), a3.epoch(), false),
            ("node-b".into(), b2.epoch(), false)
        ]
    );
    let handed = epoch_owners(&mut *tx).await;
    assert_eq!(handed.len(), 5, "one record per incarnation: {handed:?}");
    assert_eq!(
        tx.server_epoch().await.unwrap(),
        b2.epoch(),
        "the counter stays global"
    );
    assert_invalid("Node::new(\"\")", crate::Node::new(t.store(), ""));
}

/// Several nodes recovering at the same moment get distinct epochs and never sweep each other.
pub async fn simultaneous_node_recoveries_stay_apart(t: &mut dyn TestStore) {
    const NODES: usize = 6;
    let store = t.store();
    let mut firsts = Vec::new();
    for n in 0..NODES {
        let r = start_node(t, &format!("node-{n}")).await;
        take(
            t,
            &handle(format!("f{n}").as_bytes()),
            &format!("o{n}"),
            r.epoch(),
        )
        .await;
        firsts.push(r.epoch());
    }
    let tasks: Vec<_> = (0..NODES)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let node = format!("node-{n}");
                let session = crate::Node::new(store, node)
                    .expect("node id")
                    .start(restart())
                    .await
                    .expect("start");
                let swept = session.end_grace().await.expect("end_grace");
                (session.recovery().clone(), swept)
            })
        })
        .collect();
    let mut epochs = BTreeSet::new();
    for (n, task) in tasks.into_iter().enumerate() {
        let (r, swept) = task.await.expect("task");
        assert_eq!(
            r.reclaimable.len(),
            1,
            "node-{n} sees exactly its own old lock"
        );
        assert_eq!(r.reclaimable[0].owner_id, format!("o{n}"));
        assert_eq!(swept, 1, "node-{n} swept exactly its own old lock");
        assert!(epochs.insert(r.epoch), "epoch {} handed out twice", r.epoch);
    }
    assert!(epochs.iter().all(|e| !firsts.contains(e)));
    drop(store);
    assert!(all_locks(t, &LockQuery::default()).await.is_empty());
}
