# SPDX-License-Identifier: BSD-3-Clause
"""Integration tests: big values ([proxy] big_value_split = SIZE).

Real memcached backends (1 MB item size limit, their default) behind one
mcring.  A value over the split is stored as chunks plus an index item on
its key's backend and read back whole, byte for byte, also in multi-gets
and with gets/cas; a missing chunk or an unreadable index is a miss, never
a torn value; an overwrite never mixes chunks of two writes; a value of
too many chunks is refused as memcached refuses one over its item size;
without the setting nothing is split.
"""

import base64
import os
import random
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest  # noqa: E402

SPLIT = 100000
MAX_VALUE = 8 << 20
CHUNKS_MAX = 1024         # src/big.h


def big_stats(port):
    st = mctest.proxy_stats(port)
    return {k: int(v) for k, v in st.items() if k.startswith("big_")}


def chunk(key, token, i):
    """The key of chunk i of key's value written with token."""
    return "%s:mcbig:%s:%03x" % (key, token, i)


def index_of(m, key, edited=False):
    """The index item of key on memcached m: (token, chunks, bytes);
    edited: bytes may have been appended or prepended to it."""
    with m.client() as bc:
        v = bc.get(key)
    magic = b"\0mcring-big 1 "
    assert v is not None and (magic in v if edited else v.startswith(magic))
    v = v[v.index(magic) + len(magic):]
    assert b"\0" in v if edited else v.endswith(b"\0"), len(v)
    token, n, total = v[:v.index(b"\0")].split()
    return token.decode(), int(n), int(total)


class BigCase(mctest.ClusterTestCase):
    NEEDS_MCRING = True
    PROXY = {"big_value_split": SPLIT, "max_value_size": MAX_VALUE,
             "threads": 2}
    NBACKENDS = 2
    MEMCACHED_ARGS = ()

    @classmethod
    def setUpClass(cls):
        cls.CLUSTER_ARGS = {"nbackends": cls.NBACKENDS,
                            "proxy": dict(cls.PROXY),
                            "memcached_args": list(cls.MEMCACHED_ARGS)}
        super().setUpClass()

    def setUp(self):
        super().setUp()
        self.rng = random.Random(self._testMethodName)

    def value(self, n):
        return bytes(self.rng.getrandbits(8) for _ in range(n))

    def owner(self, key):
        return self.cluster.backend(self.cluster.owners([key])[key])


