# SPDX-License-Identifier: GPL-2.0
# Manual remapping: remap/unremap/lookup/list/stats messages, bios split at
# remapped blocks, data copied to and from spares, status fields, and no
# write lost while blocks switch under running I/O.

d=$(nullb_make rm1 64 512)
s=$(nullb_make rm2 16 512)
# 4 KiB blocks: data 0..131072 on rm1, spare area all of rm2 (4096 blocks).
check "create" dmsetup create rm --table "0 131072 remap $d 0 $s 0 32768 2 block_size 4096"
dev=/dev/mapper/rm

# Fill the whole device with known data, through the target.
dd if=/dev/urandom of=/tmp/image bs=1M count=64 2>/dev/null
check "fill the device" dd if=/tmp/image of=$dev bs=1M oflag=direct conv=fsync

# spare_sector MSG_OUTPUT: the spare device sector the remap message named.
spare_sector() { sed -n 's/.*spare device sector \([0-9]*\).*/\1/p'; }

blocks="0 1 7 8 100 2047 2048 5000 16383"
ok=1
for b in $blocks; do
	out=$(dmsetup message rm 0 remap $((b * 8))) || { ok=0; echo "remap $b failed"; continue; }
	sec=$(echo "$out" | spare_sector)
	dd if=/tmp/image of=/tmp/want bs=4096 skip=$b count=1 2>/dev/null
	dd if=$s of=/tmp/blk bs=4096 skip=$((sec / 8)) count=1 iflag=direct 2>/dev/null
	cmp -s /tmp/want /tmp/blk || { ok=0; echo "block $b: spare at sector $sec does not hold the data"; }
done
[ $ok = 1 ] && pass "remap copies each block's data to the spare the message names" ||
	fail "remap copies each block's data to the spare" "see above"
check "whole device reads back unchanged after remaps" sh -c "dd if=$dev bs=1M iflag=direct 2>/dev/null | /sbin/cmp - /tmp/image"

# Writes to a remapped block go to its spare; the data device keeps the old data.
out=$(dmsetup message rm 0 lookup $((100 * 8)))
check "lookup names the spare of a remapped block" sh -c "echo '$out' | grep -q 'block 100 remapped to spare block'"
sec=$(echo "$out" | spare_sector)
dd if=/dev/urandom of=/tmp/new bs=4096 count=1 2>/dev/null
dd if=/tmp/new of=$dev bs=4096 seek=100 oflag=direct conv=notrunc 2>/dev/null
check "a write to a remapped block lands on its spare" sh -c "dd if=$s bs=4096 skip=$((sec / 8)) count=1 iflag=direct 2>/dev/null | cmp - /tmp/new"
dd if=/tmp/image of=/tmp/old bs=4096 skip=100 count=1 2>/dev/null
check "the data device keeps the old data of a remapped block" sh -c "dd if=$d bs=4096 skip=100 count=1 iflag=direct 2>/dev/null | cmp - /tmp/old"
dd if=/tmp/new of=/tmp/image bs=4096 seek=100 conv=notrunc 2>/dev/null
check "lookup of a block that is not remapped" sh -c "dmsetup message rm 0 lookup 808 | grep -q 'block 101 not remapped'"

# list: sorted, paged.
check "list shows every remapped block in order" sh -c "[ \"\$(dmsetup message rm 0 list | cut -d' ' -f1 | tr '\n' ' ')\" = '0 1 7 8 100 2047 2048 5000 16383 ' ]"
check "list from a block with a count, then where to go on" sh -c "[ \"\$(dmsetup message rm 0 list 8 3 | cut -d' ' -f1 | tr '\n' ' ')\" = '8 100 2047 more ' ] && dmsetup message rm 0 list 8 3 | grep -qx 'more 2048'"

