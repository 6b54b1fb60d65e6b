// SPDX-License-Identifier: GPL-2.0

//! dm-remap: a device-mapper target that remaps failing blocks to spares.
//!
//! Table line (see `README.md` and `table_args.rs`):
//!
//! ```text
//! <start> <len> remap <data_dev> <data_offset> <spare_dev> <spare_offset> <spare_len>
//!     [<#features> <feature>...]
//! ```
//!
//! Every bio is looked up in the remap table: the parts on remapped blocks
//! go to their spare blocks, the rest to the data device at
//! `data_offset + dm_target_offset(sector)`. Flushes reach the spare device
//! too. Blocks are remapped and unremapped with `dmsetup message`; while a
//! block's mapping switches, bios starting in it wait on a hold list, and
//! bios mapped before the switch are waited for (SRCU from `map` to
//! `end_io`), so no write is lost. A switch takes effect only once the
//! metadata commit that records it is durable (`metadata.rs`); the table is
//! loaded from the metadata when the target is constructed.

// The abstraction layer offers the whole target interface; this target
// uses part of it.
mod bufio;
#[allow(dead_code)]
mod dm;
#[path = "dm_remap/entry.rs"]
mod entry;
mod metadata;
mod percpu;
mod rcu_box;
mod remap_table;
mod spare_alloc;
mod srcu;
mod table_args;

use bufio::{BufioClient, OrderedQueue};
use core::{
    fmt,
    sync::atomic::{AtomicBool, Ordering::Relaxed},
};
use dm::{
    Bio, BioOp, BioQueue, BlockHold, Ctr, DeviceVisitor, DmDev, Emitter, EndIoResult, KeptBio,
    MapResult, NoIoScope, QueueLimits, StatusType, TargetInfo,
};
use entry::{Entry, Spare, MAX_SPARE_BLOCKS};
use kernel::{
    new_mutex,
    prelude::*,
    sync::{rcu, Arc, Mutex},
    time::{delay::fsleep, Delta, Instant, Monotonic},
};
use metadata::{
    CommitError, Format, FormatError, Identity, LoadError, MetaImage, MetaWriter, Slot,
};
use percpu::PerCpuCounters;
use remap_table::{RemapTable, TableError, Writer};
use spare_alloc::{SpareAllocator, METADATA_COPIES};
use srcu::{ReadIndex, Srcu};
use table_args::{parse_u64, Features, Geometry};

module! {
    type: RemapModule,
    name: "dm_remap",
    authors: ["dm-remap developers"],
    description: "device-mapper target that remaps failing blocks to spares",
    license: "GPL",
}

#[pin_data]
struct RemapModule {
    #[pin]
    registration: dm::Registration<RemapTarget>,
}

impl kernel::InPlaceModule for RemapModule {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        // SAFETY: module initialisation runs once, before the target type
        // is registered, so before any use of the lock.
        unsafe { SPARE_OWNERS.init() };
        try_pin_init!(Self {
            registration <- dm::Registration::new(module),
        })
    }
}

/// Reads of a failed read are retried this often per block, unless the
/// table line says otherwise (`read_retries`).
const DEFAULT_READ_RETRIES: u32 = 1;

/// Relocations the worker gathers before it commits them together.
const GROUP_MAX: usize = 128;

/// Blocks of the data area that a group with errors reads, spread from the
/// first to the last, to tell a dead data device from bad blocks.
const DEVICE_PROBES: u64 = 8;

/// A spare area claimed by a live table.
struct Owner {
    id: u64,
    /// The mapped device of the table (see `Ctr::device_identity`).
    device: usize,
    /// The table (see `Ctr::table_identity`).
    table: usize,
    devt: u32,
    start: u64,
    end: u64,
}

/// Every claimed spare area, and the next claim's id.
struct Owners {
    list: KVec<Owner>,
    next_id: u64,
}

kernel::sync::global_lock! {
    // SAFETY: initialised in `RemapModule::init`, before the target type is
    // registered.
    unsafe(uninit) static SPARE_OWNERS: Mutex<Owners> = Owners {
        list: KVec::new(),
        next_id: 0,
    };
}

/// One target's claim on its spare area, given up on drop. Two targets
/// writing metadata into one area would destroy it, whether they belong to
/// two devices or to one table; two tables of one device are a reload,
/// which takes over in `preresume`.
struct SpareClaim {
    id: u64,
}

/// Why a spare area cannot be claimed.
enum ClaimError {
    /// Another device's table holds it.
    OtherDevice,
    /// Another target of the same table holds it.
    SameTable,
    NoMemory,
}

impl SpareClaim {
    /// Claims sectors `start..start + len` of `devt` for a target of
    /// `table` in `device`; also says whether another table of the same
    /// device holds them (a reload).
    fn new(
        device: usize,
        table: usize,
        devt: u32,
        start: u64,
        len: u64,
    ) -> Result<(Self, bool), ClaimError> {
        let end = start + len;
        let mut owners = SPARE_OWNERS.lock();
        let mut reloading = false;
        for o in owners.list.iter() {
            if o.devt == devt && o.start < end && start < o.end {
                if o.device != device {
                    return Err(ClaimError::OtherDevice);
                }
                if o.table == table {
                    return Err(ClaimError::SameTable);
                }
                reloading = true;
            }
        }
        let id = owners.next_id;
        owners.next_id += 1;
        owners
            .list
            .push(
                Owner {
                    id,
                    device,
                    table,
                    devt,
                    start,
                    end,
                },
                GFP_KERNEL,
            )
            .map_err(|_| ClaimError::NoMemory)?;
        Ok((Self { id }, reloading))
    }
}

impl Drop for SpareClaim {
    fn drop(&mut self) {
        let mut owners = SPARE_OWNERS.lock();
        owners.list.retain(|o| o.id != self.id);
        if owners.list.is_empty() {
            // Statics are not dropped on module unload: free the buffer
            // with the last claim (no table exists when the module goes).
            owners.list = KVec::new();
        }
    }
}

/// The statistics counters, by index.
mod stat {
    pub(crate) const READS: usize = 0;
    pub(crate) const WRITES: usize = 1;
    pub(crate) const OTHER_BIOS: usize = 2;
    pub(crate) const REMAPPED_READS: usize = 3;
    pub(crate) const REMAPPED_WRITES: usize = 4;
    pub(crate) const REMAPPED_OTHER: usize = 5;
    pub(crate) const SPLITS: usize = 6;
    pub(crate) const DEFERRED: usize = 7;
    pub(crate) const READ_ERRORS: usize = 8;
    pub(crate) const WRITE_ERRORS: usize = 9;
    pub(crate) const OTHER_ERRORS: usize = 10;
    pub(crate) const TRANSIENT_ERRORS: usize = 11;
    pub(crate) const AUTO_REMAPS: usize = 12;
    pub(crate) const SPARE_WRITE_ERRORS: usize = 13;
    pub(crate) const PENDING_MARKED: usize = 14;
    pub(crate) const PENDING_CLEARED: usize = 15;
    pub(crate) const FAILED_BIOS: usize = 16;
    pub(crate) const FENCED_BIOS: usize = 17;
    pub(crate) const DEVICE_DOWN_GROUPS: usize = 18;
    pub(crate) const COUNT: usize = 19;
    pub(crate) const NAMES: [&str; COUNT] = [
        "reads",
        "writes",
        "other_bios",
        "remapped_reads",
        "remapped_writes",
        "remapped_other",
        "splits",
        "deferred",
        "read_errors",
        "write_errors",
        "other_errors",
        "transient_errors",
        "auto_remaps",
        "spare_write_errors",
        "pending_marked",
        "pending_cleared",
        "failed_bios",
        "fenced_bios",
        "device_down_groups",
    ];
}

/// The tag of the per-bio data: what the bio was, and how far it went. The
/// per-bio offset is the bio's first sector counted from the target's
/// start; the section is its SRCU read token.
mod per_bio {
    pub(crate) const READ: u64 = 1 << 32;
    pub(crate) const WRITE: u64 = 1 << 33;
    /// The bio holds a read section of `in_flight`.
    pub(crate) const IN_SECTION: u64 = 1 << 34;
    /// A read of a pending block: success clears the pending state.
    pub(crate) const PENDING_READ: u64 = 1 << 35;
    /// A write to a pending block, taken in `map` for the worker.
    pub(crate) const PENDING_WRITE: u64 = 1 << 36;
    /// Ended by the worker: `end_io` passes it on as it is.
    pub(crate) const ENDED: u64 = 1 << 37;
}

/// What changes the remap table and the allocator.
struct Admin {
    writer: Writer,
    spares: SpareAllocator,
    /// The number of pending blocks.
    pending: u32,
    /// The number of fenced blocks (see [`Entry::Fenced`]).
    fenced: u32,
    /// The table has been resumed: before, another table of the device
    /// may still be live, and the allocator and table are those of the
    /// constructor, which `preresume` may load again.
    resumed: bool,
    /// Another table of this device was live when this one was loaded:
    /// load again in `preresume`, when it has stopped.
    reload_pending: bool,
    /// Spare exhaustion was reported with a table event; cleared when a
    /// spare is freed.
    exhaustion_reported: bool,
}

