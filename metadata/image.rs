// SPDX-License-Identifier: GPL-2.0

//! The metadata in memory, as the next commit writes it.

use crate::kapi::warn::warn_on;
use crate::metadata::{Commit, CommitOutcome, Crc};
use crate::ondisk::{encode_commit, Format, Pending, Recovered, Slot, METADATA_COPIES, UUID_BYTES};
use kernel::alloc::AllocError;
use kernel::prelude::*;

/// The metadata in memory: the slot words as last changed, what is still
/// to be written, and which copies missed writes.
///
/// # Invariants
///
/// `words` has `fmt.words()` entries and `block_gen` `fmt.copy_blocks()`;
/// `dirty` lists each index of `is_dirty` that is set, once.
pub(crate) struct MetaImage {
    fmt: Format,
    /// The UUID every superblock of this metadata records.
    uuid: [u8; UUID_BYTES],
    pub(super) words: KVVec<u64>,
    /// Generation of the commit that last wrote each block.
    pub(super) block_gen: KVVec<u64>,
    is_dirty: KVVec<bool>,
    dirty: KVVec<u32>,
    /// Copies that missed a write: the next commit rewrites them whole.
    pub(super) stale: [bool; METADATA_COPIES],
    /// The last generation known durable.
    pub(super) committed: u64,
    /// The generation the next commit gets; above any seen on disk.
    pub(super) next_gen: u64,
}

pub(super) fn filled<T: Copy>(n: usize, v: T) -> Result<KVVec<T>, AllocError> {
    // One allocation and a fill the compiler can make a loop of stores
    // (not a push, with its capacity check, per element).
    KVVec::from_elem(v, n, GFP_KERNEL)
}

impl MetaImage {
    /// The image of a blank spare area, to be formatted with metadata of
    /// `uuid`: every slot free, every block of every copy to be written.
    pub(crate) fn blank(fmt: &Format, uuid: [u8; UUID_BYTES]) -> Result<Self, AllocError> {
        let mut image = Self::empty(fmt, uuid)?;
        for index in 1..fmt.copy_blocks() {
            image.is_dirty[index as usize] = true;
            image.dirty.push(index, GFP_KERNEL)?;
        }
        Ok(image)
    }

    /// An image with every slot free and nothing to write but whole copies.
    pub(super) fn empty(fmt: &Format, uuid: [u8; UUID_BYTES]) -> Result<Self, AllocError> {
        let blocks = fmt.copy_blocks() as usize;
        Ok(Self {
            fmt: *fmt,
            uuid,
            words: filled(fmt.words(), 0)?,
            block_gen: filled(blocks, 0)?,
            is_dirty: filled(blocks, false)?,
            dirty: KVVec::with_capacity(blocks, GFP_KERNEL)?,
            stale: [true; METADATA_COPIES],
            committed: 0,
            next_gen: 1,
        })
    }

    /// Takes the generations and stale copies of a recovered image whose
    /// words and block generations are in place; `repair` leaves the
    /// copies that lack blocks to the next commit to rewrite.
    pub(super) fn set_loaded(&mut self, rec: &Recovered, repair: bool) {
        self.uuid = rec.uuid;
        self.committed = rec.generation;
        self.next_gen = rec.next_generation;
        self.stale = if repair {
            rec.stale
        } else {
            [false; METADATA_COPIES]
        };
    }

    /// The format of this image.
    pub(crate) fn format(&self) -> &Format {
        &self.fmt
    }

    /// The UUID of this metadata.
    pub(crate) fn uuid(&self) -> &[u8; UUID_BYTES] {
        &self.uuid
    }

    /// Image word `i` (see [`Format::words`]).
    pub(crate) fn word(&self, i: usize) -> u64 {
        self.words[i]
    }

    /// Spare slot `spare`.
    pub(crate) fn slot(&self, spare: u32) -> Option<Slot> {
        Slot::decode(self.words[spare as usize])
    }

    /// Sets image word `i`; the next commit writes its block.
    pub(crate) fn set_word(&mut self, i: usize, value: u64) {
        self.words[i] = value;
        self.mark_dirty(self.fmt.block_of_word(i));
    }

    /// Has the next commit write block `index` (not the superblock) at its
    /// generation, unchanged.
    pub(super) fn mark_dirty(&mut self, index: u32) {
        let i = index as usize;
        if index == 0 || i >= self.is_dirty.len() || self.is_dirty[i] {
            return;
        }
        self.is_dirty[i] = true;
        // Room for every block was reserved at creation: a failure would be
        // a bookkeeping error, warned about.
        warn_on(self.dirty.push_within_capacity(index).is_err());
    }

    /// Sets spare slot `spare`.
    pub(crate) fn set_slot(&mut self, spare: u32, slot: Slot) {
        self.set_word(spare as usize, slot.encode());
    }

    /// Pending slot `i`: `Some(None)` when empty, `Some(Some(pending))`
    /// for a pending data block, `None` for a word no writer makes.
    pub(crate) fn pending(&self, i: u32) -> Option<Option<Pending>> {
        Slot::decode_pending(self.words[self.fmt.pending_base() + i as usize])
    }

