# SPDX-License-Identifier: GPL-2.0
# Failure paths, each a defect once found by review: nothing waits forever
# after a commit fails, no bio held for a switching block is lost, a commit
# whose outcome is unknown fences the blocks it touched, suspend and resume
# work with metadata_failed, messages wait for a resumed table, two targets
# cannot share a spare area, the allocator takes back spares after a load,
# the spare-area limit is enforced, the pending count does not drift,
# `remap` retries unreadable blocks, foreign metadata is named as such, a
# dead data device keeps its spares, a block remapped by a message while
# its failed write waits for relocation keeps its healthy spare.
#
# A step that may hang runs in the background and is given a bound; a
# section whose step hung leaves its devices in place instead of blocking
# the run on them.

modprobe dm-dust

# --- 1, 3, 6: concurrent remaps while every commit fails ------------------
a=$(nullb_make fp1 16 512)
b=$(nullb_make fp2 4 512)
dmsetup create fpdust --table "0 8192 dust $b 0 4096"
fptable="0 32768 remap $a 0 /dev/mapper/fpdust 0 8192 2 block_size 4096"
check "commit fails: create" dmsetup create fp --table "$fptable"
dd if=/dev/urandom of=/dev/mapper/fp bs=1M count=16 oflag=direct 2>/dev/null
dust_super fpdust
hung=0
for i in 1 2 3 4 5 6; do
	(dmsetup message fp 0 remap $((i * 800)) >/dev/null 2>&1; echo $? >/tmp/rc.remap$i) &
done
if ended 6 remap 20; then
	pass "commit fails: 6 concurrent remaps all end"
	check "commit fails: every remap is refused" sh -c "! grep -qx 0 /tmp/rc.remap*"
else
	fail "commit fails: 6 concurrent remaps all end" "$((6 - $(ls /tmp/rc.remap* 2>/dev/null | wc -l))) still waiting after 20 s: hung"
	hung=1
fi
rm -f /tmp/rc.remap*
check "commit fails: status says metadata_failed" sh -c "dmsetup status fp | grep -q ' metadata_failed '"
# 3: the failed commit may be on disk: the blocks it touched take no write
# until the table is loaded again; the others do.
# The first commit issued superblock writes before it failed: its remaps
# are fenced. Remaps that waited for a later commit were never written:
# rolled back, and writable.
fb=none
if [ $hung = 0 ]; then
	dmsetup message fp 0 list >/tmp/fp-list
	nf=$(grep -c ' fenced$' /tmp/fp-list)
	fb=$(head -n 1 /tmp/fp-list | cut -d' ' -f1)
	check "unknown commit outcome: the remaps of the failed commit are fenced, the rest rolled back" \
		sh -c "[ $nf -ge 1 ] && [ \$(wc -l </tmp/fp-list) = $nf ]"
	check "unknown commit outcome: a write to a fenced block fails" sh -c \
		"[ -n '$fb' ] && ! dd if=/dev/zero of=/dev/mapper/fp bs=4096 seek=$fb count=1 oflag=direct conv=notrunc 2>/dev/null"
	check "unknown commit outcome: the write was counted as fenced" [ "$(stat_of fp fenced_bios)" = 1 ]
	check "unknown commit outcome: status counts fenced blocks" [ "$(stat_of fp fenced_blocks)" = "$nf" ]
	check "unknown commit outcome: lookup says fenced" sh -c "dmsetup message fp 0 lookup $((fb * 8)) | grep -q fenced"
	check "unknown commit outcome: a fenced block still reads" \
		dd if=/dev/mapper/fp of=/dev/null bs=4096 skip=$fb count=1 iflag=direct
	check "unknown commit outcome: writes elsewhere pass" write_read /dev/mapper/fp 7
else
	# The blocks of hung remaps hold every bio: nothing more to try here.
	fail "unknown commit outcome: fenced blocks" "not run: the remaps hung"
