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
# Every series carries device="dm-N" (node_exporter's diskstats label) and
# name="mo".
dmn=$(dmsetup info -c --noheadings -o blkdevname mo)
L="device=\"$dmn\",name=\"mo\""
check "textfile: spare blocks as status shows, labelled device=$dmn name=mo" grep -qxF "dm_remap_spare_blocks{$L} $total" /tmp/prom/dm_remap.prom
check "textfile: 0 remapped, 0 pending, 5 of 5 copies, 4096-byte blocks" sh -c "grep -qxF 'dm_remap_block_size_bytes{$L} 4096' /tmp/prom/dm_remap.prom && grep -qxF 'dm_remap_remapped_blocks{$L} 0' /tmp/prom/dm_remap.prom && grep -qxF 'dm_remap_pending_blocks{$L} 0' /tmp/prom/dm_remap.prom && grep -qxF 'dm_remap_metadata_copies_intact{$L} 5' /tmp/prom/dm_remap.prom"
check "textfile: dm_remap_info with the UUID; _total only on counters" sh -c "grep -qE '^dm_remap_info\{device=\"$dmn\",name=\"mo\",uuid=\"[0-9a-f-]{36}\",state=\"ok\",health=\"ok\"\} 1$' /tmp/prom/dm_remap.prom && ! grep -E '^# TYPE [a-z_]+_total gauge' /tmp/prom/dm_remap.prom"
check "monitor --once: a device that does not exist exits 4" sh -c "remapctl monitor --once nosuch 2>/dev/null; [ \$? = 4 ]"

# The running monitor. (The test kernel has no Unix sockets, so no
# /dev/log: the lines sent to the system log are checked by cargo test.)
# --exec's command writes what its environment says of each line.
remapctl monitor --textfile /tmp/prom --interval 1 \
	--exec 'echo "$REMAP_NAME|$REMAP_DEVICE|$REMAP_SEVERITY|$REMAP_REMAPPED_BLOCKS|$REMAP_MESSAGE" >>/tmp/hook.log' 2>/tmp/mon.err &
mpid=$!
check "monitor: says it watches the device" mon_wait 'mo: monitoring: mo: ok'
# Without any event, the textfile is written again within --interval.
textfile_refreshed() {
	local before after n=0
	before=$(stat -c %i /tmp/prom/dm_remap.prom) || return 1
	while [ $n -lt 50 ]; do
		sleep 0.1
		after=$(stat -c %i /tmp/prom/dm_remap.prom 2>/dev/null)
		[ -n "$after" ] && [ "$after" != "$before" ] && return 0
		n=$((n + 1))
	done
	return 1
}
check "monitor --interval 1: the textfile is refreshed without an event" textfile_refreshed
dmsetup message mo 0 remap 8 >/dev/null
dmsetup message mo 0 remap 16 >/dev/null
check "monitor: new remaps" mon_wait 'new remapped blocks (2 remapped'
hook_saw() {
	local n=0
	while [ $n -lt 50 ]; do
		grep -qE "$1" /tmp/hook.log 2>/dev/null && return 0
		sleep 0.1
		n=$((n + 1))
	done
	cat /tmp/hook.log
	return 1
}
check "monitor --exec: the command ran with the change in its environment" \
	hook_saw "^mo\|$dmn\|warning\|2\|.*new remapped blocks"
dmsetup message modata 0 addbadblock 1000 >/dev/null
dmsetup message modata 0 addbadblock 2000 >/dev/null
dmsetup message modata 0 enable >/dev/null
dd if=/dev/mapper/mo of=/dev/null bs=4096 skip=1000 count=1 iflag=direct 2>/dev/null
check "monitor: a new pending block" mon_wait 'mo: 1 new pending (unreadable) blocks (1 pending'
check "textfile: the pending block and the remaps" sh -c "grep -qxF 'dm_remap_pending_blocks{$L} 1' /tmp/prom/dm_remap.prom && grep -qxF 'dm_remap_remapped_blocks{$L} 2' /tmp/prom/dm_remap.prom"
n=3
while ! dmsetup status mo | grep -q ' low_water ' && [ $n -lt 100 ]; do
	dmsetup message mo 0 remap $((n * 8)) >/dev/null
	n=$((n + 1))
done
check "monitor: the low-water mark" mon_wait 'mo: free spares fell below the low-water mark'
# remapctl scrub: a slow one is running, a second start is refused, stop
# stops it; then one followed to its end with --wait.
check "scrub start: starts a scrub (status: running)" sh -c "remapctl scrub start --rate 1 mo &&
	remapctl scrub status --json mo | jq -e '.version == 1 and .devices[0].state == \"running\" and .devices[0].rate_limit_mib == 1' >/dev/null"
check "scrub start while one runs: refused, exit 3" sh -c "remapctl scrub start mo 2>/tmp/scrub.err; [ \$? = 3 ] && grep -q 'running already' /tmp/scrub.err"
check "scrub stop: stops it (status: stopped); a second stop exits 3" sh -c "remapctl scrub stop mo &&
	remapctl scrub status --json mo | jq -e '.devices[0].state == \"stopped\"' >/dev/null &&
	{ remapctl scrub stop mo 2>/dev/null; [ \$? = 3 ]; }"
check "scrub start --wait: follows it to its end, says what it found, exit 1" sh -c "remapctl scrub start --rate 1000 --wait mo >/tmp/scrub.out; [ \$? = 1 ] &&
	grep -qx 'mo: scrub done: 1 unreadable data blocks, 0 unreadable spares, 0 damaged metadata blocks (0 copies rewritten)' /tmp/scrub.out"
check "scrub status: done, 100%, what it found (exit 1)" sh -c "remapctl scrub status mo >/tmp/scrub.out; [ \$? = 1 ] &&
	grep -q '^mo ($dmn): scrub done' /tmp/scrub.out && grep -q 'found: *1 unreadable data blocks' /tmp/scrub.out &&
	remapctl scrub status --json | jq -e '.devices[0].progress_ratio == 1 and .devices[0].bad_data_blocks == 1' >/dev/null"
check "monitor: the scrub's end and what it found" mon_wait 'mo: scrub finished: 1 unreadable data blocks, 0 unreadable spares'
check "textfile: the scrub's figures, its findings by kind" sh -c "grep -qxF 'dm_remap_scrub_bad_blocks{$L,kind=\"data\"} 1' /tmp/prom/dm_remap.prom && grep -qxF 'dm_remap_scrub_bad_blocks{$L,kind=\"metadata\"} 0' /tmp/prom/dm_remap.prom && grep -qxF 'dm_remap_scrub_running{$L} 0' /tmp/prom/dm_remap.prom && grep -qxF 'dm_remap_scrub_progress_ratio{$L} 1' /tmp/prom/dm_remap.prom"
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
