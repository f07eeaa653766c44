//! `fsmeta clients`: the client records (NFSv4 stable storage, NLM monitor
//! list) a store keeps, with how many locks each holds.

use fsmeta::{ClientQuery, ClientRecord, LockQuery, MetadataStore, MetadataTransaction};
use serde::Serialize;

use crate::args::ClientsArgs;
use crate::output::{Out, Table, cell, rfc3339, yes_no};
use crate::{CliError, Outcome};

/// One client of `fsmeta clients --json` (number policy: see `json.rs`).
#[derive(Serialize)]
struct ClientJson<'a> {
    client_id: &'a str,
    node_id: &'a str,
    /// `nfs4`, `nlm` or `smb`.
    protocol: String,
    /// The owner's bytes in lowercase hex (exact).
    owner_hex: String,
    /// The owner with non-printable bytes escaped (`\xNN`), for reading.
    owner: String,
    /// The boot verifier in lowercase hex.
    verifier: String,
    /// The principal in lowercase hex, or null.
    principal_hex: Option<String>,
    epoch: String,
    reclaim_complete: bool,
    last_renewed: String,
    expired: bool,
    callback: Option<&'a str>,
    /// Locks the client holds.
    locks: u64,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Opaque bytes as text: printable ASCII as is, everything else `\xNN`.
fn escaped(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

pub async fn run(
    store: &dyn MetadataStore,
    args: &ClientsArgs,
    out: &mut Out,
) -> Result<Outcome, CliError> {
    // One snapshot: the clients and their lock counts agree.
    let mut tx = store.begin().await?;
    let query = ClientQuery {
        node_id: args.node.clone(),
        ..ClientQuery::default()
    };
    let clients = tx.list_clients(&query).await?;
    let counts = lock_counts(&mut *tx, &clients).await?;
    let _ = tx.rollback().await;
    if args.json {
        let rows: Vec<ClientJson<'_>> = clients
            .iter()
            .zip(&counts)
            .map(|(c, &locks)| ClientJson {
                client_id: &c.client_id,
                node_id: &c.node_id,
                protocol: c.protocol.to_string(),
                owner_hex: hex(&c.owner),
                owner: escaped(&c.owner),
                verifier: hex(&c.verifier),
                principal_hex: c.principal.as_deref().map(hex),
                epoch: c.epoch.to_string(),
                reclaim_complete: c.reclaim_complete,
                last_renewed: rfc3339(c.last_renewed),
                expired: c.expired,
                callback: c.callback.as_deref(),
                locks,
            })
            .collect();
        let text = serde_json::to_string_pretty(&rows)?;
        out.line(text)?;
        return Ok(Outcome::Ok);
    }
    let mut table = Table::new(&[
        "CLIENT",
        "NODE",
        "PROTOCOL",
        "OWNER",
        "EPOCH",
        "RECLAIMED",
        "RENEWED",
        "LOCKS",
        "",
    ]);
    for (c, locks) in clients.iter().zip(&counts) {
        table.row(
            out,
            vec![
                cell(&c.client_id),
                cell(&c.node_id),
                c.protocol.to_string(),
                escaped(&c.owner),
                c.epoch.to_string(),
                yes_no(c.reclaim_complete).to_owned(),
                rfc3339(c.last_renewed),
                locks.to_string(),
                if c.expired { "EXPIRED" } else { "" }.to_owned(),
            ],
        )?;
    }
    if table.finish(out)? == 0 {
        out.line("no clients")?;
    }
    Ok(Outcome::Ok)
}

/// How many locks each client holds (one indexed query per client).
async fn lock_counts(
    tx: &mut (dyn MetadataTransaction + '_),
    clients: &[ClientRecord],
) -> Result<Vec<u64>, CliError> {
    let mut counts = Vec::with_capacity(clients.len());
    for client in clients {
        let locks = tx
            .list_locks(&LockQuery::by_client(&client.client_id))
            .await?;
        counts.push(locks.len() as u64);
    }
    Ok(counts)
}
