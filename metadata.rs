// SPDX-License-Identifier: GPL-2.0

//! The remap metadata on disk: format, recovery and the commit protocol.
//!
//! The spare area keeps five copies of the metadata at fixed, spread
//! places (see [`MetadataLayout`]). A copy is `copy_blocks` metadata blocks
//! of the remap block size: block 0 is the superblock, then `slot_blocks`
//! blocks of spare slots (one little-endian `u64` per spare block: free, in
//! use for a data block, or retired), then `pending_blocks` blocks of
//! pending-block slots (one per `PENDING_SHARE` spare blocks, rounded up to
//! whole blocks). Every block starts with a 32-byte header carrying
//! the magic, a CRC32C, the format version, the block's kind, index and
//! copy number, and the generation of the commit that last wrote it. The
//! byte-by-byte layout is in `README.md`, section "On-disk format".
//!
//! A commit of generation `G` writes, copy after copy, the blocks that
//! changed (every block of a copy that missed a write), flushes, and only
//! then writes that copy's superblock with `G`; the next copy's blocks go
//! out together with it. Recovery takes `G*`, the highest generation of an
//! intact superblock, and for each block the intact version with the
//! highest generation not above `G*`. At any instant at most two copies
//! are being written and every other copy holds a complete commit, so a
//! crash or torn write never loses the last acknowledged commit, and a
//! half-written commit is ignored as a whole.
//!
//! Everything here is pure computation over [`MetadataDev`], so the unit
//! tests run the real recovery and commit code against memory.

use crate::bufio::{crc32c, BufioClient};
use crate::dm::{DmDev, NoIoScope};
use crate::spare_alloc::{MetadataLayout, METADATA_COPIES};
use kernel::{
    alloc::AllocError,
    impl_has_work, new_condvar, new_mutex, new_work,
    prelude::*,
    sync::{Arc, CondVar, Mutex, MutexGuard},
    time::{delay::fsleep, Delta, Instant, Monotonic},
    workqueue::{Queue, Work, WorkItem},
};

/// The first eight bytes of every metadata block.
pub(crate) const MAGIC: [u8; 8] = *b"dm-remap";
/// The on-disk format version this code writes and reads.
pub(crate) const FORMAT_VERSION: u16 = 1;
/// Bytes of the header at the start of every metadata block.
pub(crate) const HEADER_BYTES: usize = 32;
/// Spare blocks per pending slot.
pub(crate) const PENDING_SHARE: u32 = 16;

const OFF_CRC: usize = 8;
const OFF_VERSION: usize = 12;
const OFF_KIND: usize = 14;
const OFF_GENERATION: usize = 16;
const OFF_INDEX: usize = 24;
const OFF_COPY: usize = 28;

const KIND_SUPER: u16 = 1;
const KIND_SLOTS: u16 = 2;
const KIND_PENDING: u16 = 3;

/// Top two bits of a slot word: its state; the other 62: a data block.
const STATE_SHIFT: u32 = 62;
const BLOCK_MASK: u64 = (1 << STATE_SHIFT) - 1;
const STATE_IN_USE: u64 = 1;
const STATE_LOST: u64 = 2;
const STATE_RETIRED: u64 = 3;

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

    fn pending_base(&self) -> usize {
        self.slot_blocks as usize * self.words_per_block as usize
    }

    /// The block of the spare area that holds block `index` of `copy`.
    pub(crate) fn area_block(&self, copy: usize, index: u32) -> u64 {
        u64::from(self.layout.starts[copy]) + u64::from(index)
    }

    fn kind_of(&self, index: u32) -> u16 {
        if index == 0 {
            KIND_SUPER
        } else if index <= self.slot_blocks {
            KIND_SLOTS
        } else {
            KIND_PENDING
        }
    }

    /// The image words that block `index` (not 0) carries.
    fn word_range(&self, index: u32) -> core::ops::Range<usize> {
        let per = self.words_per_block as usize;
        let start = (index as usize - 1) * per;
        start..start + per
    }
}

fn get_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn get_u64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

fn put(b: &mut [u8], at: usize, v: &[u8]) {
    b[at..at + v.len()].copy_from_slice(v);
}

/// The standard CRC-32C of a metadata block, its CRC field taken as zero.
fn block_crc(block: &[u8]) -> u32 {
    let crc = crc32c(!0, &block[..OFF_CRC]);
    let crc = crc32c(crc, &[0; 4]);
    !crc32c(crc, &block[OFF_CRC + 4..])
}

/// Writes the header of a block whose payload is in place, and its CRC.
fn seal(block: &mut [u8], kind: u16, generation: u64, index: u32, copy: usize) {
    put(block, 0, &MAGIC);
    put(block, OFF_VERSION, &FORMAT_VERSION.to_le_bytes());
    put(block, OFF_KIND, &kind.to_le_bytes());
    put(block, OFF_GENERATION, &generation.to_le_bytes());
    put(block, OFF_INDEX, &index.to_le_bytes());
    set_copy(block, copy);
}

/// Stamps a sealed block with another copy number and reseals it.
fn set_copy(block: &mut [u8], copy: usize) {
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
fn encode_super(fmt: &Format, generation: u64, block: &mut [u8]) {
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
fn decode_identity(block: &[u8]) -> Identity {
    Identity {
        data_offset: get_u64(block, 32),
        data_len: get_u64(block, 40),
        spare_offset: get_u64(block, 48),
        spare_len: get_u64(block, 56),
        block_size: get_u32(block, 64),
    }
}

/// Whether an intact superblock records exactly the layout of `fmt`.
fn layout_matches(fmt: &Format, block: &[u8]) -> bool {
    get_u32(block, 68) == fmt.nr_spare
        && get_u32(block, 72) == fmt.copy_blocks()
        && get_u32(block, 76) == fmt.slot_blocks
        && get_u32(block, 80) == fmt.pending_blocks
        && get_u32(block, 84) == fmt.words_per_block
        && (0..METADATA_COPIES).all(|i| get_u32(block, 88 + 4 * i) == fmt.layout.starts[i])
}

/// Fills entry block `index` (not 0) for copy 0 from the image words.
fn encode_entries(fmt: &Format, index: u32, generation: u64, words: &[u64], block: &mut [u8]) {
    block.fill(0);
    for (i, w) in words[fmt.word_range(index)].iter().enumerate() {
        put(block, HEADER_BYTES + 8 * i, &w.to_le_bytes());
    }
    seal(block, fmt.kind_of(index), generation, index, 0);
}

/// Where the metadata copies are read and written: block `index` of copy
/// `copy`, one metadata block at a time.
pub(crate) trait MetadataDev {
    /// Reads a block into `out`.
    fn read(&mut self, copy: usize, index: u32, out: &mut [u8]) -> Result;
    /// Queues a block write; it is durable after the next successful
    /// [`MetadataDev::flush`].
    fn write(&mut self, copy: usize, index: u32, data: &[u8]) -> Result;
    /// Waits for the queued writes and flushes the device cache. Writes
    /// queued before one flush may reach the disk in any order.
    fn flush(&mut self) -> Result;
}

/// Why the metadata cannot be loaded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum LoadError {
    /// Superblocks carry the magic, but none is intact.
    NoIntactCopy,
    /// The newest intact superblock belongs to another table line.
    Mismatch(Identity),
    /// The newest superblock describes another layout (another format).
    LayoutMismatch,
    /// No copy holds an intact version of this block.
    BlockLost(u32),
    /// A slot holds a value no writer makes.
    BadSlot(u32),
    /// Memory could not be had.
    NoMemory,
}

impl From<AllocError> for LoadError {
    fn from(_: AllocError) -> Self {
        LoadError::NoMemory
    }
}

/// What loading found, for the kernel log and status.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub(crate) struct LoadReport {
    /// The spare area held no metadata: it is to be formatted.
    pub(crate) blank: bool,
    /// Generation of the newest intact superblock.
    pub(crate) generation: u64,
    /// Blocks of each copy that were damaged or stale.
    pub(crate) bad_blocks: [u32; METADATA_COPIES],
}

