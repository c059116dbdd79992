#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Integration tests: GET /metrics, /stats, /health and /ready.

Real memcached backends behind one mcring with the admin API. /metrics is
parsed with a real Prometheus parser (Debian's python3-prometheus-client,
run with the system's python3) and, when Debian's prometheus package is
installed, checked with `promtool check metrics`:

  - every family has HELP and TYPE; the counters agree with the requests
    the test sent (per command, per backend), and each backend's latency
    histogram counts exactly its requests (buckets cumulative, +Inf equal
    to the count);
  - scrapes under load cost the clients nothing (every reply is right);
  - /health is 200 while a backend is UP, 503 (with the reason) once all
    are down, 200 again when they are back; /ready is 200 once started;
  - [admin] metrics_without_token lets /metrics, /health and /ready be
    read without the token, nothing else;
  - /stats is `stats` and `stats backends` as JSON; `stats backends` has
    latency quantiles and requests in flight.
"""

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest  # noqa: E402
import test_admin  # noqa: E402
from mctest import wait_for  # noqa: E402

SYSTEM_PYTHON = "/usr/bin/python3"

# Parses the exposition on stdin with prometheus_client's own parser.
PARSE = r'''
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for fam in text_string_to_metric_families(sys.stdin.read()):
    out.append({"name": fam.name, "type": fam.type,
                "help": fam.documentation,
                "samples": [[s.name, s.labels, s.value] for s in fam.samples]})
print(json.dumps(out))
'''


def parse(text):
    """[{name, type, help, samples: [[name, labels, value]]}] of text."""
    r = subprocess.run([SYSTEM_PYTHON, "-c", PARSE], input=text.encode(),
                       capture_output=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("prometheus_client cannot parse /metrics: %s"
                             % r.stderr.decode()[-2000:])
    return json.loads(r.stdout)


def sample(families, name, **labels):
    """The value of the one sample called name with these labels."""
    got = [s[2] for f in families for s in f["samples"]
           if s[0] == name and all(s[1].get(k) == v
                                   for k, v in labels.items())]
    if len(got) != 1:
        raise AssertionError("%d samples %s %r" % (len(got), name, labels))
    return got[0]


class MetricsTestCase(test_admin.AdminTestCase):
    PROXY = {"threads": 2}

    def metrics(self, token=test_admin.TOKEN):
        code, r, text = self.api("GET", "/metrics", token=token)
        self.assertEqual(code, 200, text)
        self.assertTrue(r.getheader("Content-Type").startswith(
            "text/plain; version=0.0.4"))
        return text


class MetricsTest(MetricsTestCase):

    def test_counters_agree_with_the_load(self):
        keys = ["mk-%d" % i for i in range(300)]
        errors = []
        done = {"sets": 0, "gets": 0}
        accepted = sample(parse(self.metrics()),
                          "mcring_client_connections_accepted_total")
        lock = threading.Lock()

        def load(n):
            try:
                with self.mcring.client() as c:
                    for i in range(n):
                        k = keys[i % len(keys)]
                        if c.set(k, b"v-" + k.encode()) != b"STORED":
                            errors.append(("set", k))
                        if c.get(k) != b"v-" + k.encode():
                            errors.append(("get", k))
                    with lock:
                        done["sets"] += n
                        done["gets"] += n
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))

        # Load while scraping: the scrapes must not disturb the clients.
        ts = [threading.Thread(target=load, args=(600,)) for _ in range(3)]
        for t in ts:
            t.start()
        scrapes = 0
        while any(t.is_alive() for t in ts) or scrapes < 3:
            parse(self.metrics())
            scrapes += 1
        for t in ts:
            t.join()
        self.assertEqual(errors, [])
        text = self.metrics()
        fams = parse(text)
        for f in fams:
            self.assertTrue(f["help"], f["name"])
            self.assertIn(f["type"], ("counter", "gauge", "histogram"),
                          f["name"])
        self.assertEqual(sample(fams, "mcring_command_requests_total",
                                command="set"), done["sets"])
        self.assertEqual(sample(fams, "mcring_command_requests_total",
                                command="get"), done["gets"])
        self.assertEqual(sample(fams, "mcring_cmd_get_total"), done["gets"])
        self.assertEqual(sample(fams, "mcring_command_hits_total",
                                command="get"), done["gets"])
        self.assertEqual(sample(fams, "mcring_command_misses_total",
                                command="get"), 0)
        self.assertEqual(sample(fams, "mcring_client_connections_accepted_"
                                "total"), accepted + 3)
        requests = 0
        for n in self.names():
            req = sample(fams, "mcring_backend_requests_total", backend=n)
            count = sample(fams, "mcring_backend_latency_seconds_count",
                           backend=n)
            # Every request answered: one latency each.
            self.assertEqual(count, req, n)
            buckets = [(float(s[1]["le"]), s[2]) for f in fams
                       for s in f["samples"]
                       if s[0] == "mcring_backend_latency_seconds_bucket"
                       and s[1]["backend"] == n]
            self.assertEqual(len(buckets), 17)
            self.assertEqual(buckets[-1], (float("inf"), count))
            self.assertEqual([b for b, _ in buckets],
                             sorted(b for b, _ in buckets))
            self.assertEqual([v for _, v in buckets],
                             sorted(v for _, v in buckets))
            self.assertEqual(buckets[0][0], 50e-6)
            self.assertEqual(buckets[-2][0], 5.0)
            self.assertGreater(sample(fams, "mcring_backend_latency_seconds"
                                      "_sum", backend=n), 0)
            self.assertEqual(sample(fams, "mcring_backend_state", backend=n,
                                    state="UP"), 1)
            self.assertEqual(sample(fams, "mcring_backend_state", backend=n,
                                    state="DOWN"), 0)
            self.assertEqual(sample(fams, "mcring_backend_errors_total",
                                    backend=n, reason="timeout"), 0)
            self.assertEqual(sample(fams, "mcring_backend_in_flight",
                                    backend=n), 0)
            self.assertGreater(sample(fams, "mcring_backend_bytes_sent_total",
                                      backend=n), 0)
            requests += req
        # A set and a get each, one backend each.
        self.assertEqual(requests, done["sets"] + done["gets"])
        self.assertAlmostEqual(sum(sample(fams, "mcring_backend_ring_share",
                                          backend=n) for n in self.names()),
                               1.0, places=3)
        self.assertGreater(sample(fams, "mcring_process_resident_memory_"
                                  "bytes"), 1 << 20)
        self.assertGreater(sample(fams, "mcring_process_open_fds"), 5)
        self.assertGreater(sample(fams, "mcring_process_start_time_seconds"),
                           1.7e9)
        self.assertEqual(sample(fams, "mcring_migration_state",
                                state="idle"), 1)
        if shutil.which("promtool"):
            r = subprocess.run(["promtool", "check", "metrics"],
                               input=text.encode(), capture_output=True,
                               timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_errors_by_reason(self):
        victim = self.memcached[0]
        victim.stop()
        with self.mcring.client() as c:
            for i in range(50):
                # A miss, or SERVER_ERROR for a key of the dead backend
                # before it is marked DOWN.
                c.send(b"get err-%d\r\n" % i)
                self.assertIn(c.readline(),
                              (b"END", b"SERVER_ERROR backend unavailable"))
        self.wait_state([victim.name], "DOWN")
        fams = parse(self.metrics())
        self.assertEqual(sample(fams, "mcring_backend_state",
                                backend=victim.name, state="DOWN"), 1)
        self.assertGreaterEqual(sample(fams, "mcring_backend_transitions_"
                                       "total", backend=victim.name), 1)
        errors = sum(s[2] for f in fams for s in f["samples"]
                     if s[0] == "mcring_backend_errors_total"
                     and s[1]["backend"] == victim.name)
        st = mctest.proxy_stats(self.mcring.port, "backends")
        self.assertEqual(errors, int(st["%s:errors" % victim.name]))

    def test_stats_json_is_stats(self):
        with self.mcring.client() as c:
            c.set("j", b"1")
            c.get("j")
        doc = self.ok("GET", "/stats")
        st = mctest.proxy_stats(self.mcring.port)
        for k in ("cmd_get", "cmd_set", "get_hits", "threads", "backends",
                  "version", "max_connections"):
            want = st[k]
            got = doc["stats"][k]
            self.assertEqual(str(got), want, k)
        self.assertIsInstance(doc["stats"]["cmd_get"], int)
        sb = mctest.proxy_stats(self.mcring.port, "backends")
        for n in self.names():
            b = doc["backends"][n]
            self.assertEqual(b["state"], "UP")
            self.assertEqual(b["address"], sb["%s:address" % n])
            for k in ("requests", "latency_p50_us", "latency_p99_us",
                      "in_flight"):
                self.assertIn(k, b)
                self.assertIn("%s:%s" % (n, k), sb)
        # Quantiles are within the histogram's range once there is traffic.
        with self.mcring.client() as c:
            for i in range(200):
                c.get("q-%d" % i)
        sb = mctest.proxy_stats(self.mcring.port, "backends")
        for n in self.names():
            p50 = float(sb["%s:latency_p50_us" % n])
            p99 = float(sb["%s:latency_p99_us" % n])
            self.assertTrue(0 < p50 <= p99 <= 5e6, (n, p50, p99))


class DashboardTest(MetricsTestCase):

    def test_dashboard_names_only_exported_metrics(self):
        """etc/grafana/mcring.json is valid JSON, and every metric its
        queries name is one /metrics exports."""
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            "..", "etc", "grafana", "mcring.json")
        with open(path) as f:
            dash = json.load(f)
        with self.mcring.client() as c:
            c.set("d", b"1")
        fams = parse(self.metrics())
        # Sample names, and the families with no sample yet (hot keys).
        exported = {s[0] for f in fams for s in f["samples"]} | {
            f["name"] for f in fams if f["type"] == "gauge"}
        exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
        self.assertGreaterEqual(len(dash["panels"]), 8)
        named = set()
        for e in exprs:
            named |= set(re.findall(r"\bmcring_[a-z0-9_]+", e))
        for v in dash["templating"]["list"]:
            named |= set(re.findall(r"\bmcring_[a-z0-9_]+",
                                    v.get("query", "")))
        self.assertGreater(len(named), 15)
        self.assertEqual(sorted(named - exported), [])
        for p in dash["panels"]:
            self.assertTrue(p["title"] and p["targets"], p)
            for t in p["targets"]:
                self.assertEqual(t["expr"].count("("), t["expr"].count(")"),
                                 t["expr"])
        # The families a fleet dashboard needs are all there.
        for want in ("mcring_command_requests_total",
                     "mcring_hotkey_requests_per_second",
                     "mcring_backend_errors_total",
                     "mcring_backend_latency_seconds_bucket",
                     "mcring_backend_state", "mcring_client_connections"):
            self.assertIn(want, named)


class HotKeysTest(MetricsTestCase):
    PROXY = {"threads": 2, "hotkeys": 16, "hotkey_sample": 5,
             "hotkey_alert": 10}

    def test_finds_the_hot_keys(self):
        """A few keys take most requests: exactly those are found, their
        shares of their backends' requests within 20% of the truth."""
        hot = {"hot-0": 25, "hot-1": 15, "hot-2": 8}     # percent
        cold = ["cold-%d" % i for i in range(5000)]
        rnd = random.Random(3)
        stream = []
        for _ in range(30000):
            r = rnd.random() * 100
            acc = 0
            for k, pct in hot.items():
                acc += pct
                if r < acc:
                    stream.append(k)
                    break
            else:
                stream.append(rnd.choice(cold))
        lines = ["%s = 127.0.0.1:%d" % (m.name, m.port)
                 for m in self.memcached[:self.NBACKENDS]]
        owner = {k: r[0] for k, r in
                 self.expected_routes(lines, list(hot) + cold).items()}
        with self.mcring.client() as c:
            for k in hot:
                c.set(k, b"v")
            for i in range(0, len(stream), 100):
                c.get_multi(stream[i:i + 100])
        per_backend = {}
        for k in stream:
            per_backend[owner[k]] = per_backend.get(owner[k], 0) + 1
        truth = {k: stream.count(k) / per_backend[owner[k]] for k in hot}
        st = mctest.proxy_stats(self.mcring.port, "hotkeys")
        top = [st["hotkey:%d:key" % i] for i in (1, 2, 3)]
        self.assertEqual(top, ["hot-0", "hot-1", "hot-2"], st)
        for i, k in enumerate(top, 1):
            share = float(st["hotkey:%d:share" % i])
            self.assertLess(abs(share - truth[k]) / truth[k], 0.2,
                            (k, share, truth[k]))
            self.assertEqual(st["hotkey:%d:backend" % i], owner[k])
            self.assertGreater(float(st["hotkey:%d:rate" % i]), 0)
        doc = self.ok("GET", "/hotkeys")
        self.assertEqual([e["key"] for e in doc["keys"][:3]], top)
        self.assertEqual((doc["hotkeys"], doc["sample"]), (16, 5))
        self.assertLessEqual(len(doc["keys"]), 16)
        fams = parse(self.metrics())
        self.assertGreater(sample(fams, "mcring_hotkey_backend_share",
                                  key="hot-0", backend=owner["hot-0"]), 0.1)
        # Over hotkey_alert (10%): logged, once a window has passed.
        wait_for(lambda: "hot key 'hot-0'" in self.mcring.log_text(), 15,
                 "the hot-key warning")
        self.assertNotIn("hot key 'cold-", self.mcring.log_text())


class NoHotKeysTest(MetricsTestCase):
    PROXY = {"threads": 2, "hotkeys": 0}

    def test_off(self):
        with self.mcring.client() as c:
            for _ in range(500):
                c.get("k")
        self.assertEqual(self.ok("GET", "/hotkeys")["keys"], [])
        st = mctest.proxy_stats(self.mcring.port, "hotkeys")
        self.assertEqual(st, {})


class LogTest(unittest.TestCase):
    """-o FILE and SIGUSR1; repeated messages held back."""

    def setUp(self):
        self.tmpdir = tempfile.mkdtemp(prefix="mctest-log-")
        self.addCleanup(shutil.rmtree, self.tmpdir, True)
        self.memcached = [mctest.Memcached(self.tmpdir, name="b%d" % i)
                          for i in (1, 2)]
        for m in self.memcached:
            m.start()
            self.addCleanup(m.stop)

    def mcring(self, args, **kw):
        r = mctest.Mcring(self.tmpdir,
                          [(m.name, m.port) for m in self.memcached], **kw)
        r.args = args
        r.start()
        self.addCleanup(r.stop)
        return r

    def read(self, path):
        with open(path, errors="replace") as f:
            return f.read()

    def test_log_file_and_reopen(self):
        path = os.path.join(self.tmpdir, "mcring.out")
        r = self.mcring(["-o", path])
        wait_for(lambda: "listening on" in self.read(path), 5,
                 "the start-up line in the log file")
        self.assertNotIn("listening on", r.log_text())  # not on stderr
        # logrotate: the file is moved, then SIGUSR1.
        os.rename(path, path + ".1")
        r.proc.send_signal(signal.SIGUSR1)
        wait_for(lambda: os.path.exists(path) and
                 "log file reopened" in self.read(path), 5,
                 "the reopened log file")
        self.assertIn("listening on", self.read(path + ".1"))
        self.assertNotIn("listening on", self.read(path))
        r.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reloading" in self.read(path), 5,
                 "a reload logged to the new file")

    def test_log_file_that_cannot_be_opened(self):
        ini = os.path.join(self.tmpdir, "one.ini")
        with open(ini, "w") as f:
            f.write("[proxy]\nlisten = 127.0.0.1:%d\n[backends]\nb1 = "
                    "127.0.0.1:%d\n" % (mctest.free_port(),
                                         self.memcached[0].port))
        res = mctest.run_mcring(["-c", ini, "-o",
                                 os.path.join(self.tmpdir, "no", "such")])
        self.assertEqual(res.returncode, 1)
        self.assertIn("log file", res.stderr)

    def test_refused_connections_are_held_back(self):
        """Over max_connections, one line per refused client would flood
        the log: at most 10 a minute."""
        path = os.path.join(self.tmpdir, "refused.out")
        r = self.mcring(["-v", "-o", path], proxy={"max_connections": 1})
        kept = []

        def take_the_one():
            # The harness's own probe may still hold the slot a moment.
            s = socket.create_connection(("127.0.0.1", r.port))
            s.sendall(b"version\r\n")
            if s.recv(100).startswith(b"VERSION"):
                kept.append(s)
                return True
            s.close()
            return False
        wait_for(take_the_one, 5, "the one connection allowed")
        self.addCleanup(kept[0].close)
        before = self.read(path).count("connection refused")
        for _ in range(40):
            s = socket.create_connection(("127.0.0.1", r.port))
            s.recv(100)
            s.close()
        wait_for(lambda: self.read(path).count("connection refused") >= 10,
                 5, "the refusals logged")
        text = self.read(path)
        self.assertEqual(text.count("connection refused"), 10,
                         (before, text[-2000:]))
        self.assertIn("client (127.0.0.1:", text)

    def check_failures(self, r):
        return int(mctest.proxy_stats(r.port, "backends")["b1:check_failures"])

    def test_down_backend_probes_are_not_logged_one_by_one(self):
        path = os.path.join(self.tmpdir, "down.out")
        r = self.mcring(["-vv", "-o", path],
                        health={"interval_ms": 20, "timeout_ms": 100,
                                "fall": 2, "rise": 1})
        victim = self.memcached[0]
        victim.stop()
        wait_for(lambda: "UP -> DOWN" in self.read(path), 10, "DOWN")
        # 50 probes a second fail from here on: none of them is a line.
        n = self.read(path).count("probe failed")
        failed = self.check_failures(r)
        wait_for(lambda: self.check_failures(r) >= failed + 25, 10,
                 "25 more failed checks")
        self.assertEqual(self.read(path).count("probe failed"), n)
        self.assertLessEqual(n, 2)
        self.assertIn("backend b1 (127.0.0.1:%d)" % victim.port,
                      self.read(path))
        self.assertTrue(r.proc.poll() is None)


