//! Opens (`OpenStore`, `open_file`, `close_open`): every-field round trip,
//! the store cases of DittoFS's durable-handle store (put/get, overwrite,
//! delete, lookups by file / create GUID / app instance id, list by share),
//! the share-mode decision table, legacy reservations, close, bad input.

use uuid::Uuid;

use super::TestStore;
use super::sample::{T0, assert_invalid, begin, commit, handle, sample_lock};
use crate::{
    DurableState, Error, LOCK_SEQUENCE_ENTRIES, MetadataStoreExt, Open, OpenProtocol, OpenQuery,
    OpenRecord, OpenRequest, ShareConflict, ShareMask, ShareReservation, Timestamp,
};

/// An ordinary connected SMB open of `file` by `client`, opened at the suite's fixed time.
pub fn sample_open(file: &[u8], client: &str, access: ShareMask, deny: ShareMask) -> OpenRecord {
    OpenRecord {
        protocol: OpenProtocol::Smb,
        opened_at: T0,
        ..OpenRecord::new(
            handle(file),
            "share",
            client,
            &format!("owner-of-{client}"),
            access,
            deny,
        )
    }
}

/// An open with every field away from its default (and integers at their extremes).
pub fn full_open() -> OpenRecord {
    OpenRecord {
        id: Uuid::from_u128(u128::MAX - 7),
        file: handle(&[0xff; 128]),
        share_name: "share: ü/ x".into(),
        client_id: "client:1/ ü".into(),
        owner_id: "owner 10".into(),
        access: ShareMask::ALL,
        deny: ShareMask::DELETE,
        protocol: OpenProtocol::Smb,
        durable: DurableState::Durable {
            timeout_ms: u32::MAX,
        },
        create_guid: Some(Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0)),
        app_instance_id: Some(Uuid::from_u128(u128::MAX)),
        lease_key: Some([0xa5; 16]),
        disconnected_at: Some(Timestamp::from_micros(253_402_300_799_999_999)),
        lock_sequences: (0..LOCK_SEQUENCE_ENTRIES as u8).map(|i| i % 0x20).collect(),
        server_epoch: u64::MAX,
        opened_at: Timestamp::from_micros(-62_135_596_800_000_000),
    }
}

pub(super) async fn put_opens(t: &dyn TestStore, opens: &[OpenRecord]) {
    let mut tx = begin(t).await;
    for o in opens {
        tx.put_open(o).await.expect("put_open");
    }
    commit(tx).await;
}

pub(super) async fn read_open(t: &dyn TestStore, id: Uuid) -> Option<OpenRecord> {
    begin(t).await.get_open(id).await.expect("get_open")
}

pub(super) async fn opens(t: &dyn TestStore, query: &OpenQuery) -> Vec<OpenRecord> {
    begin(t).await.list_opens(query).await.expect("list_opens")
}

fn ids(opens: &[OpenRecord]) -> Vec<Uuid> {
    opens.iter().map(|o| o.id).collect()
}

fn sorted(mut v: Vec<Uuid>) -> Vec<Uuid> {
    v.sort();
    v
}

/// An open with every field away from its default reads back equal, by
/// get, by query and by page; so do the persistent and NFS variants.
pub async fn open_records_round_trip_every_field(t: &mut dyn TestStore) {
    let full = full_open();
    let persistent = OpenRecord {
        id: Uuid::from_u128(1),
        durable: DurableState::Persistent,
        protocol: OpenProtocol::Nlm,
        lock_sequences: vec![0x1f; LOCK_SEQUENCE_ENTRIES],
        ..full_open()
    };
    put_opens(t, &[full.clone(), persistent.clone()]).await;
    assert_eq!(
        read_open(t, full.id).await.as_ref(),
        Some(&full),
        "get_open"
    );
    assert_eq!(read_open(t, persistent.id).await, Some(persistent.clone()));
    let by_guid = OpenQuery {
        create_guid: full.create_guid,
        ..OpenQuery::default()
    };
    assert_eq!(opens(t, &by_guid).await, [persistent.clone(), full.clone()]);
    let page = begin(t)
        .await
        .list_opens_page(None, 10)
        .await
        .expect("page");
    assert_eq!(page, [persistent, full], "list_opens_page, in id order");
}

