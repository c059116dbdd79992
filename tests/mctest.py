# SPDX-License-Identifier: BSD-3-Clause
"""mctest: harness for mcring's integration tests (Python 3 stdlib only).

Starts real memcached and mcring processes on ephemeral 127.0.0.1 ports,
talks the memcached text protocol to them over raw sockets, and always
cleans up: every process is started by this module, stopped by its PID,
and killed at exit if a test forgot it.  Every wait has a deadline; nothing
waits on a fixed sleep.

Environment (set by `make check`; defaults for a run by hand from the top
of the build tree):

    MCRING        the mcring binary (default ./mcring)
    MCLOAD        the load generator (default bench/mcload beside mcring)
    MEMCACHED     memcached (empty: `memcached` on PATH, /usr/bin/memcached)
    TESTDATA      tests/data (default $SRCDIR/tests/data)
    SRCDIR        the source tree (default .)
    MCTEST_DIRECT 1: the "proxy" is one plain memcached, to debug the tests
                  themselves; tests that need mcring are skipped
    MCTEST_WATCHDOG  seconds before a hung run is killed (default 240)
"""

import atexit
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

START_TIMEOUT = 10.0     # a process must accept connections within this
STOP_TIMEOUT = 5.0       # SIGTERM to exit, before SIGKILL
IO_TIMEOUT = 5.0         # default socket timeout of a client
START_ATTEMPTS = 5       # port races (EADDRINUSE) retried this often


class HarnessError(Exception):
    """A process could not be started or behaved unexpectedly."""


class ConnectionClosed(Exception):
    """The peer closed the connection while we expected data."""


class ProtocolError(Exception):
    """A reply did not have the expected shape."""


# ---------------------------------------------------------------- paths

def srcdir():
    return os.path.abspath(os.environ.get("SRCDIR") or ".")


def testdata():
    return os.path.abspath(os.environ.get("TESTDATA")
                           or os.path.join(srcdir(), "tests", "data"))


def mcring_path():
    return os.path.abspath(os.environ.get("MCRING") or "./mcring")


def mcload_path():
    """bench/mcload, the load generator, built beside mcring."""
    return os.path.abspath(os.environ.get("MCLOAD") or os.path.join(
        os.path.dirname(mcring_path()), "bench", "mcload"))


def memcached_path():
    """The memcached binary, or None if it is not installed at all."""
    env = os.environ.get("MEMCACHED")
    if env:
        found = shutil.which(env)
        if found:
            return found
    found = shutil.which("memcached")
    if found:
        return found
    if os.access("/usr/bin/memcached", os.X_OK):
        return "/usr/bin/memcached"
    return None


def direct_mode():
    return os.environ.get("MCTEST_DIRECT") == "1"


# ---------------------------------------------------------------- waiting

def wait_for(pred, timeout, what="condition", interval=0.005):
    """Polls pred() until it returns a true value, which is returned.
    Raises TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError("timed out after %.1fs waiting for %s"
                               % (timeout, what))
        time.sleep(interval)
        interval = min(interval * 2, 0.05)


def _local_port_range():
    """The kernel's range for ports it picks itself (connect()'s source
    ports, bind to port 0)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
            return low, high
    except (OSError, ValueError):
        return 32768, 60999


_handed_out = set()         # ports free_port() gave this process
_port_rng = random.Random(os.getpid() ^ time.monotonic_ns())


