// SPDX-License-Identifier: GPL-2.0

//! Where a bio's per-bio data lies, and what it holds: the target's
//! [`Target::PerBio`] and where the bio's data stood in `map`.

use super::{bindings::dm_target, BioOp, Target};
use core::ptr::NonNull;
use kernel::bindings::{bio, bvec_iter};

/// The per-bio data of a target: the position of the bio's data that
/// [`super::Bio::record_position`] saves (for [`super::KeptBio::copy`]:
/// `end_io` sees the iterator advanced), and the target's own data.
#[repr(C)]
pub(super) struct Slot<P> {
    pub(super) iter: bvec_iter,
    pub(super) data: P,
}

/// Whether bios of `T` carry a [`Slot`]: the target has per-bio data of
/// its own, or a worker that copies the data of kept bios.
pub(super) const fn has_slot<T: Target>() -> bool {
    size_of::<T::PerBio>() != 0 || T::HAS_PROCESS_KEPT
}

/// The size of the per-bio data `T` asks device-mapper core for.
pub(super) const fn size<T: Target>() -> usize {
    // Device-mapper core puts the per-bio data right before a structure
    // aligned for pointers, at a multiple of its size below it: a slot
    // that needs more alignment cannot be placed.
    const {
        assert!(align_of::<Slot<T::PerBio>>() <= align_of::<*const u8>());
        assert!(size_of::<Slot<T::PerBio>>() <= u32::MAX as usize);
        // Per-bio data is never dropped: `map` overwrites it, and a bio
        // killed in `map` never reaches `end_io`.
        assert!(!core::mem::needs_drop::<T::PerBio>());
    }
    if has_slot::<T>() {
        size_of::<Slot<T::PerBio>>()
    } else {
        0
    }
}

/// Where the [`Slot`] of a dm clone lies.
///
/// # Safety
///
/// `bio` must be a valid dm clone of a target of type `T`, which has a slot
/// ([`has_slot`]).
#[inline(always)]
pub(super) unsafe fn slot_ptr<T: Target>(bio: NonNull<bio>) -> NonNull<Slot<T::PerBio>> {
    let size = size_of::<Slot<T::PerBio>>();
    #[cfg(dmr_dm_core)]
    // SAFETY: the caller's guarantee, passed on.
    if let Some(data) = unsafe { inline::slot(bio, size) } {
        return data.cast();
    }
    // SAFETY: the bio is a valid dm clone of a target that asked for
    // per-bio data of `size` bytes (`size::<T>()`, set by `Ctr::from_raw`);
    // dm core returns where it lies, which is not null (an offset within the
    // clone's allocation) and aligned for pointers.
    unsafe { NonNull::new_unchecked(super::bindings::dm_per_bio_data(bio.as_ptr(), size).cast()) }
}

/// `dm_per_bio_data()` written out, where the module was built with dm
/// core's private `dm-core.h` (a kernel source tree, not a headers
/// package): it is out of line in dm.c, and this is on the path of every
/// bio's `map` and `end_io`.
///
/// The layout is a fact of the kernel the module was built against, and the
/// running kernel may not be it (a module loaded into a kernel rebuilt with
/// other options). So each of the two layouts is checked against dm core's
/// own answer on the first bio that has it, on every kernel; after a
/// mismatch, which warns once, dm core answers for good.
#[cfg(dmr_dm_core)]
mod inline {
    use super::super::{bindings, offsets};
    use core::{
        ptr::NonNull,
        sync::atomic::{AtomicU8, Ordering::Relaxed},
    };
    use kernel::bindings::bio;

    /// The clone is on its own in its `struct dm_target_io`: checked.
    const TIO_CHECKED: u8 = 1 << 0;
    /// The clone is inside a `struct dm_io`: checked.
    const IO_CHECKED: u8 = 1 << 1;
    /// A layout did not match: dm core answers.
    const MISMATCH: u8 = 1 << 2;

    /// What is known of the layout in the running kernel.
    static LAYOUT: AtomicU8 = AtomicU8::new(0);

    /// Where the per-bio data of `size` bytes of the clone `bio` lies, or
    /// `None` if the inline layout is not to be used.
    ///
    /// # Safety
    ///
    /// `bio` must be a valid dm clone of a target that asked for `size`
    /// bytes of per-bio data.
    #[inline(always)]
    pub(super) unsafe fn slot(bio: NonNull<bio>, size: usize) -> Option<NonNull<u8>> {
        let known = LAYOUT.load(Relaxed);
        if known & MISMATCH != 0 {
            return None;
        }
        // A clone is the last field of its `struct dm_target_io`, which is
        // either on its own or the last field of a `struct dm_io` (flag
        // `DM_TIO_INSIDE_DM_IO`); the per-bio data lies just before
        // whichever of the two begins the block.
        let clone = bio.as_ptr().cast::<u8>();
        // SAFETY: the bio is a dm clone (the caller's guarantee), so it lies
        // in a `struct dm_target_io` whose `flags` are this far before it
        // (the layout of the kernel the module is built against, checked
        // below against the running one before it is trusted), a `u16`
        // that dm core sets before it hands the clone over and does not
        // change while the target has it.
        let flags = unsafe {
            clone
                .sub(offsets::DM_TIO_FLAGS_BEFORE_BIO)
                .cast::<u16>()
                .read()
        };
        let (before, checked) = if flags & (1 << offsets::DM_TIO_INSIDE_DM_IO_BIT) != 0 {
            (offsets::DM_IO_BIO_OFFSET, IO_CHECKED)
        } else {
            (offsets::DM_TARGET_IO_BIO_OFFSET, TIO_CHECKED)
        };
        let data = clone.wrapping_sub(before + size);
        if known & checked != 0 {
            // SAFETY: this layout gave dm core's answer before; dm core
            // allocates the per-bio data right before the structure that
            // holds the clone, so it is not null.
            return Some(unsafe { NonNull::new_unchecked(data) });
        }
        // SAFETY: as in `super::slot_ptr`.
        let dm = unsafe { bindings::dm_per_bio_data(bio.as_ptr(), size) };
        if dm.cast::<u8>() == data {
            LAYOUT.fetch_or(checked, Relaxed);
            // SAFETY: dm core's answer, not null.
            Some(unsafe { NonNull::new_unchecked(data) })
        } else {
            if LAYOUT.fetch_or(MISMATCH, Relaxed) & MISMATCH == 0 {
                kernel::pr_warn!(
                    "dm per-bio data is not where this module was built to find it: \
                     the running kernel is not the one it was built against; \
                     asking dm core for every bio\n"
                );
            }
            None
        }
    }
}

/// Whether a clone is one of several duplicates of a flush, discard,
/// secure erase or write-zeroes (the target's `num_*_bios` above 1), which
/// `dm_accept_partial_bio` refuses. Device-mapper core flags exactly those
/// (`DM_TIO_IS_DUPLICATE_BIO`, set only where it sends more than one); this
/// asks the target's counts instead, which public `device-mapper.h` has.
///
/// # Safety
///
/// `ti` must be a valid `dm_target`.
#[inline(always)]
pub(super) unsafe fn is_duplicate(ti: *const dm_target, op: BioOp) -> bool {
    // SAFETY: valid by the caller's guarantee; dm core sets the counts in
    // the constructor and does not change them while the table is live.
    let ti = unsafe { &*ti };
    let count = match op {
        BioOp::Flush => ti.num_flush_bios,
        BioOp::Discard => ti.num_discard_bios,
        BioOp::SecureErase => ti.num_secure_erase_bios,
        BioOp::WriteZeroes => ti.num_write_zeroes_bios,
        _ => return false,
    };
    count > 1
}
