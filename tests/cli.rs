//! The `fsmeta` binary, run as a process (`std::process::Command`) against a
//! fjall store in a temporary directory and against a real PostgreSQL
//! database. What it prints (JSON parsed with serde_json) is compared with
//! what the library reports for the same store.
//!
//! PostgreSQL: `FSMETA_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); each test uses a fresh schema,
//! handed to the binary in the URL (`?options=-csearch_path%3D…`) and dropped
//! afterwards. An unreachable server skips those tests with a notice, unless
//! `FSMETA_REQUIRE_POSTGRES=1`.
//!
//! Run with `--nocapture` to see how long each `copy` took.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output};

use fsmeta::{
    Epochs, FileHandle, FileKind, FileMeta, FjallStore, LockQuery, LockType, MetadataStore,
    MetadataStoreExt, Node, NodeSession, NodeState, PersistedLock, ShareReservation, StartOptions,
    StoreDigest, Timestamp, digest,
};
use serde_json::Value;
use tempfile::TempDir;
use uuid::Uuid;

// ---------------------------------------------------------------------------
// Running the binary

/// What one run of the binary did.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    /// Exit code `code`, and for an error exactly one line on stderr, never a panic.
    fn expect(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("RUST_BACKTRACE"),
            "{}",
            self.stderr
        );
        if code == 2 {
            assert_eq!(
                self.stderr.lines().count(),
                1,
                "one line: {:?}",
                self.stderr
            );
            assert!(self.stderr.starts_with("fsmeta: "), "{:?}", self.stderr);
        }
        self
    }
}

fn fsmeta(args: &[&str]) -> Run {
    fsmeta_env(args, None)
}

