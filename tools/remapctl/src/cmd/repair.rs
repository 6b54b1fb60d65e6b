// SPDX-License-Identifier: GPL-2.0

//! `repair <dev>`: the copies that lack a block of the newest intact
//! version rewritten from it, as the kernel's first commit after a load
//! does (the same generation, each block with its own), and a damaged
//! label rewritten from the intact one.

use super::{locate, usable};
use crate::device::{Access, BlockDev};
use crate::label::{self, Found};
use crate::{exit, meta};
use anyhow::Result;
use std::path::Path;

/// Repairs the device; exits 0 when it is whole afterwards.
pub fn run(path: &Path, geometry: Option<&str>) -> Result<u8> {
    let dev = BlockDev::open(path, Access::Exclusive)?;
    let loc = locate(&dev, geometry, Access::Exclusive)?;
    let spare = loc.spare_dev(&dev);
    let Some(m) = usable(spare, loc.identity, "cannot repair")? else {
        return Ok(exit::FAILED);
    };
    if let Some((l, found)) = &loc.label {
        if l.uuid != m.rec.uuid {
            eprintln!(
                "remapctl: {}: the metadata is not the label's (another device's): not repairing",
                path.display()
            );
            return Ok(exit::FAILED);
        }
        if *found != Found::Both {
            label::write(&dev, l)?;
            println!("rewrote the damaged remap label");
        }
    }
    if m.findings.is_empty() {
        println!("{}: all 5 metadata copies intact", path.display());
        return Ok(exit::OK);
    }
    let damaged = m.rec.stale;
    meta::write(
        spare,
        &m.fmt,
        &m.rec.uuid,
        m.rec.generation,
        &m.words,
        Some(&m.block_gen),
        damaged,
    )?;
    let Some(again) = usable(spare, loc.identity, "after the repair")? else {
        return Ok(exit::FAILED);
    };
    let copies: Vec<String> = (0..damaged.len())
        .filter(|&c| damaged[c])
        .map(|c| c.to_string())
        .collect();
    println!(
        "{}: rewrote copies {} at generation {}: {} of 5 copies intact",
        path.display(),
        copies.join(", "),
        m.rec.generation,
        again.rec.intact_copies()
    );
    Ok(if again.findings.is_empty() && again.words == m.words {
        exit::OK
    } else {
        exit::FAILED
    })
}
