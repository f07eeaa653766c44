//! PostgreSQL connection faults: the server terminates the connection a
//! transaction runs on (`pg_terminate_backend`), in the middle of the
//! transaction and right before its commit. Each time the store must answer
//! with a typed error (`Error::Backend`, not retryable, never a panic), keep
//! nothing of the transaction, and run the next `transact` on the same store
//! as if nothing happened (the pool drops the dead connection).
//!
//! The store's connections carry a unique `application_name`
//! (`PgOptions::application_name`); the transaction's connection is the one
//! in state `idle in transaction` in `pg_stat_activity`.
//!
//! Needs PostgreSQL (`FSMETA_TEST_POSTGRES_URL`); skips with a notice when
//! unreachable, unless `FSMETA_REQUIRE_POSTGRES=1`.

use fsmeta::conformance::postgres::TestSchema;
use fsmeta::conformance::{sample_file, sample_lock};
use fsmeta::{
    Error, FileMeta, LockQuery, MetadataStore, MetadataStoreExt, MetadataTransaction, PgOptions,
    PostgresStore,
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

struct Fixture {
    schema: TestSchema,
    store: PostgresStore,
    app: String,
    admin: DatabaseConnection,
}

impl Fixture {
    async fn new() -> Option<Fixture> {
        let schema = TestSchema::create().await?;
        let app = format!("fsmeta-fault-{}", uuid::Uuid::new_v4().simple());
        let store = PostgresStore::connect_with(
            schema.url(),
            PgOptions {
                application_name: Some(app.clone()),
                max_connections: 4,
                ..schema.options()
            },
        )
        .await
        .expect("connect");
        let admin = schema.sql().await;
        Some(Fixture {
            schema,
            store,
            app,
            admin,
        })
    }

    /// Terminates the store's connection that is inside a transaction, and
    /// waits until it is gone; returns how many were terminated.
    async fn terminate_transaction_connection(&self) -> u64 {
        let sql = "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000))::bigint \
                   FROM pg_stat_activity \
                   WHERE application_name = $1 AND state LIKE 'idle in transaction%' \
                   AND pid <> pg_backend_pid()";
        let row = self
            .admin
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                sql,
                [self.app.clone().into()],
            ))
            .await
            .expect("pg_terminate_backend")
            .expect("one row");
        row.try_get_by_index::<i64>(0).expect("count") as u64
    }

    /// The store's connections the server knows.
    async fn connections(&self) -> i64 {
        let row = self
            .admin
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT count(*)::bigint FROM pg_stat_activity WHERE application_name = $1",
                [self.app.clone().into()],
            ))
            .await
            .expect("pg_stat_activity")
            .expect("one row");
        row.try_get_by_index::<i64>(0).expect("count")
    }

    async fn teardown(self) {
        let _ = self.admin.close().await;
        let _ = self.store.close().await;
        self.schema.drop_now().await;
    }
}

/// A typed, non-retryable backend error: what a lost connection must be.
fn assert_backend<T: std::fmt::Debug>(what: &str, r: fsmeta::Result<T>) -> String {
    match r {
        Err(e @ Error::Backend(_)) => {
            assert!(
                !e.is_retryable(),
                "{what}: a lost connection is not a conflict"
            );
            e.to_string()
        }
        other => panic!("{what}: expected Error::Backend, got {other:?}"),
    }
}

/// Nothing of the interrupted transaction is stored, the seed is, and the
/// next `transact` on the same store commits.
async fn assert_recovered(fx: &Fixture, seed: &FileMeta, lost: &[&FileMeta]) {
    let next = sample_file(b"next", "s");
    let n = &next;
    fx.store
        .transact(|tx| Box::pin(async move { tx.put_file(n).await }))
        .await
        .expect("the first transact after the fault");
    let mut tx = fx.store.begin().await.expect("begin");
    assert_eq!(
        tx.get_file(&seed.handle).await.expect("get seed"),
        Some(seed.clone())
    );
    assert_eq!(
        tx.get_file(&next.handle).await.expect("get next"),
        Some(next.clone())
    );
    for file in lost {
        assert_eq!(
            tx.get_file(&file.handle).await.expect("get lost"),
            None,
            "a write of the interrupted transaction is stored"
        );
    }
    assert_eq!(
        tx.list_locks(&LockQuery::default())
            .await
            .expect("list_locks"),
        vec![],
        "a lock of the interrupted transaction is stored"
    );
    assert_eq!(tx.server_epoch().await.expect("epoch"), 0);
}

async fn seed(store: &PostgresStore) -> FileMeta {
    let seed = sample_file(b"seed", "s");
    let s = &seed;
    store
        .transact(|tx| Box::pin(async move { tx.put_file(s).await }))
        .await
        .expect("seed");
    seed
}

