//! A host with its own SeaORM schema: its `inodes` rows and fsmeta's locks
//! commit together or vanish together.
//!
//! ```text
//! cargo run --example sea_orm_host                    # postgres://postgres@127.0.0.1:5432/test
//! cargo run --example sea_orm_host -- postgres://user@host:5432/db
//! ```
//!
//! 0. A fresh schema of its own (dropped at the end, so reruns start clean);
//!    the host's `Migrator` lists fsmeta's migrations, then its own
//!    (`inodes`): one `up`, one history table. fsmeta connects with
//!    `migrate: false`, the host owns the schema.
//! 1. One transaction inserts inode 1 through the host's SeaORM entity, on
//!    the SeaORM transaction `native` hands out, and acquires a lock on it
//!    through fsmeta (`acquire_lock`); it commits: both are there.
//! 2. The same for inode 2, then a forced failure: `transact` rolls back
//!    both, the row and the lock.
//! 3. A host statement fails inside the transaction (a duplicate inode) and
//!    the host ignores the error: `commit` still fails, nothing is stored.
//!
//! After each step the tables are shown with plain SQL. Exits non-zero if
//! atomicity is violated. (A real host depends on `sea-orm-migration`
//! itself; the example reaches it through fsmeta's `migration` crate.)

use fsmeta::backend::postgres::{host_error, native};
use fsmeta::*;
use migration::{MigrationName, MigrationTrait, MigratorTrait};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ConnectOptions, ConnectionTrait, Database,
    DatabaseConnection, DbBackend, Statement,
};
use uuid::Uuid;

/// The host's own entity: one row per inode.
mod inodes {
    use sea_orm::entity::prelude::*;

    /// A row of the host's `inodes` table.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "inodes")]
    pub struct Model {
        /// The inode number.
        #[sea_orm(primary_key, auto_increment = false)]
        pub ino: i64,
        /// The file handle fsmeta's locks name.
        pub handle: Vec<u8>,
        /// File size in bytes.
        pub size: i64,
        /// Permission bits.
        pub mode: i32,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The host's migration creating `inodes`.
struct CreateInodes;

impl MigrationName for CreateInodes {
    fn name(&self) -> &str {
        "m20270101_000001_create_inodes"
    }
}

#[migration::async_trait::async_trait]
impl MigrationTrait for CreateInodes {
    async fn up(&self, manager: &migration::SchemaManager) -> Result<(), migration::DbErr> {
        use migration::{ColumnDef, Table};
        manager
            .create_table(
                Table::create()
                    .table(inodes::Entity)
                    .col(
                        ColumnDef::new(inodes::Column::Ino)
                            .big_integer()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(inodes::Column::Handle).blob().not_null())
                    .col(
                        ColumnDef::new(inodes::Column::Size)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(inodes::Column::Mode).integer().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &migration::SchemaManager) -> Result<(), migration::DbErr> {
        manager
            .drop_table(migration::Table::drop().table(inodes::Entity).to_owned())
            .await
    }
}

/// The host's Migrator: fsmeta's migrations first, then the host's own.
struct HostMigrator;

#[migration::async_trait::async_trait]
impl MigratorTrait for HostMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all = PostgresStore::migrations();
        all.push(Box::new(CreateInodes));
        all
    }
}

fn handle_of(ino: i64) -> Result<FileHandle> {
    FileHandle::new(format!("ino-{ino}").into_bytes())
}

fn lock_on(ino: i64, client: &str) -> Result<PersistedLock> {
    Ok(PersistedLock {
        id: Uuid::new_v4(),
        share_name: "export".into(),
        file_id: handle_of(ino)?,
        owner_id: "owner-1".into(),
        client_id: client.into(),
        lock_type: LockType::Exclusive,
        offset: 0,
        length: 0,
        share_reservation: ShareReservation::None,
        acquired_at: Timestamp::now(),
        server_epoch: 1,
        flavor: fsmeta::LockFlavor::Posix,
    })
}

/// Inserts the host's inode row through SeaORM, on fsmeta's transaction.
async fn insert_inode(tx: &mut (dyn MetadataTransaction + '_), ino: i64) -> Result<()> {
    let row = inodes::ActiveModel {
        ino: Set(ino),
        handle: Set(handle_of(ino)?.as_bytes().to_vec()),
        size: Set(4096 * ino),
        mode: Set(0o100644),
    };
    row.insert(native(tx)?).await.map_err(host_error)?;
    Ok(())
}

/// Acquires `lock` through fsmeta's arbiter; a denial is an error here.
async fn lock(tx: &mut (dyn MetadataTransaction + '_), lock: &PersistedLock) -> Result<()> {
    match acquire_lock(tx, lock).await? {
        Acquire::Granted => Ok(()),
        denied => Err(Error::Invalid(format!("lock denied: {denied:?}"))),
    }
}

/// The rows of both tables, read with plain SQL: (inode numbers, lock clients).
async fn show(db: &DatabaseConnection, label: &str) -> Result<(Vec<String>, Vec<String>)> {
    let column = |sql: &'static str| async move {
        let rows = db
            .query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
            .await
            .map_err(host_error)?;
        rows.iter()
            .map(|r| r.try_get_by_index::<String>(0).map_err(host_error))
            .collect::<Result<Vec<String>>>()
    };
    let inodes = column(
        "SELECT ino::text || ' (' || convert_from(handle, 'UTF8') || ', size ' || size::text || ')' \
         FROM inodes ORDER BY ino",
    )
    .await?;
    let locks = column(
        "SELECT client_id || ' on ' || convert_from(file_id, 'UTF8') FROM locks ORDER BY client_id",
    )
    .await?;
    println!("   {label}");
    println!("     SELECT … FROM inodes: {inodes:?}");
    println!("     SELECT … FROM locks:  {locks:?}");
    Ok((inodes, locks))
}

/// Fails unless the tables hold exactly what was committed in step 1.
fn expect_only_step_one(label: &str, (inodes, locks): (Vec<String>, Vec<String>)) -> Result<()> {
    let want_inodes = ["1 (ino-1, size 4096)"];
    let want_locks = ["client-1 on ino-1"];
    if inodes == want_inodes && locks == want_locks {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "atomicity violated {label}: inodes {inodes:?}, locks {locks:?}; \
             expected {want_inodes:?} and {want_locks:?}"
        )))
    }
}

