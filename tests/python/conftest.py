"""Shared fixtures for Warren's end-to-end tests.

Two ways to choose the broker under test:

* ``AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2F``: use an already running
  broker (this is how the suite is validated against RabbitMQ).
* ``WARREN_BIN=/path/to/warren``: start ``$WARREN_BIN server --amqp
  127.0.0.1:PORT`` on a free port for the whole session, wait until the port
  accepts connections, stop it at the end.  Its output goes to a log file in a
  temporary directory; the path (and the log's tail) is printed on failure.
"""

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import uuid
from dataclasses import dataclass

import pika
import pytest

DEFAULT_TIMEOUT = 5.0


@dataclass
class Broker:
    url: str
    host: str
    port: int
    user: str
    password: str
    vhost: str
    log_path: str = None
    process: subprocess.Popen = None

    def params(self, **overrides):
        p = pika.URLParameters(self.url)
        # Fail fast instead of hanging when something goes wrong.
        p.socket_timeout = 5
        p.stack_timeout = 10
        p.blocked_connection_timeout = 10
        p.connection_attempts = 1
        for k, v in overrides.items():
            setattr(p, k, v)
        return p

    def url_with(self, user=None, password=None, vhost=None):
        return "amqp://%s:%s@%s:%d/%s" % (
            urllib.parse.quote(user if user is not None else self.user, safe=""),
            urllib.parse.quote(password if password is not None else self.password, safe=""),
            self.host, self.port,
            urllib.parse.quote(vhost if vhost is not None else self.vhost, safe=""))


_BROKER = None


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(host, port, proc, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def _tail(path, n=60):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        return "\n".join(lines[-n:])
    except OSError as e:
        return "<cannot read %s: %s>" % (path, e)


def _parse_url(url):
    u = urllib.parse.urlparse(url)
    vhost = urllib.parse.unquote(u.path[1:]) if len(u.path) > 1 else "/"
    return Broker(url=url, host=u.hostname or "127.0.0.1", port=u.port or 5672,
                  user=urllib.parse.unquote(u.username or "guest"),
                  password=urllib.parse.unquote(u.password or "guest"),
                  vhost=vhost)


class WarrenProcess:
    """A broker of the test's own on a data directory that outlives it, to stop (SIGTERM or
    SIGKILL) and start again as a restart does (WARREN_BIN only)."""

    def __init__(self, *extra_args, data_dir=None, max_open_files=None):
        self.binary = os.environ.get("WARREN_BIN")
        if not self.binary:
            pytest.skip("needs WARREN_BIN: starts a broker of its own")
        self.extra_args = extra_args
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="warren-data-")
        self.log_path = os.path.join(tempfile.mkdtemp(prefix="warren-own-"), "warren.log")
        self.port = None
        self.proc = None
        self.max_open_files = max_open_files

    def _limits(self):
        if self.max_open_files:
            import resource
            _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.max_open_files, hard))

    def start(self):
        self.port = _free_port()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "server", "--amqp", "127.0.0.1:%d" % self.port,
                 "--data-dir", self.data_dir, *self.extra_args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=self._limits)
        assert _wait_for_port("127.0.0.1", self.port, self.proc, 20), _tail(self.log_path)
        return self

    def params(self, **kwargs):
        return pika.ConnectionParameters(host="127.0.0.1", port=self.port, **kwargs)

    def stop(self, sig=signal.SIGTERM):
        """Stops the broker with `sig` and returns its exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)

    def log(self):
        return _tail(self.log_path)


@contextlib.contextmanager
def own_warren(*extra_args):
    """Starts a broker of the test's own (WARREN_BIN only) with extra server flags; yields
    (port, process). Skips the test when the suite runs against AMQP_URL."""
    w = WarrenProcess(*extra_args).start()
    try:
        yield w.port, w.proc
    finally:
        w.stop()


@pytest.fixture(scope="session")
def broker():
    global _BROKER
    url = os.environ.get("AMQP_URL")
    binary = os.environ.get("WARREN_BIN")
    if url:
        b = _parse_url(url)
        if not _wait_for_port(b.host, b.port, None, 10):
            pytest.exit("AMQP_URL=%s: nothing accepts connections on %s:%d" % (url, b.host, b.port), 3)
        _BROKER = b
        yield b
        return
    if not binary:
        pytest.exit("set WARREN_BIN=/path/to/warren (broker started by the tests) "
                    "or AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2F (running broker)", 3)
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        pytest.exit("WARREN_BIN=%s is not an executable file" % binary, 3)
    port = _free_port()
    tmpdir = tempfile.mkdtemp(prefix="warren-e2e-")
    log_path = os.path.join(tmpdir, "warren.log")
    log = open(log_path, "wb")
    proc = subprocess.Popen([binary, "server", "--amqp", "127.0.0.1:%d" % port,
                             "--data-dir", os.path.join(tmpdir, "data")],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    b = _parse_url("amqp://guest:guest@127.0.0.1:%d/%%2F" % port)
    b.log_path = log_path
    b.process = proc
    _BROKER = b
    print("\nwarren started: pid %d port %d log %s" % (proc.pid, port, log_path))
    try:
        if not _wait_for_port("127.0.0.1", port, proc, 20):
            rc = proc.poll()
            pytest.exit("warren did not accept connections on port %d (exit code %r); log %s:\n%s"
                        % (port, rc, log_path, _tail(log_path)), 3)
        yield b
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        log.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    b = _BROKER
    if rep.failed and b is not None and b.log_path:
        died = ""
        if b.process is not None and b.process.poll() is not None:
            died = " (BROKER PROCESS EXITED with code %r)" % b.process.returncode
        rep.sections.append(("warren log%s: %s" % (died, b.log_path), _tail(b.log_path, 40)))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    b = _BROKER
    if b is not None and b.log_path and exitstatus != 0:
        terminalreporter.write_sep("=", "warren broker log: %s" % b.log_path)
        terminalreporter.write_line(_tail(b.log_path, 80))


# --------------------------------------------------------------------------
# connections, channels, names


@pytest.fixture
def connect(broker):
    """Factory: connect(**param_overrides) -> BlockingConnection, closed at teardown."""
    conns = []

    def _connect(**overrides):
        c = pika.BlockingConnection(broker.params(**overrides))
        conns.append(c)
        return c

    yield _connect
    for c in conns:
        if c.is_open:
            try:
                c.close()
            except Exception:
                pass


@pytest.fixture
def conn(connect):
    return connect()


@pytest.fixture
def ch(conn):
    return conn.channel()


@pytest.fixture
def uniq(request, broker):
    """Factory for unique resource names; queues/exchanges created through
    ``uniq.queue()``/``uniq.exchange()`` names are deleted at teardown."""
    created = []

    class Names:
        def __call__(self, kind="q"):
            # Short on purpose: reply texts quoting names are shortstrs (<= 255).
            base = request.node.name.replace("[", "-").replace("]", "")
            base = base[len("test_"):] if base.startswith("test_") else base
            return "wt.%s.%s.%s" % (kind, base[:24], uuid.uuid4().hex[:10])

        def queue(self):
            n = self("q")
            created.append(("queue", n))
            return n

        def exchange(self):
            n = self("x")
            created.append(("exchange", n))
            return n

    yield Names()
    if created:
        try:
            c = pika.BlockingConnection(broker.params())
        except Exception:
            return
        try:
            for kind, n in created:
                try:
                    chan = c.channel()
                    if kind == "queue":
                        chan.queue_delete(n)
                    else:
                        chan.exchange_delete(n)
                    chan.close()
                except Exception:
                    pass
        finally:
            try:
                c.close()
            except Exception:
                pass
