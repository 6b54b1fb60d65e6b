// SPDX-License-Identifier: GPL-2.0

//! A page of `list`: the table entries with the smallest blocks from a
//! starting block on, gathered in one pass over the table into room for one
//! page, so that a page costs memory for its own lines, not a copy of the
//! whole table.

use kernel::{alloc::AllocError, prelude::*};

/// The `cap` entries with the smallest blocks among those offered.
///
/// # Invariants
///
/// `v` holds at most `cap` entries, has room for `cap`, and is a max-heap
/// by block: no entry's block is above its parent's.
pub(crate) struct FirstBlocks {
    v: KVVec<(u64, u32)>,
    cap: usize,
}

impl FirstBlocks {
    /// Room for `cap` entries; allocate under a NOIO scope where bios wait.
    pub(crate) fn new(cap: usize) -> Result<Self, AllocError> {
        Ok(Self {
            v: KVVec::with_capacity(cap, GFP_KERNEL)?,
            cap,
        })
    }

    /// Keeps `(block, value)` if it is among the `cap` smallest blocks
    /// offered so far.
    pub(crate) fn offer(&mut self, block: u64, value: u32) {
        if self.v.len() < self.cap {
            // Room for `cap` was reserved: this cannot fail.
            if self.v.push_within_capacity((block, value)).is_ok() {
                let last = self.v.len() - 1;
                sift_up(&mut self.v, last);
            }
        } else if self.v.first().is_some_and(|top| block < top.0) {
            self.v[0] = (block, value);
            let n = self.v.len();
            sift_down(&mut self.v, 0, n);
        }
    }

    /// The entries kept, by block.
    pub(crate) fn into_sorted(mut self) -> KVVec<(u64, u32)> {
        // A heap sort of the heap already built: O(n log n), no recursion
        // and no allocation (core's sort carries panic paths that objtool
        // flags in a module).
        for end in (1..self.v.len()).rev() {
            self.v.swap(0, end);
            sift_down(&mut self.v, 0, end);
        }
        self.v
    }
}

fn sift_up(v: &mut [(u64, u32)], mut i: usize) {
    while i > 0 {
        let parent = (i - 1) / 2;
        if v[parent].0 >= v[i].0 {
            return;
        }
        v.swap(parent, i);
        i = parent;
    }
}

fn sift_down(v: &mut [(u64, u32)], mut root: usize, end: usize) {
    loop {
        let mut child = 2 * root + 1;
        if child >= end {
            return;
        }
        if child + 1 < end && v[child + 1].0 > v[child].0 {
            child += 1;
        }
        if v[root].0 >= v[child].0 {
            return;
        }
        v.swap(root, child);
        root = child;
    }
}

#[kunit_tests(dm_remap_first_blocks)]
mod tests {
    use super::*;

    fn first(cap: usize, blocks: impl Iterator<Item = u64>) -> KVVec<(u64, u32)> {
        let mut f = FirstBlocks::new(cap).unwrap();
        for b in blocks {
            f.offer(b, b as u32 ^ 0x55);
        }
        f.into_sorted()
    }

    #[test]
    fn keeps_the_smallest_blocks_in_order() {
        // 1000 blocks in a scrambled order.
        let scrambled = || (0..1000u64).map(|i| (i * 7919) % 1000);
        for cap in [0usize, 1, 2, 7, 999, 1000, 1500] {
            let v = first(cap, scrambled());
            assert_eq!(v.len(), cap.min(1000));
            for (i, e) in v.iter().enumerate() {
                assert_eq!(*e, (i as u64, (i as u32) ^ 0x55));
            }
        }
    }

    #[test]
    fn duplicates_and_descending_input() {
        let v = first(3, [9u64, 9, 8, 1, 1, 0].into_iter());
        let blocks: KVec<u64> = {
            let mut k = KVec::new();
            for e in v.iter() {
                k.push(e.0, GFP_KERNEL).unwrap();
            }
            k
        };
        assert_eq!(&blocks[..], &[0, 1, 1]);
    }
}
