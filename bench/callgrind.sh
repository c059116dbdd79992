#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# bench/callgrind.sh: user-space instructions per request of mcring and of
# twemproxy, counted by valgrind's callgrind. Unlike CPU seconds these are
# repeatable on a shared machine (same binary, same inputs: same count), so
# they show what a change to the request path costs or saves. They leave
# out the kernel, where most of a proxy's time goes (see bench/README.md).
#
#   K memcached backends <- proxy under callgrind <- bench/mcload
#
# For each workload the counters are zeroed, mcload runs a fixed number of
# requests, and the counters are dumped: Ir / requests. Every process
# started here is stopped by PID on exit; every wait is bounded.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/callgrind.sh [options]
  --systems LIST     comma list of mcring,twemproxy (both)
  --workloads LIST   comma list of a,b,c,e,w as in bench/run.sh (a,b,c)
  --requests N       requests per workload (20000)
  --backends K       memcached backends (4)
  --mcring-hash H    ketama (the default, as twemproxy's md5) or xxh3
  --mcring-set K=V   one more [proxy] key for mcring (repeatable), e.g.
                     hotkeys=0 to leave out hot-key sampling
  --mcring-replicas N  mcring keeps N copies of each key (1: plain)
  --twem-hash H      twemproxy's hash (md5 with ketama, else fnv1a_64)
  --mcring PATH      mcring binary (./mcring)
  --mcload PATH      load generator (bench/mcload)
  --keep             keep the temporary directory (dumps, logs)
EOF
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/.." && pwd)
systems=mcring,twemproxy
workloads=a,b,c
requests=20000
nbackends=4
mcring_hash=ketama
mcring_extra=()
mcring_replicas=1
twem_hash=
mcring=$top/mcring
mcload=$here/mcload
keep=0

while [ "$#" -gt 0 ]; do
    case "$1" in
    --systems) systems=$2; shift 2 ;;
    --workloads) workloads=$2; shift 2 ;;
    --requests) requests=$2; shift 2 ;;
    --backends) nbackends=$2; shift 2 ;;
    --mcring-hash) mcring_hash=$2; shift 2 ;;
    --mcring-set) mcring_extra+=("${2%%=*} = ${2#*=}"); shift 2 ;;
    --mcring-replicas) mcring_replicas=$2; shift 2 ;;
    --twem-hash) twem_hash=$2; shift 2 ;;
    --mcring) mcring=$2; shift 2 ;;
    --mcload) mcload=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "callgrind.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done
if [ -z "$twem_hash" ]; then
    if [ "$mcring_hash" = ketama ]; then twem_hash=md5; else twem_hash=fnv1a_64; fi
fi
for cmd in valgrind callgrind_control memcached python3 timeout; do
    command -v "$cmd" >/dev/null || { echo "callgrind.sh: needs $cmd" >&2; exit 1; }
done
[ -x "$mcload" ] || { echo "callgrind.sh: no mcload at $mcload" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mcring-cg.XXXXXX")
pids=()
stop_pid() {
    local pid=$1 i
    kill "$pid" 2>/dev/null || return 0
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local pid
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do
        stop_pid "$pid"
    done
    if [ "$keep" = 1 ]; then echo "callgrind.sh: kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}
wait_port() { # wait_port PID PORT: until PORT accepts (60 s at most)
    local i
    for i in $(seq 1 600); do
        kill -0 "$1" 2>/dev/null || return 1
        if python3 -c 'import socket, sys
socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$2" \
            2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

mc_user=()
[ "$(id -u)" != 0 ] || mc_user=(-u root)
ports=()
for i in $(seq 1 "$nbackends"); do
    port=$(free_port)
    memcached "${mc_user[@]}" -p "$port" -l 127.0.0.1 -U 0 -t 1 -m 64 \
        -c 4096 >"$tmp/mc$i.log" 2>&1 &
    pids+=("$!")
    wait_port "$!" "$port" || { echo "callgrind.sh: memcached failed" >&2; exit 1; }
    ports+=("$port")
done

workload_args() {
    case "$1" in
    a) echo "--conns 50 --depth 1 --get-ratio 0.9" ;;
    b) echo "--conns 50 --depth 16 --get-ratio 0.9" ;;
    c) echo "--conns 50 --depth 1 --get-ratio 1 --multiget 10" ;;
    e) echo "--conns 50 --depth 1 --get-ratio 0.9 --value-size 4096" ;;
    w) echo "--conns 50 --depth 1 --get-ratio 0" ;;
    *) echo "callgrind.sh: unknown workload $1" >&2; exit 2 ;;
    esac
}

