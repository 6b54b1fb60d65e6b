# SPDX-License-Identifier: GPL-2.0
# I/O benchmark against dm-linear (scripts/bench.sh boots it, once under
# icount and once on the wall clock). Prints one BENCH line per fio run.
#
# The data device is a null_blk that stores nothing and completes in the
# submitter's context (memory_backed=0, irqmode=0): 44 GiB of 4 KiB
# blocks. Configurations, all over it:
#   raw      the null_blk itself
#   linear   dm-linear
#   rlinear  rust_linear (linear/): dm-linear in Rust on the abstractions of
#            kapi/, so its ratio to dm-linear is their price alone
#   r0       remap, no remaps
#   r100k    remap, 100k remapped blocks (every 10th block of the first 4 GiB)
#   r1m      remap, 1M remapped blocks (every 10th block of the first 40 GiB)
#   r1mhit   r1m with uniform random I/O over those 40 GiB: 10% hit remaps
#   r1mscrub r1m under the random-read test with a scrub running at its
#            default rate (`scrub start`, 16 MiB/s), started before fio
#            and stopped after it: the foreground's loss to a scrub
#   hlinear  dm-linear over a table of the null_blk in which block 1000
#            answers 2 s late and then fails (dm-delay over the error
#            target), read in a loop throughout the run
#   hremap   remap over the same table (its own spare area): its error
#            worker retries that block, marks it pending, probes the device
# The hanging configurations run one test, hanglat: QD1 4k random reads of
# healthy blocks (from 1 GiB on), whose p99 latency says what one hanging
# block costs every other read.
# Random I/O of the other configurations touches only blocks 5, 15, 25...
# of the first 40 GiB (none remapped, while every 256-block region of r1m
# holds remaps, so every bio costs a hash lookup). Sequential 1 MiB reads
# go over the first 4 GiB, where r100k and r1m remap every 10th block: each
# read is split at every remapped block (about 51 pieces, half of them to
# spares), the cost of splitting big bios. Each run's share of bios that
# went to spares is checked against what its configuration intends. The
# order of the configurations turns by one every round. The spare areas
# lie on a memory-backed null_blk (pages exist only where metadata was
# written); the remaps are written there by remapctl restore (meta_restore
# in lib.sh) and loaded by the constructor.
. /tests/lib.sh
modprobe dm_remap
modprobe dm_rust_linear
modprobe dm-delay
modprobe null_blk nr_devices=0

# dmr.reps= and dmr.runtime= on the kernel command line (BENCH_REPS and
# BENCH_RUNTIME on the host).
reps=$(sed -n 's/.*dmr\.reps=\([0-9]*\).*/\1/p' /proc/cmdline)
runtime=$(sed -n 's/.*dmr\.runtime=\([0-9]*\).*/\1/p' /proc/cmdline)
reps=${reps:-3}
runtime=${runtime:-3}
# dmr.tests= and dmr.configs= (comma lists): a subset, for development.
tests=$(sed -n 's/.*dmr\.tests=\([a-z0-9,]*\).*/\1/p' /proc/cmdline | tr ',' ' ')
configs=$(sed -n 's/.*dmr\.configs=\([a-z0-9,]*\).*/\1/p' /proc/cmdline | tr ',' ' ')
tests=${tests:-randread randwrite lat seqread hanglat}
configs=${configs:-raw linear rlinear r0 r100k r1m r1mhit r1mscrub hlinear hremap}
ncpu=$(nproc)
gib=$((1024 * 1024 * 2))
len=$((44 * gib))
d=$(NULLB_ATTRS="memory_backed=0 irqmode=0 discard=0" nullb_make bdata 45056 4096) || exit 1
s=$(nullb_make bspare 4800 4096) || exit 1
# wanted CONFIG...: whether the run has any of these configurations.
wanted() {
	for w; do case " $configs " in *" $w "*) return 0 ;; esac; done
	return 1
}
# The remapped configurations this run needs, each written by remapctl
# restore (only those: 1M remaps take minutes under icount) and loaded.
wanted_sizes=
wanted r100k && wanted_sizes=100k
wanted r1m r1mhit r1mscrub && wanted_sizes="$wanted_sizes 1m"
# area_of SIZE: the spare area (offset, length) of r100k or r1m, and the
# number of remaps in it.
area_of() {
	case $1 in
	100k) echo "131072 1048576 100000" ;;
	1m) echo "1179648 8585216 1000000" ;;
	esac
}
# Written before any table holds the spare device.
for n in $wanted_sizes; do
	set -- $(area_of $n)
	meta_restore $s 0 $len $1 $2 4096 $3 10 || echo "BENCH error restore $n"
