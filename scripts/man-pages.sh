#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Make the man pages into a directory, each from the one source it has:
#   remapctl.8, remapctl-<command>.8   remapctl's clap definitions, the same
#                                      as its --help (remapctl manpages)
#   remaptab.5, remapctl-generator.8   docs/man/*.rst
#   dm-remap.4                         docs/dm-remap.rst, the target's
#                                      reference, under a man page's header
# rst2man is docutils' (Debian's python3-docutils).
#   scripts/man-pages.sh OUTDIR [REMAPCTL]
set -euo pipefail
PROJ=$(cd "$(dirname "$0")/.." && pwd)
OUTDIR=$1
REMAPCTL=${2:-$PROJ/tools/remapctl/target/release/remapctl}
RST2MAN=$(command -v rst2man || command -v rst2man.py || true)
[ -n "$RST2MAN" ] || { echo "man-pages: rst2man not found (Debian: python3-docutils)" >&2; exit 1; }
mkdir -p "$OUTDIR"
"$REMAPCTL" manpages "$OUTDIR"
for src in "$PROJ"/docs/man/*.rst; do
	"$RST2MAN" --no-generator --no-datestamp "$src" "$OUTDIR/$(basename "$src" .rst)"
done
ver=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' "$PROJ/dkms.conf")
{
	printf '%s\n' '========' 'dm-remap' '========' '' \
		'-----------------------------------------------------------' \
		'device-mapper target that remaps failing blocks to spares' \
		'-----------------------------------------------------------' '' \
		':Manual section: 4' ':Manual group: Device-mapper targets' ":Version: $ver" '' \
		'Description' '-----------' ''
	# The reference without its own title.
	tail -n +4 "$PROJ/docs/dm-remap.rst"
	printf '%s\n' '' 'See also' '--------' '' \
		'``dmsetup``\(8), ``remapctl``\(8), ``remaptab``\(5)'
} | "$RST2MAN" --no-generator --no-datestamp - "$OUTDIR/dm-remap.4"
ls "$OUTDIR"