fn fsmeta_env(args: &[&str], store_env: Option<&str>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fsmeta"));
    cmd.args(args)
        .env_remove("FSMETA_STORE")
        .env_remove("FSMETA_LOG");
    if let Some(url) = store_env {
        cmd.env("FSMETA_STORE", url);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run the fsmeta binary");
    Run {
        code: status.code().expect("exited, not killed"),
        stdout: String::from_utf8(stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(stderr).expect("utf-8 stderr"),
    }
}

fn on(url: &str, args: &[&str]) -> Run {
    let mut all = vec!["--store", url];
    all.extend_from_slice(args);
    fsmeta(&all)
}

// ---------------------------------------------------------------------------
// Fixture: a store with several nodes, dead and live epochs, awkward ids

/// `2023-11-14T22:13:20.<us>Z`.
fn at(us: i64) -> Timestamp {
    Timestamp::from_micros(1_700_000_000_000_000 + us)
}

fn file(n: u8, share: &str) -> FileMeta {
    FileMeta {
        handle: FileHandle::new(vec![n, 0x00, 0xff]).expect("handle"),
        share_name: share.into(),
        kind: [
            FileKind::Regular,
            FileKind::Directory,
            FileKind::Symlink,
            FileKind::Other,
        ][usize::from(n % 4)],
        mode: 0o100644 + u32::from(n),
        uid: u32::MAX - u32::from(n),
        gid: u32::from(n),
        nlink: 1,
        size: u64::MAX - u64::from(n),
        atime: at(1),
        mtime: at(2 + i64::from(n)),
        ctime: at(3),
    }
}

#[allow(clippy::too_many_arguments)]
fn lock(
    file: &FileMeta,
    owner: &str,
    client: &str,
    epoch: u64,
    offset: u64,
    length: u64,
    lock_type: LockType,
    deny: ShareReservation,
) -> PersistedLock {
    PersistedLock {
        id: Uuid::new_v4(),
        share_name: file.share_name.clone(),
        file_id: file.handle.clone(),
        owner_id: owner.into(),
        client_id: client.into(),
        lock_type,
        offset,
        length,
        share_reservation: deny,
        acquired_at: at(i64::from(offset.min(999_999) as u32)),
        server_epoch: epoch,
        flavor: fsmeta::LockFlavor::Posix,
    }
}

const SHARES: [&str; 2] = ["export", "home ü"];

/// Node a starts (epoch 1), node b starts (epoch 2), both take locks; node a
/// restarts (epoch 3: its epoch 1 is dead) and takes more; b shuts down
/// cleanly (its epoch 2 stays live: it has not restarted).
async fn populate(store: &(impl MetadataStore + Clone + 'static)) {
    let start = |node: &'static str| async move {
        let handle: std::sync::Arc<dyn MetadataStore> = std::sync::Arc::new(store.clone());
        let options = StartOptions {
            take_over_live: true,
            ..Default::default()
        };
        Node::new(handle, node)
            .expect("node id")
            .start(options)
            .await
            .expect("node starts")
    };
    let a1 = start("node-a").await.epoch();
    let b_session: NodeSession = start("node-b").await;
    let b = b_session.epoch();
    let files: Vec<FileMeta> = (0..6)
        .map(|n| file(n, SHARES[usize::from(n % 2)]))
        .collect();
    let (x, s, d) = (
        LockType::Exclusive,
        LockType::Shared,
        ShareReservation::None,
    );
    let mut locks = vec![
        lock(&files[0], "owner 1", "client1", a1, 0, 100, x, d),
        lock(&files[0], "owner:2/ü", "client10", a1, 100, 0, s, d),
        lock(
            &files[1],
            "o3",
            "client1",
            a1,
            7,
            u64::MAX,
            s,
            ShareReservation::DenyWrite,
        ),
        lock(
            &files[2],
            "o4",
            "client-b",
            b,
            0,
            0,
            x,
            ShareReservation::DenyAll,
        ),
        lock(
            &files[3],
            "o5",
            "client-b",
            b,
            u64::MAX,
            1,
            s,
            ShareReservation::DenyRead,
        ),
    ];
    let (files, first) = (&files, &locks.clone());
    store
        .transact(|tx| {
            Box::pin(async move {
                for f in files {
                    tx.put_file(f).await?;
                }
                for l in first {
                    tx.put_lock(l).await?;
                }
                Ok(())
            })
        })
        .await
        .expect("files and first locks");
    let a3 = start("node-a").await.epoch();
    assert_eq!((a1, b, a3), (1, 2, 3));
    let later = vec![
        lock(&files[4], "owner 1", "client1", a3, 5, 10, x, d),
        lock(&files[5], "line\nbreak", "client 2", a3, 0, 0, s, d),
    ];
    let later_ref = &later;
    store
        .transact(|tx| {
            Box::pin(async move {
                for l in later_ref {
                    tx.put_lock(l).await?;
                }
                Ok(())
            })
        })
        .await
        .expect("later locks");
    b_session.shutdown().await.expect("b stops");
    locks.extend(later);
}

/// A fjall store in a temporary directory, populated and closed.
fn fjall_fixture() -> (TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store");
    let store = FjallStore::open(&path).expect("open fjall");
    block_on(populate(&store));
    drop(store);
    (dir, format!("fjall:{}", path.display()))
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

/// What the library reports about a store (opened and closed again, so
/// that the binary can open a fjall store afterwards).
struct Library {
    locks: Vec<PersistedLock>,
    stale: BTreeSet<Uuid>,
    files: BTreeMap<String, Vec<FileMeta>>,
    nodes: Vec<NodeState>,
    epoch: u64,
    clean_shutdown: bool,
}

async fn library_view(store: &dyn MetadataStore) -> Library {
    let mut tx = store.begin().await.expect("begin");
    let epochs = Epochs::load(&mut *tx).await.expect("epochs");
    let locks = tx.list_locks(&LockQuery::default()).await.expect("locks");
    let stale = locks
        .iter()
        .filter(|l| epochs.is_dead(l.server_epoch))
        .map(|l| l.id)
        .collect();
    let mut files = BTreeMap::new();
    for share in SHARES {
        files.insert(share.to_owned(), tx.list_files(share).await.expect("files"));
    }
    Library {
        locks,
        stale,
        files,
        nodes: tx.list_nodes().await.expect("nodes"),
        epoch: tx.server_epoch().await.expect("epoch"),
        clean_shutdown: fsmeta::clean_shutdown(&mut *tx).await.expect("clean"),
    }
}

fn fjall_view(url: &str) -> Library {
    let path = url.strip_prefix("fjall:").expect("fjall url");
    let store = FjallStore::open(path).expect("open fjall");
    block_on(library_view(&store))
}

fn fjall_digest(url: &str) -> StoreDigest {
    let path = url.strip_prefix("fjall:").expect("fjall url");
    let store = FjallStore::open(path).expect("open fjall");
    block_on(digest(&store)).expect("digest")
}

// ---------------------------------------------------------------------------
// Comparing JSON with the library

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is a string in {v}"))
}

fn assert_lock_json(v: &Value, lock: &PersistedLock, stale: bool) {
    assert_eq!(str_field(v, "id"), lock.id.to_string());
    assert_eq!(str_field(v, "share_name"), lock.share_name);
    assert_eq!(str_field(v, "file_id"), lock.file_id.to_hex());
    assert_eq!(str_field(v, "owner_id"), lock.owner_id);
    assert_eq!(str_field(v, "client_id"), lock.client_id);
    let lock_type = match lock.lock_type {
        LockType::Shared => "shared",
        LockType::Exclusive => "exclusive",
    };
    assert_eq!(str_field(v, "lock_type"), lock_type);
    // u64 fields are decimal strings: exact over the full range.
    assert_eq!(str_field(v, "offset"), lock.offset.to_string());
    assert_eq!(str_field(v, "length"), lock.length.to_string());
    let deny = match lock.share_reservation {
        ShareReservation::None => "none",
        ShareReservation::DenyRead => "deny_read",
        ShareReservation::DenyWrite => "deny_write",
        ShareReservation::DenyAll => "deny_all",
    };
    assert_eq!(str_field(v, "share_reservation"), deny);
    let us = lock.acquired_at.as_micros() - 1_700_000_000_000_000;
    assert_eq!(
        str_field(v, "acquired_at"),
        format!("2023-11-14T22:13:20.{us:06}Z")
    );
    assert_eq!(str_field(v, "server_epoch"), lock.server_epoch.to_string());
    assert_eq!(v["stale"].as_bool(), Some(stale), "stale of {v}");
    assert_eq!(v.as_object().map(|o| o.len()), Some(12), "fields of {v}");
}

/// Checks a `locks --json` array against the library's locks, in id order.
fn assert_locks_json(json: &Value, expected: &[&PersistedLock], lib: &Library) {
    let items = json.as_array().expect("a JSON array");
    assert_eq!(items.len(), expected.len(), "{json:#}");
    for (v, lock) in items.iter().zip(expected) {
        assert_lock_json(v, lock, lib.stale.contains(&lock.id));
    }
}

// ---------------------------------------------------------------------------
// fjall: each subcommand

#[test]
fn locks_json_matches_the_library_with_every_filter() {
    let (_dir, url) = fjall_fixture();
    let lib = fjall_view(&url);
    assert_eq!(lib.locks.len(), 7);
    assert_eq!(lib.stale.len(), 3, "node a's first epoch is dead");

    let all = on(&url, &["locks", "--json"]).expect(0);
    assert_locks_json(&all.json(), &lib.locks.iter().collect::<Vec<_>>(), &lib);

    let pick = |f: &dyn Fn(&PersistedLock) -> bool| -> Vec<&PersistedLock> {
        lib.locks.iter().filter(|l| f(l)).collect()
    };
    let hex = lib.locks[0].file_id.to_hex();
    let cases: Vec<(Vec<&str>, Vec<&PersistedLock>)> = vec![
        (
            vec!["--client", "client1"],
            pick(&|l| l.client_id == "client1"),
        ),
        (
            vec!["--owner", "owner 1"],
            pick(&|l| l.owner_id == "owner 1"),
        ),
        (
            vec!["--share", "home ü"],
            pick(&|l| l.share_name == "home ü"),
        ),
        (vec!["--file", &hex], pick(&|l| l.file_id.to_hex() == hex)),
        (vec!["--stale"], pick(&|l| lib.stale.contains(&l.id))),
        (
            vec!["--stale", "--client", "client1"],
            pick(&|l| lib.stale.contains(&l.id) && l.client_id == "client1"),
        ),
        (vec!["--client", "nobody"], vec![]),
    ];
    for (filter, expected) in cases {
        let mut args = vec!["locks", "--json"];
        args.extend(filter.iter().copied());
        let run = on(&url, &args).expect(0);
        assert!(
            !expected.is_empty() || filter == ["--client", "nobody"],
            "{filter:?} selects something"
        );
        assert_locks_json(&run.json(), &expected, &lib);
    }
}

#[test]
fn locks_table_marks_stale_locks_and_escapes_ids() {
    let (_dir, url) = fjall_fixture();
    let lib = fjall_view(&url);
    let run = fsmeta_env(&["locks"], Some(&url)).expect(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("ID "), "{}", run.stdout);
    for header in [
        "SHARE", "FILE", "OWNER", "CLIENT", "TYPE", "RANGE", "DENY", "ACQUIRED", "EPOCH",
    ] {
        assert!(lines[0].contains(header), "{header} in {}", lines[0]);
    }
    assert_eq!(lines.len(), 1 + lib.locks.len(), "one line per lock");
    for lock in &lib.locks {
        let line = lines
            .iter()
            .find(|l| l.starts_with(&lock.id.to_string()))
            .expect("a line per lock");
        assert_eq!(
            line.ends_with("STALE"),
            lib.stale.contains(&lock.id),
            "{line}"
        );
        assert!(line.contains(&lock.file_id.to_hex()), "{line}");
        assert!(line.contains("2023-11-14T22:13:20."), "{line}");
        let range = if lock.range().reaches_eof() {
            format!("{}..EOF", lock.offset)
        } else {
            format!("{}..{}", lock.offset, lock.range().last())
        };
        assert!(line.contains(&format!(" {range} ")), "{range} in {line}");
    }
    assert!(run.stdout.contains("line\\nbreak"), "newline escaped");
    assert!(run.stdout.contains(" 100..EOF "));
    assert!(run.stdout.contains(" 0..99 "));
    assert!(run.stdout.contains(" 18446744073709551615..EOF "));
}

#[test]
fn files_json_and_table_match_the_library() {
    let (_dir, url) = fjall_fixture();
    let lib = fjall_view(&url);
    for share in SHARES {
        let expected = &lib.files[share];
        assert_eq!(expected.len(), 3);
        let json = on(&url, &["files", "--share", share, "--json"])
            .expect(0)
            .json();
        let items = json.as_array().expect("array");
        assert_eq!(items.len(), expected.len());
        for (v, f) in items.iter().zip(expected) {
            assert_eq!(str_field(v, "handle"), f.handle.to_hex());
            assert_eq!(str_field(v, "share_name"), f.share_name);
            let kind = format!("{:?}", f.kind).to_lowercase();
            assert_eq!(str_field(v, "kind"), kind);
            assert_eq!(v["mode"].as_u64(), Some(u64::from(f.mode)));
            assert_eq!(v["uid"].as_u64(), Some(u64::from(f.uid)));
            assert_eq!(v["gid"].as_u64(), Some(u64::from(f.gid)));
            assert_eq!(v["nlink"].as_u64(), Some(u64::from(f.nlink)));
            assert_eq!(str_field(v, "size"), f.size.to_string());
            let mtime_us = f.mtime.as_micros() - 1_700_000_000_000_000;
            assert_eq!(
                str_field(v, "mtime"),
                format!("2023-11-14T22:13:20.{mtime_us:06}Z")
            );
            assert_eq!(str_field(v, "atime"), "2023-11-14T22:13:20.000001Z");
            assert_eq!(str_field(v, "ctime"), "2023-11-14T22:13:20.000003Z");
        }
        let table = on(&url, &["files", "--share", share]).expect(0);
        assert_eq!(table.stdout.lines().count(), 1 + expected.len());
        for f in expected {
            assert!(table.stdout.contains(&f.handle.to_hex()));
            assert!(table.stdout.contains(&format!("{:o}", f.mode)));
        }
    }
    let none = on(&url, &["files", "--share", "nothing here", "--json"]).expect(0);
    assert_eq!(none.json(), serde_json::json!([]));
}

fn assert_stats_json(json: &Value, lib: &Library) {
    assert_eq!(json["files"].as_u64(), Some(6));
    assert_eq!(json["locks"].as_u64(), Some(lib.locks.len() as u64));
    assert_eq!(json["stale_locks"].as_u64(), Some(lib.stale.len() as u64));
    assert_eq!(str_field(json, "epoch"), lib.epoch.to_string());
    assert_eq!(json["clean_shutdown"].as_bool(), Some(lib.clean_shutdown));
    let mut per_share: BTreeMap<String, u64> = BTreeMap::new();
    let mut per_client: BTreeMap<String, u64> = BTreeMap::new();
    for l in &lib.locks {
        *per_share.entry(l.share_name.clone()).or_default() += 1;
        *per_client.entry(l.client_id.clone()).or_default() += 1;
    }
    let shares: BTreeMap<String, u64> = json["locks_per_share"]
        .as_array()
        .expect("array")
        .iter()
        .map(|v| {
            (
                str_field(v, "share_name").to_owned(),
                v["locks"].as_u64().expect("n"),
            )
        })
        .collect();
    assert_eq!(shares, per_share);
    let clients = json["top_clients"].as_array().expect("array");
    assert_eq!(clients.len(), per_client.len().min(10));
    assert_eq!(str_field(&clients[0], "client_id"), "client1");
    assert_eq!(clients[0]["locks"].as_u64(), Some(per_client["client1"]));
    for c in clients {
        assert_eq!(
            c["locks"].as_u64(),
            Some(per_client[str_field(c, "client_id")])
        );
    }
    let nodes = json["nodes"].as_array().expect("array");
    assert_eq!(nodes.len(), lib.nodes.len());
    for (v, n) in nodes.iter().zip(&lib.nodes) {
        assert_eq!(str_field(v, "node_id"), n.node_id);
        assert_eq!(str_field(v, "epoch"), n.epoch.to_string());
        assert_eq!(v["clean_shutdown"].as_bool(), Some(n.clean_shutdown));
    }
    // node-a: epoch 3, crashed (unclean), 3 stale + 2 live locks; node-b: epoch 2, clean, 2 live.
    assert_eq!(nodes[0]["locks"].as_u64(), Some(5));
    assert_eq!(nodes[0]["stale_locks"].as_u64(), Some(3));
    assert_eq!(nodes[0]["clean_shutdown"].as_bool(), Some(false));
    assert_eq!(str_field(&nodes[1], "epoch"), "2");
    assert_eq!(nodes[1]["clean_shutdown"].as_bool(), Some(true));
    assert_eq!(nodes[1]["stale_locks"].as_u64(), Some(0));
}

#[test]
fn stats_match_the_library() {
    let (_dir, url) = fjall_fixture();
    let lib = fjall_view(&url);
    assert_eq!(
        lib.nodes
            .iter()
            .map(|n| n.node_id.as_str())
            .collect::<Vec<_>>(),
        ["node-a", "node-b"]
    );
    assert!(lib.clean_shutdown, "the default node never ran");
    assert_stats_json(&on(&url, &["stats", "--json"]).expect(0).json(), &lib);
    let text = on(&url, &["stats"]).expect(0).stdout;
    for needle in [
        "files           6",
        "locks           7 (3 stale)",
        "epoch           3",
        "clean shutdown  yes (node default)",
        "node-a",
        "node-b",
        "home ü",
        "client1",
    ] {
        assert!(text.contains(needle), "{needle:?} in\n{text}");
    }
}

#[test]
fn epoch_and_release_change_what_the_library_sees() {
    let (_dir, url) = fjall_fixture();
    let before = fjall_view(&url);
    let epoch = on(&url, &["epoch"]).expect(0);
    assert_eq!(epoch.stdout.trim(), before.epoch.to_string());

    let held = before
        .locks
        .iter()
        .filter(|l| l.client_id == "client1")
        .count();
    assert_eq!(held, 3);
    let run = on(&url, &["release", "--client", "client1"]).expect(0);
    assert_eq!(run.stdout.trim(), "released 3 locks of client client1");
    let after = fjall_view(&url);
    assert_eq!(after.locks.len(), before.locks.len() - held);
    assert!(after.locks.iter().all(|l| l.client_id != "client1"));
    assert!(
        after.locks.iter().any(|l| l.client_id == "client10"),
        "not a prefix match"
    );
    let again = on(&url, &["release", "--client", "client1"]).expect(0);
    assert_eq!(again.stdout.trim(), "released 0 locks of client client1");
}

#[test]
fn completions_print_a_script_for_bash() {
    let run = fsmeta(&["completions", "bash"]).expect(0);
    assert!(run.stdout.contains("_fsmeta()"), "{}", run.stdout);
    assert!(run.stdout.contains("complete "), "{}", run.stdout);
    for subcommand in ["locks", "fsck", "copy", "completions"] {
        assert!(run.stdout.contains(subcommand), "{subcommand}");
    }
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    fsmeta(&["completions", "no-such-shell"]).expect(2);
}

#[test]
fn verbose_flags_log_spans_to_stderr() {
    let (_dir, url) = fjall_fixture();
    // Quiet by default: stdout holds the answer, stderr nothing.
    let quiet = on(&url, &["epoch"]).expect(0);
    assert!(quiet.stderr.is_empty(), "{}", quiet.stderr);
    // -v: info spans (fsck's verify), not the per-transaction ones.
    let info = on(&url, &["-v", "fsck"]).expect(0);
    assert!(info.stderr.contains("verify"), "{}", info.stderr);
    assert!(!info.stderr.contains("commit"), "{}", info.stderr);
    // -vv: every transaction's begin and rollback/commit, with backend and outcome.
    let debug = on(&url, &["-vv", "epoch"]).expect(0);
    assert!(debug.stderr.contains("begin"), "{}", debug.stderr);
    assert!(
        debug.stderr.contains("backend=\"fjall\""),
        "{}",
        debug.stderr
    );
    assert_eq!(debug.stdout, quiet.stdout);
}

#[test]
fn usage_and_connection_errors_exit_2_with_one_line() {
    let (dir, url) = fjall_fixture();
    let memory = on("memory:", &["locks"]).expect(2);
    assert!(memory.stderr.contains("memory:"), "{}", memory.stderr);
    fsmeta(&["locks"]).expect(2);
    fsmeta(&[]).expect(2);
    on(&url, &["locks", "--no-such-flag"]).expect(2);
    on(&url, &["files"]).expect(2);
    on(&url, &["locks", "--file", "xyz"]).expect(2);
    on(&url, &["locks", "--client", ""]).expect(2);
    on(&url, &["copy", "--from", &url, "--to", &url]).expect(2);
    on(&url, &["copy", "--to", &url]).expect(2);
    let no_source = fsmeta(&["copy", "--to", "fjall:/nonexistent/x"]).expect(2);
    assert!(no_source.stderr.contains("--from"), "{}", no_source.stderr);
    on(&url, &["copy", "--from", &url, "--to", "x", "--batch", "0"]).expect(2);
    on("sqlite://x", &["epoch"]).expect(2);
    let missing = dir.path().join("missing");
    let missing_url = format!("fjall:{}", missing.display());
    on(&missing_url, &["stats"]).expect(2);
    assert!(!missing.exists(), "inspecting never creates a store");
    // Nothing listens on port 1 of the loopback address.
    let refused = on("postgres://u:secret@127.0.0.1:1/db", &["epoch"]).expect(2);
    assert!(!refused.stderr.contains("secret"), "{}", refused.stderr);
    // A fjall directory that another process holds open.
    let path = url.strip_prefix("fjall:").expect("fjall url");
    let held = FjallStore::open(path).expect("open");
    on(&url, &["epoch"]).expect(2);
    drop(held);
    // Help and version are not errors.
    assert!(fsmeta(&["--help"]).expect(0).stdout.contains("copy"));
    fsmeta(&["--version"]).expect(0);
}

// ---------------------------------------------------------------------------
// fjall: fsck on planted damage

/// Writes raw key/value pairs with plain fjall into a closed store.
fn raw_insert(url: &str, keyspace: &str, key: &[u8], value: &[u8]) {
    let path = url.strip_prefix("fjall:").expect("fjall url");
    let db = fjall::OptimisticTxDatabase::builder(path)
        .open()
        .expect("raw open");
    let ks = db
        .keyspace(keyspace, fjall::KeyspaceCreateOptions::default)
        .expect("raw keyspace");
    ks.insert(key, value).expect("raw insert");
    db.persist(fjall::PersistMode::SyncAll)
        .expect("raw persist");
}

/// `len16(component) | id16`: an index key, as src/backend/fjall/keys.rs draws it.
fn index_key(component: &[u8], id: Uuid) -> Vec<u8> {
    let mut key = u16::try_from(component.len())
        .expect("short")
        .to_be_bytes()
        .to_vec();
    key.extend_from_slice(component);
    key.extend_from_slice(id.as_bytes());
    key
}

#[test]
fn fsck_finds_a_stale_index_entry_and_repair_fixes_it() {
    let (_dir, url) = fjall_fixture();
    let healthy = on(&url, &["fsck"]).expect(0);
    assert!(
        healthy
            .stdout
            .contains("checked 6 files and 7 locks: no problems"),
        "{}",
        healthy.stdout
    );
    // An entry for a lock that does not exist, under an existing client.
    let ghost = Uuid::new_v4();
    raw_insert(&url, "locks_by_client", &index_key(b"client1", ghost), b"");
    let found = on(&url, &["fsck"]).expect(1);
    assert!(found.stdout.contains("StaleIndexEntry"), "{}", found.stdout);
    assert!(found.stdout.contains("locks_by_client"), "{}", found.stdout);
    assert!(found.stdout.contains(": 1 problem\n"), "{}", found.stdout);
    // The library sees the same.
    let path = url.strip_prefix("fjall:").expect("fjall url");
    let report = block_on(FjallStore::open(path).expect("open").verify()).expect("verify");
    assert_eq!(report.problems.len(), 1);

    let repaired = on(&url, &["fsck", "--repair"]).expect(0);
    assert!(
        repaired
            .stdout
            .contains("repair: 1 index entry added or removed"),
        "{}",
        repaired.stdout
    );
    on(&url, &["fsck"]).expect(0);
    // The repaired index answers queries again: client1 has its three locks.
    let json = on(&url, &["locks", "--json", "--client", "client1"])
        .expect(0)
        .json();
    assert_eq!(json.as_array().map(Vec::len), Some(3));
}

#[test]
fn fsck_finds_an_undecodable_value_that_repair_leaves_alone() {
    let (_dir, url) = fjall_fixture();
    // A lock record whose value carries an unknown format version byte.
    let id = Uuid::new_v4();
    raw_insert(&url, "locks", id.as_bytes(), &[0xee, 1, 2, 3]);
    let found = on(&url, &["fsck"]).expect(1);
    assert!(found.stdout.contains("Undecodable"), "{}", found.stdout);
    let key_hex: String = id.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        found.stdout.contains(&key_hex),
        "names the key: {}",
        found.stdout
    );
    let repaired = on(&url, &["fsck", "--repair"]).expect(1);
    assert!(
        repaired.stdout.contains("Undecodable"),
        "{}",
        repaired.stdout
    );
    // Listing the locks meets the bad record: a one-line error, exit 2.
    let listing = on(&url, &["locks"]).expect(2);
    assert!(listing.stderr.contains("fsck"), "{}", listing.stderr);
}

// ---------------------------------------------------------------------------
// fjall: copy

/// Parses "copied … in S s" from copy's output.
fn copy_seconds(run: &Run) -> f64 {
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("copied "))
        .unwrap_or_else(|| panic!("a summary line in {}", run.stdout));
    let s = line
        .rsplit(" in ")
        .next()
        .and_then(|t| t.strip_suffix(" s"))
        .expect("seconds");
    s.parse().expect("a number of seconds")
}

