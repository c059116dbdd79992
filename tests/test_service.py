#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Integration tests: mcring as a service.

systemd's readiness protocol (a datagram socket of the test's own as
$NOTIFY_SOCKET: READY=1 once listening, STATUS= as backends go and come,
RELOADING=1 and READY=1 around a reload, STOPPING=1), -u USER, and the
generated systemd unit (systemd-analyze verify, and its exposure score
under 3.0).
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest  # noqa: E402
from mctest import ClusterTestCase, wait_for  # noqa: E402


def built_with(feature):
    r = mctest.run_mcring(["-V"])
    return feature in r.stdout.split()


class NotifyTest(mctest.FreshClusterTestCase):
    NBACKENDS = 3
    HEALTH = {"interval_ms": 100, "fall": 2, "rise": 1}

    def setUp(self):
        if not built_with("sd_notify"):
            self.skipTest("built without libsystemd")
        self.sockdir = tempfile.mkdtemp(prefix="mctest-notify-")
        self.addCleanup(shutil.rmtree, self.sockdir, True)
        self.path = os.path.join(self.sockdir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(10)
        self.addCleanup(self.sock.close)
        old = os.environ.get("NOTIFY_SOCKET")
        os.environ["NOTIFY_SOCKET"] = self.path
        try:
            super().setUp()
        finally:
            if old is None:
                del os.environ["NOTIFY_SOCKET"]
            else:
                os.environ["NOTIFY_SOCKET"] = old

    def next_message(self):
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.split("\n") if line)

    def wait_message(self, pred, what):
        seen = []
        while True:
            try:
                m = self.next_message()
            except socket.timeout:
                self.fail("no %s; got %r" % (what, seen))
            seen.append(m)
            if pred(m):
                return m

    def test_ready_status_reload_stopping(self):
        m = self.wait_message(lambda m: m.get("READY") == "1", "READY=1")
        self.assertIn("STATUS", m)
        if m["STATUS"] != "3 of 3 backends UP":
            self.wait_message(
                lambda m: m.get("STATUS") == "3 of 3 backends UP", "3 of 3 UP")
        self.cluster.backend(self.cluster.names[0]).stop()
        self.wait_message(lambda m: m.get("STATUS") == "2 of 3 backends UP",
                          "the status after a backend died")
        self.cluster.mcring.send_signal(signal.SIGHUP)
        self.wait_message(lambda m: m.get("RELOADING") == "1", "RELOADING=1")
        m = self.wait_message(lambda m: "READY" in m, "READY=1 after reload")
        self.assertEqual(m, {"READY": "1", "STATUS": "2 of 3 backends UP"})
        self.cluster.mcring.send_signal(signal.SIGTERM)
        self.wait_message(lambda m: m.get("STOPPING") == "1", "STOPPING=1")


class UserTest(ClusterTestCase):
    """-u USER: started as root, mcring serves as that user."""
    CLUSTER_ARGS = {"nbackends": 1}
    NEEDS_MCRING = True

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("needs root")
        try:
            self.nobody = pwd.getpwnam("nobody")
        except KeyError:
            self.skipTest("no user nobody")
        super().setUp()

    def test_runs_as_the_user(self):
        m = mctest.Mcring(self.cluster.tmpdir,
                          [("b1", self.cluster.backends[0].port)],
                          name="mcring-u")
        m.args = ["-u", "nobody"]
        m.start()
        self.addCleanup(m.stop)
        def ids():
            with open("/proc/%d/status" % m.pid) as f:
                return {line.split(":")[0]: line.split()[1:]
                        for line in f if line.startswith(("Uid:", "Gid:"))}
        # (it listens first, then drops root)
        wait_for(lambda: ids()["Uid"] == [str(self.nobody.pw_uid)] * 4, 10,
                 "mcring to run as nobody")
        self.assertEqual(ids()["Gid"], [str(self.nobody.pw_gid)] * 4)
        c = m.client()
        self.assertEqual(c.set("u", "v"), b"STORED")
        self.assertEqual(c.get("u"), b"v")
        c.close()
        self.assertIn("running as nobody", m.log_text())

    def test_unknown_user(self):
        path = os.path.join(self.cluster.tmpdir, "u.ini")
        with open(path, "w") as f:
            f.write(mctest.format_config(mctest.free_port(),
                                         [("b1", 1)]))
        r = mctest.run_mcring(["-c", path, "-u", "no-such-user-here"])
        self.assertEqual(r.returncode, 1)
        self.assertIn("-u no-such-user-here: no such user", r.stderr)


