#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Make the guest initramfs.  Runs inside the build root (see in_root).
#   scripts/guest-image.sh <kernel-out-dir> <output.cpio.gz> <module.ko>...
# The image holds busybox, dmsetup, remapctl, fio, e2fsprogs, smartctl, blkdiscard, the
# kernel's modules, the given modules, the tools of tests/tools and
# tests/guest as /tests.
set -euo pipefail
KOUT=$1 OUTF=$2
shift 2
PROJ=$(cd "$(dirname "$0")/.." && pwd)
KSRC=/build/linux-source-7.2
KVER=$(cat "$KOUT/include/config/kernel.release")
R=$(mktemp -d /tmp/initramfs.XXXXXX)
trap 'rm -rf "$R"' EXIT

mkdir -p "$R"/{bin,sbin,proc,sys,dev,tmp,etc,run,mnt,usr/bin,usr/sbin,lib64,var/tmp}
cp /usr/bin/busybox "$R/bin/busybox"
for a in $(/usr/bin/busybox --list); do
	[ -e "$R/bin/$a" ] || ln -s busybox "$R/bin/$a"
done
# Real tools where busybox has none or a weaker one; their shared
# libraries come along.
for t in /usr/sbin/dmsetup /usr/bin/fio /usr/sbin/mke2fs /usr/sbin/e2fsck \
	/usr/sbin/blkdiscard /usr/sbin/blockdev /usr/bin/cmp /usr/bin/jq /usr/sbin/blkid \
	/usr/sbin/wipefs /usr/sbin/smartctl; do
	rm -f "$R/bin/$(basename "$t")" "$R/sbin/$(basename "$t")"
	cp "$t" "$R/sbin/"
	for lib in $(ldd "$t" | grep -o '/[^ ]*'); do
		[ -e "$R$lib" ] || { mkdir -p "$R$(dirname "$lib")"; cp -L "$lib" "$R$lib"; }
	done
done
# remapctl, built on the host (scripts/build-remapctl.sh); its libraries
# (libdevmapper, glibc) come from the build root, which is newer.
rc=$PROJ/tools/remapctl/target/release/remapctl
[ -x "$rc" ] || { echo "guest-image: $rc missing: run scripts/build-remapctl.sh" >&2; exit 1; }
cp "$rc" "$R/sbin/remapctl"
for lib in $(ldd "$rc" | grep -o '/[^ ]*'); do
	[ -e "$R$lib" ] || { mkdir -p "$R$(dirname "$lib")"; cp -L "$lib" "$R$lib"; }
done
# The test tools of tests/tools, static so that they need no libraries.
for c in "$PROJ"/tests/tools/*.c; do
	gcc -O2 -Wall -Werror -static -pthread -o "$R/sbin/$(basename "$c" .c)" "$c"
done
ln -sf mke2fs "$R/sbin/mkfs.ext4"
ln -sf e2fsck "$R/sbin/fsck.ext4"
echo 'root:x:0:0:root:/root:/bin/sh' >"$R/etc/passwd"

make -s -C "$KSRC" O="$KOUT" INSTALL_MOD_PATH="$R" INSTALL_MOD_STRIP=1 modules_install >/dev/null
mkdir -p "$R/lib/modules/$KVER/extra"
for ko in "$@"; do cp "$ko" "$R/lib/modules/$KVER/extra/"; done
depmod -b "$R" "$KVER"

cp -r "$PROJ/tests/guest" "$R/tests"
cp "$PROJ/tests/guest/init" "$R/init"
chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1 >"$OUTF")
echo "guest image $OUTF: $(du -h "$OUTF" | cut -f1)"
