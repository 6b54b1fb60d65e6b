#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Create (once) the Debian trixie build root that holds the whole toolchain:
# rustc + rust-src + bindgen + clang for Rust-for-Linux, the Linux 7.2
# source, QEMU, and the guest user space (busybox, dmsetup, fio, e2fsprogs).
# Idempotent: a finished root is reused; a changed package list makes a new one.
. "$(dirname "$0")/lib.sh"

# guest_packages: installs the packages of scripts/guest-packages.txt that
# the root lacks (a root made before one was added to the list too).
guest_packages() {
	local missing="" p
	for p in $(grep -Ev '^#|^$' "$PROJ/scripts/guest-packages.txt"); do
		chroot "$ROOT" dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
			missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	say "apt: installing guest tools into the build root:$missing"
	chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
		bash -c "apt-get update && apt-get install -y --no-install-recommends $missing" 2>&1 |
		progress apt "$CACHE/apt-guest.log" 20
	for p in $missing; do
		chroot "$ROOT" dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
			die "installing $p failed, see $CACHE/apt-guest.log"
	done
}

if [ -f "$ROOT/.complete" ] && [ -d "$ROOT$KSRC_DIR/rust" ]; then
	[ "$(id -u)" = 0 ] && guest_packages
	say "build root ready: $ROOT"
	exit 0
fi
[ "$(id -u)" = 0 ] || die "building the root needs root (debootstrap, chroot)"
mkdir -p "$CACHE"
exec 9>"$CACHE/.toolchain.lock"
flock 9

MIRROR=$(debian_mirror)
if ! command -v debootstrap >/dev/null; then
	say "installing debootstrap on the host"
	DEBIAN_FRONTEND=noninteractive apt-get -qq update
	DEBIAN_FRONTEND=noninteractive apt-get -qq install -y debootstrap >/dev/null
fi

if [ ! -x "$ROOT/usr/bin/apt-get" ] || [ ! -f "$ROOT/.debootstrap-done" ]; then
	rm -rf "$ROOT"
	say "debootstrap $SUITE into $ROOT (about 1 minute)"
	debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" 2>&1 |
		progress debootstrap "$CACHE/debootstrap.log" 40
	touch "$ROOT/.debootstrap-done"
fi

rm -f "$ROOT/etc/apt/sources.list"
cat >"$ROOT/etc/apt/sources.list.d/debian.sources" <<X
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates $SUITE-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
X
cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
mkdir -p "$ROOT/build"

PKGS=$(grep -Ev '^#|^$' "$PROJ/scripts/packages.txt" | tr '\n' ' ')
say "apt: installing the toolchain into the build root (about 1-2 minutes)"
chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
	bash -c "apt-get update && apt-get install -y --no-install-recommends $PKGS" 2>&1 |
	progress apt "$CACHE/apt.log" 100
[ -x "$ROOT/usr/bin/bindgen" ] && [ -x "$ROOT/usr/bin/qemu-system-x86_64" ] ||
	die "package install failed, see $CACHE/apt.log"

say "unpacking the kernel source"
rm -rf "$ROOT$KSRC_DIR"
chroot "$ROOT" bash -c "cd /build && tar xf /usr/src/$KSRC_PKG.tar.xz"
chroot "$ROOT" dpkg-query -W -f '${Package} ${Version}\n' >"$ROOT/build/versions.txt"
grep -E '^(rustc|bindgen|clang|linux-source-7.2|qemu-system-x86|dmsetup|fio) ' "$ROOT/build/versions.txt" |
	while read -r p v; do say "  $p $v"; done
guest_packages
touch "$ROOT/.complete"
say "build root ready: $ROOT"
