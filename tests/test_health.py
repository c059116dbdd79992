#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Integration tests: health checks, fallback and stale-safe recovery.

Three real memcached backends behind one mcring (threads = 2).  Backends
are killed (SIGKILL), hung (SIGSTOP) and resumed (SIGCONT) or restarted on
the same port while client threads run; the tests then read the backends
directly to check that

  - errors on a failed backend's keys stop within 1 s, other backends'
    keys never see an error and never move;
  - a failed backend's keys go to the fallback `mcring --route` names, and
    come back to their owner within 2 s of the owner's return;
  - a value written during an outage is never followed by an older one
    (stale-safe recovery), also for delete, incr, append and add, and also
    for writes made while the owner is RECOVERING;
  - with every backend down requests fail fast with "SERVER_ERROR no
    backend available", and service resumes by itself;
  - a client's protocol errors never count against a backend;
  - `stats backends` shows the states and counters.

Each test has its own cluster.  Most use fast checks (interval_ms 100,
timeout_ms 200); the hang test uses mcring's defaults (interval 200,
timeout 300, rise 3, fall 2, proxy timeout_ms 1000) to check the 1 s
figure.  The measured figures are printed to stderr.

MCTEST_SLOW=1 (sanitizer builds) doubles the spec's time bounds.
"""

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest  # noqa: E402
from mctest import ConnectionClosed, wait_for  # noqa: E402

SLOW = os.environ.get("MCTEST_SLOW") == "1"
SPEC = 2.0 if SLOW else 1.0         # factor on the spec's figures

FAST = {"interval_ms": 100, "timeout_ms": 200, "rise": 3, "fall": 2}
DEFAULTS = {"interval_ms": None, "timeout_ms": None, "rise": None,
            "fall": None}
CLIENT_ERRORS = (OSError, ConnectionClosed, mctest.ProtocolError)

BACKEND_FIELDS = ("address", "weight", "ring_share", "state", "since",
                  "transitions", "requests", "errors", "timeouts",
                  "connects", "connect_failures", "failovers",
                  "connections")


def note(fmt, *args):
    sys.stderr.write("\n  " + (fmt % args) + "\n")
    sys.stderr.flush()


# ---------------------------------------------------------------- helpers

def backend_stats(port):
    """`stats backends` of the proxy: {name: {field: value-string}}."""
    out = {}
    with mctest.Client(port, timeout=5.0) as c:
        for name, value in c.stats("backends").items():
            be, _, field = name.partition(":")
            out.setdefault(be, {})[field] = value
    return out


def direct_values(memcached, keys):
    """{key: value} of the keys present on one memcached, read directly."""
    keys = list(keys)
    out = {}
    with memcached.client() as c:
        for i in range(0, len(keys), 50):
            for k, _, v, _ in c.get_multi(keys[i:i + 50]):
                out[k] = v
    return out


def curr_items(memcached):
    with memcached.client() as c:
        return int(c.stats()["curr_items"])


class Load:
    """Client threads, each doing get k (which must not be older than the
    last acknowledged set of k), set k=unique value, get k (which must
    return that value), round-robin on its own keys until stopped.  Every
    operation is recorded as (t_start, t_end, key, ok, detail), stale reads
    in stale_reads."""

    def __init__(self, port, key_sets, timeout=5.0):
        self.port = port
        self.key_sets = [list(ks) for ks in key_sets]
        self.timeout = timeout
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.records = []
        self.last_stored = {}       # key: value of its last good set+get
        self.acked = {}             # key: seq of its last STORED set
        # (t_start, t_end, key, value, acked seq): a get older than the
        # last acknowledged write of that key
        self.stale_reads = []
        self.threads = []

    @staticmethod
    def seq_of(value):
        """The sequence number in a value this load wrote; 0 for others."""
        parts = value.rsplit(b":", 2)
        return int(parts[2]) if len(parts) == 3 else 0

    def _run(self, idx, keys):
        c = None
        seq = 0
        records = self.records      # list.append is atomic
        stored = {}
        acked = {k: 0 for k in keys}    # seq of the last STORED set
        while not self.stop_flag.is_set():
            for k in keys:
                if self.stop_flag.is_set():
                    break
                seq += 1
                value = ("%s:%d:%d" % (k, idx, seq)).encode()
                t0 = time.monotonic()
                ok, detail = False, ""
                try:
                    if c is None:
                        c = mctest.Client(self.port, timeout=self.timeout)
                    # Never older than the last acknowledged write.
                    got = c.get(k)
                    if got is not None and self.seq_of(got) < acked[k]:
                        self.stale_reads.append(
                            (t0, time.monotonic(), k, got, acked[k]))
                    reply = c.set(k, value)
                    if reply != b"STORED":
                        detail = "set: %r" % reply
                    else:
                        acked[k] = seq
                        got = c.get(k)
                        if got != value:
                            detail = "get: %r" % got
                        else:
                            ok = True
                            stored[k] = value
                except CLIENT_ERRORS as e:
                    detail = "%s: %s" % (type(e).__name__, e)
                    if c is not None:
                        c.close()
                        c = None
                records.append((t0, time.monotonic(), k, ok, detail))
        if c is not None:
            c.close()
        with self.lock:
            self.last_stored.update(stored)
            self.acked.update(acked)

    def start(self):
        for i, keys in enumerate(self.key_sets):
            t = threading.Thread(target=self._run, args=(i, keys),
                                 daemon=True)
            self.threads.append(t)
            t.start()
        return self

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(30.0)
            if t.is_alive():
                raise mctest.HarnessError("load thread did not stop")
        self.records.sort()

    def errors(self, keys):
        keys = set(keys)
        return [r for r in self.records if r[2] in keys and not r[3]]

    def oks(self, keys):
        keys = set(keys)
        return [r for r in self.records if r[2] in keys and r[3]]


class HealthTestCase(mctest.FreshClusterTestCase):
    """A fresh cluster per test (tests break backends)."""

    HEALTH = FAST
    PROXY = {"threads": 2}

    def interval(self):
        return (self.HEALTH.get("interval_ms") or 200) / 1000.0

    def rise(self):
        return self.HEALTH.get("rise") or 3

    # -- keys and routes

    def keys(self, per_backend, tag="k"):
        """({name: [keys it owns]}, {key: [owner, fb1, fb2...]})."""
        by = self.cluster.keys_by_owner("%s-%s" % (self._testMethodName,
                                                    tag), per_backend)
        route = self.cluster.route([k for ks in by.values() for k in ks])
        return by, route

    def fallback(self, route, key, dead):
        """The backend that serves key while the backends in dead are."""
        for name in route[key]:
            if name not in dead:
                return name
        return None

    # -- states

    def states(self):
        return {n: s["state"] for n, s in backend_stats(self.port).items()}

    def wait_state(self, name, want, timeout):
        """Waits until backend name's state is want; returns the time it
        took."""
        t0 = time.monotonic()
        wait_for(lambda: self.states()[name] == want, timeout,
                 "%s to be %s" % (name, want))
        return time.monotonic() - t0

    def routed_back(self, name, key, timeout):
        """Waits until a set of key (owned by name) through the proxy lands
        on that backend; returns the time it took."""
        m = self.cluster.backend(name)
        t0 = time.monotonic()
        n = [0]

        def landed():
            n[0] += 1
            value = ("back-%d" % n[0]).encode()
            try:
                with mctest.Client(self.port, timeout=5.0) as c:
                    if c.set(key, value) != b"STORED":
                        return False
                with m.client(timeout=2.0) as bc:
                    return bc.get(key) == value
            except CLIENT_ERRORS:
                return False
        wait_for(landed, timeout, "%s's keys to be routed back" % name)
        return time.monotonic() - t0

    def set_all(self, keys, prefix=b"init"):
        with mctest.Client(self.port) as c:
            for k in keys:
                self.assertEqual(c.set(k, prefix + b"-" + k.encode()),
                                 b"STORED", k)

    # -- shared checks

    def check_placement(self, by, route, load, dead):
        """Reads every live backend directly: each key of a live backend is
        on its owner only, with the last value stored (load.last_stored);
        each key of a backend in dead is on its `--route` fallback only,
        with its last value."""
        live = [n for n in self.cluster.names if n not in dead]
        keys = [k for ks in by.values() for k in ks]

        def home_of(owner, k):
            return self.fallback(route, k, dead) if owner in dead else owner

        def read_all():
            return {n: direct_values(self.cluster.backend(n), keys)
                    for n in live}

        def strays(seen):
            return [(k, n) for owner, ks in by.items() for k in ks
                    for n in live if n != home_of(owner, k) and k in seen[n]]
        # A copy a fallback got while the owner was RECOVERING is removed
        # by the pass that starts as the owner turns UP: give it a moment.
        seen = read_all()
        deadline = time.monotonic() + 2.0 * SPEC
        while strays(seen) and time.monotonic() < deadline:
            time.sleep(0.02)
            seen = read_all()
        for owner, ks in by.items():
            for k in ks:
                if owner in dead:
                    home = self.fallback(route, k, dead)
                else:
                    home = owner
                want = load.last_stored.get(k)
                self.assertIsNotNone(want, "no good set of %s" % k)
                self.assertEqual(seen[home].get(k), want,
                                 "%s (owner %s) not on %s" % (k, owner,
                                                               home))
                for n in live:
                    if n != home:
                        self.assertNotIn(k, seen[n],
                                         "%s (owner %s) also on %s"
                                         % (k, owner, n))


def spread(by, nthreads):
    """Splits every backend's keys over nthreads key sets."""
    sets = [[] for _ in range(nthreads)]
    i = 0
    for ks in itertools.zip_longest(*by.values()):
        for k in ks:
            if k is not None:
                sets[i % nthreads].append(k)
                i += 1
    return sets


