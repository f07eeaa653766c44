//! Criterion micro-benchmarks of `list_locks` by file, owner and client
//! (10 locks each) on the memory and fjall backends, at two store sizes, so
//! that a query that grows with the store shows up (P3 of issue 8; the full
//! 10k-vs-1M ratios, and PostgreSQL, are in `cargo run --release --example bench`).

mod common;

use common::{client, handle, mix, owner, store_lock};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use fsmeta::{FjallStore, LockQuery, MemoryStore, MetadataStore, MetadataStoreExt, PersistedLock};

const SIZES: [u64; 2] = [10_000, 100_000];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn load(store: &dyn MetadataStore, n: u64) {
    for start in (0..n).step_by(10_000) {
        let locks: Vec<PersistedLock> = (start..(start + 10_000).min(n))
            .map(|i| store_lock(n, i))
            .collect();
        let locks = &locks;
        store
            .transact(|tx| Box::pin(async move { tx.put_locks(locks).await }))
            .await
            .expect("load");
    }
}

fn queries(n: u64, k: u64) -> [(&'static str, LockQuery); 3] {
    let g = mix(k) % (n / 10);
    [
        ("file", LockQuery::by_file(&handle(0, g))),
        ("owner", LockQuery::by_owner(&owner(g))),
        ("client", LockQuery::by_client(&client(g))),
    ]
}

fn bench_store(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    backend: &str,
    n: u64,
    store: &dyn MetadataStore,
) {
    rt.block_on(load(store, n));
    let mut group = c.benchmark_group(format!("list_locks/{backend}"));
    for (i, (by, _)) in queries(n, 0).into_iter().enumerate() {
        let mut k = 0u64;
        group.bench_with_input(BenchmarkId::new(by, n), &n, |b, &n| {
            b.to_async(rt).iter(|| {
                k += 1;
                let query = queries(n, k)[i].1.clone();
                async move {
                    let mut tx = store.begin().await.expect("begin");
                    let found = tx.list_locks(&query).await.expect("list_locks");
                    assert_eq!(found.len(), 10);
                    tx.rollback().await.expect("rollback");
                }
            })
        });
    }
    group.finish();
}

fn query(c: &mut Criterion) {
    let rt = runtime();
    for n in SIZES {
        let memory = MemoryStore::new();
        bench_store(c, &rt, "memory", n, &memory);
        let dir = tempfile::tempdir().expect("temp dir");
        let fjall = FjallStore::open(dir.path()).expect("open fjall store");
        bench_store(c, &rt, "fjall", n, &fjall);
    }
}

criterion_group!(benches, query);
criterion_main!(benches);
