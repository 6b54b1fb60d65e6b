#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The main job: boot the test kernel in QEMU and show the remap target in
# use on a built-in example disk (tests/guest/demo.sh).  Builds whatever is
# missing first.
. "$(dirname "$0")/lib.sh"

bash "$PROJ/scripts/toolchain.sh"
bash "$PROJ/scripts/kernel.sh" test
bash "$PROJ/scripts/build-module.sh" test
mkdir -p "$PROJ/results"
img=$(guest_image test demo) || exit 1
# A fresh 64 MiB example disk for every run.
disk=/build/example-disk.img
rm -f "$ROOT$disk"
truncate -s 64M "$ROOT$disk"
say "booting QEMU with the example disk (the guest's output follows)"
boot_guest test "$img" demo "$PROJ/results/kernel-demo.log" "$disk" |
	tee "$PROJ/results/guest-demo.log" | grep -v '^DMR-'
sed -i 's/\r$//' "$PROJ/results/guest-demo.log"
if grep -q '^DEMO OK' "$PROJ/results/guest-demo.log"; then
	say "demonstration finished"
else
	die "demonstration failed; kernel log in results/kernel-demo.log"
fi
