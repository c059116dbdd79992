#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Integration tests: live migration (paced moves, warm-up, never stale).

Real memcached backends behind one mcring with the admin API (threads = 2).
Keys are stored through mcring, then a backend is added, removed or
reweighted with a ramp through the admin API (or SIGHUP) while the test
reads every key, over and over:

  - a paced add (ramp=4): the weight steps 0 -> 1 in 4 steps (GET
    /migration shows each); every key stays a hit during the ramp and the
    warm-up (hits on the newcomer are copied there with add, flags and TTL
    kept); at the end each key read is on the owner `--route` names;
  - the same with warmup = 0 and ramp 0: the misses a move costs without
    warm-up (about 1/(n+1) of the keys), the figure to compare with;
  - a paced removal (DELETE ?ramp=): every key stays a hit, then the
    backend is gone;
  - pause stops the steps, resume goes on, rollback walks back and removes
    the newcomer, finish jumps to the end; a change while a move runs is
    refused (409, or a failed SIGHUP reload);
  - the newcomer going DOWN holds its move; UP again, it goes on;
  - stale reads: keys set to v1, a move started, v2 set through mcring:
    reads during the move, after it and after a rollback give v2 or a
    miss, never v1; the previous owner no longer holds v1;
  - gets, gat, gats and mg warm up too, with their own reply formats;
  - deletes during a move: afterwards a miss through mcring and the value
    is on no backend's previous owner; a delete sent just after a read
    whose copy is on its way is not undone by it (the copy goes over a
    placeholder, mg N then ms C<cas>), whether warm-up or the background
    copy moves the keys;
  - another mover's placeholder on the new owner is a miss for every read
    command (answered from the previous owner) and takes no copy; a real
    empty value is still a hit;
  - a key left where it never belonged during the move is deleted by the
    background copy, not copied over what its owner had.

The figures (hits per second of a move with and without warm-up) are
printed to stderr.
"""

import base64
import json
import os
import random
import signal
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest  # noqa: E402
import test_admin  # noqa: E402
from mctest import wait_for  # noqa: E402

SLOW = os.environ.get("MCTEST_SLOW") == "1"
NKEYS = 3000
BATCH = 100


def note(fmt, *args):
    sys.stderr.write("\n  " + (fmt % args) + "\n")
    sys.stderr.flush()


class MigrateTestCase(test_admin.AdminTestCase):
    PROXY = {"threads": 2}

    # ---- helpers

    def keys(self, n=NKEYS, prefix="mk"):
        return ["%s-%d" % (prefix, i) for i in range(n)]

    def preload(self, keys, value=b"v1", flags=5, exptime=0):
        """Stores keys through mcring, pipelined; value + key as data."""
        with self.mcring.client() as c:
            for i in range(0, len(keys), BATCH):
                chunk = keys[i:i + BATCH]
                data = b"".join(
                    b"set %s %d %d %d\r\n%s\r\n"
                    % (k.encode(), flags, exptime,
                       len(value) + len(k), value + k.encode())
                    for k in chunk)
                c.send(data)
                for _ in chunk:
                    self.assertEqual(c.readline(), b"STORED")

    def read_all(self, c, keys):
        """{key: value} of the keys that hit, by multi-gets of BATCH."""
        out = {}
        for i in range(0, len(keys), BATCH):
            for k, _flags, v, _cas in c.get_multi(keys[i:i + BATCH]):
                out[k] = v
        return out

    def migration(self):
        return self.ok("GET", "/migration")

    def wait_migration(self, state, timeout=20.0):
        got = {}

        def pred():
            got["m"] = self.migration()
            return got["m"]["state"] == state
        wait_for(pred, timeout * (2 if SLOW else 1),
                 "migration state %s (last: %r)" % (state, got.get("m")))
        return got["m"]

    def add_spare(self, ramp=None, weight=None):
        body = {"name": self.spare().name,
                "address": "127.0.0.1:%d" % self.spare().port}
        if ramp is not None:
            body["ramp"] = ramp
        if weight is not None:
            body["weight"] = weight
        return self.ok("POST", "/backends", body, status=201)

    def owners(self, keys, names):
        """{key: owner} of a config with these backends (name, port)."""
        lines = ["%s = 127.0.0.1:%d" % (n, self.backend(n).port)
                 for n in names]
        return {k: r[0] for k, r in self.expected_routes(lines, keys).items()}

    def direct_values(self, name, keys):
        with self.backend(name).client() as d:
            return self.read_all(d, keys)

    def where(self, keys):
        """For a failure message: which backends hold keys, the routes and
        the migration's state."""
        names = [m.name for m in self.memcached]
        return "held: %r; routes: %r; migration: %r" % (
            {k: [n for n in names if self.direct_values(n, [k])]
             for k in keys}, self.api_routes(keys), self.migration())


