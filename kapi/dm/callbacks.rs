// SPDX-License-Identifier: GPL-2.0

//! The `extern "C"` callbacks of a target type, and the private data that
//! device-mapper core keeps for each target (`ti->private`).

use super::{
    bindings as b, bio_queue::BioQueueOwner, disposition::MapKind, Bio, Ctr, DeviceVisitor,
    Emitter, EndIoResult, QueueLimits, StatusType, Target, TargetInfo,
};
use core::{mem::ManuallyDrop, ptr::NonNull};
use kernel::{
    bindings::{bio, blk_status_t, queue_limits},
    prelude::*,
};

/// What `ti->private` points to between `ctr` and `dtr`.
///
/// # Invariants
///
/// `target` is dropped only in [`dtr`], after the queue has been stopped
/// (no step or worker runs or can start); `queue` is freed after `target`,
/// and `devices` (opened for this target) are put after both.
pub(super) struct Private<T: Target> {
    pub(super) target: ManuallyDrop<Pin<KBox<T>>>,
    pub(super) queue: Option<BioQueueOwner<T>>,
    pub(super) devices: KVec<NonNull<b::dm_dev>>,
}

impl<T: Target> Private<T> {
    /// The target.
    #[inline(always)]
    pub(super) fn target(&self) -> &T {
        &self.target
    }
}

/// The private data of a constructed target.
///
/// # Safety
///
/// `ti` must be valid with `private` set by [`ctr`] of type `T` and not yet
/// released by [`dtr`].
#[inline(always)]
pub(super) unsafe fn private<'a, T: Target>(ti: *mut b::dm_target) -> &'a Private<T> {
    // SAFETY: `private` holds the pointer from `KBox::into_raw` in `ctr`,
    // valid until `dtr`; it is only ever shared.
    unsafe { &*(*ti).private.cast::<Private<T>>() }
}

/// A constructed target and the view of it that its callbacks get.
///
/// # Safety
///
/// As for [`private`], and `ti` valid for `'a`.
#[inline(always)]
unsafe fn target_and_info<'a, T: Target>(ti: *mut b::dm_target) -> (&'a T, TargetInfo<'a, T>) {
    // SAFETY: as the caller promises.
    let private = unsafe { private::<T>(ti) };
    // SAFETY: as the caller promises.
    (private.target(), unsafe {
        TargetInfo::from_raw(ti, private)
    })
}

/// Collects a callback's C string arguments into a vector.
///
/// # Safety
///
/// `argv` must hold `argc` valid C strings that live for `'a`.
unsafe fn collect_args<'a>(argc: c_uint, argv: *mut *mut c_char) -> Result<KVec<&'a CStr>> {
    let mut v = KVec::with_capacity(argc as usize, GFP_KERNEL)?;
    for i in 0..argc as usize {
        // SAFETY: `argv` has `argc` entries, each a valid C string for `'a`.
        v.push(unsafe { CStr::from_char_ptr(*argv.add(i)) }, GFP_KERNEL)?;
    }
    Ok(v)
}

/// # Safety
///
/// `ti` must be a target under construction and `argv` must hold `argc`
/// valid C strings, as device-mapper core passes them to `ctr`.
pub(super) unsafe extern "C" fn ctr<T: Target>(
    ti: *mut b::dm_target,
    argc: c_uint,
    argv: *mut *mut c_char,
) -> c_int {
    // SAFETY: device-mapper core passes the target under construction,
    // which nobody else touches during the constructor.
    let mut ctx = unsafe { Ctr::<T>::from_raw(ti) };
    // SAFETY: `argv` holds `argc` C strings valid during this call.
    let args = match unsafe { collect_args(argc, argv) } {
        Ok(args) => args,
        Err(e) => return ctx.fail(c"Cannot allocate the argument list", e).to_errno(),
    };
    // Allocated first: nothing can fail once the target is built.
    let slot = match KBox::<Private<T>>::new_uninit(GFP_KERNEL) {
        Ok(slot) => slot,
        Err(_) => return ctx.fail(c"Cannot allocate the target", ENOMEM).to_errno(),
    };
    let target = match T::ctr(&mut ctx, &args) {
        Ok(target) => target,
        // Dropping `ctx` puts the devices the constructor opened.
        Err(e) => return e.to_errno(),
    };
    let (queue, devices) = ctx.into_parts();
    let private = KBox::write(
        slot,
        Private {
            target: ManuallyDrop::new(target),
            queue,
            devices,
        },
    );
    // SAFETY: `ti` is valid; `private` is read back only by `private()` and
    // released by `dtr`.
    unsafe { (*ti).private = KBox::into_raw(private).cast() };
    0
}