class BigValueTest(BigCase):

    def test_stored_split_and_read_whole(self):
        k = self.key()
        v = self.value(1500000)
        c = self.client(timeout=20.0)
        before = big_stats(self.cluster.port)
        self.assertEqual(c.set(k, v, flags=7), b"STORED")
        c.send(b"get " + k.encode() + b"\r\n")
        self.assertEqual(c.read_until(),
                         b"VALUE %s 7 %d\r\n%s\r\nEND\r\n"
                         % (k.encode(), len(v), v))
        after = big_stats(self.cluster.port)
        self.assertEqual(after["big_sets"] - before["big_sets"], 1)
        self.assertEqual(after["big_chunks"] - before["big_chunks"], 15)
        self.assertEqual(after["big_gets"] - before["big_gets"], 1)
        # On the key's backend: a small index and the chunks it names.
        m = self.owner(k)
        token, n, total = index_of(m, k)
        self.assertEqual((n, total), (15, len(v)))
        with m.client(timeout=20.0) as bc:
            got = b"".join(bc.get(chunk(k, token, i))
                           for i in range(n))
        self.assertEqual(got, v)

    def test_multi_get_mixes_small_big_and_missing(self):
        keys = [self.key(str(i)) for i in range(6)]
        vals = {keys[0]: b"small", keys[1]: self.value(250000),
                keys[3]: self.value(SPLIT + 1), keys[4]: b"x" * SPLIT}
        c = self.client(timeout=20.0)
        for k, v in vals.items():
            self.assertEqual(c.set(k, v), b"STORED")
        c.send(b"get " + b" ".join(k.encode() for k in keys) + b"\r\n")
        want = b"".join(b"VALUE %s 0 %d\r\n%s\r\n" % (k.encode(), len(v), v)
                        for k in keys if k in vals
                        for v in [vals[k]]) + b"END\r\n"
        self.assertEqual(c.read_until(), want)
        # The split is "larger than": a value of exactly SPLIT is plain.
        with self.owner(keys[4]).client() as bc:
            self.assertEqual(bc.get(keys[4]), vals[keys[4]])

    def test_gets_and_cas(self):
        k = self.key()
        c = self.client(timeout=20.0)
        self.assertEqual(c.set(k, self.value(300000)), b"STORED")
        c.send(b"gets " + k.encode() + b"\r\n")
        head = c.readline().split()
        self.assertEqual(head[:4], [b"VALUE", k.encode(), b"0", b"300000"])
        cas = int(head[4])
        c.read_exact(300002)
        self.assertEqual(c.readline(), b"END")
        v2 = self.value(400000)
        self.assertEqual(c.cas(k, v2, cas), b"STORED")
        self.assertEqual(c.cas(k, self.value(200000), cas), b"EXISTS")
        self.assertEqual(c.get(k), v2)

    def test_missing_chunk_is_a_miss_not_torn(self):
        k = self.key()
        c = self.client(timeout=20.0)
        self.assertEqual(c.set(k, self.value(500000)), b"STORED")
        m = self.owner(k)
        token, n, _ = index_of(m, k)
        with m.client() as bc:
            self.assertEqual(bc.delete(chunk(k, token, 2)),
                             b"DELETED")
        before = big_stats(self.cluster.port)
        self.assertIsNone(c.get(k))
        c.send(b"get " + k.encode() + b" " + k.encode() + b"\r\n")
        self.assertEqual(c.read_until(), b"END\r\n")
        self.assertEqual(big_stats(self.cluster.port)["big_misses"] -
                         before["big_misses"], 3)
        # The last chunk gone: a miss too.
        self.assertEqual(c.set(k, self.value(500000)), b"STORED")
        token, n, _ = index_of(m, k)
        with m.client() as bc:
            self.assertEqual(bc.delete(chunk(k, token, n - 1)),
                             b"DELETED")
        self.assertIsNone(c.get(k))

    def test_overwrite_never_mixes_writes(self):
        k = self.key()
        c = self.client(timeout=20.0)
        v1, v2 = self.value(700000), self.value(650000)
        self.assertEqual(c.set(k, v1), b"STORED")
        t1 = index_of(self.owner(k), k)[0]
        self.assertEqual(c.set(k, v2), b"STORED")
        t2 = index_of(self.owner(k), k)[0]
        self.assertNotEqual(t1, t2)
        self.assertEqual(c.get(k), v2)
        # Small again: plain.
        self.assertEqual(c.set(k, b"tiny"), b"STORED")
        self.assertEqual(c.get(k), b"tiny")
        with self.owner(k).client() as bc:
            self.assertEqual(bc.get(k), b"tiny")

    def test_gat_touches_the_chunks_too(self):
        k = self.key()
        c = self.client(timeout=20.0)
        v = self.value(250000)
        self.assertEqual(c.set(k, v, exptime=100), b"STORED")
        c.send(b"gat 5000 " + k.encode() + b"\r\n")
        self.assertEqual(c.read_until(),
                         b"VALUE %s 0 %d\r\n%s\r\nEND\r\n"
                         % (k.encode(), len(v), v))
        m = self.owner(k)
        token, n, _ = index_of(m, k)
        with m.client() as bc:
            for key in [k] + [chunk(k, token, i)
                              for i in range(n)]:
                bc.send(b"mg " + key.encode() + b" t\r\n")
                ttl = int(bc.readline().split()[1][1:])
                self.assertGreater(ttl, 1000, key)

    def test_append_and_prepend_to_a_big_value(self):
        k = self.key()
        c = self.client(timeout=20.0)
        v = self.value(200000)
        self.assertEqual(c.set(k, v, flags=9), b"STORED")
        # The backend appends to the index: what was added is read around
        # the chunks, as memcached would answer for the whole value.
        self.assertEqual(c.append(k, b"more"), b"STORED")
        self.assertTrue(c.get(k) == v + b"more")
        self.assertEqual(c.prepend(k, b"pre\0"), b"STORED")
        want = b"pre\0" + v + b"more"
        self.assertTrue(c.get(k) == want)
        c.send(b"ms %s 2 MA\r\n!!\r\nms %s 1 MP\r\n<\r\n"
               % (k.encode(), k.encode()))
        self.assertEqual(c.readline(), b"HD")
        self.assertEqual(c.readline(), b"HD")
        want = b"<" + want + b"!!"
        got = c.get_multi([k])
        self.assertEqual(got[0][1], 9)
        self.assertTrue(got[0][2] == want)
        c.send(b"mg %s s v f\r\n" % k.encode())
        self.assertEqual(c.readline(),
                         b"VA %d s%d f9" % (len(want), len(want)))
        self.assertTrue(c.read_exact(len(want) + 2) == want + b"\r\n")
        # Still all chunks or a miss.
        m = self.owner(k)
        token, n, _ = index_of(m, k, edited=True)
        with m.client() as bc:
            self.assertEqual(bc.delete(chunk(k, token, n - 1)),
                             b"DELETED")
        self.assertIsNone(c.get(k))
        self.assertEqual(c.delete(k), b"DELETED")
        self.assertIsNone(c.get(k))

    def test_noreply_and_add_replace(self):
        k = self.key()
        c = self.client(timeout=20.0)
        v = self.value(210000)
        c.send(b"set %s 3 0 %d noreply\r\n%s\r\n" % (k.encode(), len(v), v))
        self.assertEqual(c.call("version")[:8], b"VERSION ")
        self.assertEqual(c.add(k, self.value(200001)), b"NOT_STORED")
        v2 = self.value(300000)
        self.assertEqual(c.replace(k, v2), b"STORED")
        self.assertEqual(c.get(k), v2)
        self.assertEqual(c.replace(self.key("none"), v2), b"NOT_STORED")

    def test_meta_get_reads_the_whole_value(self):
        k, small = self.key(), self.key("small")
        v = self.value(300000)
        c = self.client(timeout=20.0)
        self.assertEqual(c.set(k, v, flags=5), b"STORED")
        self.assertEqual(c.set(small, b"abc", flags=5), b"STORED")
        flags = b"s v f k Oab t c"
        # What the backend answers for a plain value, with these flags ...
        c.send(b"mg %s %s\r\n" % (small.encode(), flags))
        plain = c.readline().split()
        self.assertEqual(c.readline(), b"abc")
        # ... is what a big value gets, its size in VA and s.
        c.send(b"mg %s %s\r\nmg %s v q\r\nmn\r\n"
               % (k.encode(), flags, k.encode()))
        head = c.readline().split()
        self.assertEqual(len(head), len(plain))
        self.assertEqual(head[:3], [b"VA", b"300000", b"s300000"])
        self.assertEqual(head[3], b"f5")
        self.assertEqual(head[4], b"k" + k.encode())
        self.assertEqual(head[5], b"Oab")
        self.assertEqual(c.read_exact(300002), v + b"\r\n")
        self.assertEqual(c.readline(), b"VA 300000")
        self.assertEqual(c.read_exact(300002), v + b"\r\n")
        self.assertEqual(c.readline(), b"MN")
        # A chunk gone: memcached's miss, k and O echoed; quiet: nothing.
        m = self.owner(k)
        token, n, _ = index_of(m, k)
        with m.client() as bc:
            self.assertEqual(bc.delete(chunk(k, token, 1)),
                             b"DELETED")
        c.send(b"mg %s v k Oxy\r\nmg %s v q\r\nmn\r\n"
               % (k.encode(), k.encode()))
        self.assertEqual(c.readline(), b"EN k%s Oxy" % k.encode())
        self.assertEqual(c.readline(), b"MN")
        with self.cluster.backend(m.name).client() as bc:
            bc.send(b"mg nokey-at-all v k Oxy\r\n")
            self.assertEqual(bc.readline(), b"EN knokey-at-all Oxy")

    def test_meta_set_splits_as_set_does(self):
        k, small = self.key(), self.key("small")
        v = self.value(300000)
        c = self.client(timeout=20.0)
        flags = b"T0 F7 c k Oab"
        c.send(b"ms %s 3 %s\r\nabc\r\n" % (small.encode(), flags))
        plain = c.readline().split()
        c.send(b"ms %s %d %s\r\n%s\r\n" % (k.encode(), len(v), flags, v))
        head = c.readline().split()
        # The client's flags reach the index: the reply is shaped as for
        # a plain value.
        self.assertEqual(len(head), len(plain))
        self.assertEqual(head[0], b"HD")
        self.assertEqual(head[2:], [b"k" + k.encode(), b"Oab"])
        cas = int(head[1][1:])
        token, n, total = index_of(self.owner(k), k)
        self.assertEqual((n, total), (3, 300000))
        c.send(b"gets %s\r\n" % k.encode())
        self.assertEqual(c.readline(), b"VALUE %s 7 300000 %d"
                         % (k.encode(), cas))
        self.assertTrue(c.read_exact(300002) == v + b"\r\n")
        self.assertEqual(c.readline(), b"END")
        # Modes and compare-and-swap, answered by the index's write.
        v2 = self.value(250000)
        c.send(b"ms %s %d ME\r\n%s\r\n" % (k.encode(), len(v2), v2))
        self.assertEqual(c.readline(), b"NS")
        c.send(b"ms %s %d MR\r\n%s\r\n" % (self.key("none").encode(),
                                              len(v2), v2))
        self.assertEqual(c.readline(), b"NS")
        c.send(b"ms %s %d C%d\r\n%s\r\n" % (k.encode(), len(v2), cas + 1,
                                               v2))
        self.assertEqual(c.readline(), b"EX")
        self.assertTrue(c.get(k) == v)
        c.send(b"ms %s %d C%d MR\r\n%s\r\n" % (k.encode(), len(v2), cas,
                                                  v2))
        self.assertEqual(c.readline(), b"HD")
        self.assertTrue(c.get(k) == v2)
        # q: nothing but the MN; a base64 key; T gives the chunks the TTL.
        k2, k3 = self.key("q"), self.key("b64")
        c.send(b"ms %s %d q T5000\r\n%s\r\nmn\r\n"
               % (k2.encode(), len(v), v))
        self.assertEqual(c.readline(), b"MN")
        self.assertTrue(c.get(k2) == v)
        token, n, _ = index_of(self.owner(k2), k2)
        with self.owner(k2).client() as bc:
            for i in range(n):
                bc.send(b"mg %s t\r\n" % chunk(k2, token, i).encode())
                ttl = int(bc.readline().split()[1][1:])
                self.assertGreater(ttl, 4000)
                self.assertLessEqual(ttl, 5000)
        c.send(b"ms %s %d b\r\n%s\r\n"
               % (base64.b64encode(k3.encode()), len(v2), v2))
        self.assertEqual(c.readline(), b"HD")
        self.assertTrue(c.get(k3) == v2)
        index_of(self.owner(k3), k3)
        self.assertGreaterEqual(big_stats(self.cluster.port)["big_sets"], 4)
        # A mode memcached refuses is the backend's to refuse.
        c.send(b"ms %s %d MX\r\n%s\r\n" % (k.encode(), len(v2), v2))
        self.assertTrue(c.readline().startswith(b"CLIENT_ERROR "))
        self.assertEqual(c.call("version")[:8], b"VERSION ")
        self.assertTrue(c.get(k) == v2)


    def test_a_read_pipelined_after_it_sees_it(self):
        k = self.key()
        c = self.client(timeout=20.0)
        self.assertEqual(c.set(k, b"old"), b"STORED")
        v = self.value(300000)
        c.send(b"set %s 0 0 %d\r\n%s\r\nget %s\r\nmg %s v\r\n"
               % (k.encode(), len(v), v, k.encode(), k.encode()))
        self.assertEqual(c.readline(), b"STORED")
        self.assertEqual(c.readline(), b"VALUE %s 0 300000" % k.encode())
        self.assertTrue(c.read_exact(300002) == v + b"\r\n")
        self.assertEqual(c.readline(), b"END")
        self.assertEqual(c.readline(), b"VA 300000")
        self.assertTrue(c.read_exact(300002) == v + b"\r\n")


