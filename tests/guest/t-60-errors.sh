# SPDX-License-Identifier: GPL-2.0
# Automatic remapping on I/O errors, against real fault injectors: writes
# that fail on dm-dust and null_blk bad blocks are relocated and complete
# without error (fio verifies), and the remaps persist; reads that fail on
# scsi_debug medium errors and dm-dust bad blocks make blocks pending, a
# write heals them; transient errors are counted and not remapped; a
# failing spare is retired; spare exhaustion lets errors through and
# raises one table event; ext4 made and filled through failing writes
# checks clean.

modprobe dm-dust

# field DEV N: field N of the status line: 4 remapped, 6 read errors,
# 7 write errors, 8 state, 12 pending blocks.
field() { dmsetup status "$1" | cut -d' ' -f"$2"; }
# remapped_list DEV: the remapped blocks, one per line, in order.
remapped_list() { dmsetup message "$1" 0 list | grep -v pending | cut -d' ' -f1; }

# fio_verify NAME DEV [MORE FIO ARGS]: random 4 KiB writes over the first
# 32 MiB, 4 jobs at queue depth 16, every block verified by its crc32c.
fio_verify() {
	name=$1 fdev=$2
	shift 2
	check "$name" fio --name=v --filename="$fdev" --direct=1 --ioengine=libaio \
		--iodepth=16 --numjobs=4 --offset_increment=8m --size=8m --rw=randwrite --bs=4k \
		--verify=crc32c --verify_fatal=1 --randrepeat=1 --group_reporting "$@" \
		--output=/tmp/fio-err.out
}

# 1. dm-dust write failures. Every dust bad block fails its first two
# writes: the bio and the worker's retry. 80 of them, spread over the
# first 32 MiB, 4 KiB blocks; the spare area is on a clean device.
a=$(nullb_make er1 64 512)
b=$(nullb_make er2 16 512)
check "dust: create the dust device" dmsetup create erdust --table "0 131072 dust $a 0 4096"
dmsetup message erdust 0 quiet >/dev/null
: >/tmp/bad-dust
i=0
while [ $i -lt 80 ]; do
	blk=$(((i * 97 + 13) % 8192))
	dmsetup message erdust 0 addbadblock $blk 2 >/dev/null
	echo $blk >>/tmp/bad-dust
	i=$((i + 1))
done
sort -n /tmp/bad-dust >/tmp/bad-dust.sorted
dmsetup message erdust 0 enable >/dev/null
table="0 131072 remap /dev/mapper/erdust 0 $b 0 32768 2 block_size 4096"
check "dust: create remap" dmsetup create erd --table "$table"
fio_verify "dust: fio with 80 failing blocks sees no error and verifies" /dev/mapper/erd
check "dust: fio counted no I/O error" sh -c "grep -q 'err= 0' /tmp/fio-err.out"
check "dust: every failing block is remapped" sh -c "dmsetup message erd 0 list | cut -d' ' -f1 | cmp - /tmp/bad-dust.sorted"
we=$(field erd 7)
echo "dust: $we write errors seen below, $(stat_of erd auto_remaps) blocks relocated, $(stat_of erd commits) commits"
check "dust: write errors were seen below" [ "$we" -ge 80 ]
check "dust: 80 automatic remaps, no failed bio" sh -c "[ $(stat_of erd auto_remaps) = 80 ] && [ $(stat_of erd failed_bios) = 0 ]"
check "dust: relocations shared commits" [ "$(stat_of erd commits)" -lt 80 ]
check "dust: remove" dmsetup remove erd
check "dust: re-create" dmsetup create erd --table "$table"
check "dust: the remaps are persistent" sh -c "dmsetup message erd 0 list | cut -d' ' -f1 | cmp - /tmp/bad-dust.sorted"
fio_verify "dust: data verifies after re-create" /dev/mapper/erd --verify_only

