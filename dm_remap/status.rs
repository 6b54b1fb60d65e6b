// SPDX-License-Identifier: GPL-2.0

//! `dmsetup status`, `dmsetup table` and the IMA measurement.

use crate::kapi::dm::{Emitter, StatusType};
use crate::spare_alloc::METADATA_COPIES;
use crate::{stat, RemapTarget, TargetInfo};
use core::sync::atomic::Ordering::Relaxed;

impl RemapTarget {
    pub(super) fn emit_status(&self, ti: &TargetInfo<'_>, kind: StatusType, out: &mut Emitter<'_>) {
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
                    "{} {}/{} {} {} {} {} {}/{} {} {} {}",
                    self.remapped(&admin),
                    admin.spares.in_use(),
                    admin.spares.capacity(),
                    self.device_stats.read_one(&self.stats, stat::READ_ERRORS),
                    self.device_stats.read_one(&self.stats, stat::WRITE_ERRORS),
                    state,
                    meta.image().committed(),
                    meta.image().intact_copies(),
                    METADATA_COPIES,
                    meta.last_error().map_or(0, |e| e.to_errno()),
                    admin.pending,
                    if self.below_low_water(&admin) {
                        "low_water"
                    } else {
                        "-"
                    }
                ));
                let lost = admin.lost;
                drop(meta);
                drop(admin);
                out.emit(format_args!(" "));
                self.emit_scrub_status(out);
                // Last, after the fields of earlier versions: lost blocks,
                // then the slow reads and weak blocks moved (kept across
                // reloads, as the error counts).
                out.emit(format_args!(
                    " {} {} {}",
                    lost,
                    self.device_stats.read_one(&self.stats, stat::SLOW_READS),
                    self.device_stats.read_one(&self.stats, stat::WEAK_REMAPS)
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
                    if let Some(n) = f.spare_low_water {
                        out.emit(format_args!(" spare_low_water {}", n));
                    }
                    if let Some(n) = f.slow_read_ms {
                        out.emit(format_args!(" slow_read_ms {}", n));
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
}
