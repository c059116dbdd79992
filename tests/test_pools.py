# SPDX-License-Identifier: BSD-3-Clause
"""Integration tests: pools ([pool NAME], [backends] as "default") and
prefix routes ([routes], longest prefix first, "*" the default).

Real memcached backends behind one mcring.  Every key stored through the
proxy is found, by reading the backends directly, on exactly the backend
`mcring --route` names, in the pool its longest matching prefix names; GET
/route and GET /ring say the same per pool; /metrics has a pool label; a
backend shared by two pools is one backend (one health state) whose keys,
when it is down, stay inside each pool; SIGHUP and the admin API add pools,
routes and members; bad pool configs are refused with FILE:LINE.
"""

import http.client
import json
import os
import signal
import sys
import tempfile
import shutil
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest  # noqa: E402
import test_metrics  # noqa: E402
from mctest import run_mcring, wait_for  # noqa: E402

HEALTH = {"interval_ms": 100, "timeout_ms": 250, "rise": 1, "fall": 2}
ROUTES = {"session:": "sess", "frag:": "frag", "frag:big:": "default"}


def expected_pool(key, routes=ROUTES):
    """The pool a key goes to by the longest matching prefix."""
    best = None
    for prefix, pool in routes.items():
        if key.startswith(prefix) and (best is None or
                                       len(prefix) > len(best)):
            best = prefix
    return routes[best] if best is not None else "default"


def http_json(port, method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path,
                     body=json.dumps(body) if body is not None else None)
        r = conn.getresponse()
        data = r.read()
        return r.status, (json.loads(data) if data[:1] in (b"{", b"[")
                          else data.decode())
    finally:
        conn.close()


def pools_text(cluster, admin_port, routes=ROUTES, sess_extra=""):
    return ("[admin]\nlisten = 127.0.0.1:%d\n\n" % admin_port +
            "[pool sess]\n" + sess_extra +
            cluster.pool_lines(["b3", "b4"]) +
            "\n[pool frag]\n" + cluster.pool_lines(["b4", "b5", "b6"]) +
            "\n[routes]\n" +
            "".join("%s = %s\n" % kv for kv in routes.items()))


class PoolsCase(mctest.ClusterTestCase):
    """Six backends: default = b1 b2, sess = b3 b4, frag = b4 b5 b6 (b4 in
    two pools)."""
    NEEDS_MCRING = True

    @classmethod
    def setUpClass(cls):
        if mctest.direct_mode():
            raise unittest.SkipTest("needs mcring (MCTEST_DIRECT=1)")
        cls.admin_port = mctest.free_port()
        cls.CLUSTER_ARGS = {
            "nbackends": 6, "health": HEALTH,
            "pools": (["b1", "b2"],
                      lambda c: pools_text(c, cls.admin_port))}
        super().setUpClass()

    def routes(self, keys):
        return mctest.route_file(self.cluster.mcring.config_path, keys,
                                 pools=True)

    def holders(self, keys, skip=()):
        """{key: set of backends holding it}, read directly (but skip)."""
        got = {k: set() for k in keys}
        for m in self.cluster.backends:
            if m.name in skip:
                continue
            with m.client(timeout=10.0) as bc:
                for chunk in range(0, len(keys), 100):
                    for v in bc.get_multi(keys[chunk:chunk + 100]):
                        got[v[0]].add(m.name)
        return got


