#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# I/O benchmark against dm-linear: boots the bench kernel (no lockdep, no
# KFENCE, no kmemleak) twice and runs tests/guest/bench.sh, which runs fio
# on raw null_blk, dm-linear and remap with 0, 100k and 1M remaps (none
# hit, and 10% hit), the configurations interleaved, BENCH_REPS times:
#   1. under QEMU's -icount shift=2,sleep=off: guest time advances per
#      instruction executed, so the figures measure CPU cost and repeat;
#   2. on the wall clock (multi-threaded TCG, or KVM when it works): the
#      figures icount cannot model, such as latency under real parallelism.
# Prints the medians and their ratio to dm-linear, and writes them to
# results/bench.md (a table) and results/bench.svg (a plot) when the run
# was full (every test and configuration, both modes, at least 3 rounds
# of at least 3 s) and no run failed its checks; any other run writes
# results/bench-subset.md and results/bench-subset.svg instead.
# Settings: BENCH_REPS (3), BENCH_RUNTIME (seconds per fio run, 3),
# BENCH_MODES ("icount wall"); for development, BENCH_TESTS and
# BENCH_CONFIGS (comma lists) run a subset. BENCH_REPORT_ONLY=1 boots
# nothing and writes the report again from the guest logs of the last run
# (results/guest-bench-*.log), with the same settings as that run.
. "$(dirname "$0")/lib.sh"

modes=${BENCH_MODES:-icount wall}
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
export DM_REMAP_GUEST_TIMEOUT=${DM_REMAP_GUEST_TIMEOUT:-5400}
if [ -n "${BENCH_REPORT_ONLY:-}" ]; then
	accel=$(cat "$CACHE/accel" 2>/dev/null || echo tcg)
	modes_to_run=
else
	bash "$PROJ/scripts/toolchain.sh"
	bash "$PROJ/scripts/kernel.sh" bench
	bash "$PROJ/scripts/build-module.sh" bench
	mkdir -p "$PROJ/results"
	img=$(guest_image bench bench) || exit 1
	accel=$(qemu_accel "$img")
	modes_to_run=$modes
fi

for mode in $modes_to_run; do
	case $mode in
	icount)
		export GUEST_ACCEL_ARGS="-accel tcg,thread=single -icount shift=2,sleep=off -cpu max"
		what="TCG with -icount shift=2,sleep=off (guest time = instructions executed)"
		;;
	wall)
		unset GUEST_ACCEL_ARGS
		what="$accel, wall clock"
		;;
	*) die "BENCH_MODES: icount and/or wall" ;;
	esac
	say "booting the bench kernel ($what): ${BENCH_REPS:-3} rounds of fio runs of ${BENCH_RUNTIME:-3} s${BENCH_TESTS:+, tests $BENCH_TESTS}${BENCH_CONFIGS:+, configurations $BENCH_CONFIGS}"
	boot_guest bench "$img" bench "$PROJ/results/kernel-bench-$mode.log" \
		"" "dmr.reps=${BENCH_REPS:-3} dmr.runtime=${BENCH_RUNTIME:-3}${BENCH_TESTS:+ dmr.tests=$BENCH_TESTS}${BENCH_CONFIGS:+ dmr.configs=$BENCH_CONFIGS}" |
		tee "$PROJ/results/guest-bench-$mode.log" | sed -u 's/\r$//' |
		awk '/^BENCH run/ { n++; printf "\r  fio run %d: %s %s        ", n, $3, $4; fflush() }
			/^BENCH (load|error|memory)/ { printf "\n%s\n", $0; fflush() }
			END { print "" }'
	sed -i 's/\r$//' "$PROJ/results/guest-bench-$mode.log"
	grep -q '^BENCH done' "$PROJ/results/guest-bench-$mode.log" ||
		die "the $mode benchmark did not finish; see results/guest-bench-$mode.log"
