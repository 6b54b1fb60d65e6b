// SPDX-License-Identifier: GPL-2.0

//! The metadata of a spare area, offline: recovered by the format's own
//! rules (the code the kernel runs), and written whole.

use crate::crc::Crc;
use crate::device::BlockDev;
use crate::progress::Progress;
use anyhow::{bail, Result};
use dm_remap_ondisk::{
    encode_commit, recover, write_commit, CommitBlocks, CommitOutcome, Finding, Format, Identity,
    LoadBuffers, LoadError, MetadataDev, Pending, Recovered, Slot, METADATA_COPIES, UUID_BYTES,
};

/// The spare area of a device, as the format reads and writes it, with
/// the progress of the whole read or write on a terminal.
pub struct SpareArea<'a> {
    dev: &'a BlockDev,
    fmt: Format,
    progress: Progress,
    /// Blocks read or written, and in all.
    done: u64,
    total: u64,
}

impl<'a> SpareArea<'a> {
    /// The spare area of `fmt` on `dev`; it must lie within the device.
    pub fn new(dev: &'a BlockDev, fmt: Format) -> Result<Self> {
        let id = &fmt.identity;
        let end = id
            .spare_offset
            .checked_add(id.spare_len)
            .and_then(|e| e.checked_mul(512));
        if end.is_none_or(|e| e > dev.size()) {
            bail!(
                "{}: the spare area (sectors {}+{}) lies beyond the device's end",
                dev.path().display(),
                id.spare_offset,
                id.spare_len
            );
        }
        Ok(Self {
            dev,
            fmt,
            progress: Progress::new(dev.path().display().to_string()),
            done: 0,
            total: 0,
        })
    }

    /// Shows the progress of `what` (reading, writing), `blocks` blocks in
    /// all.
    fn expect(&mut self, what: &str, blocks: u64) {
        self.progress = Progress::new(format!("{}: {what}", self.dev.path().display()));
        self.done = 0;
        self.total = blocks;
    }

    fn step(&mut self) {
        self.done += 1;
        self.progress.show(self.done, self.total, "metadata blocks");
    }

    fn offset(&self, copy: usize, index: u32) -> u64 {
        self.fmt.identity.spare_offset * 512
            + self.fmt.area_block(copy, index) * self.fmt.block_bytes() as u64
    }
}

fn errno(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(nix::libc::EIO)
}

impl MetadataDev for SpareArea<'_> {
    type Error = i32;

    fn read(&mut self, copy: usize, index: u32, out: &mut [u8]) -> Result<(), i32> {
        self.step();
        self.dev
            .read_at(self.offset(copy, index), out)
            .map_err(errno)
    }

    fn write(&mut self, copy: usize, index: u32, data: &[u8]) -> Result<(), i32> {
        self.step();
        self.dev
            .write_at(self.offset(copy, index), data)
            .map_err(errno)
    }

    fn flush(&mut self) -> Result<(), i32> {
        self.dev.flush().map_err(errno)
    }
}

/// Recovered metadata: the image words, each block's generation, and what
/// recovery found about every copy.
pub struct Offline {
    /// The format of the identity loaded.
    pub fmt: Format,
    /// The image words ([`Format::words`]).
    pub words: Vec<u64>,
    /// The generation of the version taken of each block.
    pub block_gen: Vec<u64>,
    /// The summary.
    pub rec: Recovered,
    /// Every damaged, stale or unfinished block: (copy, index, what).
    pub findings: Vec<(usize, u32, Finding)>,
}

/// Recovers the metadata of `identity` on `dev` (its spare area), as the
/// kernel's load does.
pub fn load(dev: &BlockDev, identity: Identity) -> Result<Result<Offline, LoadError>> {
    let fmt = match Format::new(identity) {
        Ok(f) => f,
        Err(e) => bail!("the geometry cannot hold metadata: {}", e.reason()),
    };
    let mut area = SpareArea::new(dev, fmt)?;
    // Recovery reads every block of every copy.
    area.expect(
        "reading the metadata",
        METADATA_COPIES as u64 * u64::from(fmt.copy_blocks()),
    );
    let mut blocks = vec![0u8; METADATA_COPIES * fmt.block_bytes()];
    let mut words = vec![0u64; fmt.words()];
    let mut block_gen = vec![0u64; fmt.copy_blocks() as usize];
    let mut findings = Vec::new();
    let bufs = LoadBuffers {
        blocks: &mut blocks,
        words: &mut words,
        block_gen: &mut block_gen,
    };
    let rec = recover::<Crc, _>(&fmt, &mut area, bufs, |c, i, f| findings.push((c, i, f)));
    Ok(rec.map(|rec| Offline {
        fmt,
        words,
        block_gen,
        rec,
        findings,
    }))
}

