#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Every `unsafe` of the modules lives in kapi/, the abstractions: the
# targets (dm_remap.rs and its folders, linear/, the format code they
# share) are safe Rust. Prints each `unsafe` found elsewhere, in code (not
# comments), and fails if there is one.
#   scripts/check-unsafe.sh [DIR]     (default: the project)
cd "${1:-$(dirname "$0")/..}" || exit 2
found=$(find . -name '*.rs' -not -path './kapi/*' -not -path './tools/*' \
	-not -path '*/target/*' -not -path './ondisk/fuzz/*' -not -path './ondisk/tests/*' \
	-not -name '*_generated.rs' -print0 |
	xargs -0 grep -nE '(^|[^[:alnum:]_])unsafe([^[:alnum:]_]|$)' |
	grep -vE '^[^:]+:[0-9]+:[[:space:]]*//')
if [ -n "$found" ]; then
	echo "unsafe outside kapi/:"
	echo "$found"
	exit 1
fi
