// SPDX-License-Identifier: GPL-2.0

//! Arbitrary spare areas through the decoder and the loader: no input may
//! panic, and whatever loads must load again the same after it is written
//! back whole (the commit order and the recovery agree).

#![no_main]

use dm_remap_ondisk::*;
use libfuzzer_sys::fuzz_target;

/// The five copies over the fuzzer's bytes (zero past their end).
struct Bytes {
    bs: usize,
    copy_blocks: usize,
    data: Vec<u8>,
}

impl MetadataDev for Bytes {
    type Error = ();

    fn read(&mut self, copy: usize, index: u32, out: &mut [u8]) -> Result<(), ()> {
        let at = (copy * self.copy_blocks + index as usize) * self.bs;
        out.copy_from_slice(&self.data[at..at + self.bs]);
        Ok(())
    }

    fn write(&mut self, copy: usize, index: u32, data: &[u8]) -> Result<(), ()> {
        let at = (copy * self.copy_blocks + index as usize) * self.bs;
        self.data[at..at + self.bs].copy_from_slice(data);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ()> {
        Ok(())
    }
}

/// [`recover`] into buffers of its own.
fn load(fmt: &Format, dev: &mut Bytes) -> Result<(Vec<u64>, Vec<u64>, Recovered), LoadError> {
    let mut blocks = vec![0u8; METADATA_COPIES * fmt.block_bytes()];
    let mut words = vec![0u64; fmt.words()];
    let mut block_gen = vec![0u64; fmt.copy_blocks() as usize];
    let bufs = LoadBuffers {
        blocks: &mut blocks,
        words: &mut words,
        block_gen: &mut block_gen,
    };
    let rec = recover::<SoftCrc32c, _>(fmt, dev, bufs, |_, _, _| {})?;
    Ok((words, block_gen, rec))
}

/// Writes every block of every copy: `words` under `generation`, each
/// block stamped with its `block_gen`.
fn write_whole(
    fmt: &Format,
    dev: &mut Bytes,
    uuid: &[u8; UUID_BYTES],
    generation: u64,
    words: &[u64],
    block_gen: &[u64],
) {
    let indices: Vec<u32> = (1..fmt.copy_blocks()).collect();
    let mut out = vec![0u8; (indices.len() + 1) * fmt.block_bytes()];
    let gen_of = |_: usize, i: u32| block_gen[i as usize];
    encode_commit::<SoftCrc32c>(fmt, uuid, generation, words, &indices, gen_of, &mut out);
    let dirty = vec![false; indices.len()];
    let blocks = CommitBlocks {
        indices: &indices,
        dirty: &dirty,
        data: &mut out,
        stale: [true; METADATA_COPIES],
    };
    let outcome = write_commit::<SoftCrc32c, _>(fmt, blocks, dev, ());
    assert!(outcome.succeeded() && outcome.error.is_none());
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 2 {
        return;
    }
    // The first bytes choose the geometry: 512 or 1024-byte blocks, and
    // a spare area of 64 to 1087 blocks.
    let bs = if input[0] & 1 == 0 { 512 } else { 1024 };
    let nr = 64 + u64::from(input[1]) * 4;
    let identity = Identity {
        data_offset: 0,
        data_len: 1 << 20,
        spare_offset: 0,
        spare_len: nr * (bs / 512),
        block_size: bs as u32,
    };
    let Ok(fmt) = Format::new(identity) else {
        return;
    };
    let copy_blocks = fmt.copy_blocks() as usize;
    let mut dev = Bytes {
        bs: bs as usize,
        copy_blocks,
        data: vec![0u8; METADATA_COPIES * copy_blocks * bs as usize],
    };
    // With bit 2 set, the bytes are XORed into a valid image (zero bytes
    // leave it whole), so that small changes reach deep into the loader.
    if input[0] & 4 != 0 {
        write_whole(
            &fmt,
            &mut dev,
            &[7; UUID_BYTES],
            3,
            &vec![0; fmt.words()],
            &vec![3; copy_blocks],
        );
    }
    let mut data = core::mem::take(&mut dev.data);
    for (d, i) in data.iter_mut().zip(&input[2..]) {
        *d ^= i;
    }
    for chunk in data.chunks_mut(bs as usize) {
        // With bit 1 set, blocks that carry the magic get a CRC that
        // matches: random bytes never would, and the loader's choices
        // (generations, kinds, slots) lie behind the checksum.
        if input[0] & 2 != 0 && chunk[..8] == MAGIC {
            let crc = block_crc::<SoftCrc32c>(chunk);
            chunk[8..12].copy_from_slice(&crc.to_le_bytes());
        }
        // Any answer will do, as long as there is one (no panic).
        std::hint::black_box(superblock_size(chunk));
        std::hint::black_box(any_superblock::<SoftCrc32c>(chunk));
    }
    dev.data = data;
    let all = load(&fmt, &mut dev);
    let Ok((words, block_gen, rec)) = all else {
        return;
    };
    if rec.blank {
        return;
    }
    // Write it back whole, as remapctl repair does, and load it again.
    write_whole(
        &fmt,
        &mut dev,
        &rec.uuid,
        rec.generation,
        &words,
        &block_gen,
    );
    let (again, _, rec2) = load(&fmt, &mut dev).expect("a rewritten image loads");
    assert_eq!(again, words);
    assert_eq!(rec2.intact_copies(), METADATA_COPIES);
    assert_eq!((rec2.uuid, rec2.generation), (rec.uuid, rec.generation));
});
