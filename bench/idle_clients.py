#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""idle_clients: resident memory per idle client connection, side by side.

For each system (direct memcached, twemproxy, mcring; each with its
defaults but threads = 1 and, for the proxies, four memcached backends on
loopback) it reads the system's VmRSS (/proc/PID/status) before, with N
client connections open (once the system's curr_connections counts them
all), and, after those closed, with N connections that each sent
`version` (through twemproxy, which has no version, a `get` of a missing
key) and read the answer. Each RSS is read once it has settled (at most
8 s). It prints both, and the difference per client.

Usage: bench/idle_clients.py MCRING [N] (default 10000).  The open-files
limit must allow N + 100 descriptors (the script raises its soft limit to
the hard one).  Takes under a minute; only loopback traffic, every step
bounded in time.
"""

import json
import os
import resource
import shutil
import socket
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
import mctest  # noqa: E402

NBACKENDS = 4


class Nutcracker(mctest.Process):
    def __init__(self, tmpdir, ports):
        super().__init__("nutcracker", tmpdir)
        self.ports = ports
        self.port = None

    def start(self):
        self.port = mctest.free_port()
        self.stats_port = mctest.free_port()
        conf = os.path.join(self.tmpdir, "nutcracker.yml")
        with open(conf, "w") as f:
            f.write("bench:\n  listen: 127.0.0.1:%d\n  hash: md5\n"
                    "  distribution: ketama\n  auto_eject_hosts: false\n"
                    "  preconnect: true\n  timeout: 5000\n  servers:\n"
                    % self.port)
            for p in self.ports:
                f.write("    - 127.0.0.1:%d:1\n" % p)
        self._spawn(["nutcracker", "-c", conf, "-s", str(self.stats_port),
                     "-a", "127.0.0.1"])
        if not self._wait_listening(self.port):
            raise mctest.HarnessError("nutcracker did not start:\n"
                                      + self.log_text())
        return self


def serve_once(port, n, probe, want):
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(probe)
        socks.append(s)
    for s in socks:
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = s.recv(256)
            if not chunk:
                raise RuntimeError("a connection was closed")
            data += chunk
        if not data.startswith(want):
            raise RuntimeError("unexpected answer %r" % data)
    return socks


def measure(proc, port, n, probe, want, count, parked=None):
    """RSS before, with n clients connected (once count() says the system
    has them all), and with n clients served once each."""
    base = count()
    # one connection served first: what every system allocates once
    for s in serve_once(port, 1, probe, want):
        s.close()
    mctest.wait_for(lambda: count() == base, 30, "no client left")
    before = proc.rss_kb()
    socks = [socket.create_connection(("127.0.0.1", port), timeout=30)
             for _ in range(n)]
    try:
        mctest.wait_for(lambda: count() >= base + n, 60, "%d clients" % n)
        connected = settled_rss(proc)
    finally:
        for s in socks:
            s.close()
    mctest.wait_for(lambda: count() == base, 60, "the clients to be gone")
    socks = serve_once(port, n, probe, want)
    try:
        if parked is not None:
            # mcring: once it has parked them (a second or two)
            mctest.wait_for(lambda: parked() >= n, 30, "%d parked" % n)
        served = settled_rss(proc)
    finally:
        for s in socks:
            s.close()
    return before, connected, served


def settled_rss(proc):
    """VmRSS once it has stopped changing (a proxy may give memory back a
    moment after its clients went idle: mcring parks them after a second),
    at most 8 s later."""
    last = proc.rss_kb()
    deadline = time.monotonic() + 8
    steady = 0
    while steady < 3 and time.monotonic() < deadline:
        time.sleep(0.5)
        now = proc.rss_kb()
        steady = steady + 1 if now == last else 0
        last = now
    return last


def memcached_count(port):
    """curr_connections (memcached-style stats)."""
    def count():
        with mctest.Client(port) as c:
            return int(c.stats()["curr_connections"])
    return count


def stat_of(port, name):
    def value():
        with mctest.Client(port) as c:
            return int(c.stats()[name])
    return value


def nutcracker_count(stats_port):
    def count():
        with socket.create_connection(("127.0.0.1", stats_port),
                                      timeout=10) as s:
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return int(json.loads(data)["curr_connections"])
    return count


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    os.environ["MCRING"] = os.path.abspath(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard != resource.RLIM_INFINITY and hard < n + 100:
        sys.exit("open-files hard limit %d < %d" % (hard, n + 100))
    tmp = tempfile.mkdtemp(prefix="mcring-idle-")
    procs = []
    rows = []
    try:
        backends = [mctest.Memcached(tmp, name="b%d" % i)
                    for i in range(NBACKENDS)]
        for b in backends:
            b.start()
            procs.append(b)
        ports = [b.port for b in backends]

        # direct memcached: its own process, -c raised to fit N
        direct = start_direct(mctest.Memcached(tmp, name="direct"), n)
        procs.append(direct)
        rows.append(("memcached (direct)",) +
                    measure(direct, direct.port, n, b"version\r\n",
                            b"VERSION ", memcached_count(direct.port)))
        direct.stop()

        twem = Nutcracker(tmp, ports).start()
        procs.append(twem)
        rows.append(("twemproxy",) +
                    measure(twem, twem.port, n, b"get idle-missing\r\n",
                            b"END", nutcracker_count(twem.stats_port)))
        twem.stop()

        m = mctest.Mcring(tmp, [("b%d" % i, p) for i, p in enumerate(ports)],
                          proxy={"threads": 1})
        m.start()
        procs.append(m)
        rows.append(("mcring",) + measure(m, m.port, n, b"version\r\n",
                                          b"VERSION ", memcached_count(m.port),
                                          parked=stat_of(m.port,
                                                         "parked_connections")))
        m.stop()
    finally:
        for p in procs:
            p.stop()
        shutil.rmtree(tmp, True)
    print("%d idle clients: VmRSS of the system before, with them only "
          "connected, and with each served once" % n)
    print("| system | before | connected | per client | served once | "
          "per client |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, before, connected, served in rows:
        print("| %s | %.1f MB | %.1f MB | %.2f KB | %.1f MB | %.2f KB |"
              % (name, before / 1024.0, connected / 1024.0,
                 (connected - before) / float(n), served / 1024.0,
                 (served - before) / float(n)))


def start_direct(d, n):
    port = mctest.free_port()
    argv = [mctest.memcached_path(), "-l", "127.0.0.1", "-p", str(port),
            "-U", "0", "-m", "64", "-t", "1", "-c", str(n + 100)]
    if os.geteuid() == 0:
        argv += ["-u", "root"]
    d._spawn(argv)
    if not d._wait_listening(port):
        raise mctest.HarnessError("memcached did not start:\n"
                                  + d.log_text())
    d.port = port
    return d


if __name__ == "__main__":
    main()
