// SPDX-License-Identifier: GPL-2.0

//! The statistics counters of a device, kept across reloads of its table.
//!
//! A table's counters are per-CPU and go with the table; monitoring takes
//! rates over them, so a `dmsetup reload` must not reset them. Each remap
//! target of a mapped device (by its first sector in the table) has one
//! entry here while any table holding it exists: a suspended table adds
//! its counters to the entry and starts again from zero, and the counters
//! read are the entry's plus the table's own. Removing the device (its
//! last table) drops the entry: a device created again starts from zero.

use crate::kapi::percpu::PerCpuCounters;
use crate::stat;
use kernel::prelude::*;

/// The counters that tables of one target gave back when suspended.
pub(super) struct Entry {
    device: usize,
    begin: u64,
    /// Tables of this target that hold the entry.
    tables: u32,
    sums: [u64; stat::COUNT],
}

crate::kapi::global::global_mutex! {
    /// The counters of every device's targets.
    pub(super) static DEVICE_STATS: Mutex<KVec<Entry>> = KVec::new();
}

/// A table's hold on its device's counters, given up on drop.
///
/// # Invariants
///
/// While it exists, [`DEVICE_STATS`] holds an entry of its `device` and
/// `begin`, whose `tables` counts it.
pub(super) struct DeviceStats {
    device: usize,
    begin: u64,
}

impl DeviceStats {
    /// Holds the counters of the target at `begin` in `device`, made when
    /// no other table of the device holds them.
    pub(super) fn join(device: usize, begin: u64) -> Result<Self> {
        let mut entries = DEVICE_STATS.lock();
        match entries
            .iter_mut()
            .find(|e| e.device == device && e.begin == begin)
        {
            Some(e) => e.tables += 1,
            None => entries.push(
                Entry {
                    device,
                    begin,
                    tables: 1,
                    sums: [0; stat::COUNT],
                },
                GFP_KERNEL,
            )?,
        }
        // INVARIANT: the entry is there, counting this hold.
        Ok(Self { device, begin })
    }

    /// Runs `f` on the entry under the lock. The entry exists (type
    /// invariant); were it missing, `f` would not run, which loses only
    /// statistics.
    fn with_entry<R: Default>(&self, f: impl FnOnce(&mut Entry) -> R) -> R {
        let mut entries = DEVICE_STATS.lock();
        entries
            .iter_mut()
            .find(|e| e.device == self.device && e.begin == self.begin)
            .map_or_else(R::default, f)
    }

    /// Adds the table's counters to the device's and zeroes them. Only
    /// while no bio runs through the table (suspended or going), so no
    /// increment is lost.
    pub(super) fn give_back(&self, own: &PerCpuCounters<{ stat::COUNT }>) {
        self.with_entry(|e| {
            for (i, sum) in e.sums.iter_mut().enumerate() {
                *sum += own.sum(i);
                own.clear(i);
            }
        });
    }

    /// The device's counters: what earlier tables and suspends gave back,
    /// and the table's own.
    pub(super) fn read(&self, own: &PerCpuCounters<{ stat::COUNT }>) -> [u64; stat::COUNT] {
        // Both parts under the lock: a suspend that gives the counters back
        // moves them between the two whole, so nothing is counted twice.
        self.with_entry(|e| {
            let mut sums = [0; stat::COUNT];
            for (i, sum) in sums.iter_mut().enumerate() {
                *sum = e.sums[i] + own.sum(i);
            }
            sums
        })
    }

    /// One counter of [`Self::read`].
    pub(super) fn read_one(&self, own: &PerCpuCounters<{ stat::COUNT }>, i: usize) -> u64 {
        self.with_entry(|e| e.sums.get(i).copied().unwrap_or(0) + own.sum(i))
    }

    /// Zeroes the device's counters and the table's own (increments that
    /// race with it may be lost, as for any clear of statistics).
    pub(super) fn clear(&self, own: &PerCpuCounters<{ stat::COUNT }>) {
        self.with_entry(|e| {
            e.sums = [0; stat::COUNT];
            for i in 0..stat::COUNT {
                own.clear(i);
            }
        });
    }
}

impl Drop for DeviceStats {
    fn drop(&mut self) {
        let mut entries = DEVICE_STATS.lock();
        if let Some(e) = entries
            .iter_mut()
            .find(|e| e.device == self.device && e.begin == self.begin)
        {
            e.tables -= 1;
        }
        entries.retain(|e| e.tables > 0);
        if entries.is_empty() {
            // Statics are not dropped on module unload: free the buffer
            // with the last entry (no table exists when the module goes).
            *entries = KVec::new();
        }
    }
}