class BigChunkFailsTest(BigCase):
    """A backend whose item size limit (-I 64k) is below the chunk size:
    every chunk write fails, the index is not written, and the client is
    answered as memcached answers a value it cannot store."""
    NBACKENDS = 1
    MEMCACHED_ARGS = ("-I", "64k", "-o", "slab_chunk_max=32768")

    def test_chunk_failure_is_the_writes_error(self):
        k = self.key()
        c = self.client(timeout=20.0)
        v = self.value(300000)
        self.assertEqual(c.set(k, b"old"), b"STORED")
        self.assertEqual(c.set(k, v), b"SERVER_ERROR out of memory storing "
                                      b"object")
        # As memcached does for a set: the old value is gone too.
        self.assertIsNone(c.get(k))
        self.assertEqual(c.set(k, b"old"), b"STORED")
        c.send(b"ms %s %d T0\r\n%s\r\n" % (k.encode(), len(v), v))
        self.assertEqual(c.readline(),
                         b"SERVER_ERROR out of memory storing object")
        self.assertIsNone(c.get(k))
        self.assertEqual(c.add(k, v), b"SERVER_ERROR out of memory storing "
                                      b"object")
        c.send(b"set %s 0 0 %d noreply\r\n%s\r\n" % (k.encode(), len(v), v))
        self.assertEqual(c.call("version")[:8], b"VERSION ")
        self.assertIsNone(c.get(k))
        with self.cluster.backends[0].client() as bc:
            self.assertIsNone(bc.get(k))
        self.assertGreaterEqual(
            big_stats(self.cluster.port)["big_chunk_failures"], 4)


