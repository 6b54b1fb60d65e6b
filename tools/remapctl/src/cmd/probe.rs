// SPDX-License-Identifier: GPL-2.0

//! `probe <dev>`: what udev's rule (`60-remapctl.rules`) imports, as it
//! imports `blkid -o udev`: a disk that carries a remap label is a remap
//! member (`ID_FS_TYPE=dm_remap_member`), which libblkid does not know
//! (its first 4 KiB look blank to it), so that `lsblk -f`, udisks and
//! partitioners see it as taken and boot finds it by UUID.

use crate::device::{Access, BlockDev};
use crate::exit;
use crate::label::{self, Label, Role};
use anyhow::Result;
use dm_remap_ondisk::UuidText;
use std::path::Path;

/// What blkid names a member of a RAID or volume group: not a filesystem,
/// and a device to leave alone.
const USAGE: &str = "raid";

/// The udev properties of a labelled device, one `KEY=value` a line.
pub fn properties(label: &Label) -> String {
    let uuid = UuidText(&label.uuid).to_string();
    let role = match label.role {
        Role::Whole => "whole",
        Role::Data => "data",
        Role::Spare => "spare",
    };
    format!(
        "ID_FS_TYPE=dm_remap_member\nID_FS_USAGE={USAGE}\nID_FS_VERSION={}\nID_FS_UUID={uuid}\nID_FS_UUID_ENC={uuid}\nID_REMAP_ROLE={role}\n",
        label::VERSION
    )
}

/// Prints the properties of `dev` and exits 0 when it carries a remap
/// label; prints nothing and exits 2 when it does not (as `blkid -p`
/// exits 2 when it finds nothing); a label damaged in both places is an
/// error (exit 4), which udev logs.
pub fn run(path: &Path) -> Result<u8> {
    // Not exclusive: a member that a remap table holds is probed too.
    let dev = BlockDev::open(path, Access::Read)?;
    match label::probe(&dev)? {
        Some((l, _)) => {
            print!("{}", properties(&l));
            Ok(exit::OK)
        }
        None => Ok(exit::USAGE),
    }
}