done
dmsetup create linear --table "0 $len linear $d 0" || echo "BENCH error linear"
dmsetup create rlinear --table "0 $len rust_linear $d 0" || echo "BENCH error rlinear"
dmsetup create r0 --table "0 $len remap $d 0 $s 0 131072 2 block_size 4096" || echo "BENCH error r0"
for n in $wanted_sizes; do
	set -- $(area_of $n)
	area="$1 $2"
	dmesg -c >/dev/null
	dmsetup create r$n --table "0 $len remap $d 0 $s $area 2 block_size 4096" || echo "BENCH error r$n"
	line=$(dmesg | grep 'metadata generation .* loaded' | tail -n 1)
	echo "BENCH load config=r$n $(echo "$line" | sed -n 's/.*loaded: \([0-9]*\) remaps in \([0-9]*\) us (\([0-9]*\) us reading and checking the 5 copies, \([0-9]*\) us the spare allocator, \([0-9]*\) us the remap table).*/remaps=\1 us=\2 read_us=\3 spares_us=\4 table_us=\5/p')"
	mem=$(dmsetup message r$n 0 stats | tr ' ' '\n' | sed -n 's/^memory_bytes=//p')
	echo "BENCH memory config=r$n bytes=$mem"
done
# The hanging block's table, and the two configurations over it.
if wanted hlinear hremap; then
	dmsetup create herr --table "0 8 error" || echo "BENCH error herr"
	dmsetup create hdelay --table "0 8000 linear $d 0
8000 8 delay /dev/mapper/herr 0 2000
8008 $((len - 8008)) linear $d 8008" || echo "BENCH error hdelay"
	dmsetup create hlinear --table "0 $len linear /dev/mapper/hdelay 0" || echo "BENCH error hlinear"
	dmsetup create hremap --table "0 $len remap /dev/mapper/hdelay 0 $s 9764864 65536 2 block_size 4096" ||
		echo "BENCH error hremap"
fi

dev_of() {
	case $1 in
	raw) echo "$d" ;;
	r1mhit | r1mscrub) echo /dev/mapper/r1m ;;
	*) echo "/dev/mapper/$1" ;;
	esac
}

# hit_wanted TEST CONFIG: the range ("low-high", %) the share of bios that
# went to spares must fall in. Random I/O over the first 40 GiB hits
# 1M of its 10485760 blocks (9.54%) in r1mhit and none elsewhere; a 1 MiB
# read over blocks of which every 10th is remapped is cut into pieces of
# which about half go to spares.
hit_wanted() {
	case $1:$2 in
	seqread:r100k | seqread:r1m) echo 45-55 ;;
	*:r1mhit) echo 9.0-10.1 ;;
	*) echo 0-0 ;;
	esac
}

