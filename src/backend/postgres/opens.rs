//! [`OpenStore`] on PostgreSQL: the `opens` table (migration 8), and the
//! conversions `leases.rs` shares (every stored value checked: a row edited
//! by hand is `Corrupt`, never a panic).

use async_trait::async_trait;
use sea_orm::prelude::{DateTimeUtc, Decimal};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, EntityTrait, Iterable, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use super::entity::opens;
use super::rows::{handle_from_db, page_size, stored, time_from_db, to_db_time, u64_from_db};
use super::tx::{DeferIn, PgTx};
use crate::error::{Error, Result};
use crate::open::{
    DurableState, LeaseKey, OpenProtocol, OpenQuery, OpenRecord, OpenStore, ShareMask,
};
use crate::validate;

/// Maps a model-rule error about a stored column to `Corrupt`.
pub(super) fn corrupt(column: &'static str) -> impl Fn(Error) -> Error {
    move |e| match e {
        Error::Invalid(why) | Error::Corrupt(why) => Error::Corrupt(format!("{column}: {why}")),
        other => other,
    }
}

/// A small integer column as a `u8`.
pub(super) fn byte(column: &'static str, value: i16) -> Result<u8> {
    u8::try_from(value).map_err(|_| Error::Corrupt(format!("{column}: {value} is out of range")))
}

/// A 16-byte `BYTEA` column.
pub(super) fn key(column: &'static str, bytes: Vec<u8>) -> Result<LeaseKey> {
    LeaseKey::try_from(bytes.as_slice())
        .map_err(|_| Error::Corrupt(format!("{column}: {} bytes, 16 expected", bytes.len())))
}

/// An optional timestamp as `TIMESTAMPTZ NULL`.
pub(super) fn optional_time(
    field: &str,
    value: Option<crate::Timestamp>,
) -> Result<Option<DateTimeUtc>> {
    value.map(|t| to_db_time(field, t)).transpose()
}

/// `ON CONFLICT (id) DO UPDATE` of every other column: a put is an upsert.
pub(super) fn upsert<C: ColumnTrait + Iterable>(id: C) -> OnConflict {
    OnConflict::column(id)
        .update_columns(C::iter().filter(|c| c.as_str() != id.as_str()))
        .to_owned()
}

fn open_row(o: &OpenRecord) -> Result<opens::ActiveModel> {
    Ok(opens::ActiveModel {
        id: Set(o.id),
        file: Set(o.file.as_bytes().to_vec()),
        share_name: Set(o.share_name.clone()),
        client_id: Set(o.client_id.clone()),
        owner_id: Set(o.owner_id.clone()),
        access: Set(i16::from(o.access.bits())),
        deny: Set(i16::from(o.deny.bits())),
        protocol: Set(i16::from(o.protocol as u8)),
        durable: Set(i16::from(o.durable.tag())),
        timeout_ms: Set(i64::from(o.durable.timeout_ms())),
        create_guid: Set(o.create_guid),
        app_instance_id: Set(o.app_instance_id),
        lease_key: Set(o.lease_key.map(|k| k.to_vec())),
        disconnected_at: Set(optional_time("disconnected_at", o.disconnected_at)?),
        lock_sequences: Set(o.lock_sequences.clone()),
        server_epoch: Set(Decimal::from(o.server_epoch)),
        opened_at: Set(to_db_time("opened_at", o.opened_at)?),
    })
}

pub(super) fn open_from_row(r: opens::Model) -> Result<OpenRecord> {
    let timeout_ms = u32::try_from(r.timeout_ms)
        .map_err(|_| Error::Corrupt(format!("opens.timeout_ms: {} is not a u32", r.timeout_ms)))?;
    let open = OpenRecord {
        id: r.id,
        file: handle_from_db("opens.file", r.file)?,
        share_name: r.share_name,
        client_id: r.client_id,
        owner_id: r.owner_id,
        access: ShareMask::from_bits(byte("opens.access", r.access)?)
            .map_err(corrupt("opens.access"))?,
        deny: ShareMask::from_bits(byte("opens.deny", r.deny)?).map_err(corrupt("opens.deny"))?,
        protocol: OpenProtocol::try_from(byte("opens.protocol", r.protocol)?)
            .map_err(corrupt("opens.protocol"))?,
        durable: DurableState::from_parts(byte("opens.durable", r.durable)?, timeout_ms)
            .map_err(corrupt("opens.durable"))?,
        create_guid: r.create_guid,
        app_instance_id: r.app_instance_id,
        lease_key: r.lease_key.map(|k| key("opens.lease_key", k)).transpose()?,
        disconnected_at: r.disconnected_at.map(time_from_db),
        lock_sequences: r.lock_sequences,
        server_epoch: u64_from_db("opens.server_epoch", r.server_epoch)?,
        opened_at: time_from_db(r.opened_at),
    };
    validate::open(&open).map_err(stored("opens"))?;
    Ok(open)
}

fn open_condition(q: &OpenQuery) -> Result<Condition> {
    use opens::Column as C;
    Ok(Condition::all()
        .add_option(q.file.as_ref().map(|f| C::File.eq(f.as_bytes())))
        .add_option(q.client_id.as_deref().map(|c| C::ClientId.eq(c)))
        .add_option(q.share_name.as_deref().map(|s| C::ShareName.eq(s)))
        .add_option(q.create_guid.map(|g| C::CreateGuid.eq(g)))
        .add_option(q.app_instance_id.map(|a| C::AppInstanceId.eq(a)))
        .add_option(
            optional_time("disconnected_before", q.disconnected_before)?
                .map(|t| C::DisconnectedAt.lt(t)),
        ))
}

#[async_trait]
impl OpenStore for PgTx {
    async fn put_open(&mut self, open: &OpenRecord) -> Result<()> {
        let op = "put_open";
        self.usable(op)?;
        validate::open(open)?;
        opens::Entity::insert(open_row(open)?)
            .on_conflict(upsert(opens::Column::Id))
            .defer_in(self);
        Ok(())
    }

    async fn get_open(&mut self, id: Uuid) -> Result<Option<OpenRecord>> {
        let op = "get_open";
        self.usable(op)?;
        let row = opens::Entity::find_by_id(id)
            .one(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?;
        row.map(open_from_row).transpose()
    }

    async fn delete_open(&mut self, id: Uuid) -> Result<bool> {
        let op = "delete_open";
        self.usable(op)?;
        let deleted = opens::Entity::delete_by_id(id)
            .exec(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?;
        Ok(deleted.rows_affected > 0)
    }

    async fn list_opens(&mut self, query: &OpenQuery) -> Result<Vec<OpenRecord>> {
        let op = "list_opens";
        self.usable(op)?;
        validate::open_query(query)?;
        opens::Entity::find()
            .filter(open_condition(query)?)
            .order_by_asc(opens::Column::Id)
            .all(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?
            .into_iter()
            .map(open_from_row)
            .collect()
    }

    async fn list_opens_page(
        &mut self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<OpenRecord>> {
        let op = "list_opens_page";
        self.usable(op)?;
        validate::page_limit(limit)?;
        let mut select = opens::Entity::find();
        if let Some(after) = after {
            select = select.filter(opens::Column::Id.gt(after));
        }
        select
            .order_by_asc(opens::Column::Id)
            .limit(page_size(limit))
            .all(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?
            .into_iter()
            .map(open_from_row)
            .collect()
    }
}
