// SPDX-License-Identifier: GPL-2.0

//! The constructor, and loading the table and allocator from metadata
//! (at construction and again in `preresume` after a reload).

use crate::breakage::{broken, Breakage};
use crate::claim::{ClaimError, SpareClaim};
use crate::device_stats::DeviceStats;
use crate::entry::{Entry, Spare, MAX_SPARE_BLOCKS};
use crate::kapi::bufio::BufioClient;
use crate::kapi::percpu::PerCpuCounters;
use crate::kapi::srcu::Srcu;
use crate::kapi::workqueue::OrderedQueue;
use crate::metadata::{Format, FormatError, Identity, LoadError, MetaImage, MetaWriter, Slot};
use crate::remap_table::{RemapTable, TableError, Writer};
use crate::scrub::Scrub;
use crate::spare_alloc::{SpareAllocator, METADATA_COPIES};
use crate::table_args::Geometry;
use crate::{
    low_water, metadata, table_args, Admin, BioHold, Ctr, RemapTarget, DEFAULT_READ_RETRIES,
    DEFAULT_SLOW_READ_MS,
};
use core::sync::atomic::AtomicBool;
use kernel::prelude::*;
use kernel::sync::{rcu, Arc};
use kernel::time::{Instant, Monotonic};
use kernel::{new_condvar, new_mutex};

impl RemapTarget {
    /// Loads the metadata again and rebuilds the table and allocator from
    /// it. Only while no bio is mapped (suspended, before resume).
    pub(super) fn load_again(&self, admin: &mut Admin) -> Result {
        let fmt = *self.meta.lock().image().format();
        let started = Instant::<Monotonic>::now();
        let (image, report) = metadata::load_from(self.meta.client(), &fmt).map_err(|e| {
            let (reason, err) = load_error(&e, &fmt.identity);
            pr_err!(
                "remap: loading the metadata again failed: {}\n",
                reason.to_str().unwrap_or("?")
            );
            err
        })?;
        let read_us = started.elapsed().as_micros_ceil();
        let fail = |reason: &CStr| {
            pr_err!("remap: {}\n", reason.to_str().unwrap_or("?"));
            EIO
        };
        let (spares, in_use) = spares_of(&image).map_err(fail)?;
        let spares_us = started.elapsed().as_micros_ceil();
        self.table.clear(&mut admin.writer).map_err(table_errno)?;
        let counts = match fill_table(&image, &self.table, &mut admin.writer, &in_use) {
            Ok(counts) => counts,
            Err(reason) => {
                // The table holds part of the image: empty it, so that
                // status shows nothing of it, and count none of it as
                // pending, fenced or lost (where the memory for an empty
                // table is not there, the counts stay below the table's).
                // The device stays suspended (`reload_pending` stays set,
                // messages are refused until a resume works).
                if self.table.clear(&mut admin.writer).is_err() {
                    pr_warn!("remap: no memory to empty the table of a failed load\n");
                }
                admin.pending = 0;
                admin.fenced = 0;
                admin.lost = 0;
                return Err(fail(reason));
            }
        };
        admin.spares = spares;
        admin.pending = counts.pending;
        admin.lost = counts.lost;
        admin.fenced = 0;
        admin.exhaustion_reported = false;
        admin.low_water_reported = self.below_low_water(admin);
        report_load(
            &report,
            self.remapped(admin),
            admin.pending,
            LoadTimes {
                read: read_us,
                spares: spares_us,
                total: started.elapsed().as_micros_ceil(),
            },
        );
        self.meta.lock().reload(image);
        Ok(())
    }
}

