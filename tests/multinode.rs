//! Several OS processes, each with its own `PostgresStore` pool, share one
//! database: the lock contest never double-grants, and nodes recover
//! independently (issues 5 and 9).
//!
//! The test binary re-executes itself as the child processes (`harness = false`:
//! `main` dispatches on `FSMETA_MULTINODE_CHILD`). Needs PostgreSQL; skips with
//! a notice when it is unreachable, unless `FSMETA_REQUIRE_POSTGRES=1`.

#[cfg(feature = "postgres")]
fn main() {
    multinode::main();
}

#[cfg(not(feature = "postgres"))]
fn main() {
    println!("multinode: built without feature `postgres`; nothing to run");
}

#[cfg(feature = "postgres")]
#[path = "support/node_proc.rs"]
mod node_proc;

#[cfg(feature = "postgres")]
#[path = "support/suite.rs"]
mod suite;

#[cfg(feature = "postgres")]
mod multinode {
    use std::collections::BTreeSet;

    use fsmeta::conformance::postgres::TestSchema;
    use fsmeta::*;
    use uuid::Uuid;

    use crate::node_proc::{
        CHILD, NodeProc, connect_child, fields, lock_request, node_child, spawn,
    };

    use crate::suite::{Schemas, Test};

    const PROCESSES: usize = 3;
    const TASKS: usize = 8;
    const ROUNDS: usize = 8;

