// SPDX-License-Identifier: GPL-2.0

//! The monitor's metrics, as a Prometheus node_exporter textfile: series
//! shaped like the SMART attributes a disk reports (Reallocated_Sector_Ct,
//! Current_Pending_Sector), written whole and renamed into place.

use crate::figures::{ratio, Figures};
use anyhow::{Context, Result};
use std::path::Path;

/// The file node_exporter's textfile collector reads.
pub const FILE_NAME: &str = "dm_remap.prom";

/// One series: its name, help, type, an extra label (`kind="..."`) where
/// one name has several series, and the value for a device.
struct Series {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    /// `("kind", value)` for series that split one figure by kind.
    label: Option<(&'static str, &'static str)>,
    /// `None` where the module does not give the figure.
    value: fn(&Figures) -> Option<f64>,
}

/// A count as a sample value.
fn count(n: u64) -> Option<f64> {
    Some(n as f64)
}

/// The series, named as node_exporter's are: `_total` only on counters,
/// `_ratio` for fractions, blocks counted in `_blocks`; one `dm_remap_info`
/// series carries what is not a number. Every series has the labels
/// `device` (the kernel's name, `dm-N`, which joins node_exporter's
/// diskstats) and `name` (the `/dev/mapper` name).
const SERIES: &[Series] = &[
    Series {
        name: "dm_remap_info",
        help: "A remap device: its metadata UUID, state and health as labels; always 1.",
        kind: "gauge",
        label: None,
        value: |_| Some(1.0),
    },
    Series {
        name: "dm_remap_remapped_blocks",
        help: "Data blocks moved to spares (as SMART 5, Reallocated_Sector_Ct).",
        kind: "gauge",
        label: None,
        value: |f| count(f.health.remapped_blocks),
    },
    Series {
        name: "dm_remap_pending_blocks",
        help: "Unreadable data blocks waiting for a write (as SMART 197, Current_Pending_Sector).",
        kind: "gauge",
        label: None,
        value: |f| count(f.health.pending_blocks),
    },
    Series {
        name: "dm_remap_lost_blocks",
        help: "Blocks whose data is lost: reads fail until they are written.",
        kind: "gauge",
        label: None,
        value: |f| f.health.lost_blocks.and_then(count),
    },
    Series {
        name: "dm_remap_spare_blocks",
        help: "Spare blocks usable for data.",
        kind: "gauge",
        label: None,
        value: |f| count(f.health.spares_total),
    },
    Series {
        name: "dm_remap_spare_blocks_free",
        help: "Spare blocks free.",
        kind: "gauge",
        label: None,
        value: |f| count(f.spares_free()),
    },
    Series {
        name: "dm_remap_spare_used_ratio",
        help: "Fraction of the spare blocks in use (0 to 1).",
        kind: "gauge",
        label: None,
        value: |f| Some(ratio(f.health.spares_used, f.health.spares_total)),
    },
    Series {
        name: "dm_remap_spare_low_water",
        help: "1 while free spares are below the table's spare_low_water mark.",
        kind: "gauge",
        label: None,
        value: |f| count(u64::from(f.health.low_water)),
    },
    Series {
        name: "dm_remap_block_size_bytes",
        help: "The remap block size: a block count times this is bytes.",
        kind: "gauge",
        label: None,
        value: |f| Some(f.stat("block_size")).filter(|&b| b > 0).and_then(count),
    },
    Series {
        name: "dm_remap_metadata_copies_intact",
        help: "Metadata copies holding the last commit.",
        kind: "gauge",
        label: None,
        value: |f| count(u64::from(f.health.copies_intact)),
    },
    Series {
        name: "dm_remap_metadata_copies",
        help: "Metadata copies in all.",
        kind: "gauge",
        label: None,
        value: |f| count(u64::from(f.health.copies_total)),
    },
    Series {
        name: "dm_remap_metadata_failed",
        help: "1 when metadata writes failed and remaps are refused.",
        kind: "gauge",
        label: None,
        value: |f| count(u64::from(f.health.state == "metadata_failed")),
    },
    Series {
        name: "dm_remap_read_errors_total",
        help: "Read bios that failed on the devices below (kept across table reloads).",
        kind: "counter",
        label: None,
        value: |f| count(f.health.read_errors),
    },
    Series {
        name: "dm_remap_write_errors_total",
        help: "Write bios that failed on the devices below (kept across table reloads).",
        kind: "counter",
        label: None,
        value: |f| count(f.health.write_errors),
    },
    Series {
        name: "dm_remap_transient_errors_total",
        help: "Failed bios whose every block worked when tried again.",
        kind: "counter",
        label: None,
        value: |f| count(f.stat("transient_errors")),
    },
    Series {
        name: "dm_remap_auto_remaps_total",
        help: "Blocks relocated after a failed write.",
        kind: "counter",
        label: None,
        value: |f| count(f.stat("auto_remaps")),
    },
    Series {
        name: "dm_remap_slow_reads_total",
        help: "Reads of data blocks slower than the table's slow_read_ms (the scrub's, and retries of failed reads).",
        kind: "counter",
        label: None,
        value: |f| count(f.stat("slow_reads")),
    },
    Series {
        name: "dm_remap_weak_remaps_total",
        help: "Weak blocks (slow on every try while the disk was not busy) moved to spares with their data.",
        kind: "counter",
        label: None,
        value: |f| count(f.stat("weak_remaps")),
    },
    Series {
        name: "dm_remap_scrub_running",
        help: "1 while a scrub runs (paused included).",
        kind: "gauge",
        label: None,
        value: |f| count(u64::from(f.text("scrub_state") == "running")),
    },
    Series {
        name: "dm_remap_scrub_progress_ratio",
        help: "Fraction of the current or last scrub done (0 to 1).",
        kind: "gauge",
        label: None,
        value: |f| Some(ratio(f.stat("scrub_done"), f.stat("scrub_total"))),
    },
    Series {
        name: "dm_remap_scrub_units",
        help: "Units of the current or last scrub (data blocks, spare slots, metadata blocks).",
        kind: "gauge",
        label: None,
        value: |f| count(f.stat("scrub_total")),
    },
    Series {
        name: "dm_remap_scrub_units_done",
        help: "Units the current or last scrub went through.",
        kind: "gauge",
        label: None,
        value: |f| count(f.stat("scrub_done")),
    },
    Series {
        name: "dm_remap_scrub_bad_blocks",
        help: "What the last scrub found unreadable or damaged, by kind: data blocks, spare blocks, metadata blocks.",
        kind: "gauge",
        label: Some(("kind", "data")),
        value: |f| count(f.stat("scrub_bad_data_blocks")),
    },
    Series {
        name: "dm_remap_scrub_bad_blocks",
        help: "",
        kind: "gauge",
        label: Some(("kind", "spare")),
        value: |f| count(f.stat("scrub_bad_spares")),
    },
    Series {
        name: "dm_remap_scrub_bad_blocks",
        help: "",
        kind: "gauge",
        label: Some(("kind", "metadata")),
        value: |f| count(f.stat("scrub_bad_metadata_blocks")),
    },
];

