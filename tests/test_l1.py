# SPDX-License-Identifier: BSD-3-Clause
"""Integration tests: the hot-key L1 cache ([proxy] l1 = SIZE, l1_ttl =
MS).

Real memcached backends behind one mcring with one worker thread and
every request sampled for hot keys.  A hot key's gets are answered from
the worker's cache (the backend stops seeing them) with the same bytes the
backend sends; any write of the key through mcring is seen by the next get;
a write that bypasses mcring is seen within l1_ttl; the cache stays within
its size, evicting; only hot keys and plain gets are cached; without l1
nothing is.
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest  # noqa: E402
from mctest import wait_for  # noqa: E402


def l1_stats(port):
    st = mctest.proxy_stats(port)
    return {k: int(v) for k, v in st.items() if k.startswith("l1_")}


def backend_gets(m):
    return int(mctest.proxy_stats(m.port)["cmd_get"])


class L1Case(mctest.ClusterTestCase):
    NEEDS_MCRING = True
    L1 = 1048576
    TTL = 300
    CLUSTER_ARGS = None

    @classmethod
    def setUpClass(cls):
        proxy = {"threads": 1, "hotkey_sample": 1, "l1_ttl": cls.TTL}
        if cls.L1 is not None:
            proxy["l1"] = cls.L1
        cls.CLUSTER_ARGS = {"nbackends": 2, "proxy": proxy}
        super().setUpClass()

    def owner(self, key):
        return self.cluster.backend(self.cluster.owners([key])[key])

    def heat(self, c, key, n=60):
        """Gets key n times (it becomes hot and cached); returns what the
        last one said, whole."""
        for _ in range(n):
            c.send(b"get " + key.encode() + b"\r\n")
            reply = c.read_until()
        return reply


class L1Test(L1Case):

    def test_hot_key_served_from_the_cache(self):
        k = self.key()
        c = self.client()
        self.assertEqual(c.set(k, b"hot-value", flags=9), b"STORED")
        want = b"VALUE %s 9 9\r\nhot-value\r\nEND\r\n" % k.encode()
        self.assertEqual(self.heat(c, k), want)
        m = self.owner(k)
        before, st = backend_gets(m), l1_stats(self.cluster.port)
        for _ in range(100):
            c.send(b"get " + k.encode() + b"\r\n")
            self.assertEqual(c.read_until(), want)
        after = l1_stats(self.cluster.port)
        # Served here while cached (a refill after l1_ttl may go through).
        self.assertGreater(after["l1_hits"] - st["l1_hits"], 50)
        self.assertLess(backend_gets(m) - before, 50)
        self.assertGreater(after["l1_fills"], 0)
        self.assertGreater(after["l1_bytes"], 0)
        # Byte for byte what the backend says.
        with m.client() as bc:
            bc.send(b"get " + k.encode() + b"\r\n")
            self.assertEqual(bc.read_until(), want)

    def test_writes_through_mcring_are_seen_at_once(self):
        k = self.key()
        c = self.client()
        self.assertEqual(c.set(k, b"1"), b"STORED")
        steps = [
            (b"set %s 0 0 1\r\n2\r\n", b"STORED", b"2"),
            (b"incr %s 5\r\n", b"7", b"7"),
            (b"append %s 0 0 1\r\nx\r\n", b"STORED", b"7x"),
            (b"ms %s 2 T0\r\nms\r\n", b"HD", b"ms"),
            (b"touch %s 0\r\n", b"TOUCHED", b"ms"),
            (b"delete %s\r\n", b"DELETED", None),
            (b"add %s 0 0 1\r\na\r\n", b"STORED", b"a"),
            (b"md %s\r\n", b"HD", None),
            (b"set %s 0 0 1\r\nf\r\n", b"STORED", b"f"),
            (b"flush_all\r\n", b"OK", None),
        ]
        for line, reply, value in steps:
            self.heat(c, k)
            c.send(line.replace(b"%s", k.encode()))
            self.assertEqual(c.readline(), reply, line)
            self.assertEqual(c.get(k), value, line)
        self.assertGreater(l1_stats(self.cluster.port)["l1_invalidations"],
                           3)

    def test_writes_elsewhere_seen_within_ttl(self):
        k = self.key()
        c = self.client()
        self.assertEqual(c.set(k, b"old"), b"STORED")
        self.heat(c, k)
        with self.owner(k).client() as bc:
            self.assertEqual(bc.set(k, b"new"), b"STORED")
        # Bounded staleness: l1_ttl is 300 ms here.
        wait_for(lambda: c.get(k) == b"new", 5.0, "the new value")

    def test_multi_get_of_cached_keys(self):
        keys = [self.key(str(i)) for i in range(3)]
        c = self.client()
        for k in keys:
            self.assertEqual(c.set(k, k.encode()), b"STORED")
        for _ in range(30):
            for k in keys:
                self.heat(c, k, 1)
        st = l1_stats(self.cluster.port)
        line = b"get " + b" ".join(k.encode() for k in keys) + b"\r\n"
        want = b"".join(b"VALUE %s 0 %d\r\n%s\r\n"
                        % (k.encode(), len(k), k.encode())
                        for k in keys) + b"END\r\n"
        for _ in range(20):
            c.send(line)
            self.assertEqual(c.read_until(), want)
        self.assertGreater(l1_stats(self.cluster.port)["l1_hits"],
                           st["l1_hits"])

    def test_gets_and_cold_keys_not_cached(self):
        k = self.key()
        c = self.client()
        self.assertEqual(c.set(k, b"v"), b"STORED")
        st = l1_stats(self.cluster.port)
        for _ in range(60):
            c.send(b"gets " + k.encode() + b"\r\n")
            head = c.readline().split()
            self.assertEqual(head[:4], [b"VALUE", k.encode(), b"0", b"1"])
            self.assertEqual(len(head), 5)
            c.readline()
            self.assertEqual(c.readline(), b"END")
        # Many keys, each asked once: none is hot.
        cold = [self.key("cold%d" % i) for i in range(200)]
        for x in cold:
            c.get(x)
        self.assertEqual(l1_stats(self.cluster.port)["l1_fills"],
                         st["l1_fills"])


class L1BoundTest(L1Case):
    """64 KB in all: 10 KB values of eight hot keys cannot all stay; a
    value over a quarter of the cache is never cached."""
    L1 = 65536
    TTL = 60000

    def test_bounded(self):
        c = self.client()
        keys = [self.key(str(i)) for i in range(8)]
        for k in keys:
            self.assertEqual(c.set(k, b"x" * 10240), b"STORED")
        for _ in range(20):
            for k in keys:
                self.heat(c, k, 1)
        st = l1_stats(self.cluster.port)
        self.assertGreater(st["l1_fills"], 6)
        self.assertGreater(st["l1_evictions"], 0)
        self.assertLessEqual(st["l1_bytes"], 64 * 1024)
        big = self.key("big")
        self.assertEqual(c.set(big, b"y" * 20000), b"STORED")
        before = l1_stats(self.cluster.port)["l1_fills"]
        self.heat(c, big, 80)
        self.assertEqual(l1_stats(self.cluster.port)["l1_fills"], before)


class NoL1Test(L1Case):
    L1 = None

    def test_off(self):
        k = self.key()
        c = self.client()
        self.assertEqual(c.set(k, b"v"), b"STORED")
        m = self.owner(k)
        before = backend_gets(m)
        self.heat(c, k, 100)
        self.assertEqual(backend_gets(m) - before, 100)
        self.assertEqual(set(l1_stats(self.cluster.port).values()), {0})


class L1ConfigTest(unittest.TestCase):

    def test_bad_values(self):
        for line, want in (("l1 = 1x", "l1: "), ("l1_ttl = 0", "l1_ttl: "),
                           ("l1_ttl = 60001", "l1_ttl: ")):
            r = mctest.check_config_text(
                "[proxy]\n%s\n[backends]\nb = 127.0.0.1:1\n" % line)
            self.assertNotEqual(r.returncode, 0, line)
            self.assertIn("bad.ini:2: " + want, r.stderr)


if __name__ == "__main__":
    mctest.main()
