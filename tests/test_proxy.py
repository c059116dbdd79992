#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Integration tests: the memcached text protocol through mcring.

Three real memcached backends behind one mcring (threads = 2).  Every
command of memcached's doc/protocol.txt that mcring supports, with its edge
cases; errors and resynchronisation; pipelining and fragmented input; key
routing checked against `mcring --route` by reading the backends directly;
concurrent clients; a killed backend.

With MCTEST_DIRECT=1 the "proxy" is one plain memcached (to debug these
tests): tests about mcring itself are skipped, and where memcached answers a
malformed command differently from mcring's contract the memcached answer
is accepted.
"""

import os
import random
import socket
import struct
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest  # noqa: E402
from mctest import ClusterTestCase, ConnectionClosed  # noqa: E402

MAX_U32 = 4294967295
MAX_U64 = 18446744073709551615


def value_block(key, value, flags=0):
    return b"VALUE %s %d %d\r\n%s\r\n" % (key.encode(), flags, len(value),
                                          value)


class ProtocolTest(ClusterTestCase):
    CLUSTER_ARGS = {"nbackends": 3, "proxy": {"threads": 2, "max_keys": 256}}

    # -- helpers

    def sync(self, c):
        """The next reply on c must be the answer to a fresh get: proves
        that nothing stray is queued before it."""
        k = self.key("sync")
        c.send(b"get " + k.encode() + b"\r\n")
        self.assertEqual(c.readline(), b"END",
                         "stray reply before the sync get's END")

    def spread(self, per_backend):
        """Keys spread over every backend (interleaved b1, b2, b3, ...);
        plain keys in direct mode."""
        tag = self.key("spread")
        if self.direct:
            return ["%s-%d" % (tag, i) for i in range(per_backend * 3)]
        by = self.cluster.keys_by_owner(tag, per_backend)
        out = []
        for i in range(per_backend):
            for name in self.cluster.names:
                out.append(by[name][i])
        return out

    def stored(self, reply):
        self.assertEqual(reply, b"STORED")

    # -- retrieval

    def test_get_miss(self):
        c = self.client()
        k = self.key()
        c.send(b"get " + k.encode() + b"\r\n")
        self.assertEqual(c.readline(), b"END")
        self.assertIsNone(c.get(k))
        self.sync(c)

    def test_get_hit(self):
        c = self.client()
        k = self.key()
        self.stored(c.set(k, b"hello"))
        c.send(b"get " + k.encode() + b"\r\n")
        self.assertEqual(c.read_until(), value_block(k, b"hello") + b"END\r\n")
        self.sync(c)

    def test_get_multi_all_hits_on_all_backends(self):
        c = self.client()
        keys = self.spread(4)
        vals = {k: ("value of %s" % k).encode() for k in keys}
        for k in keys:
            self.stored(c.set(k, vals[k]))
        order = list(keys)
        random.Random(1).shuffle(order)
        c.send(b"get " + " ".join(order).encode() + b"\r\n")
        expected = b"".join(value_block(k, vals[k]) for k in order)
        self.assertEqual(c.read_until(), expected + b"END\r\n")
        self.sync(c)

    def test_get_multi_all_misses(self):
        c = self.client()
        keys = self.spread(3)
        self.assertEqual(c.get_multi(keys), [])
        self.sync(c)

    def test_get_multi_mixed_in_client_order_single_end(self):
        c = self.client()
        keys = self.spread(6)
        rng = random.Random(2)
        present = set(keys[::2])
        vals = {}
        for k in sorted(present):
            vals[k] = rng.randbytes(rng.randint(0, 300))
            self.stored(c.set(k, vals[k], flags=rng.randint(0, 100)))
        order = list(keys)
        rng.shuffle(order)
        got = c.get_multi(order)
        self.assertEqual([g[0] for g in got],
                         [k for k in order if k in present])
        for key, _, value, cas in got:
            self.assertEqual(value, vals[key])
            self.assertIsNone(cas)
        self.sync(c)

    def test_get_multi_small_and_large_values_in_order(self):
        """Small blocks are collected per request, large ones (over 4 KiB,
        and ones that span the backend connection's buffers) move through
        per-backend buffers: in any mix the reply keeps the client's key
        order, byte for byte."""
        c = self.client()
        keys = self.spread(5)
        rng = random.Random(5)
        sizes = [0, 1, 100, 4000, 4096, 4200, 20000, 300000]
        vals = {}
        for i, k in enumerate(keys):
            if i % 4 == 3:
                continue                # a miss now and then
            vals[k] = rng.randbytes(sizes[i % len(sizes)])
            c.send(b"set %s 0 0 %d noreply\r\n%s\r\n"
                   % (k.encode(), len(vals[k]), vals[k]))
        self.sync(c)
        for _ in range(3):
            order = list(keys)
            rng.shuffle(order)
            c.send(b"get " + " ".join(order).encode() + b"\r\n")
            expected = b"".join(value_block(k, vals[k]) for k in order
                                if k in vals)
            self.assertEqual(c.read_until(), expected + b"END\r\n")
        self.sync(c)

    def test_get_duplicate_keys(self):
        c = self.client()
        a, b, m = self.spread(1)
        self.stored(c.set(a, b"AAA"))
        self.stored(c.set(b, b"BB", flags=3))
        c.send(("get %s %s %s %s %s\r\n" % (a, m, a, b, a)).encode())
        expected = (value_block(a, b"AAA") + value_block(a, b"AAA")
                    + value_block(b, b"BB", 3) + value_block(a, b"AAA")
                    + b"END\r\n")
        self.assertEqual(c.read_until(), expected)
        self.sync(c)

    def test_get_100_keys(self):
        c = self.client()
        keys = ["%s-%d" % (self.key(), i) for i in range(100)]
        for k in keys[::3]:
            c.set(k, k.encode(), noreply=True)
        got = c.get_multi(keys)
        self.assertEqual([(g[0], g[2]) for g in got],
                         [(k, k.encode()) for k in keys[::3]])

    def test_gets_returns_cas_per_key(self):
        c = self.client()
        keys = self.spread(2)
        for k in keys:
            self.stored(c.set(k, b"x" + k.encode()))
        got = c.retrieve("gets", keys)
        self.assertEqual([g[0] for g in got], keys)
        for key, _, value, cas in got:
            self.assertEqual(value, b"x" + key.encode())
            self.assertIsInstance(cas, int)
        before = {g[0]: g[3] for g in got}
        self.stored(c.set(keys[0], b"changed"))
        after = c.gets(keys[0])
        self.assertEqual(after[0], b"changed")
        self.assertNotEqual(after[1], before[keys[0]])
        self.assertEqual(c.gets(keys[1])[1], before[keys[1]])

    def test_gat_returns_values_and_updates_exptime(self):
        c = self.client()
        keys = self.spread(2)
        for k in keys[:4]:
            self.stored(c.set(k, k.encode(), flags=9))
        got = c.retrieve("gat", keys, exptime=100)
        self.assertEqual([(g[0], g[1], g[2], g[3]) for g in got],
                         [(k, 9, k.encode(), None) for k in keys[:4]])
        # A negative exptime: returned, then expired at once.
        got = c.retrieve("gat", keys[:2], exptime=-1)
        self.assertEqual([g[0] for g in got], keys[:2])
        self.assertEqual(c.get_multi(keys[:4]),
                         [(k, 9, k.encode(), None) for k in keys[2:4]])
        self.sync(c)

    def test_gats_returns_cas(self):
        c = self.client()
        keys = self.spread(1)
        for k in keys:
            self.stored(c.set(k, b"v"))
        cas = {k: c.gets(k)[1] for k in keys}
        got = c.retrieve("gats", list(reversed(keys)) + [self.key("miss")],
                         exptime=0)
        self.assertEqual([(g[0], g[3]) for g in got],
                         [(k, cas[k]) for k in reversed(keys)])
        self.sync(c)

    # -- storage

    def test_set_flags_zero_and_max(self):
        c = self.client()
        k0, k1 = self.key(), self.key()
        self.stored(c.set(k0, b"a", flags=0))
        self.stored(c.set(k1, b"b", flags=MAX_U32))
        self.assertEqual(c.get_multi([k0, k1]),
                         [(k0, 0, b"a", None), (k1, MAX_U32, b"b", None)])

    def test_set_negative_exptime_is_gone(self):
        c = self.client()
        k = self.key()
        self.stored(c.set(k, b"v", exptime=-1))
        self.assertIsNone(c.get(k))

    def test_zero_length_value(self):
        c = self.client()
        k = self.key()
        c.send(b"set " + k.encode() + b" 5 0 0\r\n\r\n")
        self.assertEqual(c.readline(), b"STORED")
        c.send(b"get " + k.encode() + b"\r\n")
        self.assertEqual(c.read_until(),
                         b"VALUE " + k.encode() + b" 5 0\r\n\r\nEND\r\n")

    def test_binary_value_with_crlf_and_protocol_words(self):
        c = self.client()
        k = self.key()
        value = (bytes(range(256)) * 3 + b"\r\nEND\r\nVALUE x 0 1\r\n"
                 b"STORED\r\n\r\n\n\r\x00")
        self.stored(c.set(k, value))
        self.assertEqual(c.get(k), value)
        k2 = self.key()
        self.stored(c.set(k2, b"\r\n"))
        self.assertEqual(c.get_multi([k2, k]),
                         [(k2, 0, b"\r\n", None), (k, 0, value, None)])
        self.sync(c)

    def test_large_value(self):
        c = self.client()
        k = self.key()
        value = random.Random(3).randbytes(200000)
        self.stored(c.set(k, value))
        self.assertEqual(c.get(k), value)

    def test_add(self):
        c = self.client()
        k = self.key()
        self.assertEqual(c.add(k, b"first"), b"STORED")
        self.assertEqual(c.add(k, b"second"), b"NOT_STORED")
        self.assertEqual(c.get(k), b"first")

    def test_replace(self):
        c = self.client()
        k = self.key()
        self.assertEqual(c.replace(k, b"x"), b"NOT_STORED")
        self.assertIsNone(c.get(k))
        self.stored(c.set(k, b"old"))
        self.assertEqual(c.replace(k, b"new", flags=4), b"STORED")
        self.assertEqual(c.get_multi([k]), [(k, 4, b"new", None)])

    def test_append_prepend(self):
        c = self.client()
        k = self.key()
        self.assertEqual(c.append(k, b"x"), b"NOT_STORED")
        self.assertEqual(c.prepend(k, b"x"), b"NOT_STORED")
        self.assertIsNone(c.get(k))
        self.stored(c.set(k, b"mid", flags=7))
        self.assertEqual(c.append(k, b"-end"), b"STORED")
        self.assertEqual(c.prepend(k, b"start-"), b"STORED")
        # append/prepend keep the item's flags.
        self.assertEqual(c.get_multi([k]), [(k, 7, b"start-mid-end", None)])

    def test_cas(self):
        c = self.client()
        k = self.key()
        self.assertEqual(c.cas(k, b"v", 12345), b"NOT_FOUND")
        self.stored(c.set(k, b"one"))
        _, unique = c.gets(k)
        self.assertEqual(c.cas(k, b"bad", unique + 1000), b"EXISTS")
        self.assertEqual(c.get(k), b"one")
        self.assertEqual(c.cas(k, b"two", unique), b"STORED")
        self.assertEqual(c.cas(k, b"three", unique), b"EXISTS")
        value, unique2 = c.gets(k)
        self.assertEqual(value, b"two")
        self.assertNotEqual(unique2, unique)

    def test_noreply_on_every_command(self):
        c = self.client()
        k = self.key()

        def check(value):
            # The very next reply must be this get's.
            self.assertEqual(c.get(k), value)

        c.set(k, b"1", noreply=True)
        check(b"1")
        c.add(k, b"2", noreply=True)                 # NOT_STORED, silent
        check(b"1")
        c.replace(k, b"3", noreply=True)
        check(b"3")
        c.append(k, b"4", noreply=True)
        check(b"34")
        c.prepend(k, b"2", noreply=True)
        check(b"234")
        _, unique = c.gets(k)
        c.cas(k, b"5", unique + 1000, noreply=True)  # EXISTS, silent
        check(b"234")
        c.cas(k, b"5", unique, noreply=True)
        check(b"5")
        c.incr(k, 10, noreply=True)
        check(b"15")
        c.decr(k, 3, noreply=True)
        check(b"12")
        c.touch(k, 1000, noreply=True)
        check(b"12")
        c.delete(k, noreply=True)
        check(None)
        c.delete(k, noreply=True)                    # NOT_FOUND, silent
        c.incr(k, 1, noreply=True)                   # NOT_FOUND, silent
        c.decr(k, 1, noreply=True)
        c.touch(k, 10, noreply=True)
        c.replace(k, b"x", noreply=True)             # NOT_STORED, silent
        c.append(k, b"x", noreply=True)
        c.cas(k, b"x", 1, noreply=True)              # NOT_FOUND, silent
        c.add(k, b"6", noreply=True)
        check(b"6")
        c.verbosity(1, noreply=True)
        self.sync(c)

    def test_noreply_pipelined_across_backends(self):
        c = self.client()
        keys = self.spread(10)
        payload = b"".join(
            b"set %s 0 0 %d noreply\r\n%s\r\n"
            % (k.encode(), len(k), k.encode()) for k in keys)
        c.send(payload + b"get " + " ".join(keys).encode() + b"\r\n")
        got = c.read_values()
        self.assertEqual([(g[0], g[2]) for g in got],
                         [(k, k.encode()) for k in keys])
        self.sync(c)

    def test_delete(self):
        c = self.client()
        k = self.key()
        self.assertEqual(c.delete(k), b"NOT_FOUND")
        self.stored(c.set(k, b"v"))
        self.assertEqual(c.delete(k), b"DELETED")
        self.assertIsNone(c.get(k))
        self.assertEqual(c.delete(k), b"NOT_FOUND")

    def test_incr_decr(self):
        c = self.client()
        k = self.key()
        self.assertEqual(c.incr(k, 1), b"NOT_FOUND")
        self.assertEqual(c.decr(k, 1), b"NOT_FOUND")
        self.stored(c.set(k, b"10"))
        self.assertEqual(c.incr(k, 5), b"15")
        self.assertEqual(c.decr(k, 3), b"12")
        self.assertEqual(c.decr(k, 100), b"0")      # decr floors at 0
        self.assertEqual(c.decr(k, 1), b"0")
        self.assertEqual(c.incr(k, MAX_U64), str(MAX_U64).encode())
        self.assertEqual(c.incr(k, 1), b"0")        # 64-bit wrap
        self.stored(c.set(k, str(MAX_U64 - 1).encode()))
        self.assertEqual(c.incr(k, 3), b"1")
        self.assertEqual(c.get(k).strip(), b"1")

    def test_incr_non_numeric_value(self):
        c = self.client()
        k = self.key()
        self.stored(c.set(k, b"abc"))
        self.assertTrue(c.incr(k, 1).startswith(b"CLIENT_ERROR "))
        self.assertTrue(c.decr(k, 1).startswith(b"CLIENT_ERROR "))
        self.assertEqual(c.get(k), b"abc")
        self.sync(c)

    def test_touch(self):
        c = self.client()
        k = self.key()
        self.assertEqual(c.touch(k, 10), b"NOT_FOUND")
        self.stored(c.set(k, b"v", exptime=1000))
        self.assertEqual(c.touch(k, 0), b"TOUCHED")
        self.assertEqual(c.get(k), b"v")
        self.assertEqual(c.touch(k, -1), b"TOUCHED")
        self.assertIsNone(c.get(k))

    def _backends_hold(self, keys):
        held = []
        for m in self.cluster.backends:
            with m.client() as bc:
                held += [g[0] for g in bc.get_multi(keys)]
        return held

    def test_flush_all(self):
        c = self.client()
        keys = self.spread(5)
        for k in keys:
            self.stored(c.set(k, b"v"))
        self.assertEqual(len(self._backends_hold(keys)), len(keys))
        self.assertEqual(c.flush_all(), b"OK")
        self.assertEqual(c.get_multi(keys), [])
        self.assertEqual(self._backends_hold(keys), [])

    def test_flush_all_noreply(self):
        c = self.client()
        keys = self.spread(2)
        for k in keys:
            self.stored(c.set(k, b"v"))
        c.flush_all(noreply=True)
        self.assertEqual(c.get_multi(keys), [])
        self.assertEqual(self._backends_hold(keys), [])

    def test_flush_all_with_delay(self):
        c = self.client()
        keys = self.spread(2)
        for k in keys:
            self.stored(c.set(k, b"v"))
        self.assertEqual(c.flush_all(3), b"OK")
        # memcached's clock ticks in seconds: with a 3 s delay the items
        # must still be there right now, and gone a few seconds later.
        self.assertEqual(len(c.get_multi(keys)), len(keys))
        mctest.wait_for(lambda: c.get_multi(keys) == [], 8.0,
                        "delayed flush_all to take effect")
        self.assertEqual(self._backends_hold(keys), [])
        # Let the flush horizon pass, so later tests' items survive: a
        # fresh item on every backend must be readable.
        fresh = self.spread(1)

        def settled():
            for k in fresh:
                c.set(k, b"f")
            return len(c.get_multi(fresh)) == len(fresh)
        mctest.wait_for(settled, 5.0, "flush horizon to pass")

    # -- answered by the proxy

    def test_version(self):
        c = self.client()
        line = c.version()
        self.assertTrue(line.startswith(b"VERSION "), line)
        self.assertGreater(len(line), len(b"VERSION "))
        if not self.direct:
            r = mctest.run_mcring(["-V"])
            self.assertIn(line[len(b"VERSION "):].decode(), r.stdout,
                          "version reply is not mcring's version")
        self.sync(c)

    def test_verbosity(self):
        c = self.client()
        self.assertEqual(c.verbosity(1), b"OK")
        self.assertEqual(c.verbosity(0), b"OK")
        c.verbosity(1, noreply=True)
        self.sync(c)

    REQUIRED_STATS = ("pid", "uptime", "time", "version", "threads",
                      "curr_connections", "total_connections", "cmd_get",
                      "cmd_set", "get_hits", "get_misses", "bytes_read",
                      "bytes_written")

    def test_stats_fields(self):
        c = self.client()
        st = c.stats()
        for name in self.REQUIRED_STATS:
            self.assertIn(name, st)
        for name in self.REQUIRED_STATS:
            if name != "version":
                self.assertRegex(st[name], r"^\d+$", name)
        self.assertLess(abs(int(st["time"]) - time.time()), 5)
        self.assertGreaterEqual(int(st["curr_connections"]), 1)
        self.assertEqual(c.version(), b"VERSION " + st["version"].encode())
        if not self.direct:
            self.assertEqual(int(st["pid"]), self.cluster.mcring.pid)
            self.assertEqual(int(st["threads"]), 2)
        self.sync(c)

    def test_stats_counters_follow_traffic(self):
        # Separate connections, likely on both workers: stats must sum.
        with self.cluster.client() as s:
            before = s.stats()
        conns = [self.client() for _ in range(3)]
        c = conns[0]
        keys = [self.key() for _ in range(5)]
        for i, k in enumerate(keys):
            self.stored(conns[i % 3].set(k, b"value"))
        for i, k in enumerate(keys[:4] + [self.key("m") for _ in range(3)]):
            conns[i % 3].get(k)
        with self.cluster.client() as s:
            after = s.stats()
            self.assertGreaterEqual(int(after["curr_connections"]), 4)

        def delta(name):
            return int(after[name]) - int(before[name])
        self.assertEqual(delta("cmd_get"), 7)
        self.assertEqual(delta("cmd_set"), 5)
        self.assertEqual(delta("get_hits"), 4)
        self.assertEqual(delta("get_misses"), 3)
        self.assertGreaterEqual(delta("total_connections"), 4)
        self.assertGreater(delta("bytes_read"), 5 * 20 + 7 * 10)
        self.assertGreater(delta("bytes_written"), 5 * 8 + 7 * 5)
        self.assertGreaterEqual(int(after["uptime"]), int(before["uptime"]))
        c.close()

    def test_stats_backends(self):
        self.needs_mcring()
        c = self.client()
        lines = c.stats_lines("backends")
        self.assertTrue(lines, "empty stats backends")
        for line in lines:
            self.assertTrue(line.startswith(b"STAT "), line)
        text = b"\n".join(lines).decode()
        for name in self.cluster.names:
            self.assertRegex(text, r"(?m)^STAT .*\b%s\b" % name,
                             "backend %s not in stats backends" % name)
        self.sync(c)

    def test_stats_reset(self):
        """Counters start again from 0, as in memcached; gauges stay."""
        c = self.client()
        k = self.key()
        self.stored(c.set(k, b"v"))
        self.assertEqual(c.get(k), b"v")
        self.assertEqual(c.call(b"stats reset"), b"RESET")
        st = c.stats()
        self.assertEqual(int(st["cmd_get"]), 0)
        self.assertEqual(int(st["cmd_set"]), 0)
        self.assertEqual(int(st["get_hits"]), 0)
        self.assertGreaterEqual(int(st["curr_connections"]), 1)
        self.assertEqual(c.get(k), b"v")
        self.assertIsNone(c.get(self.key("miss")))
        st = c.stats()
        self.assertEqual((int(st["cmd_get"]), int(st["get_hits"]),
                          int(st["get_misses"])), (2, 1, 1))
        if not self.direct:
            b = c.stats("backends")
            name = self.cluster.names[0]
            self.assertLessEqual(int(b[name + ":requests"]), 2)
            self.assertGreaterEqual(int(b[name + ":connections"]), 1)
            self.assertEqual(b[name + ":state"], "UP")
        self.sync(c)

    def test_stats_settings(self):
        self.needs_mcring()
        c = self.client()
        st = c.stats("settings")
        self.assertEqual(st["listen"], "127.0.0.1:%d" % self.cluster.port)
        self.assertIn(st["hash"], ("xxh3", "ketama"))
        for name in ("threads", "vnodes", "timeout_ms", "connect_timeout_ms",
                     "backend_connections", "max_connections",
                     "max_value_size", "max_keys", "client_output_limit",
                     "health_interval_ms", "health_timeout_ms",
                     "health_rise", "health_fall", "health_recovery_log",
                     "health_failover_ttl"):
            self.assertTrue(st[name].isdigit(), (name, st[name]))
        self.assertEqual(int(st["threads"]), int(c.stats()["threads"]))
        self.assertEqual(c.call(b"stats nonsense"), b"ERROR")
        self.sync(c)

    def test_quit_closes_connection(self):
        c = self.client()
        k = self.key()
        self.stored(c.set(k, b"v"))
        c.send(b"get " + k.encode() + b"\r\nquit\r\n")
        closed, data = c.wait_closed(5.0)
        self.assertTrue(closed, "connection still open after quit")
        self.assertEqual(data, value_block(k, b"v") + b"END\r\n")
        with self.cluster.client() as c2:
            self.assertEqual(c2.get(k), b"v")

    # -- errors

    def test_unknown_command(self):
        c = self.client()
        for line in (b"bogus", b"bogus with args", b"GETX key", b"sets k"):
            self.assertEqual(c.call(line), b"ERROR", line)
            self.sync(c)
        self.assertEqual(c.set(self.key(), b"v"), b"STORED")

    def malformed_lines(self):
        """(line, how memcached 1.6 itself begins its reply): mcring must
        answer the same."""
        k = self.key("m").encode()
        long_key = b"k" * 251
        return [
            # bad numbers
            (b"incr " + k + b" abc", b"CLIENT_ERROR"),
            (b"decr " + k + b" -1", b"CLIENT_ERROR"),
            (b"touch " + k + b" abc", b"CLIENT_ERROR"),
            (b"gat abc " + k, b"CLIENT_ERROR"),
            (b"flush_all abc", b"CLIENT_ERROR"),
            (b"verbosity abc", b"CLIENT_ERROR"),
            # wrong token counts
            (b"incr " + k, b"ERROR"),
            (b"incr " + k + b" 1 2", b"NOT_FOUND"),
            (b"touch " + k, b"ERROR"),
            (b"touch " + k + b" 1 2", b"NOT_FOUND"),
            (b"delete", b"ERROR"),
            (b"get", b"ERROR"),
            (b"gat 10", b"END"),
            # key too long
            (b"get " + long_key, b"CLIENT_ERROR"),
            (b"get " + k + b" " + long_key, b"CLIENT_ERROR"),
            (b"delete " + long_key, b"CLIENT_ERROR"),
            (b"incr " + long_key + b" 1", b"CLIENT_ERROR"),
            (b"touch " + long_key + b" 0", b"CLIENT_ERROR"),
            # control characters in a key: memcached takes them
            (b"get a\x01b", b"END"),
            (b"delete a\x7fb", b"NOT_FOUND"),
            (b"get " + k + b" a\x1bb", b"END"),
            # overflowing numbers
            (b"incr " + k + b" 18446744073709551616", b"CLIENT_ERROR"),
            (b"touch " + k + b" 99999999999999999999", b"CLIENT_ERROR"),
            (b"gat 99999999999999999999 " + k, b"CLIENT_ERROR"),
        ]

    def test_malformed_commands_answered_as_memcached(self):
        c = self.client()
        for line, want in self.malformed_lines():
            reply = c.call(line)
            self.assertTrue(reply.startswith(want),
                            "%r answered %r, memcached %r" % (line, reply, want))
            self.sync(c)
        self.stored(c.set(self.key(), b"still works"))

    def malformed_storage(self):
        k = self.key("ms").encode()
        # (memcached 1.6 stores "set K 4294967296 0 1", "set K 0 0 1
        # bogus" and "add a\x01b 0 0 1": see test_lenient_storage.)
        return k, [
            b"set " + k + b" abc 0 1\r\nx\r\n",
            b"set " + k + b" 0 abc 1\r\nx\r\n",
            b"cas " + k + b" 0 0 1 abc\r\nx\r\n",
            b"cas " + k + b" 0 0 1 18446744073709551616\r\nx\r\n",
            b"set " + b"k" * 251 + b" 0 0 1\r\nx\r\n",
        ]

    def _after_storage_error(self, c, k):
        """After a rejected storage command: the data block "x" is either
        swallowed or answered as an unknown command, or the connection was
        closed.  Returns False if closed.  The key was not stored."""
        try:
            c.send(b"get " + k + b"\r\n")
            line = c.readline()
            if line == b"ERROR":
                line = c.readline()
            self.assertEqual(line, b"END", "key stored or stream out of sync")
            return True
        except (ConnectionClosed, ConnectionResetError, BrokenPipeError):
            return False

    def test_malformed_storage_commands_store_nothing(self):
        k, cmds = self.malformed_storage()
        c = self.client()
        for cmd in cmds:
            c.send(cmd)
            reply = c.readline()
            self.assertTrue(reply.startswith(b"CLIENT_ERROR "),
                            "%r answered %r" % (cmd, reply))
            # As memcached: the data line is read as a command.
            self.assertEqual(c.readline(), b"ERROR", cmd)
            self.assertTrue(self._after_storage_error(c, k), cmd)
        with self.cluster.client() as c2:
            self.assertIsNone(c2.get(k.decode()))

    def test_storage_wrong_token_count_reads_the_block_as_a_command(self):
        """As memcached: a storage line with the wrong number of tokens
        (too many, cas without its unique) is ERROR and its data block is
        the next command line (regression: mcring used to swallow it, or
        the requests after it); a bad data chunk after noreply is
        silent."""
        k = self.key().encode()
        c = self.client()
        for cmd in (b"cas " + k + b" 0 0 1\r\nx\r\n",
                    b"cas " + k + b" 0 0 1 noreply\r\nversion\r\n",
                    b"set " + k + b" 0 0 1 noreply extra\r\nx\r\n",
                    b"set " + k + b" 0 0 1 a b c d\r\nx\r\n"):
            c.send(cmd + b"get " + k + b"\r\n")
            first = c.readline()
            if b"cas " + k + b" 0 0 1 noreply" in cmd:
                # 6 tokens, "noreply" read as the cas unique: a silent
                # CLIENT_ERROR; the next line is the next command.
                self.assertTrue(first.startswith(b"VERSION "), first)
            else:
                self.assertEqual(first, b"ERROR", cmd)
                self.assertEqual(c.readline(), b"ERROR", cmd)
            self.assertEqual(c.readline(), b"END", cmd)
        c.send(b"set " + k + b" 0 0 1 noreply\r\nxy\r\nget " + k + b"\r\n")
        # "xy\r" is the bad block, "\n" an empty command line.
        self.assertEqual(c.readline(), b"ERROR")
        self.assertEqual(c.readline(), b"END")
        self.sync(c)

    def test_storage_with_bad_length_keeps_connection(self):
        """As memcached: CLIENT_ERROR, and the connection goes on; nothing
        after the line is taken for a data block (regression)."""
        k = self.key().encode()
        c = self.client()
        for cmd in (b"set " + k + b" 0 0 abc\r\n",
                    b"set " + k + b" 0 0 -1\r\n",
                    b"set " + k + b" 0 0 99999999999999999999\r\n",
                    b"set " + k + b" 0 0 2147483648\r\n",
                    b"cas " + k + b" 0 0 x 1\r\n"):
            c.send(cmd + b"version\r\n")
            reply = c.readline()
            self.assertTrue(reply.startswith(b"CLIENT_ERROR"),
                            "%r answered %r" % (cmd, reply))
            self.assertTrue(c.readline().startswith(b"VERSION "), cmd)
        with self.cluster.client() as c2:
            self.assertIsNone(c2.get(k.decode()))
        self.assert_alive()

    def test_too_large_set_drops_the_old_value(self):
        """As memcached: a set refused as too large also removes the key's
        old value, so no older value is served after the failed write
        (regression)."""
        k = self.key()
        c = self.client()
        self.stored(c.set(k, b"old"))
        big = 2 * 1024 * 1024
        c.send(b"set " + k.encode() + b" 0 0 %d\r\n" % big)
        c.send(b"x" * big + b"\r\n")
        self.assertEqual(c.readline(), b"SERVER_ERROR object too large for "
                                       b"cache")
        self.assertIsNone(c.get(k))
        # ms too, in any mode
        self.stored(c.set(k, b"old"))
        c.send(b"ms " + k.encode() + b" %d MA\r\n" % big)
        c.send(b"x" * big + b"\r\n")
        self.assertEqual(c.readline(), b"SERVER_ERROR object too large for "
                                       b"cache")
        self.assertIsNone(c.get(k))
        # add, append: refused, and the value stays (memcached unlinks only
        # for set).
        self.stored(c.set(k, b"kept"))
        c.send(b"append " + k.encode() + b" 0 0 %d noreply\r\n" % big)
        c.send(b"x" * big + b"\r\n")
        self.assertEqual(c.get(k), b"kept")

    def test_binary_protocol_closed_at_once(self):
        c = self.client()
        c.send(b"\x80\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x05" +
               b"\x00" * 12 + b"hello")
        closed, data = c.wait_closed(5.0)
        if self.direct:
            return                      # memcached answers it
        self.assertTrue(closed, "binary request left waiting")
        self.assertEqual(data, b"")

    def test_http_request_closed_as_memcached(self):
        c = self.client()
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        closed, data = c.wait_closed(5.0)
        self.assertTrue(closed)
        self.assertEqual(data, b"")

    def test_stats_subcommands_merged_from_backends(self):
        """stats ARGS that are not mcring's own go to every UP backend and
        come back as one reply: numbers summed, other lines concatenated
        (regression: a Python client's `stats cachedump 1 1` got ERROR)."""
        c = self.client()
        keys = ["%s-%d" % (self.key(), i) for i in range(30)]
        for k in keys:
            self.stored(c.set(k, b"v"))
        items = c.stats("items")
        total = sum(int(v) for n, v in items.items()
                    if n.endswith(":number"))
        if not self.direct:
            direct = 0
            for m in self.cluster.backends:
                with m.client() as d:
                    direct += sum(int(v) for n, v in d.stats("items").items()
                                  if n.endswith(":number"))
            self.assertEqual(total, direct)
        self.assertGreaterEqual(total, len(keys))
        # The slab class the keys went to (by the key's length; class 1
        # only if earlier tests' items are there too).
        cls = min(int(n.split(":")[1]) for n, v in items.items()
                  if n.endswith(":number") and int(v) > 0)

        def dump():
            # memcached dumps its COLD LRU, which new items reach as its
            # LRU maintainer moves them: some of the items, not all.
            c.send(b"stats cachedump %d 0\r\n" % cls)
            out[0] = c.read_until(b"END\r\n")
            return out[0] != b"END\r\n"
        out = [b""]
        mctest.wait_for(dump, 10, "items in a COLD LRU")
        self.assertRegex(out[0], rb"^(ITEM [^\r\n]+ \[\d+ b; \d+ s\]"
                                 rb"\r\n)+END\r\n$")
        self.assertEqual(c.call(b"stats bogus"), b"ERROR")
        slabs = c.stats("slabs")
        self.assertIn("total_malloced", slabs)
        self.sync(c)

    def test_tuning_commands_reach_every_backend(self):
        """slabs, lru, lru_crawler and extstore go to every backend as they came and
        answer what memcached answers; noreply is the backend's to take;
        the lru_crawler dumps are refused (regression: all got ERROR)."""
        c = self.client()
        self.assertEqual(c.call(b"slabs automove 2"), b"OK")
        self.assertEqual(c.call(b"lru_crawler sleep 123"), b"OK")
        c.send(b"lru_crawler tocrawl 77 noreply\r\n")
        self.assertEqual(c.readline(), b"ERROR")    # no noreply in memcached
        c.send(b"lru tune 10 20 0.1 2.0 noreply\r\n")  # but here
        self.sync(c)
        self.assertEqual(c.call(b"slabs automove x"),
                         b"CLIENT_ERROR bad command line format")
        self.assertEqual(c.call(b"lru tune 50 50 0.1 2.0"),
                         b"ERROR hot and warm pcts must not exceed 80")
        self.assertEqual(c.call(b"slabs reassign 1 1"),
                         b"SAME src and dst class are identical")
        self.assertEqual(c.call(b"lru"), b"ERROR")
        # (Debian's memcached has extstore built in: it takes its settings
        # without a file; one built without answers ERROR.)
        item_age = c.call(b"extstore item_age 3600")
        self.assertIn(item_age, (b"OK", b"ERROR"))
        backends = [None] if self.direct else self.cluster.backends
        for m in backends:
            d = c if m is None else m.client()
            settings = d.stats("settings")
            self.assertEqual(settings["slab_automove"], "2")
            self.assertEqual(settings["lru_crawler_sleep"], "123")
            self.assertEqual(settings["hot_lru_pct"], "10")
            self.assertEqual(settings["warm_lru_pct"], "20")
            if item_age == b"OK":
                self.assertEqual(settings["ext_item_age"], "3600")
            if m is not None:
                d.close()
        self.assertEqual(c.call(b"slabs automove 1"), b"OK")
        self.assertEqual(c.call(b"lru tune 20 40 0.2 2.0"), b"OK")
        self.assertEqual(c.call(b"lru_crawler sleep 100"), b"OK")
        if item_age == b"OK":
            self.assertEqual(c.call(b"extstore item_age 4294967295"), b"OK")
        if not self.direct:
            c.send(b"lru_crawler metadump all\r\n")
            self.assertEqual(c.readline(), b"ERROR metadump not allowed")
            c.send(b"lru_crawler mgdump 1\r\n")
            self.assertEqual(c.readline(), b"ERROR key dump not allowed")
        self.sync(c)

    def test_stats_detail_one_line_answers(self):
        """stats detail on and off answer OK, not lines and END, as
        memcached does (regression: mcring waited for an END and answered
        SERVER_ERROR backend timeout)."""
        c = self.client()
        try:
            self.assertEqual(c.call(b"stats detail on"), b"OK")
            self.stored(c.set(self.key() + ":d", b"v"))
            c.send(b"stats detail dump\r\n")
            dump = c.read_until(b"END\r\n")
            self.assertRegex(dump, rb"^(PREFIX [^\r\n]+\r\n)*END\r\n$")
            self.assertEqual(c.call(b"stats detail bogus"),
                             b"CLIENT_ERROR usage: stats detail on|off|dump")
        finally:
            self.assertEqual(c.call(b"stats detail off"), b"OK")
        self.sync(c)

    def test_meta_commands_routed_by_key(self):
        """mg ms md ma me go to the key's owner; a base64 key ('b') is
        routed by what it decodes to; opaque and k come back."""
        import base64
        c = self.client()
        base = self.key()
        keys = ["%s-%d" % (base, i) for i in range(20)]
        for k in keys:
            c.send(b"ms " + k.encode() + b" 3 T0 F7\r\nabc\r\n")
            self.assertEqual(c.readline(), b"HD", k)
        for k in keys:
            c.send(b"mg " + k.encode() + b" v f k Oop\r\n")
            self.assertEqual(c.readline(), b"VA 3 f7 k" + k.encode() +
                             b" Oop", k)
            self.assertEqual(c.readline(), b"abc")
        if not self.direct:
            owners = self.cluster.owners(keys)
            for k in keys:
                with self.cluster.backend(owners[k]).client() as d:
                    self.assertEqual(d.get(k), b"abc", k)
        # base64: the same item as the plain key
        b64 = base64.b64encode(keys[0].encode())
        c.send(b"mg " + b64 + b" b v\r\n")
        self.assertEqual(c.readline(), b"VA 3")
        self.assertEqual(c.readline(), b"abc")
        c.send(b"ma " + keys[1].encode() + b"-n N0 J10 v\r\n")
        self.assertEqual(c.readline(), b"VA 2")
        self.assertEqual(c.readline(), b"10")
        c.send(b"md " + keys[2].encode() + b"\r\n")
        self.assertEqual(c.readline(), b"HD")
        self.assertIsNone(c.get(keys[2]))
        c.send(b"me " + keys[3].encode() + b"\r\n")
        self.assertTrue(c.readline().startswith(b"ME " + keys[3].encode()))
        # the TTL a Python client reads with "mg KEY t" (regression: ERROR)
        c.send(b"ms " + keys[4].encode() + b" 1 T0\r\nx\r\n"
               b"mg " + keys[4].encode() + b" t\r\n")
        self.assertEqual(c.readline(), b"HD")
        self.assertEqual(c.readline(), b"HD t-1")
        self.sync(c)

    def test_meta_quiet_pipeline_across_backends(self):
        """A pipeline of quiet mg over keys on every backend, ending in mn:
        only the hits, in request order, then MN (memcached's quiet
        semantics); classic and meta commands keep their order."""
        c = self.client()
        base = self.key()
        keys = ["%s-%d" % (base, i) for i in range(40)]
        hits = keys[::3]
        for k in hits:
            self.stored(c.set(k, k.encode()))
        pipe = b"".join(b"mg " + k.encode() + b" v q k\r\n" for k in keys)
        c.send(pipe + b"get " + hits[0].encode() + b"\r\nmn\r\n")
        want = b"".join(b"VA %d k%s\r\n%s\r\n" % (len(k), k.encode(),
                                                       k.encode())
                        for k in hits)
        want += b"VALUE %s 0 %d\r\n%s\r\nEND\r\nMN\r\n" % (
            hits[0].encode(), len(hits[0]), hits[0].encode())
        self.assertEqual(c.read_until(b"MN\r\n"), want)
        # quiet writes: nothing for success, errors still come
        c.send(b"ms " + keys[1].encode() + b" 1 q\r\nx\r\n"
               b"ms " + keys[1].encode() + b" 1 q ME\r\nx\r\n"
               b"md " + keys[1].encode() + b" q\r\nmn\r\n")
        self.assertEqual(c.read_until(b"MN\r\n"), b"NS\r\nMN\r\n")

    def test_fanned_out_and_local_commands(self):
        c = self.client()
        self.assertEqual(c.call(b"cache_memlimit 64"), b"OK")
        self.assertEqual(c.call(b"cache_memlimit 5"),
                         b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less "
                         b"than 8m")
        self.assertEqual(c.call(b"cache_memlimit abc"), b"ERROR")
        self.assertEqual(c.call(b"shutdown"), b"ERROR: shutdown not enabled")
        self.assertEqual(c.call(b"mn"), b"MN")
        self.assertTrue(c.call(b"version foo bar").startswith(b"VERSION "))
        self.assertEqual(c.call(b"verbosity 0 extra"), b"OK")
        self.assertEqual(c.call(b"gat 10"), b"END")

    def test_lenient_storage(self):
        """What memcached 1.6 stores although protocol.txt would not: flags
        above 32 bits (truncated), a length with a sign, an extra token
        that is not noreply, control bytes in a key."""
        k = self.key().encode()
        c = self.client()
        for cmd, key in ((b"set " + k + b"a 4294967297 0 1\r\nx\r\n", k + b"a"),
                         (b"set " + k + b"b 0 0 +1\r\nx\r\n", k + b"b"),
                         (b"set " + k + b"c 0 0 1 bogus\r\nx\r\n", k + b"c"),
                         (b"add " + k + b"\x01d 0 0 1\r\nx\r\n",
                          k + b"\x01d")):
            c.send(cmd)
            self.assertEqual(c.readline(), b"STORED", cmd)
            c.send(b"get " + key + b"\r\n")
            self.assertEqual(c.read_until(), b"VALUE " + key +
                             (b" 1" if b"4294967297" in cmd else b" 0") +
                             b" 1\r\nx\r\nEND\r\n", cmd)

    def test_malformed_never_reaches_a_backend(self):
        self.needs_mcring()
        before = [mctest.backend_counters(m) for m in self.cluster.backends]
        c = self.client()

        def version_sync():
            line = c.call(b"version")
            if line == b"ERROR":            # a data block not swallowed
                line = c.readline()
            self.assertTrue(line.startswith(b"VERSION "), line)

        for line, want in self.malformed_lines():
            if not want.startswith((b"CLIENT_ERROR", b"ERROR")):
                continue        # memcached answers it: a backend does
            c.send(line + b"\r\n")
            self.assertTrue(c.readline().startswith(want), line)
            version_sync()
        self.assertEqual(c.call(b"bogus command"), b"ERROR")
        _, cmds = self.malformed_storage()
        for cmd in cmds:
            c.send(cmd)
            self.assertTrue(c.readline().startswith(b"CLIENT_ERROR "), cmd)
            try:
                version_sync()
            except (ConnectionClosed, ConnectionResetError, BrokenPipeError):
                c.close()
                c = self.client()
        c.send(b"set k 0 0 abc\r\n")
        self.assertTrue(c.readline().startswith(b"CLIENT_ERROR "))
        version_sync()
        after = [mctest.backend_counters(m) for m in self.cluster.backends]
        for m, b, a in zip(self.cluster.backends, before, after):
            self.assertEqual(a, b, "a malformed command reached %s" % m.name)

    # -- framing

    def test_pipeline_200_mixed_requests(self):
        rng = random.Random(200)
        keys = self.spread(8)
        model = {}
        req, exp = [], []
        for i in range(200):
            op = rng.choice(["set", "set", "get", "mget", "delete", "incr",
                             "add", "append", "setq", "bogus", "touch"])
            k = rng.choice(keys)
            kb = k.encode()
            if op in ("set", "setq"):
                v = b"%d" % rng.randint(0, 10**6) if rng.random() < 0.5 \
                    else rng.randbytes(rng.randint(0, 2000))
                nr = b" noreply" if op == "setq" else b""
                req.append(b"set %s 0 0 %d%s\r\n%s\r\n" % (kb, len(v), nr, v))
                model[k] = v
                exp.append(b"" if nr else b"STORED\r\n")
            elif op == "add":
                v = b"added"
                req.append(b"add %s 0 0 5\r\nadded\r\n" % kb)
                if k in model:
                    exp.append(b"NOT_STORED\r\n")
                else:
                    model[k] = v
                    exp.append(b"STORED\r\n")
            elif op == "append":
                req.append(b"append %s 0 0 2\r\n+a\r\n" % kb)
                if k in model:
                    model[k] += b"+a"
                    exp.append(b"STORED\r\n")
                else:
                    exp.append(b"NOT_STORED\r\n")
            elif op == "get":
                req.append(b"get %s\r\n" % kb)
                exp.append((value_block(k, model[k]) if k in model else b"")
                           + b"END\r\n")
            elif op == "mget":
                ks = [rng.choice(keys) for _ in range(rng.randint(2, 12))]
                req.append(b"get %s\r\n" % " ".join(ks).encode())
                exp.append(b"".join(value_block(x, model[x]) for x in ks
                                    if x in model) + b"END\r\n")
            elif op == "delete":
                req.append(b"delete %s\r\n" % kb)
                exp.append(b"DELETED\r\n" if model.pop(k, None) is not None
                           else b"NOT_FOUND\r\n")
            elif op == "incr":
                req.append(b"incr %s 7\r\n" % kb)
                if k not in model:
                    exp.append(b"NOT_FOUND\r\n")
                elif model[k].isdigit() and len(model[k]) < 19:
                    model[k] = b"%d" % (int(model[k]) + 7)
                    exp.append(model[k] + b"\r\n")
                else:
                    # non-numeric: the backend's CLIENT_ERROR line; keep
                    # the model out of it
                    del model[k]
                    req[-1] = b"delete %s\r\n" % kb
                    exp.append(b"DELETED\r\n")
            elif op == "touch":
                req.append(b"touch %s 0\r\n" % kb)
                exp.append(b"TOUCHED\r\n" if k in model else b"NOT_FOUND\r\n")
            else:
                req.append(b"bogus%d\r\n" % i)
                exp.append(b"ERROR\r\n")
        c = self.client(timeout=10.0)
        c.send(b"".join(req))
        want = b"".join(exp)
        data = c.read_n_bytes_or_close(len(want), 15.0)
        self.assertEqual(len(data), len(want))
        for i, e in enumerate(exp):
            got = data[:len(e)]
            self.assertEqual(got, e, "reply %d to %r" % (i, req[i][:80]))
            data = data[len(e):]
        self.sync(c)

    def test_requests_one_byte_at_a_time(self):
        a, b, m = self.spread(1)
        value = b"bin\r\nary\x00\xff" * 20
        script = [
            (b"set %s 3 0 %d\r\n%s\r\n" % (a.encode(), len(value), value),
             b"STORED\r\n"),
            (b"set %s 0 0 2 noreply\r\n10\r\n" % b.encode(), b""),
            (b"get %s %s %s\r\n" % (m.encode(), a.encode(), b.encode()),
             value_block(a, value, 3) + value_block(b, b"10") + b"END\r\n"),
            (b"incr %s 5\r\n" % b.encode(), b"15\r\n"),
            (b"bogus\r\n", b"ERROR\r\n"),
            (b"delete %s\r\n" % a.encode(), b"DELETED\r\n"),
            (b"get %s\r\n" % a.encode(), b"END\r\n"),
        ]
        c = self.client()
        payload = b"".join(s[0] for s in script)
        want = b"".join(s[1] for s in script)
        self.assertLess(len(payload), 1000)
        for i in range(len(payload)):
            c.send(payload[i:i + 1])
            time.sleep(0.0005)
        data = c.read_n_bytes_or_close(len(want), 10.0)
        self.assertEqual(data, want)
        self.sync(c)

    # -- routing and concurrency

    def test_keys_stored_where_route_says(self):
        self.needs_mcring()
        keys = ["%s-%d" % (self.key(), i) for i in range(300)]
        c = self.client(timeout=10.0)
        c.send(b"".join(b"set %s 0 0 %d\r\n%s\r\n"
                        % (k.encode(), len(k), k.encode()) for k in keys))
        for _ in keys:
            self.assertEqual(c.readline(), b"STORED")
        owners = self.cluster.owners(keys)
        for m in self.cluster.backends:
            with m.client() as bc:
                found = [g[0] for g in bc.get_multi(keys)]
            mine = [k for k in keys if owners[k] == m.name]
            self.assertEqual(sorted(found), sorted(mine),
                             "keys on %s differ from --route" % m.name)
            self.assertGreater(len(mine), 30,
                               "%s owns only %d of 300 keys"
                               % (m.name, len(mine)))

    def test_50_concurrent_clients_multiget(self):
        nthreads, nkeys, rounds = 50, 20, 15
        prefix = self.key()
        port = self.cluster.port
        barrier = threading.Barrier(nthreads)
        errors = []
        done = []

        def worker(tid):
            rng = random.Random(tid)
            keys = ["%s-t%d-k%d" % (prefix, tid, i) for i in range(nkeys)]
            vals = {k: rng.randbytes(rng.choice([0, 1, 10, 100, 1000, 9000]))
                    for k in keys}
            try:
                with mctest.Client(port, timeout=20.0) as c:
                    barrier.wait(timeout=20.0)
                    c.send(b"".join(b"set %s %d 0 %d\r\n%s\r\n"
                                    % (k.encode(), tid, len(vals[k]), vals[k])
                                    for k in keys))
                    for _ in keys:
                        if c.readline() != b"STORED":
                            raise AssertionError("set failed")
                    for r in range(rounds):
                        ask = rng.sample(keys, rng.randint(1, nkeys))
                        ask += ["%s-t%d-miss%d" % (prefix, tid, r)]
                        rng.shuffle(ask)
                        got = c.get_multi(ask)
                        want = [(k, tid, vals[k], None) for k in ask
                                if k in vals]
                        if got != want:
                            raise AssertionError(
                                "thread %d round %d: got %r want %r"
                                % (tid, r, [g[0] for g in got],
                                   [w[0] for w in want]))
                done.append(tid)
            except Exception as e:
                errors.append("thread %d: %r" % (tid, e))

        threads = [threading.Thread(target=worker, args=(i,), daemon=True)
                   for i in range(nthreads)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 45
        for t in threads:
            t.join(max(0.1, deadline - time.monotonic()))
        self.assertEqual(errors, [])
        self.assertEqual(len(done), nthreads, "threads did not finish")
        self.assert_alive()


class BackendFailureTest(unittest.TestCase):
    """A fresh cluster per test: backends get killed."""

    HEALTH = {"interval_ms": 100, "timeout_ms": 80, "rise": 2, "fall": 2}
    PROXY = {"threads": 2, "timeout_ms": 1000, "connect_timeout_ms": 300}

    def start_cluster(self, n):
        if mctest.direct_mode():
            self.skipTest("needs mcring (MCTEST_DIRECT=1)")
        self.cluster = mctest.Cluster(n, proxy=self.PROXY,
                                      health=self.HEALTH)
        self.addCleanup(self.cluster.close)
        self.cluster.start()
        return self.cluster

    def dump_logs(self, stream):
        if getattr(self, "cluster", None):
            self.cluster.dump_logs(stream)

    def timed(self, fn, *args):
        t0 = time.monotonic()
        r = fn(*args)
        return r, time.monotonic() - t0

    def test_killed_backend_fails_fast_others_keep_working(self):
        cl = self.start_cluster(3)
        by = cl.keys_by_owner("kill", 4)
        c = cl.client(timeout=5.0)
        self.addCleanup(c.close)
        for ks in by.values():
            for k in ks:
                self.assertEqual(c.set(k, k.encode()), b"STORED")
        victim = "b2"
        cl.backend(victim).kill()
        others = [k for n, ks in by.items() if n != victim for k in ks]
        seen = set()
        deadline = time.monotonic() + 3.0
        rounds = 0
        while time.monotonic() < deadline and rounds < 20:
            rounds += 1
            for k in by[victim]:
                c.send(b"get " + k.encode() + b"\r\n")
                line, took = self.timed(c.readline)
                self.assertLess(took, 2.0, "get of a dead backend's key")
                # SERVER_ERROR, or a miss from the fallback backend: never
                # the value, which died with the backend.
                if line.startswith(b"SERVER_ERROR"):
                    seen.add("server_error")
                else:
                    self.assertEqual(line, b"END")
                    seen.add("miss")
            for k in others:
                got, took = self.timed(c.get, k)
                self.assertLess(took, 2.0)
                self.assertEqual(got, k.encode())
        multi = [k for ks in by.values() for k in ks]
        got, took = self.timed(c.get_multi, multi)
        self.assertLess(took, 2.0)
        self.assertEqual([(g[0], g[2]) for g in got],
                         [(k, k.encode()) for k in multi if k in others])
        self.assertTrue(cl.mcring.alive())

    def test_single_backend_killed_server_error_then_recovers(self):
        cl = self.start_cluster(1)
        c = cl.client(timeout=5.0)
        self.addCleanup(c.close)
        self.assertEqual(c.set("k1", b"v"), b"STORED")
        b1 = cl.backend("b1")
        port = b1.port
        b1.kill()
        for i in range(5):
            c.send(b"get k1\r\n")
            line, took = self.timed(c.readline)
            self.assertTrue(line.startswith(b"SERVER_ERROR"), line)
            self.assertLess(took, 2.0)
            line, took = self.timed(c.set, "k%d" % i, b"x")
            self.assertTrue(line.startswith(b"SERVER_ERROR"), line)
            self.assertLess(took, 2.0)
        self.assertTrue(c.version().startswith(b"VERSION "))
        # Same port, empty cache: the proxy must use it again.
        again = mctest.Memcached(cl.tmpdir, name="b1-again", port=port)
        cl.backends.append(again)
        again.start()

        def works():
            c.send(b"get k1\r\n")
            line = c.readline()
            return line == b"END"
        mctest.wait_for(works, 10.0, "proxy to use the restarted backend")
        self.assertEqual(c.set("k1", b"new"), b"STORED")
        with again.client() as bc:
            self.assertEqual(bc.get("k1"), b"new")



class HashTagTest(mctest.ClusterTestCase):
    """[proxy] hash_tag = {}: keys that share a tag share a backend, the
    one --route names (which places by the tag too)."""
    CLUSTER_ARGS = {"proxy": {"hash_tag": "{}"}}
    NEEDS_MCRING = True

    def test_tagged_keys_stay_together(self):
        tags = ["user%d" % i for i in range(30)]
        keys = ["{%s}:%s" % (t, part) for t in tags
                for part in ("cart", "profile", "session")]
        keys += ["plain-%d" % i for i in range(60)]
        c = self.client(timeout=10.0)
        c.send(b"".join(b"set %s 0 0 1\r\nv\r\n" % k.encode() for k in keys))
        for _ in keys:
            self.assertEqual(c.readline(), b"STORED")
        owners = self.cluster.owners(keys + tags)
        for t in tags:
            # --route places each by its tag: the tag's own owner.
            self.assertEqual({owners["{%s}:%s" % (t, p)]
                              for p in ("cart", "profile", "session")},
                             {owners[t]}, t)
        for m in self.cluster.backends:
            with m.client() as bc:
                found = {g[0] for g in bc.get_multi(keys)}
            self.assertEqual(found, {k for k in keys if owners[k] == m.name},
                             m.name)
        self.assertGreater(len(set(owners[t] for t in tags)), 1)
        # A multi-get of one tag's keys is one backend's.
        got = c.get_multi(["{user3}:cart", "{user3}:profile"])
        self.assertEqual([g[0] for g in got],
                         ["{user3}:cart", "{user3}:profile"])


class ProtocolWritevTest(ProtocolTest):
    """Every protocol test again on the writev path ([proxy] io_uring =
    no): the io_uring batch (the default) and the plain writes must answer
    the same, byte for byte."""
    CLUSTER_ARGS = {"nbackends": 3, "proxy": {"threads": 2, "max_keys": 256,
                                              "io_uring": "no"}}
    NEEDS_MCRING = True


def io_uring_fds(pid):
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if "io_uring" in os.readlink("/proc/%d/fd/%s" % (pid, fd)):
                n += 1
        except OSError:
            pass
    return n


class IoUringTest(ClusterTestCase):
    """The turn's writes go through one io_uring per worker where the
    kernel allows it, and through writev when told not to."""
    CLUSTER_ARGS = {"nbackends": 2, "proxy": {"threads": 2}}
    NEEDS_MCRING = True

    def log(self):
        with open(self.cluster.mcring.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def test_one_ring_per_worker_or_a_reason(self):
        pid = self.cluster.mcring.pid
        if "io_uring unavailable" in self.log():
            reason = [l for l in self.log().splitlines()
                      if "io_uring unavailable" in l][0]
            self.assertEqual(io_uring_fds(pid), 0)
            self.skipTest(reason)
        self.assertEqual(io_uring_fds(pid), 2)

    def test_big_replies_to_a_slow_reader_are_whole(self):
        # A reply the socket cannot take at once: the batch writes what it
        # takes, the rest waits for the socket as it does with writev.
        vals = {self.key(): bytes([65 + i]) * (900 * 1024) for i in range(3)}
        c = self.client(timeout=20.0)
        for k, v in vals.items():
            c.send(b"set %s 0 0 %d\r\n%s\r\n" % (k.encode(), len(v), v))
            self.assertEqual(c.readline(), b"STORED")
        slow = self.client(timeout=20.0)
        slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        keys = list(vals) * 2
        slow.send(b"".join(b"get %s\r\n" % k.encode() for k in keys))
        for k in keys:
            self.assertEqual(slow.read_values(), [(k, 0, vals[k], None)], k)
        self.assert_alive()

    def test_clients_reset_with_reads_queued(self):
        # A client that sent more and reset its connection while mcring
        # could not write to it: in one turn its socket is readable (a
        # read is queued) and its write fails (it is closed). The queued
        # read must go with it, and nobody else notice.
        k = self.key()
        v = b"r" * (256 * 1024)
        c = self.client(timeout=10.0)
        c.send(b"set %s 0 0 %d\r\n%s\r\n" % (k.encode(), len(v), v))
        self.assertEqual(c.readline(), b"STORED")
        ctl = self.client()
        base = int(ctl.stats()["curr_connections"])
        for _ in range(100):
            s = socket.create_connection(("127.0.0.1", self.cluster.port))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(b"get %s\r\n" % k.encode() * 40)
            mctest.wait_for(lambda: int(ctl.stats()["curr_connections"]) >
                            base, 5, "the client connected")
            s.sendall(b"get %s\r\n" % k.encode() * 40)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))
            s.close()
            self.assertEqual(ctl.get(k), v)
        mctest.wait_for(lambda: int(ctl.stats()["curr_connections"]) == base,
                        10, "the reset clients closed")
        self.assert_alive()


class IoUringOffTest(ClusterTestCase):
    CLUSTER_ARGS = {"nbackends": 2, "proxy": {"threads": 2,
                                              "io_uring": "no"}}
    NEEDS_MCRING = True

    def test_no_ring(self):
        self.assertEqual(io_uring_fds(self.cluster.mcring.pid), 0)
        c = self.client()
        k = self.key()
        c.send(b"set %s 0 0 2\r\nhi\r\nget %s\r\n" % (k.encode(),
                                                          k.encode()))
        self.assertEqual(c.readline(), b"STORED")
        self.assertEqual(c.read_values(), [(k, 0, b"hi", None)])


if __name__ == "__main__":
    mctest.main()
