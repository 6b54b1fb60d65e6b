// SPDX-License-Identifier: GPL-2.0

//! The recovery cases of the format on the host: every single-bit flip,
//! every subset of damaged copies, every crash point of a commit. The
//! kernel's KUnit suite runs the same code (the module compiles
//! `src/format/`) against its own memory device.

use dm_remap_ondisk::*;

/// The `crc32c` crate as the format's CRC (it keeps the inversions inside).
struct CrateCrc;

impl Crc32c for CrateCrc {
    fn update(crc: u32, data: &[u8]) -> u32 {
        !crc32c::crc32c_append(!crc, data)
    }
}

type C = SoftCrc32c;

const UUID: [u8; UUID_BYTES] = *b"0123456789abcdef";

fn identity() -> Identity {
    // 128 blocks of 512 bytes: 60 words per block, 3 slot blocks, 1
    // pending block, 5 blocks per copy.
    Identity {
        data_offset: 8,
        data_len: 1 << 20,
        spare_offset: 2048,
        spare_len: 128,
        block_size: 512,
    }
}

fn fmt() -> Format {
    Format::new(identity()).unwrap()
}

/// Metadata copies in memory. Writes since the last flush are kept apart
/// (`queued`) so that a test can decide which of them a crash keeps.
#[derive(Clone)]
struct MemDev {
    bs: usize,
    blocks: Vec<Vec<Vec<u8>>>,
    queued: Vec<(usize, u32, Vec<u8>)>,
    /// Every write and flush so far, in order (`None` for a flush).
    log: Vec<Option<(usize, u32, Vec<u8>)>>,
    /// Lend blocks through `peek`, as the kernel's loading window does.
    lend: bool,
    /// Lend each block once only: the second `peek` of it sends the
    /// loader back to `read`.
    lend_once: bool,
    lent: std::collections::HashSet<(usize, u32)>,
}

impl MemDev {
    fn new(f: &Format) -> Self {
        let blank = vec![vec![0u8; f.block_bytes()]; f.copy_blocks() as usize];
        Self {
            bs: f.block_bytes(),
            blocks: vec![blank; METADATA_COPIES],
            queued: Vec::new(),
            log: Vec::new(),
            lend: false,
            lend_once: false,
            lent: Default::default(),
        }
    }

    fn apply(&mut self, copy: usize, index: u32, data: &[u8]) {
        self.blocks[copy][index as usize].copy_from_slice(data);
    }
}

impl MetadataDev for MemDev {
    type Error = i32;

    fn read(&mut self, copy: usize, index: u32, out: &mut [u8]) -> Result<(), i32> {
        out.copy_from_slice(&self.blocks[copy][index as usize]);
        Ok(())
    }

    fn peek(&mut self, copy: usize, index: u32) -> Option<&[u8]> {
        if !self.lend || (self.lend_once && !self.lent.insert((copy, index))) {
            return None;
        }
        Some(&self.blocks[copy][index as usize][..])
    }

    fn write(&mut self, copy: usize, index: u32, data: &[u8]) -> Result<(), i32> {
        assert_eq!(data.len(), self.bs);
        self.queued.push((copy, index, data.to_vec()));
        self.log.push(Some((copy, index, data.to_vec())));
        Ok(())
    }

    fn flush(&mut self) -> Result<(), i32> {
        for (copy, index, data) in std::mem::take(&mut self.queued) {
            self.apply(copy, index, &data);
        }
        self.log.push(None);
        Ok(())
    }
}

/// A device whose writes to the copies in the mask fail.
struct Failing(MemDev, u32);

impl MetadataDev for Failing {
    type Error = i32;
    fn read(&mut self, c: usize, i: u32, out: &mut [u8]) -> Result<(), i32> {
        self.0.read(c, i, out)
    }
    fn write(&mut self, c: usize, i: u32, d: &[u8]) -> Result<(), i32> {
        if self.1 & (1 << c) != 0 {
            return Err(-5);
        }
        self.0.write(c, i, d)
    }
    fn flush(&mut self) -> Result<(), i32> {
        self.0.flush()
    }
}

#[derive(Debug, PartialEq)]
struct Image {
    words: Vec<u64>,
    block_gen: Vec<u64>,
    rec: Recovered,
}

/// What recovery reported: (copy, block, what).
type Findings = Vec<(usize, u32, Finding)>;