/// Writes metadata of generation `generation` to every block of the
/// copies in `copies` (each block stamped with `block_gen`, or with
/// `generation` when `None`), in the format's commit order. The blocks
/// `rewritten` names (by index; it may be empty) go to every copy, stamped
/// with `generation`.
#[allow(clippy::too_many_arguments)]
pub fn write(
    dev: &BlockDev,
    fmt: &Format,
    uuid: &[u8; UUID_BYTES],
    generation: u64,
    words: &[u64],
    block_gen: Option<&[u64]>,
    rewritten: &[bool],
    copies: [bool; METADATA_COPIES],
) -> Result<CommitOutcome<i32>> {
    let mut area = SpareArea::new(dev, *fmt)?;
    // Every block of the copies given, and the superblock of the others.
    let stale = copies.iter().filter(|&&c| c).count() as u64;
    area.expect(
        "writing the metadata",
        stale * u64::from(fmt.copy_blocks()) + (METADATA_COPIES as u64 - stale),
    );
    let indices: Vec<u32> = (1..fmt.copy_blocks()).collect();
    let mut data = vec![0u8; (indices.len() + 1) * fmt.block_bytes()];
    let is_rewritten = |index: u32| rewritten.get(index as usize).copied().unwrap_or(false);
    let gen_of = |_: usize, index: u32| {
        if is_rewritten(index) {
            generation
        } else {
            block_gen.map_or(generation, |g| g[index as usize])
        }
    };
    encode_commit::<Crc>(fmt, uuid, generation, words, &indices, gen_of, &mut data);
    // Every block goes to the copies given (the "stale" ones, to the
    // format's commit order) and none to the others, which get only their
    // superblock again: the same bytes when they hold this generation,
    // as in the kernel's repair commit; the rewritten blocks go to all.
    let dirty: Vec<bool> = indices.iter().map(|&i| is_rewritten(i)).collect();
    let blocks = CommitBlocks {
        indices: &indices,
        dirty: &dirty,
        data: &mut data,
        stale: copies,
    };
    let outcome = write_commit::<Crc, _>(fmt, blocks, &mut area, nix::libc::EIO);
    if let Some(e) = outcome.error {
        bail!(
            "writing the metadata failed: {}",
            std::io::Error::from_raw_os_error(e)
        );
    }
    Ok(outcome)
}

/// One remap of a data block to a spare block.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Remap {
    /// The data block, in remap blocks from the data area's start.
    pub block: u64,
    /// The spare block, in remap blocks from the spare area's start.
    pub spare: u32,
    /// The data was unreadable when the block was remapped.
    pub lost: bool,
}

/// The remap table an image holds.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Table {
    /// The remaps, by spare block.
    pub remaps: Vec<Remap>,
    /// Spare blocks retired after a failed write.
    pub retired: Vec<u32>,
    /// Data blocks that are unreadable and not yet rewritten.
    pub pending: Vec<u64>,
    /// Pending data blocks whose spare failed every read: their data is
    /// lost.
    pub pending_lost: Vec<u64>,
}

impl Table {
    /// The table of the image words of `fmt`.
    pub fn of_words(fmt: &Format, words: &[u64]) -> Self {
        let mut t = Table::default();
        for spare in 0..fmt.nr_spare {
            match Slot::decode(words[spare as usize]) {
                Some(Slot::InUse { block, lost }) => t.remaps.push(Remap { block, spare, lost }),
                Some(Slot::Retired) => t.retired.push(spare),
                _ => {}
            }
        }
        let base = fmt.pending_base();
        for i in 0..fmt.pending_slots() as usize {
            match Slot::decode_pending(words[base + i]) {
                Some(Some(p)) if p.lost => t.pending_lost.push(p.block),
                Some(Some(p)) => t.pending.push(p.block),
                _ => {}
            }
        }
        t
    }

    /// The image words of this table for `fmt`, after checking it as the
    /// kernel's load does (`strict`: also that no data block is listed
    /// twice, which the kernel refuses at load).
    pub fn to_words(&self, fmt: &Format, strict: bool) -> Result<Vec<u64>> {
        let mut words = vec![0u64; fmt.words()];
        let data_blocks = fmt.identity.data_len / u64::from(fmt.identity.block_size / 512);
        let mut seen = std::collections::HashSet::new();
        let mut take_block = |block: u64| -> Result<()> {
            if block >= data_blocks || block > Slot::MAX_BLOCK {
                bail!("data block {block} is beyond the data area ({data_blocks} blocks)");
            }
            if strict && !seen.insert(block) {
                bail!("data block {block} is listed twice");
            }
            Ok(())
        };
        let set_spare = |spare: u32, slot: Slot, words: &mut Vec<u64>| -> Result<()> {
            if spare >= fmt.nr_spare {
                bail!(
                    "spare block {spare} is beyond the spare area ({} blocks)",
                    fmt.nr_spare
                );
            }
            if fmt.layout.is_reserved(spare) {
                bail!("spare block {spare} holds a metadata copy");
            }
            if words[spare as usize] != 0 {
                bail!("spare block {spare} is listed twice");
            }
            words[spare as usize] = slot.encode();
            Ok(())
        };
        for r in &self.remaps {
            take_block(r.block)?;
            let slot = Slot::InUse {
                block: r.block,
                lost: r.lost,
            };
            set_spare(r.spare, slot, &mut words)?;
        }
        for &s in &self.retired {
            set_spare(s, Slot::Retired, &mut words)?;
        }
        let pending = self.pending.len() + self.pending_lost.len();
        if pending > fmt.pending_slots() as usize {
            bail!(
                "{pending} pending blocks: the metadata holds at most {}",
                fmt.pending_slots()
            );
        }
        let base = fmt.pending_base();
        let all = self
            .pending
            .iter()
            .map(|&b| (b, false))
            .chain(self.pending_lost.iter().map(|&b| (b, true)));
        for (i, (block, lost)) in all.enumerate() {
            take_block(block)?;
            words[base + i] = Slot::encode_pending(Some(Pending { block, lost }));
        }
        Ok(words)
    }
}
