// SPDX-License-Identifier: GPL-2.0

//! The target's view of its `struct dm_target` in a callback.

use super::{bindings as b, callbacks::Private, BioQueue, Emitter, Target};
use core::ptr::NonNull;
use kernel::prelude::*;

/// The target's view of its `struct dm_target` in a callback, and the way
/// to the parts of the target the abstraction owns (its [`BioQueue`]).
///
/// # Invariants
///
/// `ti` points to a constructed `dm_target` of type `T` for `'a`, whose
/// private data is `private`. Its fields are read through the pointer
/// (never as a Rust reference): device-mapper core owns the structure.
pub(crate) struct TargetInfo<'a, T: Target> {
    ti: NonNull<b::dm_target>,
    private: &'a Private<T>,
}

impl<'a, T: Target> TargetInfo<'a, T> {
    /// # Safety
    ///
    /// `ti` must point to a constructed `dm_target` of type `T`, valid for
    /// `'a`, whose private data is `private`.
    #[inline(always)]
    pub(super) unsafe fn from_raw(ti: *mut b::dm_target, private: &'a Private<T>) -> Self {
        Self {
            // SAFETY: the caller guarantees `ti` is valid, hence not null.
            ti: unsafe { NonNull::new_unchecked(ti) },
            private,
        }
    }

    /// First sector of the target in the mapped device.
    #[inline(always)]
    pub(crate) fn begin(&self) -> u64 {
        // SAFETY: valid (type invariant); set before the constructor ran
        // and not changed while the target exists.
        unsafe { (*self.ti.as_ptr()).begin }
    }

    /// Length of the target in sectors.
    pub(crate) fn len(&self) -> u64 {
        // SAFETY: as in `begin`.
        unsafe { (*self.ti.as_ptr()).len }
    }

    /// The offset of a mapped-device sector inside this target
    /// (`dm_target_offset`).
    #[inline(always)]
    pub(crate) fn target_offset(&self, sector: u64) -> u64 {
        // Device-mapper core sends a target only bios that start inside
        // it, so `sector >= begin` for those; any other input wraps
        // instead of panicking (the result is then as meaningless as the
        // input).
        sector.wrapping_sub(self.begin())
    }

    /// The queue of bios the target keeps for its worker, if the
    /// constructor asked for one ([`super::Ctr::set_bio_queue`]).
    #[inline(always)]
    pub(crate) fn kept(&self) -> Option<&'a BioQueue<T>> {
        self.private.queue.as_ref().map(|q| q.queue())
    }

    /// Raises a table event: `dmsetup wait` returns. Process context.
    pub(crate) fn raise_event(&self) {
        // SAFETY: `ti` is valid and belongs to a live table (type
        // invariant).
        unsafe { b::dm_table_event((*self.ti.as_ptr()).table) };
    }

    /// The target type's name and version, as IMA measurements print them.
    pub(crate) fn emit_name_version(&self, out: &mut Emitter<'_>) {
        // `T` is the target's type (type invariant): its own constants.
        let v = T::VERSION;
        out.emit(fmt!(
            "target_name={},target_version={}.{}.{}",
            T::NAME.to_str().unwrap_or("?"),
            v[0],
            v[1],
            v[2]
        ));
    }
}
