#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The whole test suite: build what is missing (toolchain, test kernel,
# module), boot the test kernel in QEMU, run the module's KUnit suites and
# the dmsetup tests in tests/guest, and check the kernel log for oopses,
# WARNs, lockdep, KFENCE and kmemleak reports.  Every test file must run to
# its end and report as many checks as tests/guest/checks says it has.
# Ends with the time per file and one line "N passed, N failed", and exits
# non-zero on any failure.
#   scripts/test.sh          the test kernel (GCC; lockdep, kmemleak, KFENCE)
#   scripts/test.sh kasan    the same suite on the KASAN kernel (clang, generic
#                            KASAN); KASAN reports that do not involve the
#                            module are listed, not failed (see docs/testing.md "Under KASAN")
. "$(dirname "$0")/lib.sh"

FLAVOR=${1:-test}
case $FLAVOR in test | kasan) ;; *) die "usage: $0 [kasan]" ;; esac
start=$(date +%s)
for step in toolchain.sh "kernel.sh $FLAVOR" "build-module.sh $FLAVOR"; do
	if ! bash "$PROJ/scripts/"$step; then
		echo "  FAIL  build: scripts/$step"
		echo "0 passed, 1 failed"
		exit 1
	fi
done
mkdir -p "$PROJ/results"
# remapctl, built with the host's toolchain for the guest image; its host
# checks (cargo test, clippy, rustfmt, the generator's units) run here.
hostlog=$PROJ/results/host-$FLAVOR.log
if ! bash "$PROJ/scripts/build-remapctl.sh" --check >"$hostlog"; then
	echo "  FAIL  build: scripts/build-remapctl.sh"
	echo "0 passed, 1 failed"
	exit 1
fi
img=$(guest_image $FLAVOR test) || exit 1
klog=$PROJ/results/kernel-$FLAVOR.log
glog=$PROJ/results/guest-$FLAVOR.log
rm -f "$klog"
say "booting the $FLAVOR kernel in QEMU (guest output follows)"
# KASAN makes the guest about 5 times slower: the per-file bounds and the
# guest's timeout grow with it.
slow=1
[ "$FLAVOR" = kasan ] && slow=6 && export DM_REMAP_GUEST_TIMEOUT=${DM_REMAP_GUEST_TIMEOUT:-7200}
boot_guest $FLAVOR "$img" test "$klog" "" "dmr.slow=$slow" | tee "$glog" | while IFS= read -r line; do
	line=${line%$'\r'}
	case $line in
	DMR-TEST*) printf '\n== %s\n' "${line#DMR-TEST }" ;;
	DMR-END*) printf '        (%s s)\n' "${line##* }" ;;
	"DMR-RESULT ok "*) printf '  ok    %s\n' "${line#DMR-RESULT ok }" ;;
	"DMR-RESULT not ok "*) printf '  FAIL  %s\n' "${line#DMR-RESULT not ok }" ;;
	"DMR-RESULT skip "*) printf '  skip  %s\n' "${line#DMR-RESULT skip }" ;;
	*) printf '        | %s\n' "$line" ;;
	esac
done || true
sed -i 's/\r$//' "$glog" "$klog" 2>/dev/null || true

