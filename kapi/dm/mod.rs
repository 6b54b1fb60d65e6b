// SPDX-License-Identifier: GPL-2.0

//! Safe abstractions for writing a device-mapper target in Rust.
//!
//! C header: [`include/linux/device-mapper.h`](srctree/include/linux/device-mapper.h)
//!
//! A target implements [`Target`] and is registered with a pinned
//! [`Registration`]. The `extern "C"` callbacks (`callbacks.rs`) turn the
//! raw pointers that device-mapper core passes into safe views ([`Ctr`],
//! [`TargetInfo`], [`Bio`], [`Emitter`], [`QueueLimits`]) and the target's
//! private data back into `&T`.
//!
//! What the types promise, and the compiler keeps:
//!
//! - every bio `map` is given ends exactly once: each way to dispose of it
//!   ([`Bio::remapped`], [`Bio::kill`], [`Bio::requeue`],
//!   [`BioQueue::take_from_map`], [`BioHold::defer`]) consumes the [`Bio`]
//!   and returns the [`MapResult`] that `map` must return, tied to that
//!   bio's lifetime;
//! - the per-bio data ([`Target::PerBio`]) is initialised before `map` sees
//!   it, and its type is the target's, so no callback reads another's;
//! - the worker's queue belongs to the abstraction, which stops it before
//!   the target is dropped and frees it after;
//! - the devices a target opens are put by the abstraction after the target
//!   is dropped; a [`DmDev`] holds its own reference on the device's file.
//!
//! Drop order in `dtr`: the queue's step is cancelled and its worker
//! flushed, then the target is dropped, then the queue is freed, then the
//! devices are put.

/// Bindings generated at build time for `device-mapper.h`, `dm-bufio.h` and
/// `helpers.h`; everything they refer to comes from `kernel::bindings`.
#[allow(
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    dead_code,
    improper_ctypes,
    unsafe_op_in_unsafe_fn,
    unreachable_pub,
    missing_docs,
    clippy::all,
    clippy::as_underscore,
    clippy::cast_lossless,
    clippy::ptr_as_ptr,
    clippy::ref_as_ptr,
    clippy::undocumented_unsafe_blocks
)]
pub(crate) mod bindings {
    include!("../dm_bindings_generated.rs");
}

/// Layout constants of device-mapper core's private `dm-core.h`, generated
/// from `dm_offsets.c` by Kbuild for the kernel the module is built
/// against (as `asm-offsets.h` is for the kernel itself), where that header
/// is there: a kernel source tree has it, a headers package does not.
#[cfg(dmr_dm_core)]
mod offsets {
    include!("../dm_offsets_generated.rs");
}

// `dm_target_io.flags` is a `blk_short_t` and the magic numbers of
// `dm_target_io` and `dm_io` are `unsigned short`, all read as `u16` in
// `per_bio`.
#[cfg(dmr_dm_core)]
const _: () = assert!(
    offsets::DM_TIO_FLAGS_SIZE == size_of::<u16>() && offsets::DM_MAGIC_SIZE == size_of::<u16>()
);

mod bio;
mod bio_list;
mod bio_queue;
mod callbacks;
mod ctr;
mod dev;
mod disposition;
mod emitter;
mod hold;
mod limits;
mod per_bio;
mod registration;
mod target;
mod target_info;
mod timed_io;

pub(crate) use bio::{Bio, BioOp};
pub(crate) use bio_queue::{BioQueue, KeptBio};
pub(crate) use ctr::Ctr;
pub(crate) use dev::{DeviceVisitor, DmDev};
pub(crate) use disposition::{EndIoResult, MapResult};
pub(crate) use emitter::Emitter;
pub(crate) use hold::BioHold;
pub(crate) use limits::{max_logical_block_size, QueueLimits};
pub(crate) use registration::Registration;
pub(crate) use target::{StatusType, Target};
pub(crate) use target_info::TargetInfo;
pub(crate) use timed_io::{InFlight, IoQueue, Msecs, Op, TimedIo};
