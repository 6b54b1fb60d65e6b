// SPDX-License-Identifier: GPL-2.0

//! The error worker's decisions about a group's relocations, apart from
//! its I/O so that KUnit checks them: which relocation of a block writes
//! it, whether each one's block was relocated, whether a bio fails, and
//! what becomes of a switched block's old mapping (in the metadata image
//! and in the allocator alike).

use crate::entry::{Entry, Spare};
use crate::metadata::{MetaImage, Slot};
use kernel::{alloc::AllocError, prelude::*};

/// Where a relocation stands. It moves forward only: `Gathered` to
/// `TakenOver` (while gathering) or to `Claimed`, `Rewritten` or
/// `NotRelocated` (while claiming); `Claimed` to `Relocated` or
/// `NotRelocated` once the commit is known.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum RelocState {
    /// Its block's write failed (or went to a pending block): to be
    /// claimed.
    Gathered,
    /// A later relocation of the same block in the group writes the block
    /// instead, its data being newer: this one ends as that one does.
    TakenOver { by: usize },
    /// The block is marked switching in the group's switch, at this index,
    /// with a spare.
    Claimed { switched: usize },
    /// A message moved the block meanwhile, and the write worked at the new
    /// place: done, without a switch.
    Rewritten,
    /// The block maps to the spare its data was written to, by a durable
    /// commit.
    Relocated,
    /// Not relocated (fenced, metadata failed, no spare left, not marked,
    /// or the commit failed): the bio fails.
    NotRelocated,
}

/// A block the worker moves to a spare, and the data to write there.
pub(super) struct Relocation {
    pub(super) block: u64,
    pub(super) data: KVec<u8>,
    /// The index in the group's bios of the bio that waits for it.
    pub(super) bio: usize,
    /// The entry by which the write last failed (or, for a write to a
    /// pending block, was not tried): if a message changes the block's
    /// mapping before the relocation claims it, the write is tried again
    /// at the new place, which did not fail it.
    pub(super) seen: Option<Entry>,
    pub(super) state: RelocState,
}

/// Adds a relocation to a group's, deciding the takeover once: the last
/// earlier relocation of the same block still to be claimed is taken over
/// by the new one (and gives up its data, which the new one's replaces).
pub(super) fn add(relocations: &mut KVec<Relocation>, r: Relocation) -> Result<(), AllocError> {
    let new = relocations.len();
    let block = r.block;
    relocations.push(r, GFP_KERNEL)?;
    if let Some(earlier) = relocations[..new]
        .iter_mut()
        .rev()
        .find(|e| e.block == block && e.state == RelocState::Gathered)
    {
        earlier.state = RelocState::TakenOver { by: new };
        earlier.data = KVec::new();
    }
    Ok(())
}

/// Whether relocation `i`'s block ended up where its data is: its own
/// outcome, or for one taken over, the outcome of the one that took it
/// over (always a later one, so the walk ends).
pub(super) fn relocated(relocations: &[Relocation], mut i: usize) -> bool {
    loop {
        match relocations[i].state {
            RelocState::TakenOver { by } if by > i && by < relocations.len() => i = by,
            RelocState::Relocated | RelocState::Rewritten => return true,
            _ => return false,
        }
    }
}

/// Whether bio `bio` of a group fails: it failed already (`failed`), or a
/// relocation of one of its blocks did not relocate it.
pub(super) fn bio_fails(relocations: &[Relocation], bio: usize, failed: bool) -> bool {
    failed
        || relocations
            .iter()
            .enumerate()
            .any(|(i, r)| r.bio == bio && !relocated(relocations, i))
}

/// What becomes of a switched block's old mapping once it maps to `to`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum OldMapping {
    /// None: the block was not remapped.
    Unmapped,
    /// A pending block: its pending slot is cleared.
    PendingCleared { slot: u32 },
    /// Its own spare, written again: it stays in use.
    SameSpare,
    /// A lost block's spare, which held zeros, not a failure: free again.
    ZerosFreed { spare: u32 },
    /// A spare whose write failed: retired.
    Retired { spare: u32 },
}

/// The fate of `old` when its block switches to `to`: one decision, which
/// both the commit (the image) and the end of the switch (the allocator
/// and counters) carry out.
pub(super) fn old_mapping(old: Option<Entry>, to: Spare) -> OldMapping {
    match old {
        Some(Entry::Pending { slot, .. }) => OldMapping::PendingCleared { slot },
        Some(Entry::Remapped(s)) if s.block == to.block => OldMapping::SameSpare,
        Some(Entry::Remapped(s)) if s.lost => OldMapping::ZerosFreed { spare: s.block },
        Some(Entry::Remapped(s)) => OldMapping::Retired { spare: s.block },
        _ => OldMapping::Unmapped,
    }
}

/// Records in the image that `block` moves from `old` to spare `to`.
pub(super) fn record_switch(image: &mut MetaImage, block: u64, old: Option<Entry>, to: Spare) {
    image.set_slot(to.block, Slot::InUse { block, lost: false });
    match old_mapping(old, to) {
        OldMapping::PendingCleared { slot } => image.set_pending(slot, None),
        OldMapping::ZerosFreed { spare } => image.set_slot(spare, Slot::Free),
        OldMapping::Retired { spare } => image.set_slot(spare, Slot::Retired),
        OldMapping::SameSpare | OldMapping::Unmapped => {}
    }
}

#[kunit_tests(dm_remap_relocation)]
mod tests {
    use super::*;
    use crate::metadata::{Format, Identity, Pending, UUID_BYTES};

