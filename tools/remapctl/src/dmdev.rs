// SPDX-License-Identifier: GPL-2.0

//! The device-mapper side, through the `devicemapper` crate: create a
//! `remap` device, remove it, read its table and status, list them.

use anyhow::{bail, Context, Result};
use devicemapper::{DevId, DmFlags, DmName, DmOptions, DmUuid, DM};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The DM UUID prefix of every device remapctl opens.
pub const UUID_PREFIX: &str = "REMAP-";

/// A device-mapper control handle.
pub struct Dm(DM);

/// One live `remap` device.
pub struct Live {
    /// Its name.
    pub name: String,
    /// Its DM UUID, if it has one.
    pub uuid: Option<String>,
    /// `dm-N`.
    pub kernel_name: String,
    /// The target's status line (the fields after the target name).
    pub status: String,
}

fn name_of(s: &str) -> Result<&DmName> {
    DmName::new(s).map_err(|e| anyhow::anyhow!("{s:?} is not a valid device name: {e}"))
}

impl Dm {
    /// Opens `/dev/mapper/control`.
    pub fn new() -> Result<Self> {
        Ok(Dm(DM::new().context(
            "cannot open /dev/mapper/control (is dm-mod loaded, and are you root?)",
        )?))
    }

    /// Creates device `name` with DM UUID `uuid` and one `remap` target,
    /// and resumes it; removes it again when that fails.
    pub fn create(&self, name: &str, uuid: &str, len: u64, params: &str, ro: bool) -> Result<()> {
        let dm_name = name_of(name)?;
        let dm_uuid = DmUuid::new(uuid).map_err(|e| anyhow::anyhow!("bad DM UUID: {e}"))?;
        let id = DevId::Name(dm_name);
        let flags = if ro {
            DmFlags::DM_READONLY
        } else {
            DmFlags::empty()
        };
        self.0
            .device_create(
                dm_name,
                Some(dm_uuid),
                DmOptions::default().set_flags(flags),
            )
            .with_context(|| format!("cannot create device {name}"))?;
        let table = [(0, len, "remap".to_owned(), params.to_owned())];
        let loaded = self
            .0
            .table_load(&id, &table, DmOptions::default().set_flags(flags))
            .with_context(|| {
                format!("the kernel refused the table (see dmesg): 0 {len} remap {params}")
            })
            .and_then(|_| {
                self.0
                    .device_suspend(&id, DmOptions::default())
                    .context("cannot resume the device (see dmesg)")
            });
        if let Err(e) = loaded {
            // The device has no live table: removing it undoes the create.
            if let Err(r) = self.0.device_remove(&id, DmOptions::default()) {
                return Err(e.context(format!(
                    "and removing the half-made device {name} failed too ({r}): remove it with dmsetup remove {name}"
                )));
            }
            return Err(e);
        }
        ensure_node(name, &self.kernel_name(name)?);
        Ok(())
    }

    /// Removes device `name`.
    pub fn remove(&self, name: &str) -> Result<()> {
        let kname = self.kernel_name(name).ok();
        self.0
            .device_remove(&DevId::Name(name_of(name)?), DmOptions::default())
            .with_context(|| format!("cannot remove {name} (is it mounted or open?)"))?;
        if let Some(k) = kname {
            drop_node(name, &k);
        }
        Ok(())
    }

    fn kernel_name(&self, name: &str) -> Result<String> {
        let info = self.0.device_info(&DevId::Name(name_of(name)?))?;
        Ok(format!("dm-{}", info.device().minor))
    }

    /// The live `remap` device `name`.
    pub fn get(&self, name: &str) -> Result<Live> {
        let id = DevId::Name(name_of(name)?);
        let (info, status) = self
            .0
            .table_status(&id, DmOptions::default())
            .with_context(|| format!("no device {name}"))?;
        let Some((_, _, kind, status)) = status.into_iter().next() else {
            bail!("{name} has no live table");
        };
        if kind != "remap" {
            bail!("{name} is not a remap device (its target is {kind})");
        }
        Ok(Live {
            name: name.to_owned(),
            uuid: info.uuid().map(|u| u.to_string()),
            kernel_name: format!("dm-{}", info.device().minor),
            status,
        })
    }

