#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""reload_latency: time from SIGHUP to the new topology in every worker.

Starts mcring (-v, THREADS workers) with N backends on closed loopback
ports (reachability does not matter here), then sends SIGHUP ROUNDS times,
each time with one backend's weight changed, and reads mcring's log:

  "topology G applied: ..., built in X ms"       parse, check, ring, publish
  "worker W: topology G in use, U us after it was published"

It prints, per round, the build time and the slowest worker's adoption
delay, and the medians.  Usage:

  bench/reload_latency.py MCRING [N [THREADS [ROUNDS]]]
"""

import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(port, n, weight, threads):
    lines = ["[proxy]", "listen = 127.0.0.1:%d" % port,
             "threads = %d" % threads, "", "[backends]"]
    for i in range(n):
        w = " weight=%s" % weight if i == 0 else ""
        lines.append("mc%d = 127.0.0.1:%d%s" % (i + 1, 1 + i, w))
    return "\n".join(lines) + "\n"


def main():
    mcring = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 20
    tmp = tempfile.mkdtemp(prefix="reload-bench-")
    cfg = os.path.join(tmp, "mcring.ini")
    logp = os.path.join(tmp, "mcring.log")
    port = free_port()
    with open(cfg, "w") as f:
        f.write(config(port, n, 1, threads))
    log = open(logp, "w")
    p = subprocess.Popen([mcring, "-v", "-c", cfg], stdout=log,
                         stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while "listening on" not in open(logp).read():
            if time.monotonic() > deadline or p.poll() is not None:
                sys.exit("mcring did not start:\n" + open(logp).read())
            time.sleep(0.05)
        builds, adopts = [], []
        for r in range(rounds):
            gen = r + 2
            with open(cfg + ".new", "w") as f:
                f.write(config(port, n, 2 if r % 2 == 0 else 1, threads))
            os.rename(cfg + ".new", cfg)
            p.send_signal(signal.SIGHUP)
            pat = re.compile(r"worker \d+: topology %d in use, ([0-9.]+) us"
                             % gen)
            deadline = time.monotonic() + 30
            while True:
                text = open(logp).read()
                us = [float(x) for x in pat.findall(text)]
                b = re.search(r"topology %d applied: .* built in ([0-9.]+) ms"
                              % gen, text)
                if b and len(us) == threads:
                    break
                if time.monotonic() > deadline:
                    sys.exit("round %d: no adoption in the log" % r)
                time.sleep(0.01)
            builds.append(float(b.group(1)))
            adopts.append(max(us) / 1000.0)
            print("round %2d: built in %7.2f ms, every worker %6.3f ms later"
                  % (r, builds[-1], adopts[-1]))
        print("backends %d, threads %d: median build %.2f ms, median "
              "adoption %.3f ms, median total %.2f ms"
              % (n, threads, statistics.median(builds),
                 statistics.median(adopts),
                 statistics.median(b + a for b, a in zip(builds, adopts))))
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(10)
        log.close()


if __name__ == "__main__":
    main()
