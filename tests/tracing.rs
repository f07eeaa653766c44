//! Every public operation that does I/O or decides opens a span with its
//! fields: a capturing layer records them while a memory store runs the
//! transaction, arbiter, recovery, copy and verify paths.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use fsmeta::*;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// A closed span: its name, level and every field that got a value.
#[derive(Clone, Debug)]
struct Captured {
    name: &'static str,
    level: Level,
    fields: BTreeMap<String, String>,
}

#[derive(Clone, Default)]
struct Capture {
    open: Arc<Mutex<BTreeMap<u64, Captured>>>,
    closed: Arc<Mutex<Vec<Captured>>>,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let meta = attrs.metadata();
        self.open.lock().unwrap().insert(
            id.into_u64(),
            Captured {
                name: meta.name(),
                level: *meta.level(),
                fields,
            },
        );
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some(span) = self.open.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut span.fields));
        }
    }

    fn on_close(&self, id: Id, _: Context<'_, S>) {
        if let Some(span) = self.open.lock().unwrap().remove(&id.into_u64()) {
            self.closed.lock().unwrap().push(span);
        }
    }
}

impl Capture {
    fn spans(&self, name: &str) -> Vec<Captured> {
        self.closed
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.name == name)
            .cloned()
            .collect()
    }

    /// The closed spans called `name`; panics unless there is one, and
    /// unless every one has each of `fields`.
    fn expect(&self, name: &str, level: Level, fields: &[&str]) -> Vec<Captured> {
        let spans = self.spans(name);
        assert!(!spans.is_empty(), "no span {name}");
        for span in &spans {
            assert_eq!(span.level, level, "span {name}");
            for field in fields {
                assert!(
                    span.fields.contains_key(*field),
                    "span {name} lacks field {field}: {span:?}"
                );
            }
        }
        spans
    }
}

fn file() -> FileMeta {
    let t = Timestamp::from_micros(1_700_000_000_000_000);
    FileMeta {
        handle: FileHandle::new(*b"\x01\xabfh").unwrap(),
        share_name: "export".into(),
        kind: FileKind::Regular,
        mode: 0o100644,
        uid: 1,
        gid: 1,
        nlink: 1,
        size: 0,
        atime: t,
        mtime: t,
        ctime: t,
    }
}

fn lock(file: &FileHandle, owner: &str, epoch: u64) -> PersistedLock {
    PersistedLock {
        id: uuid::Uuid::new_v4(),
        share_name: "export".into(),
        file_id: file.clone(),
        owner_id: owner.into(),
        client_id: "client-1".into(),
        lock_type: LockType::Exclusive,
        offset: 10,
        length: 100,
        share_reservation: ShareReservation::None,
        acquired_at: Timestamp::from_micros(1_700_000_000_000_000),
        server_epoch: epoch,
        flavor: fsmeta::LockFlavor::Posix,
    }
}

