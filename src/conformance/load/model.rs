//! A task's model of what it owns: bytes per shared file, files of its own.

use super::*;

/// Byte ownership of one task on one file: 0 none, 1 shared, 2 exclusive.
pub(super) type Cells = Vec<u8>;

pub(super) fn cell_of(lock_type: LockType) -> u8 {
    match lock_type {
        LockType::Shared => 1,
        LockType::Exclusive => 2,
    }
}

/// The cells a range covers (the last cell stands for everything past it).
pub(super) fn cells(
    range: ByteRange,
) -> std::result::Result<std::ops::RangeInclusive<usize>, String> {
    let tail = (CELLS - 1) as u64;
    if range.offset > tail {
        return Err(format!("{range:?} starts past the modelled bytes"));
    }
    let last = range.last();
    if range.reaches_eof() {
        Ok(range.offset as usize..=CELLS - 1)
    } else if last < tail {
        Ok(range.offset as usize..=last as usize)
    } else {
        Err(format!("{range:?} ends inside the tail cell"))
    }
}

/// What one task owns, as it believes after its last commit.
///
/// Locks with a deny mode (share reservations) are a layer of their own: the
/// arbiter reshapes an owner's records one deny mode at a time, so a plain
/// request never trims or merges a reservation, and `release_range` trims
/// plain records only (see `acquire_lock`'s docs).
#[derive(Clone, Debug)]
pub(super) struct Model {
    pub(super) files: BTreeMap<FileHandle, FileMeta>,
    /// Bytes held by records without a deny mode, per file.
    pub(super) locks: Vec<Cells>,
    /// Bytes held by `DenyWrite` records (the only deny mode the load asks for), per file.
    pub(super) reserved: Vec<Cells>,
}

impl Model {
    pub(super) fn new() -> Self {
        Model {
            files: BTreeMap::new(),
            locks: vec![vec![0; CELLS]; LOCK_FILES],
            reserved: vec![vec![0; CELLS]; LOCK_FILES],
        }
    }

    pub(super) fn holds_any(&self) -> bool {
        self.locks
            .iter()
            .chain(&self.reserved)
            .flatten()
            .any(|&c| c != 0)
    }
}

/// [`coverage`] of one owner's plain pieces and of its `DenyWrite` pieces on
/// one file: what [`Model::locks`] and [`Model::reserved`] hold for it.
pub(super) fn coverage_by_mode(
    pieces: &[&PersistedLock],
) -> std::result::Result<(Cells, Cells), String> {
    let (plain, reserved): (Vec<&PersistedLock>, Vec<&PersistedLock>) = pieces
        .iter()
        .partition(|l| l.share_reservation == ShareReservation::None);
    Ok((coverage(&plain)?, coverage(&reserved)?))
}

/// The byte ownership a list of one owner's pieces on one file adds up to;
/// an error when pieces overlap or leave the modelled bytes.
pub(super) fn coverage(pieces: &[&PersistedLock]) -> std::result::Result<Cells, String> {
    let mut out = vec![0; CELLS];
    for piece in pieces {
        for cell in cells(piece.range())? {
            if out[cell] != 0 {
                return Err(format!(
                    "pieces of one owner overlap at byte {cell}: {pieces:?}"
                ));
            }
            out[cell] = cell_of(piece.lock_type);
        }
    }
    Ok(out)
}

pub(super) fn describe_cells(cells: &Cells) -> String {
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=cells.len() {
        if i == cells.len() || cells[i] != cells[start] {
            if cells[start] != 0 {
                let kind = if cells[start] == 1 { "S" } else { "X" };
                runs.push(format!("{kind}[{start}..={}]", i - 1));
            }
            start = i;
        }
    }
    if runs.is_empty() {
        "nothing".into()
    } else {
        runs.join(" ")
    }
}
