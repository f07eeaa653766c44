//! The PostgreSQL backend against a real server: the whole conformance suite,
//! reopen persistence, and PostgreSQL-specific checks (hostile IDs as plain
//! data, write skew, migrations, u64 values as SQL sees them, corrupt rows).
//!
//! Server: `FSMETA_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). Each store lives in its own
//! freshly created schema, dropped afterwards, so tests run in parallel and
//! leave nothing behind. An unreachable server skips every test with a notice,
//! unless `FSMETA_REQUIRE_POSTGRES=1`, which turns that into a failure.
#![cfg(feature = "postgres")]

use std::time::{Duration, Instant};

use fsmeta::conformance::postgres::{
    PgHarness, PgTestStore, drop_schema, fresh_schema_name, reachable, sql_connection,
};
use fsmeta::conformance::{handle, sample_file, sample_lock};
use fsmeta::{
    Error, LockQuery, MetadataStore, MetadataStoreExt, MetadataTransaction, PgOptions,
    PostgresStore, Result, Timestamp,
};
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

// ---------------------------------------------------------------------------
// The shared suites, each check in a schema of its own

fsmeta::conformance_tests!(PgHarness);
fsmeta::persistence_tests!(PgHarness);

// ---------------------------------------------------------------------------
// Helpers for the PostgreSQL-specific checks

fn options_for(schema: &str) -> PgOptions {
    PgOptions {
        schema: Some(schema.to_owned()),
        ..Default::default()
    }
}

async fn begin(store: &PostgresStore) -> Box<dyn MetadataTransaction> {
    store.begin().await.expect("begin")
}

/// One column of the first row of `sql`, as text.
async fn sql_text(db: &DatabaseConnection, sql: &str) -> Option<String> {
    let row = db
        .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))?;
    row.try_get_by_index::<Option<String>>(0)
        .expect("a text column")
}

async fn sql_exec(db: &DatabaseConnection, sql: &str) {
    db.execute_unprepared(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn table_names(db: &DatabaseConnection) -> Vec<String> {
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() ORDER BY 1",
        ))
        .await
        .expect("list tables");
    rows.iter()
        .map(|r| r.try_get_by_index::<String>(0).expect("table name"))
        .collect()
}

/// Every table of a migrated schema, sorted.
const ALL_TABLES: [&str; 12] = [
    "client_records",
    "delegations",
    "epoch_records",
    "ext_records",
    "files",
    "leases",
    "locks",
    "nodes",
    "opens",
    "seaql_migrations",
    "server_state",
    "waiters",
];

/// How many migrations `Migrator::down` must revert to undo `name` and every
/// migration after it (so the count stays right as migrations are added).
fn down_through(name: &str) -> u32 {
    let names: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    let at = names
        .iter()
        .position(|n| n == name)
        .expect("a known migration");
    u32::try_from(names.len() - at).expect("few migrations")
}
/// How many migrations `Migrator` has.
const MIGRATIONS: &str = "9";

fn is_conflict<T>(r: &Result<T>) -> bool {
    matches!(r, Err(e @ Error::Conflict(_)) if e.is_retryable())
}

// ---------------------------------------------------------------------------
// PostgreSQL-specific checks

/// SQL-looking IDs are bound as parameters: stored and matched as plain text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_ids_are_plain_data() {
    let Some(fx) = PgTestStore::create().await else {
        return;
    };
    let store = fx.pg();
    let hostile = [
        "'; DROP TABLE locks; --",
        "\"; DROP SCHEMA public CASCADE; --",
        "x' OR '1'='1",
        "$1",
        "\\' \\\\ %_*",
        "Robert'); DELETE FROM files; --",
    ];
    let file = handle(b"'; DROP TABLE files; --");
    let mut tx = begin(&store).await;
    let mut ids = Vec::new();
    for (i, id) in hostile.iter().enumerate() {
        let share = format!("share {id}");
        tx.put_file(&sample_file(format!("{id}{i}").as_bytes(), &share))
            .await
            .expect("put_file");
        let lock = sample_lock(&file, id, id, &share);
        ids.push(lock.id);
        tx.put_lock(&lock).await.expect("put_lock");
    }
    tx.commit().await.expect("commit");

    let mut tx = begin(&store).await;
    for id in hostile {
        let share = format!("share {id}");
        for query in [
            LockQuery::by_owner(id),
            LockQuery::by_client(id),
            LockQuery::by_share(&share),
        ] {
            let found = tx.list_locks(&query).await.expect("list_locks");
            assert_eq!(found.len(), 1, "{query:?} must match exactly its own lock");
            assert_eq!(found[0].owner_id, id);
        }
        assert_eq!(tx.list_files(&share).await.expect("list_files").len(), 1);
    }
    assert_eq!(
        tx.list_locks(&LockQuery::by_file(&file))
            .await
            .unwrap()
            .len(),
        hostile.len()
    );
    assert_eq!(
        tx.delete_locks_by_client(hostile[0]).await.expect("delete"),
        1
    );
    tx.commit().await.expect("commit");

    let db = fx.sql().await;
    assert_eq!(table_names(&db).await, ALL_TABLES);
    assert_eq!(
        sql_text(&db, "SELECT count(*)::text FROM locks")
            .await
            .as_deref(),
        Some("5")
    );
    assert_eq!(
        sql_text(
            &db,
            "SELECT owner_id FROM locks WHERE owner_id LIKE '%DROP SCHEMA%'"
        )
        .await
        .as_deref(),
        Some(hostile[1])
    );
    db.close().await.ok();
    drop(store);
    fx.cleanup().await;
}

/// Each transaction reads the range the other writes: PostgreSQL's SSI must
/// fail one of them with 40001, reported as a retryable `Conflict`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_skew_fails_one_with_conflict() {
    let Some(fx) = PgTestStore::create().await else {
        return;
    };
    let store = fx.pg();
    let (a, b) = (handle(b"file-a"), handle(b"file-b"));

    let mut t1 = begin(&store).await;
    let mut t2 = begin(&store).await;
    // t1: "no lock on a, so I may lock b"; t2: "no lock on b, so I may lock a".
    assert!(
        t1.list_locks(&LockQuery::by_file(&a))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        t2.list_locks(&LockQuery::by_file(&b))
            .await
            .unwrap()
            .is_empty()
    );
    let w1 = t1.put_lock(&sample_lock(&b, "o1", "c1", "s")).await;
    let w2 = t2.put_lock(&sample_lock(&a, "o2", "c2", "s")).await;
    let c1 = match w1 {
        Ok(()) => t1.commit().await,
        Err(e) => Err(e),
    };
    let c2 = match w2 {
        Ok(()) => t2.commit().await,
        Err(e) => Err(e),
    };
    assert!(
        is_conflict(&c1) != is_conflict(&c2),
        "exactly one must fail with Conflict: t1 {c1:?}, t2 {c2:?}"
    );
    assert!(
        c1.is_ok() || c2.is_ok(),
        "the other commits: t1 {c1:?}, t2 {c2:?}"
    );

    let mut tx = begin(&store).await;
    assert_eq!(tx.list_locks(&LockQuery::default()).await.unwrap().len(), 1);
    drop(tx);
    drop(store);
    fx.cleanup().await;
}

