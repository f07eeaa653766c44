//! The PostgreSQL side of the bench: P2 against a naive sqlx baseline, the
//! stores' schemas, round trips counted on the wire.

use super::*;

pub(super) async fn pg_reachable(url: &str) -> bool {
    match sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
    {
        Ok(pool) => {
            pool.close().await;
            true
        }
        Err(e) => {
            info(&format!("PostgreSQL at {url} unreachable: {e}"));
            false
        }
    }
}

/// Schemas created by this run, dropped at the end whatever happens.
pub(super) struct Schemas {
    url: String,
    names: std::sync::Mutex<Vec<String>>,
}

impl Schemas {
    /// No schemas yet, on the server at `url`.
    pub(super) fn new(url: String) -> Self {
        Schemas {
            url,
            names: std::sync::Mutex::new(Vec::new()),
        }
    }

    pub(super) fn fresh(&self, what: &str) -> String {
        let name = format!("fsmeta_bench_{what}_{}", Uuid::new_v4().simple());
        self.names.lock().expect("schemas").push(name.clone());
        name
    }

    pub(super) async fn drop_all(&self) {
        let names = std::mem::take(&mut *self.names.lock().expect("schemas"));
        if names.is_empty() {
            return;
        }
        match sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.url)
            .await
        {
            Ok(pool) => {
                for name in names {
                    if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(format!(
                        // A name this run generated: letters, digits, `_`.
                        "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
                    )))
                    .execute(&pool)
                    .await
                    {
                        eprintln!("warning: dropping schema {name}: {e}");
                    }
                }
                pool.close().await;
            }
            Err(e) => eprintln!("warning: cannot drop schemas {names:?}: {e}"),
        }
    }
}

pub(super) async fn pg_store(cfg: &Cfg, schema: &str, connections: u32) -> Res<PostgresStore> {
    Ok(PostgresStore::connect_with(
        &cfg.pg_url,
        PgOptions {
            schema: Some(schema.to_owned()),
            max_connections: connections,
            ..Default::default()
        },
    )
    .await?)
}

/// A plain sqlx pool on `schema`, SERIALIZABLE by start-up parameter like the library's.
pub(super) async fn sqlx_pool(cfg: &Cfg, schema: &str, connections: u32) -> Res<sqlx::PgPool> {
    let options: sqlx::postgres::PgConnectOptions = cfg.pg_url.parse()?;
    let options = options.options([
        ("default_transaction_isolation", "serializable"),
        ("search_path", &format!("\"{schema}\"")),
    ]);
    Ok(sqlx::postgres::PgPoolOptions::new()
        .max_connections(connections)
        .connect_with(options)
        .await?)
}

pub(super) const RAW_INSERT_FILE: &str = r#"INSERT INTO "files" ("handle", "share_name", "kind", "mode", "uid", "gid", "nlink", "size", "atime", "mtime", "ctime") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT ("handle") DO UPDATE SET "share_name" = "excluded"."share_name", "kind" = "excluded"."kind", "mode" = "excluded"."mode", "uid" = "excluded"."uid", "gid" = "excluded"."gid", "nlink" = "excluded"."nlink", "size" = "excluded"."size", "atime" = "excluded"."atime", "mtime" = "excluded"."mtime", "ctime" = "excluded"."ctime""#;

pub(super) const RAW_INSERT_LOCK: &str = r#"INSERT INTO "locks" ("id", "share_name", "file_id", "owner_id", "client_id", "lock_type", "offset", "length", "share_reservation", "acquired_at", "server_epoch") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT ("id") DO UPDATE SET "share_name" = "excluded"."share_name", "file_id" = "excluded"."file_id", "owner_id" = "excluded"."owner_id", "client_id" = "excluded"."client_id", "lock_type" = "excluded"."lock_type", "offset" = "excluded"."offset", "length" = "excluded"."length", "share_reservation" = "excluded"."share_reservation", "acquired_at" = "excluded"."acquired_at", "server_epoch" = "excluded"."server_epoch""#;

pub(super) fn db_time(t: Timestamp) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_micros(t.as_micros()).expect("valid timestamp")
}

pub(super) fn is_serialization_failure(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("40001" | "40P01")))
}

