//! Throwaway PostgreSQL schemas for tests (features `conformance` and `postgres`).
//!
//! The server comes from `FSMETA_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). When it cannot be reached,
//! [`TestSchema::create`] prints a notice and returns `None` so the test skips,
//! unless `FSMETA_REQUIRE_POSTGRES=1`, which makes it panic instead: CI sets it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};

use super::{Harness, TestStore};
use crate::{MetadataStore, PgOptions, PostgresStore, Result};

/// The server URL tests use when `FSMETA_TEST_POSTGRES_URL` is not set.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The test server's URL.
pub fn server_url() -> String {
    std::env::var("FSMETA_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// True when `FSMETA_REQUIRE_POSTGRES=1`: an unreachable server fails the test.
pub fn required() -> bool {
    std::env::var("FSMETA_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// The server URL when it answers; `None` after a notice when it does not and
/// the environment does not require it (then it panics).
pub async fn reachable() -> Option<String> {
    // Probe once per process: a down server must not cost every test a timeout.
    static PROBED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let url = server_url();
    match PROBED.get() {
        Some(true) => return Some(url),
        Some(false) if !required() => return None,
        _ => {}
    }
    let up = match admin_connection(&url).await {
        Ok(db) => {
            let _ = db.close().await;
            true
        }
        Err(e) if required() => {
            panic!("FSMETA_REQUIRE_POSTGRES=1 but PostgreSQL at {url} is unreachable: {e}")
        }
        Err(e) => {
            eprintln!("notice: skipping PostgreSQL test: {url} is unreachable ({e})");
            false
        }
    };
    let _ = PROBED.set(up);
    up.then_some(url)
}

/// `name` quoted as an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A fresh, unique schema name (`fsmeta_test_` and a random suffix).
pub fn fresh_schema_name() -> String {
    format!("fsmeta_test_{}", uuid::Uuid::new_v4().simple())
}

/// A one-connection pool for plain SQL with its search path set to `schema`.
pub async fn sql_connection(url: &str, schema: &str) -> DatabaseConnection {
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(1)
        .sqlx_logging(false)
        .set_schema_search_path(quote_ident(schema));
    Database::connect(options)
        .await
        .expect("connect for plain SQL")
}

/// Drops `schema` and everything in it, if it exists.
pub async fn drop_schema(url: &str, schema: &str) -> std::result::Result<(), sea_orm::DbErr> {
    let db = admin_connection(url).await?;
    let result = db
        .execute_unprepared(&format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            quote_ident(schema)
        ))
        .await
        .map(drop);
    let _ = db.close().await;
    result
}

async fn admin_connection(url: &str) -> std::result::Result<DatabaseConnection, sea_orm::DbErr> {
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .sqlx_logging(false);
    // Never hang a test run on a lock a stray connection still holds.
    options.map_sqlx_postgres_opts(|pg| pg.options([("lock_timeout", "10s")]));
    Database::connect(options).await
}

/// A schema of its own on the test server, dropped by [`TestSchema::drop_now`]
/// or, when a failing test unwinds past it, by `Drop`.
#[derive(Debug)]
pub struct TestSchema {
    url: String,
    name: String,
    dropped: bool,
}

impl TestSchema {
    /// A fresh, uniquely named schema with fsmeta's tables; `None` when the
    /// server is unreachable and not required.
    pub async fn create() -> Option<TestSchema> {
        let url = reachable().await?;
        let schema = TestSchema {
            name: fresh_schema_name(),
            url,
            dropped: false,
        };
        let store = schema
            .connect()
            .await
            .unwrap_or_else(|e| panic!("connect to {} in schema {}: {e}", schema.url, schema.name));
        let _ = store.close().await;
        Some(schema)
    }

    /// The server URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Options that put a store in this schema (and migrate it).
    pub fn options(&self) -> PgOptions {
        PgOptions {
            schema: Some(self.name.clone()),
            ..Default::default()
        }
    }

    /// A store on this schema.
    pub async fn connect(&self) -> Result<PostgresStore> {
        PostgresStore::connect_with(&self.url, self.options()).await
    }

    /// A one-connection pool for plain SQL, its search path set to this schema.
    pub async fn sql(&self) -> DatabaseConnection {
        sql_connection(&self.url, &self.name).await
    }

    /// Drops the schema and everything in it.
    pub async fn drop_now(mut self) {
        self.dropped = true;
        drop_or_warn(&self.url, &self.name).await;
    }
}

async fn drop_or_warn(url: &str, name: &str) {
    if let Err(e) = drop_schema(url, name).await {
        eprintln!("warning: could not drop test schema {name}: {e}");
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let (url, name) = (self.url.clone(), self.name.clone());
        // `Drop` cannot await and may run inside or after the test's runtime:
        // a thread with a runtime of its own drops the schema.
        let cleaner = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                runtime.block_on(drop_or_warn(&url, &name));
            }
        });
        let _ = cleaner.join();
    }
}

/// A [`Harness`] that gives each check its own schema.
#[derive(Clone, Copy, Debug, Default)]
pub struct PgHarness;

/// A store in its own schema; reopen drops the pool and connects again.
pub struct PgTestStore {
    schema: TestSchema,
    store: Option<PostgresStore>,
}

impl PgTestStore {
    /// A store in a fresh schema; `None` when the server is unreachable and not required.
    pub async fn create() -> Option<PgTestStore> {
        let schema = TestSchema::create().await?;
        let store = schema.connect().await.expect("connect to the test schema");
        Some(PgTestStore {
            schema,
            store: Some(store),
        })
    }

    /// A one-connection pool for plain SQL in the store's schema.
    pub async fn sql(&self) -> DatabaseConnection {
        self.schema.sql().await
    }

    /// Closes the store and drops its schema.
    pub async fn cleanup(mut self) {
        if let Some(store) = self.store.take() {
            let _ = store.close().await;
        }
        self.schema.drop_now().await;
    }

    /// The schema the store lives in.
    pub fn schema(&self) -> &TestSchema {
        &self.schema
    }

    /// The open store.
    pub fn pg(&self) -> PostgresStore {
        self.store.clone().expect("the fixture holds an open store")
    }
}

#[async_trait]
impl Harness for PgHarness {
    async fn create(&self) -> Option<Box<dyn TestStore>> {
        Some(Box::new(PgTestStore::create().await?))
    }
}

#[async_trait]
impl TestStore for PgTestStore {
    fn store(&self) -> Arc<dyn MetadataStore> {
        Arc::new(self.pg())
    }

    async fn reopen(&mut self) -> Result<()> {
        if let Some(store) = self.store.take() {
            store.close().await?;
        }
        self.store = Some(self.schema.connect().await?);
        Ok(())
    }

    async fn teardown(self: Box<Self>) {
        (*self).cleanup().await;
    }
}
