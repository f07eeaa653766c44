//! A host's own namespace in fsmeta's transaction: directories, entries by
//! (parent, name) and inode attributes kept in extension tables, changed
//! atomically with the byte-range locks of the files they name.
//!
//! ```text
//! cargo run --example namespace                 # fjall in a temporary directory
//! cargo run --example namespace -- memory:
//! cargo run --example namespace -- postgres://postgres@127.0.0.1:5432/test
//! ```
//!
//! Tables (keys are bytes, ordered bytewise):
//! - `inodes`:  be64(inode) → kind byte + be32(mode)
//! - `dirents`: be64(parent) ‖ name → be64(child), so a directory's listing is one prefix scan
//!
//! A file's lock handle is be64(inode). Steps:
//! 1. Build `/docs/report.txt` and `/archive` in one transaction; client A locks the file.
//! 2. Client B renames it: refused, because A's lock is on it; nothing changes.
//! 3. Client A renames it to `/archive/report.txt`: the entry moves, the lock stays.
//! 4. A rename into a missing directory fails after it removed the source entry: all of it rolls back.
//! 5. Unlink deletes the entry, the inode and the file's locks in one transaction.

use fsmeta::*;
use uuid::Uuid;

const ROOT: u64 = 1;
const DIRECTORY: u8 = b'd';
const REGULAR: u8 = b'f';

fn dirent_key(parent: u64, name: &str) -> Vec<u8> {
    let mut key = parent.to_be_bytes().to_vec();
    key.extend_from_slice(name.as_bytes());
    key
}

fn inode_value(kind: u8, mode: u32) -> Vec<u8> {
    let mut value = vec![kind];
    value.extend_from_slice(&mode.to_be_bytes());
    value
}

fn handle_of(inode: u64) -> Result<FileHandle> {
    FileHandle::new(inode.to_be_bytes())
}

fn inode_from(value: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] = value
        .try_into()
        .map_err(|_| Error::Corrupt(format!("dirent value of {} bytes", value.len())))?;
    Ok(u64::from_be_bytes(bytes))
}

