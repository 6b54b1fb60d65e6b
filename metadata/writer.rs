// SPDX-License-Identifier: GPL-2.0

//! The metadata writer of one target: changes gathered into commits on
//! the target's ordered workqueue, and every commit's waiters served or
//! failed.

use crate::kapi::bufio::BufioClient;
use crate::kapi::sched::NoIoScope;
use crate::metadata::{LatencyHistogram, MetaImage};
use crate::ondisk::{Format, MetadataDev, METADATA_COPIES};
use kernel::prelude::*;
use kernel::sync::{Arc, CondVar, Mutex, MutexGuard};
use kernel::time::delay::fsleep;
use kernel::time::{Delta, Instant, Monotonic};
use kernel::workqueue::{Queue, Work, WorkItem};
use kernel::{impl_has_work, new_condvar, new_mutex, new_work};

/// The metadata copies on the spare device, through dm-bufio: metadata
/// block `index` of copy `copy` is block `area_block(copy, index)` of a
/// client whose block 0 is the spare area's first sector.
pub(super) struct BufioDev<'a> {
    client: &'a BufioClient,
    fmt: &'a Format,
}

impl MetadataDev for BufioDev<'_> {
    type Error = Error;

    fn read(&mut self, copy: usize, index: u32, out: &mut [u8]) -> Result {
        self.client.read_into(self.fmt.area_block(copy, index), out)
    }

    fn write(&mut self, copy: usize, index: u32, data: &[u8]) -> Result {
        self.client
            .write_from(self.fmt.area_block(copy, index), data)
    }

    fn flush(&mut self) -> Result {
        self.client.write_dirty()
    }
}

/// How often preparing a commit is tried when memory is short, 10 ms
/// apart, before the writer fails.
pub(super) const PREPARE_TRIES: u32 = 100;

/// Why a change did not become durable, which says where the blocks it
/// touched may be mapped by a later load.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum CommitError {
    /// The writer had failed before: the change was not applied.
    Refused,
    /// The change was applied to the image, but no commit holding it was
    /// written (an earlier one failed, or memory ran out to prepare it): no
    /// load can find it.
    NotWritten,
    /// The commit holding the change failed after a superblock write was
    /// issued: a later load may find the change or not.
    Indeterminate,
}

impl From<CommitError> for Error {
    fn from(_: CommitError) -> Error {
        EIO
    }
}

/// What the writer guards: the image and how commits went.
pub(crate) struct WriterState {
    image: MetaImage,
    /// Commits prepared, commits finished (either way), and the number of
    /// the last one that succeeded.
    prepared: u64,
    finished: u64,
    last_ok: u64,
    /// A commit failed: no more commits until the table is loaded again
    /// (the image then holds changes that the target rolled back).
    failed: bool,
    /// Whether the commit that failed had issued a superblock write.
    failed_maybe_durable: bool,
    /// The error of the last commit that met one.
    last_error: Option<Error>,
    /// Commits made, and the time they took in total.
    commits: u64,
    commit_ns: u64,
    /// The time each commit took.
    commit_times: LatencyHistogram,
}

impl WriterState {
    /// The image: the metadata as the next commit writes it.
    pub(crate) fn image(&self) -> &MetaImage {
        &self.image
    }

    /// Whether a commit failed since the table was loaded: changes are
    /// refused until it is loaded again.
    pub(crate) fn failed(&self) -> bool {
        self.failed
    }

    /// The error of the last commit that met one.
    pub(crate) fn last_error(&self) -> Option<Error> {
        self.last_error
    }

    /// Commits made and the nanoseconds they took in total.
    pub(crate) fn commits(&self) -> (u64, u64) {
        (self.commits, self.commit_ns)
    }

    /// The time each commit took.
    pub(crate) fn commit_times(&self) -> &LatencyHistogram {
        &self.commit_times
    }

    /// The number of the last commit prepared, when every prepared commit
    /// has finished; `None` while one is being written. A reader of the
    /// disk that sees the same number before and after its read saw no
    /// commit's writes.
    pub(crate) fn quiet_commit(&self) -> Option<u64> {
        (self.prepared == self.finished).then_some(self.prepared)
    }