impl LoadReport {
    /// Copies that held every block of the loaded state.
    pub(crate) fn intact_copies(&self) -> usize {
        self.bad_blocks.iter().filter(|&&n| n == 0).count()
    }
}

/// The metadata in memory: the slot words as last changed, what is still
/// to be written, and which copies missed writes.
///
/// # Invariants
///
/// `words` has `fmt.words()` entries and `block_gen` `fmt.copy_blocks()`;
/// `dirty` lists each index of `is_dirty` that is set, once.
pub(crate) struct MetaImage {
    fmt: Format,
    words: KVVec<u64>,
    /// Generation of the commit that last wrote each block.
    block_gen: KVVec<u64>,
    is_dirty: KVVec<bool>,
    dirty: KVVec<u32>,
    /// Copies that missed a write: the next commit rewrites them whole.
    stale: [bool; METADATA_COPIES],
    /// The last generation known durable.
    committed: u64,
    /// The generation the next commit gets; above any seen on disk.
    next_gen: u64,
}

fn filled<T: Copy>(n: usize, v: T) -> Result<KVVec<T>, AllocError> {
    let mut vec = KVVec::with_capacity(n, GFP_KERNEL)?;
    for _ in 0..n {
        vec.push(v, GFP_KERNEL)?;
    }
    Ok(vec)
}

impl MetaImage {
    /// The image of a blank spare area: every slot free, every block of
    /// every copy to be written.
    pub(crate) fn blank(fmt: &Format) -> Result<Self, AllocError> {
        let mut image = Self::empty(fmt)?;
        for index in 1..fmt.copy_blocks() {
            image.is_dirty[index as usize] = true;
            image.dirty.push(index, GFP_KERNEL)?;
        }
        Ok(image)
    }

    /// An image with every slot free and nothing to write but whole copies.
    fn empty(fmt: &Format) -> Result<Self, AllocError> {
        let blocks = fmt.copy_blocks() as usize;
        Ok(Self {
            fmt: *fmt,
            words: filled(fmt.words(), 0)?,
            block_gen: filled(blocks, 0)?,
            is_dirty: filled(blocks, false)?,
            dirty: KVVec::with_capacity(blocks, GFP_KERNEL)?,
            stale: [true; METADATA_COPIES],
            committed: 0,
            next_gen: 1,
        })
    }

    /// The format of this image.
    pub(crate) fn format(&self) -> &Format {
        &self.fmt
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
        let index = (i / self.fmt.words_per_block as usize) as u32 + 1;
        if !self.is_dirty[index as usize] {
            self.is_dirty[index as usize] = true;
            // Room for every block was reserved at creation.
            let _ = self.dirty.push_within_capacity(index);
        }
    }

    /// Sets spare slot `spare`.
    pub(crate) fn set_slot(&mut self, spare: u32, slot: Slot) {
        self.set_word(spare as usize, slot.encode());
    }

    /// Pending slot `i`: `Some(None)` when empty, `Some(Some(block))` for
    /// a pending data block, `None` for a word no writer makes.
    pub(crate) fn pending(&self, i: u32) -> Option<Option<u64>> {
        match Slot::decode(self.words[self.fmt.pending_base() + i as usize])? {
            Slot::Free => Some(None),
            Slot::InUse { block, lost: false } => Some(Some(block)),
            _ => None,
        }
    }

    /// The first empty pending slot from `from` on.
    pub(crate) fn free_pending_slot(&self, from: u32) -> Option<u32> {
        let base = self.fmt.pending_base();
        (from..self.fmt.pending_slots()).find(|&i| self.words[base + i as usize] == 0)
    }

    /// Sets pending slot `i` to `block`, or empties it.
    pub(crate) fn set_pending(&mut self, i: u32, block: Option<u64>) {
        let slot = block.map_or(Slot::Free, |block| Slot::InUse { block, lost: false });
        self.set_word(self.fmt.pending_base() + i as usize, slot.encode());
    }

    /// Bytes of memory the image holds.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.words.capacity() * 8
            + self.block_gen.capacity() * 8
            + self.is_dirty.capacity()
            + self.dirty.capacity() * 4
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

    /// Copies holding the whole last commit.
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
            let block_gen = if dirty[k] {
                generation
            } else {
                self.block_gen[index as usize]
            };
            let block = &mut data[(k + 1) * bs..(k + 2) * bs];
            encode_entries(&fmt, index, block_gen, &self.words, block);
        }
        encode_super(&fmt, generation, &mut data[..bs]);
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
                    let _ = self.dirty.push_within_capacity(index);
                }
            }
        }
        for (stale, written) in self.stale.iter_mut().zip(outcome.written) {
            *stale = !written;
        }
    }
}

