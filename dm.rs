// SPDX-License-Identifier: GPL-2.0

//! Safe abstractions for writing a device-mapper target in Rust.
//!
//! C header: [`include/linux/device-mapper.h`](srctree/include/linux/device-mapper.h)
//!
//! A target implements [`Target`] and is registered with a pinned
//! [`Registration`]. The `extern "C"` callbacks in this file turn the raw
//! pointers that device-mapper core passes into safe views ([`Ctr`],
//! [`TargetInfo`], [`Bio`], [`Emitter`], [`QueueLimits`]) and the target's
//! private data back into `&T`. All unsafe code of the module that touches
//! device-mapper lives here.

use core::{fmt, marker::PhantomData, ptr::NonNull};
use kernel::{
    bindings::{bio, blk_status_t, block_device, bvec_iter, queue_limits},
    error::to_result,
    prelude::*,
    types::Opaque,
};

/// Bindings generated at build time for `device-mapper.h`, `dm-bufio.h` and
/// `helpers.h`; everything they refer to comes from `kernel::bindings`.
#[allow(
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    dead_code,
    improper_ctypes,
    unsafe_op_in_unsafe_fn,
    unreachable_pub,
    missing_docs,
    clippy::all,
    clippy::as_underscore,
    clippy::cast_lossless,
    clippy::ptr_as_ptr,
    clippy::ref_as_ptr,
    clippy::undocumented_unsafe_blocks
)]
pub(crate) mod bindings {
    include!("dm_bindings_generated.rs");
}

/// Layout constants of device-mapper core's private `dm-core.h`, generated
/// from `dm_offsets.c` by Kbuild for the kernel the module is built
/// against (as `asm-offsets.h` is for the kernel itself).
mod offsets {
    include!("dm_offsets_generated.rs");
}

// `dm_target_io.flags` is a `blk_short_t`, read as a `u16` below.
const _: () = assert!(offsets::DM_TIO_FLAGS_SIZE == size_of::<u16>());

use bindings as b;

/// What a bio asks the target to do.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum BioOp {
    /// Read data.
    Read,
    /// Write data.
    Write,
    /// An empty cache flush (`REQ_PREFLUSH` without data).
    Flush,
    /// Discard a range.
    Discard,
    /// Securely erase a range.
    SecureErase,
    /// Write zeroes to a range.
    WriteZeroes,
    /// Any other operation (zone management and the like).
    Other,
}

/// The proof that a bio was taken by a [`BlockHold`] or a [`BioQueue`],
/// which submit or end it: only they make one.
#[derive(Debug)]
pub(crate) struct Taken(());

/// How `map` disposed of a bio.
#[derive(Debug)]
pub(crate) enum MapResult {
    /// The bio was redirected; device-mapper core submits it.
    Remapped,
    /// The target took the bio and will submit or end it itself; the
    /// token says which abstraction took it, so no bio is left behind by
    /// claiming so without taking it.
    Submitted(Taken),
    /// Device-mapper core should retry the bio later.
    Requeue,
    /// Fail the bio with an I/O error.
    Kill,
}

/// How `end_io` disposed of a completed bio.
#[derive(Debug)]
pub(crate) enum EndIoResult {
    /// The bio completes with the (possibly changed) status.
    Done,
    /// The target kept the bio ([`Bio::keep`]) and ends it later.
    Incomplete(Kept),
    /// Device-mapper core should requeue the bio.
    Requeue,
}

