# SPDX-License-Identifier: GPL-2.0
# Weak sectors: blocks that read correctly but slowly are moved to spares
# with their data, as drive firmware reallocates a sector it read only
# with difficulty; a busy but healthy disk is not taken for a weak one.
#  - dm-delay: blocks 1000-1003 read 600 ms late (writes at once); the
#    scrub of a table with slow_read_ms 200 moves exactly those, their data
#    intact, counted in slow_reads and weak_remaps (status, stats,
#    remapctl status, the monitor's textfile);
#  - with the default slow_read_ms (1000 ms) the same blocks are not slow;
#  - null_blk whose every I/O takes 20 ms with a queue depth of 1, under
#    32 fio jobs (each read waits about 640 ms for a tag): a scrub with
#    slow_read_ms 150 sees slow reads and moves nothing.

modprobe dm-delay

scrub_done() {
	dmsetup status "$1" | grep -q ' done:'
}
stat_of() {
	dmsetup message "$1" 0 stats | tr ' ' '\n' | sed -n "s/^$2=//p"
}
# stat_is DEV KEY OP N: the stats counter KEY compares to N (-eq, -ge...).
stat_is() {
	v=$(stat_of "$1" "$2")
	[ "${v:-x}" "$3" "$4" ] 2>/dev/null || { echo "$2=$v, not $3 $4"; return 1; }
}

a=$(nullb_make wk1 64 512)
b=$(nullb_make wk2 8 512)
spare_len=$(blockdev --getsz "$b")
delay_table wdelay "$a" 1000 4 600 0
sz=$(blockdev --getsz "$a")
check "dm-delay: a weak block reads in 500 ms or more" took_in 500 5000 read4k /dev/mapper/wdelay 1001
check "dm-delay: a weak block writes in under 100 ms" took_in 0 100 write4k /dev/mapper/wdelay 1001
check "dm-delay: another block reads in under 100 ms" took_in 0 100 read4k /dev/mapper/wdelay 3000

# 1. The default threshold (1000 ms): 600 ms is not slow.
dmsetup create wr --table "0 $sz remap /dev/mapper/wdelay 0 $b 0 $spare_len 2 block_size 4096"
dd if=/dev/urandom of=/tmp/weak.data bs=4096 count=8 2>/dev/null
dd if=/tmp/weak.data of=/dev/mapper/wr bs=4096 seek=998 count=8 oflag=direct 2>/dev/null
dmsetup message wr 0 scrub start 1000 >/dev/null
check "default slow_read_ms: the scrub of the whole device ends" eventually scrub_done wr
# nothing_moved DEV: no slow read (if "slow" is given, some), no weak
# block, nothing remapped.
nothing_moved() {
	if [ "${2:-}" = slow ]; then stat_is "$1" slow_reads -gt 0 || return 1
	else stat_is "$1" slow_reads -eq 0 || return 1; fi
	stat_is "$1" weak_remaps -eq 0 || return 1
	[ "$(dmsetup status "$1" | cut -d' ' -f4)" = 0 ] || { dmsetup status "$1"; return 1; }
}
check "default slow_read_ms (1000): a 600 ms read is not slow: no slow read, nothing moved" nothing_moved wr
dmsetup remove wr
dd if=/dev/zero of="$b" bs=1M count=8 oflag=direct 2>/dev/null

# 2. slow_read_ms 200: the scrub moves the four weak blocks.
check "a table with slow_read_ms 200" \
	dmsetup create wr --table "0 $sz remap /dev/mapper/wdelay 0 $b 0 $spare_len 4 block_size 4096 slow_read_ms 200"
