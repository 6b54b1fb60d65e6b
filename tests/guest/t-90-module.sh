# SPDX-License-Identifier: GPL-2.0
# The module cannot be unloaded while a remap device exists, and unloads
# cleanly once the device is gone.  Runs last: it unloads the module.

d=$(nullb_make mod1 16 512)
check "create" dmsetup create m1 --table "0 16384 remap $d 0 $d 16384 8192"
if rmmod dm_remap 2>/dev/null; then
	fail "rmmod refused while a device exists" "module unloaded under a live device"
else
	pass "rmmod refused while a device exists"
fi
check "device still works" write_read /dev/mapper/m1 3
check "remove" dmsetup remove m1
check "rmmod after removal" rmmod dm_remap
check "module gone" sh -c "! grep -q '^dm_remap ' /proc/modules"
check "target type unregistered" sh -c "! dmsetup targets | grep -q '^remap '"
check "reload the module" modprobe dm-remap
check "target type registered again" sh -c "dmsetup targets | grep -q '^remap '"
nullb_drop mod1
