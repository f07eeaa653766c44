//! Lock records: put/get/upsert, delete, and the bulk deletes by client and by file.

use uuid::Uuid;

use super::TestStore;
use super::sample::{all_locks, begin, commit, handle, read_lock, sample_lock, seed};
use crate::{Error, LockQuery, LockType, ShareReservation};

/// put_lock inserts, get_lock returns it equal, a second put with the same id replaces it.
pub async fn locks_put_get_upsert(t: &mut dyn TestStore) {
    let file = handle(b"fh-1");
    let mut lock = sample_lock(&file, "owner", "client", "export");
    assert_eq!(read_lock(t, lock.id).await, None);
    seed(t, &[], std::slice::from_ref(&lock)).await;
    assert_eq!(read_lock(t, lock.id).await, Some(lock.clone()));
    lock.lock_type = LockType::Shared;
    lock.offset = 7;
    lock.length = 0;
    lock.share_reservation = ShareReservation::DenyWrite;
    lock.server_epoch = 9;
    seed(t, &[], std::slice::from_ref(&lock)).await;
    assert_eq!(
        read_lock(t, lock.id).await,
        Some(lock.clone()),
        "put_lock upserts by id"
    );
    assert_eq!(
        all_locks(t, &LockQuery::default()).await,
        vec![lock],
        "an upsert makes no second record"
    );
}

/// delete_lock removes; deleting a missing id is LockNotFound and the transaction stays usable.
pub async fn lock_delete_missing_is_not_found(t: &mut dyn TestStore) {
    let lock = sample_lock(&handle(b"f"), "o", "c", "s");
    seed(t, &[], std::slice::from_ref(&lock)).await;
    let missing = Uuid::new_v4();
    let mut tx = begin(t).await;
    match tx.delete_lock(missing).await {
        Err(Error::LockNotFound(id)) => assert_eq!(id, missing),
        other => panic!("delete of a missing lock: expected LockNotFound, got {other:?}"),
    }
    tx.delete_lock(lock.id)
        .await
        .expect("the transaction is usable after LockNotFound");
    assert!(
        matches!(tx.delete_lock(lock.id).await, Err(Error::LockNotFound(_))),
        "deleted twice"
    );
    commit(tx).await;
    assert_eq!(read_lock(t, lock.id).await, None);
}

/// delete_locks_by_client removes exactly that client's locks and counts them.
pub async fn delete_locks_by_client_counts(t: &mut dyn TestStore) {
    let file = handle(b"f");
    let mine: Vec<_> = (0..5)
        .map(|_| sample_lock(&file, "o", "client1", "s"))
        .collect();
    let other = sample_lock(&file, "o", "client10", "s");
    seed(t, &[], &[mine.clone(), vec![other.clone()]].concat()).await;
    let mut tx = begin(t).await;
    assert_eq!(tx.delete_locks_by_client("client1").await.unwrap(), 5);
    assert_eq!(
        tx.delete_locks_by_client("client1").await.unwrap(),
        0,
        "nothing left to delete"
    );
    assert_eq!(tx.delete_locks_by_client("absent").await.unwrap(), 0);
    commit(tx).await;
    assert_eq!(all_locks(t, &LockQuery::default()).await, vec![other]);
}

/// delete_locks_by_file removes exactly that file's locks and counts them.
pub async fn delete_locks_by_file_counts(t: &mut dyn TestStore) {
    let (f, g) = (handle(&[1, 2]), handle(&[1, 2, 3]));
    let on_f: Vec<_> = (0..3)
        .map(|i| sample_lock(&f, &format!("o{i}"), "c", "s"))
        .collect();
    let on_g = sample_lock(&g, "o", "c", "s");
    seed(t, &[], &[on_f, vec![on_g.clone()]].concat()).await;
    let mut tx = begin(t).await;
    assert_eq!(tx.delete_locks_by_file(&f).await.unwrap(), 3);
    assert_eq!(tx.delete_locks_by_file(&f).await.unwrap(), 0);
    commit(tx).await;
    assert_eq!(all_locks(t, &LockQuery::default()).await, vec![on_g]);
}