# ---------------------------------------------------------------- tests

class FailoverTest(HealthTestCase):
    """Tests 1 and 3: SIGKILL under load, then restart on the same port."""

    def test_kill_under_load_then_restart(self):
        cl = self.cluster
        dead = "b2"
        by, route = self.keys(20)
        keys = [k for ks in by.values() for k in ks]
        self.set_all(keys)
        items_before = {n: curr_items(cl.backend(n)) for n in cl.names}
        load = Load(self.port, spread(by, 4)).start()
        try:
            wait_for(lambda: len(load.records) > 20, 5.0, "load to start")
            t_kill = time.monotonic()
            cl.backend(dead).kill()
            wait_for(lambda: time.monotonic() - t_kill > 2.0, 5.0,
                     "2 s of load after the kill")
        finally:
            load.stop()
        before = [r for r in load.records if r[1] < t_kill]
        self.assertTrue(before, "no operations before the kill")
        self.assertEqual([r for r in before if not r[3]], [],
                         "errors before the kill")
        others = [k for n, ks in by.items() if n != dead for k in ks]
        self.assertEqual(load.errors(others), [],
                         "errors on keys of live backends")
        self.assertEqual(load.stale_reads[:5], [], "stale reads")
        errs = load.errors(by[dead])
        window = max((r[1] for r in errs), default=t_kill) - t_kill
        note("SIGKILL: error window %.3f s (%d errors, %d ok ops)",
             window, len(errs), len(load.oks(keys)))
        self.assertLess(window, 1.0 * SPEC,
                        "errors %.3f s after the kill: %r"
                        % (window, errs[-3:]))
        after = [r for r in load.oks(by[dead]) if r[0] > t_kill + window]
        self.assertTrue(after, "the dead backend's keys are not served")
        self.assertEqual(self.states()[dead], "DOWN")

        # Every key of the dead backend is served, from its fallback.
        with mctest.Client(self.port) as c:
            for k in by[dead]:
                v = ("after-%s" % k).encode()
                self.assertEqual(c.set(k, v), b"STORED", k)
                self.assertEqual(c.get(k), v, k)
                load.last_stored[k] = v
        self.check_placement(by, route, load, {dead})
        for n in cl.names:
            if n == dead:
                continue
            gained = sum(1 for k in by[dead]
                         if self.fallback(route, k, {dead}) == n)
            self.assertEqual(curr_items(cl.backend(n)),
                             items_before[n] + gained,
                             "items on %s other than %d failed over keys"
                             % (n, gained))

        # Test 3: restart on the same port; route-back within 2 s.
        m = cl.backend(dead)
        m.start()
        took = self.routed_back(dead, by[dead][0], 10.0)
        note("restart after SIGKILL: route-back %.3f s after the listen",
             took)
        self.assertLess(took, 2.0 * SPEC)
        self.wait_state(dead, "UP", 5.0)
        # every key of the restarted backend is read from it again
        with mctest.Client(self.port) as c:
            for k in by[dead]:
                v = ("back-%s" % k).encode()
                self.assertEqual(c.set(k, v), b"STORED")
                load.last_stored[k] = v
        self.check_placement(by, route, load, set())
        self.assert_alive()


