// SPDX-License-Identifier: GPL-2.0

//! The I/O path: `map` looks each bio up and sends it where its block
//! lives; `end_io` leaves the bio's read section and keeps failed bios
//! for the worker.

use crate::breakage::{broken, Breakage};
use crate::entry::Entry;
use crate::kapi::dm::{BioOp, EndIoResult, MapResult};
use crate::kapi::srcu::ReadIndex;
use crate::per_bio::Tag;
use crate::worker::remappable;
use crate::{stat, Bio, RemapTarget, TargetInfo};
use core::sync::atomic::Ordering::Relaxed;
use kernel::prelude::*;

impl RemapTarget {
    /// Sends a bio that starts at target offset `offset`, in remapped
    /// `block`, to that block's spare block `to`.
    #[inline(always)]
    pub(super) fn send_to_spare(
        &self,
        bio: &mut Bio<'_>,
        op: BioOp,
        offset: u64,
        block: u64,
        to: u32,
    ) {
        let within = offset - (block << self.block_shift);
        bio.remap(&self.spare, self.spare_sector(to) + within);
        self.stats.inc(match op {
            BioOp::Read => stat::REMAPPED_READS,
            BioOp::Write => stat::REMAPPED_WRITES,
            _ => stat::REMAPPED_OTHER,
        });
    }

    /// Counts a mapped bio and records, for `end_io` and the worker, its
    /// read section, what it was, where it starts in the target (`offset`)
    /// and where its data is. `op` is `bio.op()`, decoded once per bio by
    /// the caller; `flags` are more tags.
    #[inline(always)]
    pub(super) fn account(
        &self,
        bio: &mut Bio<'_>,
        op: BioOp,
        idx: ReadIndex,
        offset: u64,
        flags: Tag,
    ) {
        let (kind, counter) = match op {
            BioOp::Read => (Tag::READ, stat::READS),
            BioOp::Write => (Tag::WRITE, stat::WRITES),
            _ => (Tag::NONE, stat::OTHER_BIOS),
        };
        self.stats.inc(counter);
        record(bio, kind | flags, offset, Some(idx));
    }

    /// Keeps the first `sectors` of a bio in `map`, counting the split.
    #[inline(always)]
    pub(super) fn cut(&self, bio: &mut Bio<'_>, sectors: u64) {
        if bio.accept_partial(sectors as u32) {
            self.stats.inc(stat::SPLITS);
        }
    }

    /// `map`: the path of a bio whose blocks are all unremapped, the
    /// common case, kept short; flushes and bios that meet a table entry
    /// go out of line.
    #[inline(always)]
    pub(super) fn map_bio<'a>(&self, ti: &TargetInfo<'_>, mut bio: Bio<'a>) -> MapResult<'a> {
        let op = bio.op();
        if op == BioOp::Flush {
            return self.map_flush(bio, op);
        }
        let offset = ti.target_offset(bio.sector());
        // The read section starts before the lookup: a switch that starts
        // later waits for this bio.
        let idx = self.in_flight.down_read();
        // A bio lies inside the target (at most 2^32 sectors from an
        // offset below its length), and `block_shift` is below 64 (a block
        // is at most 64 KiB): no overflow.
        let shift = self.block_shift;
        let first = offset.wrapping_shr(shift);
        let last = offset
            .wrapping_add(u64::from(bio.sectors()).max(1) - 1)
            .wrapping_shr(shift);
        let found = if first == last {
            // One block (most bios of a 4 KiB-block target): its region's
            // bit, and a probe only if the region holds entries.
            self.table.get(first).map(|value| (first, value))
        } else if self.table.surely_clean(first, last) {
            None
        } else {
            self.table
                .first_remapped(first, last.wrapping_sub(first).wrapping_add(1))
        };
        match found {
            None => {
                // `data_offset + offset` lies inside the data device
                // (checked by the constructor): no overflow.
                bio.remap(&self.data, self.data_offset.wrapping_add(offset));
                self.account(&mut bio, op, idx, offset, Tag::NONE);
                bio.remapped()
            }
            Some(found) => self.map_at_entry(ti, bio, op, offset, idx, found),
        }
    }

