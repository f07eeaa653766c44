//! Extension tables (`ExtStore`): the host's own metadata in fsmeta's
//! transaction. CRUD, scans at prefix boundaries and with a cursor,
//! read-your-writes, isolation and phantoms, atomicity with files and locks,
//! byte extremes, limits and the table listing.

use super::TestStore;
use super::sample::{
    assert_conflict, assert_invalid, begin, commit, read_file, read_lock, sample_file, sample_lock,
};
use crate::{
    Error, ExtRecord, KeyRange, MAX_EXT_KEY_LEN, MAX_EXT_VALUE_LEN, MetadataStoreExt,
    MetadataTransaction, Result,
};

fn rec(key: &[u8], value: &[u8]) -> ExtRecord {
    ExtRecord {
        key: key.to_vec(),
        value: value.to_vec(),
    }
}

/// Every record of `table` in `range`, read in one fresh transaction.
async fn scan_all(t: &dyn TestStore, table: &str, range: &KeyRange) -> Vec<ExtRecord> {
    begin(t)
        .await
        .ext_scan(table, range, None, 10_000)
        .await
        .expect("ext_scan")
}

async fn ext_get(t: &dyn TestStore, table: &str, key: &[u8]) -> Option<Vec<u8>> {
    begin(t).await.ext_get(table, key).await.expect("ext_get")
}

/// Commits `records` into `table`.
async fn ext_seed(t: &dyn TestStore, table: &str, records: &[ExtRecord]) {
    let mut tx = begin(t).await;
    for r in records {
        tx.ext_put(table, &r.key, &r.value).await.expect("ext_put");
    }
    commit(tx).await;
}

/// Put, get, overwrite; a missing key reads as `None`.
pub async fn ext_put_get_upsert(t: &mut dyn TestStore) {
    assert_eq!(ext_get(t, "inodes", b"7").await, None);
    ext_seed(t, "inodes", &[rec(b"7", b"mode=644")]).await;
    assert_eq!(ext_get(t, "inodes", b"7").await, Some(b"mode=644".to_vec()));
    ext_seed(t, "inodes", &[rec(b"7", b"mode=600")]).await;
    assert_eq!(
        ext_get(t, "inodes", b"7").await,
        Some(b"mode=600".to_vec()),
        "a second put replaces the value"
    );
    assert_eq!(
        scan_all(t, "inodes", &KeyRange::All).await,
        [rec(b"7", b"mode=600")],
        "an overwrite leaves one record"
    );
}

/// Delete says whether the record existed; a deleted key reads as `None`.
pub async fn ext_delete_reports_existence(t: &mut dyn TestStore) {
    ext_seed(t, "xattrs", &[rec(b"k", b"v")]).await;
    let mut tx = begin(t).await;
    assert!(tx.ext_delete("xattrs", b"k").await.unwrap(), "existed");
    assert!(
        !tx.ext_delete("xattrs", b"k").await.unwrap(),
        "a second delete finds nothing"
    );
    assert!(!tx.ext_delete("xattrs", b"never").await.unwrap());
    assert_eq!(tx.ext_get("xattrs", b"k").await.unwrap(), None);
    commit(tx).await;
    assert_eq!(ext_get(t, "xattrs", b"k").await, None);
}

/// The same key in two tables is two records; a table name that is a prefix
/// of another (`dir` vs `dirents`) keeps them apart.
pub async fn ext_tables_are_independent(t: &mut dyn TestStore) {
    ext_seed(t, "dir", &[rec(b"k", b"in dir")]).await;
    ext_seed(t, "dirents", &[rec(b"k", b"in dirents"), rec(b"k2", b"x")]).await;
    assert_eq!(ext_get(t, "dir", b"k").await, Some(b"in dir".to_vec()));
    assert_eq!(
        ext_get(t, "dirents", b"k").await,
        Some(b"in dirents".to_vec())
    );
    assert_eq!(
        scan_all(t, "dir", &KeyRange::All).await,
        [rec(b"k", b"in dir")]
    );
    assert_eq!(scan_all(t, "dirents", &KeyRange::All).await.len(), 2);
    let mut tx = begin(t).await;
    assert!(tx.ext_delete("dir", b"k").await.unwrap());
    commit(tx).await;
    assert_eq!(
        ext_get(t, "dirents", b"k").await,
        Some(b"in dirents".to_vec())
    );
}

