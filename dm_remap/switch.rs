// SPDX-License-Identifier: GPL-2.0

//! A switch of blocks' mappings, batch-shaped (a message is a batch of
//! one): blocks marked switching (bios starting in them wait on the hold
//! list), bios mapped before waited for, the data copied, one commit, then
//! each block switched, fenced or rolled back by the commit's outcome, and
//! the held bios released.
//!
//! Whatever path leaves the switch, including an early return, its `Drop`
//! ends it by the outcome of its commit (rolled back when none was made),
//! so no block stays switching and no bio stays held.

use crate::breakage::{broken, Breakage};
use crate::ctr::table_errno;
use crate::entry::{Entry, Spare};
use crate::kapi::warn::warn_on;
use crate::metadata::{CommitError, MetaImage};
use crate::{Admin, RemapTarget, TargetInfo};
use kernel::prelude::*;

/// One block of a switch.
pub(super) struct Switched {
    pub(super) block: u64,
    /// The entry before the switch, restored on rollback.
    pub(super) old: Option<Entry>,
    /// Where the block maps once the commit is durable: a spare, or the
    /// data block (`None`, an unremap).
    pub(super) to: Option<Spare>,
    /// `to`'s spare was allocated for this switch: released on rollback.
    allocated: bool,
    /// The block is rolled back whatever the commit does (its relocation
    /// has no spare left).
    abandoned: bool,
    /// The block becomes pending with its data lost, in this pending slot
    /// (its spare failed every read), instead of moving to `to`.
    pub(super) lost_in: Option<u32>,
}

impl Switched {
    /// Whether the block switches if the commit is durable.
    pub(super) fn switches(&self) -> bool {
        !self.abandoned
    }

    /// Whether `to`'s spare was allocated for this switch (not the
    /// block's own).
    pub(super) fn allocated(&self) -> bool {
        self.allocated
    }
}

/// A switch in progress.
///
/// # Invariants
///
/// Every block in `blocks` has a `Switching` entry in the table, set by
/// [`Switch::mark`] under the admin lock; only this switch changes it
/// until [`Switch::end`] or `Drop` gives it its final entry.
///
/// Ending takes the admin lock: a switch is ended or dropped by a holder
/// of no lock (callers declare it before their admin guard, so that an
/// early return drops the guard first).
pub(super) struct Switch<'a> {
    target: &'a RemapTarget,
    ti: &'a TargetInfo<'a>,
    blocks: KVec<Switched>,
    /// The commit's outcome; refused until a commit is made (nothing on
    /// disk records the switch).
    committed: Result<(), CommitError>,
    commit_made: bool,
}

impl<'a> Switch<'a> {
    pub(super) fn new(target: &'a RemapTarget, ti: &'a TargetInfo<'a>) -> Self {
        Self {
            target,
            ti,
            blocks: KVec::new(),
            committed: Err(CommitError::Refused),
            commit_made: false,
        }
    }

    /// The blocks marked so far, in order.
    pub(super) fn blocks(&self) -> &[Switched] {
        &self.blocks
    }

    /// Marks `block` switching towards `to` (a spare, allocated for this
    /// switch when `allocated`; `None` for the data block, from the spare
    /// of its `Remapped` entry). Under the admin lock. Returns the block's
    /// index in the switch.
    pub(super) fn mark(
        &mut self,
        admin: &mut Admin,
        block: u64,
        to: Option<Spare>,
        allocated: bool,
    ) -> Result<usize> {
        let old = self.target.entry(block);
        let shown = match (to, old) {
            // Another switch owns it; a fenced block changes only at a
            // reload.
            (_, Some(Entry::Switching { .. } | Entry::Fenced { .. })) => return Err(EBUSY),
            (Some(s), _) | (None, Some(Entry::Remapped(s))) => s,
            // An unremap switches a remapped block only.
            (None, _) => return Err(EINVAL),
        };
        self.blocks.reserve(1, GFP_KERNEL)?;
        let switching = Entry::Switching { to: shown }.encode();
        let marked = match old {
            None => self
                .target
                .table
                .insert(&mut admin.writer, block, switching),
            // Not through `set_entry`: a lost block stays counted lost
            // while it switches (status never dips), `finish` counts the
            // change.
            Some(_) => self
                .target
                .table
                .update(&mut admin.writer, block, switching),
        };
        marked.map_err(table_errno)?;
        // Room was reserved above: a failure would be a bookkeeping error.
        let switched = Switched {
            block,
            old,
            to,
            allocated,
            abandoned: false,
            lost_in: None,
        };
        warn_on(self.blocks.push_within_capacity(switched).is_err());
        Ok(self.blocks.len() - 1)
    }

    /// Marks remapped `block`, whose spare failed every read, switching
    /// towards pending slot `slot` with its data lost. Under the admin
    /// lock. Returns the block's index in the switch.
    pub(super) fn mark_lost(&mut self, admin: &mut Admin, block: u64, slot: u32) -> Result<usize> {
        if !matches!(self.target.entry(block), Some(Entry::Remapped(_))) {
            return Err(EINVAL);
        }
        let i = self.mark(admin, block, None, false)?;
        self.blocks[i].lost_in = Some(slot);
        Ok(i)
    }

    /// The spare of block `i` failed its write: it is retired (when
    /// `retire`; otherwise it stays allocated, offered again only after a
    /// reload) and the block rolled back unless [`Self::retarget`] gives it
    /// another. Under the admin lock.
    pub(super) fn spare_failed(&mut self, admin: &mut Admin, i: usize, retire: bool) {
        let b = &mut self.blocks[i];
        if let (Some(s), true, true) = (b.to, b.allocated, retire) {
            // Allocated for this switch, so in use: cannot fail.
            admin.spares.retire_held(s.block);
        }
        b.allocated = false;
        b.abandoned = true;
    }

