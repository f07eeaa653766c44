//! Leases, oplocks and delegations (`LeaseStore`, the breaks and recalls
//! `open_file` records, `ack_break`, revocation tombstones): every-field
//! round trips, queries, the break and recall tables, bad input.

use uuid::Uuid;

use super::TestStore;
use super::opens::{request_open, sample_open};
use super::sample::{T0, assert_invalid, begin, commit, handle};
use crate::{
    DelegationQuery, DelegationRecord, DelegationType, Error, LeaseQuery, LeaseRecord, LeaseState,
    MetadataStoreExt, Open, OpenRecord, ShareMask, Timestamp,
};

/// A lease of `client` on `file` with `state`, not breaking, at epoch 1.
pub fn sample_lease(file: &[u8], client: &str, key: u8, state: LeaseState) -> LeaseRecord {
    LeaseRecord {
        id: Uuid::new_v4(),
        lease_key: [key; 16],
        parent_lease_key: None,
        file: handle(file),
        share_name: "share".into(),
        client_id: client.into(),
        state,
        lease_epoch: 1,
        breaking: false,
        break_to: LeaseState::NONE,
        break_started_at: None,
        directory: false,
        oplock: false,
        server_epoch: 1,
    }
}

/// A delegation of `client` on `file`.
pub fn sample_delegation(file: &[u8], client: &str, kind: DelegationType) -> DelegationRecord {
    DelegationRecord {
        id: Uuid::new_v4(),
        file: handle(file),
        share_name: "share".into(),
        client_id: client.into(),
        kind,
        recalled: false,
        revoked: false,
        notification_mask: 0,
        server_epoch: 1,
        granted_at: T0,
    }
}

pub(super) async fn seed(
    t: &dyn TestStore,
    leases: &[LeaseRecord],
    delegations: &[DelegationRecord],
) {
    let mut tx = begin(t).await;
    for l in leases {
        tx.put_lease(l).await.expect("put_lease");
    }
    for d in delegations {
        tx.put_delegation(d).await.expect("put_delegation");
    }
    commit(tx).await;
}

async fn lease(t: &dyn TestStore, id: Uuid) -> Option<LeaseRecord> {
    begin(t).await.get_lease(id).await.expect("get_lease")
}

pub(super) async fn delegation(t: &dyn TestStore, id: Uuid) -> Option<DelegationRecord> {
    begin(t)
        .await
        .get_delegation(id)
        .await
        .expect("get_delegation")
}

/// A lease, an oplock and a delegation with every field away from its
/// default read back equal, by get, query and page.
pub async fn lease_records_round_trip_every_field(t: &mut dyn TestStore) {
    let full = LeaseRecord {
        id: Uuid::from_u128(u128::MAX),
        lease_key: [0xff; 16],
        parent_lease_key: Some([0x01; 16]),
        file: handle(&[0; 128]),
        share_name: "s: ü/".into(),
        client_id: "client 1/ü".into(),
        state: LeaseState::ALL,
        lease_epoch: u16::MAX,
        breaking: true,
        break_to: LeaseState::READ_HANDLE,
        break_started_at: Some(Timestamp::from_micros(-62_135_596_800_000_000)),
        directory: true,
        oplock: true,
        server_epoch: u64::MAX,
    };
    let del = DelegationRecord {
        id: Uuid::from_u128(u128::MAX - 1),
        file: handle(&[0xfe; 128]),
        share_name: "s: ü/".into(),
        client_id: "client 1/ü".into(),
        kind: DelegationType::Write,
        recalled: true,
        revoked: true,
        notification_mask: u32::MAX,
        server_epoch: u64::MAX,
        granted_at: Timestamp::from_micros(253_402_300_799_999_999),
    };
    seed(t, std::slice::from_ref(&full), std::slice::from_ref(&del)).await;
    assert_eq!(lease(t, full.id).await.as_ref(), Some(&full));
    assert_eq!(delegation(t, del.id).await.as_ref(), Some(&del));
    let mut tx = begin(t).await;
    let by_key = LeaseQuery {
        lease_key: Some([0xff; 16]),
        ..Default::default()
    };
    assert_eq!(
        tx.list_leases(&by_key).await.expect("list"),
        std::slice::from_ref(&full)
    );
    assert_eq!(tx.list_leases_page(None, 5).await.expect("page"), [full]);
    let revoked = DelegationQuery {
        revoked: Some(true),
        ..Default::default()
    };
    assert_eq!(
        tx.list_delegations(&revoked).await.expect("list"),
        std::slice::from_ref(&del)
    );
    assert_eq!(
        tx.list_delegations_page(None, 5).await.expect("page"),
        std::slice::from_ref(&del)
    );
    assert!(tx.delete_delegation(del.id).await.expect("delete"));
    assert!(!tx.delete_delegation(del.id).await.expect("again"));
    assert!(!tx.delete_lease(Uuid::nil()).await.expect("missing lease"));
}