# A transient error: the write fails once, the retry succeeds. Counted,
# not remapped.
dmsetup message erdust 0 addbadblock 9000 1 >/dev/null
dd if=/dev/urandom of=/tmp/t1 bs=4096 count=1 2>/dev/null
check "transient: the write succeeds" dd if=/tmp/t1 of=/dev/mapper/erd bs=4096 seek=9000 count=1 oflag=direct conv=notrunc
check "transient: counted" [ "$(stat_of erd transient_errors)" = 1 ]
check "transient: not remapped" sh -c "dmsetup message erd 0 lookup $((9000 * 8)) | grep -q 'not remapped'"
check "transient: the data is there" sh -c "dd if=/dev/mapper/erd bs=4096 skip=9000 count=1 iflag=direct 2>/dev/null | cmp - /tmp/t1"

# A read error on dm-dust: a bad block fails reads until written. The read
# fails (the data is gone), the block is pending; a read that works again
# clears it, and so does a write, which relocates it.
dmsetup message erdust 0 addbadblock 9100 >/dev/null
dmsetup message erdust 0 addbadblock 9200 >/dev/null
check "dust read: the read fails" sh -c "! dd if=/dev/mapper/erd of=/dev/null bs=4096 skip=9100 count=1 iflag=direct 2>/dev/null"
check "dust read: the block is pending" sh -c "dmsetup message erd 0 lookup $((9100 * 8)) | grep -q pending"
check "dust read: status counts 1 pending block" [ "$(field erd 12)" = 1 ]
check "dust read: list shows it" sh -c "dmsetup message erd 0 list | grep -qx '9100 pending'"
message_refused erd "dust read: a remap message is refused" "block 9100 is pending (unreadable): its next write relocates it" remap $((9100 * 8))
dmsetup message erdust 0 removebadblock 9100 >/dev/null
check "dust read: the read works again" dd if=/dev/mapper/erd of=/dev/null bs=4096 skip=9100 count=1 iflag=direct
check "dust read: which clears the pending state" sh -c "dmsetup message erd 0 lookup $((9100 * 8)) | grep -q 'not remapped'"
check "dust read: second block fails too" sh -c "! dd if=/dev/mapper/erd of=/dev/null bs=4096 skip=9200 count=1 iflag=direct 2>/dev/null"
check "dust read: pending survives remove and re-create" sh -c "dmsetup remove erd && dmsetup create erd --table '$table' && dmsetup message erd 0 lookup $((9200 * 8)) | grep -q pending"
# The write goes straight to a spare: dust, which heals a block on any
# write that reaches it, still holds it as bad.
dd if=/dev/urandom of=/tmp/t2 bs=4096 count=1 2>/dev/null
check "dust read: a write to the pending block succeeds" dd if=/tmp/t2 of=/dev/mapper/erd bs=4096 seek=9200 count=1 oflag=direct conv=notrunc
check "dust read: the write never reached the data device" sh -c "dmsetup message erdust 0 queryblock 9200 | grep -q 'block 9200 found in badblocklist'"
check "dust read: the block is relocated" sh -c "dmsetup message erd 0 lookup $((9200 * 8)) | grep -q 'remapped to spare'"
check "dust read: and reads back" sh -c "dd if=/dev/mapper/erd bs=4096 skip=9200 count=1 iflag=direct 2>/dev/null | cmp - /tmp/t2"
check "dust read: no pending block left" [ "$(field erd 12)" = 0 ]
check "dust: remove at the end" dmsetup remove erd
dmsetup remove erdust
nullb_drop er1
nullb_drop er2

# 2. null_blk bad blocks: reads and writes of 96 scattered 4 KiB blocks
# fail for good; fio from 4 jobs, many failing bios at once.
c=$(nullb_make er3 64 512)
e=$(nullb_make er4 16 512)
: >/tmp/bad-nb
i=0
while [ $i -lt 96 ]; do
	blk=$(((i * 331 + 7) % 8192))
	echo "+$((blk * 8))-$((blk * 8 + 7))" >/sys/kernel/config/nullb/er3/badblocks
	echo $blk >>/tmp/bad-nb
	i=$((i + 1))
