// SPDX-License-Identifier: GPL-2.0

//! The constructor's view of a new target.

use super::{bindings as b, bio_queue::BioQueueOwner, per_bio, DmDev, Target};
use core::{marker::PhantomData, ptr::NonNull};
use kernel::{error::to_result, prelude::*};

/// The constructor's view of the new target of type `T`: the type ties
/// what is made here (the [`super::BioQueue`], the [`super::BioHold`]) to
/// the target's callbacks and per-bio data.
///
/// # Invariants
///
/// `ti` points to the `dm_target` being constructed, valid for `'a`, and is
/// not accessed by anyone else during the constructor. `devices` were
/// opened for it with `dm_get_device`; they are put on drop unless the
/// constructor succeeds, when the target's private data takes them over.
pub(crate) struct Ctr<'a, T: Target> {
    ti: NonNull<b::dm_target>,
    queue: Option<BioQueueOwner<T>>,
    devices: KVec<NonNull<b::dm_dev>>,
    _life: PhantomData<&'a mut b::dm_target>,
}

impl<T: Target> Ctr<'_, T> {
    /// # Safety
    ///
    /// `ti` must be a target under construction, valid for the lifetime of
    /// the result and touched by nothing else meanwhile.
    pub(super) unsafe fn from_raw(ti: *mut b::dm_target) -> Self {
        // SAFETY: valid and ours (the caller's promise). The per-bio data
        // is the abstraction's to size: `Bio` relies on it.
        unsafe { (*ti).per_io_data_size = per_bio::size::<T>() as u32 };
        Self {
            // SAFETY: valid, hence not null.
            ti: unsafe { NonNull::new_unchecked(ti) },
            queue: None,
            devices: KVec::new(),
            _life: PhantomData,
        }
    }

    /// The queue and devices, for the target's private data.
    pub(super) fn into_parts(mut self) -> (Option<BioQueueOwner<T>>, KVec<NonNull<b::dm_dev>>) {
        (self.queue.take(), core::mem::take(&mut self.devices))
    }

    /// The target under construction.
    pub(super) fn ti(&self) -> *mut b::dm_target {
        self.ti.as_ptr()
    }

    /// First sector of the target in the mapped device.
    pub(crate) fn begin(&self) -> u64 {
        // SAFETY: valid (type invariant).
        unsafe { (*self.ti.as_ptr()).begin }
    }

    /// Length of the target in sectors.
    pub(crate) fn len(&self) -> u64 {
        // SAFETY: valid (type invariant).
        unsafe { (*self.ti.as_ptr()).len }
    }

    /// Whether the table was loaded for writing (not `dmsetup --readonly`).
    pub(crate) fn writable(&self) -> bool {
        // SAFETY: `ti` is valid and its table set (type invariant).
        unsafe { b::dmr_table_writable(self.ti.as_ptr()) }
    }

    /// An identity of the mapped device the table belongs to, the same for
    /// every table loaded into one device while it exists.
    pub(crate) fn device_identity(&self) -> usize {
        // SAFETY: `ti` is valid and its table set (type invariant).
        unsafe { b::dm_table_get_md((*self.ti.as_ptr()).table) as usize }
    }

    /// An identity of the table the target belongs to: two targets of one
    /// table have the same, a reloaded table another.
    pub(crate) fn table_identity(&self) -> usize {
        // SAFETY: valid (type invariant).
        unsafe { (*self.ti.as_ptr()).table as usize }
    }

    /// Records why the constructor failed (`ti->error`), for the kernel log
    /// and dmsetup, and returns `err` for the caller to propagate.
    pub(crate) fn fail(&mut self, reason: &'static CStr, err: Error) -> Error {
        // SAFETY: valid and ours (type invariant); the string is static.
        unsafe { (*self.ti.as_ptr()).error = reason.as_char_ptr().cast_mut() };
        err
    }

    /// Opens an underlying device (`dm_get_device`) with the table's mode.
    /// The abstraction puts it once the target is gone.
    pub(crate) fn get_device(&mut self, path: &CStr) -> Result<DmDev> {
        self.devices.reserve(1, GFP_KERNEL)?;
        let ti = self.ti.as_ptr();
        let mut dev: *mut b::dm_dev = core::ptr::null_mut();
        // SAFETY: `ti` is valid (type invariant); its table is set before
        // the constructor runs. `path` is a valid C string and `dev` a valid
        // place for the result.
        to_result(unsafe {
            b::dm_get_device(
                ti,
                path.as_char_ptr(),
                b::dm_table_get_mode((*ti).table),
                &mut dev,
            )
        })?;
        // SAFETY: `dm_get_device` succeeded, so `dev` is valid.
        let dev = unsafe { NonNull::new_unchecked(dev) };
        // INVARIANT: opened for `ti`; put on drop or by `dtr`. Room was
        // reserved above; were it not, the device is put at once.
        if self.devices.push_within_capacity(dev).is_err() {
            // SAFETY: opened for `ti` just now, and recorded nowhere.
            unsafe { b::dm_put_device(ti, dev.as_ptr()) };
            return Err(ENOMEM);
        }
        // SAFETY: `dev` is open, and stays open while this builds the handle.
        Ok(unsafe { DmDev::new(dev, ti) })
    }

    /// Gives the target a queue of kept bios and a worker
    /// ([`super::BioQueue`], reached through [`super::TargetInfo::kept`]):
    /// its threads are called `name`. The abstraction stops the worker
    /// before the target is dropped.
    pub(crate) fn set_bio_queue(&mut self, name: &'static CStr) -> Result {
        if self.queue.is_none() {
            self.queue = Some(BioQueueOwner::new(self, name)?);
        }
        Ok(())
    }

    /// Number of empty flush bios per flush (`num_flush_bios`); each one is
    /// told apart by [`super::Bio::target_bio_nr`].
    pub(crate) fn set_num_flush_bios(&mut self, n: u32) {
        // SAFETY: valid and ours (type invariant).
        unsafe { (*self.ti.as_ptr()).num_flush_bios = n };
    }

    // Discards, secure erases and write-zeroes reach the target as one bio
    // or not at all: duplicated bios cannot be split with
    // `Bio::accept_partial`.

    /// Whether the target takes discards (`num_discard_bios` 1 or 0).
    pub(crate) fn set_discards(&mut self, on: bool) {
        // SAFETY: valid and ours (type invariant).
        unsafe { (*self.ti.as_ptr()).num_discard_bios = u32::from(on) };
    }

    /// Whether the target takes secure erases (`num_secure_erase_bios`).
    pub(crate) fn set_secure_erases(&mut self, on: bool) {
        // SAFETY: valid and ours (type invariant).
        unsafe { (*self.ti.as_ptr()).num_secure_erase_bios = u32::from(on) };
    }

    /// Whether the target takes write-zeroes (`num_write_zeroes_bios`).
    pub(crate) fn set_write_zeroes(&mut self, on: bool) {
        // SAFETY: valid and ours (type invariant).
        unsafe { (*self.ti.as_ptr()).num_write_zeroes_bios = u32::from(on) };
    }

    /// Splits I/O at multiples of this many sectors (`max_io_len`).
    pub(crate) fn set_max_io_len(&mut self, sectors: u32) -> Result {
        // SAFETY: `ti` is valid and exclusively ours (type invariant).
        to_result(unsafe { b::dm_set_target_max_io_len(self.ti.as_ptr(), sectors.into()) })
    }
}

impl<T: Target> Drop for Ctr<'_, T> {
    fn drop(&mut self) {
        // The constructor failed (on success `into_parts` took them): the
        // queue is freed by its own drop, the devices are put here.
        for dev in core::mem::take(&mut self.devices) {
            // SAFETY: opened for `ti` (type invariant), put once: taken out.
            unsafe { b::dm_put_device(self.ti.as_ptr(), dev.as_ptr()) };
        }
    }
}
