# SPDX-License-Identifier: GPL-2.0
# Passthrough: data written through remap lands on the data device at
# data_offset, on scsi_debug and null_blk, with the spare area on the same
# device and on another; dmsetup table prints a line that recreates the
# device; block_size reaches the queue limits; messages answer. The second
# target on the same abstractions, rust_linear (linear/), passes the same
# data through as C dm-linear does.

# exercise NAME DMNAME DATADEV DATA_OFFSET LEN_SECTORS LINE: write patterns at
# the start, in the middle and at the end of the target, find them on the
# data device at data_offset; check that "dmsetup table" prints LINE, the
# line the device was created with; then re-create the device from the
# printed line (after removing it: a second live device on the same spare
# area is refused) and find the same table and data.
exercise() {
	last=$(($5 / 32 - 1))
	for at in 0 617 $last; do
		check "$1: write and read back at 16k block $at" write_read "/dev/mapper/$2" $at
		check "$1: data device holds it at data_offset" read_matches "$3" $(($4 + at * 32))
	done
	line=$(dmsetup table "$2")
	check "$1: dmsetup table prints the line it was created with" [ "$line" = "$(canon "$6")" ]
	# The spare area holds the metadata of the live device: a second
	# device on it would overwrite it.
	dmesg -c >/dev/null
	if dmsetup create "$2-copy" --table "$line" 2>/tmp/err; then
		fail "$1: a second device on the same spare area is refused" "it was created"
		dmsetup remove "$2-copy"
	elif dmesg | grep -q 'Spare area is in use by another device'; then
		pass "$1: a second device on the same spare area is refused"
	else
		fail "$1: a second device on the same spare area is refused" "$(cat /tmp/err)"
	fi
	dmsetup remove "$2-copy" 2>/dev/null
	dmsetup remove "$2"
	if dmsetup create "$2" --table "$line" && [ "$(dmsetup table "$2")" = "$line" ]; then
		pass "$1: table round-trips: $line"
	else
		fail "$1: table round-trips" "printed '$line', got '$(dmsetup table "$2" 2>&1)'"
	fi
	check "$1: data still there after re-create" read_matches "/dev/mapper/$2" $((last * 32))
}

sda=$(scsi_debug_make 64)
nb1=$(nullb_make nb1 64 4096)
nb2=$(nullb_make nb2 32 512)
[ -n "$sda" ] && [ -n "$nb1" ] && [ -n "$nb2" ] || fail "test devices" "sda=$sda nb1=$nb1 nb2=$nb2"

# scsi_debug, data and spare on one device: data 2048..92160, spare at 98304.
t1="0 90112 remap $sda 2048 $sda 98304 16384"
check "scsi_debug one device: create" dmsetup create r1 --table "$t1"
exercise "scsi_debug one device" r1 "$sda" 2048 90112 "$t1"
check "scsi_debug one device: 512-byte blocks by default" [ "$(blockdev --getss /dev/mapper/r1)" = 512 ]
check "scsi_debug one device: remove" dmsetup remove r1

# scsi_debug data, null_blk spare, 4 KiB remap blocks on 512-byte devices.
t2="0 131072 remap $sda 0 $nb2 64 2048 2 block_size 4096"
check "scsi_debug + null_blk: create" dmsetup create r2 --table "$t2"
exercise "scsi_debug + null_blk" r2 "$sda" 0 131072 "$t2"
check "scsi_debug + null_blk: block_size 4096 advertised" [ "$(blockdev --getss /dev/mapper/r2)" = 4096 ]
check "scsi_debug + null_blk: io_min 4096" [ "$(blockdev --getiomin /dev/mapper/r2)" = 4096 ]
check "scsi_debug + null_blk: remove" dmsetup remove r2

# null_blk with 4 KiB sectors, one device, every feature.
t3="0 65536 remap $nb1 16 $nb1 65552 8192 5 block_size 8192 no_auto_remap read_retries 2"
check "null_blk one device: create" dmsetup create r3 --table "$t3"
exercise "null_blk one device" r3 "$nb1" 16 65536 "$t3"
check "null_blk one device: block_size 8192 advertised" [ "$(blockdev --getss /dev/mapper/r3)" = 8192 ]
check "null_blk one device: remove" dmsetup remove r3

