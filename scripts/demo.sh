#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Quick start: installs the dependencies, builds mcring, starts four local
# memcached servers (127.0.0.1:21211-21214) and runs mcring in front of the
# first three on 127.0.0.1:11311 in the foreground, its admin API on
# 127.0.0.1:11312 (the fourth is there to be added while it runs). Ctrl-C
# stops everything.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
sh "$top/scripts/deps.sh"
sh "$top/scripts/build.sh" build
bin="$top/build/mcring"
[ -x "$bin" ] || bin="$top/mcring"
work=$(mktemp -d)
pids=""
cleanup() {
    trap - EXIT INT TERM
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
user=""
[ "$(id -u)" = 0 ] && user="-u nobody"
cat >"$work/mcring.ini" <<INI
[proxy]
listen = 127.0.0.1:11311

[admin]
listen = 127.0.0.1:11312

[backends]
mc1 = 127.0.0.1:21211
mc2 = 127.0.0.1:21212
mc3 = 127.0.0.1:21213 weight=2
INI
for port in 21211 21212 21213 21214; do
    # shellcheck disable=SC2086
    memcached -l 127.0.0.1 -p "$port" -U 0 -m 64 $user &
    pids="$pids $!"
done
"$bin" -t -c "$work/mcring.ini"
"$bin" -c "$work/mcring.ini" --route user:1 user:2 session:42
cat <<MSG

mcring is starting on 127.0.0.1:11311 in front of three memcached.
Try, from another terminal:
    printf 'set greeting 0 0 5\r\nhello\r\nget greeting\r\n' | nc -q1 127.0.0.1 11311
    printf 'stats backends\r\n' | nc -q1 127.0.0.1 11311
    $bin ctl backends
    $bin ctl add mc4 127.0.0.1:21214     # a fourth backend, live
    $bin ctl route greeting
    kill -HUP <mcring pid>   # reread $work/mcring.ini
Ctrl-C (or SIGTERM to this script) stops mcring and the memcached servers.

MSG
# In the background and waited for, so that a signal to this script runs
# the clean-up at once.
"$bin" -c "$work/mcring.ini" -v &
mcring_pid=$!
pids="$pids $mcring_pid"
wait "$mcring_pid"
