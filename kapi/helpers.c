// SPDX-License-Identifier: GPL-2.0
/*
 * C helpers of dm-remap, linked into the same module as the Rust crate.
 * Each one wraps a static inline function or macro for the Rust side.
 */
#include <linux/bio.h>
#include <linux/completion.h>
#include <linux/refcount.h>
#include <linux/blkdev.h>
#include <linux/crc32.h>
#include <linux/device-mapper.h>
#include <linux/fs.h>
#include <linux/module.h>
#include <linux/percpu.h>
#include <linux/random.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/srcu.h>
#include <linux/workqueue.h>
#include "helpers.h"

void dmr_bio_set_dev(struct bio *bio, struct block_device *bdev)
{
	bio_set_dev(bio, bdev);
}

u64 dmr_bdev_nr_sectors(struct block_device *bdev)
{
	return bdev_nr_sectors(bdev);
}

unsigned int dmr_bdev_logical_block_size(struct block_device *bdev)
{
	return bdev_logical_block_size(bdev);
}

/* BLK_MAX_BLOCK_SIZE: 64 KiB with large folios, otherwise the page size. */
unsigned int dmr_max_logical_block_size(void)
{
	return BLK_MAX_BLOCK_SIZE;
}

u64 __percpu *dmr_counters_alloc(unsigned int n)
{
	return __alloc_percpu(n * sizeof(u64), sizeof(u64));
}

void dmr_counters_free(u64 __percpu *c)
{
	free_percpu(c);
}

/* The fallback of percpu.rs's this_cpu_inc (inline on x86-64 SMP). */
void dmr_this_cpu_inc(u64 __percpu *pcp)
{
	this_cpu_inc(*pcp);
}

u64 dmr_counter_sum(u64 __percpu *c, unsigned int i)
{
	u64 sum = 0;
	int cpu;

	for_each_possible_cpu(cpu)
		sum += *per_cpu_ptr(&c[i], cpu);
	return sum;
}

void dmr_counter_clear(u64 __percpu *c, unsigned int i)
{
	int cpu;

	for_each_possible_cpu(cpu)
		*per_cpu_ptr(&c[i], cpu) = 0;
}

/* SRCU-fast-updown: readers pay no smp_mb(); synchronize_srcu() does. */
struct srcu_struct *dmr_srcu_alloc(void)
{
	struct srcu_struct *ssp = kzalloc(sizeof(*ssp), GFP_KERNEL);

	if (ssp && init_srcu_struct_fast_updown(ssp)) {
		kfree(ssp);
		ssp = NULL;
	}
	return ssp;
}

/*
 * As the kernel's Rust SRCU drops its domain: callbacks finish first. A
 * domain that cleanup_srcu_struct() leaves set up (a reader still inside,
 * callbacks or a grace period still pending: it warns) is left allocated,
 * so a reader's later unlock touches live memory.
 */
void dmr_srcu_free(struct srcu_struct *ssp)
{
	srcu_barrier(ssp);
	cleanup_srcu_struct(ssp);
	if (WARN_ON(ssp->srcu_sup))
		return;
	kfree(ssp);
}

/* The per-CPU pointer travels as an integer: its address space differs. */
void *dmr_srcu_down_read(struct srcu_struct *ssp)
{
	return (void *)(__force unsigned long)srcu_down_read_fast(ssp);
}

/*
 * The token comes back from per-bio data: one that is not a counter of this
 * domain (never entered, or another domain's) is refused, not incremented.
 */
void dmr_srcu_up_read(struct srcu_struct *ssp, void *raw)
{
	struct srcu_ctr __percpu *scp = (struct srcu_ctr __percpu *)(__force unsigned long)raw;

	if (WARN_ON_ONCE(scp != &ssp->sda->srcu_ctrs[0] && scp != &ssp->sda->srcu_ctrs[1]))
		return;
	srcu_up_read_fast(ssp, scp);
}

/* srcu.rs's inline read side, with CONFIG_PROVE_RCU: the C side's checks. */
void dmr_srcu_check_reader(struct srcu_struct *ssp)
{
	WARN_ON_ONCE(IS_ENABLED(CONFIG_PROVE_RCU) && in_nmi());
	RCU_LOCKDEP_WARN(!rcu_is_watching(), "RCU must be watching an SRCU-fast-updown reader.");
	srcu_check_read_flavor(ssp, SRCU_READ_FLAVOR_FAST_UPDOWN);
}

