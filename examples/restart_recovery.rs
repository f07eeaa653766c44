//! A server takes locks, crashes, restarts, and runs the grace period.
//!
//! ```text
//! cargo run --example restart_recovery                # fjall in a temporary directory
//! cargo run --example restart_recovery -- postgres://postgres@127.0.0.1:5432/test
//! ```
//!
//! With `memory:` the "crash" keeps the same in-memory store (nothing else survives).

use std::sync::Arc;

use fsmeta::*;
use uuid::Uuid;

fn lock(file: &FileHandle, client: &str, epoch: u64) -> PersistedLock {
    PersistedLock {
        id: Uuid::new_v4(),
        share_name: "export".into(),
        file_id: file.clone(),
        owner_id: format!("{client}/open-1"),
        client_id: client.into(),
        lock_type: LockType::Exclusive,
        offset: 0,
        length: 4096,
        share_reservation: ShareReservation::None,
        acquired_at: Timestamp::now(),
        server_epoch: epoch,
        flavor: fsmeta::LockFlavor::Posix,
    }
}

async fn acquire(store: &dyn MetadataStore, lock: &PersistedLock) -> Result<Acquire> {
    store
        .transact(|tx| Box::pin(async move { acquire_lock(tx, lock).await }))
        .await
}

async fn show_locks(store: &dyn MetadataStore) -> Result<()> {
    let mut tx = store.begin().await?;
    for l in tx.list_locks(&LockQuery::default()).await? {
        println!(
            "     {} client={} file={} bytes {}+{} epoch={}",
            l.id, l.client_id, l.file_id, l.offset, l.length, l.server_epoch
        );
    }
    Ok(())
}

/// Opens the store (or, for memory, keeps the one it has) and begins recovery.
async fn restart(
    store: Arc<dyn MetadataStore>,
    url: &str,
    keep: bool,
) -> Result<(Arc<dyn MetadataStore>, Recovery)> {
    let store = if keep {
        store
    } else {
        drop(store);
        fsmeta::open(url).await?
    };
    recover(store).await
}

async fn start(url: &str) -> Result<(Arc<dyn MetadataStore>, Recovery)> {
    recover(fsmeta::open(url).await?).await
}

async fn recover(store: Arc<dyn MetadataStore>) -> Result<(Arc<dyn MetadataStore>, Recovery)> {
    let recovery = begin_recovery(&*store).await?;
    println!(
        "   server up: epoch {}, previous shutdown {}, {} reclaimable lock(s) of {:?}",
        recovery.epoch,
        if recovery.previous_shutdown_clean {
            "clean"
        } else {
            "UNCLEAN"
        },
        recovery.reclaimable.len(),
        recovery.clients
    );
    Ok((store, recovery))
}

#[tokio::main]
async fn main() -> Result<()> {
    let scratch =
        tempfile::tempdir().map_err(|e| Error::backend("creating a temporary directory", e))?;
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| format!("fjall:{}", scratch.path().join("store").display()));
    let keep_in_memory = url.starts_with("memory:");
    println!("store: {url}");

    println!("1. first start");
    let (store, first) = start(&url).await?;
    let (file_a, file_b) = (FileHandle::new(*b"file-a")?, FileHandle::new(*b"file-b")?);
    let alice = lock(&file_a, "alice", first.epoch);
    let bob = lock(&file_b, "bob", first.epoch);
    println!(
        "2. alice locks file-a: {:?}",
        acquire(&*store, &alice).await?
    );
    println!("   bob locks file-b:   {:?}", acquire(&*store, &bob).await?);
    let carol = lock(&file_a, "carol", first.epoch);
    println!(
        "   carol asks for file-a too: {}",
        match acquire(&*store, &carol).await? {
            Acquire::Granted => "granted (unexpected!)".to_owned(),
            Acquire::Denied { conflicts } => {
                let holders: Vec<&str> = conflicts.iter().map(|c| c.client_id.as_str()).collect();
                format!("denied, held by {holders:?}")
            }
            other => format!("{other:?}"),
        }
    );

    println!("3. the server crashes (the store is dropped without mark_clean_shutdown)");
    println!("4. restart");
    let (store, recovery) = restart(store, &url, keep_in_memory).await?;
    show_locks(&*store).await?;

    println!("5. grace period: alice reclaims her lock, bob never comes back");
    let reclaim = PersistedLock {
        id: Uuid::new_v4(),
        server_epoch: recovery.epoch,
        ..alice.clone()
    };
    let r = &reclaim;
    let answer = store
        .transact(|tx| Box::pin(async move { reclaim_lock(tx, r).await }))
        .await?;
    println!("   alice reclaim: {answer:?}");
    let answer = store
        .transact(|tx| Box::pin(async move { reclaim_lock(tx, r).await }))
        .await?;
    println!("   alice's reclaim again (the reply was lost): {answer:?}");
    let forged = PersistedLock {
        length: 1 << 20,
        ..reclaim.clone()
    };
    let f = &forged;
    let answer = store
        .transact(|tx| Box::pin(async move { reclaim_lock(tx, f).await }))
        .await?;
    println!(
        "   a reclaim of a lock nobody held: {}",
        match answer {
            Reclaim::NoSuchLock => "no such lock (NFS4ERR_RECLAIM_BAD)".to_owned(),
            other => format!("{other:?} (unexpected!)"),
        }
    );

    println!("6. grace ends");
    let removed = end_grace(&*store, recovery.epoch).await?;
    println!("   removed {removed} unreclaimed lock(s); what is left:");
    show_locks(&*store).await?;

    println!("7. orderly shutdown and restart");
    mark_clean_shutdown(&*store).await?;
    restart(store, &url, keep_in_memory).await?;
    Ok(())
}
