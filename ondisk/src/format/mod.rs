// SPDX-License-Identifier: GPL-2.0

//! The dm-remap on-disk format, written once for the kernel module and for
//! `remapctl`: where the five metadata copies lie, how a block is encoded
//! and checked, which version of each block recovery takes, and in which
//! order a commit writes. Only `core` is used: buffers come from the
//! caller, errors are this module's own types, and I/O goes through
//! [`MetadataDev`], so the same code runs in the kernel, in `remapctl` and
//! in the host's unit tests. The byte-by-byte layout is in
//! `docs/format.md`.

mod block;
mod commit;
mod crc;
mod layout;
mod recover;
mod slot;

pub use block::*;
pub use commit::*;
pub use crc::*;
pub use layout::*;
pub use recover::*;
pub use slot::*;

/// Copies of the metadata in every spare area.
pub const METADATA_COPIES: usize = 5;

/// Where the metadata copies are read and written: block `index` of copy
/// `copy`, one metadata block at a time.
pub trait MetadataDev {
    /// What a failed read, write or flush reports.
    type Error: Copy;
    /// Reads a block into `out`.
    fn read(&mut self, copy: usize, index: u32, out: &mut [u8]) -> Result<(), Self::Error>;
    /// Block `index` of `copy`, lent from the device's own memory (a
    /// read-ahead window) when it holds it there, saving loading a copy of
    /// every block: the same bytes [`MetadataDev::read`] would give.
    /// `None` (the default) sends the caller to `read`. A caller that
    /// peeks a block again to use what it checked gets the same bytes or
    /// `None`, and then reads and checks the block again.
    fn peek(&mut self, _copy: usize, _index: u32) -> Option<&[u8]> {
        None
    }
    /// Queues a block write; it is durable after the next successful
    /// [`MetadataDev::flush`].
    fn write(&mut self, copy: usize, index: u32, data: &[u8]) -> Result<(), Self::Error>;
    /// Waits for the queued writes and flushes the device cache. Writes
    /// queued before one flush may reach the disk in any order.
    fn flush(&mut self) -> Result<(), Self::Error>;
}
