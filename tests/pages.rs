//! The page walker (`fsmeta::pages`) and the generic `verify` against a
//! deliberately broken backend: a memory store wrapped so that its paging
//! ignores the cursor, or its file listing fails as if a record did not
//! decode. The walker must answer `Corrupt` (never hang), and `verify` must
//! report the damaged family and still check the others.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fsmeta::*;
use uuid::Uuid;

/// How the wrapper misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// `list_locks_page` and `list_files_page` ignore `after` and start over.
    CursorIgnored,
    /// `list_files_page` fails with `Corrupt`, as a backend does for a record
    /// it cannot decode.
    FilesUndecodable,
}

struct Broken {
    inner: MemoryStore,
    fault: Fault,
}

struct BrokenTx {
    inner: Box<dyn MetadataTransaction>,
    fault: Fault,
}

#[async_trait]
impl MetadataStore for Broken {
    async fn begin(&self) -> Result<Box<dyn MetadataTransaction>> {
        Ok(Box::new(BrokenTx {
            inner: self.inner.begin().await?,
            fault: self.fault,
        }))
    }
}

#[async_trait]
impl FileStore for BrokenTx {
    async fn put_file(&mut self, file: &FileMeta) -> Result<()> {
        self.inner.put_file(file).await
    }
    async fn get_file(&mut self, handle: &FileHandle) -> Result<Option<FileMeta>> {
        self.inner.get_file(handle).await
    }
    async fn delete_file(&mut self, handle: &FileHandle) -> Result<()> {
        self.inner.delete_file(handle).await
    }
    async fn list_files(&mut self, share_name: &str) -> Result<Vec<FileMeta>> {
        self.inner.list_files(share_name).await
    }
    async fn list_files_page(
        &mut self,
        _after: Option<&FileHandle>,
        limit: usize,
    ) -> Result<Vec<FileMeta>> {
        match self.fault {
            Fault::CursorIgnored => self.inner.list_files_page(None, limit).await,
            Fault::FilesUndecodable => Err(Error::Corrupt("files/0102: bad postcard".into())),
        }
    }
}