class PacedAddTest(MigrateTestCase):

    def test_ramp_add_keeps_every_key_a_hit(self):
        keys = self.keys()
        self.preload(keys)
        new_names = self.names() + [self.spare().name]
        after = self.owners(keys, new_names)
        moving = [k for k in keys if after[k] == self.spare().name]
        self.add_spare(ramp=4)
        m = self.migration()
        self.assertEqual(m["state"], "running")
        self.assertEqual(len(m["moves"]), 1)
        mv = m["moves"][0]
        self.assertEqual((mv["backend"], mv["from_weight"], mv["to_weight"],
                          mv["steps"], mv["ramp"]),
                         (self.spare().name, 0.0, 1.0, 4, 4))
        self.assertIsNotNone(m["expected_end"])
        steps_seen = set()
        curve = []
        with self.mcring.client() as c:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                m = self.migration()
                got = self.read_all(c, keys)
                curve.append((m["state"], len(got)))
                if len(got) != len(keys):
                    miss = [k for k in keys if k not in got][:5]
                    self.fail("misses during the move: %d; %s"
                              % (len(keys) - len(got), self.where(miss)))
                for k, v in got.items():
                    self.assertEqual(v, b"v1" + k.encode())
                if m["moves"]:
                    steps_seen.add(m["moves"][0]["step"])
                if m["state"] == "warmup":
                    break
            self.assertEqual(m["state"], "warmup")
            self.assertGreaterEqual(len(steps_seen), 2, steps_seen)
            # The warm-up window: every key still hits.
            got = self.read_all(c, keys)
            self.assertEqual(len(got), len(keys))
        note("ramp=4 add: %d passes over %d keys, hits per pass from %d "
             "to %d", len(curve), len(keys), min(h for _, h in curve),
             max(h for _, h in curve))
        self.assertAlmostEqual(m["moved_share"], len(moving) / len(keys),
                               delta=0.03)
        self.assertGreater(m["warmup"]["hits"], 0)
        self.assertEqual(m["warmup"]["misses"], 0)
        self.assertGreater(m["warmup"]["copies"], 0)
        # Every moved key read was copied to its new owner, flags kept.
        on_new = self.direct_values(self.spare().name, moving)
        self.assertEqual(sorted(on_new), sorted(moving))
        with self.spare().client() as d:
            d.send(b"mg %s f t v\r\n" % moving[0].encode())
            line = d.readline()
            self.assertTrue(line.startswith(b"VA "), line)
            self.assertIn(b" f5", line)
            self.assertIn(b" t-1", line)
            d.readline()
        # finish ends the warm-up window, once the copy's marks are gone.
        self.ok("POST", "/migration/finish")
        self.wait_migration("idle")
        st = mctest.proxy_stats(self.mcring.port)
        self.assertEqual(st["migration_state"], "idle")
        # Each moved key came by a warm-up read or the background copy.
        self.assertGreaterEqual(int(st["warmup_hits"]) +
                                int(st["migrate_copy_copied"]), len(moving))

    def test_ramp_zero_warms_up(self):
        keys = self.keys()
        self.preload(keys)
        self.add_spare()
        m = self.migration()
        self.assertEqual(m["state"], "warmup")
        self.assertEqual(m["moves"], [])
        self.assertGreaterEqual(m["warmup_seconds"], 60)
        with self.mcring.client() as c:
            got = self.read_all(c, keys)
        self.assertEqual(len(got), len(keys))

    def test_stats_lines(self):
        self.add_spare(ramp=3)
        st = mctest.proxy_stats(self.mcring.port)
        self.assertEqual(st["migration_state"], "running")
        self.assertEqual(st["migration_moves"], "1")
        self.assertEqual(st["migration_steps"], "3")
        for k in ("migrations", "migration_steps_done",
                  "migration_moved_share", "migration_expected_end",
                  "warmup_hits", "warmup_misses", "warmup_copies",
                  "warmup_copy_failures", "warmup_copies_dropped",
                  "migrate_deletes", "migrate_delete_failures"):
            self.assertIn(k, st)


class NoWarmupTest(MigrateTestCase):
    PROXY = {"threads": 2, "warmup": 0, "migrate_rate": 0}

    def test_dip_without_warmup(self):
        """The figure warm-up is measured against: ramp 0, warmup 0."""
        keys = self.keys()
        self.preload(keys)
        after = self.owners(keys, self.names() + [self.spare().name])
        moving = [k for k in keys if after[k] == self.spare().name]
        self.add_spare()
        self.assertEqual(self.migration()["state"], "idle")
        self.wait_state([self.spare().name], "UP")
        with self.mcring.client() as c:
            got = self.read_all(c, keys)
        missed = [k for k in keys if k not in got]
        note("ramp=0 warmup=0 add: %d of %d keys miss (%.3f; moved %.3f)",
             len(missed), len(keys), len(missed) / len(keys),
             len(moving) / len(keys))
        self.assertEqual(sorted(missed), sorted(moving))
        self.assertGreater(len(missed), len(keys) / 8)
        # --plan, from the two files, predicts that share.
        old = os.path.join(self.tmpdir, "plan-old.ini")
        new = os.path.join(self.tmpdir, "plan-new.ini")
        lines = [self.line(self.backend(n)) for n in self.names()]
        for path, ls in ((old, lines), (new, lines + [self.line(self.spare())])):
            with open(path, "w") as f:
                f.write("[backends]\n" + "".join(l + "\n" for l in ls))
        r = mctest.run_mcring(["--plan", old, new, "--json"])
        self.assertEqual(r.returncode, 0, r.stderr)
        plan = json.loads(r.stdout)
        self.assertTrue(plan["exact"])
        p = plan["moved_share"]
        sigma = (p * (1 - p) / len(keys)) ** 0.5
        self.assertLess(abs(len(missed) / len(keys) - p), 4 * sigma,
                        (len(missed), p))
        self.assertEqual({(e["from"], e["to"]) for e in plan["moves"]},
                         {(n, self.spare().name) for n in self.names()})