/// DittoFS's store cases: put/get, overwrite, delete (and a missing id).
pub async fn open_store_put_get_overwrite_delete(t: &mut dyn TestStore) {
    let open = sample_open(b"f1", "c1", ShareMask::READ, ShareMask::NONE);
    assert_eq!(read_open(t, open.id).await, None);
    put_opens(t, std::slice::from_ref(&open)).await;
    assert_eq!(read_open(t, open.id).await, Some(open.clone()));
    let moved = OpenRecord {
        file: handle(b"f2"),
        client_id: "c2".into(),
        access: ShareMask::WRITE,
        ..open.clone()
    };
    put_opens(t, std::slice::from_ref(&moved)).await;
    assert_eq!(
        read_open(t, open.id).await,
        Some(moved.clone()),
        "overwrite"
    );
    assert!(
        opens(t, &OpenQuery::by_file(&handle(b"f1")))
            .await
            .is_empty(),
        "an overwrite leaves no stale file index entry"
    );
    let mut tx = begin(t).await;
    assert!(tx.delete_open(open.id).await.expect("delete"));
    assert!(!tx.delete_open(open.id).await.expect("delete again"));
    commit(tx).await;
    assert_eq!(read_open(t, open.id).await, None);
    assert!(
        opens(t, &OpenQuery::by_file(&handle(b"f2")))
            .await
            .is_empty()
    );
}

/// Lookups by file, create GUID, app instance id, client, share and
/// disconnect time each find exactly their opens (prefix ids stay apart).
pub async fn open_queries_find_exactly_their_opens(t: &mut dyn TestStore) {
    let guid = Uuid::new_v4();
    let app = Uuid::new_v4();
    let a = OpenRecord {
        create_guid: Some(guid),
        share_name: "share1".into(),
        ..sample_open(b"f", "client1", ShareMask::READ, ShareMask::NONE)
    };
    let b = OpenRecord {
        app_instance_id: Some(app),
        share_name: "share10".into(),
        disconnected_at: Some(T0),
        durable: DurableState::Persistent,
        ..sample_open(b"f", "client10", ShareMask::READ, ShareMask::NONE)
    };
    let c = OpenRecord {
        app_instance_id: Some(app),
        share_name: "share1".into(),
        ..sample_open(b"g", "client1", ShareMask::READ, ShareMask::NONE)
    };
    put_opens(t, &[a.clone(), b.clone(), c.clone()]).await;
    let cases: [(&str, OpenQuery, Vec<Uuid>); 7] = [
        (
            "by file",
            OpenQuery::by_file(&handle(b"f")),
            vec![a.id, b.id],
        ),
        (
            "by create guid",
            OpenQuery {
                create_guid: Some(guid),
                ..Default::default()
            },
            vec![a.id],
        ),
        (
            "by app instance",
            OpenQuery {
                app_instance_id: Some(app),
                ..Default::default()
            },
            vec![b.id, c.id],
        ),
        (
            "by client",
            OpenQuery {
                client_id: Some("client1".into()),
                ..Default::default()
            },
            vec![a.id, c.id],
        ),
        (
            "by share",
            OpenQuery {
                share_name: Some("share1".into()),
                ..Default::default()
            },
            vec![a.id, c.id],
        ),
        (
            "disconnected before",
            OpenQuery {
                disconnected_before: Some(Timestamp::from_micros(T0.as_micros() + 1)),
                ..Default::default()
            },
            vec![b.id],
        ),
        (
            "anded",
            OpenQuery {
                app_instance_id: Some(app),
                file: Some(handle(b"g")),
                ..Default::default()
            },
            vec![c.id],
        ),
    ];
    for (what, query, expected) in cases {
        assert_eq!(ids(&opens(t, &query).await), sorted(expected), "{what}");
    }
    let none = OpenQuery {
        disconnected_before: Some(T0),
        ..Default::default()
    };
    assert!(opens(t, &none).await.is_empty(), "before is exclusive");
}

/// Runs `open_file` for `open` in its own committed transaction.
pub(super) async fn request_open(t: &dyn TestStore, open: &OpenRecord) -> Open {
    let request = OpenRequest {
        open: open.clone(),
        at: T0,
    };
    let request = &request;
    t.store()
        .transact(|tx| Box::pin(async move { crate::open_file(tx, request).await }))
        .await
        .expect("open_file")
}

