// SPDX-License-Identifier: GPL-2.0

//! Kernel library services: CRC32C and random bytes.
//!
//! C headers: [`include/linux/crc32c.h`](srctree/include/linux/crc32c.h),
//! [`include/linux/random.h`](srctree/include/linux/random.h)

use super::dm::bindings as b;

/// The kernel's CRC32C (hardware-accelerated where the CPU has it) of
/// `data`, continuing from `crc`.
pub(crate) fn crc32c(crc: u32, data: &[u8]) -> u32 {
    // SAFETY: `data` is valid for reads of `data.len()` bytes.
    unsafe { b::dmr_crc32c(crc, data.as_ptr().cast(), data.len()) }
}

/// Fills `buf` with random bytes (`get_random_bytes`).
pub(crate) fn fill_random(buf: &mut [u8]) {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
    unsafe { kernel::bindings::get_random_bytes(buf.as_mut_ptr().cast(), buf.len()) };
}
