// SPDX-License-Identifier: GPL-2.0

//! A bio handed to the target by device-mapper core, in `map` or `end_io`
//! or taken back from a [`super::BioHold`].

use super::{
    bindings as b,
    disposition::{Kept, MapKind},
    per_bio::{self, Slot},
    DmDev, MapResult, Target,
};
use core::{marker::PhantomData, ptr::NonNull};
use kernel::bindings::bio;

/// What a bio asks the target to do.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum BioOp {
    /// Read data.
    Read,
    /// Write data.
    Write,
    /// An empty cache flush (`REQ_PREFLUSH` without data).
    Flush,
    /// Discard a range.
    Discard,
    /// Securely erase a range.
    SecureErase,
    /// Write zeroes to a range.
    WriteZeroes,
    /// Any other operation (zone management and the like).
    Other,
}

/// Where a [`Bio`] was handed over, which decides what may be done to it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// In `map`: it may be cut short, deferred or taken.
    Map,
    /// Taken back from a hold: it may be deferred or taken again.
    Held,
    /// In `end_io`: it may be kept for the worker.
    EndIo,
}

/// A dm clone handed to a target of type `T`.
///
/// # Invariants
///
/// `bio` points to a valid dm clone of target `ti`, of type `T`, which the
/// target may modify for `'a`. `slot` is its per-bio data when `T` has any
/// ([`per_bio::has_slot`]), initialised before `map` saw the bio. Its
/// fields are read and written through the pointer: the block layer owns
/// the structure.
pub(crate) struct Bio<'a, T: Target> {
    bio: NonNull<bio>,
    /// The target the clone belongs to: only its devices take the bio.
    ti: *mut b::dm_target,
    /// [`Bio::remap`] pointed the bio at one of the target's devices.
    remapped: bool,
    slot: Option<NonNull<Slot<T::PerBio>>>,
    stage: Stage,
    /// Whether `end_io` asked to keep the bio ([`Bio::keep`]): the
    /// callback puts it on the target's queue once `end_io` has returned
    /// and the target can no longer touch it through this.
    keep: bool,
    _life: PhantomData<&'a mut bio>,
}

impl<'a, T: Target> Bio<'a, T> {
    /// # Safety
    ///
    /// `bio` must be a valid dm clone of a target of type `T`, ours for
    /// `'a`, in `stage`; its slot (if any) initialised unless `stage` is
    /// `Map`.
    #[inline(always)]
    unsafe fn new(bio: *mut bio, ti: *mut b::dm_target, stage: Stage) -> Self {
        // SAFETY: valid by the caller's guarantee, hence not null.
        let bio = unsafe { NonNull::new_unchecked(bio) };
        let slot = if per_bio::has_slot::<T>() {
            // SAFETY: a dm clone of a target of type `T`, which has a slot.
            Some(unsafe { per_bio::slot_ptr::<T>(bio) })
        } else {
            None
        };
        Self {
            bio,
            ti,
            remapped: false,
            slot,
            stage,
            keep: false,
            _life: PhantomData,
        }
    }

    /// The bio `map` is given; its per-bio data is initialised here.
    ///
    /// # Safety
    ///
    /// `bio` must be a valid dm clone of target `ti`, of type `T`, that
    /// device-mapper core passes to `map`, ours for `'a`.
    #[inline(always)]
    pub(super) unsafe fn from_map(bio: *mut bio, ti: *mut b::dm_target) -> Self {
        // SAFETY: as the caller promises.
        let this = unsafe { Self::new(bio, ti, Stage::Map) };
        if let Some(slot) = this.slot {
            // Device-mapper core does not clear per-bio data: it is set
            // here, without reading (or dropping) what the memory held.
            // SAFETY: the slot is the clone's, ours, sized and aligned for
            // a `Slot` (`per_bio::size`).
            unsafe {
                slot.as_ptr().write(Slot {
                    iter: Default::default(),
                    data: T::PerBio::default(),
                })
            };
        }
        this
    }

    /// The bio `end_io` is given.
    ///
    /// # Safety
    ///
    /// `bio` must be a valid dm clone of target `ti`, of type `T`, that
    /// device-mapper core passes to `end_io` (so `map` saw it), ours for
    /// `'a`.
    #[inline(always)]
    pub(super) unsafe fn from_end_io(bio: *mut bio, ti: *mut b::dm_target) -> Self {
        // SAFETY: as the caller promises.
        unsafe { Self::new(bio, ti, Stage::EndIo) }
    }

