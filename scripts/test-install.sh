#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The install test, as a user of a distribution kernel installs dm-remap
# (docs/install.md): into a fresh Debian root that has no kernel source,
# only the kernel's headers packages (scripts/headers-package.sh), install
# the dm-remap-dkms package (which brings dkms, rustc and bindgen and has
# DKMS build and install the module) and the remapctl package; check what
# they installed; then boot the kernel in QEMU with the module DKMS built
# and run the passthrough checks (tests/guest/t-10-passthrough.sh) on it.
# Each check prints "INSTALL-RESULT ok|not ok <name>"; the guest's lines
# are DMR-RESULT as in scripts/test.sh.
#   scripts/test-install.sh [FLAVOR]     (run by scripts/test.sh)
. "$(dirname "$0")/lib.sh"

FLAVOR=${1:-test}
OUT=/build/out-$FLAVOR
KVER=$(cat "$ROOT$OUT/include/config/kernel.release")
# The kernel's rustc: an external module's crate metadata must come from the
# compiler that built the kernel's (rust/*.rmeta), so the user installs that
# version, as the headers package of their distribution says.
RUSTC_VER=$(awk '$1 == "rustc" { print $2 }' "$ROOT/build/versions.txt")
[ -n "$RUSTC_VER" ] || die "no rustc version in $ROOT/build/versions.txt"
log=$CACHE/install-test.log
: >"$log"
# A run that stops before its guest boot leaves no guest log of an earlier
# run for scripts/test.sh to count.
rm -f "$PROJ/results/guest-dkms.log" "$PROJ/results/kernel-dkms.log"

result() { if [ "$1" = 0 ]; then echo "INSTALL-RESULT ok $2"; else echo "INSTALL-RESULT not ok $2"; fi; }
check() {
	local name=$1 rc=0
	shift
	echo "== $name" >>"$log"
	"$@" >>"$log" 2>&1 || rc=$?
	result $rc "$name"
}

# The base of the fresh root: debootstrap, and the packages the install
# will ask for downloaded (not installed), so that each run installs from
# the same files without fetching them again.
BKEY=$({ echo "$SUITE $RUSTC_VER"; sed -n '/^# base-root-begin/,/^# base-root-end/p' "$0"; } | sha256sum | cut -c1-12)
BASE=$CACHE/install-base-$BKEY
# base-root-begin
BASE_PKGS="dkms rustc=$RUSTC_VER bindgen libclang-dev bash-completion man-db systemd"
if [ ! -f "$BASE/.complete" ]; then
	exec 9>"$CACHE/.install-base.lock"
	flock 9
	rm -rf "$BASE"
	say "debootstrap $SUITE into $BASE, the fresh root of the install test (about 1 minute)"
	debootstrap --variant=minbase "$SUITE" "$BASE" "$(debian_mirror)" 2>&1 |
		progress debootstrap "$CACHE/install-debootstrap.log" 40
	cp "$ROOT/etc/apt/sources.list.d/debian.sources" "$BASE/etc/apt/sources.list.d/"
	rm -f "$BASE/etc/apt/sources.list"
	cp /etc/resolv.conf "$BASE/etc/resolv.conf" 2>/dev/null || true
	say "apt: downloading dkms, rustc $RUSTC_VER, bindgen for the fresh root"
	chroot "$BASE" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
		bash -c "apt-get update && apt-get install -y --download-only --no-install-recommends $BASE_PKGS" 2>&1 |
		progress apt "$CACHE/install-apt.log" 100
	touch "$BASE/.complete"
fi
# base-root-end

# The packages: the kernel's headers, dm-remap-dkms, remapctl.
pkgdir=$(bash "$PROJ/scripts/headers-package.sh" "$FLAVOR") || die "headers package failed"
(cd "$PROJ" && bash scripts/package-dkms.sh --deb >/dev/null) || die "dm-remap-dkms package failed"
(cd "$PROJ" && bash scripts/package-remapctl.sh >/dev/null) || die "remapctl package failed"

# make install-remapctl and the package carry the same files (two lists:
# the Makefile's and Cargo.toml's [package.metadata.deb]).
same_files_as_package() {
	local d
	d=$(mktemp -d)
	make -s -C "$PROJ" install-remapctl DESTDIR="$d" >/dev/null &&
		diff <(cd "$d" && find . -type f | sort) \
			<(dpkg-deb -c "$PROJ"/dist/remapctl_*.deb | awk '$1 !~ /^[dl]/ { print $6 }' | grep -v /copyright$ | sort)
	local rc=$?
	rm -rf "$d"
	return $rc
}
check "make install-remapctl installs the files the remapctl package carries" same_files_as_package

