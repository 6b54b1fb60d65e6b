// SPDX-License-Identifier: GPL-2.0
/*
 * ackwrite: writes that remember which of them were acknowledged, and a
 * check that every acknowledged write reads back.
 *
 *   ackwrite write <dev> <state> <seed> <blocks> <writes> <threads>
 *   ackwrite verify <dev> <state>
 *
 * `write` makes <writes> O_DIRECT writes of 4 KiB to random blocks among
 * the first <blocks> of <dev>, from <threads> threads; thread t writes only
 * blocks b with b % threads == t, one write at a time, so the acknowledged
 * writes of a block are ordered. Each write carries a header (magic, block,
 * sequence number) and data derived from both. <state> keeps, per block,
 * the sequence number of the last acknowledged write and of the last one
 * tried; it is created when missing and updated at the end, so several
 * rounds add up.
 *
 * `verify` reads every block that has an acknowledged write and checks
 * that it holds that write, or a later one whose outcome was an error
 * (which may have reached the disk). It prints the blocks checked, the
 * writes lost (wrong or older content), and the blocks that could not be
 * read, and exits 1 when any write was lost or a block could not be read.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BS 4096
#define MAGIC 0x61636b7772697465ULL /* "ackwrite" */

struct block_state {
	uint64_t acked;  /* last acknowledged write, 0: none */
	uint64_t tried;  /* last write tried */
};

static struct block_state *state;
static uint64_t nblocks, nwrites, seed;
static unsigned int nthreads;
static int fd;
static uint64_t next_seq = 1;
static pthread_mutex_t seq_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	return x ^ (x >> 33);
}

/* The content of write `seq` to `block`. */
static void fill(uint64_t *buf, uint64_t block, uint64_t seq)
{
	buf[0] = MAGIC;
	buf[1] = block;
	buf[2] = seq;
	for (size_t i = 3; i < BS / 8; i++)
		buf[i] = mix(block * 1000003 + seq * 7919 + i);
}

static int load_state(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint64_t hdr[2];

	state = calloc(nblocks ? nblocks : 1, sizeof(*state));
	if (!state)
		return -1;
	if (!f)
		return 0;
	if (fread(hdr, sizeof(hdr), 1, f) != 1 || (nblocks && hdr[0] != nblocks)) {
		fprintf(stderr, "ackwrite: %s is not a state of %llu blocks\n", path,
			(unsigned long long)nblocks);
		fclose(f);
		return -1;
	}
	if (!nblocks) {
		nblocks = hdr[0];
		free(state);
		state = calloc(nblocks, sizeof(*state));
		if (!state) {
			fclose(f);
			return -1;
		}
	}
	next_seq = hdr[1];
	if (fread(state, sizeof(*state), nblocks, f) != nblocks) {
		fprintf(stderr, "ackwrite: %s is truncated\n", path);
		fclose(f);
		return -1;
	}
	fclose(f);
	return 0;
}

static int save_state(const char *path)
{
	FILE *f = fopen(path, "wb");
	uint64_t hdr[2] = { nblocks, next_seq };

	if (!f || fwrite(hdr, sizeof(hdr), 1, f) != 1 ||
	    fwrite(state, sizeof(*state), nblocks, f) != nblocks) {
		perror("ackwrite: saving the state");
		return -1;
	}
	return fclose(f);
}

struct worker {
	pthread_t thread;
	unsigned int id;
	uint64_t acked, failed;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	uint64_t *buf;
	uint64_t rng = mix(seed * 31 + w->id + 1);
	uint64_t mine = (nblocks - w->id + nthreads - 1) / nthreads;

