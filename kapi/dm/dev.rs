// SPDX-License-Identifier: GPL-2.0

//! An underlying device a target opened, and the callout that reports it.

use super::bindings as b;
use core::{marker::PhantomData, ptr::NonNull};
use kernel::{
    bindings::{block_device, file},
    error::to_result,
    prelude::*,
};

/// An underlying device opened with [`super::Ctr::get_device`].
///
/// The `dm_dev` itself belongs to the table and is put by the abstraction
/// once the target is gone; this handle holds a reference of its own on the
/// device's open file, so it stays valid wherever the target moves it
/// (an `Arc` kept by a worker, say) and for however long.
///
/// # Invariants
///
/// `file` is a reference of this handle's own (`get_file`) on the open
/// file of block device `bdev`, dropped on drop; `devt` and `name` were
/// copied from the `dm_dev` when it was open.
pub(crate) struct DmDev {
    /// The target that opened it: an identity, never dereferenced.
    owner: *mut b::dm_target,
    file: NonNull<file>,
    bdev: NonNull<block_device>,
    devt: u32,
    name: [u8; 16],
}

// SAFETY: the handle owns a file reference, which may be dropped from any
// thread, and reads only a block device that the reference keeps alive.
unsafe impl Send for DmDev {}
// SAFETY: all methods taking `&self` only read.
unsafe impl Sync for DmDev {}

impl DmDev {
    /// # Safety
    ///
    /// `dev` must be an open `dm_dev` of target `owner`, valid during this
    /// call.
    pub(super) unsafe fn new(dev: NonNull<b::dm_dev>, owner: *mut b::dm_target) -> Self {
        let dev = dev.as_ptr();
        // SAFETY: open (the caller's promise), so its file and block
        // device are set and valid; the file reference taken here keeps
        // both. `name` is a NUL-terminated array of 16 bytes.
        // `c_char` is `i8` on some architectures: the cast is not a no-op
        // everywhere.
        #[allow(clippy::unnecessary_cast)]
        unsafe {
            let file = b::dmr_get_file((*dev).bdev_file);
            let bdev = (*dev).bdev;
            Self {
                owner,
                file: NonNull::new_unchecked(file),
                bdev: NonNull::new_unchecked(bdev),
                devt: (*bdev).bd_dev,
                name: (*dev).name.map(|c| c as u8),
            }
        }
    }

    /// The device's `major:minor` name, as table lines print it.
    pub(crate) fn name(&self) -> &CStr {
        // `dm_get_device` wrote a NUL-terminated name; an unterminated one
        // reads as empty.
        CStr::from_bytes_until_nul(&self.name).unwrap_or(c"")
    }

    /// The target that opened the device.
    pub(super) fn owner(&self) -> *mut b::dm_target {
        self.owner
    }

    /// The open block device, for the abstractions built on it.
    pub(crate) fn bdev(&self) -> *mut block_device {
        self.bdev.as_ptr()
    }

    /// The device's open file, referenced while this handle lives.
    pub(super) fn file(&self) -> *mut file {
        self.file.as_ptr()
    }

    /// Size of the device in 512-byte sectors.
    pub(crate) fn nr_sectors(&self) -> u64 {
        // SAFETY: the block device is alive while `file` is held (type
        // invariant).
        unsafe { b::dmr_bdev_nr_sectors(self.bdev()) }
    }

    /// Logical block size of the device in bytes.
    pub(crate) fn logical_block_size(&self) -> u32 {
        // SAFETY: as in `nr_sectors`.
        unsafe { b::dmr_bdev_logical_block_size(self.bdev()) }
    }

    /// Reads or writes `buf` at `sector` synchronously; writes are FUA, so
    /// durable once this returns. Sleeps: process context only, never from
    /// `map` or `end_io`. `buf` is a `KVec` so that it is kmalloc memory, as
    /// the block layer needs for a linear buffer.
    pub(crate) fn rw_sync(&self, sector: u64, buf: &mut KVec<u8>, write: bool) -> Result {
        // SAFETY: the block device is alive and open (type invariant);
        // `buf` is kmalloc memory of `buf.len()` bytes, borrowed for the
        // whole synchronous I/O.
        to_result(unsafe {
            kernel::bindings::bdev_rw_virt(
                self.bdev(),
                sector,
                buf.as_mut_ptr().cast(),
                buf.len(),
                if write {
                    kernel::bindings::req_op_REQ_OP_WRITE
                        | 1 << kernel::bindings::req_flag_bits___REQ_FUA
                } else {
                    kernel::bindings::req_op_REQ_OP_READ
                },
            )
        })
    }

    /// Whether both handles refer to the same block device.
    pub(crate) fn same_device(&self, other: &DmDev) -> bool {
        self.devt == other.devt
    }

    /// The device number of the block device.
    pub(crate) fn devt(&self) -> u32 {
        self.devt
    }
}

impl Drop for DmDev {
    fn drop(&mut self) {
        // SAFETY: the handle's own reference (type invariant), dropped once.
        unsafe { kernel::bindings::fput(self.file.as_ptr()) };
    }
}

/// The callout of `iterate_devices`.
///
/// # Invariants
///
/// `func` and `data` are device-mapper core's for this call of
/// `iterate_devices` of target `ti`; `devices` are the devices open for
/// `ti`, valid for `'a`.
pub(crate) struct DeviceVisitor<'a> {
    ti: *mut b::dm_target,
    func: b::iterate_devices_callout_fn,
    data: *mut c_void,
    devices: &'a [NonNull<b::dm_dev>],
    _life: PhantomData<&'a ()>,
}

impl<'a> DeviceVisitor<'a> {
    /// # Safety
    ///
    /// As the type invariant says.
    pub(super) unsafe fn new(
        ti: *mut b::dm_target,
        func: b::iterate_devices_callout_fn,
        data: *mut c_void,
        devices: &'a [NonNull<b::dm_dev>],
    ) -> Self {
        Self {
            ti,
            func,
            data,
            devices,
            _life: PhantomData,
        }
    }

    /// Reports that the target uses `len` sectors of `dev` from `start`.
    /// A non-zero result means stop and return it. A device this target
    /// did not open is not reported.
    pub(crate) fn visit(&mut self, dev: &DmDev, start: u64, len: u64) -> c_int {
        // The target's own `dm_dev` of that block device: `dev` may come
        // from another target, whose `dm_dev` core may have put.
        let Some(own) = self.devices.iter().find(|d| {
            // SAFETY: the devices of `ti` are open (type invariant).
            core::ptr::eq(unsafe { (*d.as_ptr()).bdev }, dev.bdev())
        }) else {
            return 0;
        };
        match self.func {
            // SAFETY: device-mapper core gave us `func` with its `data` for
            // this target; `own` is open for it.
            Some(f) => unsafe { f(self.ti, own.as_ptr(), start, len, self.data) },
            None => 0,
        }
    }
}
