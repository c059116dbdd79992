# SPDX-License-Identifier: BSD-3-Clause
"""Integration tests: shadow traffic ([pool NAME] shadow = POOL,
shadow_share = SHARE).

Real memcached backends: a pool "live" (b1 b2) that every key routes to,
shadowed by a pool "trial" (b3 b4 b5).  What the clients get is what they
would get without the shadow, byte for byte; each shadowed key is written,
read and deleted on its owner in the trial pool (as `mcring --route` of
the trial pool alone says), the replies counted in shadow_* stats; a share
picks the same keys every time and spreads them over the whole trial
pool; a hung trial pool costs the clients nothing, and copies in flight
are bounded; without a shadow nothing goes to the trial pool; config
errors are refused with FILE:LINE.
"""

import http.client
import json
import os
import signal
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest  # noqa: E402
from mctest import wait_for  # noqa: E402

LIVE = ["b1", "b2"]
TRIAL = ["b3", "b4", "b5"]
SHADOW_QUEUE = 4096       # src/shadow.h
SHADOW_BYTES = 16 << 20


def shadow_text(cluster, share=None, admin_port=None, shadow=True,
                trial_extra=""):
    text = ""
    if admin_port is not None:
        text += "[admin]\nlisten = 127.0.0.1:%d\n\n" % admin_port
    text += "[pool live]\n"
    if shadow:
        text += "shadow = trial\n"
    if share is not None:
        text += "shadow_share = %s\n" % share
    text += cluster.pool_lines(LIVE)
    text += "\n[pool trial]\n" + trial_extra + cluster.pool_lines(TRIAL)
    text += "\n[routes]\n* = live\n"
    return text


def counters(port):
    st = mctest.proxy_stats(port)
    return {k: int(v) for k, v in st.items() if k.startswith("shadow_")}


def delta(before, after):
    return {k: after[k] - before.get(k, 0) for k in after}


class ShadowCase(mctest.ClusterTestCase):
    NEEDS_MCRING = True
    SHARE = None
    PROXY = {}
    TRIAL_EXTRA = ""

    @classmethod
    def setUpClass(cls):
        if mctest.direct_mode():
            raise unittest.SkipTest("needs mcring (MCTEST_DIRECT=1)")
        cls.admin_port = mctest.free_port()
        cls.CLUSTER_ARGS = {
            "nbackends": 5, "proxy": dict(cls.PROXY),
            "pools": ([], lambda c: shadow_text(
                c, cls.SHARE, cls.admin_port,
                trial_extra=cls.TRIAL_EXTRA))}
        super().setUpClass()
        # The trial pool's own ring: the same names, so the same points.
        cls.trial_cfg = os.path.join(cls.cluster.tmpdir, "trial.ini")
        with open(cls.trial_cfg, "w") as f:
            f.write(mctest.format_config(
                1, [(n, cls.cluster.backend(n).port) for n in TRIAL]))

    def trial_owner(self, keys):
        return {k: v[0] for k, v in
                mctest.route_file(self.trial_cfg, keys).items()}

    def live_owner(self, keys):
        return {k: v[1][0] for k, v in
                mctest.route_file(self.cluster.mcring.config_path, keys,
                                  pools=True).items()}

    def holders(self, keys, names):
        got = {k: set() for k in keys}
        for n in names:
            with self.cluster.backend(n).client(timeout=10.0) as bc:
                for i in range(0, len(keys), 100):
                    for v in bc.get_multi(keys[i:i + 100]):
                        got[v[0]].add(n)
        return got

    def settled(self):
        """The counters once every copy sent so far is answered or
        failed (copies of earlier commands may still be in flight)."""
        def done():
            st = counters(self.cluster.port)
            return (st["shadow_requests"] == st["shadow_hits"] +
                    st["shadow_misses"] + st["shadow_errors"]) and st
        return wait_for(done, 30.0, "every copy answered")

    def wait_counted(self, before, n, what="shadow replies"):
        """Waits until n more copies have been answered or failed."""
        def done():
            d = delta(before, counters(self.cluster.port))
            return (d["shadow_hits"] + d["shadow_misses"] +
                    d["shadow_errors"] >= n) and d
        return wait_for(done, 10.0, what)


