"""Suite-wide rules: every test runs at a pinned "now", talks to nothing but 127.0.0.1, and is marked `slow` when it
starts a real Prometheus or Alertmanager.

- `SPREADWATCH_CACHE_DIR` points every test at a grid store of its own (edges/gridstore.py).
- `SPREADWATCH_NOW` is set for every test (and every process a test starts) to PINNED_NOW, so no command reads
  today's date; a test that needs another instant sets its own.
- A connection to anything but the loopback interface fails the test (`no_network` refuses even that).
- A test that starts a Prometheus or Alertmanager process without the `slow` marker fails: the fast tier
  (`./test.sh -m "not slow"`) never waits for one. Tests over 5 s without the marker are listed at the end.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from realstack import ALERTMANAGER_BIN, PROMETHEUS_BIN

PINNED_NOW = "2026-11-24T15:30:00Z"  # 10:30 ET on the NDX replay day the loop tests run on: a Tuesday session
SLOW_SECONDS = 5.0
REAL_COMPONENTS = {Path(PROMETHEUS_BIN).name, Path(ALERTMANAGER_BIN).name}


@pytest.fixture(autouse=True)
def grid_store(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test (and each process it starts) keeps parsed grids in a store of its own, never the user's."""
    directory = tmp_path_factory.mktemp("grid-store")
    monkeypatch.setenv("SPREADWATCH_CACHE_DIR", str(directory))
    return directory


@pytest.fixture(autouse=True)
def pinned_now(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SPREADWATCH_NOW", PINNED_NOW)
    return PINNED_NOW


def _loopback(address: object) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX
        return True
    host = str(address[0]) if isinstance(address, tuple) and address else ""
    return host in ("localhost", "::1") or host.startswith("127.")


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guarded(method):
        def call(self, address):
            if not _loopback(address):
                raise AssertionError(f"a test tried to reach {address!r}: only 127.0.0.1 is allowed")
            return method(self, address)
        return call

    monkeypatch.setattr(socket.socket, "connect", guarded(connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guarded(connect_ex))


@pytest.fixture(scope="session")
def cal():
    """The exchange calendar the product uses, with its default display zone (built once: it is read-only)."""
    from spreadwatch.edges.calendar import MarketCalendar

    return MarketCalendar("America/Los_Angeles")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """No connection at all, not even to 127.0.0.1: for code that must answer from what it has."""
    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# ---- real components need the slow marker ---------------------------------------------------------------------
_started: list[str] = []  # real components started since the current test began (its fixtures included)
_popen_init = subprocess.Popen.__init__
_over: list[tuple[float, str]] = []  # (seconds, test) of the tests over SLOW_SECONDS without the marker


def _recording_popen_init(self, args, *rest, **kwargs):
    words = [str(a) for a in args] if isinstance(args, (list, tuple)) else str(args).split()
    if words and Path(words[0]).name == "env":  # `env NAME=value ... BINARY ARGS` runs BINARY
        words = words[1:]
        while words and "=" in words[0] and not words[0].startswith("-"):
            words = words[1:]
    # A server: the binary with a config file (`prometheus --version` or `promtool` start nothing that stays).
    if words and Path(words[0]).name in REAL_COMPONENTS and any(w.startswith("--config.file") for w in words):
        _started.append(Path(words[0]).name)
    _popen_init(self, args, *rest, **kwargs)


def pytest_configure(config: pytest.Config) -> None:
    subprocess.Popen.__init__ = _recording_popen_init  # type: ignore[method-assign]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    _started.clear()
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    slow = item.get_closest_marker("slow") is not None
    if report.when == "call" and _started and not slow and report.passed:
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} started {', '.join(sorted(set(_started)))} without the slow marker: "
                           "mark it @pytest.mark.slow (the fast tier must not start real components)")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Runs where the terminal is (the main process when the tests run on xdist workers): the reports carry the
    # test's markers among their keywords.
    if report.when == "call" and "slow" not in report.keywords and report.duration > SLOW_SECONDS:
        _over.append((report.duration, report.nodeid))


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    over = sorted(_over, reverse=True)
    if over:
        terminalreporter.section(f"tests over {SLOW_SECONDS:g} s without the slow marker (mark them slow)")
        for seconds, nodeid in over:
            terminalreporter.line(f"{seconds:6.1f} s  {nodeid}")