/// What [`Bio::keep`] returns, and only it: `end_io` says a bio is
/// incomplete with it. Device-mapper core is told so only for a bio that
/// is on the target's queue, whatever `end_io` returns.
#[derive(Debug)]
#[must_use = "return it in EndIoResult::Incomplete"]
pub(crate) struct Kept {
    _private: (),
}

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
    /// Whether each bio carries a [`PerBio`] for the target
    /// ([`Bio::per_bio_data`]), set in `map` and read in `end_io`.
    const PER_BIO_DATA: bool = false;

    /// Builds a target from its table line arguments. On failure, set the
    /// reason shown to the user with [`Ctr::fail`].
    fn ctr(ctx: &mut Ctr<'_>, args: &[&CStr]) -> Result<Pin<KBox<Self>>>;

    /// Redirects or takes over a bio. Runs in the submitter's context: must
    /// not sleep.
    fn map(&self, ti: &TargetInfo<'_>, bio: Bio<'_>) -> MapResult;

    /// Sees a bio complete, in completion context: must not sleep.
    fn end_io(&self, _ti: &TargetInfo<'_>, _bio: &mut Bio<'_>, _status: &mut u8) -> EndIoResult {
        build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Writes the status text of the given kind.
    fn status(&self, _ti: &TargetInfo<'_>, _kind: StatusType, _out: &mut Emitter<'_>) {
        build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Handles `dmsetup message`. `Ok` returns the text written to `out` to
    /// the caller; an error is returned as an errno.
    fn message(&self, _ti: &TargetInfo<'_>, _args: &[&CStr], _out: &mut Emitter<'_>) -> Result {
        build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Calls `visitor` for each underlying device range the target uses,
    /// stopping at, and returning, the first non-zero result.
    fn iterate_devices(&self, _ti: &TargetInfo<'_>, _visitor: &mut DeviceVisitor<'_>) -> c_int {
        build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Adjusts the queue limits of the mapped device.
    fn io_hints(&self, _ti: &TargetInfo<'_>, _limits: &mut QueueLimits<'_>) {
        build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Called before the device is suspended, while I/O may still arrive.
    fn presuspend(&self, _ti: &TargetInfo<'_>) {
        build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Called when a suspend that called `presuspend` failed (a signal, a
    /// filesystem that could not be frozen): the device goes on without a
    /// resume.
    fn presuspend_undo(&self, _ti: &TargetInfo<'_>) {
        build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Called once the device is suspended and all I/O has completed.
    fn postsuspend(&self, _ti: &TargetInfo<'_>) {
        build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Called before resume; an error keeps the device suspended.
    fn preresume(&self, _ti: &TargetInfo<'_>) -> Result {
        build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Called when the device resumes.
    fn resume(&self, _ti: &TargetInfo<'_>) {
        build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// The queue of bios the target keeps for its worker, if it has one:
    /// the destructor waits for the worker before the target goes.
    fn bio_queue(&self) -> Option<&BioQueue> {
        None
    }

    /// The worker of the target's [`BioQueue`]: takes the kept bios and
    /// ends each one. Process context; may sleep.
    fn process_kept(&self, _ti: &TargetInfo<'_>) {}

    /// A step that [`BioQueue::schedule_step`] asked for, on the worker's
    /// workqueue (never at the same time as [`Target::process_kept`]).
    /// Process context; may sleep. The destructor cancels the next step
    /// and waits for one that runs before the target goes.
    fn step(&self, _ti: &TargetInfo<'_>) {}
}

/// The registration of a target type with device-mapper core.
///
/// # Invariants
///
/// `target_type` is registered with `dm_register_target` for the whole life
/// of the registration and unregistered when it is dropped.
#[pin_data(PinnedDrop)]
pub(crate) struct Registration<T: Target> {
    #[pin]
    target_type: Opaque<b::target_type>,
    _target: PhantomData<T>,
}

// SAFETY: after registration only device-mapper core touches `target_type`,
// under its own locking; the registration itself holds no other state.
unsafe impl<T: Target> Send for Registration<T> {}
// SAFETY: see `Send`: `&Registration` gives access to nothing.
unsafe impl<T: Target> Sync for Registration<T> {}

impl<T: Target> Registration<T> {
    /// Registers target type `T`, owned by `module`.
    pub(crate) fn new(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            target_type <- Opaque::try_ffi_init(move |slot: *mut b::target_type| {
                let tt = b::target_type {
                    features: T::FEATURES,
                    name: T::NAME.as_char_ptr(),
                    module: module.as_ptr(),
                    version: T::VERSION,
                    ctr: Some(ctr_callback::<T>),
                    dtr: Some(dtr_callback::<T>),
                    map: Some(map_callback::<T>),
                    end_io: if T::HAS_END_IO { Some(end_io_callback::<T>) } else { None },
                    status: if T::HAS_STATUS { Some(status_callback::<T>) } else { None },
                    message: if T::HAS_MESSAGE { Some(message_callback::<T>) } else { None },
                    iterate_devices: if T::HAS_ITERATE_DEVICES {
                        Some(iterate_devices_callback::<T>)
                    } else {
                        None
                    },
                    io_hints: if T::HAS_IO_HINTS { Some(io_hints_callback::<T>) } else { None },
                    presuspend: if T::HAS_PRESUSPEND {
                        Some(presuspend_callback::<T>)
                    } else {
                        None
                    },
                    presuspend_undo: if T::HAS_PRESUSPEND_UNDO {
                        Some(presuspend_undo_callback::<T>)
                    } else {
                        None
                    },
                    postsuspend: if T::HAS_POSTSUSPEND {
                        Some(postsuspend_callback::<T>)
                    } else {
                        None
                    },
                    preresume: if T::HAS_PRERESUME { Some(preresume_callback::<T>) } else { None },
                    resume: if T::HAS_RESUME { Some(resume_callback::<T>) } else { None },
                    ..Default::default()
                };
                // SAFETY: `slot` is valid for writes and pinned: it is the
                // place the registration lives in until it is dropped.
                unsafe { slot.write(tt) };
                // SAFETY: `slot` holds a fully initialised target type whose
                // strings are `'static`; it stays pinned until `drop`
                // unregisters it.
                to_result(unsafe { b::dm_register_target(slot) })
            }),
            _target: PhantomData,
        })
    }
}

#[pinned_drop]
impl<T: Target> PinnedDrop for Registration<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: by the type invariant the target type is registered. The
        // module cannot be unloaded while a table uses it, so no target of
        // this type is left.
        unsafe { b::dm_unregister_target(self.target_type.get()) };
    }
}

/// The target's view of its `struct dm_target` in a callback.
///
/// # Invariants
///
/// `ti` points to a valid `dm_target` for the lifetime `'a`.
pub(crate) struct TargetInfo<'a> {
    ti: NonNull<b::dm_target>,
    _life: PhantomData<&'a b::dm_target>,
}

impl TargetInfo<'_> {
    /// # Safety
    ///
    /// `ti` must point to a valid `dm_target` for the lifetime of the result.
    unsafe fn from_raw(ti: *mut b::dm_target) -> Self {
        Self {
            // SAFETY: the caller guarantees `ti` is valid, hence not null.
            ti: unsafe { NonNull::new_unchecked(ti) },
            _life: PhantomData,
        }
    }

    fn raw(&self) -> &b::dm_target {
        // SAFETY: valid by the type invariant; device-mapper core does not
        // change the fields read here while the target exists.
        unsafe { self.ti.as_ref() }
    }

    /// First sector of the target in the mapped device.
    pub(crate) fn begin(&self) -> u64 {
        self.raw().begin
    }

    /// Length of the target in sectors.
    pub(crate) fn len(&self) -> u64 {
        self.raw().len
    }

    /// The offset of a mapped-device sector inside this target
    /// (`dm_target_offset`).
    #[inline(always)]
    pub(crate) fn target_offset(&self, sector: u64) -> u64 {
        // Device-mapper core sends a target only bios that start inside
        // it, so `sector >= begin` for those; any other input wraps
        // instead of panicking (the result is then as meaningless as the
        // input).
        sector.wrapping_sub(self.raw().begin)
    }

    /// Raises a table event: `dmsetup wait` returns. Process context.
    pub(crate) fn raise_event(&self) {
        // SAFETY: `ti` is valid and belongs to a live table (type
        // invariant).
        unsafe { b::dmr_table_event(self.ti.as_ptr()) };
    }

    /// The target type's name and version, as IMA measurements print them.
    pub(crate) fn emit_name_version(&self, out: &mut Emitter<'_>) {
        let raw = self.raw();
        // SAFETY: `type` points to the registered target type, alive while
        // any of its targets exists; its name is a `'static` C string.
        let (name, v) = unsafe { (CStr::from_char_ptr((*raw.type_).name), (*raw.type_).version) };
        out.emit(fmt!(
            "target_name={},target_version={}.{}.{}",
            name.to_str().unwrap_or("?"),
            v[0],
            v[1],
            v[2]
        ));
    }
}

/// The constructor's view of the new target.
///
/// # Invariants
///
/// `ti` points to the `dm_target` being constructed, valid for `'a`, and is
/// not accessed by anyone else during the constructor.
pub(crate) struct Ctr<'a> {
    ti: NonNull<b::dm_target>,
    _life: PhantomData<&'a mut b::dm_target>,
}

impl Ctr<'_> {
    fn raw(&mut self) -> &mut b::dm_target {
        // SAFETY: valid and exclusive by the type invariant.
        unsafe { self.ti.as_mut() }
    }

    /// First sector of the target in the mapped device.
    pub(crate) fn begin(&mut self) -> u64 {
        self.raw().begin
    }

    /// Length of the target in sectors.
    pub(crate) fn len(&mut self) -> u64 {
        self.raw().len
    }

    /// Whether the table was loaded for writing (not `dmsetup --readonly`).
    pub(crate) fn writable(&mut self) -> bool {
        // SAFETY: `ti` is valid and its table set (type invariant).
        unsafe { b::dmr_table_writable(self.ti.as_ptr()) }
    }

    /// An identity of the mapped device the table belongs to, the same for
    /// every table loaded into one device while it exists.
    pub(crate) fn device_identity(&mut self) -> usize {
        // SAFETY: `ti` is valid and its table set (type invariant).
        unsafe { b::dmr_table_md(self.ti.as_ptr()) as usize }
    }

    /// An identity of the table the target belongs to: two targets of one
    /// table have the same, a reloaded table another.
    pub(crate) fn table_identity(&mut self) -> usize {
        self.raw().table as usize
    }

    /// Records why the constructor failed (`ti->error`), for the kernel log
    /// and dmsetup, and returns `err` for the caller to propagate.
    pub(crate) fn fail(&mut self, reason: &'static CStr, err: Error) -> Error {
        self.raw().error = reason.as_char_ptr().cast_mut();
        err
    }

    /// Opens an underlying device (`dm_get_device`) with the table's mode.
    pub(crate) fn get_device(&mut self, path: &CStr) -> Result<DmDev> {
        let ti = self.ti.as_ptr();
        let mut dev: *mut b::dm_dev = core::ptr::null_mut();
        // SAFETY: `ti` is valid (type invariant); its table is set before
        // the constructor runs. `path` is a valid C string and `dev` a valid
        // place for the result.
        to_result(unsafe {
            b::dm_get_device(
                ti,
                path.as_char_ptr(),
                b::dm_table_get_mode((*ti).table),
                &mut dev,
            )
        })?;
        // INVARIANT: `dev` was just obtained for `ti`; `ti` outlives the
        // target's private data, which is dropped in `dtr` at the latest.
        Ok(DmDev {
            ti: self.ti,
            // SAFETY: `dm_get_device` succeeded, so `dev` is valid.
            dev: unsafe { NonNull::new_unchecked(dev) },
        })
    }

    /// Number of empty flush bios per flush (`num_flush_bios`); each one is
    /// told apart by [`Bio::target_bio_nr`].
    pub(crate) fn set_num_flush_bios(&mut self, n: u32) {
        self.raw().num_flush_bios = n;
    }

    // Discards, secure erases and write-zeroes reach the target as one bio
    // or not at all: duplicated bios could not be split with
    // `Bio::accept_partial`.

    /// Whether the target takes discards (`num_discard_bios` 1 or 0).
    pub(crate) fn set_discards(&mut self, on: bool) {
        self.raw().num_discard_bios = u32::from(on);
    }

    /// Whether the target takes secure erases (`num_secure_erase_bios`).
    pub(crate) fn set_secure_erases(&mut self, on: bool) {
        self.raw().num_secure_erase_bios = u32::from(on);
    }

    /// Whether the target takes write-zeroes (`num_write_zeroes_bios`).
    pub(crate) fn set_write_zeroes(&mut self, on: bool) {
        self.raw().num_write_zeroes_bios = u32::from(on);
    }

    /// Splits I/O at multiples of this many sectors (`max_io_len`).
    pub(crate) fn set_max_io_len(&mut self, sectors: u32) -> Result {
        // SAFETY: `ti` is valid and exclusively ours (type invariant).
        to_result(unsafe { b::dm_set_target_max_io_len(self.ti.as_ptr(), sectors.into()) })
    }

    // No setter for `per_io_data_size`: it is `PerBio`'s size, set by
    // `ctr_callback` from `Target::PER_BIO_DATA`, which `per_bio_of` relies
    // on.
}

/// An underlying device opened with `dm_get_device`.
///
/// # Invariants
///
/// `dev` was returned by `dm_get_device` for the target `ti` and is put
/// exactly once, on drop; `ti` outlives this handle.
pub(crate) struct DmDev {
    ti: NonNull<b::dm_target>,
    dev: NonNull<b::dm_dev>,
}

// SAFETY: a `dm_dev` does not change while it is open, and putting it is
// allowed from any thread in process context.
unsafe impl Send for DmDev {}
// SAFETY: all methods taking `&self` only read the open device.
unsafe impl Sync for DmDev {}

impl DmDev {
    fn raw(&self) -> &b::dm_dev {
        // SAFETY: open, hence valid, by the type invariant.
        unsafe { self.dev.as_ref() }
    }

    /// The device's `major:minor` name, as table lines print it.
    pub(crate) fn name(&self) -> &CStr {
        let name = &self.raw().name;
        // SAFETY: `dm_get_device` stores a NUL-terminated `major:minor`
        // string in the 16-byte `name` array, which lives as long as `self`.
        unsafe { CStr::from_char_ptr(name.as_ptr()) }
    }

    /// The open block device, for the abstractions built on it.
    pub(crate) fn bdev(&self) -> *mut block_device {
        self.raw().bdev
    }

    /// Size of the device in 512-byte sectors.
    pub(crate) fn nr_sectors(&self) -> u64 {
        // SAFETY: the block device of an open `dm_dev` is valid.
        unsafe { b::dmr_bdev_nr_sectors(self.bdev()) }
    }

    /// Logical block size of the device in bytes.
    pub(crate) fn logical_block_size(&self) -> u32 {
        // SAFETY: the block device of an open `dm_dev` is valid.
        unsafe { b::dmr_bdev_logical_block_size(self.bdev()) }
    }

    /// Reads or writes `buf` at `sector` synchronously; writes are FUA, so
    /// durable once this returns. Sleeps: process context only, never from
    /// `map` or `end_io`. `buf` is a `KVec` so that it is kmalloc memory, as
    /// the block layer needs for a linear buffer.
    pub(crate) fn rw_sync(&self, sector: u64, buf: &mut KVec<u8>, write: bool) -> Result {
        // SAFETY: the block device is open; `buf` is kmalloc memory of
        // `buf.len()` bytes, borrowed for the whole synchronous I/O.
        to_result(unsafe {
            b::dmr_rw_sync(
                self.bdev(),
                sector,
                buf.as_mut_ptr().cast(),
                buf.len(),
                write,
            )
        })
    }

    /// Whether both handles refer to the same block device.
    pub(crate) fn same_device(&self, other: &DmDev) -> bool {
        self.devt() == other.devt()
    }

    /// The device number of the block device.
    pub(crate) fn devt(&self) -> u32 {
        // SAFETY: the block device of an open `dm_dev` is valid.
        unsafe { b::dmr_bdev_devt(self.bdev()) }
    }
}

impl Drop for DmDev {
    fn drop(&mut self) {
        // SAFETY: by the type invariant `dev` is open for `ti`, which is
        // still valid, and this is the only place that puts it.
        unsafe { b::dm_put_device(self.ti.as_ptr(), self.dev.as_ptr()) };
    }
}

/// A bio handed to the target by device-mapper core.
///
/// # Invariants
///
/// `bio` points to a valid bio that the target may modify for `'a`.
pub(crate) struct Bio<'a> {
    bio: NonNull<bio>,
    /// The bio's [`PerBio`], when the target asked for one: looked up once
    /// (`dm_per_bio_data` is a call), as `map` both clears and records it.
    per_bio: Option<NonNull<PerBio>>,
    /// Whether this is `map`, where a bio may be shortened.
    in_map: bool,
    /// Whether the bio may be handed to a [`BlockHold`]: in `map`, or
    /// taken from a hold.
    deferrable: bool,
    /// Whether `end_io` asked to keep the bio ([`Bio::keep`]): the
    /// callback puts it on the target's [`Target::bio_queue`] once `end_io`
    /// has returned and the target can no longer touch it through this.
    keep: bool,
    _life: PhantomData<&'a mut bio>,
}

impl Bio<'_> {
    /// # Safety
    ///
    /// `bio` must be valid and modifiable by the caller for the lifetime of
    /// the result.
    /// `per_bio_data` must say whether the target asked for per-bio data.
    unsafe fn from_raw(bio: *mut bio, per_bio_data: bool, in_map: bool) -> Self {
        // SAFETY: valid by the caller's guarantee, hence not null.
        let bio = unsafe { NonNull::new_unchecked(bio) };
        let per_bio = if per_bio_data {
            // SAFETY: the bio is a dm clone of a target with a `PerBio`
            // (the caller's guarantee).
            Some(unsafe { per_bio_ptr(bio) })
        } else {
            None
        };
        Self {
            bio,
            per_bio,
            in_map,
            deferrable: in_map,
            keep: false,
            _life: PhantomData,
        }
    }

    fn raw(&self) -> &bio {
        // SAFETY: valid by the type invariant.
        unsafe { self.bio.as_ref() }
    }

    /// First sector of the bio in the mapped device.
    #[inline(always)]
    pub(crate) fn sector(&self) -> u64 {
        self.raw().bi_iter.bi_sector
    }

    /// Size of the bio's remaining data in sectors.
    #[inline(always)]
    pub(crate) fn sectors(&self) -> u32 {
        self.raw().bi_iter.bi_size >> 9
    }

    /// What the bio asks for.
    #[inline(always)]
    pub(crate) fn op(&self) -> BioOp {
        // `bio_op()`, and `bio_has_data()` for a write, decoded here: the
        // path of every bio saves a call.
        let raw = self.raw();
        match raw.bi_opf & ((1 << kernel::bindings::REQ_OP_BITS) - 1) {
            kernel::bindings::req_op_REQ_OP_READ => BioOp::Read,
            kernel::bindings::req_op_REQ_OP_WRITE => {
                let preflush = 1 << kernel::bindings::req_flag_bits___REQ_PREFLUSH;
                if raw.bi_iter.bi_size == 0 && raw.bi_opf & preflush != 0 {
                    BioOp::Flush
                } else {
                    BioOp::Write
                }
            }
            kernel::bindings::req_op_REQ_OP_FLUSH => BioOp::Flush,
            kernel::bindings::req_op_REQ_OP_DISCARD => BioOp::Discard,
            kernel::bindings::req_op_REQ_OP_SECURE_ERASE => BioOp::SecureErase,
            kernel::bindings::req_op_REQ_OP_WRITE_ZEROES => BioOp::WriteZeroes,
            _ => BioOp::Other,
        }
    }

    /// Which of the target's `num_*_bios` copies of a flush, discard,
    /// secure erase or write-zeroes this is (0 for ordinary bios).
    #[inline(always)]
    pub(crate) fn target_bio_nr(&self) -> u32 {
        // SAFETY: the bio is valid (type invariant) and came from dm core.
        unsafe { b::dm_bio_get_target_bio_nr(self.bio.as_ptr()) }
    }

    /// The target's per-bio data, if it asked for it
    /// ([`Target::PER_BIO_DATA`]).
    #[inline(always)]
    pub(crate) fn per_bio_data(&mut self) -> Option<&mut PerBio> {
        // SAFETY: the per-bio data lives as long as the bio, which is ours
        // for `'a` (type invariant); `&mut self` makes the borrow unique.
        self.per_bio.map(|mut p| unsafe { p.as_mut() })
    }

    /// Fills the per-bio data: the target's `tag`, `offset` and `section`,
    /// and where the bio's data stands now, for a [`KeptBio`] to copy it
    /// later (`end_io` sees the iterator advanced).
    #[inline(always)]
    pub(crate) fn record(&mut self, tag: u64, offset: u64, section: u64) {
        let iter = &self.raw().bi_iter;
        // Field by field: the compiler then stores each straight from the
        // bio, with no copy of the iterator on the stack.
        let (sector, size, idx, done) =
            (iter.bi_sector, iter.bi_size, iter.bi_idx, iter.bi_bvec_done);
        if let Some(data) = self.per_bio_data() {
            data.tag = tag;
            data.offset = offset;
            data.section = section;
            data.iter.bi_sector = sector;
            data.iter.bi_size = size;
            data.iter.bi_idx = idx;
            data.iter.bi_bvec_done = done;
        }
    }

    /// Whether the bio is pointed at `dev` (in `end_io`: went to it).
    #[inline(always)]
    pub(crate) fn is_on(&self, dev: &DmDev) -> bool {
        core::ptr::eq(self.raw().bi_bdev, dev.bdev())
    }

    /// Whether this is a read-ahead, which may fail without harm.
    pub(crate) fn is_readahead(&self) -> bool {
        // SAFETY: the bio is valid (type invariant).
        unsafe { b::dmr_bio_readahead(self.bio.as_ptr()) }
    }

    /// In `end_io` of a target with a [`Target::bio_queue`]: has the bio
    /// put on that queue for the target's worker, which ends it, once
    /// `end_io` returns; device-mapper core is told the bio is incomplete.
    /// Refused (returns `None`) elsewhere and without per-bio data.
    pub(crate) fn keep(&mut self) -> Option<Kept> {
        if self.in_map || self.deferrable || self.per_bio.is_none() || self.keep {
            return None;
        }
        self.keep = true;
        Some(Kept { _private: () })
    }

    /// In `map`: keeps only the first `sectors` sectors of the bio;
    /// device-mapper core maps the rest as a new bio. Refused (returns
    /// `false`) outside `map` and unless `0 < sectors < self.sectors()`,
    /// which also refuses every empty flush.
    #[inline(always)]
    pub(crate) fn accept_partial(&mut self, sectors: u32) -> bool {
        if !self.in_map || sectors == 0 || sectors >= self.sectors() {
            return false;
        }
        // SAFETY: called from `map` on a bio with more than `sectors`
        // sectors, so not an empty flush, and the empty flushes are the
        // only bios that can be duplicated (see `Ctr::set_discards`); not
        // REQ_ATOMIC (targets here do not advertise atomic writes).
        unsafe { b::dm_accept_partial_bio(self.bio.as_ptr(), sectors) };
        true
    }

    /// Sends the bio to `dev` at `sector`.
    #[inline(always)]
    pub(crate) fn remap(&mut self, dev: &DmDev, sector: u64) {
        let bdev = dev.bdev();
        // `bio_set_dev`, which without `CONFIG_BLK_CGROUP` (no blkg to
        // associate) is two flag updates and a store, written out here:
        // the path of every bio saves a call.
        #[cfg(not(CONFIG_BLK_CGROUP))]
        {
            // SAFETY: the bio is valid and ours to modify (type invariant).
            let raw = unsafe { self.bio.as_mut() };
            let mut clear: u16 = 1 << kernel::bindings::BIO_REMAPPED;
            if !core::ptr::eq(raw.bi_bdev, bdev) {
                clear |= 1 << kernel::bindings::BIO_BPS_THROTTLED;
            }
            raw.bi_flags &= !clear;
            raw.bi_bdev = bdev;
            raw.bi_iter.bi_sector = sector;
        }
        #[cfg(CONFIG_BLK_CGROUP)]
        // SAFETY: the bio is valid and ours to modify (type invariant); the
        // block device of an open `dm_dev` is valid.
        unsafe {
            b::dmr_bio_set_dev(self.bio.as_ptr(), bdev);
            (*self.bio.as_ptr()).bi_iter.bi_sector = sector;
        }
    }
}

/// The per-bio data of a target that asks for it: `tag`, `offset` and
/// `section` are the target's to use; `iter` is kept by [`Bio::record`].
///
/// Before `map` runs, `tag` and `iter.bi_size` are set to 0 (nothing
/// recorded) and the rest is left as the memory held it: the target reads
/// `offset` and `section` only under a tag it recorded, and
/// [`KeptBio::copy`] reads `iter` only when `iter.bi_size` is not 0.
#[repr(C)]
pub(crate) struct PerBio {
    pub(crate) tag: u64,
    pub(crate) offset: u64,
    pub(crate) section: u64,
    iter: bvec_iter,
}

/// The `PerBio` of a dm clone.
///
/// # Safety
///
/// `bio` must be a valid dm clone of a target that asked for a `PerBio` of
/// per-bio data, not otherwise borrowed for `'a`.
#[inline(always)]
unsafe fn per_bio_of<'a>(bio: NonNull<bio>) -> &'a mut PerBio {
    // SAFETY: as the caller guarantees for `per_bio_ptr`, and the
    // exclusive access for `'a`.
    unsafe { &mut *per_bio_ptr(bio).as_ptr() }
}

/// Where the `PerBio` of a dm clone lies.
///
/// # Safety
///
/// `bio` must be a valid dm clone of a target that asked for a `PerBio` of
/// per-bio data.
#[inline(always)]
unsafe fn per_bio_ptr(bio: NonNull<bio>) -> NonNull<PerBio> {
    // `dm_per_bio_data()` written out: it is out of line in dm.c, and this
    // is on the path of every bio's `map` and `end_io`. A clone is the last
    // field of its `struct dm_target_io`, which is either on its own or the
    // last field of a `struct dm_io` (flag `DM_TIO_INSIDE_DM_IO`); the
    // per-bio data lies just before whichever of the two begins the block.
    let clone = bio.as_ptr().cast::<u8>();
    // SAFETY: the bio is a dm clone (the caller's guarantee), so it lies in
    // a `struct dm_target_io` whose `flags` are this far before it (the
    // layout of the kernel the module is built against, `offsets`), a
    // `u16` that dm core sets before it hands the clone over and does not
    // change while the target has it.
    let flags = unsafe {
        clone
            .sub(offsets::DM_TIO_FLAGS_BEFORE_BIO)
            .cast::<u16>()
            .read()
    };
    let before = if flags & (1 << offsets::DM_TIO_INSIDE_DM_IO_BIT) != 0 {
        offsets::DM_IO_BIO_OFFSET
    } else {
        offsets::DM_TARGET_IO_BIO_OFFSET
    };
    // SAFETY: dm core allocates the per-bio data of the size the target
    // asked for (a `PerBio`, the caller's guarantee) right before the
    // structure that holds the clone, `before` bytes before it, aligned for
    // pointers; it is not null (an offset within the clone's allocation).
    let data = unsafe { NonNull::new_unchecked(clone.sub(before + size_of::<PerBio>()).cast()) };
    // The kernel with lock debugging (the test kernel) checks this against
    // dm core's own answer, so a layout that does not match the running
    // kernel shows in the suite.
    #[cfg(CONFIG_PROVE_LOCKING)]
    {
        // SAFETY: as above, for dm core's function.
        let dm = unsafe { b::dm_per_bio_data(bio.as_ptr(), size_of::<PerBio>()) };
        if kernel::warn_on!(dm.cast::<PerBio>() != data.as_ptr()) {
            // SAFETY: as above.
            return unsafe { NonNull::new_unchecked(dm.cast()) };
        }
    }
    data
}

/// Bios a target keeps to end later from its worker: failed bios from
/// `end_io` ([`Bio::keep`]) and bios `map` takes ([`BioQueue::take_from_map`]).
/// The worker runs [`Target::process_kept`] on an ordered `WQ_MEM_RECLAIM`
/// workqueue of its own, queued whenever a bio is added; the same
/// workqueue runs the target's delayed steps ([`Target::step`]).
///
/// # Invariants
///
/// `q` comes from `dmr_bioq_alloc` for target `ti` of a type whose
/// callbacks are [`bioq_callback`]'s and [`step_callback`]'s `T`, and is
/// freed on drop.
pub(crate) struct BioQueue {
    q: NonNull<b::dmr_bioq>,
    ti: NonNull<b::dm_target>,
    per_bio_data: bool,
}

// SAFETY: the list is protected by the queue's irq-safe spinlock; the rest
// is set once at allocation.
unsafe impl Send for BioQueue {}
// SAFETY: see `Send`.
unsafe impl Sync for BioQueue {}

impl BioQueue {
    /// A queue for the target under construction in `ctx`.
    pub(crate) fn new<T: Target>(ctx: &mut Ctr<'_>, name: &'static CStr) -> Result<Self> {
        // SAFETY: `name` is a static C string; `ti` is the target under
        // construction, whose `private` is set once `ctr` succeeds, before
        // any bio reaches it; the callback matches the target's type.
        let q = unsafe {
            b::dmr_bioq_alloc(
                name.as_char_ptr(),
                ctx.ti.as_ptr(),
                Some(bioq_callback::<T>),
                Some(step_callback::<T>),
            )
        };
        NonNull::new(q)
            .map(|q| Self {
                q,
                ti: ctx.ti,
                per_bio_data: T::PER_BIO_DATA,
            })
            .ok_or(ENOMEM)
    }

    /// Runs the target's [`Target::step`] once, `msecs` from now (a step
    /// not yet started is moved to that time). `ti` must be this queue's
    /// target: a `TargetInfo` exists only once the constructor returned,
    /// so the step finds the target; for another target nothing happens.
    pub(crate) fn schedule_step(&self, ti: &TargetInfo<'_>, msecs: u32) {
        if ti.ti != self.ti {
            return;
        }
        // SAFETY: the queue is valid (type invariant); its target's
        // constructor has returned (a `TargetInfo` of it exists), and its
        // destructor cancels the step before the target goes.
        unsafe { b::dmr_bioq_schedule_step(self.q.as_ptr(), msecs) };
    }

    /// Cancels the next step and waits for one that is running, even if it
    /// schedules itself again. Sleeps; not from within a step.
    pub(crate) fn cancel_step(&self) {
        // SAFETY: the queue is valid (type invariant).
        unsafe { b::dmr_bioq_cancel_step(self.q.as_ptr()) };
    }

    /// In `map`, or in [`BlockHold::release`]'s callback: takes the bio for
    /// the worker, which ends it. The bio's per-bio data must have been set
    /// ([`Bio::record`]). Elsewhere (or without per-bio data) the bio is
    /// not taken and `Kill` is returned, which both callers end the bio
    /// with.
    pub(crate) fn take_from_map(&self, bio: Bio<'_>) -> MapResult {
        if !(bio.in_map || bio.deferrable) || bio.per_bio.is_none() {
            return MapResult::Kill;
        }
        // SAFETY: the queue is valid; the bio is a clone that `map` returns
        // `Submitted` for (or returned it for, and the hold hands it over),
        // so it is ours until the worker ends it.
        unsafe { b::dmr_bioq_push(self.q.as_ptr(), bio.bio.as_ptr()) };
        MapResult::Submitted(Taken(()))
    }

    /// Takes every kept bio, in the order they were added.
    pub(crate) fn take(&self) -> KeptBios {
        KeptBios {
            // SAFETY: the queue is valid (type invariant).
            next: unsafe { b::dmr_bioq_take(self.q.as_ptr()) },
            per_bio_data: self.per_bio_data,
        }
    }

    /// Waits until the worker is idle.
    pub(crate) fn flush(&self) {
        // SAFETY: the queue is valid (type invariant).
        unsafe { b::dmr_bioq_flush(self.q.as_ptr()) };
    }
}

impl Drop for BioQueue {
    fn drop(&mut self) {
        // SAFETY: valid (type invariant); every kept bio has ended.
        unsafe { b::dmr_bioq_free(self.q.as_ptr()) };
    }
}

/// The bios taken from a [`BioQueue`]; any not taken out are ended with an
/// I/O error when this is dropped.
pub(crate) struct KeptBios {
    next: *mut bio,
    per_bio_data: bool,
}

impl Iterator for KeptBios {
    type Item = KeptBio;

    fn next(&mut self) -> Option<KeptBio> {
        let raw = NonNull::new(self.next)?;
        // SAFETY: `raw` is on the list taken from the queue, linked by
        // `bi_next`; unlinking it leaves the rest intact.
        self.next = unsafe { b::dmr_bio_list_next(raw.as_ptr()) };
        Some(KeptBio {
            bio: raw,
            per_bio_data: self.per_bio_data,
        })
    }
}

impl Drop for KeptBios {
    fn drop(&mut self) {
        for bio in self.by_ref() {
            bio.end(b::dmr_status_DMR_STS_IOERR as u8);
        }
    }
}

/// A bio the worker took from a [`BioQueue`]. It ends with
/// [`KeptBio::end`], or with an I/O error if dropped.
///
/// # Invariants
///
/// `bio` is a dm clone on no list, owned by the worker until ended; when
/// `per_bio_data` is true it carries a [`PerBio`].
pub(crate) struct KeptBio {
    bio: NonNull<bio>,
    per_bio_data: bool,
}

// SAFETY: the bio is owned by whoever holds this; bios may be ended from
// any thread.
unsafe impl Send for KeptBio {}

impl KeptBio {
    /// The target's per-bio data.
    pub(crate) fn data(&mut self) -> Option<&mut PerBio> {
        if !self.per_bio_data {
            return None;
        }
        // SAFETY: the bio is valid and ours, and carries a `PerBio` (type
        // invariant and the check above).
        Some(unsafe { per_bio_of(self.bio) })
    }

    /// The status the bio completed with (0 for a bio taken in `map`).
    pub(crate) fn status(&self) -> u8 {
        // SAFETY: the bio is valid (type invariant).
        unsafe { (*self.bio.as_ptr()).bi_status }
    }

    /// Bytes of data recorded by [`Bio::record`].
    pub(crate) fn bytes(&mut self) -> u32 {
        self.data().map_or(0, |d| d.iter.bi_size)
    }

    /// Copies `buf.len()` bytes between the bio's data, `skip` bytes into
    /// what [`Bio::record`] recorded, and `buf`: into the bio when
    /// `to_bio`. Nothing is copied beyond the recorded data.
    pub(crate) fn copy(&mut self, skip: u32, buf: &mut [u8], to_bio: bool) {
        let Some(data) = self.data() else { return };
        let iter = data.iter;
        let Some(len) = iter.bi_size.checked_sub(skip) else {
            return;
        };
        let len = len.min(buf.len() as u32);
        if len == 0 {
            // Nothing recorded (or nothing left): the rest of `iter` may
            // be whatever the memory held.
            return;
        }
        // SAFETY: the bio is valid and its data pages stay with it until it
        // ends (type invariant); `iter` describes that data and `buf` holds
        // at least `len` bytes.
        unsafe {
            b::dmr_bio_copy(
                self.bio.as_ptr(),
                &iter,
                skip,
                buf.as_mut_ptr().cast(),
                len,
                to_bio,
            )
        };
    }

    /// Ends the bio with `status`; device-mapper core calls `end_io` again.
    pub(crate) fn end(self, status: u8) {
        let raw = self.bio.as_ptr();
        core::mem::forget(self);
        // SAFETY: the bio is ours (type invariant) and ended once.
        unsafe { b::dmr_bio_endio(raw, status) };
    }
}

impl Drop for KeptBio {
    fn drop(&mut self) {
        // SAFETY: the bio is ours (type invariant); `end` forgets `self`, so
        // this is the only end.
        unsafe { b::dmr_bio_endio(self.bio.as_ptr(), b::dmr_status_DMR_STS_IOERR as u8) };
    }
}

/// Lets another task run if one is due (`cond_resched`): long loops of
/// process context call it between steps. Must not be called in atomic
/// context (`might_sleep` reports it).
pub(crate) fn cond_resched() {
    // SAFETY: a plain call; it may sleep, as the doc says.
    unsafe { b::dmr_cond_resched() };
}

/// A scope in which allocations do not start I/O (`memalloc_noio_save`):
/// the worker that completes I/O must not wait for reclaim that waits for
/// that I/O.
pub(crate) struct NoIoScope(c_uint);

impl NoIoScope {
    pub(crate) fn enter() -> Self {
        // SAFETY: plain call; restored in the same task on drop.
        Self(unsafe { b::dmr_noio_save() })
    }
}

impl Drop for NoIoScope {
    fn drop(&mut self) {
        // SAFETY: the flags of the matching save, in the same task.
        unsafe { b::dmr_noio_restore(self.0) };
    }
}

/// # Safety
///
/// `ti` must be a target of type `T` whose constructor has returned and
/// whose destructor has not finished (it flushes the queue).
unsafe extern "C" fn bioq_callback<T: Target>(ti: *mut b::dm_target) {
    // SAFETY: bios reach a queue only after `ctr` returned, and `dtr`
    // flushes the queue before the target goes.
    let (target, info) = unsafe { (private::<T>(ti), TargetInfo::from_raw(ti)) };
    target.process_kept(&info);
}

/// # Safety
///
/// `ti` must be a target of type `T` whose constructor has returned and
/// whose destructor has not passed [`BioQueue::cancel_step`].
unsafe extern "C" fn step_callback<T: Target>(ti: *mut b::dm_target) {
    // SAFETY: steps are scheduled only with a `TargetInfo` of the target,
    // so after `ctr` returned, and `dtr` cancels them before it goes.
    let (target, info) = unsafe { (private::<T>(ti), TargetInfo::from_raw(ti)) };
    target.step(&info);
}

/// Bios waiting for blocks whose mapping is switching: `map` hands a bio
/// that starts in such a block to the hold instead of mapping it, and once
/// the switch is done the bios are mapped again and submitted
/// (`dm_submit_bio_remap`). Unlike `DM_MAPIO_REQUEUE`, which device-mapper
/// core turns into an I/O error for the rest of a split bio, this never
/// fails a bio. Which blocks are switching is the caller's business.
///
/// # Invariants
///
/// `hold` comes from `dmr_hold_alloc` and is freed on drop; the bios on its
/// list are dm clones that `map` returned as submitted.
pub(crate) struct BlockHold {
    hold: NonNull<b::dmr_hold>,
    per_bio_data: bool,
}

// SAFETY: the hold's state is protected by its irq-safe spinlock.
unsafe impl Send for BlockHold {}
// SAFETY: see `Send`.
unsafe impl Sync for BlockHold {}

impl BlockHold {
    /// An empty hold for the bios of target type `T`.
    pub(crate) fn new<T: Target>() -> Result<Self> {
        // SAFETY: a plain allocation call.
        let hold = unsafe { b::dmr_hold_alloc() };
        // INVARIANT: non-null means allocated, with an empty list.
        NonNull::new(hold)
            .map(|hold| Self {
                hold,
                per_bio_data: T::PER_BIO_DATA,
            })
            .ok_or(ENOMEM)
    }

    /// Takes `bio` if `still_switching` says so, asked under the hold's
    /// lock (irqs off: it must not sleep), and then returns the result the
    /// caller must give back; otherwise hands the bio back. A switcher
    /// changes the mapping before calling [`Self::release`], so a bio is
    /// never left behind. From `map`, or from `release`'s callback.
    pub(crate) fn defer<'a>(
        &self,
        bio: Bio<'a>,
        still_switching: impl FnOnce() -> bool,
    ) -> Result<MapResult, Bio<'a>> {
        if !bio.deferrable {
            return Err(bio);
        }
        // SAFETY: `hold` is valid (type invariant).
        let flags = unsafe { b::dmr_hold_lock(self.hold.as_ptr()) };
        let held = still_switching();
        if held {
            // SAFETY: `hold` is valid and locked; the bio is a clone handed
            // to `map` (which returns `Submitted` for it) or one taken from
            // the list again: either way ours to keep.
            unsafe { b::dmr_hold_add(self.hold.as_ptr(), bio.bio.as_ptr()) };
        }
        // SAFETY: locked above with these flags.
        unsafe { b::dmr_hold_unlock(self.hold.as_ptr(), flags) };
        if held {
            Ok(MapResult::Submitted(Taken(())))
        } else {
            Err(bio)
        }
    }

    /// Takes every waiting bio and passes it to `route`, which maps it as
    /// `map` does. What it returns is carried out as device-mapper core
    /// would: `Remapped` bios are submitted, `Submitted` ones were taken
    /// (deferred again, or handed to a worker), and `Kill` (or `Requeue`,
    /// which cannot be honoured outside `map`) ends the bio with an I/O
    /// error, so that every bio taken from the hold ends exactly once.
    /// Process context.
    pub(crate) fn release(&self, mut route: impl FnMut(Bio<'_>) -> MapResult) {
        // SAFETY: `hold` is valid (type invariant).
        let mut next = unsafe { b::dmr_hold_take(self.hold.as_ptr()) };
        while !next.is_null() {
            let raw = next;
            // SAFETY: `raw` is on the list taken from the hold, linked by
            // `bi_next`; unlinking it leaves the rest of the list intact.
            next = unsafe { b::dmr_bio_list_next(raw) };
            // SAFETY: a deferred dm clone, ours until submitted below.
            let mut bio = unsafe { Bio::from_raw(raw, self.per_bio_data, false) };
            bio.deferrable = true;
            match route(bio) {
                // SAFETY: the clone was returned as submitted from `map` and
                // has been pointed at its device; it is submitted once.
                MapResult::Remapped => unsafe {
                    b::dm_submit_bio_remap(raw, core::ptr::null_mut())
                },
                MapResult::Submitted(_) => {}
                // SAFETY: the clone is ours (returned as submitted from
                // `map`, taken by no one since); it is ended once, and
                // device-mapper core calls `end_io` for it.
                MapResult::Kill | MapResult::Requeue => unsafe {
                    b::dmr_bio_endio(raw, b::dmr_status_DMR_STS_IOERR as u8)
                },
            }
        }
    }
}

impl Drop for BlockHold {
    fn drop(&mut self) {
        // SAFETY: valid (type invariant); a hold always ends before its
        // owner goes away, so the list is empty.
        unsafe { b::dmr_hold_free(self.hold.as_ptr()) };
    }
}

/// Writes text into a result buffer of device-mapper core, like `DMEMIT`.
///
/// Text that does not fit is cut off and the buffer is left full, which
/// tells device-mapper core to retry with a larger buffer. The text is
/// always NUL-terminated.
pub(crate) struct Emitter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> Emitter<'a> {
    /// An emitter over a byte buffer (used directly by the unit tests).
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        if let Some(first) = buf.first_mut() {
            *first = 0;
        }
        Self { buf, len: 0 }
    }

    /// # Safety
    ///
    /// `result` must be valid for writes of `maxlen` bytes for `'a`.
    unsafe fn from_raw(result: *mut c_char, maxlen: c_uint) -> Self {
        let buf = if result.is_null() {
            &mut [][..]
        } else {
            // SAFETY: valid for `maxlen` bytes by the caller's guarantee.
            unsafe { core::slice::from_raw_parts_mut(result.cast::<u8>(), maxlen as usize) }
        };
        Self::new(buf)
    }

    /// Appends formatted text.
    pub(crate) fn emit(&mut self, args: fmt::Arguments<'_>) {
        // `write_str` never fails: text that does not fit is cut off.
        let _ = fmt::Write::write_fmt(self, args);
    }

    /// Bytes that can still be written.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.len + 1)
    }

    /// The text written so far.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl fmt::Write for Emitter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.buf.is_empty() {
            return Ok(());
        }
        let room = self.buf.len() - 1 - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        self.buf[self.len] = 0;
        Ok(())
    }
}

