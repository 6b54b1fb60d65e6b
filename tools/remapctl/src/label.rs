// SPDX-License-Identifier: GPL-2.0

//! The remap label: where `open` finds the metadata from the device alone.
//!
//! The kernel's metadata lives in the spare area, whose place depends on
//! the geometry chosen at `format`. The label records that geometry at two
//! fixed places, as GPT keeps a primary and a backup header: the first
//! 4 KiB of the device and its last 4 KiB. Only remapctl reads and writes
//! it; the kernel never sees it (the data area starts after it). Layout
//! (little-endian), in docs/format.md "The remap label":
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `DMRLABEL` |
//! | 8 | 4 | CRC32C of the 4 KiB, this field zero |
//! | 12 | 2 | label version, 1 |
//! | 14 | 2 | 0 primary, 1 backup |
//! | 16 | 16 | metadata UUID (the superblock's) |
//! | 32 | 8 | data offset (sectors) |
//! | 40 | 8 | data length (sectors) |
//! | 48 | 8 | spare offset (sectors) |
//! | 56 | 8 | spare length (sectors) |
//! | 64 | 4 | block size (bytes) |
//! | 68 | 4 | flags: bit 0 `no_auto_remap`, bit 1 `slow_read_ms` recorded |
//! | 72 | 4 | `read_retries`, or `0xffffffff` for the target's default |
//! | 76 | 8 | device size (bytes) when formatted |
//! | 84 | 2 | role: 0 data and spare area, 1 data area (the spare area on another device), 2 spare area |
//! | 88 | 4 | `slow_read_ms`, when flag bit 1 is set |

use crate::crc::Crc;
use crate::device::BlockDev;
use anyhow::{bail, Context, Result};
use dm_remap_ondisk::{block_crc, get_u16, get_u32, get_u64, Identity, UUID_BYTES};

/// Bytes of one label.
pub const LABEL_BYTES: usize = 4096;
const MAGIC: [u8; 8] = *b"DMRLABEL";
pub const VERSION: u16 = 1;
const NO_AUTO_REMAP: u32 = 1;
/// Labels written before `slow_read_ms` existed hold zeros at 88: a flag
/// says the field is there.
const SLOW_READ_MS_SET: u32 = 2;
const DEFAULT_RETRIES: u32 = u32::MAX;

/// What a labelled device holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    /// The data area and the spare area.
    Whole = 0,
    /// The data area; the spare area is on the device whose label has
    /// the same UUID and [`Role::Spare`].
    Data = 1,
    /// The spare area of another device's data area.
    Spare = 2,
}

/// What a label records.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Label {
    /// The metadata UUID.
    pub uuid: [u8; UUID_BYTES],
    /// The areas, as the superblock records them too.
    pub identity: Identity,
    /// The table feature `no_auto_remap`.
    pub no_auto_remap: bool,
    /// The table feature `read_retries`, when not the default.
    pub read_retries: Option<u32>,
    /// The table feature `slow_read_ms`, when not the default.
    pub slow_read_ms: Option<u32>,
    /// The device's size when it was formatted.
    pub device_size: u64,
    /// What this device holds.
    pub role: Role,
}

/// Where a label was found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Found {
    /// Both copies are intact and equal.
    Both,
    /// Only the primary (first 4 KiB) is intact.
    PrimaryOnly,
    /// Only the backup (last 4 KiB) is intact.
    BackupOnly,
}

impl Found {
    /// Which copy of the label was damaged, in words.
    pub fn describe(&self) -> &'static str {
        match self {
            Found::Both => "both copies intact",
            Found::PrimaryOnly => "the backup copy (last 4 KiB) is damaged or stale",
            Found::BackupOnly => "the primary copy (first 4 KiB) is damaged",
        }
    }
}

/// The most read retries the kernel takes (`read_retries` feature).
pub const MAX_READ_RETRIES: u32 = 16;
/// The largest `slow_read_ms` the kernel takes.
pub const MAX_SLOW_READ_MS: u32 = 120_000;

