// SPDX-License-Identifier: GPL-2.0

//! `open <dev> <name>` and `open --all`: the device-mapper device of a
//! formatted device, with the table line derived from its label, after
//! the same offline check as `check` (as LVM runs thin_check first).

use super::{dm_uuid, locate_waiting, resolve, table_params, usable};
use crate::device::{Access, BlockDev};
use crate::dmdev::Dm;
use crate::exit;
use crate::label;
use crate::remaptab::{self, Source};
use anyhow::{Context, Result};
use dm_remap_ondisk::UuidText;
use std::path::Path;

/// Opens the device `source` (a path or `UUID=`) as `name`.
pub fn one(
    source: &str,
    name: &str,
    no_check: bool,
    readonly: bool,
    spare_timeout: std::time::Duration,
) -> Result<u8> {
    let dm = Dm::new()?;
    if dm.get(name).is_ok() {
        eprintln!("remapctl: a device named {name} exists already");
        return Ok(exit::FAILED);
    }
    let path = resolve(source)?;
    let (params, uuid, len) = {
        // Exclusive while it is checked: nothing else may have it open.
        let dev = BlockDev::open(&path, Access::ReadExclusive)?;
        let loc = locate_waiting(&dev, None, Access::ReadExclusive, spare_timeout)?;
        let spare = loc.spare_dev(&dev);
        let Some((l, found)) = loc.label else {
            anyhow::bail!("{}: no remap label", path.display());
        };
        if found != label::Found::Both {
            eprintln!(
                "remapctl: {}: one of the two remap labels is damaged ({found:?}): remapctl repair rewrites it",
                path.display()
            );
        }
        if let Some(open) = dm.by_uuid(&dm_uuid(&l.uuid))? {
            eprintln!("remapctl: {} is open already, as {open}", path.display());
            return Ok(exit::FAILED);
        }
        if !no_check {
            let Some(m) = usable(spare, l.identity, "the metadata cannot be used")? else {
                return Ok(exit::FAILED);
            };
            match m {
                m if m.rec.uuid != l.uuid => {
                    eprintln!(
                        "remapctl: {}: the spare area holds metadata of another device (UUID {}, the label says {}): refusing it",
                        path.display(),
                        UuidText(&m.rec.uuid),
                        UuidText(&l.uuid)
                    );
                    return Ok(exit::FAILED);
                }
                m if !m.findings.is_empty() => eprintln!(
                    "remapctl: {}: {} of 5 metadata copies intact; the kernel rewrites the others on open",
                    path.display(),
                    m.rec.intact_copies()
                ),
                _ => {}
            }
        }
        (table_params(&dev, spare, &l)?, l.uuid, l.identity.data_len)
    };
    dm.create(name, &dm_uuid(&uuid), len, &params, readonly)?;
    println!("opened {} as /dev/mapper/{name}", path.display());
    Ok(exit::OK)
}

/// Opens every remaptab entry that is not open yet. A bad line is
/// reported with its number and opens nothing, as the generator does; the
/// other lines are opened, and the exit status counts the bad line as a
/// refusal.
pub fn all(remaptab: &Path) -> Result<u8> {
    let text = std::fs::read_to_string(remaptab)
        .with_context(|| format!("cannot read {}", remaptab.display()))?;
    let dm = Dm::new()?;
    let mut code = exit::OK;
    let mut entries = Vec::new();
    for e in remaptab::parse_each(&text) {
        match e {
            Ok(e) => entries.push(e),
            Err(err) => {
                eprintln!("remapctl: {}: {err:#}: not opened", remaptab.display());
                code = code.max(exit::FAILED);
            }
        }
    }
    for e in &entries {
        if dm.get(&e.name).is_ok() {
            println!("{} is open already", e.name);
            continue;
        }
        let source = match &e.source {
            Source::Path(p) => p.clone(),
            Source::Uuid(u) => format!("UUID={u}"),
        };
        let c = one(
            &source,
            &e.name,
            e.no_check,
            e.readonly,
            std::time::Duration::ZERO,
        )
        .unwrap_or_else(|err| {
            eprintln!("remapctl: open {}: {err:#}", e.name);
            exit::ERROR
        });
        if c != exit::OK && !e.nofail {
            code = code.max(c);
        }
    }
    Ok(code)
}
