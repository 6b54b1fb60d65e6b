# SPDX-License-Identifier: GPL-2.0
# Hanging disks: blocks whose I/O does not complete for 20 s (dm-delay),
# reads that hang 20 s and then fail (dm-delay over the error target), and
# SCSI commands that time out (scsi_debug's per-device error injection,
# with the disk's command timeout set to 2 s). Each fault model is asserted
# to act. Over them:
#  - reads and writes of other blocks keep completing while a block hangs;
#  - the target's own reads (the scrub's, the data device's probe) never
#    make scrub stop, suspend or remove wait: each returns within 2 s;
#  - a failed read's probe is bounded (5 s) when the device hangs (a device
#    that does not answer is not known dead: not taken as down), a failed
#    bio of another block waits one bounded retry (5 s) at most behind a
#    retry that hangs, not the 20 s the disk takes, and the retries of the
#    blocks of one bio go out at once;
#  - a command timeout that the SCSI layer retried is no error; commands
#    that always time out fail, in a bounded time, as a device that is down
#    (sd takes such a disk offline; set running again, it answers).

modprobe dm-delay

# remove_soon NAME: removes a dm device that a read given up on may still
# hold open for up to the 20 s of its delay.
remove_soon() {
	i=0
	until dmsetup remove "$1" 2>/dev/null; do
		[ $i -ge 300 ] && return 1
		sleep 0.1
		i=$((i + 1))
	done
}
# running_past DEV BLOCK: the scrub runs and is past BLOCK.
running_past() {
	at=$(dmsetup status "$1" | sed -n 's/.* running:\([0-9]*\)\/.*/\1/p')
	[ -n "$at" ] && [ "$at" -ge "$2" ] || { dmsetup status "$1"; return 1; }
}
# answers_again DEV BLOCK: a read of BLOCK works, and DEV is no longer
# shown down.
answers_again() {
	read4k /dev/mapper/$1 $2 || return 1
	! dmsetup status $1 | grep -q data_device_down
}
pending_is() {
	n=$(remapctl status --json "$1" | jq '.devices[0].pending_blocks')
	[ "$n" = "$2" ] || { echo "pending: $n, not $2"; return 1; }
}

a=$(nullb_make hd1 64 512)
b=$(nullb_make hd2 8 512)
sz=$(blockdev --getsz "$a")
spare_len=$(blockdev --getsz "$b")

# 1. One hanging block: blocks 1000-1003 answer 20 s late, the rest at once.
delay_table hdelay "$a" 1000 4 20000
dmsetup create hr --table "0 $sz remap /dev/mapper/hdelay 0 $b 0 $spare_len 2 block_size 4096"
# hang_and_others DEV: a read and a write of the hanging block in flight;
# meanwhile reads and writes of 40 other blocks each take under 100 ms;
# then the hanging ones end well, 19 s or more after they began (the
# fault model acted).
hang_and_others() {
	dev=$1
	took_bg /tmp/hang.read read4k "$dev" 1000
	r=$!
	took_bg /tmp/hang.write write4k "$dev" 1002
	w=$!
	sleep 0.2
	i=0
	while [ $i -lt 20 ]; do
		blk=$((3000 + i * 53))
		ms=$(took_ms read4k "$dev" $blk) || { echo "read of block $blk failed"; return 1; }
		in_range "$ms" 0 100 || return 1
		ms=$(took_ms write4k "$dev" $((blk + 1))) || { echo "write of block $((blk + 1)) failed"; return 1; }
		in_range "$ms" 0 100 || return 1
		i=$((i + 1))
	done
	wait $r $w
	took_was /tmp/hang.read ok 19000 30000 && took_was /tmp/hang.write ok 19000 30000
}
check "one block hangs 20 s (dm-delay): reads and writes of 40 other blocks each complete in under 100 ms meanwhile; the hanging ones end well after 19 s or more" \
	hang_and_others /dev/mapper/hr
