// SPDX-License-Identifier: GPL-2.0

//! The commands, one a file, and what several of them need: where a
//! device's metadata is, and the table line of a labelled device.

pub mod check;
pub mod close;
pub mod dump;
pub mod format;
pub mod generate;
pub mod import;
pub mod monitor;
pub mod open;
pub mod probe;
pub mod repair;
pub mod restore;
pub mod scrub;
pub mod status;

use crate::device::{Access, BlockDev};
use crate::label::{self, Label, Role};
use crate::meta::{self, Offline};
use anyhow::{bail, Context, Result};
use dm_remap_ondisk::{Identity, UuidText, UUID_BYTES};
use std::path::{Path, PathBuf};

/// Where the metadata of a device is: from its remap label, or from a
/// `--geometry` given for a device without one.
pub struct Located {
    /// The areas.
    pub identity: Identity,
    /// The label, when the device has one.
    pub label: Option<(Label, label::Found)>,
    /// The spare device, when the label puts the spare area on another
    /// device than the data area.
    pub spare: Option<BlockDev>,
}

impl Located {
    /// The device that holds the spare area (and the metadata).
    pub fn spare_dev<'a>(&'a self, dev: &'a BlockDev) -> &'a BlockDev {
        self.spare.as_ref().unwrap_or(dev)
    }
}

/// Parses `data_offset:data_len:spare_offset:spare_len:block_size`.
pub fn parse_geometry(s: &str) -> Result<Identity> {
    let v: Vec<&str> = s.split(':').collect();
    if v.len() != 5 {
        bail!("--geometry wants data_offset:data_len:spare_offset:spare_len:block_size, not {s:?}");
    }
    let n = |i: usize| -> Result<u64> {
        v[i].parse()
            .with_context(|| format!("--geometry: {:?} is not a number", v[i]))
    };
    Ok(Identity {
        data_offset: n(0)?,
        data_len: n(1)?,
        spare_offset: n(2)?,
        spare_len: n(3)?,
        block_size: u32::try_from(n(4)?).context("--geometry: block size too large")?,
    })
}

/// Finds the metadata of `dev`; a spare area on another device is opened
/// with `access` too.
pub fn locate(dev: &BlockDev, geometry: Option<&str>, access: Access) -> Result<Located> {
    locate_waiting(dev, geometry, access, std::time::Duration::ZERO)
}

/// [`locate`], waiting up to `wait` for a spare device that has not
/// appeared yet (at boot, the data disk may come before it).
pub fn locate_waiting(
    dev: &BlockDev,
    geometry: Option<&str>,
    access: Access,
    wait: std::time::Duration,
) -> Result<Located> {
    if let Some(g) = geometry {
        return Ok(Located {
            identity: parse_geometry(g)?,
            label: None,
            spare: None,
        });
    }
    let (l, found) = label::read(dev)?;
    let spare = match l.role {
        Role::Whole => None,
        Role::Spare => bail!(
            "{} holds the spare area of a remap device (metadata UUID {}): name its data device",
            dev.path().display(),
            UuidText(&l.uuid)
        ),
        Role::Data => {
            let deadline = std::time::Instant::now() + wait;
            let mut found_spare = find_label(&l.uuid, Role::Spare)?;
            while found_spare.is_none() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_secs(1));
                found_spare = find_label(&l.uuid, Role::Spare)?;
            }
            let path = found_spare.with_context(|| {
                format!(
                    "{}: its spare area is on another device, with metadata UUID {}, and no block device holds that label",
                    dev.path().display(),
                    UuidText(&l.uuid)
                )
            })?;
            let spare = BlockDev::open(&path, access)?;
            match label::read(&spare)? {
                (s, _) if s.identity == l.identity => Some(spare),
                _ => bail!(
                    "{}: the spare device {} records another geometry",
                    dev.path().display(),
                    path.display()
                ),
            }
        }
    };
    Ok(Located {
        identity: l.identity,
        label: Some((l, found)),
        spare,
    })
}

