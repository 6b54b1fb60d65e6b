// SPDX-License-Identifier: GPL-2.0

//! The `crc32c` crate (hardware-accelerated) as the on-disk format's CRC.

use dm_remap_ondisk::Crc32c;

/// The `crc32c` crate's CRC32C in the format's convention (the register
/// without the inversions, which the crate applies inside).
pub struct Crc;

impl Crc32c for Crc {
    fn update(crc: u32, data: &[u8]) -> u32 {
        !crc32c::crc32c_append(!crc, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dm_remap_ondisk::SoftCrc32c;

    #[test]
    fn agrees_with_the_format_crc() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for len in [0, 1, 8, 100, 4096, 10_000] {
            assert_eq!(
                Crc::update(!0, &data[..len]),
                SoftCrc32c::update(!0, &data[..len])
            );
        }
    }
}