fi
# 6: suspend and resume work in the metadata_failed state.
if [ $hung = 0 ] && bounded 10 "metadata_failed: suspend" dmsetup suspend fp; then
	check "metadata_failed: suspend succeeds" [ "$(rc_of 'metadata_failed: suspend')" = 0 ]
	bounded 10 "metadata_failed: resume" dmsetup resume fp
	check "metadata_failed: resume succeeds" [ "$(rc_of 'metadata_failed: resume')" = 0 ]
	check "metadata_failed: the device is active" sh -c "dmsetup info fp | grep -q 'State:.*ACTIVE'"
	bounded 10 "metadata_failed: a read after resume" dd if=/dev/mapper/fp of=/dev/null bs=4096 count=1 iflag=direct
	check "metadata_failed: the read after resume succeeds" [ "$(rc_of 'metadata_failed: a read after resume')" = 0 ]
	message_refused fp "metadata_failed: remaps still refused after resume, for that reason" \
		"metadata writes failed: reload the table to try again" remap 8
fi
if [ $hung = 0 ] && bounded 10 "commit fails: remove" dmsetup remove fp; then
	dust_heal fpdust
	check "commit fails: re-create loads the last good commit" dmsetup create fp --table "$fptable"
	check "commit fails: the fenced block takes writes again" \
		dd if=/dev/zero of=/dev/mapper/fp bs=4096 seek=$fb count=1 oflag=direct conv=notrunc
	dmsetup remove fp
	dmsetup remove fpdust
	nullb_drop fp1
	nullb_drop fp2
fi

# --- 2: writes held for a pending block whose relocation fails -------------
c=$(nullb_make fq1 16 512)
d=$(nullb_make fq2 4 512)
dmsetup create fqdata --table "0 32768 dust $c 0 4096"
dmsetup create fqdust --table "0 8192 dust $d 0 4096"
check "held writes: create" dmsetup create fq --table "0 32768 remap /dev/mapper/fqdata 0 /dev/mapper/fqdust 0 8192 2 block_size 4096"
dmsetup message fqdata 0 addbadblock 300 >/dev/null
dmsetup message fqdata 0 enable >/dev/null
dd if=/dev/mapper/fq of=/dev/null bs=4096 skip=300 count=1 iflag=direct 2>/dev/null
check "held writes: block 300 is pending" sh -c "dmsetup message fq 0 lookup $((300 * 8)) | grep -q pending"
dust_super fqdust
hung=0
for i in 1 2 3 4 5 6 7 8; do
	(dd if=/dev/urandom of=/dev/mapper/fq bs=4096 seek=300 count=1 oflag=direct conv=notrunc 2>/dev/null
		echo $? >/tmp/rc.w$i) &
done
if ended 8 w 20; then
	pass "held writes: 8 concurrent writes to a pending block all end"
	check "held writes: none is acknowledged (the relocation's commit failed)" sh -c "! grep -qx 0 /tmp/rc.w*"
else
	fail "held writes: 8 concurrent writes to a pending block all end" "$((8 - $(ls /tmp/rc.w* 2>/dev/null | wc -l))) still waiting after 20 s: hung"
	hung=1
fi
rm -f /tmp/rc.w*
if [ $hung = 0 ] && bounded 10 "held writes: remove" dmsetup remove fq; then
	dmsetup remove fqdata
	dmsetup remove fqdust
	nullb_drop fq1
	nullb_drop fq2
fi

# --- 4: messages reach a table only once it has been resumed ---------------
e=$(nullb_make fr1 16 512)
f=$(nullb_make fr2 4 512)
frtable="0 32768 remap $e 0 $f 0 8192 2 block_size 4096"
check "not resumed: create" dmsetup create fr --table "$frtable"
check "not resumed: reload" dmsetup reload fr --table "$frtable"
# Every superblock damaged: the new table cannot load again in preresume,
# the device stays suspended with the new table live.
for blk in 0 254 509 764 1019; do
	printf 'garbage!' | dd of=$f bs=1 seek=$((blk * 4096 + 200)) conv=notrunc 2>/dev/null
done
sync
echo 3 >/proc/sys/vm/drop_caches
check "not resumed: resume fails" sh -c "! dmsetup resume fr 2>/dev/null"
message_refused fr "not resumed: remap refused" "the table has not been resumed" remap 800
message_refused fr "not resumed: unremap refused" "the table has not been resumed" unremap 800
check "not resumed: lookup still answers" sh -c "dmsetup message fr 0 lookup 800 | grep -q 'not remapped'"
dmsetup remove fr
nullb_drop fr1
nullb_drop fr2