class ShadowTest(ShadowCase):
    """shadow = trial, every key (shadow_share's default is 1)."""

    def test_writes_land_on_the_trial_owner_too(self):
        keys = [self.key(str(i)) for i in range(120)]
        c = self.client(timeout=10.0)
        before = self.settled()
        c.send(b"".join(b"set %s 5 0 3\r\nabc\r\n" % k.encode()
                        for k in keys))
        for _ in keys:
            self.assertEqual(c.readline(), b"STORED")
        d = self.wait_counted(before, len(keys))
        self.assertEqual(d["shadow_requests"], len(keys))
        self.assertEqual(d["shadow_hits"], len(keys))
        self.assertEqual(d["shadow_errors"], 0)
        self.assertEqual(d["shadow_dropped"], 0)
        live = self.live_owner(keys)
        trial = self.trial_owner(keys)
        held = self.holders(keys, LIVE + TRIAL)
        for k in keys:
            self.assertEqual(held[k], {live[k], trial[k]}, k)
        # The shadow pool is one ring: all of it gets keys.
        self.assertEqual(set(trial.values()), set(TRIAL))

    def test_reads_answered_by_the_live_pool_and_counted(self):
        keys = [self.key(str(i)) for i in range(10)]
        c = self.client()
        for k in keys[:6]:
            self.assertEqual(c.set(k, b"v-" + k.encode(), flags=3),
                             b"STORED")
        before = self.settled()
        # Keys 0..5 exist; the trial loses 4 and 5, so those miss there.
        trial = self.trial_owner(keys)
        for k in keys[4:6]:
            with self.cluster.backend(trial[k]).client() as bc:
                self.assertEqual(bc.delete(k), b"DELETED")
        c.send(b"get " + b" ".join(k.encode() for k in keys) + b"\r\n")
        want = b"".join(b"VALUE %s 3 %d\r\nv-%s\r\n"
                        % (k.encode(), len(k) + 2, k.encode())
                        for k in keys[:6]) + b"END\r\n"
        self.assertEqual(c.read_until(), want)
        d = self.wait_counted(before, 10)
        self.assertEqual(d["shadow_requests"], 10)
        self.assertEqual(d["shadow_hits"], 4)
        self.assertEqual(d["shadow_misses"], 6)
        self.assertGreater(d["shadow_latency_us"], 0)

    def test_every_key_command_is_copied(self):
        k = self.key()
        c = self.client()
        before = self.settled()
        replies = [
            (b"set %s 0 0 1 noreply\r\n1\r\n", None),
            (b"incr %s 5\r\n", b"6"),
            (b"decr %s 2\r\n", b"4"),
            (b"touch %s 100\r\n", b"TOUCHED"),
            (b"append %s 0 0 1\r\nx\r\n", b"STORED"),
            (b"gets %s\r\n", None),
            (b"delete %s\r\n", b"DELETED"),
            (b"add %s 0 0 1\r\ny\r\n", b"STORED"),
            (b"replace %s 0 0 1\r\nz\r\n", b"STORED"),
            (b"prepend %s 0 0 1\r\nw\r\n", b"STORED"),
            (b"gat 0 %s\r\n", None),
        ]
        for line, want in replies:
            c.send(line.replace(b"%s", k.encode()))
            if want is not None:
                self.assertEqual(c.readline(), want, line)
            elif line.startswith(b"gets") or line.startswith(b"gat"):
                self.assertEqual(c.readline().split()[:2],
                                 [b"VALUE", k.encode()])
                c.readline()
                self.assertEqual(c.readline(), b"END")
        d = self.wait_counted(before, len(replies))
        self.assertEqual(d["shadow_requests"], len(replies))
        self.assertEqual(d["shadow_hits"], len(replies))
        trial = self.trial_owner([k])[k]
        with self.cluster.backend(trial).client() as bc:
            self.assertEqual(bc.get(k), b"wz")

    def test_meta_commands_are_copied_without_quiet(self):
        k = self.key()
        c = self.client()
        before = self.settled()
        # Quiet to the client: it sees nothing but the mn's MN.
        c.send(b"ms %s 2 T0 F7 q\r\nhi\r\nmg %s v q\r\nmd %s q\r\n"
               b"mg %s v q\r\nmn\r\n"
               % (k.encode(), k.encode(), k.encode(), k.encode()))
        self.assertEqual(c.readline(), b"VA 2")
        self.assertEqual(c.readline(), b"hi")
        self.assertEqual(c.readline(), b"MN")
        d = self.wait_counted(before, 4)
        self.assertEqual(d["shadow_requests"], 4)
        # ms HD, mg VA, md HD, then mg EN: every copy got its reply.
        self.assertEqual(d["shadow_hits"], 3)
        self.assertEqual(d["shadow_misses"], 1)
        self.assertEqual(d["shadow_errors"], 0)

    def test_config_and_pools_api_show_the_shadow(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port,
                                          timeout=10)
        try:
            conn.request("GET", "/config")
            r = conn.getresponse()
            text = r.read().decode()
            self.assertEqual(r.status, 200)
            live = text[text.index("[pool live]"):]
            live = live[:live.index("\n\n")]
            self.assertIn("\nshadow = trial\n", live + "\n")
            self.assertNotIn("shadow_share", live)
            conn.request("GET", "/pools")
            r = conn.getresponse()
            pools = {p["name"]: p for p in json.loads(r.read())}
            self.assertEqual(pools["live"]["shadow"], "trial")
            self.assertEqual(pools["live"]["shadow_share"], 1.0)
            self.assertNotIn("shadow", pools["trial"])
        finally:
            conn.close()