# Status: <remapped> <used>/<total> <read_errors> <write_errors> <state>
# <metadata generation> <intact copies>/5 <last commit error> <pending>
# <low water> <scrub> <lost> <slow reads> <weak blocks moved>
st=$(dmsetup status rm | cut -d' ' -f4-)
check "status counts the remapped blocks and used spares" sh -c "echo '$st' | grep -qE '^9 9/[0-9]+ 0 0 ok 10 5/5 0 0 - - 0 0 0$'"
stats=$(dmsetup message rm 0 stats)
check "stats count remapped writes and reads" sh -c "echo '$stats' | grep -q 'remapped_writes=[1-9]' && echo '$stats' | grep -q 'remapped_reads=[1-9]'"
check "stats count spares" sh -c "echo '$stats' | grep -q 'remapped_blocks=9 pending_blocks=0 fenced_blocks=0 lost_blocks=0 spares_used=9'"
check "clear_stats" sh -c "dmsetup message rm 0 clear_stats >/dev/null && dmsetup message rm 0 stats | grep -q 'reads=0 writes=0'"

# Bios that straddle remapped blocks, odd sizes and offsets (direct I/O).
check "fio bsrange writes+verify across remapped blocks" fio --name=straddle --filename=$dev \
	--direct=1 --ioengine=libaio --iodepth=8 --rw=randwrite --bsrange=4k-132k --size=64m \
	--io_size=32m --verify=crc32c --verify_fatal=1 --randrepeat=1 --output=/tmp/fio-straddle.out
check "splits happened at remapped blocks" sh -c "dmsetup message rm 0 stats | grep -q 'splits=[1-9]'"
# Refill the reference image after fio's writes.
dd if=$dev of=/tmp/image bs=1M iflag=direct 2>/dev/null

# unremap copies back and frees the spare.
check "unremap" dmsetup message rm 0 unremap $((2047 * 8))
dd if=$d of=/tmp/blk bs=4096 skip=2047 count=1 iflag=direct 2>/dev/null
check "unremapped block's data is back on the data device" sh -c "dd if=/tmp/image bs=4096 skip=2047 count=1 2>/dev/null | cmp - /tmp/blk"
check "spare freed after unremap" sh -c "dmsetup status rm | grep -qE ' 8 8/[0-9]+ '"
check "whole device unchanged after unremap" sh -c "dd if=$dev bs=1M iflag=direct 2>/dev/null | /sbin/cmp - /tmp/image"

# Malformed messages: refused with a reason, nothing changes.
bad_message() { message_refused rm "$@"; }
bad_message "remap without a sector" "wrong number of arguments for 'remap'" remap
bad_message "remap with two sectors" "wrong number of arguments for 'remap'" remap 1 2
bad_message "remap of a non-number" "invalid sector 'x'" remap x
bad_message "remap past the end" "invalid sector '131072'" remap 131072
bad_message "remap of a remapped block" "block 0 is already remapped" remap 3
bad_message "unremap of a block not remapped" "block 3 is not remapped" unremap 24
bad_message "unremap without a sector" "wrong number of arguments for 'unremap'" unremap
bad_message "lookup of a non-number" "invalid sector '5x'" lookup 5x
bad_message "list with a bad block" "list takes [<block> [<count>]] as numbers" list x
bad_message "list with a bad count" "list takes [<block> [<count>]] as numbers" list 0 y
bad_message "list with three arguments" "list takes [<block> [<count>]]" list 0 1 2
bad_message "list past the end" "list takes [<block> [<count>]]" list 16384
bad_message "stats with an argument" "wrong number of arguments for 'stats'" stats 1
bad_message "help with an argument" "wrong number of arguments for 'help'" help me
bad_message "unknown message" "unrecognised message 'remapall'" remapall
check "nothing changed by refused messages" sh -c "dmsetup status rm | grep -qE ' 8 8/[0-9]+ '"

# 500 remaps while fio writes and verifies: no write is lost while blocks
# switch, then a full verify pass.
fio --name=during --filename=$dev --direct=1 --ioengine=libaio --iodepth=16 --rw=randwrite \
	--bs=4k --size=64m --io_size=24m --verify=crc32c --verify_fatal=1 --randrepeat=1 \
	--output=/tmp/fio-during.out >/dev/null 2>&1 &
