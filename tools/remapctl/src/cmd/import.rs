// SPDX-License-Identifier: GPL-2.0

//! `import <name> <file> [-b <bytes>]`: takes the blocks that `badblocks
//! -o` (or a SMART self-test) found and deals with them before the
//! filesystem meets them: a block that still reads is remapped (the
//! kernel copies its data to a spare), one that does not is read through
//! the device, which makes it pending as any failed read does (its next
//! write relocates it).

use crate::device::{Access, BlockDev};
use crate::dmdev::Dm;
use crate::exit;
use crate::progress::Progress;
use anyhow::{bail, Context, Result};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// The block numbers of a `badblocks -o` list: one decimal number a line;
/// blank lines and `#` comments are skipped.
pub fn parse_list(text: impl BufRead) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.context("cannot read the list")?;
        let word = line.split('#').next().unwrap_or("").trim();
        if word.is_empty() {
            continue;
        }
        let block = word
            .parse::<u64>()
            .with_context(|| format!("line {}: {word:?} is not a block number", n + 1))?;
        out.push(block);
    }
    Ok(out)
}

/// The remap blocks (of `remap_bytes`) that list block `block` (of
/// `list_bytes`) covers, or `None` past `device_bytes`.
pub fn remap_blocks(
    block: u64,
    list_bytes: u64,
    remap_bytes: u64,
    device_bytes: u64,
) -> Option<std::ops::Range<u64>> {
    let start = block.checked_mul(list_bytes)?;
    let end = start.checked_add(list_bytes)?.min(device_bytes);
    if start >= device_bytes {
        return None;
    }
    Some(start / remap_bytes..end.div_ceil(remap_bytes))
}

/// What became of the blocks.
#[derive(Default)]
struct Outcome {
    remapped: u64,
    /// Remapped with their data lost: unreadable to the kernel's copy.
    lost: u64,
    pending: u64,
    already: u64,
    failed: u64,
}

pub fn run(name: &str, file: &Path, list_bytes: u64) -> Result<u8> {
    if list_bytes == 0 || !list_bytes.is_multiple_of(512) {
        bail!("the block size must be a multiple of 512 bytes, not {list_bytes}");
    }
    let list = if file == Path::new("-") {
        parse_list(std::io::stdin().lock())?
    } else {
        let f =
            std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
        parse_list(BufReader::new(f))?
    };
    let dm = Dm::new()?;
    dm.get(name)?;
    let stats = dm.message(name, "stats")?;
    let remap_bytes: u64 = stats
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("block_size="))
        .and_then(|v| v.parse().ok())
        .context("the target's stats give no block_size")?;
    let path = PathBuf::from("/dev/mapper").join(name);
    let dev = BlockDev::open(&path, Access::Read)?;
    let device_bytes = dev.size();
    let mut buf = vec![0u8; remap_bytes as usize];
    let mut blocks = BTreeSet::new();
    for &b in &list {
        match remap_blocks(b, list_bytes, remap_bytes, device_bytes) {
            Some(r) => blocks.extend(r),
            None => bail!(
                "block {b} of {list_bytes} bytes lies beyond {name} ({device_bytes} bytes): is it the list of another device, or of another block size (-b)?"
            ),
        }
    }
    let mut out = Outcome::default();
    let mut progress = Progress::new(format!("import {name}"));
    for (i, &block) in blocks.iter().enumerate() {
        progress.show(i as u64, blocks.len() as u64, "blocks");
        let sector = block * remap_bytes / 512;
        let before = dm.message(name, &format!("lookup {sector}"))?;
        if !before.contains("not remapped") {
            out.already += 1;
            continue;
        }
        if dev.read_at(block * remap_bytes, &mut buf).is_ok() {
            match dm.message(name, &format!("remap {sector}")) {
                // The block read here, but the kernel's own read of it may
                // have failed since: its answer says whether it copied.
                Ok(answer) if answer.contains("data unreadable") => {
                    out.lost += 1;
                    progress.clear();
                    println!(
                        "block {block}: remapped, but unreadable when the kernel copied it: its data is lost (reads fail until it is written)"
                    );
                }
                Ok(_) => {
                    out.remapped += 1;
                    progress.clear();
                    println!("block {block}: readable, remapped (data copied)");
                }
                Err(e) => {
                    out.failed += 1;
                    progress.clear();
                    eprintln!("remapctl: import: block {block}: {e:#}");
                }
            }
            continue;
        }
        // The failed read made it pending, as any failed read does.
        let after = dm.message(name, &format!("lookup {sector}"))?;
        if after.contains("pending") {
            out.pending += 1;
            progress.clear();
            println!("block {block}: unreadable, pending (its data is lost; its next write relocates it)");
        } else {
            out.failed += 1;
            progress.clear();
            eprintln!(
                "remapctl: import: block {block}: unreadable, but not marked pending: {}",
                after.trim()
            );
        }
    }
    progress.show(blocks.len() as u64, blocks.len() as u64, "blocks");
    progress.finish();
    println!(
        "{name}: {} listed blocks of {list_bytes} bytes cover {} blocks of {remap_bytes}: {} remapped, {} remapped with their data lost, {} pending, {} already remapped or pending, {} failed",
        list.len(),
        blocks.len(),
        out.remapped,
        out.lost,
        out.pending,
        out.already,
        out.failed
    );
    Ok(if out.failed > 0 {
        exit::ERROR
    } else {
        exit::OK
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_read() {
        let text = "12\n\n  13 \n# comment\n14 # trailing\n";
        assert_eq!(parse_list(text.as_bytes()).unwrap(), [12, 13, 14]);
        let err = parse_list("12\nx\n".as_bytes()).unwrap_err();
        assert!(format!("{err:#}").contains("line 2"));
        assert!(parse_list("-1\n".as_bytes()).is_err());
    }

    #[test]
    fn list_blocks_map_to_remap_blocks() {
        // 1 KiB list blocks on 4 KiB remap blocks: four share one.
        assert_eq!(remap_blocks(0, 1024, 4096, 1 << 20), Some(0..1));
        assert_eq!(remap_blocks(5, 1024, 4096, 1 << 20), Some(1..2));
        // 8 KiB list blocks cover two.
        assert_eq!(remap_blocks(3, 8192, 4096, 1 << 20), Some(6..8));
        // Past the end, or overflowing.
        assert_eq!(remap_blocks(1024, 1024, 4096, 1 << 20), None);
        assert_eq!(remap_blocks(u64::MAX, 1024, 4096, 1 << 20), None);
    }
}
