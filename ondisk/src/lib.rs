// SPDX-License-Identifier: GPL-2.0

//! The dm-remap on-disk format as a `no_std` crate for `remapctl` and the
//! host tests. The kernel module compiles the same files (`src/format/`)
//! as its own module `ondisk`, so the two cannot disagree.

#![no_std]
#![forbid(unsafe_code)]

mod format;

pub use format::*;