/// One commit, encoded: the superblock then the blocks to write.
pub(crate) struct Commit {
    fmt: Format,
    generation: u64,
    indices: KVVec<u32>,
    /// Whether each block changed in this commit (else it is written only
    /// to stale copies).
    dirty: KVVec<bool>,
    data: KVVec<u8>,
    stale: [bool; METADATA_COPIES],
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

/// Reads block `index` of every copy into `bufs` (one block each); returns
/// the generation of each intact one.
fn read_all(
    fmt: &Format,
    dev: &mut impl MetadataDev,
    index: u32,
    bufs: &mut [u8],
) -> [Result<u64, BadBlock>; METADATA_COPIES] {
    let bs = fmt.block_bytes();
    let mut found = [Err(BadBlock::Unreadable); METADATA_COPIES];
    for (copy, result) in found.iter_mut().enumerate() {
        let buf = &mut bufs[copy * bs..(copy + 1) * bs];
        if dev.read(copy, index, buf).is_ok() {
            *result = check_block(fmt, copy, index, buf);
        }
    }
    found
}

/// Loads the metadata of `fmt`: from each block the intact version with
/// the highest generation not above the newest intact superblock's. A
/// blank area (no superblock carries the magic) loads as a blank image to
/// be formatted. Copies that lack any block of the result are marked
/// stale, so the first commit rewrites them. Nothing is written here.
pub(crate) fn load(
    fmt: &Format,
    dev: &mut impl MetadataDev,
) -> Result<(MetaImage, LoadReport), LoadError> {
    let bs = fmt.block_bytes();
    let mut bufs = filled(METADATA_COPIES * bs, 0u8)?;
    let mut report = LoadReport::default();
    let supers = read_all(fmt, dev, 0, &mut bufs);
    if supers.iter().all(|s| *s == Err(BadBlock::NoMagic)) {
        report.blank = true;
        report.bad_blocks = [fmt.copy_blocks(); METADATA_COPIES];
        return Ok((MetaImage::blank(fmt)?, report));
    }
    let newest = (0..METADATA_COPIES)
        .filter_map(|c| supers[c].ok().map(|g| (g, c)))
        .max()
        .ok_or(LoadError::NoIntactCopy)?;
    let (top, top_copy) = newest;
    let top_super = &bufs[top_copy * bs..(top_copy + 1) * bs];
    let recorded = decode_identity(top_super);
    if recorded != fmt.identity {
        return Err(LoadError::Mismatch(recorded));
    }
    if !layout_matches(fmt, top_super) {
        return Err(LoadError::LayoutMismatch);
    }
    let mut image = MetaImage::empty(fmt)?;
    image.committed = top;
    image.block_gen[0] = top;
    let mut highest_seen = top;
    let mut stale = [false; METADATA_COPIES];
    for (copy, s) in supers.iter().enumerate() {
        if *s != Ok(top) {
            report.bad_blocks[copy] += 1;
            stale[copy] = true;
        }
        if let Ok(g) = *s {
            highest_seen = highest_seen.max(g);
        }
    }
    for index in 1..fmt.copy_blocks() {
        let found = read_all(fmt, dev, index, &mut bufs);
        for g in found.iter().flatten() {
            highest_seen = highest_seen.max(*g);
        }
        // Versions above `top` belong to a commit that never finished.
        let best = (0..METADATA_COPIES)
            .filter_map(|c| match found[c] {
                Ok(g) if g <= top => Some((g, c)),
                _ => None,
            })
            .max()
            .ok_or(LoadError::BlockLost(index))?;
        let (gen, copy) = best;
        for (c, f) in found.iter().enumerate() {
            if *f != Ok(gen) {
                report.bad_blocks[c] += 1;
                stale[c] = true;
            }
        }
        let block = &bufs[copy * bs..(copy + 1) * bs];
        for (i, w) in fmt.word_range(index).enumerate() {
            image.words[w] = get_u64(block, HEADER_BYTES + 8 * i);
        }
        image.block_gen[index as usize] = gen;
    }
    for spare in 0..fmt.nr_spare {
        match image.slot(spare) {
            Some(Slot::Free) => {}
            Some(_) if !fmt.layout.is_reserved(spare) => {}
            _ => return Err(LoadError::BadSlot(spare)),
        }
    }
    image.stale = stale;
    image.next_gen = highest_seen + 1;
    report.generation = top;
    Ok((image, report))
}

/// The metadata copies on the spare device, through dm-bufio: metadata
/// block `index` of copy `copy` is block `area_block(copy, index)` of a
/// client whose block 0 is the spare area's first sector.
struct BufioDev<'a> {
    client: &'a BufioClient,
    fmt: &'a Format,
}

impl MetadataDev for BufioDev<'_> {
    fn read(&mut self, copy: usize, index: u32, out: &mut [u8]) -> Result {
        self.client.read_into(self.fmt.area_block(copy, index), out)
    }

    fn write(&mut self, copy: usize, index: u32, data: &[u8]) -> Result {
        self.client
            .write_from(self.fmt.area_block(copy, index), data)
    }

    fn flush(&mut self) -> Result {
        self.client.write_dirty()
    }
}

/// Bytes of each copy that loading reads with one I/O.
const LOAD_WINDOW: usize = 128 * 1024;

/// The device as loading reads it: a window of each copy at a time with
/// one synchronous read (loading reads every block of every copy once, in
/// order), and a block through dm-bufio when its window cannot be read, so
/// that a bad sector costs only its own block.
struct LoadDev<'a> {
    client: &'a BufioClient,
    dev: &'a DmDev,
    spare_offset: u64,
    fmt: &'a Format,
    /// Per copy: the window's bytes and its first block, if it was read.
    windows: KVec<(KVec<u8>, Option<u32>)>,
}

impl LoadDev<'_> {
    /// The window of `copy` holding block `index`, read if need be.
    fn window(&mut self, copy: usize, index: u32) -> Option<&[u8]> {
        let bs = self.fmt.block_bytes();
        // Block sizes are powers of two: shifts, not divisions.
        let bs_shift = bs.trailing_zeros();
        let (buf, first) = self.windows.get_mut(copy)?;
        let covers =
            |first: u32, len: usize| index >= first && ((index - first) as usize) < len >> bs_shift;
        if !matches!(*first, Some(f) if covers(f, buf.len())) {
            let count = (LOAD_WINDOW >> bs_shift).min((self.fmt.copy_blocks() - index) as usize);
            if buf.len() != count << bs_shift {
                buf.truncate(0);
                buf.resize(count << bs_shift, 0, GFP_KERNEL).ok()?;
            }
            let sector_shift = bs_shift - 9;
            let sector = self.spare_offset + (self.fmt.area_block(copy, index) << sector_shift);
            *first = self.dev.rw_sync(sector, buf, false).ok().map(|()| index);
        }
        let f = (*first)?;
        let at = ((index - f) as usize) << bs_shift;
        buf.get(at..at + bs)
    }
}

impl MetadataDev for LoadDev<'_> {
    fn read(&mut self, copy: usize, index: u32, out: &mut [u8]) -> Result {
        if let Some(block) = self.window(copy, index) {
            if let Some(out) = out.get_mut(..block.len()) {
                out.copy_from_slice(block);
                return Ok(());
            }
        }
        self.client.read_into(self.fmt.area_block(copy, index), out)
    }

    fn write(&mut self, _copy: usize, _index: u32, _data: &[u8]) -> Result {
        // Loading never writes.
        Err(EROFS)
    }

    fn flush(&mut self) -> Result {
        Ok(())
    }
}

