#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Metadata benchmark: boots the bench kernel (no lockdep, no KASAN) in QEMU
# and prints commit latency (median and p99 from the kernel's histogram,
# within 1/8), remap message latency, remaps per second under a burst of
# concurrent remaps, and the time to load 100k remaps
# (tests/guest/bench-metadata.sh). Builds whatever is missing first.
. "$(dirname "$0")/lib.sh"

bash "$PROJ/scripts/toolchain.sh"
bash "$PROJ/scripts/kernel.sh" bench
bash "$PROJ/scripts/build-module.sh" bench
mkdir -p "$PROJ/results"
img=$(guest_image bench benchmeta) || exit 1
say "booting the bench kernel ($(cat "$CACHE/accel" 2>/dev/null || echo tcg)) for the metadata benchmark"
boot_guest bench "$img" benchmeta "$PROJ/results/kernel-bench-metadata.log" |
	tee "$PROJ/results/guest-bench-metadata.log" | grep '^BENCH' | sed 's/\r$//' |
	awk '
	/BENCH error/ { print; failed = 1; next }
	/remap_latency|remap_burst/ { delete v; for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
		if (v["failed"] != 0) { printf "%s: %s of %s remap messages failed\n", $2, v["failed"], v["messages"]; failed = 1 } }
	/remap_latency/ {
		printf "remap message, one at a time (%s remaps, each its own commit): median %s us, p99 %s us\n", v["messages"], v["median_us"], v["p99_us"] }
	/BENCH commit / { for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
		printf "metadata commit of one remap (in the kernel, %s commits): median %s us, p99 %s us, mean %s us\n", v["commits"], v["p50_us"], v["p99_us"], v["mean_us"] }
	/remap_burst/ {
		printf "burst: %s remaps from %s threads: %s remaps/s in %s commits, p99 %s us\n", v["messages"], v["threads"], v["per_second"], v["commits"], v["p99_us"] }
	/BENCH load/ { for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
		if (v["remaps"] == "") { print "load: failed (see the guest log)"; failed = 1; next }
		printf "load: %s remaps in %.1f ms (in the constructor, from the kernel log)\n", v["remaps"], v["us"] / 1000 }
	/BENCH done/ { done = 1 }
	END { exit !done || failed }' || die "the benchmark did not finish; see results/guest-bench-metadata.log"
