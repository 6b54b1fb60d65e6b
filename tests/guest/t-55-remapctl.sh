# SPDX-License-Identifier: GPL-2.0
# remapctl on real devices: a blank disk becomes a mounted ext4 on remap
# with two commands and comes back with nothing but the device; dump and
# restore round-trip and the kernel loads what restore wrote; check finds
# each damaged copy (1 to 5, superblocks and slot blocks) and agrees with
# the kernel's load, repair fixes the first four; open refuses a blank
# device, a filesystem, metadata beyond repair and another device's
# metadata; status --json parses; open --all from a remaptab brings the
# devices back after a "reboot" (devices gone, module reloaded).

a=$(nullb_make rca 64 512)
b=$(nullb_make rcb 64 512)

check "format a blank disk" remapctl format $a
# What udev imports (60-remapctl.rules): the member's type and UUID, the
# UUID format printed; nothing and exit 2 for a disk without a label.
check "probe: a remap member's udev properties (ID_FS_TYPE, ID_FS_UUID)" sh -c "remapctl probe $a >/tmp/rc-probe &&
	grep -qx ID_FS_TYPE=dm_remap_member /tmp/rc-probe && grep -qx ID_FS_USAGE=raid /tmp/rc-probe &&
	grep -qx ID_REMAP_ROLE=whole /tmp/rc-probe && grep -qE '^ID_FS_UUID=[0-9a-f-]{36}$' /tmp/rc-probe &&
	remapctl dump $a | grep -qx \"uuid \$(sed -n 's/^ID_FS_UUID=//p' /tmp/rc-probe)\""
check "probe: a disk without a label prints nothing, exit 2" sh -c "remapctl probe $b >/tmp/rc-probe; [ \$? = 2 ] && [ ! -s /tmp/rc-probe ]"
# A failing disk whose first sector no longer reads (dm-dust): the backup
# label still makes it a member, with its UUID.
dmsetup create rcdust --table "0 $(blockdev --getsz $a) dust $a 0 512"
dmsetup message rcdust 0 addbadblock 0 >/dev/null
dmsetup message rcdust 0 enable >/dev/null
check "probe: the primary label unreadable: the backup says it is a member" sh -c "! dd if=/dev/mapper/rcdust of=/dev/null bs=512 count=1 iflag=direct 2>/dev/null &&
	remapctl probe /dev/mapper/rcdust | grep -qx \"ID_FS_UUID=\$(remapctl probe $a | sed -n 's/^ID_FS_UUID=//p')\""
dmsetup remove rcdust
check "open it by the device alone" remapctl open $a rc
check "/dev/mapper/rc exists" [ -b /dev/mapper/rc ]
uuid=$(remapctl dump $a | sed -n 's/^uuid //p')
check "its DM UUID is REMAP-<metadata uuid>" sh -c "[ \"\$(dmsetup info -c --noheadings -o uuid rc)\" = REMAP-$uuid ]"
check "the table line is derived from the label: data from 1 MiB, 4 KiB blocks" \
	sh -c "dmsetup table rc | grep -qE '^0 [0-9]+ remap [0-9]+:[0-9]+ 2048 [0-9]+:[0-9]+ [0-9]+ [0-9]+ 2 block_size 4096$'"
check "mkfs.ext4 on it" mkfs_ext4 -q -F /dev/mapper/rc
mkdir -p /mnt/rc
check "mount" mount -t ext4 /dev/mapper/rc /mnt/rc
dd if=/dev/urandom of=/mnt/rc/file bs=1k count=300 2>/dev/null
sum=$(md5sum </mnt/rc/file)
check "umount" umount /mnt/rc
check "close" remapctl close rc
check "closed: no device left" sh -c "! dmsetup info rc >/dev/null 2>&1 && [ ! -e /dev/mapper/rc ]"
check "open again with nothing but the device" remapctl open $a rc
check "mount again" mount -t ext4 /dev/mapper/rc /mnt/rc
check "the file is intact" [ "$(md5sum </mnt/rc/file)" = "$sum" ]
umount /mnt/rc