/// Loads the metadata of `fmt` through `client` (see [`load`]), reading
/// each copy ahead and dropping it from the cache afterwards.
pub(crate) fn load_from(
    client: &BufioClient,
    dev: &DmDev,
    spare_offset: u64,
    fmt: &Format,
) -> Result<(MetaImage, LoadReport), LoadError> {
    let mut windows = KVec::with_capacity(METADATA_COPIES, GFP_KERNEL)?;
    for _ in 0..METADATA_COPIES {
        // Without the memory, dm-bufio reads every block.
        let buf = KVec::with_capacity(LOAD_WINDOW, GFP_KERNEL).unwrap_or_default();
        windows.push((buf, None), GFP_KERNEL)?;
    }
    let mut load_dev = LoadDev {
        client,
        dev,
        spare_offset,
        fmt,
        windows,
    };
    let result = load(fmt, &mut load_dev);
    for copy in 0..METADATA_COPIES {
        client.forget(fmt.area_block(copy, 0), u64::from(fmt.copy_blocks()));
    }
    result
}

/// The identity recorded in the metadata of another block size, if the
/// spare area starts with it: the superblock of copy 0 always lies at the
/// area's first sector, but its CRC covers its own block size, so a load
/// with another block size sees it as damaged. `read(len, buf)` reads the
/// area's first `len` bytes into `buf`. Loading calls this only to name
/// what it found when no copy is intact.
pub(crate) fn foreign_identity(
    mut read: impl FnMut(&mut KVec<u8>) -> Result,
    ours: u32,
) -> Option<Identity> {
    let mut buf = KVec::new();
    buf.resize(512, 0u8, GFP_KERNEL).ok()?;
    read(&mut buf).ok()?;
    if buf[..8] != MAGIC || get_u16(&buf, OFF_KIND) != KIND_SUPER {
        return None;
    }
    let bs = get_u32(&buf, 64);
    if bs == ours || !(512..=65536).contains(&bs) || !bs.is_power_of_two() {
        return None;
    }
    buf.resize(bs as usize, 0, GFP_KERNEL).ok()?;
    read(&mut buf).ok()?;
    (get_u32(&buf, OFF_CRC) == block_crc(&buf) && get_u16(&buf, OFF_VERSION) == FORMAT_VERSION)
        .then(|| decode_identity(&buf))
}

/// Buckets of [`LatencyHistogram`]: 8 exact ones below 8 µs, then 8 per
/// power of two up to 2^26 µs.
const LATENCY_BUCKETS: usize = 8 + 23 * 8;

/// Commit times in microseconds, in a log-linear histogram: 8 buckets per
/// power of two, so a percentile read as its bucket's upper bound is at
/// most 1/8 above the time measured. 776 bytes; no allocation.
pub(crate) struct LatencyHistogram {
    counts: [u32; LATENCY_BUCKETS],
    max_us: u64,
}

impl LatencyHistogram {
    const fn new() -> Self {
        Self {
            counts: [0; LATENCY_BUCKETS],
            max_us: 0,
        }
    }

    fn bucket(us: u64) -> usize {
        if us < 8 {
            return us as usize;
        }
        let power = 63 - us.leading_zeros() as usize;
        let sub = (us >> (power - 3)) as usize & 7;
        (8 + (power - 3) * 8 + sub).min(LATENCY_BUCKETS - 1)
    }

    /// The largest time in microseconds that bucket `b` holds.
    fn bucket_high(b: usize) -> u64 {
        if b < 8 {
            return b as u64;
        }
        let (power, sub) = ((b - 8) / 8 + 3, (b - 8) % 8);
        ((9 + sub as u64) << (power - 3)) - 1
    }

    /// Records one time.
    pub(crate) fn record(&mut self, us: u64) {
        let b = Self::bucket(us);
        self.counts[b] = self.counts[b].saturating_add(1);
        self.max_us = self.max_us.max(us);
    }

    /// The time that `permille` of the recorded times do not exceed (as
    /// its bucket's upper bound, at most the largest time), or 0 when
    /// nothing was recorded.
    pub(crate) fn percentile(&self, permille: u64) -> u64 {
        let total: u64 = self.counts.iter().map(|&c| u64::from(c)).sum();
        let rank = (total * permille).div_ceil(1000).max(1);
        let mut seen = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += u64::from(c);
            if seen >= rank {
                return Self::bucket_high(b).min(self.max_us);
            }
        }
        0
    }

    /// The largest time recorded.
    pub(crate) fn max(&self) -> u64 {
        self.max_us
    }
}

/// How often preparing a commit is tried when memory is short, 10 ms
/// apart, before the writer fails.
const PREPARE_TRIES: u32 = 100;

/// Why a change did not become durable, which says where the blocks it
/// touched may be mapped by a later load.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum CommitError {
    /// The writer had failed before: the change was not applied.
    Refused,
    /// The change was applied to the image, but no commit holding it was
    /// written (an earlier one failed, or memory ran out to prepare it): no
    /// load can find it.
    NotWritten,
    /// The commit holding the change failed after a superblock write was
    /// issued: a later load may find the change or not.
    Indeterminate,
}

impl From<CommitError> for Error {
    fn from(_: CommitError) -> Error {
        EIO
    }
}

/// What the writer guards: the image and how commits went.
pub(crate) struct WriterState {
    image: MetaImage,
    /// Commits prepared, commits finished (either way), and the number of
    /// the last one that succeeded.
    prepared: u64,
    finished: u64,
    last_ok: u64,
    /// A commit failed: no more commits until the table is loaded again
    /// (the image then holds changes that the target rolled back).
    failed: bool,
    /// Whether the commit that failed had issued a superblock write.
    failed_maybe_durable: bool,
    /// The error of the last commit that met one.
    last_error: Option<Error>,
    /// Commits made, and the time they took in total.
    commits: u64,
    commit_ns: u64,
    /// The time each commit took.
    commit_times: LatencyHistogram,
}

impl WriterState {
    /// The image: the metadata as the next commit writes it.
    pub(crate) fn image(&self) -> &MetaImage {
        &self.image
    }

    /// Whether a commit failed since the table was loaded: changes are
    /// refused until it is loaded again.
    pub(crate) fn failed(&self) -> bool {
        self.failed
    }

    /// The error of the last commit that met one.
    pub(crate) fn last_error(&self) -> Option<Error> {
        self.last_error
    }

    /// Commits made and the nanoseconds they took in total.
    pub(crate) fn commits(&self) -> (u64, u64) {
        (self.commits, self.commit_ns)
    }

    /// The time each commit took.
    pub(crate) fn commit_times(&self) -> &LatencyHistogram {
        &self.commit_times
    }

