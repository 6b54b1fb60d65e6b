# SPDX-License-Identifier: GPL-2.0
# Build, install and package dm-remap (docs/install.md).
#
#   make                 build against the project's cached test kernel
#                        (creates the toolchain and kernel first if missing)
#   make KDIR=<dir>      build against any configured and built Rust-enabled
#                        kernel tree or headers tree (with its Rust metadata),
#                        with the rustc that built that kernel
#   make install         install-module and install-remapctl
#   make install-module  the modules into /lib/modules/<release>/updates
#                        (KDIR, default the running kernel's build tree)
#   make install-remapctl  remapctl, its systemd generator and units, the udev
#                        rule, man pages and completions under DESTDIR/PREFIX
#   make dkms-tarball    dist/dm-remap-<version>.dkms.tar.gz, for /usr/src
#   make dkms-deb        dist/dm-remap-dkms_<version>_all.deb
#   make deb             dist/remapctl_<version>_<arch>.deb (cargo deb)
#   make test            the whole test suite in QEMU (scripts/test.sh)
#   make demo            the demonstration in QEMU (scripts/demo.sh)
#   make bench           the I/O benchmark against dm-linear (scripts/bench.sh)
#   make clean

PREFIX ?= /usr
SBINDIR ?= $(PREFIX)/sbin
LIBDIR ?= $(PREFIX)/lib
MANDIR ?= $(PREFIX)/share/man
DATADIR ?= $(PREFIX)/share
RC := tools/remapctl

ifneq ($(KDIR),)
all:
	$(MAKE) -C $(KDIR) M=$(CURDIR) $(KFLAGS) modules
clean:
	$(MAKE) -C $(KDIR) M=$(CURDIR) clean
else
all:
	scripts/build-module.sh
clean:
	scripts/build-module.sh clean
endif

install: install-module install-remapctl

install-module:
	$(MAKE) -C $(or $(KDIR),/lib/modules/$(shell uname -r)/build) M=$(CURDIR) \
		INSTALL_MOD_DIR=updates modules_install

# The files the remapctl package carries (tools/remapctl/Cargo.toml,
# [package.metadata.deb]); scripts/test-install.sh checks that the two agree.
install-remapctl:
	scripts/package-remapctl.sh --dist
	install -D -m 755 $(RC)/target/release/remapctl $(DESTDIR)$(SBINDIR)/remapctl
	install -D -m 755 $(RC)/systemd/remapctl-generator $(DESTDIR)$(LIBDIR)/systemd/system-generators/remapctl-generator
	install -D -m 644 -t $(DESTDIR)$(LIBDIR)/systemd/system $(RC)/systemd/remap.target $(RC)/systemd/remapctl-monitor.service
	install -D -m 644 $(RC)/udev/60-remapctl.rules $(DESTDIR)$(LIBDIR)/udev/rules.d/60-remapctl.rules
	install -D -m 644 -t $(DESTDIR)$(MANDIR)/man4 $(RC)/target/dist/man/*.4.gz
	install -D -m 644 -t $(DESTDIR)$(MANDIR)/man5 $(RC)/target/dist/man/*.5.gz
	install -D -m 644 -t $(DESTDIR)$(MANDIR)/man8 $(RC)/target/dist/man/*.8.gz
	install -D -m 644 $(RC)/target/dist/completions/remapctl $(DESTDIR)$(DATADIR)/bash-completion/completions/remapctl
	install -D -m 644 $(RC)/target/dist/completions/_remapctl $(DESTDIR)$(DATADIR)/zsh/vendor-completions/_remapctl
	install -D -m 644 $(RC)/target/dist/completions/remapctl.fish $(DESTDIR)$(DATADIR)/fish/vendor_completions.d/remapctl.fish
	install -D -m 644 README.md $(DESTDIR)$(DATADIR)/doc/remapctl/README.md
	# The generator, the monitor's unit and the udev rule name remapctl
	# where SBINDIR put it.
	sed -i 's|/usr/sbin/remapctl|$(SBINDIR)/remapctl|g' \
		$(DESTDIR)$(LIBDIR)/systemd/system-generators/remapctl-generator \
		$(DESTDIR)$(LIBDIR)/systemd/system/remapctl-monitor.service \
		$(DESTDIR)$(LIBDIR)/udev/rules.d/60-remapctl.rules

dkms-tarball:
	scripts/package-dkms.sh

dkms-deb:
	scripts/package-dkms.sh --deb

deb:
	scripts/package-remapctl.sh

test:
	scripts/test.sh

demo:
	scripts/demo.sh

bench:
	scripts/bench.sh

.PHONY: all clean install install-module install-remapctl dkms-tarball dkms-deb deb test demo bench