def free_port():
    """A port that was free a moment ago.  Taken below the kernel's own
    range when there is room (10000 up to it), so that no connect() of any
    process, nor a bind to port 0, can take it before the test binds it;
    a port is handed out once per process.  Still racy between test
    programs that pick the same one: starters retry the whole start when
    the port got taken."""
    low, _ = _local_port_range()
    for _ in range(200 if low - 10000 >= 2000 else 0):
        port = _port_rng.randrange(10000, low)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def can_connect(port, host="127.0.0.1", timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------- processes

_live = set()             # every Process not yet stopped, for atexit
_live_lock = threading.Lock()


def _kill_leftovers():
    with _live_lock:
        procs = list(_live)
    for p in procs:
        try:
            p.kill()
        except Exception:
            pass


atexit.register(_kill_leftovers)


class Process:
    """One child process whose stdout and stderr go to a log file in a
    temporary directory.  Controlled only by its PID."""

    def __init__(self, name, tmpdir):
        self.name = name
        self.tmpdir = tmpdir
        self.log_path = os.path.join(tmpdir, name + ".log")
        self.proc = None
        self._log = None

    def _spawn(self, argv):
        self._log = open(self.log_path, "ab")
        self._log.write(("--- %s\n" % " ".join(argv)).encode())
        self._log.flush()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=self._log,
                                     stderr=subprocess.STDOUT,
                                     close_fds=True)
        with _live_lock:
            _live.add(self)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self):
        return self.proc.poll() if self.proc else None

    def send_signal(self, sig):
        if self.alive():
            os.kill(self.proc.pid, sig)

    def _state(self):
        try:
            with open("/proc/%d/stat" % self.proc.pid) as f:
                return f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            return None

    def pause(self):
        """SIGSTOP, and wait until the kernel reports it stopped."""
        self.send_signal(signal.SIGSTOP)
        wait_for(lambda: self._state() in ("T", "t", None), 2.0,
                 "%s to stop" % self.name)

    def resume(self):
        self.send_signal(signal.SIGCONT)

    def wait_exit(self, timeout):
        """Waits for the process to exit; returns its exit status, or None
        if it is still running after timeout."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def _reaped(self):
        with _live_lock:
            _live.discard(self)
        if self._log:
            self._log.close()
            self._log = None

    def kill(self):
        """SIGKILL and reap."""
        if self.proc is None:
            return None
        if self.alive():
            os.kill(self.proc.pid, signal.SIGCONT)
            os.kill(self.proc.pid, signal.SIGKILL)
        rc = self.wait_exit(STOP_TIMEOUT)
        self._reaped()
        return rc

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, wait up to timeout, then SIGKILL.  Returns the exit
        status (negative: killed by that signal)."""
        if self.proc is None:
            return None
        if self.alive():
            os.kill(self.proc.pid, signal.SIGCONT)
            os.kill(self.proc.pid, signal.SIGTERM)
            if self.wait_exit(timeout) is None:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.wait_exit(STOP_TIMEOUT)
        self._reaped()
        return self.proc.returncode

    def log_text(self, limit=6000):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
        except OSError:
            return ""
        if len(data) > limit:
            data = b"[...]\n" + data[-limit:]
        return data.decode("utf-8", "replace")

    def rss_kb(self):
        """Resident set size from /proc/PID/status, in kB."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise HarnessError("no VmRSS for %s" % self.name)

    def _wait_listening(self, port):
        """Waits until port accepts connections.  Returns True, or False if
        the process exited first (see its log)."""
        def ready():
            if not self.alive():
                return "exited"
            return can_connect(port) and "up"
        return wait_for(ready, START_TIMEOUT,
                        "%s to listen on %d" % (self.name, port)) == "up"


def _addr_in_use(text):
    t = text.lower()
    return "address already in use" in t or "eaddrinuse" in t


class Memcached(Process):
    """memcached -l 127.0.0.1 -p PORT -U 0 -m 64 -t 1 [-u root]."""

    def __init__(self, tmpdir, name="memcached", port=None, args=()):
        super().__init__(name, tmpdir)
        self.port = port
        self.args = list(args)

    def start(self):
        binary = memcached_path()
        if binary is None:
            raise HarnessError("memcached is not installed")
        fixed = self.port is not None
        for _ in range(START_ATTEMPTS):
            port = self.port if fixed else free_port()
            argv = [binary, "-l", "127.0.0.1", "-p", str(port), "-U", "0",
                    "-m", "64", "-t", "1"] + self.args
            if os.geteuid() == 0:
                argv += ["-u", "root"]
            self._spawn(argv)
            if self._wait_listening(port):
                self.port = port
                return self
            self.stop()
            if not _addr_in_use(self.log_text()):
                break
            if fixed:
                time.sleep(0.2)     # the old socket may still linger
        raise HarnessError("cannot start %s:\n%s"
                           % (self.name, self.log_text()))

    def client(self, **kw):
        return Client(self.port, **kw)


def format_config(listen_port, backends, proxy=None, health=None,
                  extra=None):
    """The text of an mcring config.  backends: (name, port[, weight])
    tuples on 127.0.0.1 ([backends]: none, no section).  proxy and
    health: extra keys of [proxy] and [health] (None values are left
    out).  extra: more text at the end ([pool NAME], [routes])."""
    lines = ["[proxy]", "listen = 127.0.0.1:%d" % listen_port]
    for k, v in (proxy or {}).items():
        if v is not None:
            lines.append("%s = %s" % (k, v))
    if health:
        lines += ["", "[health]"]
        for k, v in health.items():
            if v is not None:
                lines.append("%s = %s" % (k, v))
    if backends:
        lines += ["", "[backends]"]
    for b in backends:
        line = "%s = 127.0.0.1:%d" % (b[0], b[1])
        if len(b) > 2 and b[2] is not None:
            line += " weight=%s" % b[2]
        lines.append(line)
    return "\n".join(lines) + "\n" + ("\n" + extra if extra else "")


class Mcring(Process):
    """The mcring binary in the foreground with a generated config."""

    def __init__(self, tmpdir, backends, proxy=None, health=None,
                 name="mcring", extra=None):
        super().__init__(name, tmpdir)
        self.backends = backends
        self.proxy_opts = proxy
        self.health_opts = health
        self.extra = extra
        self.config_path = os.path.join(tmpdir, name + ".ini")
        self.port = None
        self.args = []      # more command-line arguments (-v, -o FILE)

    def write_config(self, port):
        with open(self.config_path, "w") as f:
            f.write(format_config(port, self.backends, self.proxy_opts,
                                  self.health_opts, self.extra))

    def start(self):
        binary = mcring_path()
        if not os.access(binary, os.X_OK):
            raise HarnessError("no mcring binary at %s" % binary)
        for _ in range(START_ATTEMPTS):
            port = free_port()
            self.write_config(port)
            self._spawn([binary, "-c", self.config_path] + self.args)
            if self._wait_listening(port):
                self.port = port
                return self
            self.stop()
            if not _addr_in_use(self.log_text()):
                break
        raise HarnessError("cannot start mcring (exit %s):\n%s"
                           % (self.returncode, self.log_text()))

    def client(self, **kw):
        return Client(self.port, **kw)


def run_mcring(args, timeout=15.0, input=None):
    """Runs the mcring CLI; returns subprocess.CompletedProcess (text)."""
    return subprocess.run([mcring_path()] + list(args), input=input,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout, text=True, errors="replace")


def check_config_text(text, name="bad.ini"):
    """`mcring -t -c NAME` of a file holding text, in a directory of its
    own (removed after): subprocess.CompletedProcess (text)."""
    d = tempfile.mkdtemp(prefix="mctest-")
    try:
        path = os.path.join(d, name)
        with open(path, "w") as f:
            f.write(text)
        return run_mcring(["-t", "-c", path])
    finally:
        shutil.rmtree(d, ignore_errors=True)


def parse_route(stdout):
    """`mcring --route` output: {key: [owner, fallback, ...]} (without
    the pool=NAME of a config with pools; see parse_route_pools())."""
    return {k: v[1] for k, v in parse_route_pools(stdout).items()}


def parse_route_pools(stdout):
    """`mcring --route` output: {key: (pool or None, [owner, ...])}."""
    out = {}
    for line in stdout.splitlines():
        tokens = line.split(" ")
        pool = None
        if len(tokens) > 1 and tokens[1].startswith("pool="):
            pool = tokens.pop(1)[5:]
        out[tokens[0]] = (pool, tokens[1:])
    return out


class ScriptedBackend:
    """A fake backend for fault injection: a Python server on a free
    127.0.0.1 port that answers each request line with what answer(line)
    returns (bytes, b"" for nothing). Subclasses define answer()."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.stop = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def answer(self, line):
        raise NotImplementedError

    def _accept_loop(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,),
                             daemon=True).start()

    def _serve(self, conn):
        buf = b""
        with conn:
            while not self.stop:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while b"\r\n" in buf:
                    line, buf = buf.split(b"\r\n", 1)
                    out = self.answer(line)
                    if out:
                        try:
                            conn.sendall(out)
                        except OSError:
                            return

    def close(self):
        self.stop = True
        self.sock.close()