/// One `remap` target: a data area and a spare area, on one device or two.
#[pin_data(PinnedDrop)]
struct RemapTarget {
    /// Failed bios and writes to pending blocks, for the worker.
    kept: BioQueue,
    /// Dropped early: draining it ends every commit while the devices are
    /// still open.
    queue: OrderedQueue,
    /// The metadata writer; its dm-bufio client uses `spare`.
    meta: Arc<MetaWriter>,
    data: DmDev,
    /// First sector of the data area on the data device.
    data_offset: u64,
    /// Shared with the metadata writer's dm-bufio client.
    spare: Arc<DmDev>,
    /// First sector of the spare area on the spare device.
    spare_offset: u64,
    /// Length of the spare area in sectors.
    spare_len: u64,
    /// The remap unit in bytes, and as a shift of sectors.
    block_size: u32,
    block_shift: u32,
    /// The features as given in the table line, printed back by `table`.
    features: Features,
    /// Whether the table may write (not `dmsetup --readonly`).
    writable: bool,
    /// Whether I/O errors are handled (writable, no `no_auto_remap`).
    auto_remap: bool,
    /// Reads of a failed read are retried this often per block.
    read_retries: u32,
    _claim: SpareClaim,
    table: RemapTable,
    /// Bios are inside a read section from `map` to `end_io`.
    in_flight: Srcu,
    /// Bios waiting for blocks whose mapping switches.
    hold: BlockHold,
    stats: PerCpuCounters<{ stat::COUNT }>,
    /// The data device failed every probe read (see `check_data_device`);
    /// cleared by the next bio that completes on it without error.
    data_down: AtomicBool,
    #[pin]
    admin: Mutex<Admin>,
}

const HELP_TEXT: &str = "\
remap target messages (<sector> counts from the target's first sector):
  help                        this text
  stats                       I/O and remap counters as key=value
  clear_stats                 zero the I/O counters
  remap <sector>              move the block holding <sector> to a spare
  unremap <sector>            copy the block back and free its spare
  lookup <sector>             where the block holding <sector> goes
  list [<block> [<count>]]    remapped and pending blocks from <block> on,
                              in order: '<block> <spare>[ lost]' or
                              '<block> pending'
";

/// A message refused: the reason goes to the kernel log, the errno to the
/// caller.
fn refuse<T>(err: Error, reason: fmt::Arguments<'_>) -> Result<T> {
    pr_warn!("remap: {}\n", reason);
    Err(err)
}

impl RemapTarget {
    /// Remapped blocks: the table's entries but the pending and fenced
    /// ones.
    fn remapped(&self, admin: &Admin) -> usize {
        self.table.len(&admin.writer) - admin.pending as usize - admin.fenced as usize
    }

    /// The table entry of `block`. Any context.
    #[inline(always)]
    fn entry(&self, block: u64) -> Option<Entry> {
        self.table.get(block).map(Entry::decode)
    }

    /// Sets the entry of `block`, which has one. Under the admin lock.
    fn set_entry(&self, admin: &mut Admin, block: u64, entry: Entry) {
        // Only the admin lock's holder adds or removes entries, and the
        // caller saw this one under it: the update finds it.
        let found = self.table.update(&mut admin.writer, block, entry.encode());
        debug_assert!(found.is_ok());
    }

    /// Removes the entry of `block`, which has one. Under the admin lock.
    fn remove_entry(&self, admin: &mut Admin, block: u64) {
        // As in `set_entry`: the entry is there.
        let found = self.table.remove(&mut admin.writer, block);
        debug_assert!(found.is_ok());
    }

    /// Puts `block`, whose switch was written by a commit of unknown
    /// outcome, in the fenced state: `old` is its entry before the switch.
    fn fence(&self, admin: &mut Admin, block: u64, old: Option<Entry>) {
        if matches!(old, Some(Entry::Pending { .. })) {
            admin.pending -= 1;
        }
        if !matches!(old, Some(Entry::Fenced { .. })) {
            admin.fenced += 1;
        }
        self.set_entry(admin, block, Entry::fenced(old));
        pr_warn!(
            "remap: block {} is fenced: a metadata commit that may be on disk changed it; writes to it fail until the table is loaded again\n",
            block
        );
    }

    fn nr_blocks(&self, ti: &TargetInfo<'_>) -> u64 {
        ti.len() >> self.block_shift
    }

    /// The sector of a spare block on the spare device.
    fn spare_sector(&self, spare: u32) -> u64 {
        self.spare_offset + (u64::from(spare) << self.block_shift)
    }

    /// The sector of a data block on the data device.
    fn data_sector(&self, block: u64) -> u64 {
        self.data_offset + (block << self.block_shift)
    }

    /// Reads the block of a `<sector>` message argument.
    fn block_arg(&self, ti: &TargetInfo<'_>, arg: &CStr) -> Result<u64> {
        match parse_u64(arg) {
            Some(sector) if sector < ti.len() => Ok(sector >> self.block_shift),
            _ => refuse(
                EINVAL,
                format_args!(
                    "invalid sector '{}': a number below {} is needed",
                    arg.to_str().unwrap_or("?"),
                    ti.len()
                ),
            ),
        }
    }

    /// Whether `block`'s mapping is switching. Any context.
    fn switching(&self, block: u64) -> bool {
        let guard = rcu::read_lock();
        matches!(self.table.lookup(&guard, block).map(Entry::decode), Some(e) if e.is_switching())
    }

    /// Maps and submits the bios that waited for switches now finished,
    /// as `map` does (each lies in one block, so it is never cut); `map`
    /// defers again the ones whose block switches again.
    fn release_held(&self, ti: &TargetInfo<'_>) {
        self.hold
            .release(|bio| <Self as dm::Target>::map(self, ti, bio));
    }

    /// Refuses a table change when metadata cannot record it, or before
    /// the table is resumed. Under the admin lock.
    fn check_writable(&self, admin: &Admin) -> Result {
        if !self.writable {
            return refuse(EROFS, format_args!("the table is read-only"));
        }
        if !admin.resumed {
            return refuse(
                EBUSY,
                format_args!("the table has not been resumed: resume it first"),
            );
        }
        if self.meta.lock().failed() {
            return refuse(
                EIO,
                format_args!("metadata writes failed: reload the table to try again"),
            );
        }
        Ok(())
    }

    /// Records spare slot `spare` as `slot` and waits until that is durable.
    fn commit_slot(&self, spare: u32, slot: Slot) -> Result<(), CommitError> {
        self.meta
            .change(self.queue.queue(), |image| image.set_slot(spare, slot))
    }

    /// Reads data block `block` into `buf`, retrying as a failed read is.
    fn read_data(&self, block: u64, buf: &mut KVec<u8>) -> Result {
        let mut result = self.data.rw_sync(self.data_sector(block), buf, false);
        for _ in 0..self.read_retries {
            if result.is_ok() {
                break;
            }
            result = self.data.rw_sync(self.data_sector(block), buf, false);
        }
        result
    }

    /// Sends a bio that starts at target offset `offset`, in remapped
    /// `block`, to that block's spare.
    #[inline(always)]
    fn send_to_spare(&self, bio: &mut Bio<'_>, op: BioOp, offset: u64, block: u64, to: Spare) {
        let within = offset - (block << self.block_shift);
        bio.remap(&self.spare, self.spare_sector(to.block) + within);
        self.stats.inc(match op {
            BioOp::Read => stat::REMAPPED_READS,
            BioOp::Write => stat::REMAPPED_WRITES,
            _ => stat::REMAPPED_OTHER,
        });
    }

    /// Counts a mapped bio and records, for `end_io` and the worker, its
    /// read section, what it was, where it starts in the target (`offset`)
    /// and where its data is. `op` is `bio.op()`, decoded once per bio by
    /// the caller; `flags` are more `per_bio` flags.
    #[inline(always)]
    fn account(&self, bio: &mut Bio<'_>, op: BioOp, idx: ReadIndex, offset: u64, flags: u64) {
        let (kind, counter) = match op {
            BioOp::Read => (per_bio::READ, stat::READS),
            BioOp::Write => (per_bio::WRITE, stat::WRITES),
            _ => (0, stat::OTHER_BIOS),
        };
        self.stats.inc(counter);
        bio.record(kind | per_bio::IN_SECTION | flags, offset, idx.into_raw());
    }

    /// Keeps the first `sectors` of a bio in `map`, counting the split.
    #[inline(always)]
    fn cut(&self, bio: &mut Bio<'_>, sectors: u64) {
        if bio.accept_partial(sectors as u32) {
            self.stats.inc(stat::SPLITS);
        }
    }