impl<T: Target> Drop for Private<T> {
    fn drop(&mut self) {
        // SAFETY: dropped once, here, in `dtr`, which has stopped the queue:
        // nothing runs the target's callbacks any more.
        unsafe { ManuallyDrop::drop(&mut self.target) };
        // The queue is freed next (field order), then the devices are put
        // by `dtr`, which took them out.
    }
}

/// # Safety
///
/// `ti` must have been constructed by [`ctr`] and not destroyed.
pub(super) unsafe extern "C" fn dtr<T: Target>(ti: *mut b::dm_target) {
    // Every kept bio has ended (device-mapper core waits for them before a
    // table goes), but the worker or a step may still be running, with a
    // shared view of the private data: stopped through a shared view too.
    // SAFETY: `ti` is constructed (the caller's promise).
    if let Some(queue) = &unsafe { private::<T>(ti) }.queue {
        queue.stop();
    }
    // SAFETY: `ti` is valid and `private` came from `KBox::into_raw` in
    // `ctr`; `dtr` is the last callback, and with the queue stopped nothing
    // else views the private data.
    let mut private = unsafe { KBox::from_raw((*ti).private.cast::<Private<T>>()) };
    let devices = core::mem::take(&mut private.devices);
    // Stops the worker, drops the target, frees the queue.
    drop(private);
    for dev in devices {
        // SAFETY: `dev` was opened for `ti` by `Ctr::get_device` and is put
        // once, here; a `DmDev` does not use it (it holds the device's file).
        unsafe { b::dm_put_device(ti, dev.as_ptr()) };
    }
}

/// # Safety
///
/// `ti` must have been constructed by [`ctr`] and not destroyed; `bio` must
/// be valid as device-mapper core passes it to `map`.
pub(super) unsafe extern "C" fn map<T: Target>(ti: *mut b::dm_target, bio: *mut bio) -> c_int {
    // SAFETY: device-mapper core passes a constructed target and a clone
    // the target owns until it is remapped or ended, with the per-bio data
    // `ctr` asked for.
    let (target, info, bio) = unsafe {
        let (target, info) = target_and_info::<T>(ti);
        (target, info, Bio::<T>::from_map(bio, ti))
    };
    (match target.map(&info, bio).kind {
        MapKind::Remapped => b::DM_MAPIO_REMAPPED,
        MapKind::Submitted => b::DM_MAPIO_SUBMITTED,
        MapKind::Requeue => b::DM_MAPIO_REQUEUE,
        MapKind::Kill => b::DM_MAPIO_KILL,
    }) as c_int
}

/// # Safety
///
/// `ti` must have been constructed by [`ctr`] and not destroyed; the other
/// arguments must be valid as device-mapper core passes them to `end_io`.
pub(super) unsafe extern "C" fn end_io<T: Target>(
    ti: *mut b::dm_target,
    bio: *mut bio,
    error: *mut blk_status_t,
) -> c_int {
    // SAFETY: device-mapper core passes a constructed target, the
    // completing clone (mapped by `map`, so its per-bio data is set) and a
    // valid status to update.
    let (target, info, mut bio, status) = unsafe {
        let (target, info) = target_and_info::<T>(ti);
        (target, info, Bio::<T>::from_end_io(bio, ti), &mut *error)
    };
    let result = target.end_io(&info, &mut bio, status);
    if bio.kept() {
        if let Some(queue) = info.kept() {
            // The bio is a completing clone for which this returns
            // DM_ENDIO_INCOMPLETE: it stays the target's until the worker
            // ends it, and `bio` is not used after this.
            queue.push_kept(bio);
            return b::DM_ENDIO_INCOMPLETE as c_int;
        }
        // No queue to keep it on: it completes as it is.
        return b::DM_ENDIO_DONE as c_int;
    }
    (match result {
        EndIoResult::Done => b::DM_ENDIO_DONE,
        // Not on the queue (a token of another bio): nothing would end
        // it, so it completes now.
        EndIoResult::Incomplete(_) => b::DM_ENDIO_DONE,
        EndIoResult::Requeue => b::DM_ENDIO_REQUEUE,
    }) as c_int
}

/// # Safety
///
/// `ti` must have been constructed by [`ctr`] and not destroyed; the other
/// arguments must be valid as device-mapper core passes them to `status`.
pub(super) unsafe extern "C" fn status<T: Target>(
    ti: *mut b::dm_target,
    kind: b::status_type_t,
    _status_flags: c_uint,
    result: *mut c_char,
    maxlen: c_uint,
) {
    let kind = match kind {
        b::status_type_t_STATUSTYPE_INFO => StatusType::Info,
        b::status_type_t_STATUSTYPE_TABLE => StatusType::Table,
        b::status_type_t_STATUSTYPE_IMA => StatusType::Ima,
        _ => return,
    };
    // SAFETY: a constructed target and a result buffer of `maxlen` bytes.
    let ((target, info), mut out) =
        unsafe { (target_and_info::<T>(ti), Emitter::from_raw(result, maxlen)) };
    target.status(&info, kind, &mut out);
}

