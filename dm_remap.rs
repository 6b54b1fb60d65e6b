// SPDX-License-Identifier: GPL-2.0

//! dm-remap: a device-mapper target that remaps failing blocks to spares.
//!
//! Table line (see `docs/dm-remap.rst` and `table_args.rs`):
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
#[path = "dm_remap/breakage.rs"]
mod breakage;
#[path = "dm_remap/claim.rs"]
mod claim;
#[path = "dm_remap/ctr.rs"]
mod ctr;
#[path = "dm_remap/device_stats.rs"]
mod device_stats;
#[path = "dm_remap/entry.rs"]
mod entry;
#[path = "dm_remap/first_blocks.rs"]
mod first_blocks;
#[path = "dm_remap/io.rs"]
mod io;
// The abstractions offer more than this target uses.
#[allow(dead_code)]
#[path = "kapi/mod.rs"]
mod kapi;
#[path = "dm_remap/low_water.rs"]
mod low_water;
#[path = "dm_remap/messages.rs"]
mod messages;
mod metadata;
// The on-disk format, shared with remapctl (its own crate in ondisk/): its
// API is `pub` for that crate, and the module uses only part of it.
#[allow(unreachable_pub, dead_code)]
#[path = "ondisk/src/format/mod.rs"]
mod ondisk;
#[path = "dm_remap/per_bio.rs"]
mod per_bio;
#[path = "dm_remap/relocation.rs"]
mod relocation;
mod remap_table;
#[path = "dm_remap/scrub.rs"]
mod scrub;
mod spare_alloc;
#[path = "dm_remap/stat.rs"]
mod stat;
#[path = "dm_remap/status.rs"]
mod status;
#[path = "dm_remap/switch.rs"]
mod switch;
mod table_args;
#[path = "dm_remap/timed_read.rs"]
mod timed_read;
#[path = "dm_remap/weak.rs"]
mod weak;
#[path = "dm_remap/worker.rs"]
mod worker;

use claim::SpareClaim;
use core::{fmt, sync::atomic::AtomicBool};
use device_stats::DeviceStats;
use entry::Entry;
use kapi::dm::{
    self, DeviceVisitor, DmDev, Emitter, EndIoResult, MapResult, QueueLimits, StatusType,
};
use kapi::percpu::PerCpuCounters;
use kapi::srcu::Srcu;
use kapi::workqueue::OrderedQueue;
use kernel::{
    prelude::*,
    sync::{rcu, Arc, CondVar, Mutex},
};
use metadata::{CommitError, MetaWriter, Slot};
use per_bio::PerBio;
use remap_table::{RemapTable, Writer};
use scrub::Scrub;
use spare_alloc::SpareAllocator;
use table_args::{parse_u64, Features};
use timed_read::{ReadLimits, ReadOutcome};

/// The abstractions' types, for this target.
type Bio<'a> = dm::Bio<'a, RemapTarget>;
type Ctr<'a> = dm::Ctr<'a, RemapTarget>;
type TargetInfo<'a> = dm::TargetInfo<'a, RemapTarget>;
type KeptBio = dm::KeptBio<RemapTarget>;
type BioHold = dm::BioHold<RemapTarget>;

/// The module's declaration, with the parameters given.
macro_rules! remap_module {
    ($($params:tt)*) => {
        module! {
            type: RemapModule,
            name: "dm_remap",
            authors: ["dm-remap developers"],
            description: "device-mapper target that remaps failing blocks to spares",
            license: "GPL",
            $($params)*
        }
    };
}

#[cfg(not(dmr_breakable))]
remap_module! {}

// Test builds (see `Kbuild`) have a parameter that breaks one behaviour
// (`breakage.rs`).
#[cfg(dmr_breakable)]
remap_module! {
    params: {
        break_behaviour: u32 {
            default: 0,
            description: "test builds only: the behaviour to break (see breakage.rs), 0 for none",
        },
    },
}

#[pin_data]
struct RemapModule {
    // Dropped first: no target is left to start a timed I/O when the
    // queue goes.
    registration: dm::Registration<RemapTarget>,
    io_queue: dm::IoQueue,
}

impl kernel::InPlaceModule for RemapModule {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        breakage::announce();
        try_pin_init!(Self {
            // Before the target is registered: a table may use it at once.
            io_queue: dm::IoQueue::new()?,
            registration: dm::Registration::new(module)?,
        })
    }
}

