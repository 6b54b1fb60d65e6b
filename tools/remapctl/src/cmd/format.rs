// SPDX-License-Identifier: GPL-2.0

//! `format <dev>`: lay out the data and spare areas, write blank metadata
//! with a new UUID, and the remap labels that `open` finds it by.
//!
//! Layout: the primary label in the first 4 KiB, the data area from
//! 1 MiB (aligned, as partitions are), the spare area right after it up
//! to the last block before the backup label in the last 4 KiB.

use crate::device::{Access, BlockDev};
use crate::label::{self, Label, Role, LABEL_BYTES};
use crate::{exit, meta};
use anyhow::{bail, Context, Result};
use dm_remap_ondisk::{Format, Identity, UuidText, MAGIC, MAX_BLOCK_SIZE, METADATA_COPIES};
use std::path::PathBuf;
use std::process::Command;

/// Where the data area starts: 1 MiB.
pub const DATA_OFFSET_BYTES: u64 = 1 << 20;
/// The spare area's default share of the device, in percent.
pub const DEFAULT_SPARE_PERCENT: f64 = 1.0;

/// What `format` was asked.
#[derive(clap::Args)]
pub struct Options {
    /// The device.
    pub dev: PathBuf,
    /// The spare area's size (bytes, or with K, M, G, T).
    #[arg(long, conflicts_with = "spare_percent")]
    pub spare_size: Option<String>,
    /// The spare area's size in percent of the device (default 1).
    #[arg(long)]
    pub spare_percent: Option<f64>,
    /// The remap block size in bytes.
    #[arg(long, default_value_t = 4096)]
    pub block_size: u32,
    /// Remap only on request (table feature no_auto_remap).
    #[arg(long)]
    pub no_auto_remap: bool,
    /// Reads of a failing block before it counts as unreadable.
    #[arg(long)]
    pub read_retries: Option<u32>,
    /// A data block read slower than this many milliseconds (and again on
    /// two more tries, while a read elsewhere is fast) is weak and moved
    /// to a spare with its data; 0 never. The target's default is 1000
    /// (table feature slow_read_ms).
    #[arg(long, value_name = "MS")]
    pub slow_read_ms: Option<u32>,
    /// Format a device that holds a filesystem, a partition table,
    /// another signature or remap metadata.
    #[arg(long)]
    pub force: bool,
    /// Put the spare area on this device (all of it between its labels,
    /// or --spare-size of it) and use all of <dev> for data.
    #[arg(long)]
    pub spare_dev: Option<PathBuf>,
}

/// Parses a size: bytes, or a number with K, M, G or T (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim();
    let (num, shift) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => bail!("bad size {s:?}: the suffix must be K, M, G or T"),
            };
            (&s[..i], shift)
        }
        _ => (s, 0),
    };
    let n: u64 = num.parse().with_context(|| format!("bad size {s:?}"))?;
    n.checked_mul(1 << shift)
        .with_context(|| format!("size {s:?} is too large"))
}

/// The areas of a device of `size` bytes with spare area `spare_bytes`
/// (rounded up to whole blocks) and block size `bs`.
pub fn layout(size: u64, spare_bytes: u64, bs: u32) -> Result<Identity> {
    let bs64 = u64::from(bs);
    let end = (size.saturating_sub(LABEL_BYTES as u64)) / bs64 * bs64;
    let spare = spare_bytes
        .checked_next_multiple_of(bs64)
        .filter(|&s| s.saturating_add(DATA_OFFSET_BYTES + bs64) <= end)
        .with_context(|| {
            format!(
                "the device ({size} bytes) is too small for a 1 MiB label area, a spare area of {spare_bytes} bytes and data"
            )
        })?;
    let data_len = end - DATA_OFFSET_BYTES - spare;
    Ok(Identity {
        data_offset: DATA_OFFSET_BYTES / 512,
        data_len: data_len / 512,
        spare_offset: (DATA_OFFSET_BYTES + data_len) / 512,
        spare_len: spare / 512,
        block_size: bs,
    })
}