/// # Safety
///
/// `ti` must have been constructed by [`ctr`] and not destroyed; the other
/// arguments must be valid as device-mapper core passes them to `message`.
pub(super) unsafe extern "C" fn message<T: Target>(
    ti: *mut b::dm_target,
    argc: c_uint,
    argv: *mut *mut c_char,
    result: *mut c_char,
    maxlen: c_uint,
) -> c_int {
    // SAFETY: a constructed target, `argc` valid C strings and a result
    // buffer of `maxlen` bytes, all valid during this call.
    let ((target, info), mut out, args) = unsafe {
        (
            target_and_info::<T>(ti),
            Emitter::from_raw(result, maxlen),
            collect_args(argc, argv),
        )
    };
    let args = match args {
        Ok(args) => args,
        Err(e) => return e.to_errno(),
    };
    match target.message(&info, &args, &mut out) {
        // 1: the text in `result` goes back to the caller.
        Ok(()) => 1,
        Err(e) => e.to_errno(),
    }
}

/// # Safety
///
/// `ti` must have been constructed by [`ctr`] and not destroyed; the other
/// arguments must be valid as device-mapper core passes them to
/// `iterate_devices`.
pub(super) unsafe extern "C" fn iterate_devices<T: Target>(
    ti: *mut b::dm_target,
    func: b::iterate_devices_callout_fn,
    data: *mut c_void,
) -> c_int {
    // SAFETY: a constructed target.
    let (target, info) = unsafe { target_and_info::<T>(ti) };
    // SAFETY: `func` and `data` are device-mapper core's for this call, and
    // the devices are the ones opened for `ti`.
    let mut visitor = unsafe { DeviceVisitor::new(ti, func, data, &private::<T>(ti).devices) };
    target.iterate_devices(&info, &mut visitor)
}

/// # Safety
///
/// `ti` must have been constructed by [`ctr`] and not destroyed; `limits`
/// must be valid as device-mapper core passes it to `io_hints`.
pub(super) unsafe extern "C" fn io_hints<T: Target>(
    ti: *mut b::dm_target,
    limits: *mut queue_limits,
) {
    // SAFETY: a constructed target and the limits being stacked, ours to
    // change during this call.
    let ((target, info), mut limits) =
        unsafe { (target_and_info::<T>(ti), QueueLimits::from_raw(limits)) };
    target.io_hints(&info, &mut limits);
}

/// A callback that gets only the target: `$name` calls `Target::$name`.
macro_rules! plain_callbacks {
    ($($name:ident),*) => {$(
        /// # Safety
        ///
        /// `ti` must have been constructed by [`ctr`] and not destroyed.
        pub(super) unsafe extern "C" fn $name<T: Target>(ti: *mut b::dm_target) {
            // SAFETY: a constructed target.
            let (target, info) = unsafe { target_and_info::<T>(ti) };
            target.$name(&info);
        }
    )*};
}

plain_callbacks!(presuspend, presuspend_undo, postsuspend, resume);

/// # Safety
///
/// `ti` must have been constructed by [`ctr`] and not destroyed.
pub(super) unsafe extern "C" fn preresume<T: Target>(ti: *mut b::dm_target) -> c_int {
    // SAFETY: a constructed target.
    let (target, info) = unsafe { target_and_info::<T>(ti) };
    match target.preresume(&info) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// # Safety
///
/// `ti` must be a target of type `T` whose constructor has returned and
/// whose destructor has not flushed its queue.
pub(super) unsafe extern "C" fn process_kept<T: Target>(ti: *mut b::dm_target) {
    // SAFETY: bios reach a queue only after `ctr` returned, and `dtr`
    // flushes the queue before the target goes.
    let (target, info) = unsafe { target_and_info::<T>(ti) };
    target.process_kept(&info);
}

/// # Safety
///
/// `ti` must be a target of type `T` whose constructor has returned and
/// whose destructor has not cancelled its queue's step.
pub(super) unsafe extern "C" fn step<T: Target>(ti: *mut b::dm_target) {
    // SAFETY: steps are scheduled only through a `TargetInfo` of the target,
    // so after `ctr` returned, and `dtr` cancels them before it goes.
    let (target, info) = unsafe { target_and_info::<T>(ti) };
    target.step(&info);
}
