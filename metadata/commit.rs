// SPDX-License-Identifier: GPL-2.0

//! One commit, encoded, and how it is written copy after copy.

use super::*;

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

/// How a commit went.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct CommitOutcome {
    /// Copies that hold the commit, superblock included.
    pub(crate) written: [bool; METADATA_COPIES],
    /// Whether a superblock write of the commit was issued: a commit that
    /// failed may then be on disk all the same (a write that reported an
    /// error, or a flush that failed after it), and a later load may find
    /// it. Without one, no load can see the commit.
    pub(crate) superblock_issued: bool,
    /// The first error met.
    pub(crate) error: Option<Error>,
}

impl CommitOutcome {
    /// Whether the commit is durable: at least one copy holds it.
    pub(crate) fn succeeded(&self) -> bool {
        self.written.iter().any(|&w| w)
    }
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

    fn write_block(&mut self, dev: &mut impl MetadataDev, copy: usize, k: usize) -> Result {
        let bs = self.fmt.block_bytes();
        let index = if k == 0 { 0 } else { self.indices[k - 1] };
        let block = &mut self.data[k * bs..(k + 1) * bs];
        set_copy(block, copy);
        dev.write(copy, index, block)
    }

    /// Writes the commit: for each copy in turn its blocks, a flush, then
    /// its superblock, which goes out with the next copy's blocks. So the
    /// superblock of a copy reaches the disk only after all of that copy's
    /// blocks, and no write is ever in flight on more than two copies.
    /// Stale copies go first: they hold nothing the others lack, and the
    /// copies that do are then in flight as late as possible.
    ///
    /// A batch is written only while some copy outside it holds a whole
    /// commit: one not touched yet (and not stale), or one this commit
    /// reached. When writes fail, the commit stops before it could damage
    /// the last copy of the previous one. (Unless every copy was stale
    /// already: then nothing better than writing them is possible.)
    pub(crate) fn write(&mut self, dev: &mut impl MetadataDev) -> CommitOutcome {
        let mut outcome = CommitOutcome {
            written: [false; METADATA_COPIES],
            superblock_issued: false,
            error: None,
        };
        let note = |r: Result, outcome: &mut CommitOutcome| match r {
            Ok(()) => true,
            Err(e) => {
                outcome.error.get_or_insert(e);
                false
            }
        };
        let protect = self.stale.iter().any(|&s| !s);
        let mut order = [0; METADATA_COPIES];
        let (mut first, mut last) = (0, METADATA_COPIES);
        for c in 0..METADATA_COPIES {
            if self.stale[c] {
                order[first] = c;
                first += 1;
            } else {
                last -= 1;
                order[last] = c;
            }
        }
        let mut touched = [false; METADATA_COPIES];
        // The copy whose blocks are durable and whose superblock is next.
        let mut super_due: Option<usize> = None;
        for step in 0..=METADATA_COPIES {
            // Past the last copy: only its superblock is left.
            let copy = order.get(step).copied().unwrap_or(METADATA_COPIES);
            let in_batch = |c: usize| c == copy || Some(c) == super_due;
            let safe = (0..METADATA_COPIES)
                .any(|c| !in_batch(c) && (outcome.written[c] || (!touched[c] && !self.stale[c])));
            if protect && !safe {
                outcome.error.get_or_insert(EIO);
                break;
            }
            let mut blocks_ok = true;
            if copy < METADATA_COPIES {
                touched[copy] = true;
                for k in 0..self.indices.len() {
                    if self.stale[copy] || self.dirty[k] {
                        let r = self.write_block(dev, copy, k + 1);
                        blocks_ok &= note(r, &mut outcome);
                    }
                }
            }
            let mut super_ok = true;
            if let Some(due) = super_due {
                outcome.superblock_issued = true;
                let r = self.write_block(dev, due, 0);
                super_ok = note(r, &mut outcome);
            }
            // A failed flush does not say which write of the batch failed:
            // it counts against both copies in it.
            let flushed = note(dev.flush(), &mut outcome);
            if let Some(due) = super_due {
                outcome.written[due] = super_ok && flushed;
            }
            super_due = (copy < METADATA_COPIES && blocks_ok && flushed).then_some(copy);
        }
        outcome
    }
}
