/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C helpers of dm-remap: static inline functions and macros of the block
 * layer and device-mapper that bindgen cannot turn into callable symbols.
 */
#ifndef DM_REMAP_HELPERS_H
#define DM_REMAP_HELPERS_H

#include <linux/types.h>
#include <linux/blk_types.h>

struct bio;
struct block_device;
struct file;


/* The blk_status_t values the target tells apart (casts bindgen skips). */
enum dmr_status {
	DMR_STS_IOERR = (__force u8)BLK_STS_IOERR,
	DMR_STS_MEDIUM = (__force u8)BLK_STS_MEDIUM,
	DMR_STS_PROTECTION = (__force u8)BLK_STS_PROTECTION,
};
void dmr_bio_set_dev(struct bio *bio, struct block_device *bdev);
u64 dmr_bdev_nr_sectors(struct block_device *bdev);
unsigned int dmr_bdev_logical_block_size(struct block_device *bdev);
unsigned int dmr_max_logical_block_size(void);

/* Per-CPU u64 counters, n of them, for statistics without shared lines. */
u64 __percpu *dmr_counters_alloc(unsigned int n);
void dmr_counters_free(u64 __percpu *c);
void dmr_this_cpu_inc(u64 __percpu *pcp);
u64 dmr_counter_sum(u64 __percpu *c, unsigned int i);
void dmr_counter_clear(u64 __percpu *c, unsigned int i);

/*
 * SRCU whose read side may end in another context: srcu_down_read_fast,
 * whose per-CPU counter pointer is passed around as a plain pointer.
 */
struct srcu_struct;
struct srcu_struct *dmr_srcu_alloc(void);
void dmr_srcu_free(struct srcu_struct *ssp);
void *dmr_srcu_down_read(struct srcu_struct *ssp);
void dmr_srcu_up_read(struct srcu_struct *ssp, void *scp);
void dmr_srcu_check_reader(struct srcu_struct *ssp);
void dmr_srcu_bad_token(void);

/* Synchronous I/O of a kmalloc'd buffer; writes are FUA. */
bool dmr_table_writable(struct dm_target *ti);
struct file *dmr_get_file(struct file *file);
bool dmr_bio_zoned(struct bio *bio);

/*
 * Bios waiting for blocks whose mapping switches: map defers them, and the
 * switcher resubmits them once the new mapping is in place.
 */
struct dmr_hold;
struct dmr_hold *dmr_hold_alloc(void);
void dmr_hold_free(struct dmr_hold *h);
unsigned long dmr_hold_lock(struct dmr_hold *h);
void dmr_hold_unlock(struct dmr_hold *h, unsigned long flags);
void dmr_hold_add(struct dmr_hold *h, struct bio *bio);
struct bio *dmr_hold_take(struct dmr_hold *h);
struct bio *dmr_bio_list_next(struct bio *bio);

u32 dmr_crc32c(u32 crc, const void *data, size_t len);

/* The ordered WQ_MEM_RECLAIM workqueue of the metadata writer. */
struct workqueue_struct;
struct workqueue_struct *dmr_alloc_ordered_wq(const char *name);

/* About the table a target belongs to. */
struct dm_target;

/*
 * Bios a target keeps for its worker: end_io returns DM_ENDIO_INCOMPLETE
 * for them, or map DM_MAPIO_SUBMITTED. Pushing is safe in any context and
 * queues the worker, which calls fn(ti) on the queue's own workqueue (ordered:
 * one work item at a time).
 */
struct dmr_bioq;
struct dmr_bioq *dmr_bioq_alloc(const char *name, struct dm_target *ti,
				void (*fn)(struct dm_target *ti),
				void (*step_fn)(struct dm_target *ti));
/* A step: step_fn(ti) on the same workqueue, never concurrently with fn. */
void dmr_bioq_schedule_step(struct dmr_bioq *q, unsigned int msecs);
void dmr_bioq_cancel_step(struct dmr_bioq *q);
void dmr_bioq_stop(struct dmr_bioq *q);
void dmr_bioq_free(struct dmr_bioq *q);
void dmr_bioq_push(struct dmr_bioq *q, struct bio *bio);
struct bio *dmr_bioq_take(struct dmr_bioq *q);
void dmr_bioq_flush(struct dmr_bioq *q);

/* Copies between @buf and the bio's data from @start on, @skip bytes in. */
struct bvec_iter;
void dmr_bio_copy(struct bio *bio, const struct bvec_iter *start, unsigned int skip,
		  void *buf, unsigned int len, bool to_bio);

/* memalloc_noio_save/restore: no allocation in the scope recurses into I/O. */
unsigned int dmr_noio_save(void);
void dmr_cond_resched(void);
void dmr_noio_restore(unsigned int flags);

/*
 * Reads that their issuer may stop waiting for (kapi/dm/timed_io.rs): run
 * by a work item of the module's own workqueue with a reference of its own
 * on the device's file, on its buffer and on the module, so that a read
 * still in flight when its issuer gave up (or its target went) completes
 * into memory nobody else uses. The workqueue is destroyed, after every
 * such read ended, when the module goes.
 */
struct file;
struct dmr_tio;
int dmr_tio_queue_create(void);
void dmr_tio_queue_destroy(void);
struct dmr_tio *dmr_tio_alloc(struct file *file, u64 sector, size_t len, bool failfast);
void *dmr_tio_buf(struct dmr_tio *tio);
int dmr_tio_submit(struct dmr_tio *tio);
bool dmr_tio_wait(struct dmr_tio *tio, unsigned int msecs);
int dmr_tio_result(struct dmr_tio *tio);
u64 dmr_tio_took_ns(struct dmr_tio *tio);
void dmr_tio_put(struct dmr_tio *tio);

/* kapi/warn.rs */
void dmr_warn(const char *file, size_t len, unsigned int line);

#endif
