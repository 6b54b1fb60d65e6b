// SPDX-License-Identifier: GPL-2.0

//! Recovery: the newest intact version of every block, by the rules of
//! the format.

use super::{check_block, decode_entries, decode_identity, decode_uuid, layout_matches};
use super::{BadBlock, Crc32c, Format, Identity, MetadataDev, Slot};
use super::{METADATA_COPIES, UUID_BYTES};

/// Why the metadata cannot be loaded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LoadError {
    /// Superblocks carry the magic, but none is intact.
    NoIntactCopy,
    /// The newest intact superblock belongs to another table line.
    Mismatch(Identity),
    /// The newest superblock describes another layout (another format).
    LayoutMismatch,
    /// No copy holds an intact version of this block.
    BlockLost(u32),
    /// A spare slot holds a value no writer makes.
    BadSlot(u32),
    /// A pending slot holds a value no writer makes.
    BadPending(u32),
    /// The caller's buffers do not have the sizes of the format.
    Buffers,
}

/// What recovery found wrong with one block of one copy.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Finding {
    /// The block is unusable.
    Bad(BadBlock),
    /// Intact, but older than the version recovery took.
    Stale {
        /// The generation the copy holds.
        generation: u64,
    },
    /// Intact, but newer than the version taken: written by a commit that
    /// never reached the copy's superblock (or not known to have: the
    /// copy's superblock is damaged), and ignored. The next commit writes
    /// the block at a generation above it in every copy, so that a lost
    /// write of that rewrite cannot make it count later.
    Unfinished {
        /// The generation the copy holds.
        generation: u64,
    },
}

/// Where recovery puts what it reads and finds: `blocks` holds one
/// metadata block per copy, `words` the image ([`Format::words`]) and
/// `block_gen` the generation of each block of a copy.
pub struct LoadBuffers<'a> {
    /// Room for one block of each copy.
    pub blocks: &'a mut [u8],
    /// The recovered image words.
    pub words: &'a mut [u64],
    /// The generation of the version taken of each block.
    pub block_gen: &'a mut [u64],
}

/// What recovery found.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Recovered {
    /// The spare area held no metadata (no superblock carries the magic):
    /// it is to be formatted. Nothing else here is meaningful then.
    pub blank: bool,
    /// Generation of the newest intact superblock.
    pub generation: u64,
    /// The UUID that superblock records.
    pub uuid: [u8; UUID_BYTES],
    /// Blocks of each copy that were damaged, stale or unfinished.
    pub bad_blocks: [u32; METADATA_COPIES],
    /// Copies lacking some block of the recovered state: the next commit
    /// rewrites them whole.
    pub stale: [bool; METADATA_COPIES],
    /// A generation above every one seen on disk: the next commit's.
    pub next_generation: u64,
    /// The highest generation a block of each copy may have to count:
    /// its own superblock's, or the newest one's when its superblock is
    /// not intact. A block above it was written by a commit that never
    /// reached that copy's superblock.
    pub bound: [u64; METADATA_COPIES],
}

impl Recovered {
    /// Whether the first commit after this load writes the blocks that
    /// some copy holds an unfinished version of ([`Finding::Unfinished`])
    /// at its new generation, in every copy: when some copy is whole,
    /// which that commit keeps aside while it writes. With every copy
    /// stale the first commit repairs alone (it writes each block with the
    /// version taken, the same bytes where a copy holds them, and no copy
    /// can be kept aside); a later load sees the blocks again.
    pub fn rewrites_unfinished(&self) -> bool {
        self.stale.iter().any(|&s| !s)
    }

    /// Copies that held every block of the recovered state.
    pub fn intact_copies(&self) -> usize {
        (0..METADATA_COPIES)
            .filter(|&c| self.bad_blocks[c] == 0)
            .count()
    }
}

/// Checks block `index` of `copy`: lent by [`MetadataDev::peek`] when
/// `borrow` and the device lends it, else read into `buf` (one block).
/// Returns its generation if it is intact, and whether it was lent (and so
/// is not in `buf`).
fn check_one<C: Crc32c, D: MetadataDev>(
    fmt: &Format,
    dev: &mut D,
    copy: usize,
    index: u32,
    buf: &mut [u8],
    borrow: bool,
) -> (Result<u64, BadBlock>, bool) {
    if borrow {
        if let Some(block) = dev.peek(copy, index) {
            return (check_block::<C>(fmt, copy, index, block), true);
        }
    }
    match dev.read(copy, index, buf) {
        Ok(()) => (check_block::<C>(fmt, copy, index, buf), false),
        Err(_) => (Err(BadBlock::Unreadable), false),
    }
}

