// SPDX-License-Identifier: GPL-2.0

//! `dmsetup message`: remap, unremap, lookup, list, stats.

use crate::entry::{Entry, Spare};
use crate::first_blocks::FirstBlocks;
use crate::kapi::dm::Emitter;
use crate::kapi::sched::NoIoScope;
use crate::metadata::Slot;
use crate::switch::Switch;
use crate::table_args::parse_u64;
use crate::timed_read::{never, ReadLimits, ReadOutcome};
use crate::worker::{Probe, RETRY_LIMIT_MS};
use crate::{refuse, stat, RemapTarget, TargetInfo};
use kernel::prelude::*;

const HELP_TEXT: &str = "\
remap target messages (<sector> counts from the target's first sector):
  help                        this text
  stats                       I/O and remap counters as key=value
  clear_stats                 zero the I/O counters (kept across reloads)
  remap <sector>              move the block holding <sector> to a spare
  unremap <sector>            copy the block back and free its spare
  lookup <sector>             where the block holding <sector> goes
  list [<block> [<count>]]    remapped and pending blocks from <block> on,
                              in order: '<block> <spare>[ lost]',
                              '<block> pending[ lost]' or '<block> fenced[ lost]'
                              (lost: reads fail until the block is written)
  scrub start [<MiB/s>]       read every data block, used spare and metadata
                              block in the background (default 16 MiB/s)
  scrub stop                  stop the scrub
";

/// Why a block moves to a spare with its data.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Move {
    /// A `remap` message.
    Message,
    /// It reads, but slowly (see `weak.rs`).
    Weak,
}

/// Where a block moved.
pub(super) struct Moved {
    pub(super) spare: u32,
    /// Its data could not be read: the spare holds zeros and reads fail.
    pub(super) lost: bool,
}

impl RemapTarget {
    pub(super) fn msg_remap(
        &self,
        ti: &TargetInfo<'_>,
        arg: &CStr,
        out: &mut Emitter<'_>,
    ) -> Result {
        let block = self.block_arg(ti, arg)?;
        let moved = self.move_to_spare(ti, block, Move::Message)?;
        out.emit(format_args!(
            "remapped block {} to spare block {} (spare device sector {}){}\n",
            block,
            moved.spare,
            self.spare_sector(moved.spare),
            if moved.lost {
                ", data unreadable: lost, reads fail until the block is written"
            } else {
                ""
            }
        ));
        Ok(())
    }

