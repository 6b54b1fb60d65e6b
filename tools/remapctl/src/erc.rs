// SPDX-License-Identifier: GPL-2.0

//! The drives under a device and how long each may take over a bad
//! sector before the kernel hears of it.
//!
//! A drive with SCT Error Recovery Control (the RAID world's TLER) gives
//! up on a sector after the time it is set to, usually 7 s; a desktop
//! drive without it, or with it off, retries for up to two minutes, and
//! the kernel's SCSI command timeout (30 s by default) runs out first:
//! the kernel resets the link, and every I/O of the drive waits. What to
//! set is the smartmontools and linux-raid advice: SCT ERC to 7 s
//! (`smartctl -l scterc,70,70`), or where the drive has none, the
//! kernel's timeout above the drive's longest recovery (180 s). Both are
//! lost at a power cycle: docs/operations.md gives the udev rule that
//! sets them at every boot.

use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The SCT ERC time the advice sets, in tenths of a second.
const ERC_DECISECONDS: u32 = 70;
/// The SCSI command timeout the advice sets for drives without SCT ERC,
/// in seconds: above a desktop drive's longest internal recovery.
const TIMEOUT_WITHOUT_ERC_S: u32 = 180;

/// A drive's SCT Error Recovery Control, as `smartctl -j -l scterc` says.
#[derive(Serialize, Clone, PartialEq, Eq, Debug)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SctErc {
    /// On, with these limits in tenths of a second.
    Enabled { read_ds: u32, write_ds: u32 },
    /// Supported, off: the drive retries as long as it likes.
    Disabled,
    /// smartctl ran and found none (not an ATA drive, or not supported).
    Unsupported,
    /// smartctl is not installed, or could not open the drive.
    Unknown,
}

/// One drive under a remap device.
#[derive(Serialize, Clone, PartialEq, Eq, Debug)]
pub struct Drive {
    /// The kernel name of the whole disk (`sda`).
    pub disk: String,
    /// The kernel's SCSI command timeout, in seconds, where it has one.
    pub command_timeout_s: Option<u32>,
    pub sct_erc: SctErc,
    /// What to set, if anything.
    pub advice: Option<String>,
}

impl Drive {
    /// The drive's line for `remapctl status`.
    pub fn line(&self) -> String {
        let erc = match &self.sct_erc {
            SctErc::Enabled { read_ds, write_ds } => format!(
                "SCT ERC read {:.1} s, write {:.1} s",
                f64::from(*read_ds) / 10.0,
                f64::from(*write_ds) / 10.0
            ),
            SctErc::Disabled => "SCT ERC off".to_owned(),
            SctErc::Unsupported => "no SCT ERC".to_owned(),
            SctErc::Unknown => "SCT ERC not known (smartctl not installed or failed)".to_owned(),
        };
        let timeout = self
            .command_timeout_s
            .map_or(String::new(), |t| format!(", command timeout {t} s"));
        let advice = self
            .advice
            .as_ref()
            .map_or(String::new(), |a| format!(": {a}"));
        format!("  {}: {erc}{timeout}{advice}", self.disk)
    }
}

/// The advice for a drive: set SCT ERC where it is off, raise the
/// command timeout where the drive has none, nothing where it is set.
fn advice(disk: &str, erc: &SctErc, timeout: Option<u32>) -> Option<String> {
    let s = f64::from(ERC_DECISECONDS) / 10.0;
    match erc {
        SctErc::Enabled { read_ds, .. } if *read_ds > ERC_DECISECONDS => Some(format!(
            "a bad sector may stall it {:.1} s; set {s:.0} s: smartctl -l scterc,{ERC_DECISECONDS},{ERC_DECISECONDS} /dev/{disk}",
            f64::from(*read_ds) / 10.0
        )),
        SctErc::Enabled { .. } => None,
        SctErc::Disabled => Some(format!(
            "a bad sector may stall it for minutes; set {s:.0} s: smartctl -l scterc,{ERC_DECISECONDS},{ERC_DECISECONDS} /dev/{disk}"
        )),
        SctErc::Unsupported => match timeout {
            Some(t) if t < TIMEOUT_WITHOUT_ERC_S => Some(format!(
                "the kernel resets it after {t} s while it may still be retrying a sector; raise it: echo {TIMEOUT_WITHOUT_ERC_S} > /sys/block/{disk}/device/timeout"
            )),
            _ => None,
        },
        SctErc::Unknown => timeout.map(|_| {
            "install smartmontools to see and set its error recovery time".to_owned()
        }),
    }
}

