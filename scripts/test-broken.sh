#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The broken-behaviour mode: shows that the suite catches each behaviour the
# product stands on when it is broken. The test build of the module has a
# parameter, break_behaviour, that breaks one behaviour on purpose
# (dm_remap/breakage.rs); for each, the test kernel boots with it set in
# every load of the module and runs the test files that should notice.
# Every breakage must fail at least one check. Not part of the default
# run (scripts/test.sh); about 10 minutes. Writes results/broken.txt.
. "$(dirname "$0")/lib.sh"

# <number> <test files> <what is broken>
BREAKAGES="1 40 a remap is acknowledged without its metadata commit
2 60 a write that failed is not relocated: its bio fails
3 60 a read that failed does not make its block pending
4 10 flushes reach the data device only, never the spare device
5 40 bios that arrive while their block switches are not held
6 45,55 loading does not mark damaged copies for rewriting"

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
	boot_guest test "$img" test "$PROJ/results/kernel-broken-$n.log" "" \
		"dmr.break=$n dmr.files=$files" </dev/null | sed 's/\r$//' >"$glog" || true
	grep -q "^DMR-BROKEN $n$" "$glog" || die "breakage $n: the guest did not set it (see $glog)"
	caught=$(grep -c '^DMR-RESULT not ok ' "$glog" || true)
	first=$(grep -m 3 '^DMR-RESULT not ok ' "$glog" | sed 's/^DMR-RESULT not ok //; s/ # .*//' | paste -sd ';' -)
	if [ "$caught" -gt 0 ]; then
		line="caught  $n  $what: $caught checks fail (tests $files), e.g. $first"
	else
		line="MISSED  $n  $what: no check fails (tests $files)"
		missed=$((missed + 1))
	fi
	echo "$line" | tee -a "$out.new"
done <<<"$BREAKAGES"
mv "$out.new" "$out"
echo "$(grep -c '^caught' "$out") of $(wc -l <"$out") breakages caught; $out"
[ "$missed" = 0 ]
