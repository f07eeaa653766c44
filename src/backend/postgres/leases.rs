//! [`LeaseStore`] on PostgreSQL: the `leases` and `delegations` tables
//! (migration 8).

use async_trait::async_trait;
use sea_orm::prelude::Decimal;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Select,
};
use uuid::Uuid;

use super::entity::{delegations, leases};
use super::opens::{byte, corrupt, key, optional_time, upsert};
use super::rows::{handle_from_db, page_size, stored, time_from_db, to_db_time, u64_from_db};
use super::tx::{DeferIn, PgTx};
use crate::error::{Error, Result};
use crate::open::{
    DelegationQuery, DelegationRecord, DelegationType, LeaseQuery, LeaseRecord, LeaseState,
    LeaseStore,
};
use crate::validate;

fn lease_row(l: &LeaseRecord) -> Result<leases::ActiveModel> {
    Ok(leases::ActiveModel {
        id: Set(l.id),
        lease_key: Set(l.lease_key.to_vec()),
        parent_lease_key: Set(l.parent_lease_key.map(|k| k.to_vec())),
        file: Set(l.file.as_bytes().to_vec()),
        share_name: Set(l.share_name.clone()),
        client_id: Set(l.client_id.clone()),
        state: Set(i16::from(l.state.bits())),
        lease_epoch: Set(i32::from(l.lease_epoch)),
        breaking: Set(l.breaking),
        break_to: Set(i16::from(l.break_to.bits())),
        break_started_at: Set(optional_time("break_started_at", l.break_started_at)?),
        directory: Set(l.directory),
        oplock: Set(l.oplock),
        server_epoch: Set(Decimal::from(l.server_epoch)),
    })
}

pub(super) fn lease_from_row(r: leases::Model) -> Result<LeaseRecord> {
    let lease = LeaseRecord {
        id: r.id,
        lease_key: key("leases.lease_key", r.lease_key)?,
        parent_lease_key: r
            .parent_lease_key
            .map(|k| key("leases.parent_lease_key", k))
            .transpose()?,
        file: handle_from_db("leases.file", r.file)?,
        share_name: r.share_name,
        client_id: r.client_id,
        state: LeaseState::from_bits(byte("leases.state", r.state)?)
            .map_err(corrupt("leases.state"))?,
        lease_epoch: u16::try_from(r.lease_epoch).map_err(|_| {
            Error::Corrupt(format!(
                "leases.lease_epoch: {} is not a u16",
                r.lease_epoch
            ))
        })?,
        breaking: r.breaking,
        break_to: LeaseState::from_bits(byte("leases.break_to", r.break_to)?)
            .map_err(corrupt("leases.break_to"))?,
        break_started_at: r.break_started_at.map(time_from_db),
        directory: r.directory,
        oplock: r.oplock,
        server_epoch: u64_from_db("leases.server_epoch", r.server_epoch)?,
    };
    validate::lease(&lease).map_err(stored("leases"))?;
    Ok(lease)
}

fn delegation_row(d: &DelegationRecord) -> Result<delegations::ActiveModel> {
    Ok(delegations::ActiveModel {
        id: Set(d.id),
        file: Set(d.file.as_bytes().to_vec()),
        share_name: Set(d.share_name.clone()),
        client_id: Set(d.client_id.clone()),
        kind: Set(i16::from(d.kind as u8)),
        recalled: Set(d.recalled),
        revoked: Set(d.revoked),
        notification_mask: Set(i64::from(d.notification_mask)),
        server_epoch: Set(Decimal::from(d.server_epoch)),
        granted_at: Set(to_db_time("granted_at", d.granted_at)?),
    })
}

pub(super) fn delegation_from_row(r: delegations::Model) -> Result<DelegationRecord> {
    let delegation = DelegationRecord {
        id: r.id,
        file: handle_from_db("delegations.file", r.file)?,
        share_name: r.share_name,
        client_id: r.client_id,
        kind: DelegationType::try_from(byte("delegations.kind", r.kind)?)
            .map_err(corrupt("delegations.kind"))?,
        recalled: r.recalled,
        revoked: r.revoked,
        notification_mask: u32::try_from(r.notification_mask).map_err(|_| {
            Error::Corrupt(format!(
                "delegations.notification_mask: {} is not a u32",
                r.notification_mask
            ))
        })?,
        server_epoch: u64_from_db("delegations.server_epoch", r.server_epoch)?,
        granted_at: time_from_db(r.granted_at),
    };
    validate::delegation(&delegation).map_err(stored("delegations"))?;
    Ok(delegation)
}

