# SPDX-License-Identifier: GPL-2.0
# Faults combined, not one at a time: rounds of writers that remember which
# writes were acknowledged (tests/tools/ackwrite.c) and a reader, while
# faults arrive: dm-dust bad blocks under the data device (writes failing
# once to three times, reads failing), write failures on the next spares
# the allocator hands out, commits failing (every superblock write failing
# while a commit is forced), remap and unremap messages, suspend/resume,
# reloads, and the data device failing everything for a second.
#
# Every injector's effect is checked, not assumed: each fault that is meant
# to reach the target is driven there by I/O of its own to the upper half
# of the device (the writers use the lower half), and over the run the
# target's counters must show write errors, transient errors, relocations,
# spare write failures, a failed commit, pending blocks made by reads, and
# device-down groups. At the end of each round the faults heal and, on the
# live device, every acknowledged write must read back (or read as an error
# where the target lists the block's data as lost), no spare may be listed
# twice or inside a metadata copy, and status must agree with the list;
# then the device is removed and re-created and the same holds, with the
# same list (but for fenced blocks, which the load decides) and every
# acknowledged remap. Every operation has a time bound.
#
# The seed is printed; dmr.seed=<n> (DM_REMAP_SEED on the host) runs the
# same faults again, and dmr.rounds=<n> (DM_REMAP_ROUNDS) sets the number
# of rounds (2 by default). The checks are per property over all rounds,
# so their number does not depend on the rounds; their bound does
# (tests/guest/run.sh).

modprobe dm-dust
seed=$(sed -n 's/.*dmr\.seed=\([0-9]*\).*/\1/p' /proc/cmdline)
[ -n "$seed" ] || seed=$(($(date +%s) % 100000))
rounds=$(sed -n 's/.*dmr\.rounds=\([0-9]*\).*/\1/p' /proc/cmdline)
rounds=${rounds:-2}
echo "fault combination: seed $seed, $rounds rounds (rerun: DM_REMAP_SEED=$seed DM_REMAP_ROUNDS=$rounds DM_REMAP_ONLY=80)"
rng=$seed
# rand N: sets R to a number below N from the seeded sequence (in this
# shell: a command substitution would lose the sequence's step).
rand() {
	rng=$(((rng * 1103515245 + 12345) % 2147483648))
	R=$(((rng / 65536) % $1))
}

# The data device: null_blk under dust (bad blocks) under linear (swapped
# for the error target while "unplugged"). The spare device: null_blk
# under dust. 4 KiB blocks, 8192 data blocks: the writers use blocks
# 0-4095, the injectors' own I/O blocks 4096-8191. 1024 spare blocks,
# metadata copies of 5 blocks at 0, 254, 509, 764, 1019.
d0=$(nullb_make fc1 32 512)
s0=$(nullb_make fc2 4 512)
dmsetup create fcdust --table "0 65536 dust $d0 0 4096"
dmsetup message fcdust 0 quiet >/dev/null
dmsetup message fcdust 0 enable >/dev/null
dmsetup create fcdata --table "0 65536 linear /dev/mapper/fcdust 0"
dmsetup create fcsdust --table "0 8192 dust $s0 0 4096"
dmsetup message fcsdust 0 quiet >/dev/null
dmsetup message fcsdust 0 enable >/dev/null
table="0 65536 remap /dev/mapper/fcdata 0 /dev/mapper/fcsdust 0 8192 2 block_size 4096"
dev=/dev/mapper/fc
check "combination: create" dmsetup create fc --table "$table"
supers="0 254 509 764 1019"
is_meta() { [ $1 -lt 5 ] || { [ $1 -ge 254 ] && [ $1 -lt 259 ]; } || { [ $1 -ge 509 ] && [ $1 -lt 514 ]; } ||
	{ [ $1 -ge 764 ] && [ $1 -lt 769 ]; } || [ $1 -ge 1019 ]; }
