// SPDX-License-Identifier: GPL-2.0
/*
 * C helpers of dm-remap, linked into the same module as the Rust crate.
 * Each one wraps a static inline function or macro for the Rust side.
 */
#include <linux/bio.h>
#include <linux/blkdev.h>
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