/// Two transactions waiting on each other's row locks: PostgreSQL breaks the
/// deadlock (40P01) or serialization failure (40001); both are `Conflict`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlock_is_a_conflict() {
    let Some(fx) = PgTestStore::create().await else {
        return;
    };
    let store = fx.pg();
    let f = handle(b"f");
    let (x, y) = (
        sample_lock(&f, "ox", "cx", "s"),
        sample_lock(&f, "oy", "cy", "s"),
    );
    let mut tx = begin(&store).await;
    tx.put_lock(&x).await.unwrap();
    tx.put_lock(&y).await.unwrap();
    tx.commit().await.unwrap();

    // Writes are sent with a transaction's next message: each write here
    // is followed by a read, so that it reaches the server (and takes its
    // row lock) before the other transaction's.
    async fn write_now(
        tx: &mut (dyn MetadataTransaction + '_),
        lock: &fsmeta::PersistedLock,
    ) -> fsmeta::Result<()> {
        tx.put_lock(lock).await?;
        tx.get_lock(lock.id).await.map(|_| ())
    }
    let mut t1 = begin(&store).await;
    let mut t2 = begin(&store).await;
    write_now(&mut *t1, &x).await.unwrap();
    write_now(&mut *t2, &y).await.unwrap();
    // Each now updates the row the other holds.
    let second = tokio::spawn(async move {
        let r = write_now(&mut *t2, &x).await;
        match r {
            Ok(()) => t2.commit().await,
            Err(e) => Err(e),
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r1 = match write_now(&mut *t1, &y).await {
        Ok(()) => t1.commit().await,
        Err(e) => Err(e),
    };
    let r2 = second.await.expect("second transaction task");
    assert!(
        is_conflict(&r1) || is_conflict(&r2),
        "one of them must get Conflict: t1 {r1:?}, t2 {r2:?}"
    );
    assert!(
        r1.is_ok() || r2.is_ok(),
        "the other commits: t1 {r1:?}, t2 {r2:?}"
    );
    drop(store);
    fx.cleanup().await;
}

/// Running the migrations again (twice, by `migrate` and by the Migrator
/// itself) changes nothing, and `down` then `up` rebuilds a working store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_idempotent_and_reversible() {
    let Some(fx) = PgTestStore::create().await else {
        return;
    };
    let store = fx.pg();
    let f = sample_file(b"kept", "s");
    let lock = sample_lock(&f.handle, "o", "c", "s");
    let mut tx = begin(&store).await;
    tx.put_file(&f).await.unwrap();
    tx.put_lock(&lock).await.unwrap();
    assert_eq!(tx.increment_server_epoch().await.unwrap(), 1);
    tx.commit().await.unwrap();

    let db = fx.sql().await;
    let schema_before = sql_text(
        &db,
        "SELECT string_agg(table_name || '.' || column_name || ':' || data_type, ',' \
         ORDER BY table_name, column_name) FROM information_schema.columns \
         WHERE table_schema = current_schema()",
    )
    .await;
    store.migrate().await.expect("migrate again");
    store.migrate().await.expect("and again");
    Migrator::up(&db, None)
        .await
        .expect("Migrator::up on a current schema");
    let schema_after = sql_text(
        &db,
        "SELECT string_agg(table_name || '.' || column_name || ':' || data_type, ',' \
         ORDER BY table_name, column_name) FROM information_schema.columns \
         WHERE table_schema = current_schema()",
    )
    .await;
    assert_eq!(schema_before, schema_after);
    assert_eq!(
        sql_text(&db, "SELECT count(*)::text FROM seaql_migrations")
            .await
            .as_deref(),
        Some(MIGRATIONS),
        "each migration recorded once"
    );
    let mut tx = begin(&store).await;
    assert_eq!(
        tx.get_file(&f.handle).await.unwrap(),
        Some(f.clone()),
        "data survives"
    );
    assert_eq!(tx.get_lock(lock.id).await.unwrap(), Some(lock.clone()));
    assert_eq!(tx.server_epoch().await.unwrap(), 1);
    drop(tx);

    // Down: every table but the migration table is gone.
    Migrator::down(&db, None).await.expect("down");
    assert_eq!(table_names(&db).await, ["seaql_migrations"]);
    assert_eq!(
        sql_text(&db, "SELECT count(*)::text FROM seaql_migrations")
            .await
            .as_deref(),
        Some("0")
    );
    // Up again: a new, empty store.
    Migrator::up(&db, None).await.expect("up");
    assert_eq!(table_names(&db).await, ALL_TABLES);
    let mut tx = begin(&store).await;
    assert_eq!(tx.get_file(&f.handle).await.unwrap(), None);
    assert_eq!(tx.server_epoch().await.unwrap(), 0);
    assert!(fsmeta::clean_shutdown(&mut *tx).await.unwrap());
    tx.put_lock(&lock).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        begin(&store).await.get_lock(lock.id).await.unwrap(),
        Some(lock)
    );

    db.close().await.ok();
    drop(store);
    fx.cleanup().await;
}

/// Migration 10: every lock list filter has a `(column, id)` index, so a
/// query `ORDER BY id` can read its rows in order (no sort), and the
/// single-column indexes it makes redundant are gone; its `down` brings
/// them back, and `up` again replaces them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_indexes_are_column_then_id() {
    let Some(fx) = PgTestStore::create().await else {
        return;
    };
    let store = fx.pg();
    begin(&store).await.server_epoch().await.unwrap();
    let db = fx.sql().await;
    let indexes = "SELECT string_agg(indexdef, '; ' ORDER BY indexname) FROM pg_indexes \
                   WHERE schemaname = current_schema() AND tablename = 'locks'";
    let composite = [
        "locks_client_id_id_idx ON %locks USING btree (client_id, id)",
        "locks_file_id_id_idx ON %locks USING btree (file_id, id)",
        "locks_owner_id_id_idx ON %locks USING btree (owner_id, id)",
        "UNIQUE INDEX locks_pkey ON %locks USING btree (id)",
        "locks_server_epoch_id_idx ON %locks USING btree (server_epoch, id)",
        "locks_share_name_id_idx ON %locks USING btree (share_name, id)",
    ];
    let single = [
        "locks_client_id_idx ON %locks USING btree (client_id)",
        "locks_file_id_idx ON %locks USING btree (file_id)",
        "locks_owner_id_idx ON %locks USING btree (owner_id)",
        "UNIQUE INDEX locks_pkey ON %locks USING btree (id)",
        "locks_server_epoch_idx ON %locks USING btree (server_epoch)",
        "locks_share_name_idx ON %locks USING btree (share_name)",
    ];
    // `indexdef` names the table with its schema: compare without it.
    let defs = |text: Option<String>| -> Vec<String> {
        text.unwrap_or_default()
            .split("; ")
            .map(|d| {
                let d = d.strip_prefix("CREATE ").unwrap_or(d);
                let d = d.strip_prefix("INDEX ").unwrap_or(d);
                let (name, rest) = d.split_once(" ON ").expect("an index definition");
                let (_, rest) = rest.split_once(" USING ").expect("an index method");
                format!("{name} ON %locks USING {rest}")
            })
            .collect()
    };
    assert_eq!(defs(sql_text(&db, indexes).await), composite);
    Migrator::down(&db, Some(1))
        .await
        .expect("down migration 10");
    assert_eq!(defs(sql_text(&db, indexes).await), single);
    Migrator::up(&db, None).await.expect("up again");
    assert_eq!(defs(sql_text(&db, indexes).await), composite);
    db.close().await.ok();
    drop(store);
    fx.cleanup().await;
}

/// Expand/contract: `connect` only adds, so the column migration 2 replaced
/// (`server_state.clean_shutdown`) is still there for servers of the previous
/// release, which read and write it; the explicit contract step drops it,
/// once, and later connects do not bring it back. Its `down` restores it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_only_expands_and_contract_drops() {
    let Some(fx) = PgTestStore::create().await else {
        return;
    };
    let store = fx.pg();
    let db = fx.sql().await;
    let has_column = "SELECT count(*)::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = 'server_state' \
         AND column_name = 'clean_shutdown'";
    assert_eq!(sql_text(&db, has_column).await.as_deref(), Some("1"));
    // A server of the previous release, as it reads and writes the flag.
    sql_exec(
        &db,
        "UPDATE server_state SET clean_shutdown = false WHERE id = 1",
    )
    .await;
    assert_eq!(
        sql_text(
            &db,
            "SELECT clean_shutdown::text || ' ' || epoch::text FROM server_state WHERE id = 1"
        )
        .await
        .as_deref(),
        Some("false 0")
    );
    // The new release works beside it.
    let mut tx = begin(&store).await;
    assert_eq!(tx.increment_server_epoch().await.unwrap(), 1);
    tx.commit().await.unwrap();
    store.migrate().await.expect("migrate again");
    assert_eq!(
        sql_text(&db, has_column).await.as_deref(),
        Some("1"),
        "still there"
    );

    // Every server upgraded: the operator's contract step.
    store.contract().await.expect("contract");
    assert_eq!(
        sql_text(&db, has_column).await.as_deref(),
        Some("0"),
        "dropped"
    );
    store.contract().await.expect("contract again is a no-op");
    assert_eq!(
        sql_text(&db, "SELECT count(*)::text FROM fsmeta_contract_migrations")
            .await
            .as_deref(),
        Some("1")
    );
    // A reconnect (expand only) neither fails nor re-adds it; the store works.
    let again = PostgresStore::connect_with(fx.schema().url(), fx.schema().options())
        .await
        .expect("connect after contract");
    assert_eq!(sql_text(&db, has_column).await.as_deref(), Some("0"));
    let mut tx = begin(&again).await;
    assert_eq!(tx.increment_server_epoch().await.unwrap(), 2);
    assert!(fsmeta::clean_shutdown(&mut *tx).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(
        sql_text(&db, "SELECT count(*)::text FROM seaql_migrations")
            .await
            .as_deref(),
        Some(MIGRATIONS)
    );
    drop(again);

    // Down puts the column back, filled from the default node's flag.
    migration::ContractMigrator::down(&db, None)
        .await
        .expect("contract down");
    assert_eq!(
        sql_text(&db, "SELECT clean_shutdown::text FROM server_state")
            .await
            .as_deref(),
        Some("true")
    );
    db.close().await.ok();
    drop(store);
    fx.cleanup().await;
}

