# SPDX-License-Identifier: GPL-2.0
# Helpers for the guest tests (busybox sh).  Each test file sets T and
# reports each check as one "DMR-RESULT ok|not ok <T>: <name>" line.
export DM_DISABLE_UDEV=1

# busybox sh runs its own applets before anything in PATH: call the real
# tools copied into the image instead of busybox's weaker ones.
blkdiscard() { /sbin/blkdiscard "$@"; }
blockdev() { /sbin/blockdev "$@"; }
# diffutils' cmp compares a block at a time, busybox's a byte at a time:
# use it for whole devices (a `sh -c` string names /sbin/cmp itself).
cmp() { /sbin/cmp "$@"; }
mkfs_ext4() { /sbin/mke2fs -t ext4 "$@"; }
fsck_ext4() { /sbin/e2fsck "$@"; }

pass() { echo "DMR-RESULT ok $T: $1"; }
fail() {
	name=$1
	shift
	echo "DMR-RESULT not ok $T: $name # $*"
}

# check NAME CMD...: the check passes when CMD succeeds.
check() {
	name=$1
	shift
	if "$@" >/tmp/check.out 2>&1; then
		pass "$name"
	else
		fail "$name" "$(tail -n 4 /tmp/check.out | tr '\n' ' ')"
	fi
}

# wait_for PATH: wait up to 10 s for a device node or file to appear.
wait_for() {
	i=0
	while [ ! -e "$1" ] && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	[ -e "$1" ]
}

# eventually CMD...: CMD succeeds within 10 s (tried every 0.1 s), for
# what the target does on its own after resume, such as the commit that
# rewrites a damaged copy the verification found.
eventually() {
	local i=0
	until "$@"; do
		[ $i -ge 100 ] && return 1
		sleep 0.1
		i=$((i + 1))
	done
}

# nullb_make NAME SIZE_MB [BLOCKSIZE] [CACHE_MB]: a memory-backed null_blk
# device with discard, made through configfs.  Prints its path.
nullb_make() {
	modprobe null_blk nr_devices=0 || return 1
	d=/sys/kernel/config/nullb/$1
	mkdir "$d" || return 1
	echo "$2" >"$d/size"
	echo "${3:-512}" >"$d/blocksize"
	echo 1 >"$d/memory_backed"
	echo 1 >"$d/discard"
	echo "${4:-0}" >"$d/cache_size"
	# NULLB_ATTRS="name=value ...": more attributes, e.g. a completion delay.
	for kv in ${NULLB_ATTRS:-}; do echo "${kv#*=}" >"$d/${kv%%=*}"; done
	echo 1 >"$d/power" || return 1
	wait_for "/dev/$1" && echo "/dev/$1"
}

nullb_drop() {
	echo 0 >"/sys/kernel/config/nullb/$1/power"
	rmdir "/sys/kernel/config/nullb/$1"
}