    /// A bio taken back from a hold.
    ///
    /// # Safety
    ///
    /// `bio` must be a dm clone of target `ti`, of type `T`, that `map`
    /// gave to a hold, taken off it and ours for `'a`.
    pub(super) unsafe fn from_hold(bio: *mut bio, ti: *mut b::dm_target) -> Self {
        // SAFETY: as the caller promises.
        unsafe { Self::new(bio, ti, Stage::Held) }
    }

    /// The clone.
    pub(super) fn raw(&self) -> *mut bio {
        self.bio.as_ptr()
    }

    /// Whether a hold or a queue may take the bio (in `map`, or taken back
    /// from a hold).
    pub(super) fn takeable(&self) -> bool {
        self.stage != Stage::EndIo
    }

    /// Whether `end_io` asked to keep the bio.
    pub(super) fn kept(&self) -> bool {
        self.keep
    }

    /// First sector of the bio in the mapped device.
    #[inline(always)]
    pub(crate) fn sector(&self) -> u64 {
        // SAFETY: valid (type invariant).
        unsafe { (*self.raw()).bi_iter.bi_sector }
    }

    /// Size of the bio's remaining data in sectors.
    #[inline(always)]
    pub(crate) fn sectors(&self) -> u32 {
        // SAFETY: valid (type invariant).
        unsafe { (*self.raw()).bi_iter.bi_size >> 9 }
    }

    /// The bio's operation and flags (`bi_opf`).
    #[inline(always)]
    fn opf(&self) -> u32 {
        // SAFETY: valid (type invariant).
        unsafe { (*self.raw()).bi_opf }
    }

    /// What the bio asks for.
    #[inline(always)]
    pub(crate) fn op(&self) -> BioOp {
        // `bio_op()`, and `bio_has_data()` for a write, decoded here: the
        // path of every bio saves a call.
        let opf = self.opf();
        match opf & ((1 << kernel::bindings::REQ_OP_BITS) - 1) {
            kernel::bindings::req_op_REQ_OP_READ => BioOp::Read,
            kernel::bindings::req_op_REQ_OP_WRITE => {
                let preflush = 1 << kernel::bindings::req_flag_bits___REQ_PREFLUSH;
                if self.sectors() == 0 && opf & preflush != 0 {
                    BioOp::Flush
                } else {
                    BioOp::Write
                }
            }
            kernel::bindings::req_op_REQ_OP_FLUSH => BioOp::Flush,
            kernel::bindings::req_op_REQ_OP_DISCARD => BioOp::Discard,
            kernel::bindings::req_op_REQ_OP_SECURE_ERASE => BioOp::SecureErase,
            kernel::bindings::req_op_REQ_OP_WRITE_ZEROES => BioOp::WriteZeroes,
            _ => BioOp::Other,
        }
    }

    /// Which of the target's `num_*_bios` copies of a flush, discard,
    /// secure erase or write-zeroes this is (0 for ordinary bios).
    #[inline(always)]
    pub(crate) fn target_bio_nr(&self) -> u32 {
        // SAFETY: the bio is valid (type invariant) and came from dm core.
        unsafe { b::dm_bio_get_target_bio_nr(self.raw()) }
    }

    /// The target's per-bio data ([`Target::PerBio`]).
    #[inline(always)]
    pub(crate) fn per_bio_data(&mut self) -> &mut T::PerBio {
        match self.slot {
            // SAFETY: the slot lives as long as the bio, which is ours for
            // `'a`, and is initialised (type invariant); `&mut self` makes
            // the borrow unique.
            Some(slot) => unsafe { &mut (*slot.as_ptr()).data },
            // SAFETY: without a slot, `T::PerBio` has size 0
            // (`per_bio::has_slot`): any aligned pointer is a valid one.
            None => unsafe { NonNull::<T::PerBio>::dangling().as_mut() },
        }
    }

    /// Saves where the bio's data stands now, for a [`super::KeptBio`] to
    /// copy it later (`end_io` sees the iterator advanced).
    #[inline(always)]
    pub(crate) fn record_position(&mut self) {
        if let Some(slot) = self.slot {
            // SAFETY: the bio and its slot are valid and ours (type
            // invariant).
            unsafe { (*slot.as_ptr()).iter = (*self.raw()).bi_iter };
        }
    }

    /// Whether the bio is pointed at `dev` (in `end_io`: went to it).
    #[inline(always)]
    pub(crate) fn is_on(&self, dev: &DmDev) -> bool {
        // SAFETY: valid (type invariant).
        core::ptr::eq(unsafe { (*self.raw()).bi_bdev }, dev.bdev())
    }