    /// Replaces the image with one loaded again from disk, ending the
    /// failed state. Only while no change is in progress (before resume).
    pub(crate) fn reload(&mut self, image: MetaImage) {
        self.image = image;
        self.failed = false;
        self.failed_maybe_durable = false;
    }

    /// Latches the failure of commit `seq` and wakes every waiter: none of
    /// them is served by a later commit, since none follows.
    fn fail(&mut self, seq: u64, error: Error, maybe_durable: bool) {
        self.failed = true;
        self.failed_maybe_durable = maybe_durable;
        self.last_error = Some(error);
        self.finished = seq;
    }
}

/// The metadata writer of one target: the image, and the work item that
/// commits it through dm-bufio on the target's ordered workqueue. Changes
/// that arrive while a commit is being written share the next one.
///
/// Lock order: a caller may hold the target's admin mutex while it takes
/// the writer's state lock, never the other way round.
#[pin_data]
pub(crate) struct MetaWriter {
    #[pin]
    state: Mutex<WriterState>,
    /// Signalled after each commit and when the writer fails.
    #[pin]
    done: CondVar,
    #[pin]
    work: Work<MetaWriter>,
    client: BufioClient,
}

impl_has_work! {
    impl HasWork<Self> for MetaWriter { self.work }
}

impl WorkItem for MetaWriter {
    type Pointer = Arc<MetaWriter>;

    fn run(this: Arc<MetaWriter>) {
        // Bios wait for this commit: its allocations must not wait for
        // reclaim that may write through the device.
        let _noio = NoIoScope::enter();
        this.commit_pending();
    }
}

impl MetaWriter {
    /// A writer for `image`, writing through `client`.
    pub(crate) fn new(client: BufioClient, image: MetaImage) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(MetaWriter {
                state <- new_mutex!(WriterState {
                    image,
                    prepared: 0,
                    finished: 0,
                    last_ok: 0,
                    failed: false,
                    failed_maybe_durable: false,
                    last_error: None,
                    commits: 0,
                    commit_ns: 0,
                    commit_times: LatencyHistogram::new(),
                }),
                done <- new_condvar!("MetaWriter::done"),
                work <- new_work!("MetaWriter::work"),
                client,
            }),
            GFP_KERNEL,
        )
    }

    /// The dm-bufio client the writer uses, for loading again.
    pub(crate) fn client(&self) -> &BufioClient {
        &self.client
    }

    /// The state, for status and for replacing the image on a reload.
    pub(crate) fn lock(&self) -> MutexGuard<'_, WriterState> {
        self.state.lock()
    }

    /// Writes commits until nothing is left to write. On the workqueue.
    fn commit_pending(&self) {
        let mut tries = 0;
        loop {
            let mut st = self.state.lock();
            if st.failed {
                return;
            }
            if !st.image.needs_commit() {
                // Idle, the last commit in every copy: every change made so
                // far is durable. A waiter may still want a commit that
                // nothing needs any more (a `sync` that found only stale
                // copies, which the commit then in flight rewrote): serve
                // it with an empty one, or it would wait for ever.
                if st.last_ok == st.prepared {
                    st.prepared += 1;
                    st.finished = st.prepared;
                    st.last_ok = st.prepared;
                    drop(st);
                    self.done.notify_all();
                }
                return;
            }
            let fmt = *st.image.format();
            st.prepared += 1;
            let seq = st.prepared;
            let mut commit = match st.image.prepare() {
                Ok(commit) => commit,
                Err(_) if tries < PREPARE_TRIES => {
                    // `prepare` allocates before it changes anything: try
                    // again once reclaim had a chance.
                    st.prepared -= 1;
                    drop(st);
                    tries += 1;
                    fsleep(Delta::from_millis(10));
                    continue;
                }
                Err(_) => {
                    // Nothing of this commit was written.
                    pr_err!("remap: no memory to prepare a metadata commit\n");
                    st.fail(seq, ENOMEM, false);
                    drop(st);
                    self.done.notify_all();
                    return;
                }
            };
            tries = 0;
            drop(st);
            let start = Instant::<Monotonic>::now();
            let mut dev = BufioDev {
                client: &self.client,
                fmt: &fmt,
            };
            let outcome = commit.write(&mut dev);
            let elapsed = start.elapsed().as_nanos();
            // The image is the cache: the written blocks need no keeping.
            for copy in 0..METADATA_COPIES {
                self.client.forget(fmt.area_block(copy, 0), 1);
                for &index in commit.indices.iter() {
                    self.client.forget(fmt.area_block(copy, index), 1);
                }
            }
            let mut st = self.state.lock();
            st.image.finish(&commit, &outcome);
            st.finished = seq;
            st.commits += 1;
            st.commit_ns += elapsed as u64;
            st.commit_times.record(elapsed as u64 / 1000);
            if outcome.succeeded() {
                st.last_ok = seq;
            }
            if !outcome.succeeded() {
                let e = outcome.error.unwrap_or(EIO);
                st.fail(seq, e, outcome.superblock_issued);
                pr_err!(
                    "remap: metadata commit {} failed on every copy (error {}): remaps are refused until the table is loaded again{}\n",
                    commit.generation(),
                    e.to_errno(),
                    if outcome.superblock_issued {
                        "; it may be on disk: the blocks it touched take no writes until then"
                    } else {
                        ""
                    }
                );
            } else if let Some(e) = outcome.error {
                st.last_error = Some(e);
                pr_warn!(
                    "remap: metadata commit {} missed {} of 5 copies (error {}): they are rewritten whole by the next commit\n",
                    commit.generation(),
                    outcome.written.iter().filter(|&&w| !w).count(),
                    e.to_errno()
                );
            }
            drop(st);
            self.done.notify_all();
        }
    }

    /// Applies `change` to the image and waits until a commit holding it is
    /// durable. Changes from several callers share commits.
    pub(crate) fn change(
        self: &Arc<Self>,
        queue: &Queue,
        change: impl FnOnce(&mut MetaImage),
    ) -> Result<(), CommitError> {
        let mut st = self.state.lock();
        if st.failed {
            return Err(CommitError::Refused);
        }
        change(&mut st.image);
        self.wait_durable(queue, st)
    }

    /// Commits whatever is pending (formatting, rewriting stale copies) and
    /// waits for it.
    pub(crate) fn sync(self: &Arc<Self>, queue: &Queue) -> Result<(), CommitError> {
        let st = self.state.lock();
        if st.failed {
            return Err(CommitError::Refused);
        }
        self.wait_durable(queue, st)
    }

    fn wait_durable(
        self: &Arc<Self>,
        queue: &Queue,
        mut st: MutexGuard<'_, WriterState>,
    ) -> Result<(), CommitError> {
        if !st.image.needs_commit() {
            return Ok(());
        }
        // The next commit prepared carries this change: one in flight was
        // prepared before it.
        let wanted = st.prepared + 1;
        // `false` means the work is queued already and not yet running:
        // that run sees this change.
        let _ = queue.enqueue(self.clone());
        // Every way out of `commit_pending` that leaves `wanted` unserved
        // latches `failed` and notifies: this loop never outwaits it.
        while st.last_ok < wanted {
            if st.finished >= wanted {
                // This change's commit failed (no later one is made).
                return Err(if st.failed_maybe_durable {
                    CommitError::Indeterminate
                } else {
                    CommitError::NotWritten
                });
            }
            if st.failed {
                // An earlier commit failed: this change's is never made.
                return Err(CommitError::NotWritten);
            }
            self.done.wait(&mut st);
        }
        Ok(())
    }
}