class ControlTest(MigrateTestCase):

    def step(self):
        return self.migration()["moves"][0]["step"]

    def test_pause_resume_finish(self):
        self.add_spare(ramp=20)
        wait_for(lambda: self.step() >= 1, 10, "a first step")
        m = self.ok("POST", "/migration/pause")
        self.assertEqual(m["state"], "paused")
        at = self.step()
        time.sleep(1.5)   # a step is due every second: none may come
        self.assertEqual(self.step(), at)
        m = self.ok("POST", "/migration/resume")
        self.assertEqual(m["state"], "running")
        wait_for(lambda: self.step() > at, 10, "a step after resume")
        m = self.ok("POST", "/migration/finish")
        self.assertEqual(m["state"], "warmup")
        self.assertEqual(self.backends()[self.spare().name]["weight"], 1.0)
        code, _, doc = self.api("POST", "/migration/pause")
        self.assertEqual(code, 409, doc)
        code, _, doc = self.api("POST", "/migration/nonsense")
        self.assertEqual(code, 404, doc)

    def test_rollback_removes_the_newcomer(self):
        keys = self.keys(1000)
        self.preload(keys)
        self.add_spare(ramp=6)
        wait_for(lambda: self.step() >= 2, 10, "two steps")
        m = self.ok("POST", "/migration/rollback")
        self.assertEqual(m["state"], "rollback")
        with self.mcring.client() as c:
            while self.migration()["state"] == "rollback":
                got = self.read_all(c, keys)
                self.assertEqual(len(got), len(keys))
        # The copy moves back what the move had moved, then it is over.
        self.wait_migration("idle", timeout=30)
        self.assertEqual(sorted(self.backends()), self.names())
        with self.mcring.client() as c:
            self.assertEqual(len(self.read_all(c, keys)), len(keys))

    def test_change_during_move_refused(self):
        self.add_spare(ramp=20)
        code, _, doc = self.api("DELETE", "/backends/%s" % self.names()[0])
        self.assertEqual(code, 409, doc)
        self.assertIn("migration is in progress", doc["error"])
        code, _, doc = self.api("PATCH", "/backends/%s" % self.names()[0],
                                {"weight": 2})
        self.assertEqual(code, 409, doc)
        # A reload of the file (which lacks the newcomer) fails too.
        self.assertEqual(mctest.sighup_reload(self.mcring), "failed")
        self.assertEqual(self.migration()["state"], "running")
        # /config shows where the move is heading.
        self.assertIn("%s = 127.0.0.1:%d" % (self.spare().name,
                                             self.spare().port),
                      self.config_text())
        self.ok("POST", "/migration/finish")
        self.ok("POST", "/migration/finish")
        self.wait_migration("idle")
        self.ok("DELETE", "/backends/%s" % self.names()[0])

    def test_bad_ramps_refused(self):
        for body in ({"ramp": -1}, {"ramp": "5"}, {"ramp": 1.5},
                     {"ramp": 604801}):
            b = {"name": "x", "address": "127.0.0.1:1"}
            b.update(body)
            self.assert_refused("POST", "/backends", b, 400, "bad ramp")
        self.assert_refused("DELETE", "/backends/%s?ramp=x" % self.names()[0],
                            None, 400, "ramp=SECONDS")
        self.assert_refused("DELETE", "/backends/%s?rmp=1" % self.names()[0],
                            None, 400, "ramp=SECONDS")

    def test_target_down_holds_the_move(self):
        self.add_spare(ramp=20)
        wait_for(lambda: self.step() >= 1, 10, "a first step")
        spare = self.spare()
        spare.stop()
        self.wait_state([spare.name], "DOWN")
        wait_for(lambda: self.migration()["moves"][0]["waiting"], 5,
                 "the move to wait")
        at = self.step()
        time.sleep(1.5)
        self.assertEqual(self.step(), at)
        spare.start()
        wait_for(lambda: self.step() > at, 15, "the move to go on")
        self.assertFalse(self.migration()["moves"][0]["waiting"])


class PacedRemoveTest(MigrateTestCase):

    def test_ramp_remove_keeps_every_key_a_hit(self):
        keys = self.keys()
        self.preload(keys)
        gone = self.names()[0]
        self.ok("DELETE", "/backends/%s?ramp=4" % gone)
        m = self.migration()
        self.assertEqual(m["state"], "running")
        self.assertEqual((m["moves"][0]["backend"], m["moves"][0]["to_weight"]),
                         (gone, 0.0))
        with self.mcring.client() as c:
            while self.migration()["state"] == "running":
                got = self.read_all(c, keys)
                if len(got) != len(keys):
                    miss = [k for k in keys if k not in got][:5]
                    self.fail("misses during a paced removal: %d; %s"
                              % (len(keys) - len(got), self.where(miss)))
        # Weight 0 now, serving warm-up reads until the window is over.
        self.assertEqual(self.backends()[gone]["weight"], 0.0)
        m = self.migration()
        self.assertEqual(m["state"], "warmup")
        self.assertGreater(m["warmup"]["hits"], 0)
        with self.mcring.client() as c:
            self.assertEqual(len(self.read_all(c, keys)), len(keys))
        self.ok("POST", "/migration/finish")
        self.wait_migration("idle")
        self.assertNotIn(gone, self.backends())

    def test_paced_reweight(self):
        name = self.names()[0]
        self.ok("PATCH", "/backends/%s" % name, {"weight": 2, "ramp": 2})
        m = self.migration()
        self.assertEqual(m["state"], "running")
        self.assertEqual((m["moves"][0]["from_weight"],
                          m["moves"][0]["to_weight"]), (1.0, 2.0))
        self.wait_migration("warmup")
        self.assertEqual(self.backends()[name]["weight"], 2.0)