class HealthTest(MetricsTestCase):
    # Quick to see a backend die and come back.
    HEALTH = {"interval_ms": 50, "timeout_ms": 200, "rise": 1, "fall": 1}

    def test_health_flips_with_the_backends(self):
        code, _, doc = self.api("GET", "/health")
        self.assertEqual((code, doc["status"]), (200, "ok"), doc)
        # Ready once every backend had its first check.
        wait_for(lambda: self.api("GET", "/ready")[0] == 200, 5, "ready")
        code, _, doc = self.api("GET", "/ready")
        self.assertEqual((code, doc["status"]), (200, "ok"), doc)
        for m in self.memcached[:self.NBACKENDS]:
            m.stop()
        got = {}

        def down():
            got["r"] = self.api("GET", "/health")
            return got["r"][0] == 503
        wait_for(down, 10, "/health to be 503 (%r)" % (got.get("r"),))
        self.assertEqual(got["r"][2]["status"], "unavailable")
        self.assertIn("no backend is UP", got["r"][2]["reason"])
        # Started, still: ready does not flip with the backends.
        self.assertEqual(self.api("GET", "/ready")[0], 200)
        self.assertEqual(self.api("POST", "/health")[0], 405)
        for m in self.memcached[:self.NBACKENDS]:
            m.start()
        wait_for(lambda: self.api("GET", "/health")[0] == 200, 20,
                 "/health to be 200 again")


class OpenMetricsTest(MetricsTestCase):
    ADMIN_EXTRA = {"metrics_without_token": "yes"}

    def test_metrics_without_token(self):
        self.assertIn("mcring_backend_requests_total",
                      self.metrics(token=None))
        self.assertEqual(self.api("GET", "/health", token=None)[0], 200)
        wait_for(lambda: self.api("GET", "/ready", token=None)[0] == 200, 5,
                 "ready")
        for path in ("/stats", "/backends", "/config", "/migration"):
            self.assertEqual(self.api("GET", path, token=None)[0], 401, path)
        self.assertIn("metrics_without_token = yes", self.config_text())


class ClosedMetricsTest(MetricsTestCase):

    def test_token_needed_by_default(self):
        for path in ("/metrics", "/health", "/ready", "/stats"):
            self.assertEqual(self.api("GET", path, token=None)[0], 401, path)


if __name__ == "__main__":
    mctest.main()
