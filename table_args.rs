// SPDX-License-Identifier: GPL-2.0

//! The `remap` table line: parsing and validation.
//!
//! ```text
//! <data_dev> <data_offset> <spare_dev> <spare_offset> <spare_len>
//!     [<#features> <feature>...]
//! features: block_size <bytes> | no_auto_remap | read_retries <n>
//!     | spare_low_water <percent> | slow_read_ms <ms>
//! ```
//!
//! Parsing is split in two so that both halves can be tested without
//! devices: [`parse`] checks the words alone, [`validate`] checks them
//! against the opened devices. Every failure carries the reason that the
//! constructor puts in `ti->error`; the errno is always `EINVAL`.

use core::num::NonZeroU64;
use kernel::prelude::*;

/// Smallest and largest remap block size in bytes.
pub(crate) const MIN_BLOCK_SIZE: u32 = 512;
/// See [`MIN_BLOCK_SIZE`].
pub(crate) const MAX_BLOCK_SIZE: u32 = 65536;
/// Largest accepted `read_retries`.
pub(crate) const MAX_READ_RETRIES: u32 = 16;
/// Largest accepted `spare_low_water`: a percentage of the spares.
pub(crate) const MAX_LOW_WATER: u32 = 100;
/// Largest accepted `slow_read_ms`: two minutes, the longest a desktop
/// drive without SCT ERC retries a sector.
pub(crate) const MAX_SLOW_READ_MS: u32 = 120_000;

/// Why a table line was refused; the text is shown as `ti->error`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct ArgError(pub(crate) &'static CStr);

/// The optional features of a table line.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub(crate) struct Features {
    /// Remap unit in bytes, when given.
    pub(crate) block_size: Option<u32>,
    /// Only remap on `remap` messages, never on I/O errors.
    pub(crate) no_auto_remap: bool,
    /// Read retries before a block is reported lost, when given.
    pub(crate) read_retries: Option<u32>,
    /// The percentage of spares below which free spares raise one table
    /// event, when given.
    pub(crate) spare_low_water: Option<u32>,
    /// The time above which a read of a data block is slow (0: never),
    /// when given.
    pub(crate) slow_read_ms: Option<u32>,
}

impl Features {
    /// Number of words the features take in a table line.
    pub(crate) fn word_count(&self) -> u32 {
        2 * u32::from(self.block_size.is_some())
            + u32::from(self.no_auto_remap)
            + 2 * u32::from(self.read_retries.is_some())
            + 2 * u32::from(self.spare_low_water.is_some())
            + 2 * u32::from(self.slow_read_ms.is_some())
    }
}

/// A parsed table line; the device paths borrow from the arguments.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct TableArgs<'a> {
    pub(crate) data_dev: &'a CStr,
    pub(crate) data_offset: u64,
    pub(crate) spare_dev: &'a CStr,
    pub(crate) spare_offset: u64,
    pub(crate) spare_len: u64,
    pub(crate) features: Features,
}

/// What [`validate`] needs to know about the target and its devices.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Geometry {
    /// Length of the target in sectors.
    pub(crate) target_len: u64,
    /// Size of the data device in sectors.
    pub(crate) data_dev_sectors: u64,
    /// Logical block size of the data device in bytes.
    pub(crate) data_lbs: u32,
    /// Size of the spare device in sectors.
    pub(crate) spare_dev_sectors: u64,
    /// Logical block size of the spare device in bytes.
    pub(crate) spare_lbs: u32,
    /// Whether data and spare are the same block device.
    pub(crate) same_device: bool,
    /// The largest logical block size the block layer accepts.
    pub(crate) max_lbs: u32,
}

/// Parses an unsigned decimal number: digits only, no sign, no overflow.
pub(crate) fn parse_u64(word: &CStr) -> Option<u64> {
    let bytes = word.to_bytes();
    if bytes.is_empty() {
        return None;
    }
    bytes.iter().try_fold(0u64, |acc, &c| {
        if c.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(c - b'0'))
        } else {
            None
        }
    })
}

pub(crate) fn parse_u32(word: &CStr) -> Option<u32> {
    parse_u64(word).and_then(|v| u32::try_from(v).ok())
}

