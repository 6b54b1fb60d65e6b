#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The Debian package of remapctl (dist/remapctl_VERSION_ARCH.deb), made by
# cargo deb from tools/remapctl/Cargo.toml's [package.metadata.deb]: the
# binary, the systemd generator and units, the udev rule, the man pages and
# the shell completions, which are made here first (target/dist), from
# the binary itself (clap_mangen, clap_complete) and docs/ (rst2man).
#   scripts/package-remapctl.sh         (make deb)
#   scripts/package-remapctl.sh --dist  only target/dist (make install-remapctl)
. "$(dirname "$0")/lib.sh"

bash "$PROJ/scripts/build-remapctl.sh" || die "remapctl build failed"
# rst2man (docutils) for the hand-written pages; cargo deb itself.
if ! command -v rst2man >/dev/null && ! command -v rst2man.py >/dev/null; then
	say "apt: installing python3-docutils on the host (rst2man, for the man pages)"
	DEBIAN_FRONTEND=noninteractive apt-get -qq install -y python3-docutils >/dev/null
fi
CARGO_DEB_VERSION=3.8.0
if [ "${1:-}" != --dist ] && [ "$(cargo deb --version 2>/dev/null | awk '{print $NF}')" != "$CARGO_DEB_VERSION" ]; then
	say "installing cargo-deb $CARGO_DEB_VERSION with cargo (about 2 minutes, once)"
	cargo install --locked --quiet cargo-deb --version "=$CARGO_DEB_VERSION" || die "cargo install cargo-deb failed"
fi
cd "$PROJ/tools/remapctl"
dist=target/dist
rm -rf "$dist"
mkdir -p "$dist/completions"
bash "$PROJ/scripts/man-pages.sh" "$dist/man" target/release/remapctl >/dev/null || die "man pages failed"
gzip -9n "$dist"/man/*
target/release/remapctl completions bash >"$dist/completions/remapctl"
target/release/remapctl completions zsh >"$dist/completions/_remapctl"
target/release/remapctl completions fish >"$dist/completions/remapctl.fish"
[ "${1:-}" = --dist ] && exit 0
mkdir -p "$PROJ/dist"
deb=$(cargo deb --no-build --locked --output "$PROJ/dist" 2>&1 | tail -n1) || die "cargo deb failed: $deb"
echo "$deb"
