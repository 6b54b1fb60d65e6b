// SPDX-License-Identifier: GPL-2.0

//! Reads of an underlying device that their issuer may stop waiting for.
//!
//! A bio cannot be taken back once sent, and a disk may not answer for as
//! long as the SCSI layer's command timeout and its retries (minutes). A
//! [`TimedIo`] is run by a work item of the module's own workqueue, with a
//! reference of its own on the device's file, on its buffer and on the
//! module: the issuer waits as long as it chooses ([`InFlight::wait`]) and
//! may drop it still in flight; the read then ends into memory nobody else
//! uses, and holds the device open (and the module loaded) until it does.
//! The module's [`IoQueue`] waits for every such read when the module goes.
//! At most 128 run at once in the module: a hanging disk cannot take every
//! worker of the queue from other devices' reads.
//!
//! Only reads: a write given up on could still land after a later write of
//! the same place, or after the place was given to other data.
//!
//! # Examples
//!
//! ```ignore
//! let io = TimedIo::new(&dev, sector, 4096, Op::Read { failfast: true })?;
//! let mut io = io.submit()?;
//! match io.wait(Msecs(5000)) {
//!     Some(Ok(())) => buf.copy_from_slice(io.data().unwrap()),
//!     Some(Err(e)) => return Err(e),
//!     None => pr_warn!("no answer in 5 s: given up\n"), // `io` dropped
//! }
//! ```

use super::{bindings as b, DmDev};
use core::ptr::NonNull;
use kernel::{error::to_result, prelude::*};

/// The module's workqueue of timed reads, created with the module and
/// destroyed (after every timed read ended) when it goes. A read sent
/// while there is none is refused.
///
/// # Invariants
///
/// While a value exists the C side's workqueue exists: one value at most,
/// since a second `new` fails (`EBUSY`).
pub(crate) struct IoQueue(());

impl IoQueue {
    /// Creates the workqueue; once per module, from its `init`, and kept
    /// for the module's life (after every target is gone).
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: no argument; fails (and leaves nothing) without memory.
        to_result(unsafe { b::dmr_tio_queue_create() })?;
        Ok(Self(()))
    }
}

impl Drop for IoQueue {
    fn drop(&mut self) {
        // SAFETY: created by `new` (type invariant); destroying it waits for
        // every work item, so no timed I/O runs module code after this.
        unsafe { b::dmr_tio_queue_destroy() };
    }
}

/// What a [`TimedIo`] does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Op {
    /// A read; `failfast` asks the layers below not to retry it
    /// (`REQ_FAILFAST_DEV | REQ_FAILFAST_TRANSPORT | REQ_FAILFAST_DRIVER`):
    /// one command timeout at most, not that and the SCSI layer's retries.
    Read { failfast: bool },
}

/// A time to wait, in milliseconds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Msecs(pub(crate) u32);

/// A read prepared and not sent.
///
/// # Invariants
///
/// `tio` is a reference of this value's own on a `dmr_tio` not submitted,
/// whose buffer is `len` (> 0) zeroed bytes; nothing else uses the buffer.
pub(crate) struct TimedIo {
    tio: NonNull<b::dmr_tio>,
    len: usize,
}

// SAFETY: the `dmr_tio` may be used and put from any thread.
unsafe impl Send for TimedIo {}

impl TimedIo {
    /// Prepares a read of `len` bytes (not 0: `EINVAL`) at `sector` of
    /// `dev`; `ENOMEM` without the memory.
    pub(crate) fn new(dev: &DmDev, sector: u64, len: usize, op: Op) -> Result<Self> {
        let Op::Read { failfast } = op;
        if len == 0 {
            return Err(EINVAL);
        }
        // SAFETY: `dev.file()` is an open file (its invariant), of which
        // the callee takes a reference of its own.
        let tio = unsafe { b::dmr_tio_alloc(dev.file(), sector, len, failfast) };
        // INVARIANT: a new `dmr_tio` with one reference, ours, and a zeroed
        // buffer of `len` bytes.
        NonNull::new(tio).map(|tio| Self { tio, len }).ok_or(ENOMEM)
    }

    /// Sends the read: `EBUSY` while 128 of the module's timed reads run,
    /// `ENODEV` once the module's queue is gone.
    pub(crate) fn submit(self) -> Result<InFlight> {
        let this = core::mem::ManuallyDrop::new(self);
        let (tio, len) = (this.tio, this.len);
        // SAFETY: not submitted yet (type invariant); the work item takes
        // a reference of its own. Our reference moves to `InFlight`.
        match to_result(unsafe { b::dmr_tio_submit(tio.as_ptr()) }) {
            // INVARIANT: submitted once, our reference moved here.
            Ok(()) => Ok(InFlight {
                tio,
                len,
                ended: false,
            }),
            Err(e) => {
                // SAFETY: our reference, put once (`this` is not dropped).
                unsafe { b::dmr_tio_put(tio.as_ptr()) };
                Err(e)
            }
        }
    }
}

impl Drop for TimedIo {
    fn drop(&mut self) {
        // SAFETY: our reference (type invariant), put once.
        unsafe { b::dmr_tio_put(self.tio.as_ptr()) };
    }
}

/// A sent [`TimedIo`]. Dropped before it ended, it is given up on: the
/// read goes on, into its own buffer.
///
/// # Invariants
///
/// `tio` is a reference of this value's own on a submitted `dmr_tio` of
/// `len` bytes; `ended` only once its completion was seen.
pub(crate) struct InFlight {
    tio: NonNull<b::dmr_tio>,
    len: usize,
    ended: bool,
}

// SAFETY: as `TimedIo`.
unsafe impl Send for InFlight {}

impl InFlight {
    /// Waits at most `limit` for the I/O to end; returns its result if it
    /// did. A limit of 0 only looks.
    pub(crate) fn wait(&mut self, limit: Msecs) -> Option<Result> {
        if !self.ended {
            // SAFETY: submitted and referenced (type invariant).
            self.ended = unsafe { b::dmr_tio_wait(self.tio.as_ptr(), limit.0) };
        }
        self.ended.then(|| {
            // SAFETY: the work item wrote the result before its
            // completion, which was seen.
            to_result(unsafe { b::dmr_tio_result(self.tio.as_ptr()) })
        })
    }

    /// How long the read took from its sending to its end, in ms, once it
    /// ended (whenever its issuer looked).
    pub(crate) fn took_ms(&self) -> Option<u64> {
        self.ended.then(|| {
            // SAFETY: the work item wrote it before its completion, which
            // was seen.
            let ns = unsafe { b::dmr_tio_took_ns(self.tio.as_ptr()) };
            ns / 1_000_000
        })
    }

    /// The buffer, once the read ended (zeros where a read that failed
    /// left it).
    pub(crate) fn data(&self) -> Option<&[u8]> {
        // SAFETY: the read ended (its completion was seen, which orders the
        // device's writes to the buffer before this read), so nothing
        // writes the buffer again; it was zeroed, so initialised, before;
        // it lives while our reference does.
        self.ended.then(|| unsafe {
            core::slice::from_raw_parts(b::dmr_tio_buf(self.tio.as_ptr()).cast(), self.len)
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // SAFETY: our reference (type invariant), put once; the work item
        // holds its own while the I/O runs.
        unsafe { b::dmr_tio_put(self.tio.as_ptr()) };
    }
}
