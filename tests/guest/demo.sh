# SPDX-License-Identifier: GPL-2.0
# The demonstration: a remap device on the example disk (/dev/vda, 64 MiB),
# with the last 8 MiB as spare area, carrying an ext4 filesystem through a
# remove and re-create.
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

step "load the module: the remap target type registers with device-mapper"
run modprobe dm-remap || die "modprobe"
echo '# dmsetup targets | grep remap'
dmsetup targets | grep remap || die "remap target not registered"

disk=/dev/vda
total=$(blockdev --getsz $disk)
spare_len=16384
data_len=$((total - spare_len))
echo "example disk $disk: $total sectors; data area 0..$data_len, spare area $data_len..$total"

step "create the remap device: data and spare area on the same disk"
run dmsetup create demo --table "0 $data_len remap $disk 0 $disk $data_len $spare_len" || die "create"
run dmsetup table demo
run dmsetup status demo
run dmsetup message demo 0 help

step "make an ext4 filesystem through remap and fill it"
run mkfs_ext4 -q -F /dev/mapper/demo || die "mkfs"
mkdir -p /mnt/demo
run mount -t ext4 /dev/mapper/demo /mnt/demo || die "mount"
cp -a /lib/modules /mnt/demo/ && cp /sbin/fio /sbin/dmsetup /mnt/demo/ || die "copy"
dd if=/dev/urandom of=/mnt/demo/random.bin bs=1M count=8 2>/dev/null
(cd /mnt/demo && find . -type f | sort | xargs md5sum >/tmp/demo.md5)
echo "$(wc -l </tmp/demo.md5) files written, $(du -sh /mnt/demo | cut -f1) in all"
run umount /mnt/demo
run fsck_ext4 -fn /dev/mapper/demo || die "fsck"

step "move blocks to spares by hand, then read every file through them"
echo '# for sec in 8000 9000 ... 60000; do dmsetup message demo 0 remap $sec; done'
for sec in $(seq 8000 1000 60000); do
	dmsetup message demo 0 remap $sec || die "remap $sec"
done >/tmp/remaps
head -n 3 /tmp/remaps
echo "... $(wc -l </tmp/remaps) blocks remapped"
run dmsetup status demo
echo '# dmsetup message demo 0 list 0 4'
dmsetup message demo 0 list 0 4
echo 3 >/proc/sys/vm/drop_caches
run mount -t ext4 -o ro /dev/mapper/demo /mnt/demo || die "mount"
(cd /mnt/demo && md5sum -c /tmp/demo.md5 >/tmp/demo.check 2>&1) || die "verify: $(grep -v OK /tmp/demo.check | head -3)"
echo "all $(grep -c ': OK' /tmp/demo.check) files verified through the remapped blocks"
run umount /mnt/demo
echo '# dmsetup message demo 0 stats'
dmsetup message demo 0 stats | tr ' ' '\n' | grep -E '^(reads|remapped_reads|splits|spares_used|spares_total)='

step "remove the device and re-create it from the line dmsetup table printed: the remaps are in the on-disk metadata (5 copies in the spare area)"
line=$(dmsetup table demo)
run dmsetup remove demo
run dmsetup create demo --table "$line" || die "re-create"
dmesg | grep 'metadata generation' | tail -n 1 | sed 's/^\[[^]]*\] /# kernel: /'
run dmsetup status demo
[ "$(dmsetup status demo | cut -d' ' -f4)" = 53 ] || die "the remaps did not come back"
run mount -t ext4 -o ro /dev/mapper/demo /mnt/demo || die "mount again"
(cd /mnt/demo && md5sum -c /tmp/demo.md5 >/tmp/demo.check 2>&1) || die "verify: $(grep -v OK /tmp/demo.check | head -3)"
echo "all $(grep -c ': OK' /tmp/demo.check) files verified through the reloaded remaps"
run umount /mnt/demo

step "move them back: data copied to the data blocks, spares freed, each change committed"
for sec in $(seq 8000 1000 60000); do
	dmsetup message demo 0 unremap $sec >/dev/null || die "unremap $sec"
done
echo "# dmsetup message demo 0 unremap ... (53 blocks copied back)"
run dmsetup status demo

step "the filesystem went to the example disk itself, at data_offset 0"
echo "# dd if=$disk bs=1 skip=1080 count=2 | od -An -tx1    (the ext4 superblock magic)"
magic=$(dd if=$disk bs=1 skip=1080 count=2 2>/dev/null | od -An -tx1 | tr -d ' ')
echo "$magic"
[ "$magic" = 53ef ] || die "no ext4 magic on $disk"
run mount -t ext4 -o ro /dev/mapper/demo /mnt/demo || die "mount"
(cd /mnt/demo && md5sum -c /tmp/demo.md5 >/tmp/demo.check 2>&1) || die "verify: $(grep -v OK /tmp/demo.check | head -3)"
echo "all $(grep -c ': OK' /tmp/demo.check) files verified after unremap"
run umount /mnt/demo
run dmsetup remove demo
echo "DEMO OK"
