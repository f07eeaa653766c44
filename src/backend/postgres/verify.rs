//! `verify` on PostgreSQL: every row of every table, decoded one by one.
//!
//! The generic walk of the public API stops at the first row that does not
//! decode (a page is one statement, and one bad row fails it). Here each page
//! is fetched as raw rows and each row is decoded on its own, so every bad row
//! is reported and the walk goes on. The database keeps its own indexes, so
//! there are no index entries to check.

use sea_orm::sea_query::{Expr, ExprTrait, Func};
use sea_orm::{
    AccessMode, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    DbBackend, EntityTrait, FromQueryResult, IsolationLevel, QueryFilter, QueryOrder, QueryResult,
    QuerySelect, QueryTrait, Select, TransactionTrait,
};
use uuid::Uuid;

use super::clients::{client_from_row, select_clients};
use super::entity::{
    client_records, delegations, epoch_records, ext_records, files, leases, locks, nodes, opens,
    server_state,
};
use super::errors::db_error;
use super::ext::check_stored;
use super::rows::{
    epoch_record_from_row, file_from_row, lock_from_row, missing_state, node_from_row, page_size,
    select_epoch_records, select_files, select_locks, u64_from_db,
};
use crate::error::Result;
use crate::verify::{PAGE, Problem, ProblemKind, VerifyReport};

/// The alias of the key column every check reads as text, for locations.
const KEY: &str = "fsmeta_key";

/// Checks every row of `files`, `locks`, `nodes`, `epoch_records`,
/// `ext_records` and `server_state` in one read-only snapshot.
pub(super) async fn verify(db: &DatabaseConnection) -> Result<VerifyReport> {
    let op = "verify";
    // One consistent snapshot that never fails with a serialization
    // conflict: a read-only REPEATABLE READ transaction.
    let tx = db
        .begin_with_config(
            Some(IsolationLevel::RepeatableRead),
            Some(AccessMode::ReadOnly),
        )
        .await
        .map_err(|e| db_error(op, e))?;
    let mut report = VerifyReport::default();

    let mut after: Option<Vec<u8>> = None;
    loop {
        let mut query = select_files().expr_as(Expr::col(files::Column::Handle), KEY);
        if let Some(after) = after.take() {
            query = query.filter(files::Column::Handle.gt(after));
        }
        let rows = page(&tx, query.order_by_asc(files::Column::Handle)).await?;
        for row in &rows {
            report.files += 1;
            let key = row
                .try_get::<Vec<u8>>("", KEY)
                .map_err(|e| db_error(op, e))?;
            let location = format!("files/{}", hex(&key));
            check(&mut report, location, row, file_from_row);
            after = Some(key);
        }
        if rows.len() < PAGE {
            break;
        }
    }

    let mut after: Option<Uuid> = None;
    loop {
        let mut query = select_locks().expr_as(Expr::col(locks::Column::Id), KEY);
        if let Some(after) = after.take() {
            query = query.filter(locks::Column::Id.gt(after));
        }
        let rows = page(&tx, query.order_by_asc(locks::Column::Id)).await?;
        for row in &rows {
            report.locks += 1;
            let key = row.try_get::<Uuid>("", KEY).map_err(|e| db_error(op, e))?;
            check(&mut report, format!("locks/{key}"), row, lock_from_row);
            after = Some(key);
        }
        if rows.len() < PAGE {
            break;
        }
    }

    let mut after: Option<String> = None;
    loop {
        let mut query = select_clients().expr_as(Expr::col(client_records::Column::ClientId), KEY);
        if let Some(after) = after.take() {
            query = query.filter(client_records::Column::ClientId.gt(after));
        }
        let rows = page(&tx, query.order_by_asc(client_records::Column::ClientId)).await?;
        for row in &rows {
            report.clients += 1;
            let key = row
                .try_get::<String>("", KEY)
                .map_err(|e| db_error(op, e))?;
            check(
                &mut report,
                format!("client_records/{key}"),
                row,
                client_from_row,
            );
            after = Some(key);
        }
        if rows.len() < PAGE {
            break;
        }
    }

    // Nodes and epoch records are few (one per server, one per start): one
    // statement each. Their keys are read as text, which always decodes.
    let query = nodes::Entity::find()
        .expr_as(Expr::col(nodes::Column::NodeId), KEY)
        .order_by_asc(nodes::Column::NodeId);
    for row in &all(&tx, query).await? {
        let key = row
            .try_get::<String>("", KEY)
            .map_err(|e| db_error(op, e))?;
        check(&mut report, format!("nodes/{key}"), row, node_from_row);
    }
    let query = select_epoch_records()
        .expr_as(Expr::col(epoch_records::Column::Epoch).cast_as("text"), KEY)
        .order_by_asc(epoch_records::Column::Epoch);
    for row in &all(&tx, query).await? {
        let key = row
            .try_get::<String>("", KEY)
            .map_err(|e| db_error(op, e))?;
        check(
            &mut report,
            format!("epoch_records/{key}"),
            row,
            epoch_record_from_row,
        );
    }

    verify_ext(&tx, &mut report).await?;
    report.open_states = by_id::<opens::Entity, _>(
        &tx,
        &mut report,
        opens::Column::Id,
        "opens",
        super::opens::open_from_row,
    )
    .await?
        + by_id::<leases::Entity, _>(
            &tx,
            &mut report,
            leases::Column::Id,
            "leases",
            super::leases::lease_from_row,
        )
        .await?
        + by_id::<delegations::Entity, _>(
            &tx,
            &mut report,
            delegations::Column::Id,
            "delegations",
            super::leases::delegation_from_row,
        )
        .await?;

    let query =
        server_state::Entity::find().filter(server_state::Column::Id.eq(server_state::ROW_ID));
    match all(&tx, query).await?.first() {
        Some(row) => check(
            &mut report,
            "server_state/1".into(),
            row,
            |s: server_state::Model| u64_from_db("server_state.epoch", s.epoch).map(drop),
        ),
        None => report.problems.push(Problem {
            kind: ProblemKind::InvalidRecord,
            location: "server_state/1".into(),
            detail: missing_state().to_string(),
        }),
    }
    tx.rollback().await.map_err(|e| db_error(op, e))?;
    Ok(report)
}