#[async_trait]
impl LockStore for BrokenTx {
    async fn put_lock(&mut self, lock: &PersistedLock) -> Result<()> {
        self.inner.put_lock(lock).await
    }
    async fn get_lock(&mut self, id: Uuid) -> Result<Option<PersistedLock>> {
        self.inner.get_lock(id).await
    }
    async fn delete_lock(&mut self, id: Uuid) -> Result<()> {
        self.inner.delete_lock(id).await
    }
    async fn list_locks(&mut self, query: &LockQuery) -> Result<Vec<PersistedLock>> {
        self.inner.list_locks(query).await
    }
    async fn list_locks_page(
        &mut self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<PersistedLock>> {
        let after = if self.fault == Fault::CursorIgnored {
            None
        } else {
            after
        };
        self.inner.list_locks_page(after, limit).await
    }
    async fn delete_locks_by_client(&mut self, client_id: &str) -> Result<u64> {
        self.inner.delete_locks_by_client(client_id).await
    }
    async fn delete_locks_by_file(&mut self, file: &FileHandle) -> Result<u64> {
        self.inner.delete_locks_by_file(file).await
    }
}

#[async_trait]
impl NodeStore for BrokenTx {
    async fn server_epoch(&mut self) -> Result<u64> {
        self.inner.server_epoch().await
    }
    async fn increment_server_epoch(&mut self) -> Result<u64> {
        self.inner.increment_server_epoch().await
    }
    async fn advance_server_epoch(&mut self, at_least: u64) -> Result<u64> {
        self.inner.advance_server_epoch(at_least).await
    }
    async fn get_node(&mut self, node_id: &str) -> Result<Option<NodeState>> {
        self.inner.get_node(node_id).await
    }
    async fn put_node(&mut self, node: &NodeState) -> Result<()> {
        self.inner.put_node(node).await
    }
    async fn list_nodes(&mut self) -> Result<Vec<NodeState>> {
        self.inner.list_nodes().await
    }
    async fn put_epoch_record(&mut self, record: &EpochRecord) -> Result<()> {
        self.inner.put_epoch_record(record).await
    }
    async fn list_epoch_records(&mut self) -> Result<Vec<EpochRecord>> {
        self.inner.list_epoch_records().await
    }
}

#[async_trait]
impl ExtStore for BrokenTx {
    async fn ext_put(&mut self, table: &str, key: &[u8], value: &[u8]) -> Result<()> {
        self.inner.ext_put(table, key, value).await
    }
    async fn ext_get(&mut self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.inner.ext_get(table, key).await
    }
    async fn ext_delete(&mut self, table: &str, key: &[u8]) -> Result<bool> {
        self.inner.ext_delete(table, key).await
    }
    async fn ext_scan(
        &mut self,
        table: &str,
        range: &KeyRange,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<ExtRecord>> {
        self.inner.ext_scan(table, range, after, limit).await
    }
    async fn ext_tables(&mut self) -> Result<Vec<String>> {
        self.inner.ext_tables().await
    }
}

#[async_trait]
impl WaiterStore for BrokenTx {
    async fn put_waiter(&mut self, waiter: &Waiter) -> Result<()> {
        self.inner.put_waiter(waiter).await
    }
    async fn get_waiter(&mut self, id: Uuid) -> Result<Option<Waiter>> {
        self.inner.get_waiter(id).await
    }
    async fn delete_waiter(&mut self, id: Uuid) -> Result<bool> {
        self.inner.delete_waiter(id).await
    }
    async fn list_waiters(&mut self, query: &WaiterQuery) -> Result<Vec<Waiter>> {
        self.inner.list_waiters(query).await
    }
    async fn delete_waiters(&mut self, query: &WaiterQuery) -> Result<u64> {
        self.inner.delete_waiters(query).await
    }
    async fn list_waiters_page(
        &mut self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Waiter>> {
        self.inner.list_waiters_page(after, limit).await
    }
}

#[async_trait]
impl MetadataTransaction for BrokenTx {
    async fn commit(self: Box<Self>) -> Result<()> {
        self.inner.commit().await
    }
    async fn rollback(self: Box<Self>) -> Result<()> {
        self.inner.rollback().await
    }
}

fn file(n: u8) -> FileMeta {
    let t = Timestamp::from_micros(1_700_000_000_000_000);
    FileMeta {
        handle: FileHandle::new(vec![1, n]).unwrap(),
        share_name: "export".into(),
        kind: FileKind::Regular,
        mode: 0o644,
        uid: 0,
        gid: 0,
        nlink: 1,
        size: 0,
        atime: t,
        mtime: t,
        ctime: t,
    }
}

fn lock(n: u128, file: &FileMeta) -> PersistedLock {
    PersistedLock {
        id: Uuid::from_u128(n),
        share_name: "export".into(),
        file_id: file.handle.clone(),
        owner_id: format!("owner{n}"),
        client_id: "client".into(),
        lock_type: LockType::Shared,
        offset: n as u64 * 10,
        length: 10,
        share_reservation: ShareReservation::None,
        acquired_at: Timestamp::from_micros(1_700_000_000_000_000),
        server_epoch: 1,
        flavor: fsmeta::LockFlavor::Posix,
    }
}

/// A memory store with 10 files and `locks` locks, wrapped with `fault`.
async fn broken_with(fault: Fault, locks: u128) -> Broken {
    let inner = MemoryStore::new();
    let files: Vec<FileMeta> = (0..10).map(file).collect();
    let locks: Vec<PersistedLock> = (1..=locks).map(|n| lock(n, &files[0])).collect();
    let (files, locks) = (&files, &locks);
    inner
        .transact(|tx| {
            Box::pin(async move {
                for f in files {
                    tx.put_file(f).await?;
                }
                tx.put_locks(locks).await
            })
        })
        .await
        .unwrap();
    Broken { inner, fault }
}

/// A memory store with 10 files and 25 locks, wrapped with `fault`.
async fn broken(fault: Fault) -> Broken {
    broken_with(fault, 25).await
}

/// Runs `future` with a deadline: a walker that loops would never finish.
async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), future)
        .await
        .expect("the walk did not end: it loops on a cursor that does not advance")
}

