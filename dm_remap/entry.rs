// SPDX-License-Identifier: GPL-2.0

//! What the remap table holds for a block, and its encoding in the table's
//! `u32` values: the top three bits say what the entry is, the rest is a
//! spare block or a pending slot.

use kernel::prelude::*;

/// Bit 31: the block's data is lost (it could not be read when it was
/// remapped, or its spare failed every read): reads fail until it is
/// written.
const LOST: u32 = 1 << 31;
/// Bits 30 and 29: the kind of entry.
const KIND_SHIFT: u32 = 29;
const KIND_REMAPPED: u32 = 0;
const KIND_PENDING: u32 = 1;
const KIND_SWITCHING: u32 = 2;
const KIND_FENCED: u32 = 3;
/// The low bits: a spare block or a pending slot.
const LOW_MASK: u32 = (1 << KIND_SHIFT) - 1;
/// The low bits of a fenced entry whose reads go to the data block.
const AT_DATA: u32 = LOW_MASK;

/// The most spare blocks a spare area may have: spare numbers must fit
/// the low bits and stay below [`AT_DATA`].
pub(crate) const MAX_SPARE_BLOCKS: u32 = AT_DATA - 1;

/// A spare block that holds a data block's content.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Spare {
    pub(crate) block: u32,
    /// The data block could not be read when it was remapped: the spare
    /// was zero-filled, and reads of the block fail until it is written.
    pub(crate) lost: bool,
}

/// A table entry. Blocks without one are neither remapped nor pending.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Entry {
    /// Bios go to the spare.
    Remapped(Spare),
    /// An unreadable data block, not remapped: reads go to the data block
    /// (or fail at once when `lost`: its spare failed every read, and the
    /// data block holds older data), the next write is relocated. `slot`
    /// is its pending slot.
    Pending { slot: u32, lost: bool },
    /// The mapping switches (towards `to` for a remap, from it for an
    /// unremap): bios starting in the block wait on the hold list.
    Switching { to: Spare },
    /// A metadata commit whose outcome is unknown touched the block: a
    /// later load may map it to either place, so no write is taken until
    /// the table is loaded again. Reads go to `at` (a spare block, or the
    /// data block when `None`), which holds the same data as the other
    /// place, or fail when `lost`: the data was lost before, and a load
    /// may find it lost still.
    Fenced { at: Option<u32>, lost: bool },
}

impl Entry {
    /// The entry a table value encodes.
    #[inline(always)]
    pub(crate) fn decode(v: u32) -> Self {
        let low = v & LOW_MASK;
        let spare = Spare {
            block: low,
            lost: v & LOST != 0,
        };
        match (v >> KIND_SHIFT) & 3 {
            KIND_REMAPPED => Entry::Remapped(spare),
            KIND_PENDING => Entry::Pending {
                slot: low,
                lost: v & LOST != 0,
            },
            KIND_SWITCHING => Entry::Switching { to: spare },
            _ => Entry::Fenced {
                at: (low != AT_DATA).then_some(low),
                lost: spare.lost,
            },
        }
    }

    /// The table value of the entry. Spare blocks and slots are below
    /// [`MAX_SPARE_BLOCKS`] (the constructor refuses larger spare areas).
    pub(crate) fn encode(self) -> u32 {
        let spare = |s: Spare, kind: u32| {
            (s.block & LOW_MASK) | (kind << KIND_SHIFT) | if s.lost { LOST } else { 0 }
        };
        match self {
            Entry::Remapped(s) => spare(s, KIND_REMAPPED),
            Entry::Pending { slot, lost } => {
                (slot & LOW_MASK) | (KIND_PENDING << KIND_SHIFT) | if lost { LOST } else { 0 }
            }
            Entry::Switching { to } => spare(to, KIND_SWITCHING),
            Entry::Fenced { at, lost } => spare(
                Spare {
                    block: at.unwrap_or(AT_DATA),
                    lost,
                },
                KIND_FENCED,
            ),
        }
    }