# --- 5: two targets of one table over one spare area -----------------------
g=$(nullb_make fs1 16 512)
h=$(nullb_make fs2 16 512)
k=$(nullb_make fs3 4 512)
dmesg -c >/dev/null
if printf '0 32768 remap %s 0 %s 0 8192\n32768 32768 remap %s 0 %s 0 8192\n' $g $k $h $k |
	dmsetup create fs 2>/dev/null; then
	fail "two targets of one table sharing a spare area are refused" "created"
	dmsetup remove fs
else
	check "two targets of one table sharing a spare area are refused" sh -c \
		"dmesg | grep -q 'remap: Spare area is used by another target of this table'"
fi
# Whatever a refused table may have written there goes first.
dd if=/dev/zero of=$k bs=1M count=4 oflag=direct 2>/dev/null
check "two targets with spare areas of their own are accepted" sh -c \
	"printf '0 32768 remap %s 0 %s 0 4096\n32768 32768 remap %s 0 %s 4096 4096\n' $g $k $h $k | dmsetup create fs"
dmsetup remove fs
nullb_drop fs1
nullb_drop fs2
nullb_drop fs3

# --- 7: spares freed after a load go back to the allocator -----------------
m=$(nullb_make ft1 16 512)
n=$(nullb_make ft2 4 512)
fttable="0 32768 remap $m 0 $n 0 8192 2 block_size 4096"
dmsetup create ft --table "$fttable"
for i in 1 2 3 4 5 6 7 8 9 10; do dmsetup message ft 0 remap $((i * 80)) >/dev/null; done
dmsetup remove ft
dmsetup create ft --table "$fttable"
check "after a load: unremap" dmsetup message ft 0 unremap 800
check "after a load: the spare is free again (9 used)" sh -c "dmsetup message ft 0 stats | grep -q 'spares_used=9 '"
check "after a load: the freed spare is used again" sh -c "dmsetup message ft 0 remap 8000 && dmsetup message ft 0 stats | grep -q 'spares_used=10 '"
dmsetup remove ft
dmsetup create ft --table "$fttable"
check "after a load: 10 remaps persist" sh -c "[ \$(dmsetup message ft 0 list | wc -l) = 10 ]"
dmsetup remove ft

# --- 13: another geometry's metadata is named as such ----------------------
dmesg -c >/dev/null
if dmsetup create ft --table "0 32768 remap $m 0 $n 0 8192" 2>/dev/null; then
	fail "metadata of another block size: refused" "created"
	dmsetup remove ft
else
	check "metadata of another block size: named as another table line's" sh -c \
		"dmesg | grep -q 'holds the metadata of another table line' && dmesg | grep -q 'block size 4096'"
fi
nullb_drop ft1
nullb_drop ft2

# --- 8: the largest spare area the target can hold --------------------------
# A metadata copy must fit in 1 GiB (the image and a copy's rewrite are one
# allocation each): 2^27 spare blocks of 512 bytes (a 64 GiB area, copies
# of 1.2 GB) are refused with the limit named, before any allocation (no
# kvmalloc warning); 2^29, the table's own limit, too.
modprobe dm-zero
p=$(nullb_make fu1 16 512)
dmsetup create fuzero --table "0 536870912 zero"
refused "a spare area whose metadata copy passes 1 GiB is refused" "Spare area too large: a metadata copy must fit in 1 GiB" \
	"0 32768 remap $p 0 /dev/mapper/fuzero 0 134217728"
refused "a spare area of 2^29 blocks is refused" "Spare area too large: a metadata copy must fit in 1 GiB" \
	"0 32768 remap $p 0 /dev/mapper/fuzero 0 536870912"
dmsetup remove fuzero
nullb_drop fu1