/// Parses the words of a table line (everything after the target name).
pub(crate) fn parse<'a>(args: &[&'a CStr]) -> Result<TableArgs<'a>, ArgError> {
    if args.len() < 5 {
        return Err(ArgError(
            c"Not enough arguments: <data_dev> <data_offset> <spare_dev> <spare_offset> <spare_len> required",
        ));
    }
    let data_offset = parse_u64(args[1]).ok_or(ArgError(c"Invalid data_offset"))?;
    let spare_offset = parse_u64(args[3]).ok_or(ArgError(c"Invalid spare_offset"))?;
    let spare_len = parse_u64(args[4]).ok_or(ArgError(c"Invalid spare_len"))?;
    if spare_len == 0 {
        return Err(ArgError(c"spare_len must not be zero"));
    }
    let features = match args.get(5) {
        None => Features::default(),
        Some(count) => {
            let count = parse_u32(count).ok_or(ArgError(c"Invalid number of feature arguments"))?;
            let rest = &args[6..];
            if count as usize > rest.len() {
                return Err(ArgError(
                    c"Feature argument count exceeds the arguments given",
                ));
            }
            if (count as usize) < rest.len() {
                return Err(ArgError(c"Too many arguments after the features"));
            }
            parse_features(rest)?
        }
    };
    Ok(TableArgs {
        data_dev: args[0],
        data_offset,
        spare_dev: args[2],
        spare_offset,
        spare_len,
        features,
    })
}

/// The reasons a numeric feature is refused.
struct NumericFeature {
    duplicate: &'static CStr,
    missing: &'static CStr,
    invalid: &'static CStr,
}

/// Takes the value word of a numeric feature from `words` into `slot`.
fn numeric_feature(
    slot: &mut Option<u32>,
    words: &mut &[&CStr],
    valid: impl Fn(u32) -> bool,
    reasons: NumericFeature,
) -> Result<(), ArgError> {
    if slot.is_some() {
        return Err(ArgError(reasons.duplicate));
    }
    let (value, rest) = words.split_first().ok_or(ArgError(reasons.missing))?;
    *words = rest;
    let n = parse_u32(value)
        .filter(|n| valid(*n))
        .ok_or(ArgError(reasons.invalid))?;
    *slot = Some(n);
    Ok(())
}

fn parse_features(mut words: &[&CStr]) -> Result<Features, ArgError> {
    let mut f = Features::default();
    while let Some((name, rest)) = words.split_first() {
        words = rest;
        match name.to_bytes() {
            b"block_size" => numeric_feature(
                &mut f.block_size,
                &mut words,
                |b| b.is_power_of_two() && (MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&b),
                NumericFeature {
                    duplicate: c"Duplicate feature block_size",
                    missing: c"Feature block_size requires a value",
                    invalid: c"block_size must be a power of two from 512 to 65536",
                },
            )?,
            b"no_auto_remap" => {
                if f.no_auto_remap {
                    return Err(ArgError(c"Duplicate feature no_auto_remap"));
                }
                f.no_auto_remap = true;
            }
            b"read_retries" => numeric_feature(
                &mut f.read_retries,
                &mut words,
                |n| n <= MAX_READ_RETRIES,
                NumericFeature {
                    duplicate: c"Duplicate feature read_retries",
                    missing: c"Feature read_retries requires a value",
                    invalid: c"read_retries must be a number from 0 to 16",
                },
            )?,
            b"spare_low_water" => numeric_feature(
                &mut f.spare_low_water,
                &mut words,
                |n| n <= MAX_LOW_WATER,
                NumericFeature {
                    duplicate: c"Duplicate feature spare_low_water",
                    missing: c"Feature spare_low_water requires a value",
                    invalid: c"spare_low_water must be a percentage from 0 to 100",
                },
            )?,
            b"slow_read_ms" => numeric_feature(
                &mut f.slow_read_ms,
                &mut words,
                |n| n <= MAX_SLOW_READ_MS,
                NumericFeature {
                    duplicate: c"Duplicate feature slow_read_ms",
                    missing: c"Feature slow_read_ms requires a value",
                    invalid: c"slow_read_ms must be milliseconds from 0 (never slow) to 120000",
                },
            )?,
            _ => return Err(ArgError(c"Unrecognised feature")),
        }
    }
    Ok(f)
}

fn ranges_overlap(a_start: u64, a_len: u64, b_start: u64, b_len: u64) -> bool {
    // Both ranges were checked to end within their device, so no overflow.
    a_start < b_start + b_len && b_start < a_start + a_len
}

