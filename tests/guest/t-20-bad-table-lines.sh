# SPDX-License-Identifier: GPL-2.0
# Malformed table lines: each is refused with its own reason in the kernel
# log (device-mapper prints ti->error), and no device is left behind.

d=$(nullb_make bad1 64 512)
s=$(nullb_make bad2 16 512)
k=$(nullb_make bad4k 16 4096)

refused "too few arguments" "Not enough arguments" "0 1024 remap $d 0 $s 0"
refused "no arguments" "Not enough arguments" "0 1024 remap"
refused "data_offset not a number" "Invalid data_offset" "0 1024 remap $d abc $s 0 64"
refused "negative spare_offset" "Invalid spare_offset" "0 1024 remap $d 0 $s -1 64"
refused "spare_len with a suffix" "Invalid spare_len" "0 1024 remap $d 0 $s 0 1k"
refused "empty spare area" "spare_len must not be zero" "0 1024 remap $d 0 $s 0 0"
refused "feature count not a number" "Invalid number of feature arguments" "0 1024 remap $d 0 $s 0 64 x"
refused "feature count too large" "Feature argument count exceeds the arguments given" "0 1024 remap $d 0 $s 0 64 3 block_size 4096"
refused "words after the features" "Too many arguments after the features" "0 1024 remap $d 0 $s 0 64 1 no_auto_remap extra"
refused "unknown feature" "Unrecognised feature" "0 1024 remap $d 0 $s 0 64 1 turbo"
refused "block_size without value" "Feature block_size requires a value" "0 1024 remap $d 0 $s 0 64 1 block_size"
refused "block_size not a power of two" "block_size must be a power of two from 512 to 65536" "0 1024 remap $d 0 $s 0 64 2 block_size 1000"
refused "block_size too large" "block_size must be a power of two from 512 to 65536" "0 1024 remap $d 0 $s 0 256 2 block_size 131072"
refused "read_retries too large" "read_retries must be a number from 0 to 16" "0 1024 remap $d 0 $s 0 64 2 read_retries 99"
refused "read_retries without value" "Feature read_retries requires a value" "0 1024 remap $d 0 $s 0 64 1 read_retries"
refused "duplicate feature" "Duplicate feature no_auto_remap" "0 1024 remap $d 0 $s 0 64 2 no_auto_remap no_auto_remap"
refused "missing data device" "Data device lookup failed" "0 1024 remap /dev/nonexistent 0 $s 0 64"
refused "missing spare device" "Spare device lookup failed" "0 1024 remap $d 0 /dev/nonexistent 0 64"
refused "data area past the device end" "Data area extends beyond the end of the data device" "0 1024 remap $d 130560 $s 0 64"
refused "data offset overflows" "Data area extends beyond the end of the data device" "0 1024 remap $d 18446744073709551104 $s 0 64"
refused "spare area past the device end" "Spare area extends beyond the end of the spare device" "0 1024 remap $d 0 $s 32760 64"
refused "data and spare overlap" "Data and spare areas overlap on the same device" "0 1024 remap $d 0 $d 1000 64"
refused "data_offset misaligned" "data_offset is not a multiple of block_size" "0 1024 remap $d 1 $s 0 64 2 block_size 4096"
refused "spare_offset misaligned" "spare_offset is not a multiple of block_size" "0 1024 remap $d 0 $s 4 64 2 block_size 4096"
refused "spare_len misaligned" "spare_len is not a multiple of block_size" "0 1024 remap $d 0 $s 0 60 2 block_size 4096"
refused "target length misaligned" "Target length is not a non-zero multiple of block_size" "0 1020 remap $d 0 $s 0 64 2 block_size 4096"
refused "spare area too small for the metadata" "Spare area too small for 5 metadata copies and one spare block" "0 1024 remap $d 0 $s 0 15"
refused "block_size below the logical block size" "block_size is smaller than the logical block size of a device" "0 1024 remap $d 0 $k 0 64 2 block_size 512"

check "no device left behind" [ -z "$(dmsetup ls | grep -v 'No devices found')" ]
nullb_drop bad1
nullb_drop bad2
nullb_drop bad4k
