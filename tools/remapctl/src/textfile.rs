// SPDX-License-Identifier: GPL-2.0

//! The monitor's metrics, as a Prometheus node_exporter textfile: series
//! shaped like the SMART attributes a disk reports (Reallocated_Sector_Ct,
//! Current_Pending_Sector), written whole and renamed into place.

use crate::figures::Figures;
use anyhow::{Context, Result};
use std::path::Path;

/// The file node_exporter's textfile collector reads.
pub const FILE_NAME: &str = "dm_remap.prom";

/// One series: its name, help, type, and the value for a device.
struct Series {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    /// `None` where the module does not give the figure.
    value: fn(&Figures) -> Option<u64>,
}

const SERIES: &[Series] = &[
    Series {
        name: "dm_remap_remapped_blocks",
        help: "Data blocks moved to spares (as SMART 5, Reallocated_Sector_Ct).",
        kind: "gauge",
        value: |f| Some(f.health.remapped_blocks),
    },
    Series {
        name: "dm_remap_pending_blocks",
        help: "Unreadable data blocks waiting for a write (as SMART 197, Current_Pending_Sector).",
        kind: "gauge",
        value: |f| Some(f.health.pending_blocks),
    },
    Series {
        name: "dm_remap_lost_blocks",
        help: "Blocks whose data is lost: reads fail until they are written.",
        kind: "gauge",
        value: |f| f.health.lost_blocks,
    },
    Series {
        name: "dm_remap_spares_free",
        help: "Spare blocks free.",
        kind: "gauge",
        value: |f| Some(f.spares_free()),
    },
    Series {
        name: "dm_remap_spares_total",
        help: "Spare blocks usable for data.",
        kind: "gauge",
        value: |f| Some(f.health.spares_total),
    },
    Series {
        name: "dm_remap_spares_low_water",
        help: "1 while free spares are below the table's spare_low_water mark.",
        kind: "gauge",
        value: |f| Some(u64::from(f.health.low_water)),
    },
    Series {
        name: "dm_remap_metadata_copies_intact",
        help: "Metadata copies holding the last commit.",
        kind: "gauge",
        value: |f| Some(u64::from(f.health.copies_intact)),
    },
    Series {
        name: "dm_remap_metadata_copies",
        help: "Metadata copies in all.",
        kind: "gauge",
        value: |f| Some(u64::from(f.health.copies_total)),
    },
    Series {
        name: "dm_remap_metadata_failed",
        help: "1 when metadata writes failed and remaps are refused.",
        kind: "gauge",
        value: |f| Some(u64::from(f.health.state == "metadata_failed")),
    },
    Series {
        name: "dm_remap_read_errors_total",
        help: "Read bios that failed on the devices below (kept across table reloads).",
        kind: "counter",
        value: |f| Some(f.health.read_errors),
    },
    Series {
        name: "dm_remap_write_errors_total",
        help: "Write bios that failed on the devices below (kept across table reloads).",
        kind: "counter",
        value: |f| Some(f.health.write_errors),
    },
    Series {
        name: "dm_remap_transient_errors_total",
        help: "Failed bios whose every block worked when tried again.",
        kind: "counter",
        value: |f| Some(f.stat("transient_errors")),
    },
    Series {
        name: "dm_remap_auto_remaps_total",
        help: "Blocks relocated after a failed write.",
        kind: "counter",
        value: |f| Some(f.stat("auto_remaps")),
    },
    Series {
        name: "dm_remap_scrub_running",
        help: "1 while a scrub runs (paused included).",
        kind: "gauge",
        value: |f| Some(u64::from(f.text("scrub_state") == "running")),
    },
    Series {
        name: "dm_remap_scrub_done",
        help: "Units the current or last scrub went through (data blocks, spare slots, metadata blocks).",
        kind: "gauge",
        value: |f| Some(f.stat("scrub_done")),
    },
    Series {
        name: "dm_remap_scrub_total",
        help: "Units of the current or last scrub.",
        kind: "gauge",
        value: |f| Some(f.stat("scrub_total")),
    },
    Series {
        name: "dm_remap_scrub_bad_blocks",
        help: "Unreadable data blocks and spares and damaged metadata blocks the last scrub found.",
        kind: "gauge",
        value: |f| {
            Some(
                f.stat("scrub_bad_data_blocks")
                    + f.stat("scrub_bad_spares")
                    + f.stat("scrub_bad_metadata_blocks"),
            )
        },
    },
];

/// Escapes a label value (backslash, quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The textfile's text for `devices` (name, figures).
pub fn render(devices: &[(String, Figures)]) -> String {
    let mut out = String::new();
    for s in SERIES {
        out.push_str(&format!(
            "# HELP {} {}\n# TYPE {} {}\n",
            s.name, s.help, s.name, s.kind
        ));
        for (name, f) in devices {
            let Some(value) = (s.value)(f) else {
                continue;
            };
            out.push_str(&format!(
                "{}{{device=\"{}\"}} {}\n",
                s.name,
                label(name),
                value
            ));
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
        // What is left of the temporary file is of no use.
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
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
        let f = Figures::parse(h, "spares_free=97 transient_errors=4");
        let text = render(&[("a\"b".to_owned(), f)]);
        assert!(text.contains("dm_remap_remapped_blocks{device=\"a\\\"b\"} 3\n"));
        assert!(text.contains("dm_remap_pending_blocks{device=\"a\\\"b\"} 1\n"));
        assert!(text.contains("dm_remap_spares_free{device=\"a\\\"b\"} 97\n"));
        assert!(text.contains("dm_remap_transient_errors_total{device=\"a\\\"b\"} 4\n"));
        assert!(text.contains("# TYPE dm_remap_read_errors_total counter\n"));
        assert_eq!(text.matches("# HELP").count(), SERIES.len());
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
