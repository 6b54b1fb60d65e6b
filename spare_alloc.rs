// SPDX-License-Identifier: GPL-2.0

//! The spare block allocator.
//!
//! The spare area is divided into `nr_blocks` blocks of the remap block
//! size. Five runs of `copy_blocks` blocks, spread evenly over the area (the
//! first at its start, the last at its end), are reserved for the five
//! metadata copies and are never handed out. Every other block is free,
//! in use, or retired (failed once, never used again).
//!
//! The size of a copy is the metadata format's business (`metadata.rs`).
//!
//! Allocation and release are O(1): free blocks sit on a stack (4 bytes per
//! spare block), and a bitmap (1 bit per block) tells which blocks are out
//! of the free stack so that a double release or the release of a reserved
//! block is refused. The allocator is rebuilt from the list of blocks in
//! use, which is what the metadata records.

use crate::kapi::warn::warn_on;
use kernel::{alloc::AllocError, prelude::*};

pub(crate) use crate::ondisk::{MetadataLayout, METADATA_COPIES};

/// Why an allocator operation was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum SpareError {
    /// The block number is not inside the spare area.
    OutOfRange,
    /// The block holds a metadata copy.
    Reserved,
    /// The block is not in use (a double release).
    NotInUse,
    /// The block is listed twice in a rebuild.
    Duplicate,
    /// Memory for the allocator could not be had.
    NoMemory,
}

impl From<AllocError> for SpareError {
    fn from(_: AllocError) -> Self {
        SpareError::NoMemory
    }
}

/// A fixed-size bitmap with O(1) tests.
struct BlockBits {
    words: KVVec<u64>,
}

impl BlockBits {
    fn new(nr_bits: u32) -> Result<Self, AllocError> {
        let n = (nr_bits as usize).div_ceil(64);
        Ok(Self {
            words: KVVec::from_elem(0, n, GFP_KERNEL)?,
        })
    }

    fn test(&self, bit: u32) -> bool {
        self.words[bit as usize / 64] & (1 << (bit % 64)) != 0
    }

    fn set(&mut self, bit: u32) {
        self.words[bit as usize / 64] |= 1 << (bit % 64);
    }

    fn clear(&mut self, bit: u32) {
        self.words[bit as usize / 64] &= !(1 << (bit % 64));
    }
}

/// The allocator of one spare area. Callers serialise access (it is used
/// from process context under the target's mutex).
///
/// # Invariants
///
/// Every block `b < nr_blocks` is in exactly one of: the metadata layout,
/// the `free` stack (and then its `taken` bit is clear), or taken (its
/// `taken` bit set: in use or retired). `in_use + retired` counts the taken
/// blocks that are not reserved.
pub(crate) struct SpareAllocator {
    layout: MetadataLayout,
    nr_blocks: u32,
    taken: BlockBits,
    retired: BlockBits,
    free: KVVec<u32>,
    in_use: u32,
    nr_retired: u32,
}

impl SpareAllocator {
    /// An allocator for `nr_blocks` spare blocks with the given metadata
    /// layout, rebuilt from the blocks in use and the retired blocks that
    /// the metadata records.
    pub(crate) fn rebuild(
        nr_blocks: u32,
        layout: MetadataLayout,
        in_use: &[u32],
        retired: &[u32],
    ) -> Result<Self, SpareError> {
        let mut taken = BlockBits::new(nr_blocks)?;
        let mut retired_bits = BlockBits::new(nr_blocks)?;
        // The metadata blocks first: a used block already taken is one of
        // them or listed twice, told apart only then (loading a million
        // used blocks checks one bit each).
        for s in layout.starts {
            for b in s..s + layout.copy_blocks {
                taken.set(b);
            }
        }
        for &b in Iterator::chain(in_use.iter(), retired) {
            if b >= nr_blocks {
                return Err(SpareError::OutOfRange);
            }
            if taken.test(b) {
                return Err(if layout.is_reserved(b) {
                    SpareError::Reserved
                } else {
                    SpareError::Duplicate
                });
            }
            taken.set(b);
        }
        for &b in retired {
            retired_bits.set(b);
        }
        // Room for every block that can be free: the ones in use now are
        // released into it later without allocating.
        let room =
            nr_blocks as usize - METADATA_COPIES * layout.copy_blocks as usize - retired.len();
        let mut free = KVVec::with_capacity(room, GFP_KERNEL)?;
        // Pushed from the top down so that allocation starts at the lowest
        // free block; a word of 64 taken blocks is passed over at once.
        for (w, &word) in taken.words.iter().enumerate().rev() {
            if word == u64::MAX {
                continue;
            }
            let base = w as u32 * 64;
            for bit in (0..64).rev() {
                let b = base + bit;
                if b < nr_blocks && word & (1 << bit) == 0 {
                    free.push(b, GFP_KERNEL)?;
                }
            }
        }
        Ok(Self {
            layout,
            nr_blocks,
            taken,
            retired: retired_bits,
            free,
            in_use: in_use.len() as u32,
            nr_retired: retired.len() as u32,
        })
    }

