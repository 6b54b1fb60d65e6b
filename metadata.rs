// SPDX-License-Identifier: GPL-2.0

//! The remap metadata on disk: format, recovery and the commit protocol.
//!
//! The spare area keeps five copies of the metadata at fixed, spread
//! places (see [`MetadataLayout`]). A copy is `copy_blocks` metadata blocks
//! of the remap block size: block 0 is the superblock, then `slot_blocks`
//! blocks of spare slots (one little-endian `u64` per spare block: free, in
//! use for a data block, or retired), then `pending_blocks` blocks of
//! pending-block slots (one per `PENDING_SHARE` spare blocks, rounded up to
//! whole blocks). Every block starts with a 32-byte header carrying
//! the magic, a CRC32C, the format version, the block's kind, index and
//! copy number, and the generation of the commit that last wrote it. The
//! byte-by-byte layout is in `docs/format.md`.
//!
//! A commit of generation `G` writes, copy after copy, the blocks that
//! changed (every block of a copy that missed a write), flushes, and only
//! then writes that copy's superblock with `G`; the next copy's blocks go
//! out together with it. Recovery takes `G*`, the highest generation of an
//! intact superblock, and for each block the intact version with the
//! highest generation not above `G*`. At any instant at most two copies
//! are being written and every other copy holds a complete commit, so a
//! crash or torn write never loses the last acknowledged commit, and a
//! half-written commit is ignored as a whole.
//!
//! The format itself (layout, block codec, CRC32C, recovery and the order
//! of a commit's writes) is the `ondisk` module, which `remapctl` compiles
//! too; this module keeps the metadata in memory and drives the commits.
//! Everything up to the device is pure computation over [`MetadataDev`],
//! so the unit tests run the real recovery and commit code against memory.
//! The code is split by concept: `image.rs` (the metadata in memory),
//! `commit.rs` (one commit's writes), `load.rs` (recovery from the spare
//! area), `writer.rs` (commits on the workqueue and their waiters) and
//! `latency.rs`; `memdev.rs` is the unit tests' device.

use crate::kapi::crc_random::{crc32c, fill_random};
use crate::ondisk::Crc32c;
pub(crate) use crate::ondisk::{
    check_block, BadBlock, Format, FormatError, Identity, MetadataDev, Pending, Slot,
    METADATA_COPIES, UUID_BYTES,
};
use kernel::prelude::*;

mod commit;
mod image;
mod latency;
mod load;
#[cfg(CONFIG_KUNIT)]
mod memdev;
mod writer;

pub(crate) use commit::*;
pub(crate) use image::*;
pub(crate) use latency::*;
pub(crate) use load::*;
#[cfg(CONFIG_KUNIT)]
pub(crate) use memdev::*;
pub(crate) use writer::*;

/// The kernel's CRC32C (hardware-accelerated where the CPU has it), as the
/// on-disk format's checksum. KUnit checks it against the format's own.
pub(crate) struct KernelCrc32c;

impl Crc32c for KernelCrc32c {
    fn update(crc: u32, data: &[u8]) -> u32 {
        crc32c(crc, data)
    }
}

/// The CRC32C of the kernel's format code: the kernel's own.
pub(crate) type Crc = KernelCrc32c;

/// A new random (version 4, RFC 9562) UUID.
pub(crate) fn random_uuid() -> [u8; UUID_BYTES] {
    let mut uuid = [0u8; UUID_BYTES];
    fill_random(&mut uuid);
    uuid[6] = (uuid[6] & 0x0f) | 0x40;
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    uuid
}

#[kunit_tests(dm_remap_metadata)]
mod tests {
    use super::*;
    use crate::ondisk::{Crc32c, LoadError as Refused, SoftCrc32c};

    const TEST_UUID: [u8; UUID_BYTES] = *b"dm-remap-kunit-1";

    /// Loads `dev` as the target does.
    fn load(
        f: &Format,
        dev: &mut impl MetadataDev<Error = Error>,
    ) -> Result<(MetaImage, LoadReport), LoadError> {
        super::load(f, dev)
    }

