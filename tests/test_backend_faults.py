#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Integration tests: a backend that misbehaves costs only its own requests.

One real memcached and one fake backend (a mctest.ScriptedBackend: a
Python server on a free 127.0.0.1 port) behind mcring. The fake answers health probes properly but
answers requests for some keys with an endless reply line (crossing mcring's
bound on a backend reply line), with garbage, or with a VALUE header whose
data never comes. Each such request must get a SERVER_ERROR line, the
proxy must stay up with bounded memory, and keys of the real backend must
keep working throughout.
"""

import os
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest  # noqa: E402


class FakeBackend(mctest.ScriptedBackend):
    """Answers version; misbehaves on get according to the key's prefix."""

    def answer(self, line):
        words = line.split()
        if words[:1] == [b"version"]:
            return b"VERSION 1.6.0-fake\r\n"
        if words[:1] == [b"get"] and len(words) > 1:
            key = words[1]
            if key.startswith(b"endless"):
                # A reply line far longer than any real one, no newline.
                return b"VALUE " + b"x" * 200000
            if key.startswith(b"garbage"):
                return b"HELLO THERE\r\n"
            if key.startswith(b"stalled"):
                return b"VALUE " + key + b" 0 1000000\r\nabc"
            return b"END\r\n"
        return b"ERROR\r\n"


class BackendFaultTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="mctest-faults-")
        cls.fake = FakeBackend()
        cls.real = mctest.Memcached(cls.tmp.name, "real").start()
        cls.proxy = mctest.Mcring(
            cls.tmp.name,
            [("fake", cls.fake.port), ("real", cls.real.port)],
            proxy={"threads": 1, "timeout_ms": 500}).start()

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.real.stop()
        cls.fake.close()
        cls.tmp.cleanup()

    def keys_owned_by(self, owner, prefix, n):
        cands = ["%s-%d" % (prefix, i) for i in range(64)]
        out = mctest.run_mcring(["-c", self.proxy.config_path, "--route"]
                                + cands)
        self.assertEqual(out.returncode, 0, out.stderr)
        owners = mctest.parse_route(out.stdout)
        keys = [k for k in cands if owners[k][0] == owner][:n]
        self.assertEqual(len(keys), n, "not enough keys on %s" % owner)
        return keys

    def check_fault(self, prefix):
        real_key = self.keys_owned_by("real", "ok-" + prefix, 1)[0]
        bad = self.keys_owned_by("fake", prefix, 3)
        rss0 = self.proxy.rss_kb()
        with self.proxy.client() as c, self.proxy.client() as other:
            self.assertEqual(other.set(real_key, b"v"), b"STORED")
            for k in bad:
                t0 = time.monotonic()
                reply = c.call("get " + k)
                self.assertTrue(reply.startswith(b"SERVER_ERROR "),
                                "%s: %r" % (k, reply))
                self.assertLess(time.monotonic() - t0, 3.0)
                # The client's connection is still in sync.
                self.assertEqual(c.get(real_key), b"v")
                self.assertEqual(other.get(real_key), b"v")
        self.assertTrue(self.proxy.alive())
        self.assertLess(self.proxy.rss_kb() - rss0, 32 * 1024)

    def test_endless_reply_line_is_refused(self):
        self.check_fault("endless")

    def test_garbage_reply_is_refused(self):
        self.check_fault("garbage")

    def test_value_that_never_arrives_times_out(self):
        self.check_fault("stalled")

    def test_fake_backend_is_healthy_for_good_keys(self):
        k = self.keys_owned_by("fake", "fine", 1)[0]
        with self.proxy.client() as c:
            self.assertIsNone(c.get(k))


if __name__ == "__main__":
    mctest.main()
