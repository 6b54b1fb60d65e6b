// SPDX-License-Identifier: GPL-2.0

//! What `map` and `end_io` tell device-mapper core about a bio.

use core::marker::PhantomData;

/// What device-mapper core does with a bio `map` returns.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum MapKind {
    /// The bio was pointed at an underlying device: core submits it.
    Remapped,
    /// The target took the bio and submits or ends it itself.
    Submitted,
    /// Core retries the bio later.
    Requeue,
    /// Core fails the bio with an I/O error.
    Kill,
}

/// How `map` disposed of a bio: made only by consuming the bio
/// ([`super::Bio::remapped`], [`super::Bio::kill`], [`super::Bio::requeue`],
/// [`super::BioQueue::take_from_map`], [`super::BioHold::defer`]), so a bio
/// is disposed of once, and a result stands for the bio it was made from:
/// the lifetime `'a` is that bio's, and invariant, so a result of one bio
/// cannot be returned for another.
///
/// A bio handed to the worker cannot also be returned as remapped:
///
/// ```compile_fail
/// # use dm_remap::kapi::dm::*;
/// fn map<'a>(q: &BioQueue<T>, bio: Bio<'a, T>) -> MapResult<'a> {
///     let _ = q.take_from_map(bio);
///     bio.remapped() // error[E0382]: use of moved value: `bio`
/// }
/// ```
#[derive(Debug)]
#[must_use = "return it from map"]
pub(crate) struct MapResult<'a> {
    pub(super) kind: MapKind,
    _bio: PhantomData<fn(&'a ()) -> &'a ()>,
}

impl MapResult<'_> {
    /// Only the consuming methods of the bio abstractions make one.
    pub(super) fn new(kind: MapKind) -> Self {
        Self {
            kind,
            _bio: PhantomData,
        }
    }
}

/// How `end_io` disposed of a completed bio.
#[derive(Debug)]
pub(crate) enum EndIoResult {
    /// The bio completes with the (possibly changed) status.
    Done,
    /// The target kept the bio ([`super::Bio::keep`]) and ends it later.
    Incomplete(Kept),
    /// Device-mapper core should requeue the bio.
    Requeue,
}

/// What [`super::Bio::keep`] returns, and only it: `end_io` says a bio is
/// incomplete with it. Device-mapper core is told so only for a bio that
/// is on the target's queue, whatever `end_io` returns.
#[derive(Debug)]
#[must_use = "return it in EndIoResult::Incomplete"]
pub(crate) struct Kept {
    pub(super) _private: (),
}
