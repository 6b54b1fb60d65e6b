// SPDX-License-Identifier: GPL-2.0

//! `check <dev>`: all five copies read offline by the kernel's own
//! recovery code, every damaged or stale block reported (thin_check).

use super::locate;
use crate::device::{Access, BlockDev};
use crate::label::Found;
use crate::{exit, meta};
use anyhow::Result;
use dm_remap_ondisk::{BadBlock, BlockKind, Finding, Format, LoadError, UuidText};
use std::path::Path;

/// Why metadata cannot be loaded, for people.
pub fn describe(e: &LoadError) -> String {
    match e {
        LoadError::NoIntactCopy => {
            "the superblock is damaged in all 5 copies (or of another format version)".into()
        }
        LoadError::Mismatch(id) => format!(
            "the metadata belongs to another geometry (data {}+{}, spare {}+{}, block size {})",
            id.data_offset, id.data_len, id.spare_offset, id.spare_len, id.block_size
        ),
        LoadError::LayoutMismatch => "the superblock describes another layout".into(),
        LoadError::BlockLost(i) => format!("metadata block {i} is damaged in all 5 copies"),
        LoadError::BadSlot(s) => {
            format!("the slot of spare block {s} holds a value no writer makes")
        }
        LoadError::BadPending(s) => format!("pending slot {s} holds a value no writer makes"),
        LoadError::Buffers => "internal error: buffers of the wrong size".into(),
    }
}

fn kind(fmt: &Format, index: u32) -> &'static str {
    match fmt.kind_of(index) {
        BlockKind::Super => "superblock",
        BlockKind::Slots => "spare slots",
        BlockKind::Pending => "pending slots",
    }
}

fn what(f: &Finding, newest: u64) -> String {
    match f {
        Finding::Bad(BadBlock::NoMagic) => "not a metadata block (no magic)".into(),
        Finding::Bad(BadBlock::Checksum) => "checksum mismatch".into(),
        Finding::Bad(BadBlock::Version) => "another format version".into(),
        Finding::Bad(BadBlock::Misplaced) => "an intact block of another place".into(),
        Finding::Bad(BadBlock::Unreadable) => "unreadable".into(),
        Finding::Bad(BadBlock::Generation) => "a generation no writer reaches".into(),
        Finding::Stale { generation } => {
            format!("stale (generation {generation}, newest {newest})")
        }
        Finding::Unfinished { generation } => {
            format!("from an unfinished commit (generation {generation}, above the version taken; newest superblock {newest})")
        }
    }
}

/// Checks the device; exits 0 clean, 1 repairable, 3 beyond repair.
pub fn run(path: &Path, quiet: bool, geometry: Option<&str>) -> Result<u8> {
    let dev = BlockDev::open(path, Access::ReadExclusive)?;
    let say = |s: String| {
        if !quiet {
            println!("{s}");
        }
    };
    let loc = locate(&dev, geometry, Access::ReadExclusive)?;
    let spare = loc.spare_dev(&dev);
    let mut code = exit::OK;
    if let Some((_, found)) = &loc.label {
        if *found != Found::Both {
            say(format!(
                "label: {}: run remapctl repair to rewrite it",
                found.describe()
            ));
            code = exit::DEGRADED;
        }
    }
    let m = match meta::load(spare, loc.identity)? {
        Ok(m) => m,
        Err(e) => {
            say(format!(
                "{}: beyond repair: {}",
                path.display(),
                describe(&e)
            ));
            return Ok(exit::FAILED);
        }
    };
    if m.rec.blank {
        say(format!(
            "{}: the spare area holds no metadata",
            path.display()
        ));
        return Ok(exit::FAILED);
    }
    if let Some((l, _)) = &loc.label {
        if l.uuid != m.rec.uuid {
            say(format!(
                "{}: the metadata (UUID {}) is not the label's (UUID {})",
                path.display(),
                UuidText(&m.rec.uuid),
                UuidText(&l.uuid)
            ));
            return Ok(exit::FAILED);
        }
    }
    for (copy, index, f) in &m.findings {
        say(format!(
            "copy {copy} block {index} ({}): {}",
            kind(&m.fmt, *index),
            what(f, m.rec.generation)
        ));
    }
    say(format!(
        "{}: metadata UUID {}, generation {}, {} of 5 copies intact",
        path.display(),
        UuidText(&m.rec.uuid),
        m.rec.generation,
        m.rec.intact_copies()
    ));
    if !m.findings.is_empty() {
        code = exit::DEGRADED;
    }
    Ok(code)
}
