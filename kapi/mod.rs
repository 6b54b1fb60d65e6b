// SPDX-License-Identifier: GPL-2.0

//! The kernel abstractions the targets are built on: what would be
//! `rust/kernel/` patches, kept apart from the targets so that every
//! `unsafe` of a module lives in this folder (`scripts/check-unsafe.sh`,
//! run by the suite, fails on one outside it).
//!
//! Each file holds one concept:
//!
//! - [`dm`]: device-mapper targets: the vtable and its callbacks, the
//!   constructor's view, opened devices, bios and their per-bio data,
//!   the bios a target keeps for its worker or holds back, the status
//!   emitter and the queue limits;
//! - [`bufio`]: dm-bufio clients; [`workqueue`]: an ordered workqueue of
//!   the module's own;
//! - [`srcu`]: sleepable RCU whose read side may end in another context;
//!   [`rcu_box`]: a box replaced under RCU;
//! - [`percpu`]: per-CPU counters; [`atomic_vec`]: zero-filled vectors of
//!   atomics;
//! - [`global`]: a mutex in a `static`, initialised on first use;
//! - [`sched`]: `cond_resched` and the NoIO allocation scope;
//! - [`crc_random`]: CRC32C and random bytes.
//!
//! The C side: `bindings.h` (the input of the bindings Kbuild generates),
//! `helpers.c` (functions the bindings cannot call: `static inline` ones
//! and macros), `dm_offsets.c` (layout constants of dm core's private
//! `dm-core.h`).

pub(crate) mod atomic_vec;
pub(crate) mod bufio;
pub(crate) mod crc_random;
pub(crate) mod dm;
pub(crate) mod global;
pub(crate) mod percpu;
pub(crate) mod rcu_box;
pub(crate) mod sched;
pub(crate) mod srcu;
pub(crate) mod warn;
pub(crate) mod workqueue;