#[test]
fn copy_between_fjall_stores_refuses_a_non_empty_destination() {
    let (_dir, from) = fjall_fixture();
    let target = tempfile::tempdir().expect("temp dir");
    let to = format!("fjall:{}", target.path().join("copy").display());
    let run = fsmeta(&["copy", "--from", &from, "--to", &to, "--batch", "2"]).expect(0);
    assert!(
        run.stdout.contains("verified: counts and digests match"),
        "{}",
        run.stdout
    );
    assert!(copy_seconds(&run) >= 0.0);
    assert!(
        run.stderr.is_empty(),
        "no progress bar without a terminal: {:?}",
        run.stderr
    );
    assert_eq!(fjall_digest(&from), fjall_digest(&to));
    let (a, b) = (fjall_view(&from), fjall_view(&to));
    assert_eq!(a.locks, b.locks);
    assert_eq!(a.files, b.files);
    assert_eq!(a.nodes, b.nodes);

    let refused = fsmeta(&["copy", "--from", &from, "--to", &to]).expect(2);
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    // The source may also come from --store / FSMETA_STORE.
    fsmeta_env(&["copy", "--to", &to, "--force"], Some(&from)).expect(0);

    // A destination with a record the source lacks: copied, but the check fails.
    let (_other, other) = fjall_fixture();
    let mismatch = fsmeta(&["copy", "--from", &from, "--to", &other, "--force"]).expect(1);
    assert!(mismatch.stdout.contains("MISMATCH"), "{}", mismatch.stdout);
}