done
errors=$(for mode in $modes; do grep '^BENCH error' "$PROJ/results/guest-bench-$mode.log" || true; done | wc -l)

# Only a full run with every check passed is the committed result.
full=1
[ -z "${BENCH_TESTS:-}${BENCH_CONFIGS:-}" ] || full=0
[ "$modes" = "icount wall" ] || full=0
[ "${BENCH_REPS:-3}" -ge 3 ] && [ "${BENCH_RUNTIME:-3}" -ge 3 ] || full=0
[ "$errors" = 0 ] || full=0
# Every run there: 8 configurations of random read, 7 of random write and
# latency, 6 of sequential read, 2 of the hanging block's latency, each
# round.
for mode in $modes; do
	[ -f "$PROJ/results/guest-bench-$mode.log" ] || die "no results/guest-bench-$mode.log"
	runs=$(grep -c '^BENCH run' "$PROJ/results/guest-bench-$mode.log" || true)
	[ "$runs" = $((${BENCH_REPS:-3} * 30)) ] || full=0
done
base=bench
[ $full = 1 ] || base=bench-subset
# The KUnit micro-benchmarks (lookups, the allocator, commits to memory)
# run when the bench kernel loads the module: printed, never asserted.
grep -hoE 'dm_remap_(table|spare_alloc|metadata): .*' "$PROJ"/results/kernel-bench-*.log | sort -u

