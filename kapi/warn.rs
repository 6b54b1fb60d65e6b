// SPDX-License-Identifier: GPL-2.0

//! A kernel warning (`WARN`) for a condition that says the module's own
//! bookkeeping is wrong.
//!
//! C header: [`include/asm-generic/bug.h`](srctree/include/asm-generic/bug.h)
//!
//! The kernel crate's `warn_on!` includes assembly that the kernel build
//! generates (`rust/kernel/generated_arch_warn_asm.rs`), which the Rust
//! metadata some distributions add to their headers packages leaves out
//! (Arch's copies `rust/*.rmeta` and `rust/*.so` only): this one is C's
//! `WARN`, through a helper, and builds against any headers.

use super::dm::bindings as b;

/// Warns, with a backtrace and the caller's file and line, when `cond` is
/// true; returns `cond`, as `WARN_ON` does.
#[track_caller]
#[inline]
pub(crate) fn warn_on(cond: bool) -> bool {
    if cond {
        let at = core::panic::Location::caller();
        // SAFETY: the file name is valid for its length (a `&'static str`),
        // and the helper prints exactly that many bytes of it.
        unsafe { b::dmr_warn(at.file().as_ptr().cast(), at.file().len(), at.line()) };
    }
    cond
}