/// Lease queries by file, client and key find exactly their leases; an
/// overwrite moves every index entry.
pub async fn lease_queries_find_exactly_their_leases(t: &mut dyn TestStore) {
    let a = sample_lease(b"f", "client1", 1, LeaseState::READ);
    let b = sample_lease(b"f", "client10", 2, LeaseState::READ);
    let c = sample_lease(b"g", "client1", 2, LeaseState::READ);
    seed(t, &[a.clone(), b.clone(), c.clone()], &[]).await;
    let sorted = |mut v: Vec<Uuid>| {
        v.sort();
        v
    };
    assert_eq!(
        lease_ids(
            t,
            LeaseQuery {
                file: Some(handle(b"f")),
                ..Default::default()
            }
        )
        .await,
        sorted(vec![a.id, b.id])
    );
    assert_eq!(
        lease_ids(
            t,
            LeaseQuery {
                client_id: Some("client1".into()),
                ..Default::default()
            }
        )
        .await,
        sorted(vec![a.id, c.id])
    );
    assert_eq!(
        lease_ids(
            t,
            LeaseQuery {
                lease_key: Some([2; 16]),
                ..Default::default()
            }
        )
        .await,
        sorted(vec![b.id, c.id])
    );
    let moved = LeaseRecord {
        file: handle(b"h"),
        lease_key: [3; 16],
        ..a.clone()
    };
    seed(t, std::slice::from_ref(&moved), &[]).await;
    assert!(
        lease_ids(
            t,
            LeaseQuery {
                lease_key: Some([1; 16]),
                ..Default::default()
            }
        )
        .await
        .is_empty()
    );
    assert_eq!(
        lease_ids(
            t,
            LeaseQuery {
                file: Some(handle(b"f")),
                ..Default::default()
            }
        )
        .await,
        vec![b.id]
    );
}

async fn lease_ids(t: &dyn TestStore, q: LeaseQuery) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = begin(t)
        .await
        .list_leases(&q)
        .await
        .expect("list")
        .iter()
        .map(|l| l.id)
        .collect();
    ids.sort();
    ids
}

pub(super) fn granted(outcome: Open) -> (Vec<LeaseRecord>, Vec<DelegationRecord>) {
    match outcome {
        Open::Granted {
            breaks, recalls, ..
        } => (breaks, recalls),
        other => panic!("expected a grant, got {other:?}"),
    }
}

/// A granted open breaks other clients' write caching (RWH → RH, an
/// exclusive oplock to level II), never the requester's own lease; the
/// break is stored and returned; `ack_break` ends it; a bad ack is `Invalid`.
pub async fn granted_open_records_lease_breaks(t: &mut dyn TestStore) {
    let other = sample_lease(b"lf", "c1", 1, LeaseState::ALL);
    let oplock = LeaseRecord {
        oplock: true,
        ..sample_lease(b"lf", "c3", 3, LeaseState::READ_WRITE)
    };
    let reader = sample_lease(b"lf", "c4", 4, LeaseState::READ_HANDLE);
    let own = sample_lease(b"lf", "c2", 2, LeaseState::ALL);
    seed(
        t,
        &[other.clone(), oplock.clone(), reader.clone(), own.clone()],
        &[],
    )
    .await;
    let open = OpenRecord {
        lease_key: Some([2; 16]),
        ..sample_open(b"lf", "c2", ShareMask::READ, ShareMask::NONE)
    };
    let (breaks, _) = granted(request_open(t, &open).await);
    let mut expected = vec![
        LeaseRecord {
            breaking: true,
            break_to: LeaseState::READ_HANDLE,
            break_started_at: Some(T0),
            lease_epoch: 2,
            ..other.clone()
        },
        LeaseRecord {
            breaking: true,
            break_to: LeaseState::READ,
            break_started_at: Some(T0),
            lease_epoch: 2,
            ..oplock.clone()
        },
    ];
    expected.sort_by_key(|l| l.id);
    let mut breaks = breaks;
    breaks.sort_by_key(|l| l.id);
    assert_eq!(breaks, expected, "W breaks, recorded and returned");
    assert_eq!(
        lease(t, other.id).await.as_ref(),
        Some(
            &expected
                .iter()
                .find(|l| l.id == other.id)
                .cloned()
                .expect("x")
        )
    );
    assert_eq!(
        lease(t, own.id).await,
        Some(own),
        "the own lease is untouched"
    );
    assert_eq!(lease(t, reader.id).await, Some(reader), "no W: no break");
    let id = other.id;
    let store = t.store();
    let too_much = store
        .transact(|tx| Box::pin(async move { crate::ack_break(tx, id, LeaseState::ALL).await }))
        .await;
    assert_invalid("ack above the target", too_much);
    let acked = store
        .transact(|tx| Box::pin(async move { crate::ack_break(tx, id, LeaseState::READ).await }))
        .await
        .expect("ack");
    assert_eq!(
        (
            acked.state,
            acked.breaking,
            acked.break_to,
            acked.break_started_at
        ),
        (LeaseState::READ, false, LeaseState::NONE, None)
    );
    assert_eq!(lease(t, id).await, Some(acked));
    let again = store
        .transact(|tx| Box::pin(async move { crate::ack_break(tx, id, LeaseState::READ).await }))
        .await;
    assert_invalid("ack without a break", again);
    let missing = store
        .transact(|tx| {
            Box::pin(async move { crate::ack_break(tx, Uuid::nil(), LeaseState::READ).await })
        })
        .await;
    assert!(
        matches!(missing, Err(Error::OpenStateNotFound { kind: "lease", .. })),
        "{missing:?}"
    );
}