/// Checks block `index` of every copy ([`check_one`], each into its block
/// of `bufs`). Returns the generation of each intact one, and which were
/// lent.
fn check_all<C: Crc32c, D: MetadataDev>(
    fmt: &Format,
    dev: &mut D,
    index: u32,
    bufs: &mut [u8],
    borrow: bool,
) -> (
    [Result<u64, BadBlock>; METADATA_COPIES],
    [bool; METADATA_COPIES],
) {
    let bs = fmt.block_bytes();
    let mut found = [Err(BadBlock::Unreadable); METADATA_COPIES];
    let mut lent = [false; METADATA_COPIES];
    for copy in 0..METADATA_COPIES {
        let buf = &mut bufs[copy * bs..(copy + 1) * bs];
        (found[copy], lent[copy]) = check_one::<C, D>(fmt, dev, copy, index, buf, borrow);
    }
    (found, lent)
}

/// The bytes of block `index` of `copy`, checked as intact and of
/// `generation`: lent by the device again when it was lent for the check
/// (`lent`), else in `buf`. A block lent for the check but not now is read
/// and checked again, so that what is decoded is what was checked.
fn taken<'a, C: Crc32c, D: MetadataDev>(
    fmt: &Format,
    dev: &'a mut D,
    copy: usize,
    index: u32,
    lent: bool,
    buf: &'a mut [u8],
    generation: u64,
) -> Result<&'a [u8], LoadError> {
    if lent {
        // Asked twice: the borrow of the first answer cannot outlive the
        // test, and a device that lent once lends again from its window.
        if dev.peek(copy, index).is_some() {
            return dev.peek(copy, index).ok_or(LoadError::BlockLost(index));
        }
        let again = dev.read(copy, index, buf).is_ok()
            && check_block::<C>(fmt, copy, index, buf) == Ok(generation);
        if !again {
            return Err(LoadError::BlockLost(index));
        }
    }
    Ok(buf)
}

/// Reads block `index` of every copy into `bufs` (one block each); returns
/// the generation of each intact one.
pub fn read_all<C: Crc32c, D: MetadataDev>(
    fmt: &Format,
    dev: &mut D,
    index: u32,
    bufs: &mut [u8],
) -> [Result<u64, BadBlock>; METADATA_COPIES] {
    check_all::<C, D>(fmt, dev, index, bufs, false).0
}

fn note_findings(
    found: &[Result<u64, BadBlock>; METADATA_COPIES],
    taken: u64,
    index: u32,
    rec: &mut Recovered,
    report: &mut impl FnMut(usize, u32, Finding),
) {
    for (copy, f) in found.iter().enumerate() {
        let finding = match *f {
            Ok(g) if g == taken => continue,
            Ok(g) if g > taken => Finding::Unfinished { generation: g },
            Ok(g) => Finding::Stale { generation: g },
            Err(bad) => Finding::Bad(bad),
        };
        rec.bad_blocks[copy] += 1;
        rec.stale[copy] = true;
        report(copy, index, finding);
    }
}

