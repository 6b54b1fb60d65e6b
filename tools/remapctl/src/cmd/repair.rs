// SPDX-License-Identifier: GPL-2.0

//! `repair <dev>`: the copies that lack a block of the newest intact
//! version rewritten from it, as the kernel's first commit after a load
//! does (the same generation, each block with its own; a block some copy
//! holds an unfinished version of at a new generation, in every copy),
//! and a damaged label rewritten from the intact one.

use super::{locate, usable};
use crate::device::{Access, BlockDev};
use crate::label::{self, Found, Label, Role};
use crate::{exit, meta};
use anyhow::{bail, Result};
use dm_remap_ondisk::{Finding, UuidText};
use std::path::Path;

/// Whether both label places of `dev` (its first and last 4 KiB) are all
/// zeros or start with a label's magic: places a label may be written to.
fn label_places_free(dev: &BlockDev) -> Result<bool> {
    let mut b = vec![0u8; label::LABEL_BYTES];
    for at in [0, label::backup_offset(dev.size())] {
        dev.read_at(at, &mut b)?;
        if !(Label::has_magic(&b) || b.iter().all(|&x| x == 0)) {
            println!(
                "not writing remap labels: {} holds other data at byte {at} (a device set up without remapctl format?)",
                dev.path().display()
            );
            return Ok(false);
        }
    }
    Ok(true)
}

