// SPDX-License-Identifier: GPL-2.0

//! The bios a target keeps to end later from its worker, and the worker.

use super::{
    bindings as b,
    bio_list::{end_bio, TakenBios},
    callbacks,
    disposition::MapKind,
    per_bio::{self, Slot},
    Bio, Ctr, MapResult, Target,
};
use core::{marker::PhantomData, ptr::NonNull};
use kernel::{bindings::bio, prelude::*};

/// Bios a target keeps to end later from its worker: failed bios from
/// `end_io` ([`Bio::keep`]) and bios `map` takes
/// ([`BioQueue::take_from_map`]). The worker runs [`Target::process_kept`]
/// on an ordered `WQ_MEM_RECLAIM` workqueue of its own, queued whenever a
/// bio is added; the same workqueue runs the target's delayed steps
/// ([`Target::step`]).
///
/// The abstraction owns the queue (the target reaches it through
/// [`super::TargetInfo::kept`], for the length of a callback): it stops the
/// worker before the target is dropped and frees the queue after.
///
/// # Invariants
///
/// `q` comes from `dmr_bioq_alloc` for a target of type `T`, whose
/// callbacks are [`callbacks::process_kept`] and [`callbacks::step`] of
/// `T`; it is valid while any `&BioQueue` is.
pub(crate) struct BioQueue<T: Target> {
    q: NonNull<b::dmr_bioq>,
    _target: PhantomData<T>,
}

// SAFETY: the list is protected by the queue's irq-safe spinlock; the rest
// is set once at allocation.
unsafe impl<T: Target> Send for BioQueue<T> {}
// SAFETY: see `Send`.
unsafe impl<T: Target> Sync for BioQueue<T> {}

/// The owner of a target's [`BioQueue`], in its private data.
///
/// # Invariants
///
/// Frees the queue on drop, after the target's private data has stopped
/// its worker and dropped the target.
pub(super) struct BioQueueOwner<T: Target> {
    queue: BioQueue<T>,
}

impl<T: Target> BioQueueOwner<T> {
    /// A queue for the target under construction in `ctx`.
    pub(super) fn new(ctx: &Ctr<'_, T>, name: &'static CStr) -> Result<Self> {
        // SAFETY: `name` is a static C string; `ti` is the target under
        // construction, whose private data is set once `ctr` succeeds,
        // before any bio reaches it; the callbacks are those of its type.
        let q = unsafe {
            b::dmr_bioq_alloc(
                name.as_char_ptr(),
                ctx.ti(),
                Some(callbacks::process_kept::<T>),
                Some(callbacks::step::<T>),
            )
        };
        NonNull::new(q)
            .map(|q| Self {
                queue: BioQueue {
                    q,
                    _target: PhantomData,
                },
            })
            .ok_or(ENOMEM)
    }

    /// The queue.
    pub(super) fn queue(&self) -> &BioQueue<T> {
        &self.queue
    }

    /// Stops the queue for good: no step runs or can be scheduled again
    /// (not even by a worker still running, which may try), and the
    /// worker has returned. Before the target is dropped.
    pub(super) fn stop(&self) {
        // SAFETY: valid (type invariant); called from `dtr`, not from the
        // queue's own work.
        unsafe { b::dmr_bioq_stop(self.queue.q.as_ptr()) };
    }
}

impl<T: Target> Drop for BioQueueOwner<T> {
    fn drop(&mut self) {
        // SAFETY: valid (type invariant); stopped, or never started (a
        // constructor that failed); every kept bio has ended (dm core waits
        // for them before `dtr`).
        unsafe { b::dmr_bioq_free(self.queue.q.as_ptr()) };
    }
}

impl<T: Target> BioQueue<T> {
    /// Runs the target's [`Target::step`] once, `msecs` from now (a step
    /// not yet started is moved to that time).
    pub(crate) fn schedule_step(&self, msecs: u32) {
        // SAFETY: the queue is valid (type invariant); its target is
        // constructed (the queue is reached through a `TargetInfo`), and
        // its destructor cancels the step before the target goes.
        unsafe { b::dmr_bioq_schedule_step(self.q.as_ptr(), msecs) };
    }

    /// Cancels the next step and waits for one that is running, even if it
    /// schedules itself again. Sleeps: process context, and not from within
    /// a step (which would wait for itself).
    pub(crate) fn cancel_step(&self) {
        // SAFETY: the queue is valid (type invariant).
        unsafe { b::dmr_bioq_cancel_step(self.q.as_ptr()) };
    }

