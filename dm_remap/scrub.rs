// SPDX-License-Identifier: GPL-2.0

//! Scrub (patrol read): `scrub start [<MiB/s>]` reads every data block,
//! every used spare and every block of every metadata copy in the
//! background, at a bounded rate, to find failing blocks before their data
//! is needed.
//!
//! - A data block whose read still fails after `read_retries` becomes
//!   pending, as after a failed foreground read (`Target::mark_unreadable`
//!   in `worker.rs`).
//! - A used spare that fails its reads is reported: its data is lost (see
//!   `spare_unreadable`).
//! - A metadata block that cannot be read, fails its checksum or is stale
//!   makes its copy stale: a commit rewrites that copy whole from the image
//!   (the newest intact version of every block), the path a load's repair
//!   takes.
//!
//! The scrub runs in steps on the error worker's ordered workqueue, so it
//! never runs beside the worker; each step reads at most [`STEP_BYTES`]
//! and the next one is timed to keep the rate. A suspend pauses it
//! (`presuspend` cancels the next step and waits for one that runs), a
//! resume goes on where it was; the table's destructor cancels it. A new
//! table (a reload) starts with no scrub: `scrub start` begins at block 0.
//! `map` never looks at any of this.

use crate::breakage::{broken, Breakage};
use crate::entry::Entry;
use crate::kapi::dm::Emitter;
use crate::kapi::sched::NoIoScope;
use crate::kapi::warn::warn_on;
use crate::metadata::{check_block, Pending, Slot};
use crate::spare_alloc::METADATA_COPIES;
use crate::switch::Switch;
use crate::timed_read::{AnyRead, ReadLimits, ReadOutcome};
use crate::weak::WeakCheck;
use crate::worker::PROBE_LIMIT_MS;
use crate::{metadata, refuse, stat, table_args, RemapTarget, TargetInfo};
use core::sync::atomic::Ordering::Relaxed;
use kernel::prelude::*;
use kernel::time::{Instant, Monotonic};

/// The rate a scrub reads at when `scrub start` gives none, in MiB/s.
pub(super) const DEFAULT_RATE_MIB: u32 = 16;
/// The largest rate `scrub start` takes, in MiB/s.
const MAX_RATE_MIB: u32 = 100_000;
/// The most a step reads, in bytes.
const STEP_BYTES: usize = 64 * 1024;
/// When foreground bios came since the last step, the next one waits at
/// least this long (ms): the scrub yields to foreground I/O.
const BUSY_WAIT_MS: u64 = 20;
/// Unreadable data blocks a step deals with, at most: each costs
/// `1 + read_retries` failed reads.
const FAILED_PER_STEP: usize = 4;
/// Blocks read slowly that a step checks for weak sectors, at most: each
/// check costs six reads of a slow disk.
const WEAK_CHECKS_PER_STEP: usize = 2;
/// The wait before the next step when a read could not be sent (no
/// memory, or the module's timed reads all taken by a hanging disk) or got
/// no answer, in ms.
const NOT_SENT_BACKOFF_MS: u64 = 100;
/// How long a scrub read may take before it is passed over, in ms, at
/// least: the error worker, which shares the workqueue, waits for it.
const SCRUB_READ_LIMIT_MS: u32 = 10_000;
/// Spare slots a step looks at, at most (each one read is one block).
const SLOTS_PER_STEP: u32 = 4096;

/// Where a scrub is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// At data block `next`.
    Data { next: u64 },
    /// At spare slot `next`.
    Spares { next: u32 },
    /// At block `index` of metadata copy `copy`.
    Metadata { copy: usize, index: u32 },
}

/// What a scrub does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum ScrubState {
    /// None since the table was loaded.
    Idle,
    Running,
    /// Stopped by `scrub stop` before it finished.
    Stopped,
    /// Went through everything.
    Done,
}

impl ScrubState {
    fn name(self) -> &'static str {
        match self {
            ScrubState::Idle => "idle",
            ScrubState::Running => "running",
            ScrubState::Stopped => "stopped",
            ScrubState::Done => "done",
        }
    }
}