/// Reads of a failed read are retried this often per block, unless the
/// table line says otherwise (`read_retries`).
const DEFAULT_READ_RETRIES: u32 = 1;

/// A data block read slower than this (ms) is checked for a weak sector
/// (`weak.rs`), unless the table line says otherwise (`slow_read_ms`).
/// Above what a healthy disk takes even under load: a seek and a
/// rotation are tens of ms, and the deadline I/O scheduler serves a read
/// that waited 500 ms before anything else; below the 7 s after which a
/// drive with SCT ERC (TLER) gives up on a sector. A busy disk does not
/// count: a control read elsewhere must be fast.
const DEFAULT_SLOW_READ_MS: u32 = 1000;

/// What changes the remap table and the allocator.
struct Admin {
    writer: Writer,
    spares: SpareAllocator,
    /// The number of pending blocks.
    pending: u32,
    /// The number of fenced blocks (see [`Entry::Fenced`]).
    fenced: u32,
    /// The number of blocks whose data is lost ([`Entry::data_lost`]):
    /// kept by `set_entry` and `remove_entry`, through which every entry
    /// that may be lost changes (inserted entries are never lost but
    /// those of a load, which counts them). A switching block counts as
    /// its entry before the switch until the switch ends (`switch.rs`).
    lost: u32,
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
    /// Free spares were below the low-water mark at the last look (see
    /// `low_water.rs`): set by a load without an event, so that the event
    /// marks a crossing.
    low_water_reported: bool,
}

impl Admin {
    /// Counts an entry's change from lost or not to lost or not.
    fn count_lost(&mut self, was: bool, is: bool) {
        match (was, is) {
            (false, true) => self.lost += 1,
            // Saturating: a load that failed halfway counts none.
            (true, false) => self.lost = self.lost.saturating_sub(1),
            _ => {}
        }
    }
}