# summarize MODE: the medians of every metric per configuration and their
# ratio to dm-linear, as a markdown table; "PLOT mode metric config ratio"
# lines for the plot go to stderr.
summarize() {
	local mode=$1 log=$PROJ/results/guest-bench-$1.log
	grep '^BENCH run' "$log" | awk '{
		for (i = 3; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
		t = v["test"]; c = v["config"]
		if (t == "lat") {
			print "lat_mean_us", c, v["mean_us"]
			print "lat_p50_us", c, v["p50_us"]; print "lat_p99_us", c, v["p99_us"]
		} else if (t == "hanglat") {
			print "hang_p50_us", c, v["p50_us"]; print "hang_p99_us", c, v["p99_us"]
		} else if (t == "seqread") {
			print "seqread_MiBps", c, v["bw_kib"] / 1024
		} else {
			print t "_iops", c, v["iops"]
		}
		print "hit_" t, c, v["hit_pct"]
		if (v["scrub_kib_s"] != "") print "scrub_kib_s", c, v["scrub_kib_s"]
		delete v
	}' | sort -k1,1 -k2,2 -k3,3g | awk -v mode="$mode" '
	function flush() {
		if (key == "") return
		m = (cnt % 2) ? vals[(cnt + 1) / 2] : (vals[cnt / 2] + vals[cnt / 2 + 1]) / 2
		split(key, k, SUBSEP); med[k[1], k[2]] = m; runs[k[1], k[2]] = cnt
		lo[k[1], k[2]] = vals[1]; hi[k[1], k[2]] = vals[cnt]
		metrics[k[1]] = 1
	}
	{
		if (($1 SUBSEP $2) != key) { flush(); key = $1 SUBSEP $2; cnt = 0 }
		vals[++cnt] = $3
	}
	END {
		flush()
		n = split("raw linear rlinear r0 r100k r1m r1mhit r1mscrub", cfg, " ")
		nm = split("randread_iops randwrite_iops lat_mean_us lat_p50_us lat_p99_us seqread_MiBps", met, " ")
		printf "| metric |"
		for (i = 1; i <= n; i++) printf " %s |", cfg[i]
		printf "\n|---|"
		for (i = 1; i <= n; i++) printf "---|"
		printf "\n"
		for (j = 1; j <= nm; j++) {
			mt = met[j]
			if (!(mt in metrics)) continue
			printf "| %s |", mt
			for (i = 1; i <= n; i++) {
				c = cfg[i]
				# n/a: not run by design (the scrub is measured on
				# random reads; r1mhit reads sequentially as r1m does).
				if (!((mt, c) in med)) {
					na = (c == "r1mscrub" && mt != "randread_iops") || (c == "r1mhit" && mt == "seqread_MiBps")
					printf " %s |", na ? "n/a" : "-"
					continue
				}
				base = med[mt, "linear"]
				r = base ? med[mt, c] / base : 0
				printf " %.4g (%.3fx) |", med[mt, c], r
				if (c != "linear") printf "PLOT %s %s %s %.4f\n", mode, mt, c, r > "/dev/stderr"
			}
			printf "\n"
		}
		printf "\nShare of bios that went to spares (%%, median; each run checked against what its configuration intends): random read "
		# The remap configurations: from r0 (the 4th) on.
		for (i = 4; i <= n; i++) {
			c = cfg[i]
			printf "%s %s%s", c, (("hit_randread", c) in med) ? med["hit_randread", c] : "-", i < n ? ", " : "; "
		}
		printf "1 MiB sequential read "
		for (i = 4; i <= 6; i++) {
			c = cfg[i]
			printf "%s %s%s", c, (("hit_seqread", c) in med) ? med["hit_seqread", c] : "-", i < 6 ? ", " : ".\n"
		}
		if (("randread_iops", "r1mscrub") in med && ("randread_iops", "r1m") in med) {
			printf "Scrub at its default rate (16 MiB/s) during 4k random reads on r1m: %.4g IOPS against %.4g without, %.3fx (the foreground lost %.1f%%); the scrub read %.1f MiB/s meanwhile (median).\n",
				med["randread_iops", "r1mscrub"], med["randread_iops", "r1m"],
				med["randread_iops", "r1mscrub"] / med["randread_iops", "r1m"],
				100 * (1 - med["randread_iops", "r1mscrub"] / med["randread_iops", "r1m"]),
				med["scrub_kib_s", "r1mscrub"] / 1024
			printf "PLOT %s scrub_ratio r1mscrub %.4f\n", mode, med["randread_iops", "r1mscrub"] / med["randread_iops", "r1m"] > "/dev/stderr"
		}
		if (("hang_p99_us", "hremap") in med && ("hang_p99_us", "hlinear") in med) {
			printf "One block hanging (it answers 2 s late and then fails, read in a loop throughout): QD1 4k random reads of other blocks, p99 latency %.4g us through remap against %.4g us through dm-linear over the same fault, %.3fx (p50 %.4g against %.4g us).\n",
				med["hang_p99_us", "hremap"], med["hang_p99_us", "hlinear"],
				med["hang_p99_us", "hremap"] / med["hang_p99_us", "hlinear"],
				med["hang_p50_us", "hremap"], med["hang_p50_us", "hlinear"]
			printf "PLOT %s hang_p99 hremap %.4f\n", mode, med["hang_p99_us", "hremap"] / med["hang_p99_us", "hlinear"] > "/dev/stderr"
		}
		printf "Runs per figure: %d; spread (min-max) of dm-linear 4k random read IOPS: %s-%s.\n",
			runs["randread_iops", "linear"], lo["randread_iops", "linear"], hi["randread_iops", "linear"]
	}'
}

