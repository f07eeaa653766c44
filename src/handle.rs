//! The file handle type: a leaf module (it depends on nothing else in the
//! crate), so that the error type can name a handle. Its validating
//! constructors, `FileHandle::new` and `FileHandle::from_hex`, are in
//! `crate::file` beside the error they return.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An opaque file handle: 1 to [`FileHandle::MAX_LEN`] arbitrary bytes (NFSv4's limit).
///
/// Displayed as lowercase hex. Built with [`FileHandle::new`] or
/// [`FileHandle::from_hex`], which check the length.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<u8>", into = "Vec<u8>")]
pub struct FileHandle(Vec<u8>);

impl FileHandle {
    /// The longest handle accepted, in bytes (NFSv4's `NFS4_FHSIZE`).
    pub const MAX_LEN: usize = 128;

    /// A handle from bytes whose length the caller has checked.
    pub(crate) fn from_checked(bytes: Vec<u8>) -> Self {
        debug_assert!((1..=Self::MAX_LEN).contains(&bytes.len()));
        FileHandle(bytes)
    }

    /// The handle's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The handle as lowercase hex.
    pub fn to_hex(&self) -> String {
        use fmt::Write;
        self.0
            .iter()
            .fold(String::with_capacity(self.0.len() * 2), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            })
    }
}

impl From<FileHandle> for Vec<u8> {
    fn from(handle: FileHandle) -> Self {
        handle.0
    }
}

impl fmt::Debug for FileHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileHandle({})", self.to_hex())
    }
}

impl fmt::Display for FileHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
