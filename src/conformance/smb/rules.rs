//! Windows ranges near 2^64, cross-protocol conflicts, `check_io` and the
//! flavour's round trip.

use super::*;

/// A Windows range may end at byte 2^64 − 1 but not past it
/// (`STATUS_INVALID_LOCK_RANGE`); POSIX ranges keep saturating. Checked by
/// `acquire_lock`, `test_lock` and `put_lock` before anything is written.
pub async fn windows_ranges_near_2_pow_64(t: &mut dyn TestStore) {
    use LockType::*;
    let f = handle(b"edge");
    let max = u64::MAX;
    for (offset, length, valid) in [
        (max, 0, true),
        (max, 1, true),
        (0, max, true),
        (1, max - 1, true),
        (1 << 63, 1 << 63, true),
        (1, max, true),
        (max, 2, false),
        (2, max, false),
        (max, max, false),
        ((1 << 63) + 1, 1 << 63, false),
    ] {
        let req = win(&f, "edge", Exclusive, offset, length);
        if valid {
            assert_eq!(
                acquire(t, &req).await,
                Acquire::Granted,
                "{offset}/{length}"
            );
            assert_eq!(
                unlock(t, &f, "edge", offset, length).await,
                Unlock::Unlocked { id: req.id }
            );
        } else {
            assert_invalid("acquire_lock", try_acquire(t, &req).await);
            let store = t.store();
            let r = &req;
            assert_invalid(
                "test_lock",
                store
                    .transact(|tx| Box::pin(async move { crate::test_lock(tx, r).await }))
                    .await,
            );
            let mut tx = begin(t).await;
            assert_invalid("put_lock", tx.put_lock(&req).await);
            drop(tx);
            let posix_same = PersistedLock {
                flavor: LockFlavor::Posix,
                ..req.clone()
            };
            assert_eq!(
                acquire(t, &posix_same).await,
                Acquire::Granted,
                "POSIX saturates"
            );
            let mut tx = begin(t).await;
            tx.delete_lock(posix_same.id).await.expect("delete");
            commit(tx).await;
        }
    }
    assert!(all_locks(t, &LockQuery::by_file(&f)).await.is_empty());
    // max/1 (the last byte) conflicts with another open's lock to 2^64.
    assert!(granted(t, &win(&f, "a", Exclusive, max, 1)).await);
    assert!(!granted(t, &win(&f, "b", Shared, 1 << 63, 1 << 63)).await);
    assert!(
        !granted(t, &request(&f, "c", Shared, max, 0)).await,
        "POSIX to EOF holds the last byte"
    );
    assert!(
        granted(t, &win(&f, "b", Exclusive, max, 0)).await,
        "a zero-byte lock at the last byte"
    );
}

