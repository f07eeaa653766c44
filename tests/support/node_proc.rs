//! A node as an OS process, for the multi-process PostgreSQL tests
//! (`tests/multinode.rs`, `tests/fencing.rs`): the test binary re-executes
//! itself with the child role in an environment variable; a `node` child
//! starts a [`NodeSession`] and then answers one line per command read from
//! stdin, so a session lives exactly as long as its process (like a server).
//!
//! Commands: `lock FILE OWNER [OFFSET LENGTH]` (exclusive; whole file
//! without a range) → `id=…`; `try FILE OWNER OFFSET LENGTH` →
//! `answer=granted|denied|grace`; `reclaim ID` → `granted=… no_such_lock=…`;
//! `end-grace` → `removed=N`; `renew` → `until=µs`; `declare-dead NODE` →
//! `epoch=… reclaimable=N` or `error=node_alive`; `work` / `hold MS
//! [CLIENT]` / `resumed` / `stop-work` / `stats` drive the zombie worker
//! ([`zombie`]); `shutdown` → `ok`; `exit` →
//! (no answer: a crash, no clean mark).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use fsmeta::conformance::postgres::TestSchema;
use fsmeta::*;
use uuid::Uuid;

/// The environment variable that holds a child's role.
pub const CHILD: &str = "FSMETA_NODE_PROC_CHILD";

/// The environment variable that sets a child store's
/// `PgOptions::idle_in_transaction_timeout`, in ms.
pub const IDLE_TX_MS: &str = "FSMETA_NODE_PROC_IDLE_TX_MS";

/// Runs this binary as a child process with a role and arguments.
#[allow(dead_code)] // used by tests/multinode.rs, not by tests/fencing.rs
pub fn spawn(schema: &TestSchema, role: &str, args: &[&str]) -> Child {
    spawn_env(schema, role, args, &[])
}

/// [`spawn`] with more environment variables.
pub fn spawn_env(schema: &TestSchema, role: &str, args: &[&str], env: &[(&str, &str)]) -> Child {
    Command::new(std::env::current_exe().expect("current exe"))
        .envs(env.iter().copied())
        .env(CHILD, role)
        .env("FSMETA_TEST_POSTGRES_URL", schema.url())
        .env("FSMETA_NODE_PROC_SCHEMA", schema.name())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child process")
}

/// `key=value` fields of one output line.
pub fn fields(line: &str) -> BTreeMap<String, String> {
    line.split_whitespace()
        .filter_map(|f| f.split_once('='))
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
}

/// The store of a child process, on the parent's schema.
pub async fn connect_child() -> PostgresStore {
    let url = std::env::var("FSMETA_TEST_POSTGRES_URL").expect("url");
    let schema = std::env::var("FSMETA_NODE_PROC_SCHEMA").expect("schema");
    let mut options = PgOptions {
        schema: Some(schema),
        migrate: false,
        ..Default::default()
    };
    if let Ok(ms) = std::env::var(IDLE_TX_MS) {
        options.idle_in_transaction_timeout =
            Some(Duration::from_millis(ms.parse().expect("idle ms")));
    }
    PostgresStore::connect_with(&url, options)
        .await
        .expect("child connects")
}

/// An exclusive or shared request of `owner` (client `client-of-OWNER`); the
/// epoch is the session's to stamp.
pub fn lock_request(
    file: &[u8],
    owner: &str,
    lock_type: LockType,
    offset: u64,
    length: u64,
) -> PersistedLock {
    PersistedLock {
        id: Uuid::new_v4(),
        share_name: "export".into(),
        file_id: FileHandle::new(file).expect("handle"),
        owner_id: owner.into(),
        client_id: format!("client-of-{owner}"),
        lock_type,
        offset,
        length,
        share_reservation: ShareReservation::None,
        acquired_at: Timestamp::now(),
        server_epoch: 0,
        flavor: LockFlavor::Posix,
    }
}

/// The record of `request`'s client, confirmed on `session`'s node in its
/// epoch (what a server writes with the client's first lock).
pub fn confirmed_client(session: &NodeSession, request: &PersistedLock) -> ClientRecord {
    ClientRecord::new(
        &request.client_id,
        session.node_id(),
        ClientProtocol::Nfs4,
        request.client_id.as_bytes().to_vec(),
        [0; 8],
        session.epoch(),
    )
}

/// A node process seen from the parent.
pub struct NodeProc {
    child: Child,
    stdin: ChildStdin,
    out: BufReader<ChildStdout>,
    /// The start line: `epoch`, `clean`, `reclaimable` (comma-separated ids).
    pub started: BTreeMap<String, String>,
}