/// Several servers connecting to a new schema at once: one migrates, the
/// others wait for it and find nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_connects_migrate_once() {
    let Some(url) = reachable().await else { return };
    let schema = fresh_schema_name();
    let connects = (0..4).map(|_| {
        let (url, options) = (url.clone(), options_for(&schema));
        tokio::spawn(async move { PostgresStore::connect_with(&url, options).await })
    });
    let mut stores = Vec::new();
    for c in connects.collect::<Vec<_>>() {
        stores.push(c.await.expect("task").expect("concurrent connect"));
    }
    let mut tx = begin(&stores[0]).await;
    assert_eq!(tx.increment_server_epoch().await.unwrap(), 1);
    tx.commit().await.unwrap();
    assert_eq!(
        begin(&stores[3]).await.server_epoch().await.unwrap(),
        1,
        "one shared store"
    );
    let db = sql_connection(&url, &schema).await;
    assert_eq!(
        sql_text(&db, "SELECT count(*)::text FROM seaql_migrations")
            .await
            .as_deref(),
        Some(MIGRATIONS)
    );
    db.close().await.ok();
    drop(stores);
    drop_schema(&url, &schema).await.expect("drop schema");
}

/// A fixture dropped without `teardown` (a failing check unwinding) still
/// drops its schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_fixture_removes_its_schema() {
    let Some(fx) = PgTestStore::create().await else {
        return;
    };
    let (url, schema) = (fx.schema().url().to_owned(), fx.schema().name().to_owned());
    let mut tx = begin(&fx.pg()).await;
    tx.put_file(&sample_file(b"left behind", "s"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    drop(fx);
    let admin = sql_connection(&url, "public").await;
    let count = format!("SELECT count(*)::text FROM pg_namespace WHERE nspname = '{schema}'");
    assert_eq!(sql_text(&admin, &count).await.as_deref(), Some("0"));
    admin.close().await.ok();
}

/// A store used before nodes existed becomes node `DEFAULT_NODE`'s when
/// migration 2 runs (an unused one gets no node, like a new store); `down`
/// puts the clean flag back into `server_state`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_node_store_becomes_the_default_node() {
    assert_eq!(migration::LEGACY_NODE_ID, fsmeta::DEFAULT_NODE);
    let Some(fx) = PgTestStore::create().await else {
        return;
    };
    let store = fx.pg();
    let db = fx.sql().await;
    // Down past nodes (migration 2) and every migration after it.
    Migrator::down(&db, Some(down_through("m20261127_000002_nodes")))
        .await
        .expect("down to the pre-node schema");
    assert_eq!(
        table_names(&db).await,
        ["files", "locks", "seaql_migrations", "server_state"]
    );
    // The last pre-node incarnation crashed with epoch 7.
    sql_exec(
        &db,
        "UPDATE server_state SET epoch = 7, clean_shutdown = false",
    )
    .await;
    Migrator::up(&db, None).await.expect("up");
    let mut tx = begin(&store).await;
    assert_eq!(
        tx.get_node(fsmeta::DEFAULT_NODE).await.unwrap(),
        Some(fsmeta::NodeState {
            node_id: fsmeta::DEFAULT_NODE.into(),
            epoch: 7,
            clean_shutdown: false,
            lease_expires_at: None,
            taken_over: None,
        })
    );
    assert!(
        !fsmeta::clean_shutdown(&mut *tx).await.unwrap(),
        "still unclean"
    );
    assert_eq!(tx.server_epoch().await.unwrap(), 7);
    drop(tx);

    Migrator::down(&db, Some(down_through("m20261127_000002_nodes")))
        .await
        .expect("down again");
    assert_eq!(
        sql_text(
            &db,
            "SELECT clean_shutdown::text || ' ' || epoch::text FROM server_state"
        )
        .await
        .as_deref(),
        Some("false 7")
    );
    // An unused pre-node store: no node row, like a new store.
    sql_exec(
        &db,
        "UPDATE server_state SET epoch = 0, clean_shutdown = true",
    )
    .await;
    Migrator::up(&db, None).await.expect("up");
    let mut tx = begin(&store).await;
    assert_eq!(tx.list_nodes().await.unwrap(), vec![]);
    assert!(fsmeta::clean_shutdown(&mut *tx).await.unwrap());
    drop(tx);
    db.close().await.ok();
    drop(store);
    fx.cleanup().await;
}

/// u64::MAX in every u64 column, as PostgreSQL itself shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn u64_max_is_stored_as_its_true_value() {
    let Some(fx) = PgTestStore::create().await else {
        return;
    };
    let store = fx.pg();
    let mut f = sample_file(b"big", "s");
    f.size = u64::MAX;
    f.mode = u32::MAX;
    let mut lock = sample_lock(&f.handle, "o", "c", "s");
    (lock.offset, lock.length, lock.server_epoch) = (u64::MAX, u64::MAX, u64::MAX);
    let mut tx = begin(&store).await;
    tx.put_file(&f).await.unwrap();
    tx.put_lock(&lock).await.unwrap();
    tx.commit().await.unwrap();

    let db = fx.sql().await;
    let max = Some("18446744073709551615");
    assert_eq!(
        sql_text(&db, "SELECT \"offset\"::text FROM locks")
            .await
            .as_deref(),
        max
    );
    assert_eq!(
        sql_text(&db, "SELECT length::text FROM locks")
            .await
            .as_deref(),
        max
    );
    assert_eq!(
        sql_text(&db, "SELECT server_epoch::text FROM locks")
            .await
            .as_deref(),
        max
    );
    assert_eq!(
        sql_text(&db, "SELECT size::text FROM files")
            .await
            .as_deref(),
        max
    );
    assert_eq!(
        sql_text(&db, "SELECT mode::text FROM files")
            .await
            .as_deref(),
        Some("4294967295")
    );

    // The epoch can reach u64::MAX too, and then refuses to grow without
    // breaking the transaction.
    sql_exec(&db, "UPDATE server_state SET epoch = 18446744073709551614").await;
    let mut tx = begin(&store).await;
    assert_eq!(tx.increment_server_epoch().await.unwrap(), u64::MAX);
    let r = tx.increment_server_epoch().await;
    assert!(
        matches!(r, Err(Error::EpochExhausted)),
        "epoch past u64::MAX: {r:?}"
    );
    assert_eq!(
        tx.server_epoch().await.unwrap(),
        u64::MAX,
        "the transaction stays usable"
    );
    tx.commit().await.unwrap();
    assert_eq!(
        sql_text(&db, "SELECT epoch::text FROM server_state")
            .await
            .as_deref(),
        max
    );
    // `server_epoch < $n` compares numerically over the whole range.
    let mut tx = begin(&store).await;
    assert!(
        tx.list_locks(&LockQuery::epoch_below(u64::MAX))
            .await
            .unwrap()
            .is_empty()
    );
    drop(tx);

    // Negative or over-large values cannot be written behind fsmeta's back.
    for sql in [
        "UPDATE locks SET \"offset\" = -1",
        "UPDATE locks SET length = 18446744073709551616",
        "UPDATE files SET uid = 4294967296",
        "UPDATE locks SET lock_type = 2",
        "UPDATE files SET kind = 4",
        "UPDATE locks SET acquired_at = 'infinity'",
        "INSERT INTO server_state (id) VALUES (2)",
    ] {
        let r = db.execute_unprepared(sql).await;
        assert!(r.is_err(), "{sql}: a CHECK must reject it");
    }
    db.close().await.ok();
    drop(store);
    fx.cleanup().await;
}

/// The extreme valid timestamps are exact in the database, not just in a round trip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamp_extremes_are_exact_in_sql() {
    let Some(fx) = PgTestStore::create().await else {
        return;
    };
    let store = fx.pg();
    let mut lo = sample_lock(&handle(b"lo"), "o", "c", "s");
    lo.acquired_at = Timestamp::MIN_VALID;
    let mut hi = sample_lock(&handle(b"hi"), "o", "c", "s");
    hi.acquired_at = Timestamp::MAX_VALID;
    let mut tx = begin(&store).await;
    tx.put_lock(&lo).await.unwrap();
    tx.put_lock(&hi).await.unwrap();
    tx.commit().await.unwrap();
    let db = fx.sql().await;
    let at = |id: uuid::Uuid| {
        format!(
            "SELECT to_char(acquired_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') \
             FROM locks WHERE id = '{id}'"
        )
    };
    assert_eq!(
        sql_text(&db, &at(lo.id)).await.as_deref(),
        Some("0001-01-01T00:00:00.000000")
    );
    assert_eq!(
        sql_text(&db, &at(hi.id)).await.as_deref(),
        Some("9999-12-31T23:59:59.999999")
    );
    let mut tx = begin(&store).await;
    assert_eq!(tx.get_lock(lo.id).await.unwrap(), Some(lo));
    assert_eq!(tx.get_lock(hi.id).await.unwrap(), Some(hi));
    drop(tx);
    db.close().await.ok();
    drop(store);
    fx.cleanup().await;
}

