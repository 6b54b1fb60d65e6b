# SPDX-License-Identifier: GPL-2.0
# Crash consistency, as filesystems are tested upstream: the spare device
# sits under dm-log-writes while 240 remaps are made, 48 at a time (so
# commits are shared); each remap that returns puts a mark in the log.
# Then the log is replayed entry by entry onto a zeroed device, and after
# every write and every flush the target is loaded on a copy of that state
# (loading may rewrite copies): it must load every time and hold every
# remap acknowledged (marked) before that point.

modprobe dm-log-writes
d=$(nullb_make cr1 16 512)
s=$(nullb_make cr2 4 512)
l=$(nullb_make cr3 64 512)
x=$(nullb_make cr4 4 512)
c=$(nullb_make cr5 4 512)
check "log-writes over the spare device" dmsetup create lw --table "0 8192 log-writes $s $l"
# 4 KiB blocks, spare area of 512 blocks: 5 copies of 5 blocks, 487 spares.
check "remap over the logged spare device" dmsetup create crt \
	--table "0 32768 remap $d 0 /dev/mapper/lw 0 4096 2 block_size 4096"

remaps=0
for burst in $(seq 0 4); do
	for j in $(seq 0 47); do
		b=$(((burst * 48 + j) * 13 % 4096))
		(dmsetup message crt 0 remap $((b * 8)) >/dev/null &&
			dmsetup message lw 0 mark "r$b") &
	done
	wait
done
remaps=$(dmsetup status crt | cut -d' ' -f4)
commits=$(dmsetup message crt 0 stats | tr ' ' '\n' | sed -n 's/^commits=//p')
echo "crash: $remaps remaps in $commits commits"
check "240 remaps made" [ "$remaps" = 240 ]
check "concurrent remaps shared commits" [ "$commits" -lt 240 ]
dmsetup remove crt
dmsetup remove lw

replay-log list $l >/tmp/entries
echo "crash: $(wc -l </tmp/entries) log entries, $(grep -c ' M ' /tmp/entries) marks"
# The whole loop runs in replay-log (tests/tools/replay-log.c): a process
# per state and per dmsetup call would take minutes under TCG.
replay-log check $l $x $c 2097152 "0 32768 remap $d 0 $c 0 4096 2 block_size 4096" >/tmp/crash.out
rc=$?
grep -v ' states checked$' /tmp/crash.out | head -n 20
result=$(tail -n 1 /tmp/crash.out)
states=$(echo "$result" | sed -n 's/^states=\([0-9]*\) .*/\1/p')
acked=$(echo "$result" | sed -n 's/.* acked=\([0-9]*\) .*/\1/p')
echo "crash: $states crash states checked (every write and every flush), $acked remaps acknowledged in the log"
check "every crash state loads and holds every acknowledged remap (${states:-0} states)" [ $rc = 0 ]
check "at least 500 crash states checked" [ "${states:-0}" -ge 500 ]
check "every remap acknowledged in the log" [ "$acked" = 240 ]
for n in cr1 cr2 cr3 cr4 cr5; do nullb_drop $n; done
