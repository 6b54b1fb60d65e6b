// SPDX-License-Identifier: GPL-2.0

//! Loading the metadata from the spare area, by the recovery rules of the
//! format.

use super::image::filled;
use crate::breakage::{broken, Breakage};
use crate::kapi::bufio::BufioClient;
use crate::kapi::dm::DmDev;
use crate::metadata::{Crc, MetaImage};
use crate::ondisk::{
    any_superblock, superblock_size, Format, Identity, LoadBuffers, MetadataDev, Recovered,
    METADATA_COPIES, UUID_BYTES,
};
use kernel::alloc::AllocError;
use kernel::prelude::*;

/// Why the metadata cannot be loaded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum LoadError {
    /// What the format's recovery refused.
    Format(crate::ondisk::LoadError),
    /// Memory could not be had.
    NoMemory,
}

impl From<AllocError> for LoadError {
    fn from(_: AllocError) -> Self {
        LoadError::NoMemory
    }
}

impl From<crate::ondisk::LoadError> for LoadError {
    fn from(e: crate::ondisk::LoadError) -> Self {
        LoadError::Format(e)
    }
}

/// What loading found, for the kernel log and status.
pub(crate) type LoadReport = Recovered;

/// Loads the metadata of `fmt` by the format's recovery rules, reading
/// every block of every copy ([`crate::ondisk::recover`]): no table goes
/// live with a version of a block older than one another copy holds at or
/// below its own superblock's generation, as it could if the copy with the
/// newest superblock were read alone (a disk may acknowledge a write it
/// never made, leaving that copy an older version under a newer
/// superblock). A blank area (no superblock carries the magic) loads as a blank image, to
/// be formatted with a new UUID. Copies found lacking any block of the
/// result are marked stale, so the first commit rewrites them. Nothing is
/// written here.
pub(crate) fn load(
    fmt: &Format,
    dev: &mut impl MetadataDev<Error = Error>,
) -> Result<(MetaImage, LoadReport), LoadError> {
    let mut bufs = filled(METADATA_COPIES * fmt.block_bytes(), 0u8)?;
    let mut image = MetaImage::empty(fmt, [0; UUID_BYTES])?;
    let load_bufs = LoadBuffers {
        blocks: &mut bufs,
        words: &mut image.words,
        block_gen: &mut image.block_gen,
    };
    // The kernel log names what each copy lacked from the counts in the
    // report; of the single findings (remapctl check's business) the
    // blocks with an unfinished version are kept.
    let mut unfinished = filled(fmt.copy_blocks() as usize, false)?;
    let report = crate::ondisk::recover::<Crc, _>(fmt, dev, load_bufs, |_, index, finding| {
        if let (crate::ondisk::Finding::Unfinished { .. }, Some(u)) =
            (finding, unfinished.get_mut(index as usize))
        {
            *u = true;
        }
    })?;
    if report.blank {
        return Ok((MetaImage::blank(fmt, super::random_uuid())?, report));
    }
    let repair = !broken(Breakage::NoRepair);
    image.set_loaded(&report, repair);
    if repair && report.rewrites_unfinished() {
        // A version a commit abandoned stays on disk, above its copy's
        // superblock, until something overwrites it. Rewritten at its own
        // generation, a lost write of the rewrite would leave it, and the
        // next commit would raise that copy's superblock over it: the
        // first commit writes those blocks at its new generation instead,
        // above the abandoned one, in every copy.
        for (index, _) in unfinished.iter().enumerate().filter(|(_, &u)| u) {
            image.mark_dirty(index as u32);
        }
    }
    Ok((image, report))
}

/// The breakage [`Breakage::OlderVersionLoaded`]: only the last copy's
/// blocks after the superblock read, so that its version of each is taken,
/// as a load that trusted the copy with the newest superblock did.
fn older_version_broken(copy: usize, index: u32) -> bool {
    broken(Breakage::OlderVersionLoaded) && index > 0 && copy + 1 < METADATA_COPIES
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
    /// Per copy: its read window.
    windows: KVec<Window>,
}

/// One copy's read window.
struct Window {
    /// The window's bytes.
    bytes: KVec<u8>,
    /// Its first block, if it was read.
    first: Option<u32>,
    /// The blocks (first, count) of the last window whose read failed:
    /// their blocks come through dm-bufio one by one, and the window is
    /// not tried again for each of them.
    failed: Option<(u32, u32)>,
}

