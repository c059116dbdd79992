# SPDX-License-Identifier: BSD-3-Clause
"""Integration tests: replicated pools (replicas = N in a [pool NAME]).

Real memcached backends behind one mcring.  A key's replicas are the first
N backends `mcring --route` prints for it: every write reaches exactly
those (read back from each backend directly), deletes leave no copy
anywhere, a cas lands on the first replica and removes the others; a read
pipelined after a delete misses.  With a replica killed every key is
still found, with no error, while mcring notices and after; a replica that
comes back empty is filled by reads (read repair); a replica that was out
while a key changed never serves the old value afterwards.
"""

import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest  # noqa: E402
from mctest import wait_for  # noqa: E402

HEALTH = {"interval_ms": 100, "timeout_ms": 250, "rise": 1, "fall": 2}


def replicated_pools(replicas_default, extra_pools=""):
    def text(c):
        return ("[pool default]\nreplicas = %d\n" % replicas_default +
                c.pool_lines(c.names) + extra_pools)
    return ([], text)


class ReplicaCase(mctest.ClusterTestCase):
    NEEDS_MCRING = True

    def routes(self, keys):
        return mctest.route_file(self.cluster.mcring.config_path, keys,
                                 pools=True)

    def holders(self, keys, skip=()):
        """{key: {backend: value}} read directly from every backend."""
        got = {k: {} for k in keys}
        for m in self.cluster.backends:
            if m.name in skip:
                continue
            with m.client(timeout=10.0) as bc:
                for i in range(0, len(keys), 100):
                    for v in bc.get_multi(keys[i:i + 100]):
                        got[v[0]][m.name] = v[2]
        return got

    def get_hits(self):
        """{backend: its get_hits}, read directly."""
        out = {}
        for m in self.cluster.backends:
            with m.client() as bc:
                out[m.name] = int(bc.stats()["get_hits"])
        return out

    def wait_state(self, name, state, timeout=20):
        def ok():
            st = mctest.stats_backends(self.cluster.port)
            return st.get(name, {}).get("state") == state
        wait_for(ok, timeout, "%s %s" % (name, state))


