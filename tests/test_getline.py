#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""The gets of one loop turn share a line to their backend.

mcring sends the gets (and gets) it reads in one loop turn for one backend
connection, each a client's key or its share of a client's keys, as one
multi-key command (bconn_send_get()): memcached before 1.6.35 writes the
reply to every get in a system call and a TCP segment of its own. A
write of one key goes ahead of the open line unless the line asks for
that key (bconn_output_key()).
These tests read what the backend received (memcached -vv logs each
command line), check every reply against what a memcached spoken to
directly answers, and cross the line's bounds (32 keys, 1024 bytes).
"""

import os
import random
import re
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest  # noqa: E402
from mctest import ClusterTestCase  # noqa: E402

JOIN_KEYS = 32
JOIN_LINE = 1024


def backend_lines(m, pattern):
    """The command lines memcached m logged (-vv) that match pattern."""
    out = []
    for line in m.log_text(limit=10 ** 7).splitlines():
        mo = re.match(r"<\d+ (.*)$", line)
        if mo and re.search(pattern, mo.group(1)):
            out.append(mo.group(1))
    return out


class SharedLineTest(ClusterTestCase):
    """One backend (memcached -vv) behind mcring with one thread, and a
    memcached spoken to directly for the expected bytes."""

    CLUSTER_ARGS = {"nbackends": 1, "proxy": {"threads": 1},
                    "memcached_args": ("-vv",)}
    NEEDS_MCRING = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ref = mctest.Memcached(cls.cluster.tmpdir, name="ref")
        cls.addClassCleanup(cls.ref.stop)
        cls.ref.start()

    def both(self, data, end=b"NOT_FOUND\r\n"):
        """Sends data to mcring and to the reference memcached, each in
        one write, with a touch of a missing key after it; returns both
        answers up to that touch's NOT_FOUND."""
        data += b"touch " + self.key("end").encode() + b" 0\r\n"
        got = []
        for c in (self.client(), mctest.Client(self.ref.port)):
            # A new client has 4 requests in flight at first, twice as
            # many with each of its first replies: open it up to 64.
            for _ in range(5):
                self.assertEqual(c.call(b"get getline-warm-up"), b"END")
            c.send(data)
            got.append(c.read_until(end))
            c.close()
        return got

    def test_pipelined_gets_share_a_line_and_answer_as_memcached(self):
        ka, kb, kc = self.key("a"), self.key("b"), self.key("c")
        miss1, miss2 = self.key("miss1"), self.key("miss2")
        setup = ("set %s 0 0 3\r\nabc\r\nset %s 5 0 2\r\nxy\r\n"
                 % (ka, kb)).encode()
        self.assertEqual(*self.both(setup))
        # a set of a key the open line does not ask for goes ahead of it
        # (c); one of a key it asks for ends it (b)
        pipeline = ("get {a}\r\nget {m1}\r\nget {b}\r\nget {a}\r\n"
                    "gets {b}\r\nget {b}\r\nset {c} 0 0 1\r\nz\r\n"
                    "get {c}\r\nget {m2}\r\nset {b} 0 0 1\r\nq\r\n"
                    "get {b}\r\n").format(
                        a=ka, b=kb, c=kc, m1=miss1, m2=miss2).encode()
        via, direct = self.both(pipeline)
        self.assertEqual(via, direct)
        self.assertIn(b"VALUE %s 5 2 " % kb.encode(), via)   # the gets
        be = self.cluster.backends[0]
        mine = re.escape(self._testMethodName)
        want = ["get %s %s %s %s" % (ka, miss1, kb, ka),
                "gets %s" % kb,
                "set %s 0 0 1" % kc,
                "get %s %s %s" % (kb, kc, miss2),
                "set %s 0 0 1" % kb,
                "get %s" % kb]

        def logged():
            return [ln for ln in backend_lines(be, mine)
                    if ln.startswith(("get", "set"))][-len(want):]
        mctest.wait_for(lambda: logged() == want, 5,
                        "the backend to log the pipeline's lines")
        self.assertEqual(logged(), want)

    def test_multi_key_gets_join_the_line_too(self):
        ka, kb, kc = self.key("a"), self.key("b"), self.key("c")
        miss = self.key("miss")
        setup = ("set %s 0 0 1\r\n1\r\nset %s 3 0 2\r\n22\r\n"
                 "set %s 0 0 3\r\n333\r\n" % (ka, kb, kc)).encode()
        self.assertEqual(*self.both(setup))
        pipeline = ("get {a} {m} {b}\r\nget {c}\r\nget {b} {b}\r\n"
                    "gets {a} {c}\r\ngets {m}\r\nget {m} {a}\r\n").format(
                        a=ka, b=kb, c=kc, m=miss).encode()
        via, direct = self.both(pipeline)
        self.assertEqual(via, direct)
        be = self.cluster.backends[0]
        mine = re.escape(self._testMethodName)
        mctest.wait_for(lambda: backend_lines(be, "^get %s %s$" % (
            re.escape(miss), re.escape(ka))), 5,
            "the backend to log the last get")
        lines = [ln for ln in backend_lines(be, mine)
                 if ln.startswith("get")]
        self.maxDiff = None
        self.assertEqual(lines[-3:], [
            "get %s %s %s %s %s %s" % (ka, miss, kb, kc, kb, kb),
            "gets %s %s %s" % (ka, kc, miss),
            "get %s %s" % (miss, ka)])

    def test_line_bounds(self):
        """100 short keys: lines of 32 keys at most; 100 keys of 250
        bytes: lines of 1024 bytes at most (4 keys)."""
        for klen in (10, 250):
            prefix = self.key("%d-" % klen)
            keys = [(prefix + "%d-" % i).ljust(klen, "k")[:klen]
                    if klen == 250 else prefix + str(i) for i in range(100)]
            setup = b"".join(b"set %s 0 0 %d\r\n%s\r\n"
                             % (k.encode(), len(k), k.encode())
                             for k in keys[::2])
            self.assertEqual(*self.both(setup))
            pipeline = b"".join(b"get %s\r\n" % k.encode() for k in keys)
            via, direct = self.both(pipeline)
            self.assertEqual(via, direct)
            self.assertEqual(via.count(b"VALUE "), 50)
            be = self.cluster.backends[0]
            mctest.wait_for(
                lambda: backend_lines(be, re.escape(keys[-1]) + "$"), 5,
                "the backend to log the last get")
            lines = [ln for ln in backend_lines(be, re.escape(prefix))
                     if ln.startswith("get ")]
            self.assertEqual(" ".join(ln[4:] for ln in lines),
                             " ".join(keys))
            nkeys = [len(ln.split()) - 1 for ln in lines]
            self.assertLessEqual(max(nkeys), JOIN_KEYS, lines)
            self.assertTrue(all(len(ln) <= JOIN_LINE for ln in lines),
                            [len(ln) for ln in lines])
            if klen == 10:
                self.assertEqual(max(nkeys), JOIN_KEYS, nkeys)
            else:
                self.assertEqual(max(nkeys), 4, nkeys)



