#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Fuzz the on-disk format's decoder and loader (ondisk/fuzz, a libFuzzer
# target) for a bounded time, with the host's stable toolchain: the same
# coverage instrumentation cargo-fuzz uses without a sanitizer (the
# sanitizers need nightly). `cargo fuzz run load` works too where
# cargo-fuzz and nightly are installed.
#   scripts/fuzz.sh [seconds]      (default 60)
. "$(dirname "$0")/lib.sh"
secs=${1:-60}
cd "$PROJ/ondisk/fuzz"
say "building the fuzz target"
# The instrumentation must not reach build scripts: hence --target.
RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks" \
	cargo build --release --locked --target x86_64-unknown-linux-gnu 2>&1 | grep -vE '^\s+(Compiling|Downloaded|Downloading)' >&2
corpus=$CACHE/fuzz-corpus
mkdir -p "$corpus"
say "fuzzing the loader for $secs s (corpus $corpus)"
exec target/x86_64-unknown-linux-gnu/release/load -max_total_time="$secs" -print_final_stats=1 "$corpus"