/// Every row of `ext_records`, a page at a time in `(table_name, key)`
/// order: the table name, the key and the value's length (not the value: a
/// page of 1 MiB values would be large, and a value is opaque bytes, so its
/// length is all there is to check). A row that breaks the limits (possible
/// only past dropped CHECKs) is [`ProblemKind::InvalidRecord`], a NULL
/// [`ProblemKind::Undecodable`]; the walk goes on.
async fn verify_ext(tx: &DatabaseTransaction, report: &mut VerifyReport) -> Result<()> {
    use ext_records::Column as C;
    let op = "verify";
    const VALUE_LEN: &str = "fsmeta_value_len";
    let mut after: Option<(String, Vec<u8>)> = None;
    loop {
        let mut query = ext_records::Entity::find()
            .select_only()
            .column(C::TableName)
            .column(C::Key)
            .expr_as(
                Func::cust("octet_length").arg(Expr::col(C::Value)),
                VALUE_LEN,
            );
        if let Some((table, key)) = after.take() {
            query = query.filter(
                Condition::any().add(C::TableName.gt(table.clone())).add(
                    Condition::all()
                        .add(C::TableName.eq(table))
                        .add(C::Key.gt(key)),
                ),
            );
        }
        let query = query.order_by_asc(C::TableName).order_by_asc(C::Key);
        let rows = page(tx, query).await?;
        for row in &rows {
            // The primary key's columns are NOT NULL, and TEXT and BYTEA always decode.
            let table = row
                .try_get::<String>("", "table_name")
                .map_err(|e| db_error(op, e))?;
            let key = row
                .try_get::<Vec<u8>>("", "key")
                .map_err(|e| db_error(op, e))?;
            report.ext_records += 1;
            let location = format!("ext_records/{table}/{}", hex(&key));
            let problem = match row
                .try_get::<Option<i32>>("", VALUE_LEN)
                .map_err(|e| db_error(op, e))?
            {
                None => Some((ProblemKind::Undecodable, "value: NULL".to_owned())),
                Some(len) => check_stored(&table, &key, usize::try_from(len).unwrap_or(0))
                    .err()
                    .map(|e| (ProblemKind::InvalidRecord, e.to_string())),
            };
            if let Some((kind, detail)) = problem {
                report.problems.push(Problem {
                    kind,
                    location,
                    detail,
                });
            }
            after = Some((table, key));
        }
        if rows.len() < PAGE {
            return Ok(());
        }
    }
}

/// One page ([`PAGE`] rows) of `query`, as raw rows.
async fn page<E: EntityTrait>(
    tx: &DatabaseTransaction,
    query: Select<E>,
) -> Result<Vec<QueryResult>> {
    all(tx, query.limit(page_size(PAGE))).await
}

/// Checks every row of an id-keyed table (opens, leases, delegations), a
/// page at a time in id order; returns how many it read.
async fn by_id<E: EntityTrait, T>(
    tx: &DatabaseTransaction,
    report: &mut VerifyReport,
    id: E::Column,
    table: &str,
    convert: impl Fn(E::Model) -> Result<T>,
) -> Result<u64>
where
    E::Model: FromQueryResult,
{
    let mut after: Option<Uuid> = None;
    let mut count = 0;
    loop {
        let mut query = E::find().expr_as(Expr::col(id), KEY);
        if let Some(after) = after.take() {
            query = query.filter(id.gt(after));
        }
        let rows = page(tx, query.order_by_asc(id)).await?;
        for row in &rows {
            count += 1;
            let key = row
                .try_get::<Uuid>("", KEY)
                .map_err(|e| db_error("verify", e))?;
            check(report, format!("{table}/{key}"), row, &convert);
            after = Some(key);
        }
        if rows.len() < PAGE {
            return Ok(count);
        }
    }
}

/// Every row of `query`, as raw rows (decoded later, one by one).
async fn all<E: EntityTrait>(
    tx: &DatabaseTransaction,
    query: Select<E>,
) -> Result<Vec<QueryResult>> {
    tx.query_all_raw(query.build(DbBackend::Postgres))
        .await
        .map_err(|e| db_error("verify", e))
}

/// Decodes `row` as `M` and converts it to the model: a row the driver
/// cannot decode is [`ProblemKind::Undecodable`], one that decodes but breaks
/// the model [`ProblemKind::InvalidRecord`].
fn check<M: FromQueryResult, T>(
    report: &mut VerifyReport,
    location: String,
    row: &QueryResult,
    convert: impl FnOnce(M) -> Result<T>,
) {
    let problem = match M::from_query_result(row, "") {
        Err(e) => Some((ProblemKind::Undecodable, e.to_string())),
        Ok(model) => convert(model)
            .err()
            .map(|e| (ProblemKind::InvalidRecord, e.to_string())),
    };
    if let Some((kind, detail)) = problem {
        report.problems.push(Problem {
            kind,
            location,
            detail,
        });
    }
}

/// Bytes as lowercase hex, the way a [`crate::FileHandle`] is shown (also for
/// a stored handle too short or too long to be one).
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
