//! The reclaim rules over client records, through node sessions: the
//! decision table of `may_reclaim` (unknown client, confirmed after the
//! restart, another node's, wrong principal, expired), RECLAIM_COMPLETE
//! once, `grace_done`, the end of grace dropping clients that did not
//! reclaim, a restart during grace, the partition case of RFC 7530
//! §9.6.3.4.1, a takeover, and courteous and strict lease expiry.

use super::TestStore;
use super::clients::{sample_client, seed_clients};
use super::sample::{T0, handle, request};
use super::sessions::start_node;
use crate::{
    Acquire, ClientRecord, Error, LockType, NodeSession, PersistedLock, Reclaim, ReclaimRefusal,
    Timestamp, declare_dead_forced,
};

/// A client of `session`'s incarnation, renewed now.
fn confirmed(id: &str, session: &NodeSession) -> ClientRecord {
    ClientRecord {
        last_renewed: Timestamp::now(),
        ..sample_client(id, session.node_id(), session.epoch())
    }
}

/// An exclusive lock on bytes `at..at+10` of file `f` for `client`.
fn lock_of(client: &str, at: u64) -> PersistedLock {
    PersistedLock {
        client_id: client.into(),
        owner_id: format!("owner-{client}"),
        ..request(&handle(b"f"), "o", LockType::Exclusive, at, 10)
    }
}

async fn acquired(session: &NodeSession, lock: &PersistedLock) {
    let answer = session.acquire(lock).await.expect("acquire");
    assert_eq!(answer, Acquire::Granted, "{}", lock.client_id);
}

async fn reclaim(session: &NodeSession, lock: &PersistedLock, principal: Option<&[u8]>) -> Reclaim {
    session.reclaim_as(lock, principal).await.expect("reclaim")
}

fn refused(why: ReclaimRefusal) -> Reclaim {
    Reclaim::NotAllowed(why)
}

async fn client(session: &NodeSession, id: &str) -> Option<ClientRecord> {
    let mut tx = session.store().begin().await.expect("begin");
    tx.get_client(id).await.expect("get_client")
}

/// Who may reclaim after a restart: only a client with a record of a dead
/// epoch of the node, with the record's principal; everything else is
/// `NotAllowed` with its reason, and writes nothing.
pub async fn reclaim_needs_a_record_of_a_dead_epoch(t: &mut dyn TestStore) {
    let s1 = start_node(t, "n").await;
    let other = start_node(t, "m").await;
    let mut with_principal = confirmed("c-princ", &s1);
    with_principal.principal = Some(b"alice@REALM".to_vec());
    seed_clients(t, &[confirmed("c-old", &s1), with_principal]).await;
    seed_clients(t, &[confirmed("c-other", &other)]).await;
    let locks: Vec<_> = ["c-old", "c-princ", "c-none", "c-new", "c-other"]
        .iter()
        .zip(0..)
        .map(|(c, i)| lock_of(c, i * 100))
        .collect();
    for lock in &locks {
        acquired(&s1, lock).await;
    }
    let s2 = start_node(t, "n").await;
    assert_eq!(
        s2.recovery()
            .clients
            .iter()
            .map(|c| c.client_id.as_str())
            .collect::<Vec<_>>(),
        ["c-old", "c-princ"],
        "the recovery set: the clients of the dead epoch"
    );
    seed_clients(t, &[confirmed("c-new", &s2)]).await;
    let cases = [
        (&locks[2], None, refused(ReclaimRefusal::UnknownClient)),
        (&locks[3], None, refused(ReclaimRefusal::NotInRecovery)),
        (&locks[4], None, refused(ReclaimRefusal::OtherNode)),
        (&locks[1], None, refused(ReclaimRefusal::WrongPrincipal)),
        (
            &locks[1],
            Some(&b"mallory"[..]),
            refused(ReclaimRefusal::WrongPrincipal),
        ),
    ];
    for (lock, principal, answer) in cases {
        assert_eq!(
            reclaim(&s2, lock, principal).await,
            answer,
            "{}",
            lock.client_id
        );
    }
    let mut tx = s2.store().begin().await.unwrap();
    for lock in &locks {
        let stored = tx.get_lock(lock.id).await.unwrap().expect("still stored");
        assert_eq!(stored.server_epoch, s1.epoch(), "a refusal writes nothing");
    }
    drop(tx);
    assert_eq!(reclaim(&s2, &locks[0], None).await, Reclaim::Granted);
    let right = Some(&b"alice@REALM"[..]);
    assert_eq!(reclaim(&s2, &locks[1], right).await, Reclaim::Granted);
}

