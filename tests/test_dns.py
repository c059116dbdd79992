#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Integration tests: backend host names resolved on the event loop.

mcring runs in a private mount namespace (unshare -m) in which
/etc/resolv.conf names a small DNS server of this test on 127.0.0.1 (an
ephemeral UDP port), so the test decides what a name resolves to and when.
Real memcached backends listen on 127.0.0.1 and 127.0.0.2 (both loopback).

  - a name that does not resolve at start is not fatal: that backend starts
    DOWN, the others serve; once the name resolves it comes UP by itself
    (no reload) and serves its keys;
  - `mcring -t` reports such a name as a warning and exits 0;
  - when a backend's address changes in DNS and its old address stops
    answering, mcring looks the name up again and follows it;
  - a name resolving to another backend's address is refused (stays DOWN).

Needs root (unshare -m, mount --bind); skipped otherwise.
"""

import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest  # noqa: E402
from mctest import wait_for  # noqa: E402

SLOW = os.environ.get("MCTEST_SLOW") == "1"
T = 2.0 if SLOW else 1.0


class FakeDns:
    """A UDP DNS server answering A queries from self.records
    ({name: ip}); any other name gets NXDOMAIN, AAAA gets no answer."""

    def __init__(self):
        self.records = {}
        self.lock = threading.Lock()
        self.queries = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def set(self, name, ip):
        with self.lock:
            if ip is None:
                self.records.pop(name, None)
            else:
                self.records[name] = ip

    def _answer(self, q):
        qid, flags, qd = struct.unpack(">HHH", q[:6])
        off, labels = 12, []
        while q[off] != 0:
            n = q[off]
            labels.append(q[off + 1:off + 1 + n].decode())
            off += 1 + n
        qtype, _ = struct.unpack(">HH", q[off + 1:off + 5])
        question = q[12:off + 5]
        name = ".".join(labels).lower()
        with self.lock:
            ip = self.records.get(name)
            self.queries += 1
        rd = flags & 0x0100
        if ip is None:
            return struct.pack(">HHHHHH", qid, 0x8183 | rd, 1, 0, 0, 0) \
                + question
        if qtype != 1:
            return struct.pack(">HHHHHH", qid, 0x8180 | rd, 1, 0, 0, 0) \
                + question
        answer = (b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 1, 4)
                  + socket.inet_aton(ip))
        return struct.pack(">HHHHHH", qid, 0x8180 | rd, 1, 1, 0, 0) \
            + question + answer

    def _serve(self):
        while self.running:
            try:
                q, addr = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                self.sock.sendto(self._answer(q), addr)
            except (IndexError, struct.error, UnicodeDecodeError):
                pass

    def close(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()


class Memcached(mctest.Process):
    """memcached on a given loopback IP and port."""

    def __init__(self, tmpdir, name, ip, port):
        super().__init__(name, tmpdir)
        self.ip = ip
        self.port = port

    def start(self):
        argv = [mctest.memcached_path(), "-l", self.ip, "-p", str(self.port),
                "-U", "0", "-m", "16", "-t", "1"]
        if os.geteuid() == 0:
            argv += ["-u", "root"]
        self._spawn(argv)
        wait_for(lambda: mctest.can_connect(self.port, host=self.ip), 5,
                 "%s on %s:%d" % (self.name, self.ip, self.port))
        return self

    def client(self, **kw):
        return mctest.Client(self.port, host=self.ip, **kw)


def can_unshare():
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    r = subprocess.run(["unshare", "-m", "--propagation", "private",
                        "true"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    return r.returncode == 0


@unittest.skipUnless(can_unshare(), "needs root and unshare -m")
class DnsTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mctest-dns-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.dns = FakeDns()
        self.addCleanup(self.dns.close)
        self.resolv = os.path.join(self.tmp, "resolv.conf")
        with open(self.resolv, "w") as f:
            f.write("nameserver 127.0.0.1:%d\noptions timeout:1 "
                    "attempts:1\n" % self.dns.port)
        self.procs = []
        self.mcring = None

    def tearDown(self):
        # Kept for dump_logs(), which runs after the cleanups.
        self.saved_log = self.mcring.log_text() if self.mcring else ""
        for p in self.procs[::-1]:
            p.stop()

    def dump_logs(self, stream):
        stream.write("\n----- mcring log -----\n%s\n"
                     % getattr(self, "saved_log", ""))

    def memcached(self, name, ip="127.0.0.1", port=None):
        m = Memcached(self.tmp, name, ip, port or mctest.free_port())
        self.procs.append(m)
        return m.start()

    def start_mcring(self, backends, health=None):
        """mcring in a mount namespace with our resolv.conf; backends:
        (name, host, port)."""
        port = mctest.free_port()
        cfg = os.path.join(self.tmp, "mcring.ini")
        lines = ["[proxy]", "listen = 127.0.0.1:%d" % port, "threads = 2",
                 "", "[health]"]
        h = {"interval_ms": 100, "timeout_ms": 200, "rise": 2, "fall": 2}
        h.update(health or {})
        lines += ["%s = %s" % kv for kv in h.items()]
        lines += ["", "[backends]"]
        lines += ["%s = %s:%d" % b for b in backends]
        with open(cfg, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.config = cfg
        p = mctest.Process("mcring", self.tmp)
        p._spawn(["unshare", "-m", "--propagation", "private", "sh", "-c",
                  'mount --bind "$1" /etc/resolv.conf && exec "$2" -c "$3"',
                  "sh", self.resolv, mctest.mcring_path(), cfg])
        self.procs.append(p)
        self.mcring = p
        self.port = port
        wait_for(lambda: not p.alive() or mctest.can_connect(port), 10,
                 "mcring to listen")
        self.assertTrue(p.alive(), p.log_text())
        return p

    def states(self):
        return {n: v["state"]
                for n, v in mctest.stats_backends(self.port).items()}

    def wait_state(self, name, state, timeout):
        wait_for(lambda: self.states()[name] == state, timeout,
                 "%s to be %s (states %s)" % (name, state, self.states()))

    def keys_of(self, name, n=20):
        """n keys owned by backend name (mcring --route on the config)."""
        keys = ["dns-%d" % i for i in range(n * 20)]
        owners = mctest.route_file(self.config, keys)
        mine = [k for k in keys if owners[k][0] == name][:n]
        self.assertEqual(len(mine), n)
        return mine

    def test_unresolved_name_at_start_then_resolves(self):
        a = self.memcached("a")
        late = self.memcached("late")
        self.start_mcring([("a", "127.0.0.1", a.port),
                           ("late", "mc-late.test", late.port)])
        self.wait_state("late", "DOWN", 5 * T)
        self.assertEqual(self.states()["a"], "UP")
        self.assertIn("does not resolve", self.mcring.log_text())
        keys = self.keys_of("late")
        with mctest.Client(self.port) as c:
            # Its keys are served by the fallback meanwhile.
            for k in keys:
                self.assertEqual(c.set(k, b"early"), b"STORED")
        with late.client() as d:
            self.assertIsNone(d.get(keys[0]))
        # The name starts to resolve: no reload, it comes UP by itself.
        self.dns.set("mc-late.test", "127.0.0.1")
        self.wait_state("late", "UP", 10 * T)
        self.assertIn("mc-late.test resolves to 127.0.0.1:%d" % late.port,
                      self.mcring.log_text())
        with mctest.Client(self.port) as c:
            for k in keys:
                # Stale-safe return: the outage's copies were removed.
                self.assertIsNone(c.get(k), k)
                self.assertEqual(c.set(k, b"late"), b"STORED")
        with late.client() as d:
            for k in keys:
                self.assertEqual(d.get(k), b"late")

    def test_check_warns_about_an_unresolved_name(self):
        # -t resolves with the system resolver, in the namespace too.
        cfg = os.path.join(self.tmp, "t.ini")
        with open(cfg, "w") as f:
            f.write("[backends]\na = 127.0.0.1:1\nb = mc-none.test:2\n")
        r = subprocess.run(
            ["unshare", "-m", "--propagation", "private", "sh", "-c",
             'mount --bind "$1" /etc/resolv.conf && exec "$2" -t -c "$3"',
             "sh", self.resolv, mctest.mcring_path(), cfg],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("configuration OK", r.stdout)
        self.assertRegex(r.stderr, r"warning: .*t\.ini:3: backend 'b': "
                                   r"cannot resolve 'mc-none\.test'")

    def test_name_that_moves_is_followed(self):
        port = mctest.free_port()
        old = self.memcached("old", "127.0.0.1", port)
        new = self.memcached("new", "127.0.0.2", port)
        a = self.memcached("a")
        self.dns.set("mc-move.test", "127.0.0.1")
        self.start_mcring([("a", "127.0.0.1", a.port),
                           ("m", "mc-move.test", port)])
        self.wait_state("m", "UP", 5 * T)
        keys = self.keys_of("m")
        with mctest.Client(self.port) as c:
            self.assertEqual(c.set(keys[0], b"on-old"), b"STORED")
        with old.client() as d:
            self.assertEqual(d.get(keys[0]), b"on-old")
        # DNS moves the name; the old server goes away.
        self.dns.set("mc-move.test", "127.0.0.2")
        old.stop()
        self.procs.remove(old)
        self.wait_state("m", "UP", 10 * T)
        wait_for(lambda: "mc-move.test resolves to 127.0.0.2" in
                 self.mcring.log_text(), 10 * T, "the new address")
        self.wait_state("m", "UP", 10 * T)
        with mctest.Client(self.port) as c:
            wait_for(lambda: c.set(keys[1], b"on-new") == b"STORED",
                     5 * T, "a write through the new address")
        with new.client() as d:
            self.assertEqual(d.get(keys[1]), b"on-new")

    def test_name_resolving_to_another_backends_address(self):
        a = self.memcached("a")
        self.dns.set("mc-dup.test", "127.0.0.1")
        self.start_mcring([("a", "127.0.0.1", a.port),
                           ("dup", "mc-dup.test", a.port)])
        self.wait_state("dup", "DOWN", 5 * T)
        wait_for(lambda: "resolves to the address of backend a" in
                 self.mcring.log_text(), 5 * T, "the duplicate warning")
        self.assertEqual(self.states()["a"], "UP")


if __name__ == "__main__":
    mctest.main()