# status, for people and for scripts.
check "status: healthy, exit 0" remapctl status rc
check "status --json parses (version 1): rc, ok, 0 remapped, 5 of 5 copies" \
	sh -c "remapctl status --json rc | jq -e '.version == 1 and (.devices | length) == 1 and .devices[0].name == \"rc\" and .devices[0].health == \"ok\" and .devices[0].remapped_blocks == 0 and .devices[0].copies_intact == 5 and .devices[0].spares_left_percent == 100'"
for sector in 800 1600 2400; do dmsetup message rc 0 remap $sector >/dev/null; done
check "status --json counts 3 remaps" sh -c "remapctl status --json | jq -e '.devices | map(select(.name == \"rc\"))[0].remapped_blocks == 3'"
check "status of a device that does not exist: exit 4" sh -c "remapctl status nosuch 2>/dev/null; [ \$? = 4 ]"
dmsetup message rc 0 list >/tmp/rc-list

# dump -> restore -> dump, and the kernel loads what restore wrote.
check "close for dump" remapctl close rc
check "dump" sh -c "remapctl dump $a >/tmp/rc-dump"
check "the dump lists the 3 remaps" [ "$(grep -c '^remap ' /tmp/rc-dump)" = 3 ]
check "restore" remapctl restore $a /tmp/rc-dump
grep -v '^generation' /tmp/rc-dump >/tmp/rc-dump.nogen
check "dump after restore: the same table (generation aside)" sh -c "remapctl dump $a | grep -v '^generation' | /sbin/cmp - /tmp/rc-dump.nogen"
check "dump --format json round-trips too" sh -c "remapctl dump --format json $a >/tmp/rc.json && remapctl restore $a /tmp/rc.json && remapctl dump $a | grep -v '^generation' | /sbin/cmp - /tmp/rc-dump.nogen"
check "the kernel loads the restored metadata" remapctl open $a rc
check "list: the same remaps" sh -c "dmsetup message rc 0 list | /sbin/cmp - /tmp/rc-list"
check "close" remapctl close rc

# The spare area's first sector and copy starts, from the dump's geometry
# and the format of docs/format.md.
meta_geometry $a
for blk in 0 1; do
	kind=superblock reason="Spare area has metadata but no intact copy"
	[ $blk = 1 ] && kind="spare slots" reason="Metadata block damaged in every copy"
	for k in 1 2 3 4 5; do
		remapctl dump $a >/tmp/rc-before 2>/dev/null
		c=0
		while [ $c -lt $k ]; do
			meta_damage $a $c $blk
			c=$((c + 1))
		done
		remapctl check $a >/tmp/rc-check 2>&1
		rc=$?
		if [ $k -lt 5 ]; then
			check "block $blk damaged in $k copies: check exits 1" [ $rc = 1 ]
			want=$(seq 0 $((k - 1)) | tr '\n' ' ')
			check "block $blk damaged in $k copies: check names exactly those copies ($want)" sh -c "[ \"\$(sed -n 's/^copy \([0-9]\) block $blk ($kind): checksum mismatch.*/\1/p' /tmp/rc-check | sort -n | tr '\n' ' ')\" = '$want' ] && grep -q '$((5 - k)) of 5 copies intact' /tmp/rc-check"
			dmesg -c >/dev/null
			# The kernel agrees: its load finds the same copies damaged.
			remapctl open --no-check $a rc >/dev/null 2>&1
			check "block $blk damaged in $k copies: the kernel's load names the same copies" sh -c "[ \"\$(dmesg | sed -n 's/.*metadata copy \([0-9]\) has 1 damaged or stale blocks.*/\1/p' | sort -n | tr '\n' ' ')\" = '$want' ]"
			# The kernel rewrites them on resume (its first commit).
			eventually sh -c "dmsetup status rc | grep -qE ' ok [0-9]+ 5/5 '"
			check "block $blk damaged in $k copies: the kernel rewrote them (check is clean after close)" sh -c "remapctl close rc && remapctl check -q $a"
			remapctl close rc >/dev/null 2>&1
			# The kernel repaired them on resume: damage again for repair.
			c=0
			while [ $c -lt $k ]; do
				meta_damage $a $c $blk
				c=$((c + 1))
			done
			check "block $blk damaged in $k copies: repair" remapctl repair $a
			check "block $blk damaged in $k copies: check is clean after repair" remapctl check -q $a
			check "block $blk damaged in $k copies: the table is unchanged" sh -c "remapctl dump $a | /sbin/cmp - /tmp/rc-before"
			remapctl open $a rc >/dev/null 2>&1
			check "block $blk damaged in $k copies: after repair the kernel reports 5/5" sh -c "dmsetup status rc | grep -qE ' ok [0-9]+ 5/5 0 0 - - 0 0 0$'"
			remapctl close rc >/dev/null 2>&1
		else
			check "block $blk damaged in all 5 copies: check exits 3, beyond repair" [ $rc = 3 ]
			check "block $blk damaged in all 5 copies: repair refuses" sh -c "remapctl repair $a 2>/dev/null; [ \$? = 3 ]"
			check "block $blk damaged in all 5 copies: open refuses, exit 3" sh -c "remapctl open $a rc 2>/tmp/rc-open; [ \$? = 3 ] && grep -q 'cannot be used' /tmp/rc-open"
			dmesg -c >/dev/null
			check "block $blk damaged in all 5 copies: the kernel refuses it too, for that reason" \
				sh -c "! remapctl open --no-check $a rc 2>/dev/null && ! dmsetup info rc >/dev/null 2>&1 && dmesg | grep -q 'remap: $reason'"
		fi
	done
	check "format again (--force) after block $blk was lost" remapctl format --force $a
