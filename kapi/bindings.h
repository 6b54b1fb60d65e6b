/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Input of bindgen for this module's own bindings: device-mapper, dm-bufio
 * and the C helpers.  Types that the kernel crate already binds (bio,
 * block_device, queue_limits...) are taken from kernel::bindings instead.
 */
#include <linux/device-mapper.h>
#include <linux/dm-bufio.h>
#include "helpers.h"
