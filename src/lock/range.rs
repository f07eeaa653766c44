//! Byte ranges with saturating, to-EOF-aware arithmetic.

use serde::{Deserialize, Serialize};

/// A byte range of a file. `length == 0` means "from `offset` to end of file".
///
/// `length == u64::MAX` (NFSv4's all-ones length) also means "to end of file",
/// from any offset, and all arithmetic saturates at `u64::MAX`, so any length
/// that runs past it reaches end of file too. A range is never
/// empty: it covers at least the byte at `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ByteRange {
    /// First byte.
    pub offset: u64,
    /// Number of bytes; 0 = to end of file.
    pub length: u64,
}

impl ByteRange {
    /// A range of `length` bytes from `offset` (0 = to end of file).
    pub const fn new(offset: u64, length: u64) -> Self {
        ByteRange { offset, length }
    }

    /// The range from `first` to `last`, both inclusive; reaches EOF when `last == u64::MAX`.
    /// `None` when `last < first`.
    ///
    /// One range cannot be written: bytes `0..=u64::MAX - 1` would need the
    /// all-ones length, which means "to end of file". It comes back one byte
    /// short (`0..=u64::MAX - 2`), never longer, so a piece made from
    /// bounds stays inside them (a trimmed lock never grows into the released
    /// byte). No file reaches that offset: POSIX `off_t` stops at 2^63 − 1.
    pub const fn from_bounds(first: u64, last: u64) -> Option<Self> {
        if last < first {
            None
        } else if last == u64::MAX {
            Some(ByteRange::new(first, 0))
        } else if first == 0 && last == u64::MAX - 1 {
            Some(ByteRange::new(0, u64::MAX - 1))
        } else {
            Some(ByteRange::new(first, last - first + 1))
        }
    }

    /// The last byte covered, inclusive; `u64::MAX` for a range that reaches EOF:
    /// length 0, NFSv4's all-ones length (from any offset, even 0), or a sum
    /// that saturates.
    pub const fn last(&self) -> u64 {
        if self.length == 0 || self.length == u64::MAX {
            u64::MAX
        } else {
            self.offset.saturating_add(self.length - 1)
        }
    }

    /// True when both ranges cover exactly the same bytes: the same `offset`
    /// and the same [`last`](ByteRange::last) byte. Unlike `==`, which compares
    /// the raw `length`, this treats length 0 and NFSv4's all-ones length (and
    /// any length that saturates) as the same "to end of file".
    pub const fn same_bytes(&self, other: &ByteRange) -> bool {
        self.offset == other.offset && self.last() == other.last()
    }

    /// True when the range runs to end of file.
    pub const fn reaches_eof(&self) -> bool {
        self.last() == u64::MAX
    }

    /// True when the two ranges share at least one byte.
    pub const fn overlaps(&self, other: &ByteRange) -> bool {
        self.offset <= other.last() && other.offset <= self.last()
    }

    /// True when every byte of `other` is in `self`.
    pub const fn contains(&self, other: &ByteRange) -> bool {
        self.offset <= other.offset && other.last() <= self.last()
    }

    /// True when the ranges overlap or `other` starts right after `self` ends (or the reverse):
    /// their union is one contiguous range.
    pub const fn touches(&self, other: &ByteRange) -> bool {
        self.overlaps(other)
            || (self.last() != u64::MAX && self.last() + 1 == other.offset)
            || (other.last() != u64::MAX && other.last() + 1 == self.offset)
    }

    /// The smallest range covering both (their union when they [`touch`](ByteRange::touches));
    /// to EOF where that union would be the unwritable `0..=u64::MAX - 1`.
    pub const fn span(&self, other: &ByteRange) -> ByteRange {
        let first = if self.offset < other.offset {
            self.offset
        } else {
            other.offset
        };
        let last = if self.last() > other.last() {
            self.last()
        } else {
            other.last()
        };
        // Bytes 0..=2^64-2 cannot be written (see `from_bounds`); a span must
        // cover both, so it reaches EOF instead, one byte more.
        if first == 0 && last == u64::MAX - 1 {
            return ByteRange::new(0, 0);
        }
        match ByteRange::from_bounds(first, last) {
            Some(range) => range,
            None => *self, // unreachable: first <= last by construction
        }
    }

    /// The parts of `self` that `other` does not cover: none, one or two ranges,
    /// in offset order.
    pub fn subtract(&self, other: &ByteRange) -> Vec<ByteRange> {
        if !self.overlaps(other) {
            return vec![*self];
        }
        let mut pieces = Vec::with_capacity(2);
        if self.offset < other.offset {
            pieces.extend(ByteRange::from_bounds(self.offset, other.offset - 1));
        }
        if other.last() < self.last() {
            pieces.extend(ByteRange::from_bounds(other.last() + 1, self.last()));
        }
        pieces
    }
}