/* srcu.rs's inline read side: a token that names no counter of the domain. */
void dmr_srcu_bad_token(void)
{
	WARN_ON_ONCE(1);
}

/* A reference of its own on an open block device's file (get_file). */
struct file *dmr_get_file(struct file *file)
{
	return get_file(file);
}

/* Whether the device a bio is pointed at is zoned (bdev_is_zoned). */
bool dmr_bio_zoned(struct bio *bio)
{
	return bdev_is_zoned(bio->bi_bdev);
}

/* BLK_OPEN_WRITE is a macro with a cast, which bindgen does not bind. */
bool dmr_table_writable(struct dm_target *ti)
{
	return dm_table_get_mode(ti->table) & BLK_OPEN_WRITE;
}

struct dmr_hold {
	spinlock_t lock;
	struct bio_list bios;
};

struct dmr_hold *dmr_hold_alloc(void)
{
	struct dmr_hold *h = kzalloc(sizeof(*h), GFP_KERNEL);

	if (h) {
		spin_lock_init(&h->lock);
		bio_list_init(&h->bios);
	}
	return h;
}

void dmr_hold_free(struct dmr_hold *h)
{
	WARN_ON(!bio_list_empty(&h->bios));
	kfree(h);
}

/*
 * The caller decides under the lock whether a bio still has to wait, so a
 * bio is never added after the switcher, which changes the mapping before
 * it takes the list, has taken it.
 */
unsigned long dmr_hold_lock(struct dmr_hold *h)
{
	unsigned long flags;

	spin_lock_irqsave(&h->lock, flags);
	return flags;
}

void dmr_hold_unlock(struct dmr_hold *h, unsigned long flags)
{
	spin_unlock_irqrestore(&h->lock, flags);
}

/* Called with the lock held. */
void dmr_hold_add(struct dmr_hold *h, struct bio *bio)
{
	bio_list_add(&h->bios, bio);
}

/* Takes every waiting bio, linked by bi_next. */
struct bio *dmr_hold_take(struct dmr_hold *h)
{
	unsigned long flags;
	struct bio *bios;

	spin_lock_irqsave(&h->lock, flags);
	bios = bio_list_get(&h->bios);
	spin_unlock_irqrestore(&h->lock, flags);
	return bios;
}

/* Unlinks @bio from a bi_next list; returns the next one. */
struct bio *dmr_bio_list_next(struct bio *bio)
{
	struct bio *next = bio->bi_next;

	bio->bi_next = NULL;
	return next;
}

u32 dmr_crc32c(u32 crc, const void *data, size_t len)
{
	return crc32c(crc, data, len);
}

/* Ordered and usable in memory reclaim, as metadata writers must be. */
struct workqueue_struct *dmr_alloc_ordered_wq(const char *name)
{
	return alloc_ordered_workqueue("%s", WQ_MEM_RECLAIM, name);
}

struct dmr_bioq {
	struct dmr_hold bios;
	struct workqueue_struct *wq;
	struct work_struct work;
	struct delayed_work step;
	struct dm_target *ti;
	void (*fn)(struct dm_target *ti);
	void (*step_fn)(struct dm_target *ti);
};

static void dmr_bioq_work(struct work_struct *work)
{
	struct dmr_bioq *q = container_of(work, struct dmr_bioq, work);

	q->fn(q->ti);
}

static void dmr_bioq_step_work(struct work_struct *work)
{
	struct dmr_bioq *q = container_of(to_delayed_work(work), struct dmr_bioq, step);

	q->step_fn(q->ti);
}

/* The worker may be what keeps memory reclaim going: WQ_MEM_RECLAIM. */
struct dmr_bioq *dmr_bioq_alloc(const char *name, struct dm_target *ti,
				void (*fn)(struct dm_target *ti),
				void (*step_fn)(struct dm_target *ti))
{
	struct dmr_bioq *q = kzalloc(sizeof(*q), GFP_KERNEL);

	if (!q)
		return NULL;
	q->wq = alloc_ordered_workqueue("%s", WQ_MEM_RECLAIM, name);
	if (!q->wq) {
		kfree(q);
		return NULL;
	}
	spin_lock_init(&q->bios.lock);
	bio_list_init(&q->bios.bios);
	INIT_WORK(&q->work, dmr_bioq_work);
	INIT_DELAYED_WORK(&q->step, dmr_bioq_step_work);
	q->ti = ti;
	q->fn = fn;
	q->step_fn = step_fn;
	return q;
}

