//! The open-state part of [`copy_store`](crate::copy_store): opens, leases
//! and delegations, page by page, one destination transaction per page.

use crate::error::Result;
use crate::open::{DelegationRecord, LeaseRecord, OpenRecord};
use crate::pages::{self, Paged, Pages};
use crate::tx::{MetadataStore, MetadataStoreExt, MetadataTransaction};

use super::{CopyPhase, CopyProgress};

/// A record a copy writes with one call of its family's put.
trait Put: Paged + Sync {
    fn put<'t>(&'t self, tx: &'t mut (dyn MetadataTransaction + '_)) -> crate::TxFuture<'t, ()>;
}

impl Put for OpenRecord {
    fn put<'t>(&'t self, tx: &'t mut (dyn MetadataTransaction + '_)) -> crate::TxFuture<'t, ()> {
        tx.put_open(self)
    }
}

impl Put for LeaseRecord {
    fn put<'t>(&'t self, tx: &'t mut (dyn MetadataTransaction + '_)) -> crate::TxFuture<'t, ()> {
        tx.put_lease(self)
    }
}

impl Put for DelegationRecord {
    fn put<'t>(&'t self, tx: &'t mut (dyn MetadataTransaction + '_)) -> crate::TxFuture<'t, ()> {
        tx.put_delegation(self)
    }
}

/// Copies one family; `done` counts across the three.
async fn family<R: Put, T: MetadataStore + ?Sized>(
    src: &mut (dyn MetadataTransaction + '_),
    to: &T,
    mut pages: Pages<R>,
    done: &mut u64,
    progress: &mut (impl FnMut(CopyProgress) + Send),
) -> Result<()> {
    while let Some(page) = pages.next(src).await? {
        let page = &page;
        to.transact(|tx| {
            Box::pin(async move {
                for record in page {
                    record.put(tx).await?;
                }
                Ok(())
            })
        })
        .await?;
        *done += page.len() as u64;
        progress(CopyProgress {
            phase: CopyPhase::OpenStates,
            done: *done,
            total: *done,
        });
    }
    Ok(())
}

/// Copies every open, lease and delegation of `src` into `to`; returns how many.
pub(super) async fn copy<T: MetadataStore + ?Sized>(
    src: &mut (dyn MetadataTransaction + '_),
    to: &T,
    batch: usize,
    progress: &mut (impl FnMut(CopyProgress) + Send),
) -> Result<u64> {
    let mut done = 0;
    family(src, to, pages::opens(batch), &mut done, progress).await?;
    family(src, to, pages::leases(batch), &mut done, progress).await?;
    family(src, to, pages::delegations(batch), &mut done, progress).await?;
    Ok(done)
}
