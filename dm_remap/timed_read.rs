// SPDX-License-Identifier: GPL-2.0

//! The target's own reads (retries, the data device's probe, the scrub,
//! the copy of a weak block), timed and bounded.
//!
//! A failing disk is slow before it fails: a weak sector reads after the
//! drive's internal retries, a desktop drive retries a bad one for up to
//! two minutes, a dying one stops answering until the SCSI layer's
//! command timeout. These reads go through [`dm::TimedIo`], so that the
//! caller stops waiting when its limit passes or when it is told to halt
//! (a suspend, `scrub stop`): the read goes on into its own buffer and the
//! caller goes on without it. Only reads: a write given up on could land
//! after a later one (see `kapi/dm/timed_io.rs`).
//!
//! [`dm::TimedIo`]: TimedIo

use crate::breakage::{broken, Breakage};
use crate::kapi::dm::{DmDev, InFlight, Msecs, Op, TimedIo};
use crate::RemapTarget;
use kernel::prelude::*;
use kernel::time::{Instant, Monotonic};

/// How often a waiting read looks whether it should halt, in ms.
pub(super) const HALT_POLL_MS: u32 = 50;

/// What became of a timed read.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum ReadOutcome {
    /// Read, in this many milliseconds (from its sending to its end).
    Read { took_ms: u64 },
    /// The device returned an error.
    Failed,
    /// No answer within the limit: given up on.
    NoAnswer,
    /// Given up on because the caller was told to halt.
    Halted,
    /// Not sent: no memory, or too many timed reads of the module running
    /// (a hanging disk). Nothing is known of the block.
    NotSent,
}

impl ReadOutcome {
    pub(super) fn is_read(self) -> bool {
        matches!(self, ReadOutcome::Read { .. })
    }
}

/// The limits of a timed read.
pub(super) struct ReadLimits<'a> {
    /// Ask the layers below not to retry (see [`Op::Read`]): for reads
    /// that retry a failed one, where a failure only keeps what is known
    /// (the block is marked pending, its data left in place; no block is
    /// relocated on a failed read).
    pub(super) failfast: bool,
    /// Give up after this long, if any.
    pub(super) limit_ms: Option<u32>,
    /// Give up when this says so (looked at every [`HALT_POLL_MS`]).
    pub(super) halt: &'a dyn Fn() -> bool,
}

/// Never halts.
pub(super) fn never() -> bool {
    false
}

/// Sends a read of `len` bytes at `sector` of `dev`.
fn send(dev: &DmDev, sector: u64, len: usize, failfast: bool) -> Option<InFlight> {
    TimedIo::new(dev, sector, len, Op::Read { failfast })
        .and_then(TimedIo::submit)
        .ok()
}

/// Waits for the reads of `ios` within `limits`, from `started` on; fills
/// in `outcomes` (those already filled are left).
fn wait_all(
    ios: &mut [Option<InFlight>],
    outcomes: &mut [Option<ReadOutcome>],
    limits: &ReadLimits<'_>,
    started: Instant<Monotonic>,
) {
    let limit_ms = limits
        .limit_ms
        .filter(|_| !broken(Breakage::ReadsUnbounded));
    let halt = || (limits.halt)() && !broken(Breakage::ReadsIgnoreHalt);
    for (io, outcome) in ios.iter_mut().zip(outcomes.iter_mut()) {
        let Some(io) = io else { continue };
        if outcome.is_some() {
            continue;
        }
        *outcome = Some(loop {
            let waited = started.elapsed().as_millis() as u64;
            let slice = match limit_ms {
                Some(limit) if waited >= u64::from(limit) => match io.wait(Msecs(0)) {
                    Some(result) => break ended(io, result),
                    None => break ReadOutcome::NoAnswer,
                },
                Some(limit) => (u64::from(limit) - waited).min(u64::from(HALT_POLL_MS)) as u32,
                None => HALT_POLL_MS,
            };
            match io.wait(Msecs(slice)) {
                Some(result) => break ended(io, result),
                None if halt() => break ReadOutcome::Halted,
                None => {}
            }
        });
    }
}

