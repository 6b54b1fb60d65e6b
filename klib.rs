// SPDX-License-Identifier: GPL-2.0

//! The kernel library services the metadata needs: CRC32C and random
//! bytes for a new metadata UUID.
//!
//! C headers: [`include/linux/crc32c.h`](srctree/include/linux/crc32c.h),
//! [`include/linux/random.h`](srctree/include/linux/random.h)

use crate::dm::bindings as b;
use crate::ondisk::{Crc32c, UUID_BYTES};

/// The kernel's CRC32C (hardware-accelerated where the CPU has it), as the
/// on-disk format's checksum. KUnit checks it against the format's own.
pub(crate) struct KernelCrc32c;

impl Crc32c for KernelCrc32c {
    fn update(crc: u32, data: &[u8]) -> u32 {
        // SAFETY: `data` is valid for reads of `data.len()` bytes.
        unsafe { b::dmr_crc32c(crc, data.as_ptr().cast(), data.len()) }
    }
}

/// A new random (version 4, RFC 9562) UUID.
pub(crate) fn random_uuid() -> [u8; UUID_BYTES] {
    let mut uuid = [0u8; UUID_BYTES];
    // SAFETY: `uuid` is valid for writes of `UUID_BYTES` bytes.
    unsafe { b::dmr_get_random_bytes(uuid.as_mut_ptr().cast(), UUID_BYTES) };
    uuid[6] = (uuid[6] & 0x0f) | 0x40;
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    uuid
}
