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

/// The device unit of `e`'s device: the path's, or for `UUID=` the
/// `/dev/disk/by-uuid/` link that the udev rule (`60-remapctl.rules`,
/// through `remapctl probe`) makes for a remap member, so that boot waits
/// for that device and no longer than that device.
pub fn device_unit(source: &Source) -> String {
    match source {
        Source::Path(p) => format!("{}.device", escape_path(p)),
        Source::Uuid(u) => format!("{}.device", escape_path(&format!("/dev/disk/by-uuid/{u}"))),
    }
}

/// The unit that opens `e` at boot, and closes it at shutdown, written as
/// systemd-cryptsetup-generator writes its units for crypttab: bound to
/// the backing device's unit, before `blockdev@dev-mapper-<name>.target`,
/// and (unless `nofail`) before `remap.target`, which `sysinit.target`
/// wants as it wants `cryptsetup.target`.
pub fn unit(e: &Entry, remaptab: &Path, remapctl: &str) -> String {
    // What the unit opens: the path, or for `UUID=` the by-uuid link whose
    // device the unit waited for, as systemd-cryptsetup-generator passes
    // the link rather than the UUID, so that `open` need not read every
    // block device of the system to find it.
    let device = match &e.source {
        Source::Path(p) => p.clone(),
        Source::Uuid(u) => format!("/dev/disk/by-uuid/{u}"),
    };
    let dev_unit = device_unit(&e.source);
    let mut opts = String::new();
    if e.no_check {
        opts.push_str(" --no-check");
    }
    if e.readonly {
        opts.push_str(" --readonly");
    }
    let mapper = format!("dev-mapper-{}", escape_path(&e.name));
    let mut lines = vec![
        "# Automatically generated by remapctl-generator".to_owned(),
        String::new(),
        "[Unit]".to_owned(),
        format!(
            "Description=dm-remap device {} on {}",
            e.name,
            device.replace('%', "%%")
        ),
        "Documentation=man:remaptab(5) man:remapctl-generator(8) man:remapctl(8)".to_owned(),
        format!("SourcePath={}", remaptab.display()),
        "DefaultDependencies=no".to_owned(),
        "IgnoreOnIsolate=true".to_owned(),
        "Conflicts=umount.target".to_owned(),
        "Before=umount.target".to_owned(),
        "After=systemd-udevd-kernel.socket systemd-modules-load.service".to_owned(),
        format!("Wants=blockdev@{mapper}.target"),
        format!("Before=blockdev@{mapper}.target"),
    ];
    // A nofail device is not waited for: nothing is ordered after it.
    if !e.nofail {
        lines.push("Before=remap.target".to_owned());
    }
    lines.extend([
        format!("BindsTo={dev_unit}"),
        format!("After={dev_unit}"),
        String::new(),
        "[Service]".to_owned(),
        "Type=oneshot".to_owned(),
        "RemainAfterExit=yes".to_owned(),
        // The offline check reads all five metadata copies (up to 1 GiB
        // each) from a disk that may be failing: long, but not forever.
        "TimeoutSec=30min".to_owned(),
        format!(
            "ExecStart={} open{opts} --spare-timeout 90 {} {}",
            exec_word(remapctl),
            exec_word(&device),
            e.name
        ),
        format!("ExecStop={} close {}", exec_word(remapctl), e.name),
    ]);
    lines.join("\n") + "\n"
}

/// What `generate-units` writes into `dir`: each unit; its link in
/// `remap.target.requires` (`.wants` with `nofail`), as crypttab's units
/// are linked from `cryptsetup.target`; and its link in
/// `dev-mapper-<name>.device.requires`, so that whatever needs
/// `/dev/mapper/<name>` (a mount in fstab) pulls the unit in.
pub fn generate(entries: &[Entry], dir: &Path, remaptab: &Path, remapctl: &str) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    // `sysinit.target` wants `remap.target` (the package's unit) as it
    // wants `cryptsetup.target`, once there is a device to open.
    if !entries.is_empty() {
        let wants = dir.join("sysinit.target.wants");
        std::fs::create_dir_all(&wants)?;
        let l = wants.join("remap.target");
        if l.symlink_metadata().is_err() {
            std::os::unix::fs::symlink("/usr/lib/systemd/system/remap.target", l)?;
        }
    }
    for e in entries {
        let name = unit_name(&e.name);
        let path = dir.join(&name);
        std::fs::write(&path, unit(e, remaptab, remapctl))?;
        let link = |d: String| -> Result<()> {
            let d = dir.join(d);
            std::fs::create_dir_all(&d)?;
            let l = d.join(&name);
            if l.symlink_metadata().is_err() {
                std::os::unix::fs::symlink(format!("../{name}"), l)?;
            }
            Ok(())
        };
        link(if e.nofail {
            "remap.target.wants".to_owned()
        } else {
            "remap.target.requires".to_owned()
        })?;
        link(format!(
            "dev-mapper-{}.device.requires",
            escape_path(&e.name)
        ))?;
    }
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
    fn units_are_linked_and_ordered_as_crypttab_units_are() {
        let dir = std::env::temp_dir().join(format!("remapctl-links-{}", std::process::id()));
        let tab = dir.join("remaptab");
        std::fs::create_dir_all(&dir).unwrap();
        let uuid = "0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0";
        std::fs::write(&tab, format!("home /dev/sdb -\nmedia UUID={uuid} nofail\n")).unwrap();
        let out = dir.join("units");
        crate::cmd::generate::run(&out, &tab, "/usr/sbin/remapctl").unwrap();
        let home = unit_name("home");
        let media = unit_name("media");
        let linked = |d: &str, u: &str| {
            std::fs::read_link(out.join(d).join(u)).ok() == Some(format!("../{u}").into())
        };
        assert!(linked("remap.target.requires", &home));
        assert!(linked("remap.target.wants", &media));
        assert!(!linked("remap.target.requires", &media));
        assert!(linked("dev-mapper-home.device.requires", &home));
        assert!(linked("dev-mapper-media.device.requires", &media));
        assert!(out
            .join("sysinit.target.wants/remap.target")
            .symlink_metadata()
            .is_ok());
        let home_unit = std::fs::read_to_string(out.join(&home)).unwrap();
        let media_unit = std::fs::read_to_string(out.join(&media)).unwrap();
        for l in [
            "BindsTo=dev-sdb.device",
            "After=dev-sdb.device",
            "Before=remap.target",
            "Before=blockdev@dev-mapper-home.target",
        ] {
            assert!(home_unit.lines().any(|x| x == l), "{l}");
        }
        assert!(home_unit.contains(&format!("SourcePath={}\n", tab.display())));
        assert!(home_unit.contains("Documentation=man:remaptab(5)"));
        // UUID=: the by-uuid link's unit, never udev-settle; nofail: no
        // ordering before remap.target.
        let by_uuid = format!("dev-disk-by\\x2duuid-{}.device", uuid.replace('-', "\\x2d"));
        assert!(
            media_unit.contains(&format!("BindsTo={by_uuid}\n")),
            "{media_unit}"
        );
        assert!(!media_unit.contains("settle"));
        // It opens the link it waited for, not UUID= (no scan of every
        // device), and waits for a separate spare device.
        assert!(
            media_unit.contains(&format!(
                " open --spare-timeout 90 \"/dev/disk/by-uuid/{uuid}\" media\n"
            )),
            "{media_unit}"
        );
        assert!(!media_unit.contains("Before=remap.target"));
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
