// SPDX-License-Identifier: GPL-2.0

//! The spare low-water mark (`spare_low_water <percent>`): one table event
//! when free spares fall below it, as dm-thin's `low_water_mark`, and a
//! status flag while they are below.

use crate::spare_alloc::SpareAllocator;
use crate::{Admin, RemapTarget, TargetInfo};
use kernel::prelude::*;

/// Whether the free spares of `spares` are below `percent` of them.
pub(super) fn below(percent: Option<u32>, spares: &SpareAllocator) -> bool {
    percent.is_some_and(|percent| {
        u64::from(spares.free()) * 100 < u64::from(percent) * u64::from(spares.capacity())
    })
}

impl RemapTarget {
    /// Whether free spares are below the table line's low-water mark.
    /// Under the admin lock.
    pub(super) fn below_low_water(&self, admin: &Admin) -> bool {
        below(self.features.spare_low_water, &admin.spares)
    }

    /// Raises one table event when free spares have fallen below the
    /// low-water mark since the last event, and arms it again once they
    /// are back above it (a spare freed by `unremap`). Call it under the
    /// admin lock after anything that allocates or frees spares.
    pub(super) fn watch_low_water(&self, ti: &TargetInfo<'_>, admin: &mut Admin) {
        let below = self.below_low_water(admin);
        if below && !admin.low_water_reported {
            pr_warn!(
                "remap: free spares fell below the low-water mark: {} of {} left\n",
                admin.spares.free(),
                admin.spares.capacity()
            );
            ti.raise_event();
        }
        admin.low_water_reported = below;
    }
}