/// The queue limits of the mapped device, in `io_hints`.
pub(crate) struct QueueLimits<'a>(&'a mut queue_limits);

/// The largest logical block size the block layer accepts: the page size,
/// or 64 KiB with large folios (`BLK_MAX_BLOCK_SIZE`).
pub(crate) fn max_logical_block_size() -> u32 {
    // SAFETY: a plain function returning a constant.
    unsafe { b::dmr_max_logical_block_size() }
}

impl QueueLimits<'_> {
    /// Logical block size in bytes.
    pub(crate) fn logical_block_size(&self) -> u32 {
        self.0.logical_block_size
    }

    /// Raises the logical and physical block size and the minimum I/O size
    /// to at least `bytes`, so no bio covers part of such a block. The
    /// logical block size stops at the largest the block layer accepts
    /// (the page size without large folios); above it, only the physical
    /// block size and minimum I/O size say `bytes`.
    pub(crate) fn raise_block_size(&mut self, bytes: u32) {
        let max_logical = max_logical_block_size();
        let l = &mut *self.0;
        l.logical_block_size = l.logical_block_size.max(bytes.min(max_logical));
        l.physical_block_size = l.physical_block_size.max(bytes);
        l.io_min = l.io_min.max(bytes);
    }
}

/// The callout of `iterate_devices`.
pub(crate) struct DeviceVisitor<'a> {
    ti: *mut b::dm_target,
    func: b::iterate_devices_callout_fn,
    data: *mut c_void,
    _life: PhantomData<&'a ()>,
}