class ShadowApiTest(ShadowCase):
    """The admin API sets, changes and removes a shadow (PATCH /pools)."""

    def patch(self, body):
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port,
                                          timeout=10)
        try:
            conn.request("PATCH", "/pools/live", body=json.dumps(body))
            r = conn.getresponse()
            return r.status, r.read().decode()
        finally:
            conn.close()

    def pool(self, name):
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port,
                                          timeout=10)
        try:
            conn.request("GET", "/pools")
            return {p["name"]: p for p in
                    json.loads(conn.getresponse().read())}[name]
        finally:
            conn.close()

    def copies(self, n):
        before = self.settled()
        c = self.client()
        for i in range(n):
            self.assertEqual(c.set(self.key(str(i)), b"v"), b"STORED")
        return delta(before, counters(self.cluster.port))["shadow_requests"]

    def test_patch_share_then_remove(self):
        self.assertEqual(self.copies(20), 20)
        status, text = self.patch({"shadow_share": 0.0})
        self.assertEqual(status, 200, text)
        self.assertEqual(self.pool("live")["shadow_share"], 0.0)
        wait_for(lambda: self.copies(20) == 0, 10.0, "no key shadowed")
        status, text = self.patch({"shadow_share": 2.5})
        self.assertEqual(status, 400, text)
        self.assertIn("shadow_share", text)
        status, text = self.patch({"shadow": None})
        self.assertEqual(status, 200, text)
        self.assertNotIn("shadow", self.pool("live"))
        status, text = self.patch({"rate": None})
        self.assertEqual(status, 400, text)
        self.assertIn("rate: cannot be null", text)
        status, text = self.patch({"shadow": "trial", "shadow_share": 1})
        self.assertEqual(status, 200, text)
        wait_for(lambda: self.copies(20) == 20, 10.0, "every key shadowed")


class ShadowShareTest(ShadowCase):
    """shadow_share = 0.25: a quarter of the keys, the same ones each
    time, spread over the whole trial pool."""
    SHARE = "0.25"

    def test_the_same_quarter_of_keys_every_time(self):
        keys = [self.key(str(i)) for i in range(600)]
        c = self.client(timeout=10.0)

        def write_all():
            before = counters(self.cluster.port)
            c.send(b"".join(b"set %s 0 0 1\r\nv\r\n" % k.encode()
                            for k in keys))
            for _ in keys:
                self.assertEqual(c.readline(), b"STORED")
            return before

        before = write_all()
        d = delta(before, counters(self.cluster.port))
        held = self.holders(keys, TRIAL)
        first = {k for k in keys if held[k]}
        self.assertEqual(d["shadow_requests"], len(first))
        self.assertGreater(len(first), 600 * 0.15)
        self.assertLess(len(first), 600 * 0.35)
        trial = self.trial_owner(sorted(first))
        for k in first:
            self.assertEqual(held[k], {trial[k]}, k)
        # Not one arc of the ring: every trial backend has some.
        self.assertEqual(set(trial.values()), set(TRIAL))
        for n in TRIAL:
            with self.cluster.backend(n).client() as bc:
                self.assertEqual(bc.flush_all(), b"OK")
        write_all()
        wait_for(lambda: {k for k, v in self.holders(keys, TRIAL).items()
                          if v} == first, 10.0, "the same keys shadowed")


