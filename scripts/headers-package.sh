#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Package a built kernel's headers the way distributions ship them, for the
# install test (scripts/test-install.sh): what a user of a distribution
# kernel has, with no kernel source.
#   linux-headers-KVER   exactly what the kernel's own `make bindeb-pkg`
#                        puts in its headers package (install-extmod-build,
#                        /lib/modules/KVER/build), plus .config, which
#                        Debian's, Ubuntu's and Arch's headers carry
#   linux-lib-rust-KVER  the Rust metadata an external Rust module builds
#                        against, which install-extmod-build leaves out and
#                        distributions that enable CONFIG_RUST add: the
#                        least of them, Arch's, rust/*.rmeta and the
#                        proc-macro crates rust/*.so, in a package named as
#                        Ubuntu's (which has all of rust/; docs/install.md)
# `make bindeb-pkg` itself relinks vmlinux and needs debhelper; this runs
# the same install-extmod-build on the finished tree instead.
#   scripts/headers-package.sh FLAVOR    prints the directory of the .debs
. "$(dirname "$0")/lib.sh"

FLAVOR=${1:-test}
OUT=/build/out-$FLAVOR
PKG=/build/pkg-$FLAVOR

# Inside the build root: make the two packages.
if [ "${2:-}" = --inside ]; then
	cd "$OUT"
	KVER=$(cat include/config/kernel.release)
	H=/usr/src/linux-headers-$KVER
	rm -rf "$PKG" && mkdir -p "$PKG/hdr/DEBIAN" "$PKG/rust/DEBIAN"
	make -s -C "$KSRC_DIR" O="$OUT" run-command \
		KBUILD_RUN_COMMAND="\$(srctree)/scripts/package/install-extmod-build $PKG/hdr$H"
	cp .config "$PKG/hdr$H/.config"
	mkdir -p "$PKG/hdr/lib/modules/$KVER"
	ln -s "$H" "$PKG/hdr/lib/modules/$KVER/build"
	mkdir -p "$PKG/rust$H/rust"
	cp rust/*.rmeta rust/*.so "$PKG/rust$H/rust/"
	arch=$(dpkg --print-architecture)
	# The host programs in the tree (objtool, modpost, sign-file) are
	# dynamically linked: the package depends on their libraries' packages.
	deps=$(find "$PKG/hdr" -type f -perm -u+x | while read -r f; do
		[ "$(head -c4 "$f" | tail -c3)" = ELF ] && ldd "$f"
	done | awk '/=> \// { print $3 }' | sort -u | xargs -r realpath | xargs -r dpkg -S 2>/dev/null |
		cut -d: -f1 | sort -u | grep -vx libc6 | paste -sd, | sed 's/,/, /g')
	control() {
		printf '%s\n' "Package: $1" "Version: $KVER-1" "Architecture: $arch" \
			'Maintainer: dm-remap test suite <root@localhost>' 'Section: kernel' \
			'Priority: optional' "Depends: $2" "Description: $3" " $4"
	}
	control "linux-headers-$KVER" "$deps" "headers of Linux $KVER for building external modules" \
		"What install-extmod-build installs, as make bindeb-pkg packages it." >"$PKG/hdr/DEBIAN/control"
	control "linux-lib-rust-$KVER" "linux-headers-$KVER" \
		"Rust metadata of Linux $KVER for building external Rust modules" \
		"rust/*.rmeta and the proc-macro crates rust/*.so, as Arch's headers add them." \
		>"$PKG/rust/DEBIAN/control"
	dpkg-deb --root-owner-group -Zzstd -b "$PKG/hdr" "$PKG/linux-headers-${KVER}_${KVER}-1_$arch.deb" >/dev/null
	dpkg-deb --root-owner-group -Zzstd -b "$PKG/rust" "$PKG/linux-lib-rust-${KVER}_${KVER}-1_$arch.deb" >/dev/null
	rm -rf "$PKG/hdr" "$PKG/rust"
	exit 0
fi

KEY=$({ cat "$0"; stat -c %Y "$ROOT$OUT/arch/x86/boot/bzImage"; } | sha256sum | cut -c1-12)
if [ "$(cat "$ROOT$PKG/.key" 2>/dev/null)" = "$KEY" ]; then
	echo "$PKG"
	exit 0
fi
say "packaging the $FLAVOR kernel's headers as a distribution does"
in_root "bash scripts/headers-package.sh $FLAVOR --inside" >&2 || die "packaging the headers failed"
echo "$KEY" >"$ROOT$PKG/.key"
echo "$PKG"