    /// An allocator with every spare block free.
    pub(crate) fn new(nr_blocks: u32, layout: MetadataLayout) -> Result<Self, SpareError> {
        Self::rebuild(nr_blocks, layout, &[], &[])
    }

    /// Takes a free spare block, or `None` when all are used.
    pub(crate) fn alloc(&mut self) -> Option<u32> {
        let b = self.free.pop()?;
        self.taken.set(b);
        self.in_use += 1;
        Some(b)
    }

    fn check_in_use(&self, b: u32) -> Result<(), SpareError> {
        if b >= self.nr_blocks {
            Err(SpareError::OutOfRange)
        } else if self.layout.is_reserved(b) {
            Err(SpareError::Reserved)
        } else if !self.taken.test(b) || self.retired.test(b) {
            Err(SpareError::NotInUse)
        } else {
            Ok(())
        }
    }

    /// Returns a block in use to the free blocks.
    pub(crate) fn release(&mut self, b: u32) -> Result<(), SpareError> {
        self.check_in_use(b)?;
        // The stack has room for every non-reserved block, so this does not
        // allocate.
        self.free
            .push_within_capacity(b)
            .map_err(|_| SpareError::NoMemory)?;
        self.taken.clear(b);
        self.in_use -= 1;
        Ok(())
    }

    /// Takes a block in use out of service for good: it failed.
    pub(crate) fn retire(&mut self, b: u32) -> Result<(), SpareError> {
        self.check_in_use(b)?;
        self.retired.set(b);
        self.in_use -= 1;
        self.nr_retired += 1;
        Ok(())
    }

    /// Releases a block the caller knows to be in use (an entry or a switch
    /// held it until now): that cannot fail while the allocator's
    /// bookkeeping is right, and a failure, which would say it is not, is
    /// warned about.
    pub(crate) fn release_held(&mut self, b: u32) {
        warn_on(self.release(b).is_err());
    }

    /// Retires a block the caller knows to be in use, as
    /// [`Self::release_held`] releases one.
    pub(crate) fn retire_held(&mut self, b: u32) {
        warn_on(self.retire(b).is_err());
    }

    /// The metadata layout.
    pub(crate) fn layout(&self) -> &MetadataLayout {
        &self.layout
    }

    /// Spare blocks that can hold data: all but the metadata copies.
    pub(crate) fn capacity(&self) -> u32 {
        self.nr_blocks - METADATA_COPIES as u32 * self.layout.copy_blocks
    }

    /// Spare blocks in use.
    pub(crate) fn in_use(&self) -> u32 {
        self.in_use
    }

    /// Spare blocks retired after a failure.
    pub(crate) fn retired(&self) -> u32 {
        self.nr_retired
    }

    /// Spare blocks free.
    pub(crate) fn free(&self) -> u32 {
        self.free.len() as u32
    }

    /// Bytes of memory the allocator holds: the free stack (room for every
    /// spare block) and two bitmaps.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.free.capacity() * 4 + (self.taken.words.len() + self.retired.words.len()) * 8
    }
}

#[kunit_tests(dm_remap_spare_alloc)]
mod tests {
    use super::*;
    #[cfg(not(CONFIG_PROVE_LOCKING))]
    use kernel::time::{Instant, Monotonic};

    /// Prints ns per allocation and per release over 1M spare blocks, and
    /// the allocator's bytes per spare block. Printed, never asserted.
    // Timing with lockdep and kmemleak on says nothing: the bench kernel
    // runs it (its log is in results/kernel-bench-*.log).
    #[cfg(not(CONFIG_PROVE_LOCKING))]
    #[test]
    fn alloc_release_cost() {
        let n = 1u32 << 20;
        let mut a = SpareAllocator::new(n, layout(n, 64)).unwrap();
        let mut taken = KVVec::with_capacity(n as usize, GFP_KERNEL).unwrap();
        let start = Instant::<Monotonic>::now();
        while let Some(b) = a.alloc() {
            // `taken` has room for every block.
            warn_on(taken.push_within_capacity(b).is_err());
        }
        let alloc_ns = start.elapsed().as_nanos();
        let start = Instant::<Monotonic>::now();
        for &b in taken.iter() {
            a.release(b).unwrap();
        }
        let release_ns = start.elapsed().as_nanos();
        let count = taken.len() as i64;
        pr_info!(
            "dm_remap_spare_alloc: {} spare blocks: {} ns per allocation, {} ns per release, {} bytes per spare block\n",
            count,
            alloc_ns / count,
            release_ns / count,
            a.memory_bytes() / n as usize
        );
        assert_eq!(a.free(), a.capacity());
    }

    fn layout(nr: u32, copy: u32) -> MetadataLayout {
        MetadataLayout::new(nr, copy).unwrap()
    }

