#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build dm-remap.ko against the cached kernel of a flavour (default: test),
# inside the build root, with clippy; or clean the build products.
#   scripts/build-module.sh [clean] [test|bench]
. "$(dirname "$0")/lib.sh"

ACTION=build
if [ "${1:-}" = clean ]; then ACTION=clean; shift; fi
FLAVOR=${1:-test}
OUT=/build/out-$FLAVOR

if [ $ACTION = clean ]; then
	rm -rf "$PROJ"/{*.o,*.ko,*.mod,*.mod.c,*.mod.o,.*.cmd,modules.order,Module.symvers,dm_bindings_generated.rs,*.rmeta,.tmp_versions}
	exit 0
fi
bash "$PROJ/scripts/kernel.sh" "$FLAVOR"
say "building dm-remap.ko against the $FLAVOR kernel (CLIPPY=1)"
# The module is built for one kernel at a time: clean when the flavour changes.
if [ "$(cat "$PROJ/.built-for" 2>/dev/null)" != "$FLAVOR" ]; then
	bash "$0" clean
	echo "$FLAVOR" >"$PROJ/.built-for"
fi
in_root "make -C $OUT M=$PROJ CLIPPY=1 W=1 modules 2>&1" | tee "$CACHE/module-$FLAVOR.log" >&2
grep -qE 'warning|error' "$CACHE/module-$FLAVOR.log" && say "module build printed warnings or errors (above)"
[ -f "$PROJ/dm-remap.ko" ] || die "module build failed"
say "built $PROJ/dm-remap.ko"
