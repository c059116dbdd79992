#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Integration tests: TLS, end to end, with Debian's memcached (built with
TLS: memcached -Z).

Certificates are made for each run with the openssl command: a CA, a
server certificate for 127.0.0.1 (used by mcring's TLS listener and by
the memcached backends), a client certificate, and a second CA that signed
none of them. mcring gets [tls] cert, key, ca and listen, two backends
with tls=yes and one plain: keys set through either listener are on their
--route owner (read there over TLS), a TLS client (Python's ssl, verifying
mcring's certificate) reads them back, plain bytes on the TLS listener
only close that connection, a backend whose certificate the CA did not
sign is DOWN, and verify_clients = yes wants a client certificate.
"""

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mctest  # noqa: E402
from mctest import wait_for  # noqa: E402


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=60)


def make_certs(d):
    """ca.pem, server.{pem,key} (127.0.0.1), client.{pem,key}, other-ca.pem
    in d."""
    with open(os.path.join(d, "san.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                ca + ".key", "-out", ca + ".pem", "-days", "2", "-subj",
                "/CN=mcring test " + ca, cwd=d)
    for name, ext in (("server", ["-extfile", "san.cnf"]), ("client", [])):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout",
                name + ".key", "-out", name + ".csr", "-subj",
                "/CN=" + name, cwd=d)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem",
                "-CAkey", "ca.key", "-CAcreateserial", "-out", name + ".pem",
                "-days", "2", *ext, cwd=d)
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o644)


class TlsMemcached(mctest.Memcached):
    """memcached -Z with the server certificate."""

    def __init__(self, tmpdir, name, certs):
        super().__init__(tmpdir, name=name)
        self.certs = certs

    def start(self):
        port = mctest.free_port()
        argv = [mctest.memcached_path(), "-l", "127.0.0.1", "-p", str(port),
                "-U", "0", "-m", "16", "-t", "1", "-Z", "-o",
                "ssl_chain_cert=%s,ssl_key=%s"
                % (os.path.join(self.certs, "server.pem"),
                   os.path.join(self.certs, "server.key"))]
        if os.geteuid() == 0:
            argv += ["-u", "root"]
        self._spawn(argv)
        if not self._wait_listening(port):
            raise mctest.HarnessError(self.log_text())
        self.port = port
        return self


def memcached_has_tls():
    r = subprocess.run([mctest.memcached_path(), "-h"], capture_output=True,
                       text=True, timeout=10)
    return "--enable-ssl" in r.stdout


class TlsClient:
    """A memcached text-protocol client over TLS."""

    def __init__(self, port, ca, cert=None):
        ctx = ssl.create_default_context(cafile=ca)
        if cert is not None:
            ctx.load_cert_chain(cert + ".pem", cert + ".key")
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        self.buf = b""

    def command(self, data, end=b"\r\n"):
        self.s.sendall(data)
        while not self.buf.endswith(end):
            chunk = self.s.recv(65536)
            if not chunk:
                break
            self.buf += chunk
        out, self.buf = self.buf, b""
        return out

    def close(self):
        self.s.close()


class TlsTest(unittest.TestCase):

    def setUp(self):
        if mctest.direct_mode():
            self.skipTest("needs mcring")
        if shutil.which("openssl") is None:
            self.skipTest("no openssl command")
        if not memcached_has_tls():
            self.skipTest("memcached built without TLS")
        self.tmpdir = tempfile.mkdtemp(prefix="mctest-tls-")
        self.addCleanup(shutil.rmtree, self.tmpdir, True)
        self.certs = os.path.join(self.tmpdir, "certs")
        os.mkdir(self.certs)
        make_certs(self.certs)
        self.procs = []
        self.addCleanup(lambda: [p.stop() for p in self.procs])
        self.tls_backends = [TlsMemcached(self.tmpdir, "t%d" % i,
                                          self.certs).start()
                             for i in (1, 2)]
        self.plain = mctest.Memcached(self.tmpdir, name="p1").start()
        self.procs += self.tls_backends + [self.plain]

    def cert(self, name):
        return os.path.join(self.certs, name)

    def start_mcring(self, ca="ca.pem", extra_tls="", admin=""):
        self.tls_port = mctest.free_port()
        tls = ("cert = %s\nkey = %s\nca = %s\nlisten = 127.0.0.1:%d\n%s"
               % (self.cert("server.pem"), self.cert("server.key"),
                  self.cert(ca), self.tls_port, extra_tls))
        m = mctest.Mcring(
            self.tmpdir,
            [], proxy={"threads": 2},
            health={"interval_ms": 100, "fall": 2, "rise": 1},
            extra=admin + "[tls]\n" + tls + "\n[backends]\n" +
                  "".join("%s = 127.0.0.1:%d tls=yes\n" % (b.name, b.port)
                          for b in self.tls_backends) +
                  "p1 = 127.0.0.1:%d\n" % self.plain.port)
        m.start()
        self.procs.append(m)
        self.mcring = m
        return m

    def states(self):
        st = mctest.stats_backends(self.mcring.port)
        return {n: v["state"] for n, v in st.items()}

    def direct_get(self, name, key):
        """key's value as the backend itself holds it (over TLS for t*)."""
        b = [x for x in self.tls_backends + [self.plain]
             if x.name == name][0]
        if name == "p1":
            with b.client() as c:
                return c.get(key)
        c = TlsClient(b.port, self.cert("ca.pem"))
        try:
            out = c.command(b"get %s\r\n" % key.encode(), end=b"END\r\n")
        finally:
            c.close()
        if out == b"END\r\n":
            return None
        return out.split(b"\r\n")[1]

    def test_tls_backends_and_tls_clients(self):
        m = self.start_mcring()
        wait_for(lambda: set(self.states().values()) == {"UP"}, 10,
                 "every backend UP (over TLS for t1, t2)")
        keys = ["tls-%d" % i for i in range(60)]
        with m.client() as c:
            for k in keys[:30]:
                self.assertEqual(c.set(k, "v-" + k), b"STORED")
        t = TlsClient(self.tls_port, self.cert("ca.pem"))
        for k in keys[30:]:
            self.assertEqual(
                t.command(b"set %s 0 0 %d\r\nv-%s\r\n"
                          % (k.encode(), len(k) + 2, k.encode())),
                b"STORED\r\n")
        r = mctest.run_mcring(["-c", m.config_path, "--route"] + keys)
        owners = {k: v[0] for k, v in mctest.parse_route(r.stdout).items()}
        self.assertEqual(set(owners.values()), {"t1", "t2", "p1"})
        for k in keys:
            self.assertEqual(self.direct_get(owners[k], k),
                             ("v-" + k).encode(), k)
            want = b"VALUE %s 0 %d\r\nv-%s\r\nEND\r\n" % (
                k.encode(), len(k) + 2, k.encode())
            self.assertEqual(t.command(b"get %s\r\n" % k.encode(),
                                       end=b"END\r\n"), want)
        # a big value, many TLS records each way
        big = os.urandom(300000).hex().encode()[:500000]
        self.assertEqual(t.command(b"set big 0 0 %d\r\n%s\r\n"
                                   % (len(big), big)), b"STORED\r\n")
        got = t.command(b"get big\r\n", end=b"END\r\n")
        self.assertEqual(got, b"VALUE big 0 %d\r\n%s\r\nEND\r\n"
                         % (len(big), big))
        t.close()
        # plain bytes on the TLS listener: that connection is closed,
        # nothing else is hurt
        s = socket.create_connection(("127.0.0.1", self.tls_port),
                                     timeout=10)
        s.sendall(b"get tls-1\r\n")
        try:
            self.assertEqual(s.recv(4096), b"")
        except ConnectionResetError:
            pass
        s.close()
        with m.client() as c:
            self.assertEqual(c.get(keys[0]), ("v-" + keys[0]).encode())
        self.assertTrue(m.alive())

    def test_backend_certificate_not_from_the_ca(self):
        m = self.start_mcring(ca="other-ca.pem")
        wait_for(lambda: self.states()["p1"] == "UP", 10, "p1 UP")
        wait_for(lambda: self.states()["t1"] == "DOWN" and
                 self.states()["t2"] == "DOWN", 10,
                 "t1 and t2 DOWN: their certificates are not the CA's")
        with m.client() as c:
            self.assertEqual(c.set("k", "v"), b"STORED")
            self.assertEqual(c.get("k"), b"v")
        self.assertIn("certificate verify failed", m.log_text(20000))

    def test_reload_keeps_tls_as_started(self):
        m = self.start_mcring()
        old_port = self.tls_port
        m.extra = m.extra.replace("listen = 127.0.0.1:%d" % old_port,
                                  "listen = 127.0.0.1:%d"
                                  % mctest.free_port())
        m.write_config(m.port)
        self.assertEqual(mctest.sighup_reload(m), "applied")
        self.assertIn("[tls] listen needs a restart", m.log_text(20000))
        t = TlsClient(old_port, self.cert("ca.pem"))
        self.assertTrue(t.command(b"version\r\n").startswith(b"VERSION "))
        t.close()

    def test_admin_adds_a_tls_backend(self):
        t3 = TlsMemcached(self.tmpdir, "t3", self.certs).start()
        self.procs.append(t3)
        admin_port = mctest.free_port()
        self.start_mcring(admin="[admin]\nlisten = 127.0.0.1:%d\n\n"
                          % admin_port)

        def api(method, path, body=None):
            req = urllib.request.Request(
                "http://127.0.0.1:%d%s" % (admin_port, path), method=method,
                data=json.dumps(body).encode() if body is not None else None,
                headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode()
        status, text = api("POST", "/backends",
                           {"name": "t3", "tls": True,
                            "address": "127.0.0.1:%d" % t3.port})
        self.assertEqual(status, 201, text)
        self.assertTrue(json.loads(text)["tls"])
        wait_for(lambda: self.states().get("t3") == "UP", 10,
                 "t3 UP over TLS")
        status, text = api("GET", "/config")
        self.assertIn("t3 = 127.0.0.1:%d tls=yes" % t3.port, text)
        status, text = api("POST", "/backends",
                           {"name": "t4", "tls": "yes",
                            "address": "127.0.0.1:1"})
        self.assertEqual(status, 400, text)

    def test_verify_clients(self):
        self.start_mcring(extra_tls="verify_clients = yes\n")
        with self.assertRaises((ssl.SSLError, ConnectionResetError,
                                BrokenPipeError, OSError)):
            t = TlsClient(self.tls_port, self.cert("ca.pem"))
            t.command(b"version\r\n")
        t = TlsClient(self.tls_port, self.cert("ca.pem"),
                      cert=self.cert("client"))
        self.assertTrue(t.command(b"version\r\n").startswith(b"VERSION "))
        t.close()


if __name__ == "__main__":
    mctest.main()
