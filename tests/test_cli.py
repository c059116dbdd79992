#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Integration tests: the mcring command line.

-V, -h, -t on good and bad configs (every error as "FILE:LINE: message",
including libinih 55's traps: over-long and indented lines), --route
(format, determinism, independence from the order of backend lines and from
addresses, weights, libmemcached ketama golden vectors), --analyze (text
and JSON), the sample configs shipped in etc/, and `mcring ctl` against
nothing (exit 2) and against a stub of the admin API (requests it sends,
text and --json output, exit 1 on an error answer).  No memcached needed.
"""

import http.server
import json
import os
import signal
import socket
import re
import shutil
import sys
import socketserver
import subprocess
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest  # noqa: E402
from mctest import run_mcring  # noqa: E402

GOOD = """\
[proxy]
listen = 127.0.0.1:22122
threads = 2
hash = xxh3
vnodes = 160
timeout_ms = 1000
connect_timeout_ms = 500
backend_connections = 1
max_connections = 1024
max_value_size = 1048576
max_keys = 64
client_output_limit = 1048576

[health]
interval_ms = 1000
timeout_ms = 500
rise = 2
fall = 3

[backends]
b1 = 127.0.0.1:11211
b2 = 127.0.0.1:11212 weight=2
b3 = 127.0.0.1:11213 weight=1
"""


class CliTestCase(unittest.TestCase):

    def setUp(self):
        self.tmpdir = tempfile.mkdtemp(prefix="mctest-cli-")
        self.addCleanup(shutil.rmtree, self.tmpdir, True)
        self.nfile = 0

    def write(self, text, name=None):
        self.nfile += 1
        path = os.path.join(self.tmpdir, name or "c%d.ini" % self.nfile)
        with open(path, "w") as f:
            f.write(text)
        return path

    def config(self, backends, proxy="", hash_=None):
        """A config with backend lines given as (name, port[, extra])."""
        text = "[proxy]\nlisten = 127.0.0.1:22122\n"
        if hash_:
            text += "hash = %s\n" % hash_
        text += proxy + "\n[backends]\n"
        for b in backends:
            text += "%s = 127.0.0.1:%d%s\n" % (b[0], b[1],
                                               " " + b[2] if len(b) > 2
                                               else "")
        return self.write(text)

    def route(self, path, keys):
        r = run_mcring(["-c", path, "--route"] + list(keys))
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout


class OptionsTest(CliTestCase):

    def test_version(self):
        for opt in ("-V", "--version"):
            r = run_mcring([opt])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertRegex(r.stdout, r"\d+\.\d+", opt)
        self.assertEqual(run_mcring(["-V"]).stdout,
                         run_mcring(["--version"]).stdout)

    def test_help(self):
        for opt in ("-h", "--help"):
            r = run_mcring([opt])
            self.assertEqual(r.returncode, 0, r.stderr)
            text = r.stdout + r.stderr
            self.assertRegex(text, r"(?i)usage")
            for word in ("-c", "-t", "--route", "--analyze", "mcring ctl"):
                self.assertIn(word, text, "%s: usage lacks %s" % (opt, word))

    def test_unknown_option_fails(self):
        r = run_mcring(["--no-such-option"])
        self.assertNotEqual(r.returncode, 0)
        self.assertTrue(r.stderr.strip())

    def test_check_good_config(self):
        path = self.write(GOOD)
        for args in (["-t", "-c", path], ["--test", "--config", path]):
            r = run_mcring(args)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(r.stdout.strip(), "-t printed nothing")

    def test_check_missing_file(self):
        path = os.path.join(self.tmpdir, "nope.ini")
        r = run_mcring(["-t", "-c", path])
        self.assertEqual(r.returncode, 1)
        self.assertIn(path, r.stderr)

    def test_sample_configs_pass_check(self):
        # the sample as made (from etc/mcring.ini.in) beside the binary
        built = os.path.dirname(mctest.mcring_path())
        for name, path in (
                ("mcring.ini", os.path.join(built, "etc", "mcring.ini")),
                ("mcring-minimal.ini", os.path.join(
                    mctest.srcdir(), "etc", "mcring-minimal.ini"))):
            with self.subTest(config=name):
                self.assertTrue(os.path.exists(path), "%s missing" % path)
                r = run_mcring(["-t", "-c", path])
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertTrue(r.stdout.strip())


HEAD = "[proxy]\nlisten = 127.0.0.1:22122\n"
BACKENDS = "[backends]\nb1 = 127.0.0.1:11211\nb2 = 127.0.0.1:11212\n"

# (name, config text, acceptable error line numbers or None for any line)
BAD_CONFIGS = [
    ("unknown key in [proxy]",
     HEAD + "frobnicate = 1\n" + BACKENDS, [3]),
    ("unknown key in [health]",
     HEAD + "[health]\nrise = 2\nbogus = 1\n" + BACKENDS, [5]),
    ("unknown key in [backends] value",
     HEAD + BACKENDS + "b3 = 127.0.0.1:11213 color=red\n", [6]),
    ("unknown section",
     HEAD + "[bogus]\nx = 1\n" + BACKENDS, [3, 4]),
    ("duplicate backend",
     HEAD + BACKENDS + "b1 = 127.0.0.1:11213\n", [6]),
    ("port out of range",
     HEAD + "[backends]\nb1 = 127.0.0.1:70000\n", [4]),
    ("port zero",
     HEAD + "[backends]\nb1 = 127.0.0.1:0\n", [4]),
    ("port not a number",
     HEAD + "[backends]\nb1 = 127.0.0.1:http\n", [4]),
    ("port missing",
     HEAD + "[backends]\nb1 = 127.0.0.1\n", [4]),
    ("listen port out of range",
     "[proxy]\nlisten = 127.0.0.1:99999\n" + BACKENDS, [2]),
    ("no backends, empty section",
     HEAD + "[backends]\n", None),
    ("no backends section",
     HEAD + "threads = 1\n", None),
    ("250-byte line",
     HEAD + "timeout_ms = 1000" + " " * 233 + "\n" + BACKENDS, [3]),
    ("250-byte backend line",
     HEAD + "[backends]\nb1 = 127.0.0.1:11211" + " " * 222
     + "weight=1\n", [4]),
    ("indented line after a key",
     HEAD + "    threads = 4\n" + BACKENDS, [3]),
    ("tab-indented backend line",
     HEAD + "[backends]\nb1 = 127.0.0.1:11211\n\tb2 = 127.0.0.1:11212\n",
     [5]),
    ("weight zero",
     HEAD + "[backends]\nb1 = 127.0.0.1:11211 weight=0\n", [4]),
    ("weight negative",
     HEAD + "[backends]\nb1 = 127.0.0.1:11211 weight=-1\n", [4]),
    ("weight not a number",
     HEAD + "[backends]\nb1 = 127.0.0.1:11211 weight=heavy\n", [4]),
    ("weight empty",
     HEAD + "[backends]\nb1 = 127.0.0.1:11211 weight=\n", [4]),
    ("threads not a number",
     HEAD + "threads = many\n" + BACKENDS, [3]),
    ("unknown hash",
     HEAD + "hash = sha1\n" + BACKENDS, [3]),
    ("negative timeout",
     HEAD + "timeout_ms = -5\n" + BACKENDS, [3]),
]


class CheckConfigTest(CliTestCase):

    def test_bad_configs_fail_with_file_and_line(self):
        for name, text, lines in BAD_CONFIGS:
            with self.subTest(case=name):
                for line in text.splitlines():
                    if name.startswith("250") and len(line) > 200:
                        self.assertEqual(len(line), 250)
                path = self.write(text)
                r = run_mcring(["-t", "-c", path])
                self.assertEqual(r.returncode, 1,
                                 "exit %d, stdout %r stderr %r"
                                 % (r.returncode, r.stdout, r.stderr))
                m = re.search(re.escape(path) + r":(\d+): \S", r.stderr)
                self.assertIsNotNone(m, "no FILE:LINE: message in %r"
                                     % r.stderr)
                if lines is not None:
                    self.assertIn(int(m.group(1)), lines,
                                  "wrong line in %r" % r.stderr)

    def test_good_config_variants(self):
        ok = [
            HEAD + BACKENDS,
            "; comment\n# comment\n\n" + HEAD + BACKENDS,
            HEAD + "hash = ketama\n" + BACKENDS,
            HEAD + "[backends]\nb1 = 127.0.0.1:11211 weight=0.5\n",
            HEAD + "[backends]\nb-1.x_y:z = 127.0.0.1:11211\n",
        ]
        for text in ok:
            with self.subTest(config=text):
                path = self.write(text)
                r = run_mcring(["-t", "-c", path])
                self.assertEqual(r.returncode, 0, r.stderr)


class RouteTest(CliTestCase):

    KEYS = ["foo", "bar", "a/b:c", "user:1234:profile", "x" * 250,
            "k-\u00e9\u00e8", "0", "{}[]()!@#$%^&*", "session.abc"] \
        + ["key%d" % i for i in range(40)]

    def test_format(self):
        path = self.write(GOOD)
        out = self.route(path, self.KEYS)
        self.assertTrue(out.endswith("\n"))
        lines = out.split("\n")[:-1]
        self.assertEqual(len(lines), len(self.KEYS))
        for key, line in zip(self.KEYS, lines):
            tokens = line.split(" ")
            self.assertNotIn("", tokens, "not single spaces: %r" % line)
            self.assertEqual(tokens[0], key)
            self.assertEqual(sorted(tokens[1:]), ["b1", "b2", "b3"], line)

    def test_same_key_same_line(self):
        path = self.write(GOOD)
        keys = ["alpha", "beta", "alpha", "gamma", "alpha", "beta"]
        lines = self.route(path, keys).splitlines()
        self.assertEqual(lines[0], lines[2])
        self.assertEqual(lines[0], lines[4])
        self.assertEqual(lines[1], lines[5])
        self.assertEqual(self.route(path, ["alpha"]).splitlines()[0],
                         lines[0])
        self.assertEqual(self.route(path, self.KEYS),
                         self.route(path, self.KEYS))

    def test_independent_of_backend_line_order(self):
        keys = ["order-%d" % i for i in range(300)]
        a = self.config([("b1", 11211), ("b2", 11212, "weight=2"),
                         ("b3", 11213), ("b4", 11214, "weight=0.5")])
        b = self.config([("b4", 11214, "weight=0.5"), ("b3", 11213),
                         ("b1", 11211), ("b2", 11212, "weight=2")])
        self.assertEqual(self.route(a, keys), self.route(b, keys))

    def test_independent_of_addresses_in_native_mode(self):
        keys = ["addr-%d" % i for i in range(300)]
        a = self.config([("b1", 11211), ("b2", 11212), ("b3", 11213)])
        b = self.config([("b1", 21211), ("b2", 21213), ("b3", 21212)])
        self.assertEqual(self.route(a, keys), self.route(b, keys))

    def test_spread_and_weights(self):
        keys = ["spread-%d" % i for i in range(3000)]
        eq = self.config([("b1", 11211), ("b2", 11212), ("b3", 11213)])
        owners = [l.split(" ")[1] for l in self.route(eq, keys).splitlines()]
        for name in ("b1", "b2", "b3"):
            share = owners.count(name) / len(keys)
            self.assertTrue(0.2 < share < 0.47, "%s owns %.3f" % (name, share))
        heavy = self.config([("b1", 11211, "weight=2"), ("b2", 11212),
                             ("b3", 11213)])
        owners = [l.split(" ")[1]
                  for l in self.route(heavy, keys).splitlines()]
        self.assertGreater(owners.count("b1"), owners.count("b2") * 1.4)
        self.assertGreater(owners.count("b1"), owners.count("b3") * 1.4)

    def test_removing_a_backend_moves_only_its_keys(self):
        keys = ["move-%d" % i for i in range(1000)]
        full = self.config([("b1", 11211), ("b2", 11212), ("b3", 11213)])
        less = self.config([("b1", 11211), ("b3", 11213)])
        before = {l.split(" ")[0]: l.split(" ")[1:]
                  for l in self.route(full, keys).splitlines()}
        after = {l.split(" ")[0]: l.split(" ")[1:]
                 for l in self.route(less, keys).splitlines()}
        for k in keys:
            if before[k][0] != "b2":
                self.assertEqual(after[k][0], before[k][0], k)
            else:
                # the fallback walk predicted where b2's keys go
                self.assertEqual(after[k][0], before[k][1], k)

    def test_ketama_golden_vectors(self):
        servers = [("10.0.1.1", 600), ("10.0.1.2", 300), ("10.0.1.3", 200),
                   ("10.0.1.4", 350), ("10.0.1.5", 1000), ("10.0.1.6", 800),
                   ("10.0.1.7", 950), ("10.0.1.8", 100)]
        text = "[proxy]\nlisten = 127.0.0.1:22122\nhash = ketama\n" \
               "\n[backends]\n"
        for i, (host, w) in enumerate(servers, 1):
            text += "s%d = %s:11211 weight=%d\n" % (i, host, w)
        path = self.write(text)
        host_of = {"s%d" % i: h for i, (h, _) in enumerate(servers, 1)}
        vectors = []
        with open(os.path.join(mctest.testdata(),
                               "ketama-libmemcached.tsv")) as f:
            for line in f:
                if line.startswith("#") or not line.strip():
                    continue
                key, _, _, server = line.rstrip("\n").split("\t")
                if " " in key or key.startswith("-"):
                    continue
                vectors.append((key, server))
        self.assertGreater(len(vectors), 50)
        out = self.route(path, [k for k, _ in vectors]).splitlines()
        self.assertEqual(len(out), len(vectors))
        for (key, server), line in zip(vectors, out):
            tokens = line.split(" ")
            self.assertEqual(tokens[0], key)
            self.assertEqual(host_of[tokens[1]], server, "key %r" % key)


class AnalyzeTest(CliTestCase):

    def test_text(self):
        path = self.write(GOOD)
        r = run_mcring(["-c", path, "--analyze", "--keys", "20000"])
        self.assertEqual(r.returncode, 0, r.stderr)
        for name in ("b1", "b2", "b3"):
            self.assertRegex(r.stdout, r"\b%s\b" % name)

    def test_default_sample(self):
        path = self.write(GOOD)
        r = run_mcring(["-c", path, "--analyze"], timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.strip())

    def find_entries(self, doc, names):
        """The per-backend entries in a JSON report: a list of objects
        naming each backend once, or an object keyed by backend name."""
        found = []

        def walk(node):
            if isinstance(node, list) and node and \
                    all(isinstance(e, dict) for e in node):
                got = []
                for e in node:
                    n = [v for v in e.values() if v in names]
                    if len(n) == 1:
                        got.append((n[0], e))
                if sorted(g[0] for g in got) == sorted(names) \
                        and len(got) == len(node):
                    found.append(dict(got))
            if isinstance(node, dict):
                if sorted(node) == sorted(names) and \
                        all(isinstance(v, dict) for v in node.values()):
                    found.append(dict(node))
                for v in node.values():
                    walk(v)
            elif isinstance(node, list):
                for v in node:
                    walk(v)
        walk(doc)
        return found

    def test_json(self):
        path = self.write(GOOD)
        r = run_mcring(["-c", path, "--analyze", "--keys", "20000",
                        "--json"])
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        self.assertIsInstance(doc, dict)
        names = ["b1", "b2", "b3"]
        found = self.find_entries(doc, names)
        self.assertEqual(len(found), 1,
                         "want one entry per backend with its name in %r"
                         % doc)
        entries = found[0]
        share_fields = set()
        for e in entries.values():
            share_fields |= {k for k, v in e.items()
                             if "share" in k.lower() and "ratio" not in
                             k.lower() and isinstance(v, (int, float))}
        self.assertTrue(share_fields, "no share field in %r" % entries)
        for field in share_fields:
            total = sum(e[field] for e in entries.values())
            self.assertAlmostEqual(total, 1.0, delta=0.01,
                                   msg="%s sums to %s" % (field, total))


class PlanTest(CliTestCase):
    """mcring --plan OLD NEW: the share of keys a change moves."""

    def plan(self, old, new, *extra):
        r = run_mcring(["--plan", old, new] + list(extra), timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def routed_owners(self, path, keys):
        return {k: v[0] for k, v in
                mctest.parse_route(self.route(path, keys)).items()}

    def test_add_one_moves_its_share_only_to_it(self):
        old = self.config([("b%d" % i, 21000 + i) for i in range(1, 11)])
        new = self.config([("b%d" % i, 21000 + i) for i in range(1, 12)])
        doc = json.loads(self.plan(old, new, "--json", "--keys", "20000"))
        self.assertTrue(doc["exact"])
        self.assertEqual({e["to"] for e in doc["moves"]}, {"b11"})
        self.assertAlmostEqual(sum(e["share"] for e in doc["moves"]),
                               doc["moved_share"], delta=1e-6)
        by = {b["name"]: b for b in doc["backends"]}
        self.assertAlmostEqual(by["b11"]["gains"], doc["moved_share"],
                               delta=1e-6)
        self.assertEqual(by["b11"]["old_share"], 0.0)
        self.assertAlmostEqual(by["b11"]["new_share"], doc["moved_share"],
                               delta=1e-6)
        self.assertAlmostEqual(sum(b["new_share"] for b in doc["backends"]),
                               1.0, delta=1e-6)
        # The theory: 1/11 within the ring's spread; the sample agrees.
        self.assertAlmostEqual(doc["moved_share"], 1 / 11, delta=0.015)
        p = doc["moved_share"]
        self.assertLess(abs(doc["sample_moved_share"] - p),
                        4 * (p * (1 - p) / 20000) ** 0.5)
        # And so do the owners --route names for the two files.
        keys = ["plan-%d" % i for i in range(3000)]
        a = self.routed_owners(old, keys)
        b = self.routed_owners(new, keys)
        moved = sum(a[k] != b[k] for k in keys) / len(keys)
        self.assertLess(abs(moved - p), 4 * (p * (1 - p) / len(keys)) ** 0.5)

    def test_reweight_and_remove(self):
        old = self.config([("b1", 21001), ("b2", 21002), ("b3", 21003)])
        new = self.config([("b1", 21001, "weight=2"), ("b2", 21002)])
        doc = json.loads(self.plan(old, new, "--json"))
        by = {b["name"]: b for b in doc["backends"]}
        self.assertAlmostEqual(by["b3"]["loses"], by["b3"]["old_share"],
                               delta=1e-6)
        self.assertEqual(by["b3"]["new_share"], 0.0)
        self.assertAlmostEqual(by["b1"]["new_share"], 2 / 3, delta=0.03)
        self.assertEqual(self.plan(old, old, "--json").count('"from"'), 0)
        text = self.plan(old, new)
        self.assertIn("keys moved:", text)
        self.assertRegex(text, r"b3\s+b1\s+0\.\d{6}")

    def test_hash_change_is_sampled_only(self):
        old = self.config([("b1", 21001), ("b2", 21002)])
        new = self.config([("b1", 21001), ("b2", 21002)], hash_="ketama")
        doc = json.loads(self.plan(old, new, "--json", "--keys", "5000"))
        self.assertFalse(doc["exact"])
        self.assertIsNone(doc["moved_share"])
        self.assertGreater(doc["sample_moved_share"], 0.2)
        self.assertIn("sample only", self.plan(old, new))

    def test_usage_errors(self):
        good = self.config([("b1", 21001)])
        for args in (["--plan", good], ["--plan"], ["--plan", good, good,
                                                    good],
                     ["--plan", good, good, "--route", "k"]):
            r = run_mcring(args)
            self.assertEqual(r.returncode, 2, args)
        r = run_mcring(["--plan", good, os.path.join(self.tmpdir, "none")])
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot open", r.stderr)


class DaemonTest(CliTestCase):
    """-d detaches, -p writes the pid; start-up errors reach the caller."""

    def wait_gone(self, pid, timeout=10.0):
        def gone():
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            return False
        mctest.wait_for(gone, timeout, "pid %d to exit" % pid)

    def test_daemonize_with_pidfile(self):
        port = mctest.free_port()
        path = self.write("[proxy]\nlisten = 127.0.0.1:%d\nthreads = 1\n"
                          "[backends]\nmc = 127.0.0.1:%d\n"
                          % (port, mctest.free_port()))
        pidfile = os.path.join(self.tmpdir, "mcring.pid")
        r = run_mcring(["-c", path, "-d", "-p", pidfile])
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(pidfile) as f:
            pid = int(f.read().strip())
        self.addCleanup(lambda: os.kill(pid, signal.SIGKILL)
                        if os.path.exists("/proc/%d" % pid) else None)
        self.assertTrue(mctest.can_connect(port))
        with mctest.Client(port) as c:
            self.assertTrue(c.version().startswith(b"VERSION "))
        os.kill(pid, signal.SIGTERM)
        self.wait_gone(pid)
        self.assertFalse(os.path.exists(pidfile), "pidfile left behind")

    def test_daemon_start_error_is_reported(self):
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        self.addCleanup(busy.close)
        path = self.write("[proxy]\nlisten = 127.0.0.1:%d\n"
                          "[backends]\nmc = 127.0.0.1:%d\n"
                          % (busy.getsockname()[1], mctest.free_port()))
        r = run_mcring(["-c", path, "-d"])
        self.assertEqual(r.returncode, 1)
        self.assertIn("Address already in use", r.stderr)


class _StubHandler(http.server.BaseHTTPRequestHandler):
    """Answers like the admin API would, from the server's `answers` table
    keyed by (method, path); records every request it saw."""

    protocol_version = "HTTP/1.1"

    def _any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode() if n else ""
        self.server.seen.append((self.command, self.path, body,
                                 self.headers.get("Authorization")))
        code, doc = self.server.answers.get((self.command, self.path),
                                            (404, {"error": "not found"}))
        data = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_DELETE = _any

    def log_message(self, *args):
        pass


class _UnixStub(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        conn, _ = super().get_request()
        return conn, ("unix", 0)


class _TcpStub(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


STUB_BACKENDS = [
    {"name": "mc1", "address": "127.0.0.1:11211", "weight": 1.0,
     "state": "up", "share": 0.25, "requests": 12, "errors": 0},
    {"name": "long-backend-name", "address": "[::1]:11212", "weight": 3.0,
     "state": "maint", "share": 0.75, "requests": 5, "errors": 2},
]


class CtlTest(CliTestCase):
    """`mcring ctl`: usage, unreachable API, and a stub of the API."""

    def ctl(self, args, env=None):
        full = dict(os.environ)
        full.pop("MCRING_TOKEN", None)
        full.update(env or {})
        return subprocess_run([mctest.mcring_path(), "ctl"] + list(args),
                              full)

    def stub(self, unix=False):
        if unix:
            path = os.path.join(self.tmpdir, "admin.sock")
            server = _UnixStub(path, _StubHandler)
            addr = path
        else:
            server = _TcpStub(("127.0.0.1", 0), _StubHandler)
            addr = "127.0.0.1:%d" % server.server_address[1]
        server.seen = []
        server.answers = {
            ("GET", "/backends"): (200, STUB_BACKENDS),
            ("GET", "/route?key=k1&key=k%202"): (200, [
                {"key": "k1", "owner": "mc1", "fallbacks": ["mc2", "mc3"],
                 "target": "mc1"},
                {"key": "k 2", "owner": "mc2", "fallbacks": ["mc1"],
                 "target": None}]),
            ("POST", "/backends"): (201, {"name": "mc9",
                                          "address": "127.0.0.1:1",
                                          "weight": 0.5, "state": "new"}),
            ("PATCH", "/backends/mc1"): (200, dict(STUB_BACKENDS[0],
                                                   state="maint")),
            ("DELETE", "/backends/mc1"): (200, {"removed": "mc1"}),
            ("DELETE", "/backends/nope"): (404,
                                           {"error": "no backend 'nope'"}),
            ("POST", "/reload"): (400, {"applied": False,
                                        "error": "/x.ini:3: bad"}),
        }
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        return server, addr

    def test_help(self):
        for opt in ("-h", "--help"):
            r = self.ctl([opt])
            self.assertEqual(r.returncode, 0, r.stderr)
            for word in ("backends", "route KEY", "add NAME HOST:PORT",
                         "remove", "weight", "maint", "activate", "reload",
                         "config", "--json", "-a", "-T"):
                self.assertIn(word, r.stdout)

    def test_usage_errors_exit_2(self):
        for args in ([], ["bogus"], ["route"], ["remove"],
                     ["add", "x"], ["add", "x", "h:1", "w=2"],
                     ["weight", "mc1", "heavy"], ["--no-such-option"]):
            r = self.ctl(args)
            self.assertEqual(r.returncode, 2, args)
            self.assertTrue(r.stderr.strip(), args)
            self.assertEqual(r.stdout, "", args)

    def test_nothing_listening_exits_2(self):
        port = mctest.free_port()
        r = self.ctl(["-a", "127.0.0.1:%d" % port, "backends"])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("cannot talk to the admin API at 127.0.0.1:%d" % port,
                      r.stderr)
        r = self.ctl(["-a", os.path.join(self.tmpdir, "none.sock"), "ring"])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("No such file", r.stderr)
        r = self.ctl(["-a", "no-port", "backends"])
        self.assertEqual(r.returncode, 2, r.stderr)

    def check_stub(self, unix):
        server, addr = self.stub(unix)
        r = self.ctl(["-a", addr, "-T", "tok", "backends"])
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["NAME", "ADDRESS", "WEIGHT",
                                            "STATE", "SHARE", "REQUESTS",
                                            "ERRORS"])
        self.assertEqual(lines[1].split(), ["mc1", "127.0.0.1:11211", "1",
                                            "up", "25.00%", "12", "0"])
        self.assertEqual(lines[2].split(), ["long-backend-name",
                                            "[::1]:11212", "3", "maint",
                                            "75.00%", "5", "2"])
        self.assertEqual(len({len(l) for l in lines}), 1, "not aligned")
        self.assertEqual(server.seen[-1], ("GET", "/backends", "",
                                           "Bearer tok"))

        r = self.ctl(["-a", addr, "--json", "backends"],
                     env={"MCRING_TOKEN": "envtok"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), STUB_BACKENDS)
        self.assertEqual(server.seen[-1][3], "Bearer envtok")

        r = self.ctl(["-a", addr, "route", "k1", "k 2"])
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = [l.split() for l in r.stdout.splitlines()]
        self.assertEqual(rows[1], ["k1", "mc1", "mc1", "mc2,mc3"])
        self.assertEqual(rows[2], ["k", "2", "mc2", "-", "mc1"])
        self.assertIsNone(server.seen[-1][3])

        r = self.ctl(["-a", addr, "add", "mc9", "127.0.0.1:1", "weight=0.5"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("mc9", r.stdout)
        method, path, body, _ = server.seen[-1]
        self.assertEqual((method, path), ("POST", "/backends"))
        self.assertEqual(json.loads(body), {"name": "mc9",
                                            "address": "127.0.0.1:1",
                                            "weight": 0.5})
        for args, want in ((["weight", "mc1", "2.25"], {"weight": 2.25}),
                           (["maint", "mc1"], {"state": "maint"}),
                           (["activate", "mc1"], {"state": "active"})):
            r = self.ctl(["-a", addr] + args)
            self.assertEqual(r.returncode, 0, r.stderr)
            method, path, body, _ = server.seen[-1]
            self.assertEqual((method, path), ("PATCH", "/backends/mc1"))
            self.assertEqual(json.loads(body), want)

        r = self.ctl(["-a", addr, "remove", "mc1"])
        self.assertEqual((r.returncode, r.stdout), (0, "removed mc1\n"))
        r = self.ctl(["-a", addr, "remove", "nope"])
        self.assertEqual(r.returncode, 1)
        self.assertIn("no backend 'nope' (HTTP 404)", r.stderr)
        r = self.ctl(["-a", addr, "reload"])
        self.assertEqual(r.returncode, 1)
        self.assertIn("/x.ini:3: bad", r.stderr)

    def test_tcp_stub(self):
        self.check_stub(unix=False)

    def test_unix_socket_stub(self):
        self.check_stub(unix=True)


def subprocess_run(argv, env):
    return subprocess.run(argv, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=15, text=True)


if __name__ == "__main__":
    mctest.main(needs_memcached=False)