# run TEST CONFIG REP: one fio run; prints its BENCH line.
run() {
	t=$1 c=$2 rep=$3
	dev=$(dev_of "$c")
	# Blocks 5, 15, 25...: never remapped. r1mhit: any block.
	pattern="--offset=20k --blockalign=40k --size=40g"
	[ "$c" = r1mhit ] && pattern="--size=40g"
	case $t in
	randread) args="--rw=randread --bs=4k --iodepth=32 --numjobs=$ncpu $pattern" ;;
	randwrite) args="--rw=randwrite --bs=4k --iodepth=32 --numjobs=$ncpu $pattern" ;;
	lat) args="--rw=randread --bs=4k --iodepth=1 --numjobs=1 $pattern" ;;
	hanglat) args="--rw=randread --bs=4k --iodepth=1 --numjobs=1 --offset=1g --size=40g" ;;
	seqread) args="--rw=read --bs=1m --iodepth=8 --numjobs=1 --size=4g" ;;
	esac
	remap=0
	case $c in raw | rlinear) ;; r*) remap=1 ;; esac
	name=${dev#/dev/mapper/}
	[ $remap = 1 ] && dmsetup message "$name" 0 clear_stats >/dev/null
	scrub_before=
	if [ "$c" = r1mscrub ]; then
		dmsetup message "$name" 0 scrub start >/dev/null ||
			echo "BENCH error test=$t config=$c scrub start failed"
		scrub_before=1
	fi
	# Terse output; JSON for the latency runs, whose percentiles it gives in
	# nanoseconds (terse rounds them to microseconds).
	format="--output-format=terse --terse-version=3"
	# Total latency (submission to completion): with irqmode=0 the
	# completion latency alone leaves out the whole submission path.
	case $t in lat | hanglat) format="--output-format=json --lat_percentiles=1" ;; esac
	# The hanging block, read in a loop while fio runs; each read that
	# fails is counted.
	hang_pid=
	if [ "$t" = hanglat ]; then
		: >/tmp/hang.fails
		(while :; do
			dd if="$dev" of=/dev/null bs=4k count=1 skip=1000 iflag=direct 2>/dev/null || echo x >>/tmp/hang.fails
		done) &
		hang_pid=$!
		read_errors_before=$(dmsetup message hremap 0 stats | tr ' ' '\n' | sed -n 's/^read_errors=//p')
	fi
	# shellcheck disable=SC2086
	out=$(fio --name=b --filename="$dev" --direct=1 --ioengine=io_uring --time_based \
		--runtime="$runtime" --ramp_time=1 --norandommap --randrepeat=0 --group_reporting \
		--percentile_list=50:99 $format $args 2>&1)
	if [ -n "$hang_pid" ]; then
		kill $hang_pid
		wait $hang_pid 2>/dev/null
		# The fault acted: the hanging block's reads failed, and remap's
		# worker saw them.
		[ -s /tmp/hang.fails ] || echo "BENCH error test=$t config=$c the hanging block never failed"
		errs=$(dmsetup message hremap 0 stats | tr ' ' '\n' | sed -n 's/^read_errors=//p')
		[ "$c" != hremap ] || [ "$errs" -gt "$read_errors_before" ] ||
			echo "BENCH error test=$t config=$c remap saw no read error of the hanging block"
	fi
	# What the scrub read meanwhile (from its start, just before fio), in
	# KiB per second of guest time, by its own counters.
	scrub=
	if [ -n "$scrub_before" ]; then
		scrub=$(dmsetup message "$name" 0 stats | tr ' ' '\n' | awk -F= '
			$1 == "scrub_read_bytes" { b = $2 } $1 == "scrub_ms" { ms = $2 }
			END { printf " scrub_kib_s=%d", ms ? b / 1024 * 1000 / ms : 0 }')
		dmsetup message "$name" 0 scrub stop >/dev/null ||
			echo "BENCH error test=$t config=$c scrub stop failed"
	fi
	# The share of bios that went to spares: the pattern does what it says.
	hit=-
	if [ $remap = 1 ]; then
		hit=$(dmsetup message "$name" 0 stats | tr ' ' '\n' | awk -F= '
			$1 == "reads" || $1 == "writes" { n += $2 }
			$1 == "remapped_reads" || $1 == "remapped_writes" { h += $2 }
			END { printf "%.2f", n ? 100 * h / n : 0 }')
		want=$(hit_wanted "$t" "$c")
		echo "$hit $want" | awk '{ split($2, r, "-"); exit !($1 >= r[1] && $1 <= r[2]) }' ||
			echo "BENCH error test=$t config=$c hit_pct=$hit, wanted $want"
	fi
	if [ "$t" = lat ] || [ "$t" = hanglat ]; then
		# The first "iops" and "lat_ns" are the read side's.
		echo "$out" | awk -v t="$t" -v c="$c" -v rep="$rep" -v hit="$hit" -v scrub="$scrub" '
			/"iops" :/ && iops == "" { iops = $3; sub(/,/, "", iops) }
			/"lat_ns" :/ { in_lat = 1 }
			in_lat && /"mean" :/ && mean == "" { mean = $3; sub(/,/, "", mean) }
			in_lat && /"50.000000" :/ && p50 == "" { p50 = $3; sub(/,/, "", p50) }
			in_lat && /"99.000000" :/ && p99 == "" { p99 = $3; sub(/,/, "", p99) }
			END {
				if (p99 == "") { print "BENCH error test=" t " config=" c " fio gave no percentiles"; exit }
				printf "BENCH run test=%s config=%s rep=%s iops=%d bw_kib=0 p50_us=%.3f p99_us=%.3f mean_us=%.4f hit_pct=%s%s\n", t, c, rep, iops, p50 / 1000, p99 / 1000, mean / 1000, hit, scrub
			}'
		return
	fi
	echo "$out" | tail -n 1 | awk -F';' -v t="$t" -v c="$c" -v rep="$rep" -v hit="$hit" -v scrub="$scrub" '
		NF < 60 { print "BENCH error test=" t " config=" c " fio: " $0; exit }
		{
			w = (t == "randwrite")
			iops = w ? $49 : $8; bw = w ? $48 : $7
			p50 = w ? $59 : $18; p99 = w ? $60 : $19
			sub(/.*=/, "", p50); sub(/.*=/, "", p99)
			printf "BENCH run test=%s config=%s rep=%s iops=%d bw_kib=%d p50_us=%s p99_us=%s hit_pct=%s%s\n", t, c, rep, iops, bw, p50, p99, hit, scrub
		}'
}

# rotate N WORDS...: the words turned left by N.
rotate() {
	n=$1
	shift
	[ $# -gt 0 ] || return 0
	n=$((n % $#))
	i=0
	for w; do [ $i -ge $n ] && printf '%s ' "$w"; i=$((i + 1)); done
	i=0
	for w; do [ $i -lt $n ] && printf '%s ' "$w"; i=$((i + 1)); done
}

for rep in $(seq 1 "$reps"); do
	for t in $tests; do
		# shellcheck disable=SC2086
		for c in $(rotate $((rep - 1)) $configs); do
			# The same device as r1m: only random I/O differs.
			[ "$t" = seqread ] && [ "$c" = r1mhit ] && continue
			# The scrub's cost is measured on 4k random reads.
			[ "$c" = r1mscrub ] && [ "$t" != randread ] && continue
			# The hanging block's configurations run its test only, and
			# only they do.
			case $c in hlinear | hremap) [ "$t" = hanglat ] || continue ;; *) [ "$t" != hanglat ] || continue ;; esac
			run "$t" "$c" "$rep"
		done
	done
done

for c in linear r0 $(for n in $wanted_sizes; do echo "r$n"; done); do dmsetup remove "$c"; done
if wanted hlinear hremap; then
	# The hanging block's last reads (a dd the loop left, remap's reads
	# given up on) hold the devices for up to their 2 s delay.
	for c in hlinear hremap hdelay herr; do
		i=0
		until dmsetup remove "$c" 2>/dev/null; do
			i=$((i + 1))
			[ $i -lt 100 ] || { echo "BENCH error remove $c"; break; }
			sleep 0.1
		done
	done
fi
echo "BENCH done"
