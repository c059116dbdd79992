#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""migrate_hits: the hit ratio clients see while a backend is added or
removed.

Starts NBACKENDS memcached (Debian package) behind one mcring (threads =
1, admin API on), preloads NKEYS keys through mcring, then keeps READERS
threads reading random keys (multi-gets of 100) while an extra backend is
added through the admin API, then (another run) while one of NBACKENDS + 1
is removed: each once as a paced move (ramp=RAMP, default warm-up and
background copy), once at once with warmup = 0 and migrate_rate = 0 (what
any consistent-hash proxy does). For each run it
prints, per second, the share of keys read that hit, relative to the
share before the change, and then:

  - the extra backend requests the move cost: gets, sets and deletes the
    backends counted (memcached `stats`) beyond the client's own requests;
  - mcring's CPU time per client request (utime + stime from
    /proc/PID/stat) in the 5 s before the change and from the change to
    10 s after the ramp.

Usage: bench/migrate_hits.py MCRING [NBACKENDS [NKEYS [RAMP]]]
(default 10 200000 20).  Takes about four minutes.
"""

import json
import os
import random
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
import mctest  # noqa: E402

READERS = 2
BATCH = 100


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])    # utime + stime


def backend_counters(m):
    st = mctest.proxy_stats(m.port)
    return {k: int(st[k]) for k in ("cmd_get", "cmd_set", "delete_hits",
                                    "delete_misses", "get_hits")}


class Readers:
    """READERS threads reading random keys; per-second hits and reads."""

    def __init__(self, port, keys):
        self.port = port
        self.keys = keys
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.buckets = {}          # second -> [hits, reads]
        self.requests = 0
        self.threads = [threading.Thread(target=self.run, args=(i,))
                        for i in range(READERS)]

    def run(self, seed):
        rng = random.Random(seed)
        with mctest.Client(self.port) as c:
            while not self.stop.is_set():
                ks = rng.sample(self.keys, BATCH)
                hits = len(c.get_multi(ks))
                sec = int(time.monotonic())
                with self.lock:
                    b = self.buckets.setdefault(sec, [0, 0])
                    b[0] += hits
                    b[1] += BATCH
                    self.requests += 1

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join()


def api(port, method, path, body=None):
    req = urllib.request.Request(
        "http://127.0.0.1:%d%s" % (port, path), method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


class AdminMcring(mctest.Mcring):
    def __init__(self, tmpdir, backends, admin_port, **kw):
        super().__init__(tmpdir, backends, **kw)
        self.admin_port = admin_port

    def write_config(self, port):
        super().write_config(port)
        with open(self.config_path, "a") as f:
            f.write("\n[admin]\nlisten = 127.0.0.1:%d\n" % self.admin_port)


def run(mcring_path, nbackends, nkeys, ramp, paced, remove=False):
    os.environ["MCRING"] = mcring_path
    tmp = __import__("tempfile").mkdtemp(prefix="migrate-hits-")
    mcs = [mctest.Memcached(tmp, name="mc%d" % (i + 1))
           for i in range(nbackends + 1)]
    for m in mcs:
        m.start()
    admin = mctest.free_port()
    proxy = {"threads": 1}
    if not paced:
        proxy.update({"warmup": 0, "migrate_rate": 0})
    first = mcs if remove else mcs[:nbackends]
    mc = AdminMcring(tmp, [(m.name, m.port) for m in first], admin,
                     proxy=proxy, health={"interval_ms": 100, "rise": 1})
    mc.start()
    try:
        keys = ["key:%d" % i for i in range(nkeys)]
        with mctest.Client(mc.port) as c:
            for i in range(0, nkeys, 500):
                c.send(b"".join(b"set %s 0 0 16 noreply\r\n%s\r\n"
                                % (k.encode(), b"v" * 16)
                                for k in keys[i:i + 500]))
            c.send(b"mn\r\n")
            assert c.readline() == b"MN"
        readers = Readers(mc.port, keys)
        readers.start()
        time.sleep(1)
        s0, q0 = cpu_ticks(mc.pid), readers.requests
        time.sleep(5)       # the steady state, measured
        s1, q1 = cpu_ticks(mc.pid), readers.requests
        before_b = [backend_counters(m) for m in mcs]
        t0 = cpu_ticks(mc.pid)
        r0 = readers.requests
        change = int(time.monotonic())
        if remove:
            api(admin, "DELETE", "/backends/%s%s"
                % (mcs[-1].name, "?ramp=%d" % ramp if paced else ""))
        else:
            body = {"name": mcs[-1].name,
                    "address": "127.0.0.1:%d" % mcs[-1].port}
            if paced:
                body["ramp"] = ramp
            api(admin, "POST", "/backends", body)
        deadline = time.monotonic() + ramp + 10
        while time.monotonic() < deadline:
            time.sleep(0.5)
        t1 = cpu_ticks(mc.pid)
        r1 = readers.requests
        after_b = [backend_counters(m) for m in mcs]
        readers.finish()
        mig = api(admin, "GET", "/migration")
        steady = [s for s in readers.buckets if change - 5 <= s < change]
        base = (sum(readers.buckets[s][0] for s in steady) /
                max(1, sum(readers.buckets[s][1] for s in steady)))
        print("\n%s %s (%d backends %s 1, %d keys): hit ratio before %.4f"
              % ("remove" if remove else "add",
                 "ramp=%d, warm-up, copy" % ramp if paced
                 else "ramp=0, warmup=0, no copy", nbackends + remove,
                 "-" if remove else "+", nkeys, base))
        print("second  hits/reads  relative")
        worst = 1.0
        for s in sorted(readers.buckets):
            if s < change or s > change + ramp + 8:
                continue
            h, n = readers.buckets[s]
            rel = h / n / base if base else 0
            worst = min(worst, rel)
            print("%+5d  %6d/%-6d  %.4f" % (s - change, h, n, rel))
        print("worst second: %.4f of the hit ratio before" % worst)
        gets = sum(a["cmd_get"] - b["cmd_get"]
                   for a, b in zip(after_b, before_b))
        sets = sum(a["cmd_set"] - b["cmd_set"]
                   for a, b in zip(after_b, before_b))
        dels = sum(a["delete_hits"] + a["delete_misses"] - b["delete_hits"] -
                   b["delete_misses"] for a, b in zip(after_b, before_b))
        client_keys = (r1 - r0) * BATCH
        print("backend keys read %d for %d client keys (+%.2f%%), sets %d, "
              "deletes %d" % (gets, client_keys,
                              100.0 * (gets - client_keys) / client_keys,
                              sets, dels))
        print("warm-up: %r; copy: %r" % (mig["warmup"], mig["copy"]))
        hz = os.sysconf("SC_CLK_TCK")
        print("mcring CPU per client request (100-key get): %.1f us steady, "
              "%.1f us during the change"
              % ((s1 - s0) * 1e6 / hz / max(1, q1 - q0),
                 (t1 - t0) * 1e6 / hz / max(1, r1 - r0)))
        return readers
    finally:
        mc.stop()
        for m in mcs:
            m.stop()


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    path = os.path.abspath(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    nkeys = int(sys.argv[3]) if len(sys.argv) > 3 else 200000
    ramp = int(sys.argv[4]) if len(sys.argv) > 4 else 20
    for remove in (False, True):
        run(path, n, nkeys, ramp, paced=False, remove=remove)
        run(path, n, nkeys, ramp, paced=True, remove=remove)


if __name__ == "__main__":
    main()