/// The `ti->error` text and errno for metadata that cannot be loaded; the
/// details go to the kernel log.
fn load_error(e: &LoadError, expected: &Identity) -> (&'static CStr, Error) {
    use crate::ondisk::LoadError as Refused;
    let refused = match e {
        LoadError::Format(refused) => refused,
        LoadError::NoMemory => return (c"Cannot allocate memory to load the metadata", ENOMEM),
    };
    match refused {
        Refused::Mismatch(found) => {
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
        Refused::LayoutMismatch => (
            c"Spare area metadata has an unknown layout: refusing to use it",
            EINVAL,
        ),
        Refused::NoIntactCopy => (
            c"Spare area has metadata but no intact copy (of format version 2): refusing to format it",
            EIO,
        ),
        Refused::BlockLost(index) => {
            pr_err!(
                "remap: metadata block {} is damaged in all 5 copies\n",
                index
            );
            (
                c"Metadata block damaged in every copy: refusing to use it",
                EIO,
            )
        }
        Refused::BadSlot(spare) => {
            pr_err!("remap: metadata slot of spare block {} is invalid\n", spare);
            (c"Metadata holds an invalid spare slot", EIO)
        }
        Refused::BadPending(slot) => {
            pr_err!("remap: metadata pending slot {} is invalid\n", slot);
            (c"Metadata holds an invalid pending slot", EIO)
        }
        // The module's buffers are made for its format.
        Refused::Buffers => (c"Metadata buffers of the wrong size", EINVAL),
    }
}

/// How long the parts of a load took, in microseconds from its start.
struct LoadTimes {
    /// Reading and checking the copies.
    read: i64,
    /// That and rebuilding the spare allocator.
    spares: i64,
    /// All of it, the remap table filled too.
    total: i64,
}

/// Says in the kernel log what loading found, how many remaps it holds and
/// how long loading them took.
fn report_load(report: &metadata::LoadReport, remaps: usize, pending: u32, us: LoadTimes) {
    if report.blank {
        pr_info!("remap: blank spare area: metadata formatted on resume\n");
        return;
    }
    let intact = report.intact_copies();
    if intact < METADATA_COPIES {
        for (copy, &bad) in report.bad_blocks.iter().enumerate() {
            if bad > 0 {
                pr_warn!(
                    "remap: metadata copy {} has {} damaged or stale blocks: rewritten\n",
                    copy,
                    bad
                );
            }
        }
    }
    pr_info!(
        "remap: metadata generation {} loaded: {} remaps in {} us ({} us reading and checking the 5 copies, {} us the spare allocator, {} us the remap table), {} of 5 copies intact, {} pending blocks\n",
        report.generation,
        remaps,
        us.total,
        us.read,
        us.spares - us.read,
        us.total - us.spares,
        intact,
        pending
    );
}

const NO_TABLE_MEMORY: &CStr = c"Cannot allocate memory for the remap table";

/// The allocator and remap table that a metadata image records, for a
/// data area of `nr_blocks` blocks, and the number of pending blocks.
/// `started`: when the load began; the time the allocator was done is
/// returned last, in microseconds from then.
fn load_state(
    image: &MetaImage,
    nr_blocks: u64,
    started: Instant<Monotonic>,
) -> Result<(SpareAllocator, RemapTable, Writer, TableCounts, i64), &'static CStr> {
    let (spares, in_use) = spares_of(image)?;
    let spares_us = started.elapsed().as_micros_ceil();
    let entries = spares.capacity() as usize + image.format().pending_slots() as usize;
    let (table, mut writer) = RemapTable::new(nr_blocks, entries).map_err(|_| NO_TABLE_MEMORY)?;
    let counts = fill_table(image, &table, &mut writer, &in_use)?;
    Ok((spares, table, writer, counts, spares_us))
}

/// The spare allocator that an image records, and the spare blocks in use.
fn spares_of(image: &MetaImage) -> Result<(SpareAllocator, KVVec<u32>), &'static CStr> {
    let nr_spare = image.format().nr_spare;
    // One pass over the slots: the list of blocks in use gets room for
    // every slot (freed once the table is filled), the rare retired ones
    // grow their own.
    let mut in_use =
        KVVec::with_capacity(nr_spare as usize, GFP_KERNEL).map_err(|_| NO_TABLE_MEMORY)?;
    let mut retired = KVVec::new();
    for spare in 0..nr_spare {
        match image.slot(spare) {
            // Within the capacity: at most one entry per slot.
            Some(Slot::InUse { .. }) => in_use
                .push_within_capacity(spare)
                .map_err(|_| NO_TABLE_MEMORY)?,
            Some(Slot::Retired) if !broken(Breakage::RetiredFreeAfterLoad) => retired
                .push(spare, GFP_KERNEL)
                .map_err(|_| NO_TABLE_MEMORY)?,
            _ => {}
        }
    }
    let fmt = image.format();
    let spares = SpareAllocator::rebuild(fmt.nr_spare, fmt.layout, &in_use, &retired)
        .map_err(|_| c"Metadata records an impossible spare allocation")?;
    Ok((spares, in_use))
}

/// What a load counts while it fills the table.
struct TableCounts {
    /// Pending blocks.
    pending: u32,
    /// Blocks whose data is lost ([`Entry::data_lost`]).
    lost: u32,
}

/// Enters the remaps of `in_use` spare blocks and the pending blocks into
/// an empty table, and counts them.
fn fill_table(
    image: &MetaImage,
    table: &RemapTable,
    writer: &mut Writer,
    in_use: &[u32],
) -> Result<TableCounts, &'static CStr> {
    let mut lost_blocks = 0;
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
            lost_blocks += u32::from(lost);
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
            Some(Some(p)) => {
                let entry = Entry::Pending {
                    slot: i,
                    lost: p.lost,
                };
                table
                    .insert(writer, p.block, entry.encode())
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
                lost_blocks += u32::from(p.lost);
            }
        }
    }
    Ok(TableCounts {
        pending,
        lost: lost_blocks,
    })
}

