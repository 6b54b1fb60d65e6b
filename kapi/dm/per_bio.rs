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
/// other options). So every bio's `dm_target_io` magic (and, inside a
/// `dm_io`, that one's too) is checked where the layout puts it, and the
/// inline answer is used only once each of the two layouts gave dm core's
/// own answer on a bio of its own; until then, and after any mismatch
/// (which warns once and hands every later bio to dm core), dm core
/// answers. The kernel with lock debugging (the test kernel) compares every
/// bio.
#[cfg(dmr_dm_core)]
mod inline {
    use super::super::{bindings, offsets};
    use core::{
        ptr::NonNull,
        sync::atomic::{AtomicU8, Ordering::Relaxed},
    };
    use kernel::bindings::bio;

    /// A clone on its own in its `struct dm_target_io` gave dm core's
    /// answer.
    const TIO_CHECKED: u8 = 1 << 0;
    /// A clone inside a `struct dm_io` gave dm core's answer.
    const IO_CHECKED: u8 = 1 << 1;
    /// Both layouts are known good.
    const CHECKED: u8 = TIO_CHECKED | IO_CHECKED;
    /// A layout did not match: dm core answers.
    const MISMATCH: u8 = 1 << 2;

    /// What is known of the layout in the running kernel.
    static LAYOUT: AtomicU8 = AtomicU8::new(0);

    /// Warns, once, that the layout does not match, and stops using it.
    fn mismatch() {
        if LAYOUT.fetch_or(MISMATCH, Relaxed) & MISMATCH == 0 {
            kernel::pr_warn!(
                "dm per-bio data is not where this module was built to find it: \
                 the running kernel is not the one it was built against; \
                 asking dm core for every bio\n"
            );
        }
    }

    /// Reads the `u16` `before` bytes before `clone`.
    ///
    /// # Safety
    ///
    /// `clone` must be a valid dm clone and `before` within the structure
    /// dm core allocated it in, before the clone.
    #[inline(always)]
    unsafe fn u16_before(clone: *const u8, before: usize) -> u16 {
        // SAFETY: within the clone's allocation (the caller's guarantee),
        // and dm core sets these fields before it hands the clone over and
        // does not change them while the target has it.
        unsafe { clone.sub(before).cast::<u16>().read_unaligned() }
    }

    /// Where the per-bio data of `size` bytes of the clone `bio` lies, or
    /// `None` if dm core is to be asked.
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
        let clone = bio.as_ptr().cast::<u8>().cast_const();
        // A clone is the last field of its `struct dm_target_io`, which is
        // either on its own or the last field of a `struct dm_io` (flag
        // `DM_TIO_INSIDE_DM_IO`); the per-bio data lies just before
        // whichever of the two begins the block. Both structures begin with
        // a magic number, checked before anything else is believed.
        // SAFETY: the bio is a dm clone (the caller's guarantee), which
        // lies in a `struct dm_target_io`: its magic and flags lie this far
        // before it in the layout built against; a running kernel of
        // another layout fails the magic check (or, by chance not, the
        // comparison with dm core below).
        let tio_magic = unsafe { u16_before(clone, offsets::DM_TIO_MAGIC_BEFORE_BIO) };
        if usize::from(tio_magic) != offsets::DM_TIO_MAGIC_VALUE {
            mismatch();
            return None;
        }
        // SAFETY: as above.
        let flags = unsafe { u16_before(clone, offsets::DM_TIO_FLAGS_BEFORE_BIO) };
        let (before, layout) = if flags & (1 << offsets::DM_TIO_INSIDE_DM_IO_BIT) != 0 {
            // SAFETY: the flag says the `dm_target_io` is inside a
            // `struct dm_io`, whose magic lies this far before the clone.
            let io_magic = unsafe { u16_before(clone, offsets::DM_IO_MAGIC_BEFORE_BIO) };
            if usize::from(io_magic) != offsets::DM_IO_MAGIC_VALUE {
                mismatch();
                return None;
            }
            (offsets::DM_IO_BIO_OFFSET, IO_CHECKED)
        } else {
            (offsets::DM_TARGET_IO_BIO_OFFSET, TIO_CHECKED)
        };
        let data = clone.wrapping_sub(before + size).cast_mut();
        let compare = cfg!(CONFIG_PROVE_LOCKING) || known & CHECKED != CHECKED;
        if !compare {
            // SAFETY: both layouts gave dm core's answer before, and this
            // bio's magic numbers are where they say; dm core allocates
            // the per-bio data right before the structure that holds the
            // clone, so it is not null.
            return Some(unsafe { NonNull::new_unchecked(data) });
        }
        // SAFETY: as in `super::slot_ptr`.
        let dm = unsafe { bindings::dm_per_bio_data(bio.as_ptr(), size) };
        if dm.cast::<u8>() != data {
            mismatch();
            return None;
        }
        if known & layout == 0 {
            LAYOUT.fetch_or(layout, Relaxed);
        }
        // SAFETY: dm core's own answer, which is not null.
        Some(unsafe { NonNull::new_unchecked(data) })
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
    // SAFETY: `ti` is valid by the caller's guarantee; dm core sets the
    // counts in the constructor and does not change them while the table
    // is live. Read through the pointer: dm core owns the structure.
    let count = unsafe {
        match op {
            BioOp::Flush => (*ti).num_flush_bios,
            BioOp::Discard => (*ti).num_discard_bios,
            BioOp::SecureErase => (*ti).num_secure_erase_bios,
            BioOp::WriteZeroes => (*ti).num_write_zeroes_bios,
            _ => return false,
        }
    };
    count > 1
}
