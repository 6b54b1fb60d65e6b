// SPDX-License-Identifier: GPL-2.0
/*
 * Layout facts of device-mapper core that the hot path of dm-remap needs
 * as compile-time constants, emitted the way the kernel's asm-offsets are
 * (DEFINE markers in the assembly, turned into Rust constants by Kbuild).
 * They come from dm core's private dm-core.h, of the kernel the module is
 * built against: dm_per_bio_data() is out of line in dm.c, and computing
 * the same address inline saves a call on every bio's map and end_io.
 * Kbuild compiles this only where dm-core.h is there (a kernel source
 * tree, not a headers package); the module checks the answer against
 * dm_per_bio_data() at run time (kapi/dm/per_bio.rs).
 */
#include <linux/kbuild.h>
#include "dm-core.h"

void dmr_offsets(void);

void dmr_offsets(void)
{
	/* A clone's per-bio data ends where its dm_target_io begins... */
	DEFINE(DM_TARGET_IO_BIO_OFFSET, DM_TARGET_IO_BIO_OFFSET);
	/* ...or, for the clone embedded in its dm_io, where the dm_io begins. */
	DEFINE(DM_IO_BIO_OFFSET, DM_IO_BIO_OFFSET);
	/* The dm_target_io flags, from the clone's start backwards. */
	DEFINE(DM_TIO_FLAGS_BEFORE_BIO,
	       DM_TARGET_IO_BIO_OFFSET - offsetof(struct dm_target_io, flags));
	DEFINE(DM_TIO_FLAGS_SIZE, sizeof_field(struct dm_target_io, flags));
	DEFINE(DM_TIO_INSIDE_DM_IO_BIT, DM_TIO_INSIDE_DM_IO);
	/*
	 * The magic numbers dm core stamps on every dm_target_io and dm_io,
	 * and where they lie before the clone: the module checks them on
	 * every bio before it trusts the rest of the layout.
	 */
	DEFINE(DM_TIO_MAGIC_BEFORE_BIO,
	       DM_TARGET_IO_BIO_OFFSET - offsetof(struct dm_target_io, magic));
	DEFINE(DM_TIO_MAGIC_VALUE, DM_TIO_MAGIC);
	DEFINE(DM_IO_MAGIC_BEFORE_BIO, DM_IO_BIO_OFFSET - offsetof(struct dm_io, magic));
	DEFINE(DM_IO_MAGIC_VALUE, DM_IO_MAGIC);
	DEFINE(DM_MAGIC_SIZE, sizeof_field(struct dm_target_io, magic));
}