class StaleTest(MigrateTestCase):

    def test_writes_during_move_never_read_stale(self):
        keys = self.keys(1000)
        self.preload(keys, value=b"v1")
        before = self.owners(keys, self.names())
        self.add_spare(ramp=4)
        wait_for(lambda: self.migration()["moves"][0]["step"] >= 2, 10,
                 "two steps")
        # Keys owned by the newcomer now: written there, deleted on their
        # previous owner.
        moved = [k for k, r in self.api_routes(keys).items()
                 if r[0] == self.spare().name]
        self.assertGreater(len(moved), 50)
        with self.mcring.client() as c:
            self.preload(keys, value=b"v2")
            while self.migration()["state"] == "running":
                for k, v in self.read_all(c, keys).items():
                    self.assertEqual(v, b"v2" + k.encode(), k)
        for k in moved:
            with self.backend(before[k]).client() as d:
                self.assertIsNone(d.get(k), k)
        m = self.migration()
        self.assertGreaterEqual(m["deletes"]["sent"], len(moved))
        self.assertEqual(m["deletes"]["failed"], 0)
        with self.mcring.client() as c:
            for k, v in self.read_all(c, keys).items():
                self.assertEqual(v, b"v2" + k.encode(), k)

    def test_rollback_never_read_stale(self):
        keys = self.keys(1000)
        self.preload(keys, value=b"v1")
        self.add_spare(ramp=6)
        wait_for(lambda: self.migration()["moves"][0]["step"] >= 2, 10,
                 "two steps")
        self.preload(keys, value=b"v2")
        self.ok("POST", "/migration/rollback")
        with self.mcring.client() as c:
            while self.migration()["state"] == "rollback":
                for k, v in self.read_all(c, keys).items():
                    self.assertEqual(v, b"v2" + k.encode(), k)
            for k, v in self.read_all(c, keys).items():
                self.assertEqual(v, b"v2" + k.encode(), k)

    def test_deletes_during_move(self):
        keys = self.keys(500)
        self.preload(keys)
        before = self.owners(keys, self.names())
        self.add_spare(ramp=4)
        with self.mcring.client() as c:
            self.read_all(c, keys[:250])      # some are copied first
            for k in keys:
                self.assertIn(c.delete(k), (b"DELETED", b"NOT_FOUND"))
            while self.migration()["state"] == "running":
                self.assertEqual(self.read_all(c, keys), {})
        for name in self.names() + [self.spare().name]:
            self.assertEqual(self.direct_values(name, keys), {}, name)
        self.assertTrue(before)


class CopyTest(MigrateTestCase):
    """The background copy: a change ends with every key on its owner
    only, and a change back serves nothing older than the last write."""
    PROXY = {"threads": 2, "warmup": 1}
    # A backend marked DOWN by a slow check (sanitizer builds) holds the
    # copy back: checks as patient as the data path.
    HEALTH = {"interval_ms": 100, "timeout_ms": 1000, "rise": 1, "fall": 5}

    def holders(self, keys):
        """{key: [backends holding it]}, read on every backend directly."""
        out = {k: [] for k in keys}
        for m in self.memcached:
            for k in self.direct_values(m.name, keys):
                out[k].append(m.name)
        return out

    def wait_copied(self):
        m = self.wait_migration("idle", timeout=60)
        self.assertGreaterEqual(m["copy"]["passes"], 1)
        self.assertEqual(m["copy"]["failed"], 0)
        return m

    def test_every_key_ends_on_its_owner_only(self):
        keys = self.keys(2000)
        self.preload(keys, value=b"v1")
        names = self.names() + [self.spare().name]
        after = self.owners(keys, names)
        self.add_spare(ramp=2)
        # Half the keys written meanwhile, through mcring.
        self.preload(keys[::2], value=b"v2")
        m = self.wait_copied()
        self.assertGreater(m["copy"]["copied"], 0)
        held = self.holders(keys)
        bad = {k: v for k, v in held.items() if v != [after[k]]}
        if bad:
            k = sorted(bad)[0]
            self.fail("%d keys not only on their owner, e.g. %s on %r "
                      "(owner %s), values %r; %r" % (
                          len(bad), k, bad[k], after[k],
                          [self.direct_values(n, [k]) for n in bad[k]], m))
        # The newcomer goes again, at once: nothing older than the last
        # write is ever read, during the move back or after it.
        self.ok("DELETE", "/backends/%s" % self.spare().name)
        want = {k: (b"v2" if i % 2 == 0 else b"v1") + k.encode()
                for i, k in enumerate(keys)}
        with self.mcring.client() as c:
            while self.migration()["state"] != "idle":
                for k, v in self.read_all(c, keys).items():
                    self.assertEqual(v, want[k], k)
            got = self.read_all(c, keys)
        self.assertEqual(got, want)
        before = self.owners(keys, self.names())
        held = self.holders(keys)
        bad = {k: v for k, v in held.items() if v != [before[k]]}
        detail = []
        for k in sorted(bad)[:2]:
            for n in bad[k]:
                with self.backend(n).client() as d:
                    d.send(b"mg %s c t f s\r\n" % k.encode())
                    detail.append((k, n, d.readline()))
        self.assertEqual(len(bad), 0, "%d keys, e.g. %r %r; %r" % (
            len(bad), sorted(bad.items())[:3], detail, self.migration()))
        st = mctest.proxy_stats(self.mcring.port)
        self.assertGreater(int(st["migrate_copy_copied"]), 0)
        self.assertEqual(st["migrate_copy_running"], "0")

    def test_deleted_keys_stay_deleted(self):
        keys = self.keys(1000)
        self.preload(keys)
        self.add_spare(ramp=2)
        with self.mcring.client() as c:
            for k in keys[::2]:
                self.assertIn(c.delete(k), (b"DELETED", b"NOT_FOUND"))
        self.wait_copied()
        held = self.holders(keys[::2])
        self.assertEqual({k: v for k, v in held.items() if v}, {})
        with self.mcring.client() as c:
            got = self.read_all(c, keys)
        self.assertEqual(sorted(got), sorted(keys[1::2]))


    def test_binary_keys_are_moved(self):
        """Binary keys (meta protocol, flag b) are moved by the background
        copy too, named in base64."""
        raw = [b"bin key %d\x00\xff" % i for i in range(300)]
        names = [base64.b64encode(k) for k in raw]
        with self.mcring.client() as c:
            for i, n in enumerate(names):
                c.send(b"ms %s 4 b F3\r\nv%03d\r\n" % (n, i % 1000))
                self.assertEqual(c.readline(), b"HD")
        self.add_spare(ramp=0)
        m = self.wait_copied()
        self.assertGreater(m["copy"]["copied"], 0)
        held = {n: [] for n in names}
        for b in self.memcached:
            with b.client() as d:
                for n in names:
                    d.send(b"mg %s b v\r\n" % n)
                    if d.readline().startswith(b"VA"):
                        d.readline()
                        held[n].append(b.name)
        self.assertEqual({n: v for n, v in held.items() if len(v) != 1}, {})
        # Moved there by the copy alone: nothing was read meanwhile.
        self.assertGreater(sum(v == [self.spare().name]
                               for v in held.values()), 30)
        with self.mcring.client() as c:
            for i, n in enumerate(names):
                c.send(b"mg %s b v f\r\n" % n)
                self.assertEqual(c.readline(), b"VA 4 f3", n)
                self.assertEqual(c.readline(), b"v%03d" % (i % 1000))


    def test_orphans_are_deleted_not_copied(self):
        """A key held where it never belonged during the move is deleted,
        not copied: it may be older than what its owner had since."""
        keys = self.keys(300)
        self.preload(keys)
        names = self.names()
        before = self.owners(keys + ["orph-%d" % i for i in range(50)], names)
        after = self.owners(list(before), names + [self.spare().name])
        # Keys stored on a backend that owns them neither before nor after
        # (as a write to a fallback while the owner was DOWN leaves them),
        # deleted since on their owner.
        orphans = {}
        for k in before:
            if k.startswith("orph-"):
                for n in names:
                    if n not in (before[k], after[k]):
                        orphans[k] = n
                        break
        self.assertGreater(len(orphans), 10)
        for k, n in orphans.items():
            with self.backend(n).client() as d:
                self.assertEqual(d.set(k, b"old"), b"STORED")
        self.add_spare(ramp=0)
        m = self.wait_copied()
        self.assertGreaterEqual(m["copy"]["orphans"], len(orphans))
        self.assertGreater(m["copy"]["copied"], 0)
        held = self.holders(list(orphans))
        self.assertEqual({k: v for k, v in held.items() if v}, {})
        with self.mcring.client() as c:
            self.assertEqual(self.read_all(c, list(orphans)), {})
            got = self.read_all(c, keys)
        self.assertEqual(sorted(got), sorted(keys))
        st = mctest.proxy_stats(self.mcring.port)
        self.assertGreaterEqual(int(st["migrate_copy_orphans"]),
                                len(orphans))