check "a block that hangs and then answers is no error: nothing remapped or pending, no error" quiet hr
# The scrub reaches the hanging block at once (100 MiB/s): its read there
# hangs 20 s with no foreground bio in flight.
dmsetup message hr 0 scrub start 100 >/dev/null
sleep 1
check "the scrub's read hangs in the hanging block (running, at block 992 or past)" running_past hr 992
check "the scrub's read hangs: scrub stop returns within 2 s" took_in 0 2000 dmsetup message hr 0 scrub stop
dmsetup message hr 0 scrub start 100 >/dev/null
sleep 1
check "the scrub's read hangs: dmsetup suspend returns within 2 s" took_in 0 2000 dmsetup suspend hr
check "resume: the scrub goes on" sh -c "dmsetup resume hr && sleep 1 && dmsetup status hr | grep -q ' running:'"
check "the scrub's read hangs: dmsetup remove returns within 2 s" took_in 0 2000 dmsetup remove hr
check "the delay device is let go once the reads given up on end" remove_soon hdelay

# 2. The probe hangs: blocks 0-15 answer, block 16 fails at once, the rest
# answer 20 s late. Block 0 is remapped first, so that every probe read of
# the data device falls in the hanging part.
dmsetup create pdelay --table "0 128 linear $a 0
128 8 error
136 $((sz - 136)) delay $a 136 20000"
mk_pr() {
	dmsetup create pr --table "0 $sz remap /dev/mapper/pdelay 0 $b 0 $spare_len 2 block_size 4096" &&
		dmsetup message pr 0 remap 0 >/dev/null
}
check "remap over it, block 0 moved to a spare" mk_pr
# The scrub finds block 16 unreadable and probes the data device (no bio
# of its own in flight), whose reads hang.
dmsetup message pr 0 scrub start 100 >/dev/null
sleep 1.5
check "the scrub's probe hangs: the scrub saw block 16 fail (kernel log)" sh -c "dmesg | grep -q 'scrub: data block 16 cannot be read'"
check "the scrub's probe hangs: dmsetup suspend returns within 2 s" took_in 0 2000 dmsetup suspend pr
check "a probe given up on marks nothing: no block pending" pending_is pr 0
dmsetup resume pr
sleep 1.5
check "after resume the scrub reads that step again and its probe hangs again (block 16 failed twice, kernel log)" \
	sh -c "[ \$(dmesg | grep -c 'scrub: data block 16 cannot be read') = 2 ]"
check "the scrub's probe hangs again: dmsetup remove returns within 2 s" took_in 0 2000 dmsetup remove pr
mk_pr
# A foreground read of block 16: its retry fails at once, the probe waits
# 5 s for the hanging device, which is not known dead (a busy disk is slow
# too): the block is marked pending, as on a device that answers.
check "a failed read whose probe hangs fails within 4-9 s (the probe's bound), not the disk's 20 s" \
	fails_in 4000 9000 read4k /dev/mapper/pr 16
check "a device that answers no probe in time is not taken as down: the block is pending" \
	sh -c "! dmsetup status pr | grep -q data_device_down && [ \$(remapctl status --json pr | jq '.devices[0].pending_blocks') = 1 ]"
check "the kernel log says the probe reads got no answer" sh -c "dmesg | grep -q 'answered none of .* probe reads in 5000 ms: not taken as down'"
check "reads of the blocks that answer work meanwhile" answers_again pr 3
dmsetup remove pr
check "the delay device is let go once the probe reads end" remove_soon pdelay

# 3. Reads that hang 20 s and then fail (dm-delay over the error target)
# at blocks 1000-1023; block 2000 fails at once.
dmsetup create herr --table "0 192 error"
dmsetup create hfail --table "0 8000 linear $a 0
8000 192 delay /dev/mapper/herr 0 20000
8192 7808 linear $a 8192
16000 8 error
16008 $((sz - 16008)) linear $a 16008"
# The spare device held the metadata of the table above: blank again.
dd if=/dev/zero of="$b" bs=1M count=8 oflag=direct 2>/dev/null
dmsetup create fr --table "0 $sz remap /dev/mapper/hfail 0 $b 0 $spare_len 2 block_size 4096"
# behind_hanging_retry: block 1000's read fails after 20 s, and its retry
# hangs again (given up on after 5 s); block 2000's read, failed while that
# retry runs, waits for it 5 s at most (it fails within 8 s, not 20 s).
behind_hanging_retry() {
	took_bg /tmp/hang.read read4k /dev/mapper/fr 1000
	r=$!
	sleep 21
	fails_in 0 8000 read4k /dev/mapper/fr 2000 || return 1
	wait $r
	took_was /tmp/hang.read failed 19000 30000
}
check "a read failed behind a retry that hangs waits 5 s at most (fails within 8 s); the hanging read fails within 30 s" \
	behind_hanging_retry
