// SPDX-License-Identifier: GPL-2.0
/*
 * dm-msg: send many "remap" messages to a device-mapper device through the
 * DM_TARGET_MSG ioctl, as dmsetup message does but without a process per
 * message, and time each one.
 *
 *   dm-msg <device-name> <count> <first-sector> <step> [<threads> [<wrap> [<mark-device>]]]
 *
 * Sends "remap <first + k * step>" (modulo <wrap> sectors when given) for
 * k = 0..count-1, split over <threads> threads (1 by default), each
 * message timed from ioctl entry to return. Prints the message count,
 * failures, the wall time, successful messages per second, and the
 * median, 99th percentile and maximum latency in microseconds. Exits 1
 * when a message failed. With <mark-device> (a dm-log-writes device),
 * each thread sends it "mark r<sector>" right after a remap of <sector>
 * returns success, so the log shows what was acknowledged when.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>
#include "dmioctl.h"

static const char *name, *mark_dev;
static uint64_t count, first, step, wrap;
static unsigned int threads = 1;
static uint64_t *lat_ns;
static int control;

struct worker {
	pthread_t thread;
	unsigned int id;
	uint64_t failed;
};

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void *work(void *arg)
{
	struct worker *w = arg;

	for (uint64_t k = w->id; k < count; k += threads) {
		char text[64];
		uint64_t t0;
		int failed;

		uint64_t sector = first + k * step;

		snprintf(text, sizeof(text), "remap %llu",
			 (unsigned long long)(wrap ? sector % wrap : sector));
		t0 = now_ns();
		failed = dm_message(control, name, text, NULL, 0);
		lat_ns[k] = now_ns() - t0;
		if (failed) {
			/* Not a remap: sorted past every success, left out. */
			lat_ns[k] = UINT64_MAX;
			w->failed++;
		} else if (mark_dev) {
			snprintf(text, sizeof(text), "mark r%llu",
				 (unsigned long long)(wrap ? sector % wrap : sector));
			if (dm_message(control, mark_dev, text, NULL, 0)) {
				perror("dm-msg: mark");
				exit(1);
			}
		}
	}
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	struct worker *w;
	uint64_t t0, wall, failed = 0, ok;

	if (argc < 5 || argc > 8) {
		fprintf(stderr, "usage: dm-msg <device-name> <count> <first-sector> <step> [<threads> [<wrap> [<mark-device>]]]\n");
		return 2;
	}
	name = argv[1];
	count = strtoull(argv[2], NULL, 0);
	first = strtoull(argv[3], NULL, 0);
	step = strtoull(argv[4], NULL, 0);
	if (argc >= 6)
		threads = strtoul(argv[5], NULL, 0);
	if (argc >= 7)
		wrap = strtoull(argv[6], NULL, 0);
	if (argc == 8)
		mark_dev = argv[7];
	if (!count || !threads || threads > 256)
		return fprintf(stderr, "dm-msg: bad count or threads\n"), 2;
	control = open("/dev/mapper/control", O_RDWR);
	if (control < 0)
		return perror("/dev/mapper/control"), 1;
	lat_ns = calloc(count, sizeof(*lat_ns));
	w = calloc(threads, sizeof(*w));
	if (!lat_ns || !w)
		return perror("calloc"), 1;
	t0 = now_ns();
	for (unsigned int i = 0; i < threads; i++) {
		w[i].id = i;
		if (pthread_create(&w[i].thread, NULL, work, &w[i]))
			return perror("pthread_create"), 1;
	}
	for (unsigned int i = 0; i < threads; i++) {
		pthread_join(w[i].thread, NULL);
		failed += w[i].failed;
	}
	wall = now_ns() - t0;
	/* Rates and latencies count only the messages that succeeded. */
	qsort(lat_ns, count, sizeof(*lat_ns), cmp_u64);
	ok = count - failed;
	printf("messages=%llu failed=%llu threads=%u wall_ms=%.1f per_second=%.0f",
	       (unsigned long long)count, (unsigned long long)failed, threads, wall / 1e6,
	       ok * 1e9 / wall);
	if (ok)
		printf(" median_us=%.1f p99_us=%.1f max_us=%.1f\n", lat_ns[ok / 2] / 1e3,
		       lat_ns[ok * 99 / 100] / 1e3, lat_ns[ok - 1] / 1e3);
	else
		printf(" median_us=- p99_us=- max_us=-\n");
	return failed ? 1 : 0;
}