# --- 9: pending count after many reads of one pending block that reads -----
# The spare device answers each I/O after 100 ms, so the worker is busy
# with a relocation's commit while 8 reads of a pending block that reads
# again complete: they reach the worker as one group.
q=$(nullb_make fv1 16 512)
r=$(NULLB_ATTRS="irqmode=2 completion_nsec=100000000" nullb_make fv2 4 512)
dmsetup create fvdata --table "0 32768 dust $q 0 4096"
dmsetup create fv --table "0 32768 remap /dev/mapper/fvdata 0 $r 0 8192 2 block_size 4096"
dmsetup message fvdata 0 addbadblock 500 >/dev/null
dmsetup message fvdata 0 addbadblock 600 >/dev/null
dmsetup message fvdata 0 addbadblock 800 2 >/dev/null
dmsetup message fvdata 0 enable >/dev/null
dd if=/dev/mapper/fv of=/dev/null bs=4096 skip=500 count=1 iflag=direct 2>/dev/null
dd if=/dev/mapper/fv of=/dev/null bs=4096 skip=600 count=1 iflag=direct 2>/dev/null
check "pending count: 2 pending blocks" [ "$(stat_of fv pending_blocks)" = 2 ]
dmsetup message fvdata 0 removebadblock 500 >/dev/null
(dd if=/dev/urandom of=/dev/mapper/fv bs=4096 seek=800 count=1 oflag=direct conv=notrunc 2>/dev/null
	echo $? >/tmp/rc.pw) &
sleep 0.5
for i in 1 2 3 4 5 6 7 8; do
	(dd if=/dev/mapper/fv of=/dev/null bs=4096 skip=500 count=1 iflag=direct 2>/dev/null
		echo $? >/tmp/rc.pr$i) &
done
check "pending count: the write and the 8 reads end" ended 9 p 30
rm -f /tmp/rc.p*
check "pending count: the failed write was relocated" sh -c "dmsetup message fv 0 lookup $((800 * 8)) | grep -q remapped"
check "pending count: block 500 read after all is no longer pending" sh -c \
	"dmsetup message fv 0 lookup $((500 * 8)) | grep -q 'not remapped'"
check "pending count: status agrees with the list (1 pending)" sh -c \
	"[ \$(dmsetup message fv 0 list | grep -c pending) = 1 ] && dmsetup message fv 0 stats | grep -q 'pending_blocks=1 '"
dmsetup remove fv

# --- 11: remap retries an unreadable block read_retries times --------------
# A linear device between the target and dust counts the reads (dm-stats;
# dust fails them in its map, before its own accounting).
dmsetup message fvdata 0 addbadblock 700 >/dev/null
dmsetup create fvcount --table "0 32768 linear /dev/mapper/fvdata 0"
dmsetup create fv --table "0 32768 remap /dev/mapper/fvcount 0 $r 0 8192 4 block_size 4096 read_retries 3"
dmsetup message fvcount 0 @stats_create $((700 * 8))+8 /1 >/dev/null
check "remap retries: remap of an unreadable block" sh -c "dmsetup message fv 0 remap $((700 * 8)) | grep -q 'data unreadable: lost'"
dmsetup message fvcount 0 @stats_print 0 >/tmp/stats-p
# The first read and 3 retries.
check "remap retries: the data device saw 4 reads of it" sh -c \
	"[ \"\$(cut -d' ' -f2 /tmp/stats-p)\" = 4 ] || { cat /tmp/stats-p; false; }"
dmsetup message fvcount 0 @stats_delete 0 >/dev/null
# A failed read is retried read_retries times by the worker too.
dmsetup message fvdata 0 addbadblock 701 >/dev/null
dmsetup message fvcount 0 @stats_create $((701 * 8))+8 /1 >/dev/null
check "read retries: a read of an unreadable block fails" sh -c \
	"! dd if=/dev/mapper/fv of=/dev/null bs=4096 skip=701 count=1 iflag=direct 2>/dev/null"
dmsetup message fvcount 0 @stats_print 0 >/tmp/stats-p
check "read retries: the data device saw the read and 3 retries" sh -c \
	"[ \"\$(cut -d' ' -f2 /tmp/stats-p)\" = 4 ] || { cat /tmp/stats-p; false; }"
check "read retries: the block is pending" sh -c "dmsetup message fv 0 lookup $((701 * 8)) | grep -q pending"
dmsetup message fvcount 0 @stats_delete 0 >/dev/null
dmsetup remove fv
dmsetup remove fvcount
dmsetup remove fvdata
nullb_drop fv1
nullb_drop fv2

