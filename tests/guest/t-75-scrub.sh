# SPDX-License-Identifier: GPL-2.0
# Scrub (patrol read): every unreadable data block is found and made
# pending, none missed and none invented (dm-dust, scsi_debug medium
# errors); metadata blocks damaged in 1 to 4 copies are rewritten without a
# reload; an unreadable spare is reported; stop, suspend, reload and remove
# during a scrub. The spare low-water mark's one event per crossing. The
# counters survive a reload.
modprobe dm-dust

# scrub_wait DEV SECS: waits until DEV's scrub is no longer running or
# paused; succeeds when it is done.
scrub_wait() {
	sw=0
	while dmsetup status "$1" | grep -qE ' (running|paused):[0-9]+/[0-9]+ [0-9]+ [0-9]+ [0-9]+$' && [ $sw -lt $(($2 * 10)) ]; do
		sleep 0.1
		sw=$((sw + 1))
	done
	dmsetup status "$1" | grep -qE ' done:([0-9]+)/\1 [0-9]+ [0-9]+ [0-9]+$'
}
# scrub_done DEV: the units done, from the status line.
scrub_done() { dmsetup status "$1" | sed -n 's/.* [a-z]*:\([0-9]*\)\/[0-9]* [0-9]* [0-9]* [0-9]*$/\1/p'; }

# 1. dm-dust: 20 unreadable data blocks, and 3 remapped blocks (skipped:
# their data is on spares).
a=$(nullb_make sc1 64 512)
b=$(nullb_make sc2 8 512)
dmsetup create scdust --table "0 131072 dust $a 0 4096"
dmsetup message scdust 0 quiet >/dev/null
: >/tmp/sc-bad
i=1
while [ $i -le 20 ]; do
	blk=$(((i * 1543 + 7) % 16384))
	dmsetup message scdust 0 addbadblock $blk >/dev/null
	echo $blk >>/tmp/sc-bad
	i=$((i + 1))
done
sort -n /tmp/sc-bad >/tmp/sc-bad.sorted
table="0 131072 remap /dev/mapper/scdust 0 $b 0 16384 2 block_size 4096"
check "create" dmsetup create sc --table "$table"
for blk in 100 5000 16383; do dmsetup message sc 0 remap $((blk * 8)) >/dev/null; done
dmsetup message scdust 0 enable >/dev/null
check "status before any scrub: no scrub field" sh -c "dmsetup status sc | grep -qE ' - - 0 0 0$'"
dmesg -c >/dev/null
check "scrub start" dmsetup message sc 0 scrub start 1000
check "scrub: a second start is refused while it runs" sh -c "! dmsetup message sc 0 scrub start 2>/dev/null"
check "scrub: done" scrub_wait sc 120
dmsetup message sc 0 list | grep ' pending$' | cut -d' ' -f1 >/tmp/sc-pending
check "scrub: every unreadable block is pending, and no other" cmp /tmp/sc-pending /tmp/sc-bad.sorted
check "scrub: the remapped blocks stay remapped" sh -c "[ \$(dmsetup message sc 0 list | grep -vc pending) = 3 ]"
check "scrub: stats count 20 bad data blocks, nothing else bad" sh -c "[ $(stat_of sc scrub_bad_data_blocks) = 20 ] && [ $(stat_of sc scrub_bad_spares) = 0 ] && [ $(stat_of sc scrub_bad_metadata_blocks) = 0 ]"
check "scrub: status says 20 pending" [ "$(dmsetup status sc | cut -d' ' -f12)" = 20 ]
check "scrub: the kernel log names each block" sh -c "[ \$(dmesg | grep -c 'scrub: data block [0-9]* cannot be read') = 20 ]"
check "scrub: one pass, state done" sh -c "[ $(stat_of sc scrub_passes) = 1 ] && [ $(stat_of sc scrub_state) = done ]"
check "scrub: foreground counters untouched by scrub reads" [ "$(stat_of sc read_errors)" = 0 ]
# The pending blocks behave as after a failed foreground read.
blk=$(head -n 1 /tmp/sc-bad.sorted)
# dm-dust still fails the data block: the read is tried there (a pending
# block whose data is not lost may read again) and fails, counted, and the
# block stays pending.
re=$(stat_of sc read_errors)
check "pending after scrub: a read fails on the device, and the block stays pending" \
	sh -c "! dd if=/dev/mapper/sc of=/dev/null bs=4096 skip=$blk count=1 iflag=direct 2>/dev/null && [ \$(dmsetup message sc 0 stats | tr ' ' '\n' | sed -n 's/^read_errors=//p') -gt $re ] && dmsetup message sc 0 lookup $((blk * 8)) | grep -q pending"