done
sort -n /tmp/bad-nb >/tmp/bad-nb.sorted
table="0 131072 remap $c 0 $e 0 32768 2 block_size 4096"
check "null_blk: create remap" dmsetup create ern --table "$table"
fio_verify "null_blk: fio with 96 failing blocks sees no error and verifies" /dev/mapper/ern
check "null_blk: fio counted no I/O error" sh -c "grep -q 'err= 0' /tmp/fio-err.out"
remapped_list ern >/tmp/list-nb
check "null_blk: every failing block is remapped, once" cmp /tmp/list-nb /tmp/bad-nb.sorted
check "null_blk: 96 spares used, no failed bio" sh -c "[ $(stat_of ern spares_used) = 96 ] && [ $(stat_of ern failed_bios) = 0 ]"
echo "null_blk: $(field ern 7) write errors seen below, $(stat_of ern auto_remaps) relocated in $(stat_of ern commits) commits"
# The format's commit, then relocations gathered into shared commits.
check "null_blk: fewer commits than relocations" [ "$(stat_of ern commits)" -lt "$(stat_of ern auto_remaps)" ]
check "null_blk: remove" dmsetup remove ern
check "null_blk: re-create" dmsetup create ern --table "$table"
remapped_list ern >/tmp/list-nb
check "null_blk: the remaps are persistent" cmp /tmp/list-nb /tmp/bad-nb.sorted
fio_verify "null_blk: data verifies after re-create" /dev/mapper/ern --verify_only

# Eight writers on one failing block at once: all succeed, one spare.
echo "+$((12000 * 8))-$((12000 * 8 + 7))" >/sys/kernel/config/nullb/er3/badblocks
used=$(stat_of ern spares_used)
dd if=/dev/urandom of=/tmp/same bs=4096 count=1 2>/dev/null
: >/tmp/same.rc
for k in 1 2 3 4 5 6 7 8; do
	(dd if=/tmp/same of=/dev/mapper/ern bs=4096 seek=12000 count=1 oflag=direct conv=notrunc 2>/dev/null; echo $? >>/tmp/same.rc) &
done
wait
check "same block: all 8 writes succeed" sh -c "[ \$(grep -c '^0$' /tmp/same.rc) = 8 ]"
check "same block: remapped once" [ "$(stat_of ern spares_used)" = $((used + 1)) ]
check "same block: reads back" sh -c "dd if=/dev/mapper/ern bs=4096 skip=12000 count=1 iflag=direct 2>/dev/null | cmp - /tmp/same"
check "null_blk: remove at the end" dmsetup remove ern

