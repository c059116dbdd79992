#!/bin/sh
# Installs the dependencies and runs the whole test suite twice: a build
# with warnings as errors, then a build with AddressSanitizer and
# UndefinedBehaviorSanitizer (whose Check suites run once more with
# CK_FORK=no, so that leaks inside tests are seen). Exits non-zero on any
# failure. Prints "N passed, N failed" last.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
sh scripts/deps.sh || exit 1
passed=0
failed=0
status=0

# run_check DIR VAR=VALUE...: runs make check in DIR with those variables
# (make exports them to the tests), and adds up the results.
run_check() {
    dir=$1
    shift
    log="$dir/check.out"
    if (cd "$dir" && make -j2 check "$@" >check.out 2>&1); then
        :
    else
        status=1
        cat "$dir/test-suite.log" 2>/dev/null | tail -n 200
    fi
    grep -E '^(PASS|FAIL|ERROR|XPASS|SKIP|XFAIL):' "$log" || true
    p=$(grep -c '^PASS:' "$log" || true)
    f=$(grep -cE '^(FAIL|ERROR|XPASS):' "$log" || true)
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$p" = 0 ]; then
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
run_check build

echo "== build with ASan and UBSan"
sh scripts/build.sh build-asan --enable-werror --enable-sanitizers \
    --enable-debug || exit 1
echo "== tests under sanitizers"
run_check build-asan ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:quarantine_size_mb=16 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
echo "== unit tests under sanitizers with CK_FORK=no"
run_check build-asan CK_FORK=no TESTS="tests/check_config tests/check_ring tests/check_proto tests/check_recovery tests/check_mem" \
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:quarantine_size_mb=16 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

echo "$passed passed, $failed failed"
[ "$failed" = 0 ] || status=1
exit $status