dd if=/dev/urandom of=/tmp/sc-blk bs=4096 count=1 2>/dev/null
check "pending after scrub: a write relocates it" sh -c "dd if=/tmp/sc-blk of=/dev/mapper/sc bs=4096 seek=$blk count=1 oflag=direct conv=notrunc 2>/dev/null && dmsetup message sc 0 lookup $((blk * 8)) | grep -q 'remapped to spare'"
check "pending after scrub: the block reads back" sh -c "dd if=/dev/mapper/sc bs=4096 skip=$blk count=1 iflag=direct 2>/dev/null | cmp - /tmp/sc-blk"
# Counters survive a reload of the table (and a suspend), not a remove.
re=$(stat_of sc read_errors)
rd=$(stat_of sc reads)
check "counters: the failed read counted" [ "$re" = 1 ]
check "counters: reload" sh -c "dmsetup reload sc --table '$table' && dmsetup resume sc"
check "counters: read_errors and reads kept across the reload" sh -c "[ $(stat_of sc read_errors) = $re ] && [ $(stat_of sc reads) -ge $rd ]"
check "counters: status shows the kept read errors" [ "$(dmsetup status sc | cut -d' ' -f6)" = "$re" ]
dd if=/dev/mapper/sc of=/dev/null bs=4096 count=16 iflag=direct 2>/dev/null
check "counters: suspend and resume keep them too" sh -c "dmsetup suspend sc && dmsetup resume sc && [ $(stat_of sc reads) -ge $((rd + 16)) ] && [ $(stat_of sc read_errors) = $re ]"
check "counters: a new table has no scrub" sh -c "dmsetup status sc | grep -qE ' - - 0 0 0$'"

# 2. stop, suspend, reload and remove during a scrub, at 1 MiB/s.
dmsetup message scdust 0 disable >/dev/null
check "slow scrub start" dmsetup message sc 0 scrub start 1
sleep 1
check "slow scrub: running" sh -c "dmsetup status sc | grep -qE ' running:[0-9]+/[0-9]+ [0-9]+ [0-9]+ [0-9]+$'"
check "scrub stop" dmsetup message sc 0 scrub stop
d1=$(scrub_done sc)
sleep 1
check "scrub stop: stopped, and it stays where it was" sh -c "dmsetup status sc | grep -qE ' stopped:$d1/[0-9]+ [0-9]+ [0-9]+ [0-9]+$'"
check "scrub stop: a second stop is refused" sh -c "! dmsetup message sc 0 scrub stop 2>/dev/null"
dmsetup message sc 0 scrub start 1 >/dev/null
sleep 0.5
check "suspend during a scrub" dmsetup suspend sc
d1=$(scrub_done sc)
sleep 1
check "suspended: the scrub is paused where it was" sh -c "dmsetup status sc | grep -qE ' paused:$d1/[0-9]+ [0-9]+ [0-9]+ [0-9]+$'"
check "resume: the scrub goes on" dmsetup resume sc
sleep 1
check "resumed: running, further on" sh -c "dmsetup status sc | grep -qE ' running:[0-9]+/[0-9]+ [0-9]+ [0-9]+ [0-9]+$' && [ $(scrub_done sc) -gt $d1 ]"
bounded 30 "reload during a scrub" sh -c "dmsetup reload sc --table '$table' && dmsetup resume sc"
check "reload during a scrub: worked" [ "$(rc_of 'reload during a scrub')" = 0 ]
check "reload during a scrub: the new table has no scrub" sh -c "dmsetup status sc | grep -qE ' - - 0 0 0$'"
dmsetup message sc 0 scrub start 1 >/dev/null
sleep 0.5
bounded 30 "remove during a scrub" dmsetup remove sc
check "remove during a scrub: removed" sh -c "[ $(rc_of 'remove during a scrub') = 0 ] && ! dmsetup info sc >/dev/null 2>&1"
dmsetup remove scdust
nullb_drop sc1
nullb_drop sc2

