# SPDX-License-Identifier: GPL-2.0
# remapctl monitor: --once and the textfile show the figures that status
# shows; the running monitor (woken by device-mapper events) logs one line
# for each kind of change provoked here, to stderr and to the system log.
# remapctl import: a badblocks list's readable blocks are remapped with
# their data, unreadable ones made pending; bad lists are refused.
modprobe dm-dust

# mon_wait PATTERN: waits up to 30 s for a monitor line matching PATTERN.
mon_wait() {
	mw=0
	while ! grep -q "$1" /tmp/mon.err && [ $mw -lt 300 ]; do
		sleep 0.1
		mw=$((mw + 1))
	done
	grep -q "$1" /tmp/mon.err
}

a=$(nullb_make mo1 32 512)
b=$(nullb_make mo2 4 512)
dmsetup create modata --table "0 65536 dust $a 0 4096"
dmsetup message modata 0 quiet >/dev/null
dmsetup create mospare --table "0 8192 dust $b 0 4096"
dmsetup message mospare 0 quiet >/dev/null
table="0 65536 remap /dev/mapper/modata 0 /dev/mapper/mospare 0 8192 4 block_size 4096 spare_low_water 99"
check "create" dmsetup create mo --table "$table"

# --once and the textfile.
check "monitor --once: a healthy device exits 0" remapctl monitor --once mo
mkdir -p /tmp/prom
check "monitor --once --textfile: writes dm_remap.prom, nothing else" sh -c "remapctl monitor --once --textfile /tmp/prom mo 2>/dev/null && [ \"\$(ls -A /tmp/prom)\" = dm_remap.prom ]"
total=$(dmsetup status mo | cut -d' ' -f5 | cut -d/ -f2)
check "textfile: spares total as status shows" grep -qx "dm_remap_spares_total{device=\"mo\"} $total" /tmp/prom/dm_remap.prom
check "textfile: 0 remapped, 0 pending, 5 of 5 copies" sh -c "grep -qx 'dm_remap_remapped_blocks{device=\"mo\"} 0' /tmp/prom/dm_remap.prom && grep -qx 'dm_remap_pending_blocks{device=\"mo\"} 0' /tmp/prom/dm_remap.prom && grep -qx 'dm_remap_metadata_copies_intact{device=\"mo\"} 5' /tmp/prom/dm_remap.prom"
check "monitor --once: a device that does not exist exits 4" sh -c "remapctl monitor --once nosuch 2>/dev/null; [ \$? = 4 ]"

# The running monitor. (The test kernel has no Unix sockets, so no
# /dev/log: the lines sent to the system log are checked by cargo test.)
remapctl monitor --textfile /tmp/prom 2>/tmp/mon.err &
mpid=$!
check "monitor: says it watches the device" mon_wait 'mo: monitoring: mo: ok'
dmsetup message mo 0 remap 8 >/dev/null
dmsetup message mo 0 remap 16 >/dev/null
check "monitor: new remaps" mon_wait 'new remapped blocks (2 remapped'
dmsetup message modata 0 addbadblock 1000 >/dev/null
dmsetup message modata 0 addbadblock 2000 >/dev/null
dmsetup message modata 0 enable >/dev/null
dd if=/dev/mapper/mo of=/dev/null bs=4096 skip=1000 count=1 iflag=direct 2>/dev/null
check "monitor: a new pending block" mon_wait 'mo: 1 new pending (unreadable) blocks (1 pending'
check "textfile: the pending block and the remaps" sh -c "grep -qx 'dm_remap_pending_blocks{device=\"mo\"} 1' /tmp/prom/dm_remap.prom && grep -qx 'dm_remap_remapped_blocks{device=\"mo\"} 2' /tmp/prom/dm_remap.prom"
n=3
while ! dmsetup status mo | grep -q ' low_water ' && [ $n -lt 100 ]; do
	dmsetup message mo 0 remap $((n * 8)) >/dev/null
	n=$((n + 1))
