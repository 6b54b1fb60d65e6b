// SPDX-License-Identifier: GPL-2.0

//! Sleepable RCU whose read side may end in another context.
//!
//! C header: [`include/linux/srcu.h`](srctree/include/linux/srcu.h)
//!
//! `map` enters a read section for each bio and `end_io` leaves it, so a
//! writer can wait, with [`Srcu::synchronize`], for every bio that was
//! mapped before it changed something (`srcu_down_read_fast` and
//! `srcu_up_read_fast`: the SRCU-fast-updown flavour, whose readers pay no
//! full memory barrier; `synchronize_srcu` pays for it instead).
//!
//! Every bio enters and leaves a section, so on x86-64 SMP kernels (not UML) with
//! Tree SRCU (and `this_cpu_inc` NMI-safe, as it is there) the read side is
//! `__srcu_read_lock_fast_updown` and `__srcu_read_unlock_fast_updown`
//! written out here: one read of `srcu_ctrp` and one `%gs`-relative
//! increment each, with no call. With `CONFIG_PROVE_RCU` the C checks of
//! `srcu_down_read_fast` and `srcu_up_read_fast` are called beside them.
//! Other kernels call the C functions.

use super::dm::bindings as b;
use core::ptr::NonNull;
use kernel::bindings::srcu_struct;
use kernel::prelude::*;

/// Takes the first item where `$cond` holds and the second elsewhere, as
/// `cfg_if` does: the condition is written once.
macro_rules! inline_reader_or_else {
    ($cond:meta; $inline:item $other:item) => {
        #[cfg($cond)]
        $inline
        #[cfg(not($cond))]
        $other
    };
}

// The read side can be written out on x86-64 SMP with Tree SRCU, not UML:
// `%gs`-based per-CPU data, NMI-safe `this_cpu` operations.
inline_reader_or_else! {
    all(
        target_arch = "x86_64",
        CONFIG_X86,
        CONFIG_SMP,
        not(CONFIG_UML),
        CONFIG_TREE_SRCU,
        not(CONFIG_NEED_SRCU_NMI_SAFE)
    );
    /// The read side written out: one read of `srcu_ctrp` and one `%gs`-based
    /// increment (`__srcu_read_lock_fast_updown`,
    /// `__srcu_read_unlock_fast_updown`).
    mod reader {
        use super::{b, c_void, srcu_struct};
        use crate::kapi::percpu::this_cpu_inc;
        use core::mem::offset_of;
        use core::ptr::{addr_of, read_volatile};
        use kernel::bindings::{srcu_ctr, srcu_data};

        /// Counts a reader on the domain's current counter; returns the
        /// counter's per-CPU address, the section's token.
        ///
        /// # Safety
        ///
        /// `ssp` must be an initialised `srcu_struct` of the fast-updown
        /// flavour.
        #[inline(always)]
        pub(super) unsafe fn down(ssp: *mut srcu_struct) -> *mut c_void {
            #[cfg(CONFIG_PROVE_RCU)]
            // SAFETY: `ssp` is initialised (the caller's promise).
            unsafe {
                b::dmr_srcu_check_reader(ssp)
            };
            // SAFETY: as the caller promises; `srcu_ctrp` is read once, as
            // `READ_ONCE` does.
            let scp = unsafe { read_volatile(addr_of!((*ssp).srcu_ctrp)) } as usize;
            // SAFETY: `scp` is the per-CPU address of one of the domain's two
            // `srcu_ctr`s, allocated while the domain is. Per-CPU addresses
            // are plain numbers here: wrapping arithmetic, as C's.
            unsafe { this_cpu_inc(scp.wrapping_add(offset_of!(srcu_ctr, srcu_locks))) };
            scp as *mut c_void
        }

        /// Counts a reader's end on the counter `token` names; a token that
        /// names no counter of the domain is refused with a warning.
        ///
        /// # Safety
        ///
        /// As for [`down`].
        #[inline(always)]
        pub(super) unsafe fn up(ssp: *mut srcu_struct, token: *mut c_void) {
            let scp = token as usize;
            // SAFETY: `ssp` is initialised (the caller's promise); `sda` is set
            // at initialisation and never changes.
            let sda = unsafe { (*ssp).sda } as usize;
            // `&ssp->sda->srcu_ctrs[0]` and `[1]`, as per-CPU addresses.
            let first = sda.wrapping_add(offset_of!(srcu_data, srcu_ctrs));
            if scp != first && scp != first.wrapping_add(size_of::<srcu_ctr>()) {
                // SAFETY: a plain call.
                unsafe { b::dmr_srcu_bad_token() };
                return;
            }
            #[cfg(CONFIG_PROVE_RCU)]
            // SAFETY: `ssp` is initialised (the caller's promise).
            unsafe {
                b::dmr_srcu_check_reader(ssp)
            };
            // SAFETY: `scp` is one of the domain's two counters (checked
            // above), allocated while the domain is; the `asm!` keeps the
            // section's accesses before it.
            unsafe { this_cpu_inc(scp.wrapping_add(offset_of!(srcu_ctr, srcu_unlocks))) };
        }
    }

    /// The read side through the C functions, on every other kernel.
    mod reader {
        use super::{b, c_void, srcu_struct};

        /// `srcu_down_read_fast`.
        ///
        /// # Safety
        ///
        /// `ssp` must be an initialised `srcu_struct` of the fast-updown
        /// flavour.
        #[inline(always)]
        pub(super) unsafe fn down(ssp: *mut srcu_struct) -> *mut c_void {
            // SAFETY: as the caller promises.
            unsafe { b::dmr_srcu_down_read(ssp) }
        }

        /// `srcu_up_read_fast`; `dmr_srcu_up_read` refuses a token that names
        /// no counter of the domain.
        ///
        /// # Safety
        ///
        /// As for [`down`].
        #[inline(always)]
        pub(super) unsafe fn up(ssp: *mut srcu_struct, token: *mut c_void) {
            // SAFETY: as the caller promises.
            unsafe { b::dmr_srcu_up_read(ssp, token) }
        }
    }
}

