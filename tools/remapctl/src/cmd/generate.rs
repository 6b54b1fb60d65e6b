// SPDX-License-Identifier: GPL-2.0

//! `generate-units <dir>`: the systemd generator (systemd.generator(7)),
//! installed as `/usr/lib/systemd/system-generators/remapctl-generator`,
//! which runs it with the generator's directories.

use crate::exit;
use crate::remaptab;
use anyhow::Result;
use std::path::Path;

/// Writes the units of `remaptab` into `dir`. A missing remaptab means
/// nothing to open; a bad one is reported and opens nothing, so that boot
/// goes on.
pub fn run(dir: &Path, remaptab: &Path, remapctl: &str) -> Result<u8> {
    if !remaptab.exists() {
        return Ok(exit::OK);
    }
    let entries = match remaptab::read(remaptab) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("remapctl-generator: {e:#}");
            return Ok(exit::FAILED);
        }
    };
    remaptab::generate(&entries, dir, remapctl)?;
    Ok(exit::OK)
}
