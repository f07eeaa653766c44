//! File metadata: handles, attributes and the [`FileStore`] operations.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::time::Timestamp;

// The handle type itself is a leaf module (`crate::handle`, which the error
// type uses for `FileNotFound`); its validating constructors live here, with
// the error they return, so that no two modules need each other.
pub use crate::handle::FileHandle;

impl FileHandle {
    /// A handle from its bytes; `Error::Invalid` when empty or longer than 128 bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self> {
        let bytes = bytes.into();
        Self::check(&bytes)?;
        Ok(FileHandle::from_checked(bytes))
    }

    /// Whether `bytes` make a handle (1 to 128 bytes), without building one.
    pub(crate) fn check(bytes: &[u8]) -> Result<()> {
        if bytes.is_empty() {
            return Err(Error::Invalid("file handle: must not be empty".into()));
        }
        if bytes.len() > Self::MAX_LEN {
            return Err(Error::Invalid(format!(
                "file handle: {} bytes, at most {} allowed",
                bytes.len(),
                Self::MAX_LEN
            )));
        }
        Ok(())
    }

    /// Parses a handle from hex (as printed by [`FileHandle::to_hex`]).
    pub fn from_hex(hex: &str) -> Result<Self> {
        let invalid = || {
            Error::Invalid(format!(
                "file handle: {hex:?} is not an even-length hex string"
            ))
        };
        if !hex.len().is_multiple_of(2) || !hex.is_ascii() {
            return Err(invalid());
        }
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| invalid()))
            .collect::<Result<Vec<u8>>>()?;
        Self::new(bytes)
    }
}

impl TryFrom<Vec<u8>> for FileHandle {
    type Error = Error;
    fn try_from(bytes: Vec<u8>) -> Result<Self> {
        FileHandle::new(bytes)
    }
}

/// What kind of object a file handle names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum FileKind {
    /// A regular file.
    Regular = 0,
    /// A directory.
    Directory = 1,
    /// A symbolic link.
    Symlink = 2,
    /// Anything else (device, socket, FIFO).
    Other = 3,
}

impl TryFrom<u8> for FileKind {
    type Error = Error;
    fn try_from(value: u8) -> Result<Self> {
        Ok(match value {
            0 => FileKind::Regular,
            1 => FileKind::Directory,
            2 => FileKind::Symlink,
            3 => FileKind::Other,
            other => return Err(Error::Corrupt(format!("file kind {other} is not in 0..=3"))),
        })
    }
}

/// A file's metadata record.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileMeta {
    /// The file's handle (its key).
    pub handle: FileHandle,
    /// The share (export) the file belongs to.
    pub share_name: String,
    /// File, directory, symlink or other.
    pub kind: FileKind,
    /// Permission bits and file type bits, as the server keeps them.
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Number of hard links.
    pub nlink: u32,
    /// Size in bytes.
    pub size: u64,
    /// Last access.
    pub atime: Timestamp,
    /// Last data modification.
    pub mtime: Timestamp,
    /// Last status change.
    pub ctime: Timestamp,
}

/// File-metadata operations of a transaction.
#[async_trait]
pub trait FileStore: Send {
    /// Inserts or replaces the file with `file.handle`.
    async fn put_file(&mut self, file: &FileMeta) -> Result<()>;
    /// The file with this handle, if stored.
    async fn get_file(&mut self, handle: &FileHandle) -> Result<Option<FileMeta>>;
    /// Deletes the file; [`Error::FileNotFound`] when it is not stored.
    async fn delete_file(&mut self, handle: &FileHandle) -> Result<()>;
    /// Every file of a share, in handle order.
    async fn list_files(&mut self, share_name: &str) -> Result<Vec<FileMeta>>;
    /// One page of every share's files: those with a handle above `after`
    /// (from the first when `None`), in handle order, at most `limit` (≥ 1).
    /// For walking a whole store without holding it in memory.
    async fn list_files_page(
        &mut self,
        after: Option<&FileHandle>,
        limit: usize,
    ) -> Result<Vec<FileMeta>>;
}