class Cluster:
    """N memcached backends (named b1..bN) behind one mcring; or, in
    direct mode, a single memcached standing in for the proxy.  close()
    is always safe to call, also after a failed start()."""

    def __init__(self, nbackends=3, proxy=None, health=None, weights=None,
                 direct=None, pools=None, memcached_args=()):
        self.direct = direct_mode() if direct is None else direct
        self.nbackends = 1 if self.direct else nbackends
        opts = {"threads": 2, "timeout_ms": 2000, "connect_timeout_ms": 500}
        opts.update(proxy or {})
        self.proxy_opts = opts
        # Health checks slow enough that a loaded test machine does not
        # mark a healthy backend down; fast enough to start in ~1 s.
        hopts = {"interval_ms": 300, "timeout_ms": 250, "rise": 1,
                 "fall": 5}
        hopts.update(health or {})
        self.health_opts = hopts
        self.weights = weights or [None] * self.nbackends
        # pools: (default, extra): the backend names of [backends] (None:
        # all) and a function of the cluster giving more config text
        # ([pool NAME], [routes]); see pool_lines().
        self.pools = pools
        self.memcached_args = memcached_args
        self.tmpdir = tempfile.mkdtemp(prefix="mctest-")
        self.backends = []
        self.mcring = None
        self.port = None

    def start(self):
        try:
            for i in range(self.nbackends):
                m = Memcached(self.tmpdir, name="b%d" % (i + 1),
                              args=self.memcached_args)
                self.backends.append(m)
                m.start()
            if self.direct:
                self.port = self.backends[0].port
                return self
            default, extra = self.pools or (None, None)
            self.mcring = Mcring(
                self.tmpdir,
                [(m.name, m.port, w)
                 for m, w in zip(self.backends, self.weights)
                 if default is None or m.name in default],
                self.proxy_opts, self.health_opts,
                extra=extra(self) if extra else None)
            self.mcring.start()
            self.port = self.mcring.port
            self.wait_ready()
            return self
        except BaseException:
            self.close()
            raise

    def wait_ready(self, timeout=START_TIMEOUT):
        """Waits until gets of 32 probe keys (all backends, with near
        certainty) get an answer that is not a SERVER_ERROR."""
        keys = ["mctest-probe-%d" % i for i in range(32)]

        def ok():
            try:
                with self.client(timeout=2.0) as c:
                    for k in keys:
                        c.send(b"get " + k.encode() + b"\r\n")
                        line = c.readline()
                        if line != b"END":
                            return False
                    return True
            except (OSError, ConnectionClosed):
                return False
        wait_for(ok, timeout, "mcring to reach every backend")

    def client(self, **kw):
        return Client(self.port, **kw)

    def backend(self, name):
        for m in self.backends:
            if m.name == name:
                return m
        raise KeyError(name)

    @property
    def names(self):
        return [m.name for m in self.backends]

    def pool_lines(self, names):
        """Backend lines of the given backends, for a [pool NAME]."""
        return "".join("%s = 127.0.0.1:%d\n" % (n, self.backend(n).port)
                       for n in names)

    def route(self, keys):
        """{key: [owner, fallbacks...]} from `mcring --route`."""
        if self.direct:
            raise HarnessError("no routing in direct mode")
        return route_file(self.mcring.config_path, keys)

    def owners(self, keys):
        return {k: v[0] for k, v in self.route(keys).items()}

    def keys_by_owner(self, prefix, per_backend):
        """per_backend keys "PREFIX-i" owned by each backend:
        {name: [keys]}."""
        limit = max(100, per_backend * len(self.names) * 5)
        cands = ["%s-%d" % (prefix, i) for i in range(limit)]
        got = {n: [] for n in self.names}
        for k, owner in self.owners(cands).items():
            if owner in got and len(got[owner]) < per_backend:
                got[owner].append(k)
        for n, ks in got.items():
            if len(ks) < per_backend:
                raise HarnessError("only %d keys for backend %s"
                                   % (len(ks), n))
        return got

    def dump_logs(self, stream):
        procs = ([self.mcring] if self.mcring else [])
        for p in procs:
            stream.write("\n----- %s log (%s) -----\n%s\n"
                         % (p.name, p.log_path, p.log_text()))
        for m in self.backends:
            if not m.alive() and m.proc is not None \
                    and m.returncode not in (0, -9, -15):
                stream.write("----- %s exited %s -----\n%s\n"
                             % (m.name, m.returncode, m.log_text()))
        stream.flush()

    def close(self):
        if self.mcring:
            self.mcring.stop()
        # memcached takes about a second to exit: signal all, then wait.
        for m in self.backends:
            if m.alive():
                m.send_signal(signal.SIGCONT)
                m.send_signal(signal.SIGTERM)
        for m in self.backends:
            m.stop()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