class ReplicaPlacementTest(ReplicaCase):
    """Five backends: the default pool keeps 2 copies, pool r3 (keys
    r3:...) 3."""
    CLUSTER_ARGS = {"nbackends": 5, "health": HEALTH}

    @classmethod
    def setUpClass(cls):
        def text(c):
            return ("[pool default]\nreplicas = 2\n" +
                    c.pool_lines(c.names) +
                    "\n[pool r3]\nreplicas = 3\n" + c.pool_lines(c.names) +
                    "\n[routes]\nr3: = r3\n")
        cls.CLUSTER_ARGS = dict(cls.CLUSTER_ARGS, pools=([], text))
        super().setUpClass()

    def test_writes_reach_exactly_the_replicas(self):
        keys = ["rep-%d" % i for i in range(120)] + \
               ["r3:rep-%d" % i for i in range(120)]
        c = self.client(timeout=10.0)
        c.send(b"".join(b"set %s 5 0 3\r\nabc\r\n" % k.encode()
                        for k in keys[::2]))
        for _ in keys[::2]:
            self.assertEqual(c.readline(), b"STORED")
        # noreply writes are replicated as well
        c.send(b"".join(b"set %s 5 0 3 noreply\r\nabc\r\n" % k.encode()
                        for k in keys[1::2]))
        self.assertEqual(c.get_multi(keys[-1:])[0][2], b"abc")
        routes = self.routes(keys)
        held = self.holders(keys)
        for k in keys:
            pool, order = routes[k]
            n = 3 if k.startswith("r3:") else 2
            self.assertEqual(pool, "r3" if n == 3 else "default")
            self.assertEqual(set(held[k]), set(order[:n]), k)
            self.assertEqual(set(held[k].values()), {b"abc"}, k)

    def test_every_write_command_reaches_every_replica(self):
        c = self.client()
        k = self.key()
        order = self.routes([k])[k][1][:2]
        self.assertEqual(c.set(k, "10"), b"STORED")
        self.assertEqual(c.append(k, "0"), b"STORED")
        self.assertEqual(c.prepend(k, "1"), b"STORED")
        self.assertEqual(c.incr(k, 5), b"1105")
        self.assertEqual(c.decr(k, 100), b"1005")
        self.assertEqual(c.touch(k, 100), b"TOUCHED")
        held = self.holders([k])[k]
        self.assertEqual(held, {order[0]: b"1005", order[1]: b"1005"})
        self.assertEqual(c.delete(k), b"DELETED")
        self.assertEqual(self.holders([k])[k], {})
        self.assertEqual(c.delete(k), b"NOT_FOUND")
        # cas: on the first replica; the other drops the key
        self.assertEqual(c.set(k, "a"), b"STORED")
        _, cas = c.gets(k)
        self.assertEqual(c.cas(k, "b", cas), b"STORED")
        self.assertEqual(self.holders([k])[k], {order[0]: b"b"})
        self.assertEqual(c.get(k), b"b")

    def test_meta_writes_reach_every_replica(self):
        c = self.client()
        k = self.key()
        order = self.routes([k])[k][1][:2]
        c.send(b"ms %s 2 T0 F3 O7 k\r\n10\r\n" % k.encode())
        self.assertEqual(c.readline(), b"HD O7 k%s" % k.encode())
        c.send(b"ma %s v N0 O1\r\n" % k.encode())
        self.assertEqual(c.readline(), b"VA 2 O1")
        self.assertEqual(c.readline(), b"11")
        # quiet: nothing on success; the mn ends it
        c.send(b"ma %s q D5\r\nmn\r\n" % k.encode())
        self.assertEqual(c.readline(), b"MN")
        held = self.holders([k])[k]
        self.assertEqual(held, {order[0]: b"16", order[1]: b"16"})
        for b in order:
            with self.cluster.backend(b).client() as bc:
                bc.send(b"mg %s f\r\n" % k.encode())
                self.assertEqual(bc.readline(), b"HD f3", b)
        # a compared cas: the first replica; the other drops the key
        c.send(b"mg %s c\r\n" % k.encode())
        cas = int(c.readline().split()[1][1:])
        c.send(b"ms %s 1 C%d\r\nx\r\n" % (k.encode(), cas))
        self.assertEqual(c.readline(), b"HD")
        self.assertEqual(self.holders([k])[k], {order[0]: b"x"})
        # md: gone everywhere, then a pipelined mg misses
        self.assertEqual(c.set(k, "y"), b"STORED")
        c.send(b"md %s\r\nmg %s v\r\n" % (k.encode(), k.encode()))
        self.assertEqual(c.readline(), b"HD")
        self.assertEqual(c.readline(), b"EN")
        self.assertEqual(self.holders([k])[k], {})

    def test_pipelined_delete_then_get_misses(self):
        keys = [self.key() for _ in range(40)]
        c = self.client(timeout=10.0)
        c.send(b"".join(b"set %s 0 0 1\r\nv\r\ndelete %s\r\nget %s\r\n"
                        % (k.encode(), k.encode(), k.encode())
                        for k in keys))
        for k in keys:
            self.assertEqual(c.readline(), b"STORED", k)
            self.assertEqual(c.readline(), b"DELETED", k)
            self.assertEqual(c.readline(), b"END", k)
        self.assertEqual(self.holders(keys), {k: {} for k in keys})

    def test_replica_writes_are_counted(self):
        c = self.client()
        before = int(c.stats()["replica_writes"])
        for i in range(10):
            self.assertEqual(c.set(self.key(), "v"), b"STORED")
        for i in range(10):
            self.assertEqual(c.set("r3:" + self.key(), "v"), b"STORED")
        st = c.stats()
        self.assertEqual(int(st["replica_writes"]) - before, 10 + 20)
        self.assertEqual(st["replica_write_failures"], "0")


