//! [`NodeStore`] on PostgreSQL: the global epoch counter (`server_state`),
//! `nodes` and `epoch_records`.

use async_trait::async_trait;
use sea_orm::prelude::Decimal;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, DbBackend, EntityTrait, FromQueryResult, QueryFilter, QueryOrder, QueryTrait,
    Select,
};

use super::entity::{epoch_records, nodes, server_state};
use super::rows::{
    epoch_record_from_row, epoch_record_row, node_from_row, node_row, select_epoch_records,
    u64_from_db,
};
use super::tx::{DeferIn, PgTx};
use crate::error::{Error, Result};
use crate::node::{EpochRecord, NodeState, NodeStore};
use crate::validate;

#[async_trait]
impl NodeStore for PgTx {
    async fn server_epoch(&mut self) -> Result<u64> {
        let state = self.state("server_epoch").await?;
        u64_from_db("server_state.epoch", state.epoch)
    }

    async fn increment_server_epoch(&mut self) -> Result<u64> {
        let op = "increment_server_epoch";
        self.usable(op)?;
        use server_state::Column as C;
        // One statement, so concurrent increments cannot lose one: under
        // SERIALIZABLE the second writer of the row gets 40001 and retries.
        // The `epoch < u64::MAX` guard keeps the CHECK from firing (which would
        // abort the transaction); a saturated epoch is reported below instead.
        let updated = server_state::Entity::update_many()
            .col_expr(C::Epoch, Expr::col(C::Epoch).add(1))
            .filter(C::Id.eq(server_state::ROW_ID))
            .filter(C::Epoch.lt(Decimal::from(u64::MAX)))
            .exec_with_returning(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?;
        match updated.into_iter().next() {
            Some(row) => u64_from_db("server_state.epoch", row.epoch),
            None => {
                let state = self.state(op).await?;
                if u64_from_db("server_state.epoch", state.epoch)? == u64::MAX {
                    Err(Error::EpochExhausted)
                } else {
                    Err(Error::Corrupt(
                        "server_state: the epoch row was not updated".into(),
                    ))
                }
            }
        }
    }

    async fn advance_server_epoch(&mut self, at_least: u64) -> Result<u64> {
        let op = "advance_server_epoch";
        self.usable(op)?;
        use server_state::Column as C;
        // One conditional UPDATE: it writes only when the counter is below
        // `at_least`, and its read of the row takes part in SERIALIZABLE
        // conflict detection like `increment_server_epoch`'s.
        let updated = server_state::Entity::update_many()
            .col_expr(C::Epoch, Expr::value(Decimal::from(at_least)))
            .filter(C::Id.eq(server_state::ROW_ID))
            .filter(C::Epoch.lt(Decimal::from(at_least)))
            .exec_with_returning(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?;
        match updated.into_iter().next() {
            Some(row) => u64_from_db("server_state.epoch", row.epoch),
            None => u64_from_db("server_state.epoch", self.state(op).await?.epoch),
        }
    }

    async fn get_node(&mut self, node_id: &str) -> Result<Option<NodeState>> {
        let op = "get_node";
        self.usable(op)?;
        validate::id("node_id", node_id)?;
        nodes::Entity::find_by_id(node_id.to_owned())
            .one(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?
            .map(node_from_row)
            .transpose()
    }

    async fn put_node(&mut self, node: &NodeState) -> Result<()> {
        let op = "put_node";
        self.usable(op)?;
        validate::node(node)?;
        use nodes::Column as C;
        nodes::Entity::insert(node_row(node)?)
            .on_conflict(
                OnConflict::column(C::NodeId)
                    .update_columns([
                        C::Epoch,
                        C::CleanShutdown,
                        C::LeaseExpiresAt,
                        C::TakenOverBy,
                        C::TakenOverAt,
                    ])
                    .to_owned(),
            )
            .defer_in(self);
        Ok(())
    }

    async fn list_nodes(&mut self) -> Result<Vec<NodeState>> {
        let op = "list_nodes";
        self.usable(op)?;
        nodes_in_order()
            .all(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?
            .into_iter()
            .map(node_from_row)
            .collect()
    }

    async fn put_epoch_record(&mut self, record: &EpochRecord) -> Result<()> {
        let op = "put_epoch_record";
        self.usable(op)?;
        validate::epoch_record(record)?;
        use epoch_records::Column as C;
        epoch_records::Entity::insert(epoch_record_row(record)?)
            .on_conflict(
                OnConflict::column(C::Epoch)
                    .update_columns([C::NodeId, C::StartedAt])
                    .to_owned(),
            )
            .defer_in(self);
        Ok(())
    }

    async fn list_epoch_records_and_nodes(&mut self) -> Result<(Vec<EpochRecord>, Vec<NodeState>)> {
        let op = "list_epoch_records_and_nodes";
        self.usable(op)?;
        let records = epoch_records_in_order().build(DbBackend::Postgres);
        let nodes = nodes_in_order().build(DbBackend::Postgres);
        let sets = self.tx.query_several([records, nodes]).await;
        let [records, nodes] = sets.map_err(|e| self.fail(op, e))?;
        let records = decode(&records, epoch_records::Model::from_query_result)
            .map_err(|e| self.fail(op, e))?;
        let nodes =
            decode(&nodes, nodes::Model::from_query_result).map_err(|e| self.fail(op, e))?;
        let records = records
            .into_iter()
            .map(epoch_record_from_row)
            .collect::<Result<_>>()?;
        let nodes = nodes
            .into_iter()
            .map(node_from_row)
            .collect::<Result<_>>()?;
        Ok((records, nodes))
    }

    async fn list_epoch_records(&mut self) -> Result<Vec<EpochRecord>> {
        let op = "list_epoch_records";
        self.usable(op)?;
        epoch_records_in_order()
            .all(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?
            .into_iter()
            .map(epoch_record_from_row)
            .collect()
    }
}

/// Every node, in id order (`node_id` is in the C collation: bytewise
/// order, like `String`'s).
fn nodes_in_order() -> Select<nodes::Entity> {
    nodes::Entity::find().order_by_asc(nodes::Column::NodeId)
}

/// Every epoch record, in epoch order.
fn epoch_records_in_order() -> Select<epoch_records::Entity> {
    select_epoch_records().order_by_asc(epoch_records::Column::Epoch)
}

/// Each of `rows` as a model, the way SeaORM's `all` reads them.
fn decode<M>(
    rows: &[sea_orm::QueryResult],
    read: impl Fn(&sea_orm::QueryResult, &str) -> std::result::Result<M, sea_orm::DbErr>,
) -> std::result::Result<Vec<M>, sea_orm::DbErr> {
    rows.iter().map(|row| read(row, "")).collect()
}
