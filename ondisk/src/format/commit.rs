// SPDX-License-Identifier: GPL-2.0

//! The order in which a commit writes its blocks, copy after copy.

use super::{encode_entries, encode_super, set_copy, Crc32c, Format, MetadataDev};
use super::{METADATA_COPIES, UUID_BYTES};

/// One commit, encoded for copy 0: `data` holds the superblock, then block
/// `indices[k]` at `k + 1` (one metadata block each).
pub struct CommitBlocks<'a> {
    /// The blocks the commit carries, superblock not included.
    pub indices: &'a [u32],
    /// Whether each block changed in this commit (else it is written only
    /// to stale copies).
    pub dirty: &'a [bool],
    /// The superblock, then the blocks of `indices`.
    pub data: &'a mut [u8],
    /// Copies that missed a write: they get every block of `indices`.
    pub stale: [bool; METADATA_COPIES],
}

/// How a commit went.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CommitOutcome<E> {
    /// Copies that hold the commit, superblock included.
    pub written: [bool; METADATA_COPIES],
    /// Whether a superblock write of the commit was issued: a commit that
    /// failed may then be on disk all the same (a write that reported an
    /// error, or a flush that failed after it), and a later load may find
    /// it. Without one, no load can see the commit.
    pub superblock_issued: bool,
    /// The first error met.
    pub error: Option<E>,
}

impl<E> CommitOutcome<E> {
    /// Whether the commit is durable: at least one copy holds it.
    pub fn succeeded(&self) -> bool {
        self.written.iter().any(|&w| w)
    }
}

fn write_block<C: Crc32c, D: MetadataDev>(
    fmt: &Format,
    c: &mut CommitBlocks<'_>,
    dev: &mut D,
    copy: usize,
    k: usize,
) -> Result<(), D::Error> {
    let bs = fmt.block_bytes();
    let index = if k == 0 { 0 } else { c.indices[k - 1] };
    let block = &mut c.data[k * bs..(k + 1) * bs];
    set_copy::<C>(block, copy);
    dev.write(copy, index, block)
}

/// Writes a commit: for each copy in turn its blocks, a flush, then its
/// superblock, which goes out with the next copy's blocks. So the
/// superblock of a copy reaches the disk only after all of that copy's
/// blocks, and no write is ever in flight on more than two copies. Stale
/// copies go first: they hold nothing the others lack, and the copies
/// that do are then in flight as late as possible.
///
/// A batch is written only while some copy outside it holds a whole
/// commit: one not touched yet (and not stale), or one this commit
/// reached. When writes fail, the commit stops before it could damage the
/// last copy of the previous one, and records `stop_error`. (Unless every
/// copy was stale already: then nothing better than writing them is
/// possible.)
///
/// `c.data` must hold `c.indices.len() + 1` blocks and `c.dirty` one flag
/// per index; a commit that does not is not written (`stop_error`).
pub fn write_commit<C: Crc32c, D: MetadataDev>(
    fmt: &Format,
    mut c: CommitBlocks<'_>,
    dev: &mut D,
    stop_error: D::Error,
) -> CommitOutcome<D::Error> {
    let mut outcome = CommitOutcome {
        written: [false; METADATA_COPIES],
        superblock_issued: false,
        error: None,
    };
    if c.dirty.len() != c.indices.len() || c.data.len() != (c.indices.len() + 1) * fmt.block_bytes()
    {
        outcome.error = Some(stop_error);
        return outcome;
    }
    let note = |r: Result<(), D::Error>, outcome: &mut CommitOutcome<D::Error>| match r {
        Ok(()) => true,
        Err(e) => {
            outcome.error.get_or_insert(e);
            false
        }
    };
    let stale = c.stale;
    let protect = stale.iter().any(|&s| !s);
    let mut order = [0; METADATA_COPIES];
    let (mut first, mut last) = (0, METADATA_COPIES);
    for (copy, &is_stale) in stale.iter().enumerate() {
        if is_stale {
            order[first] = copy;
            first += 1;
        } else {
            last -= 1;
            order[last] = copy;
        }
    }
    let mut touched = [false; METADATA_COPIES];
    // The copy whose blocks are durable and whose superblock is next.
    let mut super_due: Option<usize> = None;
    for step in 0..=METADATA_COPIES {
        // Past the last copy: only its superblock is left.
        let copy = order.get(step).copied().unwrap_or(METADATA_COPIES);
        let in_batch = |x: usize| x == copy || Some(x) == super_due;
        let safe = (0..METADATA_COPIES)
            .any(|x| !in_batch(x) && (outcome.written[x] || (!touched[x] && !stale[x])));
        if protect && !safe {
            outcome.error.get_or_insert(stop_error);
            break;
        }
        let mut blocks_ok = true;
        if copy < METADATA_COPIES {
            touched[copy] = true;
            for k in 0..c.indices.len() {
                if stale[copy] || c.dirty[k] {
                    let r = write_block::<C, D>(fmt, &mut c, dev, copy, k + 1);
                    blocks_ok &= note(r, &mut outcome);
                }
            }
        }
        let mut super_ok = true;
        if let Some(due) = super_due {
            outcome.superblock_issued = true;
            let r = write_block::<C, D>(fmt, &mut c, dev, due, 0);
            super_ok = note(r, &mut outcome);
        }
        // A failed flush does not say which write of the batch failed: it
        // counts against both copies in it.
        let flushed = note(dev.flush(), &mut outcome);
        if let Some(due) = super_due {
            outcome.written[due] = super_ok && flushed;
        }
        super_due = (copy < METADATA_COPIES && blocks_ok && flushed).then_some(copy);
    }
    outcome
}

/// Encodes a commit of generation `generation` for copy 0 into `data`:
/// the superblock, then block `indices[k]` at `k + 1`, each entry block
/// stamped with `block_gen(k, index)` (the generation of the commit that
/// last changed it). `data` must hold `indices.len() + 1` blocks.
pub fn encode_commit<C: Crc32c>(
    fmt: &Format,
    uuid: &[u8; UUID_BYTES],
    generation: u64,
    words: &[u64],
    indices: &[u32],
    block_gen: impl Fn(usize, u32) -> u64,
    data: &mut [u8],
) {
    let bs = fmt.block_bytes();
    encode_super::<C>(fmt, uuid, generation, &mut data[..bs]);
    for (k, &index) in indices.iter().enumerate() {
        let block = &mut data[(k + 1) * bs..(k + 2) * bs];
        encode_entries::<C>(fmt, index, block_gen(k, index), words, block);
    }
}