    /// Moves data block `block` (in no table entry) to a spare with its
    /// data, for a `remap` message or because it is weak: a spare is taken
    /// and the block marked switching (bios starting in it wait), bios
    /// mapped to it before are waited for, its data is read and written to
    /// the spare, and the move is committed. A block the message cannot
    /// read is zero-filled and flagged lost (not while the whole device
    /// fails: its data is not gone then); a weak block that cannot be read
    /// now is left as it is, for the reads that fail to mark it pending.
    pub(super) fn move_to_spare(
        &self,
        ti: &TargetInfo<'_>,
        block: u64,
        why: Move,
    ) -> Result<Moved> {
        // Bios wait for this switch: its allocations must not wait for
        // reclaim that may write through the device.
        let _noio = NoIoScope::enter();
        let mut buf = self.block_buffer()?;
        let mut switch = Switch::new(self, ti);
        // A spare, and the block marked as switching: from now on bios
        // starting in it wait.
        let spare = {
            let mut admin = self.admin.lock();
            let admin = &mut *admin;
            self.check_writable(admin)?;
            match self.entry(block) {
                Some(Entry::Pending { .. }) => {
                    return refuse(
                        EBUSY,
                        format_args!(
                            "block {} is pending (unreadable): its next write relocates it",
                            block
                        ),
                    )
                }
                Some(Entry::Fenced { .. }) => {
                    return refuse(
                        EIO,
                        format_args!("block {} is fenced: reload the table first", block),
                    )
                }
                Some(_) => {
                    return refuse(EEXIST, format_args!("block {} is already remapped", block))
                }
                None => {}
            }
            let Some(spare) = admin.spares.alloc() else {
                return refuse(
                    ENOSPC,
                    format_args!("no free spare block for block {}", block),
                );
            };
            let to = Spare {
                block: spare,
                lost: false,
            };
            if let Err(e) = switch.mark(admin, block, Some(to), true) {
                // Not marked, so not the switch's: just allocated, so in
                // use, the release cannot fail.
                admin.spares.release_held(spare);
                return refuse(e, format_args!("remap of block {} failed", block));
            }
            spare
        };
        // Bios mapped to the data block before are waited for; then its
        // data goes to the spare, and the metadata records the move. Other
        // remaps run meanwhile and share the commit.
        switch.wait_mapped();
        let read = match why {
            // Given up on at a suspend, which waits for the bios this
            // switch holds.
            Move::Message => self.read_data(
                block,
                &mut buf,
                &ReadLimits {
                    failfast: false,
                    limit_ms: None,
                    halt: &|| self.suspending(),
                },
            ),
            // Bounded as a retry is, and given up at a suspend: no
            // foreground bio waits for this move but those it holds.
            Move::Weak => self.read_timed(
                &self.data,
                self.data_sector(block),
                &mut buf,
                &ReadLimits {
                    failfast: false,
                    limit_ms: Some(RETRY_LIMIT_MS),
                    halt: &|| self.suspending(),
                },
            ),
        };
        let lost = match read {
            ReadOutcome::Read { .. } => false,
            ReadOutcome::Failed | ReadOutcome::NoAnswer => true,
            // The switch's drop gives the spare back.
            ReadOutcome::Halted | ReadOutcome::NotSent => {
                return refuse(
                    EAGAIN,
                    format_args!(
                        "remap of block {} not done: its read was not sent (no memory, or a hanging disk) or the table is suspending",
                        block
                    ),
                )
            }
        };
        if lost && why == Move::Weak {
            // The switch's drop gives the spare back.
            return refuse(
                EIO,
                format_args!(
                    "weak block {} failed its copy's read: left for its reads to mark it pending",
                    block
                ),
            );
        }
        // A block that cannot be read is zero-filled and flagged lost, but
        // only when the device answers elsewhere: not while it fails every
        // read (its data is not gone then), nor when that is not known.
        if lost {
            match self.data_device_down(ti, |b| b == block, &never) {
                Probe::Up => {}
                Probe::Down => {
                    return refuse(
                        EIO,
                        format_args!(
                            "remap of block {} refused: the data device fails every read (it is down, the data is not lost)",
                            block
                        ),
                    )
                }
                Probe::Unknown | Probe::Halted => {
                    return refuse(
                        EAGAIN,
                        format_args!(
                            "remap of block {} refused: its read failed and the data device does not answer in time (its data is not known lost)",
                            block
                        ),
                    )
                }
            }
        }
        if lost {
            buf.fill(0);
        }
        if let Err(e) = self.spare.rw_sync(self.spare_sector(spare), &mut buf, true) {
            // A spare that cannot be written is not used again.
            switch.spare_failed(&mut self.admin.lock(), 0, true);
            switch.end(|_, _| {});
            // Best effort: a retirement that is not recorded only offers
            // the spare again after a reload, whose next write to it fails
            // and retires it then.
            if let Err(e) = self.commit_slot(spare, Slot::Retired) {
                pr_warn!(
                    "remap: the retirement of spare block {} is not recorded ({:?})\n",
                    spare,
                    e
                );
            }
            return refuse(
                e,
                format_args!(
                    "remap of block {} failed writing spare block {}: spare retired",
                    block, spare
                ),
            );
        }
        // The switch's entry records `lost` once it is durable.
        switch.set_lost(0, lost);
        let committed =
            switch.commit(|image, _| image.set_slot(spare, Slot::InUse { block, lost }));
        switch.end(|_, _| {});
        if let Err(e) = committed {
            return refuse(
                e.into(),
                format_args!(
                    "remap of block {} failed: the metadata commit failed",
                    block
                ),
            );
        }
        Ok(Moved { spare, lost })
    }

