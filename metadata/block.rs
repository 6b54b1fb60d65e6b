// SPDX-License-Identifier: GPL-2.0

//! One metadata block: its header, checksum and payload encodings.

use super::*;

pub(super) fn get_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

pub(super) fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(super) fn get_u64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

pub(super) fn put(b: &mut [u8], at: usize, v: &[u8]) {
    b[at..at + v.len()].copy_from_slice(v);
}

/// The standard CRC-32C of a metadata block, its CRC field taken as zero.
pub(super) fn block_crc(block: &[u8]) -> u32 {
    let crc = crc32c(!0, &block[..OFF_CRC]);
    let crc = crc32c(crc, &[0; 4]);
    !crc32c(crc, &block[OFF_CRC + 4..])
}

/// Writes the header of a block whose payload is in place, and its CRC.
pub(super) fn seal(block: &mut [u8], kind: u16, generation: u64, index: u32, copy: usize) {
    put(block, 0, &MAGIC);
    put(block, OFF_VERSION, &FORMAT_VERSION.to_le_bytes());
    put(block, OFF_KIND, &kind.to_le_bytes());
    put(block, OFF_GENERATION, &generation.to_le_bytes());
    put(block, OFF_INDEX, &index.to_le_bytes());
    set_copy(block, copy);
}

/// Stamps a sealed block with another copy number and reseals it.
pub(super) fn set_copy(block: &mut [u8], copy: usize) {
    put(block, OFF_COPY, &(copy as u32).to_le_bytes());
    let crc = block_crc(block);
    put(block, OFF_CRC, &crc.to_le_bytes());
}

/// Why a metadata block read back is not usable.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum BadBlock {
    /// It does not start with the magic: never written, or overwritten.
    NoMagic,
    /// The CRC does not match: torn or damaged.
    Checksum,
    /// Another format version wrote it.
    Version,
    /// Intact, but written for another place (kind, index or copy).
    Misplaced,
    /// It could not be read.
    Unreadable,
}

/// Checks block `index` of `copy` as read back; returns its generation.
pub(crate) fn check_block(
    fmt: &Format,
    copy: usize,
    index: u32,
    block: &[u8],
) -> Result<u64, BadBlock> {
    if block.len() != fmt.block_bytes() || block[..8] != MAGIC {
        return Err(BadBlock::NoMagic);
    }
    if get_u32(block, OFF_CRC) != block_crc(block) {
        return Err(BadBlock::Checksum);
    }
    if get_u16(block, OFF_VERSION) != FORMAT_VERSION {
        return Err(BadBlock::Version);
    }
    if get_u16(block, OFF_KIND) != fmt.kind_of(index)
        || get_u32(block, OFF_INDEX) != index
        || get_u32(block, OFF_COPY) != copy as u32
    {
        return Err(BadBlock::Misplaced);
    }
    Ok(get_u64(block, OFF_GENERATION))
}

/// Fills a superblock of generation `generation` for copy 0.
pub(super) fn encode_super(fmt: &Format, generation: u64, block: &mut [u8]) {
    block.fill(0);
    let id = &fmt.identity;
    put(block, 32, &id.data_offset.to_le_bytes());
    put(block, 40, &id.data_len.to_le_bytes());
    put(block, 48, &id.spare_offset.to_le_bytes());
    put(block, 56, &id.spare_len.to_le_bytes());
    put(block, 64, &id.block_size.to_le_bytes());
    put(block, 68, &fmt.nr_spare.to_le_bytes());
    put(block, 72, &fmt.copy_blocks().to_le_bytes());
    put(block, 76, &fmt.slot_blocks.to_le_bytes());
    put(block, 80, &fmt.pending_blocks.to_le_bytes());
    put(block, 84, &fmt.words_per_block.to_le_bytes());
    for (i, start) in fmt.layout.starts.iter().enumerate() {
        put(block, 88 + 4 * i, &start.to_le_bytes());
    }
    seal(block, KIND_SUPER, generation, 0, 0);
}

/// The identity an intact superblock records.
pub(super) fn decode_identity(block: &[u8]) -> Identity {
    Identity {
        data_offset: get_u64(block, 32),
        data_len: get_u64(block, 40),
        spare_offset: get_u64(block, 48),
        spare_len: get_u64(block, 56),
        block_size: get_u32(block, 64),
    }
}

/// Whether an intact superblock records exactly the layout of `fmt`.
pub(super) fn layout_matches(fmt: &Format, block: &[u8]) -> bool {
    get_u32(block, 68) == fmt.nr_spare
        && get_u32(block, 72) == fmt.copy_blocks()
        && get_u32(block, 76) == fmt.slot_blocks
        && get_u32(block, 80) == fmt.pending_blocks
        && get_u32(block, 84) == fmt.words_per_block
        && (0..METADATA_COPIES).all(|i| get_u32(block, 88 + 4 * i) == fmt.layout.starts[i])
}

/// Fills entry block `index` (not 0) for copy 0 from the image words.
pub(super) fn encode_entries(
    fmt: &Format,
    index: u32,
    generation: u64,
    words: &[u64],
    block: &mut [u8],
) {
    block.fill(0);
    for (i, w) in words[fmt.word_range(index)].iter().enumerate() {
        put(block, HEADER_BYTES + 8 * i, &w.to_le_bytes());
    }
    seal(block, fmt.kind_of(index), generation, index, 0);
}
