// SPDX-License-Identifier: GPL-2.0

//! The error worker: retries kept bios block by block, relocates blocks
//! whose writes fail again, marks unreadable blocks pending, and commits
//! each group at once.

use crate::breakage::{broken, Breakage};
use crate::entry::{Entry, Spare};
use crate::kapi::dm::{self, DmDev, Msecs, Op, TimedIo};
use crate::kapi::sched::NoIoScope;
use crate::kapi::warn::warn_on;
use crate::metadata::{CommitError, Pending, Slot};
use crate::per_bio::Tag;
use crate::switch::{Switch, Switched};
use crate::timed_read::{AnyRead, ReadLimits, ReadOutcome, HALT_POLL_MS};
use crate::weak::WeakCheck;
use crate::{relocation, stat, Admin, KeptBio, RemapTarget, TargetInfo};
use core::sync::atomic::Ordering::Relaxed;
use kernel::prelude::*;
use kernel::time::{Instant, Monotonic};
use relocation::{OldMapping, RelocState, Relocation};

/// Relocations the worker gathers before it commits them together.
const GROUP_MAX: usize = 128;

/// Blocks of the data area that a group with errors reads, spread from the
/// first to the last, to tell a dead data device from bad blocks.
const DEVICE_PROBES: u64 = 8;

/// How long a retry of a failed read may take, in ms: a read that the
/// disk does not answer within it counts as failed. The foreground read
/// already had the whole error handling of the layers below (the SCSI
/// layer's timeout and retries); its retries are sent `failfast`, so a
/// hanging disk costs one command timeout per retry at most, and this
/// bounds even that. Neither can relocate a block: a read that fails only
/// marks its block pending, its data left in place, and the next read
/// that works clears it (see docs/dm-remap.rst).
pub(super) const RETRY_LIMIT_MS: u32 = 5_000;

/// Blocks whose retries a batch sends at once, at most (the module runs
/// 128 timed reads in all).
const RETRY_CHUNK: usize = 32;

/// Blocks read slowly by a group's retries that are checked for weak
/// sectors after it, at most.
const WEAK_CHECKS_PER_GROUP: usize = 4;

/// The most bytes of blocks whose failed reads a batch retries at once
/// (the rest are retried one by one, each within [`RETRY_LIMIT_MS`]).
const BATCH_RETRY_BYTES: usize = 1 << 20;

/// How long the data device's probe reads may take in all, in ms: they
/// are sent at once; a device that answers none of them in this time is
/// not known dead (a busy disk is slow too), and the group goes on.
pub(super) const PROBE_LIMIT_MS: u32 = 5_000;

/// Whether an I/O error may go away on another block: a medium or device
/// error. Others (not supported, would block, no space, reservation
/// conflicts, ...) say nothing about the block and pass through.
pub(super) fn remappable(status: u8) -> bool {
    matches!(
        u32::from(status),
        dm::bindings::dmr_status_DMR_STS_IOERR
            | dm::bindings::dmr_status_DMR_STS_MEDIUM
            | dm::bindings::dmr_status_DMR_STS_PROTECTION
    )
}

/// A kept bio, the status it ends with if its data cannot be saved, and
/// whether that is already known.
struct GroupBio {
    bio: KeptBio,
    error: u8,
    failed: bool,
}

/// What a probe of the data device found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Probe {
    /// A read worked.
    Up,
    /// Every read failed: the device is down.
    Down,
    /// None answered in time, or none could be sent: not known.
    Unknown,
    /// Told to halt first.
    Halted,
}

/// The batch's retry of one block of a failed read: sent with the retries
/// of every other block of the batch at once, so that one block that does
/// not answer delays the others by one [`RETRY_LIMIT_MS`] at most, not by
/// its own wait each.
struct RetryAnswer {
    /// The bio's place in the batch, and the block's in the bio.
    bio: usize,
    index: u32,
    block: u64,
    /// `None` while not tried (or a message switches the block, or there
    /// was no memory): the block's own retry does it then.
    outcome: Option<ReadOutcome>,
    /// The block's data once read.
    data: KVec<u8>,
}

impl RetryAnswer {
    fn read(&self) -> bool {
        self.outcome.is_some_and(ReadOutcome::is_read)
    }
}

/// The answers of bio `bio` of the batch (they are in the batch's order).
fn answers_of(answers: &mut [RetryAnswer], bio: usize) -> &mut [RetryAnswer] {
    let start = answers
        .iter()
        .position(|a| a.bio == bio)
        .unwrap_or(answers.len());
    let len = answers
        .get(start..)
        .map_or(0, |rest| rest.iter().take_while(|a| a.bio == bio).count());
    answers.get_mut(start..start + len).unwrap_or(&mut [])
}

