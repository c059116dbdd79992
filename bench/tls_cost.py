#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""tls_cost: what TLS costs mcring per request, towards clients and
towards backends.

Starts two memcached backends (plain, and with -Z) and one mcring
(threads = 1) with both listeners, and for each of four set-ups (client
plain or TLS, backends plain or tls=yes) sends the same load: CONNS
connections, each pipelining batches of 50 gets of a 100-byte value,
REQUESTS requests in all. mcring's CPU time (utime + stime from
/proc/PID/stat) over the load, per request, is printed with its ratio to
plain/plain. Certificates are made with the openssl command.

Usage: bench/tls_cost.py MCRING [REQUESTS [CONNS]] (default 200000 4).
Takes about a minute; loopback only.
"""

import os
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
import mctest  # noqa: E402
import test_tls  # noqa: E402

BATCH = 50


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def connect(port, ca):
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    if ca is None:
        return raw
    ctx = ssl.create_default_context(cafile=ca)
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def load(port, ca, key, n):
    s = connect(port, ca)
    want = len(b"VALUE %s 0 100\r\n" % key) + 102 + 5
    batch = b"get %s\r\n" % key * BATCH
    done = 0
    while done < n:
        s.sendall(batch)
        need = want * BATCH
        got = 0
        while got < need:
            chunk = s.recv(1 << 20)
            if not chunk:
                raise RuntimeError("closed")
            got += len(chunk)
        done += BATCH
    s.close()


def run(m, port, ca, key, requests, conns):
    threads = [threading.Thread(target=load,
                                args=(port, ca, key, requests // conns))
               for _ in range(conns)]
    t0, c0 = time.monotonic(), cpu_seconds(m.pid)
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return (cpu_seconds(m.pid) - c0) / requests * 1e6, time.monotonic() - t0


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    os.environ["MCRING"] = os.path.abspath(sys.argv[1])
    requests = int(sys.argv[2]) if len(sys.argv) > 2 else 200000
    conns = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    tmp = tempfile.mkdtemp(prefix="mcring-tlsbench-")
    procs = []
    try:
        certs = os.path.join(tmp, "certs")
        os.mkdir(certs)
        test_tls.make_certs(certs)
        plain = mctest.Memcached(tmp, name="plain").start()
        tlsb = test_tls.TlsMemcached(tmp, "tlsb", certs).start()
        procs += [plain, tlsb]
        tls_port = mctest.free_port()
        m = mctest.Mcring(
            tmp, [], proxy={"threads": 1},
            extra="[tls]\ncert = %s/server.pem\nkey = %s/server.key\n"
                  "ca = %s/ca.pem\nlisten = 127.0.0.1:%d\n"
                  "[pool p]\nplain = 127.0.0.1:%d\n"
                  "[pool t]\ntlsb = 127.0.0.1:%d tls=yes\n"
                  "[routes]\np: = p\nt: = t\n* = p\n"
                  % (certs, certs, certs, tls_port, plain.port, tlsb.port))
        m.start()
        procs.append(m)
        ca = os.path.join(certs, "ca.pem")
        with m.client() as c:
            for key in ("p:bench", "t:bench"):
                mctest.wait_for(lambda k=key: c.set(k, "x" * 100) ==
                                b"STORED", 10, "%s stored" % key)
        rows = []
        for client in ("plain", "TLS"):
            for backend in ("plain", "TLS"):
                port = m.port if client == "plain" else tls_port
                key = b"p:bench" if backend == "plain" else b"t:bench"
                run(m, port, ca if client == "TLS" else None, key,
                    requests // 10, conns)      # warm up
                us, secs = run(m, port, ca if client == "TLS" else None,
                               key, requests, conns)
                rows.append((client, backend, us, secs))
    finally:
        for p in procs:
            p.stop()
        shutil.rmtree(tmp, True)
    base = rows[0][2]
    print("%d gets (100 B values, %d connections, batches of %d), mcring "
          "threads = 1" % (requests, conns, BATCH))
    print("| client | backends | mcring CPU us/request | vs plain | "
          "wall s |")
    print("| --- | --- | ---: | ---: | ---: |")
    for client, backend, us, secs in rows:
        print("| %s | %s | %.2f | %.2f | %.1f |"
              % (client, backend, us, us / base, secs))


if __name__ == "__main__":
    main()
