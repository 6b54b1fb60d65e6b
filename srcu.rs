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

use crate::dm::bindings as b;
use core::ptr::NonNull;
use kernel::prelude::*;

/// An SRCU domain.
///
/// # Invariants
///
/// `ssp` is an initialised `srcu_struct` from `dmr_srcu_alloc`, cleaned up
/// and freed on drop.
pub(crate) struct Srcu {
    ssp: NonNull<kernel::bindings::srcu_struct>,
}

// SAFETY: SRCU read and write operations may run on any CPU.
unsafe impl Send for Srcu {}
// SAFETY: see `Send`.
unsafe impl Sync for Srcu {}

/// The token of an entered read section (the per-CPU counter it
/// incremented); [`Srcu::up_read`] consumes it. Not `Copy`: a section is
/// left once. A token made from any number ([`ReadIndex::from_raw`]) is
/// memory-safe to pass back: `up_read` checks that it names a counter of
/// its domain and refuses (with a warning) one that does not.
pub(crate) struct ReadIndex(*mut c_void);

impl ReadIndex {
    /// The token as stored in per-bio data.
    pub(crate) fn into_raw(self) -> u64 {
        self.0 as usize as u64
    }

    /// A token read back from per-bio data.
    pub(crate) fn from_raw(raw: u64) -> Self {
        Self(raw as usize as *mut c_void)
    }
}

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
        // SAFETY: `ssp` is initialised (type invariant).
        ReadIndex(unsafe { b::dmr_srcu_down_read(self.ssp.as_ptr()) })
    }

    /// Leaves a read section entered with [`Srcu::down_read`].
    #[inline(always)]
    pub(crate) fn up_read(&self, idx: ReadIndex) {
        // SAFETY: `ssp` is initialised; `idx` came from `down_read` on the
        // same domain (callers keep it in the bio they mapped).
        unsafe { b::dmr_srcu_up_read(self.ssp.as_ptr(), idx.0) };
    }

    /// Waits until every read section entered before this call has been
    /// left. Sleeps.
    pub(crate) fn synchronize(&self) {
        // SAFETY: `ssp` is initialised; called in process context.
        unsafe { b::dmr_srcu_synchronize(self.ssp.as_ptr()) };
    }
}

impl Drop for Srcu {
    fn drop(&mut self) {
        // SAFETY: initialised (type invariant); no reader is left once the
        // owner is dropped (all bios of the target have ended).
        unsafe { b::dmr_srcu_free(self.ssp.as_ptr()) };
    }
}