impl NodeProc {
    /// Starts node `node` in a child process with a lease of `lease_ms`
    /// (`take_over_live` when `force`); waits for its start line.
    pub fn start(schema: &TestSchema, node: &str, lease_ms: u64, force: bool) -> NodeProc {
        Self::start_env(schema, node, lease_ms, force, &[])
    }

    /// [`NodeProc::start`] with more environment variables for the child.
    pub fn start_env(
        schema: &TestSchema,
        node: &str,
        lease_ms: u64,
        force: bool,
        env: &[(&str, &str)],
    ) -> NodeProc {
        let mut child = spawn_env(
            schema,
            "node",
            &[node, &lease_ms.to_string(), &force.to_string()],
            env,
        );
        let stdin = child.stdin.take().expect("stdin");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let started = fields(&read_line(&mut out));
        NodeProc {
            child,
            stdin,
            out,
            started,
        }
    }

    /// Sends one command and returns its answer's fields.
    pub fn cmd(&mut self, line: &str) -> BTreeMap<String, String> {
        writeln!(self.stdin, "{line}").expect("write a command");
        self.stdin.flush().expect("flush");
        fields(&read_line(&mut self.out))
    }

    /// The child's pid (for `kill -STOP`).
    #[allow(dead_code)] // used by tests/fencing.rs, not by tests/multinode.rs
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Ends the process without a clean mark (a crash) and waits for it.
    pub fn exit(mut self) {
        let _ = writeln!(self.stdin, "exit");
        let _ = self.stdin.flush();
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "node process failed: {status:?}");
    }
}

fn read_line(out: &mut BufReader<ChildStdout>) -> String {
    let mut line = String::new();
    let n = out
        .read_line(&mut line)
        .expect("read a line from the child");
    assert!(n > 0, "the child exited without answering");
    line
}

/// The `node` child role: `args` = node id, lease in ms, take_over_live.
/// A failed start prints `error=KIND` and exits.
pub async fn node_child(args: &[String]) {
    let store: Arc<dyn MetadataStore> = Arc::new(connect_child().await);
    let node = Node::new(store.clone(), args[0].as_str()).expect("node id");
    let options = StartOptions {
        lease: Duration::from_millis(args[1].parse().expect("lease ms")),
        take_over_live: args[2] == "true",
    };
    let session = match node.start(options).await {
        Ok(session) => session,
        Err(Error::NodeAlive { until, .. }) => {
            println!("error=node_alive until={}", until.as_micros());
            return;
        }
        Err(e) => panic!("start: {e}"),
    };
    let r = session.recovery();
    let ids: Vec<String> = r.reclaimable.iter().map(|l| l.id.to_string()).collect();
    println!(
        "epoch={} clean={} reclaimable={}",
        r.epoch,
        r.previous_shutdown_clean,
        ids.join(",")
    );
    let mut worker: Option<zombie::Worker> = None;
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line.expect("read a command");
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["lock", file, owner, range @ ..] => {
                let (offset, length) = match range {
                    [offset, length] => (
                        offset.parse().expect("offset"),
                        length.parse().expect("length"),
                    ),
                    _ => (0, 0),
                };
                let req = lock_request(file.as_bytes(), owner, LockType::Exclusive, offset, length);
                // The client is confirmed on this node, in the same transaction.
                let client = confirmed_client(&session, &req);
                let (client, request) = (&client, &req);
                let answer = session
                    .transact(|tx| {
                        Box::pin(async move {
                            tx.put_client(client).await?;
                            tx.acquire(request).await
                        })
                    })
                    .await
                    .expect("acquire");
                assert_eq!(answer, Acquire::Granted);
                println!("id={}", req.id);
            }
            ["try", file, owner, offset, length] => {
                let req = lock_request(
                    file.as_bytes(),
                    owner,
                    LockType::Exclusive,
                    offset.parse().expect("offset"),
                    length.parse().expect("length"),
                );
                let answer = match session.acquire(&req).await.expect("acquire") {
                    Acquire::Granted => "granted",
                    Acquire::Grace { .. } => "grace",
                    _ => "denied",
                };
                println!("answer={answer}");
            }
            ["reclaim", id] => {
                let id: Uuid = id.parse().expect("lock id");
                let mut tx = store.begin().await.expect("begin");
                let held = tx.get_lock(id).await.expect("get_lock").expect("the lock");
                drop(tx);
                let answer = session.reclaim(&held).await.expect("reclaim");
                println!(
                    "granted={} no_such_lock={} not_allowed={}",
                    answer == Reclaim::Granted,
                    answer == Reclaim::NoSuchLock,
                    matches!(answer, Reclaim::NotAllowed(_))
                );
            }
            ["rehome", client] => {
                // A cluster host moves a failing-over client's record to this
                // node (keeping the epoch it was confirmed in), so it may
                // reclaim here.
                let mut tx = store.begin().await.expect("begin");
                let mut record = tx.get_client(client).await.expect("get").expect("record");
                record.node_id = session.node_id().to_owned();
                tx.put_client(&record).await.expect("put_client");
                tx.commit().await.expect("commit");
                println!("ok=1");
            }
            ["complete", client] => {
                let record = session
                    .reclaim_complete(client)
                    .await
                    .expect("reclaim_complete");
                println!("epoch={}", record.epoch);
            }
            ["declare-dead", dead] => match declare_dead(&*store, dead, session.node_id()).await {
                Ok(d) => println!("epoch={} reclaimable={}", d.epoch, d.reclaimable.len()),
                Err(Error::NodeAlive { .. }) => println!("error=node_alive"),
                Err(e) => panic!("declare_dead: {e}"),
            },
            ["work"] => {
                worker.get_or_insert_with(|| zombie::Worker::start(session.clone()));
                println!("ok=1");
            }
            ["stop-work"] => {
                if let Some(w) = worker.as_ref() {
                    w.stop().await;
                }
                println!("ok=1");
            }
            ["hold", ms, client @ ..] => {
                let w = worker.as_ref().expect("work first");
                let hold = Duration::from_millis(ms.parse().expect("ms"));
                w.hold(session.clone(), hold, client.first().map(|c| c.to_string()))
                    .await;
                println!("ok=1");
            }
            ["resumed"] => {
                worker.as_ref().expect("work first").resumed();
                println!("ok=1");
            }
            ["stats"] => println!("{}", worker.as_ref().expect("work first").stats()),
            ["end-grace"] => println!("removed={}", session.end_grace().await.expect("end_grace")),
            ["renew"] => println!(
                "until={}",
                session.renew().await.expect("renew").as_micros()
            ),
            ["shutdown"] => {
                session.shutdown().await.expect("shutdown");
                println!("ok=1");
            }
            ["exit"] => return,
            other => panic!("unknown command {other:?}"),
        }
    }
}

