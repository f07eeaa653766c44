//! Waiters across OS processes on PostgreSQL (issue 19): a waiter in this
//! process is woken by a release another process commits (the NOTIFY of its
//! transaction), and, with the listener's connection killed so the
//! notification is lost, by the subscription's poll.
//!
//! The test binary re-executes itself as the releasing process (`harness =
//! false`: `main` dispatches on `FSMETA_WAITERS_CHILD`). Needs PostgreSQL;
//! skips with a notice when it is unreachable, unless `FSMETA_REQUIRE_POSTGRES=1`.

#[cfg(feature = "postgres")]
fn main() {
    waiters::main();
}

#[cfg(not(feature = "postgres"))]
fn main() {
    println!("waiters: built without feature `postgres`; nothing to run");
}

#[cfg(feature = "postgres")]
#[path = "support/suite.rs"]
mod suite;

#[cfg(feature = "postgres")]
mod waiters {
    use std::process::Command;
    use std::sync::Arc;
    use std::time::Duration;

    use fsmeta::conformance::postgres::TestSchema;
    use fsmeta::*;
    use sea_orm::ConnectionTrait;
    use uuid::Uuid;

    use crate::suite::{Schemas, Test};

    const CHILD: &str = "FSMETA_WAITERS_CHILD";
    const FILE: &[u8] = b"shared-file";

    pub fn main() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        if std::env::var(CHILD).is_ok() {
            runtime.block_on(release_in_child());
            return;
        }
        let tests: [(&str, Test); 2] = [
            (
                "woken_by_a_release_in_another_process",
                woken_across_processes,
            ),
            (
                "polling_wakes_after_a_lost_notification",
                polling_after_lost_notification,
            ),
        ];
        let clear = "TRUNCATE locks, waiters";
        crate::suite::run("waiters", &runtime, &tests, Schemas::Shared { clear });
    }

    fn lock(owner: &str) -> PersistedLock {
        PersistedLock {
            id: Uuid::new_v4(),
            share_name: "export".into(),
            file_id: FileHandle::new(FILE).expect("handle"),
            owner_id: owner.into(),
            client_id: format!("client-of-{owner}"),
            lock_type: LockType::Exclusive,
            offset: 0,
            length: 0,
            share_reservation: ShareReservation::None,
            acquired_at: Timestamp::now(),
            server_epoch: 1,
            flavor: LockFlavor::Posix,
        }
    }

    /// The child: connects on its own and releases the holder's lock.
    async fn release_in_child() {
        let url = std::env::var("FSMETA_TEST_POSTGRES_URL").expect("url");
        let schema = std::env::var("FSMETA_WAITERS_SCHEMA").expect("schema");
        let options = PgOptions {
            schema: Some(schema),
            migrate: false,
            ..Default::default()
        };
        let store = PostgresStore::connect_with(&url, options)
            .await
            .expect("child connects");
        let owner = LockOwner {
            owner_id: "holder".into(),
            client_id: "client-of-holder".into(),
            share_name: "export".into(),
        };
        let (file, owner) = (&FileHandle::new(FILE).expect("handle"), &owner);
        let released = store
            .transact(|tx| {
                Box::pin(async move {
                    release_range(
                        tx,
                        file,
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
            .expect("release in the child");
        assert_eq!(released, 1, "the child released the holder's lock");
    }

    fn release_in_another_process(schema: &TestSchema) {
        let status = Command::new(std::env::current_exe().expect("current exe"))
            .env(CHILD, "release")
            .env("FSMETA_TEST_POSTGRES_URL", schema.url())
            .env("FSMETA_WAITERS_SCHEMA", schema.name())
            .status()
            .expect("spawn the releasing process");
        assert!(status.success(), "the releasing process failed: {status:?}");
    }

    /// In this process: the holder's lock, a queued waiter of node `node-a`,
    /// and a subscription of that node with `options`.
    async fn set_up(schema: &TestSchema, options: WaitersOptions) -> (Waiter, Waiters) {
        let store: Arc<dyn MetadataStore> = Arc::new(schema.connect().await.expect("connect"));
        let wait = WaitOptions {
            node_id: "node-a".into(),
            ..Default::default()
        };
        let (holder, waiting, wait) = (&lock("holder"), &lock("waiting"), &wait);
        let granted = store
            .transact(|tx| Box::pin(async move { acquire_or_wait(tx, holder, wait).await }))
            .await
            .expect("holder");
        assert_eq!(granted, Wait::Granted);
        let queued = store
            .transact(|tx| Box::pin(async move { acquire_or_wait(tx, waiting, wait).await }))
            .await
            .expect("waiting");
        let Wait::Queued { waiter } = queued else {
            panic!("expected the second request to queue, got {queued:?}");
        };
        let options = WaitersOptions {
            node_id: Some("node-a".into()),
            ..options
        };
        let waiters = Waiters::subscribe(store, options).await.expect("subscribe");
        (waiter, waiters)
    }

    async fn next(waiters: &mut Waiters) -> Woken {
        tokio::time::timeout(Duration::from_secs(60), waiters.next())
            .await
            .expect("no waiter was woken within 60 s")
            .expect("Waiters::next")
    }

    /// No poll: only the other process's NOTIFY can wake the waiter.
    fn woken_across_processes(runtime: &tokio::runtime::Runtime, schema: &TestSchema) {
        runtime.block_on(async {
            let options = WaitersOptions {
                poll_interval: None,
                ..Default::default()
            };
            let (waiter, mut waiters) = set_up(schema, options).await;
            release_in_another_process(schema);
            let woken = next(&mut waiters).await;
            assert_eq!(woken.waiter, waiter);
            assert_eq!(woken.cause, WakeCause::Announced);
        });
    }

    /// The listener's backend is terminated and does not come back during
    /// the test, so the release's notification reaches nobody: the poll
    /// (every 200 ms here) wakes the waiter.
    fn polling_after_lost_notification(runtime: &tokio::runtime::Runtime, schema: &TestSchema) {
        runtime.block_on(async {
            let options = WaitersOptions {
                poll_interval: Some(Duration::from_millis(200)),
                relisten_after: Duration::from_secs(3600),
                ..Default::default()
            };
            let (waiter, mut waiters) = set_up(schema, options).await;
            let sql = schema.sql().await;
            // The listener's connection last ran `LISTEN "fsmeta_wake_<md5(schema)>"`.
            let killed = sql
                .query_one_raw(sea_orm::Statement::from_sql_and_values(
                    sea_orm::DbBackend::Postgres,
                    "SELECT count(pg_terminate_backend(pid)) AS killed FROM pg_stat_activity \
                     WHERE query = 'LISTEN \"fsmeta_wake_' || md5($1) || '\"'",
                    [schema.name().into()],
                ))
                .await
                .expect("terminate the listener")
                .expect("a row")
                .try_get::<i64>("", "killed")
                .expect("count");
            assert_eq!(killed, 1, "exactly one listener connection was terminated");
            let _ = sql.close().await;
            release_in_another_process(schema);
            let woken = next(&mut waiters).await;
            assert_eq!(woken.waiter, waiter);
            assert_eq!(
                woken.cause,
                WakeCause::Poll,
                "the notification was lost, so the poll must be what woke it"
            );
        });
    }
}
