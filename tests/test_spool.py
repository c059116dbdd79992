#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Integration tests: the delete spool ([proxy] delete_spool), reliable
deletes across a restart of mcring.

Three real memcached backends behind one mcring.  A backend is hung
(SIGSTOP: it keeps its data, the stale-value case), keys it holds are
deleted through mcring (the deletes go to its fallback, or fail), mcring
is killed (SIGKILL: a crash, nothing written at exit) and started again
with the same config and spool, the backend is resumed with its old values
still in it; then

  - no read through mcring returns an old value, before or after the
    backend is back: it stays out of the ring (RECOVERING, then DOWN while
    hung) until its recovery pass deleted the spooled keys on it;
  - afterwards the spool file holds nothing but its header;
  - a delete that times out on a backend that is still UP is spooled too;
  - without delete_spool nothing is written anywhere;
  - more failed deletes than delete_spool_max: the backend is flushed on
    its return instead (a flush record, durable across the restart);
  - a spool whose last line was cut short, with malformed lines and
    records of a backend no longer configured, is read with warnings;
  - a spool path whose directory does not exist, a relative path, or a
    file that is not a spool is refused by `mcring -t` and at start;
  - a second mcring on the same spool is refused;
  - a backend removed by a reload loses its records; a previous owner's
    delete during a warm-up that cannot be sent is spooled for it.

