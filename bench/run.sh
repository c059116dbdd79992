#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# bench/run.sh: proxy benchmark. Compares mcring, twemproxy (nutcracker),
# memcached's own proxy (mcproxy) and direct memcached on the same backends,
# the same key space and the same CPU pinning, and prints ops/s, latency and
# the proxy's CPU per request.
#
#   K memcached backends (CPU 0) <- proxy under test (CPU 0) <- mcload (CPU 1)
#
# The load generator is bench/mcload, or memtier_benchmark with --loadgen
# memtier (the keys are preloaded with mcload either way).
#
# Every process started here is recorded by PID and stopped on exit; every
# wait and every load run is bounded in time. See bench/README.md ("Proxy").
# Functions called indirectly (traps, "start_$s") look unreachable to it:
# shellcheck disable=SC2317
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/run.sh [options]
  --systems LIST     comma list of mcring,twemproxy,mcproxy,direct (all
                     four; mcproxy is left out, with a message, when no
                     binary is found and it was not asked for), or
                     mcring_writev: mcring with [proxy] io_uring = no,
                     mcring_l1: mcring with [proxy] l1 = 64 MB,
                     relay: bench/relay, a byte pump to the first
                     backend (no parsing, no routing): the least an
                     extra hop costs on this machine
  --workloads LIST   comma list of a,b,c,d,e,h,w (a,b,c):
                       a  90/10 get/set, 100-byte values, 50 conns, depth 1
                       b  as a, pipelined 16 deep per connection
                       c  10-key multi-gets (gets only), 50 conns, depth 1
                       d  as a, one connection: latency (p50, p99)
                       e  as a, 4 KB values (--large-value-size)
                       h  99% gets, half the requests for 4 hot keys
                          (what the l1 cache takes off the backends;
                          mcload only)
                       w  sets only, 50 conns, depth 1 (what replicas cost)
  --duration S       seconds per run (10)
  --rounds N         repeat the whole comparison N times, systems
                     interleaved; report medians and each round's ratio (1)
  --backends K       memcached backends (4)
  --threads N        mcring and mcproxy worker threads (1)
  --mcring-hash H    mcring's ring: ketama (as twemproxy, the default) or
                     xxh3 (mcring's own default)
  --mcring-replicas N  mcring keeps N copies of each key (1: plain)
  --twem-hash H      twemproxy's key hash (ketama continuum either way):
                     md5 with --mcring-hash ketama (the same placement as
                     mcring), else fnv1a_64 (twemproxy's default)
  --conns N          client connections (50)
  --keys N           key space (10000)
  --value-size N     value bytes (100)
  --large-value-size N  value bytes of workload e (4096)
  --mcring PATH      mcring binary (./mcring in the source tree)
  --mcproxy PATH     memcached built with --enable-proxy, run as mcproxy
                     (DIR/bin/mcproxy, DIR being $MCRING_BENCH_DIR or
                     ~/.cache/mcring-bench, if it is there)
  --mcload PATH      load generator (bench/mcload, built if missing); it
                     also preloads the keys for memtier
  --loadgen NAME     mcload (the default) or memtier: memtier_benchmark
                     with the same workloads, read from its JSON output
  --memtier PATH     memtier_benchmark (DIR/bin/memtier_benchmark as for
                     --mcproxy if it is there, else from PATH)
  --proxy-cpus LIST  taskset CPU list for proxies and memcached (0)
  --client-cpus LIST taskset CPU list for mcload (1)
  --no-pin           do not use taskset
  --keep             keep the temporary directory (configs, logs)
  -v, --verbose      also print each raw mcload result line
EOF
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/.." && pwd)

systems=mcring,twemproxy,mcproxy,direct
systems_given=0
workloads=a,b,c
duration=10
rounds=1
nbackends=4
threads=1
mcring_hash=ketama
twem_hash=
conns=50
keys=10000
value_size=100
large_value_size=4096
mcring=$top/mcring
bench_dir=${MCRING_BENCH_DIR:-${HOME:-/root}/.cache/mcring-bench}
mcproxy=$bench_dir/bin/mcproxy
mcproxy_given=0
mcload=$here/mcload
relay=$here/relay
loadgen=mcload
memtier=
mcring_replicas=1
mcring_extra=
proxy_cpus=0
client_cpus=1
pin=1
keep=0
verbose=0

need_arg() {
    if [ "$#" -lt 2 ]; then
        echo "run.sh: $1 needs an argument" >&2
        exit 2
    fi
}

while [ "$#" -gt 0 ]; do
    case "$1" in
    --systems) need_arg "$@"; systems=$2; systems_given=1; shift 2 ;;
    --workloads) need_arg "$@"; workloads=$2; shift 2 ;;
    --duration) need_arg "$@"; duration=$2; shift 2 ;;
    --rounds) need_arg "$@"; rounds=$2; shift 2 ;;
    --backends) need_arg "$@"; nbackends=$2; shift 2 ;;
    --threads) need_arg "$@"; threads=$2; shift 2 ;;
    --mcring-hash) need_arg "$@"; mcring_hash=$2; shift 2 ;;
    --mcring-replicas) need_arg "$@"; mcring_replicas=$2; shift 2 ;;
    --twem-hash) need_arg "$@"; twem_hash=$2; shift 2 ;;
    --conns) need_arg "$@"; conns=$2; shift 2 ;;
    --keys) need_arg "$@"; keys=$2; shift 2 ;;
    --value-size) need_arg "$@"; value_size=$2; shift 2 ;;
    --large-value-size) need_arg "$@"; large_value_size=$2; shift 2 ;;
    --mcring) need_arg "$@"; mcring=$2; shift 2 ;;
    --mcproxy) need_arg "$@"; mcproxy=$2; mcproxy_given=1; shift 2 ;;
    --mcload) need_arg "$@"; mcload=$2; shift 2 ;;
    --loadgen) need_arg "$@"; loadgen=$2; shift 2 ;;
    --memtier) need_arg "$@"; memtier=$2; shift 2 ;;
    --proxy-cpus) need_arg "$@"; proxy_cpus=$2; shift 2 ;;
    --client-cpus) need_arg "$@"; client_cpus=$2; shift 2 ;;
    --no-pin) pin=0; shift ;;
    --keep) keep=1; shift ;;
    -v|--verbose) verbose=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done

