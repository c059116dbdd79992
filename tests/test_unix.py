#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Integration tests: unix sockets.

mcring listening on a unix socket ([proxy] listen = /path, listen_mode)
in front of memcached servers on unix sockets (memcached -s, backend lines
unix:/path) and one on TCP: every key is where --route says, the socket
has its mode, a stale socket is replaced, a live one is refused, the socket
is removed on exit, and the admin API adds a unix backend.
"""

import json
import os
import shutil
import socket
import stat
import sys
import tempfile
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest  # noqa: E402
from mctest import wait_for  # noqa: E402


class UnixMemcached(mctest.Process):
    """memcached -s PATH -a 0666."""

    def __init__(self, tmpdir, name):
        super().__init__(name, tmpdir)
        self.path = os.path.join(tmpdir, name + ".sock")

    def start(self):
        argv = [mctest.memcached_path(), "-s", self.path, "-a", "0666",
                "-U", "0", "-m", "16", "-t", "1"]
        if os.geteuid() == 0:
            argv += ["-u", "root"]
        self._spawn(argv)
        wait_for(lambda: unix_connects(self.path) or not self.alive(), 10,
                 "memcached on %s" % self.path)
        if not self.alive():
            raise mctest.HarnessError(self.log_text())
        return self

    def get(self, key):
        return unix_command(self.path, b"get %s\r\n" % key.encode())


def unix_connects(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def unix_command(path, data, end=b"END\r\n"):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    try:
        s.sendall(data)
        out = b""
        while not out.endswith(end) and not out.endswith(b"STORED\r\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


class UnixSocketsTest(unittest.TestCase):

    def setUp(self):
        if mctest.direct_mode():
            self.skipTest("needs mcring")
        # unix socket paths are short: a directory of our own under /tmp
        self.tmpdir = tempfile.mkdtemp(prefix="mcu-", dir="/tmp")
        self.addCleanup(shutil.rmtree, self.tmpdir, True)
        self.procs = []
        self.addCleanup(self.stop_all)
        self.u = [UnixMemcached(self.tmpdir, "u%d" % i).start()
                  for i in (1, 2)]
        self.procs += self.u
        self.tcp = mctest.Memcached(self.tmpdir, name="t1").start()
        self.procs.append(self.tcp)
        self.sock = os.path.join(self.tmpdir, "mcring.sock")
        self.admin_port = mctest.free_port()

    def stop_all(self):
        for p in self.procs:
            p.stop()

    def config(self, extra_backends=""):
        path = os.path.join(self.tmpdir, "mcring.ini")
        with open(path, "w") as f:
            f.write("[proxy]\nlisten = %s\nlisten_mode = 0640\n"
                    "[health]\ninterval_ms = 100\n"
                    "[admin]\nlisten = 127.0.0.1:%d\n"
                    "[backends]\nu1 = unix:%s\nu2 = unix:%s\n"
                    "t1 = 127.0.0.1:%d\n%s"
                    % (self.sock, self.admin_port, self.u[0].path,
                       self.u[1].path, self.tcp.port, extra_backends))
        return path

    def start_mcring(self, path):
        m = mctest.Process("mcring", self.tmpdir)
        m._spawn([mctest.mcring_path(), "-c", path])
        self.procs.append(m)
        wait_for(lambda: unix_connects(self.sock) or not m.alive(), 10,
                 "mcring on %s" % self.sock)
        self.assertTrue(m.alive(), m.log_text())
        return m

    def states(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/backends"
                                    % self.admin_port, timeout=10) as r:
            return {b["name"]: b["state"] for b in json.load(r)}

    def test_keys_through_unix_sockets_both_ways(self):
        path = self.config()
        m = self.start_mcring(path)
        self.assertEqual(stat.S_IMODE(os.stat(self.sock).st_mode), 0o640)
        wait_for(lambda: set(self.states().values()) == {"UP"}, 10,
                 "every backend UP")
        keys = ["unix-%d" % i for i in range(60)]
        for k in keys:
            self.assertEqual(
                unix_command(self.sock, b"set %s 0 0 3\r\nv-%s\r\n"
                             % (k.encode(), k[-1:].encode())),
                b"STORED\r\n")
        r = mctest.run_mcring(["-c", path, "--route"] + keys)
        self.assertEqual(r.returncode, 0, r.stderr)
        owners = {k: v[0] for k, v in mctest.parse_route(r.stdout).items()}
        self.assertEqual(set(owners.values()), {"u1", "u2", "t1"})
        for k in keys:
            want = b"VALUE %s 0 3\r\nv-%s\r\nEND\r\n" % (k.encode(),
                                                        k[-1:].encode())
            self.assertEqual(unix_command(self.sock, b"get %s\r\n"
                                          % k.encode()), want)
            o = owners[k]
            if o == "t1":
                with self.tcp.client() as c:
                    held = c.get(k)
                self.assertEqual(held, b"v-" + k[-1:].encode(), k)
            else:
                self.assertEqual(self.u[int(o[1]) - 1].get(k), want, k)
        st = unix_command(self.sock, b"stats backends\r\n")
        self.assertIn(b"STAT u1:address unix:%s\r\n"
                      % self.u[0].path.encode(), st)
        # a second mcring on the same live socket: refused
        second = os.path.join(self.tmpdir, "second.ini")
        with open(second, "w") as f:
            f.write("[proxy]\nlisten = %s\n[backends]\nt1 = 127.0.0.1:%d\n"
                    % (self.sock, self.tcp.port))
        r = mctest.run_mcring(["-c", second], timeout=15)
        self.assertEqual(r.returncode, 1)
        self.assertIn("in use by a running process", r.stderr)
        m.stop()
        self.assertFalse(os.path.exists(self.sock), "socket left behind")

    def test_stale_socket_replaced_and_file_refused(self):
        # a socket nobody listens on, as a crashed mcring leaves it
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(self.sock)
        s.close()
        path = self.config()
        m = self.start_mcring(path)
        self.assertEqual(unix_command(self.sock, b"version\r\n",
                                      end=b"\r\n")[:8], b"VERSION ")
        m.stop()
        with open(self.sock, "w") as f:
            f.write("not a socket")
        r = mctest.run_mcring(["-c", path], timeout=15)
        self.assertEqual(r.returncode, 1)
        self.assertIn("exists and is not a socket", r.stderr)

    def test_admin_adds_a_unix_backend(self):
        u3 = UnixMemcached(self.tmpdir, "u3").start()
        self.procs.append(u3)
        self.start_mcring(self.config())
        req = urllib.request.Request(
            "http://127.0.0.1:%d/backends" % self.admin_port,
            data=json.dumps({"name": "u3",
                             "address": "unix:" + u3.path}).encode(),
            headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            self.assertEqual(r.status, 201)
        wait_for(lambda: self.states().get("u3") == "UP", 10, "u3 UP")


if __name__ == "__main__":
    mctest.main()
