//! How many messages (round trips) fsmeta sends PostgreSQL per operation,
//! counted by the server itself.
//!
//! The store connects to a database of its own, `fsmeta_statements`, set to
//! `log_statement = 'all'` and `client_min_messages = 'log'`: the server
//! then reports every message it runs (a simple-protocol message of several
//! statements once, an extended-protocol statement once, at execute) back
//! to the client as a `LOG` notice, and sqlx hands each notice to `tracing`
//! (target `sqlx::postgres::notice`), where a layer counts them. A
//! current-thread runtime keeps every task of the store, the pool's too, on
//! the thread the layer is the default on.
//!
//! The expectations are the exact counts the batching gives by design (see
//! `src/backend/postgres/batch.rs`): every write rides with the next message,
//! so a transaction costs one message per read plus its `COMMIT` (none for a
//! transaction of writes only), and reads asked for together
//! (`list_epoch_records_and_nodes`) go in one message. Issue 20's target for
//! each is printed beside it.

use std::sync::{Arc, Mutex};

#[path = "../benches/common/counted.rs"]
#[allow(dead_code)] // the bench names its lines by `slug`
mod counted;

use fsmeta::conformance::postgres::{quote_ident, reachable, required, server_url};
use fsmeta::conformance::{sample_file, sample_lock};
use fsmeta::{LockQuery, MetadataStore, PgOptions, PostgresStore};
use sea_orm::{ConnectionTrait, Database};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// The database whose sessions report their statements.
const DATABASE: &str = "fsmeta_statements";

/// The statements the server reported, in order.
#[derive(Clone, Default)]
struct Reported(Arc<Mutex<Vec<String>>>);

impl Reported {
    /// Forgets what was reported so far.
    fn clear(&self) {
        self.0.lock().expect("mutex").clear();
    }

    /// What was reported since the last `clear`.
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().expect("mutex"))
    }
}

/// The `message` field of an event.
struct Message(Option<String>);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = Some(format!("{value:?}"));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = Some(value.to_owned());
        }
    }
}

impl<S: Subscriber> Layer<S> for Reported {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != "sqlx::postgres::notice" {
            return;
        }
        let mut message = Message(None);
        event.record(&mut message);
        if let Some(text) = message.0
            && (text.starts_with("statement: ") || text.starts_with("execute "))
        {
            self.0.lock().expect("mutex").push(text);
        }
    }
}

/// The server's URL with `database` as the database.
fn url_of(database: &str) -> String {
    let mut url = url::Url::parse(&server_url()).expect("the server URL parses");
    url.set_path(database);
    url.into()
}

/// Makes sure [`DATABASE`] exists and reports statements to its clients.
async fn prepare_database(admin_url: &str) {
    let admin = Database::connect(admin_url).await.expect("connect");
    let exists = admin
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT 1 FROM pg_database WHERE datname = $1",
            [DATABASE.into()],
        ))
        .await
        .expect("query pg_database")
        .is_some();
    if !exists {
        // Another run may create it at the same moment: that is fine.
        let _ = admin
            .execute_unprepared(&format!("CREATE DATABASE {}", quote_ident(DATABASE)))
            .await;
    }
    for setting in ["log_statement = 'all'", "client_min_messages = 'log'"] {
        admin
            .execute_unprepared(&format!(
                "ALTER DATABASE {} SET {setting}",
                quote_ident(DATABASE)
            ))
            .await
            .expect("configure the database");
    }
    admin.close().await.ok();
}

/// Counts the messages of `op` and checks them against `expected`.
async fn expect_messages<F: Future<Output = ()>>(
    reported: &Reported,
    what: &str,
    expected: usize,
    bound: usize,
    op: F,
) {
    reported.clear();
    op.await;
    let seen = reported.take();
    assert_eq!(
        seen.len(),
        expected,
        "{what}: {} messages, expected {expected} (target <= {bound}); the server ran:\n{}",
        seen.len(),
        seen.join("\n")
    );
    let verdict = if seen.len() <= bound { "PASS" } else { "MISS" };
    println!(
        "{what}: {} message(s), target <= {bound}: {verdict}",
        seen.len()
    );
}

#[test]
fn messages_per_operation() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let reported = Reported::default();
    let subscriber = tracing_subscriber::registry().with(reported.clone());
    let _default = tracing::subscriber::set_default(subscriber);
    runtime.block_on(run(reported));
}