for n in "$duration" "$rounds" "$nbackends" "$threads" "$conns" "$keys" \
    "$value_size" "$large_value_size" "$mcring_replicas"; do
    case "$n" in
    ''|*[!0-9]*|0) echo "run.sh: want a positive integer, got '$n'" >&2
        exit 2 ;;
    esac
done
if [ -z "$twem_hash" ]; then
    if [ "$mcring_hash" = ketama ]; then twem_hash=md5; else twem_hash=fnv1a_64; fi
fi

IFS=, read -r -a sys_list <<<"$systems"
IFS=, read -r -a wl_list <<<"$workloads"
for s in "${sys_list[@]}"; do
    case "$s" in
    mcring|mcring_writev|mcring_l1|twemproxy|mcproxy|direct|relay) ;;
    *) echo "run.sh: unknown system '$s'" >&2; exit 2 ;;
    esac
done
for w in "${wl_list[@]}"; do
    case "$w" in
    a|b|c|d|e|h|w) ;;
    *) echo "run.sh: unknown workload '$w'" >&2; exit 2 ;;
    esac
done

case "$loadgen" in
mcload) ;;
memtier)
    if [ -z "$memtier" ]; then
        if [ -x "$bench_dir/bin/memtier_benchmark" ]; then
            memtier=$bench_dir/bin/memtier_benchmark
        else
            memtier=$(command -v memtier_benchmark || echo memtier_benchmark)
        fi
    fi
    if ! timeout 10 "$memtier" --version >/dev/null 2>&1; then
        echo "run.sh: --loadgen memtier: no memtier_benchmark that runs at" \
            "'$memtier'; give one with --memtier PATH" >&2
        exit 2
    fi
    if [ "$keys" -lt 2 ]; then
        # Its keys start at 1: key:1 .. key:(K-1) of mcload's key:0 ..
        echo "run.sh: --loadgen memtier wants --keys 2 or more" >&2
        exit 2
    fi ;;
*) echo "run.sh: --loadgen is mcload or memtier, not '$loadgen'" >&2
    exit 2 ;;
esac

# mcproxy needs a memcached with the proxy compiled in (Debian's has not).
has_system() { # has_system NAME: NAME is in the list of systems
    local s
    for s in "${sys_list[@]}"; do
        [ "$s" = "$1" ] && return 0
    done
    return 1
}
if has_system mcproxy; then
    why=
    if [ ! -x "$mcproxy" ]; then
        why="no mcproxy binary at $mcproxy"
    elif ! timeout 10 "$mcproxy" -h 2>/dev/null | grep -q proxy_config; then
        why="$mcproxy has no proxy (not built with --enable-proxy)"
    fi
    if [ -n "$why" ]; then
        if [ "$systems_given" = 1 ] || [ "$mcproxy_given" = 1 ]; then
            echo "run.sh: $why; give one with --mcproxy PATH" >&2
            exit 2
        fi
        echo "run.sh: $why: skipping mcproxy (--mcproxy PATH to include" \
            "it)" >&2
        kept=()
        for s in "${sys_list[@]}"; do
            [ "$s" = mcproxy ] || kept+=("$s")
        done
        sys_list=("${kept[@]}")
    fi