W=$CACHE/install-work
say "install test: a fresh root from $BASE"
rm -rf "$W"
cp -a "$BASE" "$W"
mkdir -p "$W/tmp/pkgs"
cp "$ROOT$pkgdir"/*.deb "$PROJ"/dist/*.deb "$W/tmp/pkgs/"
# Run a command in the fresh root, with /proc, /sys and /dev, in a private
# mount namespace.
in_fresh() {
	unshare -m --propagation private -- bash -c '
		R=$1; shift
		mount -t proc proc "$R/proc" && mount --rbind /sys "$R/sys" && mount --rbind /dev "$R/dev" || exit 1
		exec chroot "$R" /usr/bin/env -i HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
			PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin bash -c "$1"
	' in_fresh "$W" "$*"
}

check "fresh root: no kernel source, no compiler of the kernel's own" in_fresh "
	! ls -d /usr/src/linux-source* 2>/dev/null && ! command -v rustc && ! command -v dkms"
check "fresh root: the headers packages install (linux-headers-$KVER, linux-lib-rust-$KVER)" in_fresh "
	apt-get install -y --no-install-recommends /tmp/pkgs/linux-headers-${KVER}_*.deb /tmp/pkgs/linux-lib-rust-${KVER}_*.deb &&
	test -f /lib/modules/$KVER/build/Module.symvers && test -f /lib/modules/$KVER/build/rust/libkernel.rmeta"
check "the headers have no dm-core.h and no rust/bindgen_parameters (a headers build)" in_fresh "
	test ! -e /lib/modules/$KVER/build/drivers/md/dm-core.h &&
	test ! -e /lib/modules/$KVER/build/rust/bindgen_parameters"
# apt resolves the package's dependencies (dkms, bindgen) from the archive;
# rustc is pinned to the kernel's. The postinst has DKMS build the module.
check "apt installs dm-remap-dkms, and its postinst has DKMS build and install the module" in_fresh "
	apt-get install -y --no-install-recommends rustc=$RUSTC_VER /tmp/pkgs/dm-remap-dkms_*_all.deb &&
	dkms status -m dm-remap | grep -E '^dm-remap/[0-9.]+, $KVER, [^:]*: installed'"
check "the module DKMS built is a headers build: per-bio data from dm core, no dm_offsets" in_fresh "
	make_log=\$(ls /var/lib/dkms/dm-remap/*/$KVER/*/log/make.log /var/lib/dkms/dm-remap/*/build/make.log 2>/dev/null | head -n1)
	test -n \"\$make_log\" && cat \"\$make_log\" && grep -q 'dm-remap.ko' \"\$make_log\" && ! grep -q dm_offsets \"\$make_log\""
check "modinfo: the installed dm-remap.ko is for $KVER" in_fresh "
	f=/lib/modules/$KVER/updates/dkms/dm-remap.ko && modinfo \$f && modinfo -F vermagic \$f | grep -q '^$KVER '"
# BUILD_EXCLUSIVE_CONFIG: a kernel without CONFIG_RUST is refused, not
# built and failed. The copy of the headers differs in that one option (in
# include/config/auto.conf, which dkms 3.2 reads, and .config, which older
# versions read).
check "dkms refuses a kernel without CONFIG_RUST (BUILD_EXCLUSIVE_CONFIG)" in_fresh "
	cp -a /usr/src/linux-headers-$KVER /usr/src/linux-headers-$KVER-norust &&
	sed -i '/^CONFIG_RUST=/d' /usr/src/linux-headers-$KVER-norust/.config /usr/src/linux-headers-$KVER-norust/include/config/auto.conf &&
	mkdir -p /lib/modules/$KVER-norust && ln -sfn /usr/src/linux-headers-$KVER-norust /lib/modules/$KVER-norust/build &&
	out=\$(dkms build dm-remap/\$(sed -n 's/^PACKAGE_VERSION=\"\\(.*\\)\"/\\1/p' /usr/src/dm-remap-*/dkms.conf) -k $KVER-norust 2>&1); rc=\$?
	echo \"\$out\"; rm -rf /usr/src/linux-headers-$KVER-norust /lib/modules/$KVER-norust
	[ \$rc != 0 ] && echo \"\$out\" | grep -q 'BUILD_EXCLUSIVE' && ! dkms status -m dm-remap -k $KVER-norust | grep -q built"