#[tokio::test]
async fn walker_refuses_a_cursor_that_does_not_advance() {
    let store = broken(Fault::CursorIgnored).await;
    let mut tx = store.begin().await.unwrap();
    let mut locks = fsmeta::pages::locks(10);
    let first = locks.next(&mut *tx).await.unwrap().expect("first page");
    assert_eq!(first.len(), 10);
    let second = bounded(locks.next(&mut *tx)).await;
    assert!(
        matches!(&second, Err(Error::Corrupt(m)) if m.contains("locks") && m.contains("paging contract")),
        "a page that starts over is Corrupt naming the backend's fault, got {second:?}"
    );
    assert!(
        locks.next(&mut *tx).await.unwrap().is_none(),
        "a walker that found the fault stays ended"
    );

    let mut files = fsmeta::pages::files(4);
    files.next(&mut *tx).await.unwrap().expect("first page");
    assert!(matches!(
        bounded(files.next(&mut *tx)).await,
        Err(Error::Corrupt(_))
    ));
}

#[tokio::test]
async fn copy_digest_and_verify_end_on_a_broken_cursor() {
    // More locks than one page of digest's and verify's walks (1024).
    let store: Arc<dyn MetadataStore> = Arc::new(broken_with(Fault::CursorIgnored, 1100).await);
    let to = MemoryStore::new();
    let copied = bounded(copy_store(
        &*store,
        &to,
        &CopyOptions {
            batch_size: 7,
            ..Default::default()
        },
        |_| {},
    ))
    .await;
    assert!(matches!(copied, Err(Error::Corrupt(_))), "{copied:?}");
    assert!(matches!(
        bounded(digest(&*store)).await,
        Err(Error::Corrupt(_))
    ));
    // verify reports the broken walk as a problem and ends; the files (one page) are fine.
    let report = bounded(store.verify()).await.unwrap();
    let locations: Vec<&str> = report
        .problems
        .iter()
        .map(|p| p.location.as_str())
        .collect();
    assert_eq!(locations, ["locks"], "{report:?}");
    assert_eq!(report.problems[0].kind, ProblemKind::Undecodable);
    assert_eq!(report.files, 10);
    assert_eq!(report.locks, 1024, "the first page was examined");
}

#[tokio::test]
async fn walker_reads_a_store_whole_in_key_order() {
    let store = broken(Fault::FilesUndecodable).await;
    let mut tx = store.begin().await.unwrap();
    let mut locks = fsmeta::pages::locks(10);
    let mut ids = Vec::new();
    while let Some(page) = locks.next(&mut *tx).await.unwrap() {
        assert!(page.len() <= 10);
        ids.extend(page.iter().map(|l| l.id.as_u128()));
    }
    assert_eq!(ids, (1..=25).collect::<Vec<u128>>());
    assert_eq!(locks.cursor(), Some(&Uuid::from_u128(25)));
}

#[tokio::test]
async fn verify_keeps_going_past_an_undecodable_family() {
    let store = broken(Fault::FilesUndecodable).await;
    let report = store.verify().await.unwrap();
    assert_eq!(report.problems.len(), 1, "{report:?}");
    assert_eq!(report.problems[0].kind, ProblemKind::Undecodable);
    assert_eq!(report.problems[0].location, "files");
    assert_eq!(
        report.locks, 25,
        "the undecodable files listing hides none of the locks"
    );
}
