// SPDX-License-Identifier: GPL-2.0

//! The commands, one a file, and what several of them need: where a
//! device's metadata is, and the table line of a labelled device.

pub mod check;
pub mod close;
pub mod dump;
pub mod format;
pub mod generate;
pub mod open;
pub mod repair;
pub mod restore;
pub mod status;

use crate::device::{Access, BlockDev};
use crate::label::{self, Label};
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

/// Finds the metadata of `dev`.
pub fn locate(dev: &BlockDev, geometry: Option<&str>) -> Result<Located> {
    match geometry {
        Some(g) => Ok(Located {
            identity: parse_geometry(g)?,
            label: None,
        }),
        None => {
            let (l, found) = label::read(dev)?;
            Ok(Located {
                identity: l.identity,
                label: Some((l, found)),
            })
        }
    }
}

/// The DM UUID of metadata `uuid`.
pub fn dm_uuid(uuid: &[u8; UUID_BYTES]) -> String {
    format!("{}{}", crate::dmdev::UUID_PREFIX, UuidText(uuid))
}

/// The parameters of the table line of a labelled device.
pub fn table_params(dev: &BlockDev, l: &Label) -> Result<String> {
    let devno = dev.devno()?;
    let id = &l.identity;
    let mut features = vec!["block_size".to_owned(), id.block_size.to_string()];
    if l.no_auto_remap {
        features.push("no_auto_remap".to_owned());
    }
    if let Some(r) = l.read_retries {
        features.push("read_retries".to_owned());
        features.push(r.to_string());
    }
    Ok(format!(
        "{devno} {} {devno} {} {} {} {}",
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
    let mut names: Vec<_> = std::fs::read_dir("/sys/class/block")
        .context("cannot list /sys/class/block")?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let path = Path::new("/dev").join(&name);
        let Ok(dev) = BlockDev::open(&path, Access::Read) else {
            continue;
        };
        if matches!(label::read(&dev), Ok((l, _)) if l.uuid == want) {
            return Ok(path);
        }
    }
    bail!(
        "no block device holds a remap label with UUID {}",
        UuidText(&want)
    )
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
