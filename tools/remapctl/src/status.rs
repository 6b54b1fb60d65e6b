// SPDX-License-Identifier: GPL-2.0

//! A live device's health, from the target's status line (docs/dm-remap.rst,
//! "Status").

use anyhow::{bail, Context, Result};
use serde::Serialize;

/// The health of one device, for people (`status`) and scripts
/// (`status --json`).
#[derive(Serialize, Clone, PartialEq, Debug)]
pub struct Health {
    /// The device name.
    pub name: String,
    /// Its DM UUID.
    pub uuid: Option<String>,
    /// `dm-N`.
    pub kernel_name: String,
    /// `ok`, `degraded` or `failing` (see [`Verdict`]).
    pub health: &'static str,
    /// The target's state: ok, spares_exhausted, data_device_down,
    /// metadata_failed.
    pub state: String,
    /// Data blocks on spares.
    pub remapped_blocks: u64,
    /// Unreadable data blocks not yet rewritten.
    pub pending_blocks: u64,
    /// Blocks whose data is lost (pending, remapped or fenced): their
    /// reads fail until they are written. `None` from a module older than
    /// the twelfth status field.
    pub lost_blocks: Option<u64>,
    /// Reads of data blocks slower than the table's `slow_read_ms`, and
    /// weak blocks moved to spares with their data. `None` from a module
    /// older than the thirteenth and fourteenth status fields.
    pub slow_reads: Option<u64>,
    pub weak_remaps: Option<u64>,
    /// Spare blocks in use.
    pub spares_used: u64,
    /// Spare blocks usable for data.
    pub spares_total: u64,
    /// Spares used, in percent of the usable ones.
    pub spares_used_percent: f64,
    /// Spares left, in percent of the usable ones.
    pub spares_left_percent: f64,
    /// Read bios that failed on the device below.
    pub read_errors: u64,
    /// Write bios that failed on the device below.
    pub write_errors: u64,
    /// The last durable metadata commit.
    pub metadata_generation: u64,
    /// Metadata copies holding the last commit.
    pub copies_intact: u32,
    /// Metadata copies in all.
    pub copies_total: u32,
    /// The last metadata commit error: 0 or -errno.
    pub last_error: i64,
    /// Free spares are below the table's `spare_low_water` mark.
    pub low_water: bool,
    /// The scrub since the table was loaded, if any.
    pub scrub: Option<ScrubProgress>,
}

/// A scrub's progress, from the status line's last field.
#[derive(Serialize, Clone, PartialEq, Eq, Debug)]
pub struct ScrubProgress {
    /// running, paused, stopped or done.
    pub state: String,
    /// Units (data blocks, spare slots, metadata blocks) done and in all.
    pub done: u64,
    pub total: u64,
}

impl ScrubProgress {
    /// Reads `<state>:<done>/<total>`, or `-` (no scrub).
    fn parse(s: &str) -> Result<Option<Self>> {
        if s == "-" {
            return Ok(None);
        }
        let (state, progress) = s
            .split_once(':')
            .with_context(|| format!("status field scrub: {s:?} is not state:done/total"))?;
        if !matches!(state, "running" | "paused" | "stopped" | "done") {
            bail!("status field scrub: unknown state {state:?}");
        }
        let (done, total) = pair(progress, "scrub")?;
        Ok(Some(Self {
            state: state.to_owned(),
            done,
            total,
        }))
    }

    /// Done, in percent.
    pub fn percent(&self) -> f64 {
        crate::figures::percent(self.done, self.total)
    }
}

/// How a device is doing.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Verdict {
    /// Everything as it should be (remaps are what the device is for).
    Ok,
    /// Works, but needs attention: pending or lost blocks, a damaged metadata
    /// copy, a failed commit, spares over 90% used.
    Degraded,
    /// Cannot protect the data any more: spares exhausted, data device
    /// down, metadata failed.
    Failing,
}

impl Verdict {
    /// The exit code `status` and `monitor --once` give for it.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Ok => crate::exit::OK,
            Verdict::Degraded => crate::exit::DEGRADED,
            Verdict::Failing => crate::exit::FAILED,
        }
    }

    /// The word for it.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Degraded => "degraded",
            Verdict::Failing => "failing",
        }
    }
}

