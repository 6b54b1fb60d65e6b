// SPDX-License-Identifier: GPL-2.0

//! One metadata block: its header, checksum and payload encodings.

use super::{BlockKind, Crc32c, Format, Identity, FORMAT_VERSION, HEADER_BYTES, MAGIC};
use super::{MAX_BLOCK_SIZE, METADATA_COPIES};

const OFF_CRC: usize = 8;
const OFF_VERSION: usize = 12;
const OFF_KIND: usize = 14;
const OFF_GENERATION: usize = 16;
const OFF_INDEX: usize = 24;
const OFF_COPY: usize = 28;

const SB_DATA_OFFSET: usize = 32;
const SB_DATA_LEN: usize = 40;
const SB_SPARE_OFFSET: usize = 48;
const SB_SPARE_LEN: usize = 56;
const SB_BLOCK_SIZE: usize = 64;
const SB_NR_SPARE: usize = 68;
const SB_COPY_BLOCKS: usize = 72;
const SB_SLOT_BLOCKS: usize = 76;
const SB_PENDING_BLOCKS: usize = 80;
const SB_WORDS_PER_BLOCK: usize = 84;
const SB_STARTS: usize = 88;
const SB_UUID: usize = SB_STARTS + 4 * METADATA_COPIES;

/// Bytes of a metadata UUID.
pub const UUID_BYTES: usize = 16;

/// A little-endian `u16` at `at`.
pub fn get_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// A little-endian `u32` at `at`.
pub fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A little-endian `u64` at `at`.
pub fn get_u64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

fn put(b: &mut [u8], at: usize, v: &[u8]) {
    b[at..at + v.len()].copy_from_slice(v);
}

/// The standard CRC-32C of a metadata block, its CRC field taken as zero.
pub fn block_crc<C: Crc32c>(block: &[u8]) -> u32 {
    let crc = C::update(!0, &block[..OFF_CRC]);
    let crc = C::update(crc, &[0; 4]);
    !C::update(crc, &block[OFF_CRC + 4..])
}

/// Writes the header of a block whose payload is in place, and its CRC.
fn seal<C: Crc32c>(block: &mut [u8], kind: BlockKind, generation: u64, index: u32, copy: usize) {
    put(block, 0, &MAGIC);
    put(block, OFF_VERSION, &FORMAT_VERSION.to_le_bytes());
    put(block, OFF_KIND, &(kind as u16).to_le_bytes());
    put(block, OFF_GENERATION, &generation.to_le_bytes());
    put(block, OFF_INDEX, &index.to_le_bytes());
    set_copy::<C>(block, copy);
}

/// Stamps a sealed block with another copy number and reseals it.
pub fn set_copy<C: Crc32c>(block: &mut [u8], copy: usize) {
    put(block, OFF_COPY, &(copy as u32).to_le_bytes());
    let crc = block_crc::<C>(block);
    put(block, OFF_CRC, &crc.to_le_bytes());
}

/// Why a metadata block read back is not usable.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BadBlock {
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
    /// Intact, but with a generation no writer reaches
    /// ([`MAX_GENERATION`] or above).
    Generation,
}

/// Generations stay below this: a commit a nanosecond for a century
/// stays far below it, and `generation + 1` never overflows.
pub const MAX_GENERATION: u64 = 1 << 62;

/// Checks block `index` of `copy` as read back; returns its generation.
pub fn check_block<C: Crc32c>(
    fmt: &Format,
    copy: usize,
    index: u32,
    block: &[u8],
) -> Result<u64, BadBlock> {
    if block.len() != fmt.block_bytes() || block[..8] != MAGIC {
        return Err(BadBlock::NoMagic);
    }
    if get_u32(block, OFF_CRC) != block_crc::<C>(block) {
        return Err(BadBlock::Checksum);
    }
    if get_u16(block, OFF_VERSION) != FORMAT_VERSION {
        return Err(BadBlock::Version);
    }
    if get_u16(block, OFF_KIND) != fmt.kind_of(index) as u16
        || get_u32(block, OFF_INDEX) != index
        || get_u32(block, OFF_COPY) != copy as u32
    {
        return Err(BadBlock::Misplaced);
    }
    match get_u64(block, OFF_GENERATION) {
        g if g >= MAX_GENERATION => Err(BadBlock::Generation),
        g => Ok(g),
    }
}