class FleetTest(MigrateTestCase):
    """The issue's scenario at CI scale (bench/migrate_hits.py runs it at
    200k keys): 10 backends, 20k keys, an 11th added with a ramp, then
    removed with one; every pass over every key hits, and afterwards every
    key is on the owner --route names, only there."""
    NBACKENDS = 10
    PROXY = {"threads": 2, "warmup": 2}
    HEALTH = CopyTest.HEALTH

    def passes(self, c, keys, until):
        """Reads every key over and over until the migration is idle;
        the hit ratio of each pass."""
        ratios = []
        deadline = time.monotonic() + 120 * (2 if SLOW else 1)
        while True:
            state = self.migration()["state"]
            got = self.read_all(c, keys)
            ratios.append(len(got) / len(keys))
            for k, v in got.items():
                self.assertEqual(v, b"v1" + k.encode(), k)
            if state == until or time.monotonic() > deadline:
                return ratios

    def only_on_owners(self, keys, names):
        owner = self.owners(keys, names)
        held = {k: [] for k in keys}
        for m in self.memcached:
            for k in self.direct_values(m.name, keys):
                held[k].append(m.name)
        bad = {k: v for k, v in held.items() if v != [owner[k]]}
        self.assertEqual(len(bad), 0, "e.g. %r" % sorted(bad.items())[:3])

    def test_add_and_remove_at_scale(self):
        keys = self.keys(20000)
        self.preload(keys)
        with self.mcring.client() as c:
            self.add_spare(ramp=5)
            add = self.passes(c, keys, "idle")
            self.only_on_owners(keys, self.names() + [self.spare().name])
            self.ok("DELETE", "/backends/%s?ramp=5" % self.spare().name)
            remove = self.passes(c, keys, "idle")
        self.only_on_owners(keys, self.names())
        note("10 backends + 1, 20000 keys, ramp 5: %d passes adding, worst "
             "%.4f; %d passes removing, worst %.4f", len(add), min(add),
             len(remove), min(remove))
        self.assertGreaterEqual(min(add), 0.99)
        self.assertGreaterEqual(min(remove), 0.99)
        self.assertGreater(len(add), 5)