class HangDefaultsTest(HealthTestCase):
    """Test 2: SIGSTOP with mcring's default health settings and proxy
    timeout_ms; the spec's 1 s (errors stop) and 2 s (route-back)."""

    HEALTH = DEFAULTS
    PROXY = {"threads": 2, "timeout_ms": None, "connect_timeout_ms": None}

    def test_hang_under_load_then_resume(self):
        cl = self.cluster
        hung = "b1"
        by, route = self.keys(20)
        keys = [k for ks in by.values() for k in ks]
        self.set_all(keys)
        m = cl.backend(hung)
        self.addCleanup(m.resume)
        load = Load(self.port, spread(by, 4)).start()
        try:
            wait_for(lambda: len(load.records) > 20, 5.0, "load to start")
            t_stop = time.monotonic()
            m.pause()
            wait_for(lambda: time.monotonic() - t_stop > 2.5, 5.0,
                     "2.5 s of load after the hang")
        finally:
            load.stop()
        others = [k for n, ks in by.items() if n != hung for k in ks]
        self.assertEqual(load.errors(others), [],
                         "errors on keys of live backends")
        self.assertEqual(load.stale_reads[:5], [], "stale reads")
        errs = load.errors(by[hung])
        window = max((r[1] for r in errs), default=t_stop) - t_stop
        note("SIGSTOP (defaults): error window %.3f s (%d errors)",
             window, len(errs))
        self.assertLess(window, 1.0 * SPEC,
                        "errors %.3f s after the hang: %r"
                        % (window, errs[-3:]))
        after = [r for r in load.oks(by[hung]) if r[0] > t_stop + window]
        self.assertTrue(after, "the hung backend's keys are not served")
        self.assertEqual(self.states()[hung], "DOWN")
        self.check_placement(by, route, load, {hung})

        m.resume()
        took = self.routed_back(hung, by[hung][0], 10.0)
        note("SIGCONT (defaults): route-back %.3f s after the resume", took)
        self.assertLess(took, 2.0 * SPEC)
        self.wait_state(hung, "UP", 5.0)
        # The hung backend's keys: read from it again; the fallbacks'
        # copies were deleted by the recovery.
        with mctest.Client(self.port) as c:
            for k in by[hung]:
                v = ("back-%s" % k).encode()
                self.assertEqual(c.set(k, v), b"STORED")
                load.last_stored[k] = v
        self.check_placement(by, route, load, set())
        self.assert_alive()