/// The share-mode decision table of `fsmeta::open`'s docs, case by case:
/// each row opens `first`, then asks for `second`.
pub async fn share_mode_decision_table(t: &mut dyn TestStore) {
    use ShareMask as M;
    let (r, w, d, n, rw) = (M::READ, M::WRITE, M::DELETE, M::NONE, M::READ_WRITE);
    // (first access, first deny, second access, second deny, same client+owner, protocol, granted)
    let rows: &[(M, M, M, M, bool, OpenProtocol, bool)] = &[
        (r, n, r, n, false, OpenProtocol::Smb, true),
        (r, w, w, n, false, OpenProtocol::Smb, false),
        (w, n, r, w, false, OpenProtocol::Smb, false),
        (r, w, r, w, false, OpenProtocol::Smb, true),
        (d, n, r, d, false, OpenProtocol::Smb, false),
        (r, d, d, n, false, OpenProtocol::Smb, false),
        (rw, rw, n, rw, false, OpenProtocol::Smb, true),
        (n, M::ALL, rw, n, false, OpenProtocol::Smb, true),
        (r, w, w, n, true, OpenProtocol::Smb, false),
        (r, w, w, n, true, OpenProtocol::Nfs4, true),
        (r, w, w, n, false, OpenProtocol::Nfs4, false),
        (rw, r, r, n, false, OpenProtocol::Nfs4, false),
    ];
    for (i, &(a1, d1, a2, d2, same, protocol, granted)) in rows.iter().enumerate() {
        let file = format!("table-{i}");
        let first = OpenRecord {
            protocol,
            ..sample_open(file.as_bytes(), "c1", a1, d1)
        };
        let second = OpenRecord {
            protocol,
            ..sample_open(file.as_bytes(), if same { "c1" } else { "c2" }, a2, d2)
        };
        assert!(
            matches!(request_open(t, &first).await, Open::Granted { .. }),
            "row {i}: first"
        );
        let outcome = request_open(t, &second).await;
        match (&outcome, granted) {
            (Open::Granted { .. }, true) => {}
            (Open::Denied { conflicts, .. }, false) => {
                assert_eq!(conflicts, &[ShareConflict::Open(first.clone())], "row {i}");
                assert_eq!(
                    read_open(t, second.id).await,
                    None,
                    "row {i}: nothing written"
                );
            }
            _ => panic!("row {i}: expected granted = {granted}, got {outcome:?}"),
        }
    }
}

/// A lock record's legacy `share_reservation` denies an open of another
/// owner that wants the denied right; its own owner's open passes.
pub async fn legacy_share_reservations_deny_opens(t: &mut dyn TestStore) {
    let file = handle(b"legacy");
    let lock = crate::PersistedLock {
        share_reservation: ShareReservation::DenyWrite,
        ..sample_lock(&file, "o1", "c1", "share")
    };
    super::sample::seed(t, &[], std::slice::from_ref(&lock)).await;
    let writer = sample_open(b"legacy", "c2", ShareMask::WRITE, ShareMask::NONE);
    match request_open(t, &writer).await {
        Open::Denied { conflicts, .. } => {
            assert_eq!(conflicts, [ShareConflict::Reservation(lock.clone())]);
        }
        other => panic!("DenyWrite must deny a writer: {other:?}"),
    }
    let reader = sample_open(b"legacy", "c2", ShareMask::READ, ShareMask::NONE);
    assert!(matches!(
        request_open(t, &reader).await,
        Open::Granted { .. }
    ));
    let own = OpenRecord {
        owner_id: "o1".into(),
        ..sample_open(b"legacy", "c1", ShareMask::WRITE, ShareMask::NONE)
    };
    assert!(
        matches!(request_open(t, &own).await, Open::Granted { .. }),
        "own owner"
    );
}

/// `close_open` removes the open and its owner's locks on the file (others
/// stay); closing again is `OpenStateNotFound`.
pub async fn close_open_removes_open_and_its_locks(t: &mut dyn TestStore) {
    let open = sample_open(b"closing", "c1", ShareMask::READ, ShareMask::NONE);
    let own = sample_lock(&open.file, &open.owner_id, "c1", "share");
    let other = sample_lock(&open.file, "someone", "c1", "share");
    super::sample::seed(t, &[], &[own.clone(), other.clone()]).await;
    put_opens(t, std::slice::from_ref(&open)).await;
    let id = open.id;
    let store = t.store();
    let closed = store
        .transact(|tx| Box::pin(async move { crate::close_open(tx, id).await }))
        .await
        .expect("close_open");
    assert_eq!(closed, open);
    assert_eq!(read_open(t, id).await, None);
    assert_eq!(
        super::sample::read_lock(t, own.id).await,
        None,
        "the open's lock"
    );
    assert_eq!(super::sample::read_lock(t, other.id).await, Some(other));
    let again = store
        .transact(|tx| Box::pin(async move { crate::close_open(tx, id).await }))
        .await;
    assert!(
        matches!(again, Err(Error::OpenStateNotFound { kind: "open", id: i }) if i == id),
        "{again:?}"
    );
}

