# SPDX-License-Identifier: BSD-3-Clause
"""Integration tests: per-command routes of a pool ([pool NAME] writes =
POOL, deletes = all | POOL...).

Real memcached backends in three pools: a (b1 b2) for keys "a:...", b (b3
b4) for every other key, c (b5).  A pool's deletes reach the key where a
read of it in each listed pool would go, also while its owner there is
down (and the down owner has it deleted before it serves again); writes =
sends a pool's writes to another pool's ring; without either, nothing
leaves the key's pool; bad values are refused with FILE:LINE.
"""

import base64
import os
import signal
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest  # noqa: E402
from mctest import wait_for  # noqa: E402

POOLS = {"a": ["b1", "b2"], "b": ["b3", "b4"], "c": ["b5"]}
FAST = "interval_ms = 50\ntimeout_ms = 100\nrise = 1\nfall = 1\n"


def pools_text(cluster, a_extra="", b_extra=""):
    return ("[pool a]\n" + a_extra + cluster.pool_lines(POOLS["a"]) +
            "\n[pool b]\n" + b_extra + cluster.pool_lines(POOLS["b"]) +
            "\n[pool c]\n" + cluster.pool_lines(POOLS["c"]) +
            "\n[routes]\na: = a\n* = b\n")


def counters(port):
    st = mctest.proxy_stats(port)
    return int(st["pool_deletes"]), int(st["pool_delete_failures"])


class CmdRouteCase(mctest.ClusterTestCase):
    NEEDS_MCRING = True
    A_EXTRA = ""
    B_EXTRA = ""

    @classmethod
    def setUpClass(cls):
        if mctest.direct_mode():
            raise unittest.SkipTest("needs mcring (MCTEST_DIRECT=1)")
        cls.CLUSTER_ARGS = {
            "nbackends": 5,
            "pools": ([], lambda c: pools_text(c, cls.A_EXTRA,
                                               cls.B_EXTRA))}
        super().setUpClass()
        # Each pool's ring alone: the same names, so the same points.
        cls.pool_cfg = {}
        for name, members in POOLS.items():
            path = os.path.join(cls.cluster.tmpdir, name + ".ini")
            with open(path, "w") as f:
                f.write(mctest.format_config(
                    1, [(n, cls.cluster.backend(n).port) for n in members]))
            cls.pool_cfg[name] = path

    def order(self, pool, key):
        """[owner, fallback...] of key in pool alone."""
        return mctest.route_file(self.pool_cfg[pool], [key])[key]

    def put(self, name, key, value=b"old"):
        with self.cluster.backend(name).client() as bc:
            self.assertEqual(bc.set(key, value), b"STORED")

    def has(self, name, key):
        with self.cluster.backend(name).client() as bc:
            return bc.get(key)


class DeletesAllTest(CmdRouteCase):
    """[pool a] deletes = all: every other pool too."""
    A_EXTRA = "deletes = all\n"

    def test_delete_reaches_every_pool(self):
        k = "a:" + self.key()
        c = self.client()
        self.assertEqual(c.set(k, b"new"), b"STORED")
        ob, oc = self.order("b", k)[0], self.order("c", k)[0]
        self.put(ob, k)
        self.put(oc, k)
        before = counters(self.cluster.port)
        self.assertEqual(c.delete(k), b"DELETED")
        self.assertEqual(self.has(ob, k), None)
        self.assertEqual(self.has(oc, k), None)
        for n in POOLS["a"]:
            self.assertEqual(self.has(n, k), None)
        after = counters(self.cluster.port)
        self.assertEqual((after[0] - before[0], after[1] - before[1]), (2, 0))
        # The client's answer is its own pool's.
        self.put(ob, k)
        self.assertEqual(c.delete(k), b"NOT_FOUND")
        self.assertEqual(self.has(ob, k), None)

    def test_noreply_and_meta_deletes(self):
        k = "a:" + self.key()
        c = self.client()
        ob, oc = self.order("b", k)[0], self.order("c", k)[0]
        for key_line in (k.encode(),
                         base64.b64encode(k.encode()) + b" b"):
            self.put(ob, k)
            self.put(oc, k)
            self.assertEqual(c.set(k, b"new"), b"STORED")
            c.send(b"md " + key_line + b" q\r\nmn\r\n")
            self.assertEqual(c.readline(), b"MN")
            self.assertEqual(self.has(ob, k), None)
            self.assertEqual(self.has(oc, k), None)
            self.assertEqual(c.get(k), None)
        self.put(ob, k)
        c.send(b"delete " + k.encode() + b" noreply\r\n")
        self.assertEqual(c.call("version")[:8], b"VERSION ")
        self.assertEqual(self.has(ob, k), None)

    def test_other_pools_keys_stay_in_their_pool(self):
        # Pool b has no deletes =: its keys' deletes stay in b.
        k = self.key("b")
        c = self.client()
        oa, oc = self.order("a", k)[0], self.order("c", k)[0]
        self.assertEqual(c.set(k, b"v"), b"STORED")
        self.put(oa, k)
        self.put(oc, k)
        before = counters(self.cluster.port)
        self.assertEqual(c.delete(k), b"DELETED")
        self.assertEqual(self.has(oa, k), b"old")
        self.assertEqual(self.has(oc, k), b"old")
        self.assertEqual(counters(self.cluster.port), before)


