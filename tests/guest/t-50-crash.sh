# SPDX-License-Identifier: GPL-2.0
# Crash consistency, as filesystems are tested upstream: the spare device
# sits under dm-log-writes while 96 remaps are made by 48 threads of one
# process (so commits are shared); each thread puts a mark in the log right
# after its remap returns success. Then the log is replayed entry by entry
# onto a zeroed device, and after every entry that writes metadata the
# target is loaded on a copy of that state (loading may rewrite copies), every other
# time on a new device, the others on a reload: it must load every time,
# list only blocks asked for, each on its own spare holding the block's
# data, and list every remap acknowledged (marked) before that point.

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

# The data device holds data, which the spares must hold once listed.
dd if=/dev/urandom of=$d bs=1M count=16 oflag=direct 2>/dev/null
# Blocks 13 * k modulo 4096 for k = 0..95, all distinct.
k=0
: >/tmp/asked
while [ $k -lt 96 ]; do
	echo $((k * 13 % 4096 * 8)) >>/tmp/asked
	k=$((k + 1))
done
dm-msg crt 96 0 104 48 32768 lw >/tmp/dm-msg.out
check "96 remaps acknowledged" grep -q '^messages=96 failed=0 ' /tmp/dm-msg.out
remaps=$(dmsetup status crt | cut -d' ' -f4)
commits=$(dmsetup message crt 0 stats | tr ' ' '\n' | sed -n 's/^commits=//p')
echo "crash: $remaps remaps in $commits commits"
check "96 remaps made" [ "$remaps" = 96 ]
check "concurrent remaps shared commits" [ "$commits" -lt 96 ]
dmsetup remove crt
dmsetup remove lw

replay-log list $l >/tmp/entries
echo "crash: $(wc -l </tmp/entries) log entries, $(grep -c ' M ' /tmp/entries) marks"
# The whole loop runs in replay-log (tests/tools/replay-log.c): a process
# per state and per dmsetup call would take minutes under TCG.
replay-log check $l $x $c 2097152 /tmp/asked "0 32768 remap $d 0 $c 0 4096 2 block_size 4096" >/tmp/crash.out
rc=$?
grep -v ' states checked$' /tmp/crash.out | head -n 20
result=$(tail -n 1 /tmp/crash.out)
states=$(echo "$result" | sed -n 's/^states=\([0-9]*\) .*/\1/p')
fresh=$(echo "$result" | sed -n 's/.* fresh=\([0-9]*\) .*/\1/p')
acked=$(echo "$result" | sed -n 's/.* acked=\([0-9]*\) .*/\1/p')
echo "crash: $states crash states checked (after every metadata write), $fresh on a new device, $acked remaps acknowledged in the log"
check "every crash state loads, lists only what was asked, each spare with its data, and every acknowledged remap (${states:-0} states)" [ $rc = 0 ]
check "states checked on new devices and on reloads" [ "${fresh:-0}" -gt 0 -a "${fresh:-0}" -lt "${states:-0}" ]
# Each commit writes at least a changed block and the superblock of each
# of 5 copies: 10 crash states at least. (How many commits the remaps
# share depends on timing.)
check "a crash state after every metadata write: at least 10 per commit (${commits:-0} commits)" \
	[ "${states:-0}" -ge $((${commits:-0} * 10)) -a "${commits:-0}" -ge 5 ]
check "every remap acknowledged in the log" [ "$acked" = 96 ]
for n in cr1 cr2 cr3 cr4 cr5; do nullb_drop $n; done