# What DKMS says, through the module's PRE_BUILD, for a kernel whose
# headers lack the Rust metadata, and for one another rustc built.
check "dkms says why it cannot build: no Rust metadata in the headers; the kernel built by another rustc" in_fresh "
	ver=\$(sed -n 's/^PACKAGE_VERSION=\"\\(.*\\)\"/\\1/p' /usr/src/dm-remap-*/dkms.conf)
	try() {
		mkdir -p /lib/modules/$KVER-x && ln -sfn /usr/src/linux-headers-$KVER-x /lib/modules/$KVER-x/build
		dkms build dm-remap/\$ver -k $KVER-x >/dev/null 2>&1; rc=\$?
		cat /var/lib/dkms/dm-remap/\$ver/build/make.log
		rm -rf /usr/src/linux-headers-$KVER-x /lib/modules/$KVER-x
		[ \$rc != 0 ] && grep -q \"\$1\" /var/lib/dkms/dm-remap/\$ver/build/make.log
	}
	cp -a /usr/src/linux-headers-$KVER /usr/src/linux-headers-$KVER-x && rm -rf /usr/src/linux-headers-$KVER-x/rust &&
	try 'have no Rust metadata (rust/\*.rmeta): install the package' &&
	cp -a /usr/src/linux-headers-$KVER /usr/src/linux-headers-$KVER-x &&
	sed -i 's/^CONFIG_RUSTC_VERSION_TEXT=.*/CONFIG_RUSTC_VERSION_TEXT=\"rustc 1.0.0\"/' /usr/src/linux-headers-$KVER-x/include/config/auto.conf &&
	try \"the kernel was built by 'rustc 1.0.0' and rustc here is\""