/// A target's scrub: its state, position and findings.
pub(super) struct Scrub {
    state: ScrubState,
    /// The table is suspended (or not yet resumed): no step runs.
    paused: bool,
    phase: Phase,
    rate_mib: u32,
    /// Units done and in all: data blocks, spare slots and metadata blocks.
    done: u64,
    total: u64,
    /// Data blocks found unreadable, used spares found unreadable, and
    /// metadata blocks found damaged, unreadable or stale.
    bad_data: u64,
    bad_spares: u64,
    bad_metadata: u64,
    /// Metadata copies rewritten.
    copies_rewritten: u64,
    bytes_read: u64,
    /// Scrubs that went through everything.
    passes: u64,
    /// When the scrub started, and how long it ran once it ended.
    started: Option<Instant<Monotonic>>,
    elapsed_ms: u64,
    /// Foreground bios counted at the last step.
    foreground: u64,
    /// The read buffer, [`STEP_BYTES`] long; taken by a running step.
    buf: KVec<u8>,
}

impl Scrub {
    /// No scrub yet, paused until the table is resumed.
    pub(super) fn new() -> Self {
        Self {
            state: ScrubState::Idle,
            paused: true,
            phase: Phase::Data { next: 0 },
            rate_mib: DEFAULT_RATE_MIB,
            done: 0,
            total: 0,
            bad_data: 0,
            bad_spares: 0,
            bad_metadata: 0,
            copies_rewritten: 0,
            bytes_read: 0,
            passes: 0,
            started: None,
            elapsed_ms: 0,
            foreground: 0,
            buf: KVec::new(),
        }
    }

    fn running_ms(&self) -> u64 {
        match (self.state, self.started) {
            (ScrubState::Running, Some(t)) => t.elapsed().as_millis() as u64,
            _ => self.elapsed_ms,
        }
    }
}

/// What one step did.
struct StepResult {
    /// Units done, and bytes read.
    units: u64,
    bytes: u64,
    next: Option<Phase>,
    bad_data: u64,
    bad_spares: u64,
    bad_metadata: u64,
    copies_rewritten: u64,
    /// The device that fails every read (`"data"` or `"spare"`): the
    /// scrub stops.
    device_down: Option<&'static str>,
    /// The next step waits at least this long (ms): a read could not be
    /// sent or got no answer.
    backoff_ms: u64,
}

/// What became of a used spare that failed every read of the scrub.
enum UnreadableSpare {
    /// Its block is pending with its data lost, the spare retired.
    Lost,
    /// Left as it is: the block moved or reads again, the scrub was
    /// halted, or the commit or its memory failed.
    Left,
    /// Left as it is: the spare device fails every read.
    DeviceDown,
}

impl StepResult {
    fn at(next: Phase) -> Self {
        Self {
            units: 0,
            bytes: 0,
            next: Some(next),
            bad_data: 0,
            bad_spares: 0,
            bad_metadata: 0,
            copies_rewritten: 0,
            device_down: None,
            backoff_ms: 0,
        }
    }
}

/// Gives the step buffer `len` bytes, at most its capacity of
/// [`STEP_BYTES`] (every length a step asks for: a block is at most
/// 64 KiB), so without allocating.
fn set_len(buf: &mut KVec<u8>, len: usize) {
    // Within the capacity: no allocation, so a failure would be a
    // bookkeeping error, warned about.
    warn_on(buf.resize(len.min(buf.capacity()), 0, GFP_NOWAIT).is_err());
}

impl RemapTarget {
    fn foreground_bios(&self) -> u64 {
        self.stats.sum(stat::READS)
            + self.stats.sum(stat::WRITES)
            + self.stats.sum(stat::OTHER_BIOS)
    }

