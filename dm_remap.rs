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
//! block's mapping switches, bios starting in it wait on a hold list, and bios mapped
//! before the switch are waited for (SRCU from `map` to `end_io`), so no
//! write is lost. The table lives in memory at this stage.

// The abstraction layer offers the whole target interface; this target
// uses part of it.
#[allow(dead_code)]
mod dm;
mod percpu;
mod rcu_box;
mod remap_table;
mod spare_alloc;
mod srcu;
mod table_args;

use core::{fmt, num::NonZeroU32};
use dm::{
    Bio, BioOp, BlockHold, Ctr, DeviceVisitor, DmDev, Emitter, EndIoResult, MapResult, QueueLimits,
    StatusType, TargetInfo,
};
use kernel::{
    new_mutex,
    prelude::*,
    sync::{rcu, Mutex},
};
use percpu::PerCpuCounters;
use remap_table::{RemapTable, TableError, Writer};
use spare_alloc::{MetadataLayout, SpareAllocator};
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
        try_pin_init!(Self {
            registration <- dm::Registration::new(module),
        })
    }
}

/// Table values: the spare block, and this flag when the data block could
/// not be read when it was remapped (its spare was zero-filled).
const DATA_LOST: u32 = 1 << 31;

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
    pub(crate) const LOOKUPS: usize = 11;
    pub(crate) const COUNT: usize = 12;
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
        "lookups",
    ];
}

/// Per-bio data: the SRCU read index in the low 32 bits, and what the bio
/// was, for `end_io`'s error counts.
mod per_bio {
    pub(crate) const READ: u64 = 1 << 32;
    pub(crate) const WRITE: u64 = 1 << 33;
    pub(crate) const INDEX_MASK: u64 = 0xffff_ffff;
}

/// What changes the remap table, one change at a time.
struct Admin {
    writer: Writer,
    spares: SpareAllocator,
}

/// One `remap` target: a data area and a spare area, on one device or two.
#[pin_data(PinnedDrop)]
struct RemapTarget {
    data: DmDev,
    /// First sector of the data area on the data device.
    data_offset: u64,
    spare: DmDev,
    /// First sector of the spare area on the spare device.
    spare_offset: u64,
    /// Length of the spare area in sectors.
    spare_len: u64,
    /// The remap unit in bytes, and as a shift of sectors.
    block_size: u32,
    block_shift: u32,
    /// The features as given in the table line, printed back by `table`.
    features: Features,
    table: RemapTable,
    /// Bios are inside a read section from `map` to `end_io`.
    in_flight: Srcu,
    /// The block whose mapping is switching; bios starting in it wait.
    hold: BlockHold,
    stats: PerCpuCounters<{ stat::COUNT }>,
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
  list [<block> [<count>]]    remapped blocks from <block> on, in order
";

/// A message refused: the reason goes to the kernel log, the errno to the
/// caller.
fn refuse<T>(err: Error, reason: fmt::Arguments<'_>) -> Result<T> {
    pr_warn!("remap: {}\n", reason);
    Err(err)
}

impl RemapTarget {
    fn nr_blocks(&self, ti: &TargetInfo<'_>) -> u64 {
        ti.len() >> self.block_shift
    }