    /// Replaces the image with one loaded again from disk, ending the
    /// failed state. Only while no change is in progress (before resume).
    pub(crate) fn reload(&mut self, image: MetaImage) {
        self.image = image;
        self.failed = false;
        self.failed_maybe_durable = false;
    }

    /// Latches the failure of commit `seq` and wakes every waiter: none of
    /// them is served by a later commit, since none follows.
    fn fail(&mut self, seq: u64, error: Error, maybe_durable: bool) {
        self.failed = true;
        self.failed_maybe_durable = maybe_durable;
        self.last_error = Some(error);
        self.finished = seq;
    }
}

/// The metadata writer of one target: the image, and the work item that
/// commits it through dm-bufio on the target's ordered workqueue. Changes
/// that arrive while a commit is being written share the next one.
///
/// Lock order: a caller may hold the target's admin mutex while it takes
/// the writer's state lock, never the other way round.
#[pin_data]
pub(crate) struct MetaWriter {
    #[pin]
    state: Mutex<WriterState>,
    /// Signalled after each commit and when the writer fails.
    #[pin]
    done: CondVar,
    #[pin]
    work: Work<MetaWriter>,
    client: BufioClient,
}

impl_has_work! {
    impl HasWork<Self> for MetaWriter { self.work }
}

impl WorkItem for MetaWriter {
    type Pointer = Arc<MetaWriter>;

    fn run(this: Arc<MetaWriter>) {
        // Bios wait for this commit: its allocations must not wait for
        // reclaim that may write through the device.
        let _noio = NoIoScope::enter();
        this.commit_pending();
    }
}