    /// `scrub start [<MiB/s>]`.
    pub(super) fn msg_scrub_start(
        &self,
        ti: &TargetInfo<'_>,
        rate: Option<&CStr>,
        out: &mut Emitter<'_>,
    ) -> Result {
        let rate_mib = match rate {
            None => DEFAULT_RATE_MIB,
            Some(arg) => match table_args::parse_u32(arg) {
                Some(r) if (1..=MAX_RATE_MIB).contains(&r) => r,
                _ => {
                    return refuse(
                        EINVAL,
                        format_args!(
                            "invalid scrub rate '{}': MiB/s from 1 to {} are needed",
                            arg.to_str().unwrap_or("?"),
                            MAX_RATE_MIB
                        ),
                    )
                }
            },
        };
        {
            let admin = self.admin.lock();
            self.check_writable(&admin)?;
        }
        if !self.auto_remap {
            // Errors pass through untouched with no_auto_remap: so do the
            // scrub's findings, which would be nothing but log lines.
            return refuse(
                EINVAL,
                format_args!("scrub needs auto-remapping (the table has no_auto_remap)"),
            );
        }
        let _control = self.scrub_control.lock();
        let mut buf = KVec::with_capacity(STEP_BYTES, GFP_KERNEL)?;
        buf.resize(STEP_BYTES, 0, GFP_KERNEL)?;
        let total = self.nr_blocks(ti)
            + u64::from(self.spare_slots())
            + METADATA_COPIES as u64 * u64::from(self.meta.lock().image().format().copy_blocks());
        let mut scrub = self.scrub.lock();
        if scrub.state == ScrubState::Running {
            return refuse(
                EBUSY,
                format_args!("a scrub is running: 'scrub stop' first"),
            );
        }
        scrub.state = ScrubState::Running;
        scrub.phase = Phase::Data { next: 0 };
        scrub.rate_mib = rate_mib;
        scrub.done = 0;
        scrub.total = total;
        scrub.bad_data = 0;
        scrub.bad_spares = 0;
        scrub.bad_metadata = 0;
        scrub.copies_rewritten = 0;
        scrub.bytes_read = 0;
        scrub.started = Some(Instant::<Monotonic>::now());
        scrub.elapsed_ms = 0;
        scrub.foreground = self.foreground_bios();
        scrub.buf = buf;
        let paused = scrub.paused;
        drop(scrub);
        if !paused {
            self.schedule_scrub_step(ti, 0);
        }
        pr_info!("remap: scrub started at {} MiB/s\n", rate_mib);
        out.emit(format_args!(
            "scrub started at {} MiB/s{}\n",
            rate_mib,
            if paused {
                " (paused: the device is suspended)"
            } else {
                ""
            }
        ));
        Ok(())
    }

    /// `scrub stop`: no step runs once it returns.
    pub(super) fn msg_scrub_stop(&self, ti: &TargetInfo<'_>, out: &mut Emitter<'_>) -> Result {
        let _control = self.scrub_control.lock();
        let mut scrub = self.scrub.lock();
        if scrub.state != ScrubState::Running {
            return refuse(EINVAL, format_args!("no scrub is running"));
        }
        scrub.state = ScrubState::Stopped;
        scrub.elapsed_ms = scrub.running_ms();
        let (done, total) = (scrub.done, scrub.total);
        drop(scrub);
        // A step that runs sees `Stopped` and schedules no other.
        self.cancel_scrub_step(ti);
        pr_info!("remap: scrub stopped at {} of {}\n", done, total);
        out.emit(format_args!("scrub stopped at {} of {}\n", done, total));
        Ok(())
    }

    /// Pauses the scrub: on return no step runs until [`Self::resume_scrub`].
    pub(super) fn pause_scrub(&self, ti: &TargetInfo<'_>) {
        let _control = self.scrub_control.lock();
        self.scrub.lock().paused = true;
        self.cancel_scrub_step(ti);
    }

    /// Goes on with a paused scrub.
    pub(super) fn resume_scrub(&self, ti: &TargetInfo<'_>) {
        let _control = self.scrub_control.lock();
        let mut scrub = self.scrub.lock();
        scrub.paused = false;
        if scrub.state == ScrubState::Running {
            drop(scrub);
            self.schedule_scrub_step(ti, 0);
        }
    }

    /// The scrub's field in status: `-` before any scrub, else
    /// `<state>:<done>/<total>`.
    pub(super) fn emit_scrub_status(&self, out: &mut Emitter<'_>) {
        let scrub = self.scrub.lock();
        match scrub.state {
            ScrubState::Idle => out.emit(format_args!("-")),
            state => out.emit(format_args!(
                "{}:{}/{}",
                if state == ScrubState::Running && scrub.paused {
                    "paused"
                } else {
                    state.name()
                },
                scrub.done,
                scrub.total
            )),
        }
    }