impl Label {
    /// The label's bytes for place `backup`.
    pub fn encode(&self, backup: bool) -> Vec<u8> {
        let mut b = vec![0u8; LABEL_BYTES];
        let id = &self.identity;
        b[..8].copy_from_slice(&MAGIC);
        b[12..14].copy_from_slice(&VERSION.to_le_bytes());
        b[14..16].copy_from_slice(&u16::from(backup).to_le_bytes());
        b[16..32].copy_from_slice(&self.uuid);
        b[32..40].copy_from_slice(&id.data_offset.to_le_bytes());
        b[40..48].copy_from_slice(&id.data_len.to_le_bytes());
        b[48..56].copy_from_slice(&id.spare_offset.to_le_bytes());
        b[56..64].copy_from_slice(&id.spare_len.to_le_bytes());
        b[64..68].copy_from_slice(&id.block_size.to_le_bytes());
        let flags = if self.no_auto_remap { NO_AUTO_REMAP } else { 0 }
            | if self.slow_read_ms.is_some() {
                SLOW_READ_MS_SET
            } else {
                0
            };
        b[68..72].copy_from_slice(&flags.to_le_bytes());
        let retries = self.read_retries.unwrap_or(DEFAULT_RETRIES);
        b[72..76].copy_from_slice(&retries.to_le_bytes());
        b[76..84].copy_from_slice(&self.device_size.to_le_bytes());
        b[84..86].copy_from_slice(&(self.role as u16).to_le_bytes());
        b[88..92].copy_from_slice(&self.slow_read_ms.unwrap_or(0).to_le_bytes());
        let crc = block_crc::<Crc>(&b);
        b[8..12].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// The label in `b`, if it is an intact one for place `backup`.
    pub fn decode(b: &[u8], backup: bool) -> Option<Label> {
        if b.len() != LABEL_BYTES
            || b[..8] != MAGIC
            || get_u32(b, 8) != block_crc::<Crc>(b)
            || get_u16(b, 12) != VERSION
            || get_u16(b, 14) != u16::from(backup)
        {
            return None;
        }
        let mut uuid = [0u8; UUID_BYTES];
        uuid.copy_from_slice(&b[16..32]);
        let retries = get_u32(b, 72);
        let role = match get_u16(b, 84) {
            0 => Role::Whole,
            1 => Role::Data,
            2 => Role::Spare,
            _ => return None,
        };
        Some(Label {
            uuid,
            identity: Identity {
                data_offset: get_u64(b, 32),
                data_len: get_u64(b, 40),
                spare_offset: get_u64(b, 48),
                spare_len: get_u64(b, 56),
                block_size: get_u32(b, 64),
            },
            no_auto_remap: get_u32(b, 68) & NO_AUTO_REMAP != 0,
            read_retries: (retries != DEFAULT_RETRIES).then_some(retries),
            slow_read_ms: (get_u32(b, 68) & SLOW_READ_MS_SET != 0).then(|| get_u32(b, 88)),
            device_size: get_u64(b, 76),
            role,
        })
    }

    /// Whether the first bytes of `b` are a label's magic, intact or not.
    pub fn has_magic(b: &[u8]) -> bool {
        b.len() >= 8 && b[..8] == MAGIC
    }
}

/// Byte offset of the backup label on a device of `size` bytes.
pub fn backup_offset(size: u64) -> u64 {
    size - LABEL_BYTES as u64
}

/// Reads the label of `dev`: the primary, else the backup; `None` when
/// neither place carries a label's magic (a device remapctl never
/// formatted). A copy counts only when its checksum is right and what it
/// records is usable on this device (areas between the labels, features
/// the kernel takes): a primary that is intact but records areas the
/// device cannot hold (a device shrunk, a label copied from another disk)
/// leaves the backup to be tried. Neither usable is an error that says
/// why.
pub fn probe(dev: &BlockDev) -> Result<Option<(Label, Found)>> {
    if dev.size() < 2 * LABEL_BYTES as u64 {
        return Ok(None);
    }
    // A copy that cannot be read counts as damaged, so that the other one
    // is still tried (a failing disk may lose either); only both
    // unreadable is an error.
    let read = |offset: u64, backup: bool| -> std::io::Result<(Option<Label>, bool)> {
        let mut b = vec![0u8; LABEL_BYTES];
        dev.read_at(offset, &mut b)?;
        Ok((Label::decode(&b, backup), Label::has_magic(&b)))
    };
    let (primary, primary_magic, backup, backup_magic) =
        match (read(0, false), read(backup_offset(dev.size()), true)) {
            (Err(e), Err(_)) => {
                return Err(e).with_context(|| {
                    format!(
                        "{}: neither remap label place (first and last 4 KiB) can be read",
                        dev.path().display()
                    )
                })
            }
            (p, b) => {
                let (p, pm) = p.unwrap_or((None, false));
                let (b, bm) = b.unwrap_or((None, false));
                (p, pm, b, bm)
            }
        };
    let usable = |l: Option<Label>| l.map(|l| (l, l.check_fits(dev)));
    let found = match (usable(primary), usable(backup)) {
        (Some((p, Ok(()))), Some((b, _))) if p == b => (p, Found::Both),
        // A format that was interrupted, or a device that was grown: the
        // primary is the one written last.
        (Some((p, Ok(()))), _) => (p, Found::PrimaryOnly),
        (_, Some((b, Ok(())))) => (b, Found::BackupOnly),
        (Some((_, Err(e))), _) | (None, Some((_, Err(e)))) => return Err(e),
        (None, None) if primary_magic || backup_magic => bail!(
            "{}: the remap label is damaged in both places (first and last 4 KiB): if you know the device's geometry, `remapctl repair --geometry` writes it again",
            dev.path().display()
        ),
        (None, None) => return Ok(None),
    };
    Ok(Some(found))
}

/// Reads the label of `dev` (see [`probe`]); no label is an error.
pub fn read(dev: &BlockDev) -> Result<(Label, Found)> {
    probe(dev)?.with_context(|| {
        format!(
            "{} holds no remap label: not formatted by remapctl format",
            dev.path().display()
        )
    })
}

impl Label {
    /// Whether the areas this label records lie on `dev` between its two
    /// labels (the data area on a data device, the spare area on a spare
    /// device, both apart on a whole one), without overflow.
    pub fn check_fits(&self, dev: &BlockDev) -> Result<()> {
        let id = &self.identity;
        let limit = backup_offset(dev.size()) / 512;
        let first = LABEL_BYTES as u64 / 512;
        let end = |off: u64, len: u64| off.checked_add(len).filter(|&e| off >= first && e <= limit);
        let data = end(id.data_offset, id.data_len);
        let spare = end(id.spare_offset, id.spare_len);
        let ok = match self.role {
            Role::Whole => match (data, spare) {
                (Some(d), Some(s)) => d <= id.spare_offset || s <= id.data_offset,
                _ => false,
            },
            Role::Data => data.is_some(),
            Role::Spare => spare.is_some(),
        };
        if let Some(r) = self.read_retries.filter(|&r| r > MAX_READ_RETRIES) {
            bail!(
                "{}: the remap label records read_retries {r}, which the kernel does not take (0 to {MAX_READ_RETRIES}): rewrite it with `remapctl repair --geometry`",
                dev.path().display()
            );
        }
        if let Some(ms) = self.slow_read_ms.filter(|&ms| ms > MAX_SLOW_READ_MS) {
            bail!(
                "{}: the remap label records slow_read_ms {ms}, which the kernel does not take (0 to {MAX_SLOW_READ_MS}): rewrite it with `remapctl repair --geometry`",
                dev.path().display()
            );
        }
        if dm_remap_ondisk::Format::new(self.identity).is_err() {
            bail!(
                "{}: the remap label records a geometry that cannot hold metadata (block size {}, spare area {} sectors)",
                dev.path().display(),
                id.block_size,
                id.spare_len
            );
        }
        if !ok {
            bail!(
                "{}: the remap label records areas that do not fit the device ({} bytes) between its labels: data {}+{}, spare {}+{} sectors (was the device shrunk?)",
                dev.path().display(),
                dev.size(),
                id.data_offset,
                id.data_len,
                id.spare_offset,
                id.spare_len
            );
        }
        Ok(())
    }
}

/// Writes both labels of `dev` and flushes.
pub fn write(dev: &BlockDev, label: &Label) -> Result<()> {
    dev.write_at(0, &label.encode(false))?;
    dev.write_at(backup_offset(dev.size()), &label.encode(true))?;
    dev.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label() -> Label {
        Label {
            uuid: *b"0123456789abcdef",
            identity: Identity {
                data_offset: 2048,
                data_len: 100_000,
                spare_offset: 102_048,
                spare_len: 8192,
                block_size: 4096,
            },
            no_auto_remap: true,
            read_retries: Some(3),
            slow_read_ms: Some(250),
            device_size: 64 << 20,
            role: Role::Data,
        }
    }

    #[test]
    fn a_label_whose_areas_leave_the_device_is_refused() {
        use crate::device::Access;
        let path = std::env::temp_dir().join(format!("remapctl-label-{}", std::process::id()));
        let size: u64 = 64 << 20;
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(size).unwrap();
        let mut l = label();
        l.role = Role::Whole;
        l.identity.spare_offset = l.identity.data_offset + l.identity.data_len;
        l.identity.spare_len = (size - LABEL_BYTES as u64) / 512 - l.identity.spare_offset;
        let dev = BlockDev::open(&path, Access::Exclusive).unwrap();
        write(&dev, &l).unwrap();
        assert_eq!(probe(&dev).unwrap(), Some((l, Found::Both)));
        // The device shrinks by 4 KiB: the spare area now reaches into the
        // place of the backup label.
        f.set_len(size - 4096).unwrap();
        let dev = BlockDev::open(&path, Access::Exclusive).unwrap();
        dev.write_at(backup_offset(dev.size()), &l.encode(true))
            .unwrap();
        assert!(probe(&dev).is_err());
        // Overflowing areas are refused, not wrapped.
        let mut bad = l;
        bad.identity.spare_offset = u64::MAX - 1;
        dev.write_at(0, &bad.encode(false)).unwrap();
        dev.write_at(backup_offset(dev.size()), &bad.encode(true))
            .unwrap();
        assert!(probe(&dev).is_err());
        std::fs::remove_file(&path).unwrap();
    }

    /// A file of `size` bytes with labels `primary` and `backup`.
    fn labelled(
        tag: &str,
        size: u64,
        primary: &Label,
        backup: &Label,
    ) -> (std::path::PathBuf, BlockDev) {
        use crate::device::Access;
        let path = std::env::temp_dir().join(format!("remapctl-{tag}-{}", std::process::id()));
        std::fs::File::create(&path).unwrap().set_len(size).unwrap();
        let dev = BlockDev::open(&path, Access::Exclusive).unwrap();
        dev.write_at(0, &primary.encode(false)).unwrap();
        dev.write_at(backup_offset(size), &backup.encode(true))
            .unwrap();
        (path, dev)
    }

    fn whole(size: u64) -> Label {
        let mut l = label();
        l.role = Role::Whole;
        l.read_retries = None;
        l.identity.spare_offset = l.identity.data_offset + l.identity.data_len;
        l.identity.spare_len = (size - LABEL_BYTES as u64) / 512 - l.identity.spare_offset;
        l
    }

    #[test]
    fn an_intact_primary_that_does_not_fit_leaves_the_backup() {
        let size: u64 = 64 << 20;
        let good = whole(size);
        let mut wrong = good;
        wrong.identity.spare_len *= 4;
        let (path, dev) = labelled("fit", size, &wrong, &good);
        assert_eq!(probe(&dev).unwrap(), Some((good, Found::BackupOnly)));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn features_the_kernel_refuses_are_named() {
        let size: u64 = 64 << 20;
        let mut l = whole(size);
        l.read_retries = Some(99);
        let (path, dev) = labelled("retries", size, &l, &l);
        let e = format!("{:#}", probe(&dev).unwrap_err());
        assert!(e.contains("read_retries 99"), "{e}");
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            Found::PrimaryOnly.describe(),
            "the backup copy (last 4 KiB) is damaged or stale"
        );
    }

    #[test]
    fn round_trips_and_refuses_damage() {
        let l = label();
        let b = l.encode(false);
        assert_eq!(Label::decode(&b, false), Some(l));
        assert_eq!(Label::decode(&b, true), None);
        for at in [0, 9, 20, 70, 4095] {
            let mut d = b.clone();
            d[at] ^= 1;
            assert_eq!(Label::decode(&d, false), None, "byte {at}");
        }
        let d = Label {
            read_retries: None,
            slow_read_ms: None,
            ..l
        };
        assert_eq!(Label::decode(&d.encode(true), true), Some(d));
        // A label of before slow_read_ms: zeros at 88, no flag.
        let mut old = d.encode(false);
        old[88..92].fill(0);
        let crc = block_crc::<Crc>(&{
            let mut z = old.clone();
            z[8..12].fill(0);
            z
        });
        old[8..12].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(Label::decode(&old, false).unwrap().slow_read_ms, None);
    }
}
