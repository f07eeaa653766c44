//! SMB durable and persistent handles: disconnect, reconnect (consumed by
//! exactly one reconnect), and scavenging of expired ones.

use uuid::Uuid;

use super::model::{DurableState, OpenRecord};
use super::share::remove_open;
use super::store::OpenQuery;
use crate::error::{Error, Result};
use crate::file::FileHandle;
use crate::time::Timestamp;
use crate::tx::MetadataTransaction;
use crate::validate;

/// The outcome of [`disconnect_open`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Disconnect {
    /// A durable or persistent open, kept (with its locks and lease) as
    /// disconnected since the given time.
    Kept(OpenRecord),
    /// An ordinary open: closed, as by [`crate::close_open`].
    Closed(OpenRecord),
}

/// How a reconnect names the handle it wants back.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Reconnect {
    /// SMB2 durable v2 / persistent reconnect: by `CreateGuid`.
    CreateGuid(Uuid),
    /// SMB2 durable v1 reconnect: the client's disconnected open of this file
    /// (the first in id order when it has several).
    FileClient {
        /// The file.
        file: FileHandle,
        /// The client.
        client_id: String,
    },
}

/// The client lost its connection at `at`: a durable or persistent open is
/// kept, marked disconnected (a later reconnect or [`expire_durable`] ends
/// it); any other open is closed with its locks.
///
/// # Errors
/// [`Error::OpenStateNotFound`] for an unknown open; [`Error::Invalid`] for
/// an open that is already disconnected or a bad time (nothing written).
pub async fn disconnect_open(
    tx: &mut (dyn MetadataTransaction + '_),
    id: Uuid,
    at: Timestamp,
) -> Result<Disconnect> {
    validate::timestamp("at", at)?;
    let mut open = tx
        .get_open(id)
        .await?
        .ok_or(Error::OpenStateNotFound { kind: "open", id })?;
    if open.disconnected_at.is_some() {
        return Err(Error::Invalid(format!("open {id}: already disconnected")));
    }
    if open.durable == DurableState::None {
        remove_open(tx, &open).await?;
        return Ok(Disconnect::Closed(open));
    }
    open.disconnected_at = Some(at);
    tx.put_open(&open).await?;
    Ok(Disconnect::Kept(open))
}

/// Reconnects a disconnected durable or persistent open: it becomes
/// connected again, stamped with `epoch`, and is returned. The reconnect
/// consumes the disconnected handle: of concurrent reconnects of one handle,
/// exactly one commits with `Some` (the others conflict and, retried, find
/// nothing). `None` when no disconnected open matches.
///
/// # Errors
/// [`Error::Invalid`] for a bad file or client id; backend errors.
pub async fn reconnect_open(
    tx: &mut (dyn MetadataTransaction + '_),
    by: &Reconnect,
    epoch: u64,
) -> Result<Option<OpenRecord>> {
    let query = match by {
        Reconnect::CreateGuid(guid) => OpenQuery {
            create_guid: Some(*guid),
            ..OpenQuery::default()
        },
        Reconnect::FileClient { file, client_id } => OpenQuery {
            file: Some(file.clone()),
            client_id: Some(client_id.clone()),
            ..OpenQuery::default()
        },
    };
    validate::open_query(&query)?;
    let found = tx.list_opens(&query).await?;
    let Some(mut open) = found.into_iter().find(|o| o.disconnected_at.is_some()) else {
        return Ok(None);
    };
    open.disconnected_at = None;
    open.server_epoch = epoch;
    tx.put_open(&open).await?;
    Ok(Some(open))
}

/// The instant a disconnected durable open expires; `None` for a connected
/// open or one that never expires (persistent).
pub fn durable_expiry(open: &OpenRecord) -> Option<Timestamp> {
    match (open.durable, open.disconnected_at) {
        (DurableState::Durable { timeout_ms }, Some(at)) => Some(Timestamp::from_micros(
            at.as_micros()
                .saturating_add(i64::from(timeout_ms).saturating_mul(1000)),
        )),
        _ => None,
    }
}

/// Scavenges every disconnected durable open whose timeout has run out by
/// `now` (expiry at or before `now`), with its locks and unused lease, in
/// this transaction; returns them as they were. Connected opens,
/// persistent ones and durable ones still in their timeout are kept.
///
/// # Errors
/// [`Error::Invalid`] for a bad time; backend errors.
pub async fn expire_durable(
    tx: &mut (dyn MetadataTransaction + '_),
    now: Timestamp,
) -> Result<Vec<OpenRecord>> {
    validate::timestamp("now", now)?;
    let candidates = tx
        .list_opens(&OpenQuery {
            // `before` is exclusive; a zero timeout expires at its disconnect.
            disconnected_before: Some(Timestamp::from_micros(now.as_micros().saturating_add(1))),
            ..OpenQuery::default()
        })
        .await?;
    let mut expired = Vec::new();
    for open in candidates {
        if durable_expiry(&open).is_some_and(|at| at <= now) {
            remove_open(tx, &open).await?;
            expired.push(open);
        }
    }
    Ok(expired)
}