impl DeviceVisitor<'_> {
    /// Reports that the target uses `len` sectors of `dev` from `start`.
    /// A non-zero result means stop and return it.
    pub(crate) fn visit(&mut self, dev: &DmDev, start: u64, len: u64) -> c_int {
        match self.func {
            // SAFETY: device-mapper core gave us `func` with its `data` for
            // this target; `dev` is open for it.
            Some(f) => unsafe { f(self.ti, dev.dev.as_ptr(), start, len, self.data) },
            None => 0,
        }
    }
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
/// `ti` must be valid with `private` set by [`ctr_callback`] and not yet
/// released by [`dtr_callback`].
unsafe fn private<'a, T: Target>(ti: *mut b::dm_target) -> &'a T {
    // SAFETY: `private` holds the pointer from `KBox::into_raw` in
    // `ctr_callback`, valid until `dtr_callback`.
    unsafe { &*(*ti).private.cast::<T>() }
}

/// # Safety
///
/// `ti` must be a target under construction and `argv` must hold `argc`
/// valid C strings, as device-mapper core passes them to `ctr`.
unsafe extern "C" fn ctr_callback<T: Target>(
    ti: *mut b::dm_target,
    argc: c_uint,
    argv: *mut *mut c_char,
) -> c_int {
    // INVARIANT: device-mapper core passes the target under construction,
    // which nobody else touches during the constructor.
    let mut ctx = Ctr {
        // SAFETY: `ti` is valid, hence not null.
        ti: unsafe { NonNull::new_unchecked(ti) },
        _life: PhantomData,
    };
    // SAFETY: `argv` holds `argc` C strings valid during this call.
    let args = match unsafe { collect_args(argc, argv) } {
        Ok(args) => args,
        Err(e) => return ctx.fail(c"Cannot allocate the argument list", e).to_errno(),
    };
    if T::PER_BIO_DATA {
        ctx.raw().per_io_data_size = core::mem::size_of::<PerBio>() as u32;
    }
    match T::ctr(&mut ctx, &args) {
        Ok(target) => {
            // SAFETY: `private` is only ever turned back into a shared
            // reference or, in `dtr`, into the same pinned box: the value
            // is never moved.
            let raw = KBox::into_raw(unsafe { Pin::into_inner_unchecked(target) });
            ctx.raw().private = raw.cast();
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// # Safety
///
/// `ti` must have been constructed by [`ctr_callback`] and not destroyed.
unsafe extern "C" fn dtr_callback<T: Target>(ti: *mut b::dm_target) {
    // SAFETY: `ti` is valid and constructed.
    let target = unsafe { private::<T>(ti) };
    if let Some(queue) = target.bio_queue() {
        // No step runs from now on.
        queue.cancel_step();
        // Every kept bio has ended (device-mapper core waits for them
        // before a table goes), but the worker may still be returning.
        queue.flush();
    }
    // SAFETY: `ti` is valid and `private` came from `KBox::into_raw` of a
    // pinned box in `ctr_callback`; `dtr` is the last callback.
    drop(unsafe { Pin::new_unchecked(KBox::from_raw((*ti).private.cast::<T>())) });
}

/// # Safety
///
/// `ti` must have been constructed by [`ctr_callback`] and not destroyed;
/// the other arguments must be valid as device-mapper core passes them
/// to `map`.
unsafe extern "C" fn map_callback<T: Target>(ti: *mut b::dm_target, bio: *mut bio) -> c_int {
    // SAFETY: device-mapper core passes a constructed target and a bio the
    // target owns until it is remapped or ended.
    let (target, info, mut bio) = unsafe {
        (
            private::<T>(ti),
            TargetInfo::from_raw(ti),
            Bio::from_raw(bio, T::PER_BIO_DATA, true),
        )
    };
    // Device-mapper core does not clear per-bio data: whatever the target
    // does not record reads as nothing (no data to copy, no tag) later.
    // The tag and the recorded size say so; the other fields are plain
    // numbers, read only where the tag says they were recorded.
    if let Some(data) = bio.per_bio_data() {
        data.tag = 0;
        data.iter.bi_size = 0;
    }
    (match target.map(&info, bio) {
        MapResult::Remapped => b::DM_MAPIO_REMAPPED,
        MapResult::Submitted(_) => b::DM_MAPIO_SUBMITTED,
        MapResult::Requeue => b::DM_MAPIO_REQUEUE,
        MapResult::Kill => b::DM_MAPIO_KILL,
    }) as c_int
}

/// # Safety
///
/// `ti` must have been constructed by [`ctr_callback`] and not destroyed;
/// the other arguments must be valid as device-mapper core passes them
/// to `end_io`.
unsafe extern "C" fn end_io_callback<T: Target>(
    ti: *mut b::dm_target,
    bio: *mut bio,
    error: *mut blk_status_t,
) -> c_int {
    // SAFETY: device-mapper core passes a constructed target, the
    // completing bio and a valid status to update.
    let (target, info, mut bio, status) = unsafe {
        (
            private::<T>(ti),
            TargetInfo::from_raw(ti),
            Bio::from_raw(bio, T::PER_BIO_DATA, false),
            &mut *error,
        )
    };
    let result = target.end_io(&info, &mut bio, status);
    if bio.keep {
        if let Some(queue) = target.bio_queue() {
            // SAFETY: the queue is the target's, valid while the target
            // is; the bio is a completing dm clone for which this returns
            // DM_ENDIO_INCOMPLETE, so it stays the target's until the
            // worker ends it, and `bio` is not used after this.
            unsafe { b::dmr_bioq_push(queue.q.as_ptr(), bio.bio.as_ptr()) };
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
/// `ti` must have been constructed by [`ctr_callback`] and not destroyed;
/// the other arguments must be valid as device-mapper core passes them
/// to `status`.
unsafe extern "C" fn status_callback<T: Target>(
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
    let (target, info, mut out) = unsafe {
        (
            private::<T>(ti),
            TargetInfo::from_raw(ti),
            Emitter::from_raw(result, maxlen),
        )
    };
    target.status(&info, kind, &mut out);
}

/// # Safety
///
/// `ti` must have been constructed by [`ctr_callback`] and not destroyed;
/// the other arguments must be valid as device-mapper core passes them
/// to `message`.
unsafe extern "C" fn message_callback<T: Target>(
    ti: *mut b::dm_target,
    argc: c_uint,
    argv: *mut *mut c_char,
    result: *mut c_char,
    maxlen: c_uint,
) -> c_int {
    // SAFETY: a constructed target, `argc` valid C strings and a result
    // buffer of `maxlen` bytes, all valid during this call.
    let (target, info, mut out, args) = unsafe {
        (
            private::<T>(ti),
            TargetInfo::from_raw(ti),
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
/// `ti` must have been constructed by [`ctr_callback`] and not destroyed;
/// the other arguments must be valid as device-mapper core passes them
/// to `iterate_devices`.
unsafe extern "C" fn iterate_devices_callback<T: Target>(
    ti: *mut b::dm_target,
    func: b::iterate_devices_callout_fn,
    data: *mut c_void,
) -> c_int {
    // SAFETY: a constructed target.
    let (target, info) = unsafe { (private::<T>(ti), TargetInfo::from_raw(ti)) };
    let mut visitor = DeviceVisitor {
        ti,
        func,
        data,
        _life: PhantomData,
    };
    target.iterate_devices(&info, &mut visitor)
}

/// # Safety
///
/// `ti` must have been constructed by [`ctr_callback`] and not destroyed;
/// the other arguments must be valid as device-mapper core passes them
/// to `io_hints`.
unsafe extern "C" fn io_hints_callback<T: Target>(
    ti: *mut b::dm_target,
    limits: *mut queue_limits,
) {
    // SAFETY: a constructed target and the limits being stacked, ours to
    // change during this call.
    let (target, info, mut limits) = unsafe {
        (
            private::<T>(ti),
            TargetInfo::from_raw(ti),
            QueueLimits(&mut *limits),
        )
    };
    target.io_hints(&info, &mut limits);
}

/// # Safety
///
/// `ti` must have been constructed by [`ctr_callback`] and not destroyed;
/// the other arguments must be valid as device-mapper core passes them
/// to `presuspend`.
unsafe extern "C" fn presuspend_callback<T: Target>(ti: *mut b::dm_target) {
    // SAFETY: a constructed target.
    let (target, info) = unsafe { (private::<T>(ti), TargetInfo::from_raw(ti)) };
    target.presuspend(&info);
}

/// # Safety
///
/// `ti` must have been constructed by [`ctr_callback`] and not destroyed,
/// as device-mapper core passes it to `presuspend_undo`.
unsafe extern "C" fn presuspend_undo_callback<T: Target>(ti: *mut b::dm_target) {
    // SAFETY: a constructed target.
    let (target, info) = unsafe { (private::<T>(ti), TargetInfo::from_raw(ti)) };
    target.presuspend_undo(&info);
}

/// # Safety
///
/// `ti` must have been constructed by [`ctr_callback`] and not destroyed;
/// the other arguments must be valid as device-mapper core passes them
/// to `postsuspend`.
unsafe extern "C" fn postsuspend_callback<T: Target>(ti: *mut b::dm_target) {
    // SAFETY: a constructed target.
    let (target, info) = unsafe { (private::<T>(ti), TargetInfo::from_raw(ti)) };
    target.postsuspend(&info);
}

/// # Safety
///
/// `ti` must have been constructed by [`ctr_callback`] and not destroyed;
/// the other arguments must be valid as device-mapper core passes them
/// to `preresume`.
unsafe extern "C" fn preresume_callback<T: Target>(ti: *mut b::dm_target) -> c_int {
    // SAFETY: a constructed target.
    let (target, info) = unsafe { (private::<T>(ti), TargetInfo::from_raw(ti)) };
    match target.preresume(&info) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// # Safety
///
/// `ti` must have been constructed by [`ctr_callback`] and not destroyed;
/// the other arguments must be valid as device-mapper core passes them
/// to `resume`.
unsafe extern "C" fn resume_callback<T: Target>(ti: *mut b::dm_target) {
    // SAFETY: a constructed target.
    let (target, info) = unsafe { (private::<T>(ti), TargetInfo::from_raw(ti)) };
    target.resume(&info);
}

#[kunit_tests(dm_remap_emitter)]
mod tests {
    use super::*;

    #[test]
    fn emits_and_terminates() {
        let mut buf = [0xffu8; 16];
        let mut out = Emitter::new(&mut buf);
        out.emit(fmt!("{} {}", 12, "ab"));
        assert_eq!(out.as_bytes(), b"12 ab");
        assert_eq!(buf[5], 0);
    }

    #[test]
    fn cuts_off_and_fills_the_buffer() {
        let mut buf = [0xffu8; 8];
        let mut out = Emitter::new(&mut buf);
        out.emit(fmt!("0123456789"));
        out.emit(fmt!("more"));
        // Full: strlen + 1 == maxlen, which device-mapper core reads as
        // "buffer too small".
        assert_eq!(out.as_bytes(), b"0123456");
        assert_eq!(buf[7], 0);
    }

    #[test]
    fn empty_buffer_takes_nothing() {
        let mut buf = [0u8; 0];
        let mut out = Emitter::new(&mut buf);
        out.emit(fmt!("x"));
        assert_eq!(out.as_bytes(), b"");
    }
}
