// SPDX-License-Identifier: GPL-2.0

//! Scheduling and reclaim in long-running process context: `cond_resched`
//! and the NoIO allocation scope.
//!
//! C headers: [`include/linux/sched.h`](srctree/include/linux/sched.h),
//! [`include/linux/sched/mm.h`](srctree/include/linux/sched/mm.h)

use super::dm::bindings as b;
use kernel::prelude::*;

/// Lets another task run if one is due (`cond_resched`): long loops of
/// process context call it between steps. Must not be called in atomic
/// context (`might_sleep` reports it).
pub(crate) fn cond_resched() {
    // SAFETY: a plain call; it may sleep, as the doc says.
    unsafe { b::dmr_cond_resched() };
}

/// A scope in which allocations do not start I/O (`memalloc_noio_save`):
/// a worker that completes I/O must not wait for reclaim that waits for
/// that I/O.
///
/// # Invariants
///
/// Holds the flags of a `memalloc_noio_save` of the current task, restored
/// on drop; it is neither `Send` nor `Sync`, so it is dropped by the task
/// that entered it.
pub(crate) struct NoIoScope {
    flags: c_uint,
    _not_send: core::marker::PhantomData<*mut ()>,
}

impl NoIoScope {
    /// Enters the scope until the result is dropped.
    pub(crate) fn enter() -> Self {
        Self {
            // SAFETY: plain call; restored in the same task on drop.
            flags: unsafe { b::dmr_noio_save() },
            _not_send: core::marker::PhantomData,
        }
    }
}

impl Drop for NoIoScope {
    fn drop(&mut self) {
        // SAFETY: the flags of the matching save, in the same task (the
        // type is not `Send`).
        unsafe { b::dmr_noio_restore(self.flags) };
    }
}