# --- 10: a dead data device is not a disk full of bad blocks ---------------
# The data device is a linear device whose table is swapped for the error
# target (a cable pulled), then back (the cable reseated).
s1=$(nullb_make fw1 16 512)
s2=$(nullb_make fw2 4 512)
dmsetup create fwdata --table "0 32768 linear $s1 0"
check "dead device: create" dmsetup create fw --table "0 32768 remap /dev/mapper/fwdata 0 $s2 0 8192 2 block_size 4096"
dmsetup suspend fwdata
dmsetup reload fwdata --table "0 32768 error"
dmsetup resume fwdata
nw=0
for i in $(seq 1 64); do
	dd if=/dev/urandom of=/dev/mapper/fw bs=4096 seek=$((i * 60)) count=1 oflag=direct conv=notrunc 2>/dev/null || nw=$((nw + 1))
done
nr=0
for i in $(seq 1 16); do
	dd if=/dev/mapper/fw of=/dev/null bs=4096 skip=$((i * 60 + 7)) count=1 iflag=direct 2>/dev/null || nr=$((nr + 1))
done
check "dead device: the 64 writes and 16 reads fail" [ "$nw/$nr" = 64/16 ]
check "dead device: no spare used, no block pending" sh -c \
	"dmsetup message fw 0 stats | grep -q 'pending_blocks=0 fenced_blocks=0 lost_blocks=0 spares_used=0 '"
check "dead device: nothing listed" sh -c "[ -z \"\$(dmsetup message fw 0 list)\" ]"
check "dead device: status says data_device_down" sh -c "dmsetup status fw | grep -q ' data_device_down '"
dmsetup suspend fwdata
dmsetup reload fwdata --table "0 32768 linear $s1 0"
dmsetup resume fwdata
check "dead device back: writes and reads work" write_read /dev/mapper/fw 3
check "dead device back: status says ok" sh -c "dmsetup status fw | grep -q ' ok '"
check "dead device back: still nothing remapped" sh -c "[ -z \"\$(dmsetup message fw 0 list)\" ]"
dmsetup remove fw
dmsetup remove fwdata
nullb_drop fw1
nullb_drop fw2

# --- a suspend while a commit rewrites a stale copy ------------------------
# Review finding: presuspend's sync, started while a whole-copy rewrite is
# in flight, waited for a commit that nothing needed any more. A block of
# copy 2 fails one write, so a remap's commit misses copy 2 and the next
# commit rewrites it whole; the spare device answers each I/O after 100 ms,
# and is itself suspended while that rewrite is in flight, so that the
# target's suspend certainly finds it in flight.
u1=$(nullb_make fx1 16 512)
u2=$(NULLB_ATTRS="irqmode=2 completion_nsec=100000000" nullb_make fx2 4 512)
dmsetup create fxdust --table "0 8192 dust $u2 0 4096"
dmsetup message fxdust 0 enable >/dev/null
check "stale copy: create" dmsetup create fx --table "0 32768 remap $u1 0 /dev/mapper/fxdust 0 8192 2 block_size 4096"
dmsetup message fxdust 0 addbadblock 510 1 >/dev/null
check "stale copy: a remap whose commit misses copy 2" dmsetup message fx 0 remap 800
check "stale copy: fewer than 5 copies hold it" sh -c "dmsetup status fx | grep -qE ' [1-4]/5 '"
hung=0
# dm-stats counts the writes the spare device completes.
dmsetup message fxdust 0 @stats_create - /1 >/dev/null
fx_writes() { dmsetup message fxdust 0 @stats_print 0 | cut -d' ' -f6; }
base=$(fx_writes)
# One remap: its commit rewrites the stale copies and leaves nothing dirty.
rm -f /tmp/rc.sx1
(dmsetup message fx 0 remap 1600 >/dev/null 2>&1; echo $? >/tmp/rc.sx1) &
# Once the spare's data and a first block of the commit are written, the
# commit is in flight (it writes at least 6 batches, 100 ms each).
i=0
while [ $i -lt 200 ] && [ "$(fx_writes)" -lt $((base + 2)) ]; do
	sleep 0.02
	i=$((i + 1))
done
inflight=$(fx_writes)
echo "stale copy: the spare device completed $base writes before the remap, $inflight when it is suspended"
check "stale copy: the commit was in flight when the spare device was suspended (writes began, the remap not answered)" \
	sh -c "[ $inflight -ge $((base + 2)) ] && [ ! -e /tmp/rc.sx1 ]"
