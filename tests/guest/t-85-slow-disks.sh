# SPDX-License-Identifier: GPL-2.0
# Slow disks, as failing disks are slow before they fail: the fault models
# of the slow-disk tests, each asserted to act, and what the target does
# over them today.
#  - dm-delay: a table of linear and delay segments, so that 1 MiB of the
#    disk (blocks 1000-1255) reads and writes 600 ms late and the rest at
#    once;
#  - null_blk's completion delay (irqmode=2, completion_nsec): a device
#    whose every I/O takes 300 ms.
# Over them: a slow block's delay reaches its own bios only; reads and
# writes of other blocks complete at the fast blocks' pace while it is in
# flight; a slow but readable block is neither an error nor remapped; a
# scrub over the slow block stops, and the device suspends, within 2 s.

modprobe dm-delay

# fast_while_slow DEV SLOWBLOCK OP: while an OP (read4k or write4k) of the
# slow block is in flight, 20 OPs of other blocks each take under 100 ms,
# and the slow one takes its delay.
fast_while_slow() {
	dev=$1 slowb=$2 op=$3
	took_bg /tmp/slow.took $op "$dev" "$slowb"
	bg=$!
	sleep 0.1
	i=0
	while [ $i -lt 20 ]; do
		ms=$(took_ms $op "$dev" $((2000 + i * 37))) || { echo "$op of block $((2000 + i * 37)) failed"; return 1; }
		in_range "$ms" 0 100 || return 1
		i=$((i + 1))
	done
	wait $bg
	took_was /tmp/slow.took ok 500 5000
}

a=$(nullb_make sd1 64 512)
b=$(nullb_make sd2 8 512)
sz=$(blockdev --getsz "$a")
# Blocks 1000-1255 (sectors 8000-10047) are 600 ms late, reads and writes.
slow=1000
delay_table sddelay "$a" $slow 256 600

# The fault model acts: the slow block is slow, another is not.
check "dm-delay: a slow block reads in 500 ms or more" took_in 500 5000 read4k /dev/mapper/sddelay $slow
check "dm-delay: another block reads in under 100 ms" took_in 0 100 read4k /dev/mapper/sddelay 3000

spare_len=$(blockdev --getsz "$b")
check "remap over the slow disk" dmsetup create sdr --table "0 $sz remap /dev/mapper/sddelay 0 $b 0 $spare_len 2 block_size 4096"
check "remap: the slow block's delay passes through (500 ms or more), the read succeeds" took_in 500 5000 read4k /dev/mapper/sdr $slow
check "remap: while a read of the slow block is in flight, reads of 20 other blocks each take under 100 ms" \
	fast_while_slow /dev/mapper/sdr $slow read4k
check "remap: while a write of the slow block is in flight, writes of 20 other blocks each take under 100 ms" \
	fast_while_slow /dev/mapper/sdr $slow write4k
check "remap: a slow but readable block is no error: nothing remapped or pending, no read or write error" quiet sdr

# A scrub in the slow region (it reaches block 1000 within 0.1 s at
# 100 MiB/s, then each 64 KiB step waits 600 ms): it stops, and the device
# suspends, within 2 s (each waits for the read in flight at most).
dmsetup message sdr 0 scrub start 100 >/dev/null
sleep 1
check "scrub in the slow region: it is there (status: running, past block 1000)" sh -c "
	dmsetup status sdr | grep -qE ' running:([0-9]+)/' &&
	[ \$(dmsetup status sdr | sed -n 's/.* running:\([0-9]*\)\/.*/\1/p') -ge 1000 ]"
check "scrub in the slow region: scrub stop returns within 2 s" took_in 0 2000 dmsetup message sdr 0 scrub stop
dmsetup message sdr 0 scrub start 100 >/dev/null
sleep 1
check "scrub in the slow region: dmsetup suspend returns within 2 s" took_in 0 2000 dmsetup suspend sdr
check "resume" dmsetup resume sdr
dmsetup message sdr 0 scrub stop >/dev/null 2>&1
dmsetup remove sdr
dmsetup remove sddelay

# A whole device that is slow: null_blk completes every I/O 300 ms late.
c=$(NULLB_ATTRS="irqmode=2 completion_nsec=300000000" nullb_make sd3 16 512)
check "null_blk completion_nsec: a read takes 250 ms or more" took_in 250 5000 read4k "$c" 10
csz=$(blockdev --getsz "$c")
check "remap over the slow device (its spare area on it too)" \
	dmsetup create sds --table "0 $((csz - 4096)) remap $c 0 $c $((csz - 4096)) 4096 2 block_size 4096"
check "remap over the slow device: a read takes 250 ms or more and succeeds" took_in 250 5000 read4k /dev/mapper/sds 10
# parallel_reads DEV: 8 reads at once take about one delay, not eight.
parallel_reads() {
	t0=$(now_ms)
	for i in 1 2 3 4 5 6 7 8; do read4k "$1" $((i * 10)) >/dev/null 2>&1 & done
	wait
	in_range $(($(now_ms) - t0)) 250 1500
}
check "remap over the slow device: 8 parallel reads take about one delay, not eight (under 1.5 s)" parallel_reads /dev/mapper/sds
check "remap over the slow device: nothing remapped or pending, no error" quiet sds
dmsetup remove sds
nullb_drop sd3
nullb_drop sd1
nullb_drop sd2