/// The in-memory device of the unit tests: five copies of `copy_blocks`
/// blocks, and a log of the writes and flushes made.
#[cfg(CONFIG_KUNIT)]
pub(crate) struct MemDev {
    bs: usize,
    copy_blocks: usize,
    pub(crate) disk: KVVec<u8>,
    /// Every write and flush, in order: `Some((copy, index, data))` or
    /// `None` for a flush.
    pub(crate) log: KVVec<Option<(usize, u32, KVVec<u8>)>>,
    pub(crate) fail_copy: Option<usize>,
    /// Fail every superblock write.
    pub(crate) fail_super: bool,
    /// Fail the flushes from this one on (counted from the setting), after
    /// the writes before them reached the disk.
    fail_flushes_from: Option<usize>,
    flushes: usize,
}

#[cfg(CONFIG_KUNIT)]
impl MemDev {
    pub(crate) fn new(fmt: &Format) -> Self {
        let bs = fmt.block_bytes();
        let copy_blocks = fmt.copy_blocks() as usize;
        Self {
            bs,
            copy_blocks,
            disk: filled(METADATA_COPIES * copy_blocks * bs, 0u8).unwrap(),
            log: KVVec::new(),
            fail_copy: None,
            fail_super: false,
            fail_flushes_from: None,
            flushes: 0,
        }
    }

    /// Fails the flushes from the `n`th from now on (counted from 0), or
    /// none.
    pub(crate) fn fail_flushes(&mut self, n: Option<usize>) {
        self.fail_flushes_from = n;
        self.flushes = 0;
    }

    pub(crate) fn block_mut(&mut self, copy: usize, index: u32) -> &mut [u8] {
        let at = (copy * self.copy_blocks + index as usize) * self.bs;
        &mut self.disk[at..at + self.bs]
    }

    /// Applies log entry `i` to the disk; the first `torn` bytes only
    /// when `torn` is given.
    pub(crate) fn apply(&mut self, entry: &Option<(usize, u32, KVVec<u8>)>, torn: Option<usize>) {
        if let Some((copy, index, data)) = entry {
            let n = torn.unwrap_or(data.len());
            self.block_mut(*copy, *index)[..n].copy_from_slice(&data[..n]);
        }
    }
}

#[cfg(CONFIG_KUNIT)]
impl MetadataDev for MemDev {
    fn read(&mut self, copy: usize, index: u32, out: &mut [u8]) -> Result {
        out.copy_from_slice(self.block_mut(copy, index));
        Ok(())
    }

    fn write(&mut self, copy: usize, index: u32, data: &[u8]) -> Result {
        if self.fail_copy == Some(copy) || (self.fail_super && index == 0) {
            return Err(EIO);
        }
        self.block_mut(copy, index).copy_from_slice(data);
        let mut v = KVVec::with_capacity(data.len(), GFP_KERNEL)?;
        v.extend_from_slice(data, GFP_KERNEL)?;
        self.log.push(Some((copy, index, v)), GFP_KERNEL)?;
        Ok(())
    }

    fn flush(&mut self) -> Result {
        self.flushes += 1;
        if matches!(self.fail_flushes_from, Some(n) if self.flushes > n) {
            return Err(EIO);
        }
        self.log.push(None, GFP_KERNEL)?;
        Ok(())
    }
}