    fn block_buffer(&self) -> Result<KVec<u8>> {
        let mut buf = KVec::with_capacity(self.block_size as usize, GFP_KERNEL)?;
        buf.resize(self.block_size as usize, 0, GFP_KERNEL)?;
        Ok(buf)
    }

    /// Loads the metadata again and rebuilds the table and allocator from
    /// it. Only while no bio is mapped (suspended, before resume).
    fn load_again(&self, admin: &mut Admin) -> Result {
        let fmt = *self.meta.lock().image().format();
        let started = Instant::<Monotonic>::now();
        let (image, report) =
            metadata::load_from(self.meta.client(), &self.spare, self.spare_offset, &fmt).map_err(
                |e| {
                    let (reason, err) = load_error(&e, &fmt.identity);
                    pr_err!(
                        "remap: loading the metadata again failed: {}\n",
                        reason.to_str().unwrap_or("?")
                    );
                    err
                },
            )?;
        let read_us = started.elapsed().as_micros_ceil();
        let fail = |reason: &CStr| {
            pr_err!("remap: {}\n", reason.to_str().unwrap_or("?"));
            EIO
        };
        let (spares, in_use) = spares_of(&image).map_err(fail)?;
        self.table.clear(&mut admin.writer).map_err(table_errno)?;
        let pending = fill_table(&image, &self.table, &mut admin.writer, &in_use).map_err(fail)?;
        admin.spares = spares;
        admin.pending = pending;
        admin.fenced = 0;
        admin.exhaustion_reported = false;
        report_load(
            &report,
            self.remapped(admin),
            admin.pending,
            (read_us, started.elapsed().as_micros_ceil()),
        );
        self.meta.lock().reload(image);
        Ok(())
    }