# null_blk data and another null_blk (4 KiB sectors) as spare.
t4="0 32768 remap $nb2 1024 $nb1 0 4096"
check "null_blk two devices: create" dmsetup create r4 --table "$t4"
exercise "null_blk two devices" r4 "$nb2" 1024 32768 "$t4"
check "null_blk two devices: spare's 4 KiB sectors stacked" [ "$(blockdev --getss /dev/mapper/r4)" = 4096 ]

# 64 KiB remap blocks: the largest logical block size the block layer takes.
check "64 KiB blocks: create" dmsetup create r7 --table "0 32768 remap $nb2 0 $nb2 32768 4096 2 block_size 65536"
check "64 KiB blocks: advertised as logical block size" [ "$(blockdev --getss /dev/mapper/r7)" = 65536 ]
dd if=/dev/urandom of=/tmp/pattern bs=65536 count=1 2>/dev/null
check "64 KiB blocks: direct 64 KiB write" dd if=/tmp/pattern of=/dev/mapper/r7 bs=65536 seek=3 oflag=direct conv=notrunc
check "64 KiB blocks: lands on the data device" sh -c "dd if=$nb2 bs=65536 skip=3 count=1 iflag=direct 2>/dev/null | cmp - /tmp/pattern"
check "64 KiB blocks: remove" dmsetup remove r7

# Messages and status.
check "message help answers" sh -c "dmsetup message r4 0 help | grep -q 'remap target messages'"
message_refused r4 "unknown message refused with a reason" "unrecognised message 'frobnicate'" frobnicate 1
check "status of a fresh device: nothing remapped, no errors" sh -c "dmsetup status r4 | grep -qE '^0 32768 remap 0 0/[0-9]+ 0 0 ok 1 5/5 0 0 - - 0 0 0$'"
check "null_blk two devices: remove" dmsetup remove r4

# Discard passes through to the data device.
check "discard: create" dmsetup create r5 --table "0 32768 remap $nb2 1024 $nb1 0 4096"
check "discard: data written first" write_read /dev/mapper/r5 4
check "discard passes through" blkdiscard -o $((4 * 16384)) -l 16384 /dev/mapper/r5
dd if=/dev/zero of=/tmp/pattern bs=16384 count=1 2>/dev/null
check "discarded range reads as zeroes on the data device" read_matches "$nb2" $((1024 + 4 * 32))
check "discard: remove" dmsetup remove r5

# Write-zeroes: scsi_debug takes WRITE SAME, so BLKZEROOUT sends
# REQ_OP_WRITE_ZEROES down the stack (null_blk has none: the block layer
# would write zero pages instead, and device-mapper offers write-zeroes
# only when every device of the table takes them). The target counts it
# among its other bios, not its writes, and passes it to the data device.
# queue_limit DEV NAME: a queue limit of DEV.
queue_limit() { cat "/sys/dev/block/$((0x$(stat -L -c %t "$1"))):$((0x$(stat -L -c %T "$1")))/queue/$2"; }
check "write-zeroes: scsi_debug takes them" [ "$(queue_limit $sda write_zeroes_max_bytes)" -gt 0 ]
# Data and spare area on scsi_debug, the spare area where nothing was
# written yet.
check "write-zeroes: create" dmsetup create r8 --table "0 65536 remap $sda 0 $sda 120000 2048 2 block_size 4096"
check "write-zeroes: the target takes them" [ "$(queue_limit /dev/mapper/r8 write_zeroes_max_bytes)" -gt 0 ]
check "write-zeroes: data written first" write_read /dev/mapper/r8 9
check "write-zeroes: the data device holds it" read_matches "$sda" $((9 * 32))
writes=$(stat_of r8 writes)
others=$(stat_of r8 other_bios)
check "write-zeroes: BLKZEROOUT" blkdiscard -z -o $((9 * 16384)) -l 16384 /dev/mapper/r8
check "write-zeroes: reached the target as write-zeroes, not as writes" \
	[ "$(stat_of r8 writes)" = "$writes" -a "$(stat_of r8 other_bios)" -gt "$others" ]
dd if=/dev/zero of=/tmp/pattern bs=16384 count=1 2>/dev/null
check "write-zeroes: the range reads as zeroes on the data device" read_matches "$sda" $((9 * 32))
check "write-zeroes: remove" dmsetup remove r8
nullb_drop nb1
nullb_drop nb2
scsi_debug_drop

