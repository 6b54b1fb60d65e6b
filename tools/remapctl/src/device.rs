// SPDX-License-Identifier: GPL-2.0

//! A block device as remapctl reads and writes it: whole, at byte offsets,
//! flushed on request, and past the page cache where the kernel may have
//! written behind it (the target writes metadata with bios, not through
//! the page cache of the device node).

use anyhow::{bail, Result};
use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// An open block device (or, for tests on the host, a regular file).
pub struct BlockDev {
    file: File,
    path: PathBuf,
    size: u64,
    rdev: Option<(u32, u32)>,
}

/// How a device is opened.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read only, shared: the device may be in use.
    Read,
    /// Read and write, exclusively (`O_EXCL`): the kernel refuses it while
    /// a filesystem is mounted on it or a device-mapper table holds it.
    Exclusive,
    /// Read only, exclusively.
    ReadExclusive,
}

impl BlockDev {
    /// Opens `path`.
    pub fn open(path: &Path, access: Access) -> Result<Self> {
        let mut opts = OpenOptions::new();
        opts.read(true);
        if access == Access::Exclusive {
            opts.write(true);
        }
        if access != Access::Read {
            opts.custom_flags(nix::libc::O_EXCL);
        }
        let mut file = opts.open(path).map_err(|e| {
            if e.raw_os_error() == Some(nix::libc::EBUSY) {
                anyhow::anyhow!(
                    "{} is in use (mounted, or held by a device-mapper table): close it first",
                    path.display()
                )
            } else {
                anyhow::Error::new(e).context(format!("cannot open {}", path.display()))
            }
        })?;
        let meta = file.metadata()?;
        let rdev = meta.file_type().is_block_device().then(|| {
            let r = meta.rdev();
            (
                nix::sys::stat::major(r) as u32,
                nix::sys::stat::minor(r) as u32,
            )
        });
        let size = file.seek(SeekFrom::End(0))?;
        Ok(Self {
            file,
            path: path.to_owned(),
            size,
            rdev,
        })
    }

    /// The path it was opened by.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// `major:minor`, for a table line.
    pub fn devno(&self) -> Result<String> {
        match self.rdev {
            Some((major, minor)) => Ok(format!("{major}:{minor}")),
            None => bail!("{} is not a block device", self.path.display()),
        }
    }

    /// The logical block size (512 for a regular file).
    pub fn logical_block_size(&self) -> u32 {
        let Some((major, minor)) = self.rdev else {
            return 512;
        };
        std::fs::read_to_string(format!(
            "/sys/dev/block/{major}:{minor}/queue/logical_block_size"
        ))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(512)
    }

    /// Reads `buf.len()` bytes at byte `offset`, from the device itself.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.drop_cache(offset, buf.len() as u64)?;
        self.file.read_exact_at(buf, offset)
    }

    /// Writes `buf` at byte `offset` (durable after [`Self::flush`]).
    pub fn write_at(&self, offset: u64, buf: &[u8]) -> std::io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    /// Makes every write so far durable: the page cache written back and
    /// the device's cache flushed.
    pub fn flush(&self) -> std::io::Result<()> {
        self.file.sync_all()
    }

    /// Drops the cached pages of a range, so that the next read reaches
    /// the device: the target writes metadata with bios, behind the page
    /// cache of the device node.
    fn drop_cache(&self, offset: u64, len: u64) -> std::io::Result<()> {
        let range = |v: u64| {
            i64::try_from(v).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))
        };
        match posix_fadvise(
            self.file.as_raw_fd(),
            range(offset)?,
            range(len)?,
            PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        ) {
            // A kernel without fadvise (CONFIG_ADVISE_SYSCALLS=n, as the
            // test kernel): nothing to drop here. The kernel drops a block
            // device's cache when its last opener closes it, and the
            // commands that act on what they read hold the device
            // exclusively, so no table wrote behind this one's cache.
            Err(nix::errno::Errno::ENOSYS) => Ok(()),
            r => r.map_err(std::io::Error::from),
        }
    }
}