class HungBackendTest(ClusterTestCase):
    """The backend stops answering with a shared line in flight: every get
    on it times out with the error, alone; once it answers again, so do
    the gets."""

    CLUSTER_ARGS = {"nbackends": 1,
                    "proxy": {"threads": 1, "timeout_ms": 300},
                    "health": {"fall": 100}}
    NEEDS_MCRING = True

    def test_every_get_of_the_line_fails_alone(self):
        keys = [self.key() for _ in range(6)]
        with self.client() as c:
            for k in keys[::2]:
                self.assertEqual(c.call("set %s 0 0 1\r\nv" % k), b"STORED")
        be = self.cluster.backends[0]
        be.pause()
        try:
            with self.client() as c:
                c.send(b"".join(b"get %s\r\n" % k.encode() for k in keys))
                for k in keys:
                    self.assertTrue(c.readline().startswith(b"SERVER_ERROR"),
                                    k)
        finally:
            be.resume()

        def served():
            with self.client() as c:
                c.send(b"".join(b"get %s\r\n" % k.encode() for k in keys))
                return [len(c.read_values()) for _ in keys]
        mctest.wait_for(lambda: served() == [1, 0] * 3, 10,
                        "the gets to be served again")
        self.assert_alive()


class ManyClientsTest(ClusterTestCase):
    """Two backends, one mcring thread, 30 clients whose pipelined gets
    land in the same loop turns: each gets exactly its own values."""

    CLUSTER_ARGS = {"nbackends": 2, "proxy": {"threads": 1}}
    NEEDS_MCRING = True

    def test_each_client_gets_its_own_values(self):
        rng = random.Random(20261203)
        nclients = 30
        keys = {ci: [self.key("c%d-%d" % (ci, i)) for i in range(10)]
                for ci in range(nclients)}
        values = {}
        with self.client() as c:
            for ci in range(nclients):
                for k in keys[ci][::3]:     # the others miss
                    v = ("%s=%d" % (k, rng.randrange(10 ** 6))).encode()
                    self.assertEqual(c.call(b"set %s %d 0 %d\r\n%s"
                                            % (k.encode(), ci, len(v), v)),
                                     b"STORED")
                    values[k] = (ci, v)
        clients = [self.client() for _ in range(nclients)]
        for _ in range(5):
            want = []
            for ci, c in enumerate(clients):
                # Single-key gets mostly, some of 2 to 4 keys (over both
                # backends, a key repeated now and then).
                cmds = [(rng.choice(["get", "get", "gets"]),
                         [rng.choice(keys[ci]) for _ in
                          range(rng.choice([1, 1, 1, 2, 3, 4]))])
                        for _ in range(12)]
                c.send(b"".join(b"%s %s\r\n" % (cmd.encode(),
                                                 " ".join(ks).encode())
                                for cmd, ks in cmds))
                want.append(cmds)
            for c, cmds in zip(clients, want):
                for cmd, ks in cmds:
                    vals = c.read_values()
                    hits = [k for k in ks if k in values]
                    self.assertEqual([v[0] for v in vals], hits, ks)
                    for k, (got_k, got_flags, got_v, cas) in zip(hits, vals):
                        self.assertEqual((got_flags, got_v), values[k])
                        self.assertEqual(cas is not None, cmd == "gets")
        self.assert_alive()

    def test_writes_between_the_gets_keep_their_order(self):
        """Sets and deletes of a client's keys (text and meta) among its
        gets, pipelined by 30 clients at once: every get sees the writes
        sent before it and none sent after it."""
        rng = random.Random(20261204)
        nclients = 30
        keys = {ci: [self.key("w%d-%d" % (ci, i)) for i in range(6)]
                for ci in range(nclients)}
        model = {}
        clients = [self.client() for _ in range(nclients)]
        for c in clients:
            for _ in range(5):      # up to 64 requests in flight
                self.assertEqual(c.call(b"get getline-warm-up"), b"END")
        for rnd in range(5):
            want = []
            for ci, c in enumerate(clients):
                out, expect = [], []
                for i in range(16):
                    ks = [rng.choice(keys[ci])
                          for _ in range(rng.choice([1, 1, 1, 2, 3]))]
                    op = rng.choice(["get"] * 5 + ["set", "set", "delete",
                                                   "ms", "md", "mg"])
                    if op == "ms":
                        v = ("m%d.%d.%d" % (ci, rnd, i)).encode()
                        out.append(b"ms %s %d\r\n%s\r\n"
                                   % (ks[0].encode(), len(v), v))
                        model[ks[0]] = v
                        expect.append(b"HD")
                    elif op == "md":
                        out.append(b"md %s\r\n" % ks[0].encode())
                        expect.append(b"HD" if ks[0] in model else b"NF")
                        model.pop(ks[0], None)
                    elif op == "mg":
                        out.append(b"mg %s v\r\n" % ks[0].encode())
                        v = model.get(ks[0])
                        expect.append(b"VA %d\r\n%s" % (len(v), v)
                                      if v is not None else b"EN")
                    elif op == "get":
                        out.append(b"get %s\r\n" % " ".join(ks).encode())
                        expect.append([(k, model[k]) for k in ks
                                       if k in model])
                    elif op == "set":
                        v = ("%d.%d.%d" % (ci, rnd, i)).encode()
                        out.append(b"set %s 0 0 %d\r\n%s\r\n"
                                   % (ks[0].encode(), len(v), v))
                        model[ks[0]] = v
                        expect.append(b"STORED")
                    else:
                        out.append(b"delete %s\r\n" % ks[0].encode())
                        expect.append(b"DELETED" if ks[0] in model
                                      else b"NOT_FOUND")
                        model.pop(ks[0], None)
                c.send(b"".join(out))
                want.append(expect)
            for c, expect in zip(clients, want):
                for e in expect:
                    if isinstance(e, bytes) and e.startswith(b"VA "):
                        self.assertEqual(c.readline() + b"\r\n"
                                         + c.readline(), e)
                    elif isinstance(e, bytes):
                        self.assertEqual(c.readline(), e)
                    else:
                        got = [(k, v) for k, _, v, _ in c.read_values()]
                        self.assertEqual(got, e)
        self.assert_alive()


