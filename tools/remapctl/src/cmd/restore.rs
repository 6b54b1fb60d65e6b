// SPDX-License-Identifier: GPL-2.0

//! `restore <dev> <file>`: metadata holding a dumped table, written whole
//! to all five copies in the format's commit order (thin_restore).

use super::locate;
use crate::device::{Access, BlockDev};
use crate::dump::{parse_uuid, Dump};
use crate::label;
use crate::{exit, meta};
use anyhow::{bail, Context, Result};
use dm_remap_ondisk::{read_all, Format, Identity, METADATA_COPIES};
use std::io::Read;
use std::path::Path;

/// A generation above every one any copy holds, intact or not loadable:
/// a restore cut short must not leave an older commit looking newer.
fn next_generation(dev: &BlockDev, fmt: &Format) -> Result<u64> {
    let mut area = meta::SpareArea::new(dev, *fmt)?;
    let mut bufs = vec![0u8; METADATA_COPIES * fmt.block_bytes()];
    let mut top = 0;
    for index in 0..fmt.copy_blocks() {
        for g in read_all::<crate::crc::Crc, _>(fmt, &mut area, index, &mut bufs)
            .iter()
            .flatten()
        {
            top = top.max(*g);
        }
    }
    Ok(top + 1)
}

/// Writes the dump in `file` to `path`.
pub fn run(
    path: &Path,
    file: &Path,
    unchecked: bool,
    force: bool,
    separate_devices: bool,
) -> Result<u8> {
    let mut text = String::new();
    if file == Path::new("-") {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
    }
    let d = Dump::parse(&text)?;
    let uuid = parse_uuid(&d.uuid)?;
    let identity: Identity = d.geometry.into();
    let dev = BlockDev::open(path, Access::Exclusive)?;
    // Without a label, the device is the spare device of the dump's
    // geometry; with one, the dump must be of that device.
    let loc = match label::probe(&dev)? {
        Some(_) => Some(locate(&dev, None, Access::Exclusive)?),
        None => None,
    };
    if let Some((l, _)) = loc.as_ref().and_then(|l| l.label.as_ref()) {
        if l.identity != identity || l.uuid != uuid {
            eprintln!(
                "remapctl: {}: the dump is of another device (its UUID or geometry differs from the label's)",
                path.display()
            );
            return Ok(exit::FAILED);
        }
    }
    // No label: nothing says this device is the dump's. What it holds is
    // destroyed only when asked.
    if loc.is_none() && !force {
        for at in [0, identity.spare_offset * 512] {
            if let Some(sig) = super::format::signatures_at(&dev, at)? {
                eprintln!(
                    "remapctl: {} has no remap label and holds a signature at byte {at} ({sig}): use --force to write the metadata anyway, destroying it",
                    path.display()
                );
                return Ok(exit::FAILED);
            }
        }
    }
    if loc.is_none() && !separate_devices {
        let (d0, d1) = (
            identity.data_offset,
            identity.data_offset.saturating_add(identity.data_len),
        );
        let (s0, s1) = (
            identity.spare_offset,
            identity.spare_offset.saturating_add(identity.spare_len),
        );
        if d0 < s1 && s0 < d1 {
            eprintln!(
                "remapctl: the dump's data area (sectors {d0}-{d1}) and spare area (sectors {s0}-{s1}) overlap: that is right only when they lie on two devices; use --separate-devices if they do"
            );
            return Ok(exit::FAILED);
        }
    }
    let target = loc.as_ref().map_or(&dev, |l| l.spare_dev(&dev));
    let fmt = match Format::new(identity) {
        Ok(f) => f,
        Err(e) => bail!("the dump's geometry cannot hold metadata: {}", e.reason()),
    };
    let words = d.table().to_words(&fmt, !unchecked)?;
    let generation = next_generation(target, &fmt)?.max(d.generation);
    meta::write(
        target,
        &fmt,
        &uuid,
        generation,
        &words,
        None,
        &[],
        [true; METADATA_COPIES],
    )?;
    println!(
        "restored {} remaps, {} retired spares and {} pending blocks to {} (generation {generation})",
        d.remaps.len(),
        d.retired.len(),
        d.pending.len(),
        path.display()
    );
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_areas_on_a_device_without_a_label_need_force() {
        let dir = std::env::temp_dir();
        let dev = dir.join(format!("remapctl-restore-{}", std::process::id()));
        let dump = dir.join(format!("remapctl-restore-{}.dump", std::process::id()));
        std::fs::File::create(&dev)
            .unwrap()
            .set_len(16 << 20)
            .unwrap();
        // Data and spare areas both from sector 0: two devices' geometry.
        std::fs::write(
            &dump,
            "uuid 6d6b6d65-7461-4000-8000-746573747330\ngeneration 1\ngeometry 0 131072 0 32768 4096\nremap 0 11\n",
        )
        .unwrap();
        assert_eq!(run(&dev, &dump, false, false, false).unwrap(), exit::FAILED);
        assert_eq!(run(&dev, &dump, false, true, false).unwrap(), exit::FAILED);
        assert_eq!(run(&dev, &dump, false, false, true).unwrap(), exit::OK);
        std::fs::remove_file(&dev).unwrap();
        std::fs::remove_file(&dump).unwrap();
    }
}
