//! EXT (an extension record written with a lock vs a file record with a
//! lock) and CHECKIO (an SMB I/O check against a file's locks).

use super::*;

/// Seconds per transaction of `rounds` alternating batches of `n`
/// `transact(put_file + put_lock)` and `transact(ext_put + put_lock)`
/// (a 100-byte inode value keyed like the file): (file, ext).
pub(super) async fn ext_vs_file_secs(
    store: &dyn MetadataStore,
    n: u64,
    rounds: u64,
) -> Res<(f64, f64)> {
    let (mut file_secs, mut ext_secs) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for ext in [false, true] {
            let started = Instant::now();
            for k in 0..n {
                let (file, lock) = write_pair(7 + u8::from(ext), round * n + k);
                let (file, lock) = (&file, &lock);
                store
                    .transact(|tx| {
                        Box::pin(async move {
                            if ext {
                                tx.ext_put("inodes", file.handle.as_bytes(), &[7u8; 100])
                                    .await?;
                            } else {
                                tx.put_file(file).await?;
                            }
                            tx.put_lock(lock).await
                        })
                    })
                    .await?;
            }
            let per_tx = started.elapsed().as_secs_f64() / n as f64;
            if ext {
                ext_secs.push(per_tx);
            } else {
                file_secs.push(per_tx);
            }
        }
    }
    Ok((median(file_secs), median(ext_secs)))
}

pub(super) async fn ext_vs_file(cfg: &Cfg, backend: &str, store: &dyn MetadataStore) -> Res {
    let n = if cfg.quick { 300 } else { 3000 };
    let (file, ext) = ext_vs_file_secs(store, n, 3).await?;
    report(
        &format!("EXT-{backend}-ext-vs-file"),
        ext / file,
        Goal::Report,
        &format!(
            "transact(ext_put + put_lock) {} vs transact(put_file + put_lock) {} (median of 3 rounds of {n})",
            us(ext),
            us(file)
        ),
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// CHECKIO: the cost of an SMB I/O check against a file's locks

/// Seconds per `check_io` call (in its own read transaction) on a file
/// holding `locks` Windows shared locks of other opens (one byte each,
/// every other byte, none in the checked range), median of 3 rounds of `calls`.
pub(super) async fn check_io_secs(
    store: &dyn MetadataStore,
    tag: u8,
    locks: u64,
    calls: u64,
) -> Res<f64> {
    let file = fsmeta::FileHandle::new(vec![0xC0, tag])?;
    let all: Vec<PersistedLock> = (0..locks)
        .map(|i| PersistedLock {
            id: Uuid::from_u128((u128::from(tag) << 64) | u128::from(i)),
            share_name: "bench".into(),
            file_id: file.clone(),
            owner_id: format!("open-{i}"),
            client_id: "smb-client".into(),
            lock_type: fsmeta::LockType::Shared,
            offset: 1_000_000 + 2 * i,
            length: 1,
            share_reservation: fsmeta::ShareReservation::None,
            acquired_at: Timestamp::now(),
            server_epoch: 1,
            flavor: fsmeta::LockFlavor::Windows,
        })
        .collect();
    for chunk in all.chunks(500) {
        store
            .transact(|tx| {
                Box::pin(async move {
                    for lock in chunk {
                        tx.put_lock(lock).await?;
                    }
                    Ok(())
                })
            })
            .await?;
    }
    let owner = fsmeta::LockOwner {
        owner_id: "reader".into(),
        client_id: "smb-client".into(),
        share_name: "bench".into(),
    };
    let mut rounds = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        for _ in 0..calls {
            let mut tx = store.begin().await?;
            let answer = fsmeta::check_io(
                &mut *tx,
                &file,
                &owner,
                fsmeta::ByteRange::new(0, 4096),
                true,
            )
            .await?;
            assert!(matches!(answer, fsmeta::Io::Allowed), "{answer:?}");
            tx.rollback().await?;
        }
        rounds.push(started.elapsed().as_secs_f64() / calls as f64);
    }
    Ok(median(rounds))
}

pub(super) async fn check_io_bench(cfg: &Cfg, backend: &str, store: &dyn MetadataStore) -> Res {
    let calls = if cfg.quick { 200 } else { 2000 };
    let few = check_io_secs(store, 1, 10, calls).await?;
    let many = check_io_secs(store, 2, 1000, calls / 10).await?;
    report(
        &format!("CHECKIO-{backend}-1000-vs-10"),
        many / few,
        Goal::Report,
        &format!(
            "check_io (one list_locks by file, in its own transaction): {} per call with 10 locks on the file, {} with 1,000",
            us(few),
            us(many)
        ),
    );
    Ok(())
}
