# SPDX-License-Identifier: GPL-2.0
# Persistent metadata: remaps survive remove and re-create and a module
# reload; 1 to 4 damaged copies are rewritten on load; 5 damaged copies or
# another table line's metadata make create fail with nothing written;
# read-only tables never write; metadata written by remapctl restore
# from the format description (docs/format.md) loads; a commit that reaches no
# copy stops remaps but not I/O.

d=$(nullb_make md1 64 512)
s=$(nullb_make md2 16 512)
# 4 KiB blocks; spare area: all of md2, 4096 blocks. 508 slots per
# metadata block: 9 blocks of spare slots, 1 of pending slots (256, one per
# 16 spare blocks) and a superblock make 11 blocks per copy, at blocks 0,
# 1021, 2042, 3063, 4085.
table="0 131072 remap $d 0 $s 0 32768 2 block_size 4096"
starts="0 1021 2042 3063 4085"
dev=/dev/mapper/md

check "create" dmsetup create md --table "$table"
check "a blank spare area is formatted: generation 1, 5 of 5 copies" \
	sh -c "dmsetup status md | grep -qE ' ok 1 5/5 0 0 - - 0 0 0$'"
check "fio writes the first 32 MiB, which hold the remaps" fio --name=md --filename=$dev --direct=1 --ioengine=libaio \
	--iodepth=16 --rw=write --bs=64k --size=32m --verify=crc32c --do_verify=0 \
	--output=/tmp/fio-md.out
# Blocks 331 * i modulo 8192 for i = 1..50, from one process.
check "50 remaps made" dm-msg md 50 $((331 * 8)) $((331 * 8)) 1 65536
dmsetup message md 0 list >/tmp/list-before

# same_remaps NAME: the device lists the same remaps and fio verifies.
same_remaps() {
	check "$1: every remap is back" sh -c "dmsetup message md 0 list | cmp - /tmp/list-before"
	check "$1: fio verify" fio --name=md --filename=$dev --direct=1 --ioengine=libaio \
		--iodepth=16 --rw=write --bs=64k --size=32m --verify=crc32c --verify_only \
		--output=/tmp/fio-md.out
}

check "remove" dmsetup remove md
check "re-create" dmsetup create md --table "$table"
same_remaps "remove and re-create"
# A remap made after a reload is loaded but before it takes over goes to the
# old table; the new one loads the metadata again when it resumes.
check "reload: new table loaded" dmsetup reload md --table "$table"
check "reload: remap through the old table" dmsetup message md 0 remap $((16000 * 8))
check "reload: resume" dmsetup resume md
check "reload: the new table holds that remap" sh -c "dmsetup message md 0 lookup $((16000 * 8)) | grep -q 'block 16000 remapped'"
check "reload: unremap it" dmsetup message md 0 unremap $((16000 * 8))
check "remove before module reload" dmsetup remove md
check "rmmod" rmmod dm_remap
check "modprobe" modprobe dm_remap
check "re-create after module reload" dmsetup create md --table "$table"
same_remaps "module reload"
check "status after reload: 50 remapped, 5 of 5 copies" sh -c "dmsetup status md | grep -qE 'remap 50 50/[0-9]+ 0 0 ok [0-9]+ 5/5 0 0 - - 0 0 0$'"
dmsetup remove md

# damage BLOCK: overwrites 8 bytes inside 4 KiB block BLOCK of the spare
# device (direct I/O, so no stale page cache is written back).
damage() {
	dd if=$s of=/tmp/blk bs=4096 skip=$1 count=1 iflag=direct 2>/dev/null
	printf 'garbage!' | dd of=/tmp/blk bs=1 seek=200 conv=notrunc 2>/dev/null
	dd if=/tmp/blk of=$s bs=4096 seek=$1 count=1 oflag=direct conv=notrunc 2>/dev/null
}

# Damage k copies (1 to 4), a different set each time: the superblock of
# one, a slot block of another.
for k in 1 2 3 4; do
	copies=""
	i=0
	for start in $starts; do
		if [ $(((i + k) % 5)) -lt $k ]; then
			copies="$copies $i"
			if [ $((i % 2)) = 0 ]; then damage $start; else damage $((start + 1)); fi
		fi
		i=$((i + 1))
	done
	dmesg -c >/dev/null
	check "$k damaged copies ($copies): create" dmsetup create md --table "$table"
	want=$(echo $copies | tr ' ' '\n' | sort -n | tr '\n' ' ')
	check "$k damaged copies: exactly those copies ($want) reported in the kernel log" sh -c "[ \"\$(dmesg | sed -n 's/.*metadata copy \([0-9]\) has [0-9]* damaged or stale blocks: rewritten.*/\1/p' | sort -n | tr '\n' ' ')\" = '$want' ]"
	check "$k damaged copies: 5 of 5 copies intact after load" eventually sh -c "dmsetup status md | grep -qE ' ok [0-9]+ 5/5 0 0 - - 0 0 0$'"
	same_remaps "$k damaged copies"
	dmsetup remove md
	dmesg -c >/dev/null
	dmsetup create md --table "$table"
	check "$k damaged copies: the next load finds every copy intact" sh -c "dmesg | grep -q 'loaded: .* 5 of 5 copies intact' && ! dmesg | grep -q 'damaged or stale'"
	dmsetup remove md