    /// The first empty pending slot from `from` on.
    pub(crate) fn free_pending_slot(&self, from: u32) -> Option<u32> {
        let base = self.fmt.pending_base();
        (from..self.fmt.pending_slots()).find(|&i| self.words[base + i as usize] == 0)
    }

    /// Sets pending slot `i` to `pending`, or empties it.
    pub(crate) fn set_pending(&mut self, i: u32, pending: Option<Pending>) {
        self.set_word(
            self.fmt.pending_base() + i as usize,
            Slot::encode_pending(pending),
        );
    }

    /// Bytes of memory the image holds.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.words.capacity() * 8
            + self.block_gen.capacity() * 8
            + self.is_dirty.capacity()
            + self.dirty.capacity() * 4
    }

    /// Whether changed blocks wait for a commit (not only stale copies).
    pub(crate) fn has_changes(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Whether a commit has something to write.
    pub(crate) fn needs_commit(&self) -> bool {
        !self.dirty.is_empty() || self.stale.iter().any(|&s| s)
    }

    /// The last generation known durable (0 before the first commit).
    pub(crate) fn committed(&self) -> u64 {
        self.committed
    }

    /// The generation the next commit will have: a change made now is
    /// durable once [`Self::committed`] reaches it.
    pub(crate) fn next_generation(&self) -> u64 {
        self.next_gen
    }

    /// The generation that block `index` of every intact copy holds: the
    /// last commit's for the superblock (every commit writes it), the one
    /// that last changed it for the others.
    pub(crate) fn block_generation(&self, index: u32) -> u64 {
        match index {
            0 => self.committed,
            _ => self.block_gen.get(index as usize).copied().unwrap_or(0),
        }
    }

    /// Whether `copy` misses some block of the last commit: the next
    /// commit rewrites it whole.
    pub(crate) fn is_stale(&self, copy: usize) -> bool {
        self.stale.get(copy).copied().unwrap_or(false)
    }

    /// Marks `copy` as missing a block (a scrub found it damaged): the
    /// next commit rewrites it whole.
    pub(crate) fn mark_stale(&mut self, copy: usize) {
        if let Some(stale) = self.stale.get_mut(copy) {
            *stale = true;
        }
    }

    /// Copies holding the whole last commit, as far as is known.
    pub(crate) fn intact_copies(&self) -> usize {
        self.stale.iter().filter(|&&s| !s).count()
    }

    /// Takes what is to be written into a [`Commit`] (of the next
    /// generation), encoded for copy 0: the changed blocks, or every block
    /// when some copy is stale.
    pub(crate) fn prepare(&mut self) -> Result<Commit, AllocError> {
        let fmt = self.fmt;
        let bs = fmt.block_bytes();
        let whole = self.stale.iter().any(|&s| s);
        let n = if whole {
            fmt.copy_blocks() as usize - 1
        } else {
            self.dirty.len()
        };
        let mut indices = KVVec::with_capacity(n, GFP_KERNEL)?;
        let mut data = filled((n + 1) * bs, 0u8)?;
        // A commit that only rewrites stale copies writes the state of the
        // last commit again, under its generation: where a copy holds that
        // state already, every byte written is the byte that is there.
        let repair_only = self.dirty.is_empty() && self.committed > 0;
        let generation = if repair_only {
            self.committed
        } else {
            self.next_gen
        };
        if whole {
            for index in 1..fmt.copy_blocks() {
                indices.push(index, GFP_KERNEL)?;
            }
        } else {
            for &index in self.dirty.iter() {
                indices.push(index, GFP_KERNEL)?;
            }
        }
        let mut dirty = filled(n, false)?;
        for (k, &index) in indices.iter().enumerate() {
            dirty[k] = self.is_dirty[index as usize];
        }
        let block_gen = |k: usize, index: u32| {
            if dirty[k] {
                generation
            } else {
                self.block_gen[index as usize]
            }
        };
        encode_commit::<Crc>(
            &fmt,
            &self.uuid,
            generation,
            &self.words,
            &indices,
            block_gen,
            &mut data,
        );
        for &index in self.dirty.iter() {
            self.is_dirty[index as usize] = false;
        }
        self.dirty.clear();
        if !repair_only {
            self.next_gen += 1;
        }
        Ok(Commit {
            fmt,
            generation,
            indices,
            dirty,
            data,
            stale: self.stale,
        })
    }

    /// Records how a prepared commit went. A commit that reached no copy
    /// leaves its blocks to be written again.
    pub(crate) fn finish(&mut self, commit: &Commit, outcome: &CommitOutcome) {
        if outcome.succeeded() {
            self.committed = commit.generation;
            for (k, &index) in commit.indices.iter().enumerate() {
                if commit.dirty[k] {
                    self.block_gen[index as usize] = commit.generation;
                }
            }
        } else {
            for (k, &index) in commit.indices.iter().enumerate() {
                if commit.dirty[k] && !self.is_dirty[index as usize] {
                    self.is_dirty[index as usize] = true;
                    // Room for every block was reserved at creation, and
                    // `is_dirty` keeps each index in it once.
                    warn_on(self.dirty.push_within_capacity(index).is_err());
                }
            }
        }
        for (stale, written) in self.stale.iter_mut().zip(outcome.written) {
            *stale = !written;
        }
    }
}
