#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Integration tests: a live topology change by SIGHUP reload.

Real memcached backends behind one mcring (threads = 2).  The tests rewrite
mcring's config file, send SIGHUP (by PID), wait until `stats` counts the
reload (`reloads` or `reload_failures`), then wait for the observable
effect (workers adopt a new topology within one loop turn, not at once).
While client threads keep writing and reading through mcring, they check,
by reading the backends directly and by `mcring --route` on the new file:

  - adding a backend: zero client errors; it is probed before it gets keys
    (NEW, possibly RECOVERING, then UP); its share of keys is 1/(n+1)
    within 10%; exactly the keys `--route` gives it moved, every other key
    stayed on its owner;
    unchanged backends keep their connections (`total_connections` of
    their memcached does not grow);
  - removing one: only its keys move, each to the first fallback `--route`
    names on the old file (= the owner on the new one); requests in flight
    to it finish; then its connections close;
  - a weight change moves only the changed share, to and from that backend;
  - a broken file (syntax error, duplicate name, bad address) changes
    nothing and logs FILE:LINE:; a fixed file then applies;
  - `listen`, `threads`, `backend_connections` need a restart: logged, old
    values kept, the rest of the file applies;
  - 200 reloads under load: no client error, RSS and open fds flat;
  - a missing, unreadable or empty file: a failure, serving goes on;
  - a backend kept across a reload while it is DOWN keeps its state,
    counters and recovery log (no older value after its return);
  - a backend that keeps its name but changes its address is a new one
    (probed first; the old address's connections close; no key moves).

Each test has its own cluster.  The figures measured (SIGHUP to counter,
to keys on a newcomer) are printed to stderr.

MCTEST_SLOW=1 (sanitizer builds) doubles the time bounds and loosens the
RSS bound (ASan's quarantine holds freed memory).
"""

import os
import shutil
import stat
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest  # noqa: E402
from mctest import ConnectionClosed, wait_for  # noqa: E402

SLOW = os.environ.get("MCTEST_SLOW") == "1"
SPEC = 2.0 if SLOW else 1.0         # factor on time bounds

# Fast checks, but a timeout long enough that a loaded 2-core machine does
# not time a probe out: that resets the checker's connection, which would
# show as a reopened connection (total_connections) not due to a reload.
HEALTH = {"interval_ms": 100, "timeout_ms": 1000, "rise": 1, "fall": 5}
THREADS = 2                         # mcring worker threads
CLIENT_ERRORS = (OSError, ConnectionClosed, mctest.ProtocolError)
# A client connection per worker, with near certainty (round robin).
NCONNS = 4


def note(fmt, *args):
    sys.stderr.write("\n  " + (fmt % args) + "\n")
    sys.stderr.flush()


def split(keys, n):
    return [keys[i::n] for i in range(n)]


_idle = []


def idle_curr_connections():
    """curr_connections of a memcached with one client (ours) and nothing
    else: what a removed backend's memcached falls back to.  Measured once
    on a spare memcached."""
    if not _idle:
        tmp = tempfile.mkdtemp(prefix="mctest-idle-")
        m = mctest.Memcached(tmp, name="idle")
        try:
            m.start()
            with m.client() as c:
                _idle.append(int(c.stats()["curr_connections"]))
        finally:
            m.kill()
            shutil.rmtree(tmp, ignore_errors=True)
    return _idle[0]


# ---------------------------------------------------------------- load

class Load:
    """Client threads, each on its own connection and its own keys, in
    rounds of 8 keys: set k (a unique value), get k (the value just
    stored) one after the other; every other round pipelined instead, the
    8 sets and a get of the 8 keys in one write.  Runs until stop(), at
    most max_seconds and max_ops keys per thread.

    errors: (t, key, detail) of what a client must never see: a reply
    other than STORED to a set, any ERROR / SERVER_ERROR / CLIENT_ERROR, a
    closed or timed-out connection, a malformed reply, a value that is not
    one this thread wrote for that key.
    mismatches: (t, key, got) a get right after a STORED set that did not
    return the value just stored (a miss or an older value of the key):
    possible only where a reload moved the key between the two requests."""

    def __init__(self, port, key_sets, timeout=5.0, max_seconds=60.0,
                 max_ops=400000):
        self.port = port
        self.key_sets = [list(ks) for ks in key_sets]
        self.timeout = timeout
        self.max_seconds = max_seconds
        self.max_ops = max_ops
        self.stop_flag = threading.Event()
        self.errors = []
        self.mismatches = []
        self.ops = [0] * len(self.key_sets)
        self.threads = []

    def total_ops(self):
        return sum(self.ops)

    def _check(self, k, want, got, prefix):
        if got == want:
            return
        if got is None or got.startswith(prefix):
            self.mismatches.append((time.monotonic(), k, got))
        else:
            self.errors.append((time.monotonic(), k, "get: %r" % got))

    def _chunk(self, c, chunk, values, prefix, pipelined):
        """One round over up to 8 keys; False after an error."""
        if not pipelined:
            for k in chunk:
                reply = c.set(k, values[k])
                if reply != b"STORED":
                    self.errors.append((time.monotonic(), k,
                                        "set: %r" % reply))
                    return False
                self._check(k, values[k], c.get(k), prefix[k])
            return True
        # 8 sets and a get of the 8 keys in one write: requests in
        # flight on several backends at once, around the switch too.
        c.send(b"".join(b"set %s 0 0 %d\r\n%s\r\n"
                        % (k.encode(), len(values[k]), values[k])
                        for k in chunk)
               + b"get " + " ".join(chunk).encode() + b"\r\n")
        ok = True
        for k in chunk:
            reply = c.readline()
            if reply != b"STORED":
                self.errors.append((time.monotonic(), k, "set: %r" % reply))
                ok = False
        got = {}
        for gk, _, gv, _ in c.read_values():
            if gk not in values or gk in got:
                self.errors.append((time.monotonic(), gk,
                                    "mget: unasked or twice: %r" % gk))
                return False
            got[gk] = gv
        for k in chunk:
            self._check(k, values[k], got.get(k), prefix[k])
        return ok

    def _run(self, idx, keys):
        c = None
        seq = 0
        deadline = time.monotonic() + self.max_seconds
        prefix = {k: ("%s:%d:" % (k, idx)).encode() for k in keys}
        chunks = [keys[i:i + 8] for i in range(0, len(keys), 8)]
        n = 0
        while not self.stop_flag.is_set():
            for chunk in chunks:
                if self.stop_flag.is_set() \
                        or self.ops[idx] >= self.max_ops \
                        or time.monotonic() > deadline:
                    self.stop_flag.set()
                    break
                n += 1
                values = {}
                for k in chunk:
                    seq += 1
                    values[k] = prefix[k] + str(seq).encode()
                try:
                    if c is None:
                        c = mctest.Client(self.port, timeout=self.timeout)
                    if not self._chunk(c, chunk, values, prefix, n % 2):
                        c.close()
                        c = None
                    self.ops[idx] += len(chunk)
                except CLIENT_ERRORS as e:
                    self.errors.append((time.monotonic(), chunk[0], "%s: %s"
                                        % (type(e).__name__, e)))
                    if c is not None:
                        c.close()
                        c = None
        if c is not None:
            c.close()

    def start(self):
        for i, keys in enumerate(self.key_sets):
            t = threading.Thread(target=self._run, args=(i, keys),
                                 daemon=True)
            self.threads.append(t)
            t.start()
        return self

    def wait_ops(self, more, timeout=10.0):
        """Waits until every thread has done `more` operations more."""
        want = [n + more for n in self.ops]
        wait_for(lambda: all(n >= w for n, w in zip(self.ops, want))
                 or self.stop_flag.is_set(), timeout * SPEC,
                 "%d more operations of every load thread" % more)
        if self.stop_flag.is_set():
            raise mctest.HarnessError("load stopped early (bound reached)")

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(30.0)
            if t.is_alive():
                raise mctest.HarnessError("load thread did not stop")


# ---------------------------------------------------------------- base

class ReloadTestCase(mctest.FreshClusterTestCase):
    """A fresh cluster per test (tests change its topology)."""

    # A removed backend leaves at once, and nothing but the proxy opens
    # connections to the backends (no warm-up window, no background copy:
    # those are test_migrate.py's).
    PROXY = {"threads": THREADS, "warmup": 0, "migrate_rate": 0}
    HEALTH = HEALTH

    def setUp(self):
        super().setUp()
        self.addCleanup(self._stop_mcring)
        self._direct = {}
        self._nside = 0
        self.addCleanup(self._close_direct)

    def _stop_mcring(self):
        """Stops mcring (SIGTERM) before the cluster goes: it must exit 0,
        with no sanitizer report (a leaked snapshot shows here)."""
        if not self.mc.alive():
            return
        rc = self.mc.stop(timeout=10.0 * SPEC)
        log = self.mc.log_text(20000)
        if rc != 0 or "Sanitizer" in log or "runtime error" in log:
            self.fail("mcring exited %s after SIGTERM:\n%s" % (rc, log))

    def _close_direct(self):
        for c in self._direct.values():
            c.close()

    # -- configuration files

    def conf(self):
        """The running configuration's backends: [(name, port, weight)]."""
        return list(self.mc.backends)

    def config_text(self, backends, proxy=None, health=None,
                    listen_port=None):
        opts = dict(self.cluster.proxy_opts)
        opts.update(proxy or {})
        hopts = dict(self.cluster.health_opts)
        hopts.update(health or {})
        return mctest.format_config(listen_port or self.port, backends,
                                    opts, hopts)

    def route_text(self, text, keys):
        """`mcring --route` of keys for a config text (a side file)."""
        self._nside += 1
        path = os.path.join(self.cluster.tmpdir,
                            "route-%d.ini" % self._nside)
        mctest.write_text_atomic(path, text)
        return mctest.route_file(path, keys)

    def log_mark(self):
        try:
            return os.path.getsize(self.mc.log_path)
        except OSError:
            return 0

    def log_since(self, mark):
        with open(self.mc.log_path, "rb") as f:
            f.seek(mark)
            return f.read().decode("utf-8", "replace")

    def wait_log(self, mark, pred, what, timeout=2.0):
        """Waits until pred(lines of the log written since mark) holds."""
        def ok():
            return pred([ln.lower() for ln in
                         self.log_since(mark).splitlines()])
        try:
            wait_for(ok, timeout * SPEC, what)
        except TimeoutError:
            self.fail("log since the reload lacks %s:\n%s"
                      % (what, self.log_since(mark)[-3000:]))

    def reload(self, text, expect="applied", path=None):
        """Writes text as mcring's config file (None: leave the file as it
        is), sends SIGHUP and waits until the reload is counted.  Returns
        (seconds from SIGHUP to the counter, log mark before)."""
        if text is not None:
            mctest.write_text_atomic(path or self.mc.config_path, text)
        mark = self.log_mark()
        t0 = time.monotonic()
        got = mctest.sighup_reload(self.mc, 10.0 * SPEC)
        took = time.monotonic() - t0
        self.assertEqual(got, expect, "reload %s, expected %s; log:\n%s"
                         % (got, expect, self.log_since(mark)[-3000:]))
        if expect == "applied":
            self.wait_log(mark, lambda ls: any("reload" in ln for ln in ls)
                          and any("applied" in ln for ln in ls),
                          "lines with 'reload' and 'applied'")
        return took, mark

    # -- backends

    def direct(self, name):
        """One persistent client to backend name's memcached: reading
        through it does not add to its total_connections."""
        c = self._direct.get(name)
        if c is None:
            c = self.cluster.backend(name).client(timeout=10.0)
            self._direct[name] = c
        return c

    def total_connections(self, names):
        return {n: int(self.direct(n).stats()["total_connections"])
                for n in names}

    def connects(self):
        """mcring's worker connects per backend (stats backends)."""
        return {n: s.get("connects") for n, s in self.table().items()}

    def assert_not_reconnected(self, names, before, connects_before):
        """total_connections of names' memcached is as in before; else the
        message tells whether a worker (connects) or the checker did it."""
        now = self.total_connections(names)
        self.assertEqual(now, before, "connections to unchanged backends "
                         "reopened; worker connects %r -> %r"
                         % (connects_before, self.connects()))

    def curr_connections(self, name):
        return int(self.direct(name).stats()["curr_connections"])

    def placement(self, keys, names):
        """{key: [names of the backends holding it]}, read directly."""
        keys = list(keys)
        out = {k: [] for k in keys}
        for n in names:
            c = self.direct(n)
            for i in range(0, len(keys), 100):
                for k, _, _, _ in c.get_multi(keys[i:i + 100]):
                    out[k].append(n)
        return out

    def key_sets(self, nfresh):
        """The keys of a move test: load (written and read under load),
        fresh (set after the change), prior (set before it, {key: value}),
        probe (watched to see the change land), and all of them."""
        load_keys = ["load-%d" % i for i in range(800)]
        fresh = ["fresh-%d" % i for i in range(nfresh)]
        prior = {"prior-%d" % i: b"prior-%d" % i for i in range(1000)}
        probe = ["probe-%d" % i for i in range(200)]
        return (load_keys, fresh, prior, probe,
                load_keys + fresh + list(prior) + probe)

    def set_fresh_on_owners(self, fresh, names, route):
        """Sets the fresh keys and checks each is on its --route owner
        only; returns where they are."""
        self.set_many({k: ("fresh-" + k).encode() for k in fresh})
        where = self.placement(fresh, names)
        wrong = [(k, where[k], route[k][0]) for k in fresh
                 if where[k] != [route[k][0]]]
        self.assertEqual(wrong[:10], [], "%d keys not (only) on their "
                         "--route owner" % len(wrong))
        return where

    def table(self):
        return mctest.stats_backends(self.port)

    def states(self):
        return {n: s.get("state") for n, s in self.table().items()}

    def wait_state(self, name, want, timeout, seen=None):
        def ok():
            s = self.states().get(name)
            if seen is not None and s is not None:
                seen.add(s)
            return s == want
        wait_for(ok, timeout * SPEC, "%s to be %s" % (name, want))

    def wait_weight(self, name, weight, timeout=2.0):
        wait_for(lambda: float(self.table()[name].get("weight", 0))
                 == weight, timeout * SPEC,
                 "%s's weight to be %g" % (name, weight))

    def wait_gone(self, name, timeout=2.0):
        wait_for(lambda: name not in self.table(), timeout * SPEC,
                 "%s to leave stats backends" % name)

    # -- through the proxy

    def set_many(self, items, nconns=NCONNS):
        """Stores {key: value} through mcring, pipelined in batches of 100
        over nconns connections (so over every worker)."""
        keys = list(items)
        conns = [mctest.Client(self.port, timeout=20.0)
                 for _ in range(nconns)]
        try:
            for j in range(0, len(keys), 100):
                c = conns[(j // 100) % nconns]
                batch = keys[j:j + 100]
                c.send(b"".join(b"set %s 0 0 %d\r\n%s\r\n"
                                % (k.encode(), len(items[k]), items[k])
                                for k in batch))
                for k in batch:
                    self.assertEqual(c.readline(), b"STORED", k)
        finally:
            for c in conns:
                c.close()

    def get_many(self, keys):
        """{key: value} of the hits of keys read through mcring."""
        keys = list(keys)
        out = {}
        with mctest.Client(self.port, timeout=20.0) as c:
            for i in range(0, len(keys), 100):
                for k, _, v, _ in c.get_multi(keys[i:i + 100]):
                    out[k] = v
        return out

    def wait_landed(self, name, keys, timeout=3.0):
        """Waits until sets through mcring of keys (owned by name in the
        new configuration) land on name's memcached, on NCONNS fresh
        connections each (every worker).  Returns the time it took."""
        t0 = time.monotonic()
        n = [0]
        dc = self.direct(name)

        def landed():
            n[0] += 1
            for i in range(NCONNS):
                k = keys[i % len(keys)]
                v = ("landed-%d-%d" % (n[0], i)).encode()
                try:
                    with mctest.Client(self.port, timeout=5.0) as c:
                        if c.set(k, v) != b"STORED":
                            return False
                except CLIENT_ERRORS:
                    return False
                if dc.get(k) != v:
                    return False
            return True
        wait_for(landed, timeout * SPEC,
                 "keys owned by %s to land on it" % name)
        return time.monotonic() - t0

    def wait_connected(self, names):
        """Waits until each backend's memcached sees mcring's connections:
        one per worker and the health checker's (which connects at its
        first check, about an interval after the start)."""
        want = idle_curr_connections() + THREADS + 1

        def ok():
            t = self.table()
            return all(int(t.get(n, {}).get("connections", 0)) >= THREADS
                       and self.curr_connections(n) >= want
                       for n in names)
        wait_for(ok, 5.0 * SPEC, "workers and checker connected to %r"
                 % names)

    def check_load(self, load, moved):
        self.assertEqual(load.errors[:10], [],
                         "%d client errors under reload" % len(load.errors))
        bad = [m for m in load.mismatches if m[1] not in moved]
        self.assertEqual(bad[:10], [],
                         "a get after a set of a key that did not move "
                         "missed or got an older value")
        self.assertGreater(load.total_ops(), 0)

    def check_prior(self, prior, moved):
        """Keys stored before the reload whose owner did not change still
        read, with their value, through mcring; a moved one reads as a
        miss or its value, never another value."""
        got = self.get_many(prior)
        for k, v in prior.items():
            if k in moved:
                self.assertIn(got.get(k), (None, v), k)
            else:
                self.assertEqual(got.get(k), v,
                                 "%s (not moved) lost its value" % k)


# ---------------------------------------------------------------- tests

class AddBackendTest(ReloadTestCase):
    """Test 1: add one backend to n = 4 under load."""

    NBACKENDS = 4

    def test_add_one_under_load(self):
        cl = self.cluster
        old_names = list(cl.names)
        new = mctest.add_memcached(cl, "b5")
        new_text = self.config_text(self.conf() + [("b5", new.port, None)])
        load_keys, fresh, prior, probe, keys = self.key_sets(6000)
        old_route = cl.route(keys)
        new_route = self.route_text(new_text, keys)
        moved = set()
        for k in keys:
            o, n = old_route[k][0], new_route[k][0]
            if o != n:
                moved.add(k)
                self.assertEqual(n, "b5", "%s moved %s -> %s" % (k, o, n))
                # the newcomer's keys fall back to where they were
                self.assertEqual(new_route[k][1], o, k)
        probe_new = [k for k in probe if new_route[k][0] == "b5"]
        self.assertGreater(len(probe_new), 10)

        self.set_many(prior)
        self.total_connections(old_names + ["b5"])   # open direct clients
        load = Load(self.port, split(load_keys, 4)).start()
        try:
            load.wait_ops(50)
            self.wait_connected(old_names)
            conns_before = self.total_connections(old_names)
            connects0 = self.connects()
            b5_before = self.total_connections(["b5"])["b5"]
            took, _ = self.reload(new_text)
            t0 = time.monotonic()
            seen = set()
            self.wait_state("b5", "UP", 3.0, seen)
            t_up = time.monotonic() - t0
            t_land = self.wait_landed("b5", probe_new)
            load.wait_ops(150)
        finally:
            load.stop()
        note("add: SIGHUP to reloads %.3f s, to UP %.3f s more, keys on "
             "b5 %.3f s after that; states seen %r; %d ops, %d misses "
             "after a set", took, t_up, t_land, sorted(seen),
             load.total_ops(), len(load.mismatches))
        self.check_load(load, moved)
        # NEW until the first check passes; RECOVERING while the (empty)
        # recovery pass runs; then UP.
        self.assertLessEqual(seen, {"NEW", "RECOVERING", "UP"})
        self.assertGreater(self.total_connections(["b5"])["b5"], b5_before,
                           "the newcomer was never connected")

        # A fresh value set: each key on its new owner only.
        where = self.set_fresh_on_owners(fresh, old_names + ["b5"],
                                         new_route)
        on_new = sum(1 for k in fresh if where[k] == ["b5"])
        frac = on_new / len(fresh)
        note("add: %.4f of %d fresh keys on the newcomer (1/5 = 0.2)",
             frac, len(fresh))
        self.assertLessEqual(abs(frac - 0.2), 0.02, frac)
        self.check_prior(prior, moved)
        self.assert_not_reconnected(old_names, conns_before, connects0)
        self.assertEqual(sorted(self.table()), old_names + ["b5"])
        self.assert_alive()


class NewBackendProbedFirstTest(ReloadTestCase):
    """Test 1b: an added backend that does not answer its first check gets
    no keys (they stay where they were) until it does."""

    def test_added_backend_gets_keys_after_first_check(self):
        cl = self.cluster
        new = mctest.add_memcached(cl, "b4")
        new_text = self.config_text(self.conf() + [("b4", new.port, None)])
        probe = ["probe-%d" % i for i in range(300)]
        old_route = cl.route(probe)
        new_route = self.route_text(new_text, probe)
        mine = [k for k in probe if new_route[k][0] == "b4"]
        self.assertGreater(len(mine), 20)
        self.direct("b4")
        self.addCleanup(new.resume)
        new.pause()
        self.reload(new_text)
        wait_for(lambda: "b4" in self.table(), 2.0 * SPEC,
                 "b4 in stats backends")
        # Several check intervals: never UP, its keys go to their old owner.
        t_end = time.monotonic() + 0.6
        n = 0
        while time.monotonic() < t_end:
            st = self.states()["b4"]
            self.assertIn(st, ("NEW", "DOWN"), "b4 while it cannot answer")
            k = mine[n % len(mine)]
            v = ("while-new-%d" % n).encode()
            n += 1
            with mctest.Client(self.port) as c:
                self.assertEqual(c.set(k, v), b"STORED")
                self.assertEqual(c.get(k), v)
            old = old_route[k][0]
            self.assertEqual(self.direct(old).get(k), v,
                             "%s not on its old owner %s while b4 is %s"
                             % (k, old, st))
        new.resume()
        seen = set()
        self.wait_state("b4", "UP", 3.0, seen)
        note("probed first: b4 states after it answers %r", sorted(seen))
        self.wait_landed("b4", mine)
        self.set_many({k: b"after" for k in mine})
        where = self.placement(mine, cl.names)
        for k in mine:
            self.assertIn("b4", where[k], k)
        self.assert_alive()


class RemoveBackendTest(ReloadTestCase):
    """Test 2: remove one of n = 4 under load."""

    NBACKENDS = 4

    def test_remove_one_under_load(self):
        cl = self.cluster
        victim = "b2"
        kept = [n for n in cl.names if n != victim]
        new_text = self.config_text([b for b in self.conf()
                                     if b[0] != victim])
        load_keys, fresh, prior, probe, keys = self.key_sets(4000)
        old_route = cl.route(keys)
        new_route = self.route_text(new_text, keys)
        moved = set()
        for k in keys:
            o, n = old_route[k][0], new_route[k][0]
            if o == victim:
                moved.add(k)
                self.assertEqual(n, old_route[k][1],
                                 "%s: new owner is not the old first "
                                 "fallback" % k)
            else:
                self.assertEqual(n, o, "%s moved %s -> %s" % (k, o, n))
        probe_moved = [k for k in probe if k in moved]
        idle = idle_curr_connections()

        self.set_many(prior)
        self.total_connections(cl.names)
        load = Load(self.port, split(load_keys, 4)).start()
        try:
            load.wait_ops(50)
            self.wait_connected(cl.names)
            conns_before = self.total_connections(kept)
            connects0 = self.connects()
            took, _ = self.reload(new_text)
            self.wait_gone(victim)
            # the victim's keys now go to their new owners
            t0 = time.monotonic()
            for dest in sorted({new_route[k][0] for k in probe_moved}):
                self.wait_landed(dest, [k for k in probe_moved
                                        if new_route[k][0] == dest])
            t_land = time.monotonic() - t0
            load.wait_ops(150)
        finally:
            load.stop()
        t0 = time.monotonic()
        wait_for(lambda: self.curr_connections(victim) <= idle, 5.0 * SPEC,
                 "%s's memcached to see mcring's connections close (idle "
                 "curr_connections %d)" % (victim, idle))
        t_close = time.monotonic() - t0
        note("remove: SIGHUP to reloads %.3f s, keys moved %.3f s later; "
             "connections closed %.3f s after the load stopped; %d ops, "
             "%d misses after a set", took, t_land, t_close,
             load.total_ops(), len(load.mismatches))
        self.check_load(load, moved)

        where = self.set_fresh_on_owners(fresh, cl.names, new_route)
        self.assertFalse([k for k in fresh if victim in where[k]],
                         "fresh keys on the removed backend")
        self.check_prior(prior, moved)
        self.assert_not_reconnected(kept, conns_before, connects0)
        self.assertEqual(sorted(self.table()), kept)
        self.assert_alive()


class RemoveInFlightTest(ReloadTestCase):
    """Test 2b: a request in flight to a removed backend finishes; then its
    connections close."""

    PROXY = {"threads": THREADS, "timeout_ms": 4000, "warmup": 0,
             "migrate_rate": 0}
    HEALTH = {"interval_ms": 300, "timeout_ms": 250, "rise": 1, "fall": 10}

    def test_in_flight_request_finishes(self):
        cl = self.cluster
        victim = "b3"
        by = cl.keys_by_owner("inflight", 5)
        k = by[victim][0]
        new_text = self.config_text([b for b in self.conf()
                                     if b[0] != victim])
        new_route = self.route_text(new_text, by[victim])
        idle = idle_curr_connections()
        with mctest.Client(self.port) as c:
            self.assertEqual(c.set(k, b"in-flight"), b"STORED")
        self.direct(victim)
        req0 = int(self.table()[victim]["requests"])
        m = cl.backend(victim)
        c = mctest.Client(self.port, timeout=10.0 * SPEC)
        self.addCleanup(c.close)
        self.addCleanup(m.resume)
        m.pause()
        c.send(b"get " + k.encode() + b"\r\n")
        wait_for(lambda: int(self.table()[victim]["requests"]) > req0,
                 2.0 * SPEC, "the get to be queued to %s" % victim)
        self.reload(new_text)
        self.wait_gone(victim)
        m.resume()
        self.assertEqual(c.read_values(), [(k, 0, b"in-flight", None)],
                         "the request in flight to the removed backend")
        wait_for(lambda: self.curr_connections(victim) <= idle, 5.0 * SPEC,
                 "%s's connections to close" % victim)
        # no new requests: its keys go to their new owners
        rest = by[victim][1:]
        self.set_many({x: b"after" for x in rest})
        where = self.placement(rest, cl.names)
        for x in rest:
            self.assertEqual(where[x], [new_route[x][0]], x)
        self.assert_alive()


class WeightChangeTest(ReloadTestCase):
    """Test 3: b2's weight 1 -> 2 (and back) under load."""

    NBACKENDS = 4

    def test_weight_change_moves_only_its_share(self):
        cl = self.cluster
        old_text = self.config_text(self.conf())
        heavy = [(n, p, 2 if n == "b2" else w) for n, p, w in self.conf()]
        new_text = self.config_text(heavy)
        load_keys, fresh, prior, probe, keys = self.key_sets(4000)
        old_route = cl.route(keys)
        new_route = self.route_text(new_text, keys)
        moved = {k for k in keys if old_route[k][0] != new_route[k][0]}
        for k in moved:
            self.assertEqual(new_route[k][0], "b2",
                             "%s moved %s -> %s, not to b2"
                             % (k, old_route[k][0], new_route[k][0]))
        share = len([k for k in fresh if k in moved]) / len(fresh)
        note("weight: %.4f of the keys move to b2 (2/5 - 1/4 = 0.15)",
             share)
        self.assertLessEqual(abs(share - 0.15), 0.15 * 0.15, share)
        probe_moved = [k for k in probe if k in moved]

        self.set_many(prior)
        self.total_connections(cl.names)
        load = Load(self.port, split(load_keys, 4)).start()
        try:
            load.wait_ops(50)
            self.wait_connected(cl.names)
            conns_before = self.total_connections(cl.names)
            connects0 = self.connects()
            took, _ = self.reload(new_text)
            self.wait_weight("b2", 2.0)
            t_land = self.wait_landed("b2", probe_moved)
            load.wait_ops(150)
        finally:
            load.stop()
        note("weight: SIGHUP to reloads %.3f s, keys on b2 %.3f s later; "
             "%d ops, %d misses after a set", took, t_land,
             load.total_ops(), len(load.mismatches))
        self.check_load(load, moved)
        self.set_fresh_on_owners(fresh, cl.names, new_route)
        self.check_prior(prior, moved)
        self.assert_not_reconnected(cl.names, conns_before, connects0)

        # And back to 1: the keys return to their old owners.
        self.reload(old_text)
        self.wait_weight("b2", 1.0)
        back = [k for k in probe_moved]
        for dest in sorted({old_route[k][0] for k in back}):
            self.wait_landed(dest, [k for k in back
                                    if old_route[k][0] == dest])
        fresh2 = ["fresh2-%d" % i for i in range(1000)]
        route2 = cl.route(fresh2)
        self.set_many({k: b"v" for k in fresh2})
        where = self.placement(fresh2, cl.names)
        for k in fresh2:
            self.assertEqual(where[k], [route2[k][0]], k)
        self.assert_not_reconnected(cl.names, conns_before, connects0)
        self.assert_alive()


class KeptStateTest(ReloadTestCase):
    """Test 8: a kept backend keeps its health state, counters and
    recovery log: writes made to its fallbacks while it is out, before a
    reload, are never followed by its older values after its return."""

    HEALTH = {"interval_ms": 100, "timeout_ms": 200, "rise": 3, "fall": 2}

    def test_down_backend_kept_across_reload(self):
        cl = self.cluster
        owner = "b3"
        cands = cl.keys_by_owner("kept", 60)[owner]
        spare = mctest.add_memcached(cl, "b4")
        new_text = self.config_text(self.conf() + [("b4", spare.port,
                                                     None)])
        route = cl.route(cands)
        new_route = self.route_text(new_text, cands)
        # keys the owner keeps in the new ring
        ks = [k for k in cands if new_route[k][0] == owner]
        self.assertGreaterEqual(len(ks), 30)
        m = cl.backend(owner)
        old = {k: ("old-" + k).encode() for k in ks}
        self.set_many(old)
        self.assertEqual(self.placement(ks, [owner]),
                         {k: [owner] for k in ks})
        self.addCleanup(m.resume)
        m.pause()
        self.wait_state(owner, "DOWN", 5.0)
        # Written to the old fallbacks, before the reload ...
        self.set_many({k: ("new-" + k).encode() for k in ks})
        before = self.table()[owner]
        self.reload(new_text)
        self.wait_state("b4", "UP", 3.0)
        after = self.table()[owner]
        self.assertEqual(after["state"], "DOWN", "kept backend's state")
        for f in ("transitions", "since"):
            self.assertEqual(after[f], before[f], "%s:%s" % (owner, f))
        self.assertGreaterEqual(int(before["failovers"]), len(ks))
        self.assertGreaterEqual(int(after["failovers"]),
                                int(before["failovers"]))
        # ... and half of them again to the new ones, after it.
        latest = {k: ("new-" + k).encode() for k in ks}
        again = {k: ("new2-" + k).encode() for k in ks[::2]}
        self.set_many(again)
        latest.update(again)
        changed = [k for k in ks if new_route[k][1] != route[k][1]]
        m.resume()
        self.wait_state(owner, "UP", 10.0)
        got = self.get_many(ks)
        bad = [(k, got.get(k)) for k in ks if got.get(k) not in
               (latest[k], None)]
        self.assertEqual(bad[:10], [], "older values after the owner's "
                         "return across a reload")
        on_owner = self.placement(ks, [owner])
        self.assertEqual([k for k in ks if on_owner[k]], [],
                         "old values still on the owner")
        fallbacks = sorted(n for n in cl.names if n != owner)

        def fallback_copies():
            where = self.placement(ks, fallbacks)
            return [(k, where[k], k in changed) for k in ks if where[k]]
        left = fallback_copies()
        deadline = time.monotonic() + 2.0 * SPEC
        while left and time.monotonic() < deadline:
            time.sleep(0.02)
            left = fallback_copies()
        note("kept state: %d of %d keys' fallback changed by the reload; "
             "%d outage copies left on fallbacks", len(changed), len(ks),
             len(left))
        self.assertEqual(left[:10], [], "outage copies left on fallbacks "
                         "(key, where, its fallback changed)")
        # The owner is in use again.
        self.set_many({k: b"final" for k in ks})
        where = self.placement(ks, cl.names)
        self.assertEqual([(k, where[k]) for k in ks if where[k] != [owner]],
                         [], "keys set after %s is UP again" % owner)
        self.assert_alive()


class AddressChangeTest(ReloadTestCase):
    """Test 9: a backend keeps its name but moves to another address: a
    new backend (probed first); the old address's connections close; its
    keys do not move on the ring (xxh3 hashes names)."""

    def test_same_name_new_address(self):
        cl = self.cluster
        name = "b2"
        old_m = cl.backend(name)
        new_m = mctest.add_memcached(cl, "b2-new")
        conf = [(n, new_m.port if n == name else p, w)
                for n, p, w in self.conf()]
        new_text = self.config_text(conf)
        keys = ["addr-%d" % i for i in range(600)]
        route = cl.route(keys)
        new_route = self.route_text(new_text, keys)
        self.assertEqual(route, new_route)
        mine = [k for k in keys if route[k][0] == name]
        idle = idle_curr_connections()
        self.direct("b2-new")
        self.wait_connected(cl.names[:3])
        self.reload(new_text)
        wait_for(lambda: self.table()[name]["address"]
                 == "127.0.0.1:%d" % new_m.port, 2.0 * SPEC,
                 "%s's new address in stats backends" % name)
        self.wait_state(name, "UP", 3.0)
        self.wait_landed("b2-new", mine)
        wait_for(lambda: self.curr_connections(name) <= idle, 5.0 * SPEC,
                 "connections to %s's old address to close" % name)
        self.set_many({k: b"v" for k in keys})
        where = self.placement(keys, ["b1", "b3", "b2-new", name])
        for k in keys:
            want = "b2-new" if route[k][0] == name else route[k][0]
            self.assertEqual(where[k], [want], k)
        self.assertTrue(old_m.alive())
        self.assert_alive()


class BrokenFileTest(ReloadTestCase):
    """Test 4: a bad file changes nothing; a fixed one applies."""

    def test_broken_files_change_nothing(self):
        cl = self.cluster
        names = list(cl.names)
        spare = mctest.add_memcached(cl, "b4")
        good_backends = self.conf() + [("b4", spare.port, None)]
        good = self.config_text(good_backends, proxy={"timeout_ms": 1500})
        base_lines = good.rstrip("\n").split("\n")
        n = len(base_lines)
        cases = [
            ("syntax error", base_lines + ["this line is not valid"], n + 1),
            ("duplicate name", base_lines
             + ["b1 = 127.0.0.1:%d" % spare.port], n + 1),
            ("bad address", base_lines + ["b5 = 127.0.0.1:notaport"], n + 1),
            ("syntax error at the top", ["[proxy"] + base_lines[1:], 1),
        ]
        probe = ["probe-%d" % i for i in range(600)]
        route = cl.route(probe)
        self.direct("b4")
        spare_conns = self.total_connections(["b4"])["b4"]
        reloads0, failures0 = mctest.reload_counters(self.port)
        self.assertIsNotNone(reloads0, "stats has no 'reloads'")
        self.assertIsNotNone(failures0, "stats has no 'reload_failures'")
        for i, (what, lines, line) in enumerate(cases):
            with self.subTest(what):
                _, mark = self.reload("\n".join(lines) + "\n",
                                      expect="failed")
                loc = "%s:%d:" % (self.mc.config_path, line)
                self.wait_log(mark, lambda ls: any(loc.lower() in ln
                                                   for ln in ls), loc)
                self.assertEqual(mctest.reload_counters(self.port),
                                 (reloads0, failures0 + i + 1))
                self.assertEqual(sorted(self.table()), names)
                st = mctest.proxy_stats(self.port, "settings")
                self.assertEqual(st.get("timeout_ms"), "2000")
                ks = probe[i * 150:(i + 1) * 150]
                self.set_many({k: what.encode() for k in ks})
                where = self.placement(ks, names + ["b4"])
                for k in ks:
                    self.assertEqual(where[k], [route[k][0]], k)
                self.assertEqual(self.total_connections(["b4"])["b4"],
                                 spare_conns, "b4 was contacted")
        # The fixed file applies, all of it.
        new_route = self.route_text(good, probe)
        self.reload(good)
        self.assertEqual(mctest.reload_counters(self.port),
                         (reloads0 + 1, failures0 + len(cases)))
        self.wait_state("b4", "UP", 3.0)
        self.wait_landed("b4", [k for k in probe
                                if new_route[k][0] == "b4"])
        st = mctest.proxy_stats(self.port, "settings")
        self.assertEqual(st.get("timeout_ms"), "1500")
        self.set_many({k: b"fixed" for k in probe})
        where = self.placement(probe, names + ["b4"])
        for k in probe:
            if new_route[k][0] == route[k][0]:
                self.assertEqual(where[k], [route[k][0]], k)
            else:
                self.assertIn(new_route[k][0], where[k], k)
        self.assert_alive()


class RestartKeysTest(ReloadTestCase):
    """Test 5: listen, threads, backend_connections need a restart; the
    rest of the file applies."""

    def test_listen_and_threads_need_restart(self):
        cl = self.cluster
        spare = mctest.add_memcached(cl, "b4")
        new_port = mctest.free_port()
        text = self.config_text(
            self.conf() + [("b4", spare.port, None)],
            proxy={"threads": THREADS + 1, "backend_connections": 2,
                   "timeout_ms": 1500},
            listen_port=new_port)
        probe = ["probe-%d" % i for i in range(300)]
        new_route = self.route_text(text, probe)
        _, mark = self.reload(text)
        for key in ("listen", "threads", "backend_connections"):
            self.wait_log(mark, lambda ls: any(
                key in ln and "restart" in ln for ln in ls),
                "a line saying %s needs a restart" % key)
        self.wait_state("b4", "UP", 3.0)
        self.wait_landed("b4", [k for k in probe
                                if new_route[k][0] == "b4"])
        st = mctest.proxy_stats(self.port, "settings")
        self.assertEqual(st.get("listen"), "127.0.0.1:%d" % self.port)
        self.assertEqual(st.get("threads"), str(THREADS))
        self.assertEqual(st.get("backend_connections"), "1")
        self.assertEqual(st.get("timeout_ms"), "1500")
        self.assertEqual(mctest.proxy_stats(self.port).get("threads"),
                         str(THREADS))
        self.assertFalse(mctest.can_connect(new_port),
                         "mcring listens on the new port")
        with mctest.Client(self.port) as c:
            self.assertEqual(c.set("after-restart-keys", b"x"), b"STORED")
            self.assertEqual(c.get("after-restart-keys"), b"x")
        self.assertEqual(sorted(self.table()), cl.names)
        self.assert_alive()


class ReloadLoopTest(ReloadTestCase):
    """Test 6: 200 reloads under load, a 4th backend added and removed
    every other time: no client error, RSS and fds flat."""

    RELOADS = 200
    WARMUP = 20

    def test_200_reloads_under_load(self):
        cl = self.cluster
        spare = mctest.add_memcached(cl, "b4")
        text_a = self.config_text(self.conf())
        text_b = self.config_text(self.conf() + [("b4", spare.port, None)])
        load_keys = ["load-%d" % i for i in range(600)]
        probe = ["probe-%d" % i for i in range(200)]
        route_a = cl.route(load_keys + probe)
        route_b = self.route_text(text_b, load_keys + probe)
        moved = {k for k in load_keys + probe
                 if route_a[k][0] != route_b[k][0]}
        probe_b4 = [k for k in probe if route_b[k][0] == "b4"]
        idle = idle_curr_connections()
        self.direct("b4")

        def settled():
            """Back on A: b4's connections closed, then (rss, fds)."""
            wait_for(lambda: self.curr_connections("b4") <= idle,
                     5.0 * SPEC, "b4's connections to close")
            return self.mc.rss_kb(), mctest.open_fds(self.mc)

        load = Load(self.port, split(load_keys, 4),
                    max_seconds=120.0).start()
        times = []
        try:
            load.wait_ops(20)
            for i in range(1, self.RELOADS + 1):
                took, _ = self.reload(text_b if i % 2 else text_a)
                times.append(took)
                if i % 20 == 1:
                    # now and then let b4 get its keys before it goes
                    self.wait_state("b4", "UP", 3.0)
                    self.wait_landed("b4", probe_b4)
                if i == self.WARMUP:
                    warm = settled()
            end = settled()
            load.wait_ops(20)
        finally:
            load.stop()
        times.sort()
        note("200 reloads: SIGHUP to reloads median %.4f s, max %.4f s; "
             "RSS %d -> %d kB, fds %d -> %d; %d ops, %d misses after a "
             "set", times[len(times) // 2], times[-1], warm[0], end[0],
             warm[1], end[1], load.total_ops(), len(load.mismatches))
        self.check_load(load, moved)
        reloads, failures = mctest.reload_counters(self.port)
        self.assertGreaterEqual(reloads, self.RELOADS)
        self.assertEqual(failures, 0)
        self.assertLessEqual(end[1] - warm[1], 8, "fds grew")
        rss_bound = 64 * 1024 if SLOW else 3 * 1024
        self.assertLessEqual(end[0] - warm[0], rss_bound, "RSS grew")
        self.assertEqual(sorted(self.table()), ["b1", "b2", "b3"])
        fresh = ["fresh-%d" % i for i in range(600)]
        route = cl.route(fresh)
        self.set_many({k: b"end" for k in fresh})
        where = self.placement(fresh, cl.names)
        for k in fresh:
            self.assertEqual(where[k], [route[k][0]], k)
        self.assert_alive()


class MissingFileTest(ReloadTestCase):
    """Test 7: a missing, unreadable or empty file is a failure; serving
    goes on."""

    def test_missing_unreadable_empty(self):
        cl = self.cluster
        path = self.mc.config_path
        good = open(path).read()
        away = path + ".away"
        reloads0, failures0 = mctest.reload_counters(self.port)
        self.assertIsNotNone(reloads0, "stats has no 'reloads'")
        failures = [0]

        def failed_reload(what):
            _, mark = self.reload(None, expect="failed")
            failures[0] += 1
            self.assertEqual(mctest.reload_counters(self.port),
                             (reloads0, failures0 + failures[0]), what)
            self.wait_log(mark, lambda ls: any(path.lower() in ln
                                               for ln in ls),
                          "the file's name (%s)" % what)
            self.assertEqual(sorted(self.table()), cl.names, what)
            with mctest.Client(self.port) as c:
                k = "after-%d" % failures[0]
                self.assertEqual(c.set(k, what.encode()), b"STORED", what)
                self.assertEqual(c.get(k), what.encode(), what)

        def restore():
            if os.path.isdir(path):
                os.rmdir(path)
            if os.path.exists(away):
                os.replace(away, path)
        self.addCleanup(restore)

        os.replace(path, away)
        failed_reload("missing")
        os.mkdir(path)
        failed_reload("a directory")
        os.rmdir(path)
        mctest.write_text_atomic(path, "")
        failed_reload("empty")
        if os.geteuid() != 0:
            mctest.write_text_atomic(path, good)
            os.chmod(path, 0)
            failed_reload("unreadable")
            os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        os.replace(away, path)
        self.reload(None)
        self.assertEqual(mctest.reload_counters(self.port),
                         (reloads0 + 1, failures0 + failures[0]))
        self.assert_alive()


if __name__ == "__main__":
    # `-v`: mctest.main() is verbose already and takes test names only.
    sys.argv = [a for a in sys.argv if a not in ("-v", "--verbose")]
    mctest.main()
