// SPDX-License-Identifier: GPL-2.0

//! `monitor [<name>...] [--once] [--textfile <dir>] [--interval S]
//! [--exec CMD]`: waits for device-mapper events and, for each change of
//! a remap device (new remaps, new pending blocks, the low-water mark,
//! exhaustion, damaged or failed metadata, a scrub's end), says one line
//! (`journal.rs`) and runs `--exec`'s command (`hook.rs`); with
//! `--textfile`, keeps a Prometheus textfile of every device's figures.
//! The figures are also read every `--interval` seconds without an event,
//! so that a scrub's progress (which raises no event) and the textfile do
//! not go stale.

use crate::dmdev::Dm;
use crate::exit;
use crate::figures::Figures;
use crate::hook::{Event, Hook};
use crate::journal::Log;
use crate::syslog::Severity;
use crate::textfile;
use anyhow::Result;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

/// What the monitor is asked to do besides saying lines.
pub struct Options<'a> {
    /// Read and report once, then exit by the worst health.
    pub once: bool,
    /// The directory of the Prometheus textfile.
    pub textfile: Option<&'a Path>,
    /// The longest time between two readings.
    pub interval: Duration,
    /// The command run for each line.
    pub exec: Option<String>,
}

/// The monitor's outputs: its log and the `--exec` command.
struct Outputs {
    log: Log,
    hook: Option<Hook>,
}

impl Outputs {
    /// Says one line about `name`, and runs the hook for it.
    fn say(&mut self, severity: Severity, name: &str, line: &str, figures: Option<&Figures>) {
        self.log.say(severity, &format!("{name}: {line}"));
        if let Some(hook) = &mut self.hook {
            let e = Event {
                name,
                severity: match severity {
                    Severity::Warning => "warning",
                    Severity::Info => "info",
                },
                message: line,
                figures,
            };
            if let Err(err) = hook.run(&e) {
                self.log.say(Severity::Warning, &err);
            }
        }
    }
}

/// Runs the monitor; with `once`, reads and reports the figures once and
/// exits by the worst device's health, as `status` does.
pub fn run(names: &[String], opts: Options<'_>) -> Result<u8> {
    let once = opts.once;
    let textfile_dir = opts.textfile;
    let dm = Dm::new()?;
    let mut out = Outputs {
        log: Log::open(),
        hook: opts.exec.map(Hook::new),
    };
    if !out.log.persistent() && !once {
        eprintln!("remapctl monitor: no /dev/log: lines go to stderr only");
    }
    let mut last: BTreeMap<String, Figures> = BTreeMap::new();
    // Names reported missing, so that each is said once.
    let mut missing: BTreeSet<String> = BTreeSet::new();
    loop {
        // Armed before the figures are read: an event that comes after the
        // reading wakes the wait below.
        dm.arm_events()?;
        let wanted = dm.named_or_all(names)?;
        let mut code = exit::OK;
        let mut now = BTreeMap::new();
        for name in &wanted {
            match Figures::read(&dm, name) {
                Ok(f) => {
                    missing.remove(name);
                    now.insert(name.clone(), f);
                }
                Err(e) => {
                    code = exit::ERROR;
                    if missing.insert(name.clone()) {
                        out.say(
                            Severity::Warning,
                            name,
                            &format!("cannot be read: {e:#}"),
                            None,
                        );
                    }
                }
            }
        }
        for (name, f) in &now {
            match last.get(name) {
                None => out.say(
                    Severity::Info,
                    name,
                    &format!("monitoring: {}", f.summary()),
                    Some(f),
                ),
                Some(before) => {
                    for line in f.changes(before) {
                        out.say(Severity::Warning, name, &line, Some(f));
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
                out.say(Severity::Info, name, "removed", None);
            }
        }
        if let Some(hook) = &mut out.hook {
            for line in hook.reap() {
                out.log.say(Severity::Warning, &line);
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
            if let Some(hook) = &mut out.hook {
                for line in hook.finish(Duration::from_secs(10)) {
                    out.log.say(Severity::Warning, &line);
                }
            }
            return Ok(code);
        }
        dm.wait_event(Some(opts.interval))?;
    }
}
