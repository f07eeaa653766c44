//! Waiters in the whole-store walks: the page walker ([`crate::pages::waiters`])
//! and [`copy_store`](crate::copy_store).

use uuid::Uuid;

use super::record::Waiter;
use crate::error::Result;
use crate::pages::{self, PageFuture, Paged, PagedStore};
use crate::tx::{MetadataStore, MetadataStoreExt, MetadataTransaction};

impl Paged for Waiter {
    type Key = Uuid;
    type Scope = ();
    const FAMILY: &'static str = "waiters";
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
        tx.list_waiters_page(after.copied(), limit)
    }
}

/// Copies every waiter `src` sees into `to`, `batch` per destination
/// transaction; returns how many, calling `copied` with the running count
/// after each batch.
pub(crate) async fn copy_waiters<T: MetadataStore + ?Sized>(
    src: &mut (dyn MetadataTransaction + '_),
    to: &T,
    batch: usize,
    mut copied: impl FnMut(u64),
) -> Result<u64> {
    let mut count = 0;
    let mut walk = pages::waiters(batch);
    while let Some(page) = walk.next(src).await? {
        let page = &page;
        to.transact(|tx| {
            Box::pin(async move {
                for waiter in page {
                    tx.put_waiter(waiter).await?;
                }
                Ok(())
            })
        })
        .await?;
        count += page.len() as u64;
        copied(count);
    }
    Ok(count)
}
