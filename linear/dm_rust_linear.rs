// SPDX-License-Identifier: GPL-2.0

//! dm-rust-linear: device-mapper's `linear` target, written on the same
//! abstractions as dm-remap (`kapi/`), as the sample of the 2023 Rust
//! device-mapper RFC was. It shows that the abstractions are not one
//! target's, and its speed beside C `dm-linear` is their price alone
//! (`scripts/bench.sh`).
//!
//! Table line, as `dm-linear`'s:
//!
//! ```text
//! <start> <len> rust_linear <dev> <offset>
//! ```
//!
//! Every bio goes to `<dev>` at `<offset> + dm_target_offset(sector)`.

// The abstractions offer more than this target uses.
#[allow(dead_code, unused_imports, unused_macros)]
#[path = "../kapi/mod.rs"]
mod kapi;

use kapi::dm::{self, DeviceVisitor, DmDev, Emitter, StatusType};
use kernel::prelude::*;

type Bio<'a> = dm::Bio<'a, LinearTarget>;
type Ctr<'a> = dm::Ctr<'a, LinearTarget>;
type MapResult<'a> = dm::MapResult<'a>;
type TargetInfo<'a> = dm::TargetInfo<'a, LinearTarget>;

module! {
    type: LinearModule,
    name: "dm_rust_linear",
    authors: ["dm-remap developers"],
    description: "device-mapper linear target in Rust, on dm-remap's abstractions",
    license: "GPL",
}

#[pin_data]
struct LinearModule {
    registration: dm::Registration<LinearTarget>,
}

impl kernel::InPlaceModule for LinearModule {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            registration: dm::Registration::new(module)?,
        })
    }
}

/// One `rust_linear` target: a range of one device.
struct LinearTarget {
    dev: DmDev,
    /// The first sector of the range on `dev`.
    start: u64,
}

/// A sector number as table lines write it: decimal digits only.
fn parse_sector(arg: &CStr) -> Option<u64> {
    let text = arg.to_str().ok()?;
    if text.is_empty() || !text.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[vtable]
impl dm::Target for LinearTarget {
    const NAME: &'static CStr = c"rust_linear";
    const VERSION: [u32; 3] = [1, 0, 0];
    const FEATURES: u64 = dm::bindings::DM_TARGET_NOWAIT as u64;
    type PerBio = ();

    fn ctr(ctx: &mut Ctr<'_>, args: &[&CStr]) -> Result<Pin<KBox<Self>>> {
        let [path, start] = args else {
            return Err(ctx.fail(c"Invalid argument count", EINVAL));
        };
        let start =
            parse_sector(start).ok_or_else(|| ctx.fail(c"Invalid device sector", EINVAL))?;
        if start.checked_add(ctx.len()).is_none() {
            return Err(ctx.fail(c"Invalid device sector", EINVAL));
        }
        let dev = ctx
            .get_device(path)
            .map_err(|e| ctx.fail(c"Device lookup failed", e))?;
        ctx.set_num_flush_bios(1);
        ctx.set_discards(true);
        ctx.set_secure_erases(true);
        ctx.set_write_zeroes(true);
        KBox::pin(Self { dev, start }, GFP_KERNEL)
            .map_err(|_| ctx.fail(c"Cannot allocate the target", ENOMEM))
    }

    #[inline(always)]
    fn map<'a>(&self, ti: &TargetInfo<'_>, mut bio: Bio<'a>) -> MapResult<'a> {
        // The constructor checked that `start + len` does not overflow, and
        // a bio's offset lies below `len`; an empty flush has no sector
        // that matters.
        let sector = self.start.wrapping_add(ti.target_offset(bio.sector()));
        bio.remap(&self.dev, sector);
        bio.remapped()
    }

    fn status(&self, ti: &TargetInfo<'_>, kind: StatusType, out: &mut Emitter<'_>) {
        let name = self.dev.name().to_str().unwrap_or("?");
        match kind {
            StatusType::Info => {}
            StatusType::Table => out.emit(fmt!("{} {}", name, self.start)),
            StatusType::Ima => {
                ti.emit_name_version(out);
                out.emit(fmt!(",device_name={},start={};", name, self.start));
            }
        }
    }

    fn iterate_devices(&self, ti: &TargetInfo<'_>, visitor: &mut DeviceVisitor<'_>) -> c_int {
        visitor.visit(&self.dev, self.start, ti.len())
    }
}
