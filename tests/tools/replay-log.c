// SPDX-License-Identifier: GPL-2.0
/*
 * replay-log: read a dm-log-writes log and replay it entry by entry, to
 * check a target's on-disk state at every point a crash could leave it.
 * The log format is in the kernel's
 * Documentation/admin-guide/device-mapper/log-writes.rst and
 * drivers/md/dm-log-writes.c: a super block in the first <sectorsize>
 * bytes, then one <sectorsize> block per entry (struct log_write_entry,
 * a mark's text right after it), followed by the entry's data unless it is
 * a discard.
 *
 *   replay-log list <log>
 *       one line per entry: <index> <offset> <flags> <sector> <sectors> [<mark>]
 *       flags: F flush, U fua, D discard, M mark, - none; sector and
 *       sectors in <sectorsize> units.
 *   replay-log apply <log> <device> <offset>
 *       applies the entry at byte <offset> of the log to <device>
 *       (a write copies its data, a discard writes zeroes).
 *   replay-log check <log> <replay-dev> <copy-dev> <bytes> <table>
 *       the crash test: applies the entries one by one to <replay-dev>
 *       (which must start as the logged device started); after every
 *       write and every flush copies the first <bytes> of it to
 *       <copy-dev>, loads <table> ("<start> <len> <type> <params>", the
 *       params naming <copy-dev>) into device "crash-check" (created for
 *       the first state, reloaded for the next ones: a reload loads the
 *       metadata again when it resumes, and is much cheaper than a new
 *       device), sends it "list" and checks that every block named by a
 *       mark "r<block>" seen so far is listed. Prints the states checked
 *       and every failure; exits 1 on a failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "dmioctl.h"

#define LOG_FLUSH_FLAG (1 << 0)
#define LOG_FUA_FLAG (1 << 1)
#define LOG_DISCARD_FLAG (1 << 2)
#define LOG_MARK_FLAG (1 << 3)
#define WRITE_LOG_MAGIC 0x6a736677736872ULL
#define WRITE_LOG_VERSION 1ULL

struct log_write_super {
	uint64_t magic;
	uint64_t version;
	uint64_t nr_entries;
	uint32_t sectorsize;
} __attribute__((packed));

struct log_write_entry {
	uint64_t sector;
	uint64_t nr_sectors;
	uint64_t flags;
	uint64_t data_len;
} __attribute__((packed));

static void die(const char *what)
{
	fprintf(stderr, "replay-log: %s: %s\n", what, strerror(errno ? errno : EINVAL));
	exit(1);
}

static void read_at(int fd, void *buf, size_t len, off_t at)
{
	ssize_t n = pread(fd, buf, len, at);

	if (n != (ssize_t)len) {
		if (n >= 0)
			errno = EIO;
		die("short read of the log");
	}
}

/* The log's super block; exits unless it is a dm-log-writes log. */
static struct log_write_super read_super(int log)
{
	struct log_write_super super;

	read_at(log, &super, sizeof(super), 0);
	if (super.magic != WRITE_LOG_MAGIC || super.version != WRITE_LOG_VERSION ||
	    super.sectorsize < 512 || super.sectorsize & (super.sectorsize - 1)) {
		errno = EINVAL;
		die("not a dm-log-writes log");
	}
	return super;
}

/* Bytes from one entry to the next: the entry block, then its data. */
static off_t entry_span(const struct log_write_entry *e, uint32_t ss)
{
	return ss + (e->flags & LOG_DISCARD_FLAG ? 0 : (off_t)e->nr_sectors * ss);
}

static int list(int log)
{
	struct log_write_super super = read_super(log);
	uint32_t ss = super.sectorsize;
	char *block = malloc(ss);
	off_t at = ss;

	if (!block)
		die("malloc");
	for (uint64_t i = 0; i < super.nr_entries; i++) {
		struct log_write_entry e;
		char flags[8], *f = flags;

		read_at(log, block, ss, at);
		memcpy(&e, block, sizeof(e));
		if (e.flags & LOG_FLUSH_FLAG)
			*f++ = 'F';
		if (e.flags & LOG_FUA_FLAG)
			*f++ = 'U';
		if (e.flags & LOG_DISCARD_FLAG)
			*f++ = 'D';
		if (e.flags & LOG_MARK_FLAG)
			*f++ = 'M';
		if (f == flags)
			*f++ = '-';
		*f = 0;
		printf("%" PRIu64 " %jd %s %" PRIu64 " %" PRIu64, i, (intmax_t)at, flags,
		       e.sector, e.nr_sectors);
		if (e.flags & LOG_MARK_FLAG) {
			size_t len = e.data_len;

			if (len > ss - sizeof(e))
				len = ss - sizeof(e);
			printf(" %.*s", (int)len, block + sizeof(e));
		}
		putchar('\n');
		at += entry_span(&e, ss);
	}
	free(block);
	return 0;
}

/* A buffer aligned for O_DIRECT. */
static void *aligned(size_t len)
{
	void *p;

	if (posix_memalign(&p, 4096, len ? len : 4096))
		die("posix_memalign");
	memset(p, 0, len);
	return p;
}