/// Rows edited by hand (CHECKs dropped first) that break the model are
/// `Error::Corrupt` on read, never a panic and never silently skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_that_break_the_model_are_corrupt() {
    let Some(fx) = PgTestStore::create().await else {
        return;
    };
    let store = fx.pg();
    let f = sample_file(b"f", "s");
    let lock = sample_lock(&f.handle, "o", "c", "s");
    let mut tx = begin(&store).await;
    tx.put_file(&f).await.unwrap();
    tx.put_lock(&lock).await.unwrap();
    tx.commit().await.unwrap();
    let db = fx.sql().await;

    async fn expect_corrupt(
        store: &PostgresStore,
        lock_id: uuid::Uuid,
        f: &fsmeta::FileMeta,
        what: &str,
    ) {
        let mut tx = begin(store).await;
        let l = tx.get_lock(lock_id).await;
        let all = tx.list_locks(&LockQuery::default()).await;
        let file = tx.get_file(&f.handle).await;
        let files = tx.list_files(&f.share_name).await;
        let corrupt = |r: &str, ok: bool| assert!(ok, "{what}: {r} must be Error::Corrupt");
        corrupt(
            &format!("get_lock {l:?}"),
            matches!(l, Err(Error::Corrupt(_))) || matches!(file, Err(Error::Corrupt(_))),
        );
        corrupt(
            &format!("lists {all:?} / {files:?}"),
            matches!(all, Err(Error::Corrupt(_))) || matches!(files, Err(Error::Corrupt(_))),
        );
    }

    let cases: [(&str, &str, &str); 10] = [
        (
            "locks_flavor_check",
            "UPDATE locks SET flavor = 2",
            "UPDATE locks SET flavor = 0",
        ),
        (
            "locks_lock_type_check",
            "UPDATE locks SET lock_type = 7",
            "UPDATE locks SET lock_type = 1",
        ),
        (
            "locks_share_reservation_check",
            "UPDATE locks SET share_reservation = -1",
            "UPDATE locks SET share_reservation = 0",
        ),
        (
            "locks_offset_check",
            "UPDATE locks SET \"offset\" = 'NaN'",
            "UPDATE locks SET \"offset\" = 0",
        ),
        (
            "locks_server_epoch_check",
            "UPDATE locks SET server_epoch = -5",
            "UPDATE locks SET server_epoch = 1",
        ),
        (
            "locks_acquired_at_check",
            "UPDATE locks SET acquired_at = 'infinity'",
            "UPDATE locks SET acquired_at = now()",
        ),
        (
            "locks_file_id_check",
            "UPDATE locks SET file_id = ''::bytea",
            "UPDATE locks SET file_id = 'f'::bytea",
        ),
        (
            "files_kind_check",
            "UPDATE files SET kind = 9",
            "UPDATE files SET kind = 0",
        ),
        (
            "files_mode_check",
            "UPDATE files SET mode = -1",
            "UPDATE files SET mode = 0",
        ),
        (
            "files_mtime_check",
            "UPDATE files SET mtime = '20000-01-01 00:00:00+00'",
            "UPDATE files SET mtime = now()",
        ),
    ];
    for (constraint, break_it, repair) in cases {
        let table = constraint.split('_').next().unwrap();
        sql_exec(
            &db,
            &format!("ALTER TABLE {table} DROP CONSTRAINT {constraint}"),
        )
        .await;
        sql_exec(&db, break_it).await;
        expect_corrupt(&store, lock.id, &f, break_it).await;
        sql_exec(&db, repair).await;
    }
    // A missing server_state row is corrupt too, and the transaction is not poisoned by it.
    sql_exec(&db, "DELETE FROM server_state").await;
    let mut tx = begin(&store).await;
    assert!(matches!(tx.server_epoch().await, Err(Error::Corrupt(_))));
    assert!(matches!(
        tx.increment_server_epoch().await,
        Err(Error::Corrupt(_))
    ));
    // The clean flag is node state, untouched by this.
    assert!(
        fsmeta::clean_shutdown(&mut *tx)
            .await
            .expect("clean_shutdown")
    );
    drop(tx);
    db.close().await.ok();
    drop(store);
    fx.cleanup().await;
}

/// `verify` decodes every row on its own: each bad row of each table is a
/// problem (a bad file row does not hide the bad lock after it), healthy
/// rows are counted, and nothing is changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_every_bad_row_and_keeps_walking() {
    let Some(fx) = PgTestStore::create().await else {
        return;
    };
    let store = fx.pg();
    let files: Vec<_> = [&b"f1"[..], b"f2", b"f3"]
        .iter()
        .map(|h| sample_file(h, "s"))
        .collect();
    let locks: Vec<_> = ["o1", "o2", "o3"]
        .iter()
        .map(|o| sample_lock(&files[0].handle, o, "c", "s"))
        .collect();
    let mut tx = begin(&store).await;
    for f in &files {
        tx.put_file(f).await.unwrap();
    }
    tx.put_locks(&locks).await.unwrap();
    let node = fsmeta::NodeState {
        node_id: "n1".into(),
        epoch: 3,
        clean_shutdown: true,
        lease_expires_at: Some(fsmeta::Timestamp::from_micros(1_700_000_000_000_000)),
        taken_over: Some(fsmeta::Takeover {
            by: "n2".into(),
            at: fsmeta::Timestamp::from_micros(-1),
        }),
    };
    tx.put_node(&node).await.unwrap();
    tx.put_epoch_record(&fsmeta::EpochRecord {
        epoch: 3,
        node_id: "n1".into(),
        started_at: Timestamp::from_micros(1_700_000_000_000_000),
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert!(store.verify().await.unwrap().is_healthy());

    let db = fx.sql().await;
    for (table, constraint) in [
        ("files", "files_kind_check"),
        ("locks", "locks_offset_check"),
        ("nodes", "nodes_epoch_check"),
        ("epoch_records", "epoch_records_started_at_check"),
    ] {
        sql_exec(
            &db,
            &format!("ALTER TABLE {table} DROP CONSTRAINT {constraint}"),
        )
        .await;
    }
    // Out of range (decodes, breaks the model) and undecodable (NaN, infinity).
    sql_exec(&db, "UPDATE files SET kind = 9 WHERE handle = 'f1'::bytea").await;
    sql_exec(
        &db,
        &format!(
            "UPDATE locks SET \"offset\" = 'NaN' WHERE id = '{}'",
            locks[1].id
        ),
    )
    .await;
    sql_exec(&db, "UPDATE nodes SET epoch = -5").await;
    sql_exec(&db, "UPDATE epoch_records SET started_at = 'infinity'").await;

    let report = store.verify().await.expect("verify runs to the end");
    assert_eq!(
        (report.files, report.locks),
        (3, 3),
        "every row examined: {report:?}"
    );
    let mut found: Vec<_> = report
        .problems
        .iter()
        .map(|p| (p.location.clone(), p.kind))
        .collect();
    found.sort();
    let mut expected = vec![
        ("files/6631".to_owned(), fsmeta::ProblemKind::InvalidRecord),
        (
            format!("locks/{}", locks[1].id),
            fsmeta::ProblemKind::Undecodable,
        ),
        ("nodes/n1".to_owned(), fsmeta::ProblemKind::InvalidRecord),
        (
            "epoch_records/3".to_owned(),
            fsmeta::ProblemKind::Undecodable,
        ),
    ];
    expected.sort();
    assert_eq!(found, expected, "{:#?}", report.problems);
    db.close().await.ok();
    drop(store);
    fx.cleanup().await;
}

/// Extension rows edited past their CHECKs (bad table name, empty key,
/// value over 1 MiB, NULL value) are `Error::Corrupt` on read, and `verify`
/// reports each one and walks on to the healthy rows after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ext_rows_that_break_the_limits_are_corrupt_and_verified() {
    let Some(fx) = PgTestStore::create().await else {
        return;
    };
    let store = fx.pg();
    let mut tx = begin(&store).await;
    for (table, key) in [
        ("a", &b"k1"[..]),
        ("a", b"k2"),
        ("a", b"k3"),
        ("b", b"k4"),
        ("z", b"ok"),
    ] {
        tx.ext_put(table, key, b"v").await.unwrap();
    }
    tx.ext_put("y", b"k5", b"v").await.unwrap();
    tx.commit().await.unwrap();
    assert!(store.verify().await.unwrap().is_healthy());

    let db = fx.sql().await;
    for constraint in [
        "ext_records_table_name_check",
        "ext_records_table_name_chars_check",
        "ext_records_key_check",
        "ext_records_value_check",
    ] {
        sql_exec(
            &db,
            &format!("ALTER TABLE ext_records DROP CONSTRAINT {constraint}"),
        )
        .await;
    }
    sql_exec(
        &db,
        "ALTER TABLE ext_records ALTER COLUMN value DROP NOT NULL",
    )
    .await;
    sql_exec(
        &db,
        "UPDATE ext_records SET value = convert_to(repeat('x', 1048577), 'UTF8') \
         WHERE key = 'k1'::bytea",
    )
    .await;
    sql_exec(
        &db,
        "UPDATE ext_records SET key = ''::bytea WHERE key = 'k2'::bytea",
    )
    .await;
    sql_exec(
        &db,
        "UPDATE ext_records SET value = NULL WHERE key = 'k3'::bytea",
    )
    .await;
    sql_exec(
        &db,
        "UPDATE ext_records SET table_name = 'B-d' WHERE key = 'k4'::bytea",
    )
    .await;

    sql_exec(
        &db,
        &format!(
            "UPDATE ext_records SET table_name = '{}' WHERE key = 'k5'::bytea",
            "y".repeat(65)
        ),
    )
    .await;

    let mut tx = begin(&store).await;
    let corrupt = |what: &str, r: &Result<_>| {
        assert!(matches!(r, Err(Error::Corrupt(_))), "{what}: {r:?}");
    };
    corrupt("oversized value", &tx.ext_get("a", b"k1").await.map(drop));
    corrupt("NULL value", &tx.ext_get("a", b"k3").await.map(drop));
    corrupt(
        "scan over them",
        &tx.ext_scan("a", &fsmeta::KeyRange::All, None, 10)
            .await
            .map(drop),
    );
    corrupt("bad table name", &tx.ext_tables().await.map(drop));
    // Decoding failures leave the transaction usable.
    assert_eq!(tx.ext_get("z", b"ok").await.unwrap(), Some(b"v".to_vec()));
    tx.ext_put("z", b"new", b"still usable").await.unwrap();
    tx.commit().await.expect("commit after Corrupt reads");

    let report = store.verify().await.expect("verify runs to the end");
    let mut found: Vec<_> = report
        .problems
        .iter()
        .map(|p| (p.location.clone(), p.kind))
        .collect();
    found.sort();
    let mut expected = vec![
        (
            "ext_records/a/".to_owned(),
            fsmeta::ProblemKind::InvalidRecord,
        ),
        (
            "ext_records/a/6b31".to_owned(),
            fsmeta::ProblemKind::InvalidRecord,
        ),
        (
            "ext_records/a/6b33".to_owned(),
            fsmeta::ProblemKind::Undecodable,
        ),
        (
            "ext_records/B-d/6b34".to_owned(),
            fsmeta::ProblemKind::InvalidRecord,
        ),
        (
            format!("ext_records/{}/6b35", "y".repeat(65)),
            fsmeta::ProblemKind::InvalidRecord,
        ),
    ];
    expected.sort();
    assert_eq!(found, expected, "{:#?}", report.problems);
    db.close().await.ok();
    drop(store);
    fx.cleanup().await;
}