MCTEST_SLOW=1 (sanitizer builds) doubles the time bounds.
"""

import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest  # noqa: E402
from mctest import ConnectionClosed, wait_for  # noqa: E402

SLOW = os.environ.get("MCTEST_SLOW") == "1"
SPEC = 2.0 if SLOW else 1.0

HEALTH = {"interval_ms": 100, "timeout_ms": 200, "rise": 2, "fall": 2}
HEADER = "mcring-delete-spool 1"
CLIENT_ERRORS = (OSError, ConnectionClosed, mctest.ProtocolError)


def direct_values(memcached, keys):
    out = {}
    with memcached.client() as c:
        for k, _, v, _ in c.get_multi(list(keys)):
            out[k] = v
    return out


class SpoolTestCase(unittest.TestCase):
    """A fresh cluster per test; SPOOL: whether delete_spool is set (to a
    file in the cluster's directory)."""

    SPOOL = True
    PROXY = {}

    def setUp(self):
        if mctest.direct_mode():
            self.skipTest("needs mcring (MCTEST_DIRECT=1)")
        self.cluster = mctest.Cluster(3, proxy=dict(self.PROXY),
                                      health=HEALTH)
        self.addCleanup(self.cluster.close)
        self.spool = os.path.join(self.cluster.tmpdir, "delete.spool")
        if self.SPOOL:
            self.cluster.proxy_opts["delete_spool"] = self.spool
        self.before_start()
        self.cluster.start()
        self.mc = self.cluster.mcring
        self.addCleanup(self.check_clean_exit)

    def check_clean_exit(self):
        """Stops mcring (SIGTERM): a sanitizer build reports leaks and
        errors in its log then."""
        if not self.mc.alive():
            return
        self.mc.stop()
        log = self.mc.log_text(200000)
        for bad in ("Sanitizer", "runtime error:"):
            self.assertNotIn(bad, log)

    def before_start(self):
        pass

    def dump_logs(self, stream):
        self.cluster.dump_logs(stream)
        if os.path.exists(self.spool):
            with open(self.spool) as f:
                stream.write("----- spool -----\n%s\n" % f.read()[-3000:])

    # -- helpers

    def client(self):
        c = mctest.Client(self.mc.port, timeout=5.0)
        self.addCleanup(c.close)
        return c

    def states(self):
        return {n: s["state"]
                for n, s in mctest.stats_backends(self.mc.port).items()}

    def wait_state(self, name, want, timeout):
        wait_for(lambda: self.states()[name] == want, timeout * SPEC,
                 "%s to be %s" % (name, want))

    def keys_of(self, owner, n, tag="k"):
        by = self.cluster.keys_by_owner("%s-%s" % (self._testMethodName,
                                                    tag), n)
        return by[owner]

    def spool_lines(self):
        with open(self.spool) as f:
            return f.read().split("\n")

    def wait_spooled(self, records, timeout=5.0):
        """Waits until every record line is in the spool file."""
        def there():
            lines = set(self.spool_lines())
            return all(r in lines for r in records)
        wait_for(there, timeout * SPEC, "records %r in the spool" % records)

    def wait_compacted(self, timeout=5.0):
        wait_for(lambda: self.spool_lines() == [HEADER, ""], timeout * SPEC,
                 "the spool to hold its header only")

    def restart(self):
        """Kills mcring (a crash) and starts it again: same config, same
        spool, another client port."""
        self.mc.kill()
        self.mc.start()

    def hang(self, name):
        m = self.cluster.backend(name)
        self.addCleanup(m.resume)
        m.pause()
        return m

    def set_all(self, keys, prefix):
        c = self.client()
        for k in keys:
            self.assertEqual(c.set(k, "%s-%s" % (prefix, k)), b"STORED")

    def outage_deletes(self, owner, keys):
        """Hangs owner, deletes keys through mcring (they go to the
        fallback, which does not have them: NOT_FOUND, as today), waits
        until they are spooled. Returns the hung memcached."""
        m = self.hang(owner)
        self.wait_state(owner, "DOWN", 5.0)
        c = self.client()
        for i, k in enumerate(keys):
            if i % 2:
                c.send(b"md %s\r\n" % k.encode())
                self.assertEqual(c.readline(), b"NF", k)
            else:
                self.assertEqual(c.delete(k), b"NOT_FOUND", k)
        # Each delete is noted for the owner, with the fallback that took
        # it (its name last).
        def noted():
            lines = self.spool_lines()
            return all(any(l.startswith("delete %s %s " % (owner, k))
                           for l in lines) for k in keys)
        wait_for(noted, 5.0 * SPEC, "the deletes in the spool")
        return m

    def no_old_values(self, keys, old, until):
        """Reads keys through mcring until until() is true; none may
        return its old value."""
        c = self.client()
        reads = 0
        while True:
            done = until()
            for k in keys:
                got = c.get(k)
                reads += 1
                self.assertNotEqual(got, old[k], "%s: old value served "
                                    "after %d reads" % (k, reads))
            if done:
                return reads


class SpoolRestartTest(SpoolTestCase):
    """The stale-value case: deletes made while the owner hung, then a
    crash of mcring, must still be done before the owner serves."""

    def test_restart_while_hung_then_resume(self):
        owner = "b3"
        keys = self.keys_of(owner, 6)
        self.set_all(keys, "old")
        old = direct_values(self.cluster.backend(owner), keys)
        self.assertEqual(len(old), len(keys))
        m = self.outage_deletes(owner, keys)

        self.restart()
        # Spooled: it starts RECOVERING, its probe fails, DOWN.
        self.assertIn(self.states()[owner], ("RECOVERING", "DOWN"))
        self.assertIn("delete spool", self.mc.log_text())
        self.wait_state(owner, "DOWN", 5.0)
        for k in keys:
            self.assertIsNone(self.client().get(k), k)
        m.resume()
        self.assertEqual(direct_values(m, keys), old)   # still stale
        self.no_old_values(keys, old,
                           lambda: self.states()[owner] == "UP")
        self.assertEqual(direct_values(m, keys), {})
        self.wait_compacted()
        # The owner serves again.
        c = self.client()
        self.assertEqual(c.set(keys[0], b"new"), b"STORED")
        self.assertEqual(direct_values(m, [keys[0]]), {keys[0]: b"new"})

    def test_restart_after_resume(self):
        """The owner is back with its old values when mcring starts: it
        must not be UP (serving them) before they are deleted."""
        owner = "b2"
        keys = self.keys_of(owner, 6)
        self.set_all(keys, "old")
        old = direct_values(self.cluster.backend(owner), keys)
        m = self.outage_deletes(owner, keys)
        self.mc.kill()
        m.resume()
        self.assertEqual(direct_values(m, keys), old)
        self.mc.start()
        self.no_old_values(keys, old,
                           lambda: self.states()[owner] == "UP")
        self.assertEqual(direct_values(m, keys), {})
        self.wait_compacted()

    def test_timed_out_delete_on_an_up_backend(self):
        """A delete sent to a backend that hangs before it is marked DOWN
        fails (SERVER_ERROR, as today) and is spooled for that backend."""
        owner = "b1"
        k = self.keys_of(owner, 1)[0]
        self.set_all([k], "old")
        c = self.client()
        self.hang(owner)
        reply = c.delete(k)
        self.assertTrue(reply.startswith(b"SERVER_ERROR"), reply)
        self.wait_spooled(["delete %s %s" % (owner, k)])
        self.cluster.backend(owner).resume()
        self.wait_state(owner, "UP", 10.0)
        self.assertEqual(direct_values(self.cluster.backend(owner), [k]), {})
        self.wait_compacted()

    def test_no_backend_available(self):
        """Every backend down: the delete fails as today (no backend
        available) and its owner keeps the key, also across a restart."""
        owner = "b1"
        k = self.keys_of(owner, 1)[0]
        self.set_all([k], "old")
        hung = [self.hang(n) for n in ("b1", "b2", "b3")]
        for n in ("b1", "b2", "b3"):
            self.wait_state(n, "DOWN", 5.0)
        self.assertEqual(self.client().delete(k),
                         b"SERVER_ERROR no backend available")
        self.wait_spooled(["delete %s %s" % (owner, k)])
        self.mc.kill()
        for m in hung:
            m.resume()
        self.mc.start()
        self.no_old_values([k], {k: b"old-" + k.encode()},
                           lambda: self.states()[owner] == "UP")
        self.assertEqual(direct_values(self.cluster.backend(owner), [k]), {})

    def test_clean_stop_writes_the_spool(self):
        """SIGTERM: what is spooled stays (nothing is lost at exit)."""
        owner = "b3"
        keys = self.keys_of(owner, 3)
        self.set_all(keys, "old")
        m = self.outage_deletes(owner, keys)
        self.mc.stop()
        lines = self.spool_lines()
        self.assertEqual(lines[0], HEADER)
        for k in keys:
            self.assertTrue(any(l.startswith("delete %s %s" % (owner, k))
                                for l in lines), k)
        m.resume()
        self.mc.start()
        self.wait_state(owner, "UP", 10.0)
        self.assertEqual(direct_values(m, keys), {})


class SpoolReloadTest(SpoolTestCase):
    """A backend removed by a reload: its spooled keys are dropped
    (logged), the others' kept. No warm-up: a removed backend would
    linger as a previous owner (and keep its records) until it ends."""

    PROXY = {"warmup": 0, "migrate_rate": 0}

    def test_removed_backend_dropped(self):
        keys = self.keys_of("b3", 2)
        other = self.keys_of("b1", 1, "other")[0]
        self.set_all(keys + [other], "old")
        self.outage_deletes("b3", keys)
        # A delete of b1's key that cannot reach it: b1 hangs too.
        m1 = self.hang("b1")
        self.wait_state("b1", "DOWN", 5.0)
        self.assertEqual(self.client().delete(other), b"NOT_FOUND")
        wait_for(lambda: any(l.startswith("delete b1 %s " % other)
                             for l in self.spool_lines()),
                 5.0 * SPEC, "b1's key in the spool")
        self.mc.backends = [b for b in self.mc.backends if b[0] != "b3"]
        self.mc.write_config(self.mc.port)
        self.assertEqual(mctest.sighup_reload(self.mc), "applied")
        wait_for(lambda: not any(l.split(" ")[1] == "b3"
                                 for l in self.spool_lines()[1:] if l),
                 5.0 * SPEC, "b3's records to leave the spool")
        self.assertIn("backend b3 (127.0.0.1:%d) left the topology: its 2 "
                      "spooled keys are dropped"
                      % self.cluster.backend("b3").port, self.mc.log_text())
        self.assertTrue(any(l.startswith("delete b1 %s" % other)
                            for l in self.spool_lines()))
        m1.resume()
        self.wait_state("b1", "UP", 10.0)
        self.wait_compacted()


class SpoolWarmupTest(SpoolTestCase):
    """During the warm-up after a backend is added, a write's delete on
    the key's previous owner that cannot be sent (that owner hangs) is
    spooled for it, and done before it serves again."""

    def before_start(self):
        self.cluster.pools = (["b1", "b2"], None)

    def test_previous_owner_delete_spooled(self):
        cl = self.cluster
        self.mc.backends.append(("b3", cl.backend("b3").port, None))
        probe = ["warm-%d" % i for i in range(300)]
        old = cl.route(probe)
        self.mc.write_config(self.mc.port)
        new = cl.route(probe)
        moved = [k for k in probe
                 if new[k][0] == "b3" and old[k][0] == "b1"]
        self.assertGreater(len(moved), 5)
        k = moved[0]
        # On its old owner first, then the move.
        self.set_all([k], "old")
        self.assertEqual(direct_values(cl.backend("b1"), [k]),
                         {k: ("old-" + k).encode()})
        self.assertEqual(mctest.sighup_reload(self.mc), "applied")
        self.wait_state("b3", "UP", 10.0)
        m1 = self.hang("b1")
        self.wait_state("b1", "DOWN", 5.0)
        # A write of the moved key: to b3, and a delete on b1 that cannot
        # be sent.
        self.assertEqual(self.client().set(k, b"new"), b"STORED")
        self.wait_spooled(["delete b1 %s" % k])
        self.mc.kill()
        m1.resume()
        self.mc.start()
        self.wait_state("b1", "UP", 10.0)
        self.assertEqual(direct_values(cl.backend("b1"), [k]), {})
        self.wait_compacted()


class SpoolLockTest(SpoolTestCase):
    """One mcring per spool: a second is refused at start (each would
    rewrite the file without the other's keys); -t still passes."""

    def test_second_mcring_refused(self):
        path = os.path.join(self.cluster.tmpdir, "second.ini")
        with open(path, "w") as f:
            f.write(mctest.format_config(
                mctest.free_port(),
                [(b.name, b.port) for b in self.cluster.backends],
                {"delete_spool": self.spool}))
        r = mctest.run_mcring(["-c", path])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("delete_spool %s: cannot lock %s.lock: in use by "
                      "another mcring" % (self.spool, self.spool), r.stderr)
        r = mctest.run_mcring(["-t", "-c", path])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(self.mc.alive())
        self.assertEqual(self.spool_lines(), [HEADER, ""])


class NoSpoolTest(SpoolTestCase):
    """Off by default: nothing is written anywhere."""

    SPOOL = False

    def test_nothing_written(self):
        before = sorted(os.listdir(self.cluster.tmpdir))
        owner = "b3"
        keys = self.keys_of(owner, 4)
        self.set_all(keys, "old")
        m = self.hang(owner)
        self.wait_state(owner, "DOWN", 5.0)
        c = self.client()
        for k in keys:
            self.assertEqual(c.delete(k), b"NOT_FOUND")
        m.resume()
        self.wait_state(owner, "UP", 10.0)
        self.mc.stop()
        self.assertEqual(sorted(os.listdir(self.cluster.tmpdir)), before)
        self.assertFalse(os.path.exists(self.spool))
        st = mctest.run_mcring(["-t", "-c", self.mc.config_path])
        self.assertEqual(st.returncode, 0, st.stderr)


class SpoolBoundTest(SpoolTestCase):
    """delete_spool_max crossed: a flush of the backend when it returns,
    durable across a restart."""

    PROXY = {"delete_spool_max": 3}

    def test_crossing_the_bound_flushes(self):
        owner = "b3"
        keys = self.keys_of(owner, 5)
        canary = self.keys_of(owner, 1, "canary")[0]
        self.set_all(keys + [canary], "old")
        m = self.hang(owner)
        self.wait_state(owner, "DOWN", 5.0)
        c = self.client()
        # At the bound: the keys are kept.
        for k in keys[:3]:
            self.assertEqual(c.delete(k), b"NOT_FOUND")

        def keyed():
            return sum(1 for l in self.spool_lines()
                       if l.startswith("delete %s " % owner))
        wait_for(lambda: keyed() == 3, 5.0 * SPEC, "3 keys in the spool")
        self.assertNotIn("flush %s" % owner, self.spool_lines())
        # One more: over it, a flush instead.
        self.assertEqual(c.delete(keys[3]), b"NOT_FOUND")
        wait_for(lambda: "flush %s" % owner in self.spool_lines(),
                 5.0 * SPEC, "a flush record")
        self.assertEqual(keyed(), 0)
        self.assertIn("over delete_spool_max 3", self.mc.log_text())
        # Durable: a crash, the owner back with everything it had.
        self.mc.kill()
        m.resume()
        self.assertEqual(len(direct_values(m, keys + [canary])), 6)
        self.mc.start()
        c = self.client()
        while self.states()[owner] != "UP":
            for k in keys + [canary]:
                self.assertNotEqual(c.get(k), ("old-%s" % k).encode(), k)
        # Flushed: the canary, never deleted, is gone too.
        self.assertEqual(direct_values(m, keys + [canary]), {})
        self.wait_compacted()


class SpoolCorruptTest(SpoolTestCase):
    """A spool left by a crash mid-write, with damage: read with
    warnings, the good records still done before their backends serve."""

    def test_damaged_spool_is_read(self):
        good, cut = "corrupt-good", "corrupt-cut"
        self.mc.stop()
        with open(self.spool, "w") as f:
            f.write(HEADER + "\n")
            for n in ("b1", "b2", "b3"):
                f.write("delete %s %s\n" % (n, good))
            f.write("this is not a record\n")
            f.write("delete gone %s\n" % good)
            f.write("delete b1 %s" % cut)      # cut short
        for m in self.cluster.backends:
            with m.client() as c:
                self.assertEqual(c.set(good, b"old"), b"STORED")
                self.assertEqual(c.set(cut, b"kept"), b"STORED")
        self.mc.start()
        log = self.mc.log_text()
        self.assertIn("last line was cut short", log)
        self.assertIn("1 malformed lines skipped (the first at line 5)", log)
        self.assertIn("1 records of backend gone, which is not configured, "
                      "dropped", log)
        self.assertIn("4 records read, 3 backends wait for theirs", log)
        c = self.client()
        while set(self.states().values()) != {"UP"}:
            # Every backend waits for its deletes: no backend at first,
            # never the old value.
            c.send(b"get %s\r\n" % good.encode())
            self.assertIn(c.readline(),
                          (b"END", b"SERVER_ERROR no backend available"))
        self.assertIsNone(c.get(good))
        for m in self.cluster.backends:
            self.assertEqual(direct_values(m, [good, cut]), {cut: b"kept"})
        self.wait_compacted()


class SpoolPathTest(unittest.TestCase):
    """A spool that cannot be used is refused, by -t and at start."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mctest-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def config(self, value):
        path = os.path.join(self.tmp, "mcring.ini")
        with open(path, "w") as f:
            f.write(mctest.format_config(mctest.free_port(),
                                         [("b1", mctest.free_port())],
                                         {"delete_spool": value}))
        return path

    def refused(self, value, want):
        path = self.config(value)
        r = mctest.run_mcring(["-t", "-c", path])
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(want, r.stderr)
        if mctest.direct_mode():
            return
        r = mctest.run_mcring(["-c", path])
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(want, r.stderr)

    def test_missing_directory(self):
        bad = os.path.join(self.tmp, "no-such-dir", "delete.spool")
        self.refused(bad, "delete_spool %s: directory %s: No such file or "
                     "directory" % (bad, os.path.dirname(bad)))

    def test_relative_path(self):
        self.refused("delete.spool",
                     "delete_spool: expected an absolute file name")

    def test_not_a_spool(self):
        other = os.path.join(self.tmp, "precious.txt")
        with open(other, "w") as f:
            f.write("someone's data\n")
        self.refused(other, "not a delete spool")
        with open(other) as f:
            self.assertEqual(f.read(), "someone's data\n")

    def test_good_path(self):
        path = self.config(os.path.join(self.tmp, "delete.spool"))
        r = mctest.run_mcring(["-t", "-c", path])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp,
                                                     "delete.spool")))


if __name__ == "__main__":
    mctest.main()
