//! The files family: [`FileMeta`] records in `files`, keyed by handle, with
//! one index, `files_by_share` (`len16(share_name) | handle`).

use async_trait::async_trait;
use fjall::OptimisticTxKeyspace;

use super::Keyspaces;
use super::codec::{self, Fault};
use super::keys::{self, names};
use super::table::{Family, Index, Table};
use super::tx::FjallTx;
use crate::error::{Error, Result};
use crate::file::{FileHandle, FileMeta, FileStore};
use crate::validate;

/// The files family.
pub(super) struct Files;

/// `files_by_share`: a share's files, in handle order.
const BY_SHARE: Index<FileMeta> = Index {
    name: names::FILES_BY_SHARE,
    layout: "len16(share_name) | handle",
    keyspace: |ks| &ks.files_by_share,
    entry: |file| keys::file_by_share(&file.share_name, &file.handle),
    target: keys::after_len16,
};

impl Family for Files {
    type Key = FileHandle;
    type Record = FileMeta;
    const NAME: &'static str = names::FILES;
    const RECORD: &'static str = "file";
    const PREFIX: &'static [u8] = b"";
    const KEY_RULE: &'static str = "a file key must be a 1..=128-byte handle";
    const INDEXES: &'static [Index<FileMeta>] = &[BY_SHARE];

    fn keyspace(ks: &Keyspaces) -> &OptimisticTxKeyspace {
        &ks.files
    }
    fn key_of(file: &FileMeta) -> FileHandle {
        file.handle.clone()
    }
    fn encode_key(handle: &FileHandle) -> Vec<u8> {
        handle.as_bytes().to_vec()
    }
    fn decode_key(raw: &[u8]) -> Option<FileHandle> {
        FileHandle::new(raw).ok()
    }
    fn encode(file: &FileMeta) -> Result<Vec<u8>> {
        codec::encode_file(file)
    }
    fn decode(handle: &FileHandle, _raw: &[u8], value: &[u8]) -> Result<FileMeta, Fault> {
        codec::decode_file(handle, value)
    }
}

#[async_trait]
impl FileStore for FjallTx {
    async fn put_file(&mut self, file: &FileMeta) -> Result<()> {
        validate::file(file)?;
        Table::<Files>::new(&self.store.ks).put(&mut self.tx, file)
    }

    async fn get_file(&mut self, handle: &FileHandle) -> Result<Option<FileMeta>> {
        validate::file_handle(handle)?;
        Table::<Files>::new(&self.store.ks).get(&self.tx, handle)
    }

    async fn delete_file(&mut self, handle: &FileHandle) -> Result<()> {
        validate::file_handle(handle)?;
        Table::<Files>::new(&self.store.ks)
            .delete(&mut self.tx, handle)?
            .map(drop)
            .ok_or_else(|| Error::FileNotFound(handle.clone()))
    }

    async fn list_files_page(
        &mut self,
        after: Option<&FileHandle>,
        limit: usize,
    ) -> Result<Vec<FileMeta>> {
        validate::page_limit(limit)?;
        Table::<Files>::new(&self.store.ks).page(&self.tx, after, limit)
    }

    async fn list_files(&mut self, share_name: &str) -> Result<Vec<FileMeta>> {
        validate::share_name(share_name)?;
        let prefix = keys::prefix(share_name.as_bytes())?;
        Table::<Files>::new(&self.store.ks).index_prefix(&self.tx, &BY_SHARE, &prefix)
    }
}