# svg_plot: a grouped bar chart of the ratios to dm-linear, one panel per
# mode, from the PLOT lines on stdin.
svg_plot() {
	awk '
	{ r[$2, $3, $4] = $5; if (!($2 in seen)) { seen[$2] = 1; modes[++nmodes] = $2 } }
	END {
		nm = split("randread_iops randwrite_iops lat_mean_us lat_p99_us seqread_MiBps", met, " ")
		split("4k rand read IOPS|4k rand write IOPS|QD1 read mean latency|QD1 read p99 latency|1 MiB seq read across remaps", label, "|")
		nc = split("raw rlinear r0 r100k r1m r1mhit r1mscrub", cfg, " ")
		split("#888888 #4e79a7 #59a14f #f28e2b #e15759 #b07aa1", color, " ")
		pw = 620; ph = 300; top = 50; left = 50; ymax = 1.3
		printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"11\">\n", pw * nmodes + 20, ph + 110
		printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
		for (p = 1; p <= nmodes; p++) {
			x0 = (p - 1) * pw + left
			printf "<text x=\"%d\" y=\"20\" font-size=\"14\">%s: ratio to dm-linear (latency: lower is better)</text>\n", x0, modes[p]
			for (g = 0; g <= ymax + 0.001; g += 0.25) {
				y = top + ph - g / ymax * ph
				printf "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"%s/>\n", x0, x0 + pw - 70, y, y, g == 1 ? "black" : "#dddddd", g == 1 ? " stroke-dasharray=\"4 3\"" : ""
				printf "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.2f</text>\n", x0 - 4, y + 4, g
			}
			gw = (pw - 70) / nm
			for (j = 1; j <= nm; j++) {
				gx = x0 + (j - 1) * gw
				for (i = 1; i <= nc; i++) {
					v = r[modes[p], met[j], cfg[i]]
					if (v == "") continue
					h = (v > ymax ? ymax : v) / ymax * ph
					bx = gx + 8 + (i - 1) * (gw - 16) / nc
					printf "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>%s %s: %.3fx</title></rect>\n", bx, top + ph - h, (gw - 16) / nc - 2, h, color[i], cfg[i], met[j], v
				}
				printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", gx + gw / 2, top + ph + 16, label[j]
			}
			for (i = 1; i <= nc; i++) {
				lx = x0 + (i - 1) * 95
				printf "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/><text x=\"%d\" y=\"%d\">%s</text>\n", lx, top + ph + 40, color[i], lx + 16, top + ph + 50, cfg[i]
			}
		}
		printf "</svg>\n"
	}'
}

out=$PROJ/results/$base.md
{
	echo "# I/O benchmark: remap against dm-linear"
	echo
	echo "Measured $(date -u +%Y-%m-%d) by \`scripts/bench.sh\` on a $(nproc)-CPU host ($cpu), guest with 2 vCPUs,"
	echo "bench kernel $(sed -n 's/^DMR-BOOT kernel=\([^ ]*\).*/\1/p' "$PROJ/results/guest-bench-${modes%% *}.log"). fio, io_uring, on null_blk"
	echo "(memory_backed=0, irqmode=0); medians of ${BENCH_REPS:-3} interleaved runs of ${BENCH_RUNTIME:-3} s; the ratio to dm-linear in parentheses."
	echo "Configurations: see \`tests/guest/bench.sh\`; rlinear is rust_linear (dm-linear in Rust on kapi/, the price of the abstractions alone); r1mscrub is r1m with a scrub running at its default rate."
	echo "n/a: not run by design (the scrub's cost is measured on random reads; r1mhit would read sequentially as r1m does)."
	[ $full = 1 ] || echo "A subset or failed run ($errors failed checks): not the committed result."
	for mode in $modes; do
		echo
		case $mode in
		icount) echo "## CPU cost: TCG with \`-icount shift=2,sleep=off\` (guest time advances per instruction)" ;;
		wall) echo "## Wall clock: $accel" ;;
		esac
		echo
		summarize "$mode"
		echo
		echo "Load times (constructor, kernel log): $(grep '^BENCH load' "$PROJ/results/guest-bench-$mode.log" | sed 's/^BENCH load //' | tr '\n' ';' | sed 's/;$//; s/;/; /g')."
	done 2>"$PROJ/results/.plot"
} >"$out"
grep -v ' scrub_ratio ' "$PROJ/results/.plot" | svg_plot >"$PROJ/results/$base.svg"
rm -f "$PROJ/results/.plot"
cat "$out"
say "results: results/$base.md, results/$base.svg"
if [ "$errors" != 0 ]; then
	grep -h '^BENCH error' "$PROJ"/results/guest-bench-*.log
	die "$errors benchmark checks failed (above): the results are not the committed ones"
fi
