# SPDX-License-Identifier: GPL-2.0
# Suspend/resume and table reloads while fio writes and verifies: nothing
# is lost (fio verify=crc32c over everything it wrote).

d=$(nullb_make sr1 160 512)
s=$(nullb_make sr2 16 512)
table="0 262144 remap $d 4096 $s 0 8192"
check "create" dmsetup create sr --table "$table"

fio --name=suspend-reload --filename=/dev/mapper/sr --direct=1 --ioengine=libaio \
	--iodepth=16 --rw=randwrite --bs=4k --size=24m --verify=crc32c --verify_fatal=1 \
	--do_verify=1 --randrepeat=1 --output=/tmp/fio.out >/dev/null 2>&1 &
fio_pid=$!
suspends=0
reloads=0
sleep 1
while kill -0 $fio_pid 2>/dev/null; do
	dmsetup suspend sr && dmsetup resume sr && suspends=$((suspends + 1))
	sleep 0.3
	dmsetup reload sr --table "$table" && dmsetup suspend sr && dmsetup resume sr && reloads=$((reloads + 1))
	sleep 0.3
done
wait $fio_pid
rc=$?
echo "suspend/resume cycles: $suspends, reloads: $reloads during fio"
if [ $rc = 0 ] && grep -q 'err= 0' /tmp/fio.out; then
	pass "fio write+verify through $suspends suspends and $reloads reloads"
else
	fail "fio write+verify" "rc=$rc $(grep -iE 'err=|verify' /tmp/fio.out | head -n 3 | tr '\n' ' ')"
fi
check "at least 3 suspend/resume cycles ran during I/O" [ $suspends -ge 3 ]
check "at least 3 reloads ran during I/O" [ $reloads -ge 3 ]
check "table unchanged after reloads" [ "$(dmsetup table sr)" = "$(canon "$table")" ]
check "remove" dmsetup remove sr
nullb_drop sr1
nullb_drop sr2
