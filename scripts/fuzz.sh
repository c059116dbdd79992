#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Builds every libFuzzer target in tests/fuzz/ with clang (AddressSanitizer
# and UndefinedBehaviorSanitizer, which abort on the first error) and runs
# each for FUZZ_SECONDS (default 60) on a copy of its seed corpus
# (tests/fuzz/corpus/TARGET/). A crash leaves its input in BUILD/fuzz/ and
# fails the run: add it to the corpus and a regression test for it.
# Usage: scripts/fuzz.sh [BUILD]   (BUILD: a configured build directory,
# for autoconf.h; default build). Prints "N passed, N failed" last, a case
# per target, and the executions each target made.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
case "$build" in /*) ;; *) build=$top/$build ;; esac
seconds=${FUZZ_SECONDS:-60}
cc=${FUZZ_CC:-clang}
out=$build/fuzz
mkdir -p "$out"
if ! command -v "$cc" >/dev/null 2>&1; then
    echo "fuzz: no $cc: skipped"
    echo "0 passed, 0 failed"
    exit 0
fi
flags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all"
flags="$flags -I$top/src -I$build"
proto="$top/src/proto.c $top/src/util.c $top/src/log.c -levent"
config="$top/src/config.c $top/src/config_pool.c $top/src/ring.c"
config="$config $top/src/net.c $top/src/tls.c $top/src/util.c $top/src/log.c"
config="$config -levent -linih -lxxhash -lmd $(pkg-config --libs openssl)"
passed=0
failed=0
for t in request reply meta config; do
    if [ "$t" = config ]; then srcs=$config; else srcs=$proto; fi
    # shellcheck disable=SC2086
    if ! $cc $flags "$top/tests/fuzz/fuzz_$t.c" $srcs -o "$out/fuzz_$t" \
        >"$out/fuzz_$t.build" 2>&1; then
        echo "fuzz: $t: cannot build:"
        tail -n 20 "$out/fuzz_$t.build"
        failed=$((failed + 1))
        continue
    fi
    corpus=$(mktemp -d "${TMPDIR:-/tmp}/mcring-fuzz.XXXXXX")
    cp "$top/tests/fuzz/corpus/$t/"* "$corpus/"
    if (cd "$out" && timeout $((seconds + 120)) "./fuzz_$t" \
        -max_total_time="$seconds" -print_final_stats=1 -timeout=10 \
        -rss_limit_mb=1024 "$corpus" >"fuzz_$t.log" 2>&1); then
        runs=$(sed -n 's/^stat::number_of_executed_units: //p' \
            "$out/fuzz_$t.log")
        echo "fuzz: $t: ok, $runs executions in $seconds s"
        passed=$((passed + 1))
    else
        echo "fuzz: $t: FAILED (input and log in $out):"
        grep -E "ERROR|SUMMARY|runtime error|Test unit written" \
            "$out/fuzz_$t.log" | head -n 10
        failed=$((failed + 1))
    fi
    rm -rf "$corpus"
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
