// SPDX-License-Identifier: GPL-2.0

//! The in-memory device of the unit tests.

use super::image::filled;
use crate::ondisk::{Format, MetadataDev, METADATA_COPIES};
use kernel::prelude::*;

/// The in-memory device of the unit tests: five copies of `copy_blocks`
/// blocks, and a log of the writes and flushes made.
#[cfg(CONFIG_KUNIT)]
pub(crate) struct MemDev {
    pub(super) bs: usize,
    pub(super) copy_blocks: usize,
    pub(crate) disk: KVVec<u8>,
    /// Every write and flush, in order: `Some((copy, index, data))` or
    /// `None` for a flush.
    pub(crate) log: KVVec<Option<(usize, u32, KVVec<u8>)>>,
    pub(crate) fail_copy: Option<usize>,
    /// Fail every superblock write.
    pub(crate) fail_super: bool,
    /// Fail the flushes from this one on (counted from the setting), after
    /// the writes before them reached the disk.
    fail_flushes_from: Option<usize>,
    flushes: usize,
}

#[cfg(CONFIG_KUNIT)]
impl MemDev {
    pub(crate) fn new(fmt: &Format) -> Self {
        let bs = fmt.block_bytes();
        let copy_blocks = fmt.copy_blocks() as usize;
        Self {
            bs,
            copy_blocks,
            disk: filled(METADATA_COPIES * copy_blocks * bs, 0u8).unwrap(),
            log: KVVec::new(),
            fail_copy: None,
            fail_super: false,
            fail_flushes_from: None,
            flushes: 0,
        }
    }

    /// Fails the flushes from the `n`th from now on (counted from 0), or
    /// none.
    pub(crate) fn fail_flushes(&mut self, n: Option<usize>) {
        self.fail_flushes_from = n;
        self.flushes = 0;
    }

    pub(crate) fn block_mut(&mut self, copy: usize, index: u32) -> &mut [u8] {
        let at = (copy * self.copy_blocks + index as usize) * self.bs;
        &mut self.disk[at..at + self.bs]
    }

    /// Applies log entry `i` to the disk; the first `torn` bytes only
    /// when `torn` is given.
    pub(crate) fn apply(&mut self, entry: &Option<(usize, u32, KVVec<u8>)>, torn: Option<usize>) {
        if let Some((copy, index, data)) = entry {
            let n = torn.unwrap_or(data.len());
            self.block_mut(*copy, *index)[..n].copy_from_slice(&data[..n]);
        }
    }
}

#[cfg(CONFIG_KUNIT)]
impl MetadataDev for MemDev {
    type Error = Error;

    fn read(&mut self, copy: usize, index: u32, out: &mut [u8]) -> Result {
        out.copy_from_slice(self.block_mut(copy, index));
        Ok(())
    }

    fn write(&mut self, copy: usize, index: u32, data: &[u8]) -> Result {
        if self.fail_copy == Some(copy) || (self.fail_super && index == 0) {
            return Err(EIO);
        }
        self.block_mut(copy, index).copy_from_slice(data);
        let mut v = KVVec::with_capacity(data.len(), GFP_KERNEL)?;
        v.extend_from_slice(data, GFP_KERNEL)?;
        self.log.push(Some((copy, index, v)), GFP_KERNEL)?;
        Ok(())
    }

    fn flush(&mut self) -> Result {
        self.flushes += 1;
        if matches!(self.fail_flushes_from, Some(n) if self.flushes > n) {
            return Err(EIO);
        }
        self.log.push(None, GFP_KERNEL)?;
        Ok(())
    }
}
