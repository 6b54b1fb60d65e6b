# SPDX-License-Identifier: GPL-2.0
# The guest side of the test suite: KUnit suites of the module, then every
# tests/guest/t-*.sh in order, then a kmemleak scan.
. /tests/lib.sh
# The broken-behaviour mode (scripts/test-broken.sh): dmr.break=<n> breaks
# one behaviour in every load of the module, dmr.files=<a,b> runs those
# test files only.
broken=$(sed -n 's/.*dmr\.break=\([0-9]*\).*/\1/p' /proc/cmdline)
files=$(sed -n 's/.*dmr\.files=\([^ ]*\).*/\1/p' /proc/cmdline)
# dmr.slow=<n>: the kernel is n times slower (KASAN): so are the bounds.
slow=$(sed -n 's/.*dmr\.slow=\([0-9]*\).*/\1/p' /proc/cmdline)
if [ -n "$broken" ]; then
	mkdir -p /etc/modprobe.d
	echo "options dm_remap break_behaviour=$broken" >/etc/modprobe.d/dm-remap.conf
	echo "DMR-BROKEN $broken"
fi
T=kunit
started=$(date +%s)
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
		case "$res|$case" in
		# A skipped case (the bench kernel's timing cases skip here) is
		# neither a pass nor a failure: counted apart.
		"ok|"*"# SKIP"*) echo "DMR-RESULT skip $T: $suite.${case%% # SKIP*}" ;;
		"ok|"*) pass "$suite.$case" ;;
		*) fail "$suite.$case" "see KTAP in the kernel log" ;;
		esac
	done </tmp/kunit.cases
done
[ $found = 1 ] || fail "kunit suites" "no dm_remap KUnit suite in /sys/kernel/debug/kunit"
echo "DMR-END kunit $(($(date +%s) - started))"
# The suites ran once; the module loads of later tests (t-45, t-90) skip
# them (filter_glob matches no suite). Without the parameter they run again,
# and the kernel log check still sees any "not ok".
if [ -w /sys/module/kunit/parameters/filter_glob ]; then
	echo 'dm_remap_ran_once' >/sys/module/kunit/parameters/filter_glob
fi

# dmr.only=<word> on the kernel command line (DM_REMAP_ONLY on the host)
# runs only the tests whose name holds it.
only=$(sed -n 's/.*dmr\.only=\([^ ]*\).*/\1/p' /proc/cmdline)
# Each file runs in a subshell of its own, bounded: a file that hangs is
# reported and left behind, and the run goes on. A file that runs to its
# end says so with "DMR-END <name> <seconds>"; the host requires one for
# every file and checks how many checks each reported (tests/guest/checks).
for t in /tests/t-*.sh; do
	T=$(basename "$t" .sh)
	T=${T#t-}
	case $T in *"$only"*) ;; *) continue ;; esac
	case ",$files," in ,,) ;; *",${T%%-*},"*) ;; *) continue ;; esac
	bound=$(sed -n "s/^$T [0-9]* \([0-9]*\)$/\1/p" /tests/checks)
	bound=$((${bound:-300} * ${slow:-1}))
	# dmr.rounds=<n> (DM_REMAP_ROUNDS): the fault combination's rounds; its
	# bound in tests/guest/checks is for the default 2.
	rounds=$(sed -n 's/.*dmr\.rounds=\([0-9]*\).*/\1/p' /proc/cmdline)
	case $T in 80-*) [ "${rounds:-2}" -gt 2 ] && bound=$((bound * rounds / 2)) ;; esac
	echo "DMR-TEST $T"
	started=$(date +%s)
	(
		. "$t"
		echo "DMR-END $T $(($(date +%s) - started))"
	) &
	tpid=$!
	if ! ends_within "$bound" $tpid; then
		fail "the file ends within $bound s" "still running: hung, left behind"
		kill -9 $tpid 2>/dev/null
	fi
	wait $tpid
done

T=kmemleak
started=$(date +%s)
if [ -e /sys/kernel/debug/kmemleak ]; then
	# Objects count as leaked once unreferenced for 5 s: scan twice. A
	# kmemleak that turned itself off refuses the scan.
	if echo scan >/sys/kernel/debug/kmemleak && sleep 6 &&
		echo scan >/sys/kernel/debug/kmemleak; then
		cat /sys/kernel/debug/kmemleak >/tmp/leaks
		if grep -q 'unreferenced object' /tmp/leaks; then
			echo "--- kmemleak report"
			cat /tmp/leaks
			fail "no leaks" "$(grep -c 'unreferenced object' /tmp/leaks) unreferenced objects"
		else
			pass "no leaks"
		fi
	else
		fail "no leaks" "kmemleak refused a scan: it is off"
	fi
else
	fail "no leaks" "no /sys/kernel/debug/kmemleak: the test kernel has no kmemleak"
fi
echo "DMR-END kmemleak $(($(date +%s) - started))"