    pub fn main() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        if let Ok(role) = std::env::var(CHILD) {
            let args: Vec<String> = std::env::args().skip(1).collect();
            runtime.block_on(child(&role, &args));
            return;
        }
        let tests: [(&str, Test); 2] = [
            ("processes_never_double_grant", processes_never_double_grant),
            ("nodes_recover_independently", nodes_recover_independently),
        ];
        let clear =
            "TRUNCATE locks, files, nodes, epoch_records; UPDATE server_state SET epoch = 0";
        crate::suite::run("multinode", &runtime, &tests, Schemas::Shared { clear });
    }

    fn output(child: std::process::Child) -> Vec<String> {
        let out = child.wait_with_output().expect("child output");
        assert!(out.status.success(), "child failed: {:?}", out.status);
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// One attempt per transaction, counting the conflicts `transact` would hide.
    async fn acquire_counting(
        store: &PostgresStore,
        lock: &PersistedLock,
        conflicts: &mut u64,
    ) -> Acquire {
        loop {
            let mut tx = store.begin().await.expect("begin");
            let outcome = match acquire_lock(&mut *tx, lock).await {
                Ok(answer) => tx.commit().await.map(|()| answer),
                Err(e) => Err(e),
            };
            match outcome {
                Ok(answer) => return answer,
                Err(e) if e.is_retryable() => {
                    *conflicts += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(fastrand_ms())).await;
                }
                Err(e) => panic!("acquire_lock: {e}"),
            }
        }
    }

    fn fastrand_ms() -> u64 {
        u64::from(Uuid::new_v4().as_bytes()[0] % 20) + 1
    }

    async fn child(role: &str, args: &[String]) {
        if role == "node" {
            return node_child(args).await;
        }
        let store = connect_child().await;
        let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_default();
        match role {
            "contest" => {
                let process: usize = arg(0).parse().expect("process index");
                let tasks: Vec<_> = (0..TASKS)
                    .map(|task| {
                        let store = store.clone();
                        tokio::spawn(async move {
                            let (mut granted, mut denied, mut conflicts) = (Vec::new(), 0u64, 0u64);
                            for round in 0..ROUNDS {
                                let slot = ((process * TASKS + task) * ROUNDS + round) as u64;
                                let owner = format!("p{process}-t{task}");
                                let lock_type = if slot.is_multiple_of(3) {
                                    LockType::Exclusive
                                } else {
                                    LockType::Shared
                                };
                                // An owner's requests sit in disjoint 10 000-byte slots: a grant stays as granted.
                                let offset = round as u64 * 10_000 + (slot * 37 % 2_000);
                                let file = [b'f', (slot % 2) as u8];
                                let req = PersistedLock {
                                    server_epoch: 1,
                                    ..lock_request(
                                        &file,
                                        &owner,
                                        lock_type,
                                        offset,
                                        500 + (slot % 4) * 400,
                                    )
                                };
                                match acquire_counting(&store, &req, &mut conflicts).await {
                                    Acquire::Granted => granted.push(req.id),
                                    Acquire::Denied { conflicts } => {
                                        assert!(!conflicts.is_empty());
                                        denied += 1;
                                    }
                                    other => panic!("unexpected answer {other:?}"),
                                }
                            }
                            (granted, denied, conflicts)
                        })
                    })
                    .collect();
                let (mut denied, mut conflicts) = (0, 0);
                for task in tasks {
                    let (granted, d, c) = task.await.expect("task");
                    for id in granted {
                        println!("granted id={id}");
                    }
                    denied += d;
                    conflicts += c;
                }
                println!("summary denied={denied} conflicts={conflicts}");
            }
            other => panic!("unknown child role {other}"),
        }
        let _ = store.close().await;
    }

    async fn all_locks(schema: &TestSchema) -> Vec<PersistedLock> {
        let store = schema.connect().await.expect("connect");
        let mut tx = store.begin().await.expect("begin");
        tx.list_locks(&LockQuery::default()).await.expect("list")
    }

    fn processes_never_double_grant(runtime: &tokio::runtime::Runtime, schema: &TestSchema) {
        let children: Vec<_> = (0..PROCESSES)
            .map(|p| spawn(schema, "contest", &[&p.to_string()]))
            .collect();
        let (mut granted, mut denied, mut conflicts) = (BTreeSet::new(), 0u64, 0u64);
        for child in children {
            for line in output(child) {
                let f = fields(&line);
                if line.starts_with("granted") {
                    assert!(granted.insert(f["id"].parse::<Uuid>().expect("id")));
                } else {
                    denied += f["denied"].parse::<u64>().expect("denied");
                    conflicts += f["conflicts"].parse::<u64>().expect("conflicts");
                }
            }
        }
        let stored = runtime.block_on(all_locks(schema));
        let stored_ids: BTreeSet<Uuid> = stored.iter().map(|l| l.id).collect();
        assert_eq!(
            stored_ids, granted,
            "a request was granted exactly when it is stored"
        );
        for (i, a) in stored.iter().enumerate() {
            for b in &stored[i + 1..] {
                assert!(
                    !a.to_enhanced().conflicts_with(&b.to_enhanced()),
                    "double grant: {a:?} and {b:?}"
                );
            }
        }
        let requests = (PROCESSES * TASKS * ROUNDS) as u64;
        assert_eq!(granted.len() as u64 + denied, requests);
        assert!(denied > 0, "the contest never contended");
        println!(
            "multinode contest: {PROCESSES} processes, {requests} acquisitions, {} granted, {denied} denied, \
             {conflicts} serialization conflicts retried, 0 double grants",
            granted.len()
        );
    }

    fn nodes_recover_independently(runtime: &tokio::runtime::Runtime, schema: &TestSchema) {
        const LEASE_MS: u64 = 60_000;
        let start = |node: &str| NodeProc::start(schema, node, LEASE_MS, true);
        let mut a1 = start("node-a");
        let mut b1 = start("node-b");
        assert_eq!(
            (a1.started["clean"].as_str(), b1.started["clean"].as_str()),
            ("true", "true")
        );
        let (a_lock1, a_lock2) = (
            a1.cmd("lock fa1 a-owner1")["id"].clone(),
            a1.cmd("lock fa2 a-owner2")["id"].clone(),
        );
        let b_lock = b1.cmd("lock fb1 b-owner1")["id"].clone();
        // node-a's process is gone without a clean mark: it restarts.
        a1.exit();
        let mut a2 = start("node-a");
        assert_eq!(a2.started["clean"], "false");
        let reclaimable: BTreeSet<&str> = a2.started["reclaimable"].split(',').collect();
        assert_eq!(
            reclaimable,
            BTreeSet::from([a_lock1.as_str(), a_lock2.as_str()]),
            "exactly A's old locks"
        );
        let answer = a2.cmd(&format!("reclaim {b_lock}"));
        assert_eq!(
            (answer["granted"].as_str(), answer["not_allowed"].as_str()),
            ("false", "true"),
            "B's lock is live: its client is B's"
        );
        assert_eq!(a2.cmd(&format!("reclaim {a_lock1}"))["granted"], "true");
        a2.cmd("complete client-of-a-owner1");
        b1.cmd("rehome client-of-a-owner2");
        assert_eq!(
            b1.cmd(&format!("reclaim {a_lock2}"))["granted"],
            "true",
            "fail-over reclaim through B"
        );
        b1.cmd("complete client-of-a-owner2");
        assert_eq!(a2.cmd("end-grace")["removed"], "0");
        let locks = runtime.block_on(all_locks(schema));
        let epoch_of = |id: &str| {
            locks
                .iter()
                .find(|l| l.id.to_string() == id)
                .map(|l| l.server_epoch.to_string())
        };
        assert_eq!(
            epoch_of(&b_lock),
            Some(b1.started["epoch"].clone()),
            "B's lock untouched"
        );
        assert_eq!(epoch_of(&a_lock1), Some(a2.started["epoch"].clone()));
        assert_eq!(
            epoch_of(&a_lock2),
            Some(b1.started["epoch"].clone()),
            "restamped with B's epoch"
        );
        // B shuts down cleanly and restarts: no lease to wait for.
        b1.cmd("shutdown");
        b1.exit();
        let b2 = NodeProc::start(schema, "node-b", LEASE_MS, false);
        assert_eq!(b2.started["clean"], "true");
        // Four nodes recover at the same moment, in four processes.
        a2.exit();
        let nodes = ["node-a", "node-c", "node-d", "node-e"];
        let mut procs: Vec<NodeProc> = std::thread::scope(|s| {
            let starting: Vec<_> = nodes.iter().map(|n| s.spawn(|| start(n))).collect();
            starting
                .into_iter()
                .map(|h| h.join().expect("start"))
                .collect()
        });
        let epochs: BTreeSet<String> = procs.iter().map(|p| p.started["epoch"].clone()).collect();
        assert_eq!(epochs.len(), nodes.len(), "distinct epochs: {epochs:?}");
        for p in &mut procs {
            p.cmd("end-grace");
        }
        let survivors = runtime.block_on(all_locks(schema));
        assert!(
            survivors.iter().any(|l| l.id.to_string() == b_lock),
            "no node swept node-b's live lock"
        );
        for p in procs {
            p.exit();
        }
        b2.exit();
        println!("multinode nodes: 9 processes acting as 5 nodes, recoveries independent");
    }
}
