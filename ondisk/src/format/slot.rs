// SPDX-License-Identifier: GPL-2.0

//! The word of one spare slot or pending slot.

/// Top two bits of a slot word: its state; the other 62: a data block.
const STATE_SHIFT: u32 = 62;
const BLOCK_MASK: u64 = (1 << STATE_SHIFT) - 1;
const STATE_IN_USE: u64 = 1;
const STATE_LOST: u64 = 2;
const STATE_RETIRED: u64 = 3;

/// What a spare slot says about its spare block. A pending slot is
/// [`Slot::Free`] (empty) or [`Slot::InUse`] without `lost` (the data
/// block that is pending).
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
    /// `Some(Some(block))` for a pending data block, `None` for a word no
    /// writer makes.
    pub fn decode_pending(word: u64) -> Option<Option<u64>> {
        match Slot::decode(word)? {
            Slot::Free => Some(None),
            Slot::InUse { block, lost: false } => Some(Some(block)),
            _ => None,
        }
    }
}
