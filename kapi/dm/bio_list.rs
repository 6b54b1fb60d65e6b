// SPDX-License-Identifier: GPL-2.0

//! Bios taken off a list (a target's queue, a hold), and how one ends.

use super::bindings as b;
use core::ptr::NonNull;
use kernel::bindings::bio;

/// Ends a bio with `status` (`bio->bi_status = status; bio_endio(bio)`).
///
/// # Safety
///
/// `bio` must be a valid bio that the caller owns and ends once, here.
pub(super) unsafe fn end_bio(bio: *mut bio, status: u8) {
    // SAFETY: as the caller promises.
    unsafe {
        (*bio).bi_status = status;
        kernel::bindings::bio_endio(bio);
    }
}

/// The bios of a list taken off its owner, handed out one by one and
/// unlinked as they go; those not taken out are ended with an I/O error
/// when this is dropped, so none is left behind.
///
/// # Invariants
///
/// `next` heads a list, linked by `bi_next`, of bios that are ours to end.
pub(super) struct TakenBios {
    next: *mut bio,
}

impl TakenBios {
    /// # Safety
    ///
    /// `head` must head a list of bios linked by `bi_next` (or be null),
    /// taken off its owner and ours to end.
    pub(super) unsafe fn new(head: *mut bio) -> Self {
        Self { next: head }
    }
}

impl Iterator for TakenBios {
    type Item = NonNull<bio>;

    fn next(&mut self) -> Option<NonNull<bio>> {
        let raw = NonNull::new(self.next)?;
        // SAFETY: `raw` is on the list (type invariant); unlinking it
        // leaves the rest intact.
        self.next = unsafe { b::dmr_bio_list_next(raw.as_ptr()) };
        Some(raw)
    }
}

impl Drop for TakenBios {
    fn drop(&mut self) {
        for raw in self.by_ref() {
            // SAFETY: off the list, ours (type invariant), ended once.
            unsafe { end_bio(raw.as_ptr(), b::dmr_status_DMR_STS_IOERR as u8) };
        }
    }
}