    fn msg_remap(&self, ti: &TargetInfo<'_>, arg: &CStr, out: &mut Emitter<'_>) -> Result {
        let block = self.block_arg(ti, arg)?;
        // Bios wait for this switch: its allocations must not wait for
        // reclaim that may write through the device.
        let _noio = NoIoScope::enter();
        let mut buf = self.block_buffer()?;
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
            let switching = Entry::Switching {
                to: Spare {
                    block: spare,
                    lost: false,
                },
            };
            if let Err(e) = self
                .table
                .insert(&mut admin.writer, block, switching.encode())
            {
                // Just allocated, so in use: the release cannot fail.
                let _ = admin.spares.release(spare);
                return refuse(
                    table_errno(e),
                    format_args!("remap of block {} failed", block),
                );
            }
            spare
        };
        // Bios mapped to the data block before are waited for; then its
        // data goes to the spare, and the metadata records the move. Other
        // remaps run meanwhile and share the commit.
        self.in_flight.synchronize();
        let lost = self.read_data(block, &mut buf).is_err();
        // A block that cannot be read is zero-filled and flagged lost, but
        // not while the whole device fails: its data is not gone then.
        let down = lost && self.data_device_down(ti, |b| b == block);
        if lost {
            buf.fill(0);
        }
        let spare_written = if down {
            Err(EIO)
        } else {
            self.spare.rw_sync(self.spare_sector(spare), &mut buf, true)
        };
        let committed = match spare_written {
            Ok(()) => self.commit_slot(spare, Slot::InUse { block, lost }),
            // Nothing was committed.
            Err(_) => Err(CommitError::Refused),
        };
        {
            let mut admin = self.admin.lock();
            let admin = &mut *admin;
            match committed {
                Ok(()) => {
                    self.set_entry(admin, block, Entry::Remapped(Spare { block: spare, lost }))
                }
                // The spare and the data block hold the same data, and no
                // write reaches either until the table is loaded again.
                Err(CommitError::Indeterminate) => self.fence(admin, block, None),
                Err(_) => self.remove_entry(admin, block),
            }
            if down {
                // Allocated above, unused: the release cannot fail.
                let _ = admin.spares.release(spare);
            } else if spare_written.is_err() {
                // A spare that cannot be written is not used again. It is
                // in use (allocated above), so the retirement cannot fail.
                let _ = admin.spares.retire(spare);
            }
            // After a failed commit the image still records the spare as
            // used, and no commit follows: it stays allocated.
        }
        self.release_held(ti);
        if down {
            return refuse(
                EIO,
                format_args!(
                    "remap of block {} refused: the data device fails every read (it is down, the data is not lost)",
                    block
                ),
            );
        }
        match (spare_written, committed) {
            (_, Ok(())) => {
                out.emit(format_args!(
                    "remapped block {} to spare block {} (spare device sector {}){}\n",
                    block,
                    spare,
                    self.spare_sector(spare),
                    if lost {
                        ", data unreadable: zero-filled"
                    } else {
                        ""
                    }
                ));
                Ok(())
            }
            (Err(e), _) => {
                // Best effort: a retirement that is not recorded only
                // offers the spare again after a reload, whose next write
                // to it fails and retires it then.
                let _ = self.commit_slot(spare, Slot::Retired);
                refuse(
                    e,
                    format_args!(
                        "remap of block {} failed writing spare block {}: spare retired",
                        block, spare
                    ),
                )
            }
            (Ok(()), Err(e)) => refuse(
                e.into(),
                format_args!(
                    "remap of block {} failed: the metadata commit failed",
                    block
                ),
            ),
        }
    }

    fn msg_unremap(&self, ti: &TargetInfo<'_>, arg: &CStr, out: &mut Emitter<'_>) -> Result {
        let block = self.block_arg(ti, arg)?;
        // As in `msg_remap`.
        let _noio = NoIoScope::enter();
        let mut buf = self.block_buffer()?;
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
                Some(Entry::Remapped(old)) => {
                    self.set_entry(admin, block, Entry::Switching { to: old });
                    old
                }
            }
        };
        self.in_flight.synchronize();
        let copied = self
            .spare
            .rw_sync(self.spare_sector(old.block), &mut buf, false)
            .and_then(|()| self.data.rw_sync(self.data_sector(block), &mut buf, true));
        let committed = match copied {
            Ok(()) => self.commit_slot(old.block, Slot::Free),
            Err(_) => Err(CommitError::Refused),
        };
        {
            let mut admin = self.admin.lock();
            let admin = &mut *admin;
            match committed {
                Ok(()) => {
                    self.remove_entry(admin, block);
                    // In use until now (the entry held it), so the release
                    // cannot fail: the free stack has room for every
                    // spare that is not retired.
                    let _ = admin.spares.release(old.block);
                    admin.exhaustion_reported = false;
                }
                // The data went back to the data block: both places hold
                // it, and neither takes a write until a reload.
                Err(CommitError::Indeterminate) => {
                    self.fence(admin, block, Some(Entry::Remapped(old)))
                }
                Err(_) => self.set_entry(admin, block, Entry::Remapped(old)),
            }
        }
        self.release_held(ti);
        if let Err(e) = copied {
            return refuse(
                e,
                format_args!("unremap of block {} failed: it stays remapped", block),
            );
        }
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

    fn msg_lookup(&self, ti: &TargetInfo<'_>, arg: &CStr, out: &mut Emitter<'_>) -> Result {
        let block = self.block_arg(ti, arg)?;
        match self.entry(block) {
            Some(Entry::Pending { .. }) => out.emit(format_args!(
                "block {} pending: unreadable, its next write relocates it\n",
                block
            )),
            Some(Entry::Remapped(s) | Entry::Switching { to: s }) => out.emit(format_args!(
                "block {} remapped to spare block {} (spare device sector {}){}\n",
                block,
                s.block,
                self.spare_sector(s.block),
                if s.lost { ", data lost" } else { "" }
            )),
            Some(Entry::Fenced { at }) => out.emit(format_args!(
                "block {} fenced: reads go to {}, writes fail until the table is loaded again\n",
                block,
                if at.is_some() {
                    "its spare"
                } else {
                    "the data block"
                }
            )),
            None => out.emit(format_args!("block {} not remapped\n", block)),
        }
        Ok(())
    }

    fn msg_list(&self, ti: &TargetInfo<'_>, args: &[&CStr], out: &mut Emitter<'_>) -> Result {
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
        let admin = self.admin.lock();
        // Room for every entry first: `for_each` runs under the RCU read
        // lock, where nothing may sleep. The admin lock keeps the count.
        let mut entries = KVVec::with_capacity(self.table.len(&admin.writer), GFP_KERNEL)?;
        self.table.for_each(|block, value| {
            block < from || entries.push_within_capacity((block, value)).is_ok()
        });
        drop(admin);
        heap_sort_by_block(&mut entries);
        // One line per block; a last "more <block>" line says where to go
        // on when `count` is reached or the answer would not fit.
        for (n, &(block, value)) in entries.iter().enumerate() {
            if n as u64 == count || out.remaining() < 64 {
                out.emit(format_args!("more {}\n", block));
                break;
            }
            match Entry::decode(value) {
                Entry::Pending { .. } => out.emit(format_args!("{} pending\n", block)),
                Entry::Fenced { .. } => out.emit(format_args!("{} fenced\n", block)),
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

    fn msg_stats(&self, out: &mut Emitter<'_>) {
        for (i, name) in stat::NAMES.iter().enumerate() {
            out.emit(format_args!("{}={} ", name, self.stats.sum(i)));
        }
        let admin = self.admin.lock();
        let meta = self.meta.lock();
        out.emit(format_args!(
            "remapped_blocks={} pending_blocks={} fenced_blocks={} spares_used={} spares_free={} spares_retired={} spares_total={} metadata_generation={} metadata_copies_intact={} commits={} commit_ns_total={} commit_p50_us={} commit_p99_us={} commit_max_us={} memory_bytes={}\n",
            self.remapped(&admin),
            admin.pending,
            admin.fenced,
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
                + meta.image().memory_bytes()
        ));
    }
}

/// Sorts table entries by block in place, in O(n log n) and without
/// recursion or allocation (core's sort carries panic paths that objtool
/// flags in a module).
fn heap_sort_by_block(v: &mut [(u64, u32)]) {
    fn sift_down(v: &mut [(u64, u32)], mut root: usize, end: usize) {
        loop {
            let mut child = 2 * root + 1;
            if child >= end {
                return;
            }
            if child + 1 < end && v[child + 1].0 > v[child].0 {
                child += 1;
            }
            if v[root].0 >= v[child].0 {
                return;
            }
            v.swap(root, child);
            root = child;
        }
    }
    let n = v.len();
    for root in (0..n / 2).rev() {
        sift_down(v, root, n);
    }
    for end in (1..n).rev() {
        v.swap(0, end);
        sift_down(v, 0, end);
    }
}

/// Whether an I/O error may go away on another block: a medium or device
/// error. Others (not supported, would block, no space, reservation
/// conflicts, ...) say nothing about the block and pass through.
fn remappable(status: u8) -> bool {
    matches!(
        u32::from(status),
        dm::bindings::dmr_status_DMR_STS_IOERR
            | dm::bindings::dmr_status_DMR_STS_MEDIUM
            | dm::bindings::dmr_status_DMR_STS_PROTECTION
    )
}

/// A block the worker moves to a spare, and the data to write there.
struct Relocation {
    block: u64,
    data: KVec<u8>,
    /// The index in [`Group::bios`] of the bio that waits for it.
    bio: usize,
    /// Whether this relocation writes the block: a later one of the same
    /// block in the group takes over, its data being newer.
    owner: bool,
    /// Whether the block is marked switching in the table.
    claimed: bool,
    /// The spare it goes to, while it has one.
    spare: Option<u32>,
    /// The block's entry before: remapped, pending, or none.
    old: Option<Entry>,
    /// Whether the block now maps to its new spare.
    done: bool,
}

/// A kept bio, the status it ends with if its data cannot be saved, and
/// whether that is already known.
struct GroupBio {
    bio: KeptBio,
    error: u8,
    failed: bool,
}

/// What the worker gathered from kept bios, committed together.
struct Group {
    bios: KVec<GroupBio>,
    relocations: KVec<Relocation>,
    /// Data blocks that could not be read, and pending blocks read after
    /// all.
    unreadable: KVec<u64>,
    readable: KVec<u64>,
    /// Pending slots taken and given back, with their blocks.
    pending_new: KVec<(u64, u32)>,
    pending_gone: KVec<(u64, u32)>,
    /// Spares that failed a write.
    retired: KVec<u32>,
}

impl Group {
    fn new() -> Self {
        Self {
            bios: KVec::new(),
            relocations: KVec::new(),
            unreadable: KVec::new(),
            readable: KVec::new(),
            pending_new: KVec::new(),
            pending_gone: KVec::new(),
            retired: KVec::new(),
        }
    }
}

impl RemapTarget {
    fn is_pending(&self, block: u64) -> bool {
        matches!(self.entry(block), Some(e) if e.is_pending())
    }

    /// Reads or writes `block` where it maps now, synchronously, waiting
    /// while a message switches it. Inside a read section: a switch that
    /// starts meanwhile copies the block after this write.
    fn retry_io(&self, block: u64, buf: &mut KVec<u8>, write: bool) -> Result {
        loop {
            let idx = self.in_flight.down_read();
            let result = match self.entry(block) {
                Some(Entry::Switching { .. }) => {
                    // Every switch ends (rolled back at worst) and
                    // releases its block: this wait ends.
                    self.in_flight.up_read(idx);
                    fsleep(Delta::from_millis(1));
                    continue;
                }
                Some(Entry::Fenced { .. }) if write => Err(EIO),
                Some(Entry::Remapped(s) | Entry::Fenced { at: Some(s) }) => {
                    self.spare.rw_sync(self.spare_sector(s.block), buf, write)
                }
                _ => self.data.rw_sync(self.data_sector(block), buf, write),
            };
            self.in_flight.up_read(idx);
            return result;
        }
    }

    /// Retries a kept bio block by block: writes that fail again, and
    /// writes to pending blocks, become relocations of the group; reads
    /// that fail every retry make their blocks pending.
    fn handle_kept(&self, group: &mut Group, mut bio: KeptBio) {
        let status = bio.status();
        let bytes = bio.bytes();
        let Some(data) = bio.data() else {
            return;
        };
        let (tag, offset) = (data.tag, data.offset);
        data.tag |= per_bio::ENDED;
        let error = if status != 0 {
            status
        } else {
            dm::bindings::dmr_status_DMR_STS_IOERR as u8
        };
        let whole_blocks =
            offset & ((1 << self.block_shift) - 1) == 0 && bytes & (self.block_size - 1) == 0;
        if !whole_blocks || group.bios.reserve(1, GFP_KERNEL).is_err() {
            // io_hints makes every bio whole blocks; memory is short.
            self.stats.inc(stat::FAILED_BIOS);
            bio.end(error);
            return;
        }
        let first = offset >> self.block_shift;
        let count = bytes / self.block_size;
        let index = group.bios.len();
        let mut failed = false;
        if tag & per_bio::WRITE != 0 {
            for i in 0..count {
                let block = first + u64::from(i);
                let Ok(mut buf) = self.block_buffer() else {
                    failed = true;
                    break;
                };
                bio.copy(i * self.block_size, &mut buf, false);
                // A write to a pending block is relocated unless an earlier
                // one already did.
                let retry = tag & per_bio::PENDING_WRITE == 0 || !self.is_pending(block);
                if retry && self.retry_io(block, &mut buf, true).is_ok() {
                    continue;
                }
                let relocation = Relocation {
                    block,
                    data: buf,
                    bio: index,
                    owner: false,
                    claimed: false,
                    spare: None,
                    old: None,
                    done: false,
                };
                if group.relocations.push(relocation, GFP_KERNEL).is_err() {
                    failed = true;
                    break;
                }
            }
        } else if status == 0 {
            // A pending block read after all (`PENDING_READ`). Without the
            // memory to note it, it stays pending: a later read or write
            // clears it.
            for block in first..first + u64::from(count) {
                if self.is_pending(block) && !group.readable.contains(&block) {
                    let _ = group.readable.push(block, GFP_KERNEL);
                }
            }
        } else {
            for i in 0..count {
                let block = first + u64::from(i);
                let Ok(mut buf) = self.block_buffer() else {
                    failed = true;
                    break;
                };
                if (0..self.read_retries).any(|_| self.retry_io(block, &mut buf, false).is_ok()) {
                    bio.copy(i * self.block_size, &mut buf, true);
                    continue;
                }
                failed = true;
                // Only a data block becomes pending: a spare that fails a
                // read keeps its remap (see README). Without the memory to
                // note it, the block is not marked pending: the bio fails
                // all the same, and the next failed read notes it again.
                if self.table.get(block).is_none() {
                    let _ = group.unreadable.push(block, GFP_KERNEL);
                }
            }
        }
        let relocating = group.relocations.iter().any(|r| r.bio == index);
        if status != 0 && !failed && !relocating {
            // Every block worked when tried again.
            self.stats.inc(stat::TRANSIENT_ERRORS);
        }
        // Room was reserved above: this cannot fail.
        let _ = group
            .bios
            .push_within_capacity(GroupBio { bio, error, failed });
    }

    /// Tells a data device that fails everything (unplugged, a controller
    /// reset) from one with bad blocks: when every probe read of blocks
    /// spread over the data area (outside the group, not in the table)
    /// fails too, the group's errors pass through: its bios fail, nothing
    /// is relocated or marked pending, no spare is used. The state is
    /// shown in status until a probe works again.
    fn check_data_device(&self, ti: &TargetInfo<'_>, group: &mut Group) {
        let down = self.data_device_down(ti, |block| {
            group.relocations.iter().any(|r| r.block == block) || group.unreadable.contains(&block)
        });
        if down {
            for r in group.relocations.drain_all() {
                group.bios[r.bio].failed = true;
            }
            group.unreadable.clear();
            self.stats.inc(stat::DEVICE_DOWN_GROUPS);
        }
    }

    /// Whether every probe read of data blocks spread over the data area
    /// (but those `failing`, and those in the table) fails; records the
    /// answer for status and says in the kernel log when it changes.
    fn data_device_down(&self, ti: &TargetInfo<'_>, failing: impl Fn(u64) -> bool) -> bool {
        let n = self.nr_blocks(ti);
        let Ok(mut buf) = self.block_buffer() else {
            return false;
        };
        let mut tried = 0;
        let mut answered = false;
        for k in 0..DEVICE_PROBES {
            let block = (n - 1) * k / (DEVICE_PROBES - 1);
            if failing(block) || self.table.get(block).is_some() {
                continue;
            }
            tried += 1;
            if self
                .data
                .rw_sync(self.data_sector(block), &mut buf, false)
                .is_ok()
            {
                answered = true;
                break;
            }
        }
        let down = tried > 0 && !answered;
        if down != self.data_down.swap(down, Relaxed) {
            if down {
                pr_err!("remap: the data device fails every probe read: it is down, not growing bad blocks; errors pass through and no spare is used until it answers again\n");
                ti.raise_event();
            } else {
                pr_info!("remap: the data device answers again\n");
            }
        }
        down
    }

    /// Takes a spare for relocation `r` and marks its block switching.
    /// Returns whether the spares ran out. A fenced block, or any block
    /// once metadata failed, is not relocated: its bio fails.
    fn claim_spare(&self, r: &mut Relocation) -> bool {
        loop {
            let mut guard = self.admin.lock();
            let current = self.entry(r.block);
            match current {
                Some(Entry::Switching { .. }) => {
                    // A message switches it: wait until it is done (every
                    // switch ends, rolled back at worst).
                    drop(guard);
                    fsleep(Delta::from_millis(1));
                    continue;
                }
                Some(Entry::Fenced { .. }) => return false,
                _ => {}
            }
            if self.meta.lock().failed() {
                return false;
            }
            let admin = &mut *guard;
            let Some(spare) = admin.spares.alloc() else {
                return true;
            };
            let switching = Entry::Switching {
                to: Spare {
                    block: spare,
                    lost: false,
                },
            }
            .encode();
            let marked = match current {
                None => self.table.insert(&mut admin.writer, r.block, switching),
                Some(_) => self.table.update(&mut admin.writer, r.block, switching),
            };
            if marked.is_err() {
                // Just allocated, so in use: the release cannot fail.
                let _ = admin.spares.release(spare);
                return false;
            }
            r.claimed = true;
            r.spare = Some(spare);
            r.old = current;
            return false;
        }
    }

    /// Writes a relocation's data to its spare; a spare that fails is
    /// retired and the next one tried. Returns whether the spares ran out.
    fn write_spare(&self, r: &mut Relocation, retired: &mut KVec<u32>) -> bool {
        while let Some(spare) = r.spare {
            if self
                .spare
                .rw_sync(self.spare_sector(spare), &mut r.data, true)
                .is_ok()
            {
                return false;
            }
            self.stats.inc(stat::SPARE_WRITE_ERRORS);
            pr_warn!("remap: spare block {} failed a write: retired\n", spare);
            let mut admin = self.admin.lock();
            let admin = &mut *admin;
            if retired.push(spare, GFP_KERNEL).is_ok() {
                // Allocated to this relocation, so in use: cannot fail.
                let _ = admin.spares.retire(spare);
            }
            // Without the memory to record the retirement, the spare is
            // not retired in memory either: it stays allocated (the image
            // records it in use only if the commit says so), and is
            // offered again after a reload, whose write to it retires it.
            r.spare = admin.spares.alloc();
            if let Some(next) = r.spare {
                let to = Spare {
                    block: next,
                    lost: false,
                };
                self.set_entry(admin, r.block, Entry::Switching { to });
            }
        }
        true
    }

    /// Relocates the group's blocks, records its pending blocks, commits it
    /// all at once, switches the table and ends the group's bios.
    fn finish_group(&self, ti: &TargetInfo<'_>, group: &mut Group) {
        if !group.relocations.is_empty() || !group.unreadable.is_empty() {
            self.check_data_device(ti, group);
        }
        let mut ran_out = false;
        // Spares claimed, blocks marked switching: bios starting in them
        // now wait on the hold.
        for i in 0..group.relocations.len() {
            let block = group.relocations[i].block;
            let earlier =
                (0..i).find(|&j| group.relocations[j].owner && group.relocations[j].block == block);
            if let Some(j) = earlier {
                let e = &mut group.relocations[j];
                e.owner = false;
                let (claimed, spare, old) = (e.claimed, e.spare, e.old);
                let r = &mut group.relocations[i];
                (r.claimed, r.spare, r.old) = (claimed, spare, old);
                r.owner = true;
            } else {
                let r = &mut group.relocations[i];
                r.owner = true;
                ran_out |= self.claim_spare(r);
            }
        }
        // Bios mapped to the old places have ended; then the data goes to
        // the spares.
        if group.relocations.iter().any(|r| r.claimed) {
            self.in_flight.synchronize();
        }
        for r in group.relocations.iter_mut() {
            if r.owner && r.spare.is_some() {
                ran_out |= self.write_spare(r, &mut group.retired);
            }
        }
        // Pending slots for unreadable data blocks; they enter the table
        // now, so that no message remaps them meanwhile.
        {
            let mut admin = self.admin.lock();
            let admin = &mut *admin;
            for &block in group.unreadable.iter() {
                if self.table.get(block).is_some()
                    || group.pending_new.iter().any(|&(b, _)| b == block)
                {
                    continue;
                }
                // The slots this group takes are recorded in the image
                // only by its commit: look past them.
                let after = group.pending_new.last().map_or(0, |&(_, s)| s + 1);
                let Some(slot) = self.meta.lock().image().free_pending_slot(after) else {
                    break;
                };
                let pending = Entry::Pending { slot }.encode();
                if group.pending_new.reserve(1, GFP_KERNEL).is_err()
                    || self
                        .table
                        .insert(&mut admin.writer, block, pending)
                        .is_err()
                {
                    // Not marked pending: the read failed all the same.
                    continue;
                }
                // Room was reserved above: this cannot fail.
                let _ = group.pending_new.push_within_capacity((block, slot));
            }
            // `readable` holds each block once.
            for &block in group.readable.iter() {
                if let Some(Entry::Pending { slot }) = self.entry(block) {
                    // Without the memory, the block stays pending.
                    let _ = group.pending_gone.push((block, slot), GFP_KERNEL);
                }
            }
        }
        let to_commit = group
            .relocations
            .iter()
            .any(|r| r.owner && r.spare.is_some())
            || !group.retired.is_empty()
            || !group.pending_new.is_empty()
            || !group.pending_gone.is_empty();
        let committed = if to_commit {
            self.meta.change(self.queue.queue(), |image| {
                for r in group.relocations.iter().filter(|r| r.owner) {
                    let Some(spare) = r.spare else { continue };
                    image.set_slot(
                        spare,
                        Slot::InUse {
                            block: r.block,
                            lost: false,
                        },
                    );
                    match r.old {
                        Some(Entry::Pending { slot }) => image.set_pending(slot, None),
                        Some(Entry::Remapped(s)) => image.set_slot(s.block, Slot::Retired),
                        _ => {}
                    }
                }
                for &spare in group.retired.iter() {
                    image.set_slot(spare, Slot::Retired);
                }
                for &(block, slot) in group.pending_new.iter() {
                    image.set_pending(slot, Some(block));
                }
                for &(_, slot) in group.pending_gone.iter() {
                    image.set_pending(slot, None);
                }
            })
        } else {
            Ok(())
        };
        // The switch, or back to the old mapping; fenced if the commit may
        // be on disk. After a failed commit the image records the spares
        // as used, and no commit follows: they stay allocated.
        {
            let mut admin = self.admin.lock();
            let admin = &mut *admin;
            for r in group.relocations.iter_mut().filter(|r| r.owner) {
                match (committed, r.spare) {
                    (Ok(()), Some(spare)) => {
                        let to = Spare {
                            block: spare,
                            lost: false,
                        };
                        self.set_entry(admin, r.block, Entry::Remapped(to));
                        r.done = true;
                        self.stats.inc(stat::AUTO_REMAPS);
                        match r.old {
                            Some(Entry::Pending { .. }) => {
                                admin.pending -= 1;
                                self.stats.inc(stat::PENDING_CLEARED);
                            }
                            Some(Entry::Remapped(s)) => {
                                self.stats.inc(stat::SPARE_WRITE_ERRORS);
                                // Its remap held it until now, so it is
                                // in use: the retirement cannot fail.
                                let _ = admin.spares.retire(s.block);
                            }
                            _ => {}
                        }
                    }
                    (Err(CommitError::Indeterminate), Some(_)) => {
                        self.fence(admin, r.block, r.old);
                    }
                    _ if r.claimed => match r.old {
                        None => self.remove_entry(admin, r.block),
                        Some(old) => self.set_entry(admin, r.block, old),
                    },
                    _ => {}
                }
            }
            for &(block, _) in group.pending_new.iter() {
                if committed.is_ok() {
                    admin.pending += 1;
                    self.stats.inc(stat::PENDING_MARKED);
                } else {
                    // A pending mark that a later load may find or not:
                    // either way reads go to the data block.
                    self.remove_entry(admin, block);
                }
            }
            if committed.is_ok() {
                for &(block, _) in group.pending_gone.iter() {
                    self.remove_entry(admin, block);
                    admin.pending -= 1;
                    self.stats.inc(stat::PENDING_CLEARED);
                }
            }
            if ran_out && !admin.exhaustion_reported {
                admin.exhaustion_reported = true;
                pr_warn!("remap: no free spare block left: write errors now pass through\n");
                ti.raise_event();
            }
        }
        self.release_held(ti);
        // A relocation that was taken over ends as the one that took it.
        for i in (0..group.relocations.len()).rev() {
            if !group.relocations[i].owner {
                let block = group.relocations[i].block;
                let done = group.relocations[i + 1..]
                    .iter()
                    .any(|r| r.owner && r.block == block && r.done);
                group.relocations[i].done = done;
            }
        }
        for (i, gb) in group.bios.drain_all().enumerate() {
            let failed = gb.failed || group.relocations.iter().any(|r| r.bio == i && !r.done);
            if failed {
                self.stats.inc(stat::FAILED_BIOS);
                gb.bio.end(gb.error);
            } else {
                gb.bio.end(0);
            }
        }
        *group = Group::new();
    }
}

#[pinned_drop]
impl PinnedDrop for RemapTarget {
    fn drop(self: Pin<&mut Self>) {
        // Every commit was waited for by its caller, and suspend flushed
        // the queue; this only makes the order explicit.
        self.queue.flush();
    }
}

/// The `ti->error` text and errno for metadata that cannot be loaded; the
/// details go to the kernel log.
fn load_error(e: &LoadError, expected: &Identity) -> (&'static CStr, Error) {
    match e {
        LoadError::Mismatch(found) => {
            pr_err!(
                "remap: the spare area holds the metadata of another table: data offset {} length {}, spare offset {} length {}, block size {} (this table: {} {}, {} {}, {})\n",
                found.data_offset,
                found.data_len,
                found.spare_offset,
                found.spare_len,
                found.block_size,
                expected.data_offset,
                expected.data_len,
                expected.spare_offset,
                expected.spare_len,
                expected.block_size
            );
            (
                c"Spare area holds the metadata of another table line (see kernel log)",
                EINVAL,
            )
        }
        LoadError::LayoutMismatch => (
            c"Spare area metadata has an unknown layout: refusing to use it",
            EINVAL,
        ),
        LoadError::NoIntactCopy => (
            c"Spare area has metadata but no intact copy: refusing to format it",
            EIO,
        ),
        LoadError::BlockLost(index) => {
            pr_err!(
                "remap: metadata block {} is damaged in all 5 copies\n",
                index
            );
            (
                c"Metadata block damaged in every copy: refusing to use it",
                EIO,
            )
        }
        LoadError::BadSlot(spare) => {
            pr_err!("remap: metadata slot of spare block {} is invalid\n", spare);
            (c"Metadata holds an invalid spare slot", EIO)
        }
        LoadError::NoMemory => (c"Cannot allocate memory to load the metadata", ENOMEM),
    }
}

/// Says in the kernel log what loading found, how many remaps it holds and
/// how long loading them took.
/// `micros`: reading and checking the metadata, and all of loading.
fn report_load(report: &metadata::LoadReport, remaps: usize, pending: u32, micros: (i64, i64)) {
    if report.blank {
        pr_info!("remap: blank spare area: metadata formatted on resume\n");
        return;
    }
    let intact = report.intact_copies();
    if intact < METADATA_COPIES {
        for (copy, &bad) in report.bad_blocks.iter().enumerate() {
            if bad > 0 {
                pr_warn!(
                    "remap: metadata copy {} has {} damaged or stale blocks: rewritten on resume\n",
                    copy,
                    bad
                );
            }
        }
    }
    pr_info!(
        "remap: metadata generation {} loaded: {} remaps in {} us ({} us reading and checking 5 copies), {} of 5 copies intact, {} pending blocks\n",
        report.generation,
        remaps,
        micros.1,
        micros.0,
        intact,
        pending
    );
}

const NO_TABLE_MEMORY: &CStr = c"Cannot allocate memory for the remap table";

/// The allocator and remap table that a metadata image records, for a
/// data area of `nr_blocks` blocks, and the number of pending blocks.
fn load_state(
    image: &MetaImage,
    nr_blocks: u64,
) -> Result<(SpareAllocator, RemapTable, Writer, u32), &'static CStr> {
    let (spares, in_use) = spares_of(image)?;
    let entries = spares.capacity() as usize + image.format().pending_slots() as usize;
    let (table, mut writer) = RemapTable::new(nr_blocks, entries).map_err(|_| NO_TABLE_MEMORY)?;
    let pending = fill_table(image, &table, &mut writer, &in_use)?;
    Ok((spares, table, writer, pending))
}

/// The spare allocator that an image records, and the spare blocks in use.
fn spares_of(image: &MetaImage) -> Result<(SpareAllocator, KVVec<u32>), &'static CStr> {
    let mut in_use = KVVec::new();
    let mut retired = KVVec::new();
    for spare in 0..image.format().nr_spare {
        let list = match image.slot(spare) {
            Some(Slot::InUse { .. }) => &mut in_use,
            Some(Slot::Retired) => &mut retired,
            _ => continue,
        };
        list.push(spare, GFP_KERNEL).map_err(|_| NO_TABLE_MEMORY)?;
    }
    let fmt = image.format();
    let spares = SpareAllocator::rebuild(fmt.nr_spare, fmt.layout, &in_use, &retired)
        .map_err(|_| c"Metadata records an impossible spare allocation")?;
    Ok((spares, in_use))
}

