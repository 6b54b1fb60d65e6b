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
 *   replay-log check <log> <replay-dev> <copy-dev> <bytes> <asked> <table>
 *       the crash test: applies the entries one by one to <replay-dev>
 *       (which must start as the logged device started); after every
 *       entry that writes metadata blocks (a flush without data, or the
 *       data a remap writes to its spare before its commit, changes
 *       nothing a load sees) copies the first <bytes> of it to <copy-dev>, loads
 *       <table> ("<start> <len> remap <params>", the params naming
 *       <copy-dev> as spare device) into device "crash-check" (every other
 *       state on a device created for it, the others on a reload of the
 *       live one, which loads the metadata again when it resumes), sends
 *       it "list" and checks each line: "<block> <spare>" of a block whose
 *       sector is in the file <asked> (one sector a line), no spare twice,
 *       none flagged lost, the spare holding the data block's content as
 *       the data device has it; and every block whose remap a mark
 *       "r<sector>" acknowledged so far is listed. Prints the states
 *       checked and every failure; exits 1 on a failure.
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

/* What check() knows of the table: geometry, and the data it must find. */
struct geometry {
	uint64_t data_offset, spare_offset, spare_len; /* sectors */
	uint32_t block_size;			     /* bytes */
	int data;				     /* the data device, O_DIRECT */
};

/* Reads the geometry from the table's parameters ("<data_dev> <data_offset>
 * <spare_dev> <spare_offset> <spare_len> [<#features> ... block_size N]"). */
static struct geometry parse_geometry(const char *params)
{
	struct geometry g = { .block_size = 512 };
	char data_dev[256], spare_dev[256];
	unsigned long long data_offset, spare_offset, spare_len;
	const char *bs = strstr(params, "block_size ");

	if (sscanf(params, "%255s %llu %255s %llu %llu", data_dev, &data_offset, spare_dev,
		   &spare_offset, &spare_len) != 5) {
		errno = EINVAL;
		die("table parameters");
	}
	if (bs)
		g.block_size = strtoul(bs + strlen("block_size "), NULL, 10);
	g.data_offset = data_offset;
	g.spare_offset = spare_offset;
	g.spare_len = spare_len;
	g.data = open(data_dev, O_RDONLY | O_DIRECT);
	if (g.data < 0)
		die(data_dev);
	return g;
}

/* The sectors asked to be remapped, one per line of @path, as blocks. */
static uint64_t read_asked(const char *path, uint32_t block_size, uint64_t **blocks)
{
	FILE *f = fopen(path, "r");
	unsigned long long sector;
	uint64_t n = 0;

	if (!f)
		die(path);
	*blocks = NULL;
	while (fscanf(f, "%llu", &sector) == 1) {
		*blocks = realloc(*blocks, (n + 1) * sizeof(**blocks));
		if (!*blocks)
			die("realloc");
		(*blocks)[n++] = sector * 512 / block_size;
	}
	fclose(f);
	return n;
}

static int listed_in(const uint64_t *v, uint64_t n, uint64_t x)
{
	for (uint64_t i = 0; i < n; i++)
		if (v[i] == x)
			return 1;
	return 0;
}

/* Checks the answer to "list" in one state: every line "<block> <spare>",
 * the block asked for, the spare not listed twice, not flagged lost (the
 * data device reads fine), holding the data block's content in @state;
 * and every acknowledged block listed. Returns the problems found. */
static uint64_t check_list(const char *listed, const struct geometry *g, const char *state,
			   size_t bytes, const uint64_t *asked, uint64_t nr_asked,
			   const uint64_t *acked, uint64_t nr_acked, uint64_t entry)
{
	uint64_t nr_spares = g->spare_len * 512 / g->block_size, bad = 0;
	unsigned char *seen = calloc(nr_spares, 1);
	char *data = aligned(g->block_size);
	const char *p = listed;

	if (!seen)
		die("calloc");
	for (; p && *p; p = (p = strchr(p, '\n')) ? p + 1 : NULL) {
		unsigned long long block, spare;
		char rest[16] = "";
		off_t at;

		if (sscanf(p, "%llu %llu%15[^\n]", &block, &spare, rest) < 2 || rest[0]) {
			printf("state after entry %llu: unexpected list line '%.*s'\n",
			       (unsigned long long)entry, (int)strcspn(p, "\n"), p);
			bad++;
			continue;
		}
		if (!listed_in(asked, nr_asked, block)) {
			printf("state after entry %llu: block %llu listed, never asked for\n",
			       (unsigned long long)entry, block);
			bad++;
		}
		if (spare >= nr_spares || seen[spare]++) {
			printf("state after entry %llu: spare %llu listed twice or out of range\n",
			       (unsigned long long)entry, spare);
			bad++;
			continue;
		}
		at = (off_t)g->spare_offset * 512 + (off_t)spare * g->block_size;
		if (at + g->block_size > (off_t)bytes) {
			errno = EINVAL;
			die("spare area beyond the bytes copied");
		}
		if (pread(g->data, data, g->block_size,
			  (off_t)g->data_offset * 512 + (off_t)block * g->block_size) !=
		    (ssize_t)g->block_size)
			die("read of the data device");
		if (memcmp(state + at, data, g->block_size)) {
			printf("state after entry %llu: spare %llu of block %llu does not hold its data\n",
			       (unsigned long long)entry, spare, block);
			bad++;
		}
	}
	for (uint64_t k = 0; k < nr_acked; k++) {
		char want[32];
		size_t n = snprintf(want, sizeof(want), "%llu ", (unsigned long long)acked[k]);

		for (p = listed; p && strncmp(p, want, n);)
			p = (p = strchr(p, '\n')) ? p + 1 : NULL;
		if (!p) {
			printf("state after entry %llu: acknowledged remap of block %llu missing\n",
			       (unsigned long long)entry, (unsigned long long)acked[k]);
			bad++;
		}
	}
	free(seen);
	free(data);
	return bad;
}

