#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Installs the dependencies and runs the whole test suite twice: a build
# with warnings as errors, then a build with AddressSanitizer and
# UndefinedBehaviorSanitizer (whose Check suites run once more with
# CK_FORK=no, so that leaks inside tests are seen), then the fuzz targets
# for a bounded time each (scripts/fuzz.sh), then builds the Debian package
# and checks it (scripts/package.sh; with MCRING_PACKAGE_INSTALL=1, as in
# CI, it also installs it here and tries it). Exits non-zero on any
# failure. Prints "N passed, N failed" last, counting test cases (each
# Check test, each Python test, each fuzz target), not test programs.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
sh scripts/deps.sh || exit 1
passed=0
failed=0
status=0

# count_cases DIR OUT: test cases passed and failed in the programs that
# the `make check` whose output is DIR/OUT ran, from their logs: Check's "Checks: N,
# Failures: F, Errors: E", mctest's "N passed, N failed", else the program
# as one case. A program that failed with no failed case (it crashed after
# its summary, or before any) counts one failure.
count_cases() {
    grep -E '^(PASS|FAIL|ERROR|XPASS|XFAIL|SKIP): ' "$1/$2" |
    while read -r res name; do
        logf="$1/$name.log"
        [ -f "$logf" ] || logf="$1/${name%.*}.log"
        echo "${res%:} $(tail -n 40 "$logf" 2>/dev/null | tr '\n' ' ')"
    done | awk '
    {
        res = $1; p = 0; f = 0; found = 0
        if (match($0, /Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+/)) {
            split(substr($0, RSTART, RLENGTH), a, /[^0-9]+/)
            p = a[2] - a[3] - a[4]; f = a[3] + a[4]; found = 1
        } else if (match($0, /[0-9]+ passed, [0-9]+ failed/)) {
            split(substr($0, RSTART, RLENGTH), a, /[^0-9]+/)
            p = a[1]; f = a[2]; found = 1
        }
        if (!found) {
            if (res == "PASS") p = 1
            else if (res != "SKIP") f = 1
        }
        if ((res == "FAIL" || res == "ERROR" || res == "XPASS") && f == 0) f = 1
        tp += p; tf += f
    }
    END { printf "%d %d\n", tp, tf }'
}

# run_check DIR OUT VAR=VALUE...: runs make check in DIR with those
# variables (make exports them to the tests), its output in DIR/OUT, and
# adds up the results. A failed run's test-suite.log is kept beside OUT,
# since a later run in DIR writes it (and the logs of what it runs) anew.
run_check() {
    dir=$1
    out=$2
    shift 2
    log="$dir/$out"
    if (cd "$dir" && make -j2 check "$@" >"$out" 2>&1); then
        :
    else
        status=1
        cp "$dir/test-suite.log" "$log.test-suite.log" 2>/dev/null
        tail -n 200 "$dir/test-suite.log" 2>/dev/null
    fi
    grep -E '^(PASS|FAIL|ERROR|XPASS|SKIP|XFAIL):' "$log" || true
    programs=$(grep -c '^PASS:' "$log" || true)
    set -- $(count_cases "$dir" "$out")
    echo "($1 test cases passed, $2 failed)"
    passed=$((passed + $1))
    failed=$((failed + $2))
    if [ "$programs" = 0 ]; then
        echo "no test ran in $dir" >&2
        status=1
    fi
}

if [ -f config.status ]; then
    echo "test: the source tree is configured in place; run 'make distclean'" \
         "first so the out-of-tree builds can work" >&2
    exit 1
fi
echo "== build with -Werror"
sh scripts/build.sh build --enable-werror || exit 1
echo "== tests"
run_check build check.out

echo "== build with ASan and UBSan"
sh scripts/build.sh build-asan --enable-werror --enable-sanitizers \
    --enable-debug || exit 1
echo "== tests under sanitizers"
run_check build-asan check.out MCTEST_SLOW=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:quarantine_size_mb=16 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
echo "== unit tests under sanitizers with CK_FORK=no"
run_check build-asan check-nofork.out CK_FORK=no TESTS="$(cd build-asan && make -s print-check-tests)" \
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:quarantine_size_mb=16 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

echo "== fuzzing (tests/fuzz/, ${FUZZ_SECONDS:-60} s a target)"
fuzz=$(sh scripts/fuzz.sh build-asan) || status=1
echo "$fuzz"
set -- $(echo "$fuzz" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p')
passed=$((passed + ${1:-0}))
failed=$((failed + ${2:-1}))

# The Debian package: built and checked with lintian; with
# MCRING_PACKAGE_INSTALL=1 (CI) also installed on this machine and tried.
if [ "${MCRING_PACKAGE_INSTALL:-0}" = 1 ]; then
    echo "== Debian package: build, lintian, install, smoke test"
    pkg=$(sh scripts/package.sh --install) || status=1
else
    echo "== Debian package: build, lintian"
    pkg=$(sh scripts/package.sh) || status=1
fi
echo "$pkg" | grep -v '^gcc\|^make' | tail -n 40
set -- $(echo "$pkg" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p')
passed=$((passed + ${1:-0}))
failed=$((failed + ${2:-1}))

echo "$passed passed, $failed failed"
[ "$failed" = 0 ] || status=1
exit $status
