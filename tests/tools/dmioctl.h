/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The few device-mapper ioctls the test tools need (create with a one-line
 * table, message, remove), as dmsetup issues them, without a process each.
 */
#ifndef DMR_TOOLS_DMIOCTL_H
#define DMR_TOOLS_DMIOCTL_H

#include <errno.h>
#include <linux/dm-ioctl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

union dm_buf {
	struct dm_ioctl io;
	char bytes[1 << 16];
};

/* A request for device @name, payload after the header. */
static inline void dm_prepare(union dm_buf *b, const char *name)
{
	memset(&b->io, 0, sizeof(b->io));
	b->io.version[0] = DM_VERSION_MAJOR;
	b->io.data_size = sizeof(*b);
	b->io.data_start = sizeof(struct dm_ioctl);
	snprintf(b->io.name, sizeof(b->io.name), "%s", name);
}

static inline int dm_call(int control, unsigned long cmd, union dm_buf *b)
{
	return ioctl(control, cmd, b) ? errno : 0;
}

/* A request that carries only the device's name. Returns an errno. */
static inline int dm_simple(int control, unsigned long cmd, const char *name)
{
	union dm_buf b;

	dm_prepare(&b, name);
	return dm_call(control, cmd, &b);
}

/* Sends message @text; the answer, if @out, into @out. Returns an errno. */
static inline int dm_message(int control, const char *name, const char *text, char *out,
			     size_t outlen)
{
	union dm_buf b;
	struct dm_target_msg *msg;
	int r;

	dm_prepare(&b, name);
	msg = (struct dm_target_msg *)(b.bytes + b.io.data_start);
	msg->sector = 0;
	snprintf(msg->message, sizeof(b) - b.io.data_start - sizeof(*msg), "%s", text);
	r = dm_call(control, DM_TARGET_MSG, &b);
	if (!r && out && outlen) {
		if (b.io.flags & DM_DATA_OUT_FLAG)
			snprintf(out, outlen, "%s", b.bytes + b.io.data_start);
		else
			out[0] = 0;
	}
	return r;
}

static inline int dm_remove(int control, const char *name)
{
	return dm_simple(control, DM_DEV_REMOVE, name);
}

/* Loads the one-target table "<start> <len> <type> <params>" as @name's inactive table. */
static inline int dm_load(int control, const char *name, uint64_t start, uint64_t len,
			  const char *type, const char *params)
{
	union dm_buf b;
	struct dm_target_spec *spec;

	dm_prepare(&b, name);
	b.io.target_count = 1;
	spec = (struct dm_target_spec *)(b.bytes + b.io.data_start);
	memset(spec, 0, sizeof(*spec));
	spec->sector_start = start;
	spec->length = len;
	snprintf(spec->target_type, sizeof(spec->target_type), "%s", type);
	snprintf((char *)(spec + 1), sizeof(b) - b.io.data_start - sizeof(*spec), "%s", params);
	return dm_call(control, DM_TABLE_LOAD, &b);
}

/* Resumes @name, swapping in its inactive table if it has one. */
static inline int dm_resume(int control, const char *name)
{
	return dm_simple(control, DM_DEV_SUSPEND, name);
}

/*
 * Creates device @name with one target and resumes it; removes it again
 * if that fails. Returns an errno.
 */
static inline int dm_create(int control, const char *name, uint64_t start, uint64_t len,
			    const char *type, const char *params)
{
	int r = dm_simple(control, DM_DEV_CREATE, name);

	if (r)
		return r;
	r = dm_load(control, name, start, len, type, params);
	if (!r)
		r = dm_resume(control, name);
	if (r)
		dm_remove(control, name);
	return r;
}

#endif
