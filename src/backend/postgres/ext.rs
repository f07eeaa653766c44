//! [`ExtStore`] on PostgreSQL: the `ext_records` table, one row per record
//! of every extension table, keyed by `(table_name, key)`.
//!
//! Every statement is built by SeaORM/SeaQuery with bound parameters. A scan
//! is one range of the primary key (`table_name = $1 AND key >= $2 AND
//! key < $3 [AND key > $after] ORDER BY key LIMIT $n`): `BYTEA` compares
//! bytewise, shorter first on a tie, the order of `Vec<u8>`, and the
//! SERIALIZABLE transaction's predicate locks cover what the scan read, so a
//! concurrent insert into a scanned range fails one of the two transactions
//! with a serialization failure ([`Error::Conflict`](crate::Error::Conflict)).
//! Reads see the transaction's own writes because they are the server's.

use async_trait::async_trait;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::entity::ext_records;
use super::rows::page_size;
use super::tx::{DeferIn, PgTx};
use crate::error::{Error, Result};
use crate::ext::{ExtRecord, ExtStore, KeyRange};
use crate::validate;

/// A stored record that breaks the limits is [`Error::Corrupt`] (only a row
/// edited by hand past the CHECKs can).
pub(super) fn check_stored(table: &str, key: &[u8], value_len: usize) -> Result<()> {
    let corrupt = |e: Error| match e {
        Error::Invalid(why) => Error::Corrupt(format!("ext_records: stored row: {why}")),
        other => other,
    };
    validate::ext_address(table, key).map_err(corrupt)?;
    if value_len > crate::ext::MAX_EXT_VALUE_LEN {
        return Err(corrupt(Error::Invalid(format!(
            "value: {value_len} bytes, at most {} allowed",
            crate::ext::MAX_EXT_VALUE_LEN
        ))));
    }
    Ok(())
}

/// `INSERT … ON CONFLICT (table_name, key) DO UPDATE SET value = excluded.value`.
fn upsert() -> OnConflict {
    use ext_records::Column as C;
    OnConflict::columns([C::TableName, C::Key])
        .update_column(C::Value)
        .to_owned()
}

#[async_trait]
impl ExtStore for PgTx {
    async fn ext_put(&mut self, table: &str, key: &[u8], value: &[u8]) -> Result<()> {
        let op = "ext_put";
        self.usable(op)?;
        validate::ext_record(table, key, value)?;
        let row = ext_records::ActiveModel {
            table_name: Set(table.to_owned()),
            key: Set(key.to_vec()),
            value: Set(value.to_vec()),
        };
        ext_records::Entity::insert(row)
            .on_conflict(upsert())
            .defer_in(self);
        Ok(())
    }

    async fn ext_get(&mut self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let op = "ext_get";
        self.usable(op)?;
        validate::ext_address(table, key)?;
        let value = ext_records::Entity::find()
            .select_only()
            .column(ext_records::Column::Value)
            .filter(ext_records::Column::TableName.eq(table))
            .filter(ext_records::Column::Key.eq(key))
            .into_tuple::<Vec<u8>>()
            .one(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?;
        if let Some(value) = &value {
            check_stored(table, key, value.len())?;
        }
        Ok(value)
    }

    async fn ext_delete(&mut self, table: &str, key: &[u8]) -> Result<bool> {
        let op = "ext_delete";
        self.usable(op)?;
        validate::ext_address(table, key)?;
        // Existence is learnt from the row count, never from a failing statement.
        let deleted = ext_records::Entity::delete_many()
            .filter(ext_records::Column::TableName.eq(table))
            .filter(ext_records::Column::Key.eq(key))
            .exec(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?;
        Ok(deleted.rows_affected > 0)
    }

    async fn ext_scan(
        &mut self,
        table: &str,
        range: &KeyRange,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<ExtRecord>> {
        let op = "ext_scan";
        self.usable(op)?;
        validate::ext_scan(table, range, after, limit)?;
        use ext_records::Column as C;
        let (start, end) = range.bounds();
        let mut query = ext_records::Entity::find()
            .select_only()
            .column(C::Key)
            .column(C::Value)
            .filter(C::TableName.eq(table));
        // Every key is at least one byte, so an empty start bounds nothing.
        if !start.is_empty() {
            query = query.filter(C::Key.gte(start));
        }
        if let Some(end) = end {
            query = query.filter(C::Key.lt(end));
        }
        if let Some(after) = after {
            query = query.filter(C::Key.gt(after));
        }
        let rows = query
            .order_by_asc(C::Key)
            .limit(page_size(limit))
            .into_tuple::<(Vec<u8>, Vec<u8>)>()
            .all(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?;
        rows.into_iter()
            .map(|(key, value)| {
                check_stored(table, &key, value.len())?;
                Ok(ExtRecord { key, value })
            })
            .collect()
    }

    async fn ext_tables(&mut self) -> Result<Vec<String>> {
        let op = "ext_tables";
        self.usable(op)?;
        // `table_name` is `COLLATE "C"`: name order is byte order.
        let tables = ext_records::Entity::find()
            .select_only()
            .column(ext_records::Column::TableName)
            .distinct()
            .order_by_asc(ext_records::Column::TableName)
            .into_tuple::<String>()
            .all(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?;
        for table in &tables {
            validate::ext_table(table).map_err(|e| match e {
                Error::Invalid(why) => Error::Corrupt(format!("ext_records: stored row: {why}")),
                other => other,
            })?;
        }
        Ok(tables)
    }
}