	if (posix_memalign((void **)&buf, BS, BS))
		return NULL;
	for (uint64_t k = w->id; k < nwrites && mine; k += nthreads) {
		uint64_t block, seq;

		rng = mix(rng);
		block = (rng % mine) * nthreads + w->id;
		pthread_mutex_lock(&seq_lock);
		seq = next_seq++;
		pthread_mutex_unlock(&seq_lock);
		state[block].tried = seq;
		fill(buf, block, seq);
		if (pwrite(fd, buf, BS, (off_t)block * BS) == BS) {
			state[block].acked = seq;
			w->acked++;
		} else {
			w->failed++;
		}
	}
	free(buf);
	return NULL;
}

static int do_write(const char *dev, const char *path)
{
	struct worker *w = calloc(nthreads, sizeof(*w));
	uint64_t acked = 0, failed = 0;

	if (!w || load_state(path))
		return 2;
	fd = open(dev, O_RDWR | O_DIRECT);
	if (fd < 0) {
		perror(dev);
		return 2;
	}
	for (unsigned int t = 0; t < nthreads; t++) {
		w[t].id = t;
		if (pthread_create(&w[t].thread, NULL, work, &w[t]))
			return 2;
	}
	for (unsigned int t = 0; t < nthreads; t++) {
		pthread_join(w[t].thread, NULL);
		acked += w[t].acked;
		failed += w[t].failed;
	}
	close(fd);
	printf("writes %llu acknowledged %llu failed %llu\n",
	       (unsigned long long)(acked + failed), (unsigned long long)acked,
	       (unsigned long long)failed);
	return save_state(path) ? 2 : 0;
}

static int do_verify(const char *dev, const char *path)
{
	uint64_t *buf, *want;
	uint64_t checked = 0, lost = 0, unreadable = 0;

	nblocks = 0;
	if (load_state(path))
		return 2;
	fd = open(dev, O_RDONLY | O_DIRECT);
	if (fd < 0 || posix_memalign((void **)&buf, BS, BS) ||
	    posix_memalign((void **)&want, BS, BS)) {
		perror(dev);
		return 2;
	}
	for (uint64_t b = 0; b < nblocks; b++) {
		struct block_state *s = &state[b];
		uint64_t seq;

		if (!s->acked)
			continue;
		checked++;
		if (pread(fd, buf, BS, (off_t)b * BS) != BS) {
			unreadable++;
			printf("block %llu: unreadable (%s)\n", (unsigned long long)b,
			       strerror(errno));
			continue;
		}
		seq = buf[2];
		/* The acknowledged write, or a later one that failed. */
		if (buf[0] == MAGIC && buf[1] == b && seq >= s->acked && seq <= s->tried) {
			fill(want, b, seq);
			if (!memcmp(buf, want, BS))
				continue;
		}
		lost++;
		printf("block %llu: acknowledged write %llu lost (holds block %llu write %llu)\n",
		       (unsigned long long)b, (unsigned long long)s->acked,
		       (unsigned long long)(buf[0] == MAGIC ? buf[1] : ~0ULL),
		       (unsigned long long)(buf[0] == MAGIC ? seq : 0));
	}
	close(fd);
	printf("checked %llu lost %llu unreadable %llu\n", (unsigned long long)checked,
	       (unsigned long long)lost, (unsigned long long)unreadable);
	return lost || unreadable;
}

int main(int argc, char **argv)
{
	if (argc == 8 && !strcmp(argv[1], "write")) {
		seed = strtoull(argv[4], NULL, 0);
		nblocks = strtoull(argv[5], NULL, 0);
		nwrites = strtoull(argv[6], NULL, 0);
		nthreads = strtoul(argv[7], NULL, 0);
		if (!nblocks || !nthreads || nthreads > 64) {
			fprintf(stderr, "ackwrite: bad arguments\n");
			return 2;
		}
		return do_write(argv[2], argv[3]);
	}
	if (argc == 4 && !strcmp(argv[1], "verify"))
		return do_verify(argv[2], argv[3]);
	fprintf(stderr, "usage: ackwrite write <dev> <state> <seed> <blocks> <writes> <threads>\n"
			"       ackwrite verify <dev> <state>\n");
	return 2;
}
