//! Client records (`ClientStore`): the stable storage NFSv4 and NLM servers
//! reclaim from. Round trips with every field away from its default and at
//! its extremes, the DittoFS client-recovery store cases (put/list, upsert,
//! delete, reclaim-complete flag, empty list, delete of a missing client),
//! queries by node, epoch and owner with prefix values kept apart, stale
//! index entries after an overwrite, atomicity with locks, phantoms, paging,
//! digest and verify, limits.

use super::TestStore;
use super::sample::{T0, assert_conflict, assert_invalid, begin, commit, handle, sample_lock};
use crate::{
    ClientProtocol, ClientQuery, ClientRecord, MAX_CLIENT_CALLBACK_LEN, MAX_CLIENT_OWNER_LEN,
    MAX_CLIENT_PRINCIPAL_LEN, MetadataTransaction, Timestamp,
};

/// An NFSv4 client of `node` confirmed in `epoch`, owner `owner-<id>`, renewed at `T0`.
pub fn sample_client(client_id: &str, node: &str, epoch: u64) -> ClientRecord {
    ClientRecord {
        last_renewed: T0,
        ..ClientRecord::new(
            client_id,
            node,
            ClientProtocol::Nfs4,
            format!("owner-{client_id}").into_bytes(),
            [1, 2, 3, 4, 5, 6, 7, 8],
            epoch,
        )
    }
}

/// A client with every field away from its default, at the upper limits.
fn every_field_max() -> ClientRecord {
    ClientRecord {
        client_id: "c:1/ü x".repeat(100),
        node_id: "node/ü:2".into(),
        protocol: ClientProtocol::Smb,
        owner: (0..MAX_CLIENT_OWNER_LEN).map(|i| (i % 256) as u8).collect(),
        verifier: [0xff; 8],
        principal: Some(vec![0xfe; MAX_CLIENT_PRINCIPAL_LEN]),
        epoch: u64::MAX,
        reclaim_complete: true,
        last_renewed: Timestamp::MAX_VALID,
        expired: true,
        callback: Some("ü".repeat(MAX_CLIENT_CALLBACK_LEN / 2)),
    }
}

/// A client at the lower limits (one-byte owner and principal, epoch 0, year 1).
fn every_field_min() -> ClientRecord {
    ClientRecord {
        client_id: "m".into(),
        node_id: "n".into(),
        protocol: ClientProtocol::Nlm,
        owner: vec![0],
        verifier: [0; 8],
        principal: Some(vec![0]),
        epoch: 0,
        reclaim_complete: false,
        last_renewed: Timestamp::MIN_VALID,
        expired: false,
        callback: Some("x".into()),
    }
}

/// Commits `clients` in one transaction.
pub(super) async fn seed_clients(t: &dyn TestStore, clients: &[ClientRecord]) {
    let mut tx = begin(t).await;
    for c in clients {
        tx.put_client(c).await.expect("put_client");
    }
    commit(tx).await;
}

async fn get(t: &dyn TestStore, id: &str) -> Option<ClientRecord> {
    begin(t).await.get_client(id).await.expect("get_client")
}

async fn list(t: &dyn TestStore, q: &ClientQuery) -> Vec<ClientRecord> {
    begin(t).await.list_clients(q).await.expect("list_clients")
}

fn by_id(mut clients: Vec<ClientRecord>) -> Vec<ClientRecord> {
    clients.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    clients
}

/// Every field away from its default, at both extremes, comes back equal
/// through get, each query and a page.
pub async fn clients_every_field_round_trips(t: &mut dyn TestStore) {
    let (max, min) = (every_field_max(), every_field_min());
    seed_clients(t, &[max.clone(), min.clone()]).await;
    for c in [&max, &min] {
        assert_eq!(get(t, &c.client_id).await.as_ref(), Some(c), "get");
        assert_eq!(
            list(t, &ClientQuery::by_node(&c.node_id)).await,
            std::slice::from_ref(c),
            "by node"
        );
        assert_eq!(
            list(t, &ClientQuery::by_epoch(c.epoch)).await,
            std::slice::from_ref(c),
            "by epoch"
        );
        assert_eq!(
            list(t, &ClientQuery::by_owner(&c.owner)).await,
            std::slice::from_ref(c),
            "by owner"
        );
    }
    let page = begin(t).await.list_clients_page(None, 10).await.unwrap();
    assert_eq!(page, by_id(vec![max, min]));
}