    #[test]
    fn layout_spreads_copies() {
        let l = layout(1000, 10);
        assert_eq!(l.starts, [0, 247, 495, 742, 990]);
        assert!(l.is_reserved(0) && l.is_reserved(9) && !l.is_reserved(10));
        assert!(l.is_reserved(990) && l.is_reserved(999) && !l.is_reserved(989));
        // The smallest area: five copies and one spare.
        let l = layout(6, 1);
        assert_eq!(l.starts, [0, 1, 2, 3, 5]);
        assert_eq!(
            MetadataLayout::new(5, 1),
            Err(crate::ondisk::FormatError::TooSmall)
        );
        assert_eq!(
            MetadataLayout::new(100, 20),
            Err(crate::ondisk::FormatError::TooSmall)
        );
        assert_eq!(
            MetadataLayout::new(100, 0),
            Err(crate::ondisk::FormatError::TooSmall)
        );
    }

    #[test]
    fn allocates_every_free_block_once_then_runs_out() {
        let mut a = SpareAllocator::new(64, layout(64, 2)).unwrap();
        assert_eq!(a.capacity(), 54);
        let mut seen = BlockBits::new(64).unwrap();
        for _ in 0..54 {
            let b = a.alloc().unwrap();
            assert!(!a.layout().is_reserved(b));
            assert!(!seen.test(b));
            seen.set(b);
        }
        assert_eq!(a.alloc(), None);
        assert_eq!((a.in_use(), a.free()), (54, 0));
    }

    #[test]
    fn release_and_reuse() {
        let mut a = SpareAllocator::new(16, layout(16, 1)).unwrap();
        let first = a.alloc().unwrap();
        assert_eq!(first, 1);
        let second = a.alloc().unwrap();
        assert_eq!(a.release(first), Ok(()));
        assert_eq!(a.alloc(), Some(first));
        assert_eq!(a.release(second), Ok(()));
        assert_eq!(a.in_use(), 1);
    }

    #[test]
    fn refuses_bad_releases() {
        let mut a = SpareAllocator::new(16, layout(16, 1)).unwrap();
        let b = a.alloc().unwrap();
        assert_eq!(a.release(b), Ok(()));
        assert_eq!(a.release(b), Err(SpareError::NotInUse));
        assert_eq!(a.release(0), Err(SpareError::Reserved));
        assert_eq!(a.release(15), Err(SpareError::Reserved));
        assert_eq!(a.release(16), Err(SpareError::OutOfRange));
        assert_eq!(a.release(8), Err(SpareError::NotInUse));
        assert_eq!(a.free(), 11);
    }

    #[test]
    fn retired_blocks_never_return() {
        let mut a = SpareAllocator::new(8, layout(8, 1)).unwrap();
        // 8 blocks, copies at 0, 1, 3, 5, 7: spares 2, 4, 6.
        assert_eq!(a.capacity(), 3);
        let b = a.alloc().unwrap();
        assert_eq!(a.retire(b), Ok(()));
        assert_eq!(a.release(b), Err(SpareError::NotInUse));
        assert_eq!(a.retire(b), Err(SpareError::NotInUse));
        assert_eq!(a.retired(), 1);
        let mut left = 0;
        while let Some(x) = a.alloc() {
            assert!(x != b);
            left += 1;
        }
        assert_eq!(left, 2);
    }

    #[test]
    fn blocks_in_use_at_rebuild_can_be_released() {
        let l = layout(32, 2);
        let mut a = SpareAllocator::rebuild(32, l, &[3, 20, 2], &[4]).unwrap();
        let free = a.free();
        for b in [3, 20, 2] {
            assert_eq!(a.release(b), Ok(()));
        }
        assert_eq!((a.in_use(), a.free()), (0, free + 3));
    }

    #[test]
    fn rebuild_from_used_list() {
        let l = layout(32, 2);
        let a = SpareAllocator::rebuild(32, l, &[3, 20, 2], &[4]).unwrap();
        assert_eq!((a.in_use(), a.retired(), a.free()), (3, 1, 18));
        let mut a = a;
        while let Some(b) = a.alloc() {
            assert!(![2, 3, 4, 20].contains(&b));
            assert!(!l.is_reserved(b));
        }
        assert_eq!(a.release(20), Ok(()));
        assert_eq!(a.release(4), Err(SpareError::NotInUse));
    }

    #[test]
    fn rebuild_refuses_bad_lists() {
        let l = layout(32, 2);
        let err =
            |used: &[u32], retired: &[u32]| SpareAllocator::rebuild(32, l, used, retired).err();
        assert_eq!(err(&[0], &[]), Some(SpareError::Reserved));
        assert_eq!(err(&[32], &[]), Some(SpareError::OutOfRange));
        assert_eq!(err(&[5, 5], &[]), Some(SpareError::Duplicate));
        assert_eq!(err(&[5], &[5]), Some(SpareError::Duplicate));
        assert_eq!(err(&[], &[31]), Some(SpareError::Reserved));
    }
}