/// The child `name` of `parent`, if any.
async fn lookup(
    tx: &mut (dyn MetadataTransaction + '_),
    parent: u64,
    name: &str,
) -> Result<Option<u64>> {
    tx.ext_get("dirents", &dirent_key(parent, name))
        .await?
        .map(|v| inode_from(&v))
        .transpose()
}

/// Creates an inode and its entry in `parent`.
async fn create(
    tx: &mut (dyn MetadataTransaction + '_),
    parent: u64,
    name: &str,
    inode: u64,
    kind: u8,
) -> Result<()> {
    if lookup(tx, parent, name).await?.is_some() {
        return Err(Error::Invalid(format!("{name} exists")));
    }
    tx.ext_put("inodes", &inode.to_be_bytes(), &inode_value(kind, 0o644))
        .await?;
    tx.ext_put("dirents", &dirent_key(parent, name), &inode.to_be_bytes())
        .await
}

/// Moves `parent/name` to `new_parent/new_name` for `owner`: refused when
/// another owner holds a byte-range lock on the file.
async fn rename(
    tx: &mut (dyn MetadataTransaction + '_),
    owner: &LockOwner,
    (parent, name): (u64, &str),
    (new_parent, new_name): (u64, &str),
) -> Result<()> {
    let inode = lookup(tx, parent, name)
        .await?
        .ok_or_else(|| Error::Invalid(format!("{name}: no such entry")))?;
    let others: Vec<PersistedLock> = tx
        .list_locks(&LockQuery::by_file(&handle_of(inode)?))
        .await?
        .into_iter()
        .filter(|l| l.owner_id != owner.owner_id || l.client_id != owner.client_id)
        .collect();
    if let Some(lock) = others.first() {
        return Err(Error::Invalid(format!(
            "{name} is locked by {}/{} ({}..{}): rename refused",
            lock.client_id,
            lock.owner_id,
            lock.offset,
            lock.range().last()
        )));
    }
    tx.ext_delete("dirents", &dirent_key(parent, name)).await?;
    // The destination directory is checked only now, after the source entry
    // is gone: a failure here shows that the transaction undoes the delete.
    if tx
        .ext_get("inodes", &new_parent.to_be_bytes())
        .await?
        .is_none()
    {
        return Err(Error::Invalid(format!(
            "destination directory {new_parent} does not exist"
        )));
    }
    tx.ext_put(
        "dirents",
        &dirent_key(new_parent, new_name),
        &inode.to_be_bytes(),
    )
    .await
}

/// Removes `parent/name`, its inode and every lock on it.
async fn unlink(tx: &mut (dyn MetadataTransaction + '_), parent: u64, name: &str) -> Result<u64> {
    let inode = lookup(tx, parent, name)
        .await?
        .ok_or_else(|| Error::Invalid(format!("{name}: no such entry")))?;
    tx.ext_delete("dirents", &dirent_key(parent, name)).await?;
    tx.ext_delete("inodes", &inode.to_be_bytes()).await?;
    tx.delete_locks_by_file(&handle_of(inode)?).await
}

/// Prints the tree under the root (two levels) and every lock, and returns
/// the entries as `path → inode` lines for comparison.
async fn show(store: &dyn MetadataStore, label: &str) -> Result<Vec<String>> {
    let mut tx = store.begin().await?;
    let mut lines = Vec::new();
    let children = |dir: u64| KeyRange::Prefix(dir.to_be_bytes().to_vec());
    for top in tx.ext_scan("dirents", &children(ROOT), None, 1000).await? {
        let name = String::from_utf8_lossy(&top.key[8..]).into_owned();
        let inode = inode_from(&top.value)?;
        lines.push(format!("/{name} → inode {inode}"));
        for entry in tx.ext_scan("dirents", &children(inode), None, 1000).await? {
            let child = inode_from(&entry.value)?;
            let locks = tx
                .list_locks(&LockQuery::by_file(&handle_of(child)?))
                .await?;
            let held: Vec<String> = locks
                .iter()
                .map(|l| {
                    format!(
                        "{}/{} {:?} {}..{}",
                        l.client_id,
                        l.owner_id,
                        l.lock_type,
                        l.offset,
                        l.range().last()
                    )
                })
                .collect();
            lines.push(format!(
                "/{name}/{} → inode {child}, locks: [{}]",
                String::from_utf8_lossy(&entry.key[8..]),
                held.join(", ")
            ));
        }
    }
    let _ = tx.rollback().await;
    println!("  {label}");
    for line in &lines {
        println!("    {line}");
    }
    Ok(lines)
}

fn owner(client: &str) -> LockOwner {
    LockOwner {
        owner_id: "pid-42".into(),
        client_id: client.into(),
        share_name: "export".into(),
    }
}

fn expect(ok: bool, what: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!("unexpected: {what}")))
    }
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
    let (a, b) = (owner("client-a"), owner("client-b"));
    let (a_ref, b_ref) = (&a, &b);

    // A rerun on a persistent store (PostgreSQL) starts from an empty namespace.
    store
        .transact(|tx| {
            Box::pin(async move {
                for table in ["inodes", "dirents"] {
                    for record in tx.ext_scan(table, &KeyRange::All, None, 10_000).await? {
                        tx.ext_delete(table, &record.key).await?;
                    }
                }
                tx.delete_locks_by_file(&handle_of(10)?).await?;
                Ok(())
            })
        })
        .await?;

    // 1. The namespace and a lock.
    let report = handle_of(10)?;
    let lock = PersistedLock {
        id: Uuid::new_v4(),
        share_name: "export".into(),
        file_id: report.clone(),
        owner_id: a.owner_id.clone(),
        client_id: a.client_id.clone(),
        lock_type: LockType::Exclusive,
        offset: 0,
        length: 100,
        share_reservation: ShareReservation::None,
        acquired_at: Timestamp::now(),
        server_epoch: 1,
        flavor: fsmeta::LockFlavor::Posix,
    };
    let lock = &lock;
    let granted = store
        .transact(|tx| {
            Box::pin(async move {
                tx.ext_put(
                    "inodes",
                    &ROOT.to_be_bytes(),
                    &inode_value(DIRECTORY, 0o755),
                )
                .await?;
                create(tx, ROOT, "docs", 2, DIRECTORY).await?;
                create(tx, ROOT, "archive", 3, DIRECTORY).await?;
                create(tx, 2, "report.txt", 10, REGULAR).await?;
                acquire_lock(tx, lock).await
            })
        })
        .await?;
    expect(granted == Acquire::Granted, "the first lock is granted")?;
    println!("1. created /docs/report.txt and /archive; client-a locked bytes 0..99");
    let start = show(&*store, "namespace:").await?;

    // 2. Another owner's rename is refused inside the transaction.
    let refused = store
        .transact(|tx| {
            Box::pin(async move { rename(tx, b_ref, (2, "report.txt"), (3, "report.txt")).await })
        })
        .await;
    println!(
        "2. client-b renames it: {}",
        refused.as_ref().expect_err("refused")
    );
    expect(
        show(&*store, "unchanged:").await? == start,
        "a refused rename changes nothing",
    )?;

    // 3. The lock holder's rename moves the entry; the lock follows the inode.
    store
        .transact(|tx| {
            Box::pin(async move { rename(tx, a_ref, (2, "report.txt"), (3, "report.txt")).await })
        })
        .await?;
    println!("3. client-a renamed /docs/report.txt to /archive/report.txt");
    let moved = show(&*store, "namespace:").await?;
    expect(moved != start, "the rename is visible")?;

    // 4. A rename that fails midway leaves everything as it was.
    let failed = store
        .transact(|tx| {
            Box::pin(async move { rename(tx, a_ref, (3, "report.txt"), (99, "report.txt")).await })
        })
        .await;
    println!(
        "4. a rename into directory 99 deleted the source entry, then failed: {}",
        failed.as_ref().expect_err("fails")
    );
    expect(
        show(&*store, "unchanged:").await? == moved,
        "the failed rename left nothing",
    )?;

    // 5. Unlink removes the entry, the inode and the locks together.
    let dropped = store
        .transact(|tx| Box::pin(async move { unlink(tx, 3, "report.txt").await }))
        .await?;
    println!("5. unlinked /archive/report.txt; {dropped} lock(s) went with it");
    show(&*store, "namespace:").await?;
    let mut tx = store.begin().await?;
    expect(
        tx.list_locks(&LockQuery::by_file(&report))
            .await?
            .is_empty()
            && tx.ext_get("inodes", &10u64.to_be_bytes()).await?.is_none(),
        "the file's locks and inode are gone",
    )?;
    println!("ok: the namespace and the locks changed together, every time");
    Ok(())
}