/* Runs step_fn once on the queue's workqueue, @msecs from now at the latest. */
void dmr_bioq_schedule_step(struct dmr_bioq *q, unsigned int msecs)
{
	mod_delayed_work(q->wq, &q->step, msecs_to_jiffies(msecs));
}

/* Cancels the next step and waits for one that runs, even if it schedules itself. */
void dmr_bioq_cancel_step(struct dmr_bioq *q)
{
	cancel_delayed_work_sync(&q->step);
}

/*
 * Stops the queue for good before its target goes: no step runs or can be
 * scheduled again (a worker still running may try: disabled, it is not
 * queued), and the worker has returned.
 */
void dmr_bioq_stop(struct dmr_bioq *q)
{
	disable_delayed_work_sync(&q->step);
	flush_workqueue(q->wq);
	disable_work_sync(&q->work);
}

void dmr_bioq_free(struct dmr_bioq *q)
{
	dmr_bioq_stop(q);
	destroy_workqueue(q->wq);
	WARN_ON(!bio_list_empty(&q->bios.bios));
	kfree(q);
}

void dmr_bioq_push(struct dmr_bioq *q, struct bio *bio)
{
	unsigned long flags = dmr_hold_lock(&q->bios);

	dmr_hold_add(&q->bios, bio);
	dmr_hold_unlock(&q->bios, flags);
	queue_work(q->wq, &q->work);
}

/* Takes every kept bio, linked by bi_next. */
struct bio *dmr_bioq_take(struct dmr_bioq *q)
{
	return dmr_hold_take(&q->bios);
}

void dmr_bioq_flush(struct dmr_bioq *q)
{
	flush_workqueue(q->wq);
}

void dmr_bio_copy(struct bio *bio, const struct bvec_iter *start, unsigned int skip,
		  void *buf, unsigned int len, bool to_bio)
{
	struct bvec_iter iter = *start;
	struct bio_vec bv;

	bio_advance_iter(bio, &iter, skip);
	iter.bi_size = min(iter.bi_size, len);
	while (iter.bi_size) {
		bv = bio_iter_iovec(bio, iter);
		if (to_bio)
			memcpy_to_bvec(&bv, buf);
		else
			memcpy_from_bvec(buf, &bv);
		buf += bv.bv_len;
		bio_advance_iter_single(bio, &iter, bv.bv_len);
	}
}

void dmr_cond_resched(void)
{
	cond_resched();
}

/*
 * A WARN from C: the kernel crate's warn_on! includes assembly generated
 * into the kernel's build tree (rust/kernel/generated_arch_warn_asm.rs),
 * which some distributions' headers packages leave out.
 */
void dmr_warn(const char *file, size_t len, unsigned int line)
{
	WARN(1, "dm-remap: warning at %.*s:%u\n", (int)len, file, line);
}

unsigned int dmr_noio_save(void)
{
	return memalloc_noio_save();
}

void dmr_noio_restore(unsigned int flags)
{
	memalloc_noio_restore(flags);
}

/* The module's workqueue of timed I/O: see helpers.h. */
static struct workqueue_struct *dmr_tio_wq;
/* Guards dmr_tio_wq, so that a read sent as the module goes is refused. */
static DEFINE_SPINLOCK(dmr_tio_lock);
/*
 * Timed reads that have not ended yet, given up on or not: at most
 * DMR_TIO_MAX, so that a disk that hangs cannot take every worker of the
 * queue (each such read holds one) from the other devices' reads.
 */
#define DMR_TIO_MAX 128
static atomic_t dmr_tio_running = ATOMIC_INIT(0);

struct dmr_tio {
	struct work_struct work;
	struct completion done;
	refcount_t ref;
	struct file *file;
	u64 sector;
	void *buf;
	size_t len;
	blk_opf_t opf;
	int result;
	/* When it was sent, and how long it took (ns). */
	u64 sent_ns;
	u64 took_ns;
};

/*
 * Unbound, so that I/O hanging on one device does not hold up another's,
 * and usable in memory reclaim: the error worker waits on it.
 */
int dmr_tio_queue_create(void)
{
	struct workqueue_struct *wq;

	wq = alloc_workqueue("dm-remap-io", WQ_UNBOUND | WQ_MEM_RECLAIM, 0);
	if (!wq)
		return -ENOMEM;
	spin_lock(&dmr_tio_lock);
	if (dmr_tio_wq) {
		spin_unlock(&dmr_tio_lock);
		destroy_workqueue(wq);
		return -EBUSY;
	}
	dmr_tio_wq = wq;
	spin_unlock(&dmr_tio_lock);
	return 0;
}