fi

# ---- process bookkeeping -------------------------------------------------

pids=()
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mcring-bench.XXXXXX")

stop_pid() {
    local pid=$1 i
    kill "$pid" 2>/dev/null || return 0
    for i in $(seq 1 40); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
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
    if [ "$keep" = 1 ]; then
        echo "run.sh: kept $tmp" >&2
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

forget_pid() {
    local pid=$1 kept=() p
    for p in "${pids[@]}"; do
        [ "$p" = "$pid" ] || kept+=("$p")
    done
    pids=("${kept[@]}")
}

# Prefix for processes on the proxy/server CPUs and the client CPUs.
if [ "$pin" = 1 ]; then
    if ! command -v taskset >/dev/null; then
        echo "run.sh: taskset not found, running unpinned" >&2
        pin=0
    elif [ "$(nproc)" -lt 2 ]; then
        echo "run.sh: fewer than 2 CPUs, running unpinned" >&2
        pin=0
    fi
fi
if [ "$pin" = 1 ]; then
    on_server=(taskset -c "$proxy_cpus")
    on_client=(taskset -c "$client_cpus")
else
    on_server=()
    on_client=()
fi

used_ports=" "
free_port() {
    local p
    while :; do
        p=$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
        case "$used_ports" in
        *" $p "*) continue ;;
        esac
        used_ports="$used_ports$p "
        echo "$p"
        return
    done
}

# wait_port PID PORT: until PORT accepts, PID exits, or 10 s pass.
wait_port() {
    local pid=$1 port=$2 i
    for i in $(seq 1 200); do
        if ! kill -0 "$pid" 2>/dev/null; then
            return 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    return 1
}

# "utime stime" of PID so far (all threads), in clock ticks.
clk_tck=$(getconf CLK_TCK)
cpu_ticks() {
    local rest
    rest=$(sed 's/^.*) //' "/proc/$1/stat")
    # After "pid (comm) ", field 14 (utime) is word 12, field 15 word 13.
    echo "$rest" | awk '{ print $12, $13 }'
}

# "utime stime" of every memcached backend so far, summed.
backends_ticks() {
    local pid u s tu=0 ts=0
    for pid in "${backend_pids[@]}"; do
        read -r u s <<<"$(cpu_ticks "$pid")"
        tu=$((tu + u))
        ts=$((ts + s))
    done
    echo "$tu $ts"
}

# Read and write system calls of PID so far (/proc/PID/io: syscr + syscw).
io_calls() {
    awk '/^sysc[rw]:/ { n += $2 } END { print n + 0 }' "/proc/$1/io" \
        2>/dev/null || echo 0
}

