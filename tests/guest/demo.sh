# SPDX-License-Identifier: GPL-2.0
# The demonstration: the example disk (/dev/vda, 64 MiB) gets 48 bad 4 KiB
# blocks (dm-dust: reads and writes of them fail). remapctl formats it
# (data area from 1 MiB, an 8 MiB spare area at the end) and opens it; the
# remap device carries an ext4 filesystem that is made, filled and checked
# while writes fail underneath; then the device is closed, checked offline,
# opened again with nothing but the disk, and every file verified again.
. /tests/lib.sh
step() { printf '\n>>> %s\n' "$*"; }
run() {
	echo "# $*"
	"$@"
}
die() {
	echo "DEMO FAILED: $*"
	exit 1
}
show_stats() {
	echo '# dmsetup message demo 0 stats    (the counters that matter here)'
	dmsetup message demo 0 stats | tr ' ' '\n' |
		grep -E '^(write_errors|read_errors|transient_errors|auto_remaps|pending_blocks|failed_bios|remapped_blocks|spares_used|spares_total|commits)=' |
		tr '\n' ' '
	echo
}
explain_status() {
	echo "  (fields after 'remap': remapped blocks, spares used/total, read errors, write errors,"
	echo "   state, metadata generation, intact metadata copies/5, last metadata error, pending blocks,"
	echo "   low-water flag, scrub progress, blocks whose data is lost)"
}

step "load the module: the remap target type registers with device-mapper"
run modprobe dm-remap || die "modprobe"
modprobe dm-dust || die "modprobe dm-dust"
echo '# dmsetup targets | grep remap'
dmsetup targets | grep remap || die "remap target not registered"

disk=/dev/vda
total=$(blockdev --getsz $disk)
# remapctl's layout: labels in the first and last 4 KiB, data from 1 MiB
# (block 256), the spare area after it; the bad blocks lie in the data area.
spare_len=16384
data_blocks=$(((total - 2048 - spare_len) / 8 - 1))
step "the example disk $disk ($total sectors) gets 48 bad 4 KiB blocks in its data area"
run dmsetup create baddisk --table "0 $total dust $disk 0 4096" || die "dust"
dmsetup message baddisk 0 quiet >/dev/null
: >/tmp/bad
i=0
while [ $i -lt 48 ]; do
	blk=$(((i * 293 + 100) % data_blocks))
	dmsetup message baddisk 0 addbadblock $((blk + 256)) 255 >/dev/null || die "addbadblock $blk"
	echo $blk >>/tmp/bad
	i=$((i + 1))
done
echo "# for each of 48 blocks: dmsetup message baddisk 0 addbadblock <block> 255"
run dmsetup message baddisk 0 enable
run dmsetup message baddisk 0 countbadblocks
bad1=$(head -n 1 /tmp/bad)
echo "# a write to bad block $((bad1 + 256)) of the bare disk fails:"
echo "# dd if=/dev/zero of=/dev/mapper/baddisk bs=4096 seek=$((bad1 + 256)) count=1 oflag=direct"
if dd if=/dev/zero of=/dev/mapper/baddisk bs=4096 seek=$((bad1 + 256)) count=1 oflag=direct conv=notrunc 2>/tmp/dd.err; then
	die "the bad block took a write"
fi
grep -m1 -i error /tmp/dd.err

disk=/dev/mapper/baddisk
step "remapctl formats the disk (an 8 MiB spare area) and opens it: nobody types a table line"
run remapctl format --spare-size 8M $disk || die "format"
run remapctl open $disk demo || die "open"
echo "# the table line remapctl derived from the disk's label (dmsetup users can type it):"
run dmsetup table demo
run dmsetup status demo
explain_status

