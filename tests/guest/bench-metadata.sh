# SPDX-License-Identifier: GPL-2.0
# Metadata benchmark (scripts/bench-metadata.sh boots it): remap latency
# one at a time, remaps per second under a burst of concurrent remaps, and
# the time to load 100k remaps. Prints BENCH lines.
. /tests/lib.sh
modprobe dm_remap

# A 4 KiB-block remap device, data 256 MiB, spare area 16384 blocks, on
# null_blk devices that complete at once, each with a 16 MiB volatile
# write cache (cache_size): the block layer sends them every flush, as it
# would to a disk, and each flush writes the dirty cache back, where a
# device without a write cache has its flushes dropped before it.
d=$(nullb_make bd1 256 512 16)
s=$(nullb_make bd2 64 512 16)
for b in bd1 bd2; do
	[ "$(cat /sys/block/$b/queue/write_cache)" = "write back" ] ||
		echo "BENCH error $b has no volatile write cache: $(cat /sys/block/$b/queue/write_cache)"
done
dmsetup create bm --table "0 524288 remap $d 0 $s 0 131072 2 block_size 4096" || exit 1

# One remap at a time: every remap is its own commit.
out=$(dm-msg bm 1000 0 8 1) || echo "dm-msg failed: $out"
echo "BENCH remap_latency threads=1 $out"
st=$(dmsetup message bm 0 stats | tr ' ' '\n')
commits=$(echo "$st" | sed -n 's/^commits=//p')
ns=$(echo "$st" | sed -n 's/^commit_ns_total=//p')
p50=$(echo "$st" | sed -n 's/^commit_p50_us=//p')
p99=$(echo "$st" | sed -n 's/^commit_p99_us=//p')
echo "BENCH commit commits=$commits mean_us=$((ns / commits / 1000)) p50_us=$p50 p99_us=$p99"

# A burst: 16 threads, 4000 remaps; commits are shared.
out=$(dm-msg bm 4000 80000 8 16) || echo "dm-msg failed: $out"
st=$(dmsetup message bm 0 stats | tr ' ' '\n')
commits2=$(echo "$st" | sed -n 's/^commits=//p')
echo "BENCH remap_burst threads=16 $out commits=$((commits2 - commits))"
dmsetup remove bm
nullb_drop bd1
nullb_drop bd2

# Load time: 100k remaps written by remapctl restore (512-byte blocks, 130000 spare
# blocks), loaded by the constructor, which logs the time it took.
d=$(nullb_make bl1 64 512)
s=$(nullb_make bl2 64 512)
meta_restore $s 0 131072 0 130000 512 100000 || echo "meta_restore failed"
dmesg -c >/dev/null
dmsetup create bl --table "0 131072 remap $d 0 $s 0 130000" || echo "create failed"
line=$(dmesg | grep 'metadata generation .* loaded' | tail -n 1)
echo "BENCH load $(echo "$line" | sed -n 's/.*loaded: \([0-9]*\) remaps in \([0-9]*\) us.*/remaps=\1 us=\2/p')"
dmsetup remove bl
nullb_drop bl1
nullb_drop bl2
echo "BENCH done"
