// SPDX-License-Identifier: GPL-2.0

//! `generate-units <dir>`: the systemd generator (systemd.generator(7)),
//! installed as `/usr/lib/systemd/system-generators/remapctl-generator`,
//! which runs it with the generator's directories.

use crate::exit;
use crate::remaptab;
use anyhow::{Context, Result};
use std::path::Path;

/// Writes the units of `remaptab` into `dir`. A missing remaptab means
/// nothing to open; a bad line is reported (with its number) and opens
/// nothing, and the other lines get their units, so that boot goes on
/// with every device that can be opened: the generator exits 0 unless it
/// cannot write its units at all.
pub fn run(dir: &Path, remaptab: &Path, remapctl: &str) -> Result<u8> {
    if !remaptab.exists() {
        return Ok(exit::OK);
    }
    let text = std::fs::read_to_string(remaptab)
        .with_context(|| format!("cannot read {}", remaptab.display()))?;
    let mut entries = Vec::new();
    for e in remaptab::parse_each(&text) {
        match e {
            Ok(e) => entries.push(e),
            Err(e) => eprintln!(
                "remapctl-generator: {}: {e:#}: that line is not opened at boot",
                remaptab.display()
            ),
        }
    }
    remaptab::generate(&entries, dir, remaptab, remapctl)?;
    Ok(exit::OK)
}
