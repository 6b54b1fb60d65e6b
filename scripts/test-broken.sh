#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The broken-behaviour mode: shows that the suite catches each behaviour the
# product stands on when it is broken. The test build of the module has a
# parameter, break_behaviour, that breaks one behaviour on purpose
# (dm_remap/breakage.rs); for each, the test kernel boots with it set in
# every load of the module and runs the test files that should notice.
# Every breakage must fail at least one check of the files named, and the
# baseline (nothing broken) none. Not part of the default run
# (scripts/test.sh); about 40 minutes. Writes results/broken.txt.
. "$(dirname "$0")/lib.sh"

# <number> <test files> <what is broken>. Number 0 is the baseline: the
# same files with nothing broken must pass, so that a breakage's failures
# are its own.
BREAKAGES="0 10,40,45,55,60,70,75,80,86,87 nothing (baseline)
1 40,80 a remap is acknowledged without its metadata commit
2 60,80 a write that failed is not relocated: its bio fails
3 60,75,80 a read that failed does not make its block pending
4 10 flushes reach the data device only, never the spare device
5 40 bios that arrive while their block switches are not held
6 45,55 loading does not mark damaged copies for rewriting
7 70 a commit of unknown outcome rolls back instead of fencing
8 70,80 a relocated write is acknowledged whatever its commit's outcome
9 70,80 the dead-device probe always finds the data device alive
10 75 the scrub skips the rest of a step after a run of failed reads
11 60 a load offers retired spares again
12 45 loading takes the newest copy's version of each block (a lost write reverts a commit)
13 87 a weak-block check makes no control read (a busy disk's blocks are moved)
14 86 the target's own reads are not given up on at a suspend or scrub stop
15 86 retries of failed reads and the dead-device probe have no time limit"

# Breakages whose files fail in other ways too: the checks that must be
# among those that fail.
must_12="lost slot write"

for step in toolchain.sh "kernel.sh test" "build-module.sh test"; do
	bash "$PROJ/scripts/"$step || die "build: scripts/$step"
done
mkdir -p "$PROJ/results"
img=$(guest_image test test) || exit 1
out=$PROJ/results/broken.txt
: >"$out.new"
missed=0
while read -r n files what; do
	say "breakage $n ($what): running tests $files"
	glog=$PROJ/results/guest-broken-$n.log
	klog=$PROJ/results/kernel-broken-$n.log
	# t-80 with a fixed seed, so that a run can be repeated.
	boot_guest test "$img" test "$klog" "" \
		"dmr.break=$n dmr.files=$files dmr.seed=${DM_REMAP_SEED:-4242}" </dev/null | sed 's/\r$//' >"$glog" || true
	grep -q "^DMR-BROKEN $n$" "$glog" || die "breakage $n: the guest did not set it (see $glog)"
	# The module says which behaviour it breaks: the parameter took effect.
	if [ "$n" != 0 ] && ! grep -q "remap: test build: behaviour $n broken on purpose" "$klog"; then
		die "breakage $n: the module did not take the parameter (see $klog)"
	fi
	# Only the checks of the files named count (not KUnit, not kmemleak).
	pattern="^DMR-RESULT not ok ($(echo "$files" | tr ',' '|'))-"
	caught=$(grep -cE "$pattern" "$glog" || true)
	ran=$(grep -cE "^DMR-RESULT (not )?ok ($(echo "$files" | tr ',' '|'))-" "$glog" || true)
	first=$(grep -m 3 -E "$pattern" "$glog" | sed 's/^DMR-RESULT not ok //; s/ # .*//' | paste -sd ';' - || true)
	if [ "$n" = 0 ]; then
		if [ "$caught" = 0 ] && [ "$ran" -gt 0 ]; then
			line="clean   0  baseline: $ran checks of tests $files pass with nothing broken"
		else
			line="FAILED  0  baseline: $caught of $ran checks fail with nothing broken (tests $files), e.g. $first"
			missed=$((missed + 1))
		fi
	elif [ -n "$(eval echo "\${must_$n:-}")" ] && ! grep -E "$pattern" "$glog" | grep -q "$(eval echo "\$must_$n")"; then
		line="MISSED  $n  $what: $caught checks fail, but not the ones that name it ('$(eval echo "\$must_$n")')"
		missed=$((missed + 1))
	elif [ "$caught" -gt 0 ]; then
		line="caught  $n  $what: $caught of $ran checks fail (tests $files), e.g. $first"
	else
		line="MISSED  $n  $what: no check of $ran fails (tests $files)"
		missed=$((missed + 1))
	fi
	echo "$line" | tee -a "$out.new"
done <<<"$BREAKAGES"
mv "$out.new" "$out"
echo "$(grep -c '^caught' "$out") of $(($(wc -l <"$out") - 1)) breakages caught, baseline $(grep -q '^clean' "$out" && echo clean || echo FAILED); $out"
[ "$missed" = 0 ]
