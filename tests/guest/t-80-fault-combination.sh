# SPDX-License-Identifier: GPL-2.0
# Faults combined, not one at a time: rounds of writers that remember which
# writes were acknowledged (tests/tools/ackwrite.c), while dm-dust bad
# blocks appear under the data and the spare device (writes failing once,
# twice, reads failing), commits fail for a while (superblock writes failing,
# then healing), remap and unremap messages arrive, the device is suspended
# and resumed and reloaded, and the data device briefly fails everything.
# After each round the faults heal, the device is removed and re-created,
# and every acknowledged write must read back, every acknowledged remap be
# listed, no spare be listed twice or inside a metadata copy, and status
# agree with the list. Every operation has a time bound.
#
# The seed is printed; dmr.seed=<n> on the kernel command line
# (DM_REMAP_SEED on the host) runs the same faults again.

modprobe dm-dust
seed=$(sed -n 's/.*dmr\.seed=\([0-9]*\).*/\1/p' /proc/cmdline)
[ -n "$seed" ] || seed=$(($(date +%s) % 100000))
rounds=${DMR_ROUNDS:-2}
echo "fault combination: seed $seed, $rounds rounds (rerun: DM_REMAP_SEED=$seed DM_REMAP_ONLY=80)"
rng=$seed
# rand N: sets R to a number below N from the seeded sequence (in this
# shell: a command substitution would lose the sequence's step).
rand() {
	rng=$(((rng * 1103515245 + 12345) % 2147483648))
	R=$(((rng / 65536) % $1))
}

# The data device: null_blk under dust (bad blocks) under linear (swapped
# for the error target while "unplugged"). The spare device: null_blk
# under dust. 4 KiB blocks; 1024 spare blocks, copies of 5 blocks at 0,
# 254, 509, 764, 1019.
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
rm -f /tmp/ack.state
: >/tmp/fc-remapped
faults=0 hung=0 lost=0
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

