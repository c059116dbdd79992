#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Integration tests: the live request stream (`watch`, GET /watch).

Real memcached backends behind one mcring with the admin API.  A watcher
(text `watch` or GET /watch, read as real chunked HTTP) gets one line per
key of every request other clients make, parsed strictly: command, key,
the backend the key lives on (checked against GET /route and by reading
that memcached directly), the result (hit, miss, stored, deleted,
not_found...) and a latency.  `sample=N` gives 1 in N; bad arguments are
refused and the connection goes on.  A watcher that does not read makes
lines drop: the drops are counted (watch_dropped), announced in the
stream (dropped=N) and add up with what arrived to what was produced,
other clients are not slowed or failed, and mcring's memory stays
bounded.  At most WATCH_MAX watchers, text and HTTP together: the next is
refused (SERVER_ERROR too many watchers, HTTP 503) and a watcher that
hangs up frees its slot.  With no watcher nothing is produced.
"""

import http.client
import os
import re
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest  # noqa: E402
import test_admin  # noqa: E402
from mctest import wait_for  # noqa: E402

WATCH_MAX = 8                   # src/watch.h
WATCH_SAMPLE_MAX = 1000000      # src/watch.h
WATCH_OUTPUT_MAX = 256 * 1024   # src/watch.h

EVENT = re.compile(
    r"ts=(?P<ts>[0-9]+\.[0-9]{6}) client=(?P<client>[0-9]+\.[0-9]+) "
    r"cmd=(?P<cmd>[a-z_]+)(?: key=(?P<key>[!-~]+))?"
    r"(?: backend=(?P<backend>[A-Za-z0-9_.:-]+))? "
    r"result=(?P<result>[a-z_]+) latency_us=(?P<latency>[0-9]+)$")
DROPPED = re.compile(r"ts=[0-9]+\.[0-9]{6} dropped=(?P<n>[1-9][0-9]*)$")


def parse_line(line):
    """One stream line: ("event", dict) or ("dropped", N); anything else
    fails the test."""
    if isinstance(line, bytes):
        line = line.decode("ascii")
    m = EVENT.match(line)
    if m:
        ev = m.groupdict()
        ev["latency"] = int(ev["latency"])
        return "event", ev
    m = DROPPED.match(line)
    if m:
        return "dropped", int(m.group("n"))
    raise AssertionError("bad watch line %r" % line)


class TextWatcher:
    """A `watch` connection: lines read with a deadline."""

    def __init__(self, port, args=b"", rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect(("127.0.0.1", port))
        self.sock.settimeout(10)
        self.buf = bytearray()
        self.args = args

    def start(self):
        """Sends watch; returns its answer line."""
        self.sock.sendall(b"watch" + (b" " + self.args if self.args else b"")
                          + b"\r\n")
        return self.readline(b"\r\n")

    def readline(self, eol=b"\n", timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            i = self.buf.find(eol)
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + len(eol)]
                return line
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no watch line")
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            if not data:
                raise mctest.ConnectionClosed("watcher closed")
            self.buf += data

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class HTTPWatcher:
    """GET /watch over http.client (chunked)."""

    def __init__(self, port, query="", token=test_admin.TOKEN):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"Authorization": "Bearer " + token} if token else {}
        self.conn.request("GET", "/watch" + query, headers=headers)
        self.resp = self.conn.getresponse()

    def readline(self):
        line = self.resp.readline()
        if not line.endswith(b"\n"):
            raise mctest.ConnectionClosed("stream ended: %r" % line)
        return line[:-1]

    def close(self):
        self.conn.close()


class WatchTestCase(test_admin.AdminTestCase):
    """Requests to be seen are made on connections opened after the
    watcher's OK: a new connection reaches its worker through the inbox,
    behind the news of the watcher, so its first request is sampled.
    Lines of one connection (one worker) come in order; of two, in any."""
    NBACKENDS = 3
    PROXY = {"threads": 2}

    def setUp(self):
        super().setUp()
        self.watchers = []
        self.addCleanup(self._stop)

    def _stop(self):
        """Every test ends with a clean exit (under ASan: no leak, no bad
        access of a watcher's memory)."""
        for w in self.watchers:
            w.close()
        rc = self.mcring.stop()
        self.assertEqual(rc, 0, "mcring exit %s:\n%s"
                         % (rc, self.mcring.log_text()))

    def assert_alive(self):
        self.assertTrue(self.mcring.alive(),
                        "mcring died (exit %s)" % self.mcring.returncode)

    def text_watcher(self, args=b"", **kw):
        w = TextWatcher(self.mcring.port, args, **kw)
        self.watchers.append(w)
        return w

    def http_watcher(self, query="", **kw):
        w = HTTPWatcher(self.admin_port, query, **kw)
        self.watchers.append(w)
        return w

    def stats(self):
        """mcring's counters from GET /stats (no request a watcher sees)."""
        return {k: v for k, v in self.ok("GET", "/stats")["stats"].items()
                if isinstance(v, int)}

    def targets(self, keys):
        return {e["key"]: e["target"] for e in
                self.ok("GET", "/route?" + "&".join("key=" + k
                                                    for k in keys))}

    def events(self, w, n, timeout=10.0):
        """The next n event lines of watcher w (no drops expected)."""
        out = []
        while len(out) < n:
            kind, ev = parse_line(w.readline(timeout=timeout)
                                  if isinstance(w, TextWatcher)
                                  else w.readline())
            self.assertEqual(kind, "event", ev)
            out.append(ev)
        return out

    def workload(self):
        """Requests from another client, and the (cmd, key, result) each
        must show as."""
        k1, k2, k3 = "wa-1", "wa-2", "wa\\3"
        want = []
        with self.mcring.client() as c:
            self.assertEqual(c.set(k1, b"one"), b"STORED")
            want.append(("set", k1, "stored"))
            self.assertEqual(c.get(k1), b"one")
            want.append(("get", k1, "hit"))
            self.assertEqual(c.get(k2), None)
            want.append(("get", k2, "miss"))
            self.assertEqual(c.set(k3, b"3"), b"STORED")
            want.append(("set", k3, "stored"))
            got = c.get_multi([k1, k2, k3])
            self.assertEqual(sorted(v[0] for v in got), sorted([k1, k3]))
            want += [("get", k1, "hit"), ("get", k2, "miss"),
                     ("get", k3, "hit")]
            self.assertEqual(c.delete(k1), b"DELETED")
            want.append(("delete", k1, "deleted"))
            self.assertEqual(c.delete(k1), b"NOT_FOUND")
            want.append(("delete", k1, "not_found"))
            self.assertEqual(c.add(k3, b"x"), b"NOT_STORED")
            want.append(("add", k3, "not_stored"))
            self.assertIsNone(c.set(k2, b"quiet", noreply=True))
            want.append(("set", k2, "stored"))
            self.assertEqual(c.incr(k2, 1), b"CLIENT_ERROR cannot increment "
                             b"or decrement non-numeric value")
            want.append(("incr", k2, "client_error"))
            self.assertEqual(c.call(b"mg wa-2 v"), b"VA 5")
            self.assertEqual(c.readline(), b"quiet")
            want.append(("mg", k2, "hit"))
            self.assertTrue(c.version().startswith(b"VERSION "))
            want.append(("version", None, "ok"))
        return want

    def check_workload(self, w):
        want = self.workload()
        got = self.events(w, len(want))
        keys = sorted({k for _, k, _ in want if k is not None})
        where = self.targets([k.replace("\\", "%5C") for k in keys])
        for (cmd, key, result), ev in zip(want, got):
            self.assertEqual((ev["cmd"], ev["result"]), (cmd, result), ev)
            if key is None:
                self.assertIsNone(ev["key"], ev)
                self.assertIsNone(ev["backend"], ev)
                continue
            self.assertEqual(ev["key"], key.replace("\\", "\\\\"), ev)
            self.assertEqual(ev["backend"], where[key], ev)
            self.assertLess(ev["latency"], 10 * 1000 * 1000, ev)
            self.assertLess(abs(float(ev["ts"]) - time.time()), 60, ev)
        # The backend named is where the value really is.
        with self.backend(where["wa\\3"]).client() as d:
            self.assertEqual(d.get("wa\\3"), b"3")
        self.assertGreater(sum(ev["latency"] for ev in got), 0)
        return got


class TextWatchTest(WatchTestCase):

    def test_lines_of_other_clients_requests(self):
        w = self.text_watcher()
        self.assertEqual(w.start(), b"OK")
        self.check_workload(w)
        st = self.stats()
        self.assertGreaterEqual(st["watch_events"], 14)
        self.assertEqual(st["watch_dropped"], 0)
        self.assert_alive()

    def test_sample_one_in_n(self):
        w = self.text_watcher(b"sample=5")
        self.assertEqual(w.start(), b"OK")
        with self.mcring.client() as c:
            for i in range(50):
                self.assertIsNone(c.get("ws-%d" % i))
        # One client is on one worker: its requests 0, 5, 10, ...
        evs = self.events(w, 10)
        self.assertEqual([e["key"] for e in evs],
                         ["ws-%d" % i for i in range(0, 50, 5)])
        with self.assertRaises(socket.timeout):
            w.readline(timeout=0.3)

    def test_meta_base64_key_as_given(self):
        w = self.text_watcher()
        self.assertEqual(w.start(), b"OK")
        b64 = "d2EtYjY0"                # "wa-b64"
        with self.mcring.client() as c:
            c.send(("ms %s 1 b\r\nx\r\n" % b64).encode())
            self.assertEqual(c.readline(), b"HD")
            self.assertEqual(c.call("mg %s b v" % b64), b"VA 1")
            self.assertEqual(c.readline(), b"x")
            # A quiet miss: nothing but the MN after it.
            self.assertEqual(c.call("mg %s b v q\r\nmn" % b64.upper()),
                             b"MN")
        evs = self.events(w, 4)
        where = self.targets(["wa-b64"])["wa-b64"]
        self.assertEqual([(e["cmd"], e["key"], e["backend"], e["result"])
                          for e in evs],
                         [("ms", b64, where, "stored"),
                          ("mg", b64, where, "hit"),
                          ("mg", b64.upper(), evs[2]["backend"], "quiet"),
                          ("mn", None, None, "ok")])
        self.assertIsNotNone(evs[2]["backend"])
        with self.backend(where).client() as d:
            self.assertEqual(d.get("wa-b64"), b"x")

    def test_backend_is_the_fallback_of_a_down_owner(self):
        w = self.text_watcher()
        self.assertEqual(w.start(), b"OK")
        victim = self.memcached[0]
        keys = ["wf-%d" % i for i in range(40)]
        mine = [k for k, t in self.targets(keys).items() if t == victim.name]
        self.assertTrue(mine)
        victim.stop()
        self.wait_state([victim.name], "DOWN")
        key = mine[0]
        fallback = self.targets([key])[key]
        self.assertNotEqual(fallback, victim.name)
        with self.mcring.client() as c:
            self.assertEqual(c.set(key, b"f"), b"STORED")
            self.assertEqual(c.get(key), b"f")
        evs = self.events(w, 2)
        self.assertEqual([(e["cmd"], e["key"], e["backend"], e["result"])
                          for e in evs],
                         [("set", key, fallback, "stored"),
                          ("get", key, fallback, "hit")])

    def test_big_multi_get(self):
        """A get of 120 long keys (more keys than a request keeps for the
        next one, WATCH_KEEP_KEYS bytes): a line for each, in order."""
        w = self.text_watcher()
        self.assertEqual(w.start(), b"OK")
        keys = ["wg-%03d-" % i + "k" * 190 for i in range(120)]
        with self.mcring.client() as c:
            self.assertEqual(c.set(keys[7], b"7"), b"STORED")
            got = c.get_multi(keys)
            self.assertEqual([v[0] for v in got], [keys[7]])
            self.assertIsNone(c.get("wg-after"))
        evs = self.events(w, 1 + len(keys) + 1)
        where = self.targets(keys[:10])
        self.assertEqual([(e["cmd"], e["key"]) for e in evs[1:-1]],
                         [("get", k) for k in keys])
        self.assertEqual([e["result"] for e in evs[1:-1]],
                         ["hit" if i == 7 else "miss"
                          for i in range(len(keys))])
        for e in evs[1:11]:
            self.assertEqual(e["backend"], where[e["key"]])
        self.assertEqual((evs[-1]["key"], evs[-1]["result"]),
                         ("wg-after", "miss"))

    def test_commands_after_watch_are_ignored(self):
        w = self.text_watcher()
        w.sock.sendall(b"version\r\nwatch\r\nget wi-1\r\nversion\r\n")
        self.assertTrue(w.readline(b"\r\n").startswith(b"VERSION "))
        self.assertEqual(w.readline(b"\r\n"), b"OK")
        with self.mcring.client() as c:
            self.assertIsNone(c.get("wi-2"))
        ev = self.events(w, 1)[0]
        self.assertEqual((ev["cmd"], ev["key"], ev["result"]),
                         ("get", "wi-2", "miss"))

    def test_bad_arguments_are_refused(self):
        for args in (b"bogus", b"sample=0", b"sample=x", b"sample=",
                     b"sample=%d" % (WATCH_SAMPLE_MAX + 1),
                     b"sample=2 sample=3"):
            with self.mcring.client() as c:
                self.assertEqual(c.call(b"watch " + args),
                                 b"CLIENT_ERROR bad command line format",
                                 args)
                # Not watching: it goes on answering.
                self.assertTrue(c.version().startswith(b"VERSION "))
        w = self.text_watcher(b"sample=%d" % WATCH_SAMPLE_MAX)
        self.assertEqual(w.start(), b"OK")

    def test_no_watcher_no_lines(self):
        before = self.stats()
        with self.mcring.client() as c:
            for i in range(100):
                self.assertEqual(c.set("wn-%d" % i, b"v"), b"STORED")
                self.assertEqual(c.get("wn-%d" % i), b"v")
        after = self.stats()
        self.assertEqual(after["watch_events"], before["watch_events"])
        self.assertEqual(after["watch_dropped"], before["watch_dropped"])
        # ... also after a watcher came and went.
        self.assertEqual(before["watchers"], 0)
        w = self.text_watcher()
        self.assertEqual(w.start(), b"OK")
        self.assertEqual(self.stats()["watchers"], 1)
        w.close()
        wait_for(lambda: self.stats()["watchers"] == 0, 10,
                 "the watcher to go")
        mid = self.stats()
        with self.mcring.client() as c:
            for i in range(100):
                self.assertIsNone(c.get("wn-x%d" % i))
        self.assertEqual(self.stats()["watch_events"], mid["watch_events"])


class HTTPWatchTest(WatchTestCase):

    def test_stream_over_http(self):
        w = self.http_watcher()
        self.assertEqual(w.resp.status, 200)
        self.assertTrue(w.resp.getheader("Content-Type")
                        .startswith("text/plain"))
        self.assertEqual(w.resp.getheader("Transfer-Encoding"), "chunked")
        self.check_workload(w)

    def test_sample_and_refusals(self):
        w = self.http_watcher("?sample=3")
        self.assertEqual(w.resp.status, 200)
        with self.mcring.client() as c:
            for i in range(9):
                self.assertIsNone(c.get("wh-%d" % i))
        self.assertEqual([e["key"] for e in self.events(w, 3)],
                         ["wh-0", "wh-3", "wh-6"])
        for query in ("?sample=0", "?sample=abc", "?other=1",
                      "?sample=%d" % (WATCH_SAMPLE_MAX + 1)):
            code, _, doc = self.api("GET", "/watch" + query)
            self.assertEqual(code, 400, query)
            self.assertIn("sample=N", doc["error"])
        code, _, _ = self.api("GET", "/watch", token=None)
        self.assertEqual(code, 401)
        code, _, _ = self.api("POST", "/watch")
        self.assertEqual(code, 405)


class WatchLimitsTest(WatchTestCase):

    def test_cap_text_and_http_together(self):
        texts = [self.text_watcher() for _ in range(WATCH_MAX // 2)]
        for t in texts:
            self.assertEqual(t.start(), b"OK")
        https = [self.http_watcher() for _ in range(WATCH_MAX - len(texts))]
        for h in https:
            self.assertEqual(h.resp.status, 200)
        # One more of either kind is refused...
        extra = self.text_watcher()
        self.assertEqual(extra.start(), b"SERVER_ERROR too many watchers")
        extra.sock.sendall(b"version\r\n")
        self.assertTrue(extra.readline(b"\r\n").startswith(b"VERSION "))
        code, _, doc = self.api("GET", "/watch")
        self.assertEqual(code, 503)
        self.assertIn("too many watchers", doc["error"])
        # ... the admin API still answers ...
        self.assertEqual(self.stats()["watchers"], WATCH_MAX)
        self.assertIn("\nmcring_watchers %d\n" % WATCH_MAX,
                      self.api("GET", "/metrics")[2])
        # ... and every watcher still gets every line (the refused one's
        # version too; lines of two workers come in either order).
        with self.mcring.client() as c:
            self.assertIsNone(c.get("wc-1"))
        for w in texts + https:
            self.assertEqual(sorted((e["cmd"], e["key"] or "", e["result"])
                                    for e in self.events(w, 2)),
                             [("get", "wc-1", "miss"), ("version", "", "ok")])
        # A watcher that hangs up frees its slot: text, then HTTP.
        texts[0].close()
        wait_for(self.try_text_watch, 10, "a text watcher's slot")
        https[0].close()
        wait_for(self.try_http_watch, 10, "an HTTP watcher's slot")
        self.assert_alive()

    def try_text_watch(self):
        w = self.text_watcher()
        answer = w.start()
        if answer == b"OK":
            return True
        self.assertEqual(answer, b"SERVER_ERROR too many watchers")
        w.close()
        return False

    def try_http_watch(self):
        w = self.http_watcher()
        if w.resp.status == 200:
            return True
        self.assertEqual(w.resp.status, 503)
        w.close()
        return False

    def test_stop_while_watching(self):
        """SIGTERM with watchers of both kinds, one of them not reading:
        mcring exits cleanly (under ASan: nothing leaked)."""
        slow = self.text_watcher(rcvbuf=4096)
        self.assertEqual(slow.start(), b"OK")
        t = self.text_watcher()
        self.assertEqual(t.start(), b"OK")
        h = self.http_watcher("?sample=2")
        self.assertEqual(h.resp.status, 200)
        with self.mcring.client() as c:
            line = b"get " + b" ".join(b"wt-%d" % i for i in range(50)) + \
                b"\r\n"
            for _ in range(20):
                c.send(line * 50)
                for _ in range(50):
                    self.assertEqual(c.read_values(), [])
        self.assertEqual(self.events(t, 1)[0]["cmd"], "get")
        self.assertEqual(self.mcring.stop(), 0, self.mcring.log_text())

    def test_slow_watcher_drops_and_says_so(self):
        w = self.text_watcher(rcvbuf=4096)
        self.assertEqual(w.start(), b"OK")
        rss0 = self.mcring.rss_kb()
        before = self.stats()
        keys = ["wd-%d" % i for i in range(40)]
        nget = 5000
        # The watcher reads nothing while another client makes 200000
        # lines (~19 MB): far more than its rings and output hold, and
        # more than mcring may grow by.
        t0 = time.monotonic()
        c = self.mcring.client()
        self.addCleanup(c.close)
        self.assertEqual(c.set(keys[0], b"v"), b"STORED")
        line = ("get " + " ".join(keys) + "\r\n").encode()
        for i in range(0, nget, 100):
            c.send(line * 100)
            for _ in range(100):
                got = c.read_values()
                self.assertEqual([v[0] for v in got], [keys[0]])
        elapsed = time.monotonic() - t0
        mid = self.stats()
        self.assertGreater(mid["watch_dropped"], before["watch_dropped"])
        self.assertLess(elapsed, 60)
        # With its rings and output full, a new client is served at once.
        with self.mcring.client() as c2:
            t1 = time.monotonic()
            for i in range(100):
                self.assertEqual(c2.set("wd-o%d" % i, b"v"), b"STORED")
                self.assertEqual(c2.get("wd-o%d" % i), b"v")
            self.assertLess(time.monotonic() - t1, 10)
        grown = self.mcring.rss_kb() - rss0
        self.assertLess(grown, 8 * 1024, "mcring grew %d kB" % grown)
        # Now it reads: what arrived and what was announced dropped add
        # up to every line made (once it has caught up, one more request
        # on that worker tells the last drops).
        events = dropped = 0
        last = None

        def read():
            nonlocal events, dropped, last
            while True:
                try:
                    line = w.readline(timeout=0.2)
                except socket.timeout:
                    return
                kind, v = parse_line(line)
                if kind == "event":
                    events += 1
                    last = v
                else:
                    dropped += v
        read()
        self.assertIsNone(c.get("wd-last"))

        def caught_up():
            read()
            st = self.stats()
            made = st["watch_events"] + st["watch_dropped"] - \
                before["watch_events"] - before["watch_dropped"]
            return last is not None and last["key"] == "wd-last" and \
                events + dropped == made
        wait_for(caught_up, 30, "the stream to add up", interval=0.05)
        st = self.stats()
        self.assertEqual(dropped, st["watch_dropped"] - before["watch_dropped"])
        self.assertEqual(events, st["watch_events"] - before["watch_events"])
        self.assertGreater(dropped, 0)
        self.assertGreater(events, 0)
        # The same counters in `stats` and /metrics.
        with self.mcring.client() as c2:
            self.assertEqual(int(c2.stats()["watch_dropped"]),
                             st["watch_dropped"])
        self.assertIn("\nmcring_watch_dropped_total %d\n"
                      % st["watch_dropped"],
                      self.api("GET", "/metrics")[2])
        self.assert_alive()


class L1WatchTest(WatchTestCase):
    """A get answered from the l1 cache names no backend."""
    PROXY = {"threads": 1, "hotkey_sample": 1, "l1": 1048576,
             "l1_ttl": 300}

    def test_l1_hit_has_no_backend(self):
        k = "wl-hot"
        with self.mcring.client() as c:
            self.assertEqual(c.set(k, b"h"), b"STORED")

            def cached():
                for _ in range(20):
                    self.assertEqual(c.get(k), b"h")
                return self.stats()["l1_hits"] > 0
            wait_for(cached, 10, "the key to be cached")
        w = self.text_watcher()
        self.assertEqual(w.start(), b"OK")
        # (A connection made after the OK is handed to its worker after
        # the news of the watcher: its first request is seen.)
        with self.mcring.client() as c:
            self.assertEqual(c.get(k), b"h")
        ev = self.events(w, 1)[0]
        self.assertEqual((ev["cmd"], ev["key"], ev["backend"], ev["result"]),
                         ("get", k, None, "hit"))


if __name__ == "__main__":
    mctest.main()
