// SPDX-License-Identifier: GPL-2.0

//! One commit, encoded, as the writer holds it.

use crate::metadata::Crc;
use crate::ondisk::{write_commit, CommitBlocks, Format, MetadataDev, METADATA_COPIES};
use kernel::prelude::*;

/// How a commit went (see [`crate::ondisk::CommitOutcome`]).
pub(crate) type CommitOutcome = crate::ondisk::CommitOutcome<Error>;

/// One commit, encoded: the superblock then the blocks to write.
pub(crate) struct Commit {
    pub(super) fmt: Format,
    pub(super) generation: u64,
    pub(super) indices: KVVec<u32>,
    /// Whether each block changed in this commit (else it is written only
    /// to stale copies).
    pub(super) dirty: KVVec<bool>,
    pub(super) data: KVVec<u8>,
    pub(super) stale: [bool; METADATA_COPIES],
}

impl Commit {
    /// The commit's generation.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Blocks written per copy that is not stale, superblock included.
    pub(crate) fn blocks(&self) -> usize {
        self.dirty.iter().filter(|&&d| d).count() + 1
    }

    /// Writes the commit in the format's order ([`write_commit`]): a
    /// commit that stops to spare the last copy of the previous one
    /// reports `EIO`.
    pub(crate) fn write(&mut self, dev: &mut impl MetadataDev<Error = Error>) -> CommitOutcome {
        let blocks = CommitBlocks {
            indices: &self.indices,
            dirty: &self.dirty,
            data: &mut self.data,
            stale: self.stale,
        };
        write_commit::<Crc, _>(&self.fmt, blocks, dev, EIO)
    }
}
