//! `fsmeta nodes` and `fsmeta node declare-dead`, run as processes against a
//! fjall store in a temporary directory written through node sessions: the
//! printed epochs, lock counts and statuses are the ones the library wrote,
//! and a takeover by the command is seen by the library afterwards.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use fsmeta::{
    Acquire, FileHandle, FjallStore, LockFlavor, LockType, MetadataStore, Node, PersistedLock,
    ShareReservation, StartOptions, Timestamp,
};
use serde_json::Value;

/// Runs the binary on `url` with `args`; returns (exit code, stdout, stderr).
fn fsmeta(url: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fsmeta"))
        .args(["--store", url])
        .args(args)
        .env_remove("FSMETA_STORE")
        .env_remove("FSMETA_LOG")
        .output()
        .expect("run the fsmeta binary");
    (
        out.status.code().expect("exited"),
        String::from_utf8(out.stdout).expect("utf-8"),
        String::from_utf8(out.stderr).expect("utf-8"),
    )
}

fn lock(file: &[u8]) -> PersistedLock {
    PersistedLock {
        id: uuid::Uuid::new_v4(),
        share_name: "s".into(),
        file_id: FileHandle::new(file).expect("handle"),
        owner_id: "o".into(),
        client_id: "c".into(),
        lock_type: LockType::Exclusive,
        offset: 0,
        length: 0,
        share_reservation: ShareReservation::None,
        acquired_at: Timestamp::now(),
        server_epoch: 0,
        flavor: LockFlavor::Posix,
    }
}

/// Node `a`: one lock from a dead incarnation, one from its live one (lease
/// 1 h); node `b`: one live lock, a zero lease (expired at once).
/// Returns a's and b's epochs.
async fn write_fixture(path: &std::path::Path) -> (u64, u64) {
    let store: Arc<dyn MetadataStore> = Arc::new(FjallStore::open(path).expect("open fjall"));
    let hour = StartOptions {
        lease: Duration::from_secs(3600),
        ..Default::default()
    };
    let a = Node::new(store.clone(), "a").expect("node id");
    let first = a.start(hour).await.expect("start a");
    assert_eq!(
        first.acquire(&lock(b"f1")).await.expect("acquire"),
        Acquire::Granted
    );
    drop(first);
    let a_now = a
        .start(StartOptions {
            take_over_live: true,
            ..hour
        })
        .await
        .expect("restart a");
    assert_eq!(
        a_now.acquire(&lock(b"f2")).await.expect("acquire"),
        Acquire::Granted
    );
    let b = Node::new(store.clone(), "b").expect("node id");
    let b_now = b
        .start(StartOptions {
            lease: Duration::ZERO,
            ..Default::default()
        })
        .await
        .expect("start b");
    assert_eq!(
        b_now.acquire(&lock(b"f3")).await.expect("acquire"),
        Acquire::Granted
    );
    (a_now.epoch(), b_now.epoch())
}

fn nodes_json(url: &str) -> Vec<Value> {
    let (code, out, err) = fsmeta(url, &["nodes", "--json"]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str::<Value>(&out)
        .expect("JSON")
        .as_array()
        .expect("an array")
        .clone()
}

#[test]
fn nodes_lists_and_declare_dead_takes_over() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (a_epoch, b_epoch) = runtime.block_on(write_fixture(&path));
    let url = format!("fjall:{}", path.display());

    let nodes = nodes_json(&url);
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    let (a, b) = (&nodes[0], &nodes[1]);
    assert_eq!(a["node_id"], "a");
    assert_eq!(a["epoch"], a_epoch.to_string());
    assert_eq!(
        (a["live_locks"].as_u64(), a["stale_locks"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(a["status"], "ALIVE");
    assert_eq!(a["clean_shutdown"], false);
    assert_eq!(b["epoch"], b_epoch.to_string());
    assert_eq!(
        (b["live_locks"].as_u64(), b["stale_locks"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(b["status"], "EXPIRED");
    assert!(b["taken_over_by"].is_null());

    let (code, table, err) = fsmeta(&url, &["nodes"]);
    assert_eq!(code, 0, "{err}");
    let row = |id: &str| {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .unwrap_or_else(|| panic!("no row for {id}: {table}"))
            .to_owned()
    };
    assert!(
        row("a").contains("ALIVE") && row("b").contains("EXPIRED"),
        "{table}"
    );

    // a's lease runs: refused without --force, nothing changes.
    let (code, _, err) = fsmeta(&url, &["node", "declare-dead", "a", "--by", "b"]);
    assert_ne!(code, 0, "a live node is not declared dead without --force");
    assert!(err.contains("alive") || err.contains("lease"), "{err}");
    assert_eq!(nodes_json(&url)[0]["status"], "ALIVE");

    // b's lease expired: a takes it over; b's live lock becomes stale.
    let (code, out, err) = fsmeta(&url, &["node", "declare-dead", "b", "--by", "a"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 locks of 1 clients"), "{out}");
    let b = nodes_json(&url)[1].clone();
    assert_eq!(b["status"], "DEAD");
    assert_eq!(b["taken_over_by"], "a");
    assert_eq!(
        (b["live_locks"].as_u64(), b["stale_locks"].as_u64()),
        (Some(0), Some(1))
    );

    // --force: the operator knows a is dead.
    let (code, _, err) = fsmeta(&url, &["node", "declare-dead", "a", "--by", "b", "--force"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(nodes_json(&url)[0]["status"], "DEAD");
}