/// Enters the remaps of `in_use` spare blocks and the pending blocks into
/// an empty table; returns the number of pending blocks.
fn fill_table(
    image: &MetaImage,
    table: &RemapTable,
    writer: &mut Writer,
    in_use: &[u32],
) -> Result<u32, &'static CStr> {
    table
        .reserve(writer, in_use.len())
        .map_err(|_| NO_TABLE_MEMORY)?;
    // A short RCU read section per chunk of entries.
    for chunk in in_use.chunks(1024) {
        let guard = rcu::read_lock();
        for &spare in chunk {
            let Some(Slot::InUse { block, lost }) = image.slot(spare) else {
                continue;
            };
            let value = Entry::Remapped(Spare { block: spare, lost }).encode();
            table
                .insert_reserved(writer, &guard, block, value)
                .map_err(|e| match e {
                    TableError::Exists => c"Metadata maps a data block to two spares",
                    TableError::OutOfRange => c"Metadata maps a block beyond the data area",
                    _ => NO_TABLE_MEMORY,
                })?;
        }
    }
    let mut pending = 0;
    for i in 0..image.format().pending_slots() {
        match image.pending(i) {
            None => return Err(c"Metadata holds an invalid pending slot"),
            Some(None) => {}
            Some(Some(block)) => {
                table
                    .insert(writer, block, Entry::Pending { slot: i }.encode())
                    .map_err(|e| match e {
                        TableError::Exists => {
                            c"Metadata records a block as both remapped and pending"
                        }
                        TableError::OutOfRange => {
                            c"Metadata records a pending block beyond the data area"
                        }
                        _ => NO_TABLE_MEMORY,
                    })?;
                pending += 1;
            }
        }
    }
    Ok(pending)
}