/// Repairs the device; exits 0 when it is whole afterwards.
pub fn run(path: &Path, geometry: Option<&str>) -> Result<u8> {
    let dev = BlockDev::open(path, Access::Exclusive)?;
    let loc = locate(&dev, geometry, Access::Exclusive)?;
    let spare = loc.spare_dev(&dev);
    let Some(m) = usable(spare, loc.identity, "cannot repair")? else {
        return Ok(exit::FAILED);
    };
    if let Some((l, found)) = &loc.label {
        if l.uuid != m.rec.uuid {
            eprintln!(
                "remapctl: {}: the metadata is not the label's (another device's): not repairing",
                path.display()
            );
            return Ok(exit::FAILED);
        }
        if *found != Found::Both {
            label::write(&dev, l)?;
            println!("rewrote the damaged remap label");
        }
    } else if geometry.is_some()
        && !matches!(label::probe(&dev), Ok(Some(_)))
        && label_places_free(&dev)?
    {
        // Both labels lost (or unusable), their places blank or holding
        // a damaged label: the geometry given and the metadata found
        // there make them again, so that open finds the device by itself
        // once more. Places holding anything else (a device set up with
        // dmsetup alone, whose data area starts at sector 0) are left.
        let l = Label {
            uuid: m.rec.uuid,
            identity: loc.identity,
            no_auto_remap: false,
            read_retries: None,
            slow_read_ms: None,
            device_size: dev.size(),
            role: Role::Whole,
        };
        if let Err(e) = l.check_fits(&dev) {
            bail!("not writing remap labels: {e:#}");
        }
        label::write(&dev, &l)?;
        match label::probe(&dev) {
            Ok(Some((back, Found::Both))) if back == l => println!(
                "wrote the remap labels from --geometry and the metadata (UUID {}); no_auto_remap, read_retries and slow_read_ms are the defaults: remapctl format records them, open takes them from the label",
                UuidText(&l.uuid)
            ),
            Ok(_) => bail!("the remap labels written do not read back"),
            Err(e) => return Err(e),
        }
    }
    if m.findings.is_empty() {
        println!("{}: all 5 metadata copies intact", path.display());
        return Ok(exit::OK);
    }
    let damaged = m.rec.stale;
    // As the kernel's first commit: a version a commit abandoned must not
    // outlive a lost write of its rewrite under a later superblock.
    let mut rewritten = vec![false; m.fmt.copy_blocks() as usize];
    if m.rec.rewrites_unfinished() {
        for (_, index, f) in &m.findings {
            if matches!(f, Finding::Unfinished { .. }) {
                rewritten[*index as usize] = true;
            }
        }
    }
    let generation = if rewritten.contains(&true) {
        m.rec.next_generation
    } else {
        m.rec.generation
    };
    meta::write(
        spare,
        &m.fmt,
        &m.rec.uuid,
        generation,
        &m.words,
        Some(&m.block_gen),
        &rewritten,
        damaged,
    )?;
    let Some(again) = usable(spare, loc.identity, "after the repair")? else {
        return Ok(exit::FAILED);
    };
    let copies: Vec<String> = (0..damaged.len())
        .filter(|&c| damaged[c])
        .map(|c| c.to_string())
        .collect();
    println!(
        "{}: rewrote copies {} at generation {}: {} of 5 copies intact",
        path.display(),
        copies.join(", "),
        generation,
        again.rec.intact_copies()
    );
    Ok(if again.findings.is_empty() && again.words == m.words {
        exit::OK
    } else {
        exit::FAILED
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::format;

    #[test]
    fn both_labels_lost_are_written_again_from_the_geometry() {
        let path = std::env::temp_dir().join(format!("remapctl-repair-{}", std::process::id()));
        format::format_file(&path);
        let dev = BlockDev::open(&path, Access::Exclusive).unwrap();
        let (l, _) = label::read(&dev).unwrap();
        let size = dev.size();
        dev.write_at(0, &[0u8; 4096]).unwrap();
        dev.write_at(size - 4096, &[0u8; 4096]).unwrap();
        drop(dev);
        let id = &l.identity;
        let g = format!(
            "{}:{}:{}:{}:{}",
            id.data_offset, id.data_len, id.spare_offset, id.spare_len, id.block_size
        );
        assert_eq!(run(&path, Some(&g)).unwrap(), exit::OK);
        let dev = BlockDev::open(&path, Access::Exclusive).unwrap();
        assert_eq!(label::probe(&dev).unwrap(), Some((l, Found::Both)));
        std::fs::remove_file(&path).unwrap();
    }

    /// A commit abandoned after it wrote a slot block to copies 3 and 4
    /// (no superblock of it anywhere); `repair`; its write of that block to
    /// copy 3 lost; a later commit of another block. The load must not
    /// take the abandoned version: the repair writes the block at a new
    /// generation in every copy (at its own older one, the later commit
    /// raised copy 3's superblock over the abandoned version).
    #[test]
    fn an_abandoned_block_whose_repair_is_lost_is_not_taken() {
        use dm_remap_ondisk::{MetadataDev, Slot};
        let tmp = |name: &str| {
            std::env::temp_dir().join(format!("remapctl-{name}-{}", std::process::id()))
        };
        let (path, scratch) = (tmp("abandoned"), tmp("abandoned-scratch"));
        format::format_file(&path);
        std::fs::copy(&path, &scratch).unwrap();
        let dev = BlockDev::open(&path, Access::Exclusive).unwrap();
        let (l, _) = label::read(&dev).unwrap();
        let m = meta::load(&dev, l.identity).unwrap().unwrap();
        let fmt = m.fmt;
        let spare = (0..fmt.nr_spare)
            .find(|&s| !fmt.layout.is_reserved(s))
            .unwrap();
        let block = fmt.block_of_word(spare as usize);
        // The abandoned version: written whole on the scratch copy, its
        // block then put into copies 3 and 4 of the device.
        let mut abandoned_words = m.words.clone();
        abandoned_words[spare as usize] = Slot::InUse {
            block: 5,
            lost: false,
        }
        .encode();
        let sdev = BlockDev::open(&scratch, Access::Exclusive).unwrap();
        let g = m.rec.next_generation;
        meta::write(
            &sdev,
            &fmt,
            &m.rec.uuid,
            g,
            &abandoned_words,
            None,
            &[],
            [true; 5],
        )
        .unwrap();
        let mut buf = vec![0u8; fmt.block_bytes()];
        let mut from = meta::SpareArea::new(&sdev, fmt).unwrap();
        let mut to = meta::SpareArea::new(&dev, fmt).unwrap();
        for copy in [3, 4] {
            from.read(copy, block, &mut buf).unwrap();
            to.write(copy, block, &buf).unwrap();
        }
        let mut copy3 = vec![0u8; fmt.block_bytes()];
        to.read(3, block, &mut copy3).unwrap();
        drop(dev);
        assert_eq!(run(&path, None).unwrap(), exit::OK);
        // The repair's write to copy 3 lost.
        let dev = BlockDev::open(&path, Access::Exclusive).unwrap();
        meta::SpareArea::new(&dev, fmt)
            .unwrap()
            .write(3, block, &copy3)
            .unwrap();
        // A later commit that changes the pending block only.
        let m2 = meta::load(&dev, l.identity).unwrap().unwrap();
        let mut later = m2.words.clone();
        later[fmt.pending_base()] = Slot::InUse {
            block: 11,
            lost: false,
        }
        .encode();
        let mut rewritten = vec![false; fmt.copy_blocks() as usize];
        rewritten[fmt.block_of_word(fmt.pending_base()) as usize] = true;
        let g2 = m2.rec.next_generation;
        meta::write(
            &dev,
            &fmt,
            &m2.rec.uuid,
            g2,
            &later,
            Some(&m2.block_gen),
            &rewritten,
            [false; 5],
        )
        .unwrap();
        let after = meta::load(&dev, l.identity).unwrap().unwrap();
        assert_eq!(after.words, later, "the abandoned version was taken");
        std::fs::remove_file(&path).unwrap();
        std::fs::remove_file(&scratch).unwrap();
    }
}