# writers BATCH: a batch of 1000 writes from 3 threads in the background;
# it writes /tmp/rc.aw when it ends. Batches follow each other (they share
# the state file), so that writes go on while the faults of a round come.
writers() {
	rm -f /tmp/rc.aw
	(ackwrite write $dev /tmp/ack.state $((seed * 1000 + $1)) 4096 1000 3 >>/tmp/aw.out 2>&1
		echo $? >/tmp/rc.aw) &
}
batch=0
while [ $round -le $rounds ] && [ $hung = 0 ]; do
	: >/tmp/aw.out
	batch=$((batch + 1))
	writers $batch
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
		eval "kinds_$kind=\$((\${kinds_$kind:-0} + 1))"
		case $kind in
		0)
			rand 4096
			b=$R
			rand 3
			dmsetup message fcdust 0 addbadblock $b $R >/dev/null 2>&1
			;;
		1)
			rand 1024
			dmsetup message fcsdust 0 addbadblock $R 1 >/dev/null 2>&1
			;;
		2)
			for blk in $supers; do dmsetup message fcsdust 0 addbadblock $blk 255 >/dev/null 2>&1; done
			sleep 1
			for blk in $supers; do dmsetup message fcsdust 0 removebadblock $blk >/dev/null 2>&1; done
			;;
		3)
			rand 8192
			b=$R
			op "remap message" 60 dmsetup message fc 0 remap $((b * 8)) && echo $b >>/tmp/fc-remapped
			;;
		4)
			rand 5
			b=$(dmsetup message fc 0 list 2>/dev/null | grep -v -e pending -e fenced -e more | cut -d' ' -f1 | head -n $((R + 1)) | tail -n 1)
			# An unremap that fails after its commit was written in part
			# may still take effect at the next load: the block is no
			# longer one that must be listed, whatever the answer.
			if [ -n "$b" ]; then
				op "unremap message" 60 dmsetup message fc 0 unremap $((b * 8))
				grep -vx "$b" /tmp/fc-remapped >/tmp/fc-r2
				mv /tmp/fc-r2 /tmp/fc-remapped
			fi
			;;
		5) op "suspend" 60 dmsetup suspend fc && resume_fc ;;
		6) op "reload" 30 dmsetup reload fc --table "$table" && op "suspend for the reload" 60 dmsetup suspend fc && resume_fc ;;
		7)
			dmsetup suspend fcdata && dmsetup reload fcdata --table "0 65536 error" && dmsetup resume fcdata
			sleep 1
			dmsetup suspend fcdata && dmsetup reload fcdata --table "0 65536 linear /dev/mapper/fcdust 0" &&
				dmsetup resume fcdata
			;;
		8)
			rand 8192
			op "read" 60 dd if=$dev of=/dev/null bs=4096 skip=$R count=1 iflag=direct
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
	# Heal every fault, then load the metadata from scratch.
	dmsetup message fcdust 0 clearbadblocks >/dev/null 2>&1
	dmsetup message fcsdust 0 clearbadblocks >/dev/null 2>&1
	dmsetup table fcdata | grep -q linear || {
		dmsetup suspend fcdata
		dmsetup reload fcdata --table "0 65536 linear /dev/mapper/fcdust 0"
		dmsetup resume fcdata
	}
	dmsetup info fc | grep -q SUSPENDED && resume_fc
	op "remove" 60 dmsetup remove fc || break
	if ! op "re-create" 60 dmsetup create fc --table "$table"; then
		fail "combination round $round: re-create" "$(cat /tmp/within.out) (seed $seed)"
		break
	fi
	echo "combination round $round: $(awk '{ w += $2; a += $4; f += $6 } END { print "writes " w ", acknowledged " a ", failed " f }' /tmp/aw.out), faults so far $faults"
	dmsetup message fc 0 list >/tmp/fc-list
	dmsetup status fc >/tmp/fc-status
	ackwrite verify $dev /tmp/ack.state >/tmp/fc-verify
	l=$(sed -n 's/.* lost \([0-9]*\) .*/\1/p' /tmp/fc-verify)
	lost=$((lost + ${l:-1}))
	check "combination round $round: every acknowledged write reads back" sh -c \
		"tail -n 1 /tmp/fc-verify | grep -q ' lost 0 unreadable 0$' || { grep -v '^checked' /tmp/fc-verify | head -n 5; false; }"
	missing=""
	for b in $(sort -nu /tmp/fc-remapped); do
		grep -q "^$b [0-9]" /tmp/fc-list || missing="$missing $b"
	done
	check "combination round $round: every acknowledged remap is listed" sh -c "[ -z '$missing' ] || { echo missing:$missing; false; }"
	grep -v -e pending -e more /tmp/fc-list | cut -d' ' -f2 | sort -n >/tmp/fc-spares
	check "combination round $round: no spare listed twice" sh -c "[ -z \"\$(uniq -d /tmp/fc-spares)\" ]"
	inside=""
	for sp in $(cat /tmp/fc-spares); do is_meta $sp && inside="$inside $sp"; done
	check "combination round $round: no spare inside a metadata copy" sh -c "[ -z '$inside' ] || { echo$inside; false; }"
	nrem=$(grep -vc -e pending -e more /tmp/fc-list)
	npend=$(grep -c pending /tmp/fc-list)
	check "combination round $round: status agrees with the list" sh -c \
		"set -- \$(cat /tmp/fc-status); [ \"\$4 \$(echo \$5 | cut -d/ -f1) \${12}\" = '$nrem $nrem $npend' ] || { cat /tmp/fc-status; false; }"
	round=$((round + 1))
done
echo "fault combination: seed $seed, $((round - 1)) rounds, $faults faults injected (data bad blocks ${kinds_0:-0}, spare bad blocks ${kinds_1:-0}, commits failing ${kinds_2:-0}, remaps ${kinds_3:-0}, unremaps ${kinds_4:-0}, suspend/resume ${kinds_5:-0}, reloads ${kinds_6:-0}, data device down ${kinds_7:-0}, reads ${kinds_8:-0}), $lost acknowledged writes lost"
check "combination: no operation hung" [ $hung = 0 ]
if [ $hung = 0 ]; then
	dmsetup remove fc
	dmsetup remove fcdata
	dmsetup remove fcdust
	dmsetup remove fcsdust
	nullb_drop fc1
	nullb_drop fc2
fi