passed=$(grep -c '^DMR-RESULT ok ' "$glog" || true)
failed=$(grep -c '^DMR-RESULT not ok ' "$glog" || true)
skipped=$(grep -c '^DMR-RESULT skip ' "$glog" || true)
problems=()
[ "$passed" -gt 0 ] || problems+=("no test ran")
# What the kernel's own checks report, and the module's warning that its
# inline per-bio layout does not match the running kernel (kapi/dm/per_bio.rs).
kernel_problems='\] +(# )?not ok [0-9]+ |Oops|BUG:|WARNING:|Call Trace:|possible circular locking|possible recursive locking|inconsistent lock state|lock held when returning|sleeping function called from invalid context|scheduling while atomic|KFENCE:|kmemleak: [0-9]+ new suspected|list_add corruption|list_del corruption|Kernel panic|general protection fault|INFO: task .* blocked|DEBUG_LOCKS_WARN_ON|RCU stall|detected stalls|rcu_sched self-detected|soft lockup|hard LOCKUP|workqueue lockup|printk messages dropped|dm per-bio data is not where' 
# Every file ran to its end ("DMR-END <name> <seconds>") and reported the
# checks it has; without DM_REMAP_ONLY, every file ran.
expected=$PROJ/tests/guest/checks
ran=$(sed -n 's/^DMR-TEST //p' "$glog")
if [ -z "${DM_REMAP_ONLY:-}" ]; then
	for t in "$PROJ"/tests/guest/t-*.sh; do
		t=$(basename "$t" .sh)
		t=${t#t-}
		echo "$ran" | grep -qx "$t" || problems+=("$t: did not start")
	done
fi
times=()
for t in kunit $ran kmemleak; do
	end=$(sed -n "s/^DMR-END $t //p" "$glog")
	if [ -z "$end" ]; then
		problems+=("$t: did not run to its end (aborted, hung or the guest died)")
		continue
	fi
	times+=("$t ${end}s")
	n=$(grep -cE "^DMR-RESULT (not )?ok $t: " "$glog" || true)
	want=$(awk -v t="$t" '$1 == t { print $2 }' "$expected")
	if [ -z "$want" ]; then
		problems+=("$t: no line in tests/guest/checks (it reported $n checks)")
	elif [ "$n" != "$want" ]; then
		problems+=("$t: reported $n checks, tests/guest/checks says $want")
	fi
done
host=0
while IFS= read -r l; do
	case $l in
	"HOST-RESULT ok "*)
		passed=$((passed + 1))
		echo "  ok    host: ${l#HOST-RESULT ok }"
		;;
	"HOST-RESULT not ok "*) problems+=("host: ${l#HOST-RESULT not ok } (see $CACHE/remapctl-checks.log)") ;;
	*) continue ;;
	esac
	host=$((host + 1))
done <"$hostlog"
[ "$host" = 9 ] || problems+=("host: $host checks reported by scripts/build-remapctl.sh --check, not 9")
# The install test (scripts/test-install.sh): a fresh root with only the
# kernel's headers packages builds the module with DKMS, the packages
# install, and the module DKMS built passes the passthrough checks in the
# guest (its own boot, results/guest-dkms.log).
if [ -z "${DM_REMAP_ONLY:-}" ] && [ "$FLAVOR" = test ]; then
	installlog=$PROJ/results/install.log
	say "the install test: DKMS from a headers package in a fresh root, the packages, the module it built in the guest"
	bash "$PROJ/scripts/test-install.sh" "$FLAVOR" >"$installlog" 2>&1 || true
	inst=0
	while IFS= read -r l; do
		case $l in
		"INSTALL-RESULT ok "*) passed=$((passed + 1)); echo "  ok    install: ${l#INSTALL-RESULT ok }" ;;
		"INSTALL-RESULT not ok "*) problems+=("install: ${l#INSTALL-RESULT not ok } (see $CACHE/install-test.log)") ;;
		*) continue ;;
		esac
		inst=$((inst + 1))
	done <"$installlog"
	[ "$inst" = 19 ] || problems+=("install: $inst checks reported by scripts/test-install.sh, not 19 (see $installlog)")
	dlog=$PROJ/results/guest-dkms.log
	sed -i 's/\r$//' "$dlog" "$PROJ/results/kernel-dkms.log" 2>/dev/null || true
	for t in kunit 10-passthrough; do
		n=$(grep -c "^DMR-RESULT ok $t: " "$dlog" 2>/dev/null || true)
		want=$(awk -v t="$t" '$1 == t { print $2 }' "$expected")
		if [ "$n" = "$want" ] && grep -q "^DMR-END $t " "$dlog"; then
			passed=$((passed + 1))
			echo "  ok    install: the module DKMS built passes $t in the guest ($n checks)"
		else
			problems+=("install: the module DKMS built: $t reported $n checks passed, tests/guest/checks says $want (see $dlog)")
		fi
	done
	# (No failed check is no match: not an error under set -e.)
	{ grep '^DMR-RESULT not ok ' "$dlog" 2>/dev/null || true; } | sed 's/^DMR-RESULT not ok /install guest: /' |
		while IFS= read -r f; do echo "  FAIL  $f"; done
	dfailed=$(grep -c '^DMR-RESULT not ok ' "$dlog" 2>/dev/null || true)
	failed=$((failed + ${dfailed:-0}))
	grep -q '^DMR-DONE' "$dlog" 2>/dev/null || problems+=("install: the guest with the module DKMS built did not finish (see $PROJ/results/kernel-dkms.log)")
	while IFS= read -r hit; do
		problems+=("install: kernel log: $hit")
	done < <(grep -E "$kernel_problems" "$PROJ/results/kernel-dkms.log" 2>/dev/null | head -n 20 || true)
