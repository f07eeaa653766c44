//! Lock queries and secondary indexes: filters are ANDed, `epoch_below`,
//! and overwrites that move a record between index entries.

use super::TestStore;
use super::sample::{all_locks, begin, by_id, commit, handle, sample_lock, seed};
use crate::{LockQuery, PersistedLock};

/// Every set filter must match; the empty query lists everything; results come in id order.
pub async fn list_locks_filters_are_anded(t: &mut dyn TestStore) {
    let (f1, f2) = (handle(b"f1"), handle(b"f2"));
    let mut locks = Vec::new();
    for file in [&f1, &f2] {
        for owner in ["o1", "o2"] {
            for client in ["c1", "c2"] {
                for share in ["s1", "s2"] {
                    locks.push(sample_lock(file, owner, client, share));
                }
            }
        }
    }
    seed(t, &[], &locks).await;
    let queries = [
        LockQuery::default(),
        LockQuery::by_file(&f1),
        LockQuery::by_owner("o2"),
        LockQuery::by_client("c1"),
        LockQuery::by_share("s2"),
        LockQuery {
            file_id: Some(f2.clone()),
            owner_id: Some("o1".into()),
            ..Default::default()
        },
        LockQuery {
            client_id: Some("c2".into()),
            share_name: Some("s1".into()),
            ..Default::default()
        },
        LockQuery {
            file_id: Some(f1.clone()),
            owner_id: Some("o2".into()),
            client_id: Some("c1".into()),
            share_name: Some("s2".into()),
            server_epoch_below: None,
            server_epoch: None,
        },
        LockQuery {
            file_id: Some(f1.clone()),
            owner_id: Some("nobody".into()),
            ..Default::default()
        },
    ];
    let mut tx = begin(t).await;
    for q in &queries {
        let expected = by_id(locks.iter().filter(|l| q.matches(l)).cloned().collect());
        assert_eq!(
            tx.list_locks(q).await.unwrap(),
            expected,
            "list_locks({q:?})"
        );
    }
}

/// `server_epoch_below` selects locks granted by earlier epochs, alone or with other filters.
pub async fn list_locks_by_epoch_below(t: &mut dyn TestStore) {
    let file = handle(b"f");
    let locks: Vec<PersistedLock> = [0, 1, 2, 3, u64::MAX]
        .into_iter()
        .map(|epoch| PersistedLock {
            server_epoch: epoch,
            ..sample_lock(&file, "o", "c", "s")
        })
        .collect();
    seed(t, &[], &locks).await;
    let mut tx = begin(t).await;
    for below in [0, 1, 3, u64::MAX] {
        let expected = by_id(
            locks
                .iter()
                .filter(|l| l.server_epoch < below)
                .cloned()
                .collect(),
        );
        let q = LockQuery::epoch_below(below);
        assert_eq!(
            tx.list_locks(&q).await.unwrap(),
            expected,
            "server_epoch_below {below}"
        );
        let q = LockQuery {
            client_id: Some("c".into()),
            ..q
        };
        assert_eq!(
            tx.list_locks(&q).await.unwrap(),
            expected,
            "client + server_epoch_below {below}"
        );
    }
    // Exact epochs (`server_epoch`), with a second lock in epoch 1 and an
    // epoch nobody holds; alone, combined with `below`, and with a client.
    let extra = PersistedLock {
        server_epoch: 1,
        ..sample_lock(&file, "o2", "c", "s")
    };
    tx.put_lock(&extra).await.unwrap();
    let mut locks = locks;
    locks.push(extra);
    for epoch in [0, 1, 2, 7, u64::MAX] {
        let expected = by_id(
            locks
                .iter()
                .filter(|l| l.server_epoch == epoch)
                .cloned()
                .collect(),
        );
        assert_eq!(
            tx.list_locks(&LockQuery::in_epoch(epoch)).await.unwrap(),
            expected,
            "server_epoch {epoch}"
        );
        let q = LockQuery {
            client_id: Some("c".into()),
            server_epoch_below: Some(2),
            ..LockQuery::in_epoch(epoch)
        };
        let both: Vec<_> = expected
            .into_iter()
            .filter(|l| l.server_epoch < 2)
            .collect();
        assert_eq!(
            tx.list_locks(&q).await.unwrap(),
            both,
            "client + server_epoch {epoch} + below 2"
        );
    }
}

