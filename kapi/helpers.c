// SPDX-License-Identifier: GPL-2.0
/*
 * C helpers of dm-remap, linked into the same module as the Rust crate.
 * Each one wraps a static inline function or macro for the Rust side.
 */
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/crc32.h>
#include <linux/device-mapper.h>
#include <linux/fs.h>
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
