// SPDX-License-Identifier: GPL-2.0

//! Weak blocks: data blocks that read, but only slowly, moved to a spare
//! with their data before they fail.
//!
//! A sector that the drive reads only after its internal retries takes
//! hundreds of milliseconds to seconds; drive firmware reallocates such a
//! sector on a recoverable error, before it becomes unreadable. The scrub
//! and the error worker's retries time their reads; a data block read
//! slower than `slow_read_ms` is checked here:
//!
//! - the disk may just be busy (a deep queue of foreground I/O makes
//!   every read slow), so each try reads the block together with a
//!   control block far from it (half the device away, another one each
//!   try, so that the drive's cache does not answer it): when the control
//!   read is slow too, the block is not judged; without a control block
//!   (a tiny device) neither;
//! - slow on [`CONFIRM_TRIES`] more tries, each beside a fast control
//!   read, it is weak and moves to a spare with its data (`Move::Weak`,
//!   the path of the `remap` message), counted in `weak_remaps`. Every
//!   slow read of it is counted in `slow_reads`.
//!
//! A block that fails a read meanwhile is left to the failed-read path
//! (pending), whose data is not made up. Nothing of this runs with
//! `no_auto_remap` but the count of the first slow read.

use crate::breakage::{broken, Breakage};
use crate::messages::Move;
use crate::timed_read::{ReadLimits, ReadOutcome};
use crate::worker::RETRY_LIMIT_MS;
use crate::{stat, RemapTarget, TargetInfo};
use kernel::prelude::*;

/// The slow reads of a block, after the first, that make it weak.
const CONFIRM_TRIES: u32 = 2;

/// Blocks looked at, from half the device away, for a control block that
/// is in no table entry.
const CONTROL_SEARCH: u64 = 64;

/// How far apart the control blocks of successive tries are, in blocks: a
/// block the drive just read may come from its cache.
const CONTROL_STRIDE: u64 = 4099;

/// What a check of a block read slowly found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum WeakCheck {
    /// It read fast again, or the device was slow for the control block
    /// too (busy): left as it is.
    NotWeak,
    /// Slow every try: moved to a spare with its data.
    Moved,
    /// Weak, but not moved (no spare, metadata failed, ...: in the log),
    /// or it failed a read (left to the failed-read path).
    Left,
    /// Halted before it was judged.
    Halted,
}

impl RemapTarget {
    /// Whether a read that took `took_ms` is slow (`slow_read_ms`, 0 for
    /// never).
    pub(super) fn is_slow(&self, took_ms: u64) -> bool {
        self.slow_read_ms != 0 && took_ms > u64::from(self.slow_read_ms)
    }

    /// A data block in no table entry about half the device away from
    /// `block`, another one for each `try_`, to tell a slow block from a
    /// busy device.
    fn control_block(&self, ti: &TargetInfo<'_>, block: u64, try_: u32) -> Option<u64> {
        let n = self.nr_blocks(ti);
        let from = block + n / 2 + u64::from(try_) * CONTROL_STRIDE;
        (0..CONTROL_SEARCH.min(n))
            .map(|k| (from + k) % n)
            .find(|&c| c != block && self.table.get(c).is_none())
    }

    /// Checks data block `block`, just read slowly, as the module
    /// documentation says; gives up when `halt` says so.
    pub(super) fn check_weak(
        &self,
        ti: &TargetInfo<'_>,
        block: u64,
        halt: &dyn Fn() -> bool,
    ) -> WeakCheck {
        self.stats.inc(stat::SLOW_READS);
        if !self.auto_remap {
            return WeakCheck::NotWeak;
        }
        // Long enough for a slow read to end as one; given up at a halt.
        let limits = ReadLimits {
            failfast: false,
            limit_ms: Some(RETRY_LIMIT_MS.max(self.slow_read_ms.saturating_mul(2))),
            halt,
        };
        for try_ in 0..CONFIRM_TRIES {
            let control = if broken(Breakage::WeakWithoutControl) {
                block
            } else {
                match self.control_block(ti, block, try_) {
                    Some(c) => c,
                    None => return WeakCheck::NotWeak,
                }
            };
            let [read, control_read] = self.read_pair(block, control, &limits);
            if matches!(read, ReadOutcome::Halted) || matches!(control_read, ReadOutcome::Halted) {
                return WeakCheck::Halted;
            }
            match control_read {
                _ if broken(Breakage::WeakWithoutControl) => {}
                ReadOutcome::Read { took_ms } if !self.is_slow(took_ms) => {}
                // Busy, or failing elsewhere: nothing to judge by.
                _ => return WeakCheck::NotWeak,
            }
            match read {
                ReadOutcome::Read { took_ms } if !self.is_slow(took_ms) => {
                    return WeakCheck::NotWeak
                }
                ReadOutcome::Read { .. } => self.stats.inc(stat::SLOW_READS),
                _ => return WeakCheck::Left,
            }
        }
        if self.table.get(block).is_some() {
            // Moved or marked meanwhile.
            return WeakCheck::Left;
        }
        match self.move_to_spare(ti, block, Move::Weak) {
            Ok(moved) => {
                self.stats.inc(stat::WEAK_REMAPS);
                pr_warn!(
                    "remap: data block {} reads slowly (over {} ms, {} times): moved to spare block {} with its data\n",
                    block,
                    self.slow_read_ms,
                    CONFIRM_TRIES + 1,
                    moved.spare
                );
                WeakCheck::Moved
            }
            // Its copy's read was given up on: judged again later.
            Err(e) if e == EAGAIN => WeakCheck::Halted,
            // Said in the kernel log by the move.
            Err(_) => WeakCheck::Left,
        }
    }
}
