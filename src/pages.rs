//! The one walker over a whole store, page by page: `copy_store`, `digest`,
//! `verify_records` and the `fsmeta` command all read through it.
//!
//! Each record family with a paged listing implements [`Paged`]; the walker
//! keeps the cursor and checks that every page moves it forward, so a
//! backend that ignores the cursor (or sorts wrongly) gets
//! [`Error::Corrupt`] naming its fault instead of looping for ever or
//! silently skipping records.
//!
//! ```
//! # use fsmeta::*;
//! # async fn demo(store: &dyn MetadataStore) -> Result<()> {
//! let mut tx = store.begin().await?;
//! let mut locks = fsmeta::pages::locks(1024);
//! while let Some(page) = locks.next(&mut *tx).await? {
//!     for lock in &page {
//!         println!("{} on {}", lock.id, lock.file_id);
//!     }
//! }
//! # Ok(()) }
//! ```

use std::future::Future;
use std::pin::Pin;

use uuid::Uuid;

use crate::client::{ClientRecord, ClientStore};
use crate::error::{Error, Result};
use crate::ext::{ExtRecord, ExtStore, KeyRange};
use crate::file::{FileHandle, FileMeta, FileStore};
use crate::lock::{LockStore, PersistedLock};
use crate::open::{DelegationRecord, LeaseRecord, LeaseStore, OpenRecord, OpenStore};
use crate::waiter::{Waiter, WaiterStore};

/// What a walker can read through: every family with a paged listing.
pub trait PagedStore:
    FileStore + LockStore + ExtStore + ClientStore + OpenStore + LeaseStore + WaiterStore
{
}
impl<T> PagedStore for T where
    T: FileStore
        + LockStore
        + ExtStore
        + ClientStore
        + OpenStore
        + LeaseStore
        + WaiterStore
        + ?Sized
{
}

/// The future a [`Paged::fetch`] returns.
pub type PageFuture<'a, R> = Pin<Box<dyn Future<Output = Result<Vec<R>>> + Send + 'a>>;

/// A record kind that a transaction lists page by page, in key order.
pub trait Paged: Sized + Send + 'static {
    /// The key the records are ordered by; the cursor is the last one seen.
    type Key: Ord + Clone + Send + Sync + std::fmt::Debug;
    /// What a walk is over besides the family: `()`, or the table of an
    /// extension walk.
    type Scope: Send + Sync + std::fmt::Debug;
    /// The family's name, for error messages (`"files"`, `"locks"`, `"ext"`).
    const FAMILY: &'static str;
    /// This record's key.
    fn key(&self) -> Self::Key;
    /// At most `limit` records of `scope` with a key above `after` (from the
    /// first when `None`), in key order: the family's paged listing.
    fn fetch<'a, T>(
        tx: &'a mut T,
        scope: &'a Self::Scope,
        after: Option<&'a Self::Key>,
        limit: usize,
    ) -> PageFuture<'a, Self>
    where
        T: PagedStore + ?Sized;
}

impl Paged for FileMeta {
    type Key = FileHandle;
    type Scope = ();
    const FAMILY: &'static str = "files";
    fn key(&self) -> FileHandle {
        self.handle.clone()
    }
    fn fetch<'a, T>(
        tx: &'a mut T,
        _: &'a (),
        after: Option<&'a FileHandle>,
        limit: usize,
    ) -> PageFuture<'a, Self>
    where
        T: PagedStore + ?Sized,
    {
        tx.list_files_page(after, limit)
    }
}

impl Paged for PersistedLock {
    type Key = Uuid;
    type Scope = ();
    const FAMILY: &'static str = "locks";
    fn key(&self) -> Uuid {
        self.id
    }
    fn fetch<'a, T>(
        tx: &'a mut T,
        _: &'a (),
        after: Option<&'a Uuid>,
        limit: usize,
    ) -> PageFuture<'a, Self>
    where
        T: PagedStore + ?Sized,
    {
        tx.list_locks_page(after.copied(), limit)
    }
}

/// Implements [`Paged`] for an id-keyed open-state record.
macro_rules! paged_by_id {
    ($record:ty, $family:literal, $method:ident) => {
        impl Paged for $record {
            type Key = Uuid;
            type Scope = ();
            const FAMILY: &'static str = $family;
            fn key(&self) -> Uuid {
                self.id
            }
            fn fetch<'a, T>(
                tx: &'a mut T,
                _: &'a (),
                after: Option<&'a Uuid>,
                limit: usize,
            ) -> PageFuture<'a, Self>
            where
                T: PagedStore + ?Sized,
            {
                tx.$method(after.copied(), limit)
            }
        }
    };
}

paged_by_id!(OpenRecord, "opens", list_opens_page);
paged_by_id!(LeaseRecord, "leases", list_leases_page);
paged_by_id!(DelegationRecord, "delegations", list_delegations_page);

