#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build remapctl with the host's Rust toolchain (release, for the guest
# image and for use), and with --check also run its host checks: cargo
# test of the on-disk format crate and of remapctl, clippy, rustfmt, and
# systemd-analyze verify on the units the generator makes. Each check
# prints "HOST-RESULT ok|not ok <name>".
#   scripts/build-remapctl.sh [--check]
. "$(dirname "$0")/lib.sh"

# The devicemapper crate's -sys crate runs bindgen on the kernel's
# dm-ioctl.h and links libdevmapper: it needs libclang, pkg-config and
# libdevmapper's headers. systemd-analyze checks the generated units.
need=()
[ -e /usr/include/libdevmapper.h ] || need+=(libdevmapper-dev)
# libclang itself (libclang1-N puts it under /usr/lib/llvm-N/lib): a host
# with only libclang-cpp (the C++ interface) has none for bindgen.
ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1 || need+=(libclang-dev)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v systemd-analyze >/dev/null || need+=(systemd)
if [ ${#need[@]} -gt 0 ]; then
	say "apt: installing ${need[*]} on the host for remapctl"
	DEBIAN_FRONTEND=noninteractive apt-get -qq update
	DEBIAN_FRONTEND=noninteractive apt-get -qq install -y "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null || die "cargo not found: remapctl builds with the host's Rust toolchain"
cd "$PROJ/tools/remapctl"
say "building remapctl ($(cargo --version | cut -d' ' -f1-2), $(rustc --version | cut -d' ' -f1-2); the first build fetches and compiles its crates, about a minute)"
cargo build --release --locked 2>&1 | grep -vE '^\s+(Compiling|Downloaded|Downloading|Fetching|Locking)' >&2 || true
[ -x target/release/remapctl ] || die "remapctl build failed"
[ "${1:-}" = --check ] || exit 0

result() { if [ "$1" = 0 ]; then echo "HOST-RESULT ok $2"; else echo "HOST-RESULT not ok $2"; fi; }
log=$CACHE/remapctl-checks.log
: >"$log"
run() {
	local name=$1
	shift
	# A failing check is reported, not the end of the script (set -e).
	local rc=0
	"$@" >>"$log" 2>&1 || rc=$?
	result $rc "$name"
}
run "cargo test: the on-disk format's recovery cases (every bit flip, damaged-copy subset, crash point)" \
	sh -c 'cd ../../ondisk && cargo test --locked'
run "cargo test: remapctl" cargo test --locked
run "cargo clippy: remapctl and the format crate warning-free" \
	sh -c 'cargo clippy --locked --all-targets -- -D warnings && cd ../../ondisk && cargo clippy --locked --all-targets -- -D warnings'
run "cargo fmt: remapctl and the format crate are rustfmt-clean" \
	sh -c 'cargo fmt --check && cd ../../ondisk && cargo fmt --check'
units=$(mktemp -d)
trap 'rm -rf "$units"' EXIT
# The generator's units for a remaptab of two lines: written where they
# belong (linked from remap.target and the dev-mapper device unit, as
# crypttab's are), bound to the by-uuid device unit for UUID= (no
# udev-settle), with quoted ExecStart words, and clean under systemd-analyze
# (with the package's remap.target beside them).
generated_units_verify() {
	local out=$units/out rc=$PWD/target/release/remapctl
	printf 'home /dev/null -\nmedia UUID=0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0 no-check,readonly,nofail\n' >"$units/remaptab"
	"$rc" generate-units --remaptab "$units/remaptab" --remapctl "$rc" "$out" || return 1
	[ -f "$out/remapctl-open@home.service" ] || return 1
	[ -L "$out/remap.target.requires/remapctl-open@home.service" ] || return 1
	[ -L "$out/remap.target.wants/remapctl-open@media.service" ] || return 1
	[ -L "$out/dev-mapper-home.device.requires/remapctl-open@home.service" ] || return 1
	[ -L "$out/sysinit.target.wants/remap.target" ] || return 1
	grep -qx 'BindsTo=dev-disk-by\\x2duuid-0f1e2d3c\\x2d4b5a\\x2d4978\\x2d8796\\x2da5b4c3d2e1f0.device' \
		"$out/remapctl-open@media.service" || return 1
	! grep -q settle "$out"/*.service || return 1
	grep -qF "ExecStart=\"$rc\" open --no-check --readonly --spare-timeout 90 \"/dev/disk/by-uuid/0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0\" media" \
		"$out/remapctl-open@media.service" || return 1
	cp systemd/remap.target "$out/"
	systemd-analyze verify --man=no "$out/remapctl-open@home.service" "$out/remapctl-open@media.service" "$out/remap.target" \
		>"$units/verify" 2>&1 || { cat "$units/verify"; return 1; }
	# Any warning at all fails it.
	if [ -s "$units/verify" ]; then cat "$units/verify"; return 1; fi
}
run "generate-units: the remaptab's units pass systemd-analyze verify" generated_units_verify
# The monitor's unit, with remapctl where the unit expects it replaced by
# the one built here.
monitor_unit_verify() {
	sed "s|/usr/sbin/remapctl|$PWD/target/release/remapctl|" systemd/remapctl-monitor.service >"$units/remapctl-monitor.service"
	systemd-analyze verify --man=no "$units/remapctl-monitor.service" >"$units/verify" 2>&1 || { cat "$units/verify"; return 1; }
	if [ -s "$units/verify" ]; then cat "$units/verify"; return 1; fi
}
run "systemd: the monitor's unit passes systemd-analyze verify" monitor_unit_verify
# The man pages, from the clap definitions and docs/: each renders without
# a warning (groff -ww) and man -l formats it.
man_pages_lint() {
	command -v rst2man >/dev/null || command -v rst2man.py >/dev/null ||
		DEBIAN_FRONTEND=noninteractive apt-get -qq install -y python3-docutils groff-base man-db >/dev/null
	bash "$PROJ/scripts/man-pages.sh" "$units/man" "$PWD/target/release/remapctl" >/dev/null || return 1
	local p n=0
	for p in "$units"/man/*.[458]; do
		echo "== $p"
		[ -z "$(groff -ww -z -man "$p" 2>&1)" ] || { groff -ww -z -man "$p"; return 1; }
		MANWIDTH=80 man -l "$p" 2>&1 | grep -q . || return 1
		n=$((n + 1))
	done
	# remapctl.8, a page per command, remaptab.5, remapctl-generator.8, dm-remap.4.
	[ "$n" -ge 16 ] && [ -f "$units/man/remaptab.5" ] && [ -f "$units/man/dm-remap.4" ] &&
		grep -q 'Exit status' "$units/man/remapctl.8"
}
run "man pages: remapctl(8) and its commands', remaptab(5), remapctl-generator(8), dm-remap(4) render clean (groff -ww)" man_pages_lint
# The completions load in their shells and name the commands.
completions_load() {
	target/release/remapctl completions bash >"$units/remapctl.bash" &&
		bash -c ". $units/remapctl.bash && complete -p remapctl | grep -q _remapctl &&
			COMP_WORDS=(remapctl ch) COMP_CWORD=1 && _remapctl remapctl ch remapctl &&
			printf '%s
' "\${COMPREPLY[@]}" | grep -qx check" || return 1
	# Into files: grep -q stops reading at its match, and under pipefail
	# the SIGPIPE that ends remapctl then would fail the check.
	target/release/remapctl completions zsh >"$units/_remapctl" &&
		grep -q '#compdef remapctl' "$units/_remapctl" &&
		target/release/remapctl completions fish >"$units/remapctl.fish" &&
		grep -q 'complete -c remapctl' "$units/remapctl.fish"
}
# Long commands show their progress on a terminal (script(1) gives them
# one), and print none into a pipe.
progress_on_a_terminal() {
	local img loop rc=1 out
	img=$(mktemp "$CACHE/progress.XXXXXX")
	truncate -s 512M "$img"
	loop=$(losetup -f --show "$img") || { rm -f "$img"; return 1; }
	out=$(script -qec "target/release/remapctl format $loop && target/release/remapctl check $loop" /dev/null | tr '\r' '\n')
	echo "$out"
	echo "$out" | grep -qE "^(.\[K)?$loop: writing the metadata: ([0-9]+)/\2 metadata blocks \(100\.0%\)" &&
		echo "$out" | grep -qE "^(.\[K)?$loop: reading the metadata: ([0-9]+)/\2 metadata blocks \(100\.0%\)" &&
		! target/release/remapctl check "$loop" 2>&1 | grep -q 'reading the metadata' && rc=0
	losetup -d "$loop"
	rm -f "$img"
	return $rc
}
run "progress: format and check show theirs on a terminal, and none into a pipe" progress_on_a_terminal
run "completions: bash's loads and completes 'remapctl ch' to check; zsh's and fish's are made" completions_load