dmsetup suspend fxdust
(dmsetup suspend fx >/dev/null 2>&1; echo $? >/tmp/rc.sxs) &
sleep 1
dmsetup resume fxdust
if ended 1 sxs 20; then
	pass "stale copy: suspend during the rewrite ends"
else
	fail "stale copy: suspend during the rewrite ends" "still running after 20 s: hung"
	hung=1
fi
check "stale copy: the remap ends" ended 1 sx1 30
rm -f /tmp/rc.sx*
if [ $hung = 0 ]; then
	check "stale copy: resume" dmsetup resume fx
	check "stale copy: 5 of 5 copies" sh -c "dmsetup status fx | grep -q ' 5/5 '"
	dmsetup message fxdust 0 @stats_delete 0 >/dev/null
	dmsetup remove fx
	dmsetup remove fxdust
	nullb_drop fx1
	nullb_drop fx2
fi

# --- a reload whose second load fails halfway ------------------------------
# Review finding: preresume's load cleared the table and stopped partway,
# leaving the constructor's pending count above the table's entries;
# status then underflowed. The metadata is replaced between reload and
# resume by one that maps a data block to two spares.
v1=$(nullb_make fy1 16 512)
v2=$(nullb_make fy2 4 512)
dmsetup create fydata --table "0 32768 dust $v1 0 4096"
fytable="0 32768 remap /dev/mapper/fydata 0 $v2 0 8192 2 block_size 4096"
check "half load: create" dmsetup create fy --table "$fytable"
dmsetup message fydata 0 addbadblock 100 >/dev/null
dmsetup message fydata 0 addbadblock 200 >/dev/null
dmsetup message fydata 0 enable >/dev/null
dd if=/dev/mapper/fy of=/dev/null bs=4096 skip=100 count=1 iflag=direct 2>/dev/null
dd if=/dev/mapper/fy of=/dev/null bs=4096 skip=200 count=1 iflag=direct 2>/dev/null
check "half load: 2 pending blocks" [ "$(stat_of fy pending_blocks)" = 2 ]
check "half load: reload" dmsetup reload fy --table "$fytable"
# The table holds the spare device, so remapctl (O_EXCL) refuses it: the
# metadata is made in a file and copied under the table.
truncate -s 4M /tmp/v2.img
check "half load: metadata mapping block 0 to two spares, written by remapctl restore to a file" meta_restore /tmp/v2.img 0 32768 0 8192 4096 2 0
check "half load: copied onto the spare device under the table" dd if=/tmp/v2.img of=$v2 bs=1M oflag=direct conv=notrunc
dmesg -c >/dev/null
check "half load: resume refused" sh -c "! dmsetup resume fy 2>/dev/null"
check "half load: the reason is logged" sh -c "dmesg | grep -q 'Metadata maps a data block to two spares'"
if bounded 10 "half load: status" dmsetup status fy; then
	check "half load: status answers" [ "$(rc_of 'half load: status')" = 0 ]
	bounded 10 "half load: stats" sh -c "dmsetup message fy 0 stats | grep -q 'pending_blocks=0 '" &&
		check "half load: stats answer, no pending block counted" [ "$(rc_of 'half load: stats')" = 0 ] &&
		bounded 10 "half load: remove" dmsetup remove fy && {
		dmsetup remove fydata
		nullb_drop fy1
		nullb_drop fy2
	}
fi

# --- a remap message between a failed write and its relocation -------------
# Review finding: a write fails on the data block and is kept; before the
# worker claims a spare for it, a `remap` message moves the block to a
# healthy spare. The worker took the new remap for a failed spare, retired
# it and relocated again. Block 100 of the data device fails writes (flakey
# error_writes) and reads fine; the rest answers after 1.5 s, so the
# worker's probe of the data device holds the relocation while the message
# runs.
modprobe dm-flakey
z1=$(NULLB_ATTRS="irqmode=2 completion_nsec=1500000000" nullb_make fz1 16 512)
z2=$(nullb_make fz2 16 512)
z3=$(nullb_make fz3 4 512)
dmsetup create fzbad --table "0 8 flakey $z2 800 0 1000 1 error_writes"
printf '0 800 linear %s 0\n800 8 linear /dev/mapper/fzbad 0\n808 31960 linear %s 808\n' "$z1" "$z1" |
	dmsetup create fzdata
