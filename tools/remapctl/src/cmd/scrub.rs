// SPDX-License-Identifier: GPL-2.0

//! `scrub start|stop|status`: the target's patrol read, run and watched as
//! `btrfs scrub` and `zpool scrub` are, through the `scrub start|stop`
//! messages, the status line's scrub field and the `stats` answer.

use crate::dmdev::Dm;
use crate::exit;
use crate::figures::{ratio, Figures};
use crate::progress::Progress;
use anyhow::Result;
use serde::Serialize;
use std::time::Duration;

/// One device's scrub, as `status` prints it.
#[derive(Serialize)]
struct ScrubReport {
    name: String,
    /// `dm-N`.
    device: String,
    /// `none` (no scrub since the table was loaded), `running`, `paused`,
    /// `stopped` or `done`.
    state: String,
    done: u64,
    total: u64,
    progress_ratio: f64,
    rate_limit_mib: u64,
    read_bytes: u64,
    elapsed_ms: u64,
    bad_data_blocks: u64,
    bad_spares: u64,
    bad_metadata_blocks: u64,
    copies_rewritten: u64,
    passes: u64,
}

impl ScrubReport {
    fn of(f: &Figures) -> Self {
        let (state, done, total) = match &f.health.scrub {
            Some(s) => (s.state.clone(), s.done, s.total),
            None => ("none".to_owned(), 0, 0),
        };
        Self {
            name: f.health.name.clone(),
            device: f.health.kernel_name.clone(),
            state,
            done,
            total,
            progress_ratio: ratio(done, total),
            rate_limit_mib: f.stat("scrub_rate_limit_mib"),
            read_bytes: f.stat("scrub_read_bytes"),
            elapsed_ms: f.stat("scrub_ms"),
            bad_data_blocks: f.stat("scrub_bad_data_blocks"),
            bad_spares: f.stat("scrub_bad_spares"),
            bad_metadata_blocks: f.stat("scrub_bad_metadata_blocks"),
            copies_rewritten: f.stat("scrub_copies_rewritten"),
            passes: f.stat("scrub_passes"),
        }
    }

    /// Whether the current or last scrub found anything.
    fn found(&self) -> bool {
        self.bad_data_blocks + self.bad_spares + self.bad_metadata_blocks > 0
    }

    fn findings(&self) -> String {
        format!(
            "{} unreadable data blocks, {} unreadable spares, {} damaged metadata blocks ({} copies rewritten)",
            self.bad_data_blocks, self.bad_spares, self.bad_metadata_blocks, self.copies_rewritten
        )
    }

    fn print_text(&self) {
        println!("{} ({}): scrub {}", self.name, self.device, self.state);
        if self.state == "none" {
            return;
        }
        println!(
            "  progress:  {}/{} units ({:.1}%)",
            self.done,
            self.total,
            self.progress_ratio * 100.0
        );
        let secs = self.elapsed_ms as f64 / 1000.0;
        let rate = if secs > 0.0 {
            self.read_bytes as f64 / secs / (1 << 20) as f64
        } else {
            0.0
        };
        println!(
            "  read:      {:.1} MiB in {secs:.1} s ({rate:.1} MiB/s, limit {} MiB/s)",
            self.read_bytes as f64 / (1 << 20) as f64,
            self.rate_limit_mib
        );
        println!("  found:     {}", self.findings());
        println!(
            "  passes:    {} finished since the table was loaded",
            self.passes
        );
    }
}

/// Says why `scrub <what>` failed and gives its exit status: the device
/// gone (removed meanwhile) is an error (4); a device that is still there
/// refused, for a reason of its own (3).
fn message_failed(dm: &Dm, name: &str, what: &str, e: &anyhow::Error, why: &str) -> u8 {
    if let Err(gone) = dm.get(name) {
        eprintln!("remapctl: scrub {what} {name}: {gone:#}");
        return exit::ERROR;
    }
    eprintln!("remapctl: scrub {what} {name}: refused by the target: {e:#} ({why})");
    exit::FAILED
}

/// Starts a scrub; with `wait`, follows it to its end.
pub fn start(name: &str, rate: Option<u32>, wait: bool) -> Result<u8> {
    let dm = Dm::new()?;
    let before = Figures::read(&dm, name)?;
    if before
        .health
        .scrub
        .as_ref()
        .is_some_and(|s| s.state == "running")
    {
        eprintln!("remapctl: scrub start {name}: a scrub is running already (remapctl scrub status {name})");
        return Ok(exit::FAILED);
    }
    let msg = match rate {
        Some(r) => format!("scrub start {r}"),
        None => "scrub start".to_owned(),
    };
    // The target refuses only for a reason of its own: a read-only table,
    // no_auto_remap, a scrub started meanwhile (dm-remap(4), Messages).
    if let Err(e) = dm.message(name, &msg) {
        return Ok(message_failed(
            &dm,
            name,
            "start",
            &e,
            "a read-only table or no_auto_remap refuse scrubs",
        ));
    }
    if !wait {
        return Ok(exit::OK);
    }
    let passes = before.stat("scrub_passes");
    let mut progress = Progress::new(format!("scrub {name}"));
    loop {
        dm.arm_events()?;
        let f = Figures::read(&dm, name)?;
        let r = ScrubReport::of(&f);
        progress.show(r.done, r.total, "units");
        if r.passes > passes || r.state == "done" {
            progress.finish();
            println!("{name}: scrub done: {}", r.findings());
            return Ok(if r.found() { exit::DEGRADED } else { exit::OK });
        }
        if r.state == "stopped" || r.state == "none" {
            progress.finish();
            eprintln!(
                "remapctl: scrub {name}: stopped before its end at {}/{} (see dmesg)",
                r.done, r.total
            );
            return Ok(exit::ERROR);
        }
        // The scrub's end raises a table event; its progress does not.
        dm.wait_event(Some(Duration::from_secs(1)))?;
    }
}

/// Stops the scrub of `name`.
pub fn stop(name: &str) -> Result<u8> {
    let dm = Dm::new()?;
    let f = Figures::read(&dm, name)?;
    if !f
        .health
        .scrub
        .as_ref()
        .is_some_and(|s| s.state == "running" || s.state == "paused")
    {
        eprintln!("remapctl: scrub stop {name}: no scrub is running");
        return Ok(exit::FAILED);
    }
    if let Err(e) = dm.message(name, "scrub stop") {
        return Ok(message_failed(&dm, name, "stop", &e, "it ended meanwhile"));
    }
    Ok(exit::OK)
}

/// The `status --json` object's form, as `status --json` versions its own.
#[derive(Serialize)]
struct Report {
    version: u32,
    devices: Vec<ScrubReport>,
}

/// Prints the scrub of each device named (every remap device when none
/// is).
pub fn status(names: &[String], json: bool) -> Result<u8> {
    let dm = Dm::new()?;
    let mut code = exit::OK;
    let mut devices = Vec::new();
    for n in &dm.named_or_all(names)? {
        match Figures::read(&dm, n) {
            Ok(f) => devices.push(ScrubReport::of(&f)),
            Err(e) => {
                eprintln!("remapctl: scrub status {n}: {e:#}");
                code = exit::ERROR;
            }
        }
    }
    if code == exit::OK && devices.iter().any(ScrubReport::found) {
        code = exit::DEGRADED;
    }
    if json {
        let r = Report {
            version: 1,
            devices,
        };
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else if devices.is_empty() && names.is_empty() {
        println!("no remap devices");
    } else {
        for d in &devices {
            d.print_text();
        }
    }
    Ok(code)
}