# ---------------------------------------------------------------- client

class Client:
    """A memcached text-protocol client over one raw socket.  Low level:
    send(), readline(), read_exact(), read_until(), read_all(); high level
    helpers return parsed replies.  Reply lines are returned without their
    trailing CRLF."""

    def __init__(self, port, host="127.0.0.1", timeout=IO_TIMEOUT):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = bytearray()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    # -- raw I/O

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        data = self.sock.recv(262144)
        if not data:
            raise ConnectionClosed("connection closed by peer")
        self.buf += data

    def readline(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            self._fill()

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_until(self, marker=b"END\r\n"):
        """Bytes up to and including the first occurrence of marker at a
        line start (a bare data search: use with known-safe data)."""
        while True:
            if self.buf.startswith(marker):
                i = 0
            else:
                i = self.buf.find(b"\r\n" + marker)
                i = i + 2 if i >= 0 else -1
            if i >= 0:
                data = bytes(self.buf[:i + len(marker)])
                del self.buf[:i + len(marker)]
                return data
            self._fill()

    def read_n_bytes_or_close(self, n, timeout):
        """Reads until n bytes arrived, EOF, or timeout; returns them."""
        data, _ = self.read_all(timeout, want=n)
        return data

    def read_all(self, timeout, want=None):
        """Reads everything until EOF, timeout, or `want` bytes.  Returns
        (data, closed): closed is True on EOF or connection reset."""
        deadline = time.monotonic() + timeout
        closed = False
        try:
            while want is None or len(self.buf) < want:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.sock.settimeout(left)
                try:
                    data = self.sock.recv(262144)
                except socket.timeout:
                    break
                except (ConnectionResetError, BrokenPipeError):
                    closed = True
                    break
                if not data:
                    closed = True
                    break
                self.buf += data
        finally:
            if self.sock is not None:
                self.sock.settimeout(self.timeout)
        data = bytes(self.buf)
        self.buf.clear()
        return data, closed

    def wait_closed(self, timeout=IO_TIMEOUT):
        """Reads until EOF; returns (closed, bytes read before it)."""
        data, closed = self.read_all(timeout)
        return closed, data

    def call(self, line):
        """Sends one command line (CRLF added) and reads one reply line."""
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.readline()

    # -- retrieval

    def read_values(self):
        """Reads VALUE blocks up to END: [(key, flags, value, cas|None)].
        Raises ProtocolError on any other line."""
        out = []
        while True:
            line = self.readline()
            if line == b"END":
                return out
            parts = line.split(b" ")
            if parts[0] != b"VALUE" or len(parts) not in (4, 5):
                raise ProtocolError("unexpected line %r after %d values"
                                    % (line, len(out)))
            n = int(parts[3])
            data = self.read_exact(n + 2)
            if data[-2:] != b"\r\n":
                raise ProtocolError("data block of %r not CRLF-terminated"
                                    % parts[1])
            cas = int(parts[4]) if len(parts) == 5 else None
            out.append((parts[1].decode(), int(parts[2]), data[:-2], cas))

    def retrieve(self, cmd, keys, exptime=None):
        keys = [keys] if isinstance(keys, str) else list(keys)
        line = cmd
        if exptime is not None:
            line += " %d" % exptime
        line += " " + " ".join(keys)
        self.send(line.encode() + b"\r\n")
        return self.read_values()

    def get_multi(self, keys):
        return self.retrieve("get", keys)

    def get(self, key):
        """The value of key, or None on a miss."""
        vals = self.retrieve("get", [key])
        if not vals:
            return None
        if len(vals) != 1 or vals[0][0] != key:
            raise ProtocolError("get %s answered %r" % (key, vals))
        return vals[0][2]

    def gets(self, key):
        """(value, cas) of key, or None on a miss."""
        vals = self.retrieve("gets", [key])
        if not vals:
            return None
        return vals[0][2], vals[0][3]

    # -- storage

    def store(self, cmd, key, value, flags=0, exptime=0, cas=None,
              noreply=False):
        """Returns the reply line, or None with noreply."""
        if isinstance(value, str):
            value = value.encode()
        line = "%s %s %d %d %d" % (cmd, key, flags, exptime, len(value))
        if cas is not None:
            line += " %d" % cas
        if noreply:
            line += " noreply"
        self.send(line.encode() + b"\r\n" + value + b"\r\n")
        return None if noreply else self.readline()

    def set(self, key, value, **kw):
        return self.store("set", key, value, **kw)

    def add(self, key, value, **kw):
        return self.store("add", key, value, **kw)

    def replace(self, key, value, **kw):
        return self.store("replace", key, value, **kw)

    def append(self, key, value, **kw):
        return self.store("append", key, value, **kw)

    def prepend(self, key, value, **kw):
        return self.store("prepend", key, value, **kw)

    def cas(self, key, value, cas, **kw):
        return self.store("cas", key, value, cas=cas, **kw)

    # -- other commands

    def _simple(self, line, noreply):
        if noreply:
            line += " noreply"
        self.send(line.encode() + b"\r\n")
        return None if noreply else self.readline()

    def delete(self, key, noreply=False):
        return self._simple("delete %s" % key, noreply)

    def incr(self, key, delta, noreply=False):
        return self._simple("incr %s %d" % (key, delta), noreply)

    def decr(self, key, delta, noreply=False):
        return self._simple("decr %s %d" % (key, delta), noreply)

    def touch(self, key, exptime, noreply=False):
        return self._simple("touch %s %d" % (key, exptime), noreply)

    def flush_all(self, delay=None, noreply=False):
        line = "flush_all" if delay is None else "flush_all %d" % delay
        return self._simple(line, noreply)

    def verbosity(self, level, noreply=False):
        return self._simple("verbosity %d" % level, noreply)

    def version(self):
        return self.call(b"version")

    def stats_lines(self, args=""):
        """Raw lines of `stats [args]` up to END (excluded)."""
        self.send(("stats %s" % args).rstrip().encode() + b"\r\n")
        lines = []
        for _ in range(100000):
            line = self.readline()
            if line == b"END":
                return lines
            lines.append(line)
        raise ProtocolError("stats reply without END")

    def stats(self, args=""):
        """`stats [args]` as {name: value-string}."""
        out = {}
        for line in self.stats_lines(args):
            parts = line.decode().split(" ", 2)
            if parts[0] != "STAT" or len(parts) != 3:
                raise ProtocolError("bad stats line %r" % line)
            out[parts[1]] = parts[2]
        return out


# Backend counters that move when any key command reaches a memcached.
BACKEND_CMD_COUNTERS = (
    "cmd_get", "cmd_set", "cmd_touch", "cmd_flush", "get_hits",
    "get_misses", "delete_hits", "delete_misses", "incr_hits", "incr_misses",
    "decr_hits", "decr_misses", "cas_hits", "cas_misses", "cas_badval",
    "touch_hits", "touch_misses", "total_items",
)


def backend_counters(memcached):
    """{counter: int} for BACKEND_CMD_COUNTERS of one memcached."""
    with memcached.client() as c:
        st = c.stats()
    return {k: int(st.get(k, 0)) for k in BACKEND_CMD_COUNTERS}


def random_bytes(rng, n):
    return rng.randbytes(n)


# ---------------------------------------------------------------- test base

class ClusterTestCase(unittest.TestCase):
    """A test class sharing one Cluster (class attribute `cluster`),
    started in setUpClass with CLUSTER_ARGS and always closed.  Tests use
    self.key() for keys no other test touches."""

    CLUSTER_ARGS = {}
    NEEDS_MCRING = False

    @classmethod
    def setUpClass(cls):
        if cls.NEEDS_MCRING and direct_mode():
            raise unittest.SkipTest("needs mcring (MCTEST_DIRECT=1)")
        cls.cluster = Cluster(**cls.CLUSTER_ARGS)
        cls.addClassCleanup(cls.cluster.close)
        cls.cluster.start()
        cls.direct = cls.cluster.direct

    def setUp(self):
        self._nkey = 0
        self._clients = []

    def tearDown(self):
        for c in self._clients:
            c.close()

    def client(self, **kw):
        c = self.cluster.client(**kw)
        self._clients.append(c)
        return c

    def key(self, tag=""):
        self._nkey += 1
        return "%s-%d%s" % (self._testMethodName, self._nkey,
                            "-" + tag if tag else "")

    def needs_mcring(self):
        if self.direct:
            self.skipTest("needs mcring (MCTEST_DIRECT=1)")

    def assert_alive(self):
        if self.cluster.mcring is not None:
            self.assertTrue(self.cluster.mcring.alive(),
                            "mcring died (exit %s)"
                            % self.cluster.mcring.returncode)

    def dump_logs(self, stream):
        cluster = getattr(self, "cluster", None)
        if cluster is not None:
            cluster.dump_logs(stream)



class FreshClusterTestCase(unittest.TestCase):
    """A fresh Cluster per test (for tests that break backends or change
    the topology): NBACKENDS, PROXY, HEALTH and WEIGHTS as class
    attributes; needs mcring (skipped in direct mode)."""

    NBACKENDS = 3
    PROXY = {}
    HEALTH = None
    WEIGHTS = None

    def setUp(self):
        if direct_mode():
            self.skipTest("needs mcring (MCTEST_DIRECT=1)")
        self.cluster = Cluster(self.NBACKENDS, proxy=self.PROXY,
                               health=self.HEALTH, weights=self.WEIGHTS)
        self.addCleanup(self.cluster.close)
        self.cluster.start()
        self.port = self.cluster.port
        self.mc = self.cluster.mcring
        self._clients = []
        self.addCleanup(self._close_clients)

    def _close_clients(self):
        for c in self._clients:
            c.close()

    def client(self, **kw):
        c = self.cluster.client(**kw)
        self._clients.append(c)
        return c

    def assert_alive(self):
        self.assertTrue(self.mc.alive(),
                        "mcring died (exit %s)" % self.mc.returncode)

    def dump_logs(self, stream):
        cluster = getattr(self, "cluster", None)
        if cluster is not None:
            cluster.dump_logs(stream)


# ---------------------------------------------------------------- runner

class _Result(unittest.TextTestResult):
    """Shows the processes' logs of a failed test."""

    def _dump(self, test):
        fn = getattr(test, "dump_logs", None)
        if callable(fn):
            try:
                fn(self.stream)
            except Exception as e:
                self.stream.write("(cannot dump logs: %s)\n" % e)

    def addError(self, test, err):
        super().addError(test, err)
        self._dump(test)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._dump(test)


def _watchdog(seconds):
    def fire():
        sys.stderr.write("\nmctest: watchdog: run exceeded %ds, killing\n"
                         % seconds)
        sys.stderr.flush()
        _kill_leftovers()
        print("0 passed, 1 failed", flush=True)
        os._exit(1)
    t = threading.Timer(seconds, fire)
    t.daemon = True
    t.start()


def main(needs_memcached=True):
    """Runs the __main__ module's tests; prints "N passed, N failed[, N
    skipped]"; exits 0, 1 on any failure, 77 if memcached is needed and
    not installed."""
    if needs_memcached and memcached_path() is None:
        print("memcached is not installed: skipping")
        sys.exit(77)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
    _watchdog(int(os.environ.get("MCTEST_WATCHDOG") or 240))
    suite = unittest.defaultTestLoader.loadTestsFromModule(
        sys.modules["__main__"])
    if len(sys.argv) > 1:
        suite = unittest.defaultTestLoader.loadTestsFromNames(
            sys.argv[1:], sys.modules["__main__"])
    runner = unittest.TextTestRunner(stream=sys.stderr, verbosity=2,
                                     resultclass=_Result)
    result = runner.run(suite)

    # Count tests, not subtests; a class-level error counts once.
    def ids(items):
        out = set()
        for t in items:
            t = getattr(t, "test_case", t)
            out.add(t.id() if isinstance(t, unittest.TestCase)
                    else "holder:" + str(t))
        return out
    failing = ids([t for t, _ in result.failures + result.errors]
                  + list(result.unexpectedSuccesses))
    skipping = ids(t for t, _ in result.skipped) - failing
    failed = len(failing)
    skipped = len(skipping)
    passed = result.testsRun - sum(1 for i in failing | skipping
                                   if not i.startswith("holder:"))
    sys.stderr.flush()
    summary = "%d passed, %d failed" % (passed, failed)
    if skipped:
        summary += ", %d skipped" % skipped
    print(summary, flush=True)
    sys.exit(0 if failed == 0 else 1)



# ---------------------------------------------------------------- reload
# Helpers for tests of a live topology change (tests/test_reload.py).

def write_text_atomic(path, text):
    """Replaces the file at path with text in one rename, so a process
    reading it never sees half a file."""
    tmp = "%s.tmp-%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def route_file(path, keys, pools=False):
    """{key: [owner, fallbacks...]} from `mcring -c PATH --route KEY...`,
    500 keys per run; with pools, {key: (pool, [owner, ...])}."""
    keys = list(keys)
    out = {}
    for i in range(0, len(keys), 500):
        chunk = keys[i:i + 500]
        r = run_mcring(["-c", path, "--route"] + chunk, timeout=60.0)
        if r.returncode != 0:
            raise HarnessError("mcring -c %s --route failed (%d): %s"
                               % (path, r.returncode, r.stderr))
        out.update(parse_route_pools(r.stdout) if pools
                   else parse_route(r.stdout))
    missing = [k for k in keys if k not in out]
    if missing:
        raise HarnessError("mcring --route gave no line for %r"
                           % missing[:5])
    return out


def proxy_stats(port, args="", timeout=IO_TIMEOUT):
    """`stats [args]` of the server on port, on a fresh connection."""
    with Client(port, timeout=timeout) as c:
        return c.stats(args)


def stats_backends(port, timeout=IO_TIMEOUT):
    """`stats backends` of mcring: {name: {field: value-string}}."""
    out = {}
    for name, value in proxy_stats(port, "backends", timeout).items():
        be, _, field = name.partition(":")
        out.setdefault(be, {})[field] = value
    return out


def reload_counters(port):
    """(reloads, reload_failures) from mcring's `stats`; None for a counter
    the reply lacks."""
    st = proxy_stats(port)

    def num(name):
        return int(st[name]) if name in st else None
    return num("reloads"), num("reload_failures")


def sighup_reload(mcring, timeout=10.0):
    """Sends SIGHUP to mcring (by PID) and waits until its `reloads` or
    `reload_failures` counter has grown.  Returns "applied" or "failed".
    Raises TimeoutError if neither grows (a binary without reload, or a
    hung main loop)."""
    before = reload_counters(mcring.port)
    if before == (None, None):
        raise HarnessError("mcring's stats have neither reloads nor "
                           "reload_failures: no reload in this binary?")
    mcring.send_signal(signal.SIGHUP)
    got = {}

    def grown():
        now = reload_counters(mcring.port)
        if before[0] is not None and now[0] is not None \
                and now[0] > before[0]:
            got["r"] = "applied"
        elif before[1] is not None and now[1] is not None \
                and now[1] > before[1]:
            got["r"] = "failed"
        return got.get("r")
    wait_for(grown, timeout, "mcring's reloads or reload_failures to grow "
             "after SIGHUP (counters before: %r)" % (before,))
    return got["r"]


def add_memcached(cluster, name):
    """Starts one more memcached owned by cluster (closed with it), not yet
    in mcring's configuration.  Returns it."""
    m = Memcached(cluster.tmpdir, name=name)
    cluster.backends.append(m)
    m.start()
    return m


def open_fds(process):
    """Number of open file descriptors of a running process."""
    return len(os.listdir("/proc/%d/fd" % process.pid))
