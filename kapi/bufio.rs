// SPDX-License-Identifier: GPL-2.0

//! dm-bufio clients: cached, block-sized I/O on an underlying device.
//!
//! C header: [`include/linux/dm-bufio.h`](srctree/include/linux/dm-bufio.h)
//!
//! dm-bufio I/O sleeps and must not be issued from `map` or `end_io` (it
//! warns when `current->bio_list` is set): a target issues it from a
//! workqueue ([`super::workqueue::OrderedQueue`]), as `dm-ebs` does.

use super::dm::{bindings as b, DmDev};
use core::ptr::NonNull;
use kernel::{
    error::{from_err_ptr, to_result},
    new_mutex,
    prelude::*,
    sync::{Arc, Mutex},
};

/// A dm-bufio client: cached, block-sized I/O on one block device, with
/// block numbers counted from a sector offset.
///
/// # Invariants
///
/// `client` comes from `dm_bufio_client_create` for blocks of `block_size`
/// bytes on `dev`'s block device and is destroyed on drop, before `dev` is
/// released; every buffer taken from it is released before the method
/// that took it returns, and its data is read or written only under
/// `copying`.
pub(crate) struct BufioClient {
    client: NonNull<b::dm_bufio_client>,
    block_size: usize,
    /// The sector of `dev` where block 0 starts.
    sector_offset: u64,
    /// Keeps the device open for as long as the client uses it.
    dev: Arc<DmDev>,
    /// Held while a buffer's data is copied in or out: two threads on one
    /// block (a commit writing it, a scrub reading it) would race on its
    /// bytes, which dm-bufio shares between the holders of a buffer.
    copying: Arc<Mutex<()>>,
}

// SAFETY: dm-bufio clients lock internally; any thread may use them.
unsafe impl Send for BufioClient {}
// SAFETY: see `Send`.
unsafe impl Sync for BufioClient {}

impl BufioClient {
    /// A client for blocks of `block_size` bytes (a power of two of at
    /// least 512) on `dev`, block 0 starting at `sector_offset`; the client
    /// holds `dev` open.
    pub(crate) fn new(dev: Arc<DmDev>, block_size: u32, sector_offset: u64) -> Result<Self> {
        // SAFETY: the device is open, and stays open while the client
        // holds `dev`; no callbacks; block_size is checked by dm-bufio.
        let client = from_err_ptr(unsafe {
            b::dm_bufio_client_create(dev.bdev(), block_size, 1, 0, None, None, 0)
        })?;
        let client = NonNull::new(client).ok_or(ENOMEM)?;
        let copying = match Arc::pin_init(new_mutex!(()), GFP_KERNEL) {
            Ok(lock) => lock,
            Err(e) => {
                // SAFETY: created above, no buffer taken.
                unsafe { b::dm_bufio_client_destroy(client.as_ptr()) };
                return Err(e);
            }
        };
        // SAFETY: `client` was just created.
        unsafe { b::dm_bufio_set_sector_offset(client.as_ptr(), sector_offset) };
        // INVARIANT: created above for `block_size`.
        Ok(Self {
            client,
            block_size: block_size as usize,
            sector_offset,
            dev,
            copying,
        })
    }

    /// The device the client reads and writes.
    pub(crate) fn dev(&self) -> &DmDev {
        &self.dev
    }

    /// The sector of [`Self::dev`] where block 0 starts.
    pub(crate) fn sector_offset(&self) -> u64 {
        self.sector_offset
    }

    /// Reads `block` into `out`, which is one block long.
    pub(crate) fn read_into(&self, block: u64, out: &mut [u8]) -> Result {
        if out.len() != self.block_size {
            return Err(EINVAL);
        }
        let _copying = self.copying.lock();
        let mut buffer = core::ptr::null_mut();
        // SAFETY: the client is valid; `buffer` receives the buffer that
        // holds the block, released below.
        let data = unsafe { b::dm_bufio_read(self.client.as_ptr(), block, &mut buffer) };
        let data = from_err_ptr(data)?;
        // SAFETY: a successful read returns `block_size` valid bytes,
        // held until the buffer is released, and written by no one while
        // `copying` is held.
        out.copy_from_slice(unsafe {
            core::slice::from_raw_parts(data.cast::<u8>(), self.block_size)
        });
        // SAFETY: taken by the read above, released once.
        unsafe { b::dm_bufio_release(buffer) };
        Ok(())
    }

    /// Puts `data`, one block long, in the cache as the new content of
    /// `block`, without reading it; [`Self::write_dirty`] writes it.
    pub(crate) fn write_from(&self, block: u64, data: &[u8]) -> Result {
        if data.len() != self.block_size {
            return Err(EINVAL);
        }
        let _copying = self.copying.lock();
        let mut buffer = core::ptr::null_mut();
        // SAFETY: the client is valid; `buffer` receives the buffer,
        // released below.
        let dest = unsafe { b::dm_bufio_new(self.client.as_ptr(), block, &mut buffer) };
        let dest = from_err_ptr(dest)?;
        // SAFETY: `dest` holds `block_size` bytes, held until the release,
        // and read or written by no one else while `copying` is held.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), dest.cast::<u8>(), data.len()) };
        // SAFETY: the buffer is held; marking and releasing it once.
        unsafe {
            b::dm_bufio_mark_buffer_dirty(buffer);
            b::dm_bufio_release(buffer);
        }
        Ok(())
    }

    /// Writes every dirty block, waits for the writes, then flushes the
    /// device's cache. Returns the first error.
    pub(crate) fn write_dirty(&self) -> Result {
        // SAFETY: the client is valid (type invariant).
        to_result(unsafe { b::dm_bufio_write_dirty_buffers(self.client.as_ptr()) })
    }

    /// Drops `count` blocks from `block` on out of the cache (clean ones).
    pub(crate) fn forget(&self, block: u64, count: u64) {
        // SAFETY: the client is valid (type invariant).
        unsafe { b::dm_bufio_forget_buffers(self.client.as_ptr(), block, count) };
    }
}

impl Drop for BufioClient {
    fn drop(&mut self) {
        // SAFETY: valid, and no buffer is held (type invariant).
        unsafe { b::dm_bufio_client_destroy(self.client.as_ptr()) };
    }
}