#[test]
fn public_operations_open_spans_with_their_fields() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    tracing::subscriber::with_default(subscriber, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(run())
    });

    for op in ["begin", "commit", "rollback"] {
        let spans = capture.expect(op, Level::DEBUG, &["backend", "outcome", "duration_us"]);
        assert!(spans.iter().all(|s| s.fields["backend"] == "memory"));
    }
    let commits = capture.spans("commit");
    assert!(commits.iter().any(|s| s.fields["outcome"] == "ok"));
    assert!(commits.iter().any(|s| s.fields["outcome"] == "conflict"));

    let attempts = capture.expect("transact", Level::DEBUG, &["retry", "outcome"]);
    assert!(
        attempts
            .iter()
            .any(|s| s.fields["retry"] == "1" && s.fields["outcome"] == "ok")
    );
    assert!(
        attempts
            .iter()
            .any(|s| s.fields["outcome"] == "conflict" && s.fields["stage"] == "body")
    );

    let lock_fields = [
        "file",
        "owner",
        "client",
        "offset",
        "length",
        "lock_type",
        "decision",
    ];
    let acquired = capture.expect("acquire_lock", Level::DEBUG, &lock_fields);
    assert_eq!(acquired[0].fields["file"], "01ab6668");
    assert_eq!(acquired[0].fields["owner"], "owner-1");
    assert_eq!(acquired[0].fields["client"], "client-1");
    assert_eq!(acquired[0].fields["decision"], "granted");
    assert!(
        acquired
            .iter()
            .any(|s| s.fields["decision"] == "denied" && s.fields["conflicts"] == "1")
    );
    capture.expect("test_lock", Level::DEBUG, &lock_fields);
    let released = capture.expect(
        "release_range",
        Level::DEBUG,
        &[
            "file", "owner", "client", "offset", "length", "decision", "released",
        ],
    );
    assert_eq!(released[0].fields["released"], "1");
    let mut reclaim_fields = lock_fields.to_vec();
    reclaim_fields.push("node");
    let reclaimed = capture.expect("reclaim", Level::DEBUG, &reclaim_fields);
    assert_eq!(reclaimed[0].fields["decision"], "granted");

    let recoveries = capture.expect(
        "begin_recovery",
        Level::INFO,
        &[
            "node",
            "epoch",
            "previous_shutdown_clean",
            "reclaimable",
            "clients",
            "outcome",
        ],
    );
    assert_eq!(recoveries.last().unwrap().fields["reclaimable"], "1");
    capture.expect(
        "end_grace",
        Level::INFO,
        &["node", "epoch", "deleted", "outcome"],
    );
    capture.expect("mark_clean_shutdown", Level::INFO, &["node", "outcome"]);

    let copies = capture.expect(
        "copy_store",
        Level::INFO,
        &[
            "batch_size",
            "files",
            "locks",
            "nodes",
            "epoch_records",
            "matches",
            "outcome",
        ],
    );
    assert_eq!(copies[0].fields["matches"], "true");
    capture.expect("digest", Level::INFO, &["files", "locks", "outcome"]);
    capture.expect(
        "verify_records",
        Level::INFO,
        &["files", "locks", "problems", "outcome"],
    );

    // Ids only: no span field holds a record's contents.
    for span in capture.closed.lock().unwrap().iter() {
        for value in span.fields.values() {
            assert!(!value.contains("export"), "share name in {span:?}");
        }
    }
}

async fn run() {
    let store = MemoryStore::new();
    let file = file();
    let handle = file.handle.clone();

    // Recovery: start an incarnation (epoch 1), take a lock, crash, restart.
    begin_recovery(&store).await.unwrap();
    let held = lock(&handle, "owner-1", 1);
    {
        let (file, held) = (&file, &held);
        let granted = store
            .transact(|tx| {
                Box::pin(async move {
                    tx.put_file(file).await?;
                    acquire_lock(tx, held).await
                })
            })
            .await
            .unwrap();
        assert_eq!(granted, Acquire::Granted);
    }
    let recovery = begin_recovery(&store).await.unwrap();
    assert_eq!(recovery.reclaimable.len(), 1);
    let reclaim = lock(&handle, "owner-1", recovery.epoch);
    {
        let reclaim = &reclaim;
        let answer = store
            .transact(|tx| Box::pin(async move { reclaim_lock(tx, reclaim).await }))
            .await
            .unwrap();
        assert_eq!(answer, Reclaim::Granted);
    }
    end_grace(&store, recovery.epoch).await.unwrap();

    // Arbiter: a conflicting request is denied and tested; then an unlock.
    let other = lock(&handle, "owner-2", recovery.epoch);
    {
        let other = &other;
        let owner = reclaim.to_enhanced().owner;
        let (owner, handle) = (&owner, &handle);
        store
            .transact(|tx| {
                Box::pin(async move {
                    let denied = acquire_lock(tx, other).await?;
                    assert!(matches!(denied, Acquire::Denied { .. }));
                    test_lock(tx, other).await?;
                    release_range(
                        tx,
                        handle,
                        owner,
                        ByteRange {
                            offset: 0,
                            length: 0,
                        },
                    )
                    .await
                })
            })
            .await
            .unwrap();
    }

    // One conflict at commit, one retried attempt, and a rollback.
    let mut a = store.begin().await.unwrap();
    let mut b = store.begin().await.unwrap();
    a.increment_server_epoch().await.unwrap();
    b.increment_server_epoch().await.unwrap();
    a.commit().await.unwrap();
    assert!(b.commit().await.is_err());
    let mut first = true;
    store
        .transact(|tx| {
            let conflict = std::mem::take(&mut first);
            Box::pin(async move {
                tx.server_epoch().await?;
                if conflict {
                    return Err(Error::Conflict("injected".into()));
                }
                Ok(())
            })
        })
        .await
        .unwrap();
    store.begin().await.unwrap().rollback().await.unwrap();

    mark_clean_shutdown(&store).await.unwrap();

    // Admin: copy, digest and verify.
    let copy = MemoryStore::new();
    let report = copy_store(&store, &copy, &CopyOptions::default(), |_| {})
        .await
        .unwrap();
    assert!(report.matches());
    store.verify().await.unwrap();
}
