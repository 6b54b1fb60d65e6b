// SPDX-License-Identifier: GPL-2.0

//! Vectors of atomics holding zero, made in one fill.

use core::sync::atomic::{AtomicU32, AtomicU64};
use kernel::{alloc::AllocError, prelude::*};

/// `n` atomics holding 0, made as plain integers in one fill (a loop of
/// stores, not a push per slot) and taken over as atomics.
macro_rules! zeroed_atomics {
    ($atomic:ty, $int:ty, $n:expr) => {{
        const _: () = assert!(
            size_of::<$atomic>() == size_of::<$int>()
                && align_of::<$atomic>() == align_of::<$int>()
        );
        KVVec::<$int>::from_elem(0, $n, GFP_KERNEL).map(|v| {
            let (ptr, len, cap) = v.into_raw_parts();
            // SAFETY: the allocation comes from `KVVec` (the same allocator)
            // for `cap` integers, which have the size and alignment of the
            // atomic (asserted above), and the atomic has the integer's bit
            // validity: the first `len` elements are atomics holding 0.
            unsafe { KVVec::from_raw_parts(ptr.cast::<$atomic>(), len, cap) }
        })
    }};
}

/// `n` `AtomicU64`s holding 0.
pub(crate) fn zeroed_u64s(n: usize) -> Result<KVVec<AtomicU64>, AllocError> {
    zeroed_atomics!(AtomicU64, u64, n)
}

/// `n` `AtomicU32`s holding 0.
pub(crate) fn zeroed_u32s(n: usize) -> Result<KVVec<AtomicU32>, AllocError> {
    zeroed_atomics!(AtomicU32, u32, n)
}
