#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build dm-remap.ko against the cached kernel of a flavour (default: test),
# inside the build root, with clippy; or clean the build products.
#   scripts/build-module.sh [clean] [test|bench|kasan]
. "$(dirname "$0")/lib.sh"

ACTION=build
if [ "${1:-}" = clean ]; then ACTION=clean; shift; fi
FLAVOR=${1:-test}
OUT=/build/out-$FLAVOR

if [ $ACTION = clean ]; then
	rm -rf "$PROJ"/{,kapi/,linear/}{*.o,*.ko,*.mod,*.mod.c,*.mod.o,.*.cmd,*.rmeta} \
		"$PROJ"/{modules.order,Module.symvers,.tmp_versions} \
		"$PROJ"/kapi/{dm_bindings_generated.rs,dm_offsets_generated.rs,dm_offsets.s}
	exit 0
fi
bash "$PROJ/scripts/kernel.sh" "$FLAVOR"
say "building dm-remap.ko against the $FLAVOR kernel (CLIPPY=1)"
# The module is built for one kernel at a time, and whole whenever its
# sources or the kernel change: the log then holds every diagnostic of
# exactly these sources (an incremental make that does nothing would print
# none), and it is kept with the sources' hash for the next run.
built=$CACHE/module-$FLAVOR.built
sources=$( (cd "$PROJ" && cat ./*.rs ./dm_remap/*.rs ./metadata/*.rs ./ondisk/src/format/*.rs ./kapi/*.rs ./kapi/dm/*.rs ./kapi/*.[ch] ./kapi/bindgen_parameters ./linear/*.rs ./linear/*.c Kbuild Makefile) | sha256sum | cut -c1-32)
kernel=$(stat -c %Y "$ROOT$OUT/arch/x86/boot/bzImage")
# The stamp names the checkout too: the cache is shared by every checkout
# on the machine, and another one's build of the same sources says nothing
# about the dm-remap.ko here.
if [ "$(cat "$built" 2>/dev/null)" = "$FLAVOR $PROJ $sources $kernel" ] && [ -f "$PROJ/dm-remap.ko" ] && [ -f "$PROJ/dm-rust-linear.ko" ] &&
	[ "$(cat "$PROJ/.built-for" 2>/dev/null)" = "$FLAVOR" ]; then
	say "dm-remap.ko is up to date with its sources (its build log: $CACHE/module-$FLAVOR.log)"
	exit 0
fi
rm -f "$built"
bash "$0" clean
echo "$FLAVOR" >"$PROJ/.built-for"
# Only the test builds (test, kasan) have the break_behaviour parameter (Kbuild).
breakable=
[ "$FLAVOR" != bench ] && breakable=DMR_BREAKABLE=y
# The KASAN kernel is built with clang: so is the module.
[ "$FLAVOR" = kasan ] && breakable="$breakable LLVM=1"
in_root "make -C $OUT M=$PROJ CLIPPY=1 W=1 $breakable modules 2>&1" | tee "$CACHE/module-$FLAVOR.log" >&2
grep -qE 'warning|error' "$CACHE/module-$FLAVOR.log" && say "module build printed warnings or errors (above)"
[ -f "$PROJ/dm-remap.ko" ] && [ -f "$PROJ/dm-rust-linear.ko" ] || die "module build failed"
echo "$FLAVOR $PROJ $sources $kernel" >"$built"
say "built $PROJ/dm-remap.ko and $PROJ/dm-rust-linear.ko"
