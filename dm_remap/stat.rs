// SPDX-License-Identifier: GPL-2.0

//! The statistics counters, by index.

pub(crate) const READS: usize = 0;
pub(crate) const WRITES: usize = 1;
pub(crate) const OTHER_BIOS: usize = 2;
pub(crate) const REMAPPED_READS: usize = 3;
pub(crate) const REMAPPED_WRITES: usize = 4;
pub(crate) const REMAPPED_OTHER: usize = 5;
pub(crate) const SPLITS: usize = 6;
pub(crate) const DEFERRED: usize = 7;
pub(crate) const READ_ERRORS: usize = 8;
pub(crate) const WRITE_ERRORS: usize = 9;
pub(crate) const OTHER_ERRORS: usize = 10;
pub(crate) const TRANSIENT_ERRORS: usize = 11;
pub(crate) const AUTO_REMAPS: usize = 12;
pub(crate) const SPARE_WRITE_ERRORS: usize = 13;
pub(crate) const PENDING_MARKED: usize = 14;
pub(crate) const PENDING_CLEARED: usize = 15;
pub(crate) const FAILED_BIOS: usize = 16;
pub(crate) const FENCED_BIOS: usize = 17;
pub(crate) const DEVICE_DOWN_GROUPS: usize = 18;
pub(crate) const SLOW_READS: usize = 19;
pub(crate) const WEAK_REMAPS: usize = 20;
pub(crate) const COUNT: usize = 21;
pub(crate) const NAMES: [&str; COUNT] = [
    "reads",
    "writes",
    "other_bios",
    "remapped_reads",
    "remapped_writes",
    "remapped_other",
    "splits",
    "deferred",
    "read_errors",
    "write_errors",
    "other_errors",
    "transient_errors",
    "auto_remaps",
    "spare_write_errors",
    "pending_marked",
    "pending_cleared",
    "failed_bios",
    "fenced_bios",
    "device_down_groups",
    "slow_reads",
    "weak_remaps",
];