    /// The sector of a spare block on the spare device.
    fn spare_sector(&self, value: u32) -> u64 {
        self.spare_offset + (u64::from(value & !DATA_LOST) << self.block_shift)
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

    /// Holds new I/O to `block` and waits for the I/O already mapped, runs
    /// `f`, then maps and submits the bios that waited. Called with `admin`
    /// locked, so one block switches at a time.
    fn with_block_held<R>(&self, ti: &TargetInfo<'_>, block: u64, f: impl FnOnce() -> R) -> R {
        self.hold.begin(block);
        self.in_flight.synchronize();
        let r = f();
        self.hold.end(|bio| {
            // A deferred bio lies within the held block.
            let idx = self.in_flight.down_read();
            let op = bio.op();
            let offset = ti.target_offset(bio.sector());
            let guard = rcu::read_lock();
            let value = self.table.lookup(&guard, block);
            drop(guard);
            match value {
                Some(value) => self.send_to_spare(bio, op, offset, block, value),
                None => bio.remap(&self.data, self.data_offset + offset),
            }
            self.account(bio, op, idx);
        });
        r
    }

    /// Sends a bio that starts at target offset `offset`, in remapped
    /// `block`, to that block's spare.
    #[inline(always)]
    fn send_to_spare(&self, bio: &mut Bio<'_>, op: BioOp, offset: u64, block: u64, value: u32) {
        let within = offset - (block << self.block_shift);
        bio.remap(&self.spare, self.spare_sector(value) + within);
        self.stats.inc(match op {
            BioOp::Read => stat::REMAPPED_READS,
            BioOp::Write => stat::REMAPPED_WRITES,
            _ => stat::REMAPPED_OTHER,
        });
    }

    /// Counts a mapped bio and records, for `end_io`, its read section and
    /// what it was. `op` is `bio.op()`, decoded once per bio by the caller.
    #[inline(always)]
    fn account(&self, bio: &mut Bio<'_>, op: BioOp, idx: ReadIndex) {
        let (kind, counter) = match op {
            BioOp::Read => (per_bio::READ, stat::READS),
            BioOp::Write => (per_bio::WRITE, stat::WRITES),
            _ => (0, stat::OTHER_BIOS),
        };
        self.stats.inc(counter);
        if let Some(data) = bio.per_bio_data() {
            *data = idx.to_raw() | kind;
        }
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

    fn msg_remap(&self, ti: &TargetInfo<'_>, arg: &CStr, out: &mut Emitter<'_>) -> Result {
        let block = self.block_arg(ti, arg)?;
        let mut buf = self.block_buffer()?;
        let mut admin = self.admin.lock();
        let admin = &mut *admin;
        if self.table.contains(block) {
            return refuse(EEXIST, format_args!("block {} is already remapped", block));
        }
        let Some(spare) = admin.spares.alloc() else {
            return refuse(
                ENOSPC,
                format_args!("no free spare block for block {}", block),
            );
        };
        // Err((errno, whether the spare itself failed)).
        let copied = self.with_block_held(ti, block, || {
            let lost = self
                .data
                .rw_sync(self.data_sector(block), &mut buf, false)
                .is_err();
            if lost {
                buf.fill(0);
            }
            self.spare
                .rw_sync(self.spare_sector(spare), &mut buf, true)
                .map_err(|e| (e, true))?;
            let value = spare | if lost { DATA_LOST } else { 0 };
            self.table
                .insert(&mut admin.writer, block, value)
                .map_err(|e| (table_errno(e), false))?;
            Ok(lost)
        });
        match copied {
            Ok(lost) => {
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
            Err((e, true)) => {
                // A spare that cannot be written is not used again.
                let _ = admin.spares.retire(spare);
                refuse(
                    e,
                    format_args!(
                        "remap of block {} failed writing spare block {}: spare retired",
                        block, spare
                    ),
                )
            }
            Err((e, false)) => {
                let _ = admin.spares.release(spare);
                refuse(e, format_args!("remap of block {} failed", block))
            }
        }
    }

    fn msg_unremap(&self, ti: &TargetInfo<'_>, arg: &CStr, out: &mut Emitter<'_>) -> Result {
        let block = self.block_arg(ti, arg)?;
        let mut buf = self.block_buffer()?;
        let mut admin = self.admin.lock();
        let admin = &mut *admin;
        let Some(value) = self.table.get(block) else {
            return refuse(ENOENT, format_args!("block {} is not remapped", block));
        };
        let spare = value & !DATA_LOST;
        let result = self.with_block_held(ti, block, || {
            self.spare
                .rw_sync(self.spare_sector(value), &mut buf, false)?;
            self.data.rw_sync(self.data_sector(block), &mut buf, true)?;
            self.table
                .remove(&mut admin.writer, block)
                .map_err(table_errno)
        });
        if let Err(e) = result {
            return refuse(
                e,
                format_args!("unremap of block {} failed: it stays remapped", block),
            );
        }
        admin.spares.release(spare).map_err(|_| EIO)?;
        out.emit(format_args!(
            "unremapped block {}: data copied back, spare block {} free\n",
            block, spare
        ));
        Ok(())
    }

    fn msg_lookup(&self, ti: &TargetInfo<'_>, arg: &CStr, out: &mut Emitter<'_>) -> Result {
        let block = self.block_arg(ti, arg)?;
        match self.table.get(block) {
            Some(v) => out.emit(format_args!(
                "block {} remapped to spare block {} (spare device sector {}){}\n",
                block,
                v & !DATA_LOST,
                self.spare_sector(v),
                if v & DATA_LOST != 0 {
                    ", data lost"
                } else {
                    ""
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
            out.emit(format_args!(
                "{} {}{}\n",
                block,
                value & !DATA_LOST,
                if value & DATA_LOST != 0 { " lost" } else { "" }
            ));
        }
        Ok(())
    }

    fn msg_stats(&self, out: &mut Emitter<'_>) {
        for (i, name) in stat::NAMES.iter().enumerate() {
            out.emit(format_args!("{}={} ", name, self.stats.sum(i)));
        }
        let admin = self.admin.lock();
        out.emit(format_args!(
            "remapped_blocks={} spares_used={} spares_free={} spares_retired={} spares_total={}\n",
            self.table.len(&admin.writer),
            admin.spares.in_use(),
            admin.spares.free(),
            admin.spares.retired(),
            admin.spares.capacity()
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

#[pinned_drop]
impl PinnedDrop for RemapTarget {
    fn drop(self: Pin<&mut Self>) {
        // The table lives in memory at this stage: say loudly what a
        // reload or remove takes with it.
        let admin = self.admin.lock();
        let remapped = self.table.len(&admin.writer);
        if remapped > 0 {
            pr_warn!(
                "remap: {} remapped blocks dropped with the table: the remap table is not persistent yet, their latest data is on the spare device\n",
                remapped
            );
        }
    }
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
        let block_size = NonZeroU32::new(block_size).ok_or(EINVAL)?;
        let block_shift = (block_size.get() >> 9).trailing_zeros();
        // Spare block numbers keep their top bit for `DATA_LOST`.
        let nr_spare_blocks = u32::try_from(parsed.spare_len >> block_shift)
            .ok()
            .filter(|n| n & DATA_LOST == 0)
            .ok_or_else(|| ctx.fail(c"Spare area has more than 2^31 blocks", EINVAL))?;
        let copy_blocks = spare_alloc::metadata_copy_blocks(nr_spare_blocks, block_size);
        // The five metadata copies get their fixed places now, so that the
        // spare area is checked to hold them and at least one spare.
        let layout = MetadataLayout::new(nr_spare_blocks, copy_blocks).map_err(|_| {
            ctx.fail(
                c"Spare area too small for 5 metadata copies and one spare block",
                EINVAL,
            )
        })?;
        let spares = SpareAllocator::new(nr_spare_blocks, layout)
            .map_err(|_| ctx.fail(c"Cannot allocate the spare allocator", ENOMEM))?;
        let (table, writer) = RemapTable::new(
            geometry.target_len >> block_shift,
            spares.capacity() as usize,
        )
        .map_err(|_| ctx.fail(c"Cannot allocate the remap table", ENOMEM))?;
        let in_flight = Srcu::new().map_err(|e| ctx.fail(c"Cannot set up SRCU", e))?;
        let hold =
            BlockHold::new::<Self>().map_err(|e| ctx.fail(c"Cannot allocate the block hold", e))?;
        let stats =
            PerCpuCounters::new().map_err(|e| ctx.fail(c"Cannot allocate the statistics", e))?;

        // Spares and metadata live on the spare device: a flush must reach
        // it too when it is a different device.
        ctx.set_num_flush_bios(if geometry.same_device { 1 } else { 2 });
        ctx.set_discards(true);
        ctx.set_secure_erases(true);
        ctx.set_write_zeroes(true);

        KBox::pin_init(
            try_pin_init!(RemapTarget {
                data,
                data_offset: parsed.data_offset,
                spare,
                spare_offset: parsed.spare_offset,
                spare_len: parsed.spare_len,
                block_size: block_size.get(),
                block_shift,
                features: parsed.features,
                table,
                in_flight,
                hold,
                stats,
                admin <- new_mutex!(Admin { writer, spares }),
            }),
            GFP_KERNEL,
        )
        .map_err(|e| ctx.fail(c"Cannot allocate the target context", e))
    }

    #[inline(always)]
    fn map(&self, ti: &TargetInfo<'_>, mut bio: Bio<'_>) -> MapResult {
        let mut idx = self.in_flight.down_read();
        let op = bio.op();
        if op == BioOp::Flush {
            if bio.target_bio_nr() == 1 {
                // The second flush of a two-device table goes to the spare.
                bio.remap(&self.spare, self.spare_offset);
            } else {
                bio.remap(&self.data, self.data_offset);
            }
            self.account(&mut bio, op, idx);
            return MapResult::Remapped;
        }
        let shift = self.block_shift;
        let offset = ti.target_offset(bio.sector());
        let first = offset >> shift;
        // The last block the bio covers, as it is now (it may be cut).
        let last = |bio: &Bio<'_>| (offset + u64::from(bio.sectors()).max(1) - 1) >> shift;

        let held = self.hold.held_block();
        if (first..=last(&bio)).contains(&held) {
            if held > first {
                // Map the part before the held block now; device-mapper
                // core brings the rest back to `map`.
                self.cut(&mut bio, (held << shift) - offset);
            } else {
                self.cut(&mut bio, ((first + 1) << shift) - offset);
                // Leave the read section: the switch waits for those.
                self.in_flight.up_read(idx);
                match self.hold.defer(bio, first) {
                    Ok(result) => {
                        self.stats.inc(stat::DEFERRED);
                        return result;
                    }
                    Err(back) => {
                        // The hold ended meanwhile: map it now.
                        bio = back;
                        idx = self.in_flight.down_read();
                    }
                }
            }
        }

        let guard = rcu::read_lock();
        self.stats.inc(stat::LOOKUPS);
        match self
            .table
            .first_remapped(&guard, first, last(&bio) - first + 1)
        {
            None => bio.remap(&self.data, self.data_offset + offset),
            Some((block, value)) if block == first => {
                if last(&bio) > block {
                    self.cut(&mut bio, ((block + 1) << shift) - offset);
                }
                self.send_to_spare(&mut bio, op, offset, block, value);
            }
            Some((block, _)) => {
                self.cut(&mut bio, (block << shift) - offset);
                bio.remap(&self.data, self.data_offset + offset);
            }
        }
        drop(guard);
        self.account(&mut bio, op, idx);
        MapResult::Remapped
    }

    fn end_io(&self, _ti: &TargetInfo<'_>, bio: &mut Bio<'_>, status: &mut u8) -> EndIoResult {
        if let Some(&mut data) = bio.per_bio_data() {
            if *status != 0 {
                self.stats.inc(if data & per_bio::READ != 0 {
                    stat::READ_ERRORS
                } else if data & per_bio::WRITE != 0 {
                    stat::WRITE_ERRORS
                } else {
                    stat::OTHER_ERRORS
                });
            }
            self.in_flight
                .up_read(ReadIndex::from_raw(data & per_bio::INDEX_MASK));
        }
        EndIoResult::Done
    }

    fn status(&self, ti: &TargetInfo<'_>, kind: StatusType, out: &mut Emitter<'_>) {
        match kind {
            StatusType::Info => {
                let admin = self.admin.lock();
                let exhausted = admin.spares.free() == 0;
                out.emit(format_args!(
                    "{} {}/{} {} {} {}",
                    self.table.len(&admin.writer),
                    admin.spares.in_use(),
                    admin.spares.capacity(),
                    self.stats.sum(stat::READ_ERRORS),
                    self.stats.sum(stat::WRITE_ERRORS),
                    if exhausted { "spares_exhausted" } else { "ok" }
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