class BigChunksTest(BigCase):
    """1 KB chunks: the 1024-chunk bound is crossed below max_value_size."""
    PROXY = {"big_value_split": 1000, "max_value_size": MAX_VALUE}

    def test_too_many_chunks_refused_as_too_large(self):
        k = self.key()
        c = self.client(timeout=20.0)
        self.assertEqual(c.set(k, b"old"), b"STORED")
        v = self.value(1000 * CHUNKS_MAX + 1)
        self.assertEqual(c.set(k, v),
                         b"SERVER_ERROR object too large for cache")
        # As memcached, the old value is gone.
        self.assertIsNone(c.get(k))
        ok = self.value(1000 * CHUNKS_MAX)
        self.assertEqual(c.set(k, ok), b"STORED")
        self.assertEqual(c.get(k), ok)


class BigFailoverTest(mctest.FreshClusterTestCase):
    """The key's owner down: chunks and index go to its fallback."""
    NBACKENDS = 2
    PROXY = {"big_value_split": SPLIT, "max_value_size": MAX_VALUE}
    HEALTH = {"interval_ms": 50, "timeout_ms": 100, "fall": 1}

    def test_on_the_fallback(self):
        keys = ["bigfo-%d" % i for i in range(40)]
        owners = self.cluster.owners(keys)
        k = [x for x in keys if owners[x] == "b1"][0]
        self.cluster.backend("b1").stop()
        mctest.wait_for(lambda: mctest.stats_backends(self.port)["b1"]
                        .get("state") == "DOWN", 10.0, "b1 DOWN")
        c = self.client(timeout=20.0)
        v = os.urandom(1200000)
        self.assertEqual(c.set(k, v), b"STORED")
        self.assertEqual(c.get(k), v)
        token, n, _ = index_of(self.cluster.backend("b2"), k)
        # The fallback keeps the chunks as briefly as the index: at most
        # failover_ttl (300 s by default), though the set asked for none.
        with self.cluster.backend("b2").client() as bc:
            for i in (0, n - 1):
                r = bc.call("mg %s:mcbig:%s:%03x t" % (k, token, i))
                self.assertTrue(r.startswith(b"HD t"), r)
                self.assertTrue(0 < int(r.split(b"t")[1]) <= 300, r)