    /// Whether this is a read-ahead, which may fail without harm.
    pub(crate) fn is_readahead(&self) -> bool {
        self.opf() & (1 << kernel::bindings::req_flag_bits___REQ_RAHEAD) != 0
    }

    /// In `end_io` of a target with a worker: has the bio put on the
    /// target's queue for the worker, which ends it, once `end_io` returns;
    /// device-mapper core is told the bio is incomplete. Refused (returns
    /// `None`) elsewhere.
    pub(crate) fn keep(&mut self) -> Option<Kept> {
        if self.stage != Stage::EndIo || self.keep || !T::HAS_PROCESS_KEPT {
            return None;
        }
        self.keep = true;
        Some(Kept { _private: () })
    }

    /// In `map`: keeps only the first `sectors` sectors of the bio;
    /// device-mapper core maps the rest as a new bio. Refused (returns
    /// `false`) outside `map`, unless `0 < sectors < self.sectors()`
    /// (which refuses every empty flush), and for the bios
    /// `dm_accept_partial_bio` does not take: duplicates, atomic writes,
    /// and writes and zone operations on a zoned device.
    #[inline(always)]
    pub(crate) fn accept_partial(&mut self, sectors: u32) -> bool {
        if self.stage != Stage::Map || sectors == 0 || sectors >= self.sectors() {
            return false;
        }
        let atomic = 1 << kernel::bindings::req_flag_bits___REQ_ATOMIC;
        // SAFETY: the bio's target is valid (type invariant).
        if self.opf() & atomic != 0 || unsafe { per_bio::is_duplicate(self.ti, self.op()) } {
            return false;
        }
        if !matches!(self.op(), BioOp::Read | BioOp::Discard | BioOp::SecureErase)
            // SAFETY: the bio is valid (type invariant).
            && unsafe { b::dmr_bio_zoned(self.raw()) }
        {
            return false;
        }
        // SAFETY: called from `map` on a bio with more than `sectors`
        // sectors, which is not a duplicate, not atomic, and not a write or
        // zone operation on a zoned device: none of the bios
        // `dm_accept_partial_bio` refuses with a BUG.
        unsafe { b::dm_accept_partial_bio(self.raw(), sectors) };
        true
    }

    /// Sends the bio to `dev` at `sector` (return [`Bio::remapped`]). Only a
    /// device this target opened takes it (the table keeps that one open
    /// while the bio is in flight), and only in `map` or from a hold:
    /// otherwise the bio is not pointed anywhere, and `remapped` fails it.
    #[inline(always)]
    pub(crate) fn remap(&mut self, dev: &DmDev, sector: u64) {
        if self.stage == Stage::EndIo || !core::ptr::eq(dev.owner(), self.ti) {
            self.remapped = false;
            return;
        }
        self.remapped = true;
        let bdev = dev.bdev();
        let raw = self.raw();
        // `bio_set_dev`, which without `CONFIG_BLK_CGROUP` (no blkg to
        // associate) is two flag updates and a store, written out here:
        // the path of every bio saves a call.
        #[cfg(not(CONFIG_BLK_CGROUP))]
        // SAFETY: the bio is valid and ours to modify (type invariant).
        unsafe {
            let mut clear: u16 = 1 << kernel::bindings::BIO_REMAPPED;
            if !core::ptr::eq((*raw).bi_bdev, bdev) {
                clear |= 1 << kernel::bindings::BIO_BPS_THROTTLED;
            }
            (*raw).bi_flags &= !clear;
            (*raw).bi_bdev = bdev;
            (*raw).bi_iter.bi_sector = sector;
        }
        #[cfg(CONFIG_BLK_CGROUP)]
        // SAFETY: the bio is valid and ours to modify (type invariant); the
        // block device of a `DmDev` is alive while it is.
        unsafe {
            b::dmr_bio_set_dev(raw, bdev);
            (*raw).bi_iter.bi_sector = sector;
        }
    }

    /// Device-mapper core submits the bio where [`Bio::remap`] pointed it;
    /// a bio it did not point at a device of the target fails.
    #[inline(always)]
    pub(crate) fn remapped(self) -> MapResult<'a> {
        if self.remapped {
            MapResult::new(MapKind::Remapped)
        } else {
            MapResult::new(MapKind::Kill)
        }
    }

    /// The bio fails with an I/O error.
    pub(crate) fn kill(self) -> MapResult<'a> {
        MapResult::new(MapKind::Kill)
    }

    /// Device-mapper core retries the bio later (outside `map`, where this
    /// cannot be honoured, the bio fails with an I/O error).
    pub(crate) fn requeue(self) -> MapResult<'a> {
        MapResult::new(MapKind::Requeue)
    }
}