/// What the worker gathered from kept bios, committed together.
struct Group {
    bios: KVec<GroupBio>,
    relocations: KVec<Relocation>,
    /// Data blocks that could not be read, and pending blocks read after
    /// all.
    unreadable: KVec<u64>,
    readable: KVec<u64>,
    /// Pending slots taken and given back, with their blocks.
    pending_new: KVec<(u64, u32)>,
    pending_gone: KVec<(u64, u32)>,
    /// Spares that failed a write.
    retired: KVec<u32>,
    /// Data blocks whose retried read worked but was slow.
    slow: KVec<u64>,
}

impl Group {
    pub(super) fn new() -> Self {
        Self {
            bios: KVec::new(),
            relocations: KVec::new(),
            unreadable: KVec::new(),
            readable: KVec::new(),
            pending_new: KVec::new(),
            pending_gone: KVec::new(),
            retired: KVec::new(),
            slow: KVec::new(),
        }
    }
}

impl RemapTarget {
    fn is_pending(&self, block: u64) -> bool {
        matches!(self.entry(block), Some(e) if e.is_pending())
    }

    /// Where `block`, whose entry is `entry`, keeps its data: its spare if
    /// it is remapped (or fenced at one), else its data block.
    fn place(&self, block: u64, entry: Option<Entry>) -> (&DmDev, u64) {
        match entry {
            Some(Entry::Remapped(Spare { block: spare, .. }))
            | Some(Entry::Fenced {
                at: Some(spare), ..
            }) => (&*self.spare, self.spare_sector(spare)),
            _ => (&self.data, self.data_sector(block)),
        }
    }

    /// Reads or writes `block` where it maps now, synchronously, waiting
    /// while a message switches it. Inside a read section: a switch that
    /// starts meanwhile copies the block after this write. Also returns the
    /// entry the I/O went by. A block whose data is lost fails without
    /// I/O: a read would return what is not its data, and a write in
    /// place would leave it lost for every load (it must relocate).
    fn retry_io(&self, block: u64, buf: &mut KVec<u8>, write: bool) -> (Result, Option<Entry>) {
        loop {
            let idx = self.in_flight.down_read();
            let entry = self.entry(block);
            let result = match entry {
                Some(Entry::Switching { .. }) => {
                    // Out of the read section: the switch waits for those.
                    self.in_flight.up_read(idx);
                    self.wait_switch(block);
                    continue;
                }
                Some(e) if e.data_lost() => Err(EIO),
                Some(Entry::Fenced { .. }) if write => Err(EIO),
                entry => {
                    let (dev, sector) = self.place(block, entry);
                    dev.rw_sync(sector, buf, write)
                }
            };
            self.in_flight.up_read(idx);
            return (result, entry);
        }
    }

    /// Reads `block` where it maps now, as [`Self::retry_io`] does, within
    /// [`RETRY_LIMIT_MS`] and `failfast`: a retry of a failed read.
    fn retry_read(&self, block: u64, buf: &mut KVec<u8>) -> ReadOutcome {
        // A suspend waits for the kept bios: they fail at once then.
        let halt = || self.suspending();
        let limits = ReadLimits {
            failfast: true,
            limit_ms: Some(RETRY_LIMIT_MS),
            halt: &halt,
        };
        loop {
            let idx = self.in_flight.down_read();
            let outcome = match self.entry(block) {
                Some(Entry::Switching { .. }) => {
                    // Out of the read section: the switch waits for those.
                    self.in_flight.up_read(idx);
                    self.wait_switch(block);
                    continue;
                }
                Some(e) if e.data_lost() => ReadOutcome::Failed,
                entry => {
                    let (dev, sector) = self.place(block, entry);
                    self.read_timed(dev, sector, buf, &limits)
                }
            };
            self.in_flight.up_read(idx);
            return outcome;
        }
    }

    /// Retries a kept bio block by block: writes that fail again, and
    /// writes to pending blocks, become relocations of the group; reads
    /// that fail every retry make their blocks pending.
    fn handle_kept(&self, group: &mut Group, mut bio: KeptBio, answers: &mut [RetryAnswer]) {
        let status = bio.status();
        let bytes = bio.bytes();
        let data = bio.data();
        let (tag, offset) = (data.tag, data.offset);
        data.tag.insert(Tag::ENDED);
        let error = if status != 0 {
            status
        } else {
            dm::bindings::dmr_status_DMR_STS_IOERR as u8
        };
        let whole_blocks =
            offset & ((1 << self.block_shift) - 1) == 0 && bytes & (self.block_size - 1) == 0;
        if !whole_blocks || group.bios.reserve(1, GFP_KERNEL).is_err() {
            // io_hints makes every bio whole blocks; memory is short.
            self.stats.inc(stat::FAILED_BIOS);
            bio.end(error);
            return;
        }
        let first = offset >> self.block_shift;
        let count = bytes / self.block_size;
        let index = group.bios.len();
        let failed = if tag.contains(Tag::WRITE) {
            self.gather_write(group, &mut bio, index, first, count, tag)
        } else if status == 0 {
            self.gather_readable(group, first, count);
            false
        } else {
            self.gather_read(group, &mut bio, first, count, answers)
        };
        let relocating = group.relocations.iter().any(|r| r.bio == index);
        if status != 0 && !failed && !relocating {
            // Every block worked when tried again.
            self.stats.inc(stat::TRANSIENT_ERRORS);
        }
        // Room was reserved above: a failure would be a bookkeeping error
        // (and the bio would never end), warned about.
        warn_on(
            group
                .bios
                .push_within_capacity(GroupBio { bio, error, failed })
                .is_err(),
        );
    }

