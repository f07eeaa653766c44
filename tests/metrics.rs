//! Feature `metrics`: commits, conflicts, retries and the commit-latency
//! histogram reach the installed `metrics` recorder.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use fsmeta::*;
use metrics::{
    Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

/// Counts per metric name and label set (`name{k=v,...}`).
#[derive(Default)]
struct Recording {
    counters: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    histograms: Mutex<BTreeMap<String, Arc<Samples>>>,
}

#[derive(Default)]
struct Samples(Mutex<Vec<f64>>);

struct Count(Arc<AtomicU64>);

impl CounterFn for Count {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }
}

impl HistogramFn for Samples {
    fn record(&self, value: f64) {
        self.0.lock().unwrap().push(value);
    }
}

fn name(key: &Key) -> String {
    let labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl Recorder for Recording {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let cell = self
            .counters
            .lock()
            .unwrap()
            .entry(name(key))
            .or_default()
            .clone();
        Counter::from_arc(Arc::new(Count(cell)))
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let cell = self
            .histograms
            .lock()
            .unwrap()
            .entry(name(key))
            .or_default()
            .clone();
        Histogram::from_arc(cell)
    }
}

impl Recording {
    fn counter(&self, name: &str) -> u64 {
        self.counters
            .lock()
            .unwrap()
            .get(name)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
    fn samples(&self, name: &str) -> usize {
        self.histograms
            .lock()
            .unwrap()
            .get(name)
            .map_or(0, |h| h.0.lock().unwrap().len())
    }
}

#[test]
fn commits_conflicts_and_retries_are_counted() {
    let recording = Recording::default();
    metrics::with_local_recorder(&recording, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let store = MemoryStore::new();
                // Two plain commits.
                for _ in 0..2 {
                    store
                        .transact(|tx| Box::pin(async move { tx.increment_server_epoch().await }))
                        .await
                        .unwrap();
                }
                // One conflict at commit: two transactions raise the epoch from one snapshot.
                let mut a = store.begin().await.unwrap();
                let mut b = store.begin().await.unwrap();
                a.increment_server_epoch().await.unwrap();
                b.increment_server_epoch().await.unwrap();
                a.commit().await.unwrap();
                assert!(b.commit().await.unwrap_err().is_retryable());
                // A closure that conflicts once, then succeeds: one retry.
                let mut first = true;
                store
                    .transact(|tx| {
                        let conflict = std::mem::take(&mut first);
                        Box::pin(async move {
                            tx.increment_server_epoch().await?;
                            if conflict {
                                return Err(Error::Conflict("injected".into()));
                            }
                            Ok(())
                        })
                    })
                    .await
                    .unwrap();
                // A closure that always conflicts: gives up once the time bound passes.
                let policy = RetryPolicy {
                    initial_backoff: std::time::Duration::from_millis(1),
                    max_backoff: std::time::Duration::from_millis(1),
                    max_elapsed: std::time::Duration::from_millis(5),
                };
                let gave_up = store
                    .transact_with(policy, |_tx| {
                        Box::pin(async move { Err::<(), _>(Error::Conflict("always".into())) })
                    })
                    .await;
                assert!(gave_up.is_err());
            });
    });
    assert_eq!(recording.counter("fsmeta_commits_total{backend=memory}"), 4);
    assert_eq!(recording.counter("fsmeta_conflicts_total{stage=commit}"), 1);
    assert!(recording.counter("fsmeta_conflicts_total{stage=body}") >= 2);
    assert!(recording.counter("fsmeta_transaction_retries_total{}") >= 2);
    assert_eq!(recording.counter("fsmeta_transactions_gave_up_total{}"), 1);
    assert_eq!(
        recording.samples("fsmeta_commit_seconds{backend=memory,outcome=ok}"),
        4
    );
    assert_eq!(
        recording.samples("fsmeta_commit_seconds{backend=memory,outcome=conflict}"),
        1
    );
}
