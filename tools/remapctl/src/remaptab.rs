// SPDX-License-Identifier: GPL-2.0

//! `/etc/remaptab`: the devices to open at boot, and the systemd units a
//! generator makes of it (in the style of integritytab and veritytab).
//!
//! One device a line, `#` starts a comment:
//!
//! ```text
//! # name  device                         options
//! home    /dev/disk/by-id/ata-WDC_1234   -
//! media   UUID=7f1c0a9e-…                no-check,readonly,nofail
//! ```
//!
//! The device is a path or `UUID=` and the metadata UUID that `format`
//! printed (the devices' remap labels are searched for it). Options,
//! comma-separated, `-` for none: `no-check` (open without the offline
//! check), `readonly` (a read-only table), `nofail` (boot goes on when the
//! device is missing or refused).

use anyhow::{bail, Context, Result};
use std::path::Path;

/// Where a remaptab line's device is.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Source {
    /// A device path.
    Path(String),
    /// The device whose remap label has this metadata UUID.
    Uuid(String),
}

/// One remaptab line.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Entry {
    /// The device-mapper name.
    pub name: String,
    /// The device.
    pub source: Source,
    /// Open without the offline check.
    pub no_check: bool,
    /// Open read-only.
    pub readonly: bool,
    /// Boot goes on without it.
    pub nofail: bool,
}

/// Parses a remaptab.
pub fn parse(text: &str) -> Result<Vec<Entry>> {
    let mut out: Vec<Entry> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        if !(2..=3).contains(&w.len()) {
            bail!(
                "remaptab line {}: expected <name> <device> [<options>]",
                n + 1
            );
        }
        let name = w[0];
        let name_char = |c: char| c.is_ascii_alphanumeric() || "_.+:-".contains(c);
        if !name.chars().all(name_char)
            || name.len() > 127
            || name.starts_with('-')
            || matches!(name, "." | ".." | "control")
        {
            bail!(
                "remaptab line {}: {name:?} is not a valid device name (letters, digits and _.+:- only)",
                n + 1
            );
        }
        if out.iter().any(|e| e.name == name) {
            bail!("remaptab line {}: {name} is listed twice", n + 1);
        }
        let source = match w[1].strip_prefix("UUID=") {
            Some(u) => {
                crate::dump::parse_uuid(u).with_context(|| format!("remaptab line {}", n + 1))?;
                Source::Uuid(u.to_owned())
            }
            None if w[1].starts_with('/') => Source::Path(w[1].to_owned()),
            None => bail!(
                "remaptab line {}: the device must be a path or UUID=<uuid>, not {:?}",
                n + 1,
                w[1]
            ),
        };
        let mut e = Entry {
            name: name.to_owned(),
            source,
            no_check: false,
            readonly: false,
            nofail: false,
        };
        for opt in w.get(2).map_or("-", |o| o).split(',') {
            match opt {
                "-" | "" | "defaults" => {}
                "no-check" => e.no_check = true,
                "readonly" | "read-only" => e.readonly = true,
                "nofail" => e.nofail = true,
                _ => bail!("remaptab line {}: unknown option {opt:?}", n + 1),
            }
        }
        out.push(e);
    }
    Ok(out)
}

/// Reads and parses the remaptab at `path`.
pub fn read(path: &Path) -> Result<Vec<Entry>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&text).with_context(|| path.display().to_string())
}