    /// The scrub's fields in `stats`.
    pub(super) fn emit_scrub_stats(&self, out: &mut Emitter<'_>) {
        let scrub = self.scrub.lock();
        let ms = scrub.running_ms();
        out.emit(format_args!(
            " scrub_state={} scrub_paused={} scrub_done={} scrub_total={} scrub_bad_data_blocks={} scrub_bad_spares={} scrub_bad_metadata_blocks={} scrub_copies_rewritten={} scrub_passes={} scrub_read_bytes={} scrub_ms={} scrub_rate_limit_mib={} scrub_rate_kib={}",
            scrub.state.name(),
            u8::from(scrub.paused),
            scrub.done,
            scrub.total,
            scrub.bad_data,
            scrub.bad_spares,
            scrub.bad_metadata,
            scrub.copies_rewritten,
            scrub.passes,
            scrub.bytes_read,
            ms,
            scrub.rate_mib,
            if ms > 0 { scrub.bytes_read * 1000 / 1024 / ms } else { 0 }
        ));
    }

    /// Whether the scrub was stopped or paused since its step began: the
    /// step ends before its next block, so that `scrub stop`, a suspend
    /// and a remove wait for one block's reads at most, not a step's.
    pub(super) fn scrub_halted(&self) -> bool {
        let scrub = self.scrub.lock();
        scrub.state != ScrubState::Running || scrub.paused
    }

