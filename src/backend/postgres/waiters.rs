//! [`WaiterStore`] on PostgreSQL (the `waiters` table, migration 9) and
//! the wake-up feed: `LISTEN` on a dedicated connection.
//!
//! The notifications come from the trigger migration 9 puts on `locks` and
//! `waiters`: every `DELETE` statement notifies channel `fsmeta_wake_` ||
//! md5(schema) once per file it deleted rows of, inside the deleting
//! transaction, so a notification exists only if that transaction commits
//! (and costs no round trip). NOTIFY is not durable: a listener whose
//! connection drops misses what was sent meanwhile. The listener then waits
//! [`WaitersOptions::relisten_after`] and listens again; what it missed is
//! found by the subscription's poll ([`WaitersOptions::poll_interval`]).

use std::time::Duration;

use async_trait::async_trait;
use sea_orm::sea_query::OnConflict;
use sea_orm::sqlx::postgres::PgListener;
use sea_orm::sqlx::{self, PgPool};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Select,
};
use tokio::sync::broadcast;
use uuid::Uuid;

use super::entity::waiters;
use super::rows::{
    checked_time, handle_from_db, page_size, small_enum, stored, time_from_db, to_db_time,
    u64_from_db,
};
use super::tx::{DeferIn, PgTx};
use crate::error::{Error, Result};
use crate::file::FileHandle;
use crate::validate;
use crate::waiter::{Waiter, WaiterQuery, WaiterStore, WaitersOptions, WakeFeed};

/// Announcements buffered per feed before a slow subscriber lags.
const FEED_CAPACITY: usize = 4096;

/// `SELECT` of `waiters`, with `since` checked like the other timestamps.
fn select_waiters() -> Select<waiters::Entity> {
    use waiters::Column as C;
    waiters::Entity::find()
        .select_only()
        .columns([
            C::Id,
            C::FileId,
            C::ShareName,
            C::OwnerId,
            C::ClientId,
            C::NodeId,
            C::LockType,
            C::Offset,
            C::Length,
            C::ShareReservation,
            C::Flavor,
            C::Position,
            C::Context,
        ])
        .expr_as(checked_time(C::Since), "since")
}

/// The `waiters` row of a (validated) waiter.
fn waiter_row(w: &Waiter) -> Result<waiters::ActiveModel> {
    use sea_orm::prelude::Decimal;
    Ok(waiters::ActiveModel {
        id: Set(w.id),
        file_id: Set(w.file_id.as_bytes().to_vec()),
        share_name: Set(w.share_name.clone()),
        owner_id: Set(w.owner_id.clone()),
        client_id: Set(w.client_id.clone()),
        node_id: Set(w.node_id.clone()),
        lock_type: Set(i16::from(w.lock_type as u8)),
        offset: Set(Decimal::from(w.offset)),
        length: Set(Decimal::from(w.length)),
        share_reservation: Set(i16::from(w.share_reservation as u8)),
        flavor: Set(i16::from(w.flavor as u8)),
        position: Set(Decimal::from(w.position)),
        since: Set(to_db_time("since", w.since)?),
        context: Set(w.context.clone()),
    })
}

/// `ON CONFLICT (id) DO UPDATE` of every other column: `put_waiter` is an upsert.
fn waiter_upsert() -> OnConflict {
    use waiters::Column as C;
    OnConflict::column(C::Id)
        .update_columns([
            C::FileId,
            C::ShareName,
            C::OwnerId,
            C::ClientId,
            C::NodeId,
            C::LockType,
            C::Offset,
            C::Length,
            C::ShareReservation,
            C::Flavor,
            C::Position,
            C::Since,
            C::Context,
        ])
        .to_owned()
}

/// The waiter a `waiters` row holds; `Corrupt` when it breaks the model.
pub(super) fn waiter_from_row(row: waiters::Model) -> Result<Waiter> {
    let waiter = Waiter {
        id: row.id,
        file_id: handle_from_db("waiters.file_id", row.file_id)?,
        share_name: row.share_name,
        owner_id: row.owner_id,
        client_id: row.client_id,
        node_id: row.node_id,
        lock_type: small_enum("waiters.lock_type", row.lock_type)?,
        offset: u64_from_db("waiters.offset", row.offset)?,
        length: u64_from_db("waiters.length", row.length)?,
        share_reservation: small_enum("waiters.share_reservation", row.share_reservation)?,
        flavor: small_enum("waiters.flavor", row.flavor)?,
        position: u64_from_db("waiters.position", row.position)?,
        since: time_from_db(row.since),
        context: row.context,
    };
    validate::waiter(&waiter).map_err(stored("waiters"))?;
    Ok(waiter)
}

/// The filters of a [`WaiterQuery`], ANDed.
fn waiter_condition(query: &WaiterQuery) -> Condition {
    use waiters::Column as C;
    Condition::all()
        .add_option(query.file_id.as_ref().map(|f| C::FileId.eq(f.as_bytes())))
        .add_option(query.owner_id.as_deref().map(|o| C::OwnerId.eq(o)))
        .add_option(query.client_id.as_deref().map(|c| C::ClientId.eq(c)))
        .add_option(query.node_id.as_deref().map(|n| C::NodeId.eq(n)))
}

#[async_trait]
impl WaiterStore for PgTx {
    async fn put_waiter(&mut self, waiter: &Waiter) -> Result<()> {
        let op = "put_waiter";
        self.usable(op)?;
        validate::waiter(waiter)?;
        waiters::Entity::insert(waiter_row(waiter)?)
            .on_conflict(waiter_upsert())
            .defer_in(self);
        Ok(())
    }

