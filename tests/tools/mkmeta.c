// SPDX-License-Identifier: GPL-2.0
/*
 * mkmeta: write dm-remap metadata with many remaps straight to a spare
 * area, from the on-disk format as README.md documents it (an independent
 * writer: the target loading its output checks the documentation too).
 *
 *   mkmeta <spare-dev> <data_offset> <data_len> <spare_offset> <spare_len>
 *          <block_size> <count> [<stride>]
 *
 * Offsets and lengths in 512-byte sectors, as in the table line. Remaps
 * data blocks 0, stride, 2*stride... (stride 1 by default) to the first
 * <count> spare blocks outside the metadata copies, and writes all five
 * copies with generation 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define COPIES 5
#define HEADER 32

static uint32_t crc_table[256];

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82F63B78 : c >> 1;
		crc_table[i] = c;
	}
}

/* Standard CRC-32C (Castagnoli), as iSCSI and the README use it. */
static uint32_t crc32c(const uint8_t *p, size_t len)
{
	uint32_t crc = ~0u;

	while (len--)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

static void put16(uint8_t *b, uint16_t v)
{
	for (int i = 0; i < 2; i++)
		b[i] = v >> (8 * i);
}

static void put32(uint8_t *b, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b[i] = v >> (8 * i);
}

static void put64(uint8_t *b, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		b[i] = v >> (8 * i);
}

/* Header fields and CRC of a block whose payload is in place. */
static void seal(uint8_t *b, size_t bs, uint16_t kind, uint32_t index, uint32_t copy)
{
	memcpy(b, "dm-remap", 8);
	put32(b + 8, 0);
	put16(b + 12, 1);
	put16(b + 14, kind);
	put64(b + 16, 1);
	put32(b + 24, index);
	put32(b + 28, copy);
	put32(b + 8, crc32c(b, bs));
}

static uint64_t arg(const char *s)
{
	char *end;
	uint64_t v = strtoull(s, &end, 0);

	if (*s == 0 || *end) {
		fprintf(stderr, "mkmeta: not a number: %s\n", s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	uint64_t data_offset, data_len, spare_offset, spare_len, count, stride = 1;
	uint32_t bs, shift, nr, per, slot_blocks, pending_blocks, copy_blocks, starts[COPIES];
	uint64_t *words;
	uint8_t *block;
	int fd;

	if (argc != 8 && argc != 9) {
		fprintf(stderr, "usage: mkmeta <spare-dev> <data_offset> <data_len> <spare_offset> <spare_len> <block_size> <count> [<stride>]\n");
		return 2;
	}
	data_offset = arg(argv[2]);
	data_len = arg(argv[3]);
	spare_offset = arg(argv[4]);
	spare_len = arg(argv[5]);
	bs = arg(argv[6]);
	count = arg(argv[7]);
	if (argc == 9)
		stride = arg(argv[8]);
	if (bs < 512 || bs & (bs - 1))
		return fprintf(stderr, "mkmeta: bad block size\n"), 2;
	shift = __builtin_ctz(bs >> 9);
	nr = spare_len >> shift;
	per = (bs - HEADER) / 8;
	slot_blocks = (nr + per - 1) / per;
	/* One pending slot per 16 spare blocks, in whole blocks. */
	pending_blocks = ((nr + 15) / 16 + per - 1) / per;
	copy_blocks = 1 + slot_blocks + pending_blocks;
	if ((uint64_t)nr <= (uint64_t)COPIES * copy_blocks)
		return fprintf(stderr, "mkmeta: spare area too small\n"), 2;
	for (int i = 0; i < COPIES; i++)
		starts[i] = (uint64_t)(nr - copy_blocks) * i / (COPIES - 1);
	if ((count - 1) * stride >= data_len >> shift && count)
		return fprintf(stderr, "mkmeta: data area too small\n"), 2;

	words = calloc((size_t)(slot_blocks + pending_blocks) * per, 8);
	block = malloc(bs);
	if (!words || !block)
		return perror("mkmeta"), 1;
	uint64_t done = 0;

	for (uint32_t s = 0; s < nr && done < count; s++) {
		int reserved = 0;

		for (int i = 0; i < COPIES; i++)
			reserved |= s >= starts[i] && s - starts[i] < copy_blocks;
		if (!reserved)
			words[s] = (1ULL << 62) | (done++ * stride);
	}
	if (done < count)
		return fprintf(stderr, "mkmeta: only %" PRIu64 " spare blocks\n", done), 2;

	fd = open(argv[1], O_WRONLY);
	if (fd < 0)
		return perror(argv[1]), 1;
	crc_init();
	for (uint32_t copy = 0; copy < COPIES; copy++) {
		off_t base = (off_t)spare_offset * 512 + (off_t)starts[copy] * bs;

		for (uint32_t index = copy_blocks; index-- > 0;) {
			memset(block, 0, bs);
			if (index == 0) {
				put64(block + 32, data_offset);
				put64(block + 40, data_len);
				put64(block + 48, spare_offset);
				put64(block + 56, spare_len);
				put32(block + 64, bs);
				put32(block + 68, nr);
				put32(block + 72, copy_blocks);
				put32(block + 76, slot_blocks);
				put32(block + 80, pending_blocks);
				put32(block + 84, per);
				for (int i = 0; i < COPIES; i++)
					put32(block + 88 + 4 * i, starts[i]);
				seal(block, bs, 1, 0, copy);
			} else {
				for (uint32_t i = 0; i < per; i++)
					put64(block + HEADER + 8 * i, words[(size_t)(index - 1) * per + i]);
				seal(block, bs, index <= slot_blocks ? 2 : 3, index, copy);
			}
			if (pwrite(fd, block, bs, base + (off_t)index * bs) != (ssize_t)bs)
				return perror("mkmeta: write"), 1;
		}
	}
	if (fsync(fd))
		return perror("mkmeta: fsync"), 1;
	printf("mkmeta: %" PRIu64 " remaps, %u spare blocks, %u blocks per copy\n", count, nr,
	       copy_blocks);
	return 0;
}
