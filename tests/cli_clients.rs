//! `fsmeta clients`, run as a process against a fjall store in a temporary
//! directory: what it prints (JSON parsed with serde_json, and the table) is
//! compared with the client records and locks the library wrote.

use std::process::Command;

use fsmeta::{
    ClientProtocol, ClientRecord, FileHandle, FjallStore, LockFlavor, LockType, MetadataStoreExt,
    PersistedLock, ShareReservation, Timestamp,
};
use serde_json::Value;

/// Runs the binary on `url`; returns (exit code, stdout).
fn clients(url: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fsmeta"))
        .args(["--store", url, "clients"])
        .args(args)
        .env_remove("FSMETA_STORE")
        .env_remove("FSMETA_LOG")
        .output()
        .expect("run the fsmeta binary");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.code().expect("exited"),
        String::from_utf8(out.stdout).expect("utf-8"),
    )
}

fn client(id: &str, node: &str, owner: &[u8]) -> ClientRecord {
    ClientRecord {
        last_renewed: Timestamp::from_micros(1_700_000_000_000_001),
        ..ClientRecord::new(id, node, ClientProtocol::Nfs4, owner.to_vec(), [0xab; 8], 7)
    }
}

fn lock(client: &str, offset: u64) -> PersistedLock {
    PersistedLock {
        id: uuid::Uuid::new_v4(),
        share_name: "s".into(),
        file_id: FileHandle::new(*b"f").expect("handle"),
        owner_id: "o".into(),
        client_id: client.into(),
        lock_type: LockType::Shared,
        offset,
        length: 1,
        share_reservation: ShareReservation::None,
        acquired_at: Timestamp::from_micros(1),
        server_epoch: 7,
        flavor: LockFlavor::Posix,
    }
}

/// A fjall store with three clients: one with a binary owner and two locks,
/// an expired NLM client with a callback and principal, one on another node.
fn fixture() -> (tempfile::TempDir, String, Vec<ClientRecord>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store");
    let records = vec![
        client("c-bin", "nfs-1", b"host\x00\xff\n"),
        ClientRecord {
            protocol: ClientProtocol::Nlm,
            expired: true,
            principal: Some(b"alice@REALM".to_vec()),
            callback: Some("10.0.0.9".into()),
            reclaim_complete: true,
            ..client("c-nlm", "nfs-1", b"mon-name")
        },
        client("c-other", "nfs-2", b"other"),
    ];
    let store = FjallStore::open(&path).expect("open fjall");
    let (records_ref, locks) = (&records, &[lock("c-bin", 0), lock("c-bin", 10)]);
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(store.transact(|tx| {
            Box::pin(async move {
                for c in records_ref {
                    tx.put_client(c).await?;
                }
                tx.put_locks(locks).await
            })
        }))
        .expect("seed");
    drop(store);
    (dir, format!("fjall:{}", path.display()), records)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn clients_json_matches_the_library_and_filters_by_node() {
    let (_dir, url, records) = fixture();
    let (code, stdout) = clients(&url, &["--json"]);
    assert_eq!(code, 0);
    let json: Value = serde_json::from_str(&stdout).expect("JSON");
    let rows = json.as_array().expect("an array");
    assert_eq!(rows.len(), 3);
    for (row, c) in rows.iter().zip(&records) {
        assert_eq!(row["client_id"], c.client_id.as_str());
        assert_eq!(row["node_id"], c.node_id.as_str());
        assert_eq!(row["protocol"], c.protocol.to_string());
        assert_eq!(row["owner_hex"], hex(&c.owner));
        assert_eq!(row["verifier"], hex(&c.verifier));
        assert_eq!(row["epoch"], "7", "u64 as a string");
        assert_eq!(row["reclaim_complete"], c.reclaim_complete);
        assert_eq!(row["expired"], c.expired);
        assert_eq!(row["last_renewed"], "2023-11-14T22:13:20.000001Z");
        assert_eq!(
            row["principal_hex"],
            c.principal
                .as_deref()
                .map(hex)
                .map_or(Value::Null, Value::from)
        );
        assert_eq!(
            row["callback"],
            c.callback.as_deref().map_or(Value::Null, Value::from)
        );
    }
    assert_eq!(rows[0]["owner"], "host\\x00\\xff\\n", "escaped for reading");
    assert_eq!(rows[0]["locks"], 2);
    assert_eq!(rows[1]["locks"], 0);
    let (_, stdout) = clients(&url, &["--node", "nfs-2", "--json"]);
    let json: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(json.as_array().map(Vec::len), Some(1));
    assert_eq!(json[0]["client_id"], "c-other");
}

#[test]
fn clients_table_marks_expired_and_escapes_owners() {
    let (_dir, url, _) = fixture();
    let (code, stdout) = clients(&url, &["--node", "nfs-1"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(lines[0].starts_with("CLIENT") && lines[0].contains("LOCKS"));
    assert!(lines[1].contains("c-bin") && lines[1].contains(r"host\x00\xff\n"));
    assert!(lines[1].contains("nfs4") && !lines[1].contains("EXPIRED"));
    assert!(
        lines[2].contains("nlm") && lines[2].ends_with("EXPIRED"),
        "{}",
        lines[2]
    );
    let (code, stdout) = clients(&url, &["--node", "nobody"]);
    assert_eq!((code, stdout.as_str()), (0, "no clients\n"));
}
