#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Integration tests: the admin API ([admin] listen) and `mcring ctl`.

Real memcached backends behind one mcring with the admin API on a loopback
port and a token.  Every endpoint is checked against the matching edit of
the file: after POST /backends, DELETE, PATCH weight, a key's owner is the
one `mcring --route` prints for the edited file, and a key stored through
the proxy is found by reading that backend directly.  Refused requests
(bad JSON, unknown names, duplicate names or addresses, the last backend,
a wrong or missing token, a wrong method) get the right status and message
and change nothing (GET /config is the same before and after).  Also:
GET /config is accepted by `mcring -t`; the API on a unix socket; a
non-loopback listen without a token is refused at start; `mcring ctl`'s
text and --json output.
"""

import http.client
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest  # noqa: E402
from mctest import run_mcring, wait_for  # noqa: E402

TOKEN = "t0k3n-for-tests"
HEALTH = {"interval_ms": 100, "timeout_ms": 250, "rise": 1, "fall": 3}


class AdminMcring(mctest.Mcring):
    """mctest.Mcring with an [admin] section appended to its config."""

    def __init__(self, tmpdir, backends, admin, **kw):
        super().__init__(tmpdir, backends, **kw)
        self.admin = admin

    def write_config(self, port):
        super().write_config(port)
        with open(self.config_path, "a") as f:
            f.write("\n[admin]\n")
            for k, v in self.admin.items():
                f.write("%s = %s\n" % (k, v))


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=5.0):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class AdminTestCase(unittest.TestCase):
    NBACKENDS = 3
    ADMIN = None        # default: loopback TCP with TOKEN
    ADMIN_EXTRA = {}    # more [admin] keys for that default
    PROXY = {"threads": 2}
    HEALTH = HEALTH

    def setUp(self):
        self.memcached = []
        self.tmpdir = None
        self.mcring = None
        self.addCleanup(self.close)
        self.tmpdir = tempfile.mkdtemp(prefix="mctest-admin-")
        for i in range(self.NBACKENDS + 1):   # the last one is a spare
            m = mctest.Memcached(self.tmpdir, name="b%d" % (i + 1))
            self.memcached.append(m)
            m.start()
        self.admin_port = mctest.free_port()
        admin = self.ADMIN or dict({"listen": "127.0.0.1:%d" % self.admin_port,
                                    "token": TOKEN}, **self.ADMIN_EXTRA)
        self.mcring = AdminMcring(
            self.tmpdir,
            [(m.name, m.port) for m in self.memcached[:self.NBACKENDS]],
            admin, proxy=self.PROXY, health=self.HEALTH)
        self.mcring.start()
        self.wait_state(self.names(), "UP")

    def close(self):
        if self.mcring is not None:
            self.mcring.stop()
        for m in self.memcached:
            m.stop()
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, True)

    def dump_logs(self, stream):
        if self.mcring is not None:
            stream.write(self.mcring.log_text())

    # ---- helpers

    def names(self):
        return [m.name for m in self.memcached[:self.NBACKENDS]]

    def spare(self):
        return self.memcached[self.NBACKENDS]

    def backend(self, name):
        return [m for m in self.memcached if m.name == name][0]

    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.admin_port,
                                          timeout=10)

    def api(self, method, path, body=None, token=TOKEN, raw=None):
        """(status, headers, JSON or text) of one request."""
        c = self.conn()
        headers = {}
        if token is not None:
            headers["Authorization"] = "Bearer " + token
        data = raw if raw is not None else (
            json.dumps(body).encode() if body is not None else None)
        if data is not None:
            headers["Content-Type"] = "application/json"
        c.request(method, path, body=data, headers=headers)
        r = c.getresponse()
        text = r.read().decode()
        c.close()
        ctype = r.getheader("Content-Type") or ""
        doc = json.loads(text) if ctype.startswith("application/json") \
            else text
        return r.status, r, doc

    def ok(self, method, path, body=None, status=200):
        code, _, doc = self.api(method, path, body)
        self.assertEqual(code, status, doc)
        return doc

    def backends(self):
        return {b["name"]: b for b in self.ok("GET", "/backends")}

    def wait_state(self, names, state, timeout=10.0):
        wait_for(lambda: all(self.backends()[n]["state"] == state
                             for n in names), timeout,
                 "%s to be %s" % (names, state))

    def config_text(self):
        return self.ok("GET", "/config")

    def expected_routes(self, backends_lines, keys):
        """{key: [owner, fallbacks...]} of a file with these backends."""
        path = os.path.join(self.tmpdir, "expect.ini")
        with open(path, "w") as f:
            f.write("[backends]\n" + "".join(l + "\n" for l in backends_lines))
        r = run_mcring(["-c", path, "--route"] + list(keys))
        self.assertEqual(r.returncode, 0, r.stderr)
        return mctest.parse_route(r.stdout)

    def api_routes(self, keys):
        q = "&".join("key=" + k for k in keys)
        return {e["key"]: [e["owner"]] + e["fallbacks"]
                for e in self.ok("GET", "/route?" + q)}

    def line(self, m, weight=None):
        return "%s = 127.0.0.1:%d%s" % (m.name, m.port,
                                        " weight=%s" % weight if weight
                                        else "")

    def assert_keys_live_where_routed(self, keys):
        """Stores keys through the proxy; each is on its routed target."""
        routes = {e["key"]: e for e in
                  self.ok("GET", "/route?" + "&".join("key=" + k
                                                      for k in keys))}
        with self.mcring.client() as c:
            for k in keys:
                self.assertEqual(c.set(k, b"v-" + k.encode()), b"STORED")
        for k in keys:
            target = routes[k]["target"]
            with self.backend(target).client() as d:
                self.assertEqual(d.get(k), b"v-" + k.encode(),
                                 "%s not on %s" % (k, target))

    def assert_refused(self, method, path, body, status, needle, raw=None,
                       token=TOKEN):
        before = self.config_text()
        code, r, doc = self.api(method, path, body, token=token, raw=raw)
        self.assertEqual(code, status, doc)
        self.assertIn(needle, doc["error"])
        self.assertEqual(self.config_text(), before, "config changed")
        return r


class EndpointTest(AdminTestCase):

    def test_get_backends(self):
        bs = self.backends()
        self.assertEqual(sorted(bs), self.names())
        for name, b in bs.items():
            for f in ("name", "address", "weight", "state", "share", "since",
                      "transitions", "requests", "errors", "timeouts",
                      "connects", "connect_failures", "failovers",
                      "connections"):
                self.assertIn(f, b)
            self.assertEqual(b["address"],
                             "127.0.0.1:%d" % self.backend(name).port)
            self.assertEqual(b["weight"], 1)
        self.assertAlmostEqual(sum(b["share"] for b in bs.values()), 1.0,
                               delta=1e-6)
        self.assertEqual(self.ok("GET", "/backends/b1")["name"], "b1")

    def test_route_and_ring(self):
        keys = ["route-%d" % i for i in range(50)]
        self.assertEqual(self.api_routes(keys), self.expected_routes(
            [self.line(m) for m in self.memcached[:3]], keys))
        self.assert_keys_live_where_routed(keys)
        code, _, doc = self.api("GET", "/route")
        self.assertEqual(code, 400)
        ring = self.ok("GET", "/ring")
        self.assertEqual(ring["backend_count"], 3)
        self.assertEqual(ring["sample_keys"], 100000)
        self.assertEqual(sorted(b["name"] for b in ring["backends"]),
                         self.names())

    def test_add_equals_reload(self):
        keys = ["add-%d" % i for i in range(300)]
        spare = self.spare()
        doc = self.ok("POST", "/backends",
                      {"name": spare.name,
                       "address": "127.0.0.1:%d" % spare.port}, status=201)
        self.assertEqual(doc["name"], spare.name)
        self.wait_state([spare.name], "UP")
        want = self.expected_routes(
            [self.line(m) for m in self.memcached], keys)
        self.assertEqual(self.api_routes(keys), want)
        self.assertTrue(any(r[0] == spare.name for r in want.values()))
        self.assert_keys_live_where_routed(keys)
        self.assertIn("%s = 127.0.0.1:%d" % (spare.name, spare.port),
                      self.config_text())

    def test_remove_and_weight_equal_reload(self):
        keys = ["rm-%d" % i for i in range(300)]
        self.assertEqual(self.ok("DELETE", "/backends/b3"), {"removed": "b3"})
        # It owns no key, but serves warm-up reads until the window is
        # over (finish ends it now).
        b3 = self.backends()["b3"]
        self.assertEqual((b3["weight"], b3["share"]), (0.0, 0.0))
        self.assertNotIn("b3 =", self.config_text())
        self.assertEqual(self.ok("GET", "/migration")["state"], "warmup")
        self.ok("POST", "/migration/finish")
        wait_for(lambda: self.ok("GET", "/migration")["state"] == "idle", 20,
                 "the move to be over")
        self.assertEqual(sorted(self.backends()), ["b1", "b2"])
        self.assertEqual(self.api_routes(keys), self.expected_routes(
            [self.line(m) for m in self.memcached[:2]], keys))
        self.assert_keys_live_where_routed(keys)
        doc = self.ok("PATCH", "/backends/b1", {"weight": 2.25})
        self.assertEqual(doc["weight"], 2.25)
        self.assertEqual(self.api_routes(keys), self.expected_routes(
            [self.line(self.memcached[0], 2.25), self.line(self.memcached[1])],
            keys))
        self.assertIn("weight=2.25", self.config_text())

    def test_maint_and_activate(self):
        keys = ["maint-%d" % i for i in range(100)]
        doc = self.ok("PATCH", "/backends/b1", {"state": "maint"})
        self.assertEqual(doc["state"], "MAINT")
        routes = self.ok("GET", "/route?" + "&".join("key=" + k
                                                     for k in keys))
        owned = [e for e in routes if e["owner"] == "b1"]
        self.assertTrue(owned)
        for e in owned:
            self.assertEqual(e["target"], e["fallbacks"][0])
        self.assert_keys_live_where_routed(keys)
        self.ok("PATCH", "/backends/b1", {"state": "active"})
        self.wait_state(["b1"], "UP")

    def test_maint_return_is_stale_safe(self):
        """A value written while a backend is in maintenance is never
        followed by the older one it kept."""
        keys = ["stale-%d" % i for i in range(200)]
        routes = self.ok("GET", "/route?" + "&".join("key=" + k
                                                     for k in keys))
        owned = [e["key"] for e in routes if e["owner"] == "b1"]
        self.assertTrue(owned)
        with self.mcring.client() as c:
            for k in owned:
                self.assertEqual(c.set(k, b"old"), b"STORED")
        self.ok("PATCH", "/backends/b1", {"state": "maint"})
        with self.mcring.client() as c:
            for i, k in enumerate(owned):
                if i % 2 == 0:
                    self.assertEqual(c.set(k, b"new"), b"STORED")
                else:
                    # On the fallback, which never had it.
                    self.assertIn(c.delete(k), (b"DELETED", b"NOT_FOUND"))
        with self.backend("b1").client() as d:
            self.assertEqual(d.get(owned[0]), b"old")   # still kept there
        self.ok("PATCH", "/backends/b1", {"state": "active"})
        self.wait_state(["b1"], "UP")
        with self.mcring.client() as c:
            for i, k in enumerate(owned):
                self.assertIn(c.get(k), (b"new", None) if i % 2 == 0
                              else (None,), k)

    def test_config_accepted_by_mcring_t(self):
        path = os.path.join(self.tmpdir, "saved.ini")
        with open(path, "w") as f:
            f.write(self.config_text())
        r = run_mcring(["-t", "-c", path])
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_reload(self):
        self.assertEqual(self.ok("POST", "/reload"), {"applied": True})
        before = self.config_text()
        with open(self.mcring.config_path, "a") as f:
            f.write("\n[proxy]\nbogus = 1\n")
        code, _, doc = self.api("POST", "/reload")
        self.assertEqual(code, 400, doc)
        self.assertFalse(doc["applied"])
        self.assertRegex(doc["error"], r"^%s:\d+: unknown key 'bogus'"
                         % self.mcring.config_path)
        self.assertEqual(self.config_text(), before)


class RefusalTest(AdminTestCase):

    def test_bad_requests_change_nothing(self):
        spare = self.spare()
        b1 = self.backend("b1")
        cases = [
            ("POST", "/backends", None, 400, "bad JSON", b"{nope"),
            ("POST", "/backends", None, 400, "bad JSON", b"[1, 2]"),
            ("POST", "/backends", {"name": "x"}, 400, "expected", None),
            ("POST", "/backends", {"name": "x", "address": "127.0.0.1:1",
                                   "color": "red"}, 400, "unknown field",
             None),
            ("POST", "/backends", {"name": "bad name",
                                   "address": "127.0.0.1:1"}, 400,
             "bad backend name", None),
            ("POST", "/backends", {"name": "x", "address": "127.0.0.1"},
             400, "bad address", None),
            ("POST", "/backends", {"name": "x", "address": "127.0.0.1:1",
                                   "weight": 0}, 400, "bad weight", None),
            ("POST", "/backends", {"name": "b1", "address":
                                   "127.0.0.1:%d" % spare.port}, 409,
             "duplicate backend name 'b1'", None),
            ("POST", "/backends", {"name": "x", "address":
                                   "127.0.0.1:%d" % b1.port}, 409,
             "duplicate address", None),
            ("PATCH", "/backends/nope", {"weight": 2}, 404,
             "no backend 'nope'", None),
            ("PATCH", "/backends/b1", {"weight": "heavy"}, 400, "expected",
             None),
            ("PATCH", "/backends/b1", {"state": "asleep"}, 400, "bad state",
             None),
            ("PATCH", "/backends/b1", {"weight": 2, "state": "maint"}, 400,
             "expected", None),
            ("DELETE", "/backends/nope", None, 404, "no backend 'nope'",
             None),
            ("GET", "/", None, 404, "no such endpoint", None),
            ("GET", "/nothing", None, 404, "no such endpoint", None),
        ]
        for method, path, body, status, needle, raw in cases:
            with self.subTest(method=method, path=path, body=body or raw):
                self.assert_refused(method, path, body, status, needle,
                                    raw=raw)
        r = self.assert_refused("PUT", "/backends", {}, 405, "not allowed")
        self.assertEqual(r.getheader("Allow"), "GET, POST")
        r = self.assert_refused("GET", "/reload", None, 405, "not allowed")
        self.assertEqual(r.getheader("Allow"), "POST")

    def test_token(self):
        for token in (None, "wrong", TOKEN + "x", TOKEN[:-1]):
            with self.subTest(token=token):
                r = self.assert_refused("DELETE", "/backends/b1", None, 401,
                                        "token", token=token)
                self.assertEqual(r.getheader("WWW-Authenticate"), "Bearer")
        self.assertEqual(sorted(self.backends()), self.names())

    def test_remove_last_backend(self):
        self.ok("DELETE", "/backends/b1")
        self.ok("DELETE", "/backends/b2")
        self.assert_refused("DELETE", "/backends/b3", None, 409,
                            "cannot remove the last backend")


class AdminBoundsTest(AdminTestCase):
    """The admin API's bounds: request bodies (64 KB) and headers (16 KB)
    past them get a 4xx and change nothing; at most 16 connections are open
    at once, the next wait in the listen backlog and are answered once one
    closes."""
    NBACKENDS = 1

    def raw_request(self, data, timeout=10.0):
        s = socket.create_connection(("127.0.0.1", self.admin_port),
                                     timeout=timeout)
        try:
            s.sendall(data)
            out = b""
            while True:
                try:
                    chunk = s.recv(65536)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                out += chunk
            return out
        finally:
            s.close()

    def test_body_over_the_bound(self):
        before = self.config_text()
        body = b'{"name": "x", "address": "127.0.0.1:1", "pad": "' + \
            b"p" * (64 * 1024) + b'"}'
        out = self.raw_request(
            b"POST /backends HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + TOKEN.encode() + b"\r\nContent-Length: %d\r\n\r\n"
            % len(body) + body)
        self.assertRegex(out.split(b"\r\n", 1)[0], rb"^HTTP/1\.1 413 ")
        self.assertEqual(self.config_text(), before)

    def test_headers_over_the_bound(self):
        out = self.raw_request(
            b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: " +
            b"h" * (17 * 1024) + b"\r\n\r\n")
        self.assertEqual(out.split(b"\r\n", 1)[0],
                         b"HTTP/1.1 400 Bad Request")
        self.assertEqual(self.ok("GET", "/health")["status"], "ok")

    def test_connections_over_the_bound(self):
        def ask(s):
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nAuthorization: "
                      b"Bearer " + TOKEN.encode() + b"\r\n\r\n")
            return s.recv(4096)
        held = [socket.create_connection(("127.0.0.1", self.admin_port),
                                         timeout=10) for _ in range(16)]
        try:
            for s in held:
                self.assertTrue(ask(s).startswith(b"HTTP/1.1 200"))
            late = socket.create_connection(("127.0.0.1", self.admin_port),
                                            timeout=10)
            out = ask(late)
            while not out.endswith(b"}") and b"}" not in out:
                chunk = late.recv(4096)
                if not chunk:
                    break
                out += chunk
            self.assertTrue(out.startswith(b"HTTP/1.1 503"), out)
            self.assertIn(b"too many admin connections (16)", out)
            # and it is closed
            wait_for(lambda: late.recv(4096) == b"", 10, "the 17th closed")
            late.close()
            # the sixteen are still served, and one gone makes room
            self.assertTrue(ask(held[0]).startswith(b"HTTP/1.1 200"))
            held.pop().close()
            wait_for(lambda: self.api("GET", "/health")[0] == 200, 10,
                     "a new connection to be served")
        finally:
            for s in held:
                s.close()
        wait_for(lambda: all(self.api("GET", "/health")[0] == 200
                             for _ in range(20)), 10,
                 "the admin API to serve new connections")


class UnixSocketTest(AdminTestCase):
    NBACKENDS = 2

    def setUp(self):
        self.sockdir = tempfile.mkdtemp(prefix="mctest-sock-")
        self.sock = os.path.join(self.sockdir, "admin.sock")
        self.ADMIN = {"listen": self.sock}
        super().setUp()

    def conn(self):
        return UnixHTTPConnection(self.sock)

    def test_unix_socket(self):
        self.assertEqual(sorted(self.backends()), self.names())
        self.assertEqual(os.stat(self.sock).st_mode & 0o777, 0o600)
        r = subprocess.run(
            [mctest.mcring_path(), "ctl", "-a", self.sock, "backends"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, timeout=15)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("b1", r.stdout)
        self.mcring.stop()
        self.assertFalse(os.path.exists(self.sock), "socket left behind")


class StartRefusedTest(unittest.TestCase):

    def test_non_loopback_listen_without_token(self):
        d = tempfile.mkdtemp(prefix="mctest-admin-")
        path = os.path.join(d, "c.ini")
        with open(path, "w") as f:
            f.write("[backends]\nb1 = 127.0.0.1:%d\n[admin]\n"
                    "listen = 0.0.0.0:%d\n"
                    % (mctest.free_port(), mctest.free_port()))
        for args in (["-t", "-c", path], ["-c", path]):
            r = run_mcring(args)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("%s:4: " % path, r.stderr)
            self.assertIn("a token is needed", r.stderr)


class CtlTest(AdminTestCase):

    def ctl(self, *args, token=TOKEN):
        env = dict(os.environ)
        env.pop("MCRING_TOKEN", None)
        if token is not None:
            env["MCRING_TOKEN"] = token
        return subprocess.run(
            [mctest.mcring_path(), "ctl", "-a",
             "127.0.0.1:%d" % self.admin_port] + list(args),
            env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, timeout=30)

    def test_ctl(self):
        r = self.ctl("backends")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split()[:4],
                         ["NAME", "ADDRESS", "WEIGHT", "STATE"])
        self.assertEqual([l.split()[0] for l in lines[1:]], self.names())
        for argv in (("--json", "backends"), ("backends", "--json")):
            r = self.ctl(*argv)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual([b["name"] for b in json.loads(r.stdout)],
                             self.names())
        # After "--" a key may look like an option.
        r = self.ctl("--json", "route", "--", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([d["key"] for d in json.loads(r.stdout)],
                         ["--json"])
        r = self.ctl("route", "k1", "k2")
        self.assertEqual(r.returncode, 0, r.stderr)
        want = self.api_routes(["k1", "k2"])
        for line in r.stdout.splitlines()[1:]:
            key, owner, target = line.split()[:3]
            self.assertEqual(want[key][0], owner)
        spare = self.spare()
        r = self.ctl("add", spare.name, "127.0.0.1:%d" % spare.port,
                     "weight=0.5")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.backends()[spare.name]["weight"], 0.5)
        r = self.ctl("weight", spare.name, "2")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.ctl("maint", "b1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.backends()["b1"]["state"], "MAINT")
        r = self.ctl("activate", "b1")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.ctl("remove", spare.name)
        self.assertEqual((r.returncode, r.stdout),
                         (0, "removed %s\n" % spare.name), r.stderr)
        r = self.ctl("config")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, self.config_text())
        r = self.ctl("ring")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.ctl("reload")
        self.assertEqual((r.returncode, r.stdout), (0, "reload applied\n"))
        r = self.ctl("remove", "nope")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no backend 'nope'", r.stderr)
        r = self.ctl("backends", token="wrong")
        self.assertEqual(r.returncode, 1)
        self.assertIn("HTTP 401", r.stderr)


if __name__ == "__main__":
    mctest.main()
