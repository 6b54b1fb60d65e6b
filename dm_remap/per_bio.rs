// SPDX-License-Identifier: GPL-2.0

//! What each bio carries through the target: set by `map`, read by
//! `end_io` and by the worker.

use crate::kapi::srcu::ReadIndex;
use core::ops::BitOr;

/// What a bio was, and how far it went: a set of flags.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub(crate) struct Tag(u8);

impl Tag {
    /// Nothing recorded: `map` did not get to the bio, or it is neither a
    /// read nor a write.
    pub(crate) const NONE: Tag = Tag(0);
    /// A read.
    pub(crate) const READ: Tag = Tag(1 << 0);
    /// A write.
    pub(crate) const WRITE: Tag = Tag(1 << 1);
    /// A read of a pending block: success clears the pending state.
    pub(crate) const PENDING_READ: Tag = Tag(1 << 2);
    /// A write to a pending block, taken in `map` for the worker.
    pub(crate) const PENDING_WRITE: Tag = Tag(1 << 3);
    /// Ended by the worker or failed by `map`: `end_io` passes it on as it
    /// is.
    pub(crate) const ENDED: Tag = Tag(1 << 4);

    /// Whether every flag of `other` is set.
    #[inline(always)]
    pub(crate) fn contains(self, other: Tag) -> bool {
        self.0 & other.0 == other.0
    }

    /// Sets the flags of `other`.
    pub(crate) fn insert(&mut self, other: Tag) {
        self.0 |= other.0;
    }

    /// Only the flags of `mask`.
    #[inline(always)]
    pub(crate) fn only(self, mask: Tag) -> Tag {
        Tag(self.0 & mask.0)
    }
}

impl BitOr for Tag {
    type Output = Tag;

    fn bitor(self, other: Tag) -> Tag {
        Tag(self.0 | other.0)
    }
}

/// The per-bio data of the target (`dm::Target::PerBio`); every bio's
/// starts as `Default` before `map` sees it.
#[derive(Default)]
pub(crate) struct PerBio {
    pub(crate) tag: Tag,
    /// The bio's first sector counted from the target's start.
    pub(crate) offset: u64,
    /// The read section of `in_flight` the bio is in, from `map` to
    /// `end_io`: the only place its token is kept.
    pub(crate) section: Option<ReadIndex>,
}