pub(super) fn table_errno(e: TableError) -> Error {
    match e {
        TableError::NoMemory => ENOMEM,
        TableError::Full => ENOSPC,
        TableError::Exists => EEXIST,
        TableError::NotFound => ENOENT,
        TableError::OutOfRange => EINVAL,
    }
}

impl RemapTarget {
    pub(super) fn construct(ctx: &mut Ctr<'_>, args: &[&CStr]) -> Result<Pin<KBox<Self>>> {
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
            max_lbs: crate::kapi::dm::max_logical_block_size(),
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
            Err(FormatError::TooLarge) => {
                return Err(ctx.fail(
                    c"Spare area too large: a metadata copy must fit in 1 GiB of memory (about 8 bytes per spare block): use a larger block_size or a smaller spare area",
                    EINVAL,
                ))
            }
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
        let (image, report) = metadata::load_from(&client, &format).map_err(|e| {
            let e = match e {
                // No copy of this geometry is intact: say so if the
                // area holds another block size's metadata instead.
                LoadError::Format(crate::ondisk::LoadError::NoIntactCopy) => {
                    metadata::foreign_identity(
                        |buf| spare.rw_sync(parsed.spare_offset, buf, false),
                        block_size,
                    )
                    .map_or(e, |found| {
                        LoadError::Format(crate::ondisk::LoadError::Mismatch(found))
                    })
                }
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
        let (spares, table, writer, counts, spares_us) =
            load_state(&image, geometry.target_len >> block_shift, started)
                .map_err(|reason| ctx.fail(reason, EINVAL))?;
        if !reloading {
            report_load(
                &report,
                table.len(&writer) - counts.pending as usize,
                counts.pending,
                LoadTimes {
                    read: read_us,
                    spares: spares_us,
                    total: started.elapsed().as_micros_ceil(),
                },
            );
        }
        let meta = MetaWriter::new(client, image)
            .map_err(|e| ctx.fail(c"Cannot allocate the metadata writer", e))?;
        let queue = OrderedQueue::new(c"dm-remap-meta")
            .map_err(|e| ctx.fail(c"Cannot allocate the metadata workqueue", e))?;
        let in_flight = Srcu::new().map_err(|e| ctx.fail(c"Cannot set up SRCU", e))?;
        let hold = BioHold::new(ctx).map_err(|e| ctx.fail(c"Cannot allocate the block hold", e))?;
        let stats =
            PerCpuCounters::new().map_err(|e| ctx.fail(c"Cannot allocate the statistics", e))?;
        let device_stats = DeviceStats::join(ctx.device_identity(), ctx.begin())
            .map_err(|e| ctx.fail(c"Cannot allocate the device's statistics", e))?;
        let auto_remap = writable && !parsed.features.no_auto_remap;
        let read_retries = parsed.features.read_retries.unwrap_or(DEFAULT_READ_RETRIES);
        let slow_read_ms = parsed.features.slow_read_ms.unwrap_or(DEFAULT_SLOW_READ_MS);
        // Below the mark at load: no event, which marks a crossing.
        let low_water_reported = low_water::below(parsed.features.spare_low_water, &spares);
        ctx.set_bio_queue(c"dm-remap-err")
            .map_err(|e| ctx.fail(c"Cannot allocate the error worker", e))?;

        // Spares and metadata live on the spare device: a flush must reach
        // it too when it is a different device.
        ctx.set_num_flush_bios(if geometry.same_device { 1 } else { 2 });
        ctx.set_discards(true);
        ctx.set_secure_erases(true);
        ctx.set_write_zeroes(true);

        KBox::pin_init(
            try_pin_init!(RemapTarget {
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
                slow_read_ms,
                _claim: claim,
                table,
                in_flight,
                hold,
                stats,
                device_stats,
                data_down: AtomicBool::new(false),
                probe_unanswered: AtomicBool::new(false),
                switches <- new_mutex!(0),
                switched <- new_condvar!("RemapTarget::switched"),
                admin <- new_mutex!(Admin {
                    writer,
                    spares,
                    pending: counts.pending,
                    fenced: 0,
                    lost: counts.lost,
                    resumed: false,
                    reload_pending: reloading,
                    exhaustion_reported: false,
                    low_water_reported,
                }),
                scrub <- new_mutex!(Scrub::new()),
                scrub_control <- new_mutex!(()),
            }),
            GFP_KERNEL,
        )
        .map_err(|e| ctx.fail(c"Cannot allocate the target context", e))
    }
}