/// `delete_locks` (one `DELETE … IN` per chunk of ids): repeated and missing
/// ids are skipped, the count is of locks deleted, more ids than one
/// statement takes are split, and it is part of the transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_locks_deletes_exactly_the_stored_ids() {
    let Some(fx) = PgTestStore::create().await else {
        return;
    };
    let store = fx.pg();
    let f = handle(b"f");
    let locks: Vec<_> = ["a", "b", "c", "d"]
        .iter()
        .map(|o| sample_lock(&f, o, "c", "s"))
        .collect();
    let mut tx = begin(&store).await;
    tx.put_locks(&locks).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = begin(&store).await;
    assert_eq!(tx.delete_locks(&[]).await.unwrap(), 0);
    let ids = [locks[0].id, locks[0].id, uuid::Uuid::new_v4(), locks[1].id];
    assert_eq!(tx.delete_locks(&ids).await.unwrap(), 2);
    let left: Vec<_> = tx
        .list_locks(&LockQuery::default())
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect();
    let mut expected = vec![locks[2].id, locks[3].id];
    expected.sort();
    assert_eq!(left, expected, "reads its own deletes");
    tx.rollback().await.unwrap();
    assert_eq!(
        begin(&store)
            .await
            .list_locks(&LockQuery::default())
            .await
            .unwrap()
            .len(),
        4,
        "rolled back"
    );

    // More ids than one statement carries; the stored ones at both ends.
    let mut many: Vec<_> = (0..25_000).map(|_| uuid::Uuid::new_v4()).collect();
    many.insert(0, locks[2].id);
    many.push(locks[3].id);
    let mut tx = begin(&store).await;
    assert_eq!(tx.delete_locks(&many).await.unwrap(), 2);
    tx.commit().await.unwrap();
    let mut tx = begin(&store).await;
    let left = tx.list_locks(&LockQuery::default()).await.unwrap();
    assert_eq!(left.len(), 2, "{left:?}");
    drop(tx);
    drop(store);
    fx.cleanup().await;
}

/// `sqlstate_of` reads the server's SQLSTATE through fsmeta's error mapping:
/// a missing table is 42P01 whatever the message says; errors fsmeta raises
/// itself have none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlstate_of_names_a_missing_table() {
    use fsmeta::backend::postgres::{UNDEFINED_TABLE, sqlstate_of};
    let Some(fx) = PgTestStore::create().await else {
        return;
    };
    let store = fx.pg();
    let db = fx.sql().await;
    sql_exec(&db, "DROP TABLE files").await;
    let mut tx = begin(&store).await;
    let invalid = tx.put_file(&sample_file(b"f", "")).await.unwrap_err();
    assert_eq!(sqlstate_of(&invalid), None, "{invalid}");
    let missing = tx.get_file(&handle(b"f")).await.unwrap_err();
    assert_eq!(
        sqlstate_of(&missing).as_deref(),
        Some(UNDEFINED_TABLE),
        "{missing}"
    );
    drop(tx);
    db.close().await.ok();
    drop(store);
    fx.cleanup().await;
}

/// `connect_with`: odd schema names are quoted identifiers, `migrate: false`
/// leaves the schema alone, a zero pool is refused, `open()` takes a URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_options_are_honoured() {
    let Some(url) = reachable().await else { return };
    let odd = format!("Odd \"schema\" {}", uuid::Uuid::new_v4().simple());
    let store = PostgresStore::connect_with(&url, options_for(&odd))
        .await
        .expect("odd schema");
    assert_eq!(store.schema(), Some(odd.as_str()));
    let mut tx = begin(&store).await;
    tx.put_file(&sample_file(b"x", "s")).await.unwrap();
    tx.commit().await.unwrap();
    let db = sql_connection(&url, &odd).await;
    assert_eq!(
        sql_text(&db, "SELECT count(*)::text FROM files")
            .await
            .as_deref(),
        Some("1")
    );
    db.close().await.ok();
    drop(store);
    drop_schema(&url, &odd).await.expect("drop odd schema");

    let r = PostgresStore::connect_with(
        &url,
        PgOptions {
            max_connections: 0,
            ..Default::default()
        },
    )
    .await;
    assert!(matches!(r, Err(Error::Invalid(_))), "{r:?}");
    let r = PostgresStore::connect_with(&url, options_for("")).await;
    assert!(matches!(r, Err(Error::Invalid(_))), "{r:?}");

    // migrate: false does not create anything; operations then fail cleanly.
    let bare = fresh_schema_name();
    let store = PostgresStore::connect_with(
        &url,
        PgOptions {
            schema: Some(bare.clone()),
            migrate: false,
            ..Default::default()
        },
    )
    .await
    .expect("connect without migrating");
    let r = begin(&store).await.server_epoch().await;
    assert!(matches!(r, Err(Error::Backend(_))), "no tables: {r:?}");
    let admin = sql_connection(&url, "public").await;
    assert_eq!(
        sql_text(
            &admin,
            &format!("SELECT count(*)::text FROM pg_namespace WHERE nspname = '{bare}'")
        )
        .await
        .as_deref(),
        Some("0"),
        "migrate: false must not create the schema"
    );
    drop(store);

    // open(): the schema from the URL's `options` (pre-created, as an operator would).
    let schema = fresh_schema_name();
    sql_exec(&admin, &format!("CREATE SCHEMA {schema}")).await;
    let sep = if url.contains('?') { '&' } else { '?' };
    let opened = fsmeta::open(&format!("{url}{sep}options=-csearch_path%3D{schema}"))
        .await
        .expect("open(postgres://…)");
    opened
        .transact(|tx| Box::pin(async move { tx.increment_server_epoch().await }))
        .await
        .expect("transact through open()");
    drop(opened);
    let db = sql_connection(&url, &schema).await;
    assert_eq!(
        sql_text(&db, "SELECT epoch::text FROM server_state")
            .await
            .as_deref(),
        Some("1")
    );
    db.close().await.ok();
    admin.close().await.ok();
    drop_schema(&url, &schema).await.expect("drop schema");
}

