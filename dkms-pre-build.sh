#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# DKMS's PRE_BUILD for dm-remap (dkms.conf): before the build of the module
# for a kernel, say in words what this machine lacks for it, rather than
# leave a user with rustc's or make's error. Its output is in DKMS's
# make.log of the module.
#   dkms-pre-build.sh KERNEL_SOURCE_DIR KERNEL_RELEASE
set -u
build=$1 kver=$2
fail() {
	echo "dm-remap: cannot build for kernel $kver: $*" >&2
	exit 1
}
[ -f "$build/include/config/auto.conf" ] ||
	fail "$build has no include/config/auto.conf: install the kernel's headers package"
# The kernel crate's metadata, which the kernel's upstream headers package
# leaves out.
[ -f "$build/rust/libkernel.rmeta" ] ||
	fail "its headers ($build) have no Rust metadata (rust/*.rmeta): install the package that adds it (Ubuntu: linux-lib-rust-$kver; Arch: linux-headers), or build against the kernel's build tree (docs/install.md)"
want=$(sed -n 's/^CONFIG_RUSTC_VERSION_TEXT=//p' "$build/include/config/auto.conf" | sed 's/^"\(.*\)"$/\1/')
command -v rustc >/dev/null 2>&1 ||
	fail "no rustc: install ${want:-the rustc that built the kernel}"
have=$(rustc --version 2>/dev/null)
[ -z "$want" ] || [ "$have" = "$want" ] ||
	fail "the kernel was built by '$want' and rustc here is '$have': the kernel's crate metadata loads only in the same compiler; install that one"
command -v bindgen >/dev/null 2>&1 ||
	fail "no bindgen (and libclang): the module generates its bindings of device-mapper.h with them"
exit 0