/*
 * Refuses reads from now on, then waits for every read still running
 * (given up on or not: each holds a module reference, so this runs only
 * once they ended, or at a failed load), then frees.
 */
void dmr_tio_queue_destroy(void)
{
	struct workqueue_struct *wq;

	spin_lock(&dmr_tio_lock);
	wq = dmr_tio_wq;
	dmr_tio_wq = NULL;
	spin_unlock(&dmr_tio_lock);
	if (wq)
		destroy_workqueue(wq);
}

/* A read of @len bytes (not 0) at @sector of the device open as @file. */
struct dmr_tio *dmr_tio_alloc(struct file *file, u64 sector, size_t len, bool failfast)
{
	struct dmr_tio *tio;

	if (!len)
		return NULL;
	tio = kzalloc(sizeof(*tio), GFP_NOIO);
	if (!tio)
		return NULL;
	/*
	 * kmalloc memory: linear, and aligned to its size up to a page.
	 * Zeroed: a read that fails may leave it partly written.
	 */
	tio->buf = kzalloc(len, GFP_NOIO);
	if (!tio->buf) {
		kfree(tio);
		return NULL;
	}
	init_completion(&tio->done);
	refcount_set(&tio->ref, 1);
	tio->file = get_file(file);
	tio->sector = sector;
	tio->len = len;
	tio->opf = REQ_OP_READ;
	/*
	 * Failfast reads (retries, probes) go alone: merged with a neighbour,
	 * one bad sector would fail the others' blocks with it.
	 */
	if (failfast)
		tio->opf |= REQ_FAILFAST_DEV | REQ_FAILFAST_TRANSPORT | REQ_FAILFAST_DRIVER |
			    REQ_NOMERGE;
	return tio;
}

void *dmr_tio_buf(struct dmr_tio *tio)
{
	return tio->buf;
}

void dmr_tio_put(struct dmr_tio *tio)
{
	if (!refcount_dec_and_test(&tio->ref))
		return;
	fput(tio->file);
	kfree(tio->buf);
	kfree(tio);
}

static void dmr_tio_work(struct work_struct *work)
{
	struct dmr_tio *tio = container_of(work, struct dmr_tio, work);
	unsigned int noio = memalloc_noio_save();

	tio->result = bdev_rw_virt(file_bdev(tio->file), tio->sector, tio->buf,
				   tio->len, tio->opf);
	tio->took_ns = ktime_get_ns() - tio->sent_ns;
	memalloc_noio_restore(noio);
	/* Orders the result and the buffer before a waiter's read of them. */
	complete_all(&tio->done);
	dmr_tio_put(tio);
	atomic_dec(&dmr_tio_running);
	/*
	 * The module stays while this runs: an unload waits for the queue to
	 * drain (dmr_tio_queue_destroy), after this function returned.
	 */
	module_put(THIS_MODULE);
}

/*
 * Starts the read: the work item takes a reference of its own, and one on
 * the module (so that an unload fails while a read given up on still runs,
 * instead of waiting for the disk). -EBUSY when DMR_TIO_MAX reads run.
 */
int dmr_tio_submit(struct dmr_tio *tio)
{
	int ret = 0;

	if (atomic_inc_return(&dmr_tio_running) > DMR_TIO_MAX) {
		atomic_dec(&dmr_tio_running);
		return -EBUSY;
	}
	spin_lock(&dmr_tio_lock);
	if (!dmr_tio_wq) {
		ret = -ENODEV;
	} else {
		__module_get(THIS_MODULE);
		refcount_inc(&tio->ref);
		tio->sent_ns = ktime_get_ns();
		INIT_WORK(&tio->work, dmr_tio_work);
		queue_work(dmr_tio_wq, &tio->work);
	}
	spin_unlock(&dmr_tio_lock);
	if (ret)
		atomic_dec(&dmr_tio_running);
	return ret;
}

/* Whether the read ended, waiting at most @msecs for it. */
bool dmr_tio_wait(struct dmr_tio *tio, unsigned int msecs)
{
	if (!msecs)
		return completion_done(&tio->done);
	return wait_for_completion_timeout(&tio->done, msecs_to_jiffies(msecs)) != 0;
}

int dmr_tio_result(struct dmr_tio *tio)
{
	return tio->result;
}

/* How long the read took, from its sending to its end (once it ended). */
u64 dmr_tio_took_ns(struct dmr_tio *tio)
{
	return tio->took_ns;
}
