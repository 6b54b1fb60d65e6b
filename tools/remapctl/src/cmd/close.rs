// SPDX-License-Identifier: GPL-2.0

//! `close <name>...`: remove remap devices.

use crate::dmdev::Dm;
use crate::exit;
use anyhow::Result;

/// Removes each device named; goes on past a failure and reports it.
pub fn run(names: &[String]) -> Result<u8> {
    let dm = Dm::new()?;
    let mut code = exit::OK;
    for name in names {
        let done = dm.get(name).and_then(|_| dm.remove(name));
        if let Err(e) = done {
            eprintln!("remapctl: close {name}: {e:#}");
            code = exit::ERROR;
        }
    }
    Ok(code)
}