/// DittoFS client-recovery cases: an empty store lists nothing; put then
/// list returns every record in id order; the reclaim-complete flag is
/// recorded; a second put replaces the record.
pub async fn clients_put_list_upsert(t: &mut dyn TestStore) {
    assert_eq!(list(t, &ClientQuery::default()).await, [], "list empty");
    assert_eq!(get(t, "nobody").await, None);
    let clients: Vec<_> = ["client10", "client1", "client2"]
        .iter()
        .map(|id| sample_client(id, "nfs-1", 3))
        .collect();
    seed_clients(t, &clients).await;
    assert_eq!(
        list(t, &ClientQuery::default()).await,
        by_id(clients.clone())
    );
    let done = ClientRecord {
        reclaim_complete: true,
        verifier: [9; 8],
        ..clients[1].clone()
    };
    seed_clients(t, std::slice::from_ref(&done)).await;
    assert_eq!(get(t, "client1").await, Some(done.clone()), "upsert");
    assert_eq!(
        list(t, &ClientQuery::default()).await.len(),
        3,
        "an upsert leaves one record"
    );
}

/// Delete says whether the record existed; a deleted client reads as `None`.
pub async fn clients_delete_reports_existence(t: &mut dyn TestStore) {
    seed_clients(t, &[sample_client("c", "n", 1)]).await;
    let mut tx = begin(t).await;
    assert!(tx.delete_client("c").await.unwrap(), "existed");
    assert!(!tx.delete_client("c").await.unwrap(), "second delete");
    assert!(!tx.delete_client("never").await.unwrap(), "delete missing");
    assert_eq!(tx.get_client("c").await.unwrap(), None);
    assert_eq!(
        tx.list_clients(&ClientQuery::by_node("n")).await.unwrap(),
        []
    );
    commit(tx).await;
    assert_eq!(get(t, "c").await, None);
    assert_eq!(list(t, &ClientQuery::by_epoch(1)).await, []);
}

/// Queries AND their filters; node ids and owners that are prefixes of
/// others stay apart; an overwrite that changes node, epoch and owner
/// leaves no stale index entry.
pub async fn clients_queries_and_indexes(t: &mut dyn TestStore) {
    let mut a = sample_client("a", "n1", 5);
    a.owner = vec![1, 2];
    let mut b = sample_client("b", "n10", 5);
    b.owner = vec![1, 2, 3];
    let c = sample_client("c", "n1", 6);
    seed_clients(t, &[a.clone(), b.clone(), c.clone()]).await;
    assert_eq!(
        list(t, &ClientQuery::by_node("n1")).await,
        [a.clone(), c.clone()]
    );
    assert_eq!(
        list(t, &ClientQuery::by_epoch(5)).await,
        [a.clone(), b.clone()]
    );
    assert_eq!(list(t, &ClientQuery::by_owner(&[1, 2])).await, [a.clone()]);
    let both = ClientQuery {
        node_id: Some("n1".into()),
        epoch: Some(6),
        ..ClientQuery::default()
    };
    assert_eq!(
        list(t, &both).await,
        std::slice::from_ref(&c),
        "filters are ANDed"
    );
    let moved = ClientRecord {
        node_id: "n2".into(),
        epoch: 7,
        owner: vec![9],
        ..a.clone()
    };
    seed_clients(t, std::slice::from_ref(&moved)).await;
    assert_eq!(
        list(t, &ClientQuery::by_node("n1")).await,
        std::slice::from_ref(&c)
    );
    assert_eq!(list(t, &ClientQuery::by_epoch(5)).await, [b.clone()]);
    assert_eq!(list(t, &ClientQuery::by_owner(&[1, 2])).await, []);
    assert_eq!(list(t, &ClientQuery::by_node("n2")).await, [moved]);
    let report = t.store().verify().await.expect("verify");
    assert!(report.is_healthy(), "{:?}", report.problems);
    assert_eq!(report.clients, 3);
}

/// A client record commits or vanishes with the locks written beside it;
/// a transaction reads its own client writes; two transactions that each
/// list a node's clients and add one cannot both commit (a phantom).
pub async fn clients_atomic_and_serializable(t: &mut dyn TestStore) {
    let lock = sample_lock(&handle(b"f"), "o", "c1", "s");
    let mut tx = begin(t).await;
    tx.put_client(&sample_client("c1", "n", 1)).await.unwrap();
    tx.put_lock(&lock).await.unwrap();
    assert_eq!(
        tx.list_clients(&ClientQuery::by_node("n"))
            .await
            .unwrap()
            .len(),
        1
    );
    tx.rollback().await.unwrap();
    assert_eq!(get(t, "c1").await, None, "rolled back");
    let store = t.store();
    let mut one: Box<dyn MetadataTransaction> = store.begin().await.unwrap();
    let mut two: Box<dyn MetadataTransaction> = store.begin().await.unwrap();
    for (tx, id) in [(&mut one, "x"), (&mut two, "y")] {
        assert_eq!(
            tx.list_clients(&ClientQuery::by_node("n")).await.unwrap(),
            []
        );
        tx.put_client(&sample_client(id, "n", 1)).await.unwrap();
    }
    one.commit().await.expect("first commit");
    assert_conflict("a client added under a listed node", &two.commit().await);
    assert_eq!(list(t, &ClientQuery::by_node("n")).await.len(), 1);
}

