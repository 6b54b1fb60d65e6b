// SPDX-License-Identifier: GPL-2.0
/*
 * C helpers of dm-remap, linked into the same module as the Rust crate.
 * Each one wraps a static inline function or macro for the Rust side.
 */
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/percpu.h>
#include <linux/slab.h>
#include <linux/srcu.h>
#include "helpers.h"

enum dmr_bio_op dmr_bio_op(struct bio *bio)
{
	switch (bio_op(bio)) {
	case REQ_OP_READ:
		return DMR_OP_READ;
	case REQ_OP_WRITE:
		if (!bio_has_data(bio) && (bio->bi_opf & REQ_PREFLUSH))
			return DMR_OP_FLUSH;
		return DMR_OP_WRITE;
	case REQ_OP_FLUSH:
		return DMR_OP_FLUSH;
	case REQ_OP_DISCARD:
		return DMR_OP_DISCARD;
	case REQ_OP_SECURE_ERASE:
		return DMR_OP_SECURE_ERASE;
	case REQ_OP_WRITE_ZEROES:
		return DMR_OP_WRITE_ZEROES;
	default:
		return DMR_OP_OTHER;
	}
}

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

u32 dmr_bdev_devt(struct block_device *bdev)
{
	return bdev->bd_dev;
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

void dmr_counter_inc(u64 __percpu *c, unsigned int i)
{
	this_cpu_inc(c[i]);
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

struct srcu_struct *dmr_srcu_alloc(void)
{
	struct srcu_struct *ssp = kzalloc(sizeof(*ssp), GFP_KERNEL);

	if (ssp && init_srcu_struct(ssp)) {
		kfree(ssp);
		ssp = NULL;
	}
	return ssp;
}

void dmr_srcu_free(struct srcu_struct *ssp)
{
	cleanup_srcu_struct(ssp);
	kfree(ssp);
}

int dmr_srcu_down_read(struct srcu_struct *ssp)
{
	return srcu_down_read(ssp);
}

void dmr_srcu_up_read(struct srcu_struct *ssp, int idx)
{
	srcu_up_read(ssp, idx);
}

void dmr_srcu_synchronize(struct srcu_struct *ssp)
{
	synchronize_srcu(ssp);
}

int dmr_rw_sync(struct block_device *bdev, u64 sector, void *data, size_t len, bool write)
{
	return bdev_rw_virt(bdev, sector, data, len,
			    write ? REQ_OP_WRITE | REQ_FUA : REQ_OP_READ);
}

#define DMR_NOT_HELD U64_MAX

struct dmr_hold {
	spinlock_t lock;
	u64 block;
	struct bio_list bios;
};

struct dmr_hold *dmr_hold_alloc(void)
{
	struct dmr_hold *h = kzalloc(sizeof(*h), GFP_KERNEL);

	if (h) {
		spin_lock_init(&h->lock);
		h->block = DMR_NOT_HELD;
		bio_list_init(&h->bios);
	}
	return h;
}

void dmr_hold_free(struct dmr_hold *h)
{
	WARN_ON(!bio_list_empty(&h->bios));
	kfree(h);
}

u64 dmr_hold_block(struct dmr_hold *h)
{
	return smp_load_acquire(&h->block);
}

void dmr_hold_begin(struct dmr_hold *h, u64 block)
{
	unsigned long flags;

	spin_lock_irqsave(&h->lock, flags);
	smp_store_release(&h->block, block);
	spin_unlock_irqrestore(&h->lock, flags);
}

/* Defers @bio if @block is still held; under the lock, so no bio is added
 * after dmr_hold_end() took the list. */
bool dmr_hold_defer(struct dmr_hold *h, struct bio *bio, u64 block)
{
	unsigned long flags;
	bool held;

	spin_lock_irqsave(&h->lock, flags);
	held = h->block == block;
	if (held)
		bio_list_add(&h->bios, bio);
	spin_unlock_irqrestore(&h->lock, flags);
	return held;
}

/* Releases the hold; returns the deferred bios, linked by bi_next. */
struct bio *dmr_hold_end(struct dmr_hold *h)
{
	unsigned long flags;
	struct bio *bios;

	spin_lock_irqsave(&h->lock, flags);
	smp_store_release(&h->block, DMR_NOT_HELD);
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