/// The whole-table range of an extension walk.
static WHOLE_TABLE: KeyRange = KeyRange::All;

impl Paged for ExtRecord {
    type Key = Vec<u8>;
    /// The extension table.
    type Scope = String;
    const FAMILY: &'static str = "ext";
    fn key(&self) -> Vec<u8> {
        self.key.clone()
    }
    fn fetch<'a, T>(
        tx: &'a mut T,
        table: &'a String,
        after: Option<&'a Vec<u8>>,
        limit: usize,
    ) -> PageFuture<'a, Self>
    where
        T: PagedStore + ?Sized,
    {
        tx.ext_scan(table, &WHOLE_TABLE, after.map(Vec::as_slice), limit)
    }
}

impl Paged for ClientRecord {
    type Key = String;
    type Scope = ();
    const FAMILY: &'static str = "clients";
    fn key(&self) -> String {
        self.client_id.clone()
    }
    fn fetch<'a, T>(
        tx: &'a mut T,
        _: &'a (),
        after: Option<&'a String>,
        limit: usize,
    ) -> PageFuture<'a, Self>
    where
        T: PagedStore + ?Sized,
    {
        tx.list_clients_page(after.map(String::as_str), limit)
    }
}

/// A cursor over every record of one family, one page at a time.
#[derive(Debug)]
pub struct Pages<R: Paged> {
    scope: R::Scope,
    after: Option<R::Key>,
    limit: usize,
    done: bool,
}

/// Every file, in handle order, `limit` (≥ 1) per page.
pub fn files(limit: usize) -> Pages<FileMeta> {
    Pages::new((), limit)
}

/// Every lock, in id order, `limit` (≥ 1) per page.
pub fn locks(limit: usize) -> Pages<PersistedLock> {
    Pages::new((), limit)
}

/// Every client record, in client id order, `limit` (≥ 1) per page.
pub fn clients(limit: usize) -> Pages<ClientRecord> {
    Pages::new((), limit)
}

/// Every open, in id order, `limit` (≥ 1) per page.
pub fn opens(limit: usize) -> Pages<OpenRecord> {
    Pages::new((), limit)
}

/// Every lease and oplock, in id order, `limit` (≥ 1) per page.
pub fn leases(limit: usize) -> Pages<LeaseRecord> {
    Pages::new((), limit)
}

/// Every delegation (tombstones included), in id order, `limit` (≥ 1) per page.
pub fn delegations(limit: usize) -> Pages<DelegationRecord> {
    Pages::new((), limit)
}

/// Every waiter, in id order, `limit` (≥ 1) per page.
pub fn waiters(limit: usize) -> Pages<Waiter> {
    Pages::new((), limit)
}

/// Every record of extension table `table`, in key order, `limit` (≥ 1) per page.
pub fn ext(table: &str, limit: usize) -> Pages<ExtRecord> {
    Pages::new(table.to_owned(), limit)
}

impl<R: Paged> Pages<R> {
    /// A walk over `scope` from the first record, `limit` (≥ 1) records per page.
    pub fn new(scope: R::Scope, limit: usize) -> Self {
        Pages {
            scope,
            after: None,
            limit,
            done: false,
        }
    }

    /// The key of the last record handed out, if any.
    pub fn cursor(&self) -> Option<&R::Key> {
        self.after.as_ref()
    }

    /// The next non-empty page, or `None` at the end. A page that does not
    /// start past the cursor, is not in strictly ascending key order, or is
    /// longer than asked for is [`Error::Corrupt`]: the backend broke the
    /// paging contract, and going on would loop or skip records.
    pub async fn next<T>(&mut self, tx: &mut T) -> Result<Option<Vec<R>>>
    where
        T: PagedStore + ?Sized,
    {
        if self.done {
            return Ok(None);
        }
        let page = R::fetch(tx, &self.scope, self.after.as_ref(), self.limit).await?;
        if page.len() > self.limit {
            return Err(self.broken(format!(
                "a page of {} records, {} asked for",
                page.len(),
                self.limit
            )));
        }
        let mut previous = self.after.clone();
        for record in &page {
            let key = record.key();
            if let Some(previous) = &previous
                && key <= *previous
            {
                return Err(self.broken(format!(
                    "key {key:?} does not follow {previous:?} (the cursor did not advance)"
                )));
            }
            previous = Some(key);
        }
        self.done = page.len() < self.limit;
        match page.last() {
            Some(last) => {
                self.after = Some(last.key());
                Ok(Some(page))
            }
            None => {
                self.done = true;
                Ok(None)
            }
        }
    }

    fn broken(&mut self, detail: String) -> Error {
        // Stop here for good: a caller that keeps calling must not loop.
        self.done = true;
        Error::Corrupt(format!(
            "paging {} {:?}: the backend broke the paging contract: {detail}",
            R::FAMILY,
            self.scope
        ))
    }
}