    /// Gathers a failed write (or a write to a pending block), block by
    /// block: each block whose write fails again, or that is pending,
    /// becomes a relocation of the group. Returns whether the bio fails
    /// already.
    fn gather_write(
        &self,
        group: &mut Group,
        bio: &mut KeptBio,
        index: usize,
        first: u64,
        count: u32,
        tag: Tag,
    ) -> bool {
        for i in 0..count {
            let block = first + u64::from(i);
            let Ok(mut buf) = self.block_buffer() else {
                return true;
            };
            bio.copy(i * self.block_size, &mut buf, false);
            // A write to a pending block is relocated unless an earlier
            // one already did. Once metadata failed, nothing is
            // relocated: the pending block is written in place, where
            // every load maps it (a pending block is not remapped).
            let meta_failed = self.meta.lock().failed();
            if meta_failed && self.entry(block).is_some_and(Entry::data_lost) {
                // Written without a commit, a later load would still
                // find the block lost (reads failing): the write fails
                // instead.
                return true;
            }
            let retry = !tag.contains(Tag::PENDING_WRITE) || !self.is_pending(block) || meta_failed;
            let seen = if retry {
                match self.retry_io(block, &mut buf, true) {
                    (Ok(()), _) => continue,
                    (Err(_), entry) => entry,
                }
            } else {
                self.entry(block)
            };
            let relocation = Relocation {
                block,
                data: buf,
                bio: index,
                seen,
                state: RelocState::Gathered,
            };
            // A later write of the same block in the group takes over
            // from an earlier one, its data being newer: decided here.
            if relocation::add(&mut group.relocations, relocation).is_err() {
                return true;
            }
        }
        false
    }

    /// Notes the pending blocks a read read after all (`PENDING_READ`).
    /// Without the memory to note it, a block stays pending: a later read
    /// or write clears it.
    fn gather_readable(&self, group: &mut Group, first: u64, count: u32) {
        for block in first..first + u64::from(count) {
            // Not a block made lost since the read was mapped (a
            // scrub): the data block it read is not its data.
            let readable = matches!(self.entry(block), Some(Entry::Pending { lost: false, .. }));
            if readable && !group.readable.contains(&block) {
                if group.readable.push(block, GFP_KERNEL).is_err() {
                    kernel::pr_warn_once!(
                        "remap: out of memory: a pending block that reads again stays pending\n"
                    );
                }
            }
        }
    }

    /// Retries a failed read block by block (with the batch's answers,
    /// else one by one); each block that fails every retry fails the bio,
    /// and a data block among them becomes pending. Returns whether the
    /// bio fails.
    fn gather_read(
        &self,
        group: &mut Group,
        bio: &mut KeptBio,
        first: u64,
        count: u32,
        answers: &mut [RetryAnswer],
    ) -> bool {
        let mut failed = false;
        for i in 0..count {
            let block = first + u64::from(i);
            let answered = answers
                .iter_mut()
                .find(|a| a.index == i)
                .and_then(|a| a.outcome.map(|o| (o, &mut a.data)));
            let mut own;
            let (outcome, buf) = match answered {
                Some((outcome, data)) => (outcome, data),
                None => {
                    let Ok(b) = self.block_buffer() else {
                        failed = true;
                        break;
                    };
                    own = b;
                    let mut outcome = ReadOutcome::Failed;
                    for _ in 0..self.read_retries {
                        outcome = self.retry_read(block, &mut own);
                        if outcome.is_read() {
                            break;
                        }
                    }
                    (outcome, &mut own)
                }
            };
            if let ReadOutcome::Read { took_ms } = outcome {
                bio.copy(i * self.block_size, buf, true);
                // Read after a failure, and slowly: checked once the group
                // is done, and moved with its data if it is weak.
                if self.is_slow(took_ms) && !group.slow.contains(&block) {
                    if group.slow.push(block, GFP_KERNEL).is_err() {
                        kernel::pr_warn_once!(
                            "remap: out of memory: a block read slowly is not checked\n"
                        );
                    }
                }
                continue;
            }
            failed = true;
            if matches!(
                outcome,
                ReadOutcome::NotSent | ReadOutcome::NoAnswer | ReadOutcome::Halted
            ) {
                // Not tried (no memory, or too many reads of a hanging
                // disk running), or no answer in time (it may wait behind
                // another sector's recovery in the drive): only an error
                // says the block cannot be read.
                continue;
            }
            // Only a data block becomes pending: a spare that fails a
            // read keeps its remap (see docs/dm-remap.rst). Without the memory to
            // note it, the block is not marked pending: the bio fails
            // all the same, and the next failed read notes it again.
            if self.table.get(block).is_none() && !broken(Breakage::NoPending) {
                if group.unreadable.push(block, GFP_KERNEL).is_err() {
                    kernel::pr_warn_once!(
                        "remap: out of memory: an unreadable block is not marked pending\n"
                    );
                }
            }
        }
        failed
    }

