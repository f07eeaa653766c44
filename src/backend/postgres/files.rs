//! [`FileStore`] on PostgreSQL: the `files` table.

use async_trait::async_trait;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::entity::files;
use super::rows::{file_from_row, file_row, file_upsert, page_size, select_files};
use super::tx::{DeferIn, PgTx};
use crate::error::{Error, Result};
use crate::file::{FileHandle, FileMeta, FileStore};
use crate::validate;

#[async_trait]
impl FileStore for PgTx {
    async fn put_file(&mut self, file: &FileMeta) -> Result<()> {
        let op = "put_file";
        self.usable(op)?;
        validate::file(file)?;
        files::Entity::insert(file_row(file)?)
            .on_conflict(file_upsert())
            .defer_in(self);
        Ok(())
    }

    async fn get_file(&mut self, handle: &FileHandle) -> Result<Option<FileMeta>> {
        let op = "get_file";
        self.usable(op)?;
        validate::file_handle(handle)?;
        let row = select_files()
            .filter(files::Column::Handle.eq(handle.as_bytes()))
            .one(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?;
        row.map(file_from_row).transpose()
    }

    async fn delete_file(&mut self, handle: &FileHandle) -> Result<()> {
        let op = "delete_file";
        self.usable(op)?;
        validate::file_handle(handle)?;
        // "Missing" is learnt from the row count, never from a failing
        // statement: an error would abort the PostgreSQL transaction.
        let deleted = files::Entity::delete_many()
            .filter(files::Column::Handle.eq(handle.as_bytes()))
            .exec(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?;
        if deleted.rows_affected == 0 {
            return Err(Error::FileNotFound(handle.clone()));
        }
        Ok(())
    }

    async fn list_files(&mut self, share_name: &str) -> Result<Vec<FileMeta>> {
        let op = "list_files";
        self.usable(op)?;
        validate::share_name(share_name)?;
        // BYTEA sorts bytewise, shorter first on a tie: the same order as `Vec<u8>`.
        select_files()
            .filter(files::Column::ShareName.eq(share_name))
            .order_by_asc(files::Column::Handle)
            .all(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?
            .into_iter()
            .map(file_from_row)
            .collect()
    }

    async fn list_files_page(
        &mut self,
        after: Option<&FileHandle>,
        limit: usize,
    ) -> Result<Vec<FileMeta>> {
        let op = "list_files_page";
        self.usable(op)?;
        validate::page_limit(limit)?;
        if let Some(after) = after {
            validate::file_handle(after)?;
        }
        let mut query = select_files();
        if let Some(after) = after {
            query = query.filter(files::Column::Handle.gt(after.as_bytes()));
        }
        query
            .order_by_asc(files::Column::Handle)
            .limit(page_size(limit))
            .all(&self.tx)
            .await
            .map_err(|e| self.fail(op, e))?
            .into_iter()
            .map(file_from_row)
            .collect()
    }
}
