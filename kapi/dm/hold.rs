// SPDX-License-Identifier: GPL-2.0

//! Bios a target holds back in `map` and maps again later.

use super::{
    bindings as b,
    bio_list::{end_bio, TakenBios},
    disposition::MapKind,
    Bio, Ctr, MapResult, Target,
};
use core::{marker::PhantomData, ptr::NonNull};
use kernel::prelude::*;

/// Bios a target holds back instead of mapping them: `map` hands a bio to
/// the hold while a condition of the target's holds, and once it no longer
/// does the target releases the bios, which are mapped again and submitted
/// (`dm_submit_bio_remap`). Unlike `DM_MAPIO_REQUEUE`, which device-mapper
/// core turns into an I/O error for the rest of a split bio, this never
/// fails a bio. What the condition is, is the target's business.
///
/// # Invariants
///
/// `hold` comes from `dmr_hold_alloc` and is freed on drop; the bios on its
/// list are clones of a target of type `T` that `map` returned as
/// submitted.
pub(crate) struct BioHold<T: Target> {
    hold: NonNull<b::dmr_hold>,
    /// The target whose bios it holds.
    ti: *mut b::dm_target,
    _target: PhantomData<T>,
}

// SAFETY: the hold's state is protected by its irq-safe spinlock.
unsafe impl<T: Target> Send for BioHold<T> {}
// SAFETY: see `Send`.
unsafe impl<T: Target> Sync for BioHold<T> {}

impl<T: Target> BioHold<T> {
    /// An empty hold for the bios of the target under construction.
    pub(crate) fn new(ctx: &Ctr<'_, T>) -> Result<Self> {
        // SAFETY: a plain allocation call.
        let hold = unsafe { b::dmr_hold_alloc() };
        // INVARIANT: non-null means allocated, with an empty list.
        NonNull::new(hold)
            .map(|hold| Self {
                hold,
                ti: ctx.ti(),
                _target: PhantomData,
            })
            .ok_or(ENOMEM)
    }

    /// Takes `bio` if `still_held` says so, asked under the hold's lock
    /// (irqs off: it must not sleep), and returns the result `map` must
    /// return; otherwise hands the bio back. The target changes what
    /// `still_held` answers before it calls [`Self::release`], so a bio is
    /// never left behind. From `map`, or from `release`'s callback.
    pub(crate) fn defer<'a>(
        &self,
        bio: Bio<'a, T>,
        still_held: impl FnOnce() -> bool,
    ) -> Result<MapResult<'a>, Bio<'a, T>> {
        if !bio.takeable() {
            return Err(bio);
        }
        // SAFETY: `hold` is valid (type invariant).
        let flags = unsafe { b::dmr_hold_lock(self.hold.as_ptr()) };
        let held = still_held();
        if held {
            // SAFETY: `hold` is valid and locked; the bio is a clone handed
            // to `map` (which returns `Submitted` for it) or one taken from
            // the list again: either way ours to keep. `bio` is consumed.
            unsafe { b::dmr_hold_add(self.hold.as_ptr(), bio.raw()) };
        }
        // SAFETY: locked above with these flags.
        unsafe { b::dmr_hold_unlock(self.hold.as_ptr(), flags) };
        if held {
            Ok(MapResult::new(MapKind::Submitted))
        } else {
            Err(bio)
        }
    }

    /// Every held bio, taken off the hold.
    fn take(&self) -> TakenBios {
        // SAFETY: `hold` is valid (type invariant); what it gives is the
        // list of its bios, taken off it, ours to end.
        unsafe { TakenBios::new(b::dmr_hold_take(self.hold.as_ptr())) }
    }

    /// Takes every held bio and passes it to `route`, which maps it as
    /// `map` does. What it returns is carried out as device-mapper core
    /// would: remapped bios are submitted, submitted ones were taken
    /// (deferred again, or handed to a worker), and killed ones (or
    /// requeued, which cannot be honoured outside `map`) end with an I/O
    /// error, so that every bio taken from the hold ends exactly once.
    /// Process context.
    pub(crate) fn release(&self, mut route: impl for<'b> FnMut(Bio<'b, T>) -> MapResult<'b>) {
        for raw in self.take() {
            let raw = raw.as_ptr();
            // SAFETY: a held clone of a target of type `T`, off the list and
            // ours until it is disposed of below.
            let bio = unsafe { Bio::<T>::from_hold(raw, self.ti) };
            match route(bio).kind {
                // SAFETY: the clone was returned as submitted from `map` and
                // has been pointed at its device; it is submitted once.
                MapKind::Remapped => unsafe { b::dm_submit_bio_remap(raw, core::ptr::null_mut()) },
                MapKind::Submitted => {}
                // SAFETY: the clone is ours (returned as submitted from
                // `map`, taken by no one since); it is ended once, and
                // device-mapper core calls `end_io` for it.
                MapKind::Kill | MapKind::Requeue => unsafe {
                    end_bio(raw, b::dmr_status_DMR_STS_IOERR as u8)
                },
            }
        }
    }
}

impl<T: Target> Drop for BioHold<T> {
    fn drop(&mut self) {
        // A held bio is in flight, and a target is dropped only once its
        // bios have ended; a hold dropped earlier fails what it holds.
        drop(self.take());
        // SAFETY: valid (type invariant), its list empty.
        unsafe { b::dmr_hold_free(self.hold.as_ptr()) };
    }
}