impl LoadDev<'_> {
    /// The window of `copy` holding block `index`, read if need be.
    fn window(&mut self, copy: usize, index: u32) -> Option<&[u8]> {
        let bs = self.fmt.block_bytes();
        // Block sizes are powers of two: shifts, not divisions.
        let bs_shift = bs.trailing_zeros();
        let w = self.windows.get_mut(copy)?;
        if matches!(w.failed, Some((f, n)) if index >= f && index - f < n) {
            return None;
        }
        let buf = &mut w.bytes;
        let covers =
            |first: u32, len: usize| index >= first && ((index - first) as usize) < len >> bs_shift;
        if !matches!(w.first, Some(f) if covers(f, buf.len())) {
            let count = (LOAD_WINDOW >> bs_shift).min((self.fmt.copy_blocks() - index) as usize);
            if buf.len() != count << bs_shift {
                buf.truncate(0);
                buf.resize(count << bs_shift, 0, GFP_KERNEL).ok()?;
            }
            let sector_shift = bs_shift - 9;
            let sector = self.spare_offset + (self.fmt.area_block(copy, index) << sector_shift);
            w.first = self.dev.rw_sync(sector, buf, false).ok().map(|()| index);
            if w.first.is_none() {
                w.failed = Some((index, count as u32));
            }
        }
        let f = w.first?;
        let at = ((index - f) as usize) << bs_shift;
        buf.get(at..at + bs)
    }
}

impl MetadataDev for LoadDev<'_> {
    type Error = Error;

    fn read(&mut self, copy: usize, index: u32, out: &mut [u8]) -> Result {
        if older_version_broken(copy, index) {
            return Err(EIO);
        }
        if let Some(block) = self.window(copy, index) {
            if let Some(out) = out.get_mut(..block.len()) {
                out.copy_from_slice(block);
                return Ok(());
            }
        }
        self.client.read_into(self.fmt.area_block(copy, index), out)
    }

    fn peek(&mut self, copy: usize, index: u32) -> Option<&[u8]> {
        if older_version_broken(copy, index) {
            return None;
        }
        // The window's bytes are what `read` copies out.
        self.window(copy, index)
    }

    fn write(&mut self, _copy: usize, _index: u32, _data: &[u8]) -> Result {
        // Loading never writes.
        Err(EROFS)
    }

    fn flush(&mut self) -> Result {
        Ok(())
    }
}

impl<'a> LoadDev<'a> {
    /// Reads `fmt`'s copies through `client`, a window of each at a time.
    fn new(client: &'a BufioClient, fmt: &'a Format) -> Result<Self, AllocError> {
        let mut windows = KVec::with_capacity(METADATA_COPIES, GFP_KERNEL)?;
        for _ in 0..METADATA_COPIES {
            // Without the memory, dm-bufio reads every block.
            let buf = KVec::with_capacity(LOAD_WINDOW, GFP_KERNEL).unwrap_or_default();
            windows.push(
                Window {
                    bytes: buf,
                    first: None,
                    failed: None,
                },
                GFP_KERNEL,
            )?;
        }
        Ok(LoadDev {
            client,
            dev: client.dev(),
            spare_offset: client.sector_offset(),
            fmt,
            windows,
        })
    }
}

impl Drop for LoadDev<'_> {
    fn drop(&mut self) {
        // What dm-bufio read for blocks outside a window: the image is the
        // cache.
        for copy in 0..METADATA_COPIES {
            self.client.forget(
                self.fmt.area_block(copy, 0),
                u64::from(self.fmt.copy_blocks()),
            );
        }
    }
}

/// Loads the metadata of `fmt` through `client` (see [`load`]), reading
/// each copy ahead and dropping it from the cache afterwards.
pub(crate) fn load_from(
    client: &BufioClient,
    fmt: &Format,
) -> Result<(MetaImage, LoadReport), LoadError> {
    load(fmt, &mut LoadDev::new(client, fmt)?)
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
    let bs = superblock_size(&buf).filter(|&bs| bs != ours)?;
    buf.resize(bs as usize, 0, GFP_KERNEL).ok()?;
    read(&mut buf).ok()?;
    any_superblock::<Crc>(&buf).map(|(identity, _, _)| identity)
}
