//! `fsmeta release` and `fsmeta epoch`: the two small ones.

use fsmeta::{MetadataStore, MetadataStoreExt};

use crate::args::ReleaseArgs;
use crate::output::{Out, cell};
use crate::{CliError, Outcome};

/// Deletes every lock of a client in one transaction; prints how many.
pub async fn release(
    store: &dyn MetadataStore,
    args: &ReleaseArgs,
    out: &mut Out,
) -> Result<Outcome, CliError> {
    let client = args.client.as_str();
    let removed = store
        .transact(|tx| Box::pin(async move { tx.delete_locks_by_client(client).await }))
        .await?;
    let noun = if removed == 1 { "lock" } else { "locks" };
    out.line(format!(
        "released {removed} {noun} of client {}",
        cell(client)
    ))?;
    Ok(Outcome::Ok)
}

/// Prints the global server epoch.
pub async fn epoch(store: &dyn MetadataStore, out: &mut Out) -> Result<Outcome, CliError> {
    let mut tx = store.begin().await?;
    let epoch = tx.server_epoch().await?;
    let _ = tx.rollback().await;
    out.line(epoch)?;
    Ok(Outcome::Ok)
}