/* Applies the entry at @at (a write or a discard) to @dev, opened O_DIRECT. */
static void apply_entry(int log, int dev, uint32_t ss, const struct log_write_entry *e, off_t at)
{
	size_t len;
	char *data;

	if (e->flags & LOG_MARK_FLAG || !e->nr_sectors)
		return;
	len = (size_t)e->nr_sectors * ss;
	data = aligned(len);
	if (!(e->flags & LOG_DISCARD_FLAG))
		read_at(log, data, len, at + ss);
	if (pwrite(dev, data, len, (off_t)e->sector * ss) != (ssize_t)len)
		die("write to the device");
	free(data);
}

static int apply(int log, int dev, off_t at)
{
	struct log_write_super super = read_super(log);
	struct log_write_entry e;

	read_at(log, &e, sizeof(e), at);
	apply_entry(log, dev, super.sectorsize, &e, at);
	return 0;
}

static int check(int log, int replay, int copy, size_t bytes, const char *table)
{
	struct log_write_super super = read_super(log);
	uint32_t ss = super.sectorsize;
	unsigned long long start, len;
	char type[32], *block = aligned(ss), *state = aligned(bytes);
	static char listed[1 << 16];
	uint64_t *acked = NULL, nr_acked = 0, states = 0, bad = 0;
	int control = open("/dev/mapper/control", O_RDWR), params, live = 0;
	off_t at = ss;

	if (control < 0)
		die("/dev/mapper/control");
	if (sscanf(table, "%llu %llu %31s %n", &start, &len, type, &params) != 3) {
		errno = EINVAL;
		die("table");
	}
	for (uint64_t i = 0; i < super.nr_entries; i++) {
		struct log_write_entry e;
		int r;

		read_at(log, block, ss, at);
		memcpy(&e, block, sizeof(e));
		if (e.flags & LOG_MARK_FLAG) {
			if (block[sizeof(e)] == 'r') {
				acked = realloc(acked, (nr_acked + 1) * sizeof(*acked));
				if (!acked)
					die("realloc");
				acked[nr_acked++] = strtoull(block + sizeof(e) + 1, NULL, 10);
			}
		} else {
			apply_entry(log, replay, ss, &e, at);
			read_at(replay, state, bytes, 0);
			if (pwrite(copy, state, bytes, 0) != (ssize_t)bytes)
				die("write to the copy");
			states++;
			if (live) {
				r = dm_load(control, "crash-check", start, len, type, table + params);
				if (!r)
					r = dm_resume(control, "crash-check");
			} else {
				r = dm_create(control, "crash-check", start, len, type,
					      table + params);
				live = !r;
			}
			if (r) {
				printf("state after entry %llu: load failed: %s\n",
				       (unsigned long long)i, strerror(r));
				bad++;
			} else {
				r = dm_message(control, "crash-check", "list 0 100000000", listed,
					       sizeof(listed));
				if (r)
					die("list message");
				for (uint64_t k = 0; k < nr_acked; k++) {
					char want[32];
					size_t n = snprintf(want, sizeof(want), "%llu ",
							    (unsigned long long)acked[k]);
					const char *p = listed;

					/* Lines are "<block> <spare>[ lost]". */
					while (p && strncmp(p, want, n))
						p = (p = strchr(p, '\n')) ? p + 1 : NULL;
					if (!p) {
						printf("state after entry %llu: acknowledged remap of block %llu missing\n",
						       (unsigned long long)i, (unsigned long long)acked[k]);
						bad++;
						break;
					}
				}
			}
			if (states % 500 == 0) {
				printf("%llu states checked\n", (unsigned long long)states);
				fflush(stdout);
			}
		}
		at += entry_span(&e, ss);
	}
	if (live && dm_remove(control, "crash-check"))
		die("remove");
	printf("states=%llu acked=%llu bad=%llu\n", (unsigned long long)states,
	       (unsigned long long)nr_acked, (unsigned long long)bad);
	return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
	int log, dev;

	if (argc == 3 && !strcmp(argv[1], "list")) {
		log = open(argv[2], O_RDONLY);
		if (log < 0)
			die(argv[2]);
		return list(log);
	}
	if (argc == 7 && !strcmp(argv[1], "check")) {
		int copy;

		log = open(argv[2], O_RDONLY);
		dev = open(argv[3], O_RDWR | O_DIRECT);
		copy = open(argv[4], O_WRONLY | O_DIRECT);
		if (log < 0 || dev < 0 || copy < 0)
			die("open");
		return check(log, dev, copy, strtoull(argv[5], NULL, 0), argv[6]);
	}
	if (argc == 5 && !strcmp(argv[1], "apply")) {
		log = open(argv[2], O_RDONLY);
		dev = open(argv[3], O_WRONLY | O_DIRECT);
		if (log < 0 || dev < 0)
			die("open");
		return apply(log, dev, strtoll(argv[4], NULL, 0));
	}
	fprintf(stderr, "usage: replay-log list <log> | apply <log> <device> <offset> |\n"
			"       check <log> <replay-dev> <copy-dev> <bytes> <table>\n");
	return 2;
}
