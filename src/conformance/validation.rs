//! Bad input is `Error::Invalid` and leaves the transaction usable: lock
//! ids, files, queries, timestamps.

use super::TestStore;
use super::sample::{
    all_locks, assert_invalid, begin, commit, handle, read_file, read_lock, sample_file,
    sample_lock, seed,
};
use crate::{FileHandle, FileMeta, LockQuery, PersistedLock, Timestamp};

/// Each rejected input is Invalid, is not written, and the transaction stays usable:
/// a valid write after it commits.
pub(super) async fn assert_rejected_then_usable(
    t: &dyn TestStore,
    bad_locks: &[(&str, PersistedLock)],
    bad_files: &[(&str, FileMeta)],
) {
    let mut tx = begin(t).await;
    for (what, lock) in bad_locks {
        assert_invalid(what, tx.put_lock(lock).await);
        assert_eq!(
            tx.get_lock(lock.id).await.unwrap(),
            None,
            "{what}: written despite Invalid"
        );
    }
    for (what, file) in bad_files {
        assert_invalid(what, tx.put_file(file).await);
        assert_eq!(
            tx.get_file(&file.handle).await.unwrap(),
            None,
            "{what}: written despite Invalid"
        );
    }
    let good = sample_lock(&handle(b"good"), "o", "c", "s");
    tx.put_lock(&good)
        .await
        .expect("the transaction is usable after Invalid");
    commit(tx).await;
    assert_eq!(all_locks(t, &LockQuery::default()).await, vec![good]);
    assert!(begin(t).await.list_files("s").await.unwrap().is_empty());
}

/// Owner, client and share ids: empty, too long or containing NUL are Invalid;
/// exactly at the limit is fine.
pub async fn lock_id_validation(t: &mut dyn TestStore) {
    let f = handle(b"f");
    let base = || sample_lock(&f, "o", "c", "s");
    let max_id = "x".repeat(crate::validate::MAX_ID_LEN);
    let long_id = "x".repeat(crate::validate::MAX_ID_LEN + 1);
    let bad = [
        (
            "empty owner",
            PersistedLock {
                owner_id: String::new(),
                ..base()
            },
        ),
        (
            "empty client",
            PersistedLock {
                client_id: String::new(),
                ..base()
            },
        ),
        (
            "empty share",
            PersistedLock {
                share_name: String::new(),
                ..base()
            },
        ),
        (
            "1025-byte owner",
            PersistedLock {
                owner_id: long_id.clone(),
                ..base()
            },
        ),
        (
            "1025-byte client",
            PersistedLock {
                client_id: long_id.clone(),
                ..base()
            },
        ),
        (
            "256-byte share",
            PersistedLock {
                share_name: "s".repeat(256),
                ..base()
            },
        ),
        (
            "NUL in owner",
            PersistedLock {
                owner_id: "o\0".into(),
                ..base()
            },
        ),
        (
            "NUL in client",
            PersistedLock {
                client_id: "\0c".into(),
                ..base()
            },
        ),
        (
            "NUL in share",
            PersistedLock {
                share_name: "s\0s".into(),
                ..base()
            },
        ),
        // 1024 bytes of a multi-byte character: the limit counts bytes, not characters.
        (
            "1026-byte owner in 2-byte chars",
            PersistedLock {
                owner_id: "é".repeat(513),
                ..base()
            },
        ),
    ];
    assert_rejected_then_usable(t, &bad, &[]).await;
    let at_limit = PersistedLock {
        owner_id: max_id.clone(),
        client_id: max_id,
        share_name: "s".repeat(255),
        ..base()
    };
    seed(t, &[], std::slice::from_ref(&at_limit)).await;
    assert_eq!(read_lock(t, at_limit.id).await, Some(at_limit));
}