check "remap meets relocation: create" dmsetup create fz --table "0 32768 remap /dev/mapper/fzdata 0 $z3 0 8192 2 block_size 4096"
head -c 4096 /dev/urandom >/tmp/fz.blk
(dd if=/tmp/fz.blk of=/dev/mapper/fz bs=4096 seek=100 count=1 oflag=direct conv=notrunc 2>/dev/null
	echo $? >/tmp/rc.fzw) &
sleep 0.5
check "remap meets relocation: the remap message succeeds" dmsetup message fz 0 remap 800
if ended 1 fzw 20; then
	check "remap meets relocation: the failed write is acknowledged" [ "$(rc_of fzw)" = 0 ]
	check "remap meets relocation: no spare retired, no spare write error counted" sh -c \
		"dmsetup message fz 0 stats | grep -q 'spare_write_errors=0 .*spares_retired=0 '"
	check "remap meets relocation: one block listed" [ "$(dmsetup message fz 0 list | wc -l)" = 1 ]
	check "remap meets relocation: the block holds the write" sh -c \
		"dd if=/dev/mapper/fz bs=4096 skip=100 count=1 iflag=direct 2>/dev/null | cmp -s - /tmp/fz.blk"
	dmsetup remove fz
	dmsetup remove fzdata
	dmsetup remove fzbad
	nullb_drop fz1
	nullb_drop fz2
	nullb_drop fz3
else
	fail "remap meets relocation: the failed write ends" "still waiting after 20 s: hung"
fi
rm -f /tmp/rc.fzw /tmp/fz.blk

# --- lost data stays lost when fenced -------------------------------------
# A `remap` of an unreadable block records its data lost; when that commit
# may be on disk the block is fenced, and a load may find it lost: reads
# must fail even once the data block reads again (it holds older data,
# which is not the block's).
e1=$(nullb_make fl1 16 512)
e2=$(nullb_make fl2 4 512)
dmsetup create fldata --table "0 32768 dust $e1 0 4096"
dmsetup create fldust --table "0 8192 dust $e2 0 4096"
check "fenced lost: create" dmsetup create fl --table "0 32768 remap /dev/mapper/fldata 0 /dev/mapper/fldust 0 8192 2 block_size 4096"
dd if=/dev/urandom of=/dev/mapper/fl bs=1M count=16 oflag=direct 2>/dev/null
dmsetup message fldata 0 addbadblock 300 >/dev/null
dmsetup message fldata 0 enable >/dev/null
dust_super fldust
dmesg -c >/dev/null
if bounded 20 "fenced lost: remap of the unreadable block" dmsetup message fl 0 remap $((300 * 8)); then
	check "fenced lost: the remap is refused because its commit failed" sh -c "[ \"\$(rc_of 'fenced lost: remap of the unreadable block')\" != 0 ] && dmesg | grep -q 'remap of block 300 failed: the metadata commit failed'"
	check "fenced lost: lookup says fenced with its data lost" sh -c "dmsetup message fl 0 lookup $((300 * 8)) | grep -q 'fenced: data lost, reads fail'"
	check "fenced lost: list says '300 fenced lost'" sh -c "dmsetup message fl 0 list | grep -qx '300 fenced lost'"
	check "fenced lost: status and stats count 1 lost block" [ "$(lost_of fl)" = "1 1" ]
	# The data block reads again, with its older content.
	dmsetup message fldata 0 disable >/dev/null
	check "fenced lost: the data block reads again underneath" dd if=/dev/mapper/fldata of=/dev/null bs=4096 skip=300 count=1 iflag=direct
	check "fenced lost: a read of the block fails, not its older data" sh -c "! dd if=/dev/mapper/fl of=/dev/null bs=4096 skip=300 count=1 iflag=direct 2>/dev/null"
	check "fenced lost: the read was failed by the target, not the device" sh -c "[ $(stat_of fl failed_bios) -ge 1 ] && [ $(stat_of fl read_errors) = 0 ]"
	dmsetup remove fl
	dmsetup remove fldust
	dmsetup remove fldata
	nullb_drop fl1
	nullb_drop fl2
fi