async fn run(url: &str, schema: &str, db: &DatabaseConnection) -> Result<()> {
    // 0. The host's Migrator builds fsmeta's tables and its own.
    HostMigrator::up(db, None).await.map_err(host_error)?;
    let tables: Vec<String> = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() ORDER BY 1",
        ))
        .await
        .map_err(host_error)?
        .iter()
        .map(|r| r.try_get_by_index::<String>(0).map_err(host_error))
        .collect::<Result<_>>()?;
    println!("0. HostMigrator (fsmeta's migrations + the host's) created: {tables:?}");
    let store = PostgresStore::connect_with(
        url,
        PgOptions {
            schema: Some(schema.to_owned()),
            migrate: false,
            ..Default::default()
        },
    )
    .await?;

    // 1. One transaction: the host's inode row and fsmeta's lock.
    let lock_1 = lock_on(1, "client-1")?;
    let l1 = &lock_1;
    store
        .transact(|tx| {
            Box::pin(async move {
                insert_inode(tx, 1).await?;
                lock(tx, l1).await
            })
        })
        .await?;
    println!("1. inserted inode 1 (SeaORM, via native) and locked it (fsmeta), committed");
    let after_one = show(db, "after step 1:").await?;
    expect_only_step_one("after step 1", after_one)?;

    // 2. The same for inode 2, then a forced failure: both roll back.
    let lock_2 = lock_on(2, "client-2")?;
    let l2 = &lock_2;
    let outcome: Result<()> = store
        .transact(|tx| {
            Box::pin(async move {
                insert_inode(tx, 2).await?;
                lock(tx, l2).await?;
                Err(Error::Invalid("forced failure after both writes".into()))
            })
        })
        .await;
    match outcome {
        Err(e) => println!("2. inserted inode 2 and locked it, then failed ({e}): rolled back"),
        Ok(()) => return Err(Error::Invalid("the forced failure committed".into())),
    }
    expect_only_step_one("after step 2", show(db, "after step 2:").await?)?;

    // 3. A host statement fails (duplicate inode 1) and the host ignores it.
    let lock_3 = lock_on(3, "client-3")?;
    let mut tx = store.begin().await?;
    lock(&mut *tx, &lock_3).await?;
    insert_inode(&mut *tx, 3).await?;
    let ignored = insert_inode(&mut *tx, 1).await;
    println!(
        "3. locked and inserted inode 3, then inserting inode 1 again failed ({}); \
         the host ignores that and commits",
        match &ignored {
            Err(e) => e.to_string(),
            Ok(()) => "no error?".into(),
        }
    );
    match tx.commit().await {
        Err(e) => println!("   commit: Err({e})"),
        Ok(()) => {
            return Err(Error::Invalid(
                "commit reported success for an aborted transaction".into(),
            ));
        }
    }
    expect_only_step_one("after step 3", show(db, "after step 3:").await?)?;
    store.close().await?;
    println!("atomic: the host's rows and fsmeta's locks committed and rolled back together");
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("sea_orm_host_{}", Uuid::new_v4().simple());
    // A generated name, so quoting it as an identifier is all DDL needs.
    let quoted = format!("\"{schema}\"");
    println!("store: {url}, schema {schema}");

    let mut options = ConnectOptions::new(url.clone());
    options
        .max_connections(1)
        .sqlx_logging(false)
        .set_schema_search_path(quoted.clone());
    let db = match Database::connect(options).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("error: cannot connect to {url}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = match db
        .execute_unprepared(&format!("CREATE SCHEMA {quoted}"))
        .await
    {
        Ok(_) => run(&url, &schema, &db).await,
        Err(e) => Err(host_error(e)),
    };
    let dropped = db
        .execute_unprepared(&format!("DROP SCHEMA IF EXISTS {quoted} CASCADE"))
        .await;
    let _ = db.close().await;
    if let Err(e) = dropped {
        eprintln!("warning: could not drop schema {schema}: {e}");
    }
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