fn table_errno(e: TableError) -> Error {
    match e {
        TableError::NoMemory => ENOMEM,
        TableError::Full => ENOSPC,
        TableError::Exists => EEXIST,
        TableError::NotFound => ENOENT,
        TableError::OutOfRange => EINVAL,
    }
}

#[vtable]
impl dm::Target for RemapTarget {
    const NAME: &'static CStr = c"remap";
    const VERSION: [u32; 3] = [0, 2, 0];
    const FEATURES: u64 = dm::bindings::DM_TARGET_NOWAIT as u64;
    const PER_BIO_DATA: bool = true;

    fn ctr(ctx: &mut Ctr<'_>, args: &[&CStr]) -> Result<Pin<KBox<Self>>> {
        let parsed = table_args::parse(args).map_err(|e| ctx.fail(e.0, EINVAL))?;
        let data = ctx
            .get_device(parsed.data_dev)
            .map_err(|e| ctx.fail(c"Data device lookup failed", e))?;
        let spare = ctx
            .get_device(parsed.spare_dev)
            .map_err(|e| ctx.fail(c"Spare device lookup failed", e))?;
        let geometry = Geometry {
            target_len: ctx.len(),
            data_dev_sectors: data.nr_sectors(),
            data_lbs: data.logical_block_size(),
            spare_dev_sectors: spare.nr_sectors(),
            spare_lbs: spare.logical_block_size(),
            same_device: data.same_device(&spare),
        };
        let block_size =
            table_args::validate(&parsed, &geometry).map_err(|e| ctx.fail(e.0, EINVAL))?;
        let block_shift = (block_size >> 9).trailing_zeros();
        let identity = Identity {
            data_offset: parsed.data_offset,
            data_len: geometry.target_len,
            spare_offset: parsed.spare_offset,
            spare_len: parsed.spare_len,
            block_size,
        };
        // The message below names the limit.
        const _: () = assert!(MAX_SPARE_BLOCKS == 536_870_910);
        let format = match Format::new(identity) {
            // Table entries keep spare numbers and pending slots in 29 bits
            // (`entry.rs`); pending slots are fewer than spare blocks.
            Ok(f) if f.nr_spare <= MAX_SPARE_BLOCKS => f,
            Err(FormatError::TooSmall) => {
                return Err(ctx.fail(
                    c"Spare area too small for 5 metadata copies and one spare block",
                    EINVAL,
                ))
            }
            Err(FormatError::BadBlockSize) => return Err(ctx.fail(c"Invalid block size", EINVAL)),
            _ => return Err(ctx.fail(
                c"Spare area has more than 536870910 blocks (2^29 - 2): use a larger block_size",
                EINVAL,
            )),
        };
        let (claim, reloading) = SpareClaim::new(
            ctx.device_identity(),
            ctx.table_identity(),
            spare.devt(),
            parsed.spare_offset,
            parsed.spare_len,
        )
        .map_err(|e| match e {
            ClaimError::OtherDevice => ctx.fail(c"Spare area is in use by another device", EBUSY),
            ClaimError::SameTable => ctx.fail(
                c"Spare area is used by another target of this table",
                EINVAL,
            ),
            ClaimError::NoMemory => ctx.fail(c"Cannot allocate the spare area claim", ENOMEM),
        })?;
        let writable = ctx.writable();
        let spare = Arc::new(spare, GFP_KERNEL)
            .map_err(|_| ctx.fail(c"Cannot allocate the spare device handle", ENOMEM))?;
        let client = BufioClient::new(spare.clone(), block_size, parsed.spare_offset)
            .map_err(|e| ctx.fail(c"Cannot create the dm-bufio client", e))?;
        let started = Instant::<Monotonic>::now();
        let (image, report) = metadata::load_from(&client, &spare, parsed.spare_offset, &format)
            .map_err(|e| {
                let e = match e {
                    // No copy of this geometry is intact: say so if the
                    // area holds another block size's metadata instead.
                    LoadError::NoIntactCopy => metadata::foreign_identity(
                        |buf| spare.rw_sync(parsed.spare_offset, buf, false),
                        block_size,
                    )
                    .map_or(e, LoadError::Mismatch),
                    e => e,
                };
                let (reason, err) = load_error(&e, &identity);
                ctx.fail(reason, err)
            })?;
        if report.blank && !writable {
            return Err(ctx.fail(
                c"Spare area holds no metadata and the table is read-only",
                EROFS,
            ));
        }
        let read_us = started.elapsed().as_micros_ceil();
        let (spares, table, writer, pending) =
            load_state(&image, geometry.target_len >> block_shift)
                .map_err(|reason| ctx.fail(reason, EINVAL))?;
        if !reloading {
            report_load(
                &report,
                table.len(&writer) - pending as usize,
                pending,
                (read_us, started.elapsed().as_micros_ceil()),
            );
        }
        let meta = MetaWriter::new(client, image)
            .map_err(|e| ctx.fail(c"Cannot allocate the metadata writer", e))?;
        let queue = OrderedQueue::new(c"dm-remap-meta")
            .map_err(|e| ctx.fail(c"Cannot allocate the metadata workqueue", e))?;
        let in_flight = Srcu::new().map_err(|e| ctx.fail(c"Cannot set up SRCU", e))?;
        let hold =
            BlockHold::new::<Self>().map_err(|e| ctx.fail(c"Cannot allocate the block hold", e))?;
        let stats =
            PerCpuCounters::new().map_err(|e| ctx.fail(c"Cannot allocate the statistics", e))?;
        let auto_remap = writable && !parsed.features.no_auto_remap;
        let read_retries = parsed.features.read_retries.unwrap_or(DEFAULT_READ_RETRIES);
        let kept = BioQueue::new::<Self>(ctx, c"dm-remap-err")
            .map_err(|e| ctx.fail(c"Cannot allocate the error worker", e))?;

        // Spares and metadata live on the spare device: a flush must reach
        // it too when it is a different device.
        ctx.set_num_flush_bios(if geometry.same_device { 1 } else { 2 });
        ctx.set_discards(true);
        ctx.set_secure_erases(true);
        ctx.set_write_zeroes(true);

        KBox::pin_init(
            try_pin_init!(RemapTarget {
                kept,
                queue,
                meta,
                data,
                data_offset: parsed.data_offset,
                spare,
                spare_offset: parsed.spare_offset,
                spare_len: parsed.spare_len,
                block_size,
                block_shift,
                features: parsed.features,
                writable,
                auto_remap,
                read_retries,
                _claim: claim,
                table,
                in_flight,
                hold,
                stats,
                data_down: AtomicBool::new(false),
                admin <- new_mutex!(Admin {
                    writer,
                    spares,
                    pending,
                    fenced: 0,
                    resumed: false,
                    reload_pending: reloading,
                    exhaustion_reported: false,
                }),
            }),
            GFP_KERNEL,
        )
        .map_err(|e| ctx.fail(c"Cannot allocate the target context", e))
    }

