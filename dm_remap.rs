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
//! This stage passes every bio through to the data device at
//! `data_offset + dm_target_offset(sector)`; flushes reach the spare device
//! too, since spares and metadata live there.

// The abstraction layer offers the whole target interface; this stage of
// the target uses part of it.
#[allow(dead_code)]
mod dm;
mod rcu_box;
mod remap_table;
mod spare_alloc;
mod table_args;

use core::num::NonZeroU32;
use dm::{
    Bio, BioOp, Ctr, DeviceVisitor, DmDev, Emitter, MapResult, QueueLimits, StatusType, TargetInfo,
};
use kernel::prelude::*;
use spare_alloc::MetadataLayout;
use table_args::{Features, Geometry};

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

/// One `remap` target: a data area and a spare area, on one device or two.
struct RemapTarget {
    data: DmDev,
    /// First sector of the data area on the data device.
    data_offset: u64,
    spare: DmDev,
    /// First sector of the spare area on the spare device.
    spare_offset: u64,
    /// Length of the spare area in sectors.
    spare_len: u64,
    /// The remap unit in bytes.
    block_size: u32,
    /// The features as given in the table line, printed back by `table`.
    features: Features,
}

const HELP_TEXT: &str = "\
remap target messages:
  help    this text
";

#[vtable]
impl dm::Target for RemapTarget {
    const NAME: &'static CStr = c"remap";
    const VERSION: [u32; 3] = [0, 1, 0];
    const FEATURES: u64 = dm::bindings::DM_TARGET_NOWAIT as u64;

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
        let nr_spare_blocks = parsed
            .spare_len
            .checked_div(u64::from(block_size.get() >> 9))
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| ctx.fail(c"Spare area has more than 2^32 blocks", EINVAL))?;
        let copy_blocks = spare_alloc::metadata_copy_blocks(nr_spare_blocks, block_size);
        // The five metadata copies get their fixed places now, so that the
        // spare area is checked to hold them and at least one spare.
        MetadataLayout::new(nr_spare_blocks, copy_blocks).map_err(|_| {
            ctx.fail(
                c"Spare area too small for 5 metadata copies and one spare block",
                EINVAL,
            )
        })?;

        // Spares and metadata live on the spare device: a flush must reach
        // it too when it is a different device.
        ctx.set_num_flush_bios(if geometry.same_device { 1 } else { 2 });
        ctx.set_num_discard_bios(1);
        ctx.set_num_secure_erase_bios(1);
        ctx.set_num_write_zeroes_bios(1);

        KBox::pin(
            RemapTarget {
                data,
                data_offset: parsed.data_offset,
                spare,
                spare_offset: parsed.spare_offset,
                spare_len: parsed.spare_len,
                block_size: block_size.get(),
                features: parsed.features,
            },
            GFP_KERNEL,
        )
        .map_err(|e| ctx.fail(c"Cannot allocate the target context", e.into()))
    }

    #[inline(always)]
    fn map(&self, ti: &TargetInfo<'_>, bio: &mut Bio<'_>) -> MapResult {
        if bio.op() == BioOp::Flush && bio.target_bio_nr() == 1 {
            // The second flush of a two-device table goes to the spare.
            bio.remap(&self.spare, self.spare_offset);
        } else {
            bio.remap(
                &self.data,
                self.data_offset + ti.target_offset(bio.sector()),
            );
        }
        MapResult::Remapped
    }

    fn status(&self, ti: &TargetInfo<'_>, kind: StatusType, out: &mut Emitter<'_>) {
        match kind {
            // Nothing is remapped at this stage, so there is no state to show.
            StatusType::Info => {}
            StatusType::Table => {
                out.emit(fmt!(
                    "{} {} {} {} {}",
                    self.data.name().to_str().unwrap_or("?"),
                    self.data_offset,
                    self.spare.name().to_str().unwrap_or("?"),
                    self.spare_offset,
                    self.spare_len
                ));
                let f = &self.features;
                if f.word_count() > 0 {
                    out.emit(fmt!(" {}", f.word_count()));
                    if let Some(bs) = f.block_size {
                        out.emit(fmt!(" block_size {}", bs));
                    }
                    if f.no_auto_remap {
                        out.emit(fmt!(" no_auto_remap"));
                    }
                    if let Some(n) = f.read_retries {
                        out.emit(fmt!(" read_retries {}", n));
                    }
                }
            }
            StatusType::Ima => {
                ti.emit_name_version(out);
                out.emit(fmt!(
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

    fn message(&self, _ti: &TargetInfo<'_>, args: &[&CStr], out: &mut Emitter<'_>) -> Result {
        match args {
            [cmd] if cmd.to_bytes() == b"help" => {
                out.emit(fmt!("{}", HELP_TEXT));
                Ok(())
            }
            [] => {
                pr_warn!("remap: empty message\n");
                Err(EINVAL)
            }
            [cmd, ..] => {
                pr_warn!(
                    "remap: unrecognised message '{}' ({} arguments), try 'help'\n",
                    cmd.to_str().unwrap_or("?"),
                    args.len() - 1
                );
                Err(EINVAL)
            }
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
