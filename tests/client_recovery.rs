//! Client recovery across real processes on one PostgreSQL database: node A
//! confirms clients and grants their locks, crashes, restarts and crashes
//! again during its own grace period, and its clients still reclaim through
//! A; then A dies for good, B takes it over, and the client that had not
//! finished reclaims through B (issue 16).
//!
//! Each step is a child process (the test binary re-executing itself,
//! `harness = false`; `main` dispatches on `FSMETA_CLIENT_RECOVERY_CHILD`)
//! that exits without shutting its session down: a crash, as far as the
//! store can tell. Children print `key=value` lines; the parent checks them
//! and the final rows. Needs PostgreSQL; skips with a notice when it is
//! unreachable, unless `FSMETA_REQUIRE_POSTGRES=1`.

fn main() {
    recovery::main();
}

mod recovery {
    use std::collections::BTreeMap;
    use std::process::{Command, Stdio};
    use std::sync::Arc;

    use fsmeta::conformance::postgres::TestSchema;
    use fsmeta::*;

    const CHILD: &str = "FSMETA_CLIENT_RECOVERY_CHILD";

    pub fn main() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        if let Ok(role) = std::env::var(CHILD) {
            runtime.block_on(child(&role));
            return;
        }
        let Some(schema) = runtime.block_on(TestSchema::create()) else {
            println!("client_recovery: 0 passed, 0 failed, 1 skipped");
            return;
        };
        let outcome = std::panic::catch_unwind(|| restarts_and_takeover(&schema));
        runtime.block_on(schema.drop_now());
        println!(
            "test clients_reclaim_through_a_restart_during_grace_then_the_taker ... {}",
            if outcome.is_ok() { "ok" } else { "FAILED" }
        );
        if outcome.is_err() {
            std::process::exit(101);
        }
    }

    /// Runs one step in a child process; returns its `key=value` fields.
    fn step(schema: &TestSchema, role: &str) -> BTreeMap<String, String> {
        let out = Command::new(std::env::current_exe().expect("current exe"))
            .env(CHILD, role)
            .env("FSMETA_TEST_POSTGRES_URL", schema.url())
            .env("FSMETA_CLIENT_RECOVERY_SCHEMA", schema.name())
            .stdout(Stdio::piped())
            .output()
            .expect("run a child process");
        assert!(out.status.success(), "step {role} failed: {:?}", out.status);
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .split_whitespace()
            .filter_map(|f| f.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    fn restarts_and_takeover(schema: &TestSchema) {
        let first = step(schema, "a-first");
        let second = step(schema, "a-restart");
        assert_eq!(second["recovery"], "c1,c2", "A's clients of its dead epoch");
        assert_eq!(second["c1_reclaim"], "Granted");
        assert_eq!(second["c1_complete"], second["epoch"]);
        let third = step(schema, "a-restart-again");
        let epoch =
            |fields: &BTreeMap<String, String>| fields["epoch"].parse::<u64>().expect("epoch");
        assert!(epoch(&third) > epoch(&second) && epoch(&second) > epoch(&first));
        assert_eq!(
            third["recovery"], "c1,c2",
            "a restart during grace keeps both"
        );
        assert_eq!(third["c1_reclaim"], "Granted", "c1 again, through A");
        assert_eq!(
            third["c2_reclaim"], "Granted",
            "c2 from two epochs back, through A"
        );
        assert_eq!(third["c3_reclaim"], "NotAllowed(UnknownClient)");
        let taker = step(schema, "b-takes-over");
        assert_eq!(
            taker["c2_reclaim"], "Granted",
            "c2 through B after the takeover"
        );
        assert_eq!(taker["c2_node"], "b");
        assert_eq!(
            taker["swept"], "1",
            "c1 never came back to B: its lock goes"
        );
        assert_eq!(taker["c1_record"], "none", "and its record");
        assert_eq!(taker["c2_locks"], "1");
    }

    async fn store() -> Arc<dyn MetadataStore> {
        let url = std::env::var("FSMETA_TEST_POSTGRES_URL").expect("url");
        let schema = std::env::var("FSMETA_CLIENT_RECOVERY_SCHEMA").expect("schema");
        let options = PgOptions {
            schema: Some(schema),
            migrate: false,
            ..Default::default()
        };
        Arc::new(
            PostgresStore::connect_with(&url, options)
                .await
                .expect("child connects"),
        )
    }

    /// The lock client `c` holds: exclusive, its own bytes of one file.
    fn lock_of(c: &str, at: u64) -> PersistedLock {
        PersistedLock {
            id: uuid::Uuid::new_v4(),
            share_name: "export".into(),
            file_id: FileHandle::new(*b"shared-file").expect("handle"),
            owner_id: format!("owner-{c}"),
            client_id: c.into(),
            lock_type: LockType::Exclusive,
            offset: at,
            length: 100,
            share_reservation: ShareReservation::None,
            acquired_at: Timestamp::now(),
            server_epoch: 0,
            flavor: LockFlavor::Posix,
        }
    }

    fn locks() -> [(&'static str, PersistedLock); 2] {
        [("c1", lock_of("c1", 0)), ("c2", lock_of("c2", 100))]
    }

    async fn start(store: &Arc<dyn MetadataStore>, node: &str) -> NodeSession {
        let options = StartOptions {
            take_over_live: true,
            ..Default::default()
        };
        Node::new(store.clone(), node)
            .expect("node id")
            .start(options)
            .await
            .expect("start")
    }

    fn answer(reclaim: &Reclaim) -> String {
        format!("{reclaim:?}").replace(' ', "")
    }

    async fn child(role: &str) {
        let store = store().await;
        let mut out = Vec::new();
        match role {
            "a-first" => {
                let a = start(&store, "a").await;
                for (c, lock) in locks() {
                    let record = ClientRecord::new(
                        c,
                        "a",
                        ClientProtocol::Nfs4,
                        c.as_bytes().to_vec(),
                        [1; 8],
                        a.epoch(),
                    );
                    let (record, lock) = (&record, &lock);
                    a.transact(|tx| {
                        Box::pin(async move {
                            tx.put_client(record).await?;
                            tx.acquire(lock).await
                        })
                    })
                    .await
                    .expect("confirm and lock");
                }
                out.push(format!("epoch={}", a.epoch()));
            }
            "a-restart" | "a-restart-again" => {
                let a = start(&store, "a").await;
                let ids: Vec<_> = a
                    .recovery()
                    .clients
                    .iter()
                    .map(|c| c.client_id.clone())
                    .collect();
                out.push(format!("epoch={} recovery={}", a.epoch(), ids.join(",")));
                let [(_, l1), (_, l2)] = locks();
                let r1 = a.reclaim_as(&l1, None).await.expect("reclaim c1");
                out.push(format!("c1_reclaim={}", answer(&r1)));
                let done = a.reclaim_complete("c1").await.expect("complete c1");
                out.push(format!("c1_complete={}", done.epoch));
                if role == "a-restart-again" {
                    // c2 reclaims but crashes with A before RECLAIM_COMPLETE.
                    let r2 = a.reclaim_as(&l2, None).await.expect("reclaim c2");
                    out.push(format!("c2_reclaim={}", answer(&r2)));
                    let r3 = a.reclaim_as(&lock_of("c3", 500), None).await.expect("c3");
                    out.push(format!("c3_reclaim={}", answer(&r3)));
                }
            }
            "b-takes-over" => {
                let b = start(&store, "b").await;
                declare_dead_forced(&*store, "a", "b")
                    .await
                    .expect("declare a dead");
                let [_, (_, l2)] = locks();
                let r2 = b.reclaim_as(&l2, None).await.expect("reclaim c2");
                let c2 = b.reclaim_complete("c2").await.expect("complete c2");
                out.push(format!("c2_reclaim={} c2_node={}", answer(&r2), c2.node_id));
                // c1 completed on A's last incarnation, dead now: it is in B's
                // recovery set, but never comes back to B.
                let swept = b.end_grace().await.expect("end_grace");
                out.push(format!("swept={swept}"));
                let mut tx = store.begin().await.expect("begin");
                let c1 = tx.get_client("c1").await.expect("get c1");
                let held = tx
                    .list_locks(&LockQuery::by_client("c2"))
                    .await
                    .expect("list");
                out.push(format!(
                    "c1_record={} c2_locks={}",
                    c1.map_or("none".into(), |c| c.node_id),
                    held.len()
                ));
            }
            other => panic!("unknown role {other}"),
        }
        // No shutdown: the process ends as a crash would.
        println!("{}", out.join(" "));
    }
}
