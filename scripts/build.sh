#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Builds mcring in DIR (default: build) with extra configure flags.
# Usage: scripts/build.sh [DIR [CONFIGURE-FLAGS...]]
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-build}
[ $# -gt 0 ] && shift
cd "$top"
if [ -f config.status ]; then
    echo "build: the source tree is configured in place; using it" >&2
    dir=.
fi
[ -x configure ] || autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
mkdir -p "$dir"
cd "$dir"
if [ ! -f config.status ] || [ $# -gt 0 ]; then
    "$top/configure" "$@" >configure.out 2>&1 || {
        cat configure.out
        exit 1
    }
fi
make -j"$(nproc)" >make.out 2>&1 || {
    cat make.out
    exit 1
}
echo "build: $top/$dir/mcring"