    /// In `map`, or in [`super::BioHold::release`]'s callback: takes the
    /// bio for the worker, which ends it. Elsewhere, or for a target without
    /// a worker ([`Target::process_kept`]), the bio fails.
    pub(crate) fn take_from_map<'a>(&self, bio: Bio<'a, T>) -> MapResult<'a> {
        if !bio.takeable() || !T::HAS_PROCESS_KEPT {
            return bio.kill();
        }
        // SAFETY: the queue is valid; the bio is a clone that `map` returns
        // `Submitted` for (or returned it for, and the hold hands it over),
        // so it is ours until the worker ends it.
        unsafe { b::dmr_bioq_push(self.q.as_ptr(), bio.raw()) };
        MapResult::new(MapKind::Submitted)
    }

    /// Puts a bio that `end_io` keeps on the queue.
    pub(super) fn push_kept(&self, bio: Bio<'_, T>) {
        // SAFETY: the queue is valid; `end_io` returns DM_ENDIO_INCOMPLETE
        // for the bio, so it stays ours until the worker ends it.
        unsafe { b::dmr_bioq_push(self.q.as_ptr(), bio.raw()) };
    }

    /// Takes every kept bio, in the order they were added.
    pub(crate) fn take(&self) -> KeptBios<T> {
        KeptBios {
            // SAFETY: the queue is valid (type invariant); what it gives is
            // the list of its kept bios, taken off it, ours to end.
            list: unsafe { TakenBios::new(b::dmr_bioq_take(self.q.as_ptr())) },
            _target: PhantomData,
        }
    }

    /// Waits until the worker is idle. Sleeps: process context, and not
    /// from the worker or a step (which would wait for themselves).
    pub(crate) fn flush(&self) {
        // SAFETY: the queue is valid (type invariant).
        unsafe { b::dmr_bioq_flush(self.q.as_ptr()) };
    }
}

/// The bios taken from a [`BioQueue`]; any not taken out are ended with an
/// I/O error when this is dropped.
///
/// # Invariants
///
/// `list` holds clones of a target of type `T`.
pub(crate) struct KeptBios<T: Target> {
    list: TakenBios,
    _target: PhantomData<T>,
}

impl<T: Target> Iterator for KeptBios<T> {
    type Item = KeptBio<T>;

    fn next(&mut self) -> Option<KeptBio<T>> {
        // INVARIANT: a clone of a target of type `T`, off the list, ours.
        self.list.next().map(|bio| KeptBio {
            bio,
            _target: PhantomData,
        })
    }
}

/// A bio the worker took from a [`BioQueue`]. It ends with
/// [`KeptBio::end`], or with an I/O error if dropped.
///
/// # Invariants
///
/// `bio` is a clone of a target of type `T` (mapped by its `map`, so its
/// per-bio data is initialised) on no list, owned by the worker until
/// ended.
pub(crate) struct KeptBio<T: Target> {
    bio: NonNull<bio>,
    _target: PhantomData<T>,
}

// SAFETY: the bio is owned by whoever holds this; bios may be ended from
// any thread, and the per-bio data is `Send` (`Target::PerBio`).
unsafe impl<T: Target> Send for KeptBio<T> {}

impl<T: Target> KeptBio<T> {
    /// The bio's slot, if its target has one.
    fn slot(&self) -> Option<NonNull<Slot<T::PerBio>>> {
        // SAFETY: a clone of a target of type `T` (type invariant).
        per_bio::has_slot::<T>().then(|| unsafe { per_bio::slot_ptr::<T>(self.bio) })
    }

    /// The target's per-bio data.
    pub(crate) fn data(&mut self) -> &mut T::PerBio {
        match self.slot() {
            // SAFETY: the bio is ours and its slot initialised (type
            // invariant); `&mut self` makes the borrow unique.
            Some(slot) => unsafe { &mut (*slot.as_ptr()).data },
            // SAFETY: without a slot `T::PerBio` has size 0.
            None => unsafe { NonNull::<T::PerBio>::dangling().as_mut() },
        }
    }

    /// The status the bio completed with (0 for a bio taken in `map`).
    pub(crate) fn status(&self) -> u8 {
        // SAFETY: the bio is valid (type invariant).
        unsafe { (*self.bio.as_ptr()).bi_status }
    }

    /// Bytes of data recorded by [`Bio::record_position`].
    pub(crate) fn bytes(&self) -> u32 {
        match self.slot() {
            // SAFETY: the slot is initialised (type invariant).
            Some(slot) => unsafe { (*slot.as_ptr()).iter.bi_size },
            None => 0,
        }
    }

    /// Copies `buf.len()` bytes between the bio's data, `skip` bytes into
    /// what [`Bio::record_position`] recorded, and `buf`: into the bio when
    /// `to_bio`. Nothing is copied beyond the recorded data.
    pub(crate) fn copy(&mut self, skip: u32, buf: &mut [u8], to_bio: bool) {
        let Some(slot) = self.slot() else { return };
        // SAFETY: the slot is initialised (type invariant).
        let iter = unsafe { (*slot.as_ptr()).iter };
        let Some(len) = iter.bi_size.checked_sub(skip) else {
            return;
        };
        let len = len.min(u32::try_from(buf.len()).unwrap_or(u32::MAX));
        if len == 0 {
            return;
        }
        // SAFETY: the bio is valid and its data pages stay with it until it
        // ends (type invariant); `iter` is a position in that data (set by
        // `record_position`, or empty) and `buf` holds at least `len` bytes.
        unsafe {
            b::dmr_bio_copy(
                self.bio.as_ptr(),
                &iter,
                skip,
                buf.as_mut_ptr().cast(),
                len,
                to_bio,
            )
        };
    }

    /// Ends the bio with `status`; device-mapper core calls `end_io` again.
    pub(crate) fn end(self, status: u8) {
        let raw = self.bio.as_ptr();
        core::mem::forget(self);
        // SAFETY: the bio is ours (type invariant) and ended once.
        unsafe { end_bio(raw, status) };
    }
}

impl<T: Target> Drop for KeptBio<T> {
    fn drop(&mut self) {
        // SAFETY: the bio is ours (type invariant); `end` forgets `self`, so
        // this is the only end.
        unsafe { end_bio(self.bio.as_ptr(), b::dmr_status_DMR_STS_IOERR as u8) };
    }
}
