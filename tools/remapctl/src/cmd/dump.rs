// SPDX-License-Identifier: GPL-2.0

//! `dump <dev>`: the remap table out, as text or JSON (thin_dump).

use super::{locate, usable};
use crate::device::{Access, BlockDev};
use crate::dump::Dump;
use crate::meta::Table;
use crate::{exit, DumpFormat};
use anyhow::Result;
use std::path::Path;

/// Prints the table of the newest intact commit.
pub fn run(path: &Path, format: DumpFormat, geometry: Option<&str>) -> Result<u8> {
    let dev = BlockDev::open(path, Access::Read)?;
    let loc = locate(&dev, geometry, Access::Read)?;
    let spare = loc.spare_dev(&dev);
    let Some(m) = usable(spare, loc.identity, "cannot dump")? else {
        return Ok(exit::FAILED);
    };
    let table = Table::of_words(&m.fmt, &m.words);
    let d = Dump::new(&m.rec.uuid, m.rec.generation, loc.identity, &table);
    match format {
        DumpFormat::Text => print!("{}", d.to_text()),
        DumpFormat::Json => println!("{}", serde_json::to_string_pretty(&d)?),
    }
    Ok(exit::OK)
}
