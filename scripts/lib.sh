# SPDX-License-Identifier: GPL-2.0
# Common helpers for the dm-remap scripts: cache layout, progress output,
# the Debian mirror of this host, and running commands in the build root.
# Sourced, not executed.

set -euo pipefail

PROJ=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The cache lives outside the clone so that fresh clones and CI reuse it.
CACHE=${DM_REMAP_CACHE:-/var/cache/dm-remap}
# Versions of the suites the build root is made from.  A change to this list,
# or to the package list in scripts/packages.txt, gives a new build root.
SUITE=trixie
KSRC_PKG=linux-source-7.2
KSRC_DIR=/build/linux-source-7.2

ts() { date +%H:%M:%S; }
say() { printf '[%s] %s\n' "$(ts)" "$*" >&2; }
die() { printf '[%s] error: %s\n' "$(ts)" "$*" >&2; exit 1; }

# Short content hash of files and strings, for cache keys.
key_of() { cat "$@" | sha256sum | cut -c1-12; }

# The build root's key: the package list and the suites it is made from.
root_key() { { cat "$PROJ/scripts/packages.txt"; echo "$SUITE $KSRC_PKG"; } | sha256sum | cut -c1-12; }
ROOT=$CACHE/root-$(root_key)

# The Debian archive this host already uses, read from its apt sources at
# run time (never written into the repository).  DM_REMAP_MIRROR overrides.
debian_mirror() {
	if [ -n "${DM_REMAP_MIRROR:-}" ]; then echo "$DM_REMAP_MIRROR"; return; fi
	local uri
	uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
		awk '/^URIs:/ { for (i = 2; i <= NF; i++) print $i }' |
		grep -E '/debian/?$' | head -n1 || true)
	if [ -z "$uri" ]; then
		uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
			awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' |
			grep -E '/debian/?$' | head -n1 || true)
	fi
	[ -n "$uri" ] || die "no Debian archive found in /etc/apt/sources*; set DM_REMAP_MIRROR"
	echo "${uri%/}"
}

# Run a command inside the build root, with /proc, /sys, /dev and the
# project directory (at the same path) mounted in a private mount namespace,
# so that every mount disappears when the command ends.
in_root() {
	[ -x "$ROOT/usr/bin/make" ] || die "build root $ROOT missing: run scripts/toolchain.sh"
	local cmd="$*"
	unshare -m --propagation private -- bash -c '
		set -e
		R=$1; P=$2; shift 2
		mount -t proc proc "$R/proc"
		mount --rbind /sys "$R/sys"
		mount --rbind /dev "$R/dev"
		mkdir -p "$R$P"
		mount --bind "$P" "$R$P"
		exec chroot "$R" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
			PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
			DM_REMAP_IN_ROOT=1 CI="${CI:-}" "${@}"
	' in_root "$ROOT" "$PROJ" bash -c "cd '$PROJ' && $cmd"
}

# Keep the full output of a long step in a log and print a progress line
# every N lines of it, plus any line that reports an error.
progress() {
	local label=$1 log=$2 every=${3:-250} n=0 line
	: >"$log"
	while IFS= read -r line; do
		printf '%s\n' "$line" >>"$log"
		n=$((n + 1))
		if [ $((n % every)) -eq 0 ]; then say "$label: $n steps"; fi
		case $line in *error:* | *Error\ [0-9]* | *ERROR:*) printf '  %s\n' "$line" >&2 ;; esac
	done
	say "$label: $n steps, done"
}

# The accelerator for QEMU: KVM when a probe boot of the test kernel
# finishes in time, TCG otherwise (nested KVM was seen to hang at boot on
# these machines).  The probe result is cached; DM_REMAP_ACCEL overrides.
qemu_accel() {
	local initrd=$1
	if [ -n "${DM_REMAP_ACCEL:-}" ]; then echo "$DM_REMAP_ACCEL"; return; fi
	if [ -f "$CACHE/accel" ]; then cat "$CACHE/accel"; return; fi
	local accel=tcg
	if [ -c /dev/kvm ]; then
		say "probing KVM with a 30-second test boot"
		if DM_REMAP_ACCEL=kvm DM_REMAP_GUEST_TIMEOUT=30 boot_guest test "$initrd" probe /dev/null 2>/dev/null |
			grep -q DMR-DONE; then
			accel=kvm
		fi
	fi
	say "QEMU accelerator: $accel"
	echo $accel >"$CACHE/accel"
	echo $accel
}

# boot_guest FLAVOR INITRD MODE KERNEL_LOG [DISK_IMAGE [CMDLINE]]: boot the guest;
# the kernel log (ttyS0) goes to KERNEL_LOG, the guest's own output (ttyS1)
# to stdout.  Paths are as seen inside the build root.
boot_guest() {
	local flavor=$1 initrd=$2 mode=$3 klog=$4 disk=${5:-} extra=${6:-} accel
	accel=$(qemu_accel "$initrd")
	local a="-accel tcg,thread=multi -cpu max"
	[ "$accel" = kvm ] && a="-enable-kvm -cpu host"
	# GUEST_ACCEL_ARGS: other accelerator arguments (the benchmark's icount).
	[ -n "${GUEST_ACCEL_ARGS:-}" ] && a=$GUEST_ACCEL_ARGS
	in_root "timeout ${DM_REMAP_GUEST_TIMEOUT:-1500} qemu-system-x86_64 $a -m 1536 -smp 2 \
		-display none -monitor none -no-reboot -nodefaults \
		-kernel /build/out-$flavor/arch/x86/boot/bzImage -initrd $initrd \
		-serial file:$klog -serial stdio \
		${disk:+-drive file=$disk,if=virtio,format=raw} \
		-append 'console=ttyS0 panic=-1 rdinit=/init dmr.mode=$mode${DM_REMAP_ONLY:+ dmr.only=$DM_REMAP_ONLY}${DM_REMAP_SEED:+ dmr.seed=$DM_REMAP_SEED}${DM_REMAP_ROUNDS:+ dmr.rounds=$DM_REMAP_ROUNDS}${extra:+ $extra}'"
}

# guest_image FLAVOR MODE [MODULE.ko...]: build the initramfs for a flavour,
# with the given modules (default: the two this checkout built); prints its
# path inside the build root.
guest_image() {
	local flavor=$1 img=/build/initramfs-$1-$2.cpio.gz
	shift 2
	local modules="$*"
	[ -n "$modules" ] || modules="$PROJ/dm-remap.ko $PROJ/dm-rust-linear.ko"
	# The image carries remapctl: built here if missing or stale.
	bash "$PROJ/scripts/build-remapctl.sh" >&2 || die "remapctl build failed"
	in_root "bash scripts/guest-image.sh /build/out-$flavor $img $modules" >&2 ||
		die "the guest image $img could not be built"
	echo "$img"
}