/// The spare area on a spare device of `size` bytes: its last
/// `spare_bytes` (rounded up to blocks) before the backup label, or all
/// of it from 1 MiB on; returns (offset, length) in sectors.
pub fn spare_device_layout(size: u64, spare_bytes: Option<u64>, bs: u32) -> Result<(u64, u64)> {
    let bs64 = u64::from(bs);
    let end = (size.saturating_sub(LABEL_BYTES as u64)) / bs64 * bs64;
    let whole = end.saturating_sub(DATA_OFFSET_BYTES);
    let spare = match spare_bytes {
        None => whole,
        Some(b) => b.checked_next_multiple_of(bs64).unwrap_or(u64::MAX),
    };
    if whole == 0 || spare > whole || spare == 0 {
        bail!("the spare device ({size} bytes) cannot hold a spare area of {spare} bytes after its 1 MiB label area");
    }
    Ok(((end - spare) / 512, spare / 512))
}

/// What `blkid -p` finds on the device, if anything.
pub fn signatures(dev: &BlockDev) -> Result<Option<String>> {
    signatures_at(dev, 0)
}

/// What `blkid -p` finds on the device from byte `offset` on (a
/// filesystem inside an area), if anything.
pub fn signatures_at(dev: &BlockDev, offset: u64) -> Result<Option<String>> {
    let out = Command::new("blkid")
        .args(["-p", "-o", "export", "-O", &offset.to_string()])
        .arg(dev.path())
        .output()
        .context("cannot run blkid to look for signatures (install util-linux, or use --force)")?;
    match out.status.code() {
        Some(0) => {
            let text = String::from_utf8_lossy(&out.stdout);
            let found: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with("TYPE=") || l.starts_with("PTTYPE="))
                .collect();
            Ok(Some(if found.is_empty() {
                text.trim().replace('\n', " ")
            } else {
                found.join(" ")
            }))
        }
        // blkid: 2 is "nothing found".
        Some(2) => Ok(None),
        _ => bail!(
            "blkid -p {} failed: {}",
            dev.path().display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    }
}

/// The first metadata copy of `fmt` on `dev` whose superblock carries the
/// metadata's magic, intact or not.
fn metadata_left(dev: &BlockDev, fmt: &Format) -> Result<Option<usize>> {
    let bs = fmt.block_bytes();
    let mut b = vec![0u8; bs];
    for (copy, &start) in fmt.layout.starts.iter().enumerate() {
        let at = fmt.identity.spare_offset * 512 + u64::from(start) * bs as u64;
        dev.read_at(at, &mut b)?;
        if b[..MAGIC.len()] == MAGIC {
            return Ok(Some(copy));
        }
    }
    Ok(None)
}

/// Makes `path` a file of 64 MiB formatted with the defaults (4 KiB
/// blocks, a 1% spare area); returns the options used.
#[cfg(test)]
pub fn format_file(path: &std::path::Path) -> Options {
    std::fs::File::create(path)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let o = Options {
        dev: path.to_path_buf(),
        spare_size: None,
        spare_percent: None,
        block_size: 4096,
        no_auto_remap: false,
        read_retries: None,
        slow_read_ms: None,
        force: false,
        spare_dev: None,
    };
    assert_eq!(run(&o).unwrap(), exit::OK);
    o
}