fn num<T: std::str::FromStr>(s: &str, what: &str) -> Result<T> {
    s.parse()
        .map_err(|_| anyhow::anyhow!("status field {what}: {s:?} is not a number"))
}

fn pair(s: &str, what: &str) -> Result<(u64, u64)> {
    let (a, b) = s
        .split_once('/')
        .with_context(|| format!("status field {what}: {s:?} is not a/b"))?;
    Ok((num(a, what)?, num(b, what)?))
}

impl Health {
    /// Reads the fourteen fields of a `remap` status line (eleven from a
    /// module before the lost blocks' count, twelve from one before the
    /// slow reads' and weak blocks').
    pub fn parse(
        name: &str,
        uuid: Option<String>,
        kernel_name: &str,
        status: &str,
    ) -> Result<Self> {
        let f: Vec<&str> = status.split_whitespace().collect();
        if !matches!(f.len(), 11 | 12 | 14) {
            bail!("{name}: status has {} fields, not 14: {status:?}", f.len());
        }
        let low_water = match f[9] {
            "low_water" => true,
            "-" => false,
            other => bail!("status field low water: {other:?} is neither low_water nor -"),
        };
        let (spares_used, spares_total) = pair(f[1], "spares")?;
        let (intact, total) = pair(f[6], "copies")?;
        let pct = |n: u64| {
            if spares_total == 0 {
                0.0
            } else {
                (n as f64 * 1000.0 / spares_total as f64).round() / 10.0
            }
        };
        let mut h = Health {
            name: name.to_owned(),
            uuid,
            kernel_name: kernel_name.to_owned(),
            health: "",
            state: f[4].to_owned(),
            remapped_blocks: num(f[0], "remapped")?,
            pending_blocks: num(f[8], "pending")?,
            lost_blocks: f.get(11).map(|l| num(l, "lost")).transpose()?,
            slow_reads: f.get(12).map(|l| num(l, "slow reads")).transpose()?,
            weak_remaps: f.get(13).map(|l| num(l, "weak remaps")).transpose()?,
            spares_used,
            spares_total,
            spares_used_percent: pct(spares_used),
            spares_left_percent: pct(spares_total - spares_used.min(spares_total)),
            read_errors: num(f[2], "read errors")?,
            write_errors: num(f[3], "write errors")?,
            metadata_generation: num(f[5], "generation")?,
            copies_intact: intact as u32,
            copies_total: total as u32,
            last_error: num(f[7], "last error")?,
            low_water,
            scrub: ScrubProgress::parse(f[10])?,
        };
        h.health = h.verdict().word();
        Ok(h)
    }

    /// How the device is doing.
    pub fn verdict(&self) -> Verdict {
        if self.state != "ok" {
            Verdict::Failing
        } else if self.pending_blocks > 0
            || self.lost_blocks.is_some_and(|n| n > 0)
            || self.copies_intact < self.copies_total
            || self.last_error != 0
            || self.spares_used_percent >= 90.0
            || self.low_water
        {
            Verdict::Degraded
        } else {
            Verdict::Ok
        }
    }