/// Conflicts surfacing on a statement (a row lock released by a committing
/// writer) are `Conflict`, like those at commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflict_on_a_statement_is_classified() {
    let Some(fx) = PgTestStore::create().await else {
        return;
    };
    let store = fx.pg();
    let mut t1 = begin(&store).await;
    let mut t2 = begin(&store).await;
    assert_eq!(t2.server_epoch().await.unwrap(), 0, "t2 takes its snapshot");
    assert_eq!(t1.increment_server_epoch().await.unwrap(), 1);
    let waiting = tokio::spawn(async move {
        // Blocks on t1's row lock, then fails: t1 changed the row after t2's snapshot.
        let r = t2.increment_server_epoch().await;
        (r, t2)
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    t1.commit().await.unwrap();
    let (r, t2) = waiting.await.unwrap();
    assert!(is_conflict(&r), "the second increment: {r:?}");
    // The aborted transaction only reports errors now; rolling back is clean.
    t2.rollback().await.expect("rollback after a conflict");
    assert_eq!(begin(&store).await.server_epoch().await.unwrap(), 1);
    drop(store);
    fx.cleanup().await;
}

/// A statement that lost a serialization race aborts the transaction on the
/// server: a later write is not silently dropped while `commit` says Ok.
/// Every later operation and `commit` are `Conflict` (so `transact` reruns
/// it), and nothing of the transaction is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_after_a_failed_statement_is_an_error() {
    let Some(fx) = PgTestStore::create().await else {
        return;
    };
    let store = fx.pg();
    let f = sample_file(b"aborted", "s");
    let lock = sample_lock(&f.handle, "o", "c", "s");
    let mut t1 = begin(&store).await;
    let mut t2 = begin(&store).await;
    assert_eq!(t2.server_epoch().await.unwrap(), 0, "t2 takes its snapshot");
    t2.put_file(&f).await.unwrap();
    assert_eq!(t1.increment_server_epoch().await.unwrap(), 1);
    t1.commit().await.unwrap();
    // t1 changed the row after t2's snapshot: 40001 on the statement.
    let r = t2.increment_server_epoch().await;
    assert!(is_conflict(&r), "the second increment: {r:?}");
    // The caller ignores that error and goes on.
    let later = t2.put_lock(&lock).await;
    assert!(is_conflict(&later), "put_lock after the failure: {later:?}");
    let read = t2.get_file(&f.handle).await;
    assert!(is_conflict(&read), "get_file after the failure: {read:?}");
    let commit = t2.commit().await;
    assert!(is_conflict(&commit), "commit after the failure: {commit:?}");

    let mut tx = begin(&store).await;
    assert_eq!(
        tx.get_file(&f.handle).await.unwrap(),
        None,
        "nothing stored"
    );
    assert_eq!(tx.get_lock(lock.id).await.unwrap(), None, "nothing stored");
    assert_eq!(tx.server_epoch().await.unwrap(), 1);
    drop(tx);
    drop(store);
    fx.cleanup().await;
}

/// A failure that is not a conflict (here a CHECK the store does not know
/// about) aborts the transaction too: later operations and `commit` are
/// errors naming the first failure, not retryable, and nothing is stored.
/// Errors fsmeta raises itself before sending (`Invalid`) and "not found"
/// answers leave the transaction usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_after_a_check_violation_is_an_error() {
    let Some(fx) = PgTestStore::create().await else {
        return;
    };
    let store = fx.pg();
    let db = fx.sql().await;
    sql_exec(
        &db,
        "ALTER TABLE files ADD CONSTRAINT files_small_check CHECK (size < 5000)",
    )
    .await;
    let small = sample_file(b"small", "s");
    let mut big = sample_file(b"big", "s");
    big.size = 10_000;
    let lock = sample_lock(&small.handle, "o", "c", "s");

    let mut tx = begin(&store).await;
    // Errors about the caller's input: the transaction stays usable.
    assert!(matches!(
        tx.put_file(&sample_file(b"bad", "")).await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        tx.delete_lock(uuid::Uuid::new_v4()).await,
        Err(Error::LockNotFound(_))
    ));
    tx.put_file(&small).await.expect("still usable");
    // Writes are sent with the transaction's next message: the violation is
    // reported by the read that carried it.
    tx.put_file(&big).await.expect("kept for the next message");
    let r = tx.get_file(&small.handle).await;
    match &r {
        Err(e @ Error::Backend(_)) => assert!(
            e.to_string().contains("files_small_check"),
            "the CHECK violation: {e}"
        ),
        other => panic!("the read that carried the bad write: {other:?}"),
    }
    let later = tx.put_lock(&lock).await;
    match &later {
        Err(e @ Error::Backend(_)) => {
            assert!(!e.is_retryable());
            assert!(
                e.to_string().contains("get_file"),
                "names the first failure: {e}"
            );
        }
        other => panic!("put_lock after the failure: {other:?}"),
    }
    let commit = tx.commit().await;
    match &commit {
        Err(e @ Error::Backend(_)) => assert!(
            e.to_string().contains("get_file") && e.to_string().contains("files_small_check"),
            "names the first failure: {e}"
        ),
        other => panic!("commit after the failure must be an error: {other:?}"),
    }

    // A bad write with nothing read after it fails the commit.
    let mut tx = begin(&store).await;
    tx.put_file(&small).await.unwrap();
    tx.put_file(&big).await.unwrap();
    tx.put_lock(&lock).await.unwrap();
    match tx.commit().await {
        Err(e @ Error::Backend(_)) => {
            assert!(!e.is_retryable());
            assert!(e.to_string().contains("files_small_check"), "{e}");
        }
        other => panic!("commit of a bad write: {other:?}"),
    }

    let mut tx = begin(&store).await;
    assert_eq!(
        tx.get_file(&small.handle).await.unwrap(),
        None,
        "nothing stored"
    );
    assert_eq!(tx.get_lock(lock.id).await.unwrap(), None, "nothing stored");
    drop(tx);
    db.close().await.ok();
    drop(store);
    fx.cleanup().await;
}

// ---------------------------------------------------------------------------
// Throughput (run by hand: `cargo test … --test postgres -- --ignored --nocapture throughput`)

/// Transactions per second of `put_file` (or, with `ext`, an `ext_put` of
/// a 100-byte value) + `put_lock`, from `connections` workers.
async fn throughput(
    connections: u32,
    synchronous_commit: bool,
    duration: Duration,
    ext: bool,
) -> f64 {
    let url = reachable().await.expect("a PostgreSQL server");
    let schema = fresh_schema_name();
    let store = PostgresStore::connect_with(
        &url,
        PgOptions {
            max_connections: connections,
            synchronous_commit,
            schema: Some(schema.clone()),
            ..Default::default()
        },
    )
    .await
    .expect("connect");
    let started = Instant::now();
    let workers = (0..connections).map(|w| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut done = 0u64;
            while started.elapsed() < duration {
                // Each transaction: a new file and a lock on it, like an open + lock.
                let name = format!("w{w}-{done}");
                let file = sample_file(name.as_bytes(), "bench");
                let lock = sample_lock(&file.handle, &name, &format!("client{w}"), "bench");
                let (file, lock) = (&file, &lock);
                store
                    .transact(|tx| {
                        Box::pin(async move {
                            if ext {
                                tx.ext_put("inodes", file.handle.as_bytes(), &[7; 100])
                                    .await?;
                            } else {
                                tx.put_file(file).await?;
                            }
                            tx.put_lock(lock).await
                        })
                    })
                    .await
                    .expect("transact");
                done += 1;
            }
            done
        })
    });
    let mut total = 0;
    for w in workers.collect::<Vec<_>>() {
        total += w.await.expect("worker");
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    drop(store);
    drop_schema(&url, &schema).await.expect("drop schema");
    rate
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by hand with --ignored --nocapture"]
async fn throughput_put_file_put_lock() {
    for synchronous_commit in [true, false] {
        for connections in [1, 8] {
            let rate = throughput(
                connections,
                synchronous_commit,
                Duration::from_secs(5),
                false,
            )
            .await;
            println!(
                "put_file + put_lock via transact, {connections} connection(s), \
                 synchronous_commit {synchronous_commit}: {rate:.0} tx/s"
            );
        }
    }
}

/// The cost of an extension record against a file record, in one run:
/// `ext_put` + `put_lock` vs `put_file` + `put_lock`, one connection,
/// synchronous commit, alternating rounds so drift hits both alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by hand with --ignored --nocapture"]
async fn throughput_ext_put_vs_put_file() {
    let (mut file_rates, mut ext_rates) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        file_rates.push(throughput(1, true, Duration::from_secs(2), false).await);
        ext_rates.push(throughput(1, true, Duration::from_secs(2), true).await);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (file, ext) = (mean(&file_rates), mean(&ext_rates));
    println!(
        "put_file + put_lock: {file:.0} tx/s {file_rates:.0?}; ext_put + put_lock: {ext:.0} tx/s \
         {ext_rates:.0?}; ext/file time ratio {:.2}",
        file / ext
    );
}

// ---------------------------------------------------------------------------
// The native handle and a host's own migrations

/// A host table beside fsmeta's, as a host's migration would create it.
const HOST_TABLE: &str = "CREATE TABLE inodes (ino BIGINT PRIMARY KEY, \
     size BIGINT NOT NULL CHECK (size >= 0))";

async fn host_insert(tx: &mut (dyn MetadataTransaction + '_), ino: i64, size: i64) -> Result<()> {
    let insert = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO inodes (ino, size) VALUES ($1, $2)",
        [ino.into(), size.into()],
    );
    fsmeta::backend::postgres::native(tx)?
        .execute_raw(insert)
        .await
        .map_err(fsmeta::backend::postgres::host_error)?;
    Ok(())
}

/// The host's statements through `native` commit with fsmeta's writes and
/// vanish with them on rollback and drop; the host sees its own writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_handle_writes_commit_and_roll_back_with_fsmeta() {
    let Some(fx) = PgTestStore::create().await else {
        return;
    };
    let store = fx.pg();
    let db = fx.sql().await;
    sql_exec(&db, HOST_TABLE).await;
    let f = sample_file(b"ino-1", "s");
    let lock = sample_lock(&f.handle, "o", "c", "s");

    for finish in ["rollback", "drop"] {
        let mut tx = begin(&store).await;
        host_insert(&mut *tx, 1, 10).await.unwrap();
        tx.put_lock(&lock).await.unwrap();
        if finish == "rollback" {
            tx.rollback().await.unwrap();
        } else {
            drop(tx);
        }
        assert_eq!(
            sql_text(&db, "SELECT count(*)::text FROM inodes")
                .await
                .as_deref(),
            Some("0"),
            "after {finish}"
        );
        assert_eq!(begin(&store).await.get_lock(lock.id).await.unwrap(), None);
    }

    let mut tx = begin(&store).await;
    host_insert(&mut *tx, 1, 10).await.unwrap();
    tx.put_lock(&lock).await.unwrap();
    let seen = fsmeta::backend::postgres::native(&mut *tx)
        .unwrap()
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT size::text FROM inodes WHERE ino = 1",
        ))
        .await
        .unwrap()
        .map(|row| row.try_get_by_index::<String>(0).unwrap());
    assert_eq!(seen.as_deref(), Some("10"), "reads its own writes");
    tx.commit().await.expect("commit");
    assert_eq!(
        sql_text(&db, "SELECT size::text FROM inodes WHERE ino = 1")
            .await
            .as_deref(),
        Some("10")
    );
    assert_eq!(
        begin(&store).await.get_lock(lock.id).await.unwrap(),
        Some(lock)
    );
    db.close().await.ok();
    drop(store);
    fx.cleanup().await;
}