/// Formats the device.
pub fn run(o: &Options) -> Result<u8> {
    let bs = o.block_size;
    if !(512..=MAX_BLOCK_SIZE).contains(&bs) || !bs.is_power_of_two() {
        bail!("--block-size must be a power of two from 512 to 65536, not {bs}");
    }
    if let Some(r) = o.read_retries {
        if r > 16 {
            bail!("--read-retries must be 0 to 16, not {r}");
        }
    }
    if let Some(ms) = o.slow_read_ms.filter(|&ms| ms > label::MAX_SLOW_READ_MS) {
        bail!(
            "--slow-read-ms must be 0 (never) to {} milliseconds, not {ms}",
            label::MAX_SLOW_READ_MS
        );
    }
    let dev = BlockDev::open(&o.dev, Access::Exclusive)?;
    let spare_dev = match &o.spare_dev {
        Some(p) => Some(BlockDev::open(p, Access::Exclusive)?),
        None => None,
    };
    let devices: Vec<&BlockDev> = std::iter::once(&dev).chain(spare_dev.as_ref()).collect();
    for d in &devices {
        if bs < d.logical_block_size() {
            bail!(
                "--block-size {bs} is below the logical block size {} of {}",
                d.logical_block_size(),
                d.path().display()
            );
        }
        if o.force {
            continue;
        }
        // Only a device plainly blank (or another signature's, below) is
        // formatted without --force: a damaged label, or one that no
        // longer fits (a shrunk device), may still front remaps.
        match label::probe(d) {
            Ok(Some((l, _))) => {
                eprintln!(
                    "remapctl: {} is already formatted (metadata UUID {}): use --force to format it again, losing its remaps",
                    d.path().display(),
                    UuidText(&l.uuid)
                );
                return Ok(exit::FAILED);
            }
            Ok(None) => {}
            Err(e) => {
                eprintln!(
                    "remapctl: {e:#}; its remaps may still be there (remapctl repair --geometry rewrites the label): use --force to format it anyway, losing them"
                );
                return Ok(exit::FAILED);
            }
        }
        if let Some(sig) = signatures(d)? {
            eprintln!(
                "remapctl: {} holds a signature ({sig}): use --force to format it anyway, destroying it",
                d.path().display()
            );
            return Ok(exit::FAILED);
        }
    }
    let identity = match &spare_dev {
        None => {
            let spare_bytes = match (&o.spare_size, o.spare_percent) {
                (Some(s), _) => parse_size(s)?,
                (None, p) => {
                    let p = p.unwrap_or(DEFAULT_SPARE_PERCENT);
                    if !(p > 0.0 && p < 100.0) {
                        bail!("--spare-percent must be above 0 and below 100, not {p}");
                    }
                    (dev.size() as f64 * p / 100.0) as u64
                }
            };
            layout(dev.size(), spare_bytes, bs)?
        }
        Some(s) => {
            // The data device is all data; the spare device's area lies
            // between its labels, or is --spare-size of it.
            let data = layout(dev.size(), 0, bs)?;
            let spare_bytes = match (&o.spare_size, o.spare_percent) {
                (Some(x), _) => Some(parse_size(x)?),
                (None, Some(p)) => Some((s.size() as f64 * p.clamp(0.0, 100.0) / 100.0) as u64),
                (None, None) => None,
            };
            let (spare_offset, spare_len) = spare_device_layout(s.size(), spare_bytes, bs)?;
            Identity {
                spare_offset,
                spare_len,
                ..data
            }
        }
    };
    let fmt = match Format::new(identity) {
        Ok(f) => f,
        Err(e) => bail!(
            "a spare area of {} blocks of {bs} bytes cannot hold the metadata: {}",
            identity.spare_len * 512 / u64::from(bs),
            e.reason()
        ),
    };
    let meta_dev = spare_dev.as_ref().unwrap_or(&dev);
    if !o.force {
        // Labels zeroed, metadata kept: the superblocks of this very
        // layout still carry the metadata's magic.
        if let Some(copy) = metadata_left(meta_dev, &fmt)? {
            eprintln!(
                "remapctl: {} has no remap label, but its spare area holds remap metadata (copy {copy} of this layout): remapctl repair --geometry rewrites the label; use --force to format it anyway, losing its remaps",
                meta_dev.path().display()
            );
            return Ok(exit::FAILED);
        }
        // A filesystem inside the data area of an earlier format (from
        // 1 MiB) has no signature at the device's start.
        if let Some(sig) = signatures_at(&dev, identity.data_offset * 512)? {
            eprintln!(
                "remapctl: {} holds a signature at {} MiB ({sig}), where the data area starts: use --force to format it anyway, destroying it",
                dev.path().display(),
                (identity.data_offset * 512) >> 20
            );
            return Ok(exit::FAILED);
        }
    }
    let uuid = *uuid::Uuid::new_v4().as_bytes();
    // Wipe the label areas and the signatures that live at the ends of a
    // device (filesystems, GPT's backup header, md 1.0), then write the
    // metadata, then the labels (the spare device's first): a format cut
    // short has no label on the data device, and open refuses it.
    let zeros = vec![0u8; DATA_OFFSET_BYTES as usize];
    for d in &devices {
        d.write_at(0, &zeros)?;
        let tail = d.size().min(DATA_OFFSET_BYTES);
        d.write_at(d.size() - tail, &zeros[..tail as usize])?;
        d.flush()?;
    }
    let words = vec![0u64; fmt.words()];
    meta::write(
        meta_dev,
        &fmt,
        &uuid,
        1,
        &words,
        None,
        &[],
        [true; METADATA_COPIES],
    )?;
    let l = Label {
        uuid,
        identity,
        no_auto_remap: o.no_auto_remap,
        read_retries: o.read_retries,
        slow_read_ms: o.slow_read_ms,
        device_size: dev.size(),
        role: if spare_dev.is_some() {
            Role::Data
        } else {
            Role::Whole
        },
    };
    if let Some(s) = &spare_dev {
        let spare_label = Label {
            device_size: s.size(),
            role: Role::Spare,
            ..l
        };
        label::write(s, &spare_label)?;
    }
    label::write(&dev, &l)?;
    let usable = fmt.nr_spare - METADATA_COPIES as u32 * fmt.copy_blocks();
    println!(
        "formatted {}: data area {} MiB from 1 MiB, spare area{} {} blocks of {bs} bytes ({usable} for data, {} per metadata copy), metadata UUID {}",
        dev.path().display(),
        identity.data_len / 2048,
        spare_dev
            .as_ref()
            .map_or(String::new(), |s| format!(" on {}:", s.path().display())),
        fmt.nr_spare,
        fmt.copy_blocks(),
        UuidText(&uuid)
    );
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of 64 MiB, formatted without --force.
    fn formatted(tag: &str) -> (PathBuf, Options) {
        let path = std::env::temp_dir().join(format!("remapctl-fmt-{tag}-{}", std::process::id()));
        let o = format_file(&path);
        (path, o)
    }

    #[test]
    fn a_device_that_is_not_plainly_blank_is_refused_without_force() {
        // Formatted: refused.
        let (path, mut o) = formatted("again");
        assert_eq!(run(&o).unwrap(), exit::FAILED);
        let dev = BlockDev::open(&path, Access::Exclusive).unwrap();
        let size = dev.size();
        // Both labels damaged (a byte each): refused, not taken for blank.
        for at in [100, size - 4096 + 100] {
            let mut b = [0u8; 1];
            dev.read_at(at, &mut b).unwrap();
            b[0] ^= 0xff;
            dev.write_at(at, &b).unwrap();
        }
        drop(dev);
        assert_eq!(run(&o).unwrap(), exit::FAILED);
        // Both labels zeroed, the metadata left: refused.
        let dev = BlockDev::open(&path, Access::Exclusive).unwrap();
        dev.write_at(0, &[0u8; 4096]).unwrap();
        dev.write_at(size - 4096, &[0u8; 4096]).unwrap();
        drop(dev);
        assert_eq!(run(&o).unwrap(), exit::FAILED);
        o.force = true;
        assert_eq!(run(&o).unwrap(), exit::OK);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert!(parse_size("1X").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn layout_leaves_room_for_both_labels() {
        let size = 64 << 20;
        let id = layout(size, 640 << 10, 4096).unwrap();
        assert_eq!(id.data_offset, 2048);
        assert_eq!(id.spare_offset, id.data_offset + id.data_len);
        assert!((id.spare_offset + id.spare_len) * 512 <= size - LABEL_BYTES as u64);
        assert_eq!(id.spare_len % 8, 0);
        assert_eq!(id.data_len % 8, 0);
        assert!(Format::new(id).is_ok());
        assert!(layout(1 << 20, 4096, 4096).is_err());
        assert!(layout(size, u64::MAX, 4096).is_err());
        assert_eq!(
            spare_device_layout(8 << 20, None, 4096).unwrap(),
            (2048, (7 << 11) - 8)
        );
        assert_eq!(
            spare_device_layout(8 << 20, Some(1 << 20), 4096).unwrap(),
            ((8 << 11) - 8 - 2048, 2048)
        );
        assert!(spare_device_layout(8 << 20, Some(8 << 20), 4096).is_err());
        assert!(spare_device_layout(8 << 20, Some(u64::MAX), 4096).is_err());
    }
}
