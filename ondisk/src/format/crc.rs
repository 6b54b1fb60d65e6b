// SPDX-License-Identifier: GPL-2.0

//! CRC32C (Castagnoli), the checksum of every metadata block.

/// A CRC32C implementation: the register continued over `data` from `crc`,
/// with neither the initial nor the final inversion (the kernel's
/// `crc32c()` convention). [`block_crc`](super::block_crc) applies both.
///
/// The kernel passes its own (hardware-accelerated) implementation and
/// `remapctl` the `crc32c` crate's; both are tested against
/// [`SoftCrc32c`].
pub trait Crc32c {
    /// Continues the CRC register `crc` over `data`.
    fn update(crc: u32, data: &[u8]) -> u32;
}

/// The reflected Castagnoli polynomial.
const POLY: u32 = 0x82f6_3b78;

/// Slice-by-8 tables: `TABLES[k][b]` is the register after byte `b`
/// followed by `k` zero bytes.
const TABLES: [[u32; 256]; 8] = tables();

const fn tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut b = 0;
    while b < 256 {
        let mut crc = b as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            bit += 1;
        }
        t[0][b] = crc;
        b += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut b = 0;
        while b < 256 {
            let prev = t[k - 1][b];
            t[k][b] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            b += 1;
        }
        k += 1;
    }
    t
}

/// CRC32C in plain Rust (slice-by-8): the reference the other
/// implementations are tested against, and the one for callers without
/// their own.
pub struct SoftCrc32c;

impl Crc32c for SoftCrc32c {
    fn update(mut crc: u32, data: &[u8]) -> u32 {
        let mut chunks = data.chunks_exact(8);
        for c in &mut chunks {
            let lo = crc ^ u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            crc = TABLES[7][(lo & 0xff) as usize]
                ^ TABLES[6][((lo >> 8) & 0xff) as usize]
                ^ TABLES[5][((lo >> 16) & 0xff) as usize]
                ^ TABLES[4][(lo >> 24) as usize]
                ^ TABLES[3][c[4] as usize]
                ^ TABLES[2][c[5] as usize]
                ^ TABLES[1][c[6] as usize]
                ^ TABLES[0][c[7] as usize];
        }
        for &b in chunks.remainder() {
            crc = (crc >> 8) ^ TABLES[0][((crc ^ u32::from(b)) & 0xff) as usize];
        }
        crc
    }
}