async fn run(reported: Reported) {
    let Some(admin_url) = reachable().await else {
        assert!(!required(), "PostgreSQL is required but not reachable");
        eprintln!("notice: no PostgreSQL server; skipping the statement counts");
        return;
    };
    prepare_database(&admin_url).await;
    let url = url_of(DATABASE);
    let schema = fsmeta::conformance::postgres::fresh_schema_name();
    let store = PostgresStore::connect_with(
        &url,
        PgOptions {
            schema: Some(schema.clone()),
            max_connections: 1,
            ..Default::default()
        },
    )
    .await
    .expect("connect");
    // The server reports to this database's sessions.
    reported.clear();
    let mut probe = store.begin().await.expect("begin");
    probe
        .get_file(&fsmeta::conformance::handle(b"none"))
        .await
        .expect("read");
    probe.rollback().await.expect("rollback");
    assert!(
        !reported.take().is_empty(),
        "the server reports statements (log_statement, client_min_messages on {DATABASE})"
    );

    for op in counted::COUNTED {
        expect_messages(&reported, op.name, op.expected, op.target, async {
            op.run(&store)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", op.name));
        })
        .await;
    }
    let mut tx = store.begin().await.expect("begin");
    let pieces = tx
        .list_locks(&LockQuery::by_file(&counted::locked_file()))
        .await
        .expect("list");
    assert_eq!(pieces.len(), 2, "the split left two pieces: {pieces:?}");
    tx.rollback().await.expect("rollback");

    drop(store);
    fsmeta::conformance::postgres::drop_schema(&url, &schema)
        .await
        .expect("drop the schema");
}

// ---------------------------------------------------------------------------
// Hostile values