# 3. Malformed scrub messages, and a read-only table.
a=$(nullb_make sc3 16 512)
dmsetup create scm --table "0 16384 remap $a 0 $a 16384 8192 2 block_size 4096"
for m in "scrub" "scrub go" "scrub start 1 2" "scrub stop now"; do
	# shellcheck disable=SC2086 # the message's words
	message_refused scm "refused: '$m'" "scrub takes 'start [<MiB/s>]' or 'stop', try 'help'" $m
done
for rate in 0 x 100001; do
	message_refused scm "refused: 'scrub start $rate'" "invalid scrub rate '$rate': MiB/s from 1 to" scrub start $rate
done
message_refused scm "refused: scrub stop with no scrub" "no scrub is running" scrub stop
dmsetup remove scm
check "read-only table: create" dmsetup create --readonly scm --table "0 16384 remap $a 0 $a 16384 8192 2 block_size 4096"
message_refused scm "read-only table: scrub refused" "the table is read-only" scrub start
dmsetup remove scm
nullb_drop sc3

# 4. scsi_debug medium errors: the scrub finds exactly the 8 bad sectors'
# block.
sd=$(scsi_debug_make 32 opts=2 medium_error_start=4096 medium_error_count=8)
h=$(nullb_make sc4 16 512)
if [ -z "$sd" ]; then
	fail "scsi_debug: disk" "no scsi_debug disk"
else
	dmsetup create scs --table "0 65536 remap $sd 0 $h 0 32768 2 block_size 4096"
	dmsetup message scs 0 scrub start 1000 >/dev/null
	check "scsi_debug: scrub done" scrub_wait scs 120
	check "scsi_debug: block 512 alone is pending" sh -c "[ \"\$(dmsetup message scs 0 list)\" = '512 pending' ]"
	dmsetup remove scs
	scsi_debug_drop
fi
nullb_drop sc4

# A run of unreadable blocks (a head scratch, a worn erase block): more
# than a step's share of failures (4), in one step's blocks; the scrub
# finds every one, whatever it reads per step.
r1=$(nullb_make sc7 16 512)
r2=$(nullb_make sc8 8 512)
dmsetup create scrun --table "0 32768 dust $r1 0 4096"
dmsetup message scrun 0 quiet >/dev/null
for blk in $(seq 320 335); do dmsetup message scrun 0 addbadblock $blk >/dev/null; done
dmsetup message scrun 0 enable >/dev/null
check "run of unreadable blocks: create" dmsetup create scr --table "0 32768 remap /dev/mapper/scrun 0 $r2 0 16384 2 block_size 4096"
dmsetup message scr 0 scrub start 1000 >/dev/null
check "run of unreadable blocks: scrub done" scrub_wait scr 60
check "run of unreadable blocks: all 16 found pending" sh -c "[ \"\$(dmsetup message scr 0 list | grep -c ' pending$')\" = 16 ] && [ $(stat_of scr scrub_bad_data_blocks) = 16 ]"
dmsetup remove scr
dmsetup remove scrun
nullb_drop sc7
nullb_drop sc8