class UnitTest(unittest.TestCase):
    """The unit made from etc/mcring.service.in: systemd-analyze verify
    finds nothing (with the paths pointed at this build), and its
    exposure score is under 3.0."""

    def setUp(self):
        self.unit = os.path.join(os.path.dirname(mctest.mcring_path()),
                                 "etc", "mcring.service")
        if not os.path.exists(self.unit):
            self.skipTest("no generated unit at %s" % self.unit)
        if shutil.which("systemd-analyze") is None:
            self.skipTest("no systemd-analyze")
        self.tmp = tempfile.mkdtemp(prefix="mctest-unit-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def local_unit(self):
        """The unit with this build's binary and a config that exists,
        and the man pages where man(1) finds them."""
        with open(self.unit) as f:
            text = f.read()
        exec_start = [line for line in text.splitlines()
                      if line.startswith("ExecStart=")][0]
        binary, _, config = exec_start[len("ExecStart="):].split(" ")
        conf = os.path.join(self.tmp, "mcring.ini")
        with open(conf, "w") as f:
            f.write(mctest.format_config(11311, [("b1", 11211)]))
        text = text.replace(binary, mctest.mcring_path()).replace(config,
                                                                  conf)
        path = os.path.join(self.tmp, "mcring.service")
        with open(path, "w") as f:
            f.write(text)
        mandir = os.path.join(os.path.dirname(mctest.mcring_path()), "man")
        for page, section in (("mcring.8", "man8"), ("mcring.ini.5", "man5")):
            os.makedirs(os.path.join(self.tmp, "man", section), exist_ok=True)
            shutil.copy(os.path.join(mandir, page),
                        os.path.join(self.tmp, "man", section))
        return path

    def test_verify(self):
        path = self.local_unit()
        env = dict(os.environ, MANPATH=os.path.join(self.tmp, "man"))
        r = subprocess.run(["systemd-analyze", "verify", path], env=env,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stderr.strip(), "")

    def test_type_notify_and_reload(self):
        with open(self.unit) as f:
            lines = f.read().splitlines()
        self.assertIn("Type=notify", lines)
        self.assertIn("ExecReload=/bin/kill -HUP $MAINPID", lines)
        self.assertIn("User=mcring", lines)

    def test_exposure_under_three(self):
        path = self.local_unit()
        r = subprocess.run(["systemd-analyze", "security", "--offline=yes",
                            path], capture_output=True, text=True, timeout=60)
        last = [line for line in r.stdout.splitlines()
                if "Overall exposure level" in line]
        self.assertTrue(last, r.stdout + r.stderr)
        score = float(last[-1].split(":")[1].split()[0])
        sys.stderr.write("[exposure %.1f] " % score)
        self.assertLess(score, 3.0)


class InstallTest(unittest.TestCase):
    """make install (into a DESTDIR): the daemon, the man pages, the
    dashboard, the unit and the sample config with the configured paths;
    a second install keeps an edited config and puts the sample beside
    it."""

    def setUp(self):
        self.build = os.path.dirname(mctest.mcring_path())
        if not os.path.exists(os.path.join(self.build, "Makefile")):
            self.skipTest("no build tree at %s" % self.build)
        self.dest = tempfile.mkdtemp(prefix="mctest-install-")
        self.addCleanup(shutil.rmtree, self.dest, True)

    def make(self, *args):
        r = subprocess.run(["make", "-s", "-C", self.build] + list(args),
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r.stdout

    def var(self, name):
        out = subprocess.run(["make", "-s", "--no-print-directory", "-C",
                              self.build, "print-paths"],
                             capture_output=True, text=True, timeout=60)
        paths = dict(line.split("=", 1) for line in out.stdout.splitlines()
                     if "=" in line)
        return paths.get(name, "")

    def test_install_twice_keeps_the_config(self):
        self.make("install", "DESTDIR=" + self.dest)
        sbindir, configdir = self.var("sbindir"), self.var("configdir")
        mandir, pkgdatadir = self.var("mandir"), self.var("pkgdatadir")
        unitdir = self.var("systemdsystemunitdir")
        root = self.dest

        def at(path):
            return root + path
        self.assertTrue(os.access(at(sbindir + "/mcring"), os.X_OK))
        conf = at(configdir + "/mcring.ini")
        with open(conf) as f:
            text = f.read()
        self.assertIn("# %s/mcring.ini: configuration of mcring"
                      % configdir, text)
        self.assertNotIn("@", text.split("\n", 3)[1])
        for page in ("/man8/mcring.8", "/man5/mcring.ini.5"):
            with open(at(mandir + page)) as f:
                man = f.read()
            self.assertNotRegex(man, r"@[A-Za-z_]+@")
            self.assertIn(configdir + "/mcring.ini", man)
        self.assertTrue(os.path.exists(at(pkgdatadir + "/mcring.json")))
        if unitdir:
            with open(at(unitdir + "/mcring.service")) as f:
                unit = f.read()
            self.assertIn("ExecStart=%s/mcring -c %s/mcring.ini"
                          % (sbindir, configdir), unit)
        with open(conf, "a") as f:
            f.write("; the operator's edit\n")
        out = self.make("install", "DESTDIR=" + self.dest)
        self.assertIn("kept", out)
        with open(conf) as f:
            self.assertIn("; the operator's edit", f.read())
        self.assertTrue(os.path.exists(conf + ".dist"))


if __name__ == "__main__":
    mctest.main()