done
check "monitor: the low-water mark" mon_wait 'mo: free spares fell below the low-water mark'
dmsetup message mo 0 scrub start 1000 >/dev/null
check "monitor: the scrub's end and what it found" mon_wait 'mo: scrub finished: 1 unreadable data blocks, 0 unreadable spares'
check "textfile: the scrub's figures" sh -c "grep -qx 'dm_remap_scrub_bad_blocks{device=\"mo\"} 1' /tmp/prom/dm_remap.prom && grep -qx 'dm_remap_scrub_running{device=\"mo\"} 0' /tmp/prom/dm_remap.prom"
# Copy 1's superblock fails its writes: the next commit misses that copy.
dmsetup message mospare 0 addbadblock 254 255 >/dev/null
dmsetup message mospare 0 enable >/dev/null
dmsetup message mo 0 remap $((200 * 8)) >/dev/null
check "monitor: a damaged metadata copy" mon_wait 'mo: metadata copies damaged: [0-4] of 5 intact'
# The writer does not retry the failing copy in a loop: it waits for the
# next change (found by this test: it rewrote the copy without end).
c1=$(stat_of mo commits)
sleep 1
check "a copy whose writes keep failing: no commit loop" [ "$(stat_of mo commits)" = "$c1" ]
dust_super mospare
dmsetup message mo 0 remap $((201 * 8)) >/dev/null 2>&1
check "monitor: metadata_failed" mon_wait 'mo: metadata_failed'
# A second device, found by the monitor that watches every remap device,
# runs out of spares.
c=$(nullb_make mo3 16 512)
dmsetup create mox --table "0 16384 remap $c 0 $c 16384 256 2 block_size 4096"
check "monitor: a new device is watched" mon_wait 'mox: monitoring'
i=0
while dmsetup message mox 0 remap $((i * 8)) >/dev/null 2>&1 && [ $i -lt 64 ]; do i=$((i + 1)); done
dd if=/dev/zero of=/tmp/mox-blk bs=4096 count=1 2>/dev/null
check "monitor: spares exhausted" mon_wait 'mox: no free spare left'
kill $mpid
wait $mpid 2>/dev/null
check "monitor: the low-water mark said once" [ "$(grep -c 'low-water mark' /tmp/mon.err)" = 1 ]
echo "--- monitor log"
cat /tmp/mon.err
dmsetup remove mox
dmsetup remove mo
dmsetup remove mospare
dmsetup remove modata
nullb_drop mo3

# import: a badblocks -o list in 1 KiB blocks. Blocks 400-403 (remap
# block 100) and 4000 (1000) still read; 8000 and 8004 (2000, 2001) do not.
dmsetup create modata --table "0 65536 dust $a 0 4096"
dmsetup message modata 0 quiet >/dev/null
nullb_drop mo2
b=$(nullb_make mo2 4 512)
check "import: create" dmsetup create mi --table "0 65536 remap /dev/mapper/modata 0 $b 0 8192 2 block_size 4096"
dd if=/dev/urandom of=/tmp/mi-100 bs=4096 count=1 2>/dev/null
dd if=/tmp/mi-100 of=/dev/mapper/mi bs=4096 seek=100 count=1 oflag=direct conv=notrunc 2>/dev/null
dmsetup message modata 0 addbadblock 2000 >/dev/null
dmsetup message modata 0 addbadblock 2001 >/dev/null
dmsetup message modata 0 enable >/dev/null
printf '400\n401\n403\n4000\n8000\n8004\n' >/tmp/mi-list
check "import: runs" sh -c "remapctl import mi /tmp/mi-list >/tmp/mi.out"
cat /tmp/mi.out
check "import: 2 remapped, 2 pending" grep -q ': 6 listed blocks of 1024 bytes cover 4 blocks of 4096: 2 remapped, 0 remapped with their data lost, 2 pending, 0 already' /tmp/mi.out
check "import: the readable blocks are remapped" sh -c "dmsetup message mi 0 lookup 800 | grep -q 'remapped to spare' && dmsetup message mi 0 lookup 8000 | grep -q 'remapped to spare'"
check "import: the unreadable ones are pending" sh -c "dmsetup message mi 0 lookup 16000 | grep -q pending && dmsetup message mi 0 lookup 16008 | grep -q pending"
check "import: a remapped block kept its data" sh -c "dd if=/dev/mapper/mi bs=4096 skip=100 count=1 iflag=direct 2>/dev/null | cmp - /tmp/mi-100"
check "import: again: nothing new (exit 0)" sh -c "remapctl import mi /tmp/mi-list >/tmp/mi-again && grep -q ': 0 remapped, 0 remapped with their data lost, 0 pending, 4 already' /tmp/mi-again"
check "import: a line that is no number is refused (exit 4, the line named)" sh -c "printf '12\nx\n' >/tmp/mi-bad && remapctl import mi /tmp/mi-bad >/tmp/mi-bad.out 2>&1; [ \$? = 4 ] && grep -q 'line 2' /tmp/mi-bad.out"
check "import: a block beyond the device is refused" sh -c "echo 99999999 | remapctl import mi - 2>/dev/null; [ \$? = 4 ]"
check "import: a block size that is no multiple of 512 is refused" sh -c "echo 1 | remapctl import -b 1000 mi - 2>/dev/null; [ \$? = 4 ]"
dmsetup remove mi
dmsetup remove modata
nullb_drop mo1
nullb_drop mo2