class PoolRoutingTest(PoolsCase):

    def test_every_key_where_route_says(self):
        keys = (["session:%d" % i for i in range(80)] +
                ["frag:%d" % i for i in range(80)] +
                ["frag:big:%d" % i for i in range(40)] +
                ["other:%d" % i for i in range(80)] +
                ["sess%d" % i for i in range(20)])
        c = self.client(timeout=10.0)
        c.send(b"".join(b"set %s 0 0 2\r\nv1\r\n" % k.encode()
                        for k in keys))
        for _ in keys:
            self.assertEqual(c.readline(), b"STORED")
        routes = self.routes(keys)
        members = {"default": {"b1", "b2"}, "sess": {"b3", "b4"},
                   "frag": {"b4", "b5", "b6"}}
        held = self.holders(keys)
        for k in keys:
            pool, order = routes[k]
            self.assertEqual(pool, expected_pool(k), k)
            # owner first, then the pool's other members only
            self.assertEqual(set(order), members[pool], k)
            self.assertEqual(held[k], {order[0]}, k)
        # Every pool's members got keys: the pools are real rings.
        owners = {routes[k][1][0] for k in keys}
        self.assertEqual(owners, {"b1", "b2", "b3", "b4", "b5", "b6"})
        # And a multi-get across pools answers in the client's order.
        got = c.get_multi(keys[::7])
        self.assertEqual([g[0] for g in got], keys[::7])

    def test_http_route_names_the_pool(self):
        keys = ["session:a", "frag:b", "frag:big:c", "zzz"]
        cli = self.routes(keys)
        status, doc = http_json(self.admin_port, "GET", "/route?" +
                                "&".join("key=" + k for k in keys))
        self.assertEqual(status, 200)
        for entry in doc:
            pool, order = cli[entry["key"]]
            self.assertEqual(entry["pool"], pool)
            self.assertEqual(entry["owner"], order[0])
            self.assertEqual(entry["fallbacks"], order[1:])
            self.assertEqual(entry["replicas"], order[:1])

    def test_ring_per_pool(self):
        for pool, names in (("frag", {"b4", "b5", "b6"}),
                            ("sess", {"b3", "b4"})):
            status, doc = http_json(self.admin_port, "GET",
                                    "/ring?pool=" + pool)
            self.assertEqual(status, 200, doc)
            self.assertEqual(doc["pool"], pool)
            self.assertEqual({b["name"] for b in doc["backends"]}, names)
            self.assertAlmostEqual(sum(b["arc_share"]
                                       for b in doc["backends"]), 1.0)
        status, doc = http_json(self.admin_port, "GET", "/ring")
        self.assertEqual(doc["pool"], "default")
        self.assertEqual(sorted(doc["pools"]), ["default", "frag", "sess"])
        self.assertEqual({b["name"] for b in doc["backends"]}, {"b1", "b2"})
        status, _ = http_json(self.admin_port, "GET", "/ring?pool=nope")
        self.assertEqual(status, 404)

    def test_metrics_have_a_pool_label(self):
        def scrape():
            conn = http.client.HTTPConnection("127.0.0.1", self.admin_port,
                                              timeout=10)
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
            conn.close()
            return test_metrics.parse(text)
        before = scrape()
        c = self.client()
        for i in range(25):
            self.assertIsNone(c.get("session:metrics-%d" % i))
        after = scrape()
        s = test_metrics.sample
        self.assertEqual(s(after, "mcring_pool_keys_total", pool="sess") -
                         s(before, "mcring_pool_keys_total", pool="sess"), 25)
        self.assertEqual(s(after, "mcring_pool_keys_total", pool="frag"),
                         s(before, "mcring_pool_keys_total", pool="frag"))
        self.assertEqual(s(after, "mcring_pool_backends", pool="frag"), 3)
        self.assertEqual(s(after, "mcring_pool_backends_up", pool="sess"), 2)
        shares = [x for f in after for x in f["samples"]
                  if x[0] == "mcring_pool_ring_share"
                  and x[1]["pool"] == "frag"]
        self.assertEqual({x[1]["backend"] for x in shares},
                         {"b4", "b5", "b6"})
        self.assertAlmostEqual(sum(x[2] for x in shares), 1.0)

    def test_backends_name_their_pools(self):
        st = mctest.stats_backends(self.cluster.port)
        self.assertEqual(st["b4"]["pools"], "sess,frag")
        self.assertEqual(st["b1"]["pools"], "default")
        status, doc = http_json(self.admin_port, "GET", "/backends")
        self.assertEqual({b["name"]: b["pools"] for b in doc}["b4"],
                         ["sess", "frag"])

    def test_config_renders_back(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port,
                                          timeout=10)
        conn.request("GET", "/config")
        text = conn.getresponse().read().decode()
        conn.close()
        self.assertIn("[pool frag]", text)
        self.assertIn("frag:big: = default", text)
        path = os.path.join(self.cluster.tmpdir, "rendered.ini")
        with open(path, "w") as f:
            f.write(text.replace("listen = 127.0.0.1:%d" % self.admin_port,
                                 "listen = 127.0.0.1:1"))
        keys = ["session:r%d" % i for i in range(20)] + ["r%d" % i
                                                        for i in range(20)]
        self.assertEqual(mctest.route_file(path, keys, pools=True),
                         self.routes(keys))