# 3. A failing spare is retired and the block relocated again, persisted.
# 4 KiB blocks (page-sized: no read-modify-write of a bad page): 1024
# spare blocks, 5 blocks per metadata copy (3 of spare slots, 1 of
# pending slots, a superblock), so the first spare handed out is 5.
j=$(nullb_make er8 16 512)
k=$(nullb_make er9 16 512)
dmsetup create erdd --table "0 32768 dust $j 0 4096"
dmsetup create erds --table "0 32768 dust $k 0 4096"
dmsetup message erdd 0 quiet >/dev/null
dmsetup message erds 0 quiet >/dev/null
dmsetup message erdd 0 addbadblock 5 2 >/dev/null
dmsetup message erds 0 addbadblock 5 9 >/dev/null
dmsetup message erdd 0 enable >/dev/null
dmsetup message erds 0 enable >/dev/null
table="0 16384 remap /dev/mapper/erdd 0 /dev/mapper/erds 0 8192 2 block_size 4096"
check "spare failure: create" dmsetup create erf --table "$table"
dd if=/dev/urandom of=/tmp/t3 bs=4096 count=1 2>/dev/null
check "spare failure: the write succeeds" dd if=/tmp/t3 of=/dev/mapper/erf bs=4096 seek=5 count=1 oflag=direct conv=notrunc
check "spare failure: block on the next spare" sh -c "dmsetup message erf 0 lookup 40 | grep -q 'to spare block 6 '"
check "spare failure: spare retired" sh -c "dmsetup message erf 0 stats | grep -q 'spares_used=1 spares_free=[0-9]* spares_retired=1'"
check "spare failure: remove and re-create" sh -c "dmsetup remove erf && dmsetup create erf --table '$table'"
check "spare failure: retirement persisted" sh -c "dmsetup message erf 0 stats | grep -q 'spares_used=1 spares_free=[0-9]* spares_retired=1'"
check "spare failure: data reads back" sh -c "dd if=/dev/mapper/erf bs=4096 skip=5 count=1 iflag=direct 2>/dev/null | cmp - /tmp/t3"
# A write error on the spare that holds a block: the block moves on and
# the old spare is retired.
dmsetup message erds 0 addbadblock 6 9 >/dev/null
check "failing spare in use: the write succeeds" dd if=/tmp/t3 of=/dev/mapper/erf bs=4096 seek=5 count=1 oflag=direct conv=notrunc
check "failing spare in use: block moved on" sh -c "dmsetup message erf 0 lookup 40 | grep -q 'to spare block 7 '"
check "failing spare in use: 2 spares retired" sh -c "dmsetup message erf 0 stats | grep -q 'spares_used=1 spares_free=[0-9]* spares_retired=2'"
# A read error on the spare that holds a block: the read fails (its data
# is nowhere else), the block keeps its spare and is not made pending;
# once the spare reads again, so does the block.
dmsetup message erds 0 addbadblock 7 >/dev/null
check "spare read fails: the read of the block fails" sh -c "! dd if=/dev/mapper/erf of=/dev/null bs=4096 skip=5 count=1 iflag=direct 2>/dev/null"
check "spare read fails: counted as a read error, the block keeps its spare, not pending" sh -c \
	"[ \$(dmsetup message erf 0 stats | tr ' ' '\n' | sed -n 's/^read_errors=//p') -ge 1 ] && dmsetup message erf 0 lookup 40 | grep -q 'to spare block 7 ' && [ \$(dmsetup status erf | cut -d' ' -f12) = 0 ]"
dmsetup message erds 0 removebadblock 7 >/dev/null
check "spare read fails: the spare reads again, and so does the block" sh -c "dd if=/dev/mapper/erf bs=4096 skip=5 count=1 iflag=direct 2>/dev/null | cmp - /tmp/t3"
check "spare failure: remove at the end" dmsetup remove erf
dmsetup remove erdd
dmsetup remove erds
nullb_drop er8
nullb_drop er9

# 4. Spare exhaustion: 5 spares, 8 failing blocks. The first 5 writes are
# relocated, the rest fail with the error; status says so and one table
# event wakes "dmsetup wait".
nullb_drop er4
f=$(nullb_make er5 16 512)
i=0
while [ $i -lt 8 ]; do
	echo "+$(((3000 + i) * 8))-$(((3000 + i) * 8 + 7))" >/sys/kernel/config/nullb/er3/badblocks
	i=$((i + 1))
done
dmesg -c >/dev/null
check "exhaustion: create with 5 spares" dmsetup create erx --table "0 65536 remap $c 0 $f 0 160 2 block_size 4096"
events=$(dmsetup info -c --noheadings -o events erx | tr -d ' ')
dmsetup wait erx "$events" >/tmp/wait.out 2>&1 &
waiter=$!
ok=0
i=0
while [ $i -lt 8 ]; do
	dd if=/dev/urandom of=/dev/mapper/erx bs=4096 seek=$((3000 + i)) count=1 oflag=direct conv=notrunc 2>/dev/null && ok=$((ok + 1))
	i=$((i + 1))
done
check "exhaustion: 5 writes relocated, 3 failed" [ $ok = 5 ]
check "exhaustion: status says spares_exhausted" sh -c "dmsetup status erx | grep -q spares_exhausted"
check "exhaustion: failed bios counted" [ "$(stat_of erx failed_bios)" = 3 ]
i=0
while kill -0 $waiter 2>/dev/null && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
if kill -0 $waiter 2>/dev/null; then
	kill $waiter
	fail "exhaustion: dmsetup wait returns (every relocation raises a table event)" "no table event"
else
	pass "exhaustion: dmsetup wait returns (every relocation raises a table event)"