    /// `map` of an empty flush: to the data device, or, for the second
    /// flush of a two-device table, to the spare device.
    #[inline(never)]
    fn map_flush<'a>(&self, mut bio: Bio<'a>, op: BioOp) -> MapResult<'a> {
        let idx = self.in_flight.down_read();
        if bio.target_bio_nr() == 1 && !broken(Breakage::FlushDataOnly) {
            bio.remap(&self.spare, self.spare_offset);
        } else {
            bio.remap(&self.data, self.data_offset);
        }
        self.account(&mut bio, op, idx, 0, Tag::NONE);
        bio.remapped()
    }

    /// `map` of a bio whose blocks hold a table entry: `found` is the first
    /// such block and its entry, looked up in read section `idx`.
    #[inline(never)]
    fn map_at_entry<'a>(
        &self,
        ti: &TargetInfo<'_>,
        mut bio: Bio<'a>,
        op: BioOp,
        offset: u64,
        mut idx: ReadIndex,
        mut found: (u64, u32),
    ) -> MapResult<'a> {
        let shift = self.block_shift;
        let first = offset >> shift;
        // The last block the bio covers, as it is now (it may be cut).
        let last = |bio: &Bio<'_>| (offset + u64::from(bio.sectors()).max(1) - 1) >> shift;
        loop {
            let mut flags = Tag::NONE;
            match found {
                (block, value) if block == first => {
                    if last(&bio) > block {
                        self.cut(&mut bio, ((block + 1) << shift) - offset);
                    }
                    match Entry::decode(value) {
                        e if e.data_lost()
                            && (matches!(
                                op,
                                BioOp::Read | BioOp::WriteZeroes | BioOp::SecureErase
                            ) || (op == BioOp::Write && !self.writable)) =>
                        {
                            // Its data is lost (unreadable when it was
                            // remapped, or its spare failed every read):
                            // neither the zero-filled spare nor the data
                            // block holds it. Reads fail. Zeroes written
                            // where it maps would leave it lost for every
                            // load, so they fail too: only a write, which
                            // the worker relocates, makes it readable, and
                            // a read-only table (which the block layer
                            // lets writes reach) never relocates.
                            self.in_flight.up_read(idx);
                            self.stats.inc(stat::FAILED_BIOS);
                            record(&mut bio, Tag::ENDED, offset, None);
                            return bio.kill();
                        }
                        Entry::Remapped(s) if s.lost && op == BioOp::Write => {
                            // Relocated by the worker to a spare recorded
                            // as holding data, as a pending block's write
                            // (with `no_auto_remap` too: no other write
                            // ever makes the block readable again).
                            self.in_flight.up_read(idx);
                            return self.take_pending_write(ti, bio, offset);
                        }
                        Entry::Remapped(s) => {
                            self.send_to_spare(&mut bio, op, offset, block, s.block)
                        }
                        Entry::Pending { lost, .. } => {
                            if op == BioOp::Write && (self.auto_remap || lost) {
                                // Relocated by the worker, outside any read
                                // section: it switches the block.
                                self.in_flight.up_read(idx);
                                return self.take_pending_write(ti, bio, offset);
                            }
                            if op == BioOp::Read && self.auto_remap {
                                flags = Tag::PENDING_READ;
                            }
                            bio.remap(&self.data, self.data_offset + offset);
                        }
                        Entry::Switching { .. } if broken(Breakage::NoHold) => {
                            bio.remap(&self.data, self.data_offset + offset);
                        }
                        Entry::Switching { .. } => {
                            // Out of the read section: the switch waits for
                            // those.
                            self.in_flight.up_read(idx);
                            match self.hold.defer(bio, || self.switching(block)) {
                                Ok(result) => {
                                    self.stats.inc(stat::DEFERRED);
                                    return result;
                                }
                                // The switch ended meanwhile: look up again.
                                Err(back) => {
                                    bio = back;
                                    idx = self.in_flight.down_read();
                                    match self.table.first_remapped(first, last(&bio) - first + 1) {
                                        Some(again) => {
                                            found = again;
                                            continue;
                                        }
                                        None => {
                                            bio.remap(&self.data, self.data_offset + offset);
                                        }
                                    }
                                }
                            }
                        }
                        Entry::Fenced { at, .. } => {
                            if op != BioOp::Read {
                                // A later load may map the block elsewhere:
                                // nothing is written to it.
                                self.in_flight.up_read(idx);
                                self.stats.inc(stat::FENCED_BIOS);
                                // `end_io` sees it, if a hold ends it.
                                record(&mut bio, Tag::ENDED, offset, None);
                                return bio.kill();
                            }
                            match at {
                                Some(s) => self.send_to_spare(&mut bio, op, offset, block, s),
                                None => bio.remap(&self.data, self.data_offset + offset),
                            }
                        }
                    }
                }
                (block, _) => {
                    self.cut(&mut bio, (block << shift) - offset);
                    bio.remap(&self.data, self.data_offset + offset);
                }
            }
            self.account(&mut bio, op, idx, offset, flags);
            return bio.remapped();
        }
    }

    /// `end_io`: leaves the bio's read section; a bio that succeeded, on
    /// a device that has not been seen down, is done, and the rest goes
    /// out of line.
    #[inline(always)]
    pub(super) fn end_io_bio(
        &self,
        _ti: &TargetInfo<'_>,
        bio: &mut Bio<'_>,
        status: &mut u8,
    ) -> EndIoResult {
        let data = bio.per_bio_data();
        let tag = data.tag;
        if tag.contains(Tag::ENDED) {
            return EndIoResult::Done;
        }
        if let Some(idx) = data.section.take() {
            // Done with its mapping: a switch need not wait for it, even
            // while the worker keeps it.
            self.in_flight.up_read(idx);
        }
        if *status == 0 && !tag.contains(Tag::PENDING_READ) && !self.data_down.load(Relaxed) {
            return EndIoResult::Done;
        }
        self.end_io_other(bio, status, tag)
    }

    /// `end_io` of a bio that failed, a read of a pending block, or a bio
    /// that completed while the data device was marked down.
    #[inline(never)]
    fn end_io_other(&self, bio: &mut Bio<'_>, status: &mut u8, tag: Tag) -> EndIoResult {
        let kind = tag.only(Tag::READ | Tag::WRITE);
        if *status == 0
            && self.data_down.load(Relaxed)
            && bio.is_on(&self.data)
            && self.data_down.swap(false, Relaxed)
        {
            pr_info!("remap: the data device answers again\n");
        }
        if *status != 0 {
            self.stats.inc(match kind {
                Tag::READ => stat::READ_ERRORS,
                Tag::WRITE => stat::WRITE_ERRORS,
                _ => stat::OTHER_ERRORS,
            });
            let worth_it = self.auto_remap
                && kind != Tag::NONE
                && remappable(*status)
                && !(kind == Tag::READ && bio.is_readahead());
            if worth_it {
                if let Some(kept) = bio.keep() {
                    return EndIoResult::Incomplete(kept);
                }
            }
        } else if tag.contains(Tag::PENDING_READ) {
            // Read after all: the worker clears the pending state first.
            if let Some(kept) = bio.keep() {
                return EndIoResult::Incomplete(kept);
            }
        }
        EndIoResult::Done
    }
}

/// Records, for `end_io` and the worker, what a bio was, where it starts in
/// the target, its read section, and where its data is.
#[inline(always)]
fn record(bio: &mut Bio<'_>, tag: Tag, offset: u64, section: Option<ReadIndex>) {
    let data = bio.per_bio_data();
    data.tag = tag;
    data.offset = offset;
    data.section = section;
    bio.record_position();
}

impl RemapTarget {
    /// `map` of a write the worker relocates (a pending block's, or a lost
    /// block's), outside any read section: it switches the block.
    #[inline(never)]
    fn take_pending_write<'a>(
        &self,
        ti: &TargetInfo<'_>,
        mut bio: Bio<'a>,
        offset: u64,
    ) -> MapResult<'a> {
        self.stats.inc(stat::WRITES);
        record(&mut bio, Tag::WRITE | Tag::PENDING_WRITE, offset, None);
        match ti.kept() {
            Some(kept) => kept.take_from_map(bio),
            None => bio.kill(),
        }
    }
}
