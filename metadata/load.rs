// SPDX-License-Identifier: GPL-2.0

//! Loading: the newest intact version of every block, by the recovery
//! rules of the format.

use super::*;

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

/// Reads block `index` of every copy into `bufs` (one block each); returns
/// the generation of each intact one.
pub(super) fn read_all(
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
    if !crate::breakage::broken(crate::breakage::Breakage::NoRepair) {
        image.stale = stale;
    }
    image.next_gen = highest_seen + 1;
    report.generation = top;
    Ok((image, report))
}

/// Bytes of each copy that loading reads with one I/O.
pub(super) const LOAD_WINDOW: usize = 128 * 1024;

/// The device as loading reads it: a window of each copy at a time with
/// one synchronous read (loading reads every block of every copy once, in
/// order), and a block through dm-bufio when its window cannot be read, so
/// that a bad sector costs only its own block.
pub(super) struct LoadDev<'a> {
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