/// Loads `dev` three times, with blocks read into the buffers, lent by
/// `peek`, and lent once (the loader reads again what it decodes): all
/// must find the same.
fn load(f: &Format, dev: &mut MemDev) -> Result<(Image, Findings), LoadError> {
    let mut lending = dev.clone();
    lending.lend = true;
    let mut lending_once = lending.clone();
    lending_once.lend_once = true;
    let read = load_once(f, dev);
    let lent = load_once(f, &mut lending);
    assert_eq!(read, lent, "loading with lent blocks found otherwise");
    let lent_once = load_once(f, &mut lending_once);
    assert_eq!(
        read, lent_once,
        "loading with blocks lent once found otherwise"
    );
    read
}

/// Loads `dev` once with [`recover`].
fn load_once(f: &Format, dev: &mut MemDev) -> Result<(Image, Findings), LoadError> {
    let mut blocks = vec![0u8; METADATA_COPIES * f.block_bytes()];
    let mut words = vec![0u64; f.words()];
    let mut block_gen = vec![0u64; f.copy_blocks() as usize];
    let mut findings = Vec::new();
    let bufs = LoadBuffers {
        blocks: &mut blocks,
        words: &mut words,
        block_gen: &mut block_gen,
    };
    let rec = recover::<C, _>(f, dev, bufs, |c, i, x| findings.push((c, i, x)))?;
    Ok((
        Image {
            words,
            block_gen,
            rec,
        },
        findings,
    ))
}

/// Writes `words` as a commit of `generation` carrying `indices` (every
/// block when `None`), to the copies not in `skip`, all stale when
/// `stale`.
fn commit(
    f: &Format,
    dev: &mut MemDev,
    generation: u64,
    words: &[u64],
    indices: Option<&[u32]>,
    stale: [bool; METADATA_COPIES],
) -> CommitOutcome<i32> {
    let all: Vec<u32> = (1..f.copy_blocks()).collect();
    let indices = indices.unwrap_or(&all);
    let mut data = vec![0u8; (indices.len() + 1) * f.block_bytes()];
    encode_commit::<C>(
        f,
        &UUID,
        generation,
        words,
        indices,
        |_, _| generation,
        &mut data,
    );
    let dirty = vec![true; indices.len()];
    let blocks = CommitBlocks {
        indices,
        dirty: &dirty,
        data: &mut data,
        stale,
    };
    write_commit::<C, _>(f, blocks, dev, -5)
}

/// Image words with a few spares in use and a pending block.
fn words_a(f: &Format) -> Vec<u64> {
    let mut w = vec![0u64; f.words()];
    let free: Vec<u32> = (0..f.nr_spare)
        .filter(|&s| !f.layout.is_reserved(s))
        .collect();
    w[free[0] as usize] = Slot::InUse {
        block: 7,
        lost: false,
    }
    .encode();
    w[free[1] as usize] = Slot::InUse {
        block: 9,
        lost: true,
    }
    .encode();
    w[free[2] as usize] = Slot::Retired.encode();
    w[f.pending_base()] = Slot::InUse {
        block: 11,
        lost: false,
    }
    .encode();
    w
}

/// The blocks whose words differ between `a` and `b`.
fn changed_blocks(f: &Format, a: &[u64], b: &[u64]) -> Vec<u32> {
    (1..f.copy_blocks())
        .filter(|&i| f.word_range(i).any(|w| a[w] != b[w]))
        .collect()
}

/// `words_a` with one more remap in the second slot block.
fn words_b(f: &Format) -> Vec<u64> {
    let mut w = words_a(f);
    let s = (f.words_per_block + 3..f.nr_spare)
        .find(|&s| !f.layout.is_reserved(s))
        .unwrap();
    w[s as usize] = Slot::InUse {
        block: 100,
        lost: false,
    }
    .encode();
    w
}

fn formatted() -> (Format, MemDev) {
    let f = fmt();
    let mut dev = MemDev::new(&f);
    let out = commit(&f, &mut dev, 1, &words_a(&f), None, [true; 5]);
    assert_eq!(out.written, [true; 5]);
    dev.log.clear();
    (f, dev)
}