class SharedBackendTest(PoolsCase):
    """b4 is in sess and frag: one backend, one health state. Down, its
    keys fall over to the next member of each key's own pool."""

    def test_down_shared_backend_keys_stay_in_their_pool(self):
        keys = ["session:%d" % i for i in range(150)] + \
               ["frag:%d" % i for i in range(150)]
        routes = self.routes(keys)
        on_b4 = [k for k in keys if routes[k][1][0] == "b4"]
        self.assertTrue(any(k.startswith("session:") for k in on_b4))
        self.assertTrue(any(k.startswith("frag:") for k in on_b4))
        self.cluster.backend("b4").pause()
        try:
            def down():
                st = mctest.stats_backends(self.cluster.port)
                return st.get("b4", {}).get("state") == "DOWN"
            wait_for(down, 20, "b4 DOWN")
            c = self.client(timeout=10.0)
            for k in on_b4:
                self.assertEqual(c.set(k, "x"), b"STORED", k)
            held = self.holders(on_b4, skip=("b4",))
        finally:
            self.cluster.backend("b4").resume()
        for k in on_b4:
            # the first member after b4 in the key's own pool's walk
            self.assertEqual(held[k], {routes[k][1][1]}, k)


class OnePoolCase(unittest.TestCase):
    """Four backends, [backends] = b1 b2, the admin API on; no tests of
    its own."""

    def setUp(self):
        if mctest.direct_mode():
            self.skipTest("needs mcring")
        self.admin_port = mctest.free_port()
        self.cluster = mctest.Cluster(
            nbackends=4, health=HEALTH,
            proxy={"warmup": 0, "migrate_rate": 0},
            pools=(["b1", "b2"],
                   lambda c: "[admin]\nlisten = 127.0.0.1:%d\n"
                   % self.admin_port))
        self.addCleanup(self.cluster.close)
        self.cluster.start()

    def reload(self, extra):
        m = self.cluster.mcring
        m.extra = extra
        m.write_config(self.cluster.port)
        return mctest.sighup_reload(m)



class PoolHealthTest(OnePoolCase):
    """A pool's health settings are its backends': checked every 20 ms
    there, every 100 ms ([health]) in the default pool."""

    def test_pool_health_settings_apply_to_its_backends(self):
        admin = "[admin]\nlisten = 127.0.0.1:%d\n" % self.admin_port
        m = self.cluster.mcring
        m.extra = (admin + "\n[pool fast]\ninterval_ms = 20\n" +
                   self.cluster.pool_lines(["b3"]) + "\n[routes]\nf: = fast\n")
        m.write_config(self.cluster.port)
        self.assertEqual(mctest.sighup_reload(m), "applied")

        def checks():
            st = mctest.stats_backends(self.cluster.port)
            return int(st["b3"]["checks"]), int(st["b1"]["checks"])
        base = checks()
        wait_for(lambda: checks()[0] - base[0] >= 50, 20, "50 checks of b3")
        fast, slow = (a - b for a, b in zip(checks(), base))
        self.assertLess(slow * 2, fast, (fast, slow))