/// A Windows and a POSIX lock on one file conflict when their ranges (each
/// by its own flavour's meaning) overlap, one is exclusive and the owners
/// differ, in both directions.
pub async fn cross_protocol_locks_conflict_both_directions(t: &mut dyn TestStore) {
    use LockType::*;
    // POSIX held, Windows asks.
    let f = handle(b"x-posix-first");
    let nfs = request(&f, "nfs", Exclusive, 100, 0); // 100 to EOF
    assert_eq!(acquire(t, &nfs).await, Acquire::Granted);
    match acquire(t, &win(&f, "h", Shared, 1 << 40, 1)).await {
        Acquire::Denied { conflicts } => assert_eq!(conflicts, vec![nfs.clone()]),
        other => panic!("a Windows lock inside a POSIX lock to EOF: {other:?}"),
    }
    assert!(
        granted(t, &win(&f, "h", Exclusive, 0, 100)).await,
        "bytes 0..=99 are free"
    );
    assert!(
        granted(t, &win(&f, "h", Exclusive, 100, 0)).await,
        "zero-byte at the POSIX lock's first byte"
    );
    assert!(
        !granted(t, &win(&f, "h", Exclusive, 101, 0)).await,
        "zero-byte strictly inside"
    );
    // Windows held, POSIX asks.
    let g = handle(b"x-windows-first");
    let smb = win(&g, "h", Exclusive, 100, 10);
    assert_eq!(acquire(t, &smb).await, Acquire::Granted);
    match acquire(t, &request(&g, "nfs", Shared, 0, 0)).await {
        Acquire::Denied { conflicts } => assert_eq!(conflicts, vec![smb.clone()]),
        other => panic!("a POSIX lock to EOF over a Windows lock: {other:?}"),
    }
    assert!(!granted(t, &request(&g, "nfs", Exclusive, 109, 1)).await);
    assert!(
        granted(t, &request(&g, "nfs", Exclusive, 110, 0)).await,
        "after it"
    );
    assert!(
        granted(t, &request(&g, "nfs2", Exclusive, 0, 100)).await,
        "before it"
    );
    // Shared with shared never conflicts across protocols.
    let h = handle(b"x-shared");
    assert!(granted(t, &win(&h, "h", Shared, 0, 10)).await);
    assert!(granted(t, &request(&h, "nfs", Shared, 0, 0)).await);
    assert!(!granted(t, &win(&h, "h2", Exclusive, 5, 1)).await);
    assert!(!granted(t, &request(&h, "nfs2", Exclusive, 5, 1)).await);
    // A Windows zero-byte exclusive lock is seen by POSIX requests that strictly contain it.
    let z = handle(b"x-zero");
    assert!(granted(t, &win(&z, "h", Exclusive, 50, 0)).await);
    assert!(!granted(t, &request(&z, "nfs", Shared, 40, 20)).await);
    assert!(
        granted(t, &request(&z, "nfs", Shared, 50, 20)).await,
        "from its offset: no overlap"
    );
    // test_lock decides the same across protocols.
    let store = t.store();
    let probe = &request(&g, "nfs3", Shared, 105, 1);
    let answer = store
        .transact(|tx| Box::pin(async move { crate::test_lock(tx, probe).await }))
        .await
        .expect("test_lock");
    assert_eq!(
        answer,
        Acquire::Denied {
            conflicts: vec![smb.clone()]
        }
    );
}

/// `check_io`: another owner's exclusive lock blocks reads and writes, any
/// shared lock (the caller's own included) blocks writes, the caller's own
/// exclusive lock blocks nothing, a zero-byte lock blocks nothing, a
/// zero-length I/O touches nothing, and POSIX locks count (by their
/// meaning: length 0 to EOF).
pub async fn check_io_follows_smb_rules(t: &mut dyn TestStore) {
    use LockType::*;
    let f = handle(b"io");
    let x = win(&f, "h", Exclusive, 0, 100);
    let s = win(&f, "h", Shared, 200, 100);
    assert_eq!(acquire(t, &x).await, Acquire::Granted);
    assert_eq!(acquire(t, &s).await, Acquire::Granted);
    assert!(io(t, &f, "h", 0, 100, true).await, "own exclusive: write");
    assert!(io(t, &f, "h", 50, 10, false).await, "own exclusive: read");
    assert_eq!(
        io_as(t, &f, &open_of("h2"), 99, 2, false).await,
        Io::Conflict { lock: x.clone() },
        "another open's exclusive lock blocks a read"
    );
    assert!(!io(t, &f, "h2", 0, 1, true).await);
    assert!(io(t, &f, "h2", 100, 100, true).await, "between the locks");
    assert!(
        io(t, &f, "h2", 250, 10, false).await,
        "a shared lock lets others read"
    );
    assert_eq!(
        io_as(t, &f, &open_of("h2"), 299, 1, true).await,
        Io::Conflict { lock: s.clone() }
    );
    assert!(
        !io(t, &f, "h", 250, 1, true).await,
        "a shared lock blocks its own open's write"
    );
    assert!(
        io(t, &f, "h2", 50, 0, true).await,
        "a zero-length I/O touches nothing"
    );
    // Zero-byte locks block nothing.
    let z = handle(b"io-zero");
    assert!(granted(t, &win(&z, "h", Exclusive, 5, 0)).await);
    assert!(granted(t, &win(&z, "h", Shared, 7, 0)).await);
    for offset in [0, 4, 5, 6, 7] {
        assert!(
            io(t, &z, "h2", offset, 10, true).await,
            "zero-byte locks at {offset}"
        );
    }
    // POSIX locks are seen by an SMB server's I/O check, by their meaning.
    let p = handle(b"io-posix");
    let nfs = request(&p, "nfs", Exclusive, 1000, 0);
    assert_eq!(acquire(t, &nfs).await, Acquire::Granted);
    assert!(io(t, &p, "h", 0, 1000, true).await);
    assert_eq!(
        io_as(t, &p, &open_of("h"), u64::MAX, 1, false).await,
        Io::Conflict { lock: nfs.clone() }
    );
    assert!(
        matches!(io_as(t, &p, &nfs.owner(), 5000, 1, true).await, Io::Allowed),
        "its own owner"
    );
    // An I/O whose end passes 2^64 stops at the last byte.
    assert!(!io(t, &p, "h", u64::MAX - 1, u64::MAX, false).await);
    // A bad owner is Invalid.
    let mut tx = begin(t).await;
    assert_invalid(
        "check_io with an empty owner",
        crate::check_io(&mut *tx, &p, &open_of(""), ByteRange::new(0, 1), false).await,
    );
}

