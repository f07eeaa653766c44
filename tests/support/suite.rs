//! The runner of the multi-process PostgreSQL test binaries (`harness =
//! false`: `tests/multinode.rs`, `tests/waiters.rs`, `tests/fencing.rs`):
//! runs each test on a schema, prints `test NAME ... ok|FAILED` and a
//! summary, and exits 101 when one failed. Without a reachable server (and
//! `FSMETA_REQUIRE_POSTGRES` unset) it prints a skip line and runs none.

use fsmeta::conformance::postgres::TestSchema;
use sea_orm::ConnectionTrait;

/// A parent-side test: runs child processes against the schema.
pub type Test = fn(&tokio::runtime::Runtime, &TestSchema);

/// Which schema each test gets.
#[allow(dead_code)] // each binary uses one of the two
pub enum Schemas {
    /// One schema for all, emptied by this SQL before each test.
    Shared { clear: &'static str },
    /// A fresh schema per test (with every table, whatever later migrations add).
    Fresh,
}

/// Runs `tests` of the binary `suite` (see the module docs).
pub fn run(
    suite: &str,
    runtime: &tokio::runtime::Runtime,
    tests: &[(&str, Test)],
    schemas: Schemas,
) {
    let skip = || {
        println!(
            "{suite}: no PostgreSQL; 0 passed, 0 failed, {} skipped",
            tests.len()
        )
    };
    let shared = match schemas {
        Schemas::Shared { .. } => match runtime.block_on(TestSchema::create()) {
            Some(schema) => Some(schema),
            None => return skip(),
        },
        Schemas::Fresh => None,
    };
    let mut failed = 0;
    for (name, test) in tests {
        let fresh = match (&schemas, &shared) {
            (Schemas::Shared { clear }, Some(schema)) => {
                runtime.block_on(clear_schema(schema, clear));
                None
            }
            _ => match runtime.block_on(TestSchema::create()) {
                Some(schema) => Some(schema),
                None => return skip(),
            },
        };
        let schema = fresh.as_ref().or(shared.as_ref()).expect("a schema");
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(runtime, schema)));
        println!(
            "test {name} ... {}",
            if outcome.is_ok() { "ok" } else { "FAILED" }
        );
        failed += usize::from(outcome.is_err());
        if let Some(schema) = fresh {
            runtime.block_on(schema.drop_now());
        }
    }
    if let Some(schema) = shared {
        runtime.block_on(schema.drop_now());
    }
    println!("{suite}: {} passed, {failed} failed", tests.len() - failed);
    if failed > 0 {
        std::process::exit(101);
    }
}

async fn clear_schema(schema: &TestSchema, clear: &str) {
    let sql = schema.sql().await;
    sql.execute_unprepared(clear)
        .await
        .expect("clear the schema between tests");
    let _ = sql.close().await;
}