class PoolReloadTest(OnePoolCase):
    """SIGHUP and the admin API change pools and routes of a running
    mcring; a bad change changes nothing."""

    def test_reload_adds_a_pool_and_its_route(self):
        admin = "[admin]\nlisten = 127.0.0.1:%d\n" % self.admin_port
        self.reload(admin + "\n[pool hot]\n" +
                    self.cluster.pool_lines(["b3", "b4"]) +
                    "\n[routes]\nhot: = hot\n")
        self.assertEqual(mctest.reload_counters(self.cluster.port)[1], 0)
        # b3 and b4 are new: probed (NEW, RECOVERING) before they get keys;
        # a key written meanwhile is on a stand-in and deleted there when
        # its owner comes up.
        wait_for(lambda: all(
            mctest.stats_backends(self.cluster.port)[b]["state"] == "UP"
            for b in ("b3", "b4")), 20, "b3 and b4 to be UP")
        keys = ["hot:%d" % i for i in range(40)] + ["cold:%d" % i
                                                   for i in range(40)]
        c = mctest.Client(self.cluster.port, timeout=10.0)
        for k in keys:
            self.assertEqual(c.set(k, "v"), b"STORED")
        c.close()
        routes = mctest.route_file(self.cluster.mcring.config_path, keys,
                                   pools=True)
        for k in keys:
            pool, order = routes[k]
            self.assertEqual(pool, "hot" if k.startswith("hot:")
                             else "default")
            with self.cluster.backend(order[0]).client() as bc:
                self.assertEqual(bc.get(k), b"v", k)
        # A route to a pool that does not exist: refused, nothing changes.
        self.assertEqual(self.reload(admin + "\n[routes]\nhot: = nowhere\n"),
                         "failed")
        status, doc = http_json(self.admin_port, "GET", "/route?key=hot:1")
        self.assertEqual(doc[0]["pool"], "hot")

    def test_admin_adds_a_member_to_a_pool(self):
        admin = "[admin]\nlisten = 127.0.0.1:%d\n" % self.admin_port
        self.reload(admin + "\n[pool p]\n" + self.cluster.pool_lines(["b3"]) +
                    "\n[routes]\np: = p\n")
        b4 = self.cluster.backend("b4")
        status, doc = http_json(self.admin_port, "POST", "/backends",
                                {"name": "b4", "pool": "p",
                                 "address": "127.0.0.1:%d" % b4.port})
        self.assertEqual(status, 201, doc)
        status, doc = http_json(self.admin_port, "GET", "/ring?pool=p")
        self.assertEqual({b["name"] for b in doc["backends"]}, {"b3", "b4"})
        # b1 joins p too: one backend, in two pools.
        b1 = self.cluster.backend("b1")
        status, doc = http_json(self.admin_port, "POST", "/backends",
                                {"name": "b1", "pool": "p",
                                 "address": "127.0.0.1:%d" % b1.port})
        self.assertEqual(status, 201, doc)
        # Another address under b1's name is a conflict.
        status, doc = http_json(self.admin_port, "POST", "/backends",
                                {"name": "b1", "pool": "p",
                                 "address": "127.0.0.1:1"})
        self.assertEqual(status, 409, doc)
        # Out of p only: still in default.
        status, doc = http_json(self.admin_port, "DELETE",
                                "/backends/b1?pool=p")
        self.assertEqual(status, 200, doc)
        status, doc = http_json(self.admin_port, "GET", "/ring?pool=p")
        self.assertEqual({b["name"] for b in doc["backends"]}, {"b3", "b4"})
        status, doc = http_json(self.admin_port, "GET", "/ring")
        self.assertEqual({b["name"] for b in doc["backends"]}, {"b1", "b2"})
        status, doc = http_json(self.admin_port, "DELETE",
                                "/backends/b2?pool=p")
        self.assertEqual(status, 404, doc)


