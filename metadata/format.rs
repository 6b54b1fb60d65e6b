// SPDX-License-Identifier: GPL-2.0

//! The on-disk layout of one identity: the constants of the format, the
//! spare slot values, the identity a superblock records, and where each
//! copy's blocks lie.

use super::*;

/// The first eight bytes of every metadata block.
pub(crate) const MAGIC: [u8; 8] = *b"dm-remap";
/// The on-disk format version this code writes and reads.
pub(crate) const FORMAT_VERSION: u16 = 1;
/// Bytes of the header at the start of every metadata block.
pub(crate) const HEADER_BYTES: usize = 32;
/// Spare blocks per pending slot.
pub(crate) const PENDING_SHARE: u32 = 16;

pub(super) const OFF_CRC: usize = 8;
pub(super) const OFF_VERSION: usize = 12;
pub(super) const OFF_KIND: usize = 14;
pub(super) const OFF_GENERATION: usize = 16;
pub(super) const OFF_INDEX: usize = 24;
pub(super) const OFF_COPY: usize = 28;

pub(super) const KIND_SUPER: u16 = 1;
pub(super) const KIND_SLOTS: u16 = 2;
pub(super) const KIND_PENDING: u16 = 3;

/// Top two bits of a slot word: its state; the other 62: a data block.
pub(super) const STATE_SHIFT: u32 = 62;
pub(super) const BLOCK_MASK: u64 = (1 << STATE_SHIFT) - 1;
pub(super) const STATE_IN_USE: u64 = 1;
pub(super) const STATE_LOST: u64 = 2;
pub(super) const STATE_RETIRED: u64 = 3;

/// What a spare slot says about its spare block.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Slot {
    /// Free for allocation (or, in a metadata copy's place, unused).
    Free,
    /// Holds the data of `block`; `lost` when that data could not be read
    /// when the block was remapped (the spare was zero-filled).
    InUse { block: u64, lost: bool },
    /// Failed once; never used again.
    Retired,
}

impl Slot {
    /// The slot's on-disk word.
    pub(crate) fn encode(self) -> u64 {
        match self {
            Slot::Free => 0,
            Slot::InUse { block, lost } => {
                let state = if lost { STATE_LOST } else { STATE_IN_USE };
                (state << STATE_SHIFT) | (block & BLOCK_MASK)
            }
            Slot::Retired => STATE_RETIRED << STATE_SHIFT,
        }
    }

    /// The slot of an on-disk word, or `None` for a word no writer makes.
    pub(crate) fn decode(word: u64) -> Option<Slot> {
        let block = word & BLOCK_MASK;
        match word >> STATE_SHIFT {
            0 if block == 0 => Some(Slot::Free),
            STATE_IN_USE => Some(Slot::InUse { block, lost: false }),
            STATE_LOST => Some(Slot::InUse { block, lost: true }),
            STATE_RETIRED if block == 0 => Some(Slot::Retired),
            _ => None,
        }
    }
}

/// What a table line says about its areas; the superblock records it, and
/// metadata recorded for another identity is refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Identity {
    /// First sector of the data area on the data device.
    pub(crate) data_offset: u64,
    /// Length of the data area (the target) in sectors.
    pub(crate) data_len: u64,
    /// First sector of the spare area on the spare device.
    pub(crate) spare_offset: u64,
    /// Length of the spare area in sectors.
    pub(crate) spare_len: u64,
    /// The remap block size in bytes.
    pub(crate) block_size: u32,
}

/// Why metadata cannot be laid out for an identity.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum FormatError {
    /// The block size is not a power of two of at least 512 bytes.
    BadBlockSize,
    /// The spare area has 2^31 blocks or more.
    TooManyBlocks,
    /// The spare area cannot hold five copies and one spare block.
    TooSmall,
}

/// Where the metadata of one identity lies and how big it is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Format {
    pub(crate) identity: Identity,
    /// Blocks in the spare area, metadata copies included.
    pub(crate) nr_spare: u32,
    /// Slot words per metadata block.
    pub(crate) words_per_block: u32,
    /// Blocks of spare slots per copy.
    pub(crate) slot_blocks: u32,
    /// Blocks of pending-block slots per copy.
    pub(crate) pending_blocks: u32,
    /// Where the five copies lie, in blocks of the spare area.
    pub(crate) layout: MetadataLayout,
}

impl Format {
    /// The format for `identity`: one spare slot for every block of the
    /// spare area, and one pending slot for every `PENDING_SHARE`.
    pub(crate) fn new(identity: Identity) -> Result<Self, FormatError> {
        let bs = identity.block_size;
        if bs < 512 || !bs.is_power_of_two() {
            return Err(FormatError::BadBlockSize);
        }
        let shift = (bs >> 9).trailing_zeros();
        let nr_spare = u32::try_from(identity.spare_len >> shift)
            .ok()
            .filter(|&n| n < 1 << 31)
            .ok_or(FormatError::TooManyBlocks)?;
        let words_per_block = (bs - HEADER_BYTES as u32) / 8;
        // words_per_block >= 60; the sum stays far below 2^32.
        let slot_blocks = nr_spare.div_ceil(words_per_block);
        // A pending slot for one spare block in PENDING_SHARE: a block is
        // pending only until its next write.
        let pending_blocks = nr_spare.div_ceil(PENDING_SHARE).div_ceil(words_per_block);
        let copy_blocks = 1 + slot_blocks + pending_blocks;
        let layout =
            MetadataLayout::new(nr_spare, copy_blocks).map_err(|_| FormatError::TooSmall)?;
        Ok(Self {
            identity,
            nr_spare,
            words_per_block,
            slot_blocks,
            pending_blocks,
            layout,
        })
    }

    /// Metadata blocks per copy.
    pub(crate) fn copy_blocks(&self) -> u32 {
        self.layout.copy_blocks
    }

    /// Bytes per metadata block.
    pub(crate) fn block_bytes(&self) -> usize {
        self.identity.block_size as usize
    }

    /// Words of the in-memory image: the spare slots, then the pending
    /// slots, each region padded to whole blocks.
    pub(crate) fn words(&self) -> usize {
        (self.slot_blocks + self.pending_blocks) as usize * self.words_per_block as usize
    }

    /// Pending slots: one per spare block, each region padded to whole
    /// blocks; pending slot `i` is image word `pending_base() + i`.
    pub(crate) fn pending_slots(&self) -> u32 {
        self.pending_blocks * self.words_per_block
    }

    pub(super) fn pending_base(&self) -> usize {
        self.slot_blocks as usize * self.words_per_block as usize
    }

    /// The block of the spare area that holds block `index` of `copy`.
    pub(crate) fn area_block(&self, copy: usize, index: u32) -> u64 {
        u64::from(self.layout.starts[copy]) + u64::from(index)
    }

    pub(super) fn kind_of(&self, index: u32) -> u16 {
        if index == 0 {
            KIND_SUPER
        } else if index <= self.slot_blocks {
            KIND_SLOTS
        } else {
            KIND_PENDING
        }
    }

    /// The image words that block `index` (not 0) carries.
    pub(super) fn word_range(&self, index: u32) -> core::ops::Range<usize> {
        let per = self.words_per_block as usize;
        let start = (index as usize - 1) * per;
        start..start + per
    }
}
