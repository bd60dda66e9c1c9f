"""Fixtures of the Python client's tests: a real calibd on 127.0.0.1 (free ports, a temporary
store), calibctl's sample frames, and masters built through the package.

Environment (set by the ctest case, defaults for a run from the repository root):
  CALIBD_BINARY   the server (default build/server/calibd)
  CALIBCTL        the C++ CLI (default build/client/calibctl)
"""
import os
import signal
import socket
import subprocess
import time

import pytest

import calibd

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CALIBD_BINARY = os.environ.get("CALIBD_BINARY", os.path.join(ROOT, "build", "server", "calibd"))
CALIBCTL = os.environ.get("CALIBCTL", os.path.join(ROOT, "build", "client", "calibctl"))
DETECTOR = "demo/ccd0"
NIGHT = "2026-03-01T00:00:00Z"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CalibdServer:
    """A calibd process: start, stop, restart on the same ports and store."""

    def __init__(self, store, log, extra=(), client_kwargs=None):
        self.client_kwargs = dict(client_kwargs or {})
        self.store = store
        self.log_path = log
        self.extra = list(extra)
        self.port = None
        self.metrics_port = None
        self.proc = None

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def start(self, timeout=20.0):
        if not os.access(CALIBD_BINARY, os.X_OK):
            pytest.fail(f"{CALIBD_BINARY} is missing: build the calibd target")
        fixed = self.port is not None
        for _ in range(1 if fixed else 4):
            if not fixed:
                self.port, self.metrics_port = free_port(), free_port()
                while self.metrics_port == self.port:
                    self.metrics_port = free_port()
            log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(
                [CALIBD_BINARY, f"--listen=127.0.0.1:{self.port}",
                 f"--metrics-listen=127.0.0.1:{self.metrics_port}", f"--store={self.store}",
                 *self.extra], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            log.close()
            if self._wait_serving(timeout):
                return self
            self.kill()
        pytest.fail(f"calibd did not start; log:\n{self.log()[-3000:]}")

    def _wait_serving(self, timeout):
        deadline = time.monotonic() + timeout
        # Listening first (a gRPC channel that failed to connect backs off before retrying).
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                break
            except OSError:
                time.sleep(0.02)
        with calibd.Client(self.address, **{"timeout": 2, **self.client_kwargs}) as c:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    return False
                try:
                    if c.health() == "SERVING":
                        return True
                except calibd.Error:
                    pass
                time.sleep(0.05)
        return False

    def stop(self, timeout=15.0):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""


@pytest.fixture
def make_server(tmp_path_factory):
    servers = []

    def make(extra=(), store=None, client_kwargs=None):
        d = tmp_path_factory.mktemp("calibd")
        s = CalibdServer(store or str(d / "store"), str(d / "calibd.log"), extra, client_kwargs)
        servers.append(s)
        return s.start()

    yield make
    for s in servers:
        s.kill()  # a temporary store: no need to wait for the drain


@pytest.fixture(scope="session")
def samples(tmp_path_factory):
    """calibctl make-samples --small: SPEC.json, 5 bias/dark/flat, 3 lights (144x96 raw)."""
    d = str(tmp_path_factory.mktemp("night"))
    subprocess.run([CALIBCTL, "make-samples", "-o", d, "--small"], check=True,
                   stdout=subprocess.DEVNULL)
    return d


def kind_files(samples, kind):
    import glob
    return sorted(glob.glob(os.path.join(samples, kind, "*.fits")))


@pytest.fixture(scope="session")
def reduced_server(tmp_path_factory, samples):
    """A calibd whose store has the detector and bias/dark/flat built through the package."""
    d = tmp_path_factory.mktemp("calibd_reduced")
    s = CalibdServer(str(d / "store"), str(d / "calibd.log")).start()
    builds = {}
    with calibd.Client(s.address) as c:
        c.put_detector(os.path.join(samples, "SPEC.json"))
        for kind in ("bias", "dark", "flat"):
            builds[kind] = c.build(kind, kind_files(samples, kind), detector=DETECTOR,
                                   method="median", certify_from=NIGHT)
    s.builds = builds
    yield s
    s.kill()


def pytest_collection_finish(session):
    """A run that collects fewer tests than expected is an error, not a quiet success."""
    want = int(os.environ.get("CALIBD_PYTEST_MIN_TESTS", "0"))
    if want and len(session.items) < want and not session.config.option.keyword:
        raise pytest.UsageError(f"collected {len(session.items)} tests, expected at least {want}")
