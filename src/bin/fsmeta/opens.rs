//! `fsmeta opens` and `fsmeta leases`: the opens (share modes, durable
//! handles) and the leases, oplocks and delegations a store holds.

use fsmeta::{
    DelegationQuery, DelegationRecord, DurableState, FileHandle, LeaseKey, LeaseQuery, LeaseRecord,
    MetadataStore, OpenQuery, OpenRecord, ShareMask,
};
use serde_json::{Value, json};

use crate::args::{LeasesArgs, OpensArgs};
use crate::output::{Out, Table, cell, rfc3339};
use crate::{CliError, Outcome};

/// Records per page when the whole store is listed.
const PAGE: usize = 1024;

/// `rwd` with `-` for a missing right.
fn mask(m: ShareMask) -> String {
    [
        (ShareMask::READ, 'r'),
        (ShareMask::WRITE, 'w'),
        (ShareMask::DELETE, 'd'),
    ]
    .iter()
    .map(|&(bit, c)| if m.contains(bit) { c } else { '-' })
    .collect()
}

fn durable(d: DurableState) -> String {
    match d {
        DurableState::None => "-".into(),
        DurableState::Durable { timeout_ms } => format!("durable {timeout_ms}ms"),
        DurableState::Persistent => "persistent".into(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `R`, `H`, `W` letters of a lease state (`-` for none).
fn lease_state(bits: u8) -> String {
    let letters: String = [(1, 'R'), (2, 'H'), (4, 'W')]
        .iter()
        .filter(|&&(bit, _)| bits & bit != 0)
        .map(|&(_, c)| c)
        .collect();
    if letters.is_empty() {
        "-".into()
    } else {
        letters
    }
}

fn open_json(o: &OpenRecord) -> Value {
    json!({
        "id": o.id.to_string(), "file": o.file.to_hex(), "share": o.share_name,
        "client": o.client_id, "owner": o.owner_id, "access": mask(o.access),
        "deny": mask(o.deny), "protocol": format!("{:?}", o.protocol),
        "durable": durable(o.durable),
        "create_guid": o.create_guid.map(|g| g.to_string()),
        "app_instance_id": o.app_instance_id.map(|g| g.to_string()),
        "lease_key": o.lease_key.map(|k| hex(&k)),
        "disconnected_at": o.disconnected_at.map(rfc3339),
        "epoch": o.server_epoch, "opened_at": rfc3339(o.opened_at),
    })
}

fn lease_json(l: &LeaseRecord) -> Value {
    json!({
        "kind": if l.oplock { "oplock" } else { "lease" },
        "id": l.id.to_string(), "file": l.file.to_hex(), "share": l.share_name,
        "client": l.client_id, "lease_key": hex(&l.lease_key),
        "parent_lease_key": l.parent_lease_key.map(|k: LeaseKey| hex(&k)),
        "state": lease_state(l.state.bits()), "lease_epoch": l.lease_epoch,
        "breaking": l.breaking, "break_to": lease_state(l.break_to.bits()),
        "break_started_at": l.break_started_at.map(rfc3339), "directory": l.directory,
        "epoch": l.server_epoch,
    })
}

fn delegation_json(d: &DelegationRecord) -> Value {
    json!({
        "kind": "delegation", "id": d.id.to_string(), "file": d.file.to_hex(),
        "share": d.share_name, "client": d.client_id,
        "type": format!("{:?}", d.kind).to_lowercase(), "recalled": d.recalled,
        "revoked": d.revoked, "notification_mask": d.notification_mask,
        "epoch": d.server_epoch, "granted_at": rfc3339(d.granted_at),
    })
}

/// Prints `rows` as a table, or `values` as a JSON array.
fn print(
    out: &mut Out,
    json: bool,
    headers: &[&'static str],
    rows: Vec<(Vec<String>, Value)>,
    empty: &str,
) -> Result<Outcome, CliError> {
    if json {
        let values: Vec<Value> = rows.into_iter().map(|(_, v)| v).collect();
        out.line(serde_json::to_string_pretty(&values)?)?;
        return Ok(Outcome::Ok);
    }
    let mut table = Table::new(headers);
    for (cells, _) in rows {
        table.row(out, cells)?;
    }
    if table.finish(out)? == 0 {
        out.line(empty)?;
    }
    Ok(Outcome::Ok)
}

pub async fn opens(
    store: &dyn MetadataStore,
    args: &OpensArgs,
    out: &mut Out,
) -> Result<Outcome, CliError> {
    let query = OpenQuery {
        file: args.file.as_deref().map(FileHandle::from_hex).transpose()?,
        client_id: args.client.clone(),
        share_name: args.share.clone(),
        ..OpenQuery::default()
    };
    let mut tx = store.begin().await?;
    let mut opens = Vec::new();
    if query == OpenQuery::default() {
        let mut pages = fsmeta::pages::opens(PAGE);
        while let Some(page) = pages.next(&mut *tx).await? {
            opens.extend(page);
        }
    } else {
        opens = tx.list_opens(&query).await?;
    }
    let _ = tx.rollback().await;
    let rows = opens
        .iter()
        .filter(|o| !args.disconnected || o.disconnected_at.is_some())
        .map(|o| {
            let cells = vec![
                o.id.to_string(),
                cell(&o.share_name),
                o.file.to_hex(),
                cell(&o.client_id),
                cell(&o.owner_id),
                mask(o.access),
                mask(o.deny),
                durable(o.durable),
                o.disconnected_at.map_or_else(|| "-".into(), rfc3339),
                o.server_epoch.to_string(),
            ];
            (cells, open_json(o))
        })
        .collect();
    let headers = [
        "ID",
        "SHARE",
        "FILE",
        "CLIENT",
        "OWNER",
        "ACCESS",
        "DENY",
        "DURABLE",
        "DISCONNECTED",
        "EPOCH",
    ];
    print(out, args.json, &headers, rows, "no opens")
}

pub async fn leases(
    store: &dyn MetadataStore,
    args: &LeasesArgs,
    out: &mut Out,
) -> Result<Outcome, CliError> {
    let file = args.file.as_deref().map(FileHandle::from_hex).transpose()?;
    let mut tx = store.begin().await?;
    let (leases, delegations) = if file.is_none() && args.client.is_none() {
        let mut leases = Vec::new();
        let mut pages = fsmeta::pages::leases(PAGE);
        while let Some(page) = pages.next(&mut *tx).await? {
            leases.extend(page);
        }
        let mut delegations = Vec::new();
        let mut pages = fsmeta::pages::delegations(PAGE);
        while let Some(page) = pages.next(&mut *tx).await? {
            delegations.extend(page);
        }
        (leases, delegations)
    } else {
        let lq = LeaseQuery {
            file: file.clone(),
            client_id: args.client.clone(),
            ..Default::default()
        };
        let dq = DelegationQuery {
            file,
            client_id: args.client.clone(),
            ..Default::default()
        };
        (tx.list_leases(&lq).await?, tx.list_delegations(&dq).await?)
    };
    let _ = tx.rollback().await;
    let mut rows: Vec<(Vec<String>, Value)> = leases
        .iter()
        .map(|l| {
            let state = if l.breaking {
                format!(
                    "{} -> {}",
                    lease_state(l.state.bits()),
                    lease_state(l.break_to.bits())
                )
            } else {
                lease_state(l.state.bits())
            };
            let cells = vec![
                if l.oplock { "oplock" } else { "lease" }.to_owned(),
                l.id.to_string(),
                cell(&l.share_name),
                l.file.to_hex(),
                cell(&l.client_id),
                state,
                if l.breaking { "BREAKING" } else { "" }.to_owned(),
                l.server_epoch.to_string(),
            ];
            (cells, lease_json(l))
        })
        .collect();
    rows.extend(delegations.iter().map(|d| {
        let flag = match (d.revoked, d.recalled) {
            (true, _) => "REVOKED",
            (false, true) => "RECALLED",
            _ => "",
        };
        let cells = vec![
            "delegation".to_owned(),
            d.id.to_string(),
            cell(&d.share_name),
            d.file.to_hex(),
            cell(&d.client_id),
            format!("{:?}", d.kind).to_lowercase(),
            flag.to_owned(),
            d.server_epoch.to_string(),
        ];
        (cells, delegation_json(d))
    }));
    let headers = [
        "KIND", "ID", "SHARE", "FILE", "CLIENT", "STATE", "", "EPOCH",
    ];
    print(out, args.json, &headers, rows, "no leases or delegations")
}