/// One word of an `ExecStart=` line, quoted: systemd expands `%` and `$`,
/// and takes backslash escapes inside quotes.
pub fn exec_word(w: &str) -> String {
    let mut out = String::from("\"");
    for c in w.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A path as systemd names its unit (`systemd-escape --path`); repeated
/// slashes collapse, as systemd's path normalisation does.
pub fn escape_path(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let trimmed = parts.join("/");
    let mut out = String::new();
    for (i, c) in trimmed.bytes().enumerate() {
        match c {
            b'/' => out.push('-'),
            b'.' if i == 0 => out.push_str("\\x2e"),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b':' | b'_' | b'.' => out.push(c as char),
            _ => out.push_str(&format!("\\x{c:02x}")),
        }
    }
    if out.is_empty() {
        "-".to_owned()
    } else {
        out
    }
}

/// The unit name that opens entry `name`.
pub fn unit_name(name: &str) -> String {
    format!("remapctl-open@{}.service", escape_path(name))
}

/// The unit that opens `e` at boot, and closes it at shutdown.
pub fn unit(e: &Entry, remapctl: &str) -> String {
    let (device, dev_unit) = match &e.source {
        Source::Path(p) => (p.clone(), Some(format!("{}.device", escape_path(p)))),
        Source::Uuid(u) => (format!("UUID={u}"), None),
    };
    let mut opts = String::new();
    if e.no_check {
        opts.push_str(" --no-check");
    }
    if e.readonly {
        opts.push_str(" --readonly");
    }
    let mapper = format!("dev-mapper-{}", escape_path(&e.name));
    let mut lines = vec![
        "# Made by remapctl generate-units from /etc/remaptab.".to_owned(),
        "[Unit]".to_owned(),
        format!("Description=dm-remap device {} on {device}", e.name),
        "DefaultDependencies=no".to_owned(),
        "IgnoreOnIsolate=true".to_owned(),
        "Conflicts=umount.target".to_owned(),
        "Before=umount.target remap.target".to_owned(),
        "After=systemd-udevd-kernel.socket systemd-modules-load.service".to_owned(),
        format!("Wants=blockdev@{mapper}.target"),
        format!("Before=blockdev@{mapper}.target"),
    ];
    match &dev_unit {
        Some(u) => lines.extend([format!("BindsTo={u}"), format!("After={u}")]),
        None => lines.extend([
            "After=systemd-udev-settle.service".to_owned(),
            "Wants=systemd-udev-settle.service".to_owned(),
        ]),
    }
    lines.extend([
        String::new(),
        "[Service]".to_owned(),
        "Type=oneshot".to_owned(),
        "RemainAfterExit=yes".to_owned(),
        "TimeoutSec=infinity".to_owned(),
        format!(
            "ExecStart={} open{opts} {} {}",
            exec_word(remapctl),
            exec_word(&device),
            e.name
        ),
        format!("ExecStop={} close {}", exec_word(remapctl), e.name),
    ]);
    lines.join("\n") + "\n"
}

/// What `generate-units` writes into `dir`: each unit, and the
/// `remap.target` that pulls them in (wanted by `local-fs-pre.target`
/// unless `nofail`, else by `remap.target` only).
pub fn generate(entries: &[Entry], dir: &Path, remapctl: &str) -> Result<()> {
    let target_wants = dir.join("remap.target.wants");
    std::fs::create_dir_all(&target_wants)?;
    let pre_requires = dir.join("local-fs-pre.target.requires");
    let pre_wants = dir.join("local-fs-pre.target.wants");
    for e in entries {
        let name = unit_name(&e.name);
        let path = dir.join(&name);
        std::fs::write(&path, unit(e, remapctl))?;
        let link = |d: &Path| -> Result<()> {
            std::fs::create_dir_all(d)?;
            let l = d.join(&name);
            if l.symlink_metadata().is_err() {
                std::os::unix::fs::symlink(format!("../{name}"), l)?;
            }
            Ok(())
        };
        link(&target_wants)?;
        link(if e.nofail { &pre_wants } else { &pre_requires })?;
    }
    std::fs::write(
        dir.join("remap.target"),
        "# Made by remapctl generate-units.\n[Unit]\nDescription=dm-remap devices\n",
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_and_refuses_bad_ones() {
        let t = parse(
            "# c\nhome /dev/sdb -\nmedia UUID=0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0 no-check,readonly,nofail\n",
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].source, Source::Path("/dev/sdb".into()));
        assert!(t[1].no_check && t[1].readonly && t[1].nofail);
        for bad in [
            "x",
            "a sdb",
            "a /dev/sdb bogus",
            "a UUID=zz",
            "a /dev/sdb\na /dev/sdc",
            "a/b /dev/sdb",
            "a$b /dev/sdb",
            "control /dev/sdb",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn escapes_like_systemd() {
        assert_eq!(escape_path("/dev/sdb"), "dev-sdb");
        assert_eq!(
            escape_path("/dev/disk/by-id/ata-X_1"),
            "dev-disk-by\\x2did-ata\\x2dX_1"
        );
        assert_eq!(unit_name("home"), "remapctl-open@home.service");
        assert_eq!(escape_path("//dev//sdb/"), "dev-sdb");
        assert_eq!(exec_word(r#"/a b\x20%$""#), r#""/a b\\x20%%$$\"""#);
    }
}