done

# What open and format refuse.
check "open refuses a blank device" sh -c "! remapctl open $b rb 2>/tmp/rc-err && grep -q 'holds no remap label' /tmp/rc-err"
mkfs_ext4 -q -F $b
check "format refuses a device with a filesystem" sh -c "! remapctl format $b 2>/tmp/rc-err && grep -q 'TYPE=ext4' /tmp/rc-err"
check "open refuses a device with a filesystem" sh -c "! remapctl open $b rb 2>/tmp/rc-err && grep -q 'holds no remap label' /tmp/rc-err && ! dmsetup info rb >/dev/null 2>&1"
check "format refuses a formatted device" sh -c "! remapctl format $a 2>/tmp/rc-err && grep -q 'already formatted' /tmp/rc-err"
check "format --force formats over the filesystem" remapctl format --force --spare-percent 2 $b
# Another device's metadata: a's labels on b (same size, other UUID and
# another spare size: the geometry differs too).
dd if=$a of=$b bs=4096 count=1 conv=notrunc 2>/dev/null
dd if=$a of=$b bs=4096 skip=$((64 * 256 - 1)) seek=$((64 * 256 - 1)) count=1 conv=notrunc 2>/dev/null
check "open refuses metadata of another geometry" sh -c "remapctl open $b rb 2>/tmp/rc-err; [ \$? = 3 ] && grep -q 'another geometry' /tmp/rc-err"
check "check says so, exit 3" sh -c "remapctl check $b >/dev/null 2>&1; [ \$? = 3 ]"
check "check --json: beyond repair, and why" sh -c "remapctl check --json $b >/tmp/rc-json; [ \$? = 3 ] && jq -e '.version == 1 and .verdict == \"beyond_repair\" and (.problem | test(\"another geometry\"))' /tmp/rc-json"
remapctl format --force $b >/dev/null
dd if=$a of=$b bs=4096 count=1 conv=notrunc 2>/dev/null
dd if=$a of=$b bs=4096 skip=$((64 * 256 - 1)) seek=$((64 * 256 - 1)) count=1 conv=notrunc 2>/dev/null
check "open refuses another device's metadata of the same geometry" sh -c "remapctl open $b rb 2>/tmp/rc-err; [ \$? = 3 ] && grep -q 'metadata of another device' /tmp/rc-err"
remapctl format --force $b >/dev/null
check "a damaged primary label: open uses the backup and says so" sh -c "dd if=/dev/zero of=$b bs=512 count=1 conv=notrunc 2>/dev/null && remapctl open $b rb 2>/tmp/rc-err && grep -q BackupOnly /tmp/rc-err && remapctl close rb"
check "check --json: a damaged label is repairable, exit 1" sh -c "remapctl check --json $b >/tmp/rc-json; [ \$? = 1 ] && jq -e '.version == 1 and .verdict == \"repairable\" and (.label | test(\"primary\")) and .copies_intact == 5 and (.findings | length) == 0' /tmp/rc-json"
check "repair rewrites the label" sh -c "remapctl repair $b | grep -q 'rewrote the damaged remap label' && remapctl check $b"
check "a device held by a table: check refuses" sh -c "remapctl open $b rb && ! remapctl check $b 2>/tmp/rc-err && grep -q 'in use' /tmp/rc-err && remapctl close rb"
check "open refuses a second open of the same device" sh -c "remapctl open $a ra && ! remapctl open $a ra2 2>/dev/null && remapctl close ra"