/// A denied open breaks the handle caching of the conflicting opens' leases
/// and writes nothing of itself.
pub async fn denied_open_breaks_handle_caching(t: &mut dyn TestStore) {
    let holder = OpenRecord {
        lease_key: Some([7; 16]),
        ..sample_open(b"hf", "c1", ShareMask::READ, ShareMask::WRITE)
    };
    let held = sample_lease(b"hf", "c1", 7, LeaseState::READ_HANDLE);
    seed(t, std::slice::from_ref(&held), &[]).await;
    super::opens::put_opens(t, std::slice::from_ref(&holder)).await;
    let writer = sample_open(b"hf", "c2", ShareMask::WRITE, ShareMask::NONE);
    match request_open(t, &writer).await {
        Open::Denied { breaks, .. } => {
            let expected = LeaseRecord {
                breaking: true,
                break_to: LeaseState::READ,
                break_started_at: Some(T0),
                lease_epoch: 2,
                ..held.clone()
            };
            assert_eq!(breaks, std::slice::from_ref(&expected));
            assert_eq!(lease(t, held.id).await, Some(expected));
        }
        other => panic!("expected a denial, got {other:?}"),
    }
    assert_eq!(super::opens::read_open(t, writer.id).await, None);
}

/// Bad leases and delegations are `Invalid`, write nothing, and leave the
/// transaction usable.
pub async fn lease_validation(t: &mut dyn TestStore) {
    let good = sample_lease(b"v", "c", 1, LeaseState::READ_HANDLE);
    let bad = [
        (
            "break without start",
            LeaseRecord {
                breaking: true,
                break_to: LeaseState::READ,
                ..good.clone()
            },
        ),
        (
            "start without break",
            LeaseRecord {
                break_started_at: Some(T0),
                ..good.clone()
            },
        ),
        (
            "target not below",
            LeaseRecord {
                breaking: true,
                break_to: LeaseState::ALL,
                break_started_at: Some(T0),
                ..good.clone()
            },
        ),
        (
            "target without break",
            LeaseRecord {
                break_to: LeaseState::READ,
                ..good.clone()
            },
        ),
        (
            "empty client",
            LeaseRecord {
                client_id: String::new(),
                ..good.clone()
            },
        ),
    ];
    let mut tx = begin(t).await;
    for (what, lease) in &bad {
        assert_invalid(what, tx.put_lease(lease).await);
    }
    let del = DelegationRecord {
        share_name: String::new(),
        ..sample_delegation(b"v", "c", DelegationType::Read)
    };
    assert_invalid("empty share", tx.put_delegation(&del).await);
    assert_invalid(
        "empty client filter",
        tx.list_delegations(&DelegationQuery {
            client_id: Some(String::new()),
            ..Default::default()
        })
        .await,
    );
    assert_invalid("page of 0", tx.list_leases_page(None, 0).await);
    tx.put_lease(&good).await.expect("still usable");
    commit(tx).await;
    assert_eq!(
        begin(t)
            .await
            .list_leases(&LeaseQuery::default())
            .await
            .expect("list"),
        [good]
    );
}