/// Bad opens and queries are `Invalid`, write nothing, and leave the
/// transaction usable.
pub async fn open_validation(t: &mut dyn TestStore) {
    let good = sample_open(b"v", "c", ShareMask::READ, ShareMask::NONE);
    let bad: Vec<(&str, OpenRecord)> = vec![
        (
            "empty client",
            OpenRecord {
                client_id: String::new(),
                ..good.clone()
            },
        ),
        (
            "NUL owner",
            OpenRecord {
                owner_id: "a\0b".into(),
                ..good.clone()
            },
        ),
        (
            "long share",
            OpenRecord {
                share_name: "s".repeat(256),
                ..good.clone()
            },
        ),
        (
            "63 sequences",
            OpenRecord {
                lock_sequences: vec![0; 63],
                ..good.clone()
            },
        ),
        (
            "sequence 0x20",
            OpenRecord {
                lock_sequences: vec![0x20; 64],
                ..good.clone()
            },
        ),
        (
            "disconnected in year 10000",
            OpenRecord {
                disconnected_at: Some(Timestamp::from_micros(i64::MAX)),
                ..good.clone()
            },
        ),
    ];
    let mut tx = begin(t).await;
    for (what, open) in &bad {
        assert_invalid(what, tx.put_open(open).await);
        let request = OpenRequest {
            open: open.clone(),
            at: T0,
        };
        assert_invalid(what, crate::open_file(&mut *tx, &request).await);
    }
    assert_invalid(
        "empty client filter",
        tx.list_opens(&OpenQuery {
            client_id: Some(String::new()),
            ..Default::default()
        })
        .await,
    );
    assert_invalid("page of 0", tx.list_opens_page(None, 0).await);
    assert!(ShareMask::from_bits(8).is_err() && crate::LeaseState::from_bits(2).is_err());
    assert!(DurableState::from_parts(2, 5).is_err() && DurableState::from_parts(3, 0).is_err());
    tx.put_open(&good)
        .await
        .expect("the transaction is still usable");
    commit(tx).await;
    assert_eq!(opens(t, &OpenQuery::default()).await, [good]);
}

/// Opens, leases and delegations are walked by `fsmeta::pages`, counted and
/// checked by `verify`, hashed by `digest` (a change shows) and carried by
/// `copy_store` into another backend (the digests match).
pub async fn open_states_are_carried_by_verify_digest_and_copy(t: &mut dyn TestStore) {
    use super::leases::{sample_delegation, sample_lease};
    let store = t.store();
    let empty = crate::digest(&*store).await.expect("digest");
    put_opens(t, &[full_open()]).await;
    let (lease, del) = (
        sample_lease(b"c", "c1", 1, crate::LeaseState::READ),
        sample_delegation(b"c", "c1", crate::DelegationType::Read),
    );
    let mut tx = begin(t).await;
    tx.put_lease(&lease).await.expect("put_lease");
    tx.put_delegation(&del).await.expect("put_delegation");
    commit(tx).await;
    let mut tx = begin(t).await;
    let mut walk = crate::pages::opens(1);
    let mut seen = 0;
    while let Some(page) = walk.next(&mut *tx).await.expect("page") {
        seen += page.len();
    }
    assert_eq!(seen, 1, "pages::opens");
    drop(tx);
    let report = store.verify().await.expect("verify");
    assert!(report.is_healthy(), "{report:?}");
    assert_eq!(report.open_states, 3, "verify counts them");
    let before = crate::digest(&*store).await.expect("digest");
    assert_eq!(before.open_states, 3);
    assert_ne!(before.sha256, empty.sha256);
    let copy = crate::MemoryStore::new();
    let options = crate::CopyOptions::default();
    let report = crate::copy_store(&*store, &copy, &options, |_| {})
        .await
        .expect("copy_store");
    assert!(report.matches(), "{report:?}");
    assert_eq!(report.open_states, 3);
    let id = lease.id;
    store
        .transact(|tx| {
            Box::pin(async move {
                let mut l = tx.get_lease(id).await?.expect("lease");
                l.lease_epoch += 1;
                tx.put_lease(&l).await
            })
        })
        .await
        .expect("change");
    assert_ne!(
        crate::digest(&*store).await.expect("digest").sha256,
        before.sha256
    );
}