    /// The limits of a scrub read: [`SCRUB_READ_LIMIT_MS`], or twice
    /// `slow_read_ms` (so that a slow read is seen as one), and `halt`.
    fn scrub_read_limits<'a>(&self, halt: &'a dyn Fn() -> bool) -> ReadLimits<'a> {
        ReadLimits {
            failfast: false,
            limit_ms: Some(SCRUB_READ_LIMIT_MS.max(self.slow_read_ms.saturating_mul(2))),
            halt,
        }
    }

    /// Whether the table is suspending or suspended (or not yet resumed):
    /// the target's own reads outside the scrub give up then too.
    pub(super) fn suspending(&self) -> bool {
        self.scrub.lock().paused
    }

    /// Spare slots of the area: every block of it (the metadata copies'
    /// places among them, which hold no spare).
    fn spare_slots(&self) -> u32 {
        self.meta.lock().image().format().nr_spare
    }

    /// One scrub step (`Target::step`).
    pub(super) fn scrub_step(&self, ti: &TargetInfo<'_>) {
        // Steps run on the error worker's workqueue, which completes I/O.
        let _noio = NoIoScope::enter();
        let (phase, mut buf) = {
            let mut scrub = self.scrub.lock();
            if scrub.state != ScrubState::Running || scrub.paused {
                return;
            }
            (scrub.phase, core::mem::take(&mut scrub.buf))
        };
        let started = Instant::<Monotonic>::now();
        let r = match phase {
            Phase::Data { next } => self.scrub_data(ti, next, &mut buf),
            Phase::Spares { next } => self.scrub_spares(ti, next, &mut buf),
            Phase::Metadata { copy, index } => self.scrub_metadata(copy, index, &mut buf),
        };
        let took_ms = started.elapsed().as_millis() as u64;
        let mut scrub = self.scrub.lock();
        scrub.buf = buf;
        scrub.done = (scrub.done + r.units).min(scrub.total);
        scrub.bytes_read += r.bytes;
        scrub.bad_data += r.bad_data;
        scrub.bad_spares += r.bad_spares;
        scrub.bad_metadata += r.bad_metadata;
        scrub.copies_rewritten += r.copies_rewritten;
        if scrub.state != ScrubState::Running {
            // Stopped meanwhile: its message cancels the next step.
            return;
        }
        if let Some(device) = r.device_down {
            // Reading on would only fail block by block.
            scrub.elapsed_ms = scrub.running_ms();
            scrub.state = ScrubState::Stopped;
            drop(scrub);
            pr_warn!(
                "remap: scrub stopped: the {} device fails every read\n",
                device
            );
            ti.raise_event();
            return;
        }
        let Some(next) = r.next else {
            scrub.elapsed_ms = scrub.running_ms();
            scrub.state = ScrubState::Done;
            scrub.done = scrub.total;
            scrub.passes += 1;
            scrub.buf = KVec::new();
            let (data, spares, meta, copies) = (
                scrub.bad_data,
                scrub.bad_spares,
                scrub.bad_metadata,
                scrub.copies_rewritten,
            );
            drop(scrub);
            pr_info!(
                "remap: scrub done: {} unreadable data blocks, {} unreadable spares, {} damaged metadata blocks ({} copies rewritten)\n",
                data,
                spares,
                meta,
                copies
            );
            // Monitoring learns that the scrub ended, and what it found.
            ti.raise_event();
            return;
        };
        scrub.phase = next;
        // Time the next step so that the reads keep the rate, and give way
        // to foreground bios that came meanwhile.
        let rate = u64::from(scrub.rate_mib) << 20;
        let mut wait_ms = (r.bytes * 1000 / rate).saturating_sub(took_ms);
        let foreground = self.foreground_bios();
        if foreground != scrub.foreground && r.bytes > 0 {
            wait_ms = wait_ms.max(BUSY_WAIT_MS);
        }
        if r.units == 0 {
            // Waiting for a commit to end: not at once again.
            wait_ms = wait_ms.max(1);
        }
        wait_ms = wait_ms.max(r.backoff_ms);
        scrub.foreground = foreground;
        let paused = scrub.paused;
        drop(scrub);
        if !paused {
            // Below 2^32 ms: at most STEP_BYTES at 1 MiB/s.
            self.schedule_scrub_step(ti, wait_ms as u32);
        }
    }

    /// Reads the data blocks from `next` on, up to [`STEP_BYTES`]; blocks in
    /// the table (remapped, pending, switching) are skipped: their data is
    /// not on the data device, or is known unreadable.
    fn scrub_data(&self, ti: &TargetInfo<'_>, next: u64, buf: &mut KVec<u8>) -> StepResult {
        let n = self.nr_blocks(ti);
        if next >= n {
            return StepResult::at(Phase::Spares { next: 0 });
        }
        let per_step = (STEP_BYTES as u64 >> (self.block_shift + 9)).max(1);
        let mut end = n.min(next + per_step);
        match self.table.first_remapped(next, end - next) {
            Some((block, _)) if block == next => {
                // A run of blocks in the table, skipped in one step.
                let mut skip = next + 1;
                while skip < n
                    && skip - next < u64::from(SLOTS_PER_STEP)
                    && self.table.get(skip).is_some()
                {
                    skip += 1;
                }
                let mut r = StepResult::at(Phase::Data { next: skip });
                r.units = skip - next;
                return r;
            }
            Some((block, _)) => end = block,
            None => {}
        }
        let blocks = end - next;
        let mut r = StepResult::at(Phase::Data { next: end });
        r.units = blocks;
        let bytes = (blocks << (self.block_shift + 9)) as usize;
        set_len(buf, bytes);
        r.bytes = bytes as u64;
        let halt = || self.scrub_halted();
        let limits = self.scrub_read_limits(&halt);
        let whole = self.read_timed(&self.data, self.data_sector(next), buf, &limits);
        match whole {
            ReadOutcome::Read { took_ms } if !self.is_slow(took_ms) => return r,
            ReadOutcome::Halted | ReadOutcome::NotSent => {
                // Again from `next` when the scrub goes on (not sent: no
                // memory, or a hanging disk's reads fill the queue: later).
                r.backoff_ms = NOT_SENT_BACKOFF_MS;
                r.units = 0;
                r.bytes = 0;
                r.next = Some(Phase::Data { next });
                return r;
            }
            _ => {}
        }
        // Block by block, each as a foreground read is retried, and timed.
        set_len(buf, self.block_size as usize);
        let mut unreadable = KVec::new();
        let mut weak_checks = 0;
        for block in next..end {
            if self.scrub_halted() {
                r.units = block - next;
                r.next = Some(Phase::Data { next: block });
                break;
            }
            if unreadable.len() == FAILED_PER_STEP {
                // A failing disk answers slowly: the worker, which shares
                // the workqueue, gets its turn before the rest.
                if !broken(Breakage::ScrubSkipsAfterFailures) {
                    r.units = block - next;
                    r.next = Some(Phase::Data { next: block });
                }
                break;
            }
            if self.table.get(block).is_some() {
                continue;
            }
            r.bytes += u64::from(self.block_size);
            match self.read_data(block, buf, &limits) {
                ReadOutcome::Read { took_ms } if self.is_slow(took_ms) => {
                    weak_checks += 1;
                    if self.check_weak(ti, block, &halt) == WeakCheck::Halted {
                        r.units = block - next;
                        r.next = Some(Phase::Data { next: block });
                        break;
                    }
                    if weak_checks == WEAK_CHECKS_PER_STEP {
                        // Each check costs reads of a slow disk: the
                        // worker, which shares the workqueue, gets its
                        // turn before the rest.
                        r.units = block + 1 - next;
                        r.next = Some(Phase::Data { next: block + 1 });
                        break;
                    }
                }
                ReadOutcome::Read { .. } => {}
                ReadOutcome::Halted | ReadOutcome::NotSent => {
                    r.backoff_ms = NOT_SENT_BACKOFF_MS;
                    r.units = block - next;
                    r.next = Some(Phase::Data { next: block });
                    break;
                }
                ReadOutcome::NoAnswer => {
                    // Not an error: passed over (the next pass reads it
                    // again), and the worker gets its turn.
                    pr_info!(
                        "remap: scrub: data block {} did not answer in {} ms: passed over\n",
                        block,
                        limits.limit_ms.unwrap_or(0)
                    );
                    r.units = block + 1 - next;
                    r.next = Some(Phase::Data { next: block + 1 });
                    break;
                }
                ReadOutcome::Failed => {
                    pr_warn!("remap: scrub: data block {} cannot be read\n", block);
                    r.bad_data += 1;
                    // Without the memory to note it, it is not marked
                    // pending: the next foreground read that fails marks it.
                    if unreadable.push(block, GFP_KERNEL).is_err() {
                        kernel::pr_warn_once!(
                            "remap: scrub: out of memory: an unreadable block is not marked pending\n"
                        );
                    }
                }
            }
        }
        // Halted (stop, suspend, remove), the step ends now: marking would
        // probe the failing data device and commit first. The scrub goes
        // on (after a resume) from the first block found and not marked,
        // which is not counted yet.
        if let (Some(&first), true) = (unreadable.first(), self.scrub_halted()) {
            r.units = first - next;
            r.next = Some(Phase::Data { next: first });
            r.bad_data -= unreadable.len() as u64;
            return r;
        }
        if !unreadable.is_empty() {
            let found = unreadable.len() as u64;
            self.mark_unreadable(ti, unreadable);
            if self.scrub_halted() {
                // Halted during the probe, which then marked nothing:
                // this step again when the scrub goes on.
                r.units = 0;
                r.next = Some(Phase::Data { next });
                r.bad_data -= found;
                return r;
            }
            if self.data_down.load(Relaxed) {
                r.device_down = Some("data");
            }
        }
        r
    }

    /// Reads the used spares from slot `next` on.
    fn scrub_spares(&self, ti: &TargetInfo<'_>, next: u32, buf: &mut KVec<u8>) -> StepResult {
        let capacity = self.spare_slots();
        if next >= capacity {
            return StepResult::at(Phase::Metadata { copy: 0, index: 0 });
        }
        let reads_per_step = (STEP_BYTES >> (self.block_shift + 9)).max(1);
        let end = capacity.min(next.saturating_add(SLOTS_PER_STEP));
        let mut r = StepResult::at(Phase::Spares { next: end });
        set_len(buf, self.block_size as usize);
        let mut reads = 0;
        for spare in next..end {
            if self.scrub_halted() {
                r.next = Some(Phase::Spares { next: spare });
                break;
            }
            r.units += 1;
            let Some(Slot::InUse { block, .. }) = self.meta.lock().image().slot(spare) else {
                continue;
            };
            // Only a spare the table maps its block to holds its data.
            if !matches!(self.entry(block), Some(Entry::Remapped(s)) if s.block == spare) {
                continue;
            }
            r.bytes += u64::from(self.block_size);
            reads += 1;
            let halt = || self.scrub_halted();
            let outcome = self.read_spare(spare, buf, &self.scrub_read_limits(&halt));
            if matches!(
                outcome,
                ReadOutcome::Halted | ReadOutcome::NotSent | ReadOutcome::NoAnswer
            ) {
                r.backoff_ms = NOT_SENT_BACKOFF_MS;
                r.units -= 1;
                r.next = Some(Phase::Spares { next: spare });
                break;
            }
            if !outcome.is_read() {
                match self.spare_unreadable(ti, block, spare) {
                    // Counted whether it became pending or not (the table
                    // shows which).
                    UnreadableSpare::Lost | UnreadableSpare::Left if !self.scrub_halted() => {
                        r.bad_spares += 1
                    }
                    // Halted: this spare again when the scrub goes on.
                    UnreadableSpare::Lost | UnreadableSpare::Left => {
                        r.units -= 1;
                        r.next = Some(Phase::Spares { next: spare });
                        break;
                    }
                    UnreadableSpare::DeviceDown => {
                        r.device_down = Some("spare");
                        break;
                    }
                }
            }
            if reads == reads_per_step {
                r.next = Some(Phase::Spares { next: spare + 1 });
                break;
            }
        }
        r
    }

    /// A used spare failed every read: the data of its block is lost. The
    /// block becomes pending with its data lost (reads fail without
    /// trying the data block, which holds older data; its next write
    /// relocates it) and the spare is retired, by a switch: bios that
    /// start in the block wait, those mapped before are waited for, and
    /// the spare is read once more, since a write may have reached it
    /// meanwhile. Then, last before the commit, the spare device is
    /// probed (see [`Self::spare_device_reads`]): when it answers no read
    /// the block is left as it is. A halt (stop, suspend, remove) also
    /// leaves it, before the probe and the commit would make it wait.
    fn spare_unreadable(&self, ti: &TargetInfo<'_>, block: u64, spare: u32) -> UnreadableSpare {
        let Ok(mut buf) = self.block_buffer() else {
            pr_warn!("remap: no memory: block {} keeps its remap\n", block);
            return UnreadableSpare::Left;
        };
        // Rolled back by its drop wherever this returns before the commit.
        let mut switch = Switch::new(self, ti);
        let slot = {
            let mut admin = self.admin.lock();
            let admin = &mut *admin;
            if self.check_writable(admin).is_err() {
                // The reason is in the kernel log.
                return UnreadableSpare::Left;
            }
            if !matches!(self.entry(block), Some(Entry::Remapped(s)) if s.block == spare) {
                pr_info!(
                    "remap: scrub: block {} moved meanwhile: left as it is\n",
                    block
                );
                return UnreadableSpare::Left;
            }
            let Some(slot) = self.meta.lock().image().free_pending_slot(0) else {
                pr_warn!(
                    "remap: no free pending slot: block {} keeps its remap\n",
                    block
                );
                return UnreadableSpare::Left;
            };
            if let Err(e) = switch.mark_lost(admin, block, slot) {
                pr_warn!("remap: block {} keeps its remap ({:?})\n", block, e);
                return UnreadableSpare::Left;
            }
            slot
        };
        switch.wait_mapped();
        let halt = || self.scrub_halted();
        let outcome = self.read_spare(spare, &mut buf, &self.scrub_read_limits(&halt));
        if matches!(
            outcome,
            ReadOutcome::Halted | ReadOutcome::NotSent | ReadOutcome::NoAnswer
        ) {
            return UnreadableSpare::Left;
        }
        if outcome.is_read() {
            pr_info!(
                "remap: spare block {} reads again: block {} keeps its remap\n",
                spare,
                block
            );
            return UnreadableSpare::Left;
        }
        if self.scrub_halted() {
            return UnreadableSpare::Left;
        }
        match self.spare_device_reads() {
            AnyRead::Answered => {}
            // Nothing known (a suspend, no memory): left, tried again.
            AnyRead::Halted | AnyRead::NotSent | AnyRead::NoAnswer => return UnreadableSpare::Left,
            AnyRead::NoneWorked => {
                pr_warn!(
                "remap: scrub: the spare device fails every read: spare block {} of data block {} is left as it is (the device is down, the data is not known lost)\n",
                spare,
                block
            );
                return UnreadableSpare::DeviceDown;
            }
        }
        pr_err!(
            "remap: scrub: spare block {} of data block {} cannot be read: the data of block {} is lost\n",
            spare,
            block,
            block
        );
        let committed = switch.commit(|image, _| {
            image.set_slot(spare, Slot::Retired);
            image.set_pending(slot, Some(Pending { block, lost: true }));
        });
        switch.end(|admin, _| {
            admin.pending += 1;
            self.stats.inc(stat::PENDING_MARKED);
            // Its remap held it until now, so it is in use: the retirement
            // cannot fail.
            admin.spares.retire_held(spare);
        });
        if committed.is_ok() {
            UnreadableSpare::Lost
        } else {
            UnreadableSpare::Left
        }
    }

    /// Whether the spare device answers reads: the superblock of some
    /// metadata copy reads (on the device, not from dm-bufio's cache). A
    /// spare that fails its reads on a device that answers none is not
    /// known lost: the device is down (a cable, a controller reset), as
    /// the data device's probe tells for the data area, and its blocks
    /// may read again.
    fn spare_device_reads(&self) -> AnyRead {
        let starts = self.meta.lock().image().format().layout.starts;
        let mut sectors = [0u64; METADATA_COPIES];
        for (sector, &start) in sectors.iter_mut().zip(starts.iter()) {
            *sector = self.spare_sector(start);
        }
        self.any_reads(&self.spare, &sectors, PROBE_LIMIT_MS, &|| {
            self.scrub_halted()
        })
    }

    /// Checks block `index` of metadata copy `copy` on disk against the
    /// image; a copy with a block damaged, unreadable or stale is rewritten
    /// whole by a commit, and the scrub goes on with the next copy.
    fn scrub_metadata(&self, copy: usize, index: u32, buf: &mut KVec<u8>) -> StepResult {
        let (fmt, stale) = {
            let meta = self.meta.lock();
            (*meta.image().format(), meta.image().is_stale(copy))
        };
        if copy >= METADATA_COPIES {
            return StepResult {
                next: None,
                ..StepResult::at(Phase::Metadata { copy, index })
            };
        }
        let blocks = fmt.copy_blocks();
        let next_copy = Phase::Metadata {
            copy: copy + 1,
            index: 0,
        };
        if index >= blocks || stale {
            // A stale copy is rewritten whole by the next commit anyway.
            let mut r = StepResult::at(next_copy);
            r.units = u64::from(blocks - index.min(blocks));
            return r;
        }
        let per_step = (STEP_BYTES / fmt.block_bytes()).max(1) as u32;
        let end = blocks.min(index + per_step);
        let mut r = StepResult::at(Phase::Metadata { copy, index: end });
        set_len(buf, fmt.block_bytes());
        for i in index..end {
            if self.scrub_halted() {
                r.next = Some(Phase::Metadata { copy, index: i });
                break;
            }
            let before = self.meta.lock().quiet_commit();
            if before.is_none() {
                // A commit is being written: this block again next step.
                r.next = Some(Phase::Metadata { copy, index: i });
                break;
            }
            let sector = self.spare_offset + (fmt.area_block(copy, i) << self.block_shift);
            let halt = || self.scrub_halted();
            let read = self.read_timed(&self.spare, sector, buf, &self.scrub_read_limits(&halt));
            if matches!(
                read,
                ReadOutcome::Halted | ReadOutcome::NotSent | ReadOutcome::NoAnswer
            ) {
                r.backoff_ms = NOT_SENT_BACKOFF_MS;
                r.next = Some(Phase::Metadata { copy, index: i });
                break;
            }
            let read = if read.is_read() { Ok(()) } else { Err(EIO) };
            let meta = self.meta.lock();
            let after = meta.quiet_commit();
            if before != after {
                // A commit wrote meanwhile: read this block again next step.
                r.next = Some(Phase::Metadata { copy, index: i });
                break;
            }
            r.units += 1;
            r.bytes += fmt.block_bytes() as u64;
            let want = meta.image().block_generation(i);
            let good = read.is_ok()
                && check_block::<metadata::Crc>(&fmt, copy, i, buf).is_ok_and(|g| g == want);
            drop(meta);
            if good {
                continue;
            }
            r.bad_metadata += 1;
            pr_warn!(
                "remap: scrub: block {} of metadata copy {} is {}: the copy is rewritten\n",
                i,
                copy,
                if read.is_err() {
                    "unreadable"
                } else {
                    "damaged or stale"
                }
            );
            // Rewritten whole from the image by the commit path.
            let healed = self
                .meta
                .change(self.queue.queue(), |image| image.mark_stale(copy));
            if healed.is_ok() {
                r.copies_rewritten += 1;
            }
            r.units += u64::from(blocks - i - 1);
            r.next = Some(next_copy);
            break;
        }
        r
    }
}

impl RemapTarget {
    /// Runs the next scrub step `msecs` from now, on the worker's queue.
    fn schedule_scrub_step(&self, ti: &TargetInfo<'_>, msecs: u32) {
        if let Some(kept) = ti.kept() {
            kept.schedule_step(msecs);
        }
    }

    /// Cancels the next scrub step and waits for one that is running.
    fn cancel_scrub_step(&self, ti: &TargetInfo<'_>) {
        if let Some(kept) = ti.kept() {
            kept.cancel_step();
        }
    }
}