    /// The retries of the batch's failed reads, block by block, up to
    /// [`BATCH_RETRY_BYTES`]: `read_retries` rounds, each sending the
    /// reads of the blocks not read yet at once and waiting
    /// [`RETRY_LIMIT_MS`] at most in all.
    fn retry_reads(&self, bios: &mut [KeptBio]) -> KVec<RetryAnswer> {
        let mut answers = KVec::new();
        // Shifts, not divisions: a block is 2^(block_shift + 9) bytes.
        let byte_shift = self.block_shift + 9;
        let most = (BATCH_RETRY_BYTES >> byte_shift).max(1);
        'bios: for (k, bio) in bios.iter_mut().enumerate() {
            let (status, bytes) = (bio.status(), bio.bytes());
            let data = bio.data();
            let (tag, offset) = (data.tag, data.offset);
            let whole_blocks =
                offset & ((1 << self.block_shift) - 1) == 0 && bytes & (self.block_size - 1) == 0;
            if status == 0 || !tag.contains(Tag::READ) || !whole_blocks {
                continue;
            }
            let first = offset >> self.block_shift;
            for index in 0..bytes >> byte_shift {
                let answer = RetryAnswer {
                    bio: k,
                    index,
                    block: first + u64::from(index),
                    outcome: None,
                    data: KVec::new(),
                };
                // Those left out are retried one by one.
                if answers.len() == most || answers.push(answer, GFP_KERNEL).is_err() {
                    break 'bios;
                }
            }
        }
        for _ in 0..self.read_retries {
            // A chunk at a time: the module runs a bounded number of timed
            // reads, for every device.
            let mut again = false;
            for chunk in answers.chunks_mut(RETRY_CHUNK) {
                again |= self.retry_round(chunk);
            }
            if !again || self.suspending() {
                break;
            }
        }
        answers
    }

    /// Sends a read of every block of `answers` not read yet, where it maps
    /// now, all at once (`failfast`), and waits [`RETRY_LIMIT_MS`] at most
    /// in all; a read that did not answer by then is given up on. Returns
    /// whether a block is left to try again.
    fn retry_round(&self, answers: &mut [RetryAnswer]) -> bool {
        let started = Instant::<Monotonic>::now();
        // A switch that starts meanwhile waits for these reads.
        let idx = self.in_flight.down_read();
        let mut sent = KVec::new();
        for (j, a) in answers.iter_mut().enumerate() {
            if a.read() {
                continue;
            }
            let (dev, sector) = match self.entry(a.block) {
                // Left to the block's own retry, which waits for the
                // switch.
                Some(Entry::Switching { .. }) => {
                    a.outcome = None;
                    continue;
                }
                Some(e) if e.data_lost() => {
                    a.outcome = Some(ReadOutcome::Failed);
                    continue;
                }
                entry => self.place(a.block, entry),
            };
            let io = TimedIo::new(
                dev,
                sector,
                self.block_size as usize,
                Op::Read { failfast: true },
            )
            .and_then(TimedIo::submit);
            // Not sent, or not kept (no memory; given up on): what an
            // earlier round found stays, else the block's own retry tries.
            if let Ok(io) = io {
                // Not kept: dropped, given up on.
                let _kept = sent.push((j, io), GFP_KERNEL);
            }
        }
        let bounded = !broken(Breakage::ReadsUnbounded);
        for (j, io) in sent.iter_mut() {
            let a = &mut answers[*j];
            a.outcome = loop {
                let waited = started.elapsed().as_millis() as u64;
                let left = if bounded {
                    u64::from(RETRY_LIMIT_MS).saturating_sub(waited) as u32
                } else {
                    u32::MAX
                };
                match io.wait(Msecs(left.min(HALT_POLL_MS))) {
                    Some(Ok(())) => {
                        break match (self.block_buffer(), io.data()) {
                            (Ok(mut buf), Some(data)) => {
                                buf.copy_from_slice(data);
                                a.data = buf;
                                Some(ReadOutcome::Read {
                                    took_ms: io.took_ms().unwrap_or(0),
                                })
                            }
                            // No memory to keep it: the block's own retry.
                            _ => None,
                        };
                    }
                    Some(Err(_)) => break Some(ReadOutcome::Failed),
                    None if left <= HALT_POLL_MS => break Some(ReadOutcome::NoAnswer),
                    // A suspend waits for the kept bios: they fail now.
                    None if self.suspending() => break Some(ReadOutcome::Halted),
                    None => {}
                }
            };
        }
        drop(sent);
        self.in_flight.up_read(idx);
        answers.iter().any(|a| a.outcome.is_some() && !a.read())
    }

    /// Tells a data device that fails everything (unplugged, a controller
    /// reset) from one with bad blocks: when every probe read of blocks
    /// spread over the data area (outside the group, not in the table)
    /// fails too, or none answers in time, the group's errors pass
    /// through: its bios fail, nothing is relocated or marked pending, no
    /// spare is used. The state is shown in status until a probe works
    /// again. A group of the scrub's (no bio of its own) gives up when the
    /// scrub halts, and then marks nothing.
    fn check_data_device(&self, ti: &TargetInfo<'_>, group: &mut Group) {
        let scrub_only = group.bios.is_empty();
        let halt = || scrub_only && self.scrub_halted();
        let probe = self.data_device_down(
            ti,
            |block| {
                group.relocations.iter().any(|r| r.block == block)
                    || group.unreadable.contains(&block)
            },
            &halt,
        );
        let down = match probe {
            Probe::Up => false,
            Probe::Down => true,
            // Not known: as the device's state says.
            Probe::Unknown => self.data_down.load(Relaxed),
            // A scrub's group, halted: nothing is marked.
            Probe::Halted => true,
        };
        if down {
            for r in group.relocations.drain_all() {
                group.bios[r.bio].failed = true;
            }
            group.unreadable.clear();
            if probe == Probe::Down {
                self.stats.inc(stat::DEVICE_DOWN_GROUPS);
            }
        }
    }

    /// Probes the data device: reads of data blocks spread over the data
    /// area (but those `failing`, and those in the table), sent at once.
    /// Down when every one fails; unknown when none answers within
    /// [`PROBE_LIMIT_MS`] or none could be sent; halted if `halt` said to
    /// give up first. Records up or down for status and says in the kernel
    /// log when it changes.
    pub(super) fn data_device_down(
        &self,
        ti: &TargetInfo<'_>,
        failing: impl Fn(u64) -> bool,
        halt: &dyn Fn() -> bool,
    ) -> Probe {
        if broken(Breakage::ProbeSaysAlive) {
            return Probe::Up;
        }
        let n = self.nr_blocks(ti);
        let mut sectors = KVec::new();
        // Spread over 8 times as many places as probes, so that blocks in
        // the table or failing leave enough to probe.
        let places = DEVICE_PROBES * 8;
        for k in 0..places {
            if sectors.len() as u64 == DEVICE_PROBES {
                break;
            }
            let block = (n - 1) * ((k * 7) % places) / (places - 1);
            if failing(block)
                || self.table.get(block).is_some()
                || sectors.contains(&self.data_sector(block))
            {
                continue;
            }
            if sectors.push(self.data_sector(block), GFP_KERNEL).is_err() {
                break;
            }
        }
        if sectors.is_empty() {
            return Probe::Unknown;
        }
        let down = match self.any_reads(&self.data, &sectors, PROBE_LIMIT_MS, halt) {
            AnyRead::Answered => {
                self.probe_unanswered.store(false, Relaxed);
                false
            }
            AnyRead::NoneWorked => {
                self.probe_unanswered.store(false, Relaxed);
                true
            }
            // Slow or hanging, but not known dead (a busy disk answers
            // slowly too): the group goes on as the state says.
            AnyRead::NoAnswer => {
                // Said once until a probe gets an answer again.
                if !self.probe_unanswered.swap(true, Relaxed) {
                    pr_warn!(
                        "remap: the data device answered none of {} probe reads in {} ms: not taken as down\n",
                        sectors.len(),
                        PROBE_LIMIT_MS
                    );
                }
                return Probe::Unknown;
            }
            AnyRead::NotSent => return Probe::Unknown,
            AnyRead::Halted => return Probe::Halted,
        };
        if down != self.data_down.swap(down, Relaxed) {
            if down {
                pr_err!("remap: the data device fails every probe read: it is down, not growing bad blocks; errors pass through and no spare is used until it answers again\n");
                ti.raise_event();
            } else {
                pr_info!("remap: the data device answers again\n");
            }
        }
        if down {
            Probe::Down
        } else {
            Probe::Up
        }
    }

    /// Takes a spare for relocation `r` and marks its block switching in
    /// `switch`, or finds that a message moved the block and writes it
    /// there; sets `r.state` to what came of it. Returns whether the spares
    /// ran out. A fenced block, or any block once metadata failed, is not
    /// relocated: its bio fails.
    fn claim_spare(&self, switch: &mut Switch<'_>, r: &mut Relocation) -> bool {
        r.state = RelocState::NotRelocated;
        loop {
            let mut guard = self.admin.lock();
            match self.entry(r.block) {
                Some(Entry::Switching { .. }) => {
                    // A message switches it: wait until it is done.
                    drop(guard);
                    self.wait_switch(r.block);
                    continue;
                }
                Some(Entry::Fenced { .. }) => return false,
                current if current != r.seen => {
                    // A message moved the block since the write failed:
                    // the new place did not fail it (a spare that did is
                    // retired only by a write that failed there).
                    drop(guard);
                    match self.retry_io(r.block, &mut r.data, true) {
                        (Ok(()), _) => {
                            r.state = RelocState::Rewritten;
                            return false;
                        }
                        (Err(_), entry) => r.seen = entry,
                    }
                    continue;
                }
                _ => {}
            }
            if self.meta.lock().failed() {
                return false;
            }
            let admin = &mut *guard;
            let (spare, allocated) = match (admin.spares.alloc(), self.entry(r.block)) {
                (Some(spare), _) => (spare, true),
                // No spare free, but the block's data is lost and its
                // spare holds only zeros: the write takes that spare
                // (else the block could never be written again).
                (None, Some(Entry::Remapped(s))) if s.lost => (s.block, false),
                (None, _) => return true,
            };
            let to = Spare {
                block: spare,
                lost: false,
            };
            match switch.mark(admin, r.block, Some(to), allocated) {
                Ok(switched) => r.state = RelocState::Claimed { switched },
                // Not marked: the bio fails.
                Err(_) if allocated => {
                    // Not the switch's, just allocated, so in use: the
                    // release cannot fail.
                    admin.spares.release_held(spare);
                }
                Err(_) => {}
            }
            return false;
        }
    }

    /// Writes a relocation's data to its spare; a spare that fails is
    /// retired and the next one tried. Returns whether the spares ran out.
    fn write_spare(
        &self,
        switch: &mut Switch<'_>,
        r: &mut Relocation,
        retired: &mut KVec<u32>,
    ) -> bool {
        let RelocState::Claimed { switched: i } = r.state else {
            return false;
        };
        let Some(mut spare) = switch.blocks()[i].to.map(|s| s.block) else {
            return false;
        };
        loop {
            if self
                .spare
                .rw_sync(self.spare_sector(spare), &mut r.data, true)
                .is_ok()
            {
                return false;
            }
            self.stats.inc(stat::SPARE_WRITE_ERRORS);
            let mut admin = self.admin.lock();
            let admin = &mut *admin;
            if !switch.blocks()[i].allocated() {
                // The lost block's own spare, taken because none was
                // free: the block keeps it, and its lost state (retiring
                // it would unmap the block, whose data block is stale);
                // no other spare to try.
                pr_warn!("remap: spare block {} failed a write\n", spare);
                switch.spare_failed(admin, i, false);
                return true;
            }
            pr_warn!("remap: spare block {} failed a write: retired\n", spare);
            // Without the memory to record the retirement, the spare is
            // not retired in memory either: it stays allocated (the image
            // records it in use only if the commit says so), and is
            // offered again after a reload, whose write to it retires it.
            let recorded = retired.push(spare, GFP_KERNEL).is_ok();
            switch.spare_failed(admin, i, recorded);
            let Some(next) = admin.spares.alloc() else {
                return true;
            };
            switch.retarget(admin, i, next);
            spare = next;
        }
    }

    /// Relocates the group's blocks, records its pending blocks, commits it
    /// all at once, switches the table and ends the group's bios: one
    /// function per phase, in this order.
    fn finish_group(&self, ti: &TargetInfo<'_>, group: &mut Group) {
        if !group.relocations.is_empty() || !group.unreadable.is_empty() {
            self.check_data_device(ti, group);
        }
        if broken(Breakage::NoRelocation) {
            for r in group.relocations.drain_all() {
                group.bios[r.bio].failed = true;
            }
        }
        let mut switch = Switch::new(self, ti);
        let mut ran_out = self.claim_spares(&mut switch, group);
        // Bios mapped to the old places have ended; then the data goes to
        // the spares.
        switch.wait_mapped();
        ran_out |= self.write_spares(&mut switch, group);
        self.take_pending_slots(group);
        let to_commit = switch.blocks().iter().any(Switched::switches)
            || !group.retired.is_empty()
            || !group.pending_new.is_empty()
            || !group.pending_gone.is_empty();
        let committed = !to_commit || self.commit_group(&mut switch, group).is_ok();
        // Pending blocks or retired spares alone: no switch ends to raise
        // the event that monitors wait for.
        let raise = to_commit && switch.blocks().is_empty();
        self.settle_pending(ti, group, committed, raise);
        self.report_exhaustion(ti, ran_out);
        settle_relocations(
            group,
            &switch,
            committed || broken(Breakage::AckBeforeCommit),
        );
        // The switch, or back to the old mapping; fenced if the commit may
        // be on disk. Then the held bios go on.
        switch.end(|admin, b| self.switched(admin, b));
        self.end_bios(group);
        let slow = core::mem::take(&mut group.slow);
        *group = Group::new();
        // Their bios have ended: a weak block's move waits for none of
        // them. A suspend, which waits for this worker, stops the checks;
        // a few per group at most (the scrub finds the others).
        for &block in slow.iter().take(WEAK_CHECKS_PER_GROUP) {
            if self.table.get(block).is_none()
                && self.check_weak(ti, block, &|| self.suspending()) == WeakCheck::Halted
            {
                break;
            }
        }
    }

    /// Claims a spare for each relocation still to be claimed (those taken
    /// over follow the one that took them over), marking its block
    /// switching: bios starting in it now wait on the hold. Returns
    /// whether the spares ran out.
    fn claim_spares(&self, switch: &mut Switch<'_>, group: &mut Group) -> bool {
        let mut ran_out = false;
        for r in group.relocations.iter_mut() {
            if r.state == RelocState::Gathered {
                ran_out |= self.claim_spare(switch, r);
            }
        }
        ran_out
    }

    /// Writes each claimed relocation's data to its spare. Returns whether
    /// the spares ran out.
    fn write_spares(&self, switch: &mut Switch<'_>, group: &mut Group) -> bool {
        let mut ran_out = false;
        for r in group.relocations.iter_mut() {
            ran_out |= self.write_spare(switch, r, &mut group.retired);
        }
        ran_out
    }

    /// Takes pending slots for the unreadable data blocks and enters them
    /// in the table now, so that no message remaps them meanwhile; notes
    /// the slots of pending blocks read after all.
    fn take_pending_slots(&self, group: &mut Group) {
        let mut admin = self.admin.lock();
        let admin = &mut *admin;
        for &block in group.unreadable.iter() {
            if self.table.get(block).is_some() || group.pending_new.iter().any(|&(b, _)| b == block)
            {
                continue;
            }
            // The slots this group takes are recorded in the image only by
            // its commit: look past them.
            let after = group.pending_new.last().map_or(0, |&(_, s)| s + 1);
            let Some(slot) = self.meta.lock().image().free_pending_slot(after) else {
                break;
            };
            let pending = Entry::Pending { slot, lost: false }.encode();
            if group.pending_new.reserve(1, GFP_KERNEL).is_err()
                || self
                    .table
                    .insert(&mut admin.writer, block, pending)
                    .is_err()
            {
                // Not marked pending: the read failed all the same.
                continue;
            }
            // Room was reserved above: a failure would be a bookkeeping error.
            warn_on(
                group
                    .pending_new
                    .push_within_capacity((block, slot))
                    .is_err(),
            );
        }
        // `readable` holds each block once.
        for &block in group.readable.iter() {
            if let Some(Entry::Pending { slot, lost: false }) = self.entry(block) {
                if group.pending_gone.push((block, slot), GFP_KERNEL).is_err() {
                    kernel::pr_warn_once!(
                        "remap: out of memory: a pending block that reads again stays pending\n"
                    );
                }
            }
        }
    }

    /// Commits the group: the switched blocks, the retired spares, the
    /// pending slots taken and given back.
    fn commit_group(&self, switch: &mut Switch<'_>, group: &Group) -> Result<(), CommitError> {
        switch.commit(|image, blocks| {
            for b in blocks.iter().filter(|b| b.switches()) {
                if let Some(to) = b.to {
                    relocation::record_switch(image, b.block, b.old, to);
                }
            }
            for &spare in group.retired.iter() {
                image.set_slot(spare, Slot::Retired);
            }
            for &(block, slot) in group.pending_new.iter() {
                image.set_pending(slot, Some(Pending { block, lost: false }));
            }
            for &(_, slot) in group.pending_gone.iter() {
                image.set_pending(slot, None);
            }
        })
    }

    /// Counts the pending blocks the commit recorded, and takes out of the
    /// table those it did not; raises a table event if `raise`.
    fn settle_pending(&self, ti: &TargetInfo<'_>, group: &Group, committed: bool, raise: bool) {
        let mut admin = self.admin.lock();
        let admin = &mut *admin;
        for &(block, _) in group.pending_new.iter() {
            if committed {
                admin.pending += 1;
                self.stats.inc(stat::PENDING_MARKED);
            } else {
                // A pending mark that a later load may find or not: either
                // way reads go to the data block.
                self.remove_entry(admin, block);
            }
        }
        if committed {
            for &(block, _) in group.pending_gone.iter() {
                self.remove_entry(admin, block);
                admin.pending -= 1;
                self.stats.inc(stat::PENDING_CLEARED);
            }
        }
        if raise {
            ti.raise_event();
        }
    }

    /// Says once that the spares ran out (until one is freed).
    fn report_exhaustion(&self, ti: &TargetInfo<'_>, ran_out: bool) {
        let mut admin = self.admin.lock();
        if ran_out && !admin.exhaustion_reported {
            admin.exhaustion_reported = true;
            pr_warn!("remap: no free spare block left: write errors now pass through\n");
            ti.raise_event();
        }
    }

    /// A block that switched to its spare: its old mapping goes as
    /// [`relocation::old_mapping`] decided for the commit.
    fn switched(&self, admin: &mut Admin, b: &Switched) {
        self.stats.inc(stat::AUTO_REMAPS);
        let Some(to) = b.to else { return };
        match relocation::old_mapping(b.old, to) {
            OldMapping::PendingCleared { .. } => {
                admin.pending -= 1;
                self.stats.inc(stat::PENDING_CLEARED);
            }
            OldMapping::ZerosFreed { spare } => {
                // The first write of a lost block: its zero-filled spare is
                // free again (in use until now, so the release cannot
                // fail).
                admin.spares.release_held(spare);
                admin.exhaustion_reported = false;
            }
            OldMapping::Retired { spare } => {
                self.stats.inc(stat::SPARE_WRITE_ERRORS);
                // Its remap held it until now, so it is in use: the
                // retirement cannot fail.
                admin.spares.retire_held(spare);
            }
            OldMapping::SameSpare | OldMapping::Unmapped => {}
        }
    }

    /// Ends each bio of the group: with its error if it failed or a block
    /// of it was not relocated ([`relocation::bio_fails`]).
    fn end_bios(&self, group: &mut Group) {
        for (i, gb) in group.bios.drain_all().enumerate() {
            if relocation::bio_fails(&group.relocations, i, gb.failed) {
                self.stats.inc(stat::FAILED_BIOS);
                gb.bio.end(gb.error);
            } else {
                gb.bio.end(0);
            }
        }
    }
}

