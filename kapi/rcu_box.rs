// SPDX-License-Identifier: GPL-2.0

//! A heap value published under RCU: readers borrow it inside an RCU
//! read-side critical section without taking any lock; a writer replaces
//! it and gets the old value back once no reader can still see it.
//!
//! C header: [`include/linux/rcupdate.h`](srctree/include/linux/rcupdate.h)

// A `core` atomic pointer: the kernel crate's `Atomic` calls a C helper for
// every load in this kernel, and this load is on the path of every bio that
// meets a remap. On x86 the acquire load is a plain move.
use core::sync::atomic::{
    AtomicPtr,
    Ordering::{AcqRel, Acquire, Relaxed},
};
use kernel::{prelude::*, sync::rcu};

/// An RCU-published `KBox<T>`.
///
/// # Invariants
///
/// `ptr` always holds a pointer from `KBox::into_raw`, owned by this
/// `RcuBox`. A pointer that was replaced is freed only after an RCU grace
/// period, so a reference handed out under an RCU guard stays valid for the
/// guard's life.
pub(crate) struct RcuBox<T: Send + Sync> {
    ptr: AtomicPtr<T>,
}

// SAFETY: the box owns a `T: Send`; moving the owner moves the value.
unsafe impl<T: Send + Sync> Send for RcuBox<T> {}
// SAFETY: shared access hands out `&T` only, and `T: Sync`.
unsafe impl<T: Send + Sync> Sync for RcuBox<T> {}

impl<T: Send + Sync> RcuBox<T> {
    /// Publishes `value`.
    pub(crate) fn new(value: KBox<T>) -> Self {
        // INVARIANT: the pointer comes from `KBox::into_raw`.
        Self {
            ptr: AtomicPtr::new(KBox::into_raw(value)),
        }
    }

    /// The current value, for as long as the RCU read lock is held (and the
    /// box lives).
    #[inline(always)]
    pub(crate) fn read<'a>(&'a self, _guard: &'a rcu::Guard) -> &'a T {
        // SAFETY: the pointer is valid (type invariant) and, if replaced
        // meanwhile, is freed only after a grace period, which cannot end
        // while `_guard` holds the RCU read lock.
        unsafe { &*self.ptr.load(Acquire) }
    }

    /// Publishes `value` and returns the previous value once every reader
    /// that could still see it has finished (`synchronize_rcu`). Sleeps.
    ///
    /// Sound when called from several threads at once: the swap hands each
    /// caller a different old pointer (every pointer is published once and
    /// unpublished once), so no value is returned, or freed, twice.
    pub(crate) fn replace(&self, value: KBox<T>) -> KBox<T> {
        // Acquire as well: the old value may have been published by
        // another caller of `replace`, whose writes to it must be seen
        // before it is dropped here.
        let old = self.ptr.swap(KBox::into_raw(value), AcqRel);
        // SAFETY: waits for all pre-existing RCU read-side critical
        // sections; called in process context.
        unsafe { kernel::bindings::synchronize_rcu() };
        // SAFETY: `old` came from `KBox::into_raw` and was just unpublished;
        // after the grace period no reader holds a reference to it.
        unsafe { KBox::from_raw(old) }
    }
}

impl<T: Send + Sync> Drop for RcuBox<T> {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no reader can borrow through this box any
        // more, and the pointer is owned (type invariant).
        drop(unsafe { KBox::from_raw(self.ptr.load(Relaxed)) });
    }
}