    #[test]
    fn kernel_crc32c_is_the_format_crc32c() {
        let mut data = KVVec::new();
        let mut x: u32 = 0x1234_5678;
        for _ in 0..5000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            data.push((x >> 16) as u8, GFP_KERNEL).unwrap();
        }
        for len in [0, 1, 7, 8, 9, 63, 512, 4096, 5000] {
            for seed in [0, !0, x] {
                assert_eq!(
                    KernelCrc32c::update(seed, &data[..len]),
                    SoftCrc32c::update(seed, &data[..len])
                );
            }
        }
    }

    fn identity() -> Identity {
        Identity {
            data_offset: 8,
            data_len: 1 << 20,
            spare_offset: 2048,
            // 128 blocks of 512 bytes: 60 words per block, 3 slot blocks,
            // 1 pending block (8 slots), 5 blocks per copy.
            spare_len: 128,
            block_size: 512,
        }
    }

    fn fmt() -> Format {
        Format::new(identity()).unwrap()
    }

    /// A free spare slot outside the metadata copies.
    fn free_spares(fmt: &Format, n: usize) -> KVec<u32> {
        let mut v = KVec::new();
        for s in 0..fmt.nr_spare {
            if v.len() < n && !fmt.layout.is_reserved(s) {
                v.push(s, GFP_KERNEL).unwrap();
            }
        }
        v
    }

    fn commit(image: &mut MetaImage, dev: &mut MemDev) -> CommitOutcome {
        let mut c = image.prepare().unwrap();
        let outcome = c.write(dev);
        image.finish(&c, &outcome);
        outcome
    }

    fn same_words(a: &MetaImage, b: &MetaImage) -> bool {
        a.words.iter().eq(b.words.iter())
    }

    /// A formatted device, then a commit remapping five blocks, then one
    /// remapping two more and retiring one; returns (dev, state 1 words,
    /// final image).
    fn two_commits() -> (MemDev, MetaImage, MetaImage) {
        let f = fmt();
        let mut dev = MemDev::new(&f);
        let mut image = MetaImage::blank(&f, TEST_UUID).unwrap();
        assert!(commit(&mut image, &mut dev).succeeded());
        let spares = free_spares(&f, 8);
        for (i, &s) in spares.iter().take(5).enumerate() {
            image.set_slot(
                s,
                Slot::InUse {
                    block: 100 + i as u64,
                    lost: i == 2,
                },
            );
        }
        assert!(commit(&mut image, &mut dev).succeeded());
        let (first, _) = load(&f, &mut dev).unwrap();
        image.set_slot(
            spares[5],
            Slot::InUse {
                block: 7,
                lost: false,
            },
        );
        image.set_slot(spares[6], Slot::Retired);
        // A pending block in the second pending block's words.
        image.set_pending(
            7,
            Some(Pending {
                block: 4242,
                lost: true,
            }),
        );
        assert!(commit(&mut image, &mut dev).succeeded());
        (dev, first, image)
    }

    /// Prints the CPU cost of a commit of one changed spare slot, written
    /// to memory (the device's share is in `scripts/bench-metadata.sh`).
    /// Printed, never asserted.
    // Timing with lockdep and kmemleak on says nothing: the bench kernel
    // runs it (its log is in results/kernel-bench-*.log).
    #[cfg(not(CONFIG_PROVE_LOCKING))]
    #[test]
    fn commit_cost() {
        use kernel::time::{Instant, Monotonic};
        let f = fmt();
        let mut dev = MemDev::new(&f);
        let mut image = MetaImage::blank(&f, TEST_UUID).unwrap();
        assert!(commit(&mut image, &mut dev).succeeded());
        let spare = free_spares(&f, 1)[0];
        let rounds = 1000u64;
        let start = Instant::<Monotonic>::now();
        for i in 0..rounds {
            image.set_slot(
                spare,
                Slot::InUse {
                    block: i,
                    lost: false,
                },
            );
            assert!(commit(&mut image, &mut dev).succeeded());
        }
        pr_info!(
            "dm_remap_metadata: commit of one changed slot to memory: {} ns each ({} commits, 2 blocks in each of 5 copies)\n",
            start.elapsed().as_nanos() / rounds as i64,
            rounds
        );
    }

    #[test]
    fn latency_histogram_percentiles() {
        let mut h = LatencyHistogram::new();
        assert_eq!(h.percentile(500), 0);
        for us in 1..=1000u64 {
            h.record(us);
        }
        // Upper bounds within 1/8 of the exact percentiles.
        let p50 = h.percentile(500);
        assert!((500..=500 + 500 / 8).contains(&p50));
        let p99 = h.percentile(990);
        assert!((990..=1000).contains(&p99));
        assert_eq!(h.percentile(1000), 1000);
        assert_eq!(h.max(), 1000);
        for us in [0u64, 7, 8, 9, 15, 16, 100, 12345, 1 << 30] {
            let b = LatencyHistogram::bucket(us);
            if us < 1 << 26 {
                assert!(LatencyHistogram::bucket_high(b) >= us);
                assert!(LatencyHistogram::bucket_high(b) <= us + us / 8);
            } else {
                assert_eq!(b, LATENCY_BUCKETS - 1);
            }
        }
    }

    #[test]
    fn slot_words_round_trip() {
        for slot in [
            Slot::Free,
            Slot::Retired,
            Slot::InUse {
                block: 0,
                lost: false,
            },
            Slot::InUse {
                block: Slot::MAX_BLOCK,
                lost: true,
            },
        ] {
            assert_eq!(Slot::decode(slot.encode()), Some(slot));
        }
        assert_eq!(Slot::decode(5), None);
        // Retired (state 3) with a block number: no writer makes it.
        assert_eq!(Slot::decode((3 << 62) | 1), None);
    }

    #[test]
    fn format_sizes() {
        let f = fmt();
        assert_eq!(f.words_per_block, 60);
        assert_eq!(f.slot_blocks, 3);
        assert_eq!(f.pending_blocks, 1);
        assert_eq!(f.copy_blocks(), 5);
        let mut id = identity();
        id.block_size = 4096;
        id.spare_len = 256 * 8;
        let f = Format::new(id).unwrap();
        assert_eq!((f.words_per_block, f.copy_blocks()), (508, 3));
        id.spare_len = 8 * 8;
        assert_eq!(Format::new(id), Err(FormatError::TooSmall));
        id.block_size = 1000;
        assert_eq!(Format::new(id), Err(FormatError::BadBlockSize));
        id.block_size = 512;
        id.spare_len = 1 << 31;
        assert_eq!(Format::new(id), Err(FormatError::TooManyBlocks));
    }

    #[test]
    fn encode_decode_round_trip() {
        let f = fmt();
        let (mut dev, _, image) = two_commits();
        let (loaded, report) = load(&f, &mut dev).unwrap();
        assert!(!report.blank);
        assert_eq!(report.intact_copies(), 5);
        assert_eq!(report.generation, image.committed());
        assert!(same_words(&loaded, &image));
        assert_eq!(loaded.intact_copies(), 5);
        assert!(loaded.next_generation() > image.committed());
        let spares = free_spares(&f, 8);
        assert_eq!(
            loaded.slot(spares[2]),
            Some(Slot::InUse {
                block: 102,
                lost: true
            })
        );
        assert_eq!(loaded.slot(spares[6]), Some(Slot::Retired));
        assert_eq!(
            loaded.pending(7),
            Some(Some(Pending {
                block: 4242,
                lost: true
            }))
        );
        assert_eq!(loaded.pending(0), Some(None));
        assert!(f.pending_slots() >= f.nr_spare / crate::ondisk::PENDING_SHARE);
    }

    #[test]
    fn blank_area_loads_as_blank() {
        let f = fmt();
        let mut dev = MemDev::new(&f);
        let (image, report) = load(&f, &mut dev).unwrap();
        assert!(report.blank);
        assert_eq!(image.intact_copies(), 0);
        assert!(image.needs_commit());
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let f = fmt();
        let (mut dev, _, _) = two_commits();
        for index in [0u32, 1, 4] {
            let mut block = KVVec::new();
            block
                .extend_from_slice(dev.block_mut(2, index), GFP_KERNEL)
                .unwrap();
            assert!(check_block::<Crc>(&f, 2, index, &block).is_ok());
            for bit in 0..block.len() * 8 {
                block[bit / 8] ^= 1 << (bit % 8);
                assert!(check_block::<Crc>(&f, 2, index, &block).is_err());
                block[bit / 8] ^= 1 << (bit % 8);
            }
            // A block in the wrong place is refused too.
            assert_eq!(
                check_block::<Crc>(&f, 3, index, &block),
                Err(BadBlock::Misplaced)
            );
        }
    }

    /// Damages copies in `mask`: garbage in a superblock and an entry
    /// block, or the blocks of an older commit when `older` is given.
    fn damage(dev: &mut MemDev, mask: u32, older: Option<&MemDev>) {
        for copy in 0..METADATA_COPIES {
            if mask & (1 << copy) == 0 {
                continue;
            }
            match older {
                Some(old) => {
                    let (n, bs) = (dev.copy_blocks, dev.bs);
                    for index in 0..n {
                        let at = (copy * n + index) * bs;
                        let src = &old.disk[at..at + bs];
                        dev.disk[at..at + bs].copy_from_slice(src);
                    }
                }
                None => {
                    dev.block_mut(copy, 0)[100] ^= 0x5a;
                    dev.block_mut(copy, 1)[40..48].fill(0xff);
                }
            }
        }
    }

    #[test]
    fn recovery_for_every_subset_of_damaged_copies() {
        let f = fmt();
        let (dev, first, image) = two_commits();
        // The disk as it was after the first commit with remaps.
        let mut old = MemDev::new(&f);
        let mut staged = MetaImage::blank(&f, TEST_UUID).unwrap();
        commit(&mut staged, &mut old);
        for s in 0..f.nr_spare as usize {
            // Only the words that differ, so that each block keeps the
            // generation it has on the other disk.
            if staged.word(s) != first.word(s) {
                staged.set_word(s, first.word(s));
            }
        }
        commit(&mut staged, &mut old);
        for mask in 1u32..32 {
            let mut d = MemDev::new(&f);
            d.disk.clear();
            d.disk.extend_from_slice(&dev.disk, GFP_KERNEL).unwrap();
            damage(&mut d, mask, None);
            match load(&f, &mut d) {
                Ok((loaded, report)) => {
                    assert!(mask != 31);
                    assert!(same_words(&loaded, &image));
                    assert_eq!(report.intact_copies(), 5 - mask.count_ones() as usize);
                    // The first commit after the load makes every copy whole.
                    let mut loaded = loaded;
                    assert!(commit(&mut loaded, &mut d).succeeded());
                    let (again, report) = load(&f, &mut d).unwrap();
                    assert_eq!(report.intact_copies(), 5);
                    // A repair writes the last commit again, under its
                    // own generation.
                    assert_eq!(report.generation, image.committed());
                    assert!(same_words(&again, &image));
                }
                Err(e) => {
                    assert_eq!(mask, 31);
                    assert_eq!(e, LoadError::Format(Refused::NoIntactCopy));
                }
            }
            // Stale but intact copies: the newest commit still wins.
            let mut d = MemDev::new(&f);
            d.disk.clear();
            d.disk.extend_from_slice(&dev.disk, GFP_KERNEL).unwrap();
            damage(&mut d, mask, Some(&old));
            let (loaded, report) = load(&f, &mut d).unwrap();
            let want = if mask == 31 { &first } else { &image };
            assert!(same_words(&loaded, want));
            if mask != 31 {
                assert_eq!(report.intact_copies(), 5 - mask.count_ones() as usize);
            }
        }
    }

    #[test]
    fn identity_mismatch_refused() {
        let (mut dev, _, _) = two_commits();
        let mut id = identity();
        id.data_len += 8;
        let other = Format::new(id).unwrap();
        assert_eq!(
            load(&other, &mut dev).err(),
            Some(LoadError::Format(Refused::Mismatch(identity())))
        );
        let mut id = identity();
        id.spare_offset = 0;
        let other = Format::new(id).unwrap();
        assert!(matches!(
            load(&other, &mut dev),
            Err(LoadError::Format(Refused::Mismatch(_)))
        ));
    }

    #[test]
    fn every_crash_point_recovers_old_or_new_state() {
        let f = fmt();
        let (dev, _, before) = two_commits();
        let mut dev = dev;
        dev.log.clear();
        let base = {
            let mut v = KVVec::new();
            v.extend_from_slice(&dev.disk, GFP_KERNEL).unwrap();
            v
        };
        let (mut image, _) = load(&f, &mut dev).unwrap();
        let spares = free_spares(&f, 12);
        for (i, &s) in spares.iter().skip(8).enumerate() {
            image.set_slot(
                s,
                Slot::InUse {
                    block: 500 + i as u64,
                    lost: false,
                },
            );
        }
        // A block in the last slot block changes too.
        image.set_slot(f.nr_spare - 40, Slot::Retired);
        let mut c = image.prepare().unwrap();
        assert_eq!(c.blocks(), 3);
        assert!(c.write(&mut dev).succeeded());
        let log = core::mem::take(&mut dev.log);
        let mut checked = 0;
        for end in 0..=log.len() {
            for torn in [None, Some(100)] {
                if torn.is_some() && (end == log.len() || log[end].is_none()) {
                    continue;
                }
                let mut d = MemDev::new(&f);
                d.disk.clear();
                d.disk.extend_from_slice(&base, GFP_KERNEL).unwrap();
                for entry in log.iter().take(end) {
                    d.apply(entry, None);
                }
                if let Some(n) = torn {
                    d.apply(&log[end], Some(n));
                }
                let (loaded, _) = load(&f, &mut d).unwrap();
                assert!(same_words(&loaded, &before) || same_words(&loaded, &image));
                if end == log.len() {
                    assert!(same_words(&loaded, &image));
                }
                checked += 1;
            }
        }
        assert!(checked > 20);
    }

    #[test]
    fn failed_commit_with_a_superblock_written_may_load() {
        let f = fmt();
        let (mut dev, _, before) = two_commits();
        let (mut image, _) = load(&f, &mut dev).unwrap();
        image.set_slot(
            free_spares(&f, 10)[9],
            Slot::InUse {
                block: 77,
                lost: false,
            },
        );
        // The first copy's blocks are flushed; the flush after its
        // superblock fails, and so does every later one.
        dev.fail_flushes(Some(1));
        let outcome = commit(&mut image, &mut dev);
        assert!(!outcome.succeeded());
        assert!(outcome.superblock_issued);
        dev.fail_flushes(None);
        // Reported failed, yet a load finds it: the target must treat such
        // a commit as maybe on disk.
        let (loaded, _) = load(&f, &mut dev).unwrap();
        assert!(same_words(&loaded, &image));
        assert!(!same_words(&loaded, &before));
    }

    #[test]
    fn failed_commit_without_a_superblock_never_loads() {
        let f = fmt();
        let (mut dev, _, before) = two_commits();
        let (mut image, _) = load(&f, &mut dev).unwrap();
        image.set_slot(free_spares(&f, 10)[9], Slot::Retired);
        dev.fail_flushes(Some(0));
        let outcome = commit(&mut image, &mut dev);
        assert!(!outcome.succeeded());
        assert!(!outcome.superblock_issued);
        dev.fail_flushes(None);
        let (loaded, _) = load(&f, &mut dev).unwrap();
        assert!(same_words(&loaded, &before));
    }

    #[test]
    fn commit_failing_everywhere_keeps_the_previous_state() {
        let f = fmt();
        let (mut dev, _, before) = two_commits();
        let (mut image, _) = load(&f, &mut dev).unwrap();
        image.set_slot(free_spares(&f, 10)[9], Slot::Retired);
        dev.fail_super = true;
        let logged = dev.log.len();
        let outcome = commit(&mut image, &mut dev);
        assert!(!outcome.succeeded());
        assert_eq!(outcome.error, Some(EIO));
        dev.fail_super = false;
        // It stopped before the last copy: exactly one copy saw no write.
        let mut touched = [false; METADATA_COPIES];
        for (copy, _, _) in dev.log[logged..].iter().flatten() {
            touched[*copy] = true;
        }
        assert_eq!(touched.iter().filter(|&&t| !t).count(), 1);
        // That copy holds the last commit, which loads.
        let (loaded, _) = load(&f, &mut dev).unwrap();
        assert!(same_words(&loaded, &before));
    }

    /// A commit that failed on every superblock leaves its block in the
    /// copies it reached, above their superblocks (the load ignores it).
    /// The first commit after a load rewrites that block; when its write
    /// is lost on one copy and a later commit changes another block, that
    /// copy's superblock rises over the abandoned version. Loading must
    /// still not take it: the first commit writes the block at a
    /// generation above the abandoned one in every copy.
    #[test]
    fn an_abandoned_block_whose_rewrite_is_lost_is_not_taken() {
        let f = fmt();
        let pending_block = f.block_of_word(f.pending_base());
        let mut shapes = 0;
        for lost_copy in 0..METADATA_COPIES {
            let (mut dev, _, before) = two_commits();
            let (mut image, _) = load(&f, &mut dev).unwrap();
            image.set_pending(
                0,
                Some(Pending {
                    block: 999,
                    lost: false,
                }),
            );
            dev.fail_super = true;
            assert!(!commit(&mut image, &mut dev).succeeded());
            dev.fail_super = false;
            // The reload: four copies hold the abandoned version.
            let (mut image, report) = load(&f, &mut dev).unwrap();
            assert!(same_words(&image, &before));
            let mut abandoned = KVVec::new();
            abandoned
                .extend_from_slice(dev.block_mut(lost_copy, pending_block), GFP_KERNEL)
                .unwrap();
            // The copy the failed commit did not reach holds no abandoned
            // version: nothing to lose there.
            let generation =
                crate::ondisk::check_block::<Crc>(&f, lost_copy, pending_block, &abandoned);
            if !matches!(generation, Ok(g) if g > report.generation) {
                continue;
            }
            shapes += 1;
            assert!(commit(&mut image, &mut dev).succeeded());
            // That commit's write of the block to `lost_copy` is lost.
            dev.block_mut(lost_copy, pending_block)
                .copy_from_slice(&abandoned);
            image.set_slot(free_spares(&f, 10)[9], Slot::Retired);
            assert!(commit(&mut image, &mut dev).succeeded());
            let (loaded, _) = load(&f, &mut dev).unwrap();
            let taken_right = same_words(&loaded, &image);
            if !taken_right {
                pr_err!(
                    "copy {} lost the rewrite: the abandoned version was taken\n",
                    lost_copy
                );
            }
            assert!(taken_right);
        }
        assert_eq!(shapes, METADATA_COPIES - 1);
    }

    #[test]
    fn failed_copy_is_rewritten_by_next_commit() {
        let f = fmt();
        let (mut dev, _, mut image) = two_commits();
        dev.fail_copy = Some(3);
        image.set_slot(free_spares(&f, 10)[9], Slot::Retired);
        let outcome = commit(&mut image, &mut dev);
        assert!(outcome.succeeded());
        assert_eq!(outcome.written, [true, true, true, false, true]);
        assert_eq!(outcome.error, Some(EIO));
        assert_eq!(image.intact_copies(), 4);
        dev.fail_copy = None;
        assert!(image.needs_commit());
        assert!(commit(&mut image, &mut dev).succeeded());
        let (loaded, report) = load(&f, &mut dev).unwrap();
        assert_eq!(report.intact_copies(), 5);
        assert!(same_words(&loaded, &image));
    }
}
