#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The whole test suite: build what is missing (toolchain, test kernel,
# module), boot the test kernel in QEMU, run the module's KUnit suites and
# the dmsetup tests in tests/guest, and check the kernel log for oopses,
# WARNs, lockdep, KFENCE and kmemleak reports.  Ends with one line
# "N passed, N failed" and exits non-zero on any failure.
. "$(dirname "$0")/lib.sh"

start=$(date +%s)
for step in toolchain.sh "kernel.sh test" "build-module.sh test"; do
	if ! bash "$PROJ/scripts/"$step; then
		echo "  FAIL  build: scripts/$step"
		echo "0 passed, 1 failed"
		exit 1
	fi
done
mkdir -p "$PROJ/results"
img=$(guest_image test test)
klog=$PROJ/results/kernel-test.log
glog=$PROJ/results/guest-test.log
rm -f "$klog"
say "booting the test kernel in QEMU (guest output follows)"
boot_guest test "$img" test "$klog" | tee "$glog" | while IFS= read -r line; do
	line=${line%$'\r'}
	case $line in
	DMR-TEST*) printf '\n== %s\n' "${line#DMR-TEST }" ;;
	"DMR-RESULT ok "*) printf '  ok    %s\n' "${line#DMR-RESULT ok }" ;;
	"DMR-RESULT not ok "*) printf '  FAIL  %s\n' "${line#DMR-RESULT not ok }" ;;
	*) printf '        | %s\n' "$line" ;;
	esac
done || true
sed -i 's/\r$//' "$glog" "$klog" 2>/dev/null || true

passed=$(grep -c '^DMR-RESULT ok ' "$glog" || true)
failed=$(grep -c '^DMR-RESULT not ok ' "$glog" || true)
problems=()
# The module builds without a compiler or clippy warning and is rustfmt-clean
# with the kernel's .rustfmt.toml.
if grep -qE '(^| )(warning|error)(\[|:)' "$CACHE/module-test.log"; then
	problems+=("module build (CLIPPY=1 W=1) printed warnings: see $CACHE/module-test.log")
else
	passed=$((passed + 1))
	echo "  ok    build: dm-remap.ko builds warning-free with CLIPPY=1 W=1"
fi
if in_root "rustfmt --edition 2021 --config-path $KSRC_DIR/.rustfmt.toml --check $(cd "$PROJ" && ls ./*.rs ./dm_remap/*.rs ./metadata/*.rs | grep -v _generated | tr '\n' ' ')" >/dev/null 2>&1; then
	passed=$((passed + 1))
	echo "  ok    build: rustfmt-clean with the kernel's .rustfmt.toml"
else
	problems+=("rustfmt --check with the kernel's .rustfmt.toml finds unformatted code")
fi
grep -q '^DMR-DONE' "$glog" || problems+=("the guest did not finish: timeout, hang or crash (see $klog)")
[ "$passed" -gt 0 ] || problems+=("no test ran")
# Anything the kernel's own checks reported fails the run.
while IFS= read -r hit; do
	problems+=("kernel log: $hit")
done < <(grep -E 'Oops|BUG:|WARNING:|Call Trace:|possible circular locking|possible recursive locking|inconsistent lock state|lock held when returning|sleeping function called from invalid context|scheduling while atomic|KFENCE:|kmemleak: [0-9]+ new suspected|list_add corruption|list_del corruption|Kernel panic|general protection fault|INFO: task .* blocked|DEBUG_LOCKS_WARN_ON|RCU stall' "$klog" 2>/dev/null | head -n 20 || true)

echo
echo "== summary ($(($(date +%s) - start)) s; logs: $glog, $klog)"
grep '^DMR-RESULT not ok ' "$glog" | sed 's/^DMR-RESULT not ok /  FAIL  /' || true
for p in "${problems[@]}"; do echo "  FAIL  $p"; done
failed=$((failed + ${#problems[@]}))
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