impl MetaWriter {
    /// A writer for `image`, writing through `client`.
    pub(crate) fn new(client: BufioClient, image: MetaImage) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(MetaWriter {
                state <- new_mutex!(WriterState {
                    image,
                    prepared: 0,
                    finished: 0,
                    last_ok: 0,
                    failed: false,
                    failed_maybe_durable: false,
                    last_error: None,
                    commits: 0,
                    commit_ns: 0,
                    commit_times: LatencyHistogram::new(),
                }),
                done <- new_condvar!("MetaWriter::done"),
                work <- new_work!("MetaWriter::work"),
                client,
            }),
            GFP_KERNEL,
        )
    }

    /// The dm-bufio client the writer uses, for loading again.
    pub(crate) fn client(&self) -> &BufioClient {
        &self.client
    }

    /// The state, for status and for replacing the image on a reload.
    pub(crate) fn lock(&self) -> MutexGuard<'_, WriterState> {
        self.state.lock()
    }

    /// Writes commits until nothing is left to write. On the workqueue.
    fn commit_pending(&self) {
        let mut tries = 0;
        // A commit missed copies: rewriting them again at once would fail
        // the same way, for ever (a copy whose writes keep failing), so
        // they wait for the next change.
        let mut missed_copies = false;
        loop {
            let mut st = self.state.lock();
            if st.failed {
                return;
            }
            if !st.image.needs_commit() || (missed_copies && !st.image.has_changes()) {
                // Idle, the last commit in every copy (or in every copy
                // that takes writes): every change made so far is
                // durable. A waiter may still want a commit that
                // nothing needs any more (a `sync` that found only stale
                // copies, which the commit then in flight rewrote): serve
                // it with an empty one, or it would wait for ever.
                if st.last_ok == st.prepared {
                    st.prepared += 1;
                    st.finished = st.prepared;
                    st.last_ok = st.prepared;
                    drop(st);
                    self.done.notify_all();
                }
                return;
            }
            let fmt = *st.image.format();
            st.prepared += 1;
            let seq = st.prepared;
            let mut commit = match st.image.prepare() {
                Ok(commit) => commit,
                Err(_) if tries < PREPARE_TRIES => {
                    // `prepare` allocates before it changes anything: try
                    // again once reclaim had a chance.
                    st.prepared -= 1;
                    drop(st);
                    tries += 1;
                    fsleep(Delta::from_millis(10));
                    continue;
                }
                Err(_) => {
                    // Nothing of this commit was written.
                    pr_err!("remap: no memory to prepare a metadata commit\n");
                    st.fail(seq, ENOMEM, false);
                    drop(st);
                    self.done.notify_all();
                    return;
                }
            };
            tries = 0;
            drop(st);
            let start = Instant::<Monotonic>::now();
            let mut dev = BufioDev {
                client: &self.client,
                fmt: &fmt,
            };
            let outcome = commit.write(&mut dev);
            let elapsed = start.elapsed().as_nanos();
            // The image is the cache: the written blocks need no keeping.
            for copy in 0..METADATA_COPIES {
                self.client.forget(fmt.area_block(copy, 0), 1);
                for &index in commit.indices.iter() {
                    self.client.forget(fmt.area_block(copy, index), 1);
                }
            }
            let mut st = self.state.lock();
            st.image.finish(&commit, &outcome);
            st.finished = seq;
            st.commits += 1;
            st.commit_ns += elapsed as u64;
            st.commit_times.record(elapsed as u64 / 1000);
            if outcome.succeeded() {
                st.last_ok = seq;
            }
            if !outcome.succeeded() {
                let e = outcome.error.unwrap_or(EIO);
                st.fail(seq, e, outcome.superblock_issued);
                pr_err!(
                    "remap: metadata commit {} failed on every copy (error {}): remaps are refused until the table is loaded again{}\n",
                    commit.generation(),
                    e.to_errno(),
                    if outcome.superblock_issued {
                        "; it may be on disk: the blocks it touched take no writes until then"
                    } else {
                        ""
                    }
                );
            } else if let Some(e) = outcome.error {
                missed_copies = true;
                st.last_error = Some(e);
                pr_warn!(
                    "remap: metadata commit {} missed {} of 5 copies (error {}): they are rewritten whole by the next commit\n",
                    commit.generation(),
                    outcome.written.iter().filter(|&&w| !w).count(),
                    e.to_errno()
                );
            }
            drop(st);
            self.done.notify_all();
        }
    }

    /// Applies `change` to the image and waits until a commit holding it is
    /// durable. Changes from several callers share commits.
    pub(crate) fn change(
        self: &Arc<Self>,
        queue: &Queue,
        change: impl FnOnce(&mut MetaImage),
    ) -> Result<(), CommitError> {
        let mut st = self.state.lock();
        if st.failed {
            return Err(CommitError::Refused);
        }
        change(&mut st.image);
        self.wait_durable(queue, st)
    }

    /// Commits whatever is pending (formatting, rewriting stale copies) and
    /// waits for it.
    pub(crate) fn sync(self: &Arc<Self>, queue: &Queue) -> Result<(), CommitError> {
        let st = self.state.lock();
        if st.failed {
            return Err(CommitError::Refused);
        }
        self.wait_durable(queue, st)
    }

    fn wait_durable(
        self: &Arc<Self>,
        queue: &Queue,
        mut st: MutexGuard<'_, WriterState>,
    ) -> Result<(), CommitError> {
        if !st.image.needs_commit() {
            return Ok(());
        }
        // The next commit prepared carries this change: one in flight was
        // prepared before it.
        let wanted = st.prepared + 1;
        // An `Err` hands the reference back: the work is queued already and
        // not yet running, and that run sees this change.
        if let Err(queued) = queue.enqueue(self.clone()) {
            drop(queued);
        }
        // Every way out of `commit_pending` that leaves `wanted` unserved
        // latches `failed` and notifies: this loop never outwaits it.
        while st.last_ok < wanted {
            if st.finished >= wanted {
                // This change's commit failed (no later one is made).
                return Err(if st.failed_maybe_durable {
                    CommitError::Indeterminate
                } else {
                    CommitError::NotWritten
                });
            }
            if st.failed {
                // An earlier commit failed: this change's is never made.
                return Err(CommitError::NotWritten);
            }
            self.done.wait(&mut st);
        }
        Ok(())
    }
}
