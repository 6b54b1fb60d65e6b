// SPDX-License-Identifier: GPL-2.0

//! An ordered `WQ_MEM_RECLAIM` workqueue of the module's own.
//!
//! C header: [`include/linux/workqueue.h`](srctree/include/linux/workqueue.h)

use super::dm::bindings as b;
use core::ptr::NonNull;
use kernel::{prelude::*, workqueue::Queue};

/// An ordered `WQ_MEM_RECLAIM` workqueue, drained and destroyed on drop.
///
/// # Invariants
///
/// `wq` comes from `alloc_ordered_workqueue` and is destroyed on drop.
pub(crate) struct OrderedQueue {
    wq: NonNull<kernel::bindings::workqueue_struct>,
}

// SAFETY: workqueues may be used and destroyed from any thread.
unsafe impl Send for OrderedQueue {}
// SAFETY: see `Send`.
unsafe impl Sync for OrderedQueue {}

impl OrderedQueue {
    /// A new queue; its workers are called `name`.
    pub(crate) fn new(name: &CStr) -> Result<Self> {
        // SAFETY: `name` is NUL-terminated and copied by the callee.
        let wq = unsafe { b::dmr_alloc_ordered_wq(name.as_char_ptr()) };
        // INVARIANT: non-null means allocated.
        NonNull::new(wq).map(|wq| Self { wq }).ok_or(ENOMEM)
    }

    /// The queue, to enqueue work items on.
    pub(crate) fn queue(&self) -> &Queue {
        // SAFETY: valid until drop, which the returned borrow precedes.
        unsafe { Queue::from_raw(self.wq.as_ptr()) }
    }

    /// Waits until every work item queued so far has run.
    pub(crate) fn flush(&self) {
        // SAFETY: valid (type invariant).
        unsafe { kernel::bindings::__flush_workqueue(self.wq.as_ptr()) };
    }
}

impl Drop for OrderedQueue {
    fn drop(&mut self) {
        // SAFETY: valid (type invariant); destroying drains it first.
        unsafe { kernel::bindings::destroy_workqueue(self.wq.as_ptr()) };
    }
}