    /// Whether the block's data is lost: reads fail at once, on every
    /// path, and only a write that relocates the block (or rewrites it
    /// with a commit) makes it readable again. A zero-filled spare or a
    /// stale data block is never served as its data.
    pub(crate) fn data_lost(self) -> bool {
        match self {
            Entry::Remapped(s) => s.lost,
            Entry::Pending { lost, .. } | Entry::Fenced { lost, .. } => lost,
            Entry::Switching { .. } => false,
        }
    }

    /// Whether the entry is a pending block.
    pub(crate) fn is_pending(self) -> bool {
        matches!(self, Entry::Pending { .. })
    }

    /// Whether the entry is switching.
    pub(crate) fn is_switching(self) -> bool {
        matches!(self, Entry::Switching { .. })
    }

    /// The entry that stands for `old` (`None`: no entry) once a commit
    /// whose outcome is unknown tried to change it: reads go where they
    /// went before, and fail if the data was lost there or, by `lost`, in
    /// the state the commit wrote (a load may find either).
    pub(crate) fn fenced(old: Option<Entry>, lost: bool) -> Entry {
        let lost = lost || old.is_some_and(Entry::data_lost);
        match old {
            Some(Entry::Remapped(s)) => Entry::Fenced {
                at: Some(s.block),
                lost,
            },
            Some(Entry::Fenced { at, .. }) => Entry::Fenced { at, lost },
            _ => Entry::Fenced { at: None, lost },
        }
    }
}

#[kunit_tests(dm_remap_entry)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let max = MAX_SPARE_BLOCKS - 1;
        for block in [0, 1, 12345, max] {
            for lost in [false, true] {
                let s = Spare { block, lost };
                for e in [
                    Entry::Remapped(s),
                    Entry::Switching { to: s },
                    Entry::Fenced {
                        at: Some(block),
                        lost,
                    },
                    Entry::Fenced { at: None, lost },
                    Entry::Pending { slot: block, lost },
                ] {
                    assert_eq!(Entry::decode(e.encode()), e);
                }
            }
        }
    }

    #[test]
    fn fencing_keeps_where_reads_went_and_what_was_lost() {
        let s = Spare {
            block: 9,
            lost: false,
        };
        let gone = Spare {
            block: 9,
            lost: true,
        };
        assert_eq!(
            Entry::fenced(None, false),
            Entry::Fenced {
                at: None,
                lost: false
            }
        );
        // A remap message of an unreadable block whose commit may be on
        // disk: a load may find the block lost.
        assert_eq!(
            Entry::fenced(None, true),
            Entry::Fenced {
                at: None,
                lost: true
            }
        );
        for lost in [false, true] {
            // A pending block's data block holds its data only when it
            // was not lost.
            assert_eq!(
                Entry::fenced(Some(Entry::Pending { slot: 3, lost }), false),
                Entry::Fenced { at: None, lost }
            );
        }
        assert_eq!(
            Entry::fenced(Some(Entry::Remapped(s)), false),
            Entry::Fenced {
                at: Some(9),
                lost: false
            }
        );
        assert_eq!(
            Entry::fenced(Some(Entry::Remapped(gone)), false),
            Entry::Fenced {
                at: Some(9),
                lost: true
            }
        );
        for e in [
            Entry::Remapped(gone),
            Entry::Pending {
                slot: 1,
                lost: true,
            },
            Entry::Fenced {
                at: None,
                lost: true,
            },
        ] {
            assert!(e.data_lost());
        }
        for e in [
            Entry::Remapped(s),
            Entry::Pending {
                slot: 1,
                lost: false,
            },
            Entry::Switching { to: gone },
            Entry::Fenced {
                at: Some(9),
                lost: false,
            },
        ] {
            assert!(!e.data_lost());
        }
    }
}