/// The library's transaction, by hand: BEGIN, the two upserts, COMMIT;
/// retried on a serialization failure like `transact`.
pub(super) async fn raw_pg_write(
    pool: &sqlx::PgPool,
    file: &FileMeta,
    lock: &PersistedLock,
) -> Res {
    use rust_decimal::Decimal;
    loop {
        let attempt: Result<(), sqlx::Error> = async {
            let mut tx = pool.begin().await?;
            sqlx::query(RAW_INSERT_FILE)
                .bind(file.handle.as_bytes())
                .bind(&file.share_name)
                .bind(file.kind as u8 as i16)
                .bind(i64::from(file.mode))
                .bind(i64::from(file.uid))
                .bind(i64::from(file.gid))
                .bind(i64::from(file.nlink))
                .bind(Decimal::from(file.size))
                .bind(db_time(file.atime))
                .bind(db_time(file.mtime))
                .bind(db_time(file.ctime))
                .execute(&mut *tx)
                .await?;
            sqlx::query(RAW_INSERT_LOCK)
                .bind(lock.id)
                .bind(&lock.share_name)
                .bind(lock.file_id.as_bytes())
                .bind(&lock.owner_id)
                .bind(&lock.client_id)
                .bind(lock.lock_type as u8 as i16)
                .bind(Decimal::from(lock.offset))
                .bind(Decimal::from(lock.length))
                .bind(lock.share_reservation as u8 as i16)
                .bind(db_time(lock.acquired_at))
                .bind(Decimal::from(lock.server_epoch))
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        }
        .await;
        match attempt {
            Ok(()) => return Ok(()),
            Err(e) if is_serialization_failure(&e) => {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Runs `op(0..tasks)` as concurrent tasks; returns the wall time.
pub(super) async fn run_concurrent<F, Fut>(tasks: usize, op: F) -> Res<f64>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Res> + Send + 'static,
{
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks).map(|t| tokio::spawn(op(t))).collect();
    for h in handles {
        h.await??;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// P2 through a proxy that delays each direction by `one_way` (see
/// `bench/latency.rs`): both sides pay the same network.
pub(super) async fn p2_over_network(cfg: &Cfg, schemas: &Schemas, one_way: Duration) -> Res {
    let proxy = latency::start(pg_address(cfg).await?, one_way)?;
    let delayed = Cfg {
        pg_url: url_with_port(&cfg.pg_url, proxy.port())?,
        ..cfg.clone()
    };
    let rtt_ms = one_way.as_secs_f64() * 2_000.0;
    p2_named(
        &delayed,
        schemas,
        1,
        &format!("P2-postgres-write-1conn-rtt{rtt_ms}ms"),
        Goal::AtLeast(2.0),
    )
    .await
}

/// The PostgreSQL server's socket address.
pub(super) async fn pg_address(cfg: &Cfg) -> Res<std::net::SocketAddr> {
    let options: sqlx::postgres::PgConnectOptions = cfg.pg_url.parse()?;
    Ok(
        tokio::net::lookup_host((options.get_host(), options.get_port()))
            .await?
            .next()
            .ok_or("no address for the PostgreSQL host")?,
    )
}

/// PG-round-trips-*: the operations of `benches/common/counted.rs` on one
/// connection through a proxy that counts the round trips on the wire
/// (`bench/wire_count.rs`). Each line's figure is the exact count.
pub(super) async fn pg_round_trips(cfg: &Cfg, schemas: &Schemas) -> Res {
    let (proxy, trips) = wire_count::start(pg_address(cfg).await?)?;
    let mut url = url::Url::parse(&url_with_port(&cfg.pg_url, proxy.port())?)?;
    // The proxy reads the plain protocol.
    url.query_pairs_mut().append_pair("sslmode", "disable");
    let counted_cfg = Cfg {
        pg_url: url.into(),
        ..cfg.clone()
    };
    let store = pg_store(&counted_cfg, &schemas.fresh("trips"), 1).await?;
    // The pool's one connection is open before anything is counted.
    let mut probe = store.begin().await?;
    probe.get_file(&handle(0, 0)).await?;
    probe.rollback().await?;
    tokio::time::sleep(Duration::from_millis(50)).await;
    trips.take();
    for op in counted::COUNTED {
        op.run(&store).await?;
        // The pool's ping of the released connection runs in a task of its
        // own: let it finish, so it is counted with this operation.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (n, pings) = trips.take();
        report(
            &format!("PG-round-trips-{}", op.slug),
            n as f64,
            Goal::AtMost(op.target as f64),
            &format!(
                "{}: {n} round trip(s) counted on the wire ({} by design), target <= {}; and {pings} ping(s) by sqlx on releasing the connection, after the last answer",
                op.name, op.expected, op.target
            ),
        );
    }
    store.close().await?;
    Ok(())
}

/// `url` with its port replaced (or set) to `port`.
pub(super) fn url_with_port(url: &str, port: u16) -> Res<String> {
    let mut url = url::Url::parse(url)?;
    url.set_port(Some(port))
        .map_err(|()| "the PostgreSQL URL takes no port")?;
    Ok(url.into())
}

pub(super) async fn p2(cfg: &Cfg, schemas: &Schemas, connections: u32) -> Res {
    // One connection: round trips bound both sides, and the library sends
    // one message where the naive sqlx transaction sends four (issue 20).
    // Eight: the server's work dominates, parity is the goal.
    let goal = if connections == 1 {
        Goal::AtLeast(2.0)
    } else {
        Goal::AtLeast(0.8)
    };
    let name = format!("P2-postgres-write-{connections}conn");
    p2_named(cfg, schemas, connections, &name, goal).await
}

pub(super) async fn p2_named(
    cfg: &Cfg,
    schemas: &Schemas,
    connections: u32,
    name: &str,
    goal: Goal,
) -> Res {
    let tasks = connections as usize;
    let lib_schema = schemas.fresh("p2lib");
    let raw_schema = schemas.fresh("p2raw");
    let store = Arc::new(pg_store(cfg, &lib_schema, connections).await?);
    // The raw side's tables come from the same migration.
    pg_store(cfg, &raw_schema, 1).await?.close().await?;
    let pool = sqlx_pool(cfg, &raw_schema, connections).await?;
    let mut ratios = Vec::new();
    let (mut lib_total, mut raw_total, mut count) = (0.0, 0.0, 0);
    let mut k = 0u64;
    for round in 0..=cfg.p2_rounds {
        let batch = cfg.p2_batch as u64;
        let pairs = Arc::new((k..k + batch).map(|k| write_pair(4, k)).collect::<Vec<_>>());
        k += batch;
        let lib = run_concurrent(tasks, |t| {
            let (store, pairs) = (store.clone(), pairs.clone());
            async move {
                for (file, lock) in pairs.iter().skip(t).step_by(tasks) {
                    transact_write_pair(&*store, file, lock).await?;
                }
                Ok(())
            }
        })
        .await?;
        let raw = run_concurrent(tasks, |t| {
            let (pool, pairs) = (pool.clone(), pairs.clone());
            async move {
                for (file, lock) in pairs.iter().skip(t).step_by(tasks) {
                    raw_pg_write(&pool, file, lock).await?;
                }
                Ok(())
            }
        })
        .await?;
        if round > 0 {
            ratios.push(raw / lib);
            lib_total += lib;
            raw_total += raw;
            count += cfg.p2_batch;
        }
    }
    pool.close().await;
    report(
        name,
        median(ratios),
        goal,
        &format!(
            "lib {:.0} tx/s, raw sqlx {:.0} tx/s on {connections} connection(s) (median of {} rounds of {})",
            count as f64 / lib_total,
            count as f64 / raw_total,
            cfg.p2_rounds,
            cfg.p2_batch
        ),
    );
    Ok(())
}

pub(super) async fn pg_analyze(cfg: &Cfg, schema: &str) -> Res {
    let pool = sqlx_pool(cfg, schema, 1).await?;
    sqlx::query("ANALYZE").execute(&pool).await?;
    pool.close().await;
    Ok(())
}

pub(super) async fn pg_footprint(cfg: &Cfg, schema: &str, n: u64) -> Res {
    let pool = sqlx_pool(cfg, schema, 1).await?;
    let (table, total): (i64, i64) =
        sqlx::query_as("SELECT pg_table_size('locks'), pg_total_relation_size('locks')")
            .fetch_one(&pool)
            .await?;
    pool.close().await;
    info(&format!(
        "footprint postgres: {:.0} bytes/lock on disk (table + indexes, pg_total_relation_size; {n} locks; table alone {:.0}, indexes {:.0})",
        total as f64 / n as f64,
        table as f64 / n as f64,
        (total - table) as f64 / n as f64
    ));
    Ok(())
}
