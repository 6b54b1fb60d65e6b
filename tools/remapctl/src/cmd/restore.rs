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
pub fn run(path: &Path, file: &Path, unchecked: bool) -> Result<u8> {
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
    let target = loc.as_ref().map_or(&dev, |l| l.spare_dev(&dev));
    let fmt = match Format::new(identity) {
        Ok(f) => f,
        Err(e) => bail!("the dump's geometry cannot hold metadata: {e:?}"),
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