/// Recovers the metadata of `fmt` from `dev` into `bufs`: from each block
/// the intact version with the highest generation not above its own
/// copy's superblock, among the copies whose superblock is intact; only
/// where none of those holds one, among the others (bounded by the newest
/// intact superblock). Every damaged, stale or unfinished block of a copy
/// is passed to `report`. Nothing is written.
pub fn recover<C: Crc32c, D: MetadataDev>(
    fmt: &Format,
    dev: &mut D,
    bufs: LoadBuffers<'_>,
    mut report: impl FnMut(usize, u32, Finding),
) -> Result<Recovered, LoadError> {
    let bs = fmt.block_bytes();
    if bufs.blocks.len() != METADATA_COPIES * bs
        || bufs.words.len() != fmt.words()
        || bufs.block_gen.len() != fmt.copy_blocks() as usize
    {
        return Err(LoadError::Buffers);
    }
    bufs.words.fill(0);
    bufs.block_gen.fill(0);
    let mut rec = Recovered::default();
    let supers = read_all::<C, D>(fmt, dev, 0, bufs.blocks);
    if supers.iter().all(|s| *s == Err(BadBlock::NoMagic)) {
        rec.blank = true;
        rec.bad_blocks = [fmt.copy_blocks(); METADATA_COPIES];
        rec.stale = [true; METADATA_COPIES];
        rec.next_generation = 1;
        return Ok(rec);
    }
    let (top, top_copy) = (0..METADATA_COPIES)
        .filter_map(|c| supers[c].ok().map(|g| (g, c)))
        .max()
        .ok_or(LoadError::NoIntactCopy)?;
    let top_super = &bufs.blocks[top_copy * bs..(top_copy + 1) * bs];
    let recorded = decode_identity(top_super);
    if recorded != fmt.identity {
        return Err(LoadError::Mismatch(recorded));
    }
    if !layout_matches(fmt, top_super) {
        return Err(LoadError::LayoutMismatch);
    }
    rec.uuid = decode_uuid(top_super);
    rec.generation = top;
    bufs.block_gen[0] = top;
    let mut highest_seen = top;
    for (bound, found) in rec.bound.iter_mut().zip(supers) {
        *bound = found.unwrap_or(top);
    }
    note_findings(&supers, top, 0, &mut rec, &mut report);
    for g in supers.iter().flatten() {
        highest_seen = highest_seen.max(*g);
    }
    for index in 1..fmt.copy_blocks() {
        let (found, lent) = check_all::<C, D>(fmt, dev, index, bufs.blocks, true);
        for g in found.iter().flatten() {
            highest_seen = highest_seen.max(*g);
        }
        // A version above its copy's superblock belongs to a commit that
        // never finished there (one above `top`, to one that finished
        // nowhere; one at or below it, to one abandoned before a later
        // commit failed to rewrite that copy).
        // Every copy is compared, whatever its superblock says: a disk
        // may acknowledge a write it never made, so the copy with the
        // newest superblock can hold an older version of a block that
        // another copy holds newer, at or below its own superblock's
        // generation. Among versions of one generation (which the writer
        // makes the same in every copy) the newest copy's, then the
        // highest copy's.
        // A copy whose superblock is damaged has no bound of its own: a
        // block a commit abandoned there (one that never finished, left
        // by a rewrite that failed) may lie at or below the newest
        // superblock. Its versions count only where no copy with an
        // intact superblock holds one.
        let eligible = |intact_super: bool| {
            (0..METADATA_COPIES)
                .filter_map(|c| match found[c] {
                    Ok(g) if supers[c].is_ok() == intact_super && g <= rec.bound[c] => {
                        Some((g, c == top_copy, c))
                    }
                    _ => None,
                })
                .max()
        };
        let (generation, _, copy) = eligible(true)
            .or_else(|| eligible(false))
            .ok_or(LoadError::BlockLost(index))?;
        note_findings(&found, generation, index, &mut rec, &mut report);
        let buf = &mut bufs.blocks[copy * bs..(copy + 1) * bs];
        let block = taken::<C, D>(fmt, dev, copy, index, lent[copy], buf, generation)?;
        decode_entries(fmt, index, block, bufs.words);
        bufs.block_gen[index as usize] = generation;
    }
    // Every slot a writer makes; the slots of the metadata copies' own
    // blocks free. Two passes: the first over every slot tests each word
    // alone, the second only the copies' few slots (a million slots cost
    // a decode each, not five range tests more).
    let slots = &bufs.words[..fmt.nr_spare as usize];
    if let Some(spare) = slots.iter().position(|&w| Slot::decode(w).is_none()) {
        return Err(LoadError::BadSlot(spare as u32));
    }
    for &start in &fmt.layout.starts {
        let end = start
            .saturating_add(fmt.layout.copy_blocks)
            .min(fmt.nr_spare);
        for spare in start.min(end)..end {
            if Slot::decode(slots[spare as usize]) != Some(Slot::Free) {
                return Err(LoadError::BadSlot(spare));
            }
        }
    }
    let base = fmt.pending_base();
    for i in 0..fmt.pending_slots() {
        if Slot::decode_pending(bufs.words[base + i as usize]).is_none() {
            return Err(LoadError::BadPending(i));
        }
    }
    rec.next_generation = highest_seen + 1;
    Ok(rec)
}
