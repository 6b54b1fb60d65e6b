// SPDX-License-Identifier: GPL-2.0

//! A live device's figures at one moment: its status line and its `stats`
//! answer, for the monitor's change lines and the metrics textfile.

use crate::dmdev::Dm;
use crate::status::Health;
use anyhow::{Context, Result};
use std::collections::BTreeMap;

/// `part` of `whole` as a fraction, 0 to 1 (0 of nothing is 0).
pub fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// `done` of `total` in percent, rounded down to a tenth, so that 100.0
/// means all (nothing to do is all done).
pub fn percent(done: u64, total: u64) -> f64 {
    if total == 0 {
        100.0
    } else {
        (done as f64 * 1000.0 / total as f64).floor() / 10.0
    }
}

/// One device's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Figures {
    /// The status line, read.
    pub health: Health,
    /// Every `key=value` of the `stats` message.
    pub stats: BTreeMap<String, String>,
}

impl Figures {
    /// Reads the figures of one live device: its status line and its
    /// `stats` answer.
    pub fn read(dm: &Dm, name: &str) -> Result<Self> {
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

    /// Reads the figures from a status line and a `stats` answer.
    pub fn parse(health: Health, stats: &str) -> Self {
        let stats = stats
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Figures { health, stats }
    }

    /// A numeric `stats` field (0 when the kernel does not give it).
    pub fn stat(&self, key: &str) -> u64 {
        self.stats
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// A textual `stats` field.
    pub fn text(&self, key: &str) -> &str {
        self.stats.get(key).map(String::as_str).unwrap_or("")
    }

    /// Free spares.
    pub fn spares_free(&self) -> u64 {
        self.stat("spares_free")
    }

    /// The lines that say what changed from `before` (none for the same
    /// figures): one for each kind of change a monitor reports.
    pub fn changes(&self, before: &Figures) -> Vec<String> {
        let (h, b) = (&self.health, &before.health);
        let mut out = Vec::new();
        if h.remapped_blocks > b.remapped_blocks {
            out.push(format!(
                "{} new remapped blocks ({} remapped, {} of {} spares free)",
                h.remapped_blocks - b.remapped_blocks,
                h.remapped_blocks,
                self.spares_free(),
                h.spares_total
            ));
        }
        if h.pending_blocks > b.pending_blocks {
            out.push(format!(
                "{} new pending (unreadable) blocks ({} pending: their data is lost until rewritten)",
                h.pending_blocks - b.pending_blocks,
                h.pending_blocks
            ));
        }
        let (lost, lost_before) = (h.lost_blocks.unwrap_or(0), b.lost_blocks.unwrap_or(0));
        if lost > lost_before {
            out.push(format!(
                "{} more blocks with their data lost ({} lost: reads fail until they are written; restore those files)",
                lost - lost_before,
                lost
            ));
        }
        let (weak, weak_before) = (self.stat("weak_remaps"), before.stat("weak_remaps"));
        if weak > weak_before {
            out.push(format!(
                "{} weak blocks moved to spares with their data (read slowly on every try: {} moved, {} slow reads in all)",
                weak - weak_before,
                weak,
                self.stat("slow_reads")
            ));
        }
        if h.low_water && !b.low_water {
            out.push(format!(
                "free spares fell below the low-water mark: {} of {} free",
                self.spares_free(),
                h.spares_total
            ));
        }
        if h.state != b.state && h.state != "ok" {
            out.push(match h.state.as_str() {
                "spares_exhausted" => {
                    "no free spare left: write errors now reach the filesystem".to_owned()
                }
                "metadata_failed" => format!(
                    "metadata_failed: metadata writes failed (error {}): remaps are refused until the table is reloaded",
                    h.last_error
                ),
                "data_device_down" => {
                    "data_device_down: the data device fails every read".to_owned()
                }
                other => format!("state {other}"),
            });
        }
        if h.state == "ok" && b.state != "ok" {
            out.push(format!("state ok again (was {})", b.state));
        }
        if h.copies_intact < b.copies_intact {
            out.push(format!(
                "metadata copies damaged: {} of {} intact",
                h.copies_intact, h.copies_total
            ));
        }
        if self.stat("scrub_passes") > before.stat("scrub_passes") {
            out.push(format!(
                "scrub finished: {} unreadable data blocks, {} unreadable spares, {} damaged metadata blocks ({} copies rewritten)",
                self.stat("scrub_bad_data_blocks"),
                self.stat("scrub_bad_spares"),
                self.stat("scrub_bad_metadata_blocks"),
                self.stat("scrub_copies_rewritten")
            ));
        } else if self.text("scrub_state") == "stopped" && before.text("scrub_state") == "running" {
            out.push(format!(
                "scrub stopped at {} of {}",
                self.stat("scrub_done"),
                self.stat("scrub_total")
            ));
        }
        out
    }

    /// The one line that sums the figures up.
    pub fn summary(&self) -> String {
        self.health.line()
    }
}

/// Reads a `stats` answer's `key=value` pairs; fails on an empty answer.
pub fn check_stats(answer: &str) -> Result<()> {
    answer
        .split_whitespace()
        .find(|kv| kv.starts_with("remapped_blocks="))
        .map(|_| ())
        .context("the stats answer has no remapped_blocks field")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(status: &str, stats: &str) -> Figures {
        Figures::parse(Health::parse("r", None, "dm-0", status).unwrap(), stats)
    }

    #[test]
    fn the_same_figures_say_nothing() {
        let a = figures("3 3/100 0 0 ok 4 5/5 0 0 - -", "spares_free=97");
        assert!(a.changes(&a.clone()).is_empty());
    }

    #[test]
    fn each_kind_of_change_has_a_line() {
        let a = figures(
            "3 3/100 0 0 ok 4 5/5 0 0 - - 0",
            "spares_free=97 scrub_passes=0",
        );
        let b = figures(
            "5 95/100 1 2 spares_exhausted 9 4/5 -5 2 low_water done:10/10 1",
            "spares_free=0 scrub_passes=1 scrub_bad_data_blocks=2 slow_reads=6 weak_remaps=2",
        );
        let lines = b.changes(&a);
        for want in [
            "2 new remapped blocks",
            "2 new pending",
            "1 more blocks with their data lost (1 lost",
            "low-water mark",
            "no free spare left",
            "4 of 5 intact",
            "scrub finished: 2 unreadable data blocks",
            "2 weak blocks moved to spares with their data (read slowly on every try: 2 moved, 6 slow reads",
        ] {
            assert!(lines.iter().any(|l| l.contains(want)), "{want}: {lines:?}");
        }
        assert_eq!(lines.len(), 8);
    }

    #[test]
    fn stats_answers_are_checked() {
        assert!(check_stats("reads=1 remapped_blocks=0").is_ok());
        assert!(check_stats("").is_err());
    }
}