    pub(super) fn msg_unremap(
        &self,
        ti: &TargetInfo<'_>,
        arg: &CStr,
        out: &mut Emitter<'_>,
    ) -> Result {
        let block = self.block_arg(ti, arg)?;
        // As in `msg_remap`.
        let _noio = NoIoScope::enter();
        let mut buf = self.block_buffer()?;
        let mut switch = Switch::new(self, ti);
        let old = {
            let mut admin = self.admin.lock();
            let admin = &mut *admin;
            self.check_writable(admin)?;
            match self.entry(block) {
                None => return refuse(ENOENT, format_args!("block {} is not remapped", block)),
                Some(Entry::Pending { .. }) => {
                    return refuse(
                        ENOENT,
                        format_args!("block {} is not remapped (it is pending)", block),
                    )
                }
                Some(Entry::Switching { .. }) => {
                    return refuse(EBUSY, format_args!("block {} is switching", block))
                }
                Some(Entry::Fenced { .. }) => {
                    return refuse(
                        EIO,
                        format_args!("block {} is fenced: reload the table first", block),
                    )
                }
                Some(Entry::Remapped(old)) if old.lost => {
                    // Copied back, its zero-filled spare would be read as
                    // its data.
                    return refuse(
                        EIO,
                        format_args!(
                            "block {}'s data is lost (reads fail): write the block before unremapping it",
                            block
                        ),
                    );
                }
                Some(Entry::Remapped(old)) => {
                    if let Err(e) = switch.mark(admin, block, None, false) {
                        return refuse(e, format_args!("unremap of block {} failed", block));
                    }
                    old
                }
            }
        };
        switch.wait_mapped();
        // The read may be given up on at a suspend, which waits for the
        // bios this switch holds; the write is not (see timed_read.rs).
        let read = self.read_timed(
            &self.spare,
            self.spare_sector(old.block),
            &mut buf,
            &ReadLimits {
                failfast: false,
                limit_ms: None,
                halt: &|| self.suspending(),
            },
        );
        let copied = match read {
            ReadOutcome::Read { .. } => Ok(()),
            ReadOutcome::Halted | ReadOutcome::NotSent => Err(EAGAIN),
            ReadOutcome::Failed | ReadOutcome::NoAnswer => Err(EIO),
        }
        .and_then(|()| self.data.rw_sync(self.data_sector(block), &mut buf, true));
        if let Err(e) = copied {
            // Rolled back: the block stays remapped.
            drop(switch);
            return refuse(
                e,
                format_args!("unremap of block {} failed: it stays remapped", block),
            );
        }
        let committed = switch.commit(|image, _| image.set_slot(old.block, Slot::Free));
        switch.end(|admin, _| {
            // In use until now (the entry held it), so the release cannot
            // fail: the free stack has room for every spare that is not
            // retired.
            admin.spares.release_held(old.block);
            admin.exhaustion_reported = false;
        });
        if let Err(e) = committed {
            return refuse(
                e.into(),
                format_args!(
                    "unremap of block {} failed: the metadata commit failed",
                    block
                ),
            );
        }
        out.emit(format_args!(
            "unremapped block {}: data copied back, spare block {} free\n",
            block, old.block
        ));
        Ok(())
    }

    pub(super) fn msg_lookup(
        &self,
        ti: &TargetInfo<'_>,
        arg: &CStr,
        out: &mut Emitter<'_>,
    ) -> Result {
        let block = self.block_arg(ti, arg)?;
        match self.entry(block) {
            Some(Entry::Pending { lost, .. }) => out.emit(format_args!(
                "block {} pending: unreadable{}, its next write relocates it\n",
                block,
                if lost {
                    " (its spare failed: data lost, reads fail)"
                } else {
                    ""
                }
            )),
            Some(Entry::Remapped(s) | Entry::Switching { to: s }) => out.emit(format_args!(
                "block {} remapped to spare block {} (spare device sector {}){}\n",
                block,
                s.block,
                self.spare_sector(s.block),
                if s.lost {
                    ", data lost: reads fail until the block is written"
                } else {
                    ""
                }
            )),
            Some(Entry::Fenced { at, lost }) => out.emit(format_args!(
                "block {} fenced: {}, writes fail until the table is loaded again\n",
                block,
                match (lost, at.is_some()) {
                    (true, _) => "data lost, reads fail",
                    (false, true) => "reads go to its spare",
                    (false, false) => "reads go to the data block",
                }
            )),
            None => out.emit(format_args!("block {} not remapped\n", block)),
        }
        Ok(())
    }

    pub(super) fn msg_list(
        &self,
        ti: &TargetInfo<'_>,
        args: &[&CStr],
        out: &mut Emitter<'_>,
    ) -> Result {
        let number = |i: usize, default: u64| match args.get(i) {
            None => Some(default),
            Some(a) => parse_u64(a),
        };
        let (Some(from), Some(count)) = (number(0, 0), number(1, u64::MAX)) else {
            return refuse(
                EINVAL,
                format_args!("list takes [<block> [<count>]] as numbers"),
            );
        };
        if args.len() > 2 || from >= self.nr_blocks(ti) {
            return refuse(
                EINVAL,
                format_args!(
                    "list takes [<block> [<count>]], block below {}",
                    self.nr_blocks(ti)
                ),
            );
        }
        // One page: room for the lines that fit in the answer (each at
        // least 4 bytes) and one more, which says where the next page
        // starts; the smallest blocks from `from` on, in one pass over the
        // table (under the RCU read lock: no sleep, no lock that the worker
        // needs). Bios may wait for the worker, whose commits may wait for
        // reclaim: no allocation here waits for I/O through this device.
        let cap = (out.remaining() / 4 + 1).min(usize::try_from(count).unwrap_or(usize::MAX)) + 1;
        let mut page = {
            let _noio = NoIoScope::enter();
            FirstBlocks::new(cap)?
        };
        self.table.for_each(|block, value| {
            if block >= from {
                page.offer(block, value);
            }
            true
        });
        let entries = page.into_sorted();
        // One line per block; a last "more <block>" line says where to go
        // on when `count` is reached or the answer would not fit.
        for (n, &(block, value)) in entries.iter().enumerate() {
            if n as u64 == count || out.remaining() < 64 {
                out.emit(format_args!("more {}\n", block));
                break;
            }
            match Entry::decode(value) {
                Entry::Pending { lost, .. } => out.emit(format_args!(
                    "{} pending{}\n",
                    block,
                    if lost { " lost" } else { "" }
                )),
                Entry::Fenced { lost, .. } => out.emit(format_args!(
                    "{} fenced{}\n",
                    block,
                    if lost { " lost" } else { "" }
                )),
                Entry::Remapped(s) | Entry::Switching { to: s } => out.emit(format_args!(
                    "{} {}{}\n",
                    block,
                    s.block,
                    if s.lost { " lost" } else { "" }
                )),
            }
        }
        Ok(())
    }

