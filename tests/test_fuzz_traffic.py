# SPDX-License-Identifier: BSD-3-Clause
"""Integration test: random and mutated traffic at a running mcring.

Twenty connections at once send mutations of valid commands (text and
meta, storage with data blocks, multi-gets, noreply, binary junk, lines
cut short or too long) from a seeded generator, reading whatever comes
back.  Afterwards: mcring is alive, a control client that ran meanwhile
got exactly its own answers (no cross-talk; flush_all, which would empty
its keys too, is left out of the seeds), and once the fuzzing
connections are gone mcring's descriptors are back where they were and
its memory is bounded.  MCTEST_FUZZ_SEED repeats a run; the seed is
printed.
"""

import os
import random
import selectors
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest  # noqa: E402

SEEDS = [
    b"get k1 k2 k3\r\n", b"gets k1\r\n", b"set k1 0 0 5\r\nhello\r\n",
    b"add k2 5 100 3 noreply\r\nabc\r\n", b"append k1 0 0 2\r\nxy\r\n",
    b"cas k1 0 0 1 12345\r\nz\r\n", b"delete k1\r\n", b"delete k2 noreply\r\n",
    b"incr k3 5\r\n", b"decr k3 18446744073709551615\r\n", b"touch k1 10\r\n",
    b"gat 10 k1 k2\r\n", b"mg k1 v f t c k O9 q\r\n", b"mn\r\n",
    b"ms k4 3 T5 F1 I\r\nabc\r\n", b"md k4 q C1\r\n", b"ma k5 N0 J3 v\r\n",
    b"me k1\r\n", b"mg a2V5 b v\r\n", b"stats\r\n", b"stats items\r\n",
    b"version\r\n", b"verbosity 1\r\n", b"slabs automove 1 noreply\r\n",
    b"lru tune 20 40 0.1 2.0\r\n", b"lru_crawler metadump all\r\n",
    b"set big 0 0 70000\r\n" + b"v" * 70000 + b"\r\n",
]


def mutate(rng, data):
    """One of: the bytes as they are, a byte flipped, a slice cut or
    doubled, junk inserted, the line end dropped."""
    b = bytearray(data)
    op = rng.randrange(8)
    if op == 0 or not b:
        pass
    elif op == 1:
        i = rng.randrange(len(b))
        b[i] = rng.randrange(256)
    elif op == 2:
        i = rng.randrange(len(b))
        del b[i:i + rng.randrange(1, 8)]
    elif op == 3:
        i = rng.randrange(len(b))
        b[i:i] = b[i:i + rng.randrange(1, 16)] * rng.randrange(1, 4)
    elif op == 4:
        i = rng.randrange(len(b) + 1)
        b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1,
                                                                       40)))
    elif op == 5:
        b = b.replace(b"\r\n", b"\n", 1)
    elif op == 6:
        b = b.rstrip(b"\r\n") + b" " + b"x" * rng.randrange(100, 3000) + \
            b"\r\n"
    else:
        b = bytearray(rng.randrange(256) for _ in range(rng.randrange(1,
                                                                      200)))
    return bytes(b)


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


class FuzzTrafficTest(mctest.ClusterTestCase):
    CLUSTER_ARGS = {"nbackends": 2}
    NEEDS_MCRING = True
    CONNS = 20
    BYTES = 150000          # per connection

    def test_random_traffic_harms_no_one(self):
        seed = int(os.environ.get("MCTEST_FUZZ_SEED") or time.time())
        sys.stderr.write("[seed %d] " % seed)
        rng = random.Random(seed)
        m = self.cluster.mcring
        control = self.client(timeout=10.0)
        self.assertTrue(control.version().startswith(b"VERSION "))
        fds0, rss0 = fd_count(m.pid), m.rss_kb()
        sel = selectors.DefaultSelector()
        todo = {}
        for _ in range(self.CONNS):
            s = socket.create_connection(("127.0.0.1", self.cluster.port))
            s.setblocking(False)
            todo[s] = bytearray()
            while len(todo[s]) < self.BYTES:
                todo[s] += mutate(rng, rng.choice(SEEDS))
            sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
        deadline = time.monotonic() + 60
        nkey = 0
        reconnects = 0
        while sel.get_map() and time.monotonic() < deadline:
            for key, ev in sel.select(timeout=0.2):
                s = key.fileobj
                try:
                    if ev & selectors.EVENT_READ and not s.recv(65536):
                        sel.unregister(s)     # closed by mcring
                        s.close()
                        rest = todo.pop(s)
                        if rest:
                            # What it had left goes on a new connection.
                            s = socket.create_connection(
                                ("127.0.0.1", self.cluster.port))
                            s.setblocking(False)
                            todo[s] = rest
                            reconnects += 1
                            sel.register(s, selectors.EVENT_READ |
                                         selectors.EVENT_WRITE)
                        continue
                    if ev & selectors.EVENT_WRITE and todo[s]:
                        n = s.send(todo[s][:16384])
                        del todo[s][:n]
                        if not todo[s]:
                            s.shutdown(socket.SHUT_WR)
                            sel.modify(s, selectors.EVENT_READ)
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    sel.unregister(s)
                    s.close()
                    todo.pop(s, None)
            # The control client, meanwhile: exactly its own answers.
            nkey += 1
            k = "fuzz-control-%d-%d" % (seed, nkey)
            v = ("%d" % rng.randrange(10 ** 9)).encode()
            self.assertEqual(control.set(k, v), b"STORED")
            self.assertEqual(control.get(k), v)
        for key in list(sel.get_map().values()):
            sel.unregister(key.fileobj)
            key.fileobj.close()
        sel.close()
        self.assertTrue(m.alive(), "mcring died (exit %s)" % m.returncode)
        keys = ["fuzz-control-%d-%d" % (seed, i) for i in range(1, 50)]
        got = control.get_multi(keys[:nkey])
        self.assertEqual([g[0] for g in got], keys[:min(nkey, 49)])
        mctest.wait_for(lambda: control.stats()["curr_connections"] == "1",
                        30, "the fuzzing connections to be gone")
        mctest.wait_for(lambda: fd_count(m.pid) <= fds0 + 2, 30,
                        "mcring's descriptors back to %d" % fds0)
        rss = m.rss_kb()
        sys.stderr.write("[%d reconnects, RSS %d -> %d KB, fds %d -> %d] "
                         % (reconnects, rss0, rss, fds0, fd_count(m.pid)))
        self.assertLess(rss, rss0 + 64 * 1024)


if __name__ == "__main__":
    mctest.main()