rm -f /tmp/ack.state /tmp/fc-stop
: >/tmp/fc-remapped
head -c 4096 /dev/urandom >/tmp/fc-pat
faults=0 hung=0 lost=0 writes=0 acked=0
# Per property, the rounds where it failed (checked once at the end).
bad_live_verify="" bad_verify="" bad_rc="" bad_share="" bad_remaps=""
bad_twice="" bad_meta="" bad_status="" bad_same="" bad_upper=""
lost_seen=0
# Counters summed over every table of the run (read before each remove).
sum_write_errors=0 sum_transient_errors=0 sum_auto_remaps=0
sum_spare_write_errors=0 sum_pending_marked=0 sum_device_down_groups=0
failed_commits=0 upper_ok=0
round=1

# op NAME SECS CMD...: one bounded operation; a hang ends the test.
op() {
	oname=$1 osecs=$2
	shift 2
	within "$osecs" "$@"
	orc=$?
	if [ $orc = 255 ]; then
		fail "combination round $round: $oname ends" "still running after $osecs s: hung (seed $seed)"
		hung=1
	fi
	return $orc
}

# resume_fc: resumes the device; a resume refused because the metadata
# cannot be written (a reload's repair while commits fail) is tried again
# once the commit faults are healed.
resume_fc() {
	op "resume" 30 dmsetup resume fc && return 0
	[ $hung = 1 ] && return 1
	for blk in $supers; do dmsetup message fcsdust 0 removebadblock $blk >/dev/null 2>&1; done
	op "resume after healing the commit faults" 30 dmsetup resume fc
}

# reload_fc: loads the table again (a failed commit's metadata_failed and
# fences end there).
reload_fc() {
	op "reload" 30 dmsetup reload fc --table "$table" && op "suspend for the reload" 60 dmsetup suspend fc && resume_fc
}

# upper: sets U to a random block of the injectors' half.
upper() {
	rand 4096
	U=$((4096 + R))
}

# upper_write BLOCK: a write of its own to BLOCK that the target must
# acknowledge (relocating it if need be) and that must read back.
upper_write() {
	if op "write to block $1" 60 dd if=/tmp/fc-pat of=$dev bs=4096 seek=$1 count=1 oflag=direct conv=notrunc &&
		op "read of block $1" 60 sh -c "dd if=$dev bs=4096 skip=$1 count=1 iflag=direct 2>/dev/null | cmp -s - /tmp/fc-pat"; then
		upper_ok=$((upper_ok + 1))
	else
		[ $hung = 1 ] || bad_upper="$bad_upper $round:$1"
	fi
}

# next_spares N: the spares the allocator hands out next (a stack: those
# freed this round, last freed first, then the lowest that are free as
# far as the live list tells; retired ones may be among them): N of the
# latter and every one of the former.
next_spares() {
	dmsetup message fc 0 list 2>/dev/null | grep -v -e pending -e fenced -e more | cut -d' ' -f2 >/tmp/fc-used
	for sp in $(cat /tmp/fc-freed); do grep -qx $sp /tmp/fc-used || echo $sp; done
	sp=5 k=0
	while [ $k -lt $1 ] && [ $sp -lt 1019 ]; do
		if ! is_meta $sp && ! grep -qx $sp /tmp/fc-used; then
			echo $sp
			k=$((k + 1))
		fi
		sp=$((sp + 1))
	done
}

# writers BATCH: a batch of 1000 writes from 3 threads in the background;
# it writes /tmp/rc.aw when it ends, and its exit code to /tmp/fc-rcs.
# Batches follow each other (they share the state file), so that writes go
# on while the faults of a round come.
writers() {
	rm -f /tmp/rc.aw
	(ackwrite write $dev /tmp/ack.state $((seed * 1000 + $1)) 4096 1000 3 >>/tmp/aw.out 2>&1
		rc=$?
		echo $rc >>/tmp/fc-rcs
		echo $rc >/tmp/rc.aw) &
}