/// Settles each claimed relocation once the commit is known: relocated if
/// the commit is durable (`committed`) and its block still switches.
fn settle_relocations(group: &mut Group, switch: &Switch<'_>, committed: bool) {
    for r in group.relocations.iter_mut() {
        if let RelocState::Claimed { switched } = r.state {
            r.state = if committed && switch.blocks()[switched].switches() {
                RelocState::Relocated
            } else {
                RelocState::NotRelocated
            };
        }
    }
}

impl RemapTarget {
    /// Marks data blocks that a scrub could not read pending, as a failed
    /// foreground read does: one group, one commit, the same check for a
    /// data device that is down. On the worker's workqueue.
    pub(super) fn mark_unreadable(&self, ti: &TargetInfo<'_>, blocks: KVec<u64>) {
        let mut group = Group::new();
        group.unreadable = blocks;
        self.finish_group(ti, &mut group);
    }

    pub(super) fn process_kept_bios(&self, ti: &TargetInfo<'_>) {
        // This worker completes I/O: its allocations must not wait for it.
        let _noio = NoIoScope::enter();
        loop {
            let mut group = Group::new();
            let Some(kept) = ti.kept() else { return };
            let mut bios = KVec::new();
            let mut any = false;
            for bio in kept.take() {
                any = true;
                if bios.reserve(1, GFP_KERNEL).is_err() {
                    // No memory for the batch: this bio alone, its blocks
                    // retried one by one.
                    self.handle_kept(&mut group, bio, &mut []);
                    continue;
                }
                // Room was reserved above: a failure would be a
                // bookkeeping error (the bio ends with an error), warned
                // about.
                warn_on(bios.push_within_capacity(bio).is_err());
            }
            if !any {
                return;
            }
            let mut answers = self.retry_reads(&mut bios);
            for (k, bio) in bios.drain_all().enumerate() {
                self.handle_kept(&mut group, bio, answers_of(&mut answers, k));
                if group.relocations.len() >= GROUP_MAX {
                    self.finish_group(ti, &mut group);
                }
            }
            self.finish_group(ti, &mut group);
        }
    }
}