/// A host statement that fails through the native handle aborts the server
/// transaction behind fsmeta's back. The host ignores the error: `commit`
/// must still be an error and nothing is stored, neither fsmeta's writes
/// made before nor the host's. A failure inside a nested transaction
/// (savepoint) the host rolls back leaves the transaction committable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_after_a_failed_native_statement_is_an_error() {
    let Some(fx) = PgTestStore::create().await else {
        return;
    };
    let store = fx.pg();
    let db = fx.sql().await;
    sql_exec(&db, HOST_TABLE).await;
    sql_exec(&db, "INSERT INTO inodes VALUES (1, 0)").await;
    let f = sample_file(b"ino-2", "s");
    let lock = sample_lock(&f.handle, "o", "c", "s");

    let mut tx = begin(&store).await;
    tx.put_file(&f).await.unwrap();
    tx.put_lock(&lock).await.unwrap();
    tx.ext_put("dirents", b"/a", b"2").await.unwrap();
    host_insert(&mut *tx, 2, 5).await.unwrap();
    // A duplicate key: the server aborts the transaction.
    let dup = host_insert(&mut *tx, 1, 5).await;
    assert!(matches!(dup, Err(Error::Backend(_))), "{dup:?}");
    // The host ignores that and commits.
    let commit = tx.commit().await;
    match &commit {
        Err(e @ Error::Backend(_)) => {
            assert!(!e.is_retryable());
            assert!(e.to_string().contains("native"), "says why: {e}");
        }
        other => panic!("commit after a failed native statement: {other:?}"),
    }
    let mut check = begin(&store).await;
    assert_eq!(
        check.get_file(&f.handle).await.unwrap(),
        None,
        "nothing stored"
    );
    assert_eq!(
        check.get_lock(lock.id).await.unwrap(),
        None,
        "nothing stored"
    );
    assert_eq!(check.ext_get("dirents", b"/a").await.unwrap(), None);
    drop(check);
    assert_eq!(
        sql_text(&db, "SELECT string_agg(ino::text, ',') FROM inodes")
            .await
            .as_deref(),
        Some("1"),
        "the host's row is gone too"
    );

    // fsmeta statements after the host's failure fail too (the server refuses them).
    let mut tx = begin(&store).await;
    let _ = host_insert(&mut *tx, 1, 5).await;
    // The write is kept for the next message; the read sends it, and the
    // server refuses both.
    tx.put_lock(&lock).await.expect("kept");
    assert!(tx.get_lock(lock.id).await.is_err());
    assert!(
        fsmeta::backend::postgres::native(&mut *tx).is_err(),
        "poisoned"
    );
    assert!(tx.commit().await.is_err());

    // A CHECK violation inside a savepoint the host rolls back: still fine.
    let mut tx = begin(&store).await;
    tx.put_lock(&lock).await.unwrap();
    {
        let outer = fsmeta::backend::postgres::native(&mut *tx).unwrap();
        let nested = outer.savepoint().await.unwrap();
        let bad = nested
            .execute_unprepared("INSERT INTO inodes VALUES (3, -1)")
            .await;
        assert!(bad.is_err(), "the CHECK fires");
        nested.rollback().await.unwrap();
        outer
            .execute_unprepared("INSERT INTO inodes VALUES (3, 1)")
            .await
            .unwrap();
    }
    tx.commit()
        .await
        .expect("a rolled-back savepoint does not poison");
    assert_eq!(
        sql_text(
            &db,
            "SELECT string_agg(ino::text, ',' ORDER BY ino) FROM inodes"
        )
        .await
        .as_deref(),
        Some("1,3")
    );
    assert_eq!(
        begin(&store).await.get_lock(lock.id).await.unwrap(),
        Some(lock)
    );
    db.close().await.ok();
    drop(store);
    fx.cleanup().await;
}

/// A serialization failure on a host statement, mapped with `host_error`,
/// is a retryable `Conflict`: `transact` reruns the host's writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_conflicts_are_retried_by_transact() {
    let Some(fx) = PgTestStore::create().await else {
        return;
    };
    let store = fx.pg();
    let db = fx.sql().await;
    sql_exec(&db, HOST_TABLE).await;
    sql_exec(&db, "INSERT INTO inodes VALUES (1, 0)").await;
    let bump = "UPDATE inodes SET size = size + 1 WHERE ino = 1";
    let attempts = std::sync::atomic::AtomicU32::new(0);
    let (attempts_ref, store_ref) = (&attempts, &store);
    store
        .transact(|tx| {
            Box::pin(async move {
                let n = attempts_ref.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let native = fsmeta::backend::postgres::native(tx)?;
                native
                    .execute_unprepared("SELECT size FROM inodes WHERE ino = 1")
                    .await
                    .map_err(fsmeta::backend::postgres::host_error)?;
                if n == 0 {
                    // Another server bumps the row after this snapshot.
                    let mut other = store_ref.begin().await?;
                    fsmeta::backend::postgres::native(&mut *other)?
                        .execute_unprepared(bump)
                        .await
                        .map_err(fsmeta::backend::postgres::host_error)?;
                    other.commit().await?;
                }
                fsmeta::backend::postgres::native(tx)?
                    .execute_unprepared(bump)
                    .await
                    .map_err(fsmeta::backend::postgres::host_error)?;
                Ok(())
            })
        })
        .await
        .expect("transact retries the conflict");
    assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(
        sql_text(&db, "SELECT size::text FROM inodes")
            .await
            .as_deref(),
        Some("2"),
        "both bumps, none lost"
    );
    db.close().await.ok();
    drop(store);
    fx.cleanup().await;
}

/// `native` on a transaction of another backend is `Invalid`, not a panic.
#[tokio::test]
async fn native_on_another_backend_is_invalid() {
    let store = fsmeta::MemoryStore::new();
    let mut tx = store.begin().await.unwrap();
    match fsmeta::backend::postgres::native(&mut *tx) {
        Err(Error::Invalid(why)) => assert!(why.contains("PostgreSQL"), "{why}"),
        Err(other) => panic!("expected Invalid, got {other:?}"),
        Ok(_) => panic!("expected Invalid, got a handle"),
    }
    tx.put_file(&sample_file(b"f", "s"))
        .await
        .expect("still usable");
}

/// A host's own migration: its `inodes` table.
mod host_migrations {
    use migration::{
        ColumnDef, DbErr, DeriveIden, MigrationName, MigrationTrait, MigratorTrait, SchemaManager,
        Table, async_trait,
    };

    pub struct CreateInodes;

    // (`DeriveMigrationName` would name it after this file.)
    impl MigrationName for CreateInodes {
        fn name(&self) -> &str {
            "m20270101_000001_create_inodes"
        }
    }

    #[derive(DeriveIden)]
    enum Inodes {
        Table,
        Ino,
        Size,
    }