/// A prefix scan covers exactly the keys that start with it: `[1,2]` covers
/// `[1,2]` and `[1,2,3]`, not `[1]`, `[1,3]` or `[1,1,0xff]`; an all-`0xff`
/// prefix reaches the end of the table.
pub async fn ext_scan_prefix_boundaries(t: &mut dyn TestStore) {
    let keys: [&[u8]; 8] = [
        &[1],
        &[1, 1, 0xff],
        &[1, 2],
        &[1, 2, 0],
        &[1, 2, 3],
        &[1, 2, 0xff, 0xff],
        &[1, 3],
        &[0xff, 0xff],
    ];
    let records: Vec<ExtRecord> = keys.iter().map(|k| rec(k, k)).collect();
    ext_seed(t, "t", &records).await;
    let got = |r: Vec<ExtRecord>| r.into_iter().map(|r| r.key).collect::<Vec<_>>();
    assert_eq!(
        got(scan_all(t, "t", &KeyRange::Prefix(vec![1, 2])).await),
        [
            vec![1, 2],
            vec![1, 2, 0],
            vec![1, 2, 3],
            vec![1, 2, 0xff, 0xff]
        ]
    );
    assert_eq!(
        got(scan_all(t, "t", &KeyRange::Prefix(vec![1])).await).len(),
        7
    );
    assert_eq!(
        got(scan_all(t, "t", &KeyRange::Prefix(vec![0xff])).await),
        [vec![0xff, 0xff]]
    );
    assert_eq!(
        got(scan_all(t, "t", &KeyRange::Prefix(vec![1, 2, 3, 4])).await),
        Vec::<Vec<u8>>::new()
    );
    assert_eq!(
        got(scan_all(t, "t", &KeyRange::Prefix(Vec::new())).await).len(),
        8,
        "an empty prefix covers the table"
    );
}

/// `All` and `Between` scans come back in bytewise key order, `end` exclusive.
pub async fn ext_scan_ranges_in_key_order(t: &mut dyn TestStore) {
    let keys: [&[u8]; 6] = [&[0], &[0, 0], &[5], &[9, 9], &[10], &[0x80]];
    ext_seed(
        t,
        "t",
        &keys.iter().map(|k| rec(k, b"")).collect::<Vec<_>>(),
    )
    .await;
    let got = |r: Vec<ExtRecord>| r.into_iter().map(|r| r.key).collect::<Vec<_>>();
    assert_eq!(
        got(scan_all(t, "t", &KeyRange::All).await),
        [
            vec![0],
            vec![0, 0],
            vec![5],
            vec![9, 9],
            vec![10],
            vec![0x80]
        ],
        "bytewise order"
    );
    let between = KeyRange::Between {
        start: vec![0, 0],
        end: Some(vec![10]),
    };
    assert_eq!(
        got(scan_all(t, "t", &between).await),
        [vec![0, 0], vec![5], vec![9, 9]]
    );
    let open_end = KeyRange::Between {
        start: vec![9, 9],
        end: None,
    };
    assert_eq!(
        got(scan_all(t, "t", &open_end).await),
        [vec![9, 9], vec![10], vec![0x80]]
    );
    let empty = KeyRange::Between {
        start: vec![5],
        end: Some(vec![5]),
    };
    assert!(scan_all(t, "t", &empty).await.is_empty());
}