    /// One line for people.
    pub fn line(&self) -> String {
        let scrub = match &self.scrub {
            None => String::new(),
            Some(s) => format!(
                ", scrub {} {}/{} ({:.1}%)",
                s.state,
                s.done,
                s.total,
                s.percent()
            ),
        };
        let lost = match self.lost_blocks {
            Some(n) if n > 0 => format!(", {n} lost (reads fail until written)"),
            _ => String::new(),
        };
        let weak = match (self.slow_reads, self.weak_remaps) {
            (Some(slow), Some(weak)) if slow > 0 || weak > 0 => {
                format!(", {slow} slow reads, {weak} weak blocks moved to spares")
            }
            _ => String::new(),
        };
        format!(
            "{}: {} ({}{}), {} remapped, {} pending{}, spares {}/{} used ({:.1}% left), metadata generation {} with {}/{} copies intact, last error {}, {} read and {} write errors{}{}",
            self.name,
            self.health,
            self.state,
            if self.low_water { ", below the spare low-water mark" } else { "" },
            self.remapped_blocks,
            self.pending_blocks,
            lost,
            self.spares_used,
            self.spares_total,
            self.spares_left_percent,
            self.metadata_generation,
            self.copies_intact,
            self.copies_total,
            self.last_error,
            self.read_errors,
            self.write_errors,
            weak,
            scrub
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_status_line() {
        let h = Health::parse("r", None, "dm-0", "9 9/4041 0 0 ok 10 5/5 0 0 - -").unwrap();
        assert_eq!(h.remapped_blocks, 9);
        assert_eq!(h.spares_total, 4041);
        assert_eq!(h.verdict(), Verdict::Ok);
        assert_eq!(h.scrub, None);
        let h = Health::parse("r", None, "dm-0", "9 9/4041 1 0 ok 10 4/5 0 2 - -").unwrap();
        assert_eq!(h.verdict(), Verdict::Degraded);
        let h = Health::parse(
            "r",
            None,
            "dm-0",
            "9 10/10 0 0 spares_exhausted 10 5/5 0 0 - -",
        )
        .unwrap();
        assert_eq!(h.verdict(), Verdict::Failing);
        assert!(Health::parse("r", None, "dm-0", "9 9/4041 0 0 ok").is_err());
        assert!(Health::parse("r", None, "dm-0", "9 9/4041 0 0 ok 10 5/5 0 0 - - 0 0").is_err());
        assert!(Health::parse("r", None, "dm-0", "9 9/4041 0 0 ok 10 5/5 0 0").is_err());
        assert!(Health::parse("r", None, "dm-0", "x 9/4041 0 0 ok 10 5/5 0 0 - -").is_err());
    }

    #[test]
    fn reads_low_water_and_scrub() {
        let h = Health::parse(
            "r",
            None,
            "dm-0",
            "9 9/10 0 0 ok 10 5/5 0 0 low_water running:50/200",
        )
        .unwrap();
        assert!(h.low_water);
        assert_eq!(h.verdict(), Verdict::Degraded);
        let s = h.scrub.unwrap();
        assert_eq!((s.state.as_str(), s.done, s.total), ("running", 50, 200));
        assert_eq!(s.percent(), 25.0);
        for bad in [
            "9 9/10 0 0 ok 10 5/5 0 0 low 0",
            "9 9/10 0 0 ok 10 5/5 0 0 - walking:1/2",
            "9 9/10 0 0 ok 10 5/5 0 0 - - many",
        ] {
            assert!(Health::parse("r", None, "dm-0", bad).is_err());
        }
    }

    #[test]
    fn reads_lost_blocks() {
        let h = Health::parse("r", None, "dm-0", "9 9/4041 0 0 ok 10 5/5 0 0 - - 0").unwrap();
        assert_eq!(h.lost_blocks, Some(0));
        assert_eq!(h.verdict(), Verdict::Ok);
        let h = Health::parse("r", None, "dm-0", "9 9/4041 0 0 ok 10 5/5 0 0 - - 2").unwrap();
        assert_eq!(h.lost_blocks, Some(2));
        assert_eq!(h.verdict(), Verdict::Degraded);
        assert!(h.line().contains(", 2 lost (reads fail until written)"));
        // An older module's eleven fields: unknown, not none.
        let h = Health::parse("r", None, "dm-0", "9 9/4041 0 0 ok 10 5/5 0 0 - -").unwrap();
        assert_eq!(h.lost_blocks, None);
        assert_eq!(h.slow_reads, None);
    }

    #[test]
    fn reads_slow_reads_and_weak_blocks() {
        let h = Health::parse("r", None, "dm-0", "9 9/4041 0 0 ok 10 5/5 0 0 - - 0 12 4").unwrap();
        assert_eq!((h.slow_reads, h.weak_remaps), (Some(12), Some(4)));
        assert!(h
            .line()
            .contains(", 12 slow reads, 4 weak blocks moved to spares"));
        assert!(Health::parse("r", None, "dm-0", "9 9/4041 0 0 ok 10 5/5 0 0 - - 0 12").is_err());
    }
}