start_mcring() {
    {
        echo "[proxy]"
        echo "listen = 127.0.0.1:$sut_port"
        echo "threads = 1"
        echo "hash = $mcring_hash"
        for kv in ${mcring_extra[@]+"${mcring_extra[@]}"}; do
            echo "$kv"
        done
        echo "[pool default]"
        echo "replicas = $mcring_replicas"
        for i in $(seq 1 "$nbackends"); do
            echo "mc$i = 127.0.0.1:${ports[$((i - 1))]}"
        done
    } >"$tmp/mcring.ini"
    sut_cmd=("$mcring" -c "$tmp/mcring.ini")
}
start_twemproxy() {
    {
        echo "bench:"
        echo "  listen: 127.0.0.1:$sut_port"
        echo "  hash: $twem_hash"
        echo "  distribution: ketama"
        echo "  auto_eject_hosts: false"
        echo "  preconnect: true"
        echo "  timeout: 5000"
        echo "  servers:"
        for i in $(seq 1 "$nbackends"); do
            echo "    - 127.0.0.1:${ports[$((i - 1))]}:1"
        done
    } >"$tmp/nutcracker.yml"
    sut_cmd=(nutcracker -c "$tmp/nutcracker.yml" -o "$tmp/nutcracker.log"
             -s "$(free_port)" -a 127.0.0.1)
}

# Total Ir of the newest dump of system $1.
dump_ir() {
    local f
    f=$(find "$tmp" -name "cg-$1.out*" -newer "$tmp/zeroed" -type f | sort | tail -1)
    [ -n "$f" ] || return 1
    awk '/^(summary|totals):/ { print $2; exit }' "$f"
}

declare -A ir
IFS=, read -r -a sys_list <<<"$systems"
IFS=, read -r -a wl_list <<<"$workloads"
for s in "${sys_list[@]}"; do
    sut_port=$(free_port)
    "start_$s"
    valgrind --tool=callgrind --callgrind-out-file="$tmp/cg-$s.out" \
        "${sut_cmd[@]}" >"$tmp/$s.out" 2>"$tmp/$s.err" &
    pid=$!
    pids+=("$pid")
    wait_port "$pid" "$sut_port" || { echo "callgrind.sh: $s did not start" >&2; exit 1; }
    timeout 300 "$mcload" --port "$sut_port" --preload --requests 0 >/dev/null
    for w in "${wl_list[@]}"; do
        read -r -a wargs <<<"$(workload_args "$w")"
        if [ "$w" = e ]; then # its gets find 4 KB values, as in bench/run.sh
            timeout 300 "$mcload" --port "$sut_port" --preload --requests 0 \
                --value-size 4096 >/dev/null
        fi
        echo "callgrind.sh: $s, workload $w, $requests requests" >&2
        callgrind_control -z "$pid" >/dev/null
        touch "$tmp/zeroed"
        sleep 1 # the dump's mtime must be newer than the marker
        out=$(timeout 600 "$mcload" --port "$sut_port" --requests "$requests" \
            --timeout 30 "${wargs[@]}")
        callgrind_control -d "$pid" >/dev/null
        errors=$(echo "$out" | tr ' ' '\n' | sed -n 's/^errors=//p')
        [ "$errors" = 0 ] || echo "callgrind.sh: $s $w: $errors errors" >&2
        total=$(dump_ir "$s") || { echo "callgrind.sh: no dump" >&2; exit 1; }
        ir[$s.$w]=$((total / requests))
    done
    stop_pid "$pid"
done

printf '%-10s %-9s %14s\n' workload system "Ir/request"
for w in "${wl_list[@]}"; do
    for s in "${sys_list[@]}"; do
        printf '%-10s %-9s %14s\n' "$w" "$s" "${ir[$s.$w]:-}"
    done
    if [ -n "${ir[mcring.$w]:-}" ] && [ -n "${ir[twemproxy.$w]:-}" ]; then
        awk -v a="${ir[mcring.$w]}" -v b="${ir[twemproxy.$w]}" \
            'BEGIN { printf "%-10s %-9s %14.2f\n", "", "ratio", a / b }'
    fi
done