/// The outcome of a read that ended with `result`.
fn ended(io: &InFlight, result: Result) -> ReadOutcome {
    match result {
        Ok(()) => ReadOutcome::Read {
            took_ms: io.took_ms().unwrap_or(0),
        },
        Err(_) => ReadOutcome::Failed,
    }
}

impl RemapTarget {
    /// Reads `buf.len()` bytes at `sector` of `dev` into `buf`, within
    /// `limits`; `buf` is written only if the read worked.
    pub(super) fn read_timed(
        &self,
        dev: &DmDev,
        sector: u64,
        buf: &mut [u8],
        limits: &ReadLimits<'_>,
    ) -> ReadOutcome {
        if (limits.halt)() && !broken(Breakage::ReadsIgnoreHalt) {
            return ReadOutcome::Halted;
        }
        let started = Instant::<Monotonic>::now();
        let mut ios = [send(dev, sector, buf.len(), limits.failfast)];
        if ios[0].is_none() {
            return ReadOutcome::NotSent;
        }
        let mut outcomes = [None];
        wait_all(&mut ios, &mut outcomes, limits, started);
        let outcome = outcomes[0].unwrap_or(ReadOutcome::NotSent);
        if let (ReadOutcome::Read { .. }, Some(data)) =
            (outcome, ios[0].as_ref().and_then(|io| io.data()))
        {
            buf.copy_from_slice(data);
        }
        outcome
    }

    /// Reads a block of the data device at `a` and one at `b` at once
    /// (both see the same queue), within `limits`; the data is dropped.
    pub(super) fn read_pair(&self, a: u64, b: u64, limits: &ReadLimits<'_>) -> [ReadOutcome; 2] {
        let started = Instant::<Monotonic>::now();
        let len = self.block_size as usize;
        let mut ios = [
            send(&self.data, self.data_sector(a), len, limits.failfast),
            send(&self.data, self.data_sector(b), len, limits.failfast),
        ];
        let mut outcomes = [None, None];
        wait_all(&mut ios, &mut outcomes, limits, started);
        outcomes.map(|o| o.unwrap_or(ReadOutcome::NotSent))
    }

    /// Sends one read of a block of `dev` at each of `sectors` at once and
    /// waits at most `limit_ms` in all, or until `halt` says so; says
    /// whether any of them worked (stopping at the first that did).
    pub(super) fn any_reads(
        &self,
        dev: &DmDev,
        sectors: &[u64],
        limit_ms: u32,
        halt: &dyn Fn() -> bool,
    ) -> AnyRead {
        let started = Instant::<Monotonic>::now();
        let mut ios = KVec::new();
        for &sector in sectors {
            // A read not sent says nothing of the device.
            if let Some(io) = send(dev, sector, self.block_size as usize, true) {
                if ios.push(Some(io), GFP_KERNEL).is_err() {
                    break;
                }
            }
        }
        if ios.is_empty() {
            return AnyRead::NotSent;
        }
        loop {
            let mut running = 0;
            for slot in ios.iter_mut() {
                let Some(io) = slot else { continue };
                match io.wait(Msecs(0)) {
                    Some(Ok(())) => return AnyRead::Answered,
                    // Failed: no need to look again.
                    Some(Err(_)) => *slot = None,
                    None => running += 1,
                }
            }
            if running == 0 {
                return AnyRead::NoneWorked;
            }
            let bounded = !broken(Breakage::ReadsUnbounded);
            if bounded && started.elapsed().as_millis() as u64 >= u64::from(limit_ms) {
                return AnyRead::NoAnswer;
            }
            if halt() && !broken(Breakage::ReadsIgnoreHalt) {
                return AnyRead::Halted;
            }
            // Waits on one still running: any other may end meanwhile.
            if let Some(io) = ios.iter_mut().flatten().next() {
                // Its result is looked at by the next round.
                let _ended = io.wait(Msecs(HALT_POLL_MS.min(limit_ms)));
            }
        }
    }
}

/// What [`RemapTarget::any_reads`] found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum AnyRead {
    /// A read worked.
    Answered,
    /// Every read failed.
    NoneWorked,
    /// Those that did not fail did not answer within the limit.
    NoAnswer,
    /// Told to halt first.
    Halted,
    /// None could be sent (no memory, or too many timed reads running).
    NotSent,
}