done

# Another table line over the same spare area: refused, nothing written.
sum=$(md5sum <$s)
other="0 65536 remap $d 0 $s 0 32768 2 block_size 4096"
dmesg -c >/dev/null
if dmsetup create mx --table "$other" 2>/dev/null; then
	fail "another table line's metadata refused" "created"
	dmsetup remove mx
else
	check "another table line's metadata refused" sh -c "dmesg | grep -q 'holds the metadata of another table line'"
fi
check "refused create wrote nothing" [ "$(md5sum <$s)" = "$sum" ]

# Read-only: loads, refuses remaps, writes nothing, not even the repair of
# a damaged copy that a writable table makes on resume.
damage 1021
sum=$(md5sum <$s)
check "read-only create" dmsetup create md --readonly --table "$table"
check "read-only: loads with copy 1 damaged (4 of 5 intact)" sh -c "dmsetup status md | grep -q ' 4/5 '"
message_refused md "read-only table refuses remaps" "the table is read-only" remap 8
dmsetup remove md
check "read-only table wrote nothing, not even the repair" [ "$(md5sum <$s)" = "$sum" ]
# A slot block of copy 2 too: loading reads every copy.
damage 2043
sum=$(md5sum <$s)
check "read-only: a damaged slot block of another copy is counted (3 of 5 intact), nothing written" sh -c "dmsetup create md --readonly --table '$table' && dmsetup status md | grep -q ' 3/5 ' && dmsetup remove md && [ \"\$(md5sum <$s)\" = '$sum' ]"
dmsetup remove md 2>/dev/null

# All five superblocks damaged: create fails, nothing written.
for start in $starts; do damage $start; done
sum=$(md5sum <$s)
dmesg -c >/dev/null
if dmsetup create md --table "$table" 2>/dev/null; then
	fail "5 damaged copies: create refused" "created"
	dmsetup remove md
else
	check "5 damaged copies: create refused" sh -c "dmesg | grep -q 'has metadata but no intact copy'"
fi
dmsetup remove md 2>/dev/null
check "5 damaged copies: nothing written" [ "$(md5sum <$s)" = "$sum" ]

# Metadata written by remapctl restore from a dump made by meta_restore
# (tests/guest/lib.sh) from docs/format.md: 1000 remaps of
# every 7th block, generation 1; the first spare after copy 0 is 19.
dd if=/dev/zero of=$s bs=1M count=16 oflag=direct 2>/dev/null
check "remapctl restore writes 1000 remaps" meta_restore $s 0 131072 0 32768 4096 1000 7
check "the target loads them" dmsetup create md --table "$table"
check "status: 1000 remapped, generation 1, 5 of 5 copies" sh -c "dmsetup status md | grep -qE 'remap 1000 1000/[0-9]+ 0 0 ok 1 5/5 0 0 - - 0 0 0$'"
check "list: block 0 on spare 11, block 7 on spare 12" sh -c "[ \"\$(dmsetup message md 0 list 0 2 | tr '\n' ' ')\" = '0 11 7 12 more 14 ' ]"
check "remove" dmsetup remove md
nullb_drop md1
nullb_drop md2