class DeletesDownTest(mctest.FreshClusterTestCase):
    """[pool a] deletes = b, b's owner of the key hung: the delete reaches
    the fallback serving b's reads, and the hung owner has the key
    deleted before it serves again."""
    NBACKENDS = 5

    def setUp(self):
        if mctest.direct_mode():
            self.skipTest("needs mcring (MCTEST_DIRECT=1)")
        self.cluster = mctest.Cluster(
            5, pools=([], lambda c: pools_text(c, "deletes = b\n", FAST)))
        self.addCleanup(self.cluster.close)
        self.cluster.start()
        self.port = self.cluster.port
        self._clients = []
        self.addCleanup(self._close_clients)

    def test_hung_owner_cleaned_before_it_serves(self):
        keys = ["a:down-%d" % i for i in range(40)]
        cfg = os.path.join(self.cluster.tmpdir, "b.ini")
        with open(cfg, "w") as f:
            f.write(mctest.format_config(
                1, [(n, self.cluster.backend(n).port) for n in POOLS["b"]]))
        order = mctest.route_file(cfg, keys)
        owner = "b3"
        keys = [k for k in keys if order[k][0] == owner][:5]
        self.assertTrue(keys)
        fallback = "b4"
        for k in keys:
            for n in (owner, fallback):
                with self.cluster.backend(n).client() as bc:
                    self.assertEqual(bc.set(k, b"old"), b"STORED")
        self.cluster.backend(owner).send_signal(signal.SIGSTOP)
        try:
            wait_for(lambda: mctest.stats_backends(self.port)[owner]
                     .get("state") == "DOWN", 10.0, owner + " DOWN")
            c = self.client()
            for k in keys:
                self.assertEqual(c.set(k, b"new"), b"STORED")
                self.assertEqual(c.delete(k), b"DELETED")
            with self.cluster.backend(fallback).client() as bc:
                for k in keys:
                    self.assertEqual(bc.get(k), None, k)
        finally:
            self.cluster.backend(owner).send_signal(signal.SIGCONT)
        wait_for(lambda: mctest.stats_backends(self.port)[owner]
                 .get("state") == "UP", 10.0, owner + " UP again")
        # Its old values were deleted before it got keys again.
        with self.cluster.backend(owner).client() as bc:
            for k in keys:
                self.assertEqual(bc.get(k), None, k)


class WritesTest(CmdRouteCase):
    """[pool a] writes = c, deletes = a: a's keys are written in c, read
    from a, deleted in both."""
    A_EXTRA = "writes = c\ndeletes = a\n"

    def test_writes_go_to_the_other_pool(self):
        k = "a:" + self.key()
        c = self.client()
        self.assertEqual(c.set(k, b"5"), b"STORED")
        self.assertEqual(c.incr(k, 2), b"7")
        self.assertEqual(c.touch(k, 100), b"TOUCHED")
        self.assertEqual(self.has("b5", k), b"7")
        for n in POOLS["a"] + POOLS["b"]:
            self.assertEqual(self.has(n, k), None, n)
        # Reads stay in a: it has no copy.
        self.assertEqual(c.get(k), None)
        oa = self.order("a", k)[0]
        self.put(oa, k, b"from-a")
        self.assertEqual(c.get(k), b"from-a")
        c.send(b"ms " + k.encode() + b" 2\r\nms\r\n")
        self.assertEqual(c.readline(), b"HD")
        self.assertEqual(self.has("b5", k), b"ms")
        self.assertEqual(c.delete(k), b"DELETED")
        self.assertEqual(self.has("b5", k), None)
        self.assertEqual(self.has(oa, k), None)


class NoCmdRouteTest(CmdRouteCase):

    def test_nothing_leaves_the_pool(self):
        k = "a:" + self.key()
        c = self.client()
        ob = self.order("b", k)[0]
        self.assertEqual(c.set(k, b"v"), b"STORED")
        self.put(ob, k)
        self.assertEqual(c.delete(k), b"DELETED")
        self.assertEqual(self.has(ob, k), b"old")
        self.assertEqual(counters(self.cluster.port), (0, 0))


class CmdRouteConfigErrorsTest(unittest.TestCase):
    BASE = ("[proxy]\nlisten = 127.0.0.1:1\n\n[pool a]\n%s"
            "b1 = 127.0.0.1:2\n\n[pool b]\nb2 = 127.0.0.1:3\n\n"
            "[routes]\n* = a\n")

    def check_error(self, text, want):
        r = mctest.check_config_text(text)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(want, r.stderr)

    def test_errors(self):
        self.check_error(self.BASE % "writes = nope\n",
                         "bad.ini:4: pool 'a': writes: no pool 'nope'")
        self.check_error(self.BASE % "deletes = b nope\n",
                         "pool 'a': deletes: no pool 'nope'")
        self.check_error(self.BASE % "deletes = a\n",
                         "pool 'a': deletes: 'a' takes its deletes anyway")
        self.check_error(self.BASE % "writes = b\ndeletes = b\n",
                         "pool 'a': deletes: 'b' takes its deletes anyway")
        self.check_error(self.BASE % "deletes = b b\n",
                         "pool 'a': deletes: 'b' named twice")
        self.check_error(self.BASE % "deletes = b@d\n",
                         "bad.ini:5: deletes: bad value 'b@d'")

    def test_good(self):
        r = mctest.check_config_text(self.BASE % "writes = b\ndeletes = a\n")
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    mctest.main()
