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