# A slow failing disk: each read takes 0.5 s and one block of every 16
# fails (a step of 16 blocks then reads block by block: 7.5 s). `scrub
# stop` and a suspend end between two blocks, not after the step.
q1=$(NULLB_ATTRS="irqmode=2 completion_nsec=500000000" nullb_make sc9 16 512)
q2=$(nullb_make sc10 8 512)
dmsetup create scslow --table "0 32768 dust $q1 0 4096"
dmsetup message scslow 0 quiet >/dev/null
for blk in $(seq 0 16 1023); do dmsetup message scslow 0 addbadblock $blk >/dev/null; done
dmsetup message scslow 0 enable >/dev/null
check "slow disk: create" dmsetup create scw --table "0 32768 remap /dev/mapper/scslow 0 $q2 0 16384 2 block_size 4096"
dmsetup message scw 0 scrub start 1000 >/dev/null
sleep 2
dmsetup message scw 0 scrub stop >/dev/null &
check "slow disk: scrub stop ends within 3 s (between blocks, not after a 7.5 s step)" ends_within 3 $!
check "slow disk: the scrub is stopped" sh -c "dmsetup status scw | grep -qE ' stopped:[0-9]+/[0-9]+ [0-9]+ [0-9]+ [0-9]+$'"
dmsetup message scw 0 scrub start 1000 >/dev/null
sleep 2
dmsetup suspend scw &
check "slow disk: a suspend during a step ends within 3 s" ends_within 3 $!
check "slow disk: paused while suspended" sh -c "dmsetup status scw | grep -qE ' paused:[0-9]+/[0-9]+ [0-9]+ [0-9]+ [0-9]+$'"
dmsetup resume scw
dmsetup message scw 0 scrub stop >/dev/null
dmsetup remove scw
dmsetup remove scslow
nullb_drop sc9
nullb_drop sc10