    fn relocation(block: u64, bio: usize) -> Relocation {
        let mut data = KVec::new();
        data.push(0xa5u8, GFP_KERNEL).unwrap();
        Relocation {
            block,
            data,
            bio,
            seen: None,
            state: RelocState::Gathered,
        }
    }

    fn group(blocks: &[u64]) -> KVec<Relocation> {
        let mut v = KVec::new();
        for (i, &b) in blocks.iter().enumerate() {
            add(&mut v, relocation(b, i)).unwrap();
        }
        v
    }

    #[test]
    fn a_later_write_of_a_block_takes_over() {
        let g = group(&[5, 7, 5, 5]);
        assert_eq!(g[0].state, RelocState::TakenOver { by: 2 });
        assert_eq!(g[1].state, RelocState::Gathered);
        assert_eq!(g[2].state, RelocState::TakenOver { by: 3 });
        assert_eq!(g[3].state, RelocState::Gathered);
        // Only the last one keeps data to write.
        assert!(g[0].data.is_empty() && g[2].data.is_empty());
        assert_eq!(g[3].data.len(), 1);
    }

    #[test]
    fn a_claimed_relocation_is_not_taken_over() {
        let mut g = group(&[9]);
        g[0].state = RelocState::Claimed { switched: 0 };
        add(&mut g, relocation(9, 1)).unwrap();
        assert_eq!(g[0].state, RelocState::Claimed { switched: 0 });
        assert_eq!(g[1].state, RelocState::Gathered);
    }

    #[test]
    fn taken_over_ends_as_its_taker() {
        let mut g = group(&[5, 5, 5, 8]);
        g[2].state = RelocState::Relocated;
        g[3].state = RelocState::NotRelocated;
        assert!(relocated(&g, 0) && relocated(&g, 1) && relocated(&g, 2));
        assert!(!relocated(&g, 3));
        g[2].state = RelocState::NotRelocated;
        assert!(!relocated(&g, 0));
        g[2].state = RelocState::Rewritten;
        assert!(relocated(&g, 0));
        // Still claimed (no outcome yet) or gathered: not relocated.
        g[2].state = RelocState::Claimed { switched: 0 };
        assert!(!relocated(&g, 0));
    }

    #[test]
    fn a_bio_fails_if_any_of_its_blocks_was_not_relocated() {
        let mut g = group(&[1, 2]);
        g[1].bio = 0;
        g[0].state = RelocState::Relocated;
        g[1].state = RelocState::Relocated;
        assert!(!bio_fails(&g, 0, false));
        assert!(bio_fails(&g, 0, true));
        g[1].state = RelocState::NotRelocated;
        assert!(bio_fails(&g, 0, false));
        // A bio with no relocation fails only if it failed already.
        assert!(!bio_fails(&g, 1, false));
    }

    const TO: Spare = Spare {
        block: 40,
        lost: false,
    };

    #[test]
    fn the_old_mapping_of_each_kind() {
        let own = Spare {
            block: 40,
            lost: true,
        };
        let zeros = Spare {
            block: 41,
            lost: true,
        };
        let failed = Spare {
            block: 42,
            lost: false,
        };
        assert_eq!(old_mapping(None, TO), OldMapping::Unmapped);
        assert_eq!(
            old_mapping(
                Some(Entry::Pending {
                    slot: 3,
                    lost: false
                }),
                TO
            ),
            OldMapping::PendingCleared { slot: 3 }
        );
        assert_eq!(
            old_mapping(Some(Entry::Remapped(own)), TO),
            OldMapping::SameSpare
        );
        assert_eq!(
            old_mapping(Some(Entry::Remapped(zeros)), TO),
            OldMapping::ZerosFreed { spare: 41 }
        );
        assert_eq!(
            old_mapping(Some(Entry::Remapped(failed)), TO),
            OldMapping::Retired { spare: 42 }
        );
    }

    fn image() -> MetaImage {
        let fmt = Format::new(Identity {
            data_offset: 8,
            data_len: 1 << 20,
            spare_offset: 2048,
            spare_len: 128,
            block_size: 512,
        })
        .unwrap();
        MetaImage::blank(&fmt, [7u8; UUID_BYTES]).unwrap()
    }

    #[test]
    fn a_switch_is_recorded_in_an_image() {
        let mut img = image();
        // A pending block relocated: its slot is cleared, its spare in use.
        img.set_pending(
            2,
            Some(Pending {
                block: 100,
                lost: false,
            }),
        );
        record_switch(
            &mut img,
            100,
            Some(Entry::Pending {
                slot: 2,
                lost: false,
            }),
            TO,
        );
        assert_eq!(img.pending(2), Some(None));
        assert_eq!(
            img.slot(40),
            Some(Slot::InUse {
                block: 100,
                lost: false
            })
        );
        // A failed spare is retired; a lost block's zero-filled one freed.
        let failed = Spare {
            block: 42,
            lost: false,
        };
        let to = Spare {
            block: 43,
            lost: false,
        };
        record_switch(&mut img, 101, Some(Entry::Remapped(failed)), to);
        assert_eq!(img.slot(42), Some(Slot::Retired));
        let zeros = Spare {
            block: 44,
            lost: true,
        };
        let to = Spare {
            block: 45,
            lost: false,
        };
        record_switch(&mut img, 102, Some(Entry::Remapped(zeros)), to);
        assert_eq!(img.slot(44), Some(Slot::Free));
        // Its own spare written again: in use, no longer lost.
        let own = Spare {
            block: 46,
            lost: true,
        };
        record_switch(
            &mut img,
            103,
            Some(Entry::Remapped(own)),
            Spare {
                block: 46,
                lost: false,
            },
        );
        assert_eq!(
            img.slot(46),
            Some(Slot::InUse {
                block: 103,
                lost: false
            })
        );
    }
}