class HotkeySpreadTest(ReplicaCase):
    """hotkey_spread = yes: a hot key of a replicated pool is read from
    each of its replicas in turn; other keys, and other pools, from their
    first replica only."""

    @classmethod
    def setUpClass(cls):
        def text(c):
            return ("[pool default]\nreplicas = 3\nhotkey_spread = yes\n" +
                    c.pool_lines(c.names) +
                    "\n[pool plain]\nreplicas = 3\n" +
                    c.pool_lines(c.names) + "\n[routes]\nplain: = plain\n")
        cls.CLUSTER_ARGS = {"nbackends": 4, "health": HEALTH,
                            "proxy": {"hotkey_sample": 1, "threads": 1},
                            "pools": ([], text)}
        super().setUpClass()

    def read(self, c, key, n):
        """n gets of key (a hit each); the get_hits each backend gained."""
        before = self.get_hits()
        c.send(b"get %s\r\n" % key.encode() * n)
        for _ in range(n):
            self.assertEqual(c.readline()[:6], b"VALUE ")
            self.assertEqual(c.readline(), b"v")
            self.assertEqual(c.readline(), b"END")
        after = self.get_hits()
        return {b: after[b] - before[b] for b in after}

    def test_hot_key_read_from_every_replica(self):
        hot, cold = "hot-key", "plain:hot-key"
        c = self.client(timeout=10.0)
        self.assertEqual(c.set(hot, "v"), b"STORED")
        self.assertEqual(c.set(cold, "v"), b"STORED")
        order = self.routes([hot, cold])
        n = 600
        delta = self.read(c, hot, n)
        # every replica of the hot key served a good part of its reads
        for b in order[hot][1][:3]:
            self.assertGreater(delta[b], n // 10, (b, delta))
        self.assertGreater(int(c.stats()["hotkey_spread_reads"]), n // 2)
        # a pool without hotkey_spread: its owner only
        delta = self.read(c, cold, n)
        self.assertEqual(delta, {b: n if b == order[cold][1][0] else 0
                                 for b in delta})


class FailureCase(ReplicaCase):
    """One cluster per test (backends are killed and restarted): five
    backends, N copies of every key."""
    N = 3

    @classmethod
    def setUpClass(cls):
        if mctest.direct_mode():
            raise unittest.SkipTest("needs mcring (MCTEST_DIRECT=1)")

    def setUp(self):
        super().setUp()
        self.cluster = mctest.Cluster(nbackends=5, health=HEALTH,
                                      pools=replicated_pools(self.N))
        self.addCleanup(self.cluster.close)
        self.cluster.start()

    def fill(self, keys):
        c = self.client(timeout=10.0)
        c.send(b"".join(b"set %s 0 0 %d\r\n%s\r\n"
                        % (k.encode(), len(k), k.encode()) for k in keys))
        for _ in keys:
            self.assertEqual(c.readline(), b"STORED")
        return c

    def check_all(self, keys):
        """Every key found with its value, through the proxy, and no
        error: a get of each, then one multi-get of them all."""
        c = self.client(timeout=10.0)
        for k in keys:
            self.assertEqual(c.get(k), k.encode(), k)
        got = c.get_multi(keys)
        self.assertEqual([g[0] for g in got], keys)


class ReplicaFailureTest(FailureCase):

    def test_killed_replica_costs_no_misses_and_no_errors(self):
        keys = ["avail-%d" % i for i in range(300)]
        self.fill(keys)
        routes = self.routes(keys)
        # The backend that owns the most keys.
        owners = [routes[k][1][0] for k in keys]
        victim = max(set(owners), key=owners.count)
        self.cluster.backend(victim).kill()
        # At once, while mcring finds out, and once it knows.
        self.check_all(keys)
        self.wait_state(victim, "DOWN")
        self.check_all(keys)
        st = self.client().stats()
        self.assertEqual(st["get_errors"], "0")

    def test_unnameable_key_write_refused_while_a_replica_is_out(self):
        """A classic key its recovery cannot name (one ending in CR,
        which memcached takes) is not written while one of its replicas
        is out: that replica would keep the older value with nobody to
        delete it."""
        keys = [b"cr-%d\r" % i for i in range(60)]
        out = subprocess.run(
            [mctest.mcring_path(), "-c", self.cluster.mcring.config_path,
             "--route"] + keys, stdout=subprocess.PIPE, timeout=60,
            check=True).stdout
        routes = {}
        for line in out.split(b"\n"):
            tok = line.split(b" ")
            if len(tok) > 2 and tok[0] in keys:
                routes[tok[0]] = [t.decode() for t in tok[1:]
                                  if not t.startswith(b"pool=")]
        self.assertEqual(sorted(routes), sorted(keys))
        c = self.client(timeout=10.0)
        for k in keys:
            c.send(b"set %s 0 0 3\r\nold\r\n" % k)
            self.assertEqual(c.readline(), b"STORED")
        victim = routes[keys[0]][1]
        mine = [k for k in keys if victim in routes[k][:self.N]]
        others = [k for k in keys if k not in mine]
        self.assertTrue(mine and others)
        self.cluster.backend(victim).pause()
        self.wait_state(victim, "DOWN")
        refused = b"SERVER_ERROR backend unavailable"
        for k in mine[:5]:
            c.send(b"set %s 0 0 3\r\nnew\r\n" % k)
            self.assertEqual(c.readline(), refused, k)
            c.send(b"delete %s\r\n" % k)
            self.assertEqual(c.readline(), refused, k)
            c.send(b"get %s\r\n" % k)
            self.assertEqual(c.readline(), b"VALUE %s 0 3" % k)
            self.assertEqual(c.readline(), b"old")
            self.assertEqual(c.readline(), b"END")
        for k in others[:5]:
            c.send(b"set %s 0 0 3\r\nnew\r\n" % k)
            self.assertEqual(c.readline(), b"STORED", k)
        self.cluster.backend(victim).resume()

    def test_writes_while_a_replica_is_out_are_never_stale(self):
        keys = ["stale-%d" % i for i in range(100)]
        self.fill(keys)
        routes = self.routes(keys)
        victim = routes[keys[0]][1][0]
        mine = [k for k in keys if victim in routes[k][1][:self.N]]
        self.cluster.backend(victim).pause()
        self.wait_state(victim, "DOWN")
        c = self.client(timeout=10.0)
        for k in mine:
            self.assertEqual(c.set(k, "new"), b"STORED")
        self.cluster.backend(victim).resume()
        self.wait_state(victim, "UP")
        # Only the victim is left of each key's replicas: it must not
        # answer the value it held before.
        for k in mine:
            others = [b for b in routes[k][1][:self.N] if b != victim]
            for b in others:
                with self.cluster.backend(b).client() as bc:
                    self.assertEqual(bc.delete(k), b"DELETED", (k, b))
        for k in mine:
            self.assertIn(c.get(k), (None, b"new"), k)


class ReadRepairTest(FailureCase):
    N = 2

    def test_read_repair_fills_the_replica_that_came_back_empty(self):
        keys = ["repair-%d" % i for i in range(200)]
        self.fill(keys)
        routes = self.routes(keys)
        owners = [routes[k][1][0] for k in keys]
        victim = max(set(owners), key=owners.count)
        owned = [k for k in keys if routes[k][1][0] == victim]
        m = self.cluster.backend(victim)
        m.kill()
        self.wait_state(victim, "DOWN")
        m.start()   # the same port, empty
        self.wait_state(victim, "UP")
        with m.client() as bc:
            self.assertEqual(bc.get_multi(owned), [])
        self.check_all(keys)

        def repaired():
            with m.client() as bc:
                return len(bc.get_multi(owned)) == len(owned)
        wait_for(repaired, 10, "the read repair of %s" % victim)
        with m.client() as bc:
            for g in bc.get_multi(owned):
                self.assertEqual(g[2], g[0].encode())


class RegionsTest(ReplicaCase):
    """Two regions of three backends each: the proxy is in eu, and every
    key's route is local-first."""

    @classmethod
    def setUpClass(cls):
        def text(c):
            return ("[pool eu]\nregion = eu\n" +
                    c.pool_lines(["b1", "b2", "b3"]) +
                    "\n[pool us]\nregion = us\n" +
                    c.pool_lines(["b4", "b5", "b6"]) +
                    "\n[routes]\n* = local-first\n")
        cls.CLUSTER_ARGS = {"nbackends": 6, "health": HEALTH,
                            "proxy": {"region": "eu"}, "pools": ([], text)}
        super().setUpClass()

    EU, US = ("b1", "b2", "b3"), ("b4", "b5", "b6")

    def in_region(self, keys, region):
        """{key: set of the region's backends holding it}."""
        held = self.holders(keys)
        return {k: set(held[k]) & set(region) for k in keys}

    def test_writes_reach_both_regions_and_reads_stay_local(self):
        keys = [self.key() for _ in range(60)]
        c = self.client(timeout=10.0)
        for k in keys:
            self.assertEqual(c.set(k, "v"), b"STORED")
        routes = self.routes(keys)
        eu = self.in_region(keys, self.EU)
        for k in keys:
            self.assertEqual(routes[k][0], "eu")
            self.assertEqual(eu[k], {routes[k][1][0]}, k)
        # the other region's copy is not waited for: it comes
        wait_for(lambda: all(len(v) == 1 for v in
                             self.in_region(keys, self.US).values()),
                 10, "the writes to the other region")
        before = self.get_hits()
        for _ in range(3):
            got = c.get_multi(keys)
            self.assertEqual(len(got), len(keys))
        after = self.get_hits()
        for b in self.US:
            self.assertEqual(after[b], before[b], b)
        self.assertEqual(sum(after[b] - before[b] for b in self.EU),
                         3 * len(keys))
        self.assertGreater(int(c.stats()["region_writes"]), 0)

    def test_remote_hit_is_copied_back_locally(self):
        k = self.key()
        for b in self.US:
            with self.cluster.backend(b).client() as bc:
                self.assertEqual(bc.set(k, "from-us"), b"STORED")
        c = self.client()
        self.assertEqual(c.get(k), b"from-us")
        owner = self.routes([k])[k][1][0]

        def copied():
            with self.cluster.backend(owner).client() as bc:
                return bc.get(k) == b"from-us"
        wait_for(copied, 10, "the copy back into eu")
        before = self.get_hits()
        self.assertEqual(c.get(k), b"from-us")
        after = self.get_hits()
        self.assertEqual({b: after[b] - before[b] for b in after if
                          after[b] != before[b]}, {owner: 1})

    def test_delete_reaches_both_regions(self):
        keys = [self.key() for _ in range(30)]
        c = self.client(timeout=10.0)
        for k in keys:
            self.assertEqual(c.set(k, "v"), b"STORED")
        wait_for(lambda: all(len(v) == 1 for v in
                             self.in_region(keys, self.US).values()),
                 10, "the writes to the other region")
        for k in keys:
            self.assertEqual(c.delete(k), b"DELETED")
        # deletes are waited for: nothing is left anywhere once answered
        self.assertEqual(self.holders(keys), {k: {} for k in keys})
        for k in keys:
            self.assertIsNone(c.get(k))


class RegionConfigTest(unittest.TestCase):
    CASES = [
        ("[pool a]\nregion = eu\nx = 127.0.0.1:1\n[routes]\n"
         "* = local-first\n", 5, "local-first needs [proxy] region"),
        ("[proxy]\nregion = ap\n[pool a]\nregion = eu\nx = 127.0.0.1:1\n"
         "[routes]\n* = local-first\n", 7, "no pool of region 'ap'"),
        ("[proxy]\nregion = eu\n[pool a]\nregion = eu\nx = 127.0.0.1:1\n"
         "[pool b]\ny = 127.0.0.1:2\n[routes]\n* = local-first a b\n", 9,
         "pool 'b' has no region"),
        ("[proxy]\nregion = eu\n[pool a]\nregion = eu\nx = 127.0.0.1:1\n"
         "[routes]\n* = local-first a nope\n", 7,
         "names a pool that does not exist"),
        ("[proxy]\nregion = e u\n[backends]\nx = 127.0.0.1:1\n", 2,
         "region: bad name"),
    ]

    def test_bad_configs(self):
        import shutil
        import tempfile
        d = tempfile.mkdtemp(prefix="mctest-regions-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "bad.ini")
        for text, line, msg in self.CASES:
            with open(path, "w") as f:
                f.write(text)
            r = mctest.run_mcring(["-t", "-c", path])
            self.assertEqual(r.returncode, 1, text)
            self.assertIn("%s:%d: " % (path, line), r.stderr, text)
            self.assertIn(msg, r.stderr, text)


if __name__ == "__main__":
    mctest.main()