/// An SRCU domain.
///
/// # Invariants
///
/// `ssp` is an initialised `srcu_struct` of the fast-updown flavour from
/// `dmr_srcu_alloc`, cleaned up and freed on drop.
pub(crate) struct Srcu {
    ssp: NonNull<srcu_struct>,
}

// SAFETY: SRCU read and write operations may run on any CPU.
unsafe impl Send for Srcu {}
// SAFETY: see `Send`.
unsafe impl Sync for Srcu {}

/// The token of an entered read section (the per-CPU counter it
/// incremented); [`Srcu::up_read`] consumes it. Neither `Copy` nor
/// `Clone`, and made only by [`Srcu::down_read`]: a section is left once.
/// A target that leaves the section in `end_io` keeps the token in its
/// per-bio data (an `Option<ReadIndex>` there, which starts as `None`): no
/// number stands in for it. A token of another domain is refused by
/// `up_read` with a warning.
///
/// A token cannot be left twice:
///
/// ```compile_fail
/// fn twice(srcu: &Srcu) {
///     let idx = srcu.down_read();
///     srcu.up_read(idx);
///     srcu.up_read(idx); // error[E0382]: use of moved value: `idx`
/// }
/// ```
pub(crate) struct ReadIndex(*mut c_void);

// SAFETY: the fast-updown flavour lets a section end on any CPU and in any
// context: the token is a plain address, used only by `up_read`.
unsafe impl Send for ReadIndex {}

impl Srcu {
    /// A new SRCU domain.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: a plain allocation call, in process context.
        let ssp = unsafe { b::dmr_srcu_alloc() };
        // INVARIANT: non-null means allocated and initialised.
        NonNull::new(ssp).map(|ssp| Self { ssp }).ok_or(ENOMEM)
    }

    /// Enters a read section that [`Srcu::up_read`] may leave from any
    /// context.
    #[inline(always)]
    pub(crate) fn down_read(&self) -> ReadIndex {
        // SAFETY: `ssp` is initialised, of the fast-updown flavour (type
        // invariant).
        ReadIndex(unsafe { reader::down(self.ssp.as_ptr()) })
    }

    /// Leaves a read section entered with [`Srcu::down_read`]. A token
    /// that names no counter of this domain is refused with a warning.
    #[inline(always)]
    pub(crate) fn up_read(&self, idx: ReadIndex) {
        // SAFETY: as in `down_read`.
        unsafe { reader::up(self.ssp.as_ptr(), idx.0) };
    }

    /// Waits until every read section entered before this call has been
    /// left. Sleeps.
    pub(crate) fn synchronize(&self) {
        // SAFETY: `ssp` is initialised; called in process context.
        unsafe { kernel::bindings::synchronize_srcu_expedited(self.ssp.as_ptr()) };
    }
}

impl Drop for Srcu {
    fn drop(&mut self) {
        // SAFETY: initialised (type invariant). `dmr_srcu_free` waits for
        // the domain's callbacks (`srcu_barrier`), as the kernel's Rust SRCU
        // does, and leaves a domain that still has a reader allocated, with
        // a warning, so a token kept somewhere never points at freed memory.
        unsafe { b::dmr_srcu_free(self.ssp.as_ptr()) };
    }
}