# reader: reads blocks of the writers' half until /tmp/fc-stop appears
# (failures are expected: they make blocks pending); writes /tmp/rc.rd.
reader() {
	rm -f /tmp/rc.rd
	(rb=$((seed % 4096))
		while [ ! -e /tmp/fc-stop ]; do
			dd if=$dev of=/dev/null bs=4096 skip=$rb count=1 iflag=direct 2>/dev/null
			rb=$(((rb + 331) % 4096))
		done
		echo 0 >/tmp/rc.rd) &
}

# lost_ok VERIFY LIST: every block VERIFY (ackwrite verify's output) names
# as unreadable is listed as lost in LIST; no write came back wrong.
lost_ok() {
	grep -q '^checked [1-9][0-9]* lost 0 unreadable [0-9]*$' "$1" || return 1
	for b in $(sed -n 's/^block \([0-9]*\): unreadable.*/\1/p' "$1"); do
		grep -qE "^$b ([0-9]+ lost|pending lost|fenced lost)$" "$2" || return 1
	done
}

# list_checks NAME LIST STATUS: spares listed once, none in a metadata
# copy, status agreeing with the list; failures noted for round NAME.
list_checks() {
	grep -v -e pending -e fenced -e more "$2" | cut -d' ' -f2 | sort -n >/tmp/fc-spares
	[ -z "$(uniq -d /tmp/fc-spares)" ] || bad_twice="$bad_twice $1"
	for sp in $(cat /tmp/fc-spares); do is_meta $sp && bad_meta="$bad_meta $1:$sp"; done
	nrem=$(grep -v -e pending -e fenced -e more "$2" | grep -c .)
	npend=$(grep -c pending "$2")
	nfenced=$(grep -c fenced "$2")
	nlost=$(grep -c ' lost$' "$2")
	lost_seen=$((lost_seen + nlost))
	set -- "$1" $(cat "$3")
	# A fenced block keeps the spare its switch took (the load decides):
	# spares in use count it, remapped blocks do not.
	[ "$5 ${13} ${16}" = "$nrem $npend $nlost" ] && [ ${6%%/*} -ge $nrem ] &&
		[ ${6%%/*} -le $((nrem + nfenced)) ] || bad_status="$bad_status $1"
}

# add_stats: adds the live table's counters to the run's sums.
add_stats() {
	dmsetup message fc 0 stats | tr ' ' '\n' >/tmp/fc-stats
	for k in write_errors transient_errors auto_remaps spare_write_errors pending_marked device_down_groups; do
		v=$(sed -n "s/^$k=//p" /tmp/fc-stats)
		eval "sum_$k=\$((sum_$k + ${v:-0}))"
	done
}

commits_failed_before=$(dmesg | grep -c 'remap: metadata commit [0-9]* failed on every copy')
: >/tmp/fc-rcs
batch=0
while [ $round -le $rounds ] && [ $hung = 0 ]; do
	: >/tmp/aw.out
	: >/tmp/fc-freed
	rm -f /tmp/fc-stop
	batch=$((batch + 1))
	writers $batch
	reader
	n=0
	while [ $n -lt 12 ] && [ $hung = 0 ]; do
		if [ -e /tmp/rc.aw ]; then
			batch=$((batch + 1))
			writers $batch
		fi
		n=$((n + 1))
		faults=$((faults + 1))
		rand 9
		kind=$R
		# The first five of a round are the injectors whose effect is
		# checked, in an order of the seed's: each reaches every round.
		[ $n -le 5 ] && kind=$(echo 0 1 2 3 8 | cut -d' ' -f$(((n + seed + round) % 5 + 1)))
		eval "kinds_$kind=\$((\${kinds_$kind:-0} + 1))"
		case $kind in
		0)
			# A bad block among the writers' blocks: writes fail once
			# (transient), twice or three times (relocated); reads fail.
			# And one of the injectors' whose write fails once: retried,
			# counted transient.
			rand 4096
			b=$R
			rand 3
			dmsetup message fcdust 0 addbadblock $b $((R + 1)) >/dev/null 2>&1
			upper
			dmsetup message fcdust 0 addbadblock $U 1 >/dev/null 2>&1
			upper_write $U
			;;
		1)
			# A bad block of the injectors: a read makes it pending, the
			# next write relocates it and must be acknowledged. And one
			# that a remap message finds unreadable: remapped with its
			# data lost (status counts it, reads fail).
			upper
			dmsetup message fcdust 0 addbadblock $U >/dev/null 2>&1
			op "remap of unreadable block $U" 60 dmsetup message fc 0 remap $((U * 8))
			upper
			dmsetup message fcdust 0 addbadblock $U 2 >/dev/null 2>&1
			op "read of bad block $U" 60 dd if=$dev of=/dev/null bs=4096 skip=$U count=1 iflag=direct
			upper_write $U
			;;
		2)
			# The next spares fail their first write; a relocation then
			# retires them and takes the one after.
			# Retired spares are not listed, and lie among the lowest.
			retired=$(dmsetup message fc 0 stats | tr ' ' '\n' | sed -n 's/^spares_retired=//p')
			for sp in $(next_spares $((2 + ${retired:-0}))); do dmsetup message fcsdust 0 addbadblock $sp 1 >/dev/null 2>&1; done
			upper
			dmsetup message fcdust 0 addbadblock $U 2 >/dev/null 2>&1
			upper_write $U
			;;
		3)
			# Every superblock write fails while a commit is forced;
			# then the commit faults heal and the table is loaded again.
			for blk in $supers; do dmsetup message fcsdust 0 addbadblock $blk 255 >/dev/null 2>&1; done
			upper
			op "remap forced into the commit failure" 60 dmsetup message fc 0 remap $((U * 8)) &&
				bad_upper="$bad_upper $round:commit-acknowledged"
			for blk in $supers; do dmsetup message fcsdust 0 removebadblock $blk >/dev/null 2>&1; done
			[ $hung = 0 ] && reload_fc
			;;
		4)
			rand 8192
			b=$R
			op "remap message" 60 dmsetup message fc 0 remap $((b * 8)) && echo $b >>/tmp/fc-remapped
			;;
		5)
			rand 5
			b=$(dmsetup message fc 0 list 2>/dev/null | grep -v -e pending -e fenced -e more -e lost | cut -d' ' -f1 | head -n $((R + 1)) | tail -n 1)
			# An unremap that fails after its commit was written in part
			# may still take effect at the next load: the block is no
			# longer one that must be listed, whatever the answer.
			if [ -n "$b" ]; then
				# Its spare, if freed, is the next one handed out.
				dmsetup message fc 0 list 2>/dev/null | sed -n "s/^$b \([0-9]*\)$/\1/p" >>/tmp/fc-freed
				op "unremap message" 60 dmsetup message fc 0 unremap $((b * 8))
				grep -vx "$b" /tmp/fc-remapped >/tmp/fc-r2
				mv /tmp/fc-r2 /tmp/fc-remapped
			fi
			;;
		6) op "suspend" 60 dmsetup suspend fc && resume_fc ;;
		7) reload_fc ;;
		8)
			# The data device fails everything for a second; a write of
			# the injectors meets it (and must fail).
			dmsetup suspend fcdata && dmsetup reload fcdata --table "0 65536 error" && dmsetup resume fcdata
			# A block not in the table: a remapped one lives on the
			# spare device, where its write is rightly acknowledged.
			upper
			while ! dmsetup message fc 0 lookup $((U * 8)) | grep -q 'not remapped'; do upper; done
			op "write while the data device is down" 60 dd if=/tmp/fc-pat of=$dev bs=4096 seek=$U count=1 oflag=direct conv=notrunc &&
				bad_upper="$bad_upper $round:down-write-acknowledged"
			sleep 1
			dmsetup suspend fcdata && dmsetup reload fcdata --table "0 65536 linear /dev/mapper/fcdust 0" &&
				dmsetup resume fcdata
			;;
		esac
		rand 5
		sleep 0.$R
	done
	[ $hung = 1 ] && break
	if ! ended 1 aw 300; then
		fail "combination round $round: the writers end" "still running after 300 s: hung (seed $seed)"
		hung=1
		break
	fi
	touch /tmp/fc-stop
	if ! ended 1 rd 60; then
		fail "combination round $round: the reader ends" "still running after 60 s: hung (seed $seed)"
		hung=1
		break
	fi
	# Heal every fault; then check the live device.
	dmsetup message fcdust 0 clearbadblocks >/dev/null 2>&1
	dmsetup message fcsdust 0 clearbadblocks >/dev/null 2>&1
	dmsetup table fcdata | grep -q linear || {
		dmsetup suspend fcdata
		dmsetup reload fcdata --table "0 65536 linear /dev/mapper/fcdust 0"
		dmsetup resume fcdata
	}
	dmsetup info fc | grep -q SUSPENDED && resume_fc
	[ $hung = 1 ] && break
	set -- $(awk '{ w += $2; a += $4 } END { print w + 0, a + 0 }' /tmp/aw.out)
	writes=$((writes + $1)) acked=$((acked + $2))
	echo "combination round $round: writes $1, acknowledged $2, faults so far $faults"
	# Most writes are acknowledged: only those to bad blocks that could
	# not be relocated (spares failing, a failed commit) and those while
	# the data device was down may fail.
	[ $(($2 * 2)) -ge $1 ] && [ $1 -gt 0 ] || bad_share="$bad_share $round"
	dmsetup message fc 0 list >/tmp/fc-live-list
	dmsetup status fc >/tmp/fc-live-status
	list_checks "$round(live)" /tmp/fc-live-list /tmp/fc-live-status
	op "verify on the live device" 120 ackwrite verify $dev /tmp/ack.state
	cp /tmp/within.out /tmp/fc-live-verify
	lost_ok /tmp/fc-live-verify /tmp/fc-live-list || bad_live_verify="$bad_live_verify $round"
	add_stats
	# The list as the load must find it: reads of the verify may have
	# cleared pending blocks since the live checks.
	dmsetup message fc 0 list >/tmp/fc-live-list
	if ! op "remove" 60 dmsetup remove fc; then
		[ $hung = 1 ] || fail "combination round $round: remove" "$(cat /tmp/within.out) (seed $seed)"
		hung=1
		break
	fi
	if ! op "re-create" 60 dmsetup create fc --table "$table"; then
		fail "combination round $round: re-create" "$(cat /tmp/within.out) (seed $seed)"
		hung=1
		break
	fi
	dmsetup message fc 0 list >/tmp/fc-list
	dmsetup status fc >/tmp/fc-status
	list_checks "$round" /tmp/fc-list /tmp/fc-status
	# The same list, but for fenced blocks, which the load decides.
	grep -v fenced /tmp/fc-live-list >/tmp/fc-live-kept
	fenced=$(grep fenced /tmp/fc-live-list | cut -d' ' -f1)
	same=1
	while read -r l; do grep -qx "$l" /tmp/fc-list || same=0; done </tmp/fc-live-kept
	while read -r l; do
		b=${l%% *}
		grep -qx "$l" /tmp/fc-live-kept || echo "$fenced" | grep -qx "$b" || same=0
	done </tmp/fc-list
	[ $same = 1 ] || bad_same="$bad_same $round"
	op "verify after re-create" 120 ackwrite verify $dev /tmp/ack.state
	cp /tmp/within.out /tmp/fc-verify
	l=$(sed -n 's/.* lost \([0-9]*\) .*/\1/p' /tmp/fc-verify)
	lost=$((lost + ${l:-1}))
	lost_ok /tmp/fc-verify /tmp/fc-list || bad_verify="$bad_verify $round"
	for b in $(sort -nu /tmp/fc-remapped); do
		grep -q "^$b [0-9]" /tmp/fc-list || bad_remaps="$bad_remaps $round:$b"
	done
	round=$((round + 1))
done
failed_commits=$(($(dmesg | grep -c 'remap: metadata commit [0-9]* failed on every copy') - commits_failed_before))
echo "fault combination: seed $seed, $((round - 1)) rounds, $faults faults injected (data bad blocks ${kinds_0:-0}, injector bad blocks ${kinds_1:-0}, spare faults ${kinds_2:-0}, commit failures ${kinds_3:-0}, remaps ${kinds_4:-0}, unremaps ${kinds_5:-0}, suspend/resume ${kinds_6:-0}, reloads ${kinds_7:-0}, data device down ${kinds_8:-0})"
echo "fault combination: reached the target: write errors $sum_write_errors, transient errors $sum_transient_errors, relocations $sum_auto_remaps, spare write errors $sum_spare_write_errors, failed commits $failed_commits, pending blocks marked $sum_pending_marked, device-down groups $sum_device_down_groups; injector writes acknowledged and read back $upper_ok"
echo "fault combination: writes $writes, acknowledged $acked, acknowledged writes lost $lost"
r="(rounds failing; seed $seed)"
check "combination: the writers exit 0 in every batch" sh -c "[ -s /tmp/fc-rcs ] && ! grep -vqx 0 /tmp/fc-rcs || { sort /tmp/fc-rcs | uniq -c; false; }"
check "combination: most writes acknowledged in every round" sh -c "[ -z '$bad_share' ] && [ $acked -gt 0 ] || { echo '$bad_share $r'; false; }"
check "combination: every acknowledged write reads back on the live device (or fails where listed lost)" sh -c "[ -z '$bad_live_verify' ] || { echo '$bad_live_verify $r'; false; }"
check "combination: every acknowledged write reads back after re-create (or fails where listed lost)" sh -c "[ -z '$bad_verify' ] && [ $lost = 0 ] || { echo '$bad_verify $r'; false; }"
check "combination: the injectors' own writes acknowledged and read back" sh -c "[ -z '$bad_upper' ] && [ $upper_ok -gt 0 ] || { echo '$bad_upper $r'; false; }"
check "combination: every acknowledged remap is listed after re-create" sh -c "[ -z '$bad_remaps' ] || { echo '$bad_remaps $r'; false; }"
check "combination: no spare listed twice (live and re-created)" sh -c "[ -z '$bad_twice' ] || { echo '$bad_twice $r'; false; }"
check "combination: no spare inside a metadata copy (live and re-created)" sh -c "[ -z '$bad_meta' ] || { echo '$bad_meta $r'; false; }"
check "combination: status agrees with the list (live and re-created)" sh -c "[ -z '$bad_status' ] || { echo '$bad_status $r'; false; }"
check "combination: lost blocks were listed and counted (the comparison above met some)" [ "$lost_seen" -gt 0 ]
check "combination: the re-created list is the live one (fenced blocks decided)" sh -c "[ -z '$bad_same' ] || { echo '$bad_same $r'; false; }"
check "combination: write errors reached the target" [ $sum_write_errors -gt 0 ]
check "combination: transient write errors reached the target" [ $sum_transient_errors -gt 0 ]
check "combination: blocks were relocated" [ $sum_auto_remaps -gt 0 ]
check "combination: spare writes failed" [ $sum_spare_write_errors -gt 0 ]
check "combination: a commit failed" [ $failed_commits -gt 0 ]
check "combination: reads made blocks pending" [ $sum_pending_marked -gt 0 ]
check "combination: the data device was seen down" [ $sum_device_down_groups -gt 0 ]
check "combination: no operation hung" [ $hung = 0 ]
if [ $hung = 0 ]; then
	dmsetup remove fc
	dmsetup remove fcdata
	dmsetup remove fcdust
	dmsetup remove fcsdust
	nullb_drop fc1
	nullb_drop fc2
fi
