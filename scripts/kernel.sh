#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build (once) a kernel for dm-remap in the build root.
#   scripts/kernel.sh test    lockdep, atomic-sleep, kmemleak, KFENCE, list debugging
#   scripts/kernel.sh bench   the same kernel without the debugging checks
#   scripts/kernel.sh kasan   the test kernel built with clang (LLVM=1) and KASAN
# All come from tinyconfig plus kernel/dm-remap.config.  A build is reused
# while the fragment, the flavour and the build root are unchanged.
. "$(dirname "$0")/lib.sh"

FLAVOR=${1:-test}
case $FLAVOR in test | bench | kasan) ;; *) die "usage: $0 test|bench|kasan" ;; esac
# Rust's KASAN needs a clang-built kernel.
LLVM=
[ "$FLAVOR" = kasan ] && LLVM=LLVM=1
FRAG=$PROJ/kernel/dm-remap.config
OUT=/build/out-$FLAVOR
KEY=$({ cat "$FRAG" "$0"; echo "$FLAVOR $ROOT"; } | sha256sum | cut -c1-12)

if [ "$(cat "$ROOT$OUT/.dm-remap-key" 2>/dev/null)" = "$KEY" ] &&
	[ -f "$ROOT$OUT/arch/x86/boot/bzImage" ]; then
	say "$FLAVOR kernel ready: $ROOT$OUT"
	exit 0
fi
bash "$PROJ/scripts/toolchain.sh"
exec 9>"$CACHE/.kernel-$FLAVOR.lock"
flock 9

# The fragment for this flavour: the lines tagged for it and the untagged.
mkdir -p "$ROOT$OUT"
case $FLAVOR in
test) grep -v '# kasan-only$' "$FRAG" | sed 's/ *# test-only$//' ;;
kasan) sed 's/ *# \(test\|kasan\)-only$//' "$FRAG" ;;
bench) grep -vE '# (test|kasan)-only$' "$FRAG" ;;
esac | grep -E '^CONFIG_' >"$ROOT$OUT/dm-remap.fragment"

say "configuring the $FLAVOR kernel (tinyconfig + kernel/dm-remap.config)"
in_root "cd $KSRC_DIR && make -s O=$OUT $LLVM tinyconfig >/dev/null &&
	scripts/kconfig/merge_config.sh -m -O $OUT $OUT/.config $OUT/dm-remap.fragment >/dev/null &&
	make -s O=$OUT $LLVM olddefconfig >/dev/null"

# Every option of the fragment must have survived olddefconfig.
bad=0
while IFS='=' read -r opt val; do
	if [ "$val" = n ]; then
		if grep -q "^$opt=" "$ROOT$OUT/.config"; then say "config: $opt is set, wanted n"; bad=1; fi
	elif ! grep -qx "$opt=$val" "$ROOT$OUT/.config"; then
		say "config: $opt is not $val ($(grep "^$opt=\|^# $opt " "$ROOT$OUT/.config" || echo missing))"
		bad=1
	fi
done <"$ROOT$OUT/dm-remap.fragment"
[ $bad = 0 ] || die "the $FLAVOR kernel config lacks options that were asked for"

say "building the $FLAVOR kernel (about 8-12 minutes on 2 cores on a cold cache)"
start=$(date +%s)
if ! in_root "cd $KSRC_DIR && make O=$OUT $LLVM -j$(nproc) bzImage modules 2>&1" |
	progress "kernel $FLAVOR" "$CACHE/kernel-$FLAVOR.log" 250; then
	die "kernel build failed, see $CACHE/kernel-$FLAVOR.log"
fi
[ -f "$ROOT$OUT/arch/x86/boot/bzImage" ] || die "no bzImage, see $CACHE/kernel-$FLAVOR.log"
echo "$KEY" >"$ROOT$OUT/.dm-remap-key"
say "$FLAVOR kernel built in $(($(date +%s) - start)) s: $(cat "$ROOT$OUT/include/config/kernel.release")"
