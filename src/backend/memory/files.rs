//! The file family: `FileMeta` by handle, indexed by share.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;

use super::table::{Family, Ordered, Table};
use super::{Bookkeeping, MemoryTx};
use crate::error::{Error, Result};
use crate::file::{FileHandle, FileMeta, FileStore};
use crate::validate;

/// The file family.
pub(super) struct Files;

impl Family for Files {
    type Key = FileHandle;
    type Map = Ordered<Self>;
    type Record = FileMeta;
    type Indexes = FileIndexes;
    const NAME: &'static str = "files";
    fn key(file: &FileMeta) -> &FileHandle {
        &file.handle
    }
}

memory_index!(ByShare: Files => str, |f| &f.share_name);
memory_indexes!(pub(super) struct FileIndexes for Files { by_share: ByShare });

/// One file write of a transaction.
pub(super) enum Write {
    Put(FileRef),
    Delete(FileHandle),
}

/// What a transaction read of the files.
#[derive(Default)]
pub(super) struct Reads {
    handles: HashSet<FileHandle>,
    shares: HashSet<String>,
    /// A page walk over every file.
    all: bool,
}

/// A stored file, shared by the record map, the index and every snapshot.
type FileRef = Arc<FileMeta>;

/// The files a commit changed: handle, record before, record after.
#[derive(Default)]
pub(super) struct Changes(Vec<(FileHandle, Option<FileRef>, Option<FileRef>)>);

impl Bookkeeping for Files {
    type Tables = Table<Files>;
    type Write = Write;
    type Reads = Reads;
    type Changes = Changes;

    fn replay(table: &mut Table<Files>, write: Write, changes: &mut Changes) -> Result<()> {
        match write {
            Write::Put(file) => {
                let old = table.put(file.clone());
                changes.0.push((file.handle.clone(), old, Some(file)));
            }
            Write::Delete(handle) => {
                let old = table.delete(&handle);
                changes.0.push((handle, old, None));
            }
        }
        Ok(())
    }

    fn invalidates(changes: &Changes, reads: &Reads) -> bool {
        (reads.all && !changes.0.is_empty())
            || changes.0.iter().any(|(handle, old, new)| {
                reads.handles.contains(handle)
                    || [old, new]
                        .into_iter()
                        .flatten()
                        .any(|f| reads.shares.contains(&f.share_name))
            })
    }
}

#[async_trait]
impl FileStore for MemoryTx {
    async fn put_file(&mut self, file: &FileMeta) -> Result<()> {
        validate::file(file)?;
        let file = Arc::new(file.clone());
        self.working.files.put(file.clone());
        self.writes.files.push(Write::Put(file));
        Ok(())
    }

    async fn get_file(&mut self, handle: &FileHandle) -> Result<Option<FileMeta>> {
        validate::file_handle(handle)?;
        self.reads.files.handles.insert(handle.clone());
        Ok(self.working.files.get(handle).map(|f| FileMeta::clone(f)))
    }

    async fn delete_file(&mut self, handle: &FileHandle) -> Result<()> {
        validate::file_handle(handle)?;
        self.reads.files.handles.insert(handle.clone());
        self.working
            .files
            .delete(handle)
            .ok_or_else(|| Error::FileNotFound(handle.clone()))?;
        self.writes.files.push(Write::Delete(handle.clone()));
        Ok(())
    }

    async fn list_files_page(
        &mut self,
        after: Option<&FileHandle>,
        limit: usize,
    ) -> Result<Vec<FileMeta>> {
        validate::page_limit(limit)?;
        self.reads.files.all = true;
        Ok(self
            .working
            .files
            .page(after, limit)
            .iter()
            .map(|f| FileMeta::clone(f))
            .collect())
    }

    async fn list_files(&mut self, share_name: &str) -> Result<Vec<FileMeta>> {
        validate::share_name(share_name)?;
        self.reads.files.shares.insert(share_name.to_owned());
        let files = self.working.files.find(|ix| &ix.by_share, share_name)?;
        Ok(files.iter().map(|f| FileMeta::clone(f)).collect())
    }
}