class ShadowHungTest(ShadowCase):
    """The trial pool hangs (SIGSTOP): clients are answered as before;
    copies in flight stop at SHADOW_QUEUE, the rest dropped and counted,
    and all is well once it is back."""
    PROXY = {"threads": 1, "timeout_ms": 60000,
             "backend_queue_limit": 100000}
    # Health checks that do not mark the hung pool down meanwhile.
    TRIAL_EXTRA = "interval_ms = 60000\ntimeout_ms = 60000\nfall = 100\n"

    def test_hung_shadow_costs_clients_nothing(self):
        self.settled()
        for n in TRIAL:
            self.cluster.backend(n).send_signal(signal.SIGSTOP)
        try:
            c = self.client(timeout=20.0)
            before = counters(self.cluster.port)
            keys = [self.key(str(i)) for i in range(SHADOW_QUEUE + 600)]
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                c.send(b"".join(b"set %s 0 0 1\r\nv\r\n" % k.encode()
                                for k in chunk))
                for _ in chunk:
                    self.assertEqual(c.readline(), b"STORED")
            c.send(b"get " + keys[-1].encode() + b"\r\n")
            self.assertEqual(c.read_until(),
                             b"VALUE %s 0 1\r\nv\r\nEND\r\n"
                             % keys[-1].encode())
            d = delta(before, counters(self.cluster.port))
            self.assertEqual(d["shadow_requests"], SHADOW_QUEUE)
            self.assertEqual(d["shadow_dropped"], len(keys) + 1 -
                             SHADOW_QUEUE)
            self.assertEqual(d["shadow_hits"], 0)
        finally:
            for n in TRIAL:
                self.cluster.backend(n).send_signal(signal.SIGCONT)
        # Back: the copies are answered, the bound is free again.
        wait_for(lambda: counters(self.cluster.port)["shadow_hits"] >=
                 SHADOW_QUEUE, 30.0, "the copies to be answered")
        before = counters(self.cluster.port)
        k = self.key("after")
        self.assertEqual(self.client().set(k, b"y" * (64 << 10)), b"STORED")
        self.wait_counted(before, 1)
        d = delta(before, counters(self.cluster.port))
        self.assertEqual((d["shadow_requests"], d["shadow_hits"]), (1, 1))


class ShadowBytesTest(ShadowCase):
    """The byte bound alone: 64 KB values to a hung trial pool."""
    PROXY = {"threads": 1, "timeout_ms": 60000,
             "backend_queue_limit": 100000}
    TRIAL_EXTRA = "interval_ms = 60000\ntimeout_ms = 60000\nfall = 100\n"

    def test_bytes_in_flight_bounded(self):
        self.settled()
        for n in TRIAL:
            self.cluster.backend(n).send_signal(signal.SIGSTOP)
        try:
            c = self.client(timeout=20.0)
            before = counters(self.cluster.port)
            big = b"x" * (64 << 10)
            n = SHADOW_BYTES // len(big) + 40
            keys = [self.key(str(i)) for i in range(n)]
            for i in range(0, n, 20):
                c.send(b"".join(b"set %s 0 0 %d\r\n%s\r\n"
                                % (k.encode(), len(big), big)
                                for k in keys[i:i + 20]))
                for _ in keys[i:i + 20]:
                    self.assertEqual(c.readline(), b"STORED")
            d = delta(before, counters(self.cluster.port))
            self.assertGreater(d["shadow_dropped"], 30)
            self.assertLessEqual(d["shadow_requests"] * len(big),
                                 SHADOW_BYTES)
            self.assertEqual(d["shadow_requests"] + d["shadow_dropped"], n)
        finally:
            for n in TRIAL:
                self.cluster.backend(n).send_signal(signal.SIGCONT)