class PlaceholderTest(MigrateTestCase):
    """A copy fills an empty placeholder (mg N) on the new owner: while
    one is there, nobody reads it as a value, and no other copy lands on
    it. Here the placeholders are another mover's, made directly."""
    PROXY = {"threads": 2, "migrate_rate": 0}

    def test_placeholders_are_misses(self):
        keys = self.keys(300, "ph")
        after = self.owners(keys, self.names() + [self.spare().name])
        ks = [k for k in keys if after[k] == self.spare().name][:8]
        self.assertEqual(len(ks), 8)
        with self.mcring.client() as c:
            for k in ks[:6]:
                self.assertEqual(c.set(k, b"val", flags=7), b"STORED")
            self.assertEqual(c.set(ks[6], b""), b"STORED")
        self.add_spare()
        self.wait_state([self.spare().name], "UP")
        with self.spare().client() as d:
            for k in ks[:5]:
                d.send(b"mg %s c N30\r\n" % k.encode())
                self.assertTrue(d.readline().endswith(b" W"))
        with self.mcring.client() as c:
            c.send(b"get %s\r\n" % ks[0].encode())
            self.assertEqual(c.readline(), b"VALUE %s 7 3" % ks[0].encode())
            self.assertEqual(c.readline(), b"val")
            self.assertEqual(c.readline(), b"END")
            c.send(b"gets %s\r\n" % ks[1].encode())
            self.assertEqual(c.readline().split()[:4],
                             [b"VALUE", ks[1].encode(), b"7", b"3"])
            self.assertEqual(c.readline(), b"val")
            self.assertEqual(c.readline(), b"END")
            got = c.get_multi([ks[2], "ph-nosuch", ks[3], ks[5], ks[6]])
            self.assertEqual([(k, f, v) for k, f, v, _ in got],
                             [(ks[2], 7, b"val"), (ks[3], 7, b"val"),
                              (ks[5], 7, b"val"), (ks[6], 0, b"")])
            c.send(b"mg %s v f O12 k\r\n" % ks[4].encode())
            self.assertEqual(c.readline(),
                             b"VA 3 f7 O12 k%s" % ks[4].encode())
            self.assertEqual(c.readline(), b"val")
            c.send(b"mg %s s q\r\nmn\r\n" % ks[4].encode())
            self.assertEqual(c.readline(), b"HD s3")
            self.assertEqual(c.readline(), b"MN")
            # A real empty value on the new owner is a hit.
            self.assertEqual(c.set(ks[7], b""), b"STORED")
            self.assertEqual([(k, v) for k, _f, v, _ in c.get_multi([ks[7]])],
                             [(ks[7], b"")])
        # No copy landed on the placeholders: another mover fills them.
        with self.spare().client() as d:
            for k in ks[:5]:
                d.send(b"mg %s v\r\n" % k.encode())
                self.assertEqual(d.readline(), b"VA 0 Z", k)
                self.assertEqual(d.readline(), b"")
        wait_for(lambda: self.migration()["warmup"]["copy_failures"] >= 5, 5,
                 "the copies given up (%r)" % self.migration()["warmup"])


class RebalanceTest(MigrateTestCase):
    """GET /rebalance: requests per backend against its weight; POST: the
    weights that even them out, as a paced reweight."""

    def test_hot_backend_gets_less_weight(self):
        code, _, doc = self.api("POST", "/rebalance")
        self.assertEqual(code, 409, doc)
        self.assertIn("too few requests", doc["error"])
        keys = self.keys(300, "rb")
        owners = self.owners(keys, self.names())
        hot = [k for k in keys if owners[k] == self.names()[0]]
        cold = [k for k in keys if owners[k] != self.names()[0]]
        with self.mcring.client() as c:
            for _ in range(20):
                c.get_multi(hot[:50])
                for k in hot[:50]:
                    c.get(k)
                c.get(cold[0])
        rep = self.ok("GET", "/rebalance")
        self.assertTrue(rep["proposal"], rep)
        self.assertGreaterEqual(rep["requests"], 1000)
        by = {b["name"]: b for b in rep["backends"]}
        b1 = by[self.names()[0]]
        self.assertGreater(b1["request_share"], 0.9)
        self.assertGreater(b1["load"], 2.5)
        self.assertAlmostEqual(sum(b["request_share"] for b in by.values()),
                               1.0, delta=1e-6)
        self.assertLess(b1["proposed_weight"], 1.0)
        for n in self.names()[1:]:
            self.assertGreater(by[n]["proposed_weight"], 1.0)
        self.assertAlmostEqual(sum(b["proposed_weight"]
                                   for b in by.values()), 3.0, delta=0.01)
        self.assertGreater(rep["moved_share"], 0)
        # At most 10% of the keys an hour (the default).
        self.assertAlmostEqual(rep["ramp"], 3600 * rep["moved_share"] / 0.1,
                               delta=1.5)
        r = test_admin.CtlTest.ctl(self, "rebalance")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("the proposal moves", r.stdout)
        doc = self.ok("POST", "/rebalance")
        m = doc["migration"]
        self.assertEqual(m["state"], "running")
        self.assertEqual(m["why"], "rebalance")
        moves = {mv["backend"]: mv for mv in m["moves"]}
        self.assertEqual(moves[self.names()[0]]["to_weight"],
                         b1["proposed_weight"])
        self.assertEqual(moves[self.names()[0]]["ramp"], rep["ramp"])
        # Pausable and reversible like any move.
        self.ok("POST", "/migration/rollback")
        self.wait_migration("idle", timeout=30)
        self.assertEqual(self.backends()[self.names()[0]]["weight"], 1.0)


class CtlTest(MigrateTestCase):
    """`mcring ctl`: add, remove and weight with --ramp, migration."""

    ctl = test_admin.CtlTest.ctl

    def test_ctl_migration(self):
        spare = self.spare()
        r = self.ctl("add", spare.name, "127.0.0.1:%d" % spare.port,
                     "--ramp", "20")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.ctl("migration")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("state running (admin API)", r.stdout)
        self.assertIn("%s weight 0 -> 1" % spare.name, r.stdout)
        self.assertIn("ramp 20 s", r.stdout)
        r = self.ctl("migration", "pause", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["state"], "paused")
        r = self.ctl("remove", self.names()[0])
        self.assertEqual(r.returncode, 1)
        self.assertIn("migration is in progress", r.stderr)
        r = self.ctl("migration", "finish")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("state warmup", r.stdout)
        self.ctl("migration", "finish")
        self.wait_migration("idle")
        r = self.ctl("remove", self.names()[0], "--ramp=2")
        self.assertEqual(r.returncode, 0, r.stderr)
        m = self.migration()
        self.assertEqual((m["moves"][0]["backend"], m["moves"][0]["ramp"]),
                         (self.names()[0], 2))
        self.wait_migration("warmup")
        self.ctl("migration", "finish")
        self.wait_migration("idle")
        r = self.ctl("weight", self.names()[1], "3", "--ramp", "2")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.migration()["moves"][0]["to_weight"], 3.0)
        for bad in (["migration", "sideways"], ["remove", "b2", "--ramp"],
                    ["remove", "b2", "--ramp", "-1"]):
            r = self.ctl(*bad)
            self.assertEqual(r.returncode, 2, bad)


