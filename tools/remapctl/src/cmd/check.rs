// SPDX-License-Identifier: GPL-2.0

//! `check <dev>`: all five copies read offline by the kernel's own
//! recovery code, every damaged or stale block reported (thin_check).

use super::locate;
use crate::device::{Access, BlockDev};
use crate::label::Found;
use crate::{exit, meta};
use anyhow::Result;
use dm_remap_ondisk::{BadBlock, BlockKind, Finding, Format, LoadError, UuidText};
use serde::Serialize;
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

/// One damaged, stale or unfinished block of one copy.
#[derive(Serialize)]
struct BlockFinding {
    copy: usize,
    block: u32,
    kind: &'static str,
    finding: String,
}

/// What `check` found: the lines it prints, or with `--json` one object
/// (`{"version": 1, ...}`, versioned as `status --json` is).
#[derive(Serialize)]
struct Report {
    version: u32,
    device: String,
    /// `clean`, `repairable` or `beyond_repair` (exit status 0, 1, 3).
    verdict: &'static str,
    /// Why it is beyond repair.
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
    /// A label damaged in one of its two places.
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uuid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    generation: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    copies_intact: Option<usize>,
    findings: Vec<BlockFinding>,
}

impl Report {
    fn code(&self) -> u8 {
        match self.verdict {
            "clean" => exit::OK,
            "repairable" => exit::DEGRADED,
            _ => exit::FAILED,
        }
    }

    fn beyond_repair(mut self, problem: String) -> Self {
        self.verdict = "beyond_repair";
        self.problem = Some(problem);
        self
    }

    fn print_text(&self) {
        if let Some(l) = &self.label {
            println!("label: {l}: run remapctl repair to rewrite it");
        }
        if let Some(p) = &self.problem {
            println!("{}: {p}", self.device);
            return;
        }
        for f in &self.findings {
            println!(
                "copy {} block {} ({}): {}",
                f.copy, f.block, f.kind, f.finding
            );
        }
        if let (Some(uuid), Some(generation), Some(intact)) =
            (&self.uuid, self.generation, self.copies_intact)
        {
            println!(
                "{}: metadata UUID {uuid}, generation {generation}, {intact} of 5 copies intact",
                self.device
            );
        }
    }
}

/// Checks the device; exits 0 clean, 1 repairable, 3 beyond repair.
pub fn run(path: &Path, quiet: bool, json: bool, geometry: Option<&str>) -> Result<u8> {
    let report = examine(path, geometry)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if !quiet {
        report.print_text();
    }
    Ok(report.code())
}

fn examine(path: &Path, geometry: Option<&str>) -> Result<Report> {
    let dev = BlockDev::open(path, Access::ReadExclusive)?;
    let loc = locate(&dev, geometry, Access::ReadExclusive)?;
    let spare = loc.spare_dev(&dev);
    let mut report = Report {
        version: 1,
        device: path.display().to_string(),
        verdict: "clean",
        problem: None,
        label: None,
        uuid: None,
        generation: None,
        copies_intact: None,
        findings: Vec::new(),
    };
    if let Some((_, found)) = &loc.label {
        if *found != Found::Both {
            report.label = Some(found.describe().to_string());
            report.verdict = "repairable";
        }
    }
    let m = match meta::load(spare, loc.identity)? {
        Ok(m) => m,
        Err(e) => return Ok(report.beyond_repair(format!("beyond repair: {}", describe(&e)))),
    };
    if m.rec.blank {
        return Ok(report.beyond_repair("the spare area holds no metadata".into()));
    }
    if let Some((l, _)) = &loc.label {
        if l.uuid != m.rec.uuid {
            return Ok(report.beyond_repair(format!(
                "the metadata (UUID {}) is not the label's (UUID {})",
                UuidText(&m.rec.uuid),
                UuidText(&l.uuid)
            )));
        }
    }
    for (copy, index, f) in &m.findings {
        report.findings.push(BlockFinding {
            copy: *copy,
            block: *index,
            kind: kind(&m.fmt, *index),
            finding: what(f, m.rec.generation),
        });
    }
    report.uuid = Some(UuidText(&m.rec.uuid).to_string());
    report.generation = Some(m.rec.generation);
    report.copies_intact = Some(m.rec.intact_copies());
    if !m.findings.is_empty() {
        report.verdict = "repairable";
    }
    Ok(report)
}
