# SPDX-License-Identifier: GPL-2.0
# The guest side of the test suite: KUnit suites of the module, then every
# tests/guest/t-*.sh in order, then a kmemleak scan.
. /tests/lib.sh
T=kunit
dmesg -c >/dev/null
if ! modprobe dm-remap; then
	fail "modprobe dm-remap" "module did not load"
fi
# Loading the module ran its KUnit suites; report each case.
found=0
for d in /sys/kernel/debug/kunit/dm_remap*; do
	[ -f "$d/results" ] || continue
	found=1
	suite=${d##*/}
	sed -nE 's/^    (not ok|ok) [0-9]+ (.*)$/\1|\2/p' "$d/results" >/tmp/kunit.cases
	while IFS='|' read -r res case; do
		if [ "$res" = ok ]; then pass "$suite.$case"; else fail "$suite.$case" "see KTAP in the kernel log"; fi
	done </tmp/kunit.cases
done
[ $found = 1 ] || fail "kunit suites" "no dm_remap KUnit suite in /sys/kernel/debug/kunit"

# dmr.only=<word> on the kernel command line (DM_REMAP_ONLY on the host)
# runs only the tests whose name holds it.
only=$(sed -n 's/.*dmr\.only=\([^ ]*\).*/\1/p' /proc/cmdline)
for t in /tests/t-*.sh; do
	T=$(basename "$t" .sh)
	T=${T#t-}
	case $T in *"$only"*) ;; *) continue ;; esac
	echo "DMR-TEST $T"
	(. "$t")
done

T=kmemleak
if [ -e /sys/kernel/debug/kmemleak ]; then
	# Objects count as leaked once unreferenced for 5 s: scan twice.
	echo scan >/sys/kernel/debug/kmemleak
	sleep 6
	echo scan >/sys/kernel/debug/kmemleak
	cat /sys/kernel/debug/kmemleak >/tmp/leaks
	if grep -q 'unreferenced object' /tmp/leaks; then
		echo "--- kmemleak report"
		cat /tmp/leaks
		fail "no leaks" "$(grep -c 'unreferenced object' /tmp/leaks) unreferenced objects"
	else
		pass "no leaks"
	fi
fi
