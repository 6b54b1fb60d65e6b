# SPDX-License-Identifier: GPL-2.0
# Build dm-remap.ko.
#
#   make                 build against the project's cached test kernel
#                        (creates the toolchain and kernel first if missing)
#   make KDIR=<dir>      build against any configured and built Rust-enabled
#                        kernel tree, with the toolchain that built it
#   make test            the whole test suite in QEMU (scripts/test.sh)
#   make demo            the demonstration in QEMU (scripts/demo.sh)
#   make bench           the I/O benchmark against dm-linear (scripts/bench.sh)
#   make clean

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

test:
	scripts/test.sh

demo:
	scripts/demo.sh

bench:
	scripts/bench.sh

.PHONY: all clean test demo bench