class StaleReadTest(HealthTestCase):
    """Tests 4 and 5: a value written during an outage is never followed
    by an older one (classic and meta writes)."""

    NKEYS = 50

    def outage_writes(self, c, ks):
        """The writes during the outage, on keys that all hold "old-K"
        (the last fifth: "10", for the counters).  Returns ({key: values
        acceptable after recovery (None: a miss)}, {key: its value on the
        fallback now})."""
        n = len(ks)
        cut = [0, n // 2, n * 6 // 10, n * 7 // 10, n * 8 // 10,
               n * 9 // 10, n]
        sets, deletes, appends, adds, incrs, set_incrs = [
            ks[cut[i]:cut[i + 1]] for i in range(6)]
        after, now = {}, {}
        for i, k in enumerate(sets):
            v = ("new-%s" % k).encode()
            if i % 2:
                # a meta write is a write like any other
                c.send(b"ms %s %d\r\n%s\r\n" % (k.encode(), len(v), v))
                self.assertEqual(c.readline(), b"HD", k)
            else:
                self.assertEqual(c.set(k, v), b"STORED", k)
            after[k], now[k] = {v, None}, v
        for i, k in enumerate(deletes):
            # on the fallback, where the key is not
            if i % 2:
                c.send(b"md %s\r\n" % k.encode())
                self.assertEqual(c.readline(), b"NF", k)
            else:
                self.assertEqual(c.delete(k), b"NOT_FOUND", k)
            after[k], now[k] = {None}, None
        for k in appends:
            self.assertEqual(c.append(k, b"-more"), b"NOT_STORED", k)
            after[k], now[k] = {None}, None
        for k in adds:
            v = ("added-%s" % k).encode()
            self.assertEqual(c.add(k, v), b"STORED", k)
            after[k], now[k] = {v, None}, v
        for k in incrs:
            self.assertEqual(c.incr(k, 5), b"NOT_FOUND", k)
            after[k], now[k] = {None}, None
        for k in set_incrs:
            self.assertEqual(c.set(k, b"100"), b"STORED", k)
            self.assertEqual(c.incr(k, 5), b"105", k)
            after[k], now[k] = {b"105", None}, b"105"
        return after, now

    def stale_cycle(self, break_owner, repair_owner, what):
        cl = self.cluster
        owner = "b3"
        by, route = self.keys(self.NKEYS, "stale")
        ks = by[owner]
        m = cl.backend(owner)
        c = self.client()
        old = {}
        for i, k in enumerate(ks):
            v = ("old-%s" % k).encode() if i < len(ks) * 8 // 10 else b"10"
            self.assertEqual(c.set(k, v), b"STORED")
            old[k] = v
        self.assertEqual(direct_values(m, ks), old)

        break_owner(m)
        self.wait_state(owner, "DOWN", 5.0 * SPEC)
        acceptable, now = self.outage_writes(c, ks)
        for k in ks:
            fb = self.fallback(route, k, {owner})
            self.assertEqual(direct_values(cl.backend(fb), [k]).get(k),
                             now[k], "%s on fallback %s" % (k, fb))

        t0 = time.monotonic()
        repair_owner(m)
        self.wait_state(owner, "UP", 10.0)
        note("%s: UP %.3f s after the owner's return", what,
             time.monotonic() - t0)

        got = {}
        for k in ks:
            got[k] = c.get(k)
        on_owner = direct_values(m, ks)
        on_fb = {}
        for k in ks:
            fb = self.fallback(route, k, {owner})
            on_fb[k] = direct_values(cl.backend(fb), [k]).get(k)
        bad = []
        for k in ks:
            if got[k] not in acceptable[k] or got[k] == old[k]:
                bad.append("%s: proxy get %r (old %r, acceptable %r)"
                           % (k, got[k], old[k], acceptable[k]))
            if on_owner.get(k) == old[k]:
                bad.append("%s: old value %r still on the owner"
                           % (k, old[k]))
            if on_fb[k] is not None and on_fb[k] in acceptable[k]:
                bad.append("%s: outage value %r still on the fallback"
                           % (k, on_fb[k]))
        self.assertEqual(bad, [], "%d stale: %s" % (len(bad),
                                                     "\n".join(bad[:10])))
        # the owner is in use again
        self.assertEqual(c.set(ks[0], b"final"), b"STORED")
        self.assertEqual(direct_values(m, [ks[0]]), {ks[0]: b"final"})
        self.assert_alive()

    def test_stale_safe_after_sigstop(self):
        def hang(m):
            self.addCleanup(m.resume)
            m.pause()
        self.stale_cycle(hang, lambda m: m.resume(), "SIGSTOP/SIGCONT")

    def test_stale_safe_after_kill_and_restart(self):
        self.stale_cycle(lambda m: m.kill(), lambda m: m.start(),
                         "SIGKILL/restart")


class RecoveryRaceTest(HealthTestCase):
    """Test 4 with writes that go on while the owner recovers.  A key
    first written (to its fallback) while the owner is RECOVERING must not
    read as the owner's older value once the owner is UP, and its copy on
    the fallback must be deleted.  A large outage log makes the first
    cleanup pass take some milliseconds, so that writes land during it and
    the passes after it; the writers pipeline, so that a write can still
    be queued on its way to the fallback when a pass deletes the key."""

    # A long interval: keys left behind by the last pass, if any, are not
    # cleaned by the next probe before they are read.
    HEALTH = {"interval_ms": 300, "timeout_ms": 200, "rise": 1, "fall": 1}
    NOUTAGE = 10000
    NRECOVERY = 12000
    BATCH = 20                      # sets per pipelined send

    def owned_keys(self, owner, n):
        """n keys owned by owner, from `mcring --route` in big chunks."""
        out = []
        start = 0
        while len(out) < n:
            cands = ["%s-%d" % (self._testMethodName, i)
                     for i in range(start, start + 4000)]
            start += 4000
            r = mctest.run_mcring(["-c", self.cluster.mcring.config_path,
                                   "--route"] + cands)
            self.assertEqual(r.returncode, 0, r.stderr)
            for k, names in mctest.parse_route(r.stdout).items():
                if names[0] == owner:
                    out.append(k)
        return out[:n]

    def test_writes_during_recovery(self):
        cl = self.cluster
        owner = "b3"
        m = cl.backend(owner)
        ks = self.owned_keys(owner, self.NOUTAGE + self.NRECOVERY)
        with m.client() as c:
            for k in ks:
                c.send(b"set %s 0 0 3 noreply\r\nold\r\n" % k.encode())
            self.assertTrue(c.version().startswith(b"VERSION"))
        self.addCleanup(m.resume)
        m.pause()
        self.wait_state(owner, "DOWN", 5.0 * SPEC)
        outage, during = ks[:self.NOUTAGE], ks[self.NOUTAGE:]
        with mctest.Client(self.port) as c:
            for k in outage:
                c.send(b"set %s 0 0 3 noreply\r\nnew\r\n" % k.encode())
            self.assertTrue(c.version().startswith(b"VERSION"))

        go = threading.Event()
        stop = threading.Event()
        acked = []
        failed = []

        def writer(sub):
            """Writes sub over and over until the owner is UP: a steady
            stream of writes must not hold off its return."""
            try:
                with mctest.Client(self.port) as c:
                    go.wait(20.0)
                    deadline = time.monotonic() + 20.0 * SPEC
                    i = 0
                    sent = []               # batches not yet answered

                    def send_next():
                        nonlocal i
                        batch = sub[i:i + self.BATCH]
                        i = (i + self.BATCH) % len(sub)
                        c.send(b"".join(b"set %s 0 0 3\r\nnew\r\n"
                                        % k.encode() for k in batch))
                        sent.append(batch)
                    # Two batches in flight: the stream has no gaps.
                    send_next()
                    while sent:
                        if time.monotonic() > deadline:
                            failed.append(("-", "still writing at the "
                                           "deadline"))
                            return
                        if not stop.is_set():
                            send_next()
                        for k in sent.pop(0):
                            reply = c.readline()
                            if reply == b"STORED":
                                acked.append(k)
                            else:
                                failed.append((k, reply))
            except CLIENT_ERRORS as e:
                failed.append(("-", repr(e)))
        threads = [threading.Thread(target=writer, args=(during[i::4],),
                                    daemon=True) for i in range(4)]
        for t in threads:
            t.start()
        # And a dense stream of sets over keys of every backend, so that
        # some write on the owner's behalf is always in flight.
        self.assertTrue(os.access(mctest.mcload_path(), os.X_OK),
                        "no load generator at %s" % mctest.mcload_path())
        load = subprocess.Popen(
            [mctest.mcload_path(), "--port", str(self.port), "--conns", "8",
             "--depth", "16", "--get-ratio", "0", "--keys", "3000",
             "--duration", "%d" % (30 * SPEC)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(load.wait)
        self.addCleanup(load.kill)
        seen = []
        poll = self.client()

        def wait_state_now(want, timeout):
            """Busy polling: the passes take milliseconds."""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                st = poll.stats("backends")[owner + ":state"]
                if not seen or seen[-1] != st:
                    seen.append(st)
                if st in want:
                    return
            self.fail("%s not %s after %.0f s" % (owner, want, timeout))
        m.resume()
        try:
            # Write while the passes run (the first one takes a while).
            wait_state_now(("RECOVERING", "UP"), 10.0)
            t_recovering = time.monotonic()
            go.set()
            wait_state_now(("UP",), 10.0)
            t_recovered = time.monotonic() - t_recovering
            self.assertIsNone(load.poll(), "the load ended before UP")
        finally:
            go.set()
            stop.set()
            load.terminate()
            for t in threads:
                t.join(10.0)
            load.wait(10.0)
        t_up = time.monotonic()
        stale = []
        acked = list(dict.fromkeys(acked[::-1]))    # newest first, once
        with mctest.Client(self.port) as c:
            todo = acked + outage           # the likely victims first
            for i in range(0, len(todo), 100):
                for k, _, v, _ in c.get_multi(todo[i:i + 100]):
                    if v == b"old":
                        stale.append(k)
        note("writes during recovery: %d keys acknowledged (states seen "
             "%s), RECOVERING for %.3f s, %d read stale %.3f s after UP",
             len(acked), "->".join(seen), t_recovered, len(stale),
             time.monotonic() - t_up)
        self.assertEqual(failed[:5], [])
        self.assertGreater(len(acked), 0, "no write during the recovery")
        # Writes during RECOVERING delete the key on the owner as well, so
        # they do not keep it out: a pass or two, whatever the write rate.
        with open(cl.mcring.log_path, "rb") as f:
            self.assertNotIn(b"still cleaning up", f.read())
        fallbacks = [cl.backend(n) for n in cl.names if n != owner]

        def on_fallbacks(keys):
            found = {}
            for fb in fallbacks:
                found.update(direct_values(fb, keys))
            return found
        self.assertEqual(stale[:5], [],
                         "%d keys read as their pre-outage value after "
                         "the owner is UP; owner has %r, fallbacks %r"
                         % (len(stale), direct_values(m, stale[:5]),
                            on_fallbacks(stale[:5])))
        # Once every pass is done, no copy is left on the fallbacks.
        left = {}

        def cleaned():
            left.clear()
            left.update(on_fallbacks(acked + outage))
            return not left
        try:
            wait_for(cleaned, 3.0 * SPEC, "the fallbacks to be cleaned")
        except TimeoutError:
            self.fail("%d keys written during the recovery are still on "
                      "the fallbacks (e.g. %r); owner has %r"
                      % (len(left), sorted(left)[:3],
                         direct_values(m, sorted(left)[:3])))
        self.assert_alive()


class FailoverTtlTest(HealthTestCase):
    """What mcring writes to a fallback for a DOWN owner has its exptime
    capped at failover_ttl, whatever the client asked for: storage
    commands, touch, the touch in gat/gats (single key, and a multi-key
    gats mixing keys of live and DOWN owners), and ms (its T flag). Keys of live backends keep
    the exptime asked for."""

    HEALTH = dict(FAST, failover_ttl=2)

    def test_fallback_copies_expire(self):
        cl = self.cluster
        owner = cl.names[-1]
        by, route = self.keys(8)
        ks = by[owner]
        live = [k for n in cl.names if n != owner for k in by[n][:2]]
        fb = {k: self.fallback(route, k, {owner}) for k in ks}
        cl.backend(owner).kill()
        self.wait_state(owner, "DOWN", 5.0 * SPEC)
        # Copies that exist on the fallbacks already, without expiry (as
        # if left from an earlier outage): only gat/gats/touch reach them.
        for k in ks[3:]:
            with cl.backend(fb[k]).client() as c:
                self.assertEqual(c.set(k, b"early"), b"STORED")
        with mctest.Client(self.port) as c:
            self.assertEqual(c.set(ks[0], b"v0", exptime=0), b"STORED")
            self.assertEqual(c.set(ks[1], b"v1", exptime=86400), b"STORED")
            c.send(b"add %s 0 100000 2\r\nv2\r\n" % ks[2].encode())
            self.assertEqual(c.readline(), b"STORED")
            c.send(b"touch %s 0\r\n" % ks[3].encode())
            self.assertEqual(c.readline(), b"TOUCHED")
            c.send(b"gat 0 %s\r\n" % ks[4].encode())
            self.assertEqual(c.read_until(),
                             b"VALUE %s 0 5\r\nearly\r\nEND\r\n"
                             % ks[4].encode())
            for k in live:
                self.assertEqual(c.set(k, b"live", exptime=0), b"STORED")
            c.send(("gats 86400 %s %s\r\n"
                    % (ks[5], " ".join(live))).encode())
            got = c.read_until()
            self.assertEqual(got.count(b"VALUE "), 1 + len(live), got)
            # meta writes too: ms without T (forever) and with a day
            c.send(b"ms %s 2\r\nv6\r\n" % ks[6].encode())
            self.assertEqual(c.readline(), b"HD")
            c.send(b"ms %s 2 T86400 q\r\nv7\r\nmn\r\n" % ks[7].encode())
            self.assertEqual(c.readline(), b"MN")

        def on_fallbacks():
            found = {}
            for k in ks:
                found.update(direct_values(cl.backend(fb[k]), [k]))
            return found
        self.assertEqual(sorted(on_fallbacks()), sorted(ks))
        # memcached expires at one-second granularity: gone after about
        # failover_ttl (2 s), not after a day.
        wait_for(lambda: not on_fallbacks(), 6.0 * SPEC,
                 "the fallback copies to expire")
        for n in cl.names:
            if n != owner:
                self.assertEqual(direct_values(cl.backend(n), by[n][:2]),
                                 {k: b"live" for k in by[n][:2]})
        self.assert_alive()


class FlappingTest(HealthTestCase):
    """Test 6: a backend hung and resumed every 300 ms for 10 s."""

    # Fast enough checks that a 300 ms hang is noticed (fall 2 x 50 ms
    # plus a 100 ms timeout) and a 300 ms run of health brings it back.
    HEALTH = {"interval_ms": 50, "timeout_ms": 100, "rise": 2, "fall": 2}

    def test_flapping_backend(self):
        cl = self.cluster
        flapper = "b2"
        by, route = self.keys(11)
        probe = by[flapper].pop()       # for routed_back(), not the load
        keys = [k for ks in by.values() for k in ks]
        self.set_all(keys)
        m = cl.backend(flapper)
        self.addCleanup(m.resume)
        load = Load(self.port, spread(by, 4)).start()
        flips = 0
        try:
            t_end = time.monotonic() + 10.0
            nxt = time.monotonic()
            stopped = False
            while time.monotonic() < t_end:
                if stopped:
                    m.resume()
                else:
                    m.send_signal(signal.SIGSTOP)
                stopped = not stopped
                flips += 1
                nxt += 0.3
                delay = nxt - time.monotonic()
                if delay > 0:
                    time.sleep(delay)   # the flapping schedule itself
            # End on a hang that was noticed, then resume for good.
            if not stopped:
                m.send_signal(signal.SIGSTOP)
            self.wait_state(flapper, "DOWN", 5.0 * SPEC)
            t_resume = time.monotonic()
            m.resume()
            # route-back with the load still running
            self.routed_back(flapper, probe, 10.0)
            took = time.monotonic() - t_resume
            self.wait_state(flapper, "UP", 5.0)
        finally:
            m.resume()
            load.stop()
        self.assert_alive()
        with self.client() as c:
            self.assertTrue(c.version().startswith(b"VERSION "))
            self.assertIn("curr_connections", c.stats())
        st = backend_stats(self.port)
        note("flapping: %d signals, %s transitions of %s, %d ops "
             "(%d errors on its keys, %d stale reads)", flips,
             st[flapper]["transitions"], flapper, len(load.records),
             len(load.errors(by[flapper])), len(load.stale_reads))
        limit = 2.0 * SPEC + self.rise() * self.interval()
        note("flapping: route-back %.3f s after the final resume", took)
        others = [k for n, ks in by.items() if n != flapper for k in ks]
        self.assertEqual(load.errors(others)[:5], [],
                         "errors on keys of steady backends")
        self.assertEqual(load.stale_reads[:5], [], "stale reads")
        self.assertGreater(int(st[flapper]["transitions"]), 0,
                           "the flapping was never noticed")
        for n in cl.names:
            if n != flapper:
                self.assertEqual(st[n]["state"], "UP", n)
                self.assertEqual(st[n]["transitions"], "0", n)
        self.assertLess(took, limit)

        # The copies on the fallbacks are cleaned up; no key of a steady
        # backend moved; the flapper's keys are never older than their
        # last acknowledged write.
        def clean():
            return not any(direct_values(cl.backend(n), by[flapper])
                           for n in cl.names if n != flapper)
        wait_for(clean, 5.0, "fallbacks to drop the flapper's keys")
        for n in cl.names:
            if n == flapper:
                continue
            vals = direct_values(cl.backend(n), keys)
            self.assertEqual(sorted(vals), sorted(by[n]), n)
            for k in by[n]:
                self.assertEqual(vals[k], load.last_stored[k], k)
        with mctest.Client(self.port) as c:
            for k in by[flapper]:
                got = c.get(k)
                if got is not None:
                    self.assertGreaterEqual(Load.seq_of(got), load.acked[k],
                                            "%s: %r" % (k, got))


class AllDownTest(HealthTestCase):
    """Test 7: no backend up, then all back."""

    def no_backend(self, break_all, repair_all, what):
        cl = self.cluster
        by, route = self.keys(3)
        keys = [k for ks in by.values() for k in ks]
        self.set_all(keys)
        break_all()
        wait_for(lambda: set(self.states().values()) == {"DOWN"},
                 5.0 * SPEC, "every backend to be DOWN")
        t_down = time.monotonic()
        c = self.client(timeout=5.0)
        limit = 0.1 * SPEC
        want = b"SERVER_ERROR no backend available"

        def fails_fast():
            t0 = time.monotonic()
            c.send(b"get " + keys[0].encode() + b"\r\n")
            line = c.readline()
            return line == want and time.monotonic() - t0 < limit
        wait_for(fails_fast, 1.0 * SPEC, "fast SERVER_ERROR replies")
        note("%s: fast 'no backend available' %.3f s after all DOWN",
             what, time.monotonic() - t_down)
        worst = 0.0
        for k in keys:
            t0 = time.monotonic()
            self.assertEqual(c.call("get " + k), want, k)
            self.assertEqual(c.set(k, b"x"), want, k)
            self.assertEqual(c.call("get %s %s %s" % (k, keys[0],
                                                      keys[-1])), want)
            self.assertEqual(c.delete(k), want, k)
            worst = max(worst, (time.monotonic() - t0) / 4)
        note("%s: slowest error reply %.1f ms", what, worst * 1000)
        self.assertLess(worst, limit)
        self.assertTrue(c.version().startswith(b"VERSION "))

        t0 = time.monotonic()
        repair_all()

        def works():
            try:
                with mctest.Client(self.port, timeout=5.0) as c2:
                    for k in keys:
                        if c2.set(k, b"back") != b"STORED" \
                                or c2.get(k) != b"back":
                            return False
                    return True
            except CLIENT_ERRORS:
                return False
        wait_for(works, 10.0, "service to resume")
        took = time.monotonic() - t0
        note("%s: service resumed %.3f s after the backends' return",
             what, took)
        self.assertLess(took, 2.0 * SPEC)
        self.assert_alive()

    def test_all_hung(self):
        ms = self.cluster.backends

        def hang():
            for m in ms:
                self.addCleanup(m.resume)
                m.pause()

        def resume():
            for m in ms:
                m.resume()
        self.no_backend(hang, resume, "all SIGSTOP")

    def test_all_killed(self):
        ms = self.cluster.backends

        def kill():
            for m in ms:
                m.kill()

        def restart():
            for m in ms:
                m.start()
        self.no_backend(kill, restart, "all SIGKILL")


class FailoverLimitTest(HealthTestCase):
    """[health] failover_limit: past that share of a pool down, the keys of
    the down backends get errors instead of piling onto the survivors;
    failing over resumes once the pool is back within it."""

    NBACKENDS = 4
    HEALTH = dict(FAST, failover_limit="0.5")

    def log(self):
        with open(self.mc.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def test_guard_engages_and_lifts(self):
        by, route = self.keys(3)
        keys = [k for ks in by.values() for k in ks]
        self.set_all(keys)
        names = self.cluster.names
        ms = {n: self.cluster.backend(n) for n in names}
        c = self.client(timeout=5.0)
        want = b"SERVER_ERROR no backend available"

        # 2 of 4 down is within 0.5: their keys fail over.
        for n in names[:2]:
            ms[n].kill()
        for n in names[:2]:
            self.wait_state(n, "DOWN", 5.0 * SPEC)
        for k in by[names[0]] + by[names[1]]:
            self.assertEqual(c.set(k, b"fo"), b"STORED", k)
            self.assertEqual(c.get(k), b"fo", k)
        self.assertNotIn("over failover_limit", self.log())

        # 3 of 4 is over it: the down ones' keys get errors at once, the
        # survivor's keys are served as before.
        ms[names[2]].kill()
        self.wait_state(names[2], "DOWN", 5.0 * SPEC)
        for n in names[:3]:
            for k in by[n]:
                self.assertEqual(c.call("get " + k), want, k)
                self.assertEqual(c.set(k, b"x"), want, k)
        for k in by[names[3]]:
            self.assertEqual(c.set(k, b"alive"), b"STORED", k)
            self.assertEqual(c.get(k), b"alive", k)
        # Nothing of theirs landed on the survivor.
        self.assertEqual(direct_values(ms[names[3]], by[names[2]]), {})
        st = backend_stats(self.port)
        self.assertGreaterEqual(int(st[names[2]]["failovers_refused"]),
                                2 * len(by[names[2]]))
        self.assertEqual(int(st[names[3]]["failovers_refused"]), 0)
        wait_for(lambda: "pool default: 3 of 4 backends down, over "
                 "failover_limit 0.5" in self.log(), 5.0,
                 "the log to say the pool is over failover_limit")

        # One back: 2 of 4, within the limit again: failing over resumes.
        ms[names[0]].start()
        self.wait_state(names[0], "UP", 10.0 * SPEC)
        wait_for(lambda: "within failover_limit 0.5: failing over again"
                 in self.log(), 5.0, "the log to say failing over resumes")
        for k in by[names[1]] + by[names[2]]:
            self.assertEqual(c.set(k, b"again"), b"STORED", k)
            self.assertEqual(c.get(k), b"again", k)
        self.assert_alive()


class FailoverLimitOffTest(HealthTestCase):
    """By default every down backend fails over, down to the last one."""

    NBACKENDS = 4

    def test_three_of_four_down_fail_over(self):
        by, route = self.keys(2)
        names = self.cluster.names
        for n in names[:3]:
            self.cluster.backend(n).kill()
        for n in names[:3]:
            self.wait_state(n, "DOWN", 5.0 * SPEC)
        c = self.client(timeout=5.0)
        for k in [k for ks in by.values() for k in ks]:
            self.assertEqual(c.set(k, b"v"), b"STORED", k)
            self.assertEqual(c.get(k), b"v", k)
        st = backend_stats(self.port)
        self.assertEqual(sum(int(s["failovers_refused"]) for s in
                             st.values()), 0)


class WeightedTest(HealthTestCase):
    """Test 8: weights 1,2,1 and the weight-2 backend killed."""

    WEIGHTS = [1, 2, 1]

    def test_heavy_backend_killed(self):
        cl = self.cluster
        dead = "b2"
        by, route = self.keys(20)
        keys = [k for ks in by.values() for k in ks]
        self.set_all(keys)
        st = backend_stats(self.port)
        self.assertEqual(st[dead]["weight"], "2")
        load = Load(self.port, spread(by, 3)).start()
        try:
            wait_for(lambda: len(load.records) > 20, 5.0, "load to start")
            t_kill = time.monotonic()
            cl.backend(dead).kill()
            wait_for(lambda: time.monotonic() - t_kill > 1.5, 5.0,
                     "1.5 s of load after the kill")
        finally:
            load.stop()
        others = [k for n, ks in by.items() if n != dead for k in ks]
        self.assertEqual(load.errors(others), [],
                         "errors on keys of live backends")
        self.assertEqual(load.stale_reads[:5], [], "stale reads")
        errs = load.errors(by[dead])
        window = max((r[1] for r in errs), default=t_kill) - t_kill
        note("weighted: error window %.3f s after killing the weight-2 "
             "backend", window)
        self.assertLess(window, 1.0 * SPEC)
        with mctest.Client(self.port) as c:
            for k in by[dead]:
                v = ("after-%s" % k).encode()
                self.assertEqual(c.set(k, v), b"STORED", k)
                load.last_stored[k] = v
        self.check_placement(by, route, load, {dead})
        fbs = {self.fallback(route, k, {dead}) for k in by[dead]}
        self.assertEqual(fbs, {"b1", "b3"},
                         "the weight-2 backend's keys do not spread")


class ProtocolErrorTest(HealthTestCase):
    """Test 9: a client's protocol errors never count against a
    backend."""

    MALFORMED = [
        b"bogus command",
        b"get",
        b"set",
        b"set k 0 0",
        b"set k 0 0 x",
        b"set k abc 0 1\r\nx",      # its "data" is read as a command
        b"incr",
        b"incr k",
        b"incr k abc",
        b"decr k -1",
        b"touch k",
        b"touch k abc",
        b"delete",
        b"cas k 0 0 1\r\nx",
        b"get " + b"k" * 251,
        b"gat",
        b"gat abc k",
        b"verbosity",
        b"\x01\x02\x03",
        b"GET k",
        b"incr k 1",                # reaches the backend: non-numeric value
        b"decr k 1",
    ]

    def test_malformed_commands(self):
        by, route = self.keys(2)
        keys = [k for ks in by.values() for k in ks]
        self.set_all(keys)
        before = backend_stats(self.port)
        c = self.client()
        answers = {}
        for i in range(100):
            line = self.MALFORMED[i % len(self.MALFORMED)]
            # on keys the backends hold
            line = line.replace(b" k", b" " + keys[i % len(keys)].encode(),
                                1)
            try:
                reply = c.call(line)
                if b"\r\n" in line:
                    # As memcached: the refused line's data is a command.
                    self.assertEqual(c.readline(), b"ERROR", line)
                # the next command is answered exactly
                self.assertEqual(c.call("get nokey-%d" % i), b"END",
                                 "after %r (%r)" % (line, reply))
            except CLIENT_ERRORS as e:
                reply = ("closed: %s" % e).encode()
                c.close()
                c = self.client()
            answers[line] = reply
            self.assertFalse(reply.startswith(b"SERVER_ERROR"),
                             "%r answered %r" % (line, reply))
        # bad data blocks
        for k in keys[:5]:
            c.send(b"set " + k.encode() + b" 0 0 3\r\ntoolong\r\n")
            self.assertTrue(c.readline().startswith(b"CLIENT_ERROR"))
            c.close()
            c = self.client()
        # Watch for longer than fall checks would take.
        deadline = time.monotonic() + self.HEALTH["fall"] * \
            self.interval() * 3
        while True:
            st = backend_stats(self.port)
            for n in self.cluster.names:
                self.assertEqual(st[n]["state"], "UP", n)
                self.assertEqual(st[n]["transitions"], "0", n)
                self.assertEqual(st[n]["failovers"], "0", n)
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)            # observation window, not a wait
        errs = {n: int(st[n]["errors"]) - int(before[n]["errors"])
                for n in self.cluster.names}
        self.assertEqual(errs, {n: 0 for n in self.cluster.names},
                         "client errors counted as backend errors")
        self.assertTrue(any(b"non-numeric" in r for r in answers.values()),
                        "no client error came from a backend")
        with mctest.Client(self.port) as c2:
            for k in keys:
                self.assertEqual(c2.get(k), b"init-" + k.encode())
        self.assert_alive()


class StatsBackendsTest(HealthTestCase):
    """Test 10: `stats backends` fields exist and change."""

    def test_fields_and_transitions(self):
        cl = self.cluster
        st = backend_stats(self.port)
        self.assertEqual(sorted(st), cl.names)
        for n in cl.names:
            for f in BACKEND_FIELDS:
                self.assertIn(f, st[n], "%s:%s" % (n, f))
            self.assertEqual(st[n]["address"],
                             "127.0.0.1:%d" % cl.backend(n).port)
            self.assertEqual(st[n]["state"], "UP")
            self.assertEqual(st[n]["transitions"], "0")
            self.assertEqual(st[n]["failovers"], "0")
            self.assertAlmostEqual(float(st[n]["ring_share"]), 1 / 3.0,
                                   delta=0.1)
        by, route = self.keys(10)
        victim = "b1"
        m = cl.backend(victim)
        c = self.client()
        for k in by[victim]:
            self.assertEqual(c.set(k, b"v"), b"STORED")
        st1 = backend_stats(self.port)
        self.assertGreaterEqual(int(st1[victim]["requests"]),
                                int(st[victim]["requests"]) + 10)
        self.assertGreater(int(st1[victim]["connects"]), 0)

        t_stop = int(time.time())
        self.addCleanup(m.resume)
        m.pause()
        self.wait_state(victim, "DOWN", 5.0 * SPEC)
        st2 = backend_stats(self.port)
        self.assertGreaterEqual(int(st2[victim]["since"]), t_stop)
        self.assertEqual(st2[victim]["transitions"], "1")
        for k in by[victim]:
            self.assertEqual(c.set(k, b"w"), b"STORED")
            self.assertEqual(c.get(k), b"w")
        st3 = backend_stats(self.port)
        self.assertGreaterEqual(int(st3[victim]["failovers"]), 20)
        for n in cl.names:
            if n != victim:
                self.assertEqual(st3[n]["failovers"], "0")
                self.assertEqual(st3[n]["state"], "UP")

        m.resume()
        seen = set()

        def up():
            s = self.states()[victim]
            seen.add(s)
            return s == "UP"
        wait_for(up, 10.0, "%s to be UP again" % victim)
        st4 = backend_stats(self.port)
        note("stats backends: states seen after the resume %r, "
             "transitions %s", sorted(seen), st4[victim]["transitions"])
        self.assertGreaterEqual(int(st4[victim]["transitions"]), 2)
        self.assertGreaterEqual(int(st4[victim]["since"]),
                                int(st2[victim]["since"]))
        self.assert_alive()


if __name__ == "__main__":
    mctest.main()