fi
# Every relocation raises an event too (for monitors): the kernel log
# says how often exhaustion was reported.
check "exhaustion: reported once" [ "$(dmesg | grep -c 'no free spare block left')" = 1 ]
check "exhaustion: remove" dmsetup remove erx
nullb_drop er5

# A lost block when the spares have run out: its write takes the
# zero-filled spare the block owns (else it could never be written again).
# 5 spares: block 100, unreadable (dm-dust), remapped lost, then 4 more.
h=$(nullb_make er7 16 512)
k=$(nullb_make er8 16 512)
dmsetup create erldust --table "0 32768 dust $h 0 4096"
dmsetup message erldust 0 addbadblock 100 >/dev/null
dmsetup message erldust 0 enable >/dev/null
erltable="0 32768 remap /dev/mapper/erldust 0 $k 0 160 2 block_size 4096"
check "lost at exhaustion: create with 5 spares" dmsetup create erl --table "$erltable"
dmsetup message erl 0 remap 800 >/dev/null
for b in 1 2 3 4; do dmsetup message erl 0 remap $((b * 8)) >/dev/null; done
check "lost at exhaustion: block 100 lost, the spares exhausted" \
	sh -c "dmsetup message erl 0 list | grep -qx '100 [0-9]* lost' && dmsetup status erl | grep -q spares_exhausted && [ '$(lost_of erl)' = '1 1' ]"
spare=$(dmsetup message erl 0 list | sed -n 's/^100 \([0-9]*\) lost$/\1/p')
dd if=/dev/urandom of=/tmp/erl-100 bs=4096 count=1 2>/dev/null
check "lost at exhaustion: a write to it is acknowledged" \
	dd if=/tmp/erl-100 of=/dev/mapper/erl bs=4096 seek=100 count=1 oflag=direct conv=notrunc
check "lost at exhaustion: on its own spare, no longer lost, and it reads back" \
	sh -c "dmsetup message erl 0 list | grep -qx '100 $spare' && [ '$(lost_of erl)' = '0 0' ] && dd if=/dev/mapper/erl bs=4096 skip=100 count=1 iflag=direct 2>/dev/null | cmp - /tmp/erl-100"
check "lost at exhaustion: after re-create it reads back" \
	sh -c "dmsetup remove erl && dmsetup create erl --table '$erltable' && dmsetup message erl 0 list | grep -qx '100 $spare' && dd if=/dev/mapper/erl bs=4096 skip=100 count=1 iflag=direct 2>/dev/null | cmp - /tmp/erl-100"
dmsetup remove erl
dmsetup remove erldust
nullb_drop er7
nullb_drop er8

# 5. ext4 through failing writes: mkfs, a copy, fsck, re-create, verify.
g=$(nullb_make er6 16 512)
i=0
while [ $i -lt 64 ]; do
	blk=$(((i * 127 + 1) % 16384))
	echo "+$((blk * 8))-$((blk * 8 + 7))" >/sys/kernel/config/nullb/er3/badblocks
	i=$((i + 1))
done
table="0 131072 remap $c 0 $g 0 32768 2 block_size 4096"
check "ext4: create" dmsetup create ere --table "$table"
check "ext4: mkfs" mkfs_ext4 -q -F /dev/mapper/ere
mkdir -p /mnt/ere
check "ext4: mount" mount -t ext4 /dev/mapper/ere /mnt/ere
check "ext4: copy files" sh -c "cp -a /lib/modules /mnt/ere/ && dd if=/dev/urandom of=/mnt/ere/random bs=1M count=12 2>/dev/null && sync"
(cd /mnt/ere && find . -type f | sort | xargs md5sum >/tmp/ere.md5)
check "ext4: umount" umount /mnt/ere
check "ext4: fsck is clean" fsck_ext4 -fn /dev/mapper/ere
echo "ext4: $(field ere 7) write errors below, $(stat_of ere auto_remaps) relocated, $(stat_of ere failed_bios) failed bios"
check "ext4: writes failed below and none reached ext4" sh -c "[ $(field ere 7) -gt 0 ] && [ $(stat_of ere failed_bios) = 0 ]"
check "ext4: re-create" sh -c "dmsetup remove ere && dmsetup create ere --table '$table'"
check "ext4: mount again" mount -t ext4 -o ro /dev/mapper/ere /mnt/ere
check "ext4: every file verifies" sh -c "cd /mnt/ere && md5sum -c /tmp/ere.md5 >/dev/null"
umount /mnt/ere
check "ext4: remove" dmsetup remove ere
nullb_drop er6
nullb_drop er3

