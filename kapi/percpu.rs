// SPDX-License-Identifier: GPL-2.0

//! Per-CPU statistics counters.
//!
//! C header: [`include/linux/percpu.h`](srctree/include/linux/percpu.h)

use super::dm::bindings as b;
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
        // The C side takes the count as a `u32`: a larger `N` does not
        // build, rather than allocate fewer counters than `inc` indexes.
        const { assert!(N <= u32::MAX as usize) };
        // SAFETY: a plain allocation call.
        let ptr = unsafe { b::dmr_counters_alloc(N as u32) };
        // INVARIANT: a non-null result is an allocation of `N` counters.
        NonNull::new(ptr).map(|ptr| Self { ptr }).ok_or(ENOMEM)
    }

    /// Adds one to counter `i` on this CPU. Safe in any context.
    #[inline(always)]
    pub(crate) fn inc(&self, i: usize) {
        if i < N {
            // SAFETY: `ptr` is a per-CPU allocation of `N` counters (type
            // invariant), alive while `self` is; `i < N`. The address is
            // computed as an integer: a per-CPU address is no pointer
            // into an object, only an offset that `this_cpu_inc` resolves.
            unsafe {
                this_cpu_inc((self.ptr.as_ptr() as usize).wrapping_add(i * size_of::<u64>()))
            };
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

/// Adds one to this CPU's copy of the per-CPU 8-byte counter at per-CPU
/// address `pcp`, as `this_cpu_inc` does. On x86-64 (not UML, whose per-CPU
/// data is not `%gs`-based) that is one `inc` relative to `%gs` (what
/// `this_cpu_inc` compiles to), inline, which neither preemption, an
/// interrupt nor an NMI can split; elsewhere a call to the C
/// `this_cpu_inc`, with that architecture's guarantees (preemption and
/// interrupts; NMIs only where `this_cpu` operations are NMI-safe).
///
/// # Safety
///
/// `pcp` must be the per-CPU address (as `alloc_percpu` returns, or `&var`
/// of a per-CPU variable) of an 8-byte counter (`u64`, or `atomic_long_t`
/// on 64-bit) that stays allocated for the call.
#[inline(always)]
pub(crate) unsafe fn this_cpu_inc(pcp: usize) {
    #[cfg(all(target_arch = "x86_64", CONFIG_X86, CONFIG_SMP, not(CONFIG_UML)))]
    // SAFETY: on x86-64 SMP kernels `%gs` is based at this CPU's per-CPU
    // offset, so `%gs:(pcp)` is this CPU's copy of the per-CPU `u64` at
    // `pcp`, allocated (the caller's promise). The `asm!` is not `nomem`,
    // so it also orders memory accesses in the compiler's eyes as the C
    // `this_cpu_inc` (a `volatile` asm with a memory operand) does.
    unsafe {
        kernel::asm!("incq %gs:({pcp})"; pcp = in(reg) pcp, options(nostack))
    };
    #[cfg(not(all(target_arch = "x86_64", CONFIG_X86, CONFIG_SMP, not(CONFIG_UML))))]
    // SAFETY: as the caller promises.
    unsafe {
        b::dmr_this_cpu_inc(pcp as *mut u64)
    };
}

impl<const N: usize> Drop for PerCpuCounters<N> {
    fn drop(&mut self) {
        // SAFETY: allocated by `dmr_counters_alloc` (type invariant), freed
        // once.
        unsafe { b::dmr_counters_free(self.ptr.as_ptr()) };
    }
}