/// Checks a parsed line against the devices; returns the remap block size
/// in bytes.
pub(crate) fn validate(args: &TableArgs<'_>, g: &Geometry) -> Result<u32, ArgError> {
    let device_lbs = g.data_lbs.max(g.spare_lbs);
    let block_size = match args.features.block_size {
        Some(bs) if bs < device_lbs => {
            return Err(ArgError(
                c"block_size is smaller than the logical block size of a device",
            ))
        }
        // Above it, the device's logical block size cannot say the block
        // size: bios may cover part of a block, and the worker could not
        // retry or relocate those.
        Some(bs) if bs > g.max_lbs => {
            return Err(ArgError(
                c"block_size is above the largest logical block size this kernel takes (the page size without transparent huge pages)",
            ))
        }
        Some(bs) => bs,
        None => device_lbs,
    };
    // At least 1: block sizes are 512 bytes or more.
    let block_sectors =
        NonZeroU64::new(u64::from(block_size >> 9)).ok_or(ArgError(c"Invalid block size"))?;
    if g.target_len == 0 || g.target_len % block_sectors != 0 {
        return Err(ArgError(
            c"Target length is not a non-zero multiple of block_size",
        ));
    }
    if args.data_offset % block_sectors != 0 {
        return Err(ArgError(c"data_offset is not a multiple of block_size"));
    }
    if args.spare_offset % block_sectors != 0 {
        return Err(ArgError(c"spare_offset is not a multiple of block_size"));
    }
    if args.spare_len % block_sectors != 0 {
        return Err(ArgError(c"spare_len is not a multiple of block_size"));
    }
    match args.data_offset.checked_add(g.target_len) {
        Some(end) if end <= g.data_dev_sectors => {}
        _ => {
            return Err(ArgError(
                c"Data area extends beyond the end of the data device",
            ))
        }
    }
    match args.spare_offset.checked_add(args.spare_len) {
        Some(end) if end <= g.spare_dev_sectors => {}
        _ => {
            return Err(ArgError(
                c"Spare area extends beyond the end of the spare device",
            ))
        }
    }
    if g.same_device
        && ranges_overlap(
            args.data_offset,
            g.target_len,
            args.spare_offset,
            args.spare_len,
        )
    {
        return Err(ArgError(c"Data and spare areas overlap on the same device"));
    }
    Ok(block_size)
}

#[kunit_tests(dm_remap_table_args)]
mod tests {
    use super::*;

    const DATA: &CStr = c"/dev/sda";
    const SPARE: &CStr = c"/dev/sdb";

