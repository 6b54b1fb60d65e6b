#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The module's sources as DKMS takes them (docs/install.md):
#   dist/dm-remap-VERSION.dkms.tar.gz   unpacks to dm-remap-VERSION/, for
#                                       /usr/src and `dkms add`
#   dist/dm-remap-dkms_VERSION_all.deb  the same in /usr/src, depending on
#                                       dkms, rustc and bindgen, and added,
#                                       built and installed for the
#                                       installed kernels by its postinst
# No build products, no generated files: what DKMS builds is the sources.
#   scripts/package-dkms.sh    (make dkms-tarball, make dkms-deb)
set -euo pipefail
PROJ=$(cd "$(dirname "$0")/.." && pwd)
cd "$PROJ"
VER=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' dkms.conf)
[ -n "$VER" ] || { echo "package-dkms: no PACKAGE_VERSION in dkms.conf" >&2; exit 1; }
# One version for the module, DKMS and remapctl.
tgt=$(sed -n 's/.*const VERSION: \[u32; 3\] = \[\([0-9]*\), \([0-9]*\), \([0-9]*\)\];/\1.\2.\3/p' dm_remap.rs)
[ "$tgt" = "$VER" ] || { echo "package-dkms: dkms.conf says $VER, the target (dm_remap.rs) $tgt" >&2; exit 1; }
mkdir -p dist
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
src=$stage/dm-remap-$VER
mkdir -p "$src"
# The sources Kbuild reads, listed by kind so that nothing built comes along.
files=$(ls Kbuild dkms.conf dkms-pre-build.sh ./*.rs dm_remap/*.rs metadata/*.rs ondisk/src/format/*.rs \
	kapi/*.rs kapi/dm/*.rs kapi/*.[ch] kapi/bindgen_parameters linear/*.rs linear/*.c |
	grep -v _generated)
tar -c $files docs/dm-remap.rst | tar -x -C "$src"
tar -C "$stage" --owner=0 --group=0 --sort=name -czf "dist/dm-remap-$VER.dkms.tar.gz" "dm-remap-$VER"
echo "dist/dm-remap-$VER.dkms.tar.gz"
[ "${1:-}" = --deb ] || exit 0

deb=$stage/deb
mkdir -p "$deb/DEBIAN" "$deb/usr/src" "$deb/usr/share/doc/dm-remap-dkms"
cp -r "$src" "$deb/usr/src/"
cp docs/dm-remap.rst "$deb/usr/share/doc/dm-remap-dkms/"
cat >"$deb/DEBIAN/control" <<X
Package: dm-remap-dkms
Version: $VER
Architecture: all
Maintainer: dm-remap developers <root@localhost>
Section: kernel
Priority: optional
Depends: dkms (>= 3.0), rustc, bindgen, libclang-dev
Recommends: remapctl
Description: dm-remap device-mapper target (DKMS sources)
 The remap target relocates failing blocks of a disk to spare blocks
 without the filesystem seeing a write error.  It is written in Rust and
 builds for kernels of the 7.2 series with CONFIG_RUST; the kernel's
 headers package must carry its Rust metadata (rust/*.rmeta), and rustc
 must be the version that built the kernel.
X
# As dh_dkms's scripts do: add, then build and install for every kernel
# that has headers; a kernel it cannot build for is reported, not fatal.
cat >"$deb/DEBIAN/postinst" <<X
#!/bin/sh
set -e
if [ "\$1" = configure ]; then
	dkms status -m dm-remap -v $VER | grep -q . || dkms add -m dm-remap -v $VER
	for build in /lib/modules/*/build; do
		[ -d "\$build" ] || continue
		kver=\$(basename "\$(dirname "\$build")")
		dkms install -m dm-remap -v $VER -k "\$kver" ||
			echo "dm-remap-dkms: not built for \$kver (see /var/lib/dkms/dm-remap/$VER/build/make.log)" >&2
	done
fi
X
cat >"$deb/DEBIAN/prerm" <<X
#!/bin/sh
set -e
case "\$1" in remove | upgrade | deconfigure)
	dkms remove -m dm-remap -v $VER --all || true ;;
esac
X
chmod 0755 "$deb/DEBIAN/postinst" "$deb/DEBIAN/prerm"
dpkg-deb --root-owner-group -Zxz -b "$deb" "dist/dm-remap-dkms_${VER}_all.deb" >/dev/null
echo "dist/dm-remap-dkms_${VER}_all.deb"