step "make an ext4 filesystem through remap, fill it, check it: the bad blocks fail underneath"
run mkfs_ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 /dev/mapper/demo || die "mkfs"
mkdir -p /mnt/demo
run mount -t ext4 /dev/mapper/demo /mnt/demo || die "mount"
echo "# cp -a /lib/modules /sbin/fio /sbin/dmsetup /mnt/demo/; dd if=/dev/urandom of=/mnt/demo/random.bin bs=1M count=24"
cp -a /lib/modules /sbin/fio /sbin/dmsetup /mnt/demo/ || die "copy"
dd if=/dev/urandom of=/mnt/demo/random.bin bs=1M count=24 2>/dev/null || die "fill"
(cd /mnt/demo && find . -type f | sort | xargs md5sum >/tmp/demo.md5)
echo "$(wc -l </tmp/demo.md5) files written, $(du -sh /mnt/demo | cut -f1) in all, no error seen by ext4"
run umount /mnt/demo || die "umount"
run fsck_ext4 -fn /dev/mapper/demo || die "fsck"
run dmsetup status demo
explain_status
show_stats
remapped=$(stat_of demo remapped_blocks)
[ "$remapped" -gt 0 ] || die "nothing was remapped"
[ "$(stat_of demo failed_bios)" = 0 ] || die "an error reached the filesystem"
echo "$remapped of the 48 bad blocks were written and moved to spares; the others hold no data yet"
echo '# dmsetup message demo 0 list 0 5    (block, spare block)'
dmsetup message demo 0 list 0 5

step "a read of a bad block that holds no data yet fails once: the block becomes pending"
dmsetup message demo 0 list | cut -d' ' -f1 >/tmp/remapped
unread=$(grep -vxF -f /tmp/remapped /tmp/bad | head -n 1)
echo "# dd if=/dev/mapper/demo of=/dev/null bs=4096 skip=$unread count=1 iflag=direct"
if dd if=/dev/mapper/demo of=/dev/null bs=4096 skip=$unread count=1 iflag=direct 2>/tmp/dd.err; then
	die "the bad block was read"
fi
grep -m1 -i error /tmp/dd.err
run dmsetup message demo 0 lookup $((unread * 8))
echo "# the next write to it goes to a spare:"
echo "# dd if=/dev/zero of=/dev/mapper/demo bs=4096 seek=$unread count=1 oflag=direct"
dd if=/dev/zero of=/dev/mapper/demo bs=4096 seek=$unread count=1 oflag=direct conv=notrunc 2>/dev/null || die "write to the pending block"
run dmsetup message demo 0 lookup $((unread * 8))

step "close the device, check the metadata offline, open it again from the disk alone: the remaps are in the on-disk metadata (5 copies in the spare area)"
run remapctl status demo
run remapctl close demo || die "close"
run remapctl check $disk || die "check"
echo "# remapctl dump $disk | head -n 8"
remapctl dump $disk | head -n 8
run remapctl open $disk demo || die "open again"
dmesg | grep 'metadata generation .* loaded' | tail -n 1 | sed 's/^\[[^]]*\] /# kernel: /'
run dmsetup status demo
[ "$(stat_of demo remapped_blocks)" = $((remapped + 1)) ] || die "the remaps did not come back"
run mount -t ext4 -o ro /dev/mapper/demo /mnt/demo || die "mount again"
(cd /mnt/demo && md5sum -c /tmp/demo.md5 >/tmp/demo.check 2>&1) || die "verify: $(grep -v OK /tmp/demo.check | head -3)"
echo "all $(grep -c ': OK' /tmp/demo.check) files verified through the reloaded remaps"
run umount /mnt/demo
run fsck_ext4 -fn /dev/mapper/demo || die "fsck after opening again"

step "watch it: remapctl monitor waits for device-mapper events and logs each change; a scrub reads every block in the background and finds the bad blocks nothing has touched yet"
remapctl monitor demo 2>/tmp/monitor.log &
mpid=$!
sleep 1
# --wait follows the scrub to its end; it exits 1 when it found bad blocks.
echo "# remapctl scrub start --rate 64 --wait demo"
rc=0
remapctl scrub start --rate 64 --wait demo || rc=$?
[ $rc = 1 ] || die "the scrub should have found the bad blocks nothing had touched (exit $rc)"
run remapctl scrub status demo
sleep 1
kill $mpid
wait $mpid 2>/dev/null
echo "# the monitor's log (stderr; with a /dev/log, the journal too):"
cat /tmp/monitor.log
grep -q 'scrub finished' /tmp/monitor.log || die "the monitor did not see the scrub end"
run remapctl status demo
echo "# remapctl monitor --once --textfile /tmp demo; grep -v '^#' /tmp/dm_remap.prom"
remapctl monitor --once --textfile /tmp demo 2>/dev/null
grep -v '^#' /tmp/dm_remap.prom
run remapctl close demo
run dmsetup remove baddisk
echo "DEMO OK"