    #[inline(always)]
    fn map(&self, ti: &TargetInfo<'_>, mut bio: Bio<'_>) -> MapResult {
        let op = bio.op();
        if op == BioOp::Flush {
            let idx = self.in_flight.down_read();
            if bio.target_bio_nr() == 1 {
                // The second flush of a two-device table goes to the spare.
                bio.remap(&self.spare, self.spare_offset);
            } else {
                bio.remap(&self.data, self.data_offset);
            }
            self.account(&mut bio, op, idx, 0, 0);
            return MapResult::Remapped;
        }
        let shift = self.block_shift;
        let offset = ti.target_offset(bio.sector());
        let first = offset >> shift;
        // The last block the bio covers, as it is now (it may be cut).
        let last = |bio: &Bio<'_>| (offset + u64::from(bio.sectors()).max(1) - 1) >> shift;
        loop {
            // The read section starts before the lookup: a switch that
            // starts later waits for this bio.
            let idx = self.in_flight.down_read();
            let mut flags = 0;
            match self.table.first_remapped(first, last(&bio) - first + 1) {
                None => bio.remap(&self.data, self.data_offset + offset),
                Some((block, value)) if block == first => {
                    if last(&bio) > block {
                        self.cut(&mut bio, ((block + 1) << shift) - offset);
                    }
                    match Entry::decode(value) {
                        Entry::Remapped(s) => self.send_to_spare(&mut bio, op, offset, block, s),
                        Entry::Pending { .. } => {
                            if op == BioOp::Write && self.auto_remap {
                                // Relocated by the worker, outside any read
                                // section: it switches the block.
                                self.in_flight.up_read(idx);
                                self.stats.inc(stat::WRITES);
                                bio.record(per_bio::WRITE | per_bio::PENDING_WRITE, offset, 0);
                                return self.kept.take_from_map(bio);
                            }
                            if op == BioOp::Read && self.auto_remap {
                                flags = per_bio::PENDING_READ;
                            }
                            bio.remap(&self.data, self.data_offset + offset);
                        }
                        Entry::Switching { .. } => {
                            // Out of the read section: the switch waits for
                            // those.
                            self.in_flight.up_read(idx);
                            match self.hold.defer(bio, || self.switching(block)) {
                                Ok(result) => {
                                    self.stats.inc(stat::DEFERRED);
                                    return result;
                                }
                                // The switch ended meanwhile: look up again.
                                Err(back) => {
                                    bio = back;
                                    continue;
                                }
                            }
                        }
                        Entry::Fenced { at } => {
                            if op != BioOp::Read {
                                // A later load may map the block elsewhere:
                                // nothing is written to it.
                                self.in_flight.up_read(idx);
                                self.stats.inc(stat::FENCED_BIOS);
                                // `end_io` sees it, if a hold ends it.
                                bio.record(per_bio::ENDED, offset, 0);
                                return MapResult::Kill;
                            }
                            match at {
                                Some(s) => self.send_to_spare(&mut bio, op, offset, block, s),
                                None => bio.remap(&self.data, self.data_offset + offset),
                            }
                        }
                    }
                }
                Some((block, _)) => {
                    self.cut(&mut bio, (block << shift) - offset);
                    bio.remap(&self.data, self.data_offset + offset);
                }
            }
            self.account(&mut bio, op, idx, offset, flags);
            return MapResult::Remapped;
        }
    }