/// Pages walk every client once in id order; the digest counts them and
/// changes with any field.
pub async fn clients_pages_and_digest(t: &mut dyn TestStore) {
    let clients: Vec<_> = (0..11)
        .map(|i| sample_client(&format!("c{i}"), "n", i))
        .collect();
    seed_clients(t, &clients).await;
    let mut tx = begin(t).await;
    let mut pages = crate::pages::clients(4);
    let mut walked = Vec::new();
    while let Some(page) = pages.next(&mut *tx).await.unwrap() {
        walked.extend(page);
    }
    assert_eq!(walked, by_id(clients.clone()));
    assert_invalid("page limit 0", tx.list_clients_page(None, 0).await);
    assert_invalid("empty cursor", tx.list_clients_page(Some(""), 1).await);
    drop(tx);
    let before = crate::digest(&*t.store()).await.unwrap();
    assert_eq!(before.clients, 11);
    seed_clients(
        t,
        &[ClientRecord {
            expired: true,
            ..clients[3].clone()
        }],
    )
    .await;
    let after = crate::digest(&*t.store()).await.unwrap();
    assert_eq!(after.clients, 11);
    assert_ne!(before.sha256, after.sha256, "the digest covers `expired`");
}

/// Owner, principal, callback, ids, timestamps and queries out of their
/// limits are `Invalid`; nothing is written and the transaction stays usable.
pub async fn clients_validation(t: &mut dyn TestStore) {
    let good = sample_client("c", "n", 1);
    let bad = [
        (
            "empty owner",
            ClientRecord {
                owner: vec![],
                ..good.clone()
            },
        ),
        (
            "owner of 1025 bytes",
            ClientRecord {
                owner: vec![7; MAX_CLIENT_OWNER_LEN + 1],
                ..good.clone()
            },
        ),
        (
            "empty principal",
            ClientRecord {
                principal: Some(vec![]),
                ..good.clone()
            },
        ),
        (
            "principal of 1025 bytes",
            ClientRecord {
                principal: Some(vec![7; MAX_CLIENT_PRINCIPAL_LEN + 1]),
                ..good.clone()
            },
        ),
        (
            "empty callback",
            ClientRecord {
                callback: Some(String::new()),
                ..good.clone()
            },
        ),
        (
            "callback with NUL",
            ClientRecord {
                callback: Some("a\0b".into()),
                ..good.clone()
            },
        ),
        (
            "callback of 1025 bytes",
            ClientRecord {
                callback: Some("x".repeat(MAX_CLIENT_CALLBACK_LEN + 1)),
                ..good.clone()
            },
        ),
        (
            "empty client id",
            ClientRecord {
                client_id: String::new(),
                ..good.clone()
            },
        ),
        (
            "client id with NUL",
            ClientRecord {
                client_id: "a\0".into(),
                ..good.clone()
            },
        ),
        (
            "empty node id",
            ClientRecord {
                node_id: String::new(),
                ..good.clone()
            },
        ),
        (
            "renewed in year 10000",
            ClientRecord {
                last_renewed: Timestamp::from_micros(Timestamp::MAX_VALID.as_micros() + 1),
                ..good.clone()
            },
        ),
    ];
    let mut tx = begin(t).await;
    for (what, client) in &bad {
        assert_invalid(what, tx.put_client(client).await);
    }
    assert_invalid("get of an empty id", tx.get_client("").await);
    assert_invalid("delete of an empty id", tx.delete_client("").await);
    assert_invalid(
        "query by empty node",
        tx.list_clients(&ClientQuery::by_node("")).await,
    );
    assert_invalid(
        "query by empty owner",
        tx.list_clients(&ClientQuery::by_owner(&[])).await,
    );
    tx.put_client(&good)
        .await
        .expect("the transaction stays usable");
    commit(tx).await;
    assert_eq!(list(t, &ClientQuery::default()).await, [good]);
}

/// Committed clients survive a reopen; rolled-back ones stay out.
pub async fn clients_survive_reopen(t: &mut dyn TestStore) {
    let (max, min) = (every_field_max(), every_field_min());
    seed_clients(t, &[max.clone(), min.clone()]).await;
    let mut tx = begin(t).await;
    tx.put_client(&sample_client("rolled-back", "n", 1))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    t.reopen().await.expect("reopen");
    assert_eq!(
        list(t, &ClientQuery::default()).await,
        by_id(vec![max.clone(), min])
    );
    assert_eq!(list(t, &ClientQuery::by_owner(&max.owner)).await, [max]);
}