    /// Gives block `i`, whose spare failed ([`Self::spare_failed`]), the
    /// newly allocated spare `spare`. Under the admin lock.
    pub(super) fn retarget(&mut self, admin: &mut Admin, i: usize, spare: u32) {
        let to = Spare {
            block: spare,
            lost: false,
        };
        let b = &mut self.blocks[i];
        if let (Some(s), true) = (b.to, b.allocated) {
            // Called without `spare_failed`: the spare replaced is unused
            // (nothing commits it), and allocated, so the release cannot
            // fail.
            admin.spares.release_held(s.block);
        }
        b.to = Some(to);
        b.allocated = true;
        b.abandoned = false;
        let block = b.block;
        self.target.set_entry(admin, block, Entry::Switching { to });
    }

    /// Flags the data of block `i`'s spare as lost (zero-filled): its
    /// entry says so once the switch is durable.
    pub(super) fn set_lost(&mut self, i: usize, lost: bool) {
        if let Some(s) = self.blocks[i].to.as_mut() {
            s.lost = lost;
        }
    }

    /// Waits for the bios mapped to the blocks' old places: after it, no
    /// bio reaches them but those of the switch. Sleeps; call it holding
    /// no lock.
    pub(super) fn wait_mapped(&self) {
        if !self.blocks.is_empty() {
            self.target.in_flight.synchronize();
        }
    }

    /// Records the switch in the metadata (`change` edits the image, given
    /// the switch's blocks) and
    /// waits until that is durable. One commit per switch, whose outcome
    /// decides how the switch ends: a second one is refused, unmade.
    pub(super) fn commit(
        &mut self,
        change: impl FnOnce(&mut MetaImage, &[Switched]),
    ) -> Result<(), CommitError> {
        if self.commit_made {
            return Err(CommitError::Refused);
        }
        self.commit_made = true;
        if broken(Breakage::CommitSkipped) {
            self.committed = Ok(());
            return Ok(());
        }
        let blocks = &self.blocks;
        self.committed = self
            .target
            .meta
            .change(self.target.queue.queue(), |image| change(image, blocks));
        self.committed
    }

    /// Ends the switch by its commit's outcome: a durable commit switches
    /// each block (`switched` is called for each, under the admin lock, to
    /// dispose of what it replaced); one of unknown outcome fences them;
    /// otherwise they are rolled back. Then the held bios are released.
    pub(super) fn end(mut self, switched: impl FnMut(&mut Admin, &Switched)) {
        self.finish(switched);
    }

    fn finish(&mut self, mut switched: impl FnMut(&mut Admin, &Switched)) {
        if self.blocks.is_empty() {
            return;
        }
        let t = self.target;
        {
            let mut admin = t.admin.lock();
            let admin = &mut *admin;
            for b in self.blocks.iter() {
                // Its entry from before the switch was counted lost or
                // not until now; the entry set below counts itself.
                admin.count_lost(b.old.is_some_and(Entry::data_lost), false);
                match self.committed {
                    _ if b.abandoned => rollback(t, admin, b),
                    Ok(()) => {
                        match (b.lost_in, b.to) {
                            (Some(slot), _) => {
                                t.set_entry(admin, b.block, Entry::Pending { slot, lost: true })
                            }
                            (None, Some(s)) => t.set_entry(admin, b.block, Entry::Remapped(s)),
                            (None, None) => t.remove_entry(admin, b.block),
                        }
                        switched(admin, b);
                    }
                    // A later load may map the block to either place
                    // (for a message both hold the same data; for a
                    // relocation the new one holds the failed bio's data,
                    // which was not acknowledged): neither takes a write
                    // until the table is loaded again, and a spare
                    // allocated stays allocated.
                    // A switch to a lost state (an unreadable block's
                    // remap, a spare the scrub found unreadable) fences
                    // the block lost: a load may find it so.
                    Err(CommitError::Indeterminate) if broken(Breakage::NoFence) => {
                        rollback(t, admin, b)
                    }
                    Err(CommitError::Indeterminate) => {
                        let lost = b.lost_in.is_some() || b.to.is_some_and(|s| s.lost);
                        t.fence(admin, b.block, b.old, lost)
                    }
                    Err(_) => rollback(t, admin, b),
                }
            }
            // Spares were taken (or given back): the low-water mark may be
            // crossed.
            t.watch_low_water(self.ti, admin);
        }
        self.blocks.clear();
        t.release_held(self.ti);
        // The mapping, the spares or the metadata copies changed (or a
        // commit failed): a monitor waiting for events reads them again.
        self.ti.raise_event();
    }
}

/// Gives `b` its entry from before the switch back and releases its spare:
/// no commit on disk maps anything to it (refused, or never written), and
/// none follows a failed one.
fn rollback(t: &RemapTarget, admin: &mut Admin, b: &Switched) {
    match b.old {
        None => t.remove_entry(admin, b.block),
        Some(old) => t.set_entry(admin, b.block, old),
    }
    if let (Some(s), true) = (b.to, b.allocated) {
        // Allocated for this switch, so in use: cannot fail.
        admin.spares.release_held(s.block);
    }
}

impl Drop for Switch<'_> {
    fn drop(&mut self) {
        // A path that did not call `end`: the switch ends by its commit's
        // outcome all the same (rolled back when it made none).
        self.finish(|_, _| {});
    }
}
