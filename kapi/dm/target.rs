// SPDX-License-Identifier: GPL-2.0

//! The target type: what device-mapper core calls for each target.

use super::{Bio, Ctr, DeviceVisitor, Emitter, EndIoResult, MapResult, QueueLimits, TargetInfo};
use kernel::prelude::*;

/// Which kind of text `status` is asked for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum StatusType {
    /// `dmsetup status`: the target's state.
    Info,
    /// `dmsetup table`: the line that recreates the target.
    Table,
    /// The IMA measurement of the target, `name=value,...;`.
    Ima,
}

/// A device-mapper target type.
///
/// Device-mapper core calls these methods for every target of the type that
/// a table contains. `ctr` builds the target's private state, which then
/// lives until `dtr`; every other method receives it as `&self`.
#[vtable]
pub(crate) trait Target: Sized + Send + Sync {
    /// The target type's name in table lines.
    const NAME: &'static CStr;
    /// The target type's version, as `dmsetup targets` shows it.
    const VERSION: [u32; 3];
    /// `DM_TARGET_*` feature flags.
    const FEATURES: u64 = 0;
    /// The data each bio carries for the target ([`Bio::per_bio_data`]),
    /// set in `map` and read in `end_io` and by the worker: `()` for none.
    /// Every bio's starts as `Default::default()` before `map` sees it.
    type PerBio: Default + Send;

    /// Builds a target from its table line arguments. On failure, set the
    /// reason shown to the user with [`Ctr::fail`].
    fn ctr(ctx: &mut Ctr<'_, Self>, args: &[&CStr]) -> Result<Pin<KBox<Self>>>;

    /// Redirects or takes over a bio. Runs in the submitter's context: must
    /// not sleep. The result is made by disposing of the bio (see
    /// [`MapResult`]).
    fn map<'a>(&self, ti: &TargetInfo<'_, Self>, bio: Bio<'a, Self>) -> MapResult<'a>;

    /// Sees a bio complete, in completion context: must not sleep.
    fn end_io(
        &self,
        _ti: &TargetInfo<'_, Self>,
        _bio: &mut Bio<'_, Self>,
        _status: &mut u8,
    ) -> EndIoResult {
        build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Writes the status text of the given kind.
    fn status(&self, _ti: &TargetInfo<'_, Self>, _kind: StatusType, _out: &mut Emitter<'_>) {
        build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Handles `dmsetup message`. `Ok` returns the text written to `out` to
    /// the caller; an error is returned as an errno.
    fn message(
        &self,
        _ti: &TargetInfo<'_, Self>,
        _args: &[&CStr],
        _out: &mut Emitter<'_>,
    ) -> Result {
        build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Calls `visitor` for each underlying device range the target uses,
    /// stopping at, and returning, the first non-zero result.
    fn iterate_devices(
        &self,
        _ti: &TargetInfo<'_, Self>,
        _visitor: &mut DeviceVisitor<'_>,
    ) -> c_int {
        build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Adjusts the queue limits of the mapped device.
    fn io_hints(&self, _ti: &TargetInfo<'_, Self>, _limits: &mut QueueLimits<'_>) {
        build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Called before the device is suspended, while I/O may still arrive.
    fn presuspend(&self, _ti: &TargetInfo<'_, Self>) {
        build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Called when a suspend that called `presuspend` failed (a signal, a
    /// filesystem that could not be frozen): the device goes on without a
    /// resume.
    fn presuspend_undo(&self, _ti: &TargetInfo<'_, Self>) {
        build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Called once the device is suspended and all I/O has completed.
    fn postsuspend(&self, _ti: &TargetInfo<'_, Self>) {
        build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Called before resume; an error keeps the device suspended.
    fn preresume(&self, _ti: &TargetInfo<'_, Self>) -> Result {
        build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Called when the device resumes.
    fn resume(&self, _ti: &TargetInfo<'_, Self>) {
        build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// The worker of the target's [`BioQueue`] ([`Ctr::set_bio_queue`]):
    /// takes the kept bios and ends each one. Process context; may sleep.
    fn process_kept(&self, _ti: &TargetInfo<'_, Self>) {}

    /// A step that [`BioQueue::schedule_step`] asked for, on the worker's
    /// workqueue (never at the same time as [`Target::process_kept`]).
    /// Process context; may sleep. The destructor cancels the next step
    /// and waits for one that runs before the target goes.
    fn step(&self, _ti: &TargetInfo<'_, Self>) {}
}