/// Reads `smartctl -j -l scterc` output.
pub fn parse_scterc(json: &str) -> SctErc {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
        return SctErc::Unknown;
    };
    let Some(erc) = v.get("ata_sct_erc") else {
        // smartctl opened the drive (it says what it is) and found none.
        return if v.get("device").is_some() {
            SctErc::Unsupported
        } else {
            SctErc::Unknown
        };
    };
    let side = |k: &str| {
        let s = erc.get(k)?;
        let enabled = s.get("enabled")?.as_bool()?;
        let ds = s.get("deciseconds").and_then(|d| d.as_u64()).unwrap_or(0);
        Some((enabled, u32::try_from(ds).unwrap_or(u32::MAX)))
    };
    match (side("read"), side("write")) {
        (Some((true, r)), Some((true, w))) => SctErc::Enabled {
            read_ds: r,
            write_ds: w,
        },
        (Some(_), Some(_)) => SctErc::Disabled,
        _ => SctErc::Unsupported,
    }
}

/// The whole disks under block device `name` (`dm-3`, `sda1`): through
/// device-mapper and md devices to the disks, partitions to their disk.
pub fn disks_under(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    collect(Path::new("/sys/class/block"), name, 0, &mut out);
    out.sort();
    out.dedup();
    out
}

fn collect(sys: &Path, name: &str, depth: u32, out: &mut Vec<String>) {
    if depth > 8 {
        return;
    }
    let dir = sys.join(name);
    let slaves: Vec<String> = std::fs::read_dir(dir.join("slaves"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    if !slaves.is_empty() {
        for s in slaves {
            collect(sys, &s, depth + 1, out);
        }
        return;
    }
    if dir.join("partition").exists() {
        // A partition's directory lies in its disk's.
        if let Some(disk) = std::fs::canonicalize(&dir)
            .ok()
            .and_then(|p| p.parent().map(PathBuf::from))
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        {
            out.push(disk);
        }
        return;
    }
    out.push(name.to_owned());
}

/// The drives under block device `name` that have a command timeout or an
/// answer from smartctl (not memory or virtual disks).
pub fn drives_under(name: &str) -> Vec<Drive> {
    disks_under(name)
        .into_iter()
        .filter_map(|disk| {
            let timeout = std::fs::read_to_string(format!("/sys/block/{disk}/device/timeout"))
                .ok()
                .and_then(|t| t.trim().parse().ok());
            let erc = smartctl_scterc(&disk);
            // Neither a command timeout nor SCT ERC: a memory or virtual
            // disk, with no recovery time to set.
            if timeout.is_none() && !matches!(erc, SctErc::Enabled { .. } | SctErc::Disabled) {
                return None;
            }
            Some(Drive {
                advice: advice(&disk, &erc, timeout),
                disk,
                command_timeout_s: timeout,
                sct_erc: erc,
            })
        })
        .collect()
}

/// Asks smartctl for the drive's SCT ERC.
fn smartctl_scterc(disk: &str) -> SctErc {
    // smartctl's exit status is a bit mask of findings: the JSON says.
    match Command::new("smartctl")
        .args(["-j", "-l", "scterc", &format!("/dev/{disk}")])
        .output()
    {
        Ok(out) => parse_scterc(&String::from_utf8_lossy(&out.stdout)),
        Err(_) => SctErc::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_smartctl_answers() {
        let on = r#"{"device":{"name":"/dev/sda","type":"sat"},"ata_sct_erc":{"read":{"enabled":true,"deciseconds":70},"write":{"enabled":true,"deciseconds":70}}}"#;
        assert_eq!(
            parse_scterc(on),
            SctErc::Enabled {
                read_ds: 70,
                write_ds: 70
            }
        );
        let off = r#"{"device":{"name":"/dev/sda"},"ata_sct_erc":{"read":{"enabled":false},"write":{"enabled":false}}}"#;
        assert_eq!(parse_scterc(off), SctErc::Disabled);
        let scsi = r#"{"device":{"name":"/dev/sdb","type":"scsi","protocol":"SCSI"}}"#;
        assert_eq!(parse_scterc(scsi), SctErc::Unsupported);
        assert_eq!(parse_scterc(""), SctErc::Unknown);
        assert_eq!(
            parse_scterc(r#"{"smartctl":{"exit_status":2}}"#),
            SctErc::Unknown
        );
    }

    #[test]
    fn advises_what_to_set() {
        let off = advice("sda", &SctErc::Disabled, Some(30)).unwrap();
        assert!(off.contains("smartctl -l scterc,70,70 /dev/sda"), "{off}");
        let long = SctErc::Enabled {
            read_ds: 300,
            write_ds: 300,
        };
        assert!(advice("sda", &long, Some(30)).unwrap().contains("30.0 s"));
        let good = SctErc::Enabled {
            read_ds: 70,
            write_ds: 70,
        };
        assert_eq!(advice("sda", &good, Some(30)), None);
        let none = advice("sdb", &SctErc::Unsupported, Some(30)).unwrap();
        assert!(
            none.contains("echo 180 > /sys/block/sdb/device/timeout"),
            "{none}"
        );
        assert_eq!(advice("sdb", &SctErc::Unsupported, Some(180)), None);
        assert!(advice("sdc", &SctErc::Unknown, Some(30))
            .unwrap()
            .contains("smartmontools"));
    }
}