class RaceTest(MigrateTestCase):
    """Deletes and writes while other clients keep reading the same keys,
    and the new owner dying in the middle of a move. Here the keys are
    moved by warm-up reads and their copies only."""
    PROXY = {"threads": 2, "migrate_rate": 0}

    def assert_moved(self, m):
        self.assertGreater(m["warmup"]["hits"], 0)

    def readers(self, keys, stop, seen, n=3):
        def run():
            with self.mcring.client() as c:
                while not stop.is_set():
                    for k, v in self.read_all(c, keys).items():
                        seen.setdefault(k, set()).add(v)
        ts = [threading.Thread(target=run) for _ in range(n)]
        for t in ts:
            t.start()
        return ts

    def test_deletes_racing_warmup_reads(self):
        keys = self.keys(1500)
        self.preload(keys)
        self.add_spare(ramp=3)
        wait_for(lambda: self.migration()["moves"][0]["step"] >= 1, 10,
                 "a first step")
        stop, hits = threading.Event(), []
        done = {}

        def read():
            # Each hit with the time its multi-get was sent.
            with self.mcring.client() as c:
                while not stop.is_set():
                    for i in range(0, len(keys), BATCH):
                        t = time.monotonic()
                        for k, _f, _v, _c in c.get_multi(keys[i:i + BATCH]):
                            hits.append((k, t))
        ts = [threading.Thread(target=read) for _ in range(3)]
        for t in ts:
            t.start()
        try:
            with self.mcring.client() as c:
                for k in keys:
                    self.assertIn(c.delete(k), (b"DELETED", b"NOT_FOUND"))
                    done[k] = time.monotonic()
            with self.mcring.client() as c:
                # Once the deletes are answered, nothing comes back.
                for _ in range(3):
                    self.assertEqual(self.read_all(c, keys), {})
        finally:
            stop.set()
            for t in ts:
                t.join()
        # No read sent after a key's delete was answered found it, though
        # warm-up reads and their copies were under way for that key.
        late = [(k, t - done[k]) for k, t in hits if t > done[k]]
        self.assertEqual(late[:5], [], "%d reads after the delete hit" %
                         len(late))
        self.assertGreater(len(hits), 0)
        self.assert_moved(self.migration())
        self.wait_migration("warmup")
        self.ok("POST", "/migration/finish")
        self.wait_migration("idle")
        for m in self.memcached:
            self.assertEqual(self.direct_values(m.name, keys), {}, m.name)

    def test_new_owner_killed_during_move(self):
        keys = self.keys(1000)
        self.preload(keys, value=b"v1")
        self.add_spare(ramp=20)
        wait_for(lambda: self.migration()["moves"][0]["step"] >= 3, 15,
                 "three steps")
        self.preload(keys, value=b"v2")
        stop, seen = threading.Event(), {}
        ts = self.readers(keys, stop, seen)
        try:
            self.spare().stop()
            self.wait_state([self.spare().name], "DOWN")
            wait_for(lambda: self.migration()["moves"][0]["waiting"], 5,
                     "the move to wait")
            # Written while the new owner is down: on fallbacks.
            self.preload(keys[::2], value=b"v3")
            self.spare().start()
            self.wait_state([self.spare().name], "UP", timeout=20)
            wait_for(lambda: not self.migration()["moves"][0]["waiting"], 10,
                     "the move to go on")
            with self.mcring.client() as c:
                got = self.read_all(c, keys)
        finally:
            stop.set()
            for t in ts:
                t.join()
        for i, k in enumerate(keys):
            last = (b"v3" if i % 2 == 0 else b"v2") + k.encode()
            if k in got:
                self.assertEqual(got[k], last, k)
        for k, vs in seen.items():
            self.assertNotIn(b"v1" + k.encode(), vs, k)
        self.ok("POST", "/migration/finish")