/// RECLAIM_COMPLETE moves the record to the live epoch once; unknown and
/// other nodes' clients are typed errors; `grace_done` turns true when the
/// recovery set is empty; the end of grace deletes the clients that did not
/// reclaim with all their locks, and keeps those that did.
pub async fn reclaim_complete_once_and_end_of_grace(t: &mut dyn TestStore) {
    let s1 = start_node(t, "n").await;
    let other = start_node(t, "m").await;
    seed_clients(t, &[confirmed("done", &s1), confirmed("silent", &s1)]).await;
    seed_clients(t, &[confirmed("theirs", &other)]).await;
    let (kept, lost) = (lock_of("done", 0), lock_of("silent", 100));
    acquired(&s1, &kept).await;
    acquired(&s1, &lost).await;
    let s2 = start_node(t, "n").await;
    assert!(!s2.grace_done().await.unwrap());
    assert_eq!(reclaim(&s2, &kept, None).await, Reclaim::Granted);
    let moved = s2.reclaim_complete("done").await.expect("reclaim_complete");
    assert_eq!((moved.epoch, moved.reclaim_complete), (s2.epoch(), true));
    assert_eq!(client(&s2, "done").await, Some(moved));
    assert!(
        matches!(s2.reclaim_complete("done").await, Err(Error::AlreadyComplete(c)) if c == "done")
    );
    assert_eq!(
        reclaim(&s2, &kept, None).await,
        refused(ReclaimRefusal::NotInRecovery),
        "no reclaim after RECLAIM_COMPLETE"
    );
    assert!(matches!(
        s2.reclaim_complete("nobody").await,
        Err(Error::ClientNotFound(_))
    ));
    assert!(matches!(
        s2.renew_client("nobody").await,
        Err(Error::ClientNotFound(_))
    ));
    assert!(
        matches!(s2.reclaim_complete("theirs").await, Err(Error::WrongNode { node, .. }) if node == "m")
    );
    assert!(matches!(
        s2.renew_client("theirs").await,
        Err(Error::WrongNode { .. })
    ));
    assert_eq!(
        client(&s2, "theirs").await.map(|c| c.epoch),
        Some(other.epoch())
    );
    assert!(
        !s2.grace_done().await.unwrap(),
        "`silent` has not completed"
    );
    s2.end_grace().await.expect("end_grace");
    assert!(s2.grace_done().await.unwrap());
    assert_eq!(
        client(&s2, "silent").await,
        None,
        "dropped at the end of grace"
    );
    let mut tx = s2.store().begin().await.unwrap();
    assert_eq!(tx.get_lock(lost.id).await.unwrap(), None, "with its lock");
    assert!(
        tx.get_lock(kept.id).await.unwrap().is_some(),
        "the reclaimed lock stays"
    );
    assert!(tx.get_client("done").await.unwrap().is_some());
    assert!(
        tx.get_client("theirs").await.unwrap().is_some(),
        "another node's client stays"
    );
}

/// A restart during grace keeps the recovery set: a client that completed
/// in the interrupted grace and one that had not yet reclaimed both may
/// reclaim in the next.
pub async fn restart_during_grace_keeps_the_recovery_set(t: &mut dyn TestStore) {
    let s1 = start_node(t, "n").await;
    seed_clients(t, &[confirmed("quick", &s1), confirmed("slow", &s1)]).await;
    let (quick, slow) = (lock_of("quick", 0), lock_of("slow", 100));
    acquired(&s1, &quick).await;
    acquired(&s1, &slow).await;
    let s2 = start_node(t, "n").await;
    assert_eq!(reclaim(&s2, &quick, None).await, Reclaim::Granted);
    s2.reclaim_complete("quick").await.unwrap();
    // The node crashes again before its grace ends.
    let s3 = start_node(t, "n").await;
    let set: Vec<_> = s3
        .recovery()
        .clients
        .iter()
        .map(|c| c.client_id.clone())
        .collect();
    assert_eq!(set, ["quick", "slow"], "both epochs' clients");
    assert_eq!(
        reclaim(&s3, &slow, None).await,
        Reclaim::Granted,
        "from two epochs back"
    );
    assert_eq!(
        reclaim(&s3, &quick, None).await,
        Reclaim::Granted,
        "again after a restart"
    );
    for c in ["quick", "slow"] {
        s3.reclaim_complete(c).await.unwrap();
    }
    assert!(s3.grace_done().await.unwrap());
    s3.end_grace().await.unwrap();
    assert!(client(&s3, "slow").await.is_some() && client(&s3, "quick").await.is_some());
}