/// One `remap` target: a data area and a spare area, on one device or two.
///
/// The code is split by concept: `ctr.rs` (constructor and loading),
/// `io.rs` (`map`, `end_io`), `worker.rs` (the error worker), `messages.rs`,
/// `status.rs`, `claim.rs` (the spare-area claim), `switch.rs` (a switch of
/// blocks' mappings) and `entry.rs` (the table's entry type); this file holds the state and the `dm::Target`
/// glue.
///
/// Drop order (the fields' order): the abstraction has stopped the worker
/// and the bio queue before the target is dropped; `queue` first, whose drain ends every commit and so every clone of
/// `meta`; then `meta`, whose dm-bufio client releases its hold on `spare`;
/// the devices after that, `spare` last of the two (its last `Arc`), while
/// `table`, `in_flight` and `hold` (empty by then: every switch ended) go
/// after every user of them.
///
/// Lock order: `admin` before the metadata writer's state lock
/// (`meta.lock()`), never the other way round; no lock is held across a
/// commit wait (`MetaWriter::change` takes only the writer's lock), and
/// nothing sleeps under the RCU read lock of a table lookup.
#[pin_data(PinnedDrop)]
struct RemapTarget {
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
    /// A data block read slower than this (ms) is checked for a weak
    /// sector; 0 for never.
    slow_read_ms: u32,
    _claim: SpareClaim,
    table: RemapTable,
    /// Bios are inside a read section from `map` to `end_io`.
    in_flight: Srcu,
    /// Bios waiting for blocks whose mapping switches.
    hold: BioHold,
    stats: PerCpuCounters<{ stat::COUNT }>,
    /// The device's counters from earlier tables and suspends: what
    /// status and `stats` show is those plus `stats`.
    device_stats: DeviceStats,
    /// The data device failed every probe read (see `check_data_device`);
    /// cleared by the next bio that completes on it without error.
    data_down: AtomicBool,
    /// The last probe of the data device got no answer in time (said once
    /// in the kernel log until one answers).
    probe_unanswered: AtomicBool,
    /// Switches ended, and their signal (see `wait_switch`).
    #[pin]
    switches: Mutex<u64>,
    #[pin]
    switched: CondVar,
    #[pin]
    admin: Mutex<Admin>,
    /// The scrub (`scrub.rs`); its lock is taken after `admin` or alone,
    /// and held across no I/O.
    #[pin]
    scrub: Mutex<Scrub>,
    /// Held by whatever starts, stops, pauses or resumes the scrub, across
    /// its cancel of a step: two messages (which device-mapper core does
    /// not serialise) cannot lose each other's step. Taken before `scrub`;
    /// a step never takes it.
    #[pin]
    scrub_control: Mutex<()>,
}

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
        // Saturating: a load that failed halfway leaves fewer entries than
        // it counted (see `load_again`).
        self.table
            .len(&admin.writer)
            .saturating_sub(admin.pending as usize + admin.fenced as usize)
    }

    /// The table entry of `block`. Any context.
    #[inline(always)]
    fn entry(&self, block: u64) -> Option<Entry> {
        self.table.get(block).map(Entry::decode)
    }

    /// Sets the entry of `block`, which has one. Under the admin lock.
    fn set_entry(&self, admin: &mut Admin, block: u64, entry: Entry) {
        let was_lost = self.entry(block).is_some_and(Entry::data_lost);
        // Only the admin lock's holder adds or removes entries, and the
        // caller saw this one under it: the update finds it.
        let found = self.table.update(&mut admin.writer, block, entry.encode());
        debug_assert!(found.is_ok());
        admin.count_lost(was_lost, entry.data_lost());
    }

    /// Removes the entry of `block`, which has one. Under the admin lock.
    fn remove_entry(&self, admin: &mut Admin, block: u64) {
        // As in `set_entry`: the entry is there.
        match self.table.remove(&mut admin.writer, block) {
            Ok(value) => admin.count_lost(Entry::decode(value).data_lost(), false),
            Err(_) => debug_assert!(false),
        }
    }

    /// Puts `block`, whose switch was written by a commit of unknown
    /// outcome, in the fenced state: `old` is its entry before the switch,
    /// `lost` whether the commit made its data lost.
    fn fence(&self, admin: &mut Admin, block: u64, old: Option<Entry>, lost: bool) {
        if matches!(old, Some(Entry::Pending { .. })) {
            admin.pending -= 1;
        }
        if !matches!(old, Some(Entry::Fenced { .. })) {
            admin.fenced += 1;
        }
        self.set_entry(admin, block, Entry::fenced(old, lost));
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
    /// Every switch calls this once its block's entry has left the
    /// switching state: it wakes the waiters of [`Self::wait_switch`].
    fn release_held(&self, ti: &TargetInfo<'_>) {
        *self.switches.lock() += 1;
        self.switched.notify_all();
        self.hold
            .release(|bio| <Self as dm::Target>::map(self, ti, bio));
    }

    /// Waits until `block` is not switching. Every switch ends (rolled
    /// back at worst) and then calls [`Self::release_held`], which takes
    /// the lock this checks under: no wake-up is missed. Sleeps; call it
    /// holding no lock and outside any read section of `in_flight`.
    fn wait_switch(&self, block: u64) {
        let mut switches = self.switches.lock();
        while self.switching(block) {
            self.switched.wait(&mut switches);
        }
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

    /// Reads data block `block` into `buf` within `limits`, retrying as a
    /// failed read is.
    fn read_data(&self, block: u64, buf: &mut KVec<u8>, limits: &ReadLimits<'_>) -> ReadOutcome {
        self.read_retrying(&self.data, self.data_sector(block), buf, limits)
    }

    /// Reads spare block `spare` into `buf`, retrying as a data block is.
    fn read_spare(&self, spare: u32, buf: &mut KVec<u8>, limits: &ReadLimits<'_>) -> ReadOutcome {
        self.read_retrying(&self.spare, self.spare_sector(spare), buf, limits)
    }

    /// Reads a block of `dev` at `sector` within `limits`, and
    /// `read_retries` times more while the device returns an error.
    fn read_retrying(
        &self,
        dev: &DmDev,
        sector: u64,
        buf: &mut KVec<u8>,
        limits: &ReadLimits<'_>,
    ) -> ReadOutcome {
        let mut outcome = self.read_timed(dev, sector, buf, limits);
        for _ in 0..self.read_retries {
            if outcome != ReadOutcome::Failed {
                break;
            }
            outcome = self.read_timed(dev, sector, buf, limits);
        }
        outcome
    }

    fn block_buffer(&self) -> Result<KVec<u8>> {
        let mut buf = KVec::with_capacity(self.block_size as usize, GFP_KERNEL)?;
        buf.resize(self.block_size as usize, 0, GFP_KERNEL)?;
        Ok(buf)
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

#[vtable]
impl dm::Target for RemapTarget {
    const NAME: &'static CStr = c"remap";
    const VERSION: [u32; 3] = [0, 3, 0];
    const FEATURES: u64 = dm::bindings::DM_TARGET_NOWAIT as u64;
    type PerBio = PerBio;

    fn ctr(ctx: &mut Ctr<'_>, args: &[&CStr]) -> Result<Pin<KBox<Self>>> {
        Self::construct(ctx, args)
    }

    #[inline(always)]
    fn map<'a>(&self, ti: &TargetInfo<'_>, bio: Bio<'a>) -> MapResult<'a> {
        self.map_bio(ti, bio)
    }

    #[inline(always)]
    fn end_io(&self, ti: &TargetInfo<'_>, bio: &mut Bio<'_>, status: &mut u8) -> EndIoResult {
        self.end_io_bio(ti, bio, status)
    }

    fn process_kept(&self, ti: &TargetInfo<'_>) {
        self.process_kept_bios(ti)
    }

    fn step(&self, ti: &TargetInfo<'_>) {
        self.scrub_step(ti)
    }

    fn status(&self, ti: &TargetInfo<'_>, kind: StatusType, out: &mut Emitter<'_>) {
        self.emit_status(ti, kind, out)
    }

    fn message(&self, ti: &TargetInfo<'_>, args: &[&CStr], out: &mut Emitter<'_>) -> Result {
        self.handle_message(ti, args, out)
    }

    fn presuspend(&self, ti: &TargetInfo<'_>) {
        // The scrub reads the devices directly: it stops with the bios.
        self.pause_scrub(ti);
        // Whatever is still to be written (a rewrite of damaged copies)
        // goes out before the device stops. A failure is reported by the
        // commit itself and latched: resume and status show it.
        if self.writable {
            // The commit latched and logged its failure; status shows it.
            if self.meta.sync(self.queue.queue()).is_err() {
                pr_warn!("remap: suspend: the pending metadata writes did not complete\n");
            }
        }
    }

    fn presuspend_undo(&self, ti: &TargetInfo<'_>) {
        // The suspend failed: the device goes on, and so does the scrub.
        self.resume_scrub(ti);
    }

    fn postsuspend(&self, ti: &TargetInfo<'_>) {
        self.queue.flush();
        // Every kept bio has ended; the worker may still be returning (its
        // counters are counted before each bio ends, but say it here).
        if let Some(kept) = ti.kept() {
            kept.flush();
        }
        // No bio runs through the table now, and the worker is idle: the
        // counters go to the device's, which a reloaded table goes on from.
        self.device_stats.give_back(&self.stats);
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
            // A table that was live had its mapping made durable at its
            // first resume; what failed now (or before the suspend) only
            // concerns copies being rewritten. I/O goes on as before the
            // suspend (fenced blocks stay fenced, remaps stay refused); a
            // reload tries the metadata again.
            Err(_) if resumed_before => {
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

    fn resume(&self, ti: &TargetInfo<'_>) {
        self.admin.lock().resumed = true;
        self.resume_scrub(ti);
    }

    fn iterate_devices(&self, ti: &TargetInfo<'_>, visitor: &mut DeviceVisitor<'_>) -> c_int {
        match visitor.visit(&self.data, self.data_offset, ti.len()) {
            0 => visitor.visit(&self.spare, self.spare_offset, self.spare_len),
            stop => stop,
        }
    }

    fn io_hints(&self, _ti: &TargetInfo<'_>, limits: &mut QueueLimits<'_>) {
        if self.block_size > limits.logical_block_size() {
            raise_block_size(limits, self.block_size);
        }
    }
}

/// Raises the logical and physical block size and the minimum I/O size to
/// at least `bytes`, so no bio covers part of a remap block. The logical
/// block size stops at the largest the block layer accepts (the page size
/// without large folios); above it, only the physical block size and
/// minimum I/O size say `bytes`.
fn raise_block_size(limits: &mut QueueLimits<'_>, bytes: u32) {
    limits.set_logical_block_size(limits.logical_block_size().max(bytes));
    limits.set_physical_block_size(limits.physical_block_size().max(bytes));
    limits.set_io_min(limits.io_min().max(bytes));
}