# scsi_debug_make SIZE_MB [ARGS...]: one scsi_debug disk.  Prints its path.
scsi_debug_make() {
	size=$1
	shift
	modprobe scsi_debug dev_size_mb="$size" "$@" || return 1
	i=0
	while [ $i -lt 100 ]; do
		for b in /sys/block/sd*; do
			[ -e "$b" ] && wait_for "/dev/${b##*/}" && echo "/dev/${b##*/}" && return 0
		done
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

scsi_debug_drop() { rmmod scsi_debug; }

# stat_of DEV NAME: one counter of "dmsetup message DEV 0 stats".
stat_of() { dmsetup message "$1" 0 stats | tr ' ' '\n' | sed -n "s/^$2=//p"; }

# read_failed_by_target DEV BLOCK: a read of 4 KiB block BLOCK of DEV
# fails, and the target failed it itself, without trying the device below
# (its read_errors stay, its failed_bios grow).
read_failed_by_target() {
	local re fb
	re=$(stat_of "$1" read_errors) fb=$(stat_of "$1" failed_bios)
	! dd if="/dev/mapper/$1" of=/dev/null bs=4096 skip="$2" count=1 iflag=direct 2>/dev/null &&
		[ "$(stat_of "$1" read_errors)" = "$re" ] && [ "$(stat_of "$1" failed_bios)" -gt "$fb" ]
}

# lost_of DEV: the status line's twelfth field, the blocks whose data is lost,
# and the `stats` count with it ("<status> <stats>").
lost_of() { echo "$(dmsetup status "$1" | awk '{ print $(NF - 2) }') $(stat_of "$1" lost_blocks)"; }

# sectors DEV: size in 512-byte sectors.
sectors() { blockdev --getsz "$1"; }

# write_read DEV INDEX: write 16 KiB of random data with direct I/O at
# 16 KiB block INDEX of DEV, read it back and compare; the data stays in
# /tmp/pattern for read_matches.
write_read() {
	dd if=/dev/urandom of=/tmp/pattern bs=16384 count=1 2>/dev/null &&
		dd if=/tmp/pattern of="$1" bs=16384 seek="$2" count=1 oflag=direct conv=notrunc,fsync 2>/dev/null &&
		dd if="$1" of=/tmp/readback bs=16384 skip="$2" count=1 iflag=direct 2>/dev/null &&
		cmp /tmp/pattern /tmp/readback
}

# read_matches DEV SECTOR: DEV holds /tmp/pattern at SECTOR.
read_matches() {
	dd if="$1" of=/tmp/readraw bs=16384 skip=$(($2 * 512)) count=1 iflag=direct,skip_bytes 2>/dev/null &&
		cmp /tmp/pattern /tmp/readraw
}

# canon LINE: LINE with every /dev path as dmsetup prints devices
# (major:minor).
canon() {
	for w in $1; do
		case $w in
		/dev/*) printf '%d:%d ' 0x$(stat -L -c %t "$w") 0x$(stat -L -c %T "$w") ;;
		*) printf '%s ' "$w" ;;
		esac
	done | sed 's/ $//'
}

# refused NAME REASON TABLE: "dmsetup create" must fail, leave no device
# and log "remap: REASON" in the kernel log.
refused() {
	name=$1 reason=$2 table=$3
	dmesg -c >/dev/null
	if dmsetup create bad --table "$table" >/tmp/refused.out 2>&1; then
		fail "$name" "accepted: $table"
		dmsetup remove bad
		return
	fi
	if dmsetup info bad >/dev/null 2>&1; then
		dmsetup remove bad >/dev/null 2>&1
		fail "$name" "device left behind"
	elif ! dmesg | grep -qF "remap: $reason"; then
		fail "$name" "no 'remap: $reason' in kernel log: $(dmesg | grep remap | tail -n 2 | tr '\n' ' ')"
	else
		pass "$name"
	fi
}

# message_refused DEV NAME REASON MESSAGE...: "dmsetup message" must fail
# and log "remap: REASON" in the kernel log.
message_refused() {
	local mdev=$1 name=$2 reason=$3
	shift 3
	dmesg -c >/dev/null
	if dmsetup message "$mdev" 0 "$@" >/dev/null 2>&1; then
		fail "$name" "accepted: $*"
	elif ! dmesg | grep -qF "remap: $reason"; then
		fail "$name" "no 'remap: $reason' in the kernel log: $(dmesg | tail -n 1)"
	else
		pass "$name"
	fi
}

# bounded SECS NAME CMD...: runs CMD for at most SECS seconds (`within`);
# passes when it ends in time (whatever its exit code, which goes to
# /tmp/rc.NAME), fails with "hung" otherwise. Returns 1 when it hung.
bounded() {
	secs=$1 bname=$2
	shift 2
	rm -f "/tmp/rc.$bname"
	within "$secs" "$@"
	if [ ! -e /tmp/within.rc ]; then
		fail "$bname ends" "still running after $secs s: hung"
		return 1
	fi
	cp /tmp/within.rc "/tmp/rc.$bname"
	pass "$bname ends"
}
rc_of() { cat "/tmp/rc.$1" 2>/dev/null || echo none; }

# ended N PREFIX SECS: whether N background steps that each write
# /tmp/rc.PREFIX<i> when they end have all ended within SECS seconds.
# (A plain `wait` would also wait for steps that hung earlier.)
ended() {
	i=0
	while [ $i -lt $(($3 * 10)) ] && [ "$(ls /tmp/rc.$2* 2>/dev/null | wc -l)" -lt $1 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	[ "$(ls /tmp/rc.$2* 2>/dev/null | wc -l)" -ge $1 ]
}

# dust_super DUST: every write to the five superblocks of the layout below
# fails (4 KiB blocks, 1024 spare blocks: copies of 5 blocks at 0, 254,
# 509, 764, 1019).
dust_super() {
	for blk in 0 254 509 764 1019; do dmsetup message "$1" 0 addbadblock $blk 255 >/dev/null; done
	dmsetup message "$1" 0 enable >/dev/null
}
dust_heal() {
	dmsetup message "$1" 0 disable >/dev/null
	dmsetup message "$1" 0 clearbadblocks >/dev/null
}

# ends_within SECS PID: waits up to SECS seconds for process PID to end;
# fails when it is still running then.
ends_within() {
	ew=0
	while kill -0 "$2" 2>/dev/null && [ $ew -lt $(($1 * 10)) ]; do
		sleep 0.1
		ew=$((ew + 1))
	done
	! kill -0 "$2" 2>/dev/null
}

# within SECS CMD...: runs CMD in the background for at most SECS seconds.
# Returns CMD's exit code when it ended (its output goes to /tmp/within.out
# and the code to /tmp/within.rc), 255 when it was still running (hung: it
# is left running). Each call has files of its own, copied to those only
# when it ended: a call left hung earlier, ending later, cannot make a
# later one look finished.
within_n=0
within() {
	wsecs=$1
	shift
	within_n=$((within_n + 1))
	wfile=/tmp/within.$$.$within_n
	rm -f /tmp/within.rc /tmp/within.out
	("$@" >$wfile.out 2>&1; echo $? >$wfile.rc) &
	wpid=$!
	ends_within "$wsecs" $wpid || return 255
	wait $wpid
	cp $wfile.out /tmp/within.out
	cp $wfile.rc /tmp/within.rc
	rm -f $wfile.out $wfile.rc
	return "$(cat /tmp/within.rc)"
}

# copy_layout SPARE_BLOCKS BS: "c s0 s1 s2 s3 s4", the blocks per metadata
# copy and the first block of each copy in a spare area of SPARE_BLOCKS
# blocks of BS bytes, from the format description (docs/format.md), independently
# of the module and of remapctl.
copy_layout() {
	awk -v n="$1" -v bs="$2" '
		function ceil(x) { return x == int(x) ? x : int(x) + 1 }
		BEGIN {
			w = (bs - 32) / 8
			c = 1 + ceil(n / w) + ceil(ceil(n / 16) / w)
			printf "%d", c
			for (i = 0; i < 5; i++) printf " %d", int((n - c) * i / 4)
			print ""
		}'
}

# meta_restore SPARE-DEV DATA_OFFSET DATA_LEN SPARE_OFFSET SPARE_LEN BS COUNT [STRIDE]
# Metadata remapping data blocks 0, STRIDE, 2*STRIDE... (STRIDE 1 by
# default) to the first COUNT spare blocks outside the metadata copies
# (copy_layout), written by `remapctl restore --separate-devices` (the areas lie on two
# devices, and overlap as numbers) from a dump made here.
# STRIDE 0 lists block 0 COUNT times: metadata the kernel must refuse
# (restore --unchecked writes it).
meta_restore() {
	local dev=$1 unchecked=
	[ "${8:-1}" = 0 ] && unchecked=--unchecked
	awk -v doff="$2" -v dlen="$3" -v soff="$4" -v slen="$5" -v bs="$6" -v count="$7" -v stride="${8:-1}" \
		-v layout="$(copy_layout $(($5 / ($6 / 512))) "$6")" '
		BEGIN {
			n = slen / (bs / 512)
			split(layout, l, " ")
			c = l[1]
			print "uuid 6d6b6d65-7461-4000-8000-746573747330"
			print "generation 1"
			print "geometry", doff, dlen, soff, slen, bs
			k = 0
			for (sp = 0; sp < n && k < count; sp++) {
				r = 0
				for (i = 2; i <= 6; i++) if (sp >= l[i] && sp < l[i] + c) r = 1
				if (!r) { print "remap", k * stride, sp; k++ }
			}
		}' | remapctl restore --separate-devices $unchecked "$dev" - >/dev/null
}

# meta_geometry DEV: sets spare_off and bs (the spare area's first sector
# and the block size, from DEV's dump: DEV is closed) and starts (the
# first block of each metadata copy, from copy_layout).
meta_geometry() {
	set -- $(remapctl dump "$1" | sed -n 's/^geometry //p')
	spare_off=$3 bs=$5
	starts=$(copy_layout $(($4 * 512 / $5)) $5 | cut -d' ' -f2-)
}

# meta_damage DEV COPY BLOCK: 8 bytes of garbage inside that block of that
# metadata copy, after meta_geometry DEV.
meta_damage() {
	i=0
	for st in $starts; do
		if [ $i = $2 ]; then
			at=$((spare_off * 512 / bs + st + $3))
			dd if="$1" of=/tmp/blk bs=$bs skip=$at count=1 iflag=direct 2>/dev/null
			printf 'garbage!' | dd of=/tmp/blk bs=1 seek=200 conv=notrunc 2>/dev/null
			dd if=/tmp/blk of="$1" bs=$bs seek=$at count=1 oflag=direct conv=notrunc 2>/dev/null
		fi
		i=$((i + 1))
	done
}

# Timing, for the slow-disk tests.
# now_ms: milliseconds since boot (/proc/uptime, 10 ms steps).
now_ms() {
	read -r up _ </proc/uptime
	cs=${up#*.}
	cs=${cs#0}
	echo $((${up%.*} * 1000 + ${cs:-0} * 10))
}
# took_ms CMD...: runs it; prints how long it took in ms; its exit status.
took_ms() {
	t0=$(now_ms)
	"$@" >/dev/null 2>&1
	rc=$?
	echo $(($(now_ms) - t0))
	return $rc
}
read4k() { dd if="$1" of=/dev/null bs=4096 skip="$2" count=1 iflag=direct; }
write4k() { dd if=/dev/urandom of="$1" bs=4096 seek="$2" count=1 oflag=direct conv=notrunc; }
# took_in LOW HIGH CMD...: CMD succeeds and takes LOW <= ms < HIGH.
took_in() {
	lo=$1 hi=$2
	shift 2
	ms=$(took_ms "$@") || { echo "$* failed"; return 1; }
	in_range "$ms" "$lo" "$hi"
}
# in_range MS LOW HIGH: LOW <= MS < HIGH (say it when not).
in_range() {
	[ "$1" -ge "$2" ] && [ "$1" -lt "$3" ] && return 0
	echo "took $1 ms, not in [$2, $3)"
	return 1
}
# took_bg FILE CMD...: runs CMD in the background; when it ends, FILE
# holds its exit status and how long it took in ms ("<rc> <ms>"). Wait for
# it with `wait $!`.
took_bg() {
	local f=$1
	shift
	(
		ms=$(took_ms "$@")
		echo "$? $ms" >"$f"
	) &
}
# took_was FILE ok|failed LOW HIGH: what took_bg recorded in FILE: CMD
# succeeded (or failed) and took LOW <= ms < HIGH.
took_was() {
	local rc ms
	read -r rc ms <"$1"
	case $2 in
	ok) [ "$rc" = 0 ] || { echo "$1: failed"; return 1; } ;;
	failed) [ "$rc" != 0 ] || { echo "$1: succeeded"; return 1; } ;;
	esac
	in_range "$ms" "$3" "$4"
}
# delay_table NAME DEV BLOCK COUNT READ_MS [WRITE_MS]: dm device NAME over
# all of DEV, whose 4 KiB blocks BLOCK to BLOCK+COUNT-1 are READ_MS late
# for reads and WRITE_MS (default READ_MS) for writes (dm-delay between
# two linear segments).
delay_table() {
	local n=$1 dev=$2 s=$(($3 * 8)) l=$(($4 * 8)) r=$5 w=${6:-$5} size
	size=$(blockdev --getsz "$dev")
	dmsetup create "$n" --table "0 $s linear $dev 0
$s $l delay $dev $s $r $dev $s $w
$((s + l)) $((size - s - l)) linear $dev $((s + l))"
}
# fails_in LOW HIGH CMD...: CMD fails and takes LOW <= ms < HIGH.
fails_in() {
	lo=$1 hi=$2
	shift 2
	if ms=$(took_ms "$@"); then
		echo "$* succeeded"
		return 1
	fi
	in_range "$ms" "$lo" "$hi"
}
# quiet DEV: nothing remapped, pending or lost, no read or write error.
quiet() {
	remapctl status --json "$1" | jq -e '.devices[0] | .remapped_blocks == 0 and .pending_blocks == 0 and
		.lost_blocks == 0 and .read_errors == 0 and .write_errors == 0 and .health == "ok"' >/dev/null
}