    #[async_trait::async_trait]
    impl MigrationTrait for CreateInodes {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table(Inodes::Table)
                        .col(ColumnDef::new(Inodes::Ino).big_integer().primary_key())
                        .col(ColumnDef::new(Inodes::Size).big_integer().not_null())
                        .to_owned(),
                )
                .await
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .drop_table(Table::drop().table(Inodes::Table).to_owned())
                .await
        }
    }

    /// The host's Migrator: fsmeta's migrations, then its own, one history table.
    pub struct HostMigrator;

    #[async_trait::async_trait]
    impl MigratorTrait for HostMigrator {
        fn migrations() -> Vec<Box<dyn MigrationTrait>> {
            let mut all = fsmeta::PostgresStore::migrations();
            all.push(Box::new(CreateInodes));
            all
        }
    }
}

/// A host's `Migrator` listing fsmeta's migrations and its own builds both
/// in the host's schema with one history table; fsmeta connects to it with
/// `migrate: false` (and with `migrate: true`, which applies nothing and
/// does not trip over the host's record), and a transaction writes both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_migrator_includes_fsmeta_migrations() {
    use host_migrations::HostMigrator;
    let Some(url) = reachable().await else { return };
    let schema = fresh_schema_name();
    let db = sql_connection(&url, &schema).await;
    sql_exec(
        &db,
        &format!(
            "CREATE SCHEMA {}",
            fsmeta::conformance::postgres::quote_ident(&schema)
        ),
    )
    .await;
    HostMigrator::up(&db, None)
        .await
        .expect("the host's migrations");
    let mut expected: Vec<&str> = ALL_TABLES.to_vec();
    expected.push("inodes");
    expected.sort();
    assert_eq!(table_names(&db).await, expected, "one history table");
    let recorded = "SELECT count(*)::text FROM seaql_migrations";
    let host_count = (MIGRATIONS.parse::<u32>().unwrap() + 1).to_string();
    assert_eq!(sql_text(&db, recorded).await, Some(host_count.clone()));

    let store = PostgresStore::connect_with(
        &url,
        PgOptions {
            migrate: false,
            ..options_for(&schema)
        },
    )
    .await
    .expect("connect without migrating");
    let f = sample_file(b"ino-9", "s");
    let lock = sample_lock(&f.handle, "o", "c", "s");
    let mut tx = begin(&store).await;
    host_insert(&mut *tx, 9, 4096).await.unwrap();
    tx.put_lock(&lock).await.unwrap();
    tx.ext_put("dirents", b"/nine", b"9").await.unwrap();
    assert_eq!(tx.increment_server_epoch().await.unwrap(), 1);
    tx.commit().await.unwrap();
    assert!(store.verify().await.unwrap().is_healthy());
    drop(store);

    // `migrate: true` on the host's schema: nothing to do, no error about
    // the host's migration it does not know.
    let store = PostgresStore::connect_with(&url, options_for(&schema))
        .await
        .expect("connect and migrate on a host-migrated schema");
    assert_eq!(sql_text(&db, recorded).await, Some(host_count.clone()));
    assert_eq!(
        begin(&store).await.get_lock(lock.id).await.unwrap(),
        Some(lock)
    );
    // And the host's Migrator is still content with the table fsmeta shares.
    HostMigrator::up(&db, None)
        .await
        .expect("up again is a no-op");
    assert_eq!(sql_text(&db, recorded).await, Some(host_count));
    assert_eq!(
        sql_text(&db, "SELECT size::text FROM inodes WHERE ino = 9")
            .await
            .as_deref(),
        Some("4096")
    );
    drop(store);
    db.close().await.ok();
    drop_schema(&url, &schema).await.expect("drop schema");
}

/// fsmeta's own `migrate` applies the migrations a schema lacks, even when
/// the history table records versions it does not know (a newer release's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_ignores_unknown_recorded_versions() {
    let Some(fx) = PgTestStore::create().await else {
        return;
    };
    let db = fx.sql().await;
    sql_exec(
        &db,
        "INSERT INTO seaql_migrations (version, applied_at) \
         VALUES ('m20990101_000001_from_the_future', 0)",
    )
    .await;
    sql_exec(&db, "DROP TABLE ext_records").await;
    sql_exec(
        &db,
        "DELETE FROM seaql_migrations WHERE version = 'm20261201_000004_ext_records'",
    )
    .await;
    let store = PostgresStore::connect_with(fx.schema().url(), fx.schema().options())
        .await
        .expect("connect migrates past the unknown version");
    let mut tx = begin(&store).await;
    tx.ext_put("t", b"k", b"v")
        .await
        .expect("ext_records is back");
    tx.commit().await.unwrap();
    assert_eq!(
        sql_text(&db, "SELECT count(*)::text FROM seaql_migrations")
            .await
            .as_deref(),
        Some(
            (MIGRATIONS.parse::<u32>().unwrap() + 1)
                .to_string()
                .as_str()
        ),
        "fsmeta's migrations and the future one"
    );
    db.close().await.ok();
    drop(store);
    fx.cleanup().await;
}

/// The CHECKs of `ext_records` as PostgreSQL enforces them, bypassing
/// fsmeta's own validation: each limit is refused by the server itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ext_records_checks_are_enforced_by_the_server() {
    let Some(fx) = PgTestStore::create().await else {
        return;
    };
    let db = fx.sql().await;
    let long_name = "a".repeat(65);
    let cases = [
        (
            "ext_records_table_name_check",
            format!("'{long_name}', 'k'::bytea, ''::bytea"),
        ),
        // Both table-name CHECKs refuse an empty name; either may report it.
        (
            "ext_records_table_name_",
            "'', 'k'::bytea, ''::bytea".to_owned(),
        ),
        (
            "ext_records_table_name_chars_check",
            "'Bad', 'k'::bytea, ''::bytea".to_owned(),
        ),
        (
            "ext_records_key_check",
            "'t', ''::bytea, ''::bytea".to_owned(),
        ),
        (
            "ext_records_key_check",
            "'t', convert_to(repeat('k', 1025), 'UTF8'), ''::bytea".to_owned(),
        ),
        (
            "ext_records_value_check",
            "'t', 'k'::bytea, convert_to(repeat('v', 1048577), 'UTF8')".to_owned(),
        ),
    ];
    for (constraint, values) in cases {
        let sql = format!("INSERT INTO ext_records (table_name, key, value) VALUES ({values})");
        let err = db
            .execute_unprepared(&sql)
            .await
            .expect_err("the server refuses it");
        assert!(err.to_string().contains(constraint), "{constraint}: {err}");
    }
    let limits = format!(
        "INSERT INTO ext_records VALUES ('{}', convert_to(repeat('k', 1024), 'UTF8'), \
         convert_to(repeat('v', 1048576), 'UTF8'))",
        "a_9".repeat(21) + "z"
    );
    sql_exec(&db, &limits).await;
    db.close().await.ok();
    fx.cleanup().await;
}

/// Migration 5 adds `locks.flavor` with default 0: rows written before it
/// (or by a server that does not know the column) read as POSIX locks, and
/// a Windows lock keeps its flavour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_flavor_migration_reads_old_rows_as_posix() {
    let Some(fx) = PgTestStore::create().await else {
        return;
    };
    let store = fx.pg();
    let db = fx.sql().await;
    let f = sample_file(b"flavor", "s");
    let posix = fsmeta::PersistedLock {
        id: uuid::Uuid::from_u128(1),
        ..sample_lock(&f.handle, "o", "c", "s")
    };
    let windows = fsmeta::PersistedLock {
        id: uuid::Uuid::from_u128(2),
        offset: 10,
        length: 0,
        flavor: fsmeta::LockFlavor::Windows,
        ..sample_lock(&f.handle, "open-1", "c", "s")
    };
    let mut tx = begin(&store).await;
    tx.put_lock(&posix).await.unwrap();
    tx.put_lock(&windows).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        sql_text(
            &db,
            "SELECT string_agg(flavor::text, ',' ORDER BY id) FROM locks"
        )
        .await
        .as_deref(),
        Some("0,1")
    );
    // Down through migration 5 (the column goes), an old server's insert, up again.
    Migrator::down(&db, Some(down_through("m20261201_000005_lock_flavor")))
        .await
        .expect("down through migration 5");
    sql_exec(
        &db,
        "INSERT INTO locks (id, share_name, file_id, owner_id, client_id, lock_type, \"offset\", \
         length, share_reservation, acquired_at, server_epoch) VALUES \
         ('00000000-0000-0000-0000-000000000003', 's', 'flavor'::bytea, 'old', 'c', 1, 0, 0, 0, \
         now(), 1)",
    )
    .await;
    Migrator::up(&db, None).await.expect("up again");
    let mut tx = begin(&store).await;
    let all = tx.list_locks(&LockQuery::default()).await.unwrap();
    assert_eq!(all.len(), 3);
    assert!(
        all.iter().all(|l| l.flavor == fsmeta::LockFlavor::Posix),
        "{all:?}"
    );
    assert_eq!(all[0], posix);
}