    fn end_io(&self, _ti: &TargetInfo<'_>, bio: &mut Bio<'_>, status: &mut u8) -> EndIoResult {
        let Some(data) = bio.per_bio_data() else {
            return EndIoResult::Done;
        };
        let tag = data.tag;
        if tag & per_bio::ENDED != 0 {
            return EndIoResult::Done;
        }
        if tag & per_bio::IN_SECTION != 0 {
            // Done with its mapping: a switch need not wait for it, even
            // while the worker keeps it.
            data.tag &= !per_bio::IN_SECTION;
            self.in_flight.up_read(ReadIndex::from_raw(data.section));
        }
        let kind = tag & (per_bio::READ | per_bio::WRITE);
        if *status == 0
            && self.data_down.load(Relaxed)
            && bio.is_on(&self.data)
            && self.data_down.swap(false, Relaxed)
        {
            pr_info!("remap: the data device answers again\n");
        }
        if *status != 0 {
            self.stats.inc(match kind {
                per_bio::READ => stat::READ_ERRORS,
                per_bio::WRITE => stat::WRITE_ERRORS,
                _ => stat::OTHER_ERRORS,
            });
            let worth_it = self.auto_remap
                && kind != 0
                && remappable(*status)
                && !(kind == per_bio::READ && bio.is_readahead());
            if worth_it && bio.keep() {
                return EndIoResult::Incomplete;
            }
        } else if tag & per_bio::PENDING_READ != 0 && bio.keep() {
            // Read after all: the worker clears the pending state first.
            return EndIoResult::Incomplete;
        }
        EndIoResult::Done
    }

    fn bio_queue(&self) -> Option<&BioQueue> {
        Some(&self.kept)
    }

    fn process_kept(&self, ti: &TargetInfo<'_>) {
        // This worker completes I/O: its allocations must not wait for it.
        let _noio = NoIoScope::enter();
        loop {
            let mut group = Group::new();
            let mut any = false;
            for bio in self.kept.take() {
                any = true;
                self.handle_kept(&mut group, bio);
                if group.relocations.len() >= GROUP_MAX {
                    self.finish_group(ti, &mut group);
                }
            }
            if !any {
                return;
            }
            self.finish_group(ti, &mut group);
        }
    }

    fn status(&self, ti: &TargetInfo<'_>, kind: StatusType, out: &mut Emitter<'_>) {
        match kind {
            StatusType::Info => {
                let admin = self.admin.lock();
                let meta = self.meta.lock();
                let state = if meta.failed() {
                    "metadata_failed"
                } else if self.data_down.load(Relaxed) {
                    "data_device_down"
                } else if admin.spares.free() == 0 {
                    "spares_exhausted"
                } else {
                    "ok"
                };
                out.emit(format_args!(
                    "{} {}/{} {} {} {} {} {}/{} {} {}",
                    self.remapped(&admin),
                    admin.spares.in_use(),
                    admin.spares.capacity(),
                    self.stats.sum(stat::READ_ERRORS),
                    self.stats.sum(stat::WRITE_ERRORS),
                    state,
                    meta.image().committed(),
                    meta.image().intact_copies(),
                    METADATA_COPIES,
                    meta.last_error().map_or(0, |e| e.to_errno()),
                    admin.pending
                ));
            }
            StatusType::Table => {
                out.emit(format_args!(
                    "{} {} {} {} {}",
                    self.data.name().to_str().unwrap_or("?"),
                    self.data_offset,
                    self.spare.name().to_str().unwrap_or("?"),
                    self.spare_offset,
                    self.spare_len
                ));
                let f = &self.features;
                if f.word_count() > 0 {
                    out.emit(format_args!(" {}", f.word_count()));
                    if let Some(bs) = f.block_size {
                        out.emit(format_args!(" block_size {}", bs));
                    }
                    if f.no_auto_remap {
                        out.emit(format_args!(" no_auto_remap"));
                    }
                    if let Some(n) = f.read_retries {
                        out.emit(format_args!(" read_retries {}", n));
                    }
                }
            }
            StatusType::Ima => {
                ti.emit_name_version(out);
                out.emit(format_args!(
                    ",data_device_name={},data_offset={},spare_device_name={},spare_offset={},spare_len={},block_size={},auto_remap={};",
                    self.data.name().to_str().unwrap_or("?"),
                    self.data_offset,
                    self.spare.name().to_str().unwrap_or("?"),
                    self.spare_offset,
                    self.spare_len,
                    self.block_size,
                    if self.features.no_auto_remap { "n" } else { "y" }
                ));
            }
        }
    }

    fn message(&self, ti: &TargetInfo<'_>, args: &[&CStr], out: &mut Emitter<'_>) -> Result {
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
                for i in 0..stat::COUNT {
                    self.stats.clear(i);
                }
                out.emit(format_args!("statistics cleared\n"));
                Ok(())
            }
            (b"remap", [sector]) => self.msg_remap(ti, sector, out),
            (b"unremap", [sector]) => self.msg_unremap(ti, sector, out),
            (b"lookup", [sector]) => self.msg_lookup(ti, sector, out),
            (b"list", rest) => self.msg_list(ti, rest, out),
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

    fn presuspend(&self, _ti: &TargetInfo<'_>) {
        // Whatever is still to be written (a rewrite of damaged copies)
        // goes out before the device stops. A failure is reported by the
        // commit itself and latched: resume and status show it.
        if self.writable {
            let _ = self.meta.sync(self.queue.queue());
        }
    }

    fn postsuspend(&self, _ti: &TargetInfo<'_>) {
        self.queue.flush();
    }

    fn preresume(&self, _ti: &TargetInfo<'_>) -> Result {
        let mut admin = self.admin.lock();
        if admin.reload_pending {
            // The table this one replaces has stopped, and may have
            // committed since this one was loaded.
            self.load_again(&mut admin)?;
            admin.reload_pending = false;
        }
        let resumed_before = admin.resumed;
        drop(admin);
        if !self.writable {
            return Ok(());
        }
        // Formats a blank area, rewrites damaged or stale copies.
        match self.meta.sync(self.queue.queue()) {
            Ok(()) => Ok(()),
            // Metadata failed while this table was live: I/O goes on as it
            // did before the suspend (fenced blocks stay fenced, remaps
            // stay refused); a reload tries the metadata again.
            Err(CommitError::Refused) if resumed_before => {
                pr_warn!("remap: resuming with metadata_failed: reload the table to write metadata again\n");
                Ok(())
            }
            Err(e) => {
                // A table loaded just now whose metadata cannot be written
                // (the format of a blank area, the repair of a damaged
                // copy) might map blocks where no later load does.
                pr_err!(
                    "remap: cannot write the metadata ({:?}): the device stays suspended\n",
                    e
                );
                Err(e.into())
            }
        }
    }

    fn resume(&self, _ti: &TargetInfo<'_>) {
        self.admin.lock().resumed = true;
    }

    fn iterate_devices(&self, ti: &TargetInfo<'_>, visitor: &mut DeviceVisitor<'_>) -> c_int {
        match visitor.visit(&self.data, self.data_offset, ti.len()) {
            0 => visitor.visit(&self.spare, self.spare_offset, self.spare_len),
            stop => stop,
        }
    }

    fn io_hints(&self, _ti: &TargetInfo<'_>, limits: &mut QueueLimits<'_>) {
        if self.block_size > limits.logical_block_size() {
            limits.raise_block_size(self.block_size);
        }
    }
}

#[kunit_tests(dm_remap_target)]
mod tests {
    use super::*;

    #[test]
    fn heap_sort_orders_blocks() {
        let mut empty: [(u64, u32); 0] = [];
        heap_sort_by_block(&mut empty);
        let mut one = [(7u64, 1u32)];
        heap_sort_by_block(&mut one);
        assert_eq!(one, [(7, 1)]);
        let mut v = [(5u64, 1u32), (1, 2), (9, 3), (3, 5), (0, 6), (8, 7)];
        heap_sort_by_block(&mut v);
        assert_eq!(v, [(0, 6), (1, 2), (3, 5), (5, 1), (8, 7), (9, 3)]);
        // On the heap: kernel stacks are 16 KiB.
        let mut many = KVec::with_capacity(1000, GFP_KERNEL).unwrap();
        for i in 0..1000u64 {
            many.push(((i * 7919) % 1000, i as u32), GFP_KERNEL)
                .unwrap();
        }
        heap_sort_by_block(&mut many);
        for (i, e) in many.iter().enumerate() {
            assert_eq!(e.0, i as u64);
        }
    }
}