/// The flavour round-trips with every other field away from its default,
/// beside POSIX records, through get, list and overwrite.
pub async fn windows_flavor_round_trips(t: &mut dyn TestStore) {
    let f = handle(b"\x00rt\xff");
    let w = PersistedLock {
        id: Uuid::from_u128(u128::MAX - 7),
        share_name: "share/ü".into(),
        file_id: f.clone(),
        owner_id: "open:0xffffffffffffffff".into(),
        client_id: "client-guid-1".into(),
        lock_type: LockType::Shared,
        offset: u64::MAX,
        length: 1,
        share_reservation: ShareReservation::DenyWrite,
        acquired_at: Timestamp::MAX_VALID,
        server_epoch: u64::MAX,
        flavor: LockFlavor::Windows,
    };
    let zero = PersistedLock {
        id: Uuid::from_u128(3),
        offset: 0,
        length: 0,
        share_reservation: ShareReservation::None,
        ..w.clone()
    };
    let p = PersistedLock {
        id: Uuid::from_u128(5),
        flavor: LockFlavor::Posix,
        offset: 7,
        length: 0,
        ..w.clone()
    };
    let mut tx = begin(t).await;
    for l in [&w, &zero, &p] {
        tx.put_lock(l).await.expect("put_lock");
    }
    commit(tx).await;
    let mut tx = begin(t).await;
    assert_eq!(tx.get_lock(w.id).await.expect("get").as_ref(), Some(&w));
    assert_eq!(
        tx.get_lock(zero.id).await.expect("get").as_ref(),
        Some(&zero)
    );
    assert_eq!(tx.get_lock(p.id).await.expect("get").as_ref(), Some(&p));
    assert_eq!(
        tx.list_locks(&LockQuery::by_file(&f)).await.expect("list"),
        by_id(vec![w.clone(), zero.clone(), p.clone()])
    );
    drop(tx);
    let before = crate::digest(&*t.store()).await.expect("digest");
    // Overwriting flips the flavour both ways.
    let mut tx = begin(t).await;
    tx.put_lock(&PersistedLock {
        flavor: LockFlavor::Posix,
        ..w.clone()
    })
    .await
    .expect("put");
    tx.put_lock(&PersistedLock {
        flavor: LockFlavor::Windows,
        ..p.clone()
    })
    .await
    .expect("put");
    commit(tx).await;
    let mut tx = begin(t).await;
    assert_eq!(
        tx.get_lock(w.id).await.expect("get").map(|l| l.flavor),
        Some(LockFlavor::Posix)
    );
    assert_eq!(
        tx.get_lock(p.id).await.expect("get").map(|l| l.flavor),
        Some(LockFlavor::Windows)
    );
    drop(tx);
    let after = crate::digest(&*t.store()).await.expect("digest");
    assert_eq!(after.locks, before.locks);
    assert_ne!(after, before, "the digest covers the flavour");
}
