//! `LockStore::put_locks`, the bulk-load API, on every backend: the same
//! result as `put_lock` of each lock in order (a later lock with the same id
//! wins), more locks than one PostgreSQL statement carries, and validation of
//! the whole batch before anything is written.

use fsmeta::{
    Error, FileHandle, LockQuery, LockType, MemoryStore, MetadataStore, MetadataStoreExt,
    PersistedLock, ShareReservation, Timestamp,
};
use uuid::Uuid;

fn lock(i: u64) -> PersistedLock {
    PersistedLock {
        id: Uuid::from_u128(u128::from(i) * 7919 + 1),
        share_name: format!("share{}", i % 3),
        file_id: FileHandle::new(format!("file-{}", i / 10)).expect("handle"),
        owner_id: format!("owner-{}", i % 17),
        client_id: format!("client-{}", i % 5),
        lock_type: if i.is_multiple_of(2) {
            LockType::Shared
        } else {
            LockType::Exclusive
        },
        offset: i * 100,
        length: if i.is_multiple_of(7) { u64::MAX } else { 100 },
        share_reservation: ShareReservation::None,
        acquired_at: Timestamp::from_micros(1_700_000_000_000_000 + i as i64),
        server_epoch: i % 4,
        flavor: fsmeta::LockFlavor::Posix,
    }
}

async fn check_put_locks(store: &dyn MetadataStore) {
    // 2,500 locks: several multi-row statements on PostgreSQL.
    let mut batch: Vec<PersistedLock> = (0..2_500).map(lock).collect();
    // An id written twice in one batch: the later one wins, as with put_lock.
    let mut moved = lock(3);
    moved.client_id = "client-moved".into();
    moved.file_id = FileHandle::new(*b"another-file").expect("handle");
    batch.push(moved.clone());
    let batch = &batch;
    store
        .transact(|tx| Box::pin(async move { tx.put_locks(batch).await }))
        .await
        .expect("put_locks");

    let mut tx = store.begin().await.expect("begin");
    let all = tx.list_locks(&LockQuery::default()).await.expect("list");
    assert_eq!(all.len(), 2_500);
    let mut expected: Vec<PersistedLock> = (0..2_500)
        .map(|i| if i == 3 { moved.clone() } else { lock(i) })
        .collect();
    expected.sort_by_key(|l| l.id);
    assert_eq!(
        all, expected,
        "put_locks stores what put_lock of each would"
    );
    assert_eq!(
        tx.list_locks(&LockQuery::by_client("client-moved"))
            .await
            .expect("by client"),
        vec![moved.clone()]
    );
    assert!(
        !tx.list_locks(&LockQuery::by_file(&lock(3).file_id))
            .await
            .expect("by file")
            .contains(&moved),
        "the earlier version of a lock leaves no index entry behind"
    );

    // One invalid lock rejects the whole batch before anything is written,
    // and the transaction stays usable.
    let mut bad = lock(9_999);
    bad.owner_id = String::new();
    let fresh = lock(5_000);
    let err = tx
        .put_locks(&[fresh.clone(), bad])
        .await
        .expect_err("an empty owner id is invalid");
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
    assert_eq!(tx.get_lock(fresh.id).await.expect("get"), None);
    tx.put_locks(&[]).await.expect("an empty batch is fine");
    tx.put_locks(std::slice::from_ref(&fresh))
        .await
        .expect("still usable");
    tx.commit().await.expect("commit");

    let mut tx = store.begin().await.expect("begin");
    assert_eq!(tx.get_lock(fresh.id).await.expect("get"), Some(fresh));
}

#[tokio::test]
async fn memory_put_locks() {
    check_put_locks(&MemoryStore::new()).await;
}

#[cfg(feature = "fjall")]
#[tokio::test]
async fn fjall_put_locks() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = fsmeta::FjallStore::open(dir.path()).expect("open");
    check_put_locks(&store).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_put_locks() {
    use sea_orm::{ConnectOptions, ConnectionTrait, Database};

    let url = std::env::var("FSMETA_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("fsmeta_test_bulk_{}", Uuid::new_v4().simple());
    let options = fsmeta::PgOptions {
        schema: Some(schema.clone()),
        ..Default::default()
    };
    let store = match fsmeta::PostgresStore::connect_with(&url, options).await {
        Ok(store) => store,
        Err(e) if std::env::var("FSMETA_REQUIRE_POSTGRES").as_deref() != Ok("1") => {
            eprintln!("notice: skipping PostgreSQL test: {url}: {e}");
            return;
        }
        Err(e) => panic!("FSMETA_REQUIRE_POSTGRES=1 but {url} failed: {e}"),
    };
    let outcome = tokio::spawn({
        let store = store.clone();
        async move { check_put_locks(&store).await }
    })
    .await;
    store.close().await.expect("close");
    let mut admin = ConnectOptions::new(&url);
    admin.max_connections(1).sqlx_logging(false);
    let db = Database::connect(admin).await.expect("connect");
    db.execute_unprepared(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
        .expect("drop schema");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}