class StallingBackend(mctest.ScriptedBackend):
    """A scripted backend: answers version; to a get line, the values of
    its keys that start with "hit" up to the first that starts with
    "stall", then nothing more on that line. It keeps the lines it got."""

    def __init__(self):
        self.lines = []
        super().__init__()

    def answer(self, line):
        words = line.split()
        if words[:1] == [b"version"]:
            return b"VERSION 1.6.18\r\n"
        if words[:1] != [b"get"]:
            return b"ERROR\r\n"
        self.lines.append(line)
        out = b""
        for k in words[1:]:
            if k.startswith(b"stall"):
                return out
            if k.startswith(b"hit"):
                out += b"VALUE %s 0 %d\r\n%s\r\n" % (k, len(k), k)
        return out + b"END\r\n"


class StalledLineTest(unittest.TestCase):
    """A get on a shared line that has its value is answered with it,
    whatever happens to the gets after it on the line: here the backend
    stops after the first value, and only the second get times out."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="mctest-stall-")
        cls.backend = StallingBackend()
        cls.proxy = mctest.Mcring(
            cls.tmp.name, [("stalling", cls.backend.port)],
            proxy={"threads": 1, "timeout_ms": 500},
            health={"fall": 100}).start()

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.backend.close()
        cls.tmp.cleanup()

    def test_value_in_is_answered_though_the_line_stalls(self):
        with self.proxy.client() as c:
            c.send(b"get hit-1\r\nget stall-1\r\n")
            self.assertEqual(c.read_values(), [("hit-1", 0, b"hit-1", None)])
            self.assertTrue(c.readline().startswith(b"SERVER_ERROR"))
        self.assertIn(b"get hit-1 stall-1", self.backend.lines)
        self.assertTrue(self.proxy.alive())


if __name__ == "__main__":
    mctest.main()