    fn err(args: &[&CStr]) -> &'static CStr {
        match parse(args) {
            Err(ArgError(reason)) => reason,
            Ok(_) => c"(accepted)",
        }
    }

    fn geometry() -> Geometry {
        Geometry {
            target_len: 8192,
            data_dev_sectors: 16384,
            data_lbs: 512,
            spare_dev_sectors: 16384,
            spare_lbs: 512,
            same_device: false,
            max_lbs: 65536,
        }
    }

    fn verr(args: &[&CStr], g: &Geometry) -> &'static CStr {
        match validate(&parse(args).unwrap(), g) {
            Err(ArgError(reason)) => reason,
            Ok(_) => c"(accepted)",
        }
    }

    #[test]
    fn minimal_line() {
        let a = parse(&[DATA, c"0", SPARE, c"128", c"64"]).unwrap();
        assert_eq!(a.data_dev, DATA);
        assert_eq!(a.data_offset, 0);
        assert_eq!(a.spare_dev, SPARE);
        assert_eq!(a.spare_offset, 128);
        assert_eq!(a.spare_len, 64);
        assert_eq!(a.features, Features::default());
        assert_eq!(a.features.word_count(), 0);
    }

    #[test]
    fn zero_feature_count() {
        let a = parse(&[DATA, c"0", SPARE, c"0", c"8", c"0"]).unwrap();
        assert_eq!(a.features, Features::default());
    }

    #[test]
    fn every_feature() {
        let a = parse(&[
            DATA,
            c"8",
            SPARE,
            c"16",
            c"4096",
            c"5",
            c"read_retries",
            c"3",
            c"no_auto_remap",
            c"block_size",
            c"4096",
        ])
        .unwrap();
        assert_eq!(a.features.block_size, Some(4096));
        assert!(a.features.no_auto_remap);
        assert_eq!(a.features.read_retries, Some(3));
        assert_eq!(a.features.word_count(), 5);
    }

    #[test]
    fn block_size_limits() {
        for (word, ok) in [
            (c"512", true),
            (c"65536", true),
            (c"1024", true),
            (c"256", false),
            (c"131072", false),
            (c"3000", false),
            (c"0", false),
        ] {
            let r = parse(&[DATA, c"0", SPARE, c"0", c"128", c"2", c"block_size", word]);
            assert_eq!(r.is_ok(), ok);
        }
    }

    #[test]
    fn read_retries_limits() {
        for (word, ok) in [(c"0", true), (c"16", true), (c"17", false), (c"-1", false)] {
            let r = parse(&[DATA, c"0", SPARE, c"0", c"8", c"2", c"read_retries", word]);
            assert_eq!(r.is_ok(), ok);
        }
    }

    #[test]
    fn spare_low_water_limits() {
        for (word, ok) in [
            (c"0", true),
            (c"20", true),
            (c"100", true),
            (c"101", false),
            (c"-1", false),
            (c"5%", false),
        ] {
            let r = parse(&[
                DATA,
                c"0",
                SPARE,
                c"0",
                c"8",
                c"2",
                c"spare_low_water",
                word,
            ]);
            assert_eq!(r.is_ok(), ok);
            if ok {
                assert_eq!(r.unwrap().features.word_count(), 2);
            }
        }
    }

    #[test]
    fn slow_read_ms_limits() {
        for (word, ok) in [
            (c"0", true),
            (c"1000", true),
            (c"120000", true),
            (c"120001", false),
            (c"1s", false),
        ] {
            let r = parse(&[DATA, c"0", SPARE, c"0", c"8", c"2", c"slow_read_ms", word]);
            assert_eq!(r.is_ok(), ok);
            if ok {
                assert_eq!(r.unwrap().features.slow_read_ms, parse_u32(word));
            }
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64(c"0"), Some(0));
        assert_eq!(parse_u64(c"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(c"18446744073709551616"), None);
        assert_eq!(parse_u64(c""), None);
        assert_eq!(parse_u64(c"+1"), None);
        assert_eq!(parse_u64(c"-1"), None);
        assert_eq!(parse_u64(c"12a"), None);
        assert_eq!(parse_u64(c"0x10"), None);
        assert_eq!(parse_u64(c" 1"), None);
    }

    #[test]
    fn parse_errors() {
        let base = [DATA, c"0", SPARE, c"0", c"8"];
        let with = |extra: &[&'static CStr]| -> KVec<&'static CStr> {
            let mut v = KVec::new();
            for w in base.iter().copied() {
                v.push(w, GFP_KERNEL).unwrap();
            }
            for w in extra.iter().copied() {
                v.push(w, GFP_KERNEL).unwrap();
            }
            v
        };
        let cases: [(&[&CStr], &CStr); 5] = [
            (
                &[DATA, c"0", SPARE, c"0"],
                c"Not enough arguments: <data_dev> <data_offset> <spare_dev> <spare_offset> <spare_len> required",
            ),
            (&[DATA, c"x", SPARE, c"0", c"8"], c"Invalid data_offset"),
            (&[DATA, c"0", SPARE, c"-8", c"8"], c"Invalid spare_offset"),
            (&[DATA, c"0", SPARE, c"0", c"8k"], c"Invalid spare_len"),
            (&[DATA, c"0", SPARE, c"0", c"0"], c"spare_len must not be zero"),
        ];
        for (args, reason) in cases {
            assert_eq!(err(args), reason);
        }
        assert_eq!(err(&[]), err(&[DATA]));
        let feature_cases: [(&[&'static CStr], &CStr); 14] = [
            (&[c"one"], c"Invalid number of feature arguments"),
            (
                &[c"2", c"no_auto_remap"],
                c"Feature argument count exceeds the arguments given",
            ),
            (
                &[c"0", c"no_auto_remap"],
                c"Too many arguments after the features",
            ),
            (&[c"1", c"fast"], c"Unrecognised feature"),
            (
                &[c"1", c"block_size"],
                c"Feature block_size requires a value",
            ),
            (
                &[c"2", c"block_size", c"4095"],
                c"block_size must be a power of two from 512 to 65536",
            ),
            (
                &[c"1", c"read_retries"],
                c"Feature read_retries requires a value",
            ),
            (
                &[c"2", c"read_retries", c"99"],
                c"read_retries must be a number from 0 to 16",
            ),
            (
                &[c"4", c"block_size", c"512", c"block_size", c"512"],
                c"Duplicate feature block_size",
            ),
            (
                &[c"2", c"no_auto_remap", c"no_auto_remap"],
                c"Duplicate feature no_auto_remap",
            ),
            (
                &[c"4", c"read_retries", c"1", c"read_retries", c"2"],
                c"Duplicate feature read_retries",
            ),
            (
                &[c"1", c"spare_low_water"],
                c"Feature spare_low_water requires a value",
            ),
            (
                &[c"4", c"spare_low_water", c"5", c"spare_low_water", c"9"],
                c"Duplicate feature spare_low_water",
            ),
            (&[c"1", c"no_auto_remap"], c"(accepted)"),
        ];
        for (extra, reason) in feature_cases {
            assert_eq!(err(&with(extra)), reason);
        }
    }

    #[test]
    fn validate_accepts_and_picks_block_size() {
        let g = geometry();
        let line = [DATA, c"0", SPARE, c"0", c"8192"];
        assert_eq!(validate(&parse(&line).unwrap(), &g), Ok(512));
        let g4k = Geometry {
            spare_lbs: 4096,
            ..g
        };
        assert_eq!(validate(&parse(&line).unwrap(), &g4k), Ok(4096));
        let line = [
            DATA,
            c"0",
            SPARE,
            c"0",
            c"8192",
            c"2",
            c"block_size",
            c"65536",
        ];
        assert_eq!(validate(&parse(&line).unwrap(), &g), Ok(65536));
        // Without large folios the block layer stops at the page size.
        let small = Geometry { max_lbs: 4096, ..g };
        assert_eq!(
            verr(&line, &small),
            c"block_size is above the largest logical block size this kernel takes (the page size without transparent huge pages)"
        );
    }

    #[test]
    fn validate_errors() {
        let g = geometry();
        let bs4k = |off: &'static CStr, soff: &'static CStr, slen: &'static CStr| {
            [DATA, off, SPARE, soff, slen, c"2", c"block_size", c"4096"]
        };
        let g4k = Geometry {
            data_lbs: 4096,
            ..g
        };
        assert_eq!(
            verr(
                &bs4k(c"0", c"0", c"8")[..],
                &Geometry {
                    data_lbs: 8192,
                    ..g
                }
            ),
            c"block_size is smaller than the logical block size of a device"
        );
        assert_eq!(
            verr(
                &[DATA, c"0", SPARE, c"0", c"8"],
                &Geometry {
                    target_len: 7,
                    ..g4k
                }
            ),
            c"Target length is not a non-zero multiple of block_size"
        );
        assert_eq!(
            verr(&bs4k(c"4", c"0", c"8")[..], &g),
            c"data_offset is not a multiple of block_size"
        );
        assert_eq!(
            verr(&bs4k(c"0", c"9", c"8")[..], &g),
            c"spare_offset is not a multiple of block_size"
        );
        assert_eq!(
            verr(&bs4k(c"0", c"0", c"12")[..], &g),
            c"spare_len is not a multiple of block_size"
        );
        assert_eq!(
            verr(&[DATA, c"8200", SPARE, c"0", c"8"], &g),
            c"Data area extends beyond the end of the data device"
        );
        assert_eq!(
            verr(&[DATA, c"18446744073709551608", SPARE, c"0", c"8"], &g),
            c"Data area extends beyond the end of the data device"
        );
        assert_eq!(
            verr(&[DATA, c"0", SPARE, c"16380", c"8"], &g),
            c"Spare area extends beyond the end of the spare device"
        );
        assert_eq!(
            verr(&[DATA, c"0", SPARE, c"18446744073709551608", c"16"], &g),
            c"Spare area extends beyond the end of the spare device"
        );
    }

    #[test]
    fn same_device_overlap() {
        let same = Geometry {
            same_device: true,
            ..geometry()
        };
        // Data is sectors 0..8192; a spare area touching it is refused.
        assert_eq!(
            verr(&[DATA, c"0", DATA, c"8184", c"16"], &same),
            c"Data and spare areas overlap on the same device"
        );
        assert_eq!(
            verr(&[DATA, c"1024", DATA, c"0", c"1032"], &same),
            c"Data and spare areas overlap on the same device"
        );
        // Adjacent ranges are fine, before and after the data area.
        assert!(validate(&parse(&[DATA, c"0", DATA, c"8192", c"16"]).unwrap(), &same).is_ok());
        assert!(validate(&parse(&[DATA, c"16", DATA, c"0", c"16"]).unwrap(), &same).is_ok());
        // The same ranges on two devices do not overlap.
        assert!(validate(
            &parse(&[DATA, c"0", SPARE, c"0", c"16"]).unwrap(),
            &geometry()
        )
        .is_ok());
    }
}
