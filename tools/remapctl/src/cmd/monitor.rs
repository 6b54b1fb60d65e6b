// SPDX-License-Identifier: GPL-2.0

//! `monitor [<name>...] [--once] [--textfile <dir>]`: waits for
//! device-mapper events (no polling loop) and, for each change of a remap
//! device (new remaps, new pending blocks, the low-water mark, exhaustion,
//! damaged or failed metadata, a scrub's end), writes one line to stderr
//! and the system log; with `--textfile`, keeps a Prometheus textfile of
//! every device's figures up to date.

use crate::dmdev::Dm;
use crate::exit;
use crate::figures::{check_stats, Figures};
use crate::status::Health;
use crate::syslog::{Severity, Syslog};
use crate::textfile;
use anyhow::Result;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Says one line, on stderr and in the system log.
fn say(log: &Syslog, severity: Severity, name: &str, line: &str) {
    eprintln!("remapctl monitor: {name}: {line}");
    log.send(severity, &format!("{name}: {line}"));
}

/// Reads the figures of one live device.
fn figures(dm: &Dm, name: &str) -> Result<Figures> {
    let live = dm.get(name)?;
    let health = Health::parse(
        &live.name,
        live.uuid.clone(),
        &live.kernel_name,
        &live.status,
    )?;
    let stats = dm.message(name, "stats")?;
    check_stats(&stats)?;
    Ok(Figures::parse(health, &stats))
}

/// Runs the monitor; with `once`, reads and reports the figures once and
/// exits by the worst device's health, as `status` does.
pub fn run(names: &[String], once: bool, textfile_dir: Option<&Path>) -> Result<u8> {
    let dm = Dm::new()?;
    let log = Syslog::open();
    if !log.connected() && !once {
        eprintln!("remapctl monitor: no /dev/log: lines go to stderr only");
    }
    let mut last: BTreeMap<String, Figures> = BTreeMap::new();
    // Names reported missing, so that each is said once.
    let mut missing: BTreeSet<String> = BTreeSet::new();
    loop {
        // Armed before the figures are read: an event that comes after the
        // reading wakes the wait below.
        dm.arm_events()?;
        let wanted: Vec<String> = if names.is_empty() {
            dm.list()?.into_iter().map(|l| l.name).collect()
        } else {
            names.to_vec()
        };
        let mut code = exit::OK;
        let mut now = BTreeMap::new();
        for name in &wanted {
            match figures(&dm, name) {
                Ok(f) => {
                    missing.remove(name);
                    now.insert(name.clone(), f);
                }
                Err(e) => {
                    code = exit::ERROR;
                    if missing.insert(name.clone()) {
                        say(
                            &log,
                            Severity::Warning,
                            name,
                            &format!("cannot be read: {e:#}"),
                        );
                    }
                }
            }
        }
        for (name, f) in &now {
            match last.get(name) {
                None => say(
                    &log,
                    Severity::Info,
                    name,
                    &format!("monitoring: {}", f.summary()),
                ),
                Some(before) => {
                    for line in f.changes(before) {
                        say(&log, Severity::Warning, name, &line);
                    }
                }
            }
            let c = f.health.verdict().exit_code();
            if code != exit::ERROR {
                code = code.max(c);
            }
        }
        for name in last.keys().filter(|n| !now.contains_key(*n)) {
            if names.is_empty() {
                say(&log, Severity::Info, name, "removed");
            }
        }
        if let Some(dir) = textfile_dir {
            let devices: Vec<(String, Figures)> = now.clone().into_iter().collect();
            if let Err(e) = textfile::write(dir, &devices) {
                eprintln!("remapctl monitor: {e:#}");
                code = exit::ERROR;
            }
        }
        last = now;
        if once {
            return Ok(code);
        }
        dm.wait_event(None)?;
    }
}