class PoolApiTest(OnePoolCase):
    """POST, PATCH, DELETE /pools and PUT /routes."""

    def test_pools_and_routes_through_the_api(self):
        b3, b4 = self.cluster.backend("b3"), self.cluster.backend("b4")
        status, doc = http_json(self.admin_port, "POST", "/pools", {
            "name": "api", "replicas": 2, "interval_ms": 150,
            "backends": [{"name": "b3", "address": "127.0.0.1:%d" % b3.port},
                         {"name": "b4", "address": "127.0.0.1:%d" % b4.port,
                          "weight": 2}, "b1"]})
        self.assertEqual(status, 201, doc)
        pool = [p for p in doc if p["name"] == "api"][0]
        self.assertEqual(pool["backends"], ["b1", "b3", "b4"])
        self.assertEqual(pool["replicas"], 2)
        self.assertEqual(pool["interval_ms"], 150)
        status, doc = http_json(self.admin_port, "PUT", "/routes",
                                {"api:": "api", "*": "default"})
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc, {"api:": "api", "*": "default"})
        c = mctest.Client(self.cluster.port, timeout=10.0)
        self.assertEqual(c.set("api:k", "v"), b"STORED")
        c.close()
        status, doc = http_json(self.admin_port, "GET", "/route?key=api:k")
        self.assertEqual(doc[0]["pool"], "api")
        with self.cluster.backend(doc[0]["owner"]).client() as bc:
            self.assertEqual(bc.get("api:k"), b"v")
        # The file GET /config renders routes the same way.
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port,
                                          timeout=10)
        conn.request("GET", "/config")
        text = conn.getresponse().read().decode()
        conn.close()
        self.assertIn("[pool api]\nreplicas = 2\ninterval_ms = 150\n", text)
        self.assertIn("b4 = 127.0.0.1:%d weight=2\n" % b4.port, text)
        status, doc = http_json(self.admin_port, "PATCH", "/pools/api",
                                {"replicas": 3, "hotkey_spread": True})
        self.assertEqual(status, 200, doc)
        pool = [p for p in doc if p["name"] == "api"][0]
        self.assertEqual((pool["replicas"], pool["hotkey_spread"]), (3, True))
        status, doc = http_json(self.admin_port, "PATCH", "/pools/api",
                                {"rate": 500, "burst": 50})
        self.assertEqual(status, 200, doc)
        pool = [p for p in doc if p["name"] == "api"][0]
        self.assertEqual((pool["rate"], pool["burst"]), (500, 50))
        # Refused: nothing changes.
        for method, path, body, want in [
                ("PATCH", "/pools/api", {"replicas": 99}, 400),
                ("PATCH", "/pools/api", {"colour": "red"}, 400),
                ("PATCH", "/pools/nope", {"replicas": 2}, 404),
                ("POST", "/pools", {"name": "api", "backends": ["b1"]}, 409),
                ("POST", "/pools", {"name": "x", "backends": ["zz"]}, 400),
                ("POST", "/pools", {"name": "x", "backends": []}, 400),
                ("POST", "/pools", {"name": "x", "backends": [
                    {"name": "b1", "address": "127.0.0.1:1"}]}, 409),
                ("PUT", "/routes", {"a:": "nope"}, 400),
                ("PUT", "/routes", {"a b": "api"}, 400),
                ("DELETE", "/pools/default", None, 409),
                ("DELETE", "/pools/nope", None, 404),
                ("PUT", "/pools", {}, 405)]:
            status, doc = http_json(self.admin_port, method, path, body)
            self.assertEqual(status, want, (method, path, body, doc))
        status, doc = http_json(self.admin_port, "GET", "/routes")
        self.assertEqual(doc, {"api:": "api", "*": "default"})
        # Removing a pool takes its routes and its own backends along.
        status, doc = http_json(self.admin_port, "DELETE", "/pools/api")
        self.assertEqual(status, 200, doc)
        self.assertEqual([p["name"] for p in doc], ["default"])
        status, doc = http_json(self.admin_port, "GET", "/routes")
        self.assertEqual(doc, {"*": "default"})
        status, doc = http_json(self.admin_port, "GET", "/backends")
        self.assertEqual(sorted(b["name"] for b in doc), ["b1", "b2"])


class PoolCtlTest(OnePoolCase):
    """mcring ctl pools, routes, ring POOL, add ... pool=P, remove ...
    pool=P."""

    def ctl(self, *args):
        return run_mcring(["ctl", "-a", "127.0.0.1:%d" % self.admin_port] +
                          list(args))

    def test_ctl_pools(self):
        b3, b1 = self.cluster.backend("b3"), self.cluster.backend("b1")
        r = self.ctl("add", "b3", "127.0.0.1:%d" % b3.port, "pool=default")
        self.assertEqual(r.returncode, 0, r.stderr)
        status, doc = http_json(self.admin_port, "POST", "/pools",
                                {"name": "p", "replicas": 2,
                                 "backends": ["b3"]})
        self.assertEqual(status, 201, doc)
        r = self.ctl("add", "b1", "127.0.0.1:%d" % b1.port, "pool=p")
        self.assertEqual(r.returncode, 0, r.stderr)
        status, doc = http_json(self.admin_port, "PUT", "/routes",
                                {"p:": "p", "*": "default"})
        self.assertEqual(status, 200, doc)
        r = self.ctl("pools")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["POOL", "REPLICAS", "HASH",
                                            "BACKENDS"])
        self.assertEqual(lines[1].split(), ["default", "1", "xxh3",
                                            "b1,b2,b3"])
        self.assertEqual(lines[2].split(), ["p", "2", "xxh3", "b1,b3"])
        r = self.ctl("routes")
        self.assertEqual(r.stdout, "p: = p\n* = default\n")
        r = self.ctl("ring", "p")
        self.assertTrue(r.stdout.startswith("pool p: hash xxh3"), r.stdout)
        r = self.ctl("route", "p:1", "x")
        self.assertEqual(r.stdout.splitlines()[0].split()[-1], "POOL")
        self.assertEqual([l.split()[-1] for l in r.stdout.splitlines()[1:]],
                         ["p", "default"])
        r = self.ctl("remove", "b1", "pool=p")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.ctl("pools")
        self.assertEqual(r.stdout.splitlines()[2].split()[-1], "b3")
        r = self.ctl("ring", "nope")
        self.assertEqual(r.returncode, 1)


