//! [`ClientStore`] on PostgreSQL: the `client_records` table, keyed by
//! `client_id` (`TEXT COLLATE "C"`, so id order is byte order, as on the
//! other backends), with an index per query (`(node_id, client_id)`,
//! `(epoch, client_id)`, `(owner, client_id)`). Every statement is built by
//! SeaORM with bound parameters.

use async_trait::async_trait;
use sea_orm::prelude::Decimal;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Select,
};

use super::entity::client_records;
use super::rows::{
    checked_time, page_size, small_enum, stored, time_from_db, to_db_time, u64_from_db,
};
use super::tx::{DeferIn, PgTx};
use crate::client::{ClientProtocol, ClientQuery, ClientRecord, ClientStore};
use crate::error::{Error, Result};
use crate::validate;

use client_records::Column as C;

/// `SELECT` of `client_records`, with `last_renewed` checked (see [`checked_time`]).
pub(super) fn select_clients() -> Select<client_records::Entity> {
    client_records::Entity::find()
        .select_only()
        .columns([
            C::ClientId,
            C::NodeId,
            C::Protocol,
            C::Owner,
            C::Verifier,
            C::Principal,
            C::Epoch,
            C::ReclaimComplete,
            C::Expired,
            C::Callback,
        ])
        .expr_as(checked_time(C::LastRenewed), "last_renewed")
}

/// The client a `client_records` row holds; `Corrupt` when it breaks the model.
pub(super) fn client_from_row(row: client_records::Model) -> Result<ClientRecord> {
    let verifier = <[u8; 8]>::try_from(row.verifier.as_slice()).map_err(|_| {
        Error::Corrupt(format!(
            "client_records.verifier: {} bytes, 8 expected",
            row.verifier.len()
        ))
    })?;
    let client = ClientRecord {
        client_id: row.client_id,
        node_id: row.node_id,
        protocol: small_enum::<ClientProtocol>("client_records.protocol", row.protocol)?,
        owner: row.owner,
        verifier,
        principal: row.principal,
        epoch: u64_from_db("client_records.epoch", row.epoch)?,
        reclaim_complete: row.reclaim_complete,
        last_renewed: time_from_db(row.last_renewed),
        expired: row.expired,
        callback: row.callback,
    };
    validate::client(&client).map_err(stored("client_records"))?;
    Ok(client)
}

/// The row of a (validated) client.
fn client_row(client: &ClientRecord) -> Result<client_records::ActiveModel> {
    Ok(client_records::ActiveModel {
        client_id: Set(client.client_id.clone()),
        node_id: Set(client.node_id.clone()),
        protocol: Set(i16::from(client.protocol as u8)),
        owner: Set(client.owner.clone()),
        verifier: Set(client.verifier.to_vec()),
        principal: Set(client.principal.clone()),
        epoch: Set(Decimal::from(client.epoch)),
        reclaim_complete: Set(client.reclaim_complete),
        last_renewed: Set(to_db_time("last_renewed", client.last_renewed)?),
        expired: Set(client.expired),
        callback: Set(client.callback.clone()),
    })
}

/// `ON CONFLICT (client_id) DO UPDATE` of every other column: `put_client` is an upsert.
fn upsert() -> OnConflict {
    OnConflict::column(C::ClientId)
        .update_columns([
            C::NodeId,
            C::Protocol,
            C::Owner,
            C::Verifier,
            C::Principal,
            C::Epoch,
            C::ReclaimComplete,
            C::LastRenewed,
            C::Expired,
            C::Callback,
        ])
        .to_owned()
}

/// The filters of a [`ClientQuery`], ANDed; no filter matches every client.
fn condition(query: &ClientQuery) -> Condition {
    Condition::all()
        .add_option(query.node_id.as_deref().map(|n| C::NodeId.eq(n)))
        .add_option(query.epoch.map(|e| C::Epoch.eq(Decimal::from(e))))
        .add_option(query.owner.as_deref().map(|o| C::Owner.eq(o)))
}

#[async_trait]
impl ClientStore for PgTx {
    async fn put_client(&mut self, client: &ClientRecord) -> Result<()> {
        let op = "put_client";
        self.usable(op)?;
        validate::client(client)?;
        client_records::Entity::insert(client_row(client)?)
            .on_conflict(upsert())
            .defer_in(self);
        Ok(())
    }

    async fn get_client(&mut self, client_id: &str) -> Result<Option<ClientRecord>> {
        let op = "get_client";
        self.usable(op)?;
        validate::id("client_id", client_id)?;
        let row = select_clients()
            .filter(C::ClientId.eq(client_id))
            .one(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?;
        row.map(client_from_row).transpose()
    }

    async fn delete_client(&mut self, client_id: &str) -> Result<bool> {
        let op = "delete_client";
        self.usable(op)?;
        validate::id("client_id", client_id)?;
        // Existence is learnt from the row count, never from a failing statement.
        let deleted = client_records::Entity::delete_many()
            .filter(C::ClientId.eq(client_id))
            .exec(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?;
        Ok(deleted.rows_affected > 0)
    }

    async fn list_clients(&mut self, query: &ClientQuery) -> Result<Vec<ClientRecord>> {
        let op = "list_clients";
        self.usable(op)?;
        validate::client_query(query)?;
        select_clients()
            .filter(condition(query))
            .order_by_asc(C::ClientId)
            .all(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?
            .into_iter()
            .map(client_from_row)
            .collect()
    }

    async fn list_clients_page(
        &mut self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ClientRecord>> {
        let op = "list_clients_page";
        self.usable(op)?;
        validate::page_limit(limit)?;
        if let Some(after) = after {
            validate::id("after", after)?;
        }
        let mut query = select_clients();
        if let Some(after) = after {
            query = query.filter(C::ClientId.gt(after));
        }
        query
            .order_by_asc(C::ClientId)
            .limit(page_size(limit))
            .all(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?
            .into_iter()
            .map(client_from_row)
            .collect()
    }
}
