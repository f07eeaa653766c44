//! WAKE: wake-up latency of a blocked waiter (issue 19).

use super::*;

/// Wake-ups measured per backend.
pub(super) const WAKE_ROUNDS: usize = 1000;

/// WAKE on fjall (in process) and PostgreSQL (the releasing store and the
/// subscribed one are two stores with their own pools: the notification
/// goes through the server, as between two processes).
pub(super) async fn wake(cfg: &Cfg, schemas: &Schemas) -> Res {
    if !cfg.wants("WAKE") {
        return Ok(());
    }
    if cfg.backend("fjall") {
        let dir = tempfile::tempdir()?;
        let store: Arc<dyn MetadataStore> = Arc::new(FjallStore::open(dir.path().join("wake"))?);
        wake_latency("fjall", store.clone(), store).await?;
    }
    if cfg.backend("postgres") {
        if !pg_reachable(&cfg.pg_url).await {
            println!("WAKE-postgres SKIP (no PostgreSQL server)");
            return Ok(());
        }
        let schema = schemas.fresh("wake");
        let releasing: Arc<dyn MetadataStore> = Arc::new(pg_store(cfg, &schema, 2).await?);
        let waiting: Arc<dyn MetadataStore> = Arc::new(pg_store(cfg, &schema, 2).await?);
        wake_latency("postgres", releasing, waiting).await?;
    }
    Ok(())
}

/// [`WAKE_ROUNDS`] times: one owner holds the file, the other queues (on
/// `waiting`), the holder releases (on `releasing`); the time from just
/// before the releasing commit to the subscriber's `next()` returning. The
/// woken owner retries (granted) and holds for the next round. The
/// subscription does not poll: every wake-up is an announcement.
pub(super) async fn wake_latency(
    backend: &str,
    releasing: Arc<dyn MetadataStore>,
    waiting: Arc<dyn MetadataStore>,
) -> Res {
    let options = fsmeta::WaitersOptions {
        poll_interval: None,
        ..Default::default()
    };
    let mut waiters = fsmeta::Waiters::subscribe(waiting.clone(), options).await?;
    let (woken_tx, mut woken_rx) = tokio::sync::mpsc::unbounded_channel();
    let subscriber = tokio::spawn(async move {
        while let Ok(woken) = waiters.next().await {
            if woken_tx.send((Instant::now(), woken)).is_err() {
                break;
            }
        }
    });
    let file = fsmeta::FileHandle::new(*b"wake-bench")?;
    let request = |owner: &str| PersistedLock {
        id: Uuid::new_v4(),
        share_name: "s".into(),
        file_id: file.clone(),
        owner_id: owner.into(),
        client_id: "c".into(),
        lock_type: fsmeta::LockType::Exclusive,
        offset: 0,
        length: 0,
        share_reservation: fsmeta::ShareReservation::None,
        acquired_at: Timestamp::now(),
        server_epoch: 1,
        flavor: fsmeta::LockFlavor::Posix,
    };
    let wait = &fsmeta::WaitOptions::default();
    let acquire = |store: Arc<dyn MetadataStore>, lock: PersistedLock| async move {
        let lock = &lock;
        store
            .transact(|tx| Box::pin(async move { fsmeta::acquire_or_wait(tx, lock, wait).await }))
            .await
    };
    let (mut holder, mut next) = ("a", "b");
    acquire(releasing.clone(), request(holder)).await?;
    let mut latencies = Vec::with_capacity(WAKE_ROUNDS);
    for round in 0..WAKE_ROUNDS {
        let queued = match acquire(waiting.clone(), request(next)).await? {
            fsmeta::Wait::Queued { waiter } => waiter,
            other => {
                return Err(format!("wake bench: expected a queued request, got {other:?}").into());
            }
        };
        let owner = fsmeta::LockOwner {
            owner_id: holder.into(),
            client_id: "c".into(),
            share_name: "s".into(),
        };
        let mut tx = releasing.begin().await?;
        fsmeta::release_range(
            &mut *tx,
            &file,
            &owner,
            fsmeta::ByteRange {
                offset: 0,
                length: 0,
            },
        )
        .await?;
        let started = Instant::now();
        tx.commit().await?;
        // A waiter may be handed out twice (two checks saw it grantable
        // before its retry deleted it): skip the stale copies.
        let (at, woken) = loop {
            let (at, woken) = woken_rx
                .recv()
                .await
                .ok_or("wake bench: the subscriber stopped")?;
            if woken.waiter.id == queued.id {
                break (at, woken);
            }
        };
        latencies.push(at.saturating_duration_since(started).as_secs_f64());
        let retry = woken.waiter.to_lock(Uuid::new_v4(), 1, Timestamp::now());
        let granted = acquire(waiting.clone(), retry).await?;
        if granted != fsmeta::Wait::Granted {
            return Err(format!("wake bench: round {round}: the retry got {granted:?}").into());
        }
        std::mem::swap(&mut holder, &mut next);
    }
    subscriber.abort();
    latencies.sort_by(f64::total_cmp);
    let p99 = latencies[(latencies.len() * 99).div_ceil(100) - 1];
    let median = median(latencies);
    report(
        &format!("WAKE-{backend}-p99-vs-median"),
        p99 / median,
        Goal::Report,
        &format!(
            "wake-up latency (releasing commit to next() returning) over {WAKE_ROUNDS} wake-ups: median {}, p99 {}",
            us(median),
            us(p99)
        ),
    );
    Ok(())
}