/// Escapes a label value (backslash, quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The labels every series of a device has, and those of `dm_remap_info`.
fn labels(s: &Series, f: &Figures) -> String {
    let h = &f.health;
    let mut l = format!(
        "device=\"{}\",name=\"{}\"",
        label(&h.kernel_name),
        label(&h.name)
    );
    if s.name == "dm_remap_info" {
        l.push_str(&format!(
            ",uuid=\"{}\",state=\"{}\",health=\"{}\"",
            label(f.text("metadata_uuid")),
            label(&h.state),
            h.health
        ));
    }
    if let Some((k, v)) = s.label {
        l.push_str(&format!(",{k}=\"{v}\""));
    }
    l
}

/// The textfile's text for `devices` (name, figures).
pub fn render(devices: &[(String, Figures)]) -> String {
    let mut out = String::new();
    let mut last = "";
    for s in SERIES {
        // One HELP and TYPE for each name, before its first series.
        if s.name != last {
            out.push_str(&format!(
                "# HELP {} {}\n# TYPE {} {}\n",
                s.name, s.help, s.name, s.kind
            ));
            last = s.name;
        }
        for (_, f) in devices {
            let Some(value) = (s.value)(f) else {
                continue;
            };
            out.push_str(&format!("{}{{{}}} {}\n", s.name, labels(s, f), value));
        }
    }
    out
}

