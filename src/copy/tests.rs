//! `copy_store` and `digest` on memory stores.

use super::*;
use crate::backend::memory::MemoryStore;
use crate::file::{FileHandle, FileKind, FileMeta};
use crate::lock::{LockType, PersistedLock, ShareReservation};
use crate::node::EpochRecord;
use crate::time::Timestamp;
use uuid::Uuid;

fn file(n: u8, share: &str) -> FileMeta {
    FileMeta {
        handle: FileHandle::new(vec![n, 0xff]).expect("handle"),
        share_name: share.into(),
        kind: FileKind::Regular,
        mode: 0o644,
        uid: u32::MAX,
        gid: 0,
        nlink: 1,
        size: u64::MAX,
        atime: Timestamp::from_micros(1),
        mtime: Timestamp::from_micros(2),
        ctime: Timestamp::from_micros(3),
    }
}

fn lock(n: u128, file: &FileMeta, epoch: u64) -> PersistedLock {
    PersistedLock {
        id: Uuid::from_u128(n),
        share_name: file.share_name.clone(),
        file_id: file.handle.clone(),
        owner_id: format!("owner {n}"),
        client_id: format!("client:{}", n % 3),
        lock_type: LockType::Exclusive,
        offset: n as u64 * 10,
        length: 0,
        share_reservation: ShareReservation::DenyWrite,
        acquired_at: Timestamp::from_micros(1_700_000_000_000_000),
        server_epoch: epoch,
        flavor: crate::LockFlavor::Posix,
    }
}

async fn fill(store: &MemoryStore, files: u8, locks: u128) {
    store
        .transact(|tx| {
            Box::pin(async move {
                tx.increment_server_epoch().await?;
                tx.increment_server_epoch().await?;
                crate::set_clean_shutdown(&mut *tx, false).await?;
                tx.put_epoch_record(&EpochRecord {
                    epoch: 2,
                    node_id: "default".into(),
                    started_at: Timestamp::from_micros(5),
                })
                .await?;
                for n in 0..files {
                    let f = file(n, if n % 2 == 0 { "a" } else { "b" });
                    tx.put_file(&f).await?;
                    for l in 0..locks {
                        tx.put_lock(&lock(u128::from(n) * 1000 + l, &f, 1 + (l as u64 % 2)))
                            .await?;
                    }
                }
                Ok(())
            })
        })
        .await
        .expect("fill");
}

#[tokio::test]
async fn copy_reproduces_every_record_across_small_batches() {
    let (from, to) = (MemoryStore::new(), MemoryStore::new());
    fill(&from, 7, 5).await;
    let mut calls = Vec::new();
    let options = CopyOptions {
        batch_size: 3,
        ..Default::default()
    };
    let report = copy_store(&from, &to, &options, |p| calls.push(p))
        .await
        .expect("copy");
    assert!(report.matches(), "{report:?}");
    assert_eq!((report.files, report.locks), (7, 35));
    assert_eq!(report.source.epoch, 2);
    assert_eq!((report.source.nodes, report.source.epoch_records), (1, 1));
    assert!(calls.contains(&CopyProgress {
        phase: CopyPhase::Locks,
        done: 35,
        total: 35
    }));
    assert_eq!(digest(&to).await.expect("digest"), report.source);
}

#[tokio::test]
async fn non_empty_destination_is_refused_unless_allowed() {
    let (from, to) = (MemoryStore::new(), MemoryStore::new());
    fill(&from, 2, 2).await;
    to.transact(|tx| Box::pin(async move { tx.put_file(&file(9, "z")).await }))
        .await
        .expect("put");
    let refused = copy_store(&from, &to, &CopyOptions::default(), |_| {}).await;
    assert!(
        matches!(refused, Err(Error::DestinationNotEmpty { .. })),
        "{refused:?}"
    );
    assert_eq!(
        digest(&to).await.expect("digest").files,
        1,
        "nothing written"
    );
    let options = CopyOptions {
        allow_non_empty: true,
        ..Default::default()
    };
    let report = copy_store(&from, &to, &options, |_| {})
        .await
        .expect("copy");
    assert!(!report.matches(), "the extra file shows");
    assert_eq!(report.destination.files, report.source.files + 1);
}

#[tokio::test]
async fn digest_sees_every_field() {
    let (a, b) = (MemoryStore::new(), MemoryStore::new());
    fill(&a, 1, 1).await;
    fill(&b, 1, 1).await;
    assert_eq!(digest(&a).await.expect("a"), digest(&b).await.expect("b"));
    let f = file(0, "a");
    let mut changed = lock(0, &f, 1);
    changed.acquired_at = Timestamp::from_micros(changed.acquired_at.as_micros() + 1);
    let changed = &changed;
    b.transact(|tx| Box::pin(async move { tx.put_lock(changed).await }))
        .await
        .expect("put");
    let (da, db) = (digest(&a).await.expect("a"), digest(&b).await.expect("b"));
    assert_eq!((da.files, da.locks), (db.files, db.locks));
    assert_ne!(da.sha256, db.sha256);
}

#[tokio::test]
async fn extension_records_are_copied_and_digested() {
    let (from, to) = (MemoryStore::new(), MemoryStore::new());
    fill(&from, 1, 1).await;
    from.transact(|tx| {
        Box::pin(async move {
            for n in 0u16..25 {
                tx.ext_put("dirents", &n.to_be_bytes(), b"entry").await?;
            }
            tx.ext_put("inodes", b"7", &[0xff; 300]).await
        })
    })
    .await
    .expect("seed ext");
    let options = CopyOptions {
        batch_size: 4,
        ..Default::default()
    };
    let report = copy_store(&from, &to, &options, |_| {})
        .await
        .expect("copy");
    assert_eq!(report.ext_records, 26);
    assert_eq!(report.source.ext_records, 26);
    assert!(report.matches(), "{report:?}");
    let mut tx = to.begin().await.expect("begin");
    assert_eq!(
        tx.ext_tables().await.expect("tables"),
        ["dirents", "inodes"]
    );
    assert_eq!(
        tx.ext_get("inodes", b"7").await.expect("get"),
        Some(vec![0xff; 300])
    );
    drop(tx);
    // A different value is a different digest.
    to.transact(|tx| Box::pin(async move { tx.ext_put("inodes", b"7", b"x").await }))
        .await
        .expect("change");
    assert_ne!(
        digest(&from).await.expect("a"),
        digest(&to).await.expect("b")
    );
    assert!(!store_is_empty(&to).await.expect("empty?"));
}

/// Issue 14 item 10: the destination's epoch is raised in one write. With
/// one increment per step (the old way) a source at epoch 10^15 would take
/// 10^15 statements; this finishes at once.
#[tokio::test]
async fn a_huge_epoch_is_copied_in_one_write() {
    let (from, to) = (MemoryStore::new(), MemoryStore::new());
    fill(&from, 1, 1).await;
    from.transact(|tx| {
        Box::pin(async move { tx.advance_server_epoch(1_000_000_000_000_000).await })
    })
    .await
    .expect("advance");
    let report = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        copy_store(&from, &to, &CopyOptions::default(), |_| {}),
    )
    .await
    .expect("copy ends")
    .expect("copy");
    assert!(report.matches());
    assert_eq!(report.destination.epoch, 1_000_000_000_000_000);
}
