// SPDX-License-Identifier: GPL-2.0

//! Where a bio's per-bio data lies, and what it holds: the target's
//! [`Target::PerBio`] and where the bio's data stood in `map`.

use super::{offsets, Target};
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
    // `dm_per_bio_data()` written out: it is out of line in dm.c, and this
    // is on the path of every bio's `map` and `end_io`. A clone is the last
    // field of its `struct dm_target_io`, which is either on its own or the
    // last field of a `struct dm_io` (flag `DM_TIO_INSIDE_DM_IO`); the
    // per-bio data lies just before whichever of the two begins the block.
    let clone = bio.as_ptr().cast::<u8>();
    // SAFETY: the bio is a dm clone (the caller's guarantee), so it lies in
    // a `struct dm_target_io` whose `flags` are this far before it (the
    // layout of the kernel the module is built against, `offsets`), a
    // `u16` that dm core sets before it hands the clone over and does not
    // change while the target has it.
    let flags = unsafe {
        clone
            .sub(offsets::DM_TIO_FLAGS_BEFORE_BIO)
            .cast::<u16>()
            .read()
    };
    let before = if flags & (1 << offsets::DM_TIO_INSIDE_DM_IO_BIT) != 0 {
        offsets::DM_IO_BIO_OFFSET
    } else {
        offsets::DM_TARGET_IO_BIO_OFFSET
    };
    let size = size_of::<Slot<T::PerBio>>();
    // SAFETY: dm core allocates the per-bio data of the size the target
    // asked for (`size::<T>()`, set by `Ctr::from_raw`) right before the
    // structure that holds the clone, `before` bytes before it, aligned
    // for pointers; it is not null (an offset within the clone's
    // allocation).
    let data = unsafe { NonNull::new_unchecked(clone.sub(before + size).cast()) };
    // The kernel with lock debugging (the test kernel) checks this against
    // dm core's own answer, so a layout that does not match the running
    // kernel shows in the suite.
    #[cfg(CONFIG_PROVE_LOCKING)]
    {
        // SAFETY: as above, for dm core's function.
        let dm = unsafe { super::bindings::dm_per_bio_data(bio.as_ptr(), size) };
        if kernel::warn_on!(dm.cast::<Slot<T::PerBio>>() != data.as_ptr()) {
            // SAFETY: as above.
            return unsafe { NonNull::new_unchecked(dm.cast()) };
        }
    }
    data
}

/// Whether a clone is a duplicate of a flush, discard or the like
/// (`num_*_bios` above 1), which `dm_accept_partial_bio` refuses.
///
/// # Safety
///
/// `bio` must be a valid dm clone.
#[inline(always)]
pub(super) unsafe fn is_duplicate(bio: NonNull<bio>) -> bool {
    // SAFETY: as in `slot_ptr`.
    let flags = unsafe {
        bio.as_ptr()
            .cast::<u8>()
            .sub(offsets::DM_TIO_FLAGS_BEFORE_BIO)
            .cast::<u16>()
            .read()
    };
    flags & (1 << offsets::DM_TIO_IS_DUPLICATE_BIO_BIT) != 0
}