/// Writes a file, a lock and an epoch increment in `tx`.
async fn write_some(tx: &mut (dyn MetadataTransaction + '_), file: &FileMeta) {
    tx.put_file(file).await.expect("put_file");
    tx.put_lock(&sample_lock(&file.handle, "o", "c", "s"))
        .await
        .expect("put_lock");
    tx.increment_server_epoch().await.expect("increment");
}

/// The connection dies between two messages: the next message (a read,
/// carrying the write before it) and the commit fail with `Backend`;
/// nothing is stored; the store goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_mid_transaction() {
    let Some(fx) = Fixture::new().await else {
        return;
    };
    let seed = seed(&fx.store).await;
    let (first, second) = (sample_file(b"first", "s"), sample_file(b"second", "s"));
    let mut tx = fx.store.begin().await.expect("begin");
    write_some(&mut *tx, &first).await;
    assert_eq!(fx.terminate_transaction_connection().await, 1);
    // The write is kept for the transaction's next message; the read sends it.
    tx.put_file(&second)
        .await
        .expect("kept for the next message");
    let statement = assert_backend("read after the kill", tx.get_file(&second.handle).await);
    let commit = assert_backend("commit after the kill", tx.commit().await);
    eprintln!("mid-transaction: statement → {statement}; commit → {commit}");
    assert_recovered(&fx, &seed, &[&first, &second]).await;
    fx.teardown().await;
}

/// The connection dies after the last statement, right before `COMMIT`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_at_commit() {
    let Some(fx) = Fixture::new().await else {
        return;
    };
    let seed = seed(&fx.store).await;
    let first = sample_file(b"first", "s");
    let mut tx = fx.store.begin().await.expect("begin");
    write_some(&mut *tx, &first).await;
    assert_eq!(fx.terminate_transaction_connection().await, 1);
    let commit = assert_backend("commit", tx.commit().await);
    eprintln!("at commit: commit → {commit}");
    assert_recovered(&fx, &seed, &[&first]).await;
    fx.teardown().await;
}

/// Inside `transact`: the closure's connection dies under it. `transact`
/// returns the `Backend` error (a lost connection is not a conflict to
/// retry blindly), and the next `transact` commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_inside_transact() {
    let Some(fx) = Fixture::new().await else {
        return;
    };
    let seed = seed(&fx.store).await;
    let first = sample_file(b"first", "s");
    let (f, fx_ref) = (&first, &fx);
    let mut runs = 0;
    let runs_ref = &mut runs;
    let result = fx
        .store
        .transact(|tx| {
            *runs_ref += 1;
            Box::pin(async move {
                write_some(tx, f).await;
                assert_eq!(fx_ref.terminate_transaction_connection().await, 1);
                tx.put_file(&sample_file(b"after", "s")).await
            })
        })
        .await;
    assert_backend("transact", result);
    assert_eq!(runs, 1, "transact retried a lost connection");
    assert_recovered(&fx, &seed, &[&first, &sample_file(b"after", "s")]).await;
    fx.teardown().await;
}

/// Every connection of the pool dies while idle (an administrator's
/// `pg_terminate_backend`, a failover): the next transactions still run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_pool_connections_terminated() {
    let Some(fx) = Fixture::new().await else {
        return;
    };
    let seed = seed(&fx.store).await;
    // Open a few connections, then make them idle.
    let txs = futures_join_all(&fx.store, 4).await;
    drop(txs);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let row = fx
        .admin
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000))::bigint \
             FROM pg_stat_activity WHERE application_name = $1",
            [fx.app.clone().into()],
        ))
        .await
        .expect("terminate")
        .expect("row");
    let killed = row.try_get_by_index::<i64>(0).expect("count");
    assert!(killed >= 1, "no idle connection to terminate");
    assert_eq!(fx.connections().await, 0);
    let mut failures = Vec::new();
    for i in 0..8u8 {
        let file = sample_file(&[b'n', i], "s");
        let f = &file;
        if let Err(e) = fx
            .store
            .transact(|tx| Box::pin(async move { tx.put_file(f).await }))
            .await
        {
            failures.push(e.to_string());
        }
    }
    eprintln!(
        "{killed} idle connections terminated; then 8 transactions: {} failed {failures:?}",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "transactions failed on connections that died while idle: {failures:?}"
    );
    assert_recovered(&fx, &seed, &[]).await;
    fx.teardown().await;
}

/// `n` transactions open at once (so the pool opens `n` connections).
async fn futures_join_all(store: &PostgresStore, n: usize) -> Vec<Box<dyn MetadataTransaction>> {
    let mut txs = Vec::new();
    for _ in 0..n {
        let mut tx = store.begin().await.expect("begin");
        tx.server_epoch().await.expect("epoch");
        txs.push(tx);
    }
    txs
}