    pub(super) fn msg_stats(&self, out: &mut Emitter<'_>) {
        let sums = self.device_stats.read(&self.stats);
        for (name, sum) in stat::NAMES.iter().zip(sums) {
            out.emit(format_args!("{}={} ", name, sum));
        }
        let admin = self.admin.lock();
        let meta = self.meta.lock();
        out.emit(format_args!(
            "remapped_blocks={} pending_blocks={} fenced_blocks={} lost_blocks={} spares_used={} spares_free={} spares_retired={} spares_total={} metadata_generation={} metadata_copies_intact={} commits={} commit_ns_total={} commit_p50_us={} commit_p99_us={} commit_max_us={} memory_bytes={} metadata_uuid={} low_water={} block_size={}",
            self.remapped(&admin),
            admin.pending,
            admin.fenced,
            admin.lost,
            admin.spares.in_use(),
            admin.spares.free(),
            admin.spares.retired(),
            admin.spares.capacity(),
            meta.image().committed(),
            meta.image().intact_copies(),
            meta.commits().0,
            meta.commits().1,
            meta.commit_times().percentile(500),
            meta.commit_times().percentile(990),
            meta.commit_times().max(),
            self.table.hash_bytes()
                + self.table.summary_bytes()
                + admin.spares.memory_bytes()
                + meta.image().memory_bytes(),
            crate::ondisk::UuidText(meta.image().uuid()),
            u8::from(self.below_low_water(&admin)),
            self.block_size
        ));
        drop(meta);
        drop(admin);
        self.emit_scrub_stats(out);
        out.emit(format_args!("\n"));
    }
}

impl RemapTarget {
    pub(super) fn handle_message(
        &self,
        ti: &TargetInfo<'_>,
        args: &[&CStr],
        out: &mut Emitter<'_>,
    ) -> Result {
        let Some((cmd, rest)) = args.split_first() else {
            return refuse(EINVAL, format_args!("empty message, try 'help'"));
        };
        match (cmd.to_bytes(), rest) {
            (b"help", []) => {
                out.emit(format_args!("{}", HELP_TEXT));
                Ok(())
            }
            (b"stats", []) => {
                self.msg_stats(out);
                Ok(())
            }
            (b"clear_stats", []) => {
                self.device_stats.clear(&self.stats);
                out.emit(format_args!("statistics cleared\n"));
                Ok(())
            }
            (b"remap", [sector]) => self.msg_remap(ti, sector, out),
            (b"unremap", [sector]) => self.msg_unremap(ti, sector, out),
            (b"lookup", [sector]) => self.msg_lookup(ti, sector, out),
            (b"list", rest) => self.msg_list(ti, rest, out),
            (b"scrub", [sub]) if sub.to_bytes() == b"start" => self.msg_scrub_start(ti, None, out),
            (b"scrub", [sub, rate]) if sub.to_bytes() == b"start" => {
                self.msg_scrub_start(ti, Some(rate), out)
            }
            (b"scrub", [sub]) if sub.to_bytes() == b"stop" => self.msg_scrub_stop(ti, out),
            (b"scrub", _) => refuse(
                EINVAL,
                format_args!("scrub takes 'start [<MiB/s>]' or 'stop', try 'help'"),
            ),
            (b"help" | b"stats" | b"clear_stats" | b"remap" | b"unremap" | b"lookup", _) => refuse(
                EINVAL,
                format_args!(
                    "wrong number of arguments for '{}' ({}), try 'help'",
                    cmd.to_str().unwrap_or("?"),
                    rest.len()
                ),
            ),
            _ => refuse(
                EINVAL,
                format_args!(
                    "unrecognised message '{}' ({} arguments), try 'help'",
                    cmd.to_str().unwrap_or("?"),
                    rest.len()
                ),
            ),
        }
    }
}