class BigReplicaTest(mctest.ClusterTestCase):
    """replicas = 2: every replica holds the chunks with the index, so a
    big value is read whole from any of them, and a replica that lost
    it is not given an index without its chunks."""
    NEEDS_MCRING = True

    @classmethod
    def setUpClass(cls):
        def text(c):
            return ("[pool default]\nreplicas = 2\n" +
                    c.pool_lines(c.names))
        cls.CLUSTER_ARGS = {
            "nbackends": 3, "pools": ([], text),
            "proxy": {"big_value_split": SPLIT, "max_value_size": MAX_VALUE},
            "health": {"interval_ms": 50, "timeout_ms": 150, "rise": 1,
                       "fall": 1}}
        super().setUpClass()

    def order(self, key):
        return mctest.route_file(self.cluster.mcring.config_path, [key],
                                 pools=True)[key][1]

    def test_read_whole_from_every_replica(self):
        c = self.client(timeout=20.0)
        keys = [self.key(str(i)) for i in range(2)]
        vals = {k: os.urandom(250000) for k in keys}
        for k in keys:
            self.assertEqual(c.set(k, vals[k]), b"STORED")
        for k in keys:
            first, second = self.order(k)[:2]
            tok = [index_of(self.cluster.backend(b), k) for b in
                   (first, second)]
            self.assertEqual(tok[0], tok[1])
            with self.cluster.backend(second).client() as bc:
                for i in range(tok[0][1]):
                    self.assertIsNotNone(bc.get(chunk(k, tok[0][0], i)))
        # The first replica lost the key: read from the second, whole,
        # with get and with mg, again and again.
        k = keys[0]
        first, second = self.order(k)[:2]
        token, n, _ = index_of(self.cluster.backend(first), k)
        with self.cluster.backend(first).client() as bc:
            self.assertEqual(bc.delete(k), b"DELETED")
            for i in range(n):
                self.assertEqual(bc.delete(chunk(k, token, i)),
                                 b"DELETED")
        for _ in range(3):
            self.assertTrue(c.get(k) == vals[k])
            c.send(b"mg %s v s\r\n" % k.encode())
            self.assertEqual(c.readline(), b"VA 250000 s250000")
            self.assertTrue(c.read_exact(250002) == vals[k] + b"\r\n")
        # The first replica out: the second serves it.
        k = keys[1]
        first = self.order(k)[0]
        self.cluster.backend(first).pause()
        try:
            mctest.wait_for(lambda: mctest.stats_backends(self.cluster.port)
                            [first].get("state") == "DOWN", 10.0, "DOWN")
            self.assertTrue(c.get(k) == vals[k])
        finally:
            self.cluster.backend(first).resume()
        mctest.wait_for(lambda: mctest.stats_backends(self.cluster.port)
                        [first].get("state") == "UP", 10.0, "UP")
        # No index was copied back to where its chunks are not.
        with self.cluster.backend(self.order(keys[0])[0]).client() as bc:
            self.assertIsNone(bc.get(keys[0]))