/// File records: empty, over-long or NUL share names are Invalid; handles are
/// 1 to 128 bytes by construction.
pub async fn file_validation(t: &mut dyn TestStore) {
    assert_invalid("empty handle", FileHandle::new(Vec::new()));
    assert_invalid("129-byte handle", FileHandle::new(vec![7; 129]));
    let bad = [
        (
            "empty share",
            FileMeta {
                share_name: String::new(),
                ..sample_file(b"a", "s")
            },
        ),
        (
            "256-byte share",
            FileMeta {
                share_name: "s".repeat(256),
                ..sample_file(b"b", "s")
            },
        ),
        (
            "NUL in share",
            FileMeta {
                share_name: "\0".into(),
                ..sample_file(b"c", "s")
            },
        ),
    ];
    assert_rejected_then_usable(t, &[], &bad).await;
    let at_limit = FileMeta {
        share_name: "s".repeat(255),
        ..sample_file(&[0xff; 128], "s")
    };
    seed(t, std::slice::from_ref(&at_limit), &[]).await;
    assert_eq!(read_file(t, &at_limit.handle).await, Some(at_limit));
}

/// Empty strings in filters and bulk deletes are Invalid; the transaction stays usable.
pub async fn query_validation(t: &mut dyn TestStore) {
    let lock = sample_lock(&handle(b"f"), "o", "c", "s");
    seed(t, &[], std::slice::from_ref(&lock)).await;
    let mut tx = begin(t).await;
    for q in [
        LockQuery::by_owner(""),
        LockQuery::by_client(""),
        LockQuery::by_share(""),
        LockQuery {
            file_id: Some(handle(b"f")),
            client_id: Some(String::new()),
            ..Default::default()
        },
        LockQuery::by_client("c\0"),
        LockQuery::by_owner(&"o".repeat(1025)),
    ] {
        assert_invalid(&format!("list_locks({q:?})"), tx.list_locks(&q).await);
    }
    assert_invalid(
        "delete_locks_by_client(\"\")",
        tx.delete_locks_by_client("").await,
    );
    assert_invalid(
        "delete_locks_by_client(NUL)",
        tx.delete_locks_by_client("\0").await,
    );
    assert_invalid("list_files(\"\")", tx.list_files("").await);
    assert_eq!(
        tx.list_locks(&LockQuery::default()).await.unwrap(),
        vec![lock.clone()]
    );
    assert_eq!(
        tx.delete_locks_by_client("c").await.unwrap(),
        1,
        "usable after Invalid"
    );
    commit(tx).await;
    assert!(all_locks(t, &LockQuery::default()).await.is_empty());
}

/// Timestamps outside the years 1 to 9999 are Invalid on locks and files.
pub async fn timestamp_validation(t: &mut dyn TestStore) {
    let early = Timestamp::from_micros(Timestamp::MIN_VALID.as_micros() - 1);
    let late = Timestamp::from_micros(Timestamp::MAX_VALID.as_micros() + 1);
    let f = handle(b"f");
    let bad_locks = [
        (
            "acquired_at before year 1",
            PersistedLock {
                acquired_at: early,
                ..sample_lock(&f, "o", "c", "s")
            },
        ),
        (
            "acquired_at after 9999",
            PersistedLock {
                acquired_at: late,
                ..sample_lock(&f, "o", "c", "s")
            },
        ),
        (
            "acquired_at i64::MIN",
            PersistedLock {
                acquired_at: Timestamp::from_micros(i64::MIN),
                ..sample_lock(&f, "o", "c", "s")
            },
        ),
    ];
    let bad_files = [
        (
            "atime before year 1",
            FileMeta {
                atime: early,
                ..sample_file(b"a", "s")
            },
        ),
        (
            "mtime after 9999",
            FileMeta {
                mtime: late,
                ..sample_file(b"b", "s")
            },
        ),
        (
            "ctime i64::MAX",
            FileMeta {
                ctime: Timestamp::from_micros(i64::MAX),
                ..sample_file(b"c", "s")
            },
        ),
    ];
    assert_rejected_then_usable(t, &bad_locks, &bad_files).await;
}