fio_pid=$!
# Blocks 7919 * i modulo 16384 for i = 1, 2, ..., all distinct; the ones
# remapped above are refused (EEXIST). One process sends every message.
dm-msg rm 510 $((7919 * 8)) $((7919 * 8)) 1 131072 >/tmp/dm-msg.out
sent=$(sed -n 's/^messages=\([0-9]*\) failed=\([0-9]*\) .*/\1 \2/p' /tmp/dm-msg.out)
n=$((${sent% *} - ${sent#* }))
wait $fio_pid
rc=$?
echo "$n remaps made while fio ran; $(dmsetup message rm 0 stats | tr ' ' '\n' | grep -E '^(deferred|splits)=' | tr '\n' ' ')"
check "500 remaps made" [ $n -ge 500 ]
if [ $rc = 0 ] && grep -q 'err= 0' /tmp/fio-during.out; then
	pass "fio write+verify during the remaps"
else
	fail "fio write+verify during the remaps" "rc=$rc $(grep -iE 'err=|verify' /tmp/fio-during.out | head -n 3 | tr '\n' ' ')"
fi
check "full verify pass after 500 remaps" fio --name=during --filename=$dev --direct=1 \
	--ioengine=libaio --iodepth=16 --rw=randwrite --bs=4k --size=64m --io_size=24m \
	--verify=crc32c --verify_fatal=1 --randrepeat=1 --verify_only --output=/tmp/fio-verify.out
# Page through the list with the "more <block>" lines.
from=0
listed=0
pages=0
while [ $pages -lt 1000 ]; do
	dmsetup message rm 0 list $from 100 >/tmp/page || break
	pages=$((pages + 1))
	listed=$((listed + $(grep -vc '^more ' /tmp/page)))
	next=$(sed -n 's/^more //p' /tmp/page)
	[ -n "$next" ] || break
	from=$next
done
remapped=$(dmsetup status rm | cut -d' ' -f4)
echo "list: $listed blocks in $pages pages; status: $remapped remapped"
check "paged list covers every remapped block" [ "$listed" = "$remapped" ]
check "the list came in pages of 100" [ "$pages" = $(((remapped + 99) / 100)) ]
check "more than 500 blocks remapped" [ "$remapped" -gt 500 ]
# The remaps are in the metadata: remove, create again, all there.
dmsetup message rm 0 list 0 100000 >/tmp/list-before
table=$(dmsetup table rm)
check "remove" dmsetup remove rm
check "re-create after remove" dmsetup create rm --table "$table"
check "every remap is back after re-create" sh -c "dmsetup message rm 0 list 0 100000 | cmp - /tmp/list-before"
check "fio verify after re-create" fio --name=during --filename=$dev --direct=1 \
	--ioengine=libaio --iodepth=16 --rw=randwrite --bs=4k --size=64m --io_size=24m \
	--verify=crc32c --verify_fatal=1 --randrepeat=1 --verify_only --output=/tmp/fio-verify.out
check "remove again" dmsetup remove rm

# Spare exhaustion: a small spare area runs out, status says so.
# 20 blocks: 3 per metadata copy, 5 spares. The area held the metadata of
# another table line: it must be zeroed to be used for this one.
dmesg -c >/dev/null
if dmsetup create rx --table "0 65536 remap $d 0 $s 0 160 2 block_size 4096" 2>/dev/null; then
	fail "small spare area: another table's metadata refused" "created"
	dmsetup remove rx
else
	check "small spare area: another table's metadata refused" sh -c "dmesg | grep -q 'holds the metadata of another table line'"
fi
dd if=/dev/zero of=$s bs=4096 count=20 oflag=direct 2>/dev/null
check "small spare area: create" dmsetup create rx --table "0 65536 remap $d 0 $s 0 160 2 block_size 4096"
made=0
while dmsetup message rx 0 remap $((made * 8)) >/dev/null 2>&1; do made=$((made + 1)); done
echo "remaps until the spares ran out: $made"
check "spares run out after the 5 spares" [ $made = 5 ]
check "status says spares_exhausted" sh -c "dmsetup status rx | grep -q 'spares_exhausted'"
check "small spare area: remove" dmsetup remove rx
nullb_drop rm1
nullb_drop rm2

# A block that cannot be read is remapped with its data lost: reads of it
# fail, as drive firmware fails an unreadable sector, until it is written
# (the spare was zero-filled: never served as data). dm-dust fails reads
# of its bad blocks.
modprobe dm-dust
u=$(nullb_make rm4 16 512)
check "unreadable block: dust device" dmsetup create dust4 --table "0 32768 dust $u 0 512"
dd if=/dev/urandom of=/dev/mapper/dust4 bs=1M count=16 oflag=direct 2>/dev/null
dmsetup message dust4 0 addbadblock 800 >/dev/null
dmsetup message dust4 0 enable >/dev/null
rutable="0 16384 remap /dev/mapper/dust4 0 /dev/mapper/dust4 16384 8192"
check "unreadable block: create remap over dust" dmsetup create ru --table "$rutable"
out=$(dmsetup message ru 0 remap 800)
check "remap of an unreadable block says its data is lost" sh -c "echo '$out' | grep -q 'data unreadable: lost, reads fail until the block is written'"
check "lookup flags its data as lost" sh -c "dmsetup message ru 0 lookup 800 | grep -q 'data lost: reads fail until the block is written'"
check "list flags it lost" sh -c "dmsetup message ru 0 list | grep -qx '800 [0-9]* lost'"
check "status and stats count 1 lost block" [ "$(lost_of ru)" = "1 1" ]
remapctl status ru >/tmp/ru-status
check "remapctl status: degraded (exit 1), 1 lost" sh -c "[ $? = 1 ] && grep -q ', 1 lost (reads fail until written)' /tmp/ru-status && remapctl status ru --json | jq -e '.devices[0].lost_blocks == 1 and .devices[0].health == \"degraded\"' >/dev/null"
check "a read of it fails: the zero-filled spare is not its data" sh -c "! dd if=/dev/mapper/ru of=/dev/null bs=512 skip=800 count=1 iflag=direct 2>/dev/null"
check "the read was failed by the target" [ "$(stat_of ru failed_bios)" -ge 1 ]
message_refused ru "unremap of a lost block refused" \
	"block 800's data is lost (reads fail): write the block before unremapping it" unremap 800
# A read-only table never relocates: a write that reaches it (a page
# dirtied in the cache before the reload, written back after it: the block
# layer only warns) fails, and nothing is committed. Descriptor 3 keeps
# the device open, so that closing dd's does not write the page back.
gen=$(stat_of ru metadata_generation)
exec 3</dev/mapper/ru
dd if=/dev/urandom of=/dev/mapper/ru bs=4096 count=1 seek=100 conv=notrunc 2>/dev/null
dmsetup suspend --nolockfs ru
dmsetup reload ru --readonly --table "$rutable" && dmsetup resume ru
dmesg -c >/dev/null
blockdev --flushbufs /dev/mapper/ru 2>/dev/null
exec 3<&-
check "read-only table: the dirty page was written back to it" sh -c "dmesg | grep -q 'Trying to write to read-only block-device'"
check "read-only table: a write to the lost block commits nothing, the block stays lost" \
	sh -c "[ $(stat_of ru metadata_generation) = $gen ] && dmsetup message ru 0 lookup 800 | grep -q 'data lost'"
dmsetup reload ru --table "$rutable" && dmsetup resume ru
# A whole page (blocks 800-807): a write the kernel turns into a buffered
# one (when it cannot drop cached pages for direct I/O) needs no read of
# the page first, which the lost block would fail.
dd if=/dev/urandom of=/tmp/heal bs=4096 count=1 2>/dev/null
dd if=/tmp/heal of=/dev/mapper/ru bs=4096 seek=100 oflag=direct conv=notrunc 2>/dev/null
check "a write to it is relocated and reads back" sh -c "dd if=/dev/mapper/ru bs=4096 skip=100 count=1 iflag=direct 2>/dev/null | cmp - /tmp/heal"
check "written, it is no longer lost" sh -c "dmsetup message ru 0 lookup 800 | grep 'remapped to spare' | grep -vq lost"
check "written: status and stats count 0 lost" [ "$(lost_of ru)" = "0 0" ]
check "its zero-filled spare is free again, none retired" sh -c "dmsetup message ru 0 stats | grep -q 'spares_used=1 .*spares_retired=0 '"
check "after re-create it reads back what was written" sh -c "dmsetup remove ru && dmsetup create ru --table '$rutable' && dd if=/dev/mapper/ru bs=4096 skip=100 count=1 iflag=direct 2>/dev/null | cmp - /tmp/heal"
check "unreadable block: remove" dmsetup remove ru
dmsetup remove dust4
nullb_drop rm4

# A spare that fails its write is retired, never handed out again.
v=$(nullb_make rm5 16 512)
w=$(nullb_make rm6 16 512)
check "failing spare: dust over the spare device" dmsetup create dust6 --table "0 32768 dust $w 0 512"
# 8192 spare blocks of 512 bytes: the first copy of the metadata takes 147
# blocks (60 slots per block: 137 blocks of spare slots, 9 of pending slots
# (one per 16 spare blocks), a superblock), so the first spare handed out
# is block 147.
dmsetup message dust6 0 addbadblock 147 1 >/dev/null
dmsetup message dust6 0 enable >/dev/null
check "failing spare: create" dmsetup create rf --table "0 16384 remap $v 0 /dev/mapper/dust6 0 8192"
message_refused rf "remap onto a failing spare fails and retires it" \
	"remap of block 40 failed writing spare block 147: spare retired" remap 40
check "the block is not remapped after the failure" sh -c "dmsetup message rf 0 lookup 40 | grep -q 'not remapped'"
check "stats count the retired spare" sh -c "dmsetup message rf 0 stats | grep -q 'spares_used=0 spares_free=[0-9]* spares_retired=1'"
check "the retry takes the next spare" sh -c "dmsetup message rf 0 remap 40 | grep -q 'to spare block 148 '"
check "failing spare: remove" dmsetup remove rf
dmsetup remove dust6
nullb_drop rm5
nullb_drop rm6

# Bios that arrive while their block switches wait and then land in the
# right place: a data device that takes 20 ms per I/O keeps each switch
# open long enough for a writer hammering the same block.
slow=$(NULLB_ATTRS="irqmode=2 completion_nsec=20000000" nullb_make rm7 16 512)
fast=$(nullb_make rm8 16 512)
check "switch under I/O: create" dmsetup create rs --table "0 16384 remap $slow 0 $fast 0 8192 2 block_size 4096"
# 60 writes of 60 different blocks of data; the subshell exits with the
# number that failed.
dd if=/dev/urandom of=/tmp/hammer bs=4096 count=60 2>/dev/null
(
	i=0 failed=0
	while [ $i -lt 60 ]; do
		dd if=/tmp/hammer of=/dev/mapper/rs bs=4096 skip=$i seek=10 count=1 oflag=direct conv=notrunc 2>/dev/null ||
			failed=$((failed + 1))
		i=$((i + 1))
	done
	exit $failed
) &
writer=$!
cycles=0
while kill -0 $writer 2>/dev/null && [ $cycles -lt 20 ]; do
	dmsetup message rs 0 remap 80 >/dev/null && dmsetup message rs 0 unremap 80 >/dev/null
	cycles=$((cycles + 1))
done
wait $writer
hammer_failed=$?
dmsetup message rs 0 remap 80 >/dev/null
deferred=$(dmsetup message rs 0 stats | tr ' ' '\n' | sed -n 's/^deferred=//p')
echo "switch under I/O: $cycles remap/unremap cycles, $deferred bios deferred"
check "bios arriving during a switch were deferred" [ "$deferred" -gt 0 ]
check "switch under I/O: every one of the 60 writes succeeded" [ "$hammer_failed" = 0 ]
dd if=/tmp/hammer of=/tmp/hammer.last bs=4096 skip=59 count=1 2>/dev/null
check "switch under I/O: the block holds the last (60th) write" sh -c "dd if=/dev/mapper/rs bs=4096 skip=10 count=1 iflag=direct 2>/dev/null | cmp - /tmp/hammer.last"
# One write, then nothing, while a remap of its block copies it from the
# slow device: a write that reached the data device inside the switch,
# after the copy read it, would be lost behind the spare's old copy. Ten
# blocks or more, the write sent later each time, so some fall inside the
# window: until the deferred count says one was held (at most 30).
dd if=/dev/urandom of=/tmp/during bs=4096 count=30 2>/dev/null
before=$(dmsetup message rs 0 stats | tr ' ' '\n' | sed -n 's/^deferred=//p')
held_now() { echo $(($(dmsetup message rs 0 stats | tr ' ' '\n' | sed -n 's/^deferred=//p') - before)); }
k=0
while [ $k -lt 30 ] && { [ $k -lt 10 ] || [ "$(held_now)" = 0 ]; }; do
	dmsetup message rs 0 remap $(((20 + k) * 8)) >/dev/null &
	msg=$!
	sleep 0.0$((k % 10))
	dd if=/tmp/during of=/dev/mapper/rs bs=4096 skip=$k seek=$((20 + k)) count=1 oflag=direct conv=notrunc 2>/dev/null
	wait $msg
	k=$((k + 1))
done
held=$(held_now)
echo "switch under I/O: $held of $k single writes arrived during their block's switch"
check "switch under I/O: some single writes did arrive during their block's switch (held)" [ "$held" -gt 0 ]
head -c $((k * 4096)) /tmp/during >/tmp/during.sent
check "switch under I/O: the single writes sent during remaps of their blocks read back" \
	sh -c "dd if=/dev/mapper/rs bs=4096 skip=20 count=$k iflag=direct 2>/dev/null | cmp - /tmp/during.sent"
check "switch under I/O: the blocks are on spares" [ "$(dmsetup status rs | cut -d' ' -f4)" -ge $((k + 1)) ]
check "switch under I/O: no I/O errors" sh -c "dmsetup status rs | grep -qE ' 0 0 ok [0-9]+ 5/5 0 0 - - 0 0 0$'"
check "switch under I/O: remove" dmsetup remove rs
nullb_drop rm7
nullb_drop rm8

# 512-byte blocks: bios of odd sizes at odd offsets straddle remapped blocks.
o=$(nullb_make rm3 32 512)
check "512-byte blocks: create" dmsetup create ro --table "0 57344 remap $o 0 $o 57344 8192"
dd if=/dev/urandom of=/tmp/image bs=1M count=28 2>/dev/null
dd if=/tmp/image of=/dev/mapper/ro bs=1M oflag=direct 2>/dev/null
for sec in 5 6 100 1001 1003 20000; do dmsetup message ro 0 remap $sec >/dev/null; done
check "512-byte blocks: the 6 blocks are remapped" sh -c \
	"[ \"\$(dmsetup message ro 0 list | cut -d' ' -f1 | tr '\n' ' ')\" = '5 6 100 1001 1003 20000 ' ]"
dd if=/dev/urandom of=/tmp/odd bs=512 count=3 2>/dev/null
ok=1
for at in 4 99 1000 1002 19999; do
	dd if=/tmp/odd of=/dev/mapper/ro bs=512 seek=$at count=3 oflag=direct conv=notrunc 2>/dev/null || ok=0
	dd if=/tmp/odd of=/tmp/image bs=512 seek=$at count=3 conv=notrunc 2>/dev/null
done
[ $ok = 1 ] && pass "512-byte blocks: 1.5 KiB direct writes across remapped blocks" ||
	fail "512-byte blocks: 1.5 KiB direct writes" "dd failed"
check "512-byte blocks: device reads back what was written" sh -c "dd if=/dev/mapper/ro bs=1M iflag=direct 2>/dev/null | /sbin/cmp - /tmp/image"
check "512-byte blocks: fio bsrange 512-9k write+verify" fio --name=odd --filename=/dev/mapper/ro \
	--direct=1 --ioengine=libaio --iodepth=8 --rw=randwrite --bsrange=512-9k --size=28m \
	--io_size=8m --verify=crc32c --verify_fatal=1 --randrepeat=1 --output=/tmp/fio-odd.out
check "512-byte blocks: remove" dmsetup remove ro
nullb_drop rm3
