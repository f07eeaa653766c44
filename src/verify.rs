//! Consistency checks of a whole store (`fsmeta fsck`): the check every
//! backend can run through the public API. The report types live in
//! [`crate::report`](crate::VerifyReport); `MetadataStore::verify` calls
//! [`verify_transaction`] by default.

use crate::client::ClientStore;
use crate::error::{Error, Result};
use crate::ext::ExtStore;
use crate::file::FileStore;
use crate::lock::LockStore;
use crate::node::NodeStore;
use crate::open::{LeaseStore, OpenStore};
use crate::pages::{self, Paged, Pages};
pub use crate::report::{Problem, ProblemKind, VerifyReport};
use crate::validate;
use crate::waiter::WaiterStore;

/// Records per page when a check walks a whole store.
pub(crate) const PAGE: usize = 1024;

/// Reads every file, lock and extension record page by page in `tx`, and
/// every node state and epoch record, and re-validates each record. A listing that fails with
/// [`Error::Corrupt`] (a record that does not decode, a broken page) is
/// reported and the check goes on with the next family: the API cannot step
/// over a record it cannot decode, but one bad family hides no other.
pub async fn verify_transaction<T>(tx: &mut T) -> Result<VerifyReport>
where
    T: FileStore
        + LockStore
        + NodeStore
        + ExtStore
        + ClientStore
        + OpenStore
        + LeaseStore
        + WaiterStore
        + ?Sized,
{
    let mut report = VerifyReport::default();
    let files = walk(tx, pages::files(PAGE), &mut report, |file| {
        validate::file(file).map_err(|e| (format!("files/{}", file.handle), e))
    })
    .await?;
    report.files = files;
    let locks = walk(tx, pages::locks(PAGE), &mut report, |lock| {
        validate::lock(lock).map_err(|e| (format!("locks/{}", lock.id), e))
    })
    .await?;
    report.locks = locks;
    let clients = walk(tx, pages::clients(PAGE), &mut report, |client| {
        validate::client(client).map_err(|e| (format!("clients/{}", client.client_id), e))
    })
    .await?;
    report.clients = clients;
    match tx.ext_tables().await {
        Ok(tables) => {
            for table in &tables {
                let records = walk(tx, pages::ext(table, PAGE), &mut report, |record| {
                    validate::ext_record(table, &record.key, &record.value)
                        .map_err(|e| (format!("ext/{table}"), e))
                })
                .await?;
                report.ext_records += records;
            }
        }
        Err(e) => undecodable(&mut report, "ext", e)?,
    }
    report.open_states = walk(tx, pages::opens(PAGE), &mut report, |open| {
        validate::open(open).map_err(|e| (format!("opens/{}", open.id), e))
    })
    .await?;
    report.open_states += walk(tx, pages::leases(PAGE), &mut report, |lease| {
        validate::lease(lease).map_err(|e| (format!("leases/{}", lease.id), e))
    })
    .await?;
    report.open_states += walk(tx, pages::delegations(PAGE), &mut report, |d| {
        validate::delegation(d).map_err(|e| (format!("delegations/{}", d.id), e))
    })
    .await?;
    report.waiters = walk(tx, pages::waiters(PAGE), &mut report, |waiter| {
        validate::waiter(waiter).map_err(|e| (format!("waiters/{}", waiter.id), e))
    })
    .await?;
    match tx.list_nodes().await {
        Ok(nodes) => {
            for node in &nodes {
                if let Err(e) = validate::node(node) {
                    invalid(&mut report, format!("nodes/{}", node.node_id), e);
                }
            }
        }
        Err(e) => undecodable(&mut report, "nodes", e)?,
    }
    match tx.list_epoch_records().await {
        Ok(records) => {
            for record in &records {
                if let Err(e) = validate::epoch_record(record) {
                    invalid(&mut report, format!("epoch_records/{}", record.epoch), e);
                }
            }
        }
        Err(e) => undecodable(&mut report, "epoch_records", e)?,
    }
    Ok(report)
}

/// Walks one family, validating each record; returns how many it examined.
async fn walk<T, R: Paged>(
    tx: &mut T,
    mut pages: Pages<R>,
    report: &mut VerifyReport,
    check: impl Fn(&R) -> std::result::Result<(), (String, Error)>,
) -> Result<u64>
where
    T: FileStore
        + LockStore
        + NodeStore
        + ExtStore
        + ClientStore
        + OpenStore
        + LeaseStore
        + WaiterStore
        + ?Sized,
{
    let mut examined = 0;
    loop {
        match pages.next(tx).await {
            Ok(Some(page)) => {
                for record in &page {
                    examined += 1;
                    if let Err((location, e)) = check(record) {
                        invalid(report, location, e);
                    }
                }
            }
            Ok(None) => return Ok(examined),
            Err(e) => {
                undecodable(report, R::FAMILY, e)?;
                return Ok(examined);
            }
        }
    }
}

fn invalid(report: &mut VerifyReport, location: String, error: Error) {
    report.problems.push(Problem {
        kind: ProblemKind::InvalidRecord,
        location,
        detail: error.to_string(),
    });
}

/// Records a `Corrupt` listing as a problem; any other error ends the check.
fn undecodable(report: &mut VerifyReport, table: &str, error: Error) -> Result<()> {
    match error {
        Error::Corrupt(detail) => {
            report.problems.push(Problem {
                kind: ProblemKind::Undecodable,
                location: table.to_owned(),
                detail,
            });
            Ok(())
        }
        other => Err(other),
    }
}