# Context switches of PID so far, voluntary and not, summed over threads.
ctx_switches() {
    cat /proc/"$1"/task/*/status 2>/dev/null |
        awk '/ctxt_switches/ { n += $2 } END { print n + 0 }'
}

field() { # field LINE NAME
    local kv
    for kv in $1; do
        if [ "${kv%%=*}" = "$2" ]; then
            echo "${kv#*=}"
            return
        fi
    done
    echo "-"
}

# ---- load generator --------------------------------------------------------

if [ ! -x "$mcload" ] || { [ "$mcload" = "$here/mcload" ] &&
    [ "$here/mcload.c" -nt "$mcload" ]; }; then
    echo "run.sh: building $mcload" >&2
    # shellcheck disable=SC2046
    gcc -std=gnu11 -O2 -Wall -Wextra -o "$mcload" "$here/mcload.c" \
        $(pkg-config --cflags --libs libevent) -lm -pthread
fi
if has_system relay && { [ ! -x "$relay" ] || { [ "$relay" = "$here/relay" ] &&
    [ "$here/relay.c" -nt "$relay" ]; }; }; then
    echo "run.sh: building $relay" >&2
    gcc -std=gnu11 -O2 -Wall -Wextra -o "$relay" "$here/relay.c" -pthread
fi

# ---- backends --------------------------------------------------------------

mc_user=()
if [ "$(id -u)" = 0 ]; then
    mc_user=(-u root)
fi

backend_ports=()
backend_pids=()
for i in $(seq 1 "$nbackends"); do
    port=$(free_port)
    "${on_server[@]}" memcached "${mc_user[@]}" -l 127.0.0.1 -p "$port" \
        -U 0 -t 1 -m 64 -c 4096 >"$tmp/memcached$i.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    if ! wait_port "$pid" "$port"; then
        echo "run.sh: memcached $i did not start, see $tmp" >&2
        keep=1
        exit 1
    fi
    backend_ports+=("$port")
    backend_pids+=("$pid")
done

# ---- systems under test ----------------------------------------------------

# start_SYSTEM sets sut_pid and sut_port or returns 1.
sut_pid=
sut_port=

start_mcring() {
    local conf=$tmp/mcring.ini i
    if [ ! -x "$mcring" ]; then
        echo "run.sh: no mcring binary at $mcring" >&2
        return 1
    fi
    sut_port=$(free_port)
    {
        echo "[proxy]"
        echo "listen = 127.0.0.1:$sut_port"
        echo "threads = $threads"
        echo "hash = $mcring_hash"
        [ -z "$mcring_extra" ] || echo "$mcring_extra"
        echo "[pool default]"
        echo "replicas = $mcring_replicas"
        for i in $(seq 1 "$nbackends"); do
            echo "mc$i = 127.0.0.1:${backend_ports[$((i - 1))]}"
        done
    } >"$conf"
    if ! timeout 10 "$mcring" -t -c "$conf" >"$tmp/mcring-t.log" 2>&1; then
        echo "run.sh: mcring -t rejects $conf:" >&2
        cat "$tmp/mcring-t.log" >&2
        return 1
    fi
    "${on_server[@]}" "$mcring" -c "$conf" 2>"$tmp/mcring.log" >/dev/null &
    sut_pid=$!
    pids+=("$sut_pid")
}

# mcring writing with writev, one system call per socket and turn.
start_mcring_writev() {
    mcring_extra="io_uring = no"
    start_mcring
    mcring_extra=
}

# mcring with its hot-key cache.
start_mcring_l1() {
    mcring_extra="l1 = 67108864"
    start_mcring
    mcring_extra=
}

start_twemproxy() {
    local conf=$tmp/nutcracker.yml stats_port i
    sut_port=$(free_port)
    stats_port=$(free_port)
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
            echo "    - 127.0.0.1:${backend_ports[$((i - 1))]}:1"
        done
    } >"$conf"
    if ! timeout 10 nutcracker -t -c "$conf" >"$tmp/nutcracker-t.log" 2>&1
    then
        echo "run.sh: nutcracker -t rejects $conf:" >&2
        cat "$tmp/nutcracker-t.log" >&2
        return 1
    fi
    "${on_server[@]}" nutcracker -c "$conf" -o "$tmp/nutcracker.log" \
        -s "$stats_port" -a 127.0.0.1 -p "$tmp/nutcracker.pid" \
        >/dev/null 2>&1 &
    sut_pid=$!
    pids+=("$sut_pid")
}

# mcproxy: memcached's own proxy with a routelib config, one consistent-hash
# pool (its default: XXH3 and jump hash, no weights) and for each backend a
# pool of the others to fail over to, so that no other key moves.
lua_backends() { # lua_backends SKIP: "127.0.0.1:P", ... except backend SKIP
    local i sep=
    for i in $(seq 1 "$nbackends"); do
        [ "$i" = "$1" ] && continue
        printf '%s"127.0.0.1:%s"' "$sep" "${backend_ports[$((i - 1))]}"
        sep=", "
    done
}

start_mcproxy() {
    local conf=$tmp/mcproxy.lua i children='"main"'
    sut_port=$(free_port)
    {
        echo "pools{"
        echo "    main = { backends = { $(lua_backends 0) } },"
        if [ "$nbackends" -gt 1 ]; then
            for i in $(seq 1 "$nbackends"); do
                echo "    not_b$i = { options = { seed = \"not_b$i\" }," \
                    "backends = { $(lua_backends "$i") } },"
                children="$children, \"not_b$i\""
            done
        fi
        echo "}"
        echo "routes{ default = route_failover{ children = { $children } } }"
    } >"$conf"
    "${on_server[@]}" "$mcproxy" "${mc_user[@]}" -l 127.0.0.1 \
        -p "$sut_port" -U 0 -t "$threads" -c 4096 \
        -o "proxy_config=routelib,proxy_arg=$conf" >"$tmp/mcproxy.log" 2>&1 &
    sut_pid=$!
    pids+=("$sut_pid")
}

# relay: bench/relay pumps each client's bytes to the first backend and
# back (two blocking threads per client), the cheapest possible hop.
start_relay() {
    if [ ! -x "$relay" ]; then
        echo "run.sh: no relay binary at $relay (make bench/relay)" >&2
        return 1
    fi
    sut_port=$(free_port)
    "${on_server[@]}" "$relay" "$sut_port" "${backend_ports[0]}" \
        2>"$tmp/relay.log" &
    sut_pid=$!
    pids+=("$sut_pid")
}

# Direct: the load goes to the first backend; "proxy CPU" is its CPU.
start_direct() {
    sut_port=${backend_ports[0]}
    sut_pid=${backend_pids[0]}
}

# ---- runs ------------------------------------------------------------------

# run_mcload OUT ERR ARGS...: mcload on the client CPUs, bounded in time, in
# the background so that a signal to this script interrupts the wait and the
# EXIT trap stops it (timeout passes the signal on to mcload).
run_mcload() {
    local out=$1 err=$2 pid rc=0
    shift 2
    timeout "$bound" "${on_client[@]}" "$mcload" "${common[@]}" "$@" \
        >"$out" 2>"$err" &
    pid=$!
    pids+=("$pid")
    wait "$pid" || rc=$?
    forget_pid "$pid"
    return "$rc"
}

# memtier_benchmark's options for a workload, as workload_args for mcload.
# --ratio is set:get; a multi-get asks as many keys as the get side of the
# ratio (at most --multi-key-get), hence 0:10.
memtier_args() {
    case "$1" in
    a|e) echo "--ratio=1:9 --pipeline=1" ;;
    d) echo "--ratio=1:9 --pipeline=1 -c 1" ;;
    b) echo "--ratio=1:9 --pipeline=16" ;;
    c) echo "--ratio=0:10 --multi-key-get=10 --pipeline=1" ;;
    w) echo "--ratio=1:0 --pipeline=1" ;;
    *) return 1 ;;
    esac
}

# Seconds of user + system CPU in bash's "times" output (its second line:
# this shell's children that have been waited for).
children_cpu_s() {
    awk 'NR == 2 {
        n = 0
        for (i = 1; i <= 2; i++) {
            split($i, t, "m"); sub("s", "", t[2]); n += t[1] * 60 + t[2]
        }
        printf "%.2f", n }' "$1"
}

# run_memtier OUT ERR WORKLOAD VSIZE: memtier_benchmark on the client CPUs,
# bounded in time and in the background as run_mcload; OUT gets a line of
# mcload's form from its JSON file. Its CPU is what this shell's waited-for
# children used during the run ("times" before and after): no other child
# ends in between.
run_memtier() {
    local out=$1 err=$2 w=$3 vsize=$4 pid rc=0 json=$tmp/memtier.json
    local -a margs
    read -r -a margs <<<"$(memtier_args "$w")"
    rm -f "$json"
    times >"$tmp/times.before"
    timeout "$bound" "${on_client[@]}" "$memtier" -s 127.0.0.1 \
        -p "$sut_port" --protocol=memcache_text -t 1 -c "$conns" \
        --test-time="$duration" --key-prefix=key: --key-minimum=1 \
        --key-maximum="$((keys - 1))" --key-pattern=R:R -d "$vsize" \
        --distinct-client-seed --hide-histogram --json-out-file="$json" \
        "${margs[@]}" >"$tmp/memtier-$w.out" 2>"$err" &
    pid=$!
    pids+=("$pid")
    wait "$pid" || rc=$?
    forget_pid "$pid"
    times >"$tmp/times.after"
    if [ "$rc" != 0 ] || [ ! -s "$json" ]; then
        : >"$out"
        return "$((rc == 0 ? 1 : rc))"
    fi
    python3 - "$json" "$(children_cpu_s "$tmp/times.before")" \
        "$(children_cpu_s "$tmp/times.after")" >"$out" 2>>"$err" <<'EOF'
import json
import sys

d = json.load(open(sys.argv[1]))
a = d["ALL STATS"]
t = a["Totals"]
p = t.get("Percentile Latencies", {})
elapsed = a["Runtime"]["Total duration"] / 1000.0
print("requests=%d ops_per_sec=%.0f p50_us=%.1f p99_us=%.1f errors=%d "
      "misses=%d gets=%d sets=%d elapsed_s=%.3f client_cpu_s=%.2f" % (
          t["Count"], t["Ops/sec"], 1000 * p.get("p50.00", 0),
          1000 * p.get("p99.00", 0), t.get("Connection Errors", 0),
          round(t.get("Misses/sec", 0) * elapsed), a["Gets"]["Count"],
          a["Sets"]["Count"], elapsed,
          float(sys.argv[3]) - float(sys.argv[2])))
EOF
}

workload_args() {
    case "$1" in
    a) echo "--depth 1 --get-ratio 0.9 --multiget 1" ;;
    d) echo "--depth 1 --get-ratio 0.9 --multiget 1 --conns 1" ;;
    b) echo "--depth 16 --get-ratio 0.9 --multiget 1" ;;
    c) echo "--depth 1 --get-ratio 1 --multiget 10" ;;
    e) echo "--depth 1 --get-ratio 0.9 --multiget 1" ;;
    h) echo "--depth 1 --get-ratio 0.99 --multiget 1 --hot-ratio 0.5" \
        "--hot-keys 4" ;;
    w) echo "--depth 1 --get-ratio 0 --multiget 1" ;;
    *) return 1 ;;
    esac
}

# Value size of a workload: the keys are preloaded with it before it runs.
workload_vsize() {
    case "$1" in
    e) echo "$large_value_size" ;;
    *) echo "$value_size" ;;
    esac
}

workload_name() {
    case "$1" in
    a) echo "a:get/set-90/10" ;;
    b) echo "b:pipelined-16" ;;
    c) echo "c:multiget-10" ;;
    d) echo "d:one-conn" ;;
    e) echo "e:${large_value_size}B-values" ;;
    h) echo "h:hot-keys-50%" ;;
    w) echo "w:sets-only" ;;
    esac
}

common=(--host 127.0.0.1 --conns "$conns" --keys "$keys"
        --value-size "$value_size" --timeout 5)
bound=$((duration + 30))

status=0
declare -A res_ops res_p50 res_p99 res_cpu res_err res_miss res_cli res_usr \
    res_ctx res_io res_be all_cpu all_ops all_be

echo "run.sh: $nbackends memcached backends, $conns conns, ${duration}s per" \
    "run, load $loadgen, mcring threads=$threads hash=$mcring_hash, twemproxy" \
    "hash=$twem_hash, pinning:" \
    "$([ "$pin" = 1 ] && echo "servers cpu $proxy_cpus, client cpu" \
        "$client_cpus" || echo off)" >&2

# Each workload runs on every system back to back (each system started
# afresh for it), so that the ratios of one workload come from runs
# minutes apart at most: this shared machine's speed drifts.
for round in $(seq 1 "$rounds"); do
[ "$rounds" = 1 ] || echo "run.sh: round $round of $rounds" >&2
for cur_w in "${wl_list[@]}"; do
for s in "${sys_list[@]}"; do
    sut_pid=
    if ! "start_$s"; then
        echo "run.sh: skipping $s" >&2
        status=1
        continue
    fi
    if ! wait_port "$sut_pid" "$sut_port"; then
        echo "run.sh: $s did not start listening, skipping (logs in $tmp)" >&2
        keep=1
        status=1
        [ "$s" = direct ] || { stop_pid "$sut_pid"; forget_pid "$sut_pid"; }
        continue
    fi
    loaded_vsize=
    # One pass, a loop only so that break and continue end this system's
    # run of the workload:
    # shellcheck disable=SC2066
    for w in "$cur_w"; do
        read -r -a wargs <<<"$(workload_args "$w")"
        vsize=$(workload_vsize "$w")
        wargs+=(--value-size "$vsize")
        # mcload checks every value's length: keys hold this size first.
        if [ "$vsize" != "$loaded_vsize" ]; then
            if ! run_mcload "$tmp/preload-$s.out" "$tmp/preload-$s.err" \
                --port "$sut_port" --preload --requests 0 \
                --value-size "$vsize"; then
                echo "run.sh: preload through $s failed:" >&2
                cat "$tmp/preload-$s.err" >&2
                status=1
                break
            fi
            loaded_vsize=$vsize
        fi
        echo "run.sh: $s, workload $w ($(workload_name "$w"))" >&2
        before=$(cpu_ticks "$sut_pid")
        be_before=$(backends_ticks)
        ctx_before=$(ctx_switches "$sut_pid")
        io_before=$(io_calls "$sut_pid")
        rc=0
        if [ "$loadgen" = memtier ]; then
            run_memtier "$tmp/mcload-$s-$w.out" "$tmp/mcload-$s-$w.err" \
                "$w" "$vsize" || rc=$?
        else
            run_mcload "$tmp/mcload-$s-$w.out" "$tmp/mcload-$s-$w.err" \
                --port "$sut_port" --duration "$duration" "${wargs[@]}" ||
                rc=$?
        fi
        out=$(cat "$tmp/mcload-$s-$w.out")
        after=$(cpu_ticks "$sut_pid" 2>/dev/null || echo "$before")
        be_after=$(backends_ticks)
        ctx_after=$(ctx_switches "$sut_pid")
        io_after=$(io_calls "$sut_pid")
        if [ "$verbose" = 1 ]; then
            echo "$s $w: $out" >&2
        fi
        if [ "$rc" != 0 ] || [ -z "$out" ]; then
            echo "run.sh: $loadgen against $s failed (rc $rc):" >&2
            # memtier's progress lines end in CR, not LF.
            tr '\r' '\n' <"$tmp/mcload-$s-$w.err" | grep -v '^\[RUN' |
                head -5 >&2 || true
            status=1
            continue
        fi
        if [ "$loadgen" = mcload ] && [ -s "$tmp/mcload-$s-$w.err" ]; then
            head -3 "$tmp/mcload-$s-$w.err" >&2
        fi
        reqs=$(field "$out" requests)
        res_ops[$s.$w]=$(field "$out" ops_per_sec)
        res_p50[$s.$w]=$(field "$out" p50_us)
        res_p99[$s.$w]=$(field "$out" p99_us)
        res_err[$s.$w]=$(field "$out" errors)
        res_miss[$s.$w]=$(field "$out" misses)
        read -r u1 s1 <<<"$before"
        read -r u2 s2 <<<"$after"
        res_cpu[$s.$w]=$(awk -v a="$((u2 + s2))" -v b="$((u1 + s1))" \
            -v t="$clk_tck" -v n="$reqs" 'BEGIN {
                if (n > 0) printf "%.2f", (a - b) / t / n * 1e6;
                else print "-" }')
        read -r u1 s1 <<<"$be_before"
        read -r u2 s2 <<<"$be_after"
        res_be[$s.$w]=$(awk -v a="$((u2 + s2))" -v b="$((u1 + s1))" \
            -v t="$clk_tck" -v n="$reqs" 'BEGIN {
                if (n > 0) printf "%.2f", (a - b) / t / n * 1e6;
                else print "-" }')
        read -r u1 s1 <<<"$before"
        read -r u2 s2 <<<"$after"
        res_usr[$s.$w]=$(awk -v u="$((u2 - u1))" -v a="$((u2 + s2 - u1 - s1))" \
            'BEGIN { if (a > 0) printf "%.0f", 100 * u / a; else print "-" }')
        res_ctx[$s.$w]=$(awk -v c="$((ctx_after - ctx_before))" -v n="$reqs" \
            'BEGIN { if (n > 0) printf "%.2f", c / n; else print "-" }')
        res_io[$s.$w]=$(awk -v c="$((io_after - io_before))" -v n="$reqs" \
            'BEGIN { if (n > 0) printf "%.2f", c / n; else print "-" }')
        res_cli[$s.$w]=$(awk -v c="$(field "$out" client_cpu_s)" \
            -v e="$(field "$out" elapsed_s)" 'BEGIN {
                if (e > 0) printf "%.0f", 100 * c / e; else print "-" }')
        all_cpu[$s.$w]="${all_cpu[$s.$w]:-} ${res_cpu[$s.$w]}"
        all_be[$s.$w]="${all_be[$s.$w]:-} ${res_be[$s.$w]}"
        all_ops[$s.$w]="${all_ops[$s.$w]:-} ${res_ops[$s.$w]}"
        all_cpu[$round.$s.$w]=${res_cpu[$s.$w]}
        all_ops[$round.$s.$w]=${res_ops[$s.$w]}
    done
    if [ "$s" != direct ]; then
        if ! kill -0 "$sut_pid" 2>/dev/null; then
            echo "run.sh: $s exited during the runs (logs in $tmp)" >&2
            keep=1
            status=1
        fi
        stop_pid "$sut_pid"
        forget_pid "$sut_pid"
    fi
done
done
done

# ---- report ----------------------------------------------------------------

median() { # median "LIST" -> the median of the numbers in LIST, or "-"
    echo "$1" | tr ' ' '\n' | grep -E '^[0-9.]+$' | sort -g |
        awk '{ v[NR] = $1 } END {
            if (NR == 0) print "-";
            else if (NR % 2) print v[(NR + 1) / 2];
            else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

if [ "$rounds" -gt 1 ]; then
    # Medians over the rounds; the other columns are the last round's.
    for k in "${!all_cpu[@]}"; do
        case "$k" in
        [0-9]*) ;;
        *) res_cpu[$k]=$(median "${all_cpu[$k]}")
           res_be[$k]=$(median "${all_be[$k]}")
           res_ops[$k]=$(printf '%.0f' "$(median "${all_ops[$k]}")") ;;
        esac
    done
fi

echo
[ "$rounds" = 1 ] ||
    echo "(ops/s, cpu_s/Mreq and be_cpu: medians of $rounds rounds)"
printf '%-17s %-10s %9s %8s %8s %11s %5s %6s %6s %7s %7s %5s %7s\n' \
    workload system ops/s p50_us p99_us cpu_s/Mreq usr% cs/req io/req \
    errors misses cli% be_cpu
for w in "${wl_list[@]}"; do
    for s in "${sys_list[@]}"; do
        k=$s.$w
        [ -n "${res_ops[$k]:-}" ] || continue
        printf '%-17s %-10s %9s %8s %8s %11s %5s %6s %6s %7s %7s %5s %7s\n' \
            "$(workload_name "$w")" "$s" "${res_ops[$k]}" "${res_p50[$k]}" \
            "${res_p99[$k]}" "${res_cpu[$k]}" "${res_usr[$k]}" \
            "${res_ctx[$k]}" "${res_io[$k]}" "${res_err[$k]}" \
            "${res_miss[$k]}" "${res_cli[$k]}" "${res_be[$k]}"
    done
done
echo "(cpu_s/Mreq: CPU seconds of the proxy process per million requests;"
echo " for 'direct' it is the memcached server's. usr%: its user-space share;"
echo " cs/req: its context switches per request; io/req: its read(v) and"
echo " write(v) calls per request (/proc/PID/io: neither sendmsg/recvmsg, as"
echo " memcached writes, nor io_uring's operations, as mcring reads and"
echo " writes by default, count). cli%: $loadgen's own CPU. be_cpu: the"
echo " memcached backends' CPU seconds per million requests, all together.)"

ratio() { # ratio A B -> A/B or "-"
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a != "" && b != "" && a != "-" && b != "-" && b > 0)
            printf "%.2f", a / b;
        else print "-" }'
}

# The ratio columns whose two systems ran: KIND:A:B:LABEL, KIND cpu or ops.
ratio_specs=()
for spec in cpu:mcring:twemproxy:"cpu/req mcring/twem" \
    cpu:mcring:mcproxy:"cpu/req mcring/mcproxy" \
    cpu:mcring:direct:"cpu/req mcring/direct" \
    cpu:mcring:mcring_writev:"cpu/req uring/writev" \
    ops:mcring:direct:"rate mcring/direct" \
    ops:twemproxy:direct:"rate twem/direct" \
    ops:mcproxy:direct:"rate mcproxy/direct"; do
    IFS=: read -r kind a b _ <<<"$spec"
    if has_system "$a" && has_system "$b"; then
        ratio_specs+=("$spec")
    fi
done

# spec_ratio SPEC WORKLOAD [ROUND] -> A/B of that kind: the reported figure,
# or that round's.
spec_ratio() {
    local kind a b r=${3:+$3.}
    IFS=: read -r kind a b _ <<<"$1"
    if [ -n "$r" ] && [ "$kind" = cpu ]; then
        ratio "${all_cpu[$r$a.$2]:-}" "${all_cpu[$r$b.$2]:-}"
    elif [ -n "$r" ]; then
        ratio "${all_ops[$r$a.$2]:-}" "${all_ops[$r$b.$2]:-}"
    elif [ "$kind" = cpu ]; then
        ratio "${res_cpu[$a.$2]:-}" "${res_cpu[$b.$2]:-}"
    else
        ratio "${res_ops[$a.$2]:-}" "${res_ops[$b.$2]:-}"
    fi
}

if [ "${#ratio_specs[@]}" -gt 0 ]; then
    echo
    printf '%-17s' workload
    for spec in "${ratio_specs[@]}"; do
        printf ' %24s' "${spec##*:}"
    done
    echo
    for w in "${wl_list[@]}"; do
        printf '%-17s' "$(workload_name "$w")"
        for spec in "${ratio_specs[@]}"; do
            printf ' %24s' "$(spec_ratio "$spec" "$w")"
        done
        echo
    done
fi
if [ "$rounds" -gt 1 ]; then
    for spec in "${ratio_specs[@]}"; do
        case "$spec" in
        cpu:*) ;;
        *) continue ;;
        esac
        echo
        echo "${spec##*:} in each round, and their median:"
        for w in "${wl_list[@]}"; do
            list=
            for round in $(seq 1 "$rounds"); do
                list="$list $(spec_ratio "$spec" "$w" "$round")"
            done
            printf '%-17s %s   median %s\n' "$(workload_name "$w")" "$list" \
                "$(median "$list")"
        done
    done
fi
exit "$status"