check "the block that failed at once is pending; the one whose retry got no answer is not (no answer is no error)" pending_is fr 1
# One 64 KiB read over blocks 1008-1023, which all hang and fail: the
# retries of its 16 blocks go out at once and are given up on together.
check "a 64 KiB read over 16 blocks that hang and fail fails within 19-35 s (one 5 s retry bound for all 16, not one each)" \
	fails_in 19000 35000 dd if=/dev/mapper/fr of=/dev/null bs=64k skip=63 count=1 iflag=direct
check "its 16 blocks, whose retries got no answer, are not marked pending" pending_is fr 1
dmsetup remove fr
check "the failing delay device is let go" remove_soon hfail
dmsetup remove herr

# 4. SCSI command timeouts: scsi_debug fails to answer READ(10) commands
# chosen through its debugfs error file; the disk's timeout is 2 s.
d=$(scsi_debug_make 32)
dn=${d#/dev/}
echo 2 >/sys/block/$dn/device/timeout
hctl=$(basename "$(readlink -f /sys/block/$dn/device)")
inject=/sys/kernel/debug/scsi_debug/$hctl/error
check "scsi_debug: its error file is there" test -w "$inject"
# timeouts N: the next N READ(10) commands time out (N>0: every one).
timeouts() {
	case $1 in
	always) echo "0 1 0x28" >"$inject" ;;
	*) echo "0 -$1 0x28" >"$inject" ;;
	esac
}
dmesg -c >/dev/null
timeouts 1
check "scsi_debug: a read whose command times out once takes 2 s or more and succeeds (the SCSI layer retried it)" \
	took_in 2000 20000 read4k "$d" 100
check "scsi_debug: the kernel log says the command timed out" sh -c "dmesg | grep -q 'timeout command 0x28'"
echo "- 0 0x28" >"$inject" 2>/dev/null
dsz=$(blockdev --getsz "$d")
# The spare device held the metadata of the tables above: blank again.
dd if=/dev/zero of="$b" bs=1M count=8 oflag=direct 2>/dev/null
dmsetup create tr --table "0 $dsz remap $d 0 $b 0 $spare_len 2 block_size 4096"
timeouts 1
check "remap over it: a read whose command timed out once succeeds after 2 s or more" took_in 2000 20000 read4k /dev/mapper/tr 200
check "a command timeout retried below is no error: nothing remapped or pending, no error" quiet tr
# drive_advice: remapctl status names the drive under the device, its
# command timeout, that smartctl finds no SCT ERC on it (a SCSI disk), and
# says to raise the timeout.
drive_advice() {
	remapctl status tr >/tmp/st.out
	cat /tmp/st.out
	grep -q "^  $dn: no SCT ERC, command timeout 2 s: .*echo 180 > /sys/block/$dn/device/timeout" /tmp/st.out &&
		remapctl status --json tr | jq -e --arg d "$dn" '.devices[0].drives[0] | .disk == $d and
			.command_timeout_s == 2 and .sct_erc.state == "unsupported"' >/dev/null
}
check "remapctl status: the drive's command timeout, no SCT ERC (smartctl), and the advice to raise the timeout" drive_advice
echo "- 0 0x28" >"$inject" 2>/dev/null
timeouts always
check "every read command times out: a read fails, within 90 s" fails_in 0 90000 read4k /dev/mapper/tr 300
check "a disk whose every read times out is shown down, not grown bad blocks: nothing pending" \
	sh -c "dmsetup status tr | grep -q data_device_down && [ \$(remapctl status --json tr | jq '.devices[0].pending_blocks') = 0 ]"
echo "- 0 0x28" >"$inject"
check "the SCSI layer took the disk offline after its medium access timeouts (kernel log)" \
	sh -c "dmesg | grep -q 'Medium access timeout failure. Offlining disk'"
echo running >/sys/block/$dn/device/state
check "once the commands answer again and the disk is set running, reads work and the device is no longer down" \
	answers_again tr 400
dmsetup remove tr
scsi_debug_drop
nullb_drop hd1
nullb_drop hd2