# A bio kept while the scrub finds its spare unreadable: it fails on the
# spare (dm-dust) while a scrub step reads the spares before it slowly
# (0.3 s each), so its retry runs on the worker's queue after the step made
# the block pending with its data lost. A write must be relocated and read
# back, not written in place, where every load finds the block lost; a read
# must fail, not return the data block's older contents.
# kept_meets_scrub write|read
kept_meets_scrub() {
	local io=$1 what="kept $1 meets the scrub" spare rc
	v1=$(NULLB_ATTRS="irqmode=2 completion_nsec=300000000" nullb_make sc11 8 512)
	v0=$(nullb_make sc12 16 512)
	dmsetup create scwd --table "0 16384 dust $v1 0 4096"
	dmsetup message scwd 0 quiet >/dev/null
	check "$what: create" dmsetup create scx --table "0 32768 remap $v0 0 /dev/mapper/scwd 0 16384 2 block_size 4096"
	# Block 10's data block keeps older contents once it is remapped and
	# written again.
	head -c 4096 /dev/urandom >/tmp/scx-old
	head -c 4096 /dev/urandom >/tmp/scx-w
	dd if=/tmp/scx-old of=/dev/mapper/scx bs=4096 seek=10 count=1 oflag=direct conv=notrunc 2>/dev/null
	for blk in 1 2 3 4 5 6 7 8 9 10; do dmsetup message scx 0 remap $((blk * 8)) >/dev/null; done
	dd if=/tmp/scx-w of=/dev/mapper/scx bs=4096 seek=10 count=1 oflag=direct conv=notrunc 2>/dev/null
	spare=$(dmsetup message scx 0 lookup 80 | sed -n 's/.*remapped to spare block \([0-9]*\) .*/\1/p')
	dmsetup message scwd 0 addbadblock "$spare" 255 >/dev/null
	dmsetup message scwd 0 enable >/dev/null
	dmesg -c >/dev/null
	head -c 4096 /dev/urandom >/tmp/scx-w
	dmsetup message scx 0 scrub start 1000 >/dev/null
	# The spare phase begins once the 4096 data blocks are done.
	i=0
	until [ "$(scrub_done scx)" -ge 4096 ] 2>/dev/null || [ $i -ge 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	rm -f /tmp/scx-r /tmp/scx-rc
	if [ "$io" = write ]; then
		within 60 dd if=/tmp/scx-w of=/dev/mapper/scx bs=4096 seek=10 count=1 oflag=direct conv=notrunc
		rc=$?
	else
		# The read must still be kept when the scrub makes the block lost
		# (else it failed on the spare before, and proves nothing).
		(dd if=/dev/mapper/scx of=/tmp/scx-r bs=4096 skip=10 count=1 iflag=direct 2>/dev/null
			echo $? >/tmp/scx-rc) &
		pid=$!
		i=0
		until dmesg | grep -q 'the data of block 10 is lost' || [ $i -ge 600 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		kill -0 $pid 2>/dev/null
		kept=$?
		ends_within 60 $pid
		rc=$(cat /tmp/scx-rc 2>/dev/null || echo 255)
		check "$what: the read was still kept when the scrub made its block lost" [ $kept = 0 ]
	fi
	scrub_wait scx 120
	check "$what: the scrub found block 10's spare unreadable, the $io failed there first" \
		sh -c "dmesg | grep -q 'spare block $spare of data block 10 cannot be read' && [ $(stat_of scx ${io}_errors) -ge 1 ]"
	if [ "$io" = write ]; then
		check "$what: the write is acknowledged" [ $rc = 0 ]
		check "$what: it reads back (relocated, not written in place)" \
			sh -c "dd if=/dev/mapper/scx bs=4096 skip=10 count=1 iflag=direct 2>/dev/null | cmp - /tmp/scx-w && dmsetup message scx 0 lookup 80 | grep -q 'remapped to spare'"
	else
		check "$what: the read fails, not the data block's older contents" \
			sh -c "[ $rc != 0 ] && [ $rc != 255 ] && ! cmp -s /tmp/scx-r /tmp/scx-old"
		check "$what: the block stays pending and lost (counted), and reads fail" \
			sh -c "dmsetup message scx 0 list | grep -qx '10 pending lost' && [ '$(lost_of scx)' = '1 1' ] && ! dd if=/dev/mapper/scx of=/dev/null bs=4096 skip=10 count=1 iflag=direct 2>/dev/null"
	fi
	dmsetup remove scx
	dmsetup remove scwd
	nullb_drop sc11
	nullb_drop sc12
}
kept_meets_scrub write
kept_meets_scrub read

# A spare device that fails every read for a while (dm-flakey,
# error_reads: a cable, a controller reset) while the scrub reads the
# spares: the spares are not lost, their device is down. Nothing is marked
# lost, and the data reads back once the device answers again. Two shapes:
# 4 KiB blocks, and 512-byte blocks.
spare_device_down() {
	local bs=$1 what="spare device down ($1-byte blocks)" i
	modprobe dm-flakey
	x=$(nullb_make sc13 16 512)
	y=$(nullb_make sc14 8 512)
	dmsetup create scfl --table "0 16384 flakey $y 0 3600 0"
	check "$what: create" dmsetup create scf --table "0 32768 remap $x 0 /dev/mapper/scfl 0 16384 2 block_size $bs"
	dd if=/dev/urandom of=/tmp/scf-data bs=4096 count=16 2>/dev/null
	dd if=/tmp/scf-data of=/dev/mapper/scf bs=4096 count=16 oflag=direct 2>/dev/null
	for i in $(seq 0 9); do dmsetup message scf 0 remap $((i * 8)) >/dev/null; done
	dmsetup suspend scfl
	dmsetup reload scfl --table "0 16384 flakey $y 0 0 3600 1 error_reads"
	dmsetup resume scfl
	dmesg -c >/dev/null
	dmsetup message scf 0 scrub start 1000 >/dev/null
	scrub_wait scf 120
	check "$what: the scrub stopped at the first unreadable spare, none counted" \
		sh -c "[ $(stat_of scf scrub_state) = stopped ] && [ $(stat_of scf scrub_bad_spares) = 0 ]"
	check "$what: the kernel log says the spare device is down" \
		sh -c "dmesg | grep -q 'scrub: the spare device fails every read' && dmesg | grep -q 'scrub stopped: the spare device fails every read'"
	check "$what: nothing marked lost or pending, nothing retired" \
		sh -c "[ '$(lost_of scf)' = '0 0' ] && [ $(stat_of scf pending_blocks) = 0 ] && [ $(stat_of scf spares_retired) = 0 ] && [ \$(dmsetup message scf 0 list | grep -c .) = 10 ]"
	dmsetup suspend scfl
	dmsetup reload scfl --table "0 16384 flakey $y 0 3600 0"
	dmsetup resume scfl
	check "$what: the device back, the remapped blocks read back" \
		sh -c "dd if=/dev/mapper/scf bs=4096 count=16 iflag=direct 2>/dev/null | cmp - /tmp/scf-data"
	dmsetup remove scf
	dmsetup remove scfl
	nullb_drop sc13
	nullb_drop sc14
}
spare_device_down 4096
spare_device_down 512

# 5. An unreadable spare: reported, its data lost.
a=$(nullb_make sc5 16 512)
b=$(nullb_make sc6 8 512)
dmsetup create scsp --table "0 16384 dust $b 0 4096"
dmsetup message scsp 0 quiet >/dev/null
check "spare: create" dmsetup create scp --table "0 32768 remap $a 0 /dev/mapper/scsp 0 16384 2 block_size 4096"
dmsetup message scp 0 remap $((7 * 8)) >/dev/null
spare=$(dmsetup message scp 0 lookup $((7 * 8)) | sed -n 's/.*remapped to spare block \([0-9]*\) .*/\1/p')
dmsetup message scsp 0 addbadblock "$spare" >/dev/null
dmsetup message scsp 0 enable >/dev/null
dmesg -c >/dev/null
dmsetup message scp 0 scrub start 1000 >/dev/null
check "spare: scrub done" scrub_wait scp 60
check "spare: counted" [ "$(stat_of scp scrub_bad_spares)" = 1 ]
check "spare: the kernel log says block 7's data is lost" sh -c "dmesg | grep -q 'spare block $spare of data block 7 cannot be read: the data of block 7 is lost'"
check "spare: block 7 is pending, its data lost, and the spare retired" sh -c "dmsetup message scp 0 list | grep -qx '7 pending lost' && [ $(stat_of scp spares_retired) = 1 ] && [ $(stat_of scp pending_blocks) = 1 ]"
check "spare: status and stats count 1 lost block" [ "$(lost_of scp)" = "1 1" ]
dd if=$a of=/tmp/sc-7-data bs=4096 skip=7 count=1 iflag=direct 2>/dev/null
check "spare: the data block under block 7 reads (older data)" [ -s /tmp/sc-7-data ]
check "spare: a read of block 7 fails at once, failed by the target" read_failed_by_target scp 7
dd if=/dev/urandom of=/tmp/sc-7 bs=4096 count=1 2>/dev/null
check "spare: a write relocates block 7 to a new spare" sh -c "dd if=/tmp/sc-7 of=/dev/mapper/scp bs=4096 seek=7 count=1 oflag=direct conv=notrunc 2>/dev/null && dmsetup message scp 0 lookup 56 | grep -q 'remapped to spare'"
check "spare: block 7 reads back what was written" sh -c "dd if=/dev/mapper/scp bs=4096 skip=7 count=1 iflag=direct 2>/dev/null | cmp - /tmp/sc-7"
check "spare: relocated, 0 lost" [ "$(lost_of scp)" = "0 0" ]
dmsetup remove scp
dmsetup create scp --table "0 32768 remap $a 0 /dev/mapper/scsp 0 16384 2 block_size 4096"
dmsetup message scp 0 remap $((9 * 8)) >/dev/null
spare=$(dmsetup message scp 0 lookup $((9 * 8)) | sed -n 's/.*remapped to spare block \([0-9]*\) .*/\1/p')
dmsetup message scsp 0 addbadblock "$spare" >/dev/null
dmsetup message scp 0 scrub start 1000 >/dev/null
scrub_wait scp 60
check "spare: the lost state survives a re-create" sh -c "dmsetup remove scp && dmsetup create scp --table '0 32768 remap $a 0 /dev/mapper/scsp 0 16384 2 block_size 4096' && dmsetup message scp 0 list | grep -qx '9 pending lost' && ! dd if=/dev/mapper/scp of=/dev/null bs=4096 skip=9 count=1 iflag=direct 2>/dev/null"
check "spare: re-created, status and stats still count it lost" [ "$(lost_of scp)" = "1 1" ]
# A write that relocates lost block 9, whose commit may be on disk (every
# superblock write fails after it is issued): the block is fenced, and a
# load may find it lost still, so reads fail; its data block holds older
# data, which must not be served.
for st in $(copy_layout 2048 4096 | cut -d' ' -f2-); do
	dmsetup message scsp 0 addbadblock "$st" 255 >/dev/null
done
failed=$(stat_of scp failed_bios)
dmesg -c >/dev/null
within 30 dd if=/tmp/sc-7 of=/dev/mapper/scp bs=4096 seek=9 count=1 oflag=direct conv=notrunc
wrc=$?
check "fenced lost pending: the write ends, not acknowledged, failed by the target (its commit failed)" sh -c "[ $wrc != 0 ] && [ $wrc != 255 ] && [ $(stat_of scp failed_bios) -gt $failed ] && dmesg | grep -q 'block 9 is fenced'"
check "fenced lost pending: list says '9 fenced lost'" sh -c "dmsetup message scp 0 list | grep -qx '9 fenced lost'"
check "fenced lost pending: still counted lost" [ "$(lost_of scp)" = "1 1" ]
check "fenced lost pending: a read fails, not the data block's older data" sh -c "! dd if=/dev/mapper/scp of=/dev/null bs=4096 skip=9 count=1 iflag=direct 2>/dev/null"
dmsetup remove scp
dmsetup remove scsp
nullb_drop sc5
nullb_drop sc6

# 6. Metadata: a block damaged in 1 to 4 copies is found by scrub and its
# copies rewritten, without a reload: 5 of 5 again, and remapctl check
# finds nothing once the device is closed.
a=$(nullb_make sc7 32 512)
remapctl format $a >/dev/null
remapctl open $a scmd >/dev/null
dmsetup message scmd 0 remap 8 >/dev/null
remapctl close scmd
meta_geometry $a
remapctl open $a scmd >/dev/null
for k in 1 2 3 4; do
	c=0
	while [ $c -lt $k ]; do
		meta_damage $a $c 1
		c=$((c + 1))
	done
	dmsetup message scmd 0 scrub start 1000 >/dev/null
	check "metadata block 1 damaged in $k copies: scrub done" scrub_wait scmd 60
	check "metadata block 1 damaged in $k copies: $k found, $k copies rewritten" sh -c "[ $(stat_of scmd scrub_bad_metadata_blocks) = $k ] && [ $(stat_of scmd scrub_copies_rewritten) = $k ]"
	check "metadata block 1 damaged in $k copies: 5 of 5 intact, no error" sh -c "dmsetup status scmd | grep -qE ' ok [0-9]+ 5/5 0 0 - done:'"
done
# Every commit writes the superblock of every copy: the first rewrite
# heals the other damaged superblocks too.
for c in 0 1 2 3; do meta_damage $a $c 0; done
dmsetup message scmd 0 scrub start 1000 >/dev/null
check "superblock damaged in 4 copies: scrub done" scrub_wait scmd 60
check "superblock damaged in 4 copies: found, and one commit rewrote them all" sh -c "[ $(stat_of scmd scrub_bad_metadata_blocks) = 1 ] && [ $(stat_of scmd scrub_copies_rewritten) = 1 ]"
check "superblock damaged in 4 copies: 5 of 5 intact, no error" sh -c "dmsetup status scmd | grep -qE ' ok [0-9]+ 5/5 0 0 - done:'"
remapctl close scmd
check "metadata: remapctl check is clean after the scrubs" remapctl check -q $a
check "metadata: the remap survived" sh -c "remapctl dump $a | grep -q '^remap 1 '"
nullb_drop sc7

# 7. The spare low-water mark: one event when free spares fall below it
# (every remap raises a table event too: the kernel log counts the
# low-water ones), none while they stay below, armed again once above.
a=$(nullb_make sc8 16 512)
b=$(nullb_make sc9 1 512)
lw="0 32768 remap $a 0 $b 0 2048 4 block_size 4096 spare_low_water 90"
check "low water: create" dmsetup create sclw --table "$lw"
check "low water: dmsetup table prints it back" sh -c "dmsetup table sclw | grep -q ' 4 block_size 4096 spare_low_water 90$'"
events() { dmsetup info sclw | sed -n 's/^Event number: *//p'; }
lows() { dmesg | grep -c 'free spares fell below the low-water mark'; }
total=$(stat_of sclw spares_total)
dmesg -c >/dev/null
n=0
early=0
while ! dmsetup status sclw | grep -q ' low_water '; do
	[ "$(lows)" = 0 ] || early=1
	e=$(events)
	dmsetup message sclw 0 remap $((n * 8)) >/dev/null || break
	n=$((n + 1))
done
echo "low water: crossed after $n of $total spares"
check "low water: not reported before the crossing" [ $early = 0 ]
check "low water: crossed where free spares fell below 90%" sh -c "[ $(((total - n) * 100)) -lt $((90 * total)) ] && [ $(((total - n + 1) * 100)) -ge $((90 * total)) ]"
check "low water: reported once, with the figures" sh -c "[ $(lows) = 1 ] && dmesg | grep -q 'below the low-water mark: $((total - n)) of $total left'"
check "low water: dmsetup wait returns after the crossing (every remap raises a table event)" within 5 dmsetup wait sclw "$e"
check "low water: stats say so" [ "$(stat_of sclw low_water)" = 1 ]
for i in 1 2 3; do dmsetup message sclw 0 remap $(((n + i) * 8)) >/dev/null; done
check "low water: not again while below" [ "$(lows)" = 1 ]
for blk in $((n + 1)) $((n + 2)) $((n + 3)) $((n - 1)) $((n - 2)) $((n - 3)); do dmsetup message sclw 0 unremap $((blk * 8)) >/dev/null; done
check "low water: above again: the flag is gone" sh -c "dmsetup status sclw | grep -qE ' - - 0 0 0$' && [ $(stat_of sclw low_water) = 0 ] && [ $(lows) = 1 ]"
for i in 1 2 3 4 5 6; do dmsetup message sclw 0 remap $(((n + 10 + i) * 8)) >/dev/null; done
check "low water: crossed again, reported again" [ "$(lows)" = 2 ]
check "low water: a reload below the mark shows it, without a report" sh -c "dmsetup reload sclw --table '$lw' && dmsetup resume sclw && dmsetup status sclw | grep -qE ' low_water - 0 0 0$' && [ $(lows) = 2 ]"
dmsetup remove sclw
refused "refused: spare_low_water 101" "spare_low_water must be a percentage from 0 to 100" "0 32768 remap $a 0 $b 0 2048 2 spare_low_water 101"
nullb_drop sc8
nullb_drop sc9