# The spare area on another device: format --spare-dev labels both, open
# finds the spare device by its label.
c=$(nullb_make rcc 32 512)
e=$(nullb_make rce 8 512)
check "format --spare-dev: data on one device, spare area on another" remapctl format --spare-dev $e $c
check "open the data device" remapctl open $c rs
check "the table line names both devices" sh -c "dmsetup table rs | grep -qE '^0 [0-9]+ remap $(cat /sys/block/rcc/dev) 2048 $(cat /sys/block/rce/dev) 2048 [0-9]+ 2 block_size 4096$'"
check "a remap through it" dmsetup message rs 0 remap 800
dmsetup message rs 0 list >/tmp/rs-list
check "close, open again: the remap is back" sh -c "remapctl close rs && remapctl open $c rs && dmsetup message rs 0 list | /sbin/cmp - /tmp/rs-list && remapctl close rs"
check "check reads the metadata on the spare device" sh -c "remapctl check $c | grep -q '5 of 5 copies intact'"
check "check --json: clean, 5 copies, the UUID; probe: the spare device is a member, role spare" sh -c "remapctl check --json $c | jq -e '.verdict == \"clean\" and .copies_intact == 5 and (.uuid | length) == 36 and .findings == []' >/dev/null && remapctl probe $e | grep -qx ID_REMAP_ROLE=spare"
check "dump lists the remap" sh -c "remapctl dump $c | grep -qx 'remap 100 [0-9]*'"
check "open refuses the spare device itself" sh -c "! remapctl open $e rx 2>/tmp/rc-err && grep -q 'holds the spare area' /tmp/rc-err"
nullb_drop rcc
nullb_drop rce

# /etc/remaptab and open --all, through a "reboot".
buuid=$(remapctl dump $b | sed -n 's/^uuid //p')
mkdir -p /etc
printf '# name device options\nrc %s -\nrb UUID=%s nofail\n' $a $buuid >/etc/remaptab
check "open --all opens both" remapctl open --all
mkfs_ext4 -q -F /dev/mapper/rc
mount -t ext4 /dev/mapper/rc /mnt/rc && dd if=/dev/urandom of=/mnt/rc/file bs=1k count=100 2>/dev/null
sum=$(md5sum </mnt/rc/file)
umount /mnt/rc
check "open --all again: both open already, nothing to do" remapctl open --all
check "reboot: close both" remapctl close rc rb
check "reboot: rmmod" rmmod dm_remap
check "reboot: modprobe" modprobe dm_remap
check "open --all after the reboot" remapctl open --all
check "both are back, healthy" sh -c "[ \"\$(remapctl status --json | jq -r '.devices | map(select(.health == \"ok\")) | map(.name) | sort | join(\" \")')\" = 'rb rc' ]"
check "the filesystem is back" sh -c "mount -t ext4 /dev/mapper/rc /mnt/rc && [ \"\$(md5sum </mnt/rc/file)\" = '$sum' ] && umount /mnt/rc"
check "a remaptab with a bad line is refused, naming the line" sh -c "printf 'rc\n' >/tmp/bad-tab && remapctl open --all --remaptab /tmp/bad-tab 2>/tmp/bad-tab.err; [ \$? = 3 ] && grep -q 'remaptab line 1' /tmp/bad-tab.err"
remapctl close rc rb
printf 'rc\nrb UUID=%s -\n' $buuid >/tmp/half-tab
check "a remaptab with a bad line: the bad line named and refused (exit 3), the good one opened" sh -c "remapctl open --all --remaptab /tmp/half-tab 2>/tmp/half.err; [ \$? = 3 ] && grep -q 'remaptab line 1' /tmp/half.err && dmsetup info rb >/dev/null 2>&1 && remapctl close rb"
rm -f /etc/remaptab

