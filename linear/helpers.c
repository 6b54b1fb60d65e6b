// SPDX-License-Identifier: GPL-2.0
/* The C helpers of kapi/, compiled again for dm-rust-linear.ko. */
#include "../kapi/helpers.c"