class PoolConfigErrorsTest(unittest.TestCase):
    """`mcring -t` refuses bad pool configs with FILE:LINE: message."""

    CASES = [
        ("[backends]\na = 127.0.0.1:1\n[routes]\nx: = nope\n", 4,
         "route 'x:': no pool 'nope'"),
        ("[backends]\na = 127.0.0.1:1\n[pool e]\n", 3,
         "pool 'e' has no backends"),
        ("[backends]\na = 127.0.0.1:1\n[pool p]\na = 127.0.0.1:2\n", 4,
         "backend 'a' is defined at line 2 with another address"),
        ("[backends]\na = 127.0.0.1:1\n[pool p]\na = 127.0.0.1:1 "
         "weight=2\n", 4, "with another weight"),
        ("[backends]\na = 127.0.0.1:1\n[pool default]\nb = 127.0.0.1:2\n",
         3, "[pool default] is [backends]"),
        ("[pool p]\na = 127.0.0.1:1\n[pool q]\nb = 127.0.0.1:2\n", 4,
         "no route for keys that match no prefix"),
        ("[backends]\na = 127.0.0.1:1\n[pool b@d]\n", 3, "bad pool name"),
        ("[backends]\na = 127.0.0.1:1\n[pool p]\nreplicas = 9\n"
         "b = 127.0.0.1:2\n", 4, "replicas: bad value '9'"),
        ("[backends]\na = 127.0.0.1:1\n[pool p]\nb = 127.0.0.1:2\n"
         "[pool p]\n", 5, "duplicate pool 'p'"),
        ("[backends]\na = 127.0.0.1:1\n[routes]\nx: = default\n"
         "x: = default\n", 5, "duplicate route 'x:'"),
        ("[backends]\na = 127.0.0.1:1\n[pool p]\na = 127.0.0.1:1\n"
         "a = 127.0.0.1:1\n", 5, "duplicate backend name 'a'"),
    ]

    def test_bad_configs(self):
        d = tempfile.mkdtemp(prefix="mctest-pools-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "bad.ini")
        for text, line, msg in self.CASES:
            with open(path, "w") as f:
                f.write(text)
            r = run_mcring(["-t", "-c", path])
            self.assertEqual(r.returncode, 1, text)
            self.assertIn("%s:%d: " % (path, line), r.stderr, text)
            self.assertIn(msg, r.stderr, text)

    def test_good_config_summary_per_pool(self):
        d = tempfile.mkdtemp(prefix="mctest-pools-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "ok.ini")
        with open(path, "w") as f:
            f.write("[pool p]\nhash = ketama\na = 127.0.0.1:1\n"
                    "b = 127.0.0.1:2\n[pool q]\nvnodes = 100\n"
                    "a = 127.0.0.1:1\n[routes]\n* = p\nq: = q\n")
        r = run_mcring(["-t", "-c", path])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("pool p: ring: hash ketama", r.stdout)
        self.assertIn("pool q: ring: hash xxh3 (vnodes 100), 1 backends",
                      r.stdout)
        r = run_mcring(["-c", path, "--route", "q:1", "zz"])
        got = mctest.parse_route_pools(r.stdout)
        self.assertEqual(got["q:1"], ("q", ["a"]))
        self.assertEqual(got["zz"][0], "p")
        r = run_mcring(["-c", path, "--analyze", "--keys", "1000", "--json"])
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        self.assertEqual([x["pool"] for x in doc], ["p", "q"])
        # --plan: per pool; a backend added to q moves q's keys only
        new = os.path.join(d, "new.ini")
        with open(new, "w") as f:
            f.write("[pool p]\nhash = ketama\na = 127.0.0.1:1\n"
                    "b = 127.0.0.1:2\n[pool q]\nvnodes = 100\n"
                    "a = 127.0.0.1:1\nc = 127.0.0.1:3\n[pool r]\n"
                    "c = 127.0.0.1:3\n[routes]\n* = p\nq: = q\nr: = r\n")
        r = run_mcring(["--plan", path, new, "--keys", "1000", "--json"])
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = {x["pool"]: x for x in json.loads(r.stdout)}
        self.assertEqual(sorted(doc), ["p", "q"])
        self.assertEqual(doc["p"]["moved_share"], 0)
        self.assertGreater(doc["q"]["moved_share"], 0.3)
        r = run_mcring(["--plan", path, new, "--keys", "1000"])
        self.assertIn("pool r: new", r.stdout)


if __name__ == "__main__":
    mctest.main()
