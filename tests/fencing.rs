//! Fencing and takeover with real processes on one PostgreSQL (issue 15): a
//! node process stopped with SIGSTOP is declared dead and then cannot commit
//! anything; a second process with the same node id cannot start while the
//! first renews its lease; a grace period is honoured by every node.
//!
//! The test binary re-executes itself as the node processes (`harness =
//! false`: `main` dispatches on the child role, see `support/node_proc.rs`).
//! Each test gets a fresh schema. Needs PostgreSQL; skips with a notice when
//! it is unreachable, unless `FSMETA_REQUIRE_POSTGRES=1`.

#[cfg(feature = "postgres")]
fn main() {
    fencing::main();
}

#[cfg(not(feature = "postgres"))]
fn main() {
    println!("fencing: built without feature `postgres`; nothing to run");
}

#[cfg(feature = "postgres")]
#[path = "support/node_proc.rs"]
mod node_proc;

#[cfg(feature = "postgres")]
#[path = "support/suite.rs"]
mod suite;

#[cfg(feature = "postgres")]
mod fencing {
    use std::collections::BTreeMap;
    use std::process::Command;
    use std::time::{Duration, Instant};

    use fsmeta::conformance::postgres::TestSchema;
    use fsmeta::*;

    use crate::node_proc::{CHILD, IDLE_TX_MS, NodeProc, node_child};
    use crate::suite::{Schemas, Test};