/// `select` filtered past `after`, in id order, at most `limit` rows.
fn page<E: EntityTrait>(
    select: Select<E>,
    id: E::Column,
    after: Option<Uuid>,
    limit: usize,
) -> Select<E> {
    let select = match after {
        Some(after) => select.filter(id.gt(after)),
        None => select,
    };
    select.order_by_asc(id).limit(page_size(limit))
}

#[async_trait]
impl LeaseStore for PgTx {
    async fn put_lease(&mut self, lease: &LeaseRecord) -> Result<()> {
        let op = "put_lease";
        self.usable(op)?;
        validate::lease(lease)?;
        leases::Entity::insert(lease_row(lease)?)
            .on_conflict(upsert(leases::Column::Id))
            .defer_in(self);
        Ok(())
    }

    async fn get_lease(&mut self, id: Uuid) -> Result<Option<LeaseRecord>> {
        let op = "get_lease";
        self.usable(op)?;
        let row = leases::Entity::find_by_id(id)
            .one(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?;
        row.map(lease_from_row).transpose()
    }

    async fn delete_lease(&mut self, id: Uuid) -> Result<bool> {
        let op = "delete_lease";
        self.usable(op)?;
        let done = leases::Entity::delete_by_id(id)
            .exec(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?;
        Ok(done.rows_affected > 0)
    }

    async fn list_leases(&mut self, q: &LeaseQuery) -> Result<Vec<LeaseRecord>> {
        use leases::Column as C;
        let op = "list_leases";
        self.usable(op)?;
        validate::lease_query(q)?;
        let condition = Condition::all()
            .add_option(q.file.as_ref().map(|f| C::File.eq(f.as_bytes())))
            .add_option(q.client_id.as_deref().map(|c| C::ClientId.eq(c)))
            .add_option(q.lease_key.map(|k| C::LeaseKey.eq(k.to_vec())));
        leases::Entity::find()
            .filter(condition)
            .order_by_asc(C::Id)
            .all(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?
            .into_iter()
            .map(lease_from_row)
            .collect()
    }

    async fn list_leases_page(
        &mut self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<LeaseRecord>> {
        let op = "list_leases_page";
        self.usable(op)?;
        validate::page_limit(limit)?;
        page(leases::Entity::find(), leases::Column::Id, after, limit)
            .all(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?
            .into_iter()
            .map(lease_from_row)
            .collect()
    }

    async fn put_delegation(&mut self, d: &DelegationRecord) -> Result<()> {
        let op = "put_delegation";
        self.usable(op)?;
        validate::delegation(d)?;
        delegations::Entity::insert(delegation_row(d)?)
            .on_conflict(upsert(delegations::Column::Id))
            .defer_in(self);
        Ok(())
    }

    async fn get_delegation(&mut self, id: Uuid) -> Result<Option<DelegationRecord>> {
        let op = "get_delegation";
        self.usable(op)?;
        let row = delegations::Entity::find_by_id(id)
            .one(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?;
        row.map(delegation_from_row).transpose()
    }

    async fn delete_delegation(&mut self, id: Uuid) -> Result<bool> {
        let op = "delete_delegation";
        self.usable(op)?;
        let done = delegations::Entity::delete_by_id(id)
            .exec(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?;
        Ok(done.rows_affected > 0)
    }

    async fn list_delegations(&mut self, q: &DelegationQuery) -> Result<Vec<DelegationRecord>> {
        use delegations::Column as C;
        let op = "list_delegations";
        self.usable(op)?;
        validate::delegation_query(q)?;
        let condition = Condition::all()
            .add_option(q.file.as_ref().map(|f| C::File.eq(f.as_bytes())))
            .add_option(q.client_id.as_deref().map(|c| C::ClientId.eq(c)))
            .add_option(q.revoked.map(|r| C::Revoked.eq(r)));
        delegations::Entity::find()
            .filter(condition)
            .order_by_asc(C::Id)
            .all(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?
            .into_iter()
            .map(delegation_from_row)
            .collect()
    }

    async fn list_delegations_page(
        &mut self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<DelegationRecord>> {
        let op = "list_delegations_page";
        self.usable(op)?;
        validate::page_limit(limit)?;
        page(
            delegations::Entity::find(),
            delegations::Column::Id,
            after,
            limit,
        )
        .all(&self.tx)
        .await
        .map_err(|e| self.fail(op, e))?
        .into_iter()
        .map(delegation_from_row)
        .collect()
    }
}