/// A scan pages with `after` and `limit`: every record once, in order.
pub async fn ext_scan_pages_with_cursor(t: &mut dyn TestStore) {
    let records: Vec<ExtRecord> = (0u16..23)
        .map(|n| rec(&[7, (n >> 8) as u8, n as u8], &n.to_be_bytes()))
        .collect();
    ext_seed(t, "t", &records).await;
    ext_seed(t, "t", &[rec(&[8], b"outside the prefix")]).await;
    let mut tx = begin(t).await;
    let range = KeyRange::Prefix(vec![7]);
    let (mut seen, mut after): (Vec<ExtRecord>, Option<Vec<u8>>) = (Vec::new(), None);
    loop {
        let page = tx.ext_scan("t", &range, after.as_deref(), 5).await.unwrap();
        assert!(page.len() <= 5);
        let Some(last) = page.last() else { break };
        after = Some(last.key.clone());
        let full = page.len() == 5;
        seen.extend(page);
        if !full {
            break;
        }
    }
    assert_eq!(seen, records);
    // A cursor between keys and one past the end.
    let page = tx
        .ext_scan("t", &range, Some(&[7u8, 0, 3, 0][..]), 2)
        .await
        .unwrap();
    assert_eq!(page, records[4..6]);
    assert!(
        tx.ext_scan("t", &range, Some(&[7u8, 0xff][..]), 5)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A transaction's scans and gets see its own puts and deletes.
pub async fn ext_reads_own_writes_in_scans(t: &mut dyn TestStore) {
    ext_seed(t, "t", &[rec(b"a1", b"old"), rec(b"a2", b"gone")]).await;
    let mut tx = begin(t).await;
    tx.ext_put("t", b"a1", b"new").await.unwrap();
    tx.ext_put("t", b"a0", b"added").await.unwrap();
    assert!(tx.ext_delete("t", b"a2").await.unwrap());
    assert_eq!(
        tx.ext_scan("t", &KeyRange::Prefix(b"a".to_vec()), None, 10)
            .await
            .unwrap(),
        [rec(b"a0", b"added"), rec(b"a1", b"new")]
    );
    assert_eq!(tx.ext_get("t", b"a2").await.unwrap(), None);
    assert_eq!(tx.ext_tables().await.unwrap(), ["t"]);
    tx.rollback().await.unwrap();
    assert_eq!(
        scan_all(t, "t", &KeyRange::All).await,
        [rec(b"a1", b"old"), rec(b"a2", b"gone")],
        "rollback discards them"
    );
}

/// Uncommitted extension writes are invisible to other transactions.
pub async fn ext_uncommitted_writes_are_invisible(t: &mut dyn TestStore) {
    let mut writer = begin(t).await;
    writer.ext_put("t", b"k", b"v").await.unwrap();
    assert_eq!(ext_get(t, "t", b"k").await, None);
    assert!(scan_all(t, "t", &KeyRange::All).await.is_empty());
    assert!(begin(t).await.ext_tables().await.unwrap().is_empty());
    commit(writer).await;
    assert_eq!(ext_get(t, "t", b"k").await, Some(b"v".to_vec()));
}

/// Extension records, a file and a lock written in one transaction commit
/// together; rolled back, dropped or failed, none of them stays.
pub async fn ext_atomic_with_files_and_locks(t: &mut dyn TestStore) {
    let file = sample_file(b"fh-ext", "s");
    let lock = sample_lock(&file.handle, "o", "c", "s");
    for finish in ["rollback", "drop", "error"] {
        let store = t.store();
        let (f, l) = (&file, &lock);
        let outcome: Result<()> = store
            .transact(|tx| {
                Box::pin(async move {
                    tx.ext_put("dirents", b"/a", b"fh-ext").await?;
                    tx.put_file(f).await?;
                    tx.put_lock(l).await?;
                    Err(Error::Invalid("the host's write failed".into()))
                })
            })
            .await;
        if finish == "error" {
            assert!(matches!(outcome, Err(Error::Invalid(_))));
        } else {
            let mut tx = begin(t).await;
            tx.ext_put("dirents", b"/a", b"fh-ext").await.unwrap();
            tx.put_file(&file).await.unwrap();
            tx.put_lock(&lock).await.unwrap();
            if finish == "rollback" {
                tx.rollback().await.unwrap();
            } else {
                drop(tx);
            }
        }
        assert_eq!(ext_get(t, "dirents", b"/a").await, None, "after {finish}");
        assert_eq!(read_file(t, &file.handle).await, None, "after {finish}");
        assert_eq!(read_lock(t, lock.id).await, None, "after {finish}");
    }
    let mut tx = begin(t).await;
    tx.ext_put("dirents", b"/a", b"fh-ext").await.unwrap();
    tx.put_file(&file).await.unwrap();
    tx.put_lock(&lock).await.unwrap();
    assert!(tx.ext_delete("dirents", b"/a").await.unwrap());
    tx.ext_put("dirents", b"/b", b"fh-ext").await.unwrap();
    commit(tx).await;
    assert_eq!(ext_get(t, "dirents", b"/b").await, Some(b"fh-ext".to_vec()));
    assert_eq!(ext_get(t, "dirents", b"/a").await, None);
    assert_eq!(read_file(t, &file.handle).await, Some(file.clone()));
    assert_eq!(read_lock(t, lock.id).await, Some(lock.clone()));
}

async fn put_then_commit(mut tx: Box<dyn MetadataTransaction>, key: &[u8]) -> Result<()> {
    tx.ext_put("dirents", key, b"new").await?;
    tx.commit().await
}

/// Two transactions scan the same (empty) range and each inserts into it:
/// a phantom. Exactly one commits; the other gets a retryable conflict.
pub async fn ext_phantom_in_scanned_range_conflicts(t: &mut dyn TestStore) {
    ext_seed(t, "dirents", &[rec(b"other/x", b"")]).await;
    let range = KeyRange::Prefix(b"dir7/".to_vec());
    let mut first = begin(t).await;
    let mut second = begin(t).await;
    assert!(
        first
            .ext_scan("dirents", &range, None, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        second
            .ext_scan("dirents", &range, None, 100)
            .await
            .unwrap()
            .is_empty()
    );
    let a = put_then_commit(first, b"dir7/a").await;
    let b = put_then_commit(second, b"dir7/b").await;
    assert_eq!(
        [&a, &b].iter().filter(|o| o.is_ok()).count(),
        1,
        "exactly one commits: {a:?} / {b:?}"
    );
    assert_conflict(
        "the second inserter into a scanned range",
        if a.is_ok() { &b } else { &a },
    );
    assert_eq!(scan_all(t, "dirents", &range).await.len(), 1);
}

/// Two read-modify-writes of one key: the second committer conflicts.
pub async fn ext_lost_update_is_a_conflict(t: &mut dyn TestStore) {
    ext_seed(t, "quota", &[rec(b"uid1000", &0u64.to_be_bytes())]).await;
    let mut first = begin(t).await;
    let mut second = begin(t).await;
    for tx in [&mut first, &mut second] {
        assert!(tx.ext_get("quota", b"uid1000").await.unwrap().is_some());
    }
    let write = |mut tx: Box<dyn MetadataTransaction>, v: u64| async move {
        tx.ext_put("quota", b"uid1000", &v.to_be_bytes()).await?;
        tx.commit().await
    };
    let a = write(first, 1).await;
    let b = write(second, 2).await;
    assert_eq!(
        [&a, &b].iter().filter(|o| o.is_ok()).count(),
        1,
        "{a:?} / {b:?}"
    );
    assert_conflict("the second writer", if a.is_ok() { &b } else { &a });
}

/// Keys of every byte value and of 1024 bytes, empty and 1 MiB values
/// round-trip exactly.
pub async fn ext_extremes_round_trip(t: &mut dyn TestStore) {
    let every_byte: Vec<u8> = (0..=255u8).collect();
    let longest = vec![0xffu8; MAX_EXT_KEY_LEN];
    let nul = vec![0u8];
    let big: Vec<u8> = (0..MAX_EXT_VALUE_LEN)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let records = vec![
        rec(&nul, b""),
        rec(&every_byte, &every_byte),
        rec(&longest, &big),
        rec("ключ/ü".as_bytes(), "значение".as_bytes()),
    ];
    ext_seed(t, "t", &records).await;
    for r in &records {
        assert_eq!(ext_get(t, "t", &r.key).await.as_ref(), Some(&r.value));
    }
    let mut sorted = records.clone();
    sorted.sort();
    assert_eq!(scan_all(t, "t", &KeyRange::All).await, sorted);
}

/// Every limit is `Invalid`, checked before anything is written: the
/// transaction stays usable and commits what it did right.
pub async fn ext_validation(t: &mut dyn TestStore) {
    let mut tx = begin(t).await;
    let long_table = "t".repeat(65);
    for table in [
        "",
        long_table.as_str(),
        "Inodes",
        "in-odes",
        "in odes",
        "a\0",
        "ü",
    ] {
        assert_invalid(
            &format!("table {table:?}"),
            tx.ext_put(table, b"k", b"v").await,
        );
        assert_invalid("get", tx.ext_get(table, b"k").await);
        assert_invalid("delete", tx.ext_delete(table, b"k").await);
        assert_invalid("scan", tx.ext_scan(table, &KeyRange::All, None, 1).await);
    }
    let longest_table = "a_9".repeat(21) + "z";
    assert_eq!(longest_table.len(), 64);
    tx.ext_put(&longest_table, b"k", b"v").await.unwrap();
    let too_long = vec![1u8; MAX_EXT_KEY_LEN + 1];
    assert_invalid("empty key", tx.ext_put("t", b"", b"v").await);
    assert_invalid("1025-byte key", tx.ext_put("t", &too_long, b"v").await);
    assert_invalid("get 1025-byte key", tx.ext_get("t", &too_long).await);
    assert_invalid("delete empty key", tx.ext_delete("t", b"").await);
    assert_invalid(
        "value over 1 MiB",
        tx.ext_put("t", b"k", &vec![0; MAX_EXT_VALUE_LEN + 1]).await,
    );
    assert_invalid("limit 0", tx.ext_scan("t", &KeyRange::All, None, 0).await);
    assert_invalid(
        "empty cursor",
        tx.ext_scan("t", &KeyRange::All, Some(&b""[..]), 1).await,
    );
    assert_invalid(
        "long prefix",
        tx.ext_scan("t", &KeyRange::Prefix(too_long.clone()), None, 1)
            .await,
    );
    let backwards = KeyRange::Between {
        start: vec![2],
        end: Some(vec![1]),
    };
    assert_invalid(
        "start above end",
        tx.ext_scan("t", &backwards, None, 1).await,
    );
    tx.ext_put("t", b"k", b"still usable").await.unwrap();
    commit(tx).await;
    assert_eq!(ext_get(t, "t", b"k").await, Some(b"still usable".to_vec()));
    assert_eq!(ext_get(t, &longest_table, b"k").await, Some(b"v".to_vec()));
    let tables = begin(t).await.ext_tables().await.unwrap();
    assert_eq!(
        tables,
        [longest_table.as_str(), "t"],
        "nothing else was written"
    );
}

/// `ext_tables` lists the tables holding records, in name order; a table
/// whose last record is deleted is gone.
pub async fn ext_tables_lists_non_empty_tables(t: &mut dyn TestStore) {
    assert!(begin(t).await.ext_tables().await.unwrap().is_empty());
    ext_seed(t, "quotas", &[rec(b"a", b"")]).await;
    ext_seed(t, "inodes", &[rec(b"1", b""), rec(b"2", b"")]).await;
    ext_seed(t, "inodes2", &[rec(b"1", b"")]).await;
    assert_eq!(
        begin(t).await.ext_tables().await.unwrap(),
        ["inodes", "inodes2", "quotas"]
    );
    let mut tx = begin(t).await;
    assert!(tx.ext_delete("quotas", b"a").await.unwrap());
    assert_eq!(tx.ext_tables().await.unwrap(), ["inodes", "inodes2"]);
    commit(tx).await;
    assert_eq!(
        begin(t).await.ext_tables().await.unwrap(),
        ["inodes", "inodes2"]
    );
}

/// Extension records survive closing and reopening a persistent store;
/// rolled-back ones stay out.
pub async fn ext_records_survive_reopen(t: &mut dyn TestStore) {
    let records = vec![
        rec(&[0, 1], b"one"),
        rec(&[0, 1, 2], &[0xff; 300]),
        rec(&[9], b""),
    ];
    ext_seed(t, "dirents", &records).await;
    let mut tx = begin(t).await;
    tx.ext_put("dirents", &[5], b"rolled back").await.unwrap();
    tx.rollback().await.unwrap();
    t.reopen().await.expect("reopen");
    assert_eq!(scan_all(t, "dirents", &KeyRange::All).await, records);
    assert_eq!(
        scan_all(t, "dirents", &KeyRange::Prefix(vec![0, 1])).await,
        records[..2]
    );
    assert_eq!(begin(t).await.ext_tables().await.unwrap(), ["dirents"]);
}