// ---------------------------------------------------------------------------
// PostgreSQL

#[cfg(feature = "postgres")]
mod postgres {
    use std::time::Duration;

    use fsmeta::{EpochRecord, PgOptions, PostgresStore};
    use sea_orm::{ConnectOptions, ConnectionTrait, Database};

    use super::*;

    fn server_url() -> String {
        std::env::var("FSMETA_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
    }

    async fn sql(url: &str, statement: &str) -> Result<(), sea_orm::DbErr> {
        let mut options = ConnectOptions::new(url);
        options
            .max_connections(1)
            .connect_timeout(Duration::from_secs(5))
            .sqlx_logging(false);
        let db = Database::connect(options).await?;
        let result = db.execute_unprepared(statement).await.map(drop);
        let _ = db.close().await;
        result
    }

    /// A fresh, empty schema; dropped with everything in it when the guard goes.
    pub struct Schema {
        server: String,
        name: String,
        /// The URL that points the binary at this schema.
        pub url: String,
    }

    impl Schema {
        /// `None` (after a notice) when the server is unreachable and not required.
        pub fn new() -> Option<Schema> {
            let server = server_url();
            let name = format!("fsmeta_cli_{}", Uuid::new_v4().simple());
            if let Err(e) = block_on(sql(&server, &format!("CREATE SCHEMA \"{name}\""))) {
                if std::env::var("FSMETA_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                    panic!("FSMETA_REQUIRE_POSTGRES=1 but PostgreSQL at {server} failed: {e}");
                }
                eprintln!("notice: skipping PostgreSQL CLI test: {server} is unreachable ({e})");
                return None;
            }
            let sep = if server.contains('?') { '&' } else { '?' };
            let url = format!("{server}{sep}options=-csearch_path%3D{name}");
            Some(Schema { server, name, url })
        }

        /// The library's store on this schema (creating the tables).
        pub async fn store(&self) -> PostgresStore {
            PostgresStore::connect_with(
                &self.server,
                PgOptions {
                    schema: Some(self.name.clone()),
                    max_connections: 2,
                    ..Default::default()
                },
            )
            .await
            .expect("connect")
        }
    }

    impl Drop for Schema {
        fn drop(&mut self) {
            let (server, name) = (self.server.clone(), self.name.clone());
            // Drop may run inside a test's runtime: use a thread with its own.
            let cleaner = std::thread::spawn(move || {
                if let Err(e) = block_on(sql(&server, &format!("DROP SCHEMA \"{name}\" CASCADE"))) {
                    eprintln!("warning: could not drop test schema {name}: {e}");
                }
            });
            let _ = cleaner.join();
        }
    }

    #[test]
    fn every_subcommand_against_postgres() {
        let Some(schema) = Schema::new() else { return };
        let lib = block_on(async {
            let store = schema.store().await;
            populate(&store).await;
            let lib = library_view(&store).await;
            store.close().await.expect("close");
            lib
        });
        let url = schema.url.as_str();
        assert_locks_json(
            &on(url, &["locks", "--json"]).expect(0).json(),
            &lib.locks.iter().collect::<Vec<_>>(),
            &lib,
        );
        let stale: Vec<&PersistedLock> = lib
            .locks
            .iter()
            .filter(|l| lib.stale.contains(&l.id))
            .collect();
        assert_locks_json(
            &on(url, &["locks", "--json", "--stale"]).expect(0).json(),
            &stale,
            &lib,
        );
        let table = fsmeta_env(&["locks"], Some(url)).expect(0);
        assert_eq!(table.stdout.matches("STALE").count(), 3);
        let files = on(url, &["files", "--share", "home ü", "--json"])
            .expect(0)
            .json();
        assert_eq!(files.as_array().map(Vec::len), Some(3));
        assert_stats_json(&on(url, &["stats", "--json"]).expect(0).json(), &lib);
        on(url, &["fsck"]).expect(0);
        on(url, &["fsck", "--repair"]).expect(0);
        assert_eq!(on(url, &["epoch"]).expect(0).stdout.trim(), "3");
        let released = on(url, &["release", "--client", "client-b"]).expect(0);
        assert_eq!(
            released.stdout.trim(),
            "released 2 locks of client client-b"
        );
        let left = on(url, &["locks", "--json"]).expect(0).json();
        assert_eq!(left.as_array().map(Vec::len), Some(5));
    }

    #[test]
    fn postgres_without_fsmeta_tables_is_a_clear_error() {
        let Some(schema) = Schema::new() else { return };
        let run = on(&schema.url, &["locks"]).expect(2);
        assert!(run.stderr.contains("no fsmeta tables"), "{}", run.stderr);
    }

    /// "No fsmeta tables" is told by SQLSTATE 42P01, not by the words "does
    /// not exist": a store whose tables are there but damaged (a missing
    /// column, 42703, whose message says "does not exist" too) is reported as
    /// the failure it is.
    #[test]
    fn a_missing_column_is_not_a_missing_table() {
        let Some(schema) = Schema::new() else { return };
        block_on(async {
            let store = schema.store().await;
            store.close().await.expect("close");
        });
        block_on(sql(
            &schema.url,
            "ALTER TABLE server_state RENAME COLUMN epoch TO epoch_renamed",
        ))
        .expect("rename a column");
        let run = on(&schema.url, &["epoch"]);
        assert_ne!(run.code, 0, "{}", run.stderr);
        assert!(!run.stderr.contains("no fsmeta tables"), "{}", run.stderr);
        assert!(run.stderr.contains("epoch"), "{}", run.stderr);
    }

    /// A password given as a URL query parameter never reaches a message.
    #[test]
    fn a_password_parameter_is_not_printed() {
        let Some(schema) = Schema::new() else { return };
        let url = format!("{}&password=hunter2", schema.url);
        let run = on(&url, &["locks"]).expect(2);
        assert!(run.stderr.contains("no fsmeta tables"), "{}", run.stderr);
        assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
    }

    /// fjall → PostgreSQL → fjall with more than 10 000 locks: every record
    /// arrives unchanged.
    #[test]
    fn copy_round_trips_ten_thousand_locks_through_postgres() {
        let Some(schema) = Schema::new() else { return };
        const LOCKS: usize = 10_500;
        let (_dir, from) = fjall_fixture();
        {
            let path = from.strip_prefix("fjall:").expect("fjall url");
            let store = FjallStore::open(path).expect("open");
            let files: Vec<FileMeta> = (10..110)
                .map(|n| file(n, SHARES[usize::from(n % 2)]))
                .collect();
            let mut locks = Vec::with_capacity(LOCKS);
            for i in 0..LOCKS {
                let f = &files[i % files.len()];
                let mut l = lock(
                    f,
                    &format!("owner {}", i % 977),
                    &format!("client{}", i % 113),
                    [1, 2, 3][i % 3],
                    (i as u64) << 20,
                    if i % 5 == 0 { 0 } else { i as u64 + 1 },
                    [LockType::Shared, LockType::Exclusive][i % 2],
                    [ShareReservation::None, ShareReservation::DenyRead][i % 2],
                );
                l.acquired_at = at((i % 1_000_000) as i64);
                locks.push(l);
            }
            block_on(async {
                let (files, locks) = (&files, &locks);
                for chunk in locks.chunks(2000) {
                    store
                        .transact(|tx| {
                            Box::pin(async move {
                                for l in chunk {
                                    tx.put_lock(l).await?;
                                }
                                Ok(())
                            })
                        })
                        .await
                        .expect("bulk locks");
                }
                store
                    .transact(|tx| {
                        Box::pin(async move {
                            for f in files {
                                tx.put_file(f).await?;
                            }
                            tx.put_epoch_record(&EpochRecord {
                                epoch: 3,
                                node_id: "node-a".into(),
                                started_at: at(42),
                            })
                            .await?;
                            fsmeta::set_clean_shutdown(&mut *tx, false).await
                        })
                    })
                    .await
                    .expect("bulk files");
            });
        }
        let source = fjall_digest(&from);
        assert!(source.locks >= 10_000, "{source}");
        assert_eq!(
            source.nodes, 3,
            "node-a, node-b and the default node's flag"
        );

        let to_pg = fsmeta(&["copy", "--from", &from, "--to", &schema.url]).expect(0);
        assert!(to_pg.stdout.contains("verified"), "{}", to_pg.stdout);
        let pg_seconds = copy_seconds(&to_pg);

        let back = tempfile::tempdir().expect("temp dir");
        let back_url = format!("fjall:{}", back.path().join("back").display());
        let to_fjall = fsmeta(&[
            "copy",
            "--from",
            &schema.url,
            "--to",
            &back_url,
            "--batch",
            "500",
        ])
        .expect(0);
        let fjall_seconds = copy_seconds(&to_fjall);
        eprintln!(
            "copy of {} locks and {} files: fjall -> PostgreSQL {pg_seconds:.2} s, \
             PostgreSQL -> fjall {fjall_seconds:.2} s",
            source.locks, source.files
        );

        // Round trip: the library sees exactly the same records.
        assert_eq!(fjall_digest(&back_url), source);
        let (a, b) = (fjall_view(&from), fjall_view(&back_url));
        assert_eq!(a.locks, b.locks);
        assert_eq!(a.files, b.files);
        assert_eq!(a.nodes, b.nodes);
        assert_eq!((a.epoch, a.clean_shutdown), (b.epoch, b.clean_shutdown));
        assert!(!b.clean_shutdown);
        let pg_digest = block_on(async {
            let store = schema.store().await;
            let d = digest(&store).await.expect("digest");
            store.close().await.expect("close");
            d
        });
        assert_eq!(pg_digest, source);
    }
}

// ---------------------------------------------------------------------------
// Opens, leases and delegations (issue 18)

/// A fjall store with one disconnected durable open, one plain open, a
/// breaking lease and a revoked delegation; returns them.
fn open_states_fixture() -> (
    TempDir,
    String,
    [fsmeta::OpenRecord; 2],
    fsmeta::LeaseRecord,
    fsmeta::DelegationRecord,
) {
    use fsmeta::{
        DelegationRecord, DelegationType, DurableState, LeaseRecord, LeaseState, OpenRecord,
        ShareMask,
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store");
    let f = file(1, "export");
    let durable = OpenRecord {
        durable: DurableState::Durable { timeout_ms: 60_000 },
        disconnected_at: Some(at(5)),
        opened_at: at(1),
        ..OpenRecord::new(
            f.handle.clone(),
            "export",
            "client:1",
            "owner",
            ShareMask::READ_WRITE,
            ShareMask::WRITE,
        )
    };
    let plain = OpenRecord {
        opened_at: at(2),
        ..OpenRecord::new(
            file(2, "export").handle,
            "export",
            "client2",
            "o2",
            ShareMask::READ,
            ShareMask::NONE,
        )
    };
    let lease = LeaseRecord {
        id: Uuid::new_v4(),
        lease_key: [0xab; 16],
        parent_lease_key: None,
        file: f.handle.clone(),
        share_name: "export".into(),
        client_id: "client:1".into(),
        state: LeaseState::ALL,
        lease_epoch: 3,
        breaking: true,
        break_to: LeaseState::READ_HANDLE,
        break_started_at: Some(at(7)),
        directory: false,
        oplock: false,
        server_epoch: 1,
    };
    let delegation = DelegationRecord {
        id: Uuid::new_v4(),
        file: f.handle.clone(),
        share_name: "export".into(),
        client_id: "client2".into(),
        kind: DelegationType::Write,
        recalled: true,
        revoked: true,
        notification_mask: 0,
        server_epoch: 1,
        granted_at: at(3),
    };
    let store = FjallStore::open(&path).expect("open fjall");
    let (opens, l, d) = (&[durable.clone(), plain.clone()], &lease, &delegation);
    block_on(store.transact(|tx| {
        Box::pin(async move {
            for o in opens {
                tx.put_open(o).await?;
            }
            tx.put_lease(l).await?;
            tx.put_delegation(d).await
        })
    }))
    .expect("seed");
    drop(store);
    (
        dir,
        format!("fjall:{}", path.display()),
        [durable, plain],
        lease,
        delegation,
    )
}

#[test]
fn opens_and_leases_list_what_the_library_stored() {
    let (_dir, url, [durable, plain], lease, delegation) = open_states_fixture();
    let json = on(&url, &["opens", "--json"]).expect(0).json();
    let items = json.as_array().expect("array");
    assert_eq!(items.len(), 2, "{json:#}");
    let d = items
        .iter()
        .find(|v| str_field(v, "id") == durable.id.to_string())
        .expect("durable");
    assert_eq!(str_field(d, "access"), "rw-");
    assert_eq!(str_field(d, "deny"), "-w-");
    assert_eq!(str_field(d, "durable"), "durable 60000ms");
    assert_eq!(str_field(d, "client"), "client:1");
    assert_eq!(str_field(d, "file"), durable.file.to_hex());
    assert!(d["disconnected_at"].is_string());
    let only = on(&url, &["opens", "--disconnected", "--json"])
        .expect(0)
        .json();
    assert_eq!(only.as_array().map(Vec::len), Some(1), "{only:#}");
    let by_client = on(&url, &["opens", "--client", "client2", "--json"])
        .expect(0)
        .json();
    assert_eq!(str_field(&by_client[0], "id"), plain.id.to_string());
    let table = on(&url, &["opens"]).expect(0);
    assert!(
        table
            .stdout
            .lines()
            .next()
            .is_some_and(|h| h.contains("DURABLE") && h.contains("DISCONNECTED"))
    );
    assert_eq!(table.stdout.lines().count(), 3, "{}", table.stdout);

    let json = on(&url, &["leases", "--json"]).expect(0).json();
    let items = json.as_array().expect("array");
    assert_eq!(items.len(), 2, "{json:#}");
    let l = items
        .iter()
        .find(|v| str_field(v, "kind") == "lease")
        .expect("lease");
    assert_eq!(str_field(l, "id"), lease.id.to_string());
    assert_eq!(
        (str_field(l, "state"), str_field(l, "break_to")),
        ("RHW", "RH")
    );
    assert_eq!(l["breaking"], Value::Bool(true));
    let d = items
        .iter()
        .find(|v| str_field(v, "kind") == "delegation")
        .expect("delegation");
    assert_eq!(str_field(d, "id"), delegation.id.to_string());
    assert_eq!(d["revoked"], Value::Bool(true));
    let table = on(&url, &["leases"]).expect(0);
    assert!(
        table.stdout.contains("RHW -> RH") && table.stdout.contains("REVOKED"),
        "{}",
        table.stdout
    );
    let empty = tempfile::tempdir().expect("dir");
    let empty_url = format!("fjall:{}", empty.path().join("s").display());
    drop(FjallStore::open(empty.path().join("s")).expect("create"));
    assert_eq!(
        on(&empty_url, &["leases"]).expect(0).stdout.trim(),
        "no leases or delegations"
    );
}