/// The block device whose remap label has metadata UUID `uuid` and, if
/// given, role `role` (else any role but [`Role::Spare`]). A device stacked
/// on another that matches (dm-dust or a linear map over the disk) shows
/// the same label: the topmost is taken. Two unrelated devices with the
/// label (a cloned disk, `dd` to a new disk) are refused, both named, as
/// LVM refuses duplicate PVs: using either silently could open the stale
/// one.
pub fn find_label(uuid: &[u8; UUID_BYTES], role: Role) -> Result<Option<PathBuf>> {
    let mut names: Vec<_> = std::fs::read_dir("/sys/class/block")
        .context("cannot list /sys/class/block")?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut found = Vec::new();
    for name in names {
        // Not a suspended device-mapper device (a read would wait for its
        // resume), nor an empty one (a loop or nbd device with nothing
        // behind it).
        let sys = Path::new("/sys/class/block").join(&name);
        let attr = |a: &str| std::fs::read_to_string(sys.join(a)).unwrap_or_default();
        if attr("dm/suspended").trim() == "1" || attr("size").trim() == "0" {
            continue;
        }
        let path = Path::new("/dev").join(&name);
        let Ok(dev) = BlockDev::open(&path, Access::Read) else {
            continue;
        };
        match label::probe(&dev) {
            Ok(Some((l, _)))
                if l.uuid == *uuid
                    && (l.role == role || (role != Role::Spare && l.role != Role::Spare)) =>
            {
                found.push(name)
            }
            _ => {}
        }
    }
    let holders = |name: &str| -> Vec<String> {
        std::fs::read_dir(Path::new("/sys/class/block").join(name).join("holders"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let top: Vec<&String> = found
        .iter()
        .filter(|n| !holders(n).iter().any(|h| found.contains(h)))
        .collect();
    match top.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(Path::new("/dev").join(one))),
        many => bail!(
            "{} devices carry the remap label with UUID {}: {} (a cloned disk?); refusing to pick one: name the device to use by its path (in /etc/remaptab too), or detach the other",
            many.len(),
            UuidText(uuid),
            many.iter()
                .map(|n| format!("/dev/{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The DM UUID of metadata `uuid`.
pub fn dm_uuid(uuid: &[u8; UUID_BYTES]) -> String {
    format!("{}{}", crate::dmdev::UUID_PREFIX, UuidText(uuid))
}

/// The parameters of the table line of a labelled device whose spare
/// area is on `spare` (`dev` itself, or its spare device).
pub fn table_params(dev: &BlockDev, spare: &BlockDev, l: &Label) -> Result<String> {
    let devno = dev.devno()?;
    let spare_devno = spare.devno()?;
    let id = &l.identity;
    let mut features = vec!["block_size".to_owned(), id.block_size.to_string()];
    if l.no_auto_remap {
        features.push("no_auto_remap".to_owned());
    }
    if let Some(r) = l.read_retries {
        features.push("read_retries".to_owned());
        features.push(r.to_string());
    }
    if let Some(ms) = l.slow_read_ms {
        features.push("slow_read_ms".to_owned());
        features.push(ms.to_string());
    }
    Ok(format!(
        "{devno} {} {spare_devno} {} {} {} {}",
        id.data_offset,
        id.spare_offset,
        id.spare_len,
        features.len(),
        features.join(" ")
    ))
}

/// The device a remaptab source or `open` argument names: a path, or
/// `UUID=<uuid>`, searched for among the block devices' remap labels.
pub fn resolve(source: &str) -> Result<PathBuf> {
    let Some(want) = source.strip_prefix("UUID=") else {
        return Ok(PathBuf::from(source));
    };
    let want = crate::dump::parse_uuid(want)?;
    find_label(&want, Role::Whole)?.with_context(|| {
        format!(
            "no block device holds a remap label with UUID {}",
            UuidText(&want)
        )
    })
}

/// The metadata of `identity` on `dev`, or `None` after saying why it
/// cannot be used (`what`: the command's words for that).
pub fn usable(dev: &BlockDev, identity: Identity, what: &str) -> Result<Option<Offline>> {
    let why = match meta::load(dev, identity)? {
        Ok(m) if !m.rec.blank => return Ok(Some(m)),
        Ok(_) => "the spare area holds no metadata (not formatted, or the format was cut short)"
            .to_owned(),
        Err(e) => check::describe(&e),
    };
    eprintln!("remapctl: {}: {what}: {why}", dev.path().display());
    Ok(None)
}
