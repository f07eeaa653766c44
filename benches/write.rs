//! Criterion micro-benchmarks of one write transaction (`put_file` +
//! `put_lock`): the fjall backend against the raw-fjall baseline that writes
//! the same keys (P1 of issue 8), and the memory backend. The ratios and the
//! targets are printed by `cargo run --release --example bench`.

mod common;

use std::hint::black_box;

use common::{RawFjall, transact_write_pair, write_pair};
use criterion::{Criterion, criterion_group, criterion_main};
use fjall::PersistMode;
use fsmeta::{FjallStore, MemoryStore, MetadataStore};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn write(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let fjall = FjallStore::open(dir.path().join("lib")).expect("open fjall store");
    let raw = RawFjall::open(&dir.path().join("raw"), PersistMode::Buffer).expect("open raw fjall");
    let memory = MemoryStore::new();

    let mut group = c.benchmark_group("put_file+put_lock");
    let mut k = 0u64;
    group.bench_function("fjall-lib-buffered", |b| {
        b.to_async(&rt).iter(|| {
            k += 1;
            let (file, lock) = write_pair(2, k);
            let fjall = &fjall;
            async move {
                transact_write_pair(fjall, &file, &lock)
                    .await
                    .expect("transact")
            }
        })
    });
    let mut k = 0u64;
    group.bench_function("fjall-raw-buffered", |b| {
        b.iter(|| {
            k += 1;
            let (file, lock) = write_pair(2, k);
            raw.put_file_and_lock(black_box(&file), black_box(&lock))
                .expect("raw write")
        })
    });
    let mut k = 0u64;
    group.bench_function("memory", |b| {
        b.to_async(&rt).iter(|| {
            k += 1;
            let (file, lock) = write_pair(2, k);
            let memory = &memory;
            async move {
                let mut tx = memory.begin().await.expect("begin");
                tx.put_file(&file).await.expect("put_file");
                tx.put_lock(&lock).await.expect("put_lock");
                tx.commit().await.expect("commit")
            }
        })
    });
    group.finish();
}

criterion_group!(benches, write);
criterion_main!(benches);