    pub fn main() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        if std::env::var(CHILD).is_ok() {
            let args: Vec<String> = std::env::args().skip(1).collect();
            runtime.block_on(node_child(&args));
            return;
        }
        let tests: [(&str, Test); 4] = [
            (
                "stopped_open_transaction_does_not_block_takeover",
                stopped_open_transaction_does_not_block_takeover,
            ),
            (
                "stopped_zombie_commits_nothing",
                stopped_zombie_commits_nothing,
            ),
            (
                "second_process_of_a_node_is_refused",
                second_process_of_a_node_is_refused,
            ),
            (
                "grace_is_honoured_on_every_node",
                grace_is_honoured_on_every_node,
            ),
        ];
        crate::suite::run("fencing", &runtime, &tests, Schemas::Fresh);
    }

    fn signal(proc: &NodeProc, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &proc.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {sig} failed");
    }

    fn num(fields: &BTreeMap<String, String>, key: &str) -> u64 {
        fields
            .get(key)
            .unwrap_or_else(|| panic!("no {key} in {fields:?}"))
            .parse()
            .expect("a number")
    }

    /// The names of the stored files that start with `prefix`.
    async fn files_named(schema: &TestSchema, prefix: &str) -> Vec<String> {
        let store = schema.connect().await.expect("connect");
        let mut tx = store.begin().await.expect("begin");
        let files = tx.list_files("export").await.expect("list_files");
        files
            .iter()
            .map(|f| String::from_utf8_lossy(f.handle.as_bytes()).into_owned())
            .filter(|name| name.starts_with(prefix))
            .collect()
    }

    /// B takes the stopped node A over once A's lease (`lease_ms`, never
    /// renewed) has run out: declares it dead, moves A's client
    /// `client-of-a-owner` over and reclaims its lock `held` through B.
    /// Returns the declare-dead answer.
    fn take_over(
        a: &NodeProc,
        b: &mut NodeProc,
        lease_ms: u64,
        held: &str,
    ) -> BTreeMap<String, String> {
        std::thread::sleep(Duration::from_millis(lease_ms + 700));
        let dead = b.cmd("declare-dead node-a");
        assert_eq!(
            dead.get("epoch"),
            Some(&a.started["epoch"]),
            "A's epoch ended: {dead:?}"
        );
        b.cmd("rehome client-of-a-owner");
        assert_eq!(
            b.cmd(&format!("reclaim {held}"))["granted"],
            "true",
            "A's client reclaims through B"
        );
        dead
    }

    /// Node A grants locks and writes files in a loop; its process is
    /// stopped (SIGSTOP) past its lease; B declares it dead and A's client
    /// reclaims through B; A is continued (SIGCONT) and keeps trying: none
    /// of its transactions commits, every one is `Fenced`, and no file it
    /// wrote after the takeover is stored.
    fn stopped_zombie_commits_nothing(runtime: &tokio::runtime::Runtime, schema: &TestSchema) {
        const LEASE_MS: u64 = 1500;
        let mut a = NodeProc::start(schema, "node-a", LEASE_MS, false);
        let mut b = NodeProc::start(schema, "node-b", 60_000, false);
        let held = a.cmd("lock shared-file a-owner")["id"].clone();
        a.cmd("work");
        std::thread::sleep(Duration::from_millis(800));
        // One transaction is open (its lock granted, its file not yet
        // written) when the process stops: it must not commit either.
        a.cmd("hold 500");
        signal(&a, "-STOP");
        let stopped = Instant::now();
        let dead = take_over(&a, &mut b, LEASE_MS, &held);
        assert!(num(&dead, "reclaimable") >= 2, "A's locks: {dead:?}");
        b.cmd("complete client-of-a-owner");
        signal(&a, "-CONT");
        let paused = stopped.elapsed();
        // From here on every transaction A starts runs after the takeover.
        a.cmd("resumed");
        std::thread::sleep(Duration::from_millis(1200));
        a.cmd("stop-work");
        let stats = a.cmd("stats");
        let (commits, after) = (num(&stats, "commits"), num(&stats, "after_attempts"));
        assert!(commits > 0, "A worked before the pause: {stats:?}");
        assert!(after >= 10, "A kept trying after the pause: {stats:?}");
        assert_eq!(num(&stats, "after_commits"), 0, "{stats:?}");
        assert_eq!(num(&stats, "after_fenced"), after, "{stats:?}");
        assert_eq!(
            stats["held"], "fenced",
            "the transaction open across the pause: {stats:?}"
        );
        assert_eq!(num(&stats, "other"), 0, "{stats:?}");
        let stored = runtime.block_on(files_named(schema, "zombie-"));
        assert_eq!(
            stored.len() as u64,
            commits,
            "exactly the files of A's acknowledged commits are stored"
        );
        assert!(
            !stored.iter().any(|f| f == "zombie-0"),
            "the held transaction's file is not stored"
        );
        // B's grace ends: A's worker locks (nobody reclaimed them) go, the
        // reclaimed one stays.
        let removed = num(&b.cmd("end-grace"), "removed");
        assert!(
            removed >= commits,
            "A's unreclaimed locks dropped: {removed}"
        );
        println!(
            "fencing zombie: stopped {:.1} s; {} transactions in all, {commits} committed (all before the stop); \
             the one open across the pause: {}; after SIGCONT {after} attempts, {} committed, {} fenced; \
             {} zombie files stored",
            paused.as_secs_f64(),
            stats["attempts"],
            stats["held"],
            stats["after_commits"],
            stats["after_fenced"],
            stored.len(),
        );
        a.exit();
        b.exit();
    }

    /// A's process stops inside a transaction that rewrote its client's
    /// record (holding the row's lock). B declares A dead and moves the
    /// client over, which writes that row: the server ends A's idle session
    /// after A's `idle_in_transaction_timeout` (here 1 s), so B's takeover
    /// waits about that long, not until A is continued. A's transaction then
    /// commits nothing, and the record stays B's.
    fn stopped_open_transaction_does_not_block_takeover(
        runtime: &tokio::runtime::Runtime,
        schema: &TestSchema,
    ) {
        const LEASE_MS: u64 = 1500;
        let mut a = NodeProc::start_env(schema, "node-a", LEASE_MS, false, &[(IDLE_TX_MS, "1000")]);
        let mut b = NodeProc::start(schema, "node-b", 60_000, false);
        let held = a.cmd("lock owned-file a-owner")["id"].clone();
        a.cmd("work");
        a.cmd("hold 200 client-of-a-owner");
        signal(&a, "-STOP");
        // If B blocked for good, this watchdog ends it: B's next answer is
        // then missing and the test fails instead of hanging.
        let (done, watchdog) = std::sync::mpsc::channel::<()>();
        let (a_pid, b_pid) = (a.pid(), b.pid());
        let dog = std::thread::spawn(move || {
            if watchdog.recv_timeout(Duration::from_secs(60)).is_err() {
                let _ = Command::new("kill")
                    .args(["-9", &b_pid.to_string()])
                    .status();
                let _ = Command::new("kill")
                    .args(["-CONT", &a_pid.to_string()])
                    .status();
            }
        });
        take_over(&a, &mut b, LEASE_MS, &held);
        let _ = done.send(());
        dog.join().expect("watchdog");
        signal(&a, "-CONT");
        a.cmd("resumed");
        std::thread::sleep(Duration::from_millis(500));
        a.cmd("stop-work");
        let stats = a.cmd("stats");
        assert_eq!(
            stats["held"], "other",
            "the server ended the held transaction's session: {stats:?}"
        );
        assert_eq!(num(&stats, "after_commits"), 0, "{stats:?}");
        let record = runtime.block_on(async {
            let store = schema.connect().await.expect("connect");
            let mut tx = store.begin().await.expect("begin");
            tx.get_client("client-of-a-owner")
                .await
                .expect("get_client")
        });
        assert_eq!(
            record.map(|r| r.node_id).as_deref(),
            Some("node-b"),
            "the stopped transaction wrote nothing"
        );
        a.exit();
        b.exit();
    }

    /// Two processes started with one node id: the second `start` is
    /// refused with `NodeAlive` while the first renews its lease (past the
    /// lease's first term); once the first is gone and its lease expired, a
    /// third starts and finds the first's locks reclaimable.
    fn second_process_of_a_node_is_refused(
        _runtime: &tokio::runtime::Runtime,
        schema: &TestSchema,
    ) {
        const LEASE_MS: u64 = 1500;
        let mut first = NodeProc::start(schema, "twin", LEASE_MS, false);
        let held = first.cmd("lock twin-file t-owner")["id"].clone();
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(2 * LEASE_MS) {
            first.cmd("renew");
            std::thread::sleep(Duration::from_millis(300));
        }
        first.cmd("renew");
        let second = NodeProc::start(schema, "twin", LEASE_MS, false);
        assert_eq!(
            second.started.get("error").map(String::as_str),
            Some("node_alive"),
            "{:?}",
            second.started
        );
        second.exit();
        first.exit();
        std::thread::sleep(Duration::from_millis(LEASE_MS + 300));
        let third = NodeProc::start(schema, "twin", LEASE_MS, false);
        assert_eq!(third.started["clean"], "false", "{:?}", third.started);
        assert_eq!(third.started["reclaimable"], held);
        third.exit();
    }

    /// During A's grace period (A restarted), B denies a new lock that
    /// conflicts with A's reclaimable lock with the grace reason and grants
    /// one that does not; after A's `end_grace` the same request is granted.
    fn grace_is_honoured_on_every_node(_runtime: &tokio::runtime::Runtime, schema: &TestSchema) {
        let mut a1 = NodeProc::start(schema, "node-a", 60_000, false);
        let held = a1.cmd("lock graced a-owner 0 100")["id"].clone();
        a1.exit();
        let mut a2 = NodeProc::start(schema, "node-a", 60_000, true);
        assert_eq!(a2.started["reclaimable"], held);
        let mut b = NodeProc::start(schema, "node-b", 60_000, false);
        assert_eq!(b.cmd("try graced b-owner 50 10")["answer"], "grace");
        assert_eq!(b.cmd("try graced b-owner 200 10")["answer"], "granted");
        assert_eq!(b.cmd("try other b-owner 0 10")["answer"], "granted");
        assert_eq!(
            a2.cmd("try graced a2-owner 90 20")["answer"],
            "grace",
            "A's own new requests wait for the grace too"
        );
        assert_eq!(a2.cmd("end-grace")["removed"], "1", "nobody reclaimed it");
        assert_eq!(b.cmd("try graced b-owner 50 10")["answer"], "granted");
        a2.exit();
        b.exit();
    }
}