check "dmsetup table shows slow_read_ms 200" sh -c "dmsetup table wr | grep -q 'slow_read_ms 200'"
dd if=/tmp/weak.data of=/dev/mapper/wr bs=4096 seek=998 count=8 oflag=direct 2>/dev/null
dmesg -c >/dev/null
dmsetup message wr 0 scrub start 1000 >/dev/null
# Each weak block costs 3 slow reads and 2 fast control reads.
i=0
while ! scrub_done wr && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
check "slow_read_ms 200: the scrub ends (within 30 s)" scrub_done wr
check "the four weak blocks were moved: weak_remaps=4" stat_is wr weak_remaps -eq 4
check "each was read slowly three times: slow_reads=12" stat_is wr slow_reads -eq 12
check "status: 4 remapped blocks, nothing pending, no read error, 12 slow reads, 4 weak blocks moved" \
	sh -c "dmsetup status wr | awk '{ exit !(\$4 == 4 && \$12 == 0 && \$6 == 0 && \$(NF - 1) == 12 && \$NF == 4) }'"
check "they are blocks 1000-1003" sh -c "dmsetup message wr 0 list | awk '{ print \$1 }' | tr '\n' ' ' | grep -qx '1000 1001 1002 1003 '"
check "the kernel log says why each moved" sh -c "[ \$(dmesg | grep -c 'reads slowly (over 200 ms, 3 times): moved to spare block') = 4 ]"
check "their data moved with them: the 8 blocks around them read back as written" \
	sh -c "dd if=/dev/mapper/wr of=/tmp/weak.back bs=4096 skip=998 count=8 iflag=direct 2>/dev/null && cmp /tmp/weak.data /tmp/weak.back"
check "a moved block now reads fast (from its spare): under 100 ms" took_in 0 100 read4k /dev/mapper/wr 1002
check "remapctl status: 12 slow reads, 4 weak blocks moved" \
	sh -c "remapctl status wr | grep -q '12 slow reads, 4 weak blocks moved to spares' &&
		remapctl status --json wr | jq -e '.devices[0] | .slow_reads == 12 and .weak_remaps == 4' >/dev/null"
mkdir -p /tmp/prom
remapctl monitor --once --textfile /tmp/prom wr >/dev/null 2>&1
check "the monitor's textfile: dm_remap_weak_remaps_total 4 and dm_remap_slow_reads_total 12" \
	sh -c "grep -q '^dm_remap_weak_remaps_total{.*name=\"wr\".*} 4$' /tmp/prom/dm_remap.prom &&
		grep -q '^dm_remap_slow_reads_total{.*name=\"wr\".*} 12$' /tmp/prom/dm_remap.prom"
dmsetup remove wr
dmsetup remove wdelay

# 3. A busy healthy disk: every I/O takes 20 ms, one at a time; 32 fio jobs
# each keep a read waiting for a tag, so a read waits about 640 ms.
c=$(NULLB_ATTRS="irqmode=2 completion_nsec=20000000 hw_queue_depth=1" nullb_make wk3 16 512)
dd if=/dev/zero of="$b" bs=1M count=8 oflag=direct 2>/dev/null
csz=$(blockdev --getsz "$c")
dmsetup create wb --table "0 $csz remap $c 0 $b 0 $spare_len 4 block_size 4096 slow_read_ms 150"
check "the busy disk at rest: a read takes 20-150 ms" took_in 20 150 read4k /dev/mapper/wb 10
fio --name=busy --filename=/dev/mapper/wb --rw=randread --bs=4k --direct=1 --ioengine=psync \
	--numjobs=32 --group_reporting --time_based --runtime=12 --output-format=json >/tmp/fio.busy 2>/tmp/fio.err &
fio_pid=$!
sleep 3
dmsetup message wb 0 scrub start 100 >/dev/null
sleep 8
dmsetup message wb 0 scrub stop >/dev/null 2>&1
wait $fio_pid
check "under the load a read took over 200 ms on average (fio's mean latency: the fault model acts)" \
	jq -e '.jobs[0].read.lat_ns.mean > 200000000' /tmp/fio.busy
check "a busy healthy disk is not weak: the scrub saw slow reads, and moved nothing (weak_remaps=0, nothing remapped)" \
	nothing_moved wb slow
dmsetup remove wb
nullb_drop wk3
nullb_drop wk1
nullb_drop wk2