# A lost metadata write: the disk acknowledged commit G's write of a slot
# block to copy 4 (the highest copy holding the newest superblock, the one
# a load that trusted one copy would read) and never made it, so copy 4
# holds that block's older version under a superblock of G or later. No
# load may go live with the older version, and no repair may write it over
# the newer one. lost_write NAME BS SPARE_BLOCKS PRE LATER: PRE remaps, a
# snapshot of copy 4's slot block, the remap whose write of that block is
# lost (then a write to its block), LATER remaps whose spares lie in the
# next slot block; the snapshot written back.
lost_write() {
	local lw=$1 bs=$2 n=$3 pre=$4 later=$5 per=$(($2 / 512))
	set -- $(copy_layout $n $bs)
	local c=$1 top=$6 w=$(((bs - 32) / 8))
	local at=$((top + 1 + (c + pre) / w))
	local ld ls i lost
	ld=$(nullb_make lw1 16 512)
	ls=$(nullb_make lw2 16 512)
	local tbl="0 16384 remap $ld 0 $ls 0 $((n * per)) 2 block_size $bs"
	check "$lw: create" dmsetup create lw --table "$tbl"
	i=0
	while [ $i -lt $pre ] && dmsetup message lw 0 remap $((i * 2 * per)) >/dev/null; do i=$((i + 1)); done
	check "$lw: $pre remaps first" [ $i = $pre ]
	dd if=$ls of=/tmp/lw-old bs=$bs skip=$at count=1 iflag=direct 2>/dev/null
	lost=$((pre * 2))
	check "$lw: the remap whose slot block copy 4 loses (spare $((c + pre)))" sh -c "dmsetup message lw 0 remap $((lost * per)) | grep -q 'to spare block $((c + pre)) '"
	head -c $bs /dev/urandom >/tmp/lw-data
	dd if=/tmp/lw-data of=/dev/mapper/lw bs=$bs seek=$lost count=1 oflag=direct conv=notrunc 2>/dev/null
	i=0
	while [ $i -lt $later ]; do
		dmsetup message lw 0 remap $(((lost + 2 + 2 * i) * per)) >/dev/null
		i=$((i + 1))
	done
	dmsetup message lw 0 list >/tmp/lw-list
	check "$lw: remove" dmsetup remove lw
	dd if=/tmp/lw-old of=$ls bs=$bs seek=$at count=1 oflag=direct conv=notrunc 2>/dev/null
	dmesg -c >/dev/null
	check "$lw: re-create" dmsetup create lw --table "$tbl"
	check "$lw: every committed remap is loaded, the one copy 4 lost too" sh -c "dmsetup message lw 0 list | cmp - /tmp/lw-list"
	check "$lw: the acknowledged write on its spare reads back" sh -c "dd if=/dev/mapper/lw bs=$bs skip=$lost count=1 iflag=direct 2>/dev/null | cmp - /tmp/lw-data"
	check "$lw: the load names copy 4's stale block" sh -c "dmesg | grep -q 'metadata copy 4 has 1 damaged or stale blocks'"
	check "$lw: copy 4 rewritten, 5 of 5 intact" eventually sh -c "dmsetup status lw | grep -qE ' ok [0-9]+ 5/5 '"
	check "$lw: remove and re-create after the repair" sh -c "dmsetup remove lw && dmsetup create lw --table '$tbl'"
	check "$lw: the repair kept the newer version" sh -c "dmsetup message lw 0 list | cmp - /tmp/lw-list"
	dmsetup remove lw
	nullb_drop lw1
	nullb_drop lw2
}
lost_write "lost slot write, 4 KiB blocks" 4096 4096 1 0
lost_write "lost slot write, 512-byte blocks, later commits elsewhere" 512 8192 32 2

# A commit that reaches no copy: dm-dust fails every write to the five
# superblocks (4 KiB blocks, 1024 spare blocks: copies of 5 blocks at 0,
# 254, 509, 764, 1019). The remap is refused, the target says
# metadata_failed and refuses further remaps, I/O passes through.
modprobe dm-dust
f=$(nullb_make mf1 16 512)
g=$(nullb_make mf2 4 512)
check "failing metadata: dust over the spare device" dmsetup create dustm --table "0 8192 dust $g 0 4096"
ftable="0 32768 remap $f 0 /dev/mapper/dustm 0 8192 2 block_size 4096"
check "failing metadata: create" dmsetup create mf --table "$ftable"
check "failing metadata: one remap committed first" dmsetup message mf 0 remap 2400
for b in 0 254 509 764 1019; do dmsetup message dustm 0 addbadblock $b 100 >/dev/null; done
dmsetup message dustm 0 enable >/dev/null
message_refused mf "a commit that reaches no copy refuses the remap" "remap of block 100 failed: the metadata commit failed" remap 800
check "status says metadata_failed and the error" sh -c "dmsetup status mf | grep -qE ' 0 0 metadata_failed 2 0/5 -5 0 - - 0 0 0$'"
message_refused mf "further remaps refused" "metadata writes failed: reload the table to try again" remap 1600
check "I/O passes through after the failure" write_read /dev/mapper/mf 7
dmsetup remove mf
dmsetup message dustm 0 disable >/dev/null
dmsetup message dustm 0 clearbadblocks >/dev/null
check "failing metadata: re-create loads the last good commit" dmsetup create mf --table "$ftable"
check "failing metadata: the committed remap only, 5 of 5 copies rewritten" sh -c "dmsetup status mf | grep -qE 'remap 1 1/[0-9]+ 0 0 ok [0-9]+ 5/5 0 0 - - 0 0 0$'"
check "failing metadata: the list holds block 300, the remap that was committed" sh -c "[ \"\$(dmsetup message mf 0 list | cut -d' ' -f1)\" = 300 ]"
check "failing metadata: the data is there" read_matches /dev/mapper/mf $((7 * 32))
dmsetup remove mf
dmsetup remove dustm
nullb_drop mf1
nullb_drop mf2