/// Strings that break SQL assembled by hand, and that SeaQuery renders or
/// binds: quotes, backslashes, SeaQuery's own escape letters, dollar quotes
/// and placeholders, comments, statement separators, control characters,
/// non-ASCII, and long runs of quotes.
fn hostile_strings() -> Vec<String> {
    vec![
        "'; DROP TABLE locks; --".into(),
        "a'b''c'''".into(),
        r"back\slash\\ \' \z \0 \x41 \u0041".into(),
        "$$ dollar $$ $tag$ x $tag$ $1 $2::text".into(),
        "E'x' U&'\\0041' B'101'".into(),
        "/* comment */ -- line; SELECT 1;".into(),
        "\t\n\r\u{8}\u{1a}\u{7f}\u{1b}[0m".into(),
        "\"double\" `back` [br] {cu} %s ? :name".into(),
        "ü 日本 🦀 \u{feff} \u{202e}rtl".into(),
        "x".repeat(1024),
        "'".repeat(1024),
        "\\".repeat(1024),
        "$".repeat(1024),
    ]
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// Every text column gets each hostile string (cut to its limit), every
/// byte column every byte value; what is read back equals what was written,
/// both from the transaction that wrote it (its writes were sent with the
/// read) and after commit, and lookups by those values find them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_round_trip_in_every_column() {
    use fsmeta::conformance::{full_open, sample_client, sample_delegation, sample_lease};
    use fsmeta::*;
    let Some(fx) = fsmeta::conformance::postgres::PgTestStore::create().await else {
        return;
    };
    let store = fx.pg();
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    for (n, s) in hostile_strings().iter().enumerate() {
        let share = cut(s, 255);
        let id = cut(s, 1024);
        // Handles: 128 bytes at most; two of them carry every byte value.
        let mut bytes = all_bytes[(n % 2) * 128..(n % 2) * 128 + 128].to_vec();
        bytes[0] = n as u8;
        let file = FileMeta {
            share_name: share.clone(),
            ..sample_file(&bytes, "s")
        };
        let lock = PersistedLock {
            share_name: share.clone(),
            owner_id: id.clone(),
            client_id: id.clone(),
            ..sample_lock(&file.handle, "o", "c", "s")
        };
        let client = ClientRecord {
            owner: all_bytes.clone(),
            principal: Some(all_bytes.clone()),
            callback: Some(id.clone()),
            ..sample_client(&id, &id, 3)
        };
        let open = OpenRecord {
            file: file.handle.clone(),
            share_name: share.clone(),
            client_id: id.clone(),
            owner_id: id.clone(),
            ..full_open()
        };
        let lease = LeaseRecord {
            file: file.handle.clone(),
            share_name: share.clone(),
            ..sample_lease(&bytes, &id, 7, LeaseState::READ)
        };
        let delegation = DelegationRecord {
            file: file.handle.clone(),
            share_name: share.clone(),
            ..sample_delegation(&bytes, &id, DelegationType::Read)
        };
        let waiter = Waiter {
            id: uuid::Uuid::new_v4(),
            file_id: file.handle.clone(),
            share_name: share.clone(),
            owner_id: id.clone(),
            client_id: id.clone(),
            node_id: id.clone(),
            lock_type: LockType::Exclusive,
            offset: u64::MAX - 1,
            length: 1,
            share_reservation: ShareReservation::None,
            flavor: LockFlavor::Posix,
            position: 9,
            since: Timestamp::from_micros(1_700_000_000_123_456),
            context: all_bytes.clone(),
        };
        let node = NodeState {
            epoch: 5,
            taken_over: Some(Takeover {
                by: id.clone(),
                at: Timestamp::from_micros(1_700_000_000_000_001),
            }),
            ..NodeState::new(&id)
        };
        let epoch_record = EpochRecord {
            epoch: 1_000 + n as u64,
            node_id: id.clone(),
            started_at: Timestamp::from_micros(1_700_000_000_000_002),
        };
        // Table names are a-z, 0-9 and _ only (validated before anything is sent).
        let table = format!("hostile_{n}");
        let records = Records {
            file: file.clone(),
            lock: lock.clone(),
            client: client.clone(),
            open: open.clone(),
            lease: lease.clone(),
            delegation: delegation.clone(),
            waiter: waiter.clone(),
            node: node.clone(),
            epoch_record: epoch_record.clone(),
            table: table.clone(),
            bytes: all_bytes.clone(),
        };
        let mut tx = store.begin().await.expect("begin");
        write_records(&mut *tx, &records)
            .await
            .unwrap_or_else(|e| panic!("write {s:?}: {e}"));
        // Read back in the writing transaction (the writes ride with the
        // first read), then from another after commit.
        for pass in ["in the writing transaction", "after commit"] {
            let what = |field: &str| format!("{field} of {s:?}, {pass}");
            assert_eq!(
                tx.get_file(&file.handle).await.unwrap(),
                Some(file.clone()),
                "{}",
                what("file")
            );
            assert_eq!(
                tx.get_lock(lock.id).await.unwrap(),
                Some(lock.clone()),
                "{}",
                what("lock")
            );
            assert_eq!(
                tx.list_locks(&LockQuery::by_client(&id)).await.unwrap(),
                vec![lock.clone()],
                "{}",
                what("lock by client")
            );
            assert_eq!(
                tx.get_client(&id).await.unwrap(),
                Some(client.clone()),
                "{}",
                what("client")
            );
            assert_eq!(
                tx.get_open(open.id).await.unwrap(),
                Some(open.clone()),
                "{}",
                what("open")
            );
            assert_eq!(
                tx.get_lease(lease.id).await.unwrap(),
                Some(lease.clone()),
                "{}",
                what("lease")
            );
            assert_eq!(
                tx.get_delegation(delegation.id).await.unwrap(),
                Some(delegation.clone()),
                "{}",
                what("delegation")
            );
            assert_eq!(
                tx.get_waiter(waiter.id).await.unwrap(),
                Some(waiter.clone()),
                "{}",
                what("waiter")
            );
            assert_eq!(
                tx.get_node(&id).await.unwrap(),
                Some(node.clone()),
                "{}",
                what("node")
            );
            assert!(
                tx.list_epoch_records()
                    .await
                    .unwrap()
                    .contains(&epoch_record),
                "{}",
                what("epoch record")
            );
            assert_eq!(
                tx.ext_get(&table, &all_bytes).await.unwrap(),
                Some(all_bytes.clone()),
                "{}",
                what("ext record")
            );
            if pass == "in the writing transaction" {
                tx.commit()
                    .await
                    .unwrap_or_else(|e| panic!("commit {s:?}: {e}"));
                tx = store.begin().await.expect("begin");
            }
        }
        tx.rollback().await.expect("rollback");
        // A transaction of writes only (one message, or bound statements
        // between messages): the same values, rewritten, stay equal.
        let mut tx = store.begin().await.expect("begin");
        write_records(&mut *tx, &records).await.expect("rewrite");
        tx.commit()
            .await
            .unwrap_or_else(|e| panic!("write-only commit {s:?}: {e}"));
        let mut tx = store.begin().await.expect("begin");
        assert_eq!(tx.get_lock(lock.id).await.unwrap(), Some(lock.clone()));
        assert_eq!(tx.get_client(&id).await.unwrap(), Some(client.clone()));
        tx.rollback().await.expect("rollback");
    }
    let report = store.verify().await.expect("verify");
    assert!(report.problems.is_empty(), "verify: {:?}", report.problems);
    drop(store);
    fx.cleanup().await;
}

/// One record of each family.
struct Records {
    file: fsmeta::FileMeta,
    lock: fsmeta::PersistedLock,
    client: fsmeta::ClientRecord,
    open: fsmeta::OpenRecord,
    lease: fsmeta::LeaseRecord,
    delegation: fsmeta::DelegationRecord,
    waiter: fsmeta::Waiter,
    node: fsmeta::NodeState,
    epoch_record: fsmeta::EpochRecord,
    table: String,
    bytes: Vec<u8>,
}

/// Writes every record of `r` in `tx`.
async fn write_records(
    tx: &mut (dyn fsmeta::MetadataTransaction + '_),
    r: &Records,
) -> fsmeta::Result<()> {
    tx.put_file(&r.file).await?;
    tx.put_lock(&r.lock).await?;
    tx.put_client(&r.client).await?;
    tx.put_open(&r.open).await?;
    tx.put_lease(&r.lease).await?;
    tx.put_delegation(&r.delegation).await?;
    tx.put_waiter(&r.waiter).await?;
    tx.put_node(&r.node).await?;
    tx.put_epoch_record(&r.epoch_record).await?;
    tx.ext_put(&r.table, &r.bytes, &r.bytes).await
}