# Flushes reach both devices when the spare area is on another device:
# null_blk devices with a volatile write cache count the flushes they get.
c1=$(nullb_make c1 32 512 4)
c2=$(nullb_make c2 32 512 4)
flushes() { awk '{ print $16 }' "/sys/block/$1/stat"; }
check "flush: create" dmsetup create r6 --table "0 16384 remap $c1 0 $c2 0 2048"
f1=$(flushes c1)
f2=$(flushes c2)
dd if=/dev/urandom of=/dev/mapper/r6 bs=4096 count=1 conv=fsync 2>/dev/null
check "flush reaches the data device" [ "$(flushes c1)" -gt "$f1" ]
check "flush reaches the spare device" [ "$(flushes c2)" -gt "$f2" ]
check "flush: remove" dmsetup remove r6
nullb_drop c1
nullb_drop c2

# rust_linear: dm-linear's table line and behaviour, on the abstractions of
# kapi/. Its data lands where C dm-linear's does; dmsetup table prints the
# line back; discards, flushes and bad lines behave as dm-linear's.
check "rust_linear: module loads" modprobe dm-rust-linear
check "rust_linear: registered as a target type" sh -c "dmsetup targets | grep -q '^rust_linear *v1.0.0'"
ld1=$(nullb_make ld1 32 512 4)
ld2=$(nullb_make ld2 32 4096)
for dev in "$ld1" "$ld2"; do
	lt="0 49152 rust_linear $dev 8192"
	check "rust_linear on $dev: create" dmsetup create rl --table "$lt"
	last=$((49152 / 32 - 1))
	for at in 0 617 $last; do
		check "rust_linear on $dev: write and read back at 16k block $at" write_read /dev/mapper/rl $at
		check "rust_linear on $dev: the device holds it at the offset" read_matches "$dev" $((8192 + at * 32))
	done
	check "rust_linear on $dev: dmsetup table prints the line it was created with" \
		[ "$(dmsetup table rl)" = "$(canon "$lt")" ]
	check "rust_linear on $dev: C linear over the same range reads the same data" \
		dmsetup create cl --table "0 49152 linear $dev 8192"
	check "rust_linear on $dev: same bytes through both" sh -c \
		"dd if=/dev/mapper/rl bs=1M iflag=direct 2>/dev/null | cmp - /dev/mapper/cl"
	dmsetup remove cl
	check "rust_linear on $dev: logical block size stacked" \
		[ "$(blockdev --getss /dev/mapper/rl)" = "$(blockdev --getss "$dev")" ]
	check "rust_linear on $dev: discard passes through" blkdiscard -o 65536 -l 65536 /dev/mapper/rl
	check "rust_linear on $dev: remove" dmsetup remove rl
done
# A flush reaches the device (ld1 has a volatile write cache).
check "rust_linear: create for the flush" dmsetup create rl --table "0 16384 rust_linear $ld1 0"
f1=$(flushes ld1)
dd if=/dev/urandom of=/dev/mapper/rl bs=4096 count=1 conv=fsync 2>/dev/null
check "rust_linear: a flush reaches the device" [ "$(flushes ld1)" -gt "$f1" ]
# Two targets in one table, the second at an offset: dm_target_offset.
check "rust_linear: two targets in one table" dmsetup create rl2 --table "0 8192 rust_linear $ld1 0
8192 8192 rust_linear $ld1 20000"
check "rust_linear: the second target writes at its offset" write_read /dev/mapper/rl2 300
check "rust_linear: which lands at 20000 + (300*32 - 8192)" read_matches "$ld1" $((20000 + 300 * 32 - 8192))
dmsetup remove rl2
dmsetup remove rl
# Bad lines are refused with dm-linear's reasons, and leave nothing.
for bad in "$ld1" "$ld1 x" "$ld1 -1" "$ld1 8 extra" "/dev/nonexistent 0"; do
	dmesg -c >/dev/null
	if dmsetup create rlbad --table "0 8 rust_linear $bad" 2>/dev/null; then
		fail "rust_linear: '$bad' refused" "created"
		dmsetup remove rlbad
	elif dmesg | grep -qE 'Invalid argument count|Invalid device sector|Device lookup failed'; then
		pass "rust_linear: '$bad' refused with a reason"
	else
		fail "rust_linear: '$bad' refused with a reason" "$(dmesg | tail -3)"
	fi
done
check "rust_linear: no device left by the refused lines" sh -c "! dmsetup info rlbad 2>/dev/null"
check "rust_linear: module unloads" rmmod dm_rust_linear
nullb_drop ld1
nullb_drop ld2