#[test]
fn soft_crc32c_is_the_standard_one() {
    // The check value of CRC-32C.
    assert_eq!(!SoftCrc32c::update(!0, b"123456789"), 0xe306_9283);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let data: Vec<u8> = (0..70_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    for len in (0..100).chain([511, 512, 4095, 4096, 65536, 70_000]) {
        for seed in [0, !0, 0x1234_5678] {
            assert_eq!(
                SoftCrc32c::update(seed, &data[..len]),
                CrateCrc::update(seed, &data[..len]),
                "len {len} seed {seed:#x}"
            );
        }
    }
}

#[test]
fn a_whole_commit_loads_back() {
    let (f, mut dev) = formatted();
    let (img, findings) = load(&f, &mut dev).unwrap();
    assert_eq!(img.words, words_a(&f));
    assert!(findings.is_empty());
    assert_eq!(img.rec.generation, 1);
    assert_eq!(img.rec.uuid, UUID);
    assert_eq!(img.rec.intact_copies(), 5);
    assert_eq!(img.rec.next_generation, 2);
    assert!(img.block_gen.iter().all(|&g| g == 1));
}

#[test]
fn a_blank_area_loads_as_blank() {
    let f = fmt();
    let (img, _) = load(&f, &mut MemDev::new(&f)).unwrap();
    assert!(img.rec.blank);
    assert_eq!(img.rec.stale, [true; 5]);
}

#[test]
fn every_single_bit_flip_is_found_and_survived() {
    let (f, dev) = formatted();
    let bits = f.block_bytes() * 8;
    for copy in 0..METADATA_COPIES {
        for index in 0..f.copy_blocks() {
            for bit in 0..bits {
                let mut d = dev.clone();
                d.blocks[copy][index as usize][bit / 8] ^= 1 << (bit % 8);
                let (img, findings) = load(&f, &mut d).unwrap();
                assert_eq!(
                    img.words,
                    words_a(&f),
                    "copy {copy} block {index} bit {bit}"
                );
                assert_eq!(img.rec.intact_copies(), 4);
                assert_eq!(findings.len(), 1);
                let (c, i, what) = findings[0];
                assert_eq!((c, i), (copy, index));
                assert!(matches!(what, Finding::Bad(_)), "{what:?}");
                assert!(img.rec.stale[copy]);
            }
        }
    }
}

#[test]
fn every_subset_of_damaged_copies() {
    let (f, dev) = formatted();
    for index in 0..f.copy_blocks() {
        for mask in 0u32..32 {
            let mut d = dev.clone();
            for copy in 0..METADATA_COPIES {
                if mask & (1 << copy) != 0 {
                    // A byte in the payload: the checksum no longer holds.
                    d.blocks[copy][index as usize][100] ^= 0x5a;
                }
            }
            let result = load(&f, &mut d);
            if mask == 31 {
                let want = if index == 0 {
                    LoadError::NoIntactCopy
                } else {
                    LoadError::BlockLost(index)
                };
                assert_eq!(result.err(), Some(want), "block {index}");
                continue;
            }
            let (img, findings) = result.unwrap();
            assert_eq!(img.words, words_a(&f));
            assert_eq!(img.rec.intact_copies(), 5 - mask.count_ones() as usize);
            assert_eq!(findings.len(), mask.count_ones() as usize);
            for (c, i, what) in findings {
                assert!(mask & (1 << c) != 0 && i == index);
                assert_eq!(what, Finding::Bad(BadBlock::Checksum));
            }
        }
    }
}

#[test]
fn a_block_moved_to_another_place_is_misplaced() {
    let (f, mut dev) = formatted();
    let other = dev.blocks[1][2].clone();
    dev.blocks[1][3] = other;
    let (img, findings) = load(&f, &mut dev).unwrap();
    assert_eq!(img.words, words_a(&f));
    assert_eq!(findings, vec![(1, 3, Finding::Bad(BadBlock::Misplaced))]);
}

#[test]
fn other_geometry_and_version_are_refused() {
    let (f, mut dev) = formatted();
    let mut id = identity();
    id.data_len += 8;
    let other = Format::new(id).unwrap();
    assert_eq!(
        load(&other, &mut dev).err(),
        Some(LoadError::Mismatch(identity()))
    );
    // Version 1 blocks are not read: every copy's superblock is refused.
    for copy in 0..METADATA_COPIES {
        let b = &mut dev.blocks[copy][0];
        b[12] = 1;
        let crc = block_crc::<C>(b);
        b[8..12].copy_from_slice(&crc.to_le_bytes());
    }
    assert_eq!(load(&f, &mut dev).err(), Some(LoadError::NoIntactCopy));
}

#[test]
fn a_slot_no_writer_makes_is_refused() {
    let f = fmt();
    let mut dev = MemDev::new(&f);
    let mut w = words_a(&f);
    // A spare slot of a metadata block in use.
    w[f.layout.starts[2] as usize] = Slot::InUse {
        block: 1,
        lost: false,
    }
    .encode();
    commit(&f, &mut dev, 1, &w, None, [true; 5]);
    assert_eq!(
        load(&f, &mut dev).err(),
        Some(LoadError::BadSlot(f.layout.starts[2]))
    );
    let mut w = words_a(&f);
    w[f.pending_base() + 1] = Slot::Retired.encode();
    commit(&f, &mut dev, 2, &w, None, [true; 5]);
    assert_eq!(load(&f, &mut dev).err(), Some(LoadError::BadPending(1)));
}

/// Every crash point of a commit: after each flush, and within each batch
/// with every subset of its writes reached, and each of them torn. Each
/// state loads as the old commit or as the new one, whole, and as the new
/// one once a superblock of it was flushed.
#[test]
fn every_crash_point_of_a_commit() {
    let (f, base) = formatted();
    let (a, b) = (words_a(&f), words_b(&f));
    let changed = changed_blocks(&f, &a, &b);
    assert_eq!(changed.len(), 1);
    let mut run = base.clone();
    let out = commit(&f, &mut run, 2, &b, Some(&changed), [false; 5]);
    assert_eq!(out.written, [true; 5]);
    // The writes in batches, as the device saw them between flushes.
    let mut batches: Vec<Vec<(usize, u32, Vec<u8>)>> = vec![Vec::new()];
    for e in &run.log {
        match e {
            Some(w) => batches.last_mut().unwrap().push(w.clone()),
            None => batches.push(Vec::new()),
        }
    }
    let mut states = 0;
    let mut durable = base.clone();
    let mut new_is_durable = false;
    for batch in &batches {
        for subset in 0u32..1 << batch.len() {
            for torn in 0..=batch.len() {
                if torn > 0 && subset & (1 << (torn - 1)) == 0 {
                    continue;
                }
                let mut d = durable.clone();
                for (k, (copy, index, data)) in batch.iter().enumerate() {
                    if subset & (1 << k) == 0 {
                        continue;
                    }
                    let mut data = data.clone();
                    if torn == k + 1 {
                        // Half of the block reached the disk.
                        let half = data.len() / 2;
                        data[half..].copy_from_slice(&d.blocks[*copy][*index as usize][half..]);
                    }
                    d.apply(*copy, *index, &data);
                }
                let (img, _) = load(&f, &mut d).unwrap();
                states += 1;
                if new_is_durable {
                    assert_eq!(img.words, b);
                } else {
                    assert!(img.words == a || img.words == b);
                }
                assert!(img.rec.intact_copies() >= 1);
            }
        }
        for (copy, index, data) in batch {
            durable.apply(*copy, *index, data);
            new_is_durable |= *index == 0;
        }
    }
    assert!(states > 30, "only {states} crash states");
    let (img, _) = load(&f, &mut durable).unwrap();
    assert_eq!(img.words, b);
    assert_eq!(img.rec.intact_copies(), 5);
}

/// A commit whose writes fail stops before it could damage the last copy
/// holding the previous commit.
#[test]
fn failing_writes_never_take_the_last_copy() {
    let (f, base) = formatted();
    let b = words_b(&f);
    for failing in 0u32..32 {
        let mut dev = Failing(base.clone(), failing);
        let all: Vec<u32> = (1..f.copy_blocks()).collect();
        let mut data = vec![0u8; (all.len() + 1) * f.block_bytes()];
        encode_commit::<C>(&f, &UUID, 2, &b, &all, |_, _| 2, &mut data);
        let dirty = vec![true; all.len()];
        let c = CommitBlocks {
            indices: &all,
            dirty: &dirty,
            data: &mut data,
            stale: [false; 5],
        };
        let out = write_commit::<C, _>(&f, c, &mut dev, -5);
        let (img, _) = load(&f, &mut dev.0).unwrap();
        if out.succeeded() {
            assert_eq!(img.words, b, "failing {failing:05b}");
        } else {
            assert_eq!(img.words, words_a(&f), "failing {failing:05b}");
        }
        assert!(img.rec.intact_copies() >= 1);
        if failing == 0 {
            assert!(out.succeeded() && out.error.is_none());
        } else {
            assert_eq!(out.error, Some(-5));
        }
    }
}

#[test]
fn the_crate_crc_and_the_soft_crc_seal_the_same_blocks() {
    let f = fmt();
    let mut x = vec![0u8; f.block_bytes()];
    let mut y = vec![0u8; f.block_bytes()];
    encode_super::<SoftCrc32c>(&f, &UUID, 42, &mut x);
    encode_super::<CrateCrc>(&f, &UUID, 42, &mut y);
    assert_eq!(x, y);
    assert_eq!(check_block::<CrateCrc>(&f, 0, 0, &x), Ok(42));
    assert_eq!(superblock_size(&x), Some(512));
    assert_eq!(any_superblock::<C>(&x), Some((identity(), UUID, 42)));
}

#[test]
fn a_generation_no_writer_reaches_is_refused() {
    let (f, mut dev) = formatted();
    let mut data = vec![0u8; f.block_bytes()];
    encode_super::<C>(&f, &UUID, MAX_GENERATION, &mut data);
    set_copy::<C>(&mut data, 2);
    dev.blocks[2][0].copy_from_slice(&data);
    assert_eq!(check_block::<C>(&f, 2, 0, &data), Err(BadBlock::Generation));
    let (img, findings) = load(&f, &mut dev).unwrap();
    assert_eq!(img.rec.generation, 1);
    assert_eq!(findings, vec![(2, 0, Finding::Bad(BadBlock::Generation))]);
    assert_eq!(img.rec.next_generation, 2);
}

/// A disk that acknowledged a write it never made: one copy's write of
/// the changed blocks of commit 2 was lost, and the copy still holds
/// commit 1's versions under a superblock of generation 2 (or a later
/// one). Loading must take the newer version the other copies hold, and
/// name the copy that lacks it, whichever copy lost the write, whether its
/// superblock is the newest, and whether later commits changed other
/// blocks meanwhile.
#[test]
fn a_lost_write_never_reverts_a_commit() {
    let (f, base) = formatted();
    let (a, b) = (words_a(&f), words_b(&f));
    let changed = changed_blocks(&f, &a, &b);
    assert!(!changed.is_empty());
    for lost_copy in 0..METADATA_COPIES {
        for later_commits in 0..3u64 {
            let mut dev = base.clone();
            let out = commit(&f, &mut dev, 2, &b, Some(&changed), [false; 5]);
            assert_eq!(out.written, [true; 5]);
            for &i in &changed {
                dev.blocks[lost_copy][i as usize] = base.blocks[lost_copy][i as usize].clone();
            }
            // Later commits that change nothing but the superblock: the
            // copy's stale blocks stay as they are.
            for g in 0..later_commits {
                let out = commit(&f, &mut dev, 3 + g, &b, Some(&[]), [false; 5]);
                assert_eq!(out.written, [true; 5]);
            }
            let (img, findings) = load(&f, &mut dev).unwrap();
            let shape = format!("copy {lost_copy}, {later_commits} later commits");
            assert_eq!(img.words, b, "an older version was taken: {shape}");
            assert_eq!(img.rec.generation, 2 + later_commits, "{shape}");
            assert!(img.rec.stale[lost_copy], "{shape}");
            for &i in &changed {
                assert!(
                    findings.contains(&(lost_copy, i, Finding::Stale { generation: 1 })),
                    "{shape}: block {i} not named"
                );
            }
        }
    }
}

/// Lost writes of one block in four copies: the one copy that made the
/// write holds the only newer version, and it is taken, whichever copy
/// holds the newest superblock.
#[test]
fn a_newer_version_in_one_copy_alone_is_taken() {
    let (f, base) = formatted();
    let (a, b) = (words_a(&f), words_b(&f));
    let changed = changed_blocks(&f, &a, &b);
    for kept in 0..METADATA_COPIES {
        let mut dev = base.clone();
        commit(&f, &mut dev, 2, &b, Some(&changed), [false; 5]);
        for copy in (0..METADATA_COPIES).filter(|&c| c != kept) {
            for &i in &changed {
                dev.blocks[copy][i as usize] = base.blocks[copy][i as usize].clone();
            }
        }
        let (img, _) = load(&f, &mut dev).unwrap();
        assert_eq!(img.words, b, "copy {kept}'s newer version was not taken");
        assert_eq!(img.rec.intact_copies(), 1);
    }
}

/// A commit abandoned after it wrote a block to copies 3 and 4 (no
/// superblock of it anywhere), then a commit that rewrites those two stale
/// copies whole and fails on one of them: that copy keeps the abandoned
/// block, at a generation below the newest superblock but above its own.
/// Loading does not take it, also when that copy's superblock is damaged
/// since (its bound is then unknown: a copy with an intact superblock
/// decides).
#[test]
fn an_abandoned_block_left_by_a_failed_rewrite_is_not_taken() {
    for (failed, damaged_super) in [(3, false), (3, true), (4, true)] {
        let shape = format!("copy {failed} kept it, superblock damaged: {damaged_super}");
        let (f, base) = formatted();
        let (a, b) = (words_a(&f), words_b(&f));
        let changed = changed_blocks(&f, &a, &b);
        let mut abandoned = base.clone();
        commit(&f, &mut abandoned, 2, &b, Some(&changed), [false; 5]);
        let mut dev = base.clone();
        for &i in &changed {
            for copy in [3, 4] {
                dev.blocks[copy][i as usize] = abandoned.blocks[copy][i as usize].clone();
            }
        }
        // Commit 3 changes nothing: the superblock for the copies that are
        // whole, every block (each of its own generation, 1) for the stale.
        let all: Vec<u32> = (1..f.copy_blocks()).collect();
        let mut data = vec![0u8; (all.len() + 1) * f.block_bytes()];
        encode_commit::<C>(&f, &UUID, 3, &a, &all, |_, _| 1, &mut data);
        let dirty = vec![false; all.len()];
        let c = CommitBlocks {
            indices: &all,
            dirty: &dirty,
            data: &mut data,
            stale: [false, false, false, true, true],
        };
        let mut failing = Failing(dev, 1 << failed);
        let out = write_commit::<C, _>(&f, c, &mut failing, -5);
        let mut written = [true; 5];
        written[failed] = false;
        assert_eq!(out.written, written, "{shape}");
        let mut dev = failing.0;
        if damaged_super {
            dev.blocks[failed][0][200] ^= 1;
        }
        let (img, findings) = load(&f, &mut dev).unwrap();
        assert_eq!(img.words, a, "the abandoned version was taken: {shape}");
        assert_eq!(img.rec.generation, 3, "{shape}");
        assert!(img.rec.next_generation > 3, "{shape}");
        for &i in &changed {
            assert!(
                findings.contains(&(failed, i, Finding::Unfinished { generation: 2 })),
                "{shape}: block {i} not named unfinished"
            );
        }
    }
}

/// Two versions of a block with one generation but other contents (which
/// no writer makes: a commit writes the same block to every copy):
/// loading takes the newest copy's. Copy 4's superblock is damaged,
/// so copy 3 holds the newest one, and copy 4's block, of the same
/// generation, differs.
#[test]
fn a_generation_tie_takes_the_newest_copys_version() {
    let (f, base) = formatted();
    let (a, b) = (words_a(&f), words_b(&f));
    let changed = changed_blocks(&f, &a, &b);
    // Words `b` stamped with generation 1, as the formatted copies are.
    let mut crafted = base.clone();
    commit(&f, &mut crafted, 1, &b, Some(&changed), [false; 5]);
    let mut dev = base.clone();
    for &i in &changed {
        dev.blocks[4][i as usize] = crafted.blocks[4][i as usize].clone();
    }
    dev.blocks[4][0][200] ^= 1;
    let (img, _) = load(&f, &mut dev).unwrap();
    assert_eq!(img.words, a, "copy 4's version of the tie was taken");
}

/// A spare area whose metadata copy would pass [`MAX_COPY_BYTES`] is
/// refused by the format itself, so that the kernel and remapctl format
/// refuse the same areas, before anything is allocated.
#[test]
fn a_copy_above_the_memory_limit_is_refused() {
    let area = |spare_len: u64, block_size: u32| Identity {
        data_offset: 0,
        data_len: 1 << 20,
        spare_offset: 0,
        spare_len,
        block_size,
    };
    // 2^27 blocks of 512 bytes: copies of 1.2 GB.
    assert_eq!(
        Format::new(area(1 << 27, 512)).err(),
        Some(FormatError::TooLarge)
    );
    // 2^26 blocks of 512 bytes: copies of 0.6 GB.
    let f = Format::new(area(1 << 26, 512)).unwrap();
    assert!(u64::from(f.copy_blocks()) * 512 <= MAX_COPY_BYTES);
    // The same 64 GiB area in 4 KiB blocks: copies of 72 MB.
    assert!(Format::new(area(1 << 27, 4096)).is_ok());
}
