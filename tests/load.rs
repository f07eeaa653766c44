//! Concurrent mixed load on every backend: 64 tasks of random transactions
//! (`fsmeta::conformance::load::mixed_load`), then the invariants: epoch =
//! committed increments, no conflicting locks, every task's committed state
//! intact, indexes consistent, `verify()` healthy.
//!
//! CI runs 64 tasks × a few dozen transactions per backend; `FSMETA_LOAD_FULL=1`
//! runs 64 × 500 (`FSMETA_LOAD_TASKS`, `FSMETA_LOAD_TXS`, `FSMETA_LOAD_SEED`
//! set one value each). The backends run one after another, so their
//! throughput figures do not disturb each other.

use std::sync::{Arc, Mutex};

use fsmeta::MetadataStore;
use fsmeta::conformance::load::{LoadConfig, mixed_load};

/// One load at a time in this process.
static SERIAL: Mutex<()> = Mutex::new(());

fn run<F: Future<Output = ()>>(body: impl FnOnce() -> F) {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(body());
}

async fn load(backend: &str, store: Arc<dyn MetadataStore>, ci_transactions: usize) {
    let config = LoadConfig::from_env(ci_transactions);
    eprintln!(
        "load on {backend}: {} tasks × {} transactions, seed {} (FSMETA_LOAD_SEED replays it)",
        config.tasks, config.transactions, config.seed
    );
    let report = mixed_load(store, &config).await;
    eprintln!("load on {backend}: {report}");
    assert!(report.committed > 0, "nothing committed");
}

#[test]
fn memory_load() {
    run(|| async { load("memory", Arc::new(fsmeta::MemoryStore::new()), 100).await });
}

#[cfg(feature = "fjall")]
#[test]
fn fjall_load() {
    run(|| async {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = fsmeta::FjallStore::open(dir.path()).expect("open fjall store");
        load("fjall", Arc::new(store), 100).await;
    });
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_load() {
    run(|| async {
        let Some(schema) = fsmeta::conformance::postgres::TestSchema::create().await else {
            return;
        };
        let store = schema.connect().await.expect("connect");
        load("postgres", Arc::new(store.clone()), 30).await;
        store.close().await.expect("close");
        schema.drop_now().await;
    });
}
