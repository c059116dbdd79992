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


def index_of(m, key):
    """The index item of key on memcached m: (token, chunks, bytes)."""
    with m.client() as bc:
        v = bc.get(key)
    assert v is not None and v.startswith(b"\0mcring-big 1 "), v
    token, n, total = v[len(b"\0mcring-big 1 "):].split()
    return token.decode(), int(n), int(total)


class BigCase(mctest.ClusterTestCase):
    NEEDS_MCRING = True
    PROXY = {"big_value_split": SPLIT, "max_value_size": MAX_VALUE,
             "threads": 2}

    @classmethod
    def setUpClass(cls):
        cls.CLUSTER_ARGS = {"nbackends": 2, "proxy": dict(cls.PROXY)}
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
            got = b"".join(bc.get("mcring:big:%s:%d" % (token, i))
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
            self.assertEqual(bc.delete("mcring:big:%s:%d" % (token, 2)),
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
            self.assertEqual(bc.delete("mcring:big:%s:%d" % (token, n - 1)),
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
            for key in [k] + ["mcring:big:%s:%d" % (token, i)
                              for i in range(n)]:
                bc.send(b"mg " + key.encode() + b" t\r\n")
                ttl = int(bc.readline().split()[1][1:])
                self.assertGreater(ttl, 1000, key)

    def test_append_to_an_index_reads_as_a_miss(self):
        k = self.key()
        c = self.client(timeout=20.0)
        self.assertEqual(c.set(k, self.value(200000)), b"STORED")
        self.assertEqual(c.append(k, b"more"), b"STORED")
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
            self.assertEqual(bc.delete("mcring:big:%s:%d" % (token, 1)),
                             b"DELETED")
        c.send(b"mg %s v k Oxy\r\nmg %s v q\r\nmn\r\n"
               % (k.encode(), k.encode()))
        self.assertEqual(c.readline(), b"EN k%s Oxy" % k.encode())
        self.assertEqual(c.readline(), b"MN")
        with self.cluster.backend(m.name).client() as bc:
            bc.send(b"mg nokey-at-all v k Oxy\r\n")
            self.assertEqual(bc.readline(), b"EN knokey-at-all Oxy")

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
        index_of(self.cluster.backend("b2"), k)


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