class DeleteRaceTest(MigrateTestCase):
    """A delete sent just after a read whose warm-up copy is on its way
    (each with its own jitter, so that some land in the copy's window):
    once the delete is answered, the key is a miss, also on a connection
    of another worker."""
    PROXY = {"threads": 2, "migrate_rate": 0}

    def test_delete_just_after_a_warmup_read(self):
        keys = self.keys(4000, "dr")
        after = self.owners(keys, self.names() + [self.spare().name])
        moved = [k for k in keys if after[k] == self.spare().name]
        self.preload(moved)
        self.add_spare()
        self.wait_state([self.spare().name], "UP")
        late = []
        rnd = random.Random(7)
        with self.mcring.client() as c, self.mcring.client() as r:
            for k in moved:
                c.send(b"get %s\r\n" % k.encode())
                time.sleep(rnd.random() * 0.0004)
                c.send(b"delete %s\r\n" % k.encode())
                line = c.readline()
                if line.startswith(b"VALUE"):
                    c.readline()
                    line = c.readline()
                self.assertEqual(line, b"END")
                self.assertIn(c.readline(), (b"DELETED", b"NOT_FOUND"))
                for conn in (c, r, c):
                    if conn.get(k) is not None:
                        late.append(k)
        m = self.migration()
        self.assertEqual(late, [], "%d of %d keys read after their delete; "
                         "%r" % (len(late), len(moved), m["warmup"]))
        self.assertGreater(m["warmup"]["hits"], len(moved) // 4)
        held = {n: self.direct_values(n, moved)
                for n in self.names() + [self.spare().name]}
        self.assertEqual({n: sorted(v) for n, v in held.items() if v}, {})


class CopierRaceTest(RaceTest):
    """The same, the keys moved by the background copy too, at a pace that
    keeps it busy while the keys are deleted."""
    PROXY = {"threads": 2, "migrate_rate": 1500}
    test_new_owner_killed_during_move = None

    def assert_moved(self, m):
        self.assertGreater(m["copy"]["copied"], 0)


class CommandsTest(MigrateTestCase):
    """Every read command warms up, in its own reply format. (The
    background copy is off: it would race the warm-up copies these check,
    and a copy it makes first carries the exptime a gat has not yet set on
    the previous owner.)"""
    PROXY = {"threads": 2, "migrate_rate": 0}

    def moved_key(self):
        keys = self.keys(200, "cmd")
        after = self.owners(keys, self.names() + [self.spare().name])
        return [k for k in keys if after[k] == self.spare().name]

    def test_gets_gat_gats_mg(self):
        ks = self.moved_key()
        self.assertGreaterEqual(len(ks), 5)
        with self.mcring.client() as c:
            for k in ks:
                self.assertEqual(c.set(k, b"val", flags=7, exptime=1000),
                                 b"STORED")
        self.add_spare()
        self.wait_state([self.spare().name], "UP")
        with self.mcring.client() as c:
            # gets: VALUE with a cas unique
            c.send(b"gets %s\r\n" % ks[0].encode())
            line = c.readline()
            parts = line.split()
            self.assertEqual(parts[:4], [b"VALUE", ks[0].encode(), b"7",
                                         b"3"], line)
            self.assertEqual(len(parts), 5)
            self.assertEqual(c.readline(), b"val")
            self.assertEqual(c.readline(), b"END")
            # gat: the copy gets the new exptime
            c.send(b"gat 500 %s\r\n" % ks[1].encode())
            self.assertEqual(c.readline(),
                             b"VALUE %s 7 3" % ks[1].encode())
            self.assertEqual(c.readline(), b"val")
            self.assertEqual(c.readline(), b"END")
            # gats of two moved keys and a missing one
            c.send(b"gats 500 %s nosuch %s\r\n" % (ks[2].encode(),
                                                   ks[3].encode()))
            l1 = c.readline().split()
            self.assertEqual(l1[:4], [b"VALUE", ks[2].encode(), b"7", b"3"])
            self.assertEqual(c.readline(), b"val")
            l2 = c.readline().split()
            self.assertEqual(l2[:4], [b"VALUE", ks[3].encode(), b"7", b"3"])
            self.assertEqual(c.readline(), b"val")
            self.assertEqual(c.readline(), b"END")
            # mg with the client's own flags, and quiet
            c.send(b"mg %s v f k\r\n" % ks[4].encode())
            self.assertEqual(c.readline(),
                             b"VA 3 f7 k%s" % ks[4].encode())
            self.assertEqual(c.readline(), b"val")
            c.send(b"mg nosuch-key v q\r\nmn\r\n")
            self.assertEqual(c.readline(), b"MN")
            c.send(b"mg %s s q\r\nmn\r\n" % ks[4].encode())
            self.assertEqual(c.readline(), b"HD s3")
            self.assertEqual(c.readline(), b"MN")
        wait_for(lambda: len(self.direct_values(self.spare().name,
                                                ks[:5])) == 5, 5,
                 "the copies on the new owner (%r of %r; %r)" % (
                     sorted(self.direct_values(self.spare().name, ks[:5])),
                     ks[:5], self.migration()["warmup"]))
        with self.spare().client() as d:
            d.send(b"mg %s t\r\n" % ks[1].encode())
            line = d.readline()
            ttl = int(line.split()[1][1:])
            self.assertTrue(400 < ttl <= 500, line)
            d.send(b"mg %s t\r\n" % ks[0].encode())
            ttl = int(d.readline().split()[1][1:])
            self.assertTrue(900 < ttl <= 1000, ttl)


class BigValueMoveTest(MigrateTestCase):
    """Big values ([proxy] big_value_split) move with their chunks: a
    chunk's key is placed as its value's key is, so the background copy
    takes both to the new owner. During the move each is read whole or is
    a miss, never torn; after it, whole, from the new owner only."""
    PROXY = {"threads": 2, "warmup": 1, "big_value_split": 100000,
             "max_value_size": 8 << 20}
    HEALTH = CopyTest.HEALTH

    def test_big_values_move_whole(self):
        keys = self.keys(24, prefix="bigmv")
        rng = random.Random(7)
        vals = {k: rng.randbytes(250000) for k in keys}
        with self.mcring.client(timeout=20.0) as c:
            for k in keys:
                self.assertEqual(c.set(k, vals[k], flags=3), b"STORED")
        after = self.owners(keys, self.names() + [self.spare().name])
        moving = [k for k in keys if after[k] == self.spare().name]
        self.assertGreater(len(moving), 0)
        self.add_spare(ramp=2)
        rounds = 0
        with self.mcring.client(timeout=20.0) as c:
            while self.migration()["state"] != "idle":
                rounds += 1
                for k, fl, v, _ in c.get_multi(keys):
                    self.assertEqual(fl, 3, k)
                    self.assertTrue(v == vals[k], "%s: torn value" % k)
            m = self.migration()
            self.assertGreater(rounds, 0)
            self.assertEqual(m["copy"]["failed"], 0)
            got = {k: v for k, _fl, v, _ in c.get_multi(keys)}
        self.assertEqual(sorted(got), sorted(keys))
        for k in keys:
            self.assertTrue(got[k] == vals[k], k)
        # The moved ones, index and chunks, are on the newcomer only.
        with self.spare().client() as d:
            for k in moving:
                v = d.get(k)
                self.assertTrue(v is not None and
                                v.startswith(b"\0mcring-big 1 "), k)
                token = v.split()[2].decode()
                for i in range(3):
                    self.assertIsNotNone(
                        d.get("%s:mcbig:%s:%03x" % (k, token, i)), (k, i))
        for n in self.names():
            self.assertEqual(self.direct_values(n, moving), {}, n)


if __name__ == "__main__":
    mctest.main()
