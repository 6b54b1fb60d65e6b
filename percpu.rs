// SPDX-License-Identifier: GPL-2.0

//! Per-CPU statistics counters.
//!
//! C header: [`include/linux/percpu.h`](srctree/include/linux/percpu.h)

use crate::dm::bindings as b;
use core::ptr::NonNull;
use kernel::prelude::*;

/// `N` per-CPU `u64` counters: an increment touches only the current
/// CPU's copy, a read sums over all CPUs.
///
/// # Invariants
///
/// `ptr` is a per-CPU allocation of `N` `u64`s from `dmr_counters_alloc`,
/// freed on drop.
pub(crate) struct PerCpuCounters<const N: usize> {
    ptr: NonNull<u64>,
}

// SAFETY: the counters are only changed with this_cpu operations and read
// with per-CPU loads, which any CPU may do.
unsafe impl<const N: usize> Send for PerCpuCounters<N> {}
// SAFETY: see `Send`.
unsafe impl<const N: usize> Sync for PerCpuCounters<N> {}

impl<const N: usize> PerCpuCounters<N> {
    /// Allocates `N` zeroed counters.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: a plain allocation call.
        let ptr = unsafe { b::dmr_counters_alloc(N as u32) };
        // INVARIANT: a non-null result is an allocation of `N` counters.
        NonNull::new(ptr).map(|ptr| Self { ptr }).ok_or(ENOMEM)
    }

    /// Adds one to counter `i` on this CPU. Safe in any context.
    #[inline(always)]
    pub(crate) fn inc(&self, i: usize) {
        if i < N {
            // SAFETY: `ptr` holds `N` counters (type invariant), `i < N`.
            unsafe { b::dmr_counter_inc(self.ptr.as_ptr(), i as u32) };
        }
    }

    /// The sum of counter `i` over all CPUs.
    pub(crate) fn sum(&self, i: usize) -> u64 {
        if i < N {
            // SAFETY: `ptr` holds `N` counters (type invariant), `i < N`.
            unsafe { b::dmr_counter_sum(self.ptr.as_ptr(), i as u32) }
        } else {
            0
        }
    }

    /// Sets counter `i` to zero on every CPU (racing increments may be
    /// lost, which is fine for statistics).
    pub(crate) fn clear(&self, i: usize) {
        if i < N {
            // SAFETY: `ptr` holds `N` counters (type invariant), `i < N`.
            unsafe { b::dmr_counter_clear(self.ptr.as_ptr(), i as u32) };
        }
    }
}

impl<const N: usize> Drop for PerCpuCounters<N> {
    fn drop(&mut self) {
        // SAFETY: allocated by `dmr_counters_alloc` (type invariant), freed
        // once.
        unsafe { b::dmr_counters_free(self.ptr.as_ptr()) };
    }
}