/* Whether the write entry at @at holds a metadata block ("dm-remap" at the
 * start of one of its blocks). */
static int writes_metadata(int log, uint32_t ss, const struct log_write_entry *e, off_t at,
			   uint32_t block_size)
{
	size_t len = (size_t)e->nr_sectors * ss;
	char magic[8];

	if (e->flags & LOG_DISCARD_FLAG)
		return 1;
	for (size_t off = 0; off < len; off += block_size) {
		read_at(log, magic, sizeof(magic), at + ss + off);
		if (!memcmp(magic, "dm-remap", sizeof(magic)))
			return 1;
	}
	return 0;
}

static int check(int log, int replay, int copy, size_t bytes, const char *asked_path,
		 const char *table)
{
	struct log_write_super super = read_super(log);
	uint32_t ss = super.sectorsize;
	unsigned long long start, len;
	char type[32], *block = aligned(ss), *state = aligned(bytes);
	static char listed[1 << 16];
	uint64_t *acked = NULL, *asked, nr_acked = 0, nr_asked, states = 0, fresh = 0, bad = 0;
	int control = open("/dev/mapper/control", O_RDWR), params, live = 0;
	struct geometry g;
	off_t at = ss;

	if (control < 0)
		die("/dev/mapper/control");
	if (sscanf(table, "%llu %llu %31s %n", &start, &len, type, &params) != 3) {
		errno = EINVAL;
		die("table");
	}
	g = parse_geometry(table + params);
	nr_asked = read_asked(asked_path, g.block_size, &asked);
	for (uint64_t i = 0; i < super.nr_entries; i++) {
		struct log_write_entry e;
		int r;

		read_at(log, block, ss, at);
		memcpy(&e, block, sizeof(e));
		at += entry_span(&e, ss);
		if (e.flags & LOG_MARK_FLAG) {
			/* "r<sector>": the remap of <sector> was acknowledged. */
			if (block[sizeof(e)] == 'r') {
				acked = realloc(acked, (nr_acked + 1) * sizeof(*acked));
				if (!acked)
					die("realloc");
				acked[nr_acked++] =
					strtoull(block + sizeof(e) + 1, NULL, 10) * 512 / g.block_size;
			}
			continue;
		}
		/* A flush without data changes nothing a crash could leave. */
		if (!e.nr_sectors)
			continue;
		apply_entry(log, replay, ss, &e, at - entry_span(&e, ss));
		/* Nor does the data a remap writes to its spare before the commit
		 * that lists it (a spare of a listed block written later would
		 * be caught in the next state): only a write of metadata blocks,
		 * which start with the magic, makes a new state to load. */
		if (!writes_metadata(log, ss, &e, at - entry_span(&e, ss), g.block_size))
			continue;
		read_at(replay, state, bytes, 0);
		if (pwrite(copy, state, bytes, 0) != (ssize_t)bytes)
			die("write to the copy");
		states++;
		/* Every other state on a device created for it, the others on a
		 * reload of the live one (which loads the metadata again on
		 * resume). */
		if (live && states % 2) {
			r = dm_load(control, "crash-check", start, len, type, table + params);
			if (!r)
				r = dm_resume(control, "crash-check");
		} else {
			if (live && dm_remove(control, "crash-check"))
				die("remove");
			r = dm_create(control, "crash-check", start, len, type, table + params);
			live = !r;
			fresh++;
		}
		if (r) {
			printf("state after entry %llu: load failed: %s\n", (unsigned long long)i,
			       strerror(r));
			bad++;
		} else {
			r = dm_message(control, "crash-check", "list 0 100000000", listed,
				       sizeof(listed));
			if (r)
				die("list message");
			bad += check_list(listed, &g, state, bytes, asked, nr_asked, acked,
					  nr_acked, i);
		}
		if (states % 500 == 0) {
			printf("%llu states checked\n", (unsigned long long)states);
			fflush(stdout);
		}
	}
	if (live && dm_remove(control, "crash-check"))
		die("remove");
	printf("states=%llu fresh=%llu acked=%llu bad=%llu\n", (unsigned long long)states,
	       (unsigned long long)fresh, (unsigned long long)nr_acked, (unsigned long long)bad);
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
	if (argc == 8 && !strcmp(argv[1], "check")) {
		int copy;

		log = open(argv[2], O_RDONLY);
		dev = open(argv[3], O_RDWR | O_DIRECT);
		copy = open(argv[4], O_WRONLY | O_DIRECT);
		if (log < 0 || dev < 0 || copy < 0)
			die("open");
		return check(log, dev, copy, strtoull(argv[5], NULL, 0), argv[6], argv[7]);
	}
	if (argc == 5 && !strcmp(argv[1], "apply")) {
		log = open(argv[2], O_RDONLY);
		dev = open(argv[3], O_WRONLY | O_DIRECT);
		if (log < 0 || dev < 0)
			die("open");
		return apply(log, dev, strtoll(argv[4], NULL, 0));
	}
	fprintf(stderr, "usage: replay-log list <log> | apply <log> <device> <offset> |\n"
			"       check <log> <replay-dev> <copy-dev> <bytes> <asked> <table>\n");
	return 2;
}