# 6. scsi_debug medium errors (reads only): the read fails once, the
# block is pending, a write heals it, and reads return the written data.
sd=$(scsi_debug_make 32 opts=2 medium_error_start=4096 medium_error_count=8)
h=$(nullb_make er7 16 512)
if [ -z "$sd" ]; then
	fail "scsi_debug: disk" "no scsi_debug disk"
else
	check "scsi_debug: create" dmsetup create ers --table "0 65536 remap $sd 0 $h 0 32768 2 block_size 4096"
	check "scsi_debug: the read fails" sh -c "! dd if=/dev/mapper/ers of=/dev/null bs=4096 skip=512 count=1 iflag=direct 2>/dev/null"
	check "scsi_debug: the block is pending" sh -c "dmsetup message ers 0 list | grep -qx '512 pending'"
	check "scsi_debug: the medium error is counted as one read error" [ "$(stat_of ers read_errors)" = 1 ]
	dd if=/dev/urandom of=/tmp/t4 bs=4096 count=1 2>/dev/null
	check "scsi_debug: the write heals it" dd if=/tmp/t4 of=/dev/mapper/ers bs=4096 seek=512 count=1 oflag=direct conv=notrunc
	check "scsi_debug: relocated, not pending" sh -c "dmsetup message ers 0 lookup 4096 | grep -q 'remapped to spare' && [ \$(dmsetup status ers | cut -d' ' -f12) = 0 ]"
	check "scsi_debug: the read returns the written data" sh -c "dd if=/dev/mapper/ers bs=4096 skip=512 count=1 iflag=direct 2>/dev/null | cmp - /tmp/t4"
	check "scsi_debug: remove" dmsetup remove ers
	scsi_debug_drop
fi
nullb_drop er7

# no_auto_remap: errors pass through, nothing is relocated or marked
# pending, and the counters still count them.
n1=$(nullb_make er8 16 512)
n2=$(nullb_make er9 4 512)
dmsetup create erndust --table "0 32768 dust $n1 0 4096"
check "no_auto_remap: create" dmsetup create ern \
	--table "0 32768 remap /dev/mapper/erndust 0 $n2 0 8192 3 block_size 4096 no_auto_remap"
dmsetup message erndust 0 addbadblock 300 10 >/dev/null
dmsetup message erndust 0 addbadblock 301 >/dev/null
dmsetup message erndust 0 enable >/dev/null
check "no_auto_remap: a write to a bad block fails" sh -c \
	"! dd if=/dev/urandom of=/dev/mapper/ern bs=4096 seek=300 count=1 oflag=direct conv=notrunc 2>/dev/null"
check "no_auto_remap: a read of a bad block fails" sh -c \
	"! dd if=/dev/mapper/ern of=/dev/null bs=4096 skip=301 count=1 iflag=direct 2>/dev/null"
check "no_auto_remap: nothing relocated or pending" sh -c "[ -z \"\$(dmsetup message ern 0 list)\" ]"
check "no_auto_remap: no spare used" sh -c "dmsetup message ern 0 stats | grep -q ' spares_used=0 '"
check "no_auto_remap: the errors are counted (1 read, 1 write)" \
	[ "$(stat_of ern read_errors)/$(stat_of ern write_errors)" = 1/1 ]
check "no_auto_remap: remap messages still work" sh -c "dmsetup message ern 0 remap $((300 * 8)) | grep -q 'remapped block 300'"
dmsetup remove ern
dmsetup remove erndust
nullb_drop er8
nullb_drop er9