# A cloned disk: two devices carry one label UUID. open UUID= refuses and
# names both, as LVM refuses duplicate PVs.
f=$(nullb_make rcf 64 512)
dd if=$b of=$f bs=1M iflag=direct oflag=direct 2>/dev/null
check "a cloned disk: open UUID= refused, both devices named" sh -c "! remapctl open UUID=$buuid rb 2>/tmp/rc-err && grep -q '2 devices carry the remap label' /tmp/rc-err && grep -q '$b' /tmp/rc-err && grep -q '$f' /tmp/rc-err && ! dmsetup info rb >/dev/null 2>&1"
nullb_drop rcf
check "the clone gone: open UUID= opens the one left" sh -c "remapctl open UUID=$buuid rb && remapctl close rb"

# Labels lost: format refuses what is not plainly blank; repair --geometry
# writes the labels again from the metadata.
geometry=$(remapctl dump $a | sed -n 's/^geometry //p' | tr ' ' ':')
remapctl open $a rc && dmsetup message rc 0 remap 4000 >/dev/null
dmsetup message rc 0 list >/tmp/rc-before-labels
remapctl close rc
size=$(blockdev --getsize64 $a)
printf 'garbage!' | dd of=$a bs=1 seek=100 conv=notrunc 2>/dev/null
printf 'garbage!' | dd of=$a bs=1 seek=$((size - 4096 + 100)) conv=notrunc 2>/dev/null
sync
check "both labels damaged: format refused without --force" sh -c "! remapctl format $a 2>/tmp/rc-err && grep -q 'damaged in both places' /tmp/rc-err"
dd if=/dev/zero of=$a bs=4096 count=1 conv=notrunc 2>/dev/null
dd if=/dev/zero of=$a bs=4096 seek=$((size / 4096 - 1)) count=1 conv=notrunc 2>/dev/null
sync
check "labels zeroed, metadata kept: format refused without --force" sh -c "! remapctl format $a 2>/tmp/rc-err && grep -q 'holds remap metadata' /tmp/rc-err"
check "repair --geometry writes both labels again" sh -c "remapctl repair --geometry $geometry $a | grep -q 'wrote the remap labels'"
check "open finds the device by its label again, the remaps kept" sh -c "remapctl open $a rc && dmsetup message rc 0 list | /sbin/cmp - /tmp/rc-before-labels && grep -q '^500 ' /tmp/rc-before-labels && remapctl close rc"

# restore onto a device without a label that holds a filesystem: refused.
g=$(nullb_make rcg 64 512)
mkfs_ext4 -q -F $g
gsum=$(md5sum <$g)
check "restore onto an unlabelled filesystem refused, nothing written" sh -c "! remapctl restore $g /tmp/rc-dump 2>/tmp/rc-err && grep -q 'holds a signature' /tmp/rc-err && [ \"\$(md5sum <$g)\" = '$gsum' ]"
nullb_drop rcg
nullb_drop rca
nullb_drop rcb