    async fn get_waiter(&mut self, id: Uuid) -> Result<Option<Waiter>> {
        let op = "get_waiter";
        self.usable(op)?;
        let row = select_waiters()
            .filter(waiters::Column::Id.eq(id))
            .one(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?;
        row.map(waiter_from_row).transpose()
    }

    async fn delete_waiter(&mut self, id: Uuid) -> Result<bool> {
        let op = "delete_waiter";
        self.usable(op)?;
        let deleted = waiters::Entity::delete_many()
            .filter(waiters::Column::Id.eq(id))
            .exec(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?;
        Ok(deleted.rows_affected > 0)
    }

    async fn list_waiters(&mut self, query: &WaiterQuery) -> Result<Vec<Waiter>> {
        let op = "list_waiters";
        self.usable(op)?;
        validate::waiter_query(query)?;
        // BYTEA sorts bytewise, like `FileHandle::as_bytes`.
        select_waiters()
            .filter(waiter_condition(query))
            .order_by_asc(waiters::Column::FileId)
            .order_by_asc(waiters::Column::Position)
            .order_by_asc(waiters::Column::Id)
            .all(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?
            .into_iter()
            .map(waiter_from_row)
            .collect()
    }

    async fn delete_waiters(&mut self, query: &WaiterQuery) -> Result<u64> {
        let op = "delete_waiters";
        self.usable(op)?;
        validate::waiter_query(query)?;
        if query.is_empty() {
            return Err(Error::Invalid(
                "delete_waiters: the query sets no field (it would delete every waiter)".into(),
            ));
        }
        let deleted = waiters::Entity::delete_many()
            .filter(waiter_condition(query))
            .exec(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?;
        Ok(deleted.rows_affected)
    }

    async fn list_waiters_page(
        &mut self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Waiter>> {
        let op = "list_waiters_page";
        self.usable(op)?;
        validate::page_limit(limit)?;
        let mut query = select_waiters();
        if let Some(after) = after {
            query = query.filter(waiters::Column::Id.gt(after));
        }
        query
            .order_by_asc(waiters::Column::Id)
            .limit(page_size(limit))
            .all(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?
            .into_iter()
            .map(waiter_from_row)
            .collect()
    }
}

/// A listener error as fsmeta's.
fn listen_error(what: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| Error::backend(format!("postgres: {what}"), e)
}

/// A `LISTEN`ing connection on `channel`, taken from the store's pool.
async fn listener(pool: &PgPool, channel: &str) -> Result<PgListener> {
    let mut listener = PgListener::connect_with(pool)
        .await
        .map_err(listen_error("connecting the wake-up listener"))?;
    // A lost connection is noticed, not silently replaced: see `listen_loop`.
    listener.eager_reconnect(false);
    listener
        .listen(channel)
        .await
        .map_err(listen_error("LISTEN on the wake-up channel"))?;
    Ok(listener)
}

/// The wake-up feed of the store on `db`: `LISTEN` established before this
/// returns (so nothing committed after it is missed while the connection
/// holds), then a task forwarding each notified file. The listener holds one
/// connection of the store's pool while the feed lives.
pub(super) async fn wake_feed(
    db: &DatabaseConnection,
    options: &WaitersOptions,
) -> Result<WakeFeed> {
    let pool = db.get_postgres_connection_pool().clone();
    // The trigger's channel: the pool's connections carry the store's search_path.
    let channel: String = sqlx::query_scalar("SELECT 'fsmeta_wake_' || md5(current_schema())")
        .fetch_one(&pool)
        .await
        .map_err(listen_error("reading the wake-up channel name"))?;
    let first = listener(&pool, &channel).await?;
    let (sender, receiver) = broadcast::channel(FEED_CAPACITY);
    let task = tokio::spawn(listen_loop(
        first,
        pool,
        channel,
        sender,
        options.relisten_after,
    ));
    Ok(WakeFeed::from_receiver(receiver, Some(task)))
}

/// Forwards notifications until the feed is dropped (which aborts it). On a
/// lost connection it waits `relisten_after`, then listens again, for as
/// long as it takes; the notifications of the gap are lost (the poll finds
/// their waiters).
async fn listen_loop(
    mut listener: PgListener,
    pool: PgPool,
    channel: String,
    sender: broadcast::Sender<FileHandle>,
    relisten_after: Duration,
) {
    loop {
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => match decode_hex(notification.payload()) {
                    Some(file) => {
                        let _ = sender.send(file);
                    }
                    None => tracing::warn!(
                        payload = notification.payload(),
                        "fsmeta: a wake-up notification that names no file handle"
                    ),
                },
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "fsmeta: the wake-up listener failed");
                    break;
                }
            }
        }
        drop(listener);
        tracing::debug!("fsmeta: the wake-up listener lost its connection; listening again soon");
        listener = loop {
            tokio::time::sleep(relisten_after).await;
            match self::listener(&pool, &channel).await {
                Ok(listener) => break listener,
                Err(e) => {
                    tracing::debug!(error = %e, "fsmeta: the wake-up listener cannot reconnect yet")
                }
            }
        };
    }
}

/// A file handle from the trigger's lowercase hex payload.
fn decode_hex(hex: &str) -> Option<FileHandle> {
    let digits = hex.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |d: u8| char::from(d).to_digit(16).map(|v| v as u8);
    let bytes = digits
        .chunks(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect::<Option<Vec<u8>>>()?;
    FileHandle::new(bytes).ok()
}
