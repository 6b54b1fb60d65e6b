// SPDX-License-Identifier: GPL-2.0

//! Where the metadata of one identity lies: the identity a superblock
//! records, the five copies' places in the spare area, and the blocks of
//! one copy.

use super::METADATA_COPIES;

/// The first eight bytes of every metadata block.
pub const MAGIC: [u8; 8] = *b"dm-remap";
/// The on-disk format version this code writes and reads. Version 1 (no
/// UUID) is not read: the project had no users when version 2 came.
pub const FORMAT_VERSION: u16 = 2;
/// Bytes of the header at the start of every metadata block.
pub const HEADER_BYTES: usize = 32;
/// Spare blocks per pending slot.
pub const PENDING_SHARE: u32 = 16;
/// The largest remap block size, in bytes.
pub const MAX_BLOCK_SIZE: u32 = 65536;
/// The most bytes one metadata copy may take. The kernel holds the image
/// (about a copy's size) and, to rewrite a copy whole, a buffer of a copy,
/// each in one allocation, which kvmalloc refuses (with a warning) from
/// 2 GiB; 1 GiB keeps both well inside it. About 8 bytes per spare block
/// (8.5 at 512-byte blocks): up to about 126M spare blocks at 512-byte
/// blocks (a 63 GiB spare area), 133M at 4 KiB (508 GiB).
pub const MAX_COPY_BYTES: u64 = 1 << 30;

/// What a table line says about its areas; the superblock records it, and
/// metadata recorded for another identity is refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Identity {
    /// First sector of the data area on the data device.
    pub data_offset: u64,
    /// Length of the data area (the target) in sectors.
    pub data_len: u64,
    /// First sector of the spare area on the spare device.
    pub spare_offset: u64,
    /// Length of the spare area in sectors.
    pub spare_len: u64,
    /// The remap block size in bytes.
    pub block_size: u32,
}

/// Why metadata cannot be laid out for an identity.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FormatError {
    /// The block size is not a power of two from 512 to 65536 bytes.
    BadBlockSize,
    /// The spare area has 2^31 blocks or more.
    TooManyBlocks,
    /// The spare area cannot hold five copies and one spare block.
    TooSmall,
    /// A metadata copy would take more than [`MAX_COPY_BYTES`].
    TooLarge,
}

impl FormatError {
    /// What is wrong, in words for the user.
    pub fn reason(&self) -> &'static str {
        match self {
            FormatError::BadBlockSize => {
                "the block size is not a power of two from 512 to 65536 bytes"
            }
            FormatError::TooManyBlocks => {
                "the spare area has 2^31 blocks or more: use a larger block size"
            }
            FormatError::TooSmall => {
                "the spare area is too small for five metadata copies and a spare block"
            }
            FormatError::TooLarge => {
                "a metadata copy of this spare area would take more than 1 GiB of memory: use a larger block size or a smaller spare area"
            }
        }
    }
}

/// Where the five copies lie in a spare area, in blocks of the area.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MetadataLayout {
    /// Blocks per copy.
    pub copy_blocks: u32,
    /// First block of each copy.
    pub starts: [u32; METADATA_COPIES],
}

impl MetadataLayout {
    /// Spreads five copies of `copy_blocks` blocks over `nr_blocks` blocks,
    /// leaving at least one block for spares: copy `i` starts at block
    /// `(nr_blocks - copy_blocks) * i / 4`.
    pub fn new(nr_blocks: u32, copy_blocks: u32) -> Result<Self, FormatError> {
        let copies = METADATA_COPIES as u64;
        if copy_blocks == 0 || u64::from(nr_blocks) <= copies * u64::from(copy_blocks) {
            return Err(FormatError::TooSmall);
        }
        let span = u64::from(nr_blocks - copy_blocks);
        let mut starts = [0u32; METADATA_COPIES];
        for (i, start) in starts.iter_mut().enumerate() {
            // span * i / 4 <= span < 2^32: the cast cannot truncate.
            *start = (span * i as u64 / (copies - 1)) as u32;
        }
        Ok(Self {
            copy_blocks,
            starts,
        })
    }

    /// Whether `block` belongs to a metadata copy.
    pub fn is_reserved(&self, block: u32) -> bool {
        self.starts
            .iter()
            .any(|&s| block >= s && block - s < self.copy_blocks)
    }
}

/// The kind of a metadata block, in its header.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BlockKind {
    /// Block 0 of a copy.
    Super = 1,
    /// A block of spare slots.
    Slots = 2,
    /// A block of pending slots.
    Pending = 3,
}

/// Where the metadata of one identity lies and how big it is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Format {
    /// The table line's areas.
    pub identity: Identity,
    /// Blocks in the spare area, metadata copies included.
    pub nr_spare: u32,
    /// Slot words per metadata block.
    pub words_per_block: u32,
    /// Blocks of spare slots per copy.
    pub slot_blocks: u32,
    /// Blocks of pending-block slots per copy.
    pub pending_blocks: u32,
    /// Where the five copies lie, in blocks of the spare area.
    pub layout: MetadataLayout,
}

impl Format {
    /// The format for `identity`: one spare slot for every block of the
    /// spare area, and one pending slot for every `PENDING_SHARE`.
    pub fn new(identity: Identity) -> Result<Self, FormatError> {
        let bs = identity.block_size;
        if !(512..=MAX_BLOCK_SIZE).contains(&bs) || !bs.is_power_of_two() {
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
        if u64::from(copy_blocks) * u64::from(bs) > MAX_COPY_BYTES {
            return Err(FormatError::TooLarge);
        }
        let layout = MetadataLayout::new(nr_spare, copy_blocks)?;
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
    pub fn copy_blocks(&self) -> u32 {
        self.layout.copy_blocks
    }

    /// Bytes per metadata block.
    pub fn block_bytes(&self) -> usize {
        self.identity.block_size as usize
    }

    /// Words of the in-memory image: the spare slots, then the pending
    /// slots, each region padded to whole blocks.
    pub fn words(&self) -> usize {
        (self.slot_blocks + self.pending_blocks) as usize * self.words_per_block as usize
    }

    /// Pending slots: one per `PENDING_SHARE` spare blocks, padded to
    /// whole blocks; pending slot `i` is image word `pending_base() + i`.
    pub fn pending_slots(&self) -> u32 {
        self.pending_blocks * self.words_per_block
    }

    /// The image word of pending slot 0.
    pub fn pending_base(&self) -> usize {
        self.slot_blocks as usize * self.words_per_block as usize
    }

    /// The block of the spare area that holds block `index` of `copy`.
    pub fn area_block(&self, copy: usize, index: u32) -> u64 {
        u64::from(self.layout.starts[copy]) + u64::from(index)
    }

    /// The kind of block `index` of a copy.
    pub fn kind_of(&self, index: u32) -> BlockKind {
        if index == 0 {
            BlockKind::Super
        } else if index <= self.slot_blocks {
            BlockKind::Slots
        } else {
            BlockKind::Pending
        }
    }

    /// The image words that block `index` (not 0) carries.
    pub fn word_range(&self, index: u32) -> core::ops::Range<usize> {
        let per = self.words_per_block as usize;
        // Block 0, the superblock, carries no words.
        let start = (index as usize).saturating_sub(1) * per;
        let end = if index == 0 { start } else { start + per };
        start..end
    }

    /// The metadata block that carries image word `i`.
    pub fn block_of_word(&self, i: usize) -> u32 {
        // Never 0 in a format `new` made; `max` spares the division a
        // panic path (objtool does not know the kernel's for it).
        (i / self.words_per_block.max(1) as usize) as u32 + 1
    }
}
