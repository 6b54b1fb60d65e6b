// SPDX-License-Identifier: GPL-2.0

//! The queue limits of a mapped device, in `io_hints`.

use super::bindings as b;
use kernel::bindings::queue_limits;

/// The queue limits of the mapped device, being stacked in `io_hints`.
pub(crate) struct QueueLimits<'a>(&'a mut queue_limits);

/// The largest logical block size the block layer accepts: the page size,
/// or 64 KiB with large folios (`BLK_MAX_BLOCK_SIZE`).
pub(crate) fn max_logical_block_size() -> u32 {
    // SAFETY: a plain function returning a constant.
    unsafe { b::dmr_max_logical_block_size() }
}

impl QueueLimits<'_> {
    /// # Safety
    ///
    /// `limits` must be the limits device-mapper core passes to `io_hints`,
    /// ours to change for the lifetime of the result.
    pub(super) unsafe fn from_raw(limits: *mut queue_limits) -> Self {
        // SAFETY: as the caller promises.
        Self(unsafe { &mut *limits })
    }

    /// Logical block size in bytes.
    pub(crate) fn logical_block_size(&self) -> u32 {
        self.0.logical_block_size
    }

    /// Physical block size in bytes.
    pub(crate) fn physical_block_size(&self) -> u32 {
        self.0.physical_block_size
    }

    /// Minimum I/O size in bytes.
    pub(crate) fn io_min(&self) -> u32 {
        self.0.io_min
    }

    /// Sets the logical block size, at most [`max_logical_block_size`]
    /// (larger values are cut to it).
    pub(crate) fn set_logical_block_size(&mut self, bytes: u32) {
        self.0.logical_block_size = bytes.min(max_logical_block_size());
    }

    /// Sets the physical block size.
    pub(crate) fn set_physical_block_size(&mut self, bytes: u32) {
        self.0.physical_block_size = bytes;
    }

    /// Sets the minimum I/O size.
    pub(crate) fn set_io_min(&mut self, bytes: u32) {
        self.0.io_min = bytes;
    }
}