/// Overwriting a lock with another file, owner, client and share leaves no stale index entry.
pub async fn overwrite_moves_index_entries(t: &mut dyn TestStore) {
    let (old_file, new_file) = (handle(b"old-file"), handle(b"new-file"));
    let before = PersistedLock {
        server_epoch: 1,
        ..sample_lock(&old_file, "old-o", "old-c", "old-s")
    };
    seed(t, &[], std::slice::from_ref(&before)).await;
    let after = PersistedLock {
        file_id: new_file.clone(),
        owner_id: "new-o".into(),
        client_id: "new-c".into(),
        share_name: "new-s".into(),
        server_epoch: 5,
        ..before.clone()
    };
    seed(t, &[], std::slice::from_ref(&after)).await;
    for q in [
        LockQuery::by_file(&old_file),
        LockQuery::by_owner("old-o"),
        LockQuery::by_client("old-c"),
        LockQuery::by_share("old-s"),
        LockQuery::epoch_below(2),
    ] {
        assert!(
            all_locks(t, &q).await.is_empty(),
            "stale index entry found by {q:?}"
        );
    }
    for q in [
        LockQuery::by_file(&new_file),
        LockQuery::by_owner("new-o"),
        LockQuery::by_client("new-c"),
        LockQuery::by_share("new-s"),
        LockQuery::epoch_below(6),
    ] {
        assert_eq!(
            all_locks(t, &q).await,
            vec![after.clone()],
            "missing index entry for {q:?}"
        );
    }
    let mut tx = begin(t).await;
    assert_eq!(
        tx.delete_locks_by_client("old-c").await.unwrap(),
        0,
        "bulk delete by the old client"
    );
    assert_eq!(
        tx.delete_locks_by_file(&old_file).await.unwrap(),
        0,
        "bulk delete by the old file"
    );
    assert_eq!(tx.delete_locks_by_client("new-c").await.unwrap(), 1);
    commit(tx).await;
    assert!(
        all_locks(t, &LockQuery::by_file(&new_file))
            .await
            .is_empty()
    );
}

/// An overwrite that changes one indexed value keeps no stale entry even when
/// the old value equals, byte for byte, another index's kept value (owner
/// `x` → `y` while the client stays `x`).
pub async fn overwrite_keeps_entries_equal_across_indexes(t: &mut dyn TestStore) {
    let file = handle(b"x");
    let first = sample_lock(&file, "x", "x", "x");
    seed(t, &[], std::slice::from_ref(&first)).await;
    let moved = PersistedLock {
        owner_id: "y".into(),
        ..first.clone()
    };
    seed(t, &[], std::slice::from_ref(&moved)).await;
    assert!(
        all_locks(t, &LockQuery::by_owner("x")).await.is_empty(),
        "stale owner entry"
    );
    assert_eq!(
        all_locks(t, &LockQuery::by_client("x")).await,
        vec![moved.clone()]
    );
    let mut tx = begin(t).await;
    tx.delete_lock(moved.id).await.unwrap();
    commit(tx).await;
    for q in [
        LockQuery::by_owner("x"),
        LockQuery::by_owner("y"),
        LockQuery::by_client("x"),
        LockQuery::by_share("x"),
        LockQuery::by_file(&file),
    ] {
        assert!(
            all_locks(t, &q).await.is_empty(),
            "an entry outlived its record: {q:?}"
        );
    }
    let report = t.store().verify().await.expect("verify");
    assert!(report.is_healthy(), "{:?}", report.problems);
}