/// Writes the textfile into `dir` atomically: a temporary file there,
/// flushed, then renamed over the old one, so that the collector never
/// reads half a file.
pub fn write(dir: &Path, devices: &[(String, Figures)]) -> Result<()> {
    let path = dir.join(FILE_NAME);
    let tmp = dir.join(format!(".{FILE_NAME}.{}", std::process::id()));
    let text = render(devices);
    let written = (|| -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if let Err(e) = written {
        // What is left of the temporary file is of no use; one that cannot
        // be removed is named in the error.
        let left = match std::fs::remove_file(&tmp) {
            Err(rm) if rm.kind() != std::io::ErrorKind::NotFound => {
                format!(" ({} is left behind: {rm})", tmp.display())
            }
            _ => String::new(),
        };
        return Err(e).with_context(|| format!("cannot write {}{left}", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Health;

    #[test]
    fn series_are_rendered_per_device() {
        let h = Health::parse("a\"b", None, "dm-0", "3 3/100 1 2 ok 4 5/5 0 1 - -").unwrap();
        let f = Figures::parse(
            h,
            "spares_free=97 transient_errors=4 slow_reads=5 weak_remaps=1",
        );
        let text = render(&[("a\"b".to_owned(), f)]);
        let l = "device=\"dm-0\",name=\"a\\\"b\"";
        assert!(
            text.contains(&format!("dm_remap_remapped_blocks{{{l}}} 3\n")),
            "{text}"
        );
        assert!(text.contains(&format!("dm_remap_pending_blocks{{{l}}} 1\n")));
        assert!(text.contains(&format!("dm_remap_spare_blocks_free{{{l}}} 97\n")));
        assert!(text.contains(&format!("dm_remap_spare_blocks{{{l}}} 100\n")));
        assert!(text.contains(&format!("dm_remap_spare_used_ratio{{{l}}} 0.03\n")));
        assert!(text.contains(&format!("dm_remap_transient_errors_total{{{l}}} 4\n")));
        assert!(text.contains(&format!("dm_remap_slow_reads_total{{{l}}} 5\n")));
        assert!(text.contains(&format!("dm_remap_weak_remaps_total{{{l}}} 1\n")));
        assert!(text.contains(&format!(
            "dm_remap_scrub_bad_blocks{{{l},kind=\"spare\"}} 0\n"
        )));
        assert!(text.contains(&format!(
            "dm_remap_info{{{l},uuid=\"\",state=\"ok\",health="
        )));
        assert!(text.contains("# TYPE dm_remap_read_errors_total counter\n"));
        // _total only on counters; one HELP for each name.
        for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
            let w: Vec<&str> = line.split(' ').collect();
            assert_eq!(w[2].ends_with("_total"), w[3] == "counter", "{line}");
        }
        let names: std::collections::BTreeSet<&str> = SERIES.iter().map(|s| s.name).collect();
        assert_eq!(text.matches("# HELP").count(), names.len());
    }

    #[test]
    fn the_file_is_replaced_whole() {
        let dir = std::env::temp_dir().join(format!("remapctl-textfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write(&dir, &[]).unwrap();
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [FILE_NAME]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
