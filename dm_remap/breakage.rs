// SPDX-License-Identifier: GPL-2.0

//! Test builds only: one behaviour the product stands on, broken on
//! purpose, chosen by the `break_behaviour` module parameter, so that the
//! suite's broken-behaviour mode (`scripts/test-broken.sh`) can show that
//! some check fails for each. Other builds have no parameter, and
//! [`broken`] is `false` at compile time.

/// A behaviour to break; the parameter holds its number.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Breakage {
    /// A remap is acknowledged without its metadata commit.
    CommitSkipped = 1,
    /// A write that failed is not relocated: its bio fails.
    NoRelocation = 2,
    /// A read that failed does not make its block pending.
    NoPending = 3,
    /// Flushes reach the data device only, never the spare device.
    FlushDataOnly = 4,
    /// Bios that start in a switching block are not held: they go to the
    /// data device at once.
    NoHold = 5,
    /// Loading does not mark damaged or stale copies for rewriting.
    NoRepair = 6,
    /// A commit of unknown outcome rolls its blocks back instead of
    /// fencing them.
    NoFence = 7,
    /// A relocated write is acknowledged whatever its commit's outcome.
    AckBeforeCommit = 8,
    /// The dead-device probe always finds the data device alive.
    ProbeSaysAlive = 9,
    /// The scrub skips the rest of a step after a run of failed reads.
    ScrubSkipsAfterFailures = 10,
    /// A load offers retired spares again.
    RetiredFreeAfterLoad = 11,
    /// Loading takes the newest copy's version of each block without
    /// comparing the others (their blocks after the superblock read as
    /// failed), so an older version there goes live.
    OlderVersionLoaded = 12,
    /// A weak-block check makes no control read: a busy disk's slow reads
    /// are taken for weak blocks.
    WeakWithoutControl = 13,
    /// The target's own reads are not given up on when it halts (a
    /// suspend, `scrub stop`).
    ReadsIgnoreHalt = 14,
    /// Retries of failed reads and the dead-device probe wait for the
    /// disk with no time limit.
    ReadsUnbounded = 15,
}

/// Says in the kernel log which behaviour this test build breaks, if
/// any, so that the broken-behaviour mode can tell the parameter took
/// effect.
pub(crate) fn announce() {
    #[cfg(dmr_breakable)]
    {
        let n = *crate::module_parameters::break_behaviour.value();
        if n != 0 {
            kernel::pr_warn!("remap: test build: behaviour {} broken on purpose\n", n);
        }
    }
}

/// Whether `b` is the behaviour broken in this test build.
#[inline(always)]
#[cfg_attr(not(dmr_breakable), allow(unused_variables))]
pub(crate) fn broken(b: Breakage) -> bool {
    #[cfg(dmr_breakable)]
    {
        *crate::module_parameters::break_behaviour.value() == b as u32
    }
    #[cfg(not(dmr_breakable))]
    {
        // Nothing to compare `b` with: no behaviour is broken here.
        false
    }
}
