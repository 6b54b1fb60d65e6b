// SPDX-License-Identifier: GPL-2.0

//! The word of one spare slot or pending slot.

/// Top two bits of a slot word: its state; the other 62: a data block.
const STATE_SHIFT: u32 = 62;
const BLOCK_MASK: u64 = (1 << STATE_SHIFT) - 1;
const STATE_IN_USE: u64 = 1;
const STATE_LOST: u64 = 2;
const STATE_RETIRED: u64 = 3;

/// What a spare slot says about its spare block. A pending slot is
/// [`Slot::Free`] (empty) or [`Slot::InUse`] (the data block that is
/// pending; `lost` when it was remapped and its spare failed every read,
/// see [`Pending`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Slot {
    /// Free for allocation (or, in a metadata copy's place, unused).
    Free,
    /// Holds the data of `block`; `lost` when that data could not be read
    /// when the block was remapped (the spare was zero-filled).
    InUse {
        /// The data block, in remap blocks from the data area's start.
        block: u64,
        /// The data was unreadable when the block was remapped.
        lost: bool,
    },
    /// Failed once; never used again.
    Retired,
}

impl Slot {
    /// The largest data block number a slot can hold.
    pub const MAX_BLOCK: u64 = BLOCK_MASK;

    /// The slot's on-disk word.
    pub fn encode(self) -> u64 {
        match self {
            Slot::Free => 0,
            Slot::InUse { block, lost } => {
                let state = if lost { STATE_LOST } else { STATE_IN_USE };
                (state << STATE_SHIFT) | (block & BLOCK_MASK)
            }
            Slot::Retired => STATE_RETIRED << STATE_SHIFT,
        }
    }

    /// The slot of an on-disk word, or `None` for a word no writer makes.
    pub fn decode(word: u64) -> Option<Slot> {
        let block = word & BLOCK_MASK;
        match word >> STATE_SHIFT {
            0 if block == 0 => Some(Slot::Free),
            STATE_IN_USE => Some(Slot::InUse { block, lost: false }),
            STATE_LOST => Some(Slot::InUse { block, lost: true }),
            STATE_RETIRED if block == 0 => Some(Slot::Retired),
            _ => None,
        }
    }

    /// The pending slot of an on-disk word: `Some(None)` when empty,
    /// `Some(Some(pending))` for a pending data block, `None` for a word no
    /// writer makes.
    pub fn decode_pending(word: u64) -> Option<Option<Pending>> {
        match Slot::decode(word)? {
            Slot::Free => Some(None),
            Slot::InUse { block, lost } => Some(Some(Pending { block, lost })),
            Slot::Retired => None,
        }
    }

    /// The on-disk word of a pending slot.
    pub fn encode_pending(pending: Option<Pending>) -> u64 {
        match pending {
            None => Slot::Free.encode(),
            Some(p) => Slot::InUse {
                block: p.block,
                lost: p.lost,
            }
            .encode(),
        }
    }
}

/// A pending data block: unreadable where it maps, relocated by its next
/// write.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Pending {
    /// The data block, in remap blocks from the data area's start.
    pub block: u64,
    /// It was remapped and its spare failed every read (a scrub found
    /// it): its data is lost, and reads fail without trying the data
    /// block, which holds older data. Otherwise reads go to the data
    /// block.
    pub lost: bool,
}