fi
# The module builds without a compiler or clippy warning and is rustfmt-clean
# with the kernel's .rustfmt.toml. The log is that of the last whole build
# of these very sources (build-module.sh rebuilds all when they change).
if grep -qE '(^| )(warning|error)(\[|:)' "$CACHE/module-$FLAVOR.log"; then
	problems+=("module build (CLIPPY=1 W=1) printed warnings: see $CACHE/module-$FLAVOR.log")
else
	passed=$((passed + 1))
	echo "  ok    build: dm-remap.ko and dm-rust-linear.ko build warning-free with CLIPPY=1 W=1"
fi
# Every unsafe of the modules is in kapi/ (the abstractions).
if unsafe_outside=$(bash "$PROJ/scripts/check-unsafe.sh" "$PROJ"); then
	passed=$((passed + 1))
	echo "  ok    build: no unsafe outside kapi/ (scripts/check-unsafe.sh)"
else
	problems+=("$(echo "$unsafe_outside" | tr '\n' ' ')")
fi
if in_root "rustfmt --edition 2021 --config-path $KSRC_DIR/.rustfmt.toml --check $(cd "$PROJ" && ls ./*.rs ./dm_remap/*.rs ./metadata/*.rs ./ondisk/src/format/*.rs ./kapi/*.rs ./kapi/dm/*.rs ./linear/*.rs | grep -v _generated | tr '\n' ' ')" >/dev/null 2>&1; then
	passed=$((passed + 1))
	echo "  ok    build: rustfmt-clean with the kernel's .rustfmt.toml"
else
	problems+=("rustfmt --check with the kernel's .rustfmt.toml finds unformatted code")
fi
grep -q '^DMR-DONE' "$glog" || problems+=("the guest did not finish: timeout, hang or crash (see $klog)")
# KASAN reports (between two lines of '=' signs) that name no function of
# the module are set aside: listed, not failed. Every other report stays.
checked=$klog
core=()
if [ "$FLAVOR" = kasan ]; then
	checked=$PROJ/results/kernel-kasan.checked.log
	awk -v core="$PROJ/results/kernel-kasan.core-reports.log" '
		/\] =+$/ {
			if (!inrep) { inrep = 1; buf = $0; next }
			buf = buf "\n" $0; inrep = 0
			if (buf ~ /dm_remap/) print buf; else print buf >core
			next
		}
		inrep { buf = buf "\n" $0; next }
		{ print }
		# A report whose closing line never came (the guest died in it)
		# stays in the log that is checked.
		END { if (inrep) print buf }' "$klog" >"$checked"
	while IFS= read -r r; do core+=("$r"); done < <(grep -h 'BUG: KASAN' "$PROJ/results/kernel-kasan.core-reports.log" 2>/dev/null || true)
fi
# Anything the kernel's own checks reported fails the run.
while IFS= read -r hit; do
	problems+=("kernel log: $hit")
done < <(grep -E "$kernel_problems" "$checked" 2>/dev/null | head -n 20 || true)

echo
echo "== summary ($(($(date +%s) - start)) s; logs: $glog, $klog)"
echo "  time per file in the guest: ${times[*]}"
for r in "${core[@]}"; do echo "  note  KASAN report outside the module (not failed): $r"; done
grep '^DMR-RESULT not ok ' "$glog" | sed 's/^DMR-RESULT not ok /  FAIL  /' || true
for p in "${problems[@]}"; do echo "  FAIL  $p"; done
failed=$((failed + ${#problems[@]}))
[ -n "${DM_REMAP_ONLY:-}" ] && echo "  note  a partial run: only the guest tests whose name holds '$DM_REMAP_ONLY' ran (DM_REMAP_ONLY)"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
