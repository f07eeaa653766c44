//! `fsmeta locks`: who holds what on which file.

use fsmeta::{Epochs, FileHandle, LockQuery, MetadataStore, PersistedLock};

use crate::args::LocksArgs;
use crate::json::LockJson;
use crate::output::{Out, Table, cell, deny_mode, lock_type, range, rfc3339};
use crate::{CliError, Outcome};

/// Locks per page when the whole store is listed.
const PAGE: usize = 1024;

pub async fn run(
    store: &dyn MetadataStore,
    args: &LocksArgs,
    out: &mut Out,
) -> Result<Outcome, CliError> {
    let query = LockQuery {
        file_id: args.file.as_deref().map(FileHandle::from_hex).transpose()?,
        owner_id: args.owner.clone(),
        client_id: args.client.clone(),
        share_name: args.share.clone(),
        server_epoch_below: None,
        server_epoch: None,
    };
    // One transaction: the locks and the epoch model they are judged by
    // come from the same snapshot.
    let mut tx = store.begin().await?;
    let epochs = Epochs::load(&mut *tx).await?;
    let mut sink = if args.json {
        Sink::json(out)?
    } else {
        Sink::table()
    };
    let mut emit = |lock: &PersistedLock, out: &mut Out| {
        let stale = epochs.is_dead(lock.server_epoch);
        if args.stale && !stale {
            return Ok(());
        }
        sink.push(out, lock, stale)
    };
    if query == LockQuery::default() && !args.stale {
        // Everything: page by page, never the whole store in memory.
        let mut pages = fsmeta::pages::locks(PAGE);
        while let Some(page) = pages.next(&mut *tx).await? {
            for lock in &page {
                emit(lock, out)?;
            }
        }
    } else {
        let mut query = query;
        if args.stale {
            // Every dead epoch is below the global counter: let the epoch index narrow it.
            query.server_epoch_below = Some(epochs.global());
        }
        for lock in &tx.list_locks(&query).await? {
            emit(lock, out)?;
        }
    }
    sink.finish(out)?;
    let _ = tx.rollback().await;
    Ok(Outcome::Ok)
}

/// Where the locks go: a table or a JSON array, both streamed.
enum Sink {
    Table(Table),
    Json { first: bool },
}

impl Sink {
    fn table() -> Self {
        Sink::Table(Table::new(&[
            "ID", "SHARE", "FILE", "OWNER", "CLIENT", "TYPE", "RANGE", "DENY", "ACQUIRED", "EPOCH",
            "",
        ]))
    }

    fn json(out: &mut Out) -> Result<Self, CliError> {
        use std::io::Write;
        out.writer()
            .write_all(b"[")
            .map_err(CliError::from_stdout)?;
        Ok(Sink::Json { first: true })
    }

    fn push(&mut self, out: &mut Out, lock: &PersistedLock, stale: bool) -> Result<(), CliError> {
        match self {
            Sink::Table(table) => table.row(
                out,
                vec![
                    lock.id.to_string(),
                    cell(&lock.share_name),
                    lock.file_id.to_hex(),
                    cell(&lock.owner_id),
                    cell(&lock.client_id),
                    lock_type(lock.lock_type).to_owned(),
                    range(lock.offset, lock.length),
                    deny_mode(lock.share_reservation).to_owned(),
                    rfc3339(lock.acquired_at),
                    lock.server_epoch.to_string(),
                    if stale { "STALE" } else { "" }.to_owned(),
                ],
            ),
            Sink::Json { first } => {
                use std::io::Write;
                let w = out.writer();
                w.write_all(if *first { b"\n  " } else { b",\n  " })
                    .map_err(CliError::from_stdout)?;
                *first = false;
                serde_json::to_writer(w, &LockJson::new(lock, stale))?;
                Ok(())
            }
        }
    }

    fn finish(self, out: &mut Out) -> Result<(), CliError> {
        match self {
            Sink::Table(table) => {
                if table.finish(out)? == 0 {
                    out.line("no locks")?;
                }
                Ok(())
            }
            Sink::Json { first } => out.line(if first { "]" } else { "\n]" }),
        }
    }
}