#[kunit_tests(dm_remap_metadata)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            data_offset: 8,
            data_len: 1 << 20,
            spare_offset: 2048,
            // 128 blocks of 512 bytes: 60 words per block, 3 slot blocks,
            // 1 pending block (8 slots), 5 blocks per copy.
            spare_len: 128,
            block_size: 512,
        }
    }

    fn fmt() -> Format {
        Format::new(identity()).unwrap()
    }

    /// A free spare slot outside the metadata copies.
    fn free_spares(fmt: &Format, n: usize) -> KVec<u32> {
        let mut v = KVec::new();
        for s in 0..fmt.nr_spare {
            if v.len() < n && !fmt.layout.is_reserved(s) {
                v.push(s, GFP_KERNEL).unwrap();
            }
        }
        v
    }

    fn commit(image: &mut MetaImage, dev: &mut MemDev) -> CommitOutcome {
        let mut c = image.prepare().unwrap();
        let outcome = c.write(dev);
        image.finish(&c, &outcome);
        outcome
    }

    fn same_words(a: &MetaImage, b: &MetaImage) -> bool {
        a.words.iter().eq(b.words.iter())
    }

    /// A formatted device, then a commit remapping five blocks, then one
    /// remapping two more and retiring one; returns (dev, state 1 words,
    /// final image).
    fn two_commits() -> (MemDev, MetaImage, MetaImage) {
        let f = fmt();
        let mut dev = MemDev::new(&f);
        let mut image = MetaImage::blank(&f).unwrap();
        assert!(commit(&mut image, &mut dev).succeeded());
        let spares = free_spares(&f, 8);
        for (i, &s) in spares.iter().take(5).enumerate() {
            image.set_slot(
                s,
                Slot::InUse {
                    block: 100 + i as u64,
                    lost: i == 2,
                },
            );
        }
        assert!(commit(&mut image, &mut dev).succeeded());
        let (first, _) = load(&f, &mut dev).unwrap();
        image.set_slot(
            spares[5],
            Slot::InUse {
                block: 7,
                lost: false,
            },
        );
        image.set_slot(spares[6], Slot::Retired);
        // A pending block in the second pending block's words.
        image.set_pending(7, Some(4242));
        assert!(commit(&mut image, &mut dev).succeeded());
        (dev, first, image)
    }

    /// Prints the CPU cost of a commit of one changed spare slot, written
    /// to memory (the device's share is in `scripts/bench-metadata.sh`).
    /// Printed, never asserted.
    #[test]
    fn commit_cost() {
        let f = fmt();
        let mut dev = MemDev::new(&f);
        let mut image = MetaImage::blank(&f).unwrap();
        assert!(commit(&mut image, &mut dev).succeeded());
        let spare = free_spares(&f, 1)[0];
        let rounds = 1000u64;
        let start = Instant::<Monotonic>::now();
        for i in 0..rounds {
            image.set_slot(
                spare,
                Slot::InUse {
                    block: i,
                    lost: false,
                },
            );
            assert!(commit(&mut image, &mut dev).succeeded());
        }
        pr_info!(
            "dm_remap_metadata: commit of one changed slot to memory: {} ns each ({} commits, 2 blocks in each of 5 copies)\n",
            start.elapsed().as_nanos() / rounds as i64,
            rounds
        );
    }

    #[test]
    fn latency_histogram_percentiles() {
        let mut h = LatencyHistogram::new();
        assert_eq!(h.percentile(500), 0);
        for us in 1..=1000u64 {
            h.record(us);
        }
        // Upper bounds within 1/8 of the exact percentiles.
        let p50 = h.percentile(500);
        assert!((500..=500 + 500 / 8).contains(&p50));
        let p99 = h.percentile(990);
        assert!((990..=1000).contains(&p99));
        assert_eq!(h.percentile(1000), 1000);
        assert_eq!(h.max(), 1000);
        for us in [0u64, 7, 8, 9, 15, 16, 100, 12345, 1 << 30] {
            let b = LatencyHistogram::bucket(us);
            if us < 1 << 26 {
                assert!(LatencyHistogram::bucket_high(b) >= us);
                assert!(LatencyHistogram::bucket_high(b) <= us + us / 8);
            } else {
                assert_eq!(b, LATENCY_BUCKETS - 1);
            }
        }
    }

    #[test]
    fn slot_words_round_trip() {
        for slot in [
            Slot::Free,
            Slot::Retired,
            Slot::InUse {
                block: 0,
                lost: false,
            },
            Slot::InUse {
                block: BLOCK_MASK,
                lost: true,
            },
        ] {
            assert_eq!(Slot::decode(slot.encode()), Some(slot));
        }
        assert_eq!(Slot::decode(5), None);
        assert_eq!(Slot::decode((STATE_RETIRED << STATE_SHIFT) | 1), None);
    }

    #[test]
    fn format_sizes() {
        let f = fmt();
        assert_eq!(f.words_per_block, 60);
        assert_eq!(f.slot_blocks, 3);
        assert_eq!(f.pending_blocks, 1);
        assert_eq!(f.copy_blocks(), 5);
        let mut id = identity();
        id.block_size = 4096;
        id.spare_len = 256 * 8;
        let f = Format::new(id).unwrap();
        assert_eq!((f.words_per_block, f.copy_blocks()), (508, 3));
        id.spare_len = 8 * 8;
        assert_eq!(Format::new(id), Err(FormatError::TooSmall));
        id.block_size = 1000;
        assert_eq!(Format::new(id), Err(FormatError::BadBlockSize));
        id.block_size = 512;
        id.spare_len = 1 << 31;
        assert_eq!(Format::new(id), Err(FormatError::TooManyBlocks));
    }

    #[test]
    fn encode_decode_round_trip() {
        let f = fmt();
        let (mut dev, _, image) = two_commits();
        let (loaded, report) = load(&f, &mut dev).unwrap();
        assert!(!report.blank);
        assert_eq!(report.intact_copies(), 5);
        assert_eq!(report.generation, image.committed());
        assert!(same_words(&loaded, &image));
        assert_eq!(loaded.intact_copies(), 5);
        assert!(loaded.next_generation() > image.committed());
        let spares = free_spares(&f, 8);
        assert_eq!(
            loaded.slot(spares[2]),
            Some(Slot::InUse {
                block: 102,
                lost: true
            })
        );
        assert_eq!(loaded.slot(spares[6]), Some(Slot::Retired));
        assert_eq!(loaded.pending(7), Some(Some(4242)));
        assert_eq!(loaded.pending(0), Some(None));
        assert!(f.pending_slots() >= f.nr_spare / PENDING_SHARE);
    }

    #[test]
    fn blank_area_loads_as_blank() {
        let f = fmt();
        let mut dev = MemDev::new(&f);
        let (image, report) = load(&f, &mut dev).unwrap();
        assert!(report.blank);
        assert_eq!(image.intact_copies(), 0);
        assert!(image.needs_commit());
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let f = fmt();
        let (mut dev, _, _) = two_commits();
        for index in [0u32, 1, 4] {
            let mut block = KVVec::new();
            block
                .extend_from_slice(dev.block_mut(2, index), GFP_KERNEL)
                .unwrap();
            assert!(check_block(&f, 2, index, &block).is_ok());
            for bit in 0..block.len() * 8 {
                block[bit / 8] ^= 1 << (bit % 8);
                assert!(check_block(&f, 2, index, &block).is_err());
                block[bit / 8] ^= 1 << (bit % 8);
            }
            // A block in the wrong place is refused too.
            assert_eq!(check_block(&f, 3, index, &block), Err(BadBlock::Misplaced));
        }
    }

    /// Damages copies in `mask`: garbage in a superblock and an entry
    /// block, or the blocks of an older commit when `older` is given.
    fn damage(dev: &mut MemDev, mask: u32, older: Option<&MemDev>) {
        for copy in 0..METADATA_COPIES {
            if mask & (1 << copy) == 0 {
                continue;
            }
            match older {
                Some(old) => {
                    let (n, bs) = (dev.copy_blocks, dev.bs);
                    for index in 0..n {
                        let at = (copy * n + index) * bs;
                        let src = &old.disk[at..at + bs];
                        dev.disk[at..at + bs].copy_from_slice(src);
                    }
                }
                None => {
                    dev.block_mut(copy, 0)[100] ^= 0x5a;
                    dev.block_mut(copy, 1)[40..48].fill(0xff);
                }
            }
        }
    }

    #[test]
    fn recovery_for_every_subset_of_damaged_copies() {
        let f = fmt();
        let (dev, first, image) = two_commits();
        // The disk as it was after the first commit with remaps.
        let mut old = MemDev::new(&f);
        let mut staged = MetaImage::blank(&f).unwrap();
        commit(&mut staged, &mut old);
        for s in 0..f.nr_spare as usize {
            // Only the words that differ, so that each block keeps the
            // generation it has on the other disk.
            if staged.word(s) != first.word(s) {
                staged.set_word(s, first.word(s));
            }
        }
        commit(&mut staged, &mut old);
        for mask in 1u32..32 {
            let mut d = MemDev::new(&f);
            d.disk.clear();
            d.disk.extend_from_slice(&dev.disk, GFP_KERNEL).unwrap();
            damage(&mut d, mask, None);
            match load(&f, &mut d) {
                Ok((loaded, report)) => {
                    assert!(mask != 31);
                    assert!(same_words(&loaded, &image));
                    assert_eq!(report.intact_copies(), 5 - mask.count_ones() as usize);
                    // The first commit after the load makes every copy whole.
                    let mut loaded = loaded;
                    assert!(commit(&mut loaded, &mut d).succeeded());
                    let (again, report) = load(&f, &mut d).unwrap();
                    assert_eq!(report.intact_copies(), 5);
                    // A repair writes the last commit again, under its
                    // own generation.
                    assert_eq!(report.generation, image.committed());
                    assert!(same_words(&again, &image));
                }
                Err(e) => {
                    assert_eq!(mask, 31);
                    assert_eq!(e, LoadError::NoIntactCopy);
                }
            }
            // Stale but intact copies: the newest commit still wins.
            let mut d = MemDev::new(&f);
            d.disk.clear();
            d.disk.extend_from_slice(&dev.disk, GFP_KERNEL).unwrap();
            damage(&mut d, mask, Some(&old));
            let (loaded, report) = load(&f, &mut d).unwrap();
            let want = if mask == 31 { &first } else { &image };
            assert!(same_words(&loaded, want));
            if mask != 31 {
                assert_eq!(report.intact_copies(), 5 - mask.count_ones() as usize);
            }
        }
    }

    #[test]
    fn identity_mismatch_refused() {
        let (mut dev, _, _) = two_commits();
        let mut id = identity();
        id.data_len += 8;
        let other = Format::new(id).unwrap();
        assert_eq!(
            load(&other, &mut dev).err(),
            Some(LoadError::Mismatch(identity()))
        );
        let mut id = identity();
        id.spare_offset = 0;
        let other = Format::new(id).unwrap();
        assert!(matches!(
            load(&other, &mut dev),
            Err(LoadError::Mismatch(_))
        ));
    }

    #[test]
    fn every_crash_point_recovers_old_or_new_state() {
        let f = fmt();
        let (dev, _, before) = two_commits();
        let mut dev = dev;
        dev.log.clear();
        let base = {
            let mut v = KVVec::new();
            v.extend_from_slice(&dev.disk, GFP_KERNEL).unwrap();
            v
        };
        let (mut image, _) = load(&f, &mut dev).unwrap();
        let spares = free_spares(&f, 12);
        for (i, &s) in spares.iter().skip(8).enumerate() {
            image.set_slot(
                s,
                Slot::InUse {
                    block: 500 + i as u64,
                    lost: false,
                },
            );
        }
        // A block in the last slot block changes too.
        image.set_slot(f.nr_spare - 40, Slot::Retired);
        let mut c = image.prepare().unwrap();
        assert_eq!(c.blocks(), 3);
        assert!(c.write(&mut dev).succeeded());
        let log = core::mem::take(&mut dev.log);
        let mut checked = 0;
        for end in 0..=log.len() {
            for torn in [None, Some(100)] {
                if torn.is_some() && (end == log.len() || log[end].is_none()) {
                    continue;
                }
                let mut d = MemDev::new(&f);
                d.disk.clear();
                d.disk.extend_from_slice(&base, GFP_KERNEL).unwrap();
                for entry in log.iter().take(end) {
                    d.apply(entry, None);
                }
                if let Some(n) = torn {
                    d.apply(&log[end], Some(n));
                }
                let (loaded, _) = load(&f, &mut d).unwrap();
                assert!(same_words(&loaded, &before) || same_words(&loaded, &image));
                if end == log.len() {
                    assert!(same_words(&loaded, &image));
                }
                checked += 1;
            }
        }
        assert!(checked > 20);
    }

    #[test]
    fn failed_commit_with_a_superblock_written_may_load() {
        let f = fmt();
        let (mut dev, _, before) = two_commits();
        let (mut image, _) = load(&f, &mut dev).unwrap();
        image.set_slot(
            free_spares(&f, 10)[9],
            Slot::InUse {
                block: 77,
                lost: false,
            },
        );
        // The first copy's blocks are flushed; the flush after its
        // superblock fails, and so does every later one.
        dev.fail_flushes(Some(1));
        let outcome = commit(&mut image, &mut dev);
        assert!(!outcome.succeeded());
        assert!(outcome.superblock_issued);
        dev.fail_flushes(None);
        // Reported failed, yet a load finds it: the target must treat such
        // a commit as maybe on disk.
        let (loaded, _) = load(&f, &mut dev).unwrap();
        assert!(same_words(&loaded, &image));
        assert!(!same_words(&loaded, &before));
    }

    #[test]
    fn failed_commit_without_a_superblock_never_loads() {
        let f = fmt();
        let (mut dev, _, before) = two_commits();
        let (mut image, _) = load(&f, &mut dev).unwrap();
        image.set_slot(free_spares(&f, 10)[9], Slot::Retired);
        dev.fail_flushes(Some(0));
        let outcome = commit(&mut image, &mut dev);
        assert!(!outcome.succeeded());
        assert!(!outcome.superblock_issued);
        dev.fail_flushes(None);
        let (loaded, _) = load(&f, &mut dev).unwrap();
        assert!(same_words(&loaded, &before));
    }

    #[test]
    fn commit_failing_everywhere_keeps_the_previous_state() {
        let f = fmt();
        let (mut dev, _, before) = two_commits();
        let (mut image, _) = load(&f, &mut dev).unwrap();
        image.set_slot(free_spares(&f, 10)[9], Slot::Retired);
        dev.fail_super = true;
        let outcome = commit(&mut image, &mut dev);
        assert!(!outcome.succeeded());
        assert_eq!(outcome.error, Some(EIO));
        dev.fail_super = false;
        // At least one copy was left alone, so the last commit loads.
        let (loaded, _) = load(&f, &mut dev).unwrap();
        assert!(same_words(&loaded, &before));
    }

    #[test]
    fn failed_copy_is_rewritten_by_next_commit() {
        let f = fmt();
        let (mut dev, _, mut image) = two_commits();
        dev.fail_copy = Some(3);
        image.set_slot(free_spares(&f, 10)[9], Slot::Retired);
        let outcome = commit(&mut image, &mut dev);
        assert!(outcome.succeeded());
        assert_eq!(outcome.written, [true, true, true, false, true]);
        assert_eq!(outcome.error, Some(EIO));
        assert_eq!(image.intact_copies(), 4);
        dev.fail_copy = None;
        assert!(image.needs_commit());
        assert!(commit(&mut image, &mut dev).succeeded());
        let (loaded, report) = load(&f, &mut dev).unwrap();
        assert_eq!(report.intact_copies(), 5);
        assert!(same_words(&loaded, &image));
    }
}