class BigRegionsTest(mctest.ClusterTestCase):
    """Two regions, local-first: the chunks go to the other region with
    the index, so a big value missing here is read whole from there."""
    NEEDS_MCRING = True

    @classmethod
    def setUpClass(cls):
        def text(c):
            return ("[pool eu]\nregion = eu\n" + c.pool_lines(["b1", "b2"]) +
                    "\n[pool us]\nregion = us\n" +
                    c.pool_lines(["b3", "b4"]) +
                    "\n[routes]\n* = local-first\n")
        cls.CLUSTER_ARGS = {
            "nbackends": 4, "pools": ([], text),
            "proxy": {"region": "eu", "big_value_split": SPLIT,
                      "max_value_size": MAX_VALUE}}
        super().setUpClass()

    def held(self, names, key, token, n):
        """The backends of names that hold key's index and every chunk."""
        out = []
        for b in names:
            with self.cluster.backend(b).client() as bc:
                if bc.get(key) is not None and all(
                        bc.get(chunk(key, token, i)) is not None
                        for i in range(n)):
                    out.append(b)
        return out

    def test_chunks_reach_the_other_region(self):
        k = self.key()
        v = os.urandom(250000)
        c = self.client(timeout=20.0)
        self.assertEqual(c.set(k, v), b"STORED")
        eu = []
        for b in ("b1", "b2"):
            with self.cluster.backend(b).client() as bc:
                if bc.get(k) is not None:
                    eu.append(b)
        self.assertEqual(len(eu), 1)
        token, n, _ = index_of(self.cluster.backend(eu[0]), k)

        def in_us():
            return len(self.held(("b3", "b4"), k, token, n)) == 1
        mctest.wait_for(in_us, 10.0, "index and chunks in us")
        # Gone here: read from the other region, whole.
        with self.cluster.backend(eu[0]).client() as bc:
            self.assertEqual(bc.delete(k), b"DELETED")
        self.assertTrue(c.get(k) == v)


class NoBigTest(BigCase):
    PROXY = {"max_value_size": MAX_VALUE}

    def test_off(self):
        k = self.key()
        c = self.client(timeout=20.0)
        # The backend's own answer to a value over its item size.
        self.assertEqual(c.set(k, self.value(1500000)),
                         b"SERVER_ERROR object too large for cache")
        v = self.value(500000)
        self.assertEqual(c.set(k, v), b"STORED")
        with self.owner(k).client() as bc:
            self.assertEqual(bc.get(k), v)
        self.assertEqual(set(big_stats(self.cluster.port).values()), {0})


if __name__ == "__main__":
    mctest.main()