/// The zombie worker of `tests/fencing.rs`: a node that keeps granting locks
/// and writing host metadata in fenced transactions. The parent stops the
/// process (SIGSTOP), takes the node over, continues it and then sends
/// `resumed`: every transaction that starts after that mark runs after the
/// takeover. One `hold` transaction is open across the pause on purpose.
/// (Loop transactions in flight at the stop are counted but not judged:
/// one whose COMMIT reached the server before the stop committed before the
/// takeover, legitimately.)
pub mod zombie {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use fsmeta::*;

    /// The pause between two attempts (a server's next client request).
    const ATTEMPT_GAP: Duration = Duration::from_millis(20);

    /// How one transaction ended.
    #[derive(Clone, Copy, PartialEq)]
    enum Outcome {
        Committed,
        Fenced,
        Other,
    }

    impl Outcome {
        fn name(self) -> &'static str {
            match self {
                Outcome::Committed => "committed",
                Outcome::Fenced => "fenced",
                Outcome::Other => "other",
            }
        }
    }

    /// One transaction: when it started, how it ended, whether it was held.
    struct Run {
        started: Instant,
        outcome: Outcome,
        held: bool,
    }

    #[derive(Default)]
    struct Shared {
        runs: Mutex<Vec<Run>>,
        resumed: Mutex<Option<Instant>>,
        stop: AtomicBool,
    }

    /// A running worker.
    pub struct Worker {
        shared: Arc<Shared>,
        tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    }

    fn outcome(result: Result<()>, what: &str) -> Outcome {
        match result {
            Ok(()) => Outcome::Committed,
            Err(Error::Fenced { .. }) => Outcome::Fenced,
            Err(e) => {
                eprintln!("zombie transaction {what}: {e}");
                Outcome::Other
            }
        }
    }

    impl Worker {
        /// Starts the worker loop.
        pub fn start(session: NodeSession) -> Worker {
            let shared = Arc::new(Shared::default());
            let worker = shared.clone();
            let task = tokio::spawn(async move {
                let mut n = 0u64;
                while !worker.stop.load(Ordering::Relaxed) {
                    n += 1;
                    let started = Instant::now();
                    let result = grant_and_write(&session, n, None).await;
                    let outcome = outcome(result, &n.to_string());
                    worker.runs.lock().unwrap().push(Run {
                        started,
                        outcome,
                        held: false,
                    });
                    tokio::time::sleep(ATTEMPT_GAP).await;
                }
            });
            Worker {
                shared,
                tasks: Mutex::new(vec![task]),
            }
        }

        /// Begins one more transaction like the loop's (on file `zombie-0`)
        /// that stays open for `hold` after its lock is granted (a slow host
        /// write), and returns once it is open: stopping the process now
        /// leaves it in flight across the pause. With `client`, it also
        /// rewrites that client's record (taking its row lock) first.
        pub async fn hold(&self, session: NodeSession, hold: Duration, client: Option<String>) {
            let (began, open) = tokio::sync::oneshot::channel();
            let shared = self.shared.clone();
            let task = tokio::spawn(async move {
                let started = Instant::now();
                let result = grant_and_write(&session, 0, Some((hold, began, client))).await;
                let outcome = outcome(result, "held");
                shared.runs.lock().unwrap().push(Run {
                    started,
                    outcome,
                    held: true,
                });
            });
            self.tasks.lock().unwrap().push(task);
            open.await.expect("the held transaction began");
        }

        /// Marks that the process was continued after the takeover.
        pub fn resumed(&self) {
            *self.shared.resumed.lock().unwrap() = Some(Instant::now());
        }

        /// Ends the loop after its current transaction, and waits for the
        /// held ones.
        pub async fn stop(&self) {
            self.shared.stop.store(true, Ordering::Relaxed);
            let tasks = std::mem::take(&mut *self.tasks.lock().unwrap());
            for task in tasks {
                task.await.expect("worker task");
            }
        }

        /// `attempts=… commits=… held=committed|fenced|other|none
        /// after_attempts=… after_commits=… after_fenced=… other=…`.
        pub fn stats(&self) -> String {
            let resumed = *self.shared.resumed.lock().unwrap();
            let runs = self.shared.runs.lock().unwrap();
            let loop_runs = || runs.iter().filter(|r| !r.held);
            let after = || loop_runs().filter(|r| resumed.is_some_and(|at| r.started > at));
            let held = runs
                .iter()
                .find(|r| r.held)
                .map_or("none", |r| r.outcome.name());
            format!(
                "attempts={} commits={} held={held} after_attempts={} after_commits={} after_fenced={} other={}",
                loop_runs().count(),
                loop_runs()
                    .filter(|r| r.outcome == Outcome::Committed)
                    .count(),
                after().count(),
                after().filter(|r| r.outcome == Outcome::Committed).count(),
                after().filter(|r| r.outcome == Outcome::Fenced).count(),
                loop_runs().filter(|r| r.outcome == Outcome::Other).count(),
            )
        }
    }

    /// Where a held transaction says it is open, and how long it then waits.
    type Hold = (Duration, tokio::sync::oneshot::Sender<()>, Option<String>);

    /// One server request: grant a lock on a new file `zombie-N` to the
    /// zombie's client and write the file's metadata, in one fenced
    /// transaction (held open between the two when `hold` is given).
    async fn grant_and_write(session: &NodeSession, n: u64, hold: Option<Hold>) -> Result<()> {
        let hold = &Mutex::new(hold);
        let name = format!("zombie-{n}");
        let request = super::lock_request(name.as_bytes(), "zombie", LockType::Exclusive, 0, 0);
        let client = super::confirmed_client(session, &request);
        let now = Timestamp::now();
        let file = FileMeta {
            handle: request.file_id.clone(),
            share_name: request.share_name.clone(),
            kind: FileKind::Regular,
            mode: 0o100644,
            uid: 1000,
            gid: 1000,
            nlink: 1,
            size: n,
            atime: now,
            mtime: now,
            ctime: now,
        };
        let (client, request, file) = (&client, &request, &file);
        session
            .transact(|tx| {
                Box::pin(async move {
                    tx.put_client(client).await?;
                    match tx.acquire(request).await? {
                        Acquire::Granted => {}
                        other => panic!("a new file's lock is free: {other:?}"),
                    }
                    // Only the first attempt holds; a retry runs straight through.
                    let first = hold.lock().unwrap().take();
                    if let Some((wait, began, other)) = first {
                        if let Some(other) = other {
                            let mut record = tx.get_client(&other).await?.expect("the client");
                            record.last_renewed = Timestamp::now();
                            tx.put_client(&record).await?;
                        }
                        let _ = began.send(());
                        tokio::time::sleep(wait).await;
                    }
                    tx.put_file(file).await
                })
            })
            .await
    }
}