/// Fills a superblock of generation `generation` for copy 0.
pub fn encode_super<C: Crc32c>(
    fmt: &Format,
    uuid: &[u8; UUID_BYTES],
    generation: u64,
    block: &mut [u8],
) {
    block.fill(0);
    let id = &fmt.identity;
    put(block, SB_DATA_OFFSET, &id.data_offset.to_le_bytes());
    put(block, SB_DATA_LEN, &id.data_len.to_le_bytes());
    put(block, SB_SPARE_OFFSET, &id.spare_offset.to_le_bytes());
    put(block, SB_SPARE_LEN, &id.spare_len.to_le_bytes());
    put(block, SB_BLOCK_SIZE, &id.block_size.to_le_bytes());
    put(block, SB_NR_SPARE, &fmt.nr_spare.to_le_bytes());
    put(block, SB_COPY_BLOCKS, &fmt.copy_blocks().to_le_bytes());
    put(block, SB_SLOT_BLOCKS, &fmt.slot_blocks.to_le_bytes());
    put(block, SB_PENDING_BLOCKS, &fmt.pending_blocks.to_le_bytes());
    put(
        block,
        SB_WORDS_PER_BLOCK,
        &fmt.words_per_block.to_le_bytes(),
    );
    for (i, start) in fmt.layout.starts.iter().enumerate() {
        put(block, SB_STARTS + 4 * i, &start.to_le_bytes());
    }
    put(block, SB_UUID, uuid);
    seal::<C>(block, BlockKind::Super, generation, 0, 0);
}

/// The identity an intact superblock records.
pub fn decode_identity(block: &[u8]) -> Identity {
    Identity {
        data_offset: get_u64(block, SB_DATA_OFFSET),
        data_len: get_u64(block, SB_DATA_LEN),
        spare_offset: get_u64(block, SB_SPARE_OFFSET),
        spare_len: get_u64(block, SB_SPARE_LEN),
        block_size: get_u32(block, SB_BLOCK_SIZE),
    }
}

/// The UUID an intact superblock records.
pub fn decode_uuid(block: &[u8]) -> [u8; UUID_BYTES] {
    let mut uuid = [0; UUID_BYTES];
    uuid.copy_from_slice(&block[SB_UUID..SB_UUID + UUID_BYTES]);
    uuid
}

/// Whether an intact superblock records exactly the layout of `fmt`.
pub fn layout_matches(fmt: &Format, block: &[u8]) -> bool {
    get_u32(block, SB_NR_SPARE) == fmt.nr_spare
        && get_u32(block, SB_COPY_BLOCKS) == fmt.copy_blocks()
        && get_u32(block, SB_SLOT_BLOCKS) == fmt.slot_blocks
        && get_u32(block, SB_PENDING_BLOCKS) == fmt.pending_blocks
        && get_u32(block, SB_WORDS_PER_BLOCK) == fmt.words_per_block
        && (0..METADATA_COPIES).all(|i| get_u32(block, SB_STARTS + 4 * i) == fmt.layout.starts[i])
}

/// The block size a superblock at the start of a spare area claims, read
/// from its first 512 bytes, when the header says it is one of this
/// format version: a superblock's CRC covers its own block size, so a
/// load with another block size sees it only as damaged.
pub fn superblock_size(first_sector: &[u8]) -> Option<u32> {
    if first_sector.len() < 512
        || first_sector[..8] != MAGIC
        || get_u16(first_sector, OFF_KIND) != BlockKind::Super as u16
        || get_u16(first_sector, OFF_VERSION) != FORMAT_VERSION
    {
        return None;
    }
    let bs = get_u32(first_sector, SB_BLOCK_SIZE);
    ((512..=MAX_BLOCK_SIZE).contains(&bs) && bs.is_power_of_two()).then_some(bs)
}

/// The identity and UUID of an intact superblock of copy 0 of any
/// geometry (`block` holds its whole block, of the size
/// [`superblock_size`] gave), or `None` when it is not one.
pub fn any_superblock<C: Crc32c>(block: &[u8]) -> Option<(Identity, [u8; UUID_BYTES], u64)> {
    let bs = superblock_size(block)?;
    (block.len() == bs as usize
        && get_u32(block, OFF_CRC) == block_crc::<C>(block)
        && get_u32(block, OFF_INDEX) == 0
        && get_u32(block, OFF_COPY) == 0)
        .then(|| {
            (
                decode_identity(block),
                decode_uuid(block),
                get_u64(block, OFF_GENERATION),
            )
        })
}

/// Fills entry block `index` (not 0) of generation `generation` for copy
/// 0 from the image words.
pub fn encode_entries<C: Crc32c>(
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
    seal::<C>(block, fmt.kind_of(index), generation, index, 0);
}

/// Reads the image words that entry block `index` carries out of it.
pub fn decode_entries(fmt: &Format, index: u32, block: &[u8], words: &mut [u64]) {
    let payload = block.get(HEADER_BYTES..).unwrap_or(&[]);
    // One bounds check per block, not per word: a loop of 8-byte loads.
    for (w, bytes) in words[fmt.word_range(index)]
        .iter_mut()
        .zip(payload.chunks_exact(8))
    {
        let mut v = [0u8; 8];
        v.copy_from_slice(bytes);
        *w = u64::from_le_bytes(v);
    }
}

/// A UUID written the usual way: 8-4-4-4-12 lowercase hex digits.
pub struct UuidText<'a>(pub &'a [u8; UUID_BYTES]);

impl core::fmt::Display for UuidText<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}
