#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build util-linux's blkid and wipefs with the dm-remap probe
# (0001-libblkid-add-dm-remap-member-probe.patch) from Debian's util-linux
# source, and check them on disk images. Runs as root inside a Debian root
# whose apt sources reach the archive (scripts/test-install.sh runs it in
# its fresh root); the build is kept in $UL (reused while the patch and the
# source version are unchanged).
#   test-blkid.sh MEMBER.img DAMAGED.img UUID
#     MEMBER.img   a disk remapctl formatted
#     DAMAGED.img  the same with one byte of its primary label changed
#     UUID         the metadata UUID remapctl printed
set -euo pipefail
member=$1 damaged=$2 uuid=$3
here=$(cd "$(dirname "$0")" && pwd)
patch=$here/0001-libblkid-add-dm-remap-member-probe.patch
UL=${UL:-/tmp/ul-cache}
key=$(sha256sum "$patch" | cut -c1-12)
if [ "$(cat "$UL/.key" 2>/dev/null)" != "$key" ] || [ ! -x "$UL/build/blkid" ]; then
	rm -rf "$UL"
	mkdir -p "$UL"
	export DEBIAN_FRONTEND=noninteractive
	# Debian's source of util-linux, with Debian's own patches.
	sed -i 's/^Types: deb$/Types: deb deb-src/' /etc/apt/sources.list.d/debian.sources
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends meson ninja-build pkg-config bison flex dpkg-dev >/dev/null
	(cd "$UL" && apt-get source -qq util-linux >/dev/null 2>&1)
	src=$(find "$UL" -maxdepth 1 -type d -name 'util-linux-*' | head -n1)
	[ -n "$src" ] || { echo "test-blkid: no util-linux source" >&2; exit 1; }
	(cd "$src" && patch -p1 <"$patch")
	meson setup "$UL/build" "$src" -Dauto_features=disabled -Dbuild-libblkid=enabled \
		-Dbuild-libsmartcols=enabled -Dbuild-wipefs=enabled -Dprogram-tests=false >/dev/null
	ninja -C "$UL/build" blkid wipefs >/dev/null
	echo "$key" >"$UL/.key"
fi
blkid=$UL/build/blkid wipefs=$UL/build/wipefs

echo "== the patched blkid on a member"
out=$("$blkid" -p -o udev "$member")
echo "$out"
grep -qx ID_FS_TYPE=dm_remap_member <<<"$out"
grep -qx ID_FS_USAGE=raid <<<"$out"
grep -qx "ID_FS_UUID=$uuid" <<<"$out"
grep -qx ID_FS_VERSION=1 <<<"$out"
echo "== Debian's own blkid finds nothing there"
rc=0
/usr/sbin/blkid -p -o udev "$member" || rc=$?
[ "$rc" = 2 ]
echo "== the patched blkid finds nothing on a label whose checksum is wrong"
rc=0
"$blkid" -p -o udev "$damaged" || rc=$?
[ "$rc" = 2 ]
echo "== the patched wipefs lists the label (listing erases nothing)"
out=$("$wipefs" --noheadings --output OFFSET,TYPE,UUID "$member")
echo "$out"
grep -qE "^0x0 +dm_remap_member +$uuid\$" <<<"$out"
echo "test-blkid: all passed"
