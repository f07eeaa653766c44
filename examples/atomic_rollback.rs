//! A file write and a lock write commit together or vanish together.
//!
//! ```text
//! cargo run --example atomic_rollback                 # fjall in a temporary directory
//! cargo run --example atomic_rollback -- memory:
//! cargo run --example atomic_rollback -- postgres://postgres@127.0.0.1:5432/test
//! ```
//!
//! 1. One transaction puts a file and a lock on it, and commits.
//! 2. A second transaction puts another file and lock, then fails midway: neither is there.
//! 3. The same through `transact`: the closure fails, nothing of it is there.
//! 4. For a persistent store: close it, open it again, and show the same.

use fsmeta::*;
use uuid::Uuid;

fn file(name: &str) -> Result<FileMeta> {
    let now = Timestamp::now();
    Ok(FileMeta {
        handle: FileHandle::new(name.as_bytes())?,
        share_name: "export".into(),
        kind: FileKind::Regular,
        mode: 0o100644,
        uid: 1000,
        gid: 1000,
        nlink: 1,
        size: 0,
        atime: now,
        mtime: now,
        ctime: now,
    })
}

fn lock_on(file: &FileMeta, client: &str) -> PersistedLock {
    PersistedLock {
        id: Uuid::new_v4(),
        share_name: file.share_name.clone(),
        file_id: file.handle.clone(),
        owner_id: "owner-1".into(),
        client_id: client.into(),
        lock_type: LockType::Exclusive,
        offset: 0,
        length: 0,
        share_reservation: ShareReservation::None,
        acquired_at: Timestamp::now(),
        server_epoch: 1,
        flavor: fsmeta::LockFlavor::Posix,
    }
}

/// Prints whether the file and the lock are stored, and returns (file present, lock present).
async fn show(
    store: &dyn MetadataStore,
    label: &str,
    file: &FileMeta,
    lock: &PersistedLock,
) -> Result<(bool, bool)> {
    let mut tx = store.begin().await?;
    let has_file = tx.get_file(&file.handle).await?.is_some();
    let has_lock = tx.get_lock(lock.id).await?.is_some();
    let word = |present: bool| if present { "present" } else { "absent" };
    println!(
        "  {label:<28} file {:<8} lock {}",
        word(has_file),
        word(has_lock)
    );
    Ok((has_file, has_lock))
}

async fn check(
    store: &dyn MetadataStore,
    committed: &(FileMeta, PersistedLock),
    failed: &[(FileMeta, PersistedLock)],
) -> Result<()> {
    let all_or_nothing = |(f, l): (bool, bool), want: bool| {
        if f == want && l == want {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "atomicity violated: file {f}, lock {l}, expected both {want}"
            )))
        }
    };
    all_or_nothing(
        show(store, "committed pair:", &committed.0, &committed.1).await?,
        true,
    )?;
    for (i, (f, l)) in failed.iter().enumerate() {
        all_or_nothing(
            show(store, &format!("failed pair #{}:", i + 1), f, l).await?,
            false,
        )?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let scratch =
        tempfile::tempdir().map_err(|e| Error::backend("creating a temporary directory", e))?;
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| format!("fjall:{}", scratch.path().join("store").display()));
    println!("store: {url}");
    let store = fsmeta::open(&url).await?;

    // 1. Commit a file and its lock together.
    let a = file("file-a")?;
    let lock_a = lock_on(&a, "client-a");
    let mut tx = store.begin().await?;
    tx.put_file(&a).await?;
    tx.put_lock(&lock_a).await?;
    tx.commit().await?;
    println!("1. committed file-a with its lock");

    // 2. A transaction that fails midway: the lock write is rejected after the file write.
    let b = file("file-b")?;
    let lock_b = lock_on(&b, "client-b");
    let mut tx = store.begin().await?;
    tx.put_file(&b).await?;
    let bad = PersistedLock {
        owner_id: String::new(),
        ..lock_b.clone()
    };
    let err = tx
        .put_lock(&bad)
        .await
        .expect_err("an empty owner id is rejected");
    println!("2. wrote file-b, then the lock failed ({err}); dropping the transaction");
    drop(tx);

    // 3. The same through `transact`: the closure's error rolls everything back.
    let c = file("file-c")?;
    let lock_c = lock_on(&c, "client-c");
    let (cr, lr) = (&c, &lock_c);
    let outcome: Result<()> = store
        .transact(|tx| {
            Box::pin(async move {
                tx.put_file(cr).await?;
                tx.put_lock(lr).await?;
                Err(Error::Invalid(
                    "the server decided to abort after both writes".into(),
                ))
            })
        })
        .await;
    println!(
        "3. transact wrote file-c and its lock, then failed: {}",
        outcome.expect_err("aborted")
    );

    let failed = [(b, lock_b), (c, lock_c)];
    let committed = (a, lock_a);
    println!("state now:");
    check(&*store, &committed, &failed).await?;

    if url.starts_with("memory:") {
        println!("4. memory: keeps nothing across reopen; done");
    } else {
        drop(store);
        let store = fsmeta::open(&url).await?;
        println!("4. closed and reopened the store; state after reopen:");
        check(&*store, &committed, &failed).await?;
    }
    println!("ok: each pair committed together or vanished together");
    Ok(())
}