check "apt removes dm-remap-dkms, and DKMS removes the module" in_fresh "
	mkdir -p /tmp/ko && cp /lib/modules/$KVER/updates/dkms/*.ko* /tmp/ko/ &&
	apt-get remove -y dm-remap-dkms && ! dkms status -m dm-remap | grep -q . &&
	test ! -e /lib/modules/$KVER/updates/dkms/dm-remap.ko"

# remapctl's package: what it installs, and that it all works.
check "apt installs the remapctl package" in_fresh "
	apt-get install -y --no-install-recommends /tmp/pkgs/remapctl_*.deb && remapctl --version"
check "remapctl package: the binary, the generator, the units, the udev rule, man pages, completions" in_fresh "
	for f in /usr/sbin/remapctl /usr/lib/systemd/system-generators/remapctl-generator \
		/usr/lib/systemd/system/remapctl-monitor.service \
		/usr/lib/systemd/system/remap.target /usr/lib/udev/rules.d/60-remapctl.rules \
		/usr/share/man/man8/remapctl.8.gz /usr/share/man/man5/remaptab.5.gz \
		/usr/share/man/man8/remapctl-generator.8.gz /usr/share/man/man4/dm-remap.4.gz \
		/usr/share/bash-completion/completions/remapctl /usr/share/zsh/vendor-completions/_remapctl \
		/usr/share/fish/vendor_completions.d/remapctl.fish; do
		test -e \$f || { echo missing: \$f; exit 1; }
	done"
check "man finds every page the package installs" in_fresh "
	apt-get install -y --no-install-recommends man-db >/dev/null &&
	for p in 8:remapctl 8:remapctl-open 5:remaptab 8:remapctl-generator 4:dm-remap; do
		man -w \${p%%:*} \${p#*:} || exit 1
	done"
check "the bash completion loads and completes remapctl's commands" in_fresh "
	apt-get install -y --no-install-recommends bash-completion >/dev/null &&
	bash -c '. /usr/share/bash-completion/bash_completion && . /usr/share/bash-completion/completions/remapctl &&
		complete -p remapctl && COMP_WORDS=(remapctl ch) COMP_CWORD=1 COMP_LINE=\"remapctl ch\" COMP_POINT=11;
		_remapctl remapctl ch remapctl; printf \"%s\n\" \"\${COMPREPLY[@]}\" | grep -qx check'"
check "the installed generator writes units for /etc/remaptab" in_fresh "
	printf 'home /dev/vdb -\n' >/etc/remaptab && mkdir -p /tmp/gen /tmp/gen-early /tmp/gen-late &&
	/usr/lib/systemd/system-generators/remapctl-generator /tmp/gen /tmp/gen-early /tmp/gen-late &&
	ls -R /tmp/gen && test -f '/tmp/gen/remapctl-open@home.service'"
# The udev rule, on loop devices: udevadm verify takes it; udevadm test
# (which in systemd 257 runs builtins such as blkid but not programs) shows
# it importing remapctl probe for a disk remapctl formatted, which blkid
# finds blank, and not for one with ext4. What probe prints is checked in
# the guest (t-55).
check "udev: udevadm verify takes 60-remapctl.rules" in_fresh "
	apt-get install -y --no-install-recommends udev >/dev/null && udevadm verify /usr/lib/udev/rules.d/60-remapctl.rules"
udev_rule_routes() {
	local img loop out rc=1
	img=$(mktemp "$CACHE/udev-member.XXXXXX")
	truncate -s 64M "$img" "$img.ext4"
	mkfs.ext4 -q -F "$img.ext4"
	loop=$(losetup -f --show "$img") && ext4=$(losetup -f --show "$img.ext4") || { rm -f "$img" "$img.ext4"; return 1; }
	if "$PROJ/tools/remapctl/target/release/remapctl" format "$loop"; then
		out=$(in_fresh "udevadm test --action=add /sys/class/block/${loop#/dev/} 2>&1; echo ==ext4;
			udevadm test --action=add /sys/class/block/${ext4#/dev/} 2>&1")
		echo "$out"
		echo "${out%%==ext4*}" | grep -q "Importing properties from results of '/usr/sbin/remapctl probe $loop'" &&
			! echo "${out#*==ext4}" | grep -q 'remapctl probe' &&
			echo "${out#*==ext4}" | grep -qE '^ *ID_FS_TYPE=ext4$' && rc=0
	fi
	losetup -d "$loop" "$ext4"
	rm -f "$img" "$img.ext4"
	return $rc
}
check "udev: the rule asks remapctl probe about a disk remapctl formatted, not about an ext4 one (udevadm test)" udev_rule_routes
# contrib/util-linux: libblkid's probe for the label, built into Debian's
# util-linux (the build kept in $CACHE/util-linux between runs).
blkid_probe_patch() {
	local img uuid loop rc=0
	img=$W/tmp/member.img
	rm -f "$img"
	truncate -s 64M "$img"
	loop=$(losetup -f --show "$img") || return 1
	"$PROJ/tools/remapctl/target/release/remapctl" format "$loop" || rc=1
	uuid=$("$PROJ/tools/remapctl/target/release/remapctl" probe "$loop" | sed -n 's/^ID_FS_UUID=//p')
	losetup -d "$loop"
	[ $rc = 0 ] && [ -n "$uuid" ] || return 1
	# One byte of the primary label's geometry changed: its CRC fails.
	cp "$img" "$W/tmp/damaged.img"
	printf '\x5a' | dd of="$W/tmp/damaged.img" bs=1 seek=100 conv=notrunc status=none
	rm -rf "$W/tmp/contrib" && cp -r "$PROJ/contrib/util-linux" "$W/tmp/contrib"
	[ -d "$CACHE/util-linux" ] && cp -a "$CACHE/util-linux" "$W/tmp/ul-cache"
	in_fresh "bash /tmp/contrib/test-blkid.sh /tmp/member.img /tmp/damaged.img $uuid" || rc=1
	[ -x "$W/tmp/ul-cache/build/blkid" ] && rm -rf "$CACHE/util-linux" && cp -a "$W/tmp/ul-cache" "$CACHE/util-linux"
	return $rc
}
check "util-linux with contrib's libblkid probe: blkid -p and wipefs know a remap member, reject a bad CRC; Debian's blkid does not know it" blkid_probe_patch
check "apt removes the remapctl package" in_fresh "apt-get remove -y remapctl && ! command -v remapctl"

# The module DKMS built, in the guest: the passthrough checks.
mkdir -p "$PROJ/results/dkms"
rm -f "$PROJ/results/dkms/"*.ko*
cp "$W/tmp/ko/"*.ko* "$PROJ/results/dkms/" 2>/dev/null || true
if [ ! -f "$PROJ/results/dkms/dm-remap.ko" ]; then
	result 1 "the guest boots with the module DKMS built"
	exit 0
fi
img=$(guest_image "$FLAVOR" dkms "$PROJ/results/dkms/dm-remap.ko" "$PROJ/results/dkms/dm-rust-linear.ko") || exit 1
say "booting the $FLAVOR kernel with the module DKMS built: the passthrough checks"
boot_guest "$FLAVOR" "$img" test "$PROJ/results/kernel-dkms.log" "" "dmr.slow=1 dmr.files=10" |
	tee "$PROJ/results/guest-dkms.log" | grep -E '^DMR-(RESULT|TEST|END|DONE)' | sed 's/\r$//' || true