/// RFC 7530 §9.6.3.4.1: A holds a lock, the server restarts, A is
/// partitioned through the grace period and loses its record; B is granted
/// a conflicting lock; the server restarts again. A, which held no state
/// before that restart, may not reclaim (even with its old lock spelled
/// out); B reclaims its own.
pub async fn partitioned_client_cannot_reclaim_after_a_second_restart(t: &mut dyn TestStore) {
    let s1 = start_node(t, "n").await;
    seed_clients(t, &[confirmed("a", &s1)]).await;
    let a_lock = lock_of("a", 0);
    acquired(&s1, &a_lock).await;
    let s2 = start_node(t, "n").await;
    s2.end_grace().await.unwrap(); // A never came back
    assert_eq!(client(&s2, "a").await, None);
    seed_clients(t, &[confirmed("b", &s2)]).await;
    let b_lock = lock_of("b", 0);
    acquired(&s2, &b_lock).await;
    let s3 = start_node(t, "n").await;
    assert_eq!(
        reclaim(&s3, &a_lock, None).await,
        refused(ReclaimRefusal::UnknownClient)
    );
    // A comes back, re-registers (in the new epoch) and tries again.
    seed_clients(t, &[confirmed("a", &s3)]).await;
    assert_eq!(
        reclaim(&s3, &a_lock, None).await,
        refused(ReclaimRefusal::NotInRecovery)
    );
    assert_eq!(reclaim(&s3, &b_lock, None).await, Reclaim::Granted);
}

/// After a takeover, the dead node's clients reclaim through the taker, and
/// RECLAIM_COMPLETE makes them the taker's.
pub async fn clients_reclaim_through_the_taker(t: &mut dyn TestStore) {
    let a = start_node(t, "a").await;
    let b = start_node(t, "b").await;
    seed_clients(t, &[confirmed("c", &a)]).await;
    let lock = lock_of("c", 0);
    acquired(&a, &lock).await;
    assert_eq!(
        reclaim(&b, &lock, None).await,
        refused(ReclaimRefusal::OtherNode),
        "a live client of another node is not in grace"
    );
    declare_dead_forced(&*t.store(), "a", "b").await.unwrap();
    assert_eq!(reclaim(&b, &lock, None).await, Reclaim::Granted);
    let record = b.reclaim_complete("c").await.unwrap();
    assert_eq!((record.node_id.as_str(), record.epoch), ("b", b.epoch()));
    b.end_grace().await.unwrap();
    assert!(client(&b, "c").await.is_some());
}

/// Courteous expiry: a lapsed client keeps its lock until another client's
/// request conflicts; that request revokes it, marks the client expired and
/// is granted in one transaction. A live client's lock is never revoked;
/// `expire_clients` sweeps in bulk.
pub async fn courteous_expiry_revokes_only_on_conflict(t: &mut dyn TestStore) {
    let s = start_node(t, "n").await;
    let lapsed = ClientRecord {
        last_renewed: T0, // 2023: long past any lease
        ..sample_client("lapsed", "n", s.epoch())
    };
    seed_clients(t, &[lapsed, confirmed("live", &s), confirmed("asker", &s)]).await;
    let (old, alive) = (lock_of("lapsed", 0), lock_of("live", 100));
    acquired(&s, &old).await;
    acquired(&s, &alive).await;
    acquired(&s, &lock_of("lapsed", 1000)).await; // no conflict: it stays
    assert!(
        !client(&s, "lapsed").await.unwrap().expired,
        "state stays until a conflict"
    );
    let denied = s.acquire(&lock_of("asker", 105)).await.unwrap();
    assert!(
        matches!(denied, Acquire::Denied { .. }),
        "a live client keeps its lock"
    );
    let wanted = lock_of("asker", 5);
    assert_eq!(s.acquire(&wanted).await.unwrap(), Acquire::Granted);
    let mut tx = s.store().begin().await.unwrap();
    assert_eq!(tx.get_lock(old.id).await.unwrap(), None, "revoked");
    assert!(tx.get_lock(alive.id).await.unwrap().is_some());
    assert!(tx.get_client("lapsed").await.unwrap().unwrap().expired);
    drop(tx);
    assert!(matches!(
        s.renew_client("lapsed").await,
        Err(Error::ClientExpired(_))
    ));
    let s2 = start_node(t, "n").await;
    assert!(
        s2.renew_client("live").await.is_ok(),
        "a recovering client renews"
    );
    assert_eq!(
        reclaim(&s2, &lock_of("lapsed", 1000), None).await,
        refused(ReclaimRefusal::Expired)
    );
    seed_clients(
        t,
        &[ClientRecord {
            last_renewed: T0,
            ..confirmed("late", &s2)
        }],
    )
    .await;
    acquired(&s2, &lock_of("late", 5000)).await;
    assert_eq!(
        s2.expire_clients(Timestamp::now()).await.unwrap(),
        1,
        "only `late` is of this epoch"
    );
    assert!(client(&s2, "late").await.unwrap().expired);
}