    /// The answer of device `name`'s target to message `msg`.
    pub fn message(&self, name: &str, msg: &str) -> Result<String> {
        let (_, answer) = self
            .0
            .target_msg(&DevId::Name(name_of(name)?), Some(0), msg)
            .with_context(|| format!("{name}: message {msg:?} refused (see dmesg)"))?;
        Ok(answer.unwrap_or_default())
    }

    /// Arms the control handle's event poll: the next device-mapper event
    /// after this (a table event of any device, a device made or removed)
    /// wakes [`Self::wait_event`].
    pub fn arm_events(&self) -> Result<()> {
        self.0
            .arm_poll()
            .context("cannot arm the device-mapper event poll")?;
        Ok(())
    }

    /// Sleeps until a device-mapper event since [`Self::arm_events`]
    /// (the DM_DEV_ARM_POLL ioctl and poll(2) on /dev/mapper/control, as
    /// dmeventd waits), or until `timeout` has passed when given.
    pub fn wait_event(&self, timeout: Option<Duration>) -> Result<bool> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let mut fds = [PollFd::new(self.0.file().as_fd(), PollFlags::POLLIN)];
        let timeout = match timeout {
            None => PollTimeout::NONE,
            Some(t) => PollTimeout::try_from(t).unwrap_or(PollTimeout::MAX),
        };
        loop {
            match poll(&mut fds, timeout) {
                Ok(n) => return Ok(n > 0),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e).context("poll on /dev/mapper/control"),
            }
        }
    }

    /// The names given, or with none every live `remap` device's (what
    /// the commands that take `[<name>...]` go through).
    pub fn named_or_all(&self, names: &[String]) -> Result<Vec<String>> {
        if names.is_empty() {
            Ok(self.list()?.into_iter().map(|l| l.name).collect())
        } else {
            Ok(names.to_vec())
        }
    }

    /// Every live `remap` device, by name.
    pub fn list(&self) -> Result<Vec<Live>> {
        let mut out = Vec::new();
        for (name, _, _) in self.0.list_devices()? {
            if let Ok(live) = self.get(&name.to_string()) {
                out.push(live);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The name of the live device whose DM UUID is `uuid`, if any.
    pub fn by_uuid(&self, uuid: &str) -> Result<Option<String>> {
        for (name, _, _) in self.0.list_devices()? {
            let info = self.0.device_info(&DevId::Name(&name))?;
            if info.uuid().map(|u| u.to_string()).as_deref() == Some(uuid) {
                return Ok(Some(name.to_string()));
            }
        }
        Ok(None)
    }
}

fn udev_running() -> bool {
    Path::new("/run/udev/control").exists()
}

/// `/dev/mapper/<name>`: udev makes it; without udev running (an initramfs,
/// a test guest), remapctl links it to `/dev/dm-N` itself, as libdevmapper
/// makes its nodes then.
fn ensure_node(name: &str, kname: &str) {
    let node = PathBuf::from("/dev/mapper").join(name);
    if udev_running() {
        let until = Instant::now() + Duration::from_secs(5);
        while !node.exists() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        return;
    }
    if node.exists() {
        return;
    }
    if let Err(e) = std::os::unix::fs::symlink(format!("../{kname}"), &node) {
        eprintln!("remapctl: cannot make {}: {e}", node.display());
    }
}

fn drop_node(name: &str, kname: &str) {
    let node = PathBuf::from("/dev/mapper").join(name);
    if !udev_running()
        && std::fs::read_link(&node).is_ok_and(|t| t == Path::new(&format!("../{kname}")))
    {
        // Only a link this tool made.
        if let Err(e) = std::fs::remove_file(&node) {
            eprintln!("remapctl: cannot remove {}: {e}", node.display());
        }
    }
}
