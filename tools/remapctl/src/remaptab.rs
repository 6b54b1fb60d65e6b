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

/// The longest unit name systemd takes (`UNIT_NAME_MAX` less its NUL).
const UNIT_NAME_MAX: usize = 255;

/// Parses a remaptab line by line: each line's entry, or why that line is
/// refused (with its number), so that a generator can make the units of
/// the good lines and report the bad ones.
pub fn parse_each(text: &str) -> Vec<Result<Entry>> {
    let mut out: Vec<Result<Entry>> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let taken = |name: &str| out.iter().flatten().any(|e: &Entry| e.name == name);
        let entry = parse_line(line, &taken).with_context(|| format!("remaptab line {}", n + 1));
        out.push(entry);
    }
    out
}

/// One non-empty line, without its comment; `taken` says whether a name
/// is used by an earlier line.
fn parse_line(line: &str, taken: &dyn Fn(&str) -> bool) -> Result<Entry> {
    let w: Vec<&str> = line.split_whitespace().collect();
    if !(2..=3).contains(&w.len()) {
        bail!("expected <name> <device> [<options>]");
    }
    let name = w[0];
    let name_char = |c: char| c.is_ascii_alphanumeric() || "_.+:-".contains(c);
    if !name.chars().all(name_char)
        || name.len() > 127
        || name.starts_with('-')
        || matches!(name, "." | ".." | "control")
    {
        bail!("{name:?} is not a valid device name (letters, digits and _.+:- only, at most 127)");
    }
    if taken(name) {
        bail!("{name} is listed twice");
    }
    let source = match w[1].strip_prefix("UUID=") {
        Some(u) => {
            crate::dump::parse_uuid(u)?;
            Source::Uuid(u.to_owned())
        }
        None if w[1].starts_with('/') => {
            let unit = format!("{}.device", escape_path(w[1]));
            if unit.len() > UNIT_NAME_MAX {
                bail!(
                    "the device path makes a systemd unit name of {} bytes ({unit}), above systemd's {UNIT_NAME_MAX}: use a shorter path (a /dev/disk/by-id name, or UUID=)",
                    unit.len()
                );
            }
            Source::Path(w[1].to_owned())
        }
        None => bail!("the device must be a path or UUID=<uuid>, not {:?}", w[1]),
    };
    // The longest unit name a line makes: the target its device waits for.
    let unit = format!("blockdev@dev-mapper-{}.target", escape_path(name));
    if unit.len() > UNIT_NAME_MAX || unit_name(name).len() > UNIT_NAME_MAX {
        bail!(
            "the name makes a systemd unit name of {} bytes, above systemd's {UNIT_NAME_MAX}: use a shorter name",
            unit.len()
        );
    }
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
            _ => bail!("unknown option {opt:?}"),
        }
    }
    Ok(e)
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

    /// Parses a remaptab; the first bad line is an error.
    fn parse(text: &str) -> Result<Vec<Entry>> {
        parse_each(text).into_iter().collect()
    }

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
    fn a_bad_line_is_named_and_the_others_are_kept() {
        let long_name = "n".repeat(127);
        let long_path = format!("/dev/{}", "d".repeat(300));
        let text = format!(
            "a /dev/sda -\n{long_name}x /dev/sdb\nb {long_path}\nc /dev/sdc bogus\nd /dev/sdd -\n"
        );
        let each = parse_each(&text);
        assert_eq!(each.len(), 5);
        let good: Vec<&str> = each.iter().flatten().map(|e| e.name.as_str()).collect();
        assert_eq!(good, ["a", "d"]);
        let errors: Vec<String> = each
            .iter()
            .filter_map(|e| e.as_ref().err())
            .map(|e| format!("{e:#}"))
            .collect();
        assert!(errors[0].starts_with("remaptab line 2: "), "{}", errors[0]);
        assert!(errors[1].starts_with("remaptab line 3: "), "{}", errors[1]);
        assert!(errors[1].contains("above systemd's 255"), "{}", errors[1]);
        assert!(
            errors[2].starts_with("remaptab line 4: unknown option"),
            "{}",
            errors[2]
        );
        // A name within the device name limit whose unit name is not.
        let dashes = format!("a{}", "-".repeat(80));
        let err = parse(&format!("{dashes} /dev/sda")).unwrap_err();
        assert!(format!("{err:#}").contains("unit name"), "{err:#}");
        assert!(parse(&text).is_err());
    }

    #[test]
    fn the_generator_makes_the_good_lines_units_and_exits_0() {
        let dir = std::env::temp_dir().join(format!("remapctl-gen-{}", std::process::id()));
        let tab = dir.join("remaptab");
        std::fs::create_dir_all(&dir).unwrap();
        let long_path = format!("/dev/{}", "d".repeat(300));
        std::fs::write(&tab, format!("a {long_path}\nb /dev/sdb -\n")).unwrap();
        let out = dir.join("units");
        let code = crate::cmd::generate::run(&out, &tab, "/usr/sbin/remapctl").unwrap();
        assert_eq!(code, crate::exit::OK);
        assert!(out.join(unit_name("b")).exists());
        assert!(!out.join(unit_name("a")).exists());
        std::fs::remove_dir_all(&dir).unwrap();
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