class ShadowDownTest(ShadowCase):
    """The whole trial pool down: copies fail at once (counted), the
    clients are served by the live pool as ever."""
    TRIAL_EXTRA = "interval_ms = 50\ntimeout_ms = 100\nfall = 1\n"

    def test_trial_down(self):
        for n in TRIAL:
            self.cluster.backend(n).stop()
        wait_for(lambda: all(
            v.get("state") == "DOWN" for b, v in
            mctest.stats_backends(self.cluster.port).items() if b in TRIAL),
            10.0, "the trial pool to be DOWN")
        c = self.client()
        before = counters(self.cluster.port)
        keys = [self.key(str(i)) for i in range(30)]
        for k in keys:
            self.assertEqual(c.set(k, b"v"), b"STORED")
            self.assertEqual(c.get(k), b"v")
        d = delta(before, counters(self.cluster.port))
        self.assertEqual(d["shadow_requests"], 60)
        self.assertEqual(d["shadow_errors"], 60)
        self.assertEqual(d["shadow_hits"] + d["shadow_misses"], 0)


class ShadowBigTest(ShadowCase):
    """With big_value_split, a big write's copy is its index alone: the
    trial pool's reads of the key are hits, without the chunks' bytes,
    and nothing the trial pool cannot store is sent to it."""
    PROXY = {"big_value_split": 100000, "max_value_size": 8 << 20}

    def test_the_trial_pool_gets_the_index(self):
        k = self.key()
        v = os.urandom(1500000)
        c = self.client(timeout=20.0)
        before = self.settled()
        self.assertEqual(c.set(k, v), b"STORED")
        d = self.wait_counted(before, 1)
        self.assertEqual((d["shadow_requests"], d["shadow_hits"],
                          d["shadow_errors"]), (1, 1, 0))
        with self.cluster.backend(self.trial_owner([k])[k]).client() as bc:
            idx = bc.get(k)
        self.assertTrue(idx.startswith(b"\0mcring-big 1 "), idx[:20])
        before = self.settled()
        self.assertTrue(c.get(k) == v)
        d = self.wait_counted(before, 1)
        self.assertEqual((d["shadow_hits"], d["shadow_errors"]), (1, 0))


class NoShadowTest(mctest.ClusterTestCase):
    """Without shadow, the trial pool gets nothing; a reload that adds
    one starts the copies."""
    NEEDS_MCRING = True
    CLUSTER_ARGS = {"nbackends": 5,
                    "pools": ([], lambda c: shadow_text(c, shadow=False))}

    def trial_sets(self):
        return sum(int(mctest.proxy_stats(self.cluster.backend(n).port)
                       ["cmd_set"]) for n in TRIAL)

    def test_off_then_on_by_reload(self):
        c = self.client()
        base = self.trial_sets()
        for i in range(50):
            self.assertEqual(c.set(self.key(str(i)), b"v"), b"STORED")
        self.assertEqual(self.trial_sets(), base)
        self.assertEqual(set(counters(self.cluster.port).values()), {0})
        mc = self.cluster.mcring
        mc.extra = shadow_text(self.cluster)
        mc.write_config(mc.port)
        self.assertEqual(mctest.sighup_reload(mc), "applied")
        for i in range(50):
            self.assertEqual(c.set(self.key("on%d" % i), b"v"), b"STORED")
        wait_for(lambda: self.trial_sets() == base + 50, 10.0,
                 "50 copies on the trial pool")


class ShadowConfigErrorsTest(unittest.TestCase):

    def check_error(self, text, want):
        r = mctest.check_config_text(text)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(want, r.stderr)

    BASE = ("[proxy]\nlisten = 127.0.0.1:1\n\n[pool a]\n%s"
            "b1 = 127.0.0.1:2\n\n[pool b]\nb2 = 127.0.0.1:3\n\n"
            "[routes]\n* = a\n")

    def test_errors(self):
        self.check_error(self.BASE % "shadow = nope\n",
                         "bad.ini:4: pool 'a': shadow: no pool 'nope'")
        self.check_error(self.BASE % "shadow = a\n",
                         "pool 'a': shadow: a pool cannot shadow itself")
        self.check_error(self.BASE % "shadow = b\nshadow_share = 1.5\n",
                         "bad.ini:6: shadow_share: bad share '1.5'")
        self.check_error(self.BASE % "shadow = b\nshadow_share = 1e-2\n",
                         "shadow_share: bad share '1e-2'")


if __name__ == "__main__":
    mctest.main()
