// SPDX-License-Identifier: GPL-2.0

//! `status [<name>...] [--json]`: health at a glance, and for scripts.

use crate::dmdev::{Dm, Live};
use crate::erc::{self, Drive};
use crate::exit;
use crate::status::Health;
use anyhow::Result;
use serde::Serialize;

/// `status --json`: a versioned object, as `zpool status -j` and
/// `smartctl -j` print theirs, so that a field can be added (or, in a new
/// version, changed) without breaking a reader that checks the version.
#[derive(Serialize)]
struct Report {
    version: u32,
    devices: Vec<Device>,
}

/// One device: its status line's fields and the drives under it with
/// their error recovery times.
#[derive(Serialize)]
struct Device {
    #[serde(flatten)]
    health: Health,
    drives: Vec<Drive>,
}

impl Device {
    fn read(health: Health) -> Self {
        Device {
            drives: erc::drives_under(&health.kernel_name),
            health,
        }
    }

    /// Its lines for people: the health line, then one per drive.
    fn lines(&self) -> String {
        let mut out = self.health.line();
        for d in &self.drives {
            out.push('\n');
            out.push_str(&d.line());
        }
        out
    }
}

impl Report {
    /// The version of the object's form.
    const VERSION: u32 = 1;

    fn new(devices: Vec<Device>) -> Self {
        Self {
            version: Self::VERSION,
            devices,
        }
    }
}

/// Prints the health of the devices named (every remap device when none
/// is); exits by the worst.
pub fn run(names: &[String], json: bool) -> Result<u8> {
    let dm = Dm::new()?;
    let mut code = exit::OK;
    let live: Vec<Live> = if names.is_empty() {
        dm.list()?
    } else {
        let mut v = Vec::new();
        for n in names {
            match dm.get(n) {
                Ok(l) => v.push(l),
                Err(e) => {
                    eprintln!("remapctl: status {n}: {e:#}");
                    code = exit::ERROR;
                }
            }
        }
        v
    };
    let mut all = Vec::new();
    for l in &live {
        match Health::parse(&l.name, l.uuid.clone(), &l.kernel_name, &l.status) {
            Ok(h) => {
                let c = h.verdict().exit_code();
                if code != exit::ERROR {
                    code = code.max(c);
                }
                all.push(Device::read(h));
            }
            Err(e) => {
                eprintln!("remapctl: status {}: {e:#}", l.name);
                code = exit::ERROR;
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&Report::new(all))?);
    } else if all.is_empty() && names.is_empty() {
        println!("no remap devices");
    } else {
        for d in &all {
            println!("{}", d.lines());
        }
    }
    Ok(code)
}
