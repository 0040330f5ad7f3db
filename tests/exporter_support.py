"""Helpers for the exporter tests: a provider that injects the outside world's failures, the loop on a virtual clock
(stepped by the test, or run to an instant), the running service with its HTTP server, and a sample of its
snapshot through the real collector.

Only the outside world (the market-data provider) is faked; the loop, collector and server are the real ones.
No helper here measures wall time: the loop's clock advances only when the loop waits, by exactly what it waits,
so a cycle is the same cycle on a loaded 2-core machine and on a fast laptop. Wall-clock timeouts that remain are
safety nets against a hung test, never what a test checks.
"""

from __future__ import annotations

import math
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from realstack import ManagedProcess
from spreadwatch.app.clock import ReplayClock
from spreadwatch.app.service import FetchWorker, Service
from spreadwatch.config import Config
from spreadwatch.edges.calendar import MarketCalendar
from spreadwatch.edges.providers import DailyBar, ProviderError, Quote
from spreadwatch.edges.providers.replay import ReplayProvider

START = datetime.fromisoformat("2026-11-24T15:20:00+00:00")
# The NDX replay day the loop tests run on (synthetic, 2026-11-24) and the original's grid as their grid.
NDX_REPLAY = Path(__file__).parent / "data" / "ndx" / "replay_sample.csv"
SEED_GRID = Path(__file__).parent / "data" / "grids" / "grid_trading_ready.csv"
SAFETY_SECONDS = 120.0  # wall seconds before a wait that should take milliseconds is called hung
# A fetch that does not hang returns in milliseconds; this deadline is far above that, so only a hang reaches it.
FETCH_DEADLINE = 30.0



def utc(text: str) -> datetime:
    """An ISO 8601 instant ("Z" accepted) as an aware UTC datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)

class FaultyProvider:
    """Wraps the NDX replay day; `mode` (None | raise | hang | empty | nan) makes every intraday call (of the symbols in
    `only`, when set) fail. A hung
    call returns when `release` is set; `wait_idle()` then waits until the fetch workers that called it are idle."""

    def __init__(self, inner: Any | None = None) -> None:
        self.inner = inner or ReplayProvider(NDX_REPLAY, bundled=True)
        self.label = self.inner.label
        self.description = self.inner.description
        self.mode: str | None = None
        self.only: set[str] | None = None  # the symbols `mode` applies to (None: every symbol)
        self.release = threading.Event()
        self.calls = 0
        self._callers: set[threading.Thread] = set()

    def default_start(self, calendar: MarketCalendar) -> datetime:
        return self.inner.default_start(calendar)

    def _fault(self, symbol: str) -> None:
        self.calls += 1
        self._callers = {t for t in self._callers if t.is_alive()} | {threading.current_thread()}
        if self.only is not None and symbol not in self.only:
            return
        if self.mode == "raise":
            raise ProviderError(symbol, "exception", "injected")
        if self.mode == "empty":
            raise ProviderError(symbol, "empty", "injected")
        if self.mode == "hang":
            self.release.wait(SAFETY_SECONDS)

    def wait_idle(self) -> None:
        """Wait until every fetch worker that called this provider has finished the fetch in hand (a released hung
        fetch finishes in milliseconds of real time, but a virtual clock would run on past it): the next cycle then
        sees every fetch finished, as a live loop would a minute later. A caller that is not a fetch worker is
        joined."""
        for thread in list(self._callers):
            if thread is threading.current_thread():
                continue
            if isinstance(thread, FetchWorker):
                idle = thread.wait_idle(SAFETY_SECONDS)
            else:
                thread.join(SAFETY_SECONDS)
                idle = not thread.is_alive()
            assert idle, f"{thread.name} still running after {SAFETY_SECONDS:g} s"

    def latest(self, symbol: str, now: datetime) -> Quote:
        self._fault(symbol)
        quote = self.inner.latest(symbol, now)
        if self.mode == "nan":
            return Quote(symbol, quote.time, math.nan, None)
        return quote

    def intraday(self, symbol: str, session: Any, now: datetime) -> list:
        self._fault(symbol)
        bars = self.inner.intraday(symbol, session, now)
        if self.mode == "nan":
            return [type(b)(b.time, math.nan, None) for b in bars]
        return bars

    def daily(self, symbol: str, before: Any, count: int) -> list[DailyBar]:
        return self.inner.daily(symbol, before, count)


class CountingProvider:
    """Wraps a provider (the bundled SPX replay by default) and records every question asked of it, as
    (method, symbol, the other arguments); `take()` returns the questions since the last take and starts afresh."""

    def __init__(self, inner: Any | None = None) -> None:
        from spreadwatch.config import bundled_path

        self.inner = inner or ReplayProvider(bundled_path("replay_sample.csv"), bundled=True)
        self.label = self.inner.label
        self.description = self.inner.description
        self.asked: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()

    def _note(self, *question: Any) -> None:
        with self._lock:
            self.asked.append(question)

    def take(self) -> list[tuple[Any, ...]]:
        with self._lock:
            taken, self.asked = self.asked, []
        return taken

    def default_start(self, calendar: MarketCalendar) -> datetime:
        return self.inner.default_start(calendar)

    def latest(self, symbol: str, now: datetime) -> Quote:
        self._note("latest", symbol, now)
        return self.inner.latest(symbol, now)

    def intraday(self, symbol: str, session: Any, now: datetime) -> list:
        self._note("intraday", symbol, session, now)
        return self.inner.intraday(symbol, session, now)

    def daily(self, symbol: str, before: Any, count: int) -> list[DailyBar]:
        self._note("daily", symbol, before, count)
        return self.inner.daily(symbol, before, count)


def _virtual_wait(seconds: float, advance: Callable[[float], None], wake: Callable[[], bool] | None,
                  every: float) -> None:
    """Move a virtual clock on by `seconds` of clock time, in steps of `every` with `wake` asked after each (as the
    real clocks do), stopping early once it answers True."""
    remaining = max(0.0, seconds)
    while True:
        step = remaining if wake is None else min(every, remaining)
        advance(step)
        remaining -= step
        if wake is None or wake() or remaining <= 1e-9:
            return


class VirtualClock(ReplayClock):
    """A replay clock whose wall time moves only when the loop waits, by exactly what it waits (or, when the wait's
    `wake` check answers True, up to that check): every cycle falls on its interval whatever the machine's speed. The loop pauses in each wait until the test lets it go on (`step`,
    `until`), so the test decides how far the replayed day gets; scrapes and /healthz answer while it is paused."""

    def __init__(self, start: datetime, speed: float = 60.0) -> None:
        self._virtual_wall = 0.0
        super().__init__(start, speed, wall=lambda: self._virtual_wall)
        self._turn = threading.Condition()
        self._permits = 0
        self._paused = False
        self.waits = 0

    def wait(self, seconds: float, stop: threading.Event, wake: Callable[[], bool] | None = None,
             every: float = 1.0) -> bool:
        with self._turn:
            self._paused = True
            self._turn.notify_all()
            while self._permits == 0 and not stop.is_set():
                self._turn.wait(0.05)  # stop is an Event of its own: look at it now and then
            self._paused = False
            if stop.is_set():
                return True
            self._permits -= 1
            _virtual_wait(seconds, self._advance, wake, every)
            self.waits += 1
        return False

    def _advance(self, seconds: float) -> None:
        self._virtual_wall += seconds / self.speed

    def step(self, waits: int = 1) -> None:
        """Let the loop wait `waits` more times; returns when the cycle after the last of them has run and the loop
        is paused again. `step(0)`: until the loop is first paused (its first cycle done)."""
        with self._turn:
            target = self.waits + waits
            self._permits += waits
            self._turn.notify_all()
            if not self._turn.wait_for(lambda: self.waits >= target and self._paused, SAFETY_SECONDS):
                raise TimeoutError(f"the loop did not reach wait {target} (at {self.waits}, paused={self._paused})")

    def until(self, predicate: Callable[[], Any], *, within: float) -> float:
        """Step the loop one wait at a time until `predicate()` holds; the replay seconds that took. Fails when
        more than `within` replay seconds pass first."""
        started = self.now()
        while not predicate():
            elapsed = (self.now() - started).total_seconds()
            assert elapsed <= within, f"not reached within {within:g} replay seconds (at {self.now():%H:%M:%S})"
            self.step()
        return (self.now() - started).total_seconds()


def make_service(tmp_path: Path, provider: Any | None = None, *, start: datetime = START,
                 config: Config | None = None, db: Path | None = None, fetch_deadline: float = FETCH_DEADLINE,
                 tickers: tuple[str, ...] = ("NDX",), grid: Path | None = None) -> Service:
    """The real Service on a VirtualClock from `start`, a grid (the original's, as the loop tests use, by default) and a book (created
    empty if missing)."""
    from spreadwatch.edges.store import PositionBook

    config = config or Config()
    provider = provider or FaultyProvider()
    calendar = MarketCalendar.of(config)
    db = db or tmp_path / "book.db"
    if not db.exists():
        PositionBook(db).close()
    return Service(config, provider, VirtualClock(start), calendar, tickers=tickers, db_path=db,
                   grid_path=grid or SEED_GRID, fetch_deadline=fetch_deadline)


def run_replay(service: Service, start: datetime, until: datetime,
               on_cycle: Callable[[datetime], None] | None = None) -> None:
    """The real loop (`Service.run`) in this thread on a replay clock whose wall time advances exactly by what the
    loop waits, so every cycle falls on its interval and the stamps are exact, up to `until`. `on_cycle(now)` may
    change the world between cycles."""
    wall = [0.0]
    clock = ReplayClock(start, speed=60.0, wall=lambda: wall[0])

    def advance(seconds: float) -> None:
        wall[0] += seconds / clock.speed

    def wait(seconds: float, stop: threading.Event, wake: Callable[[], bool] | None = None,
             every: float = 1.0) -> bool:
        _virtual_wait(seconds, advance, wake, every)
        if on_cycle is not None:
            on_cycle(clock.now())
        return stop.is_set() or clock.now() > until

    clock.wait = wait  # type: ignore[method-assign]
    service.clock = clock
    if on_cycle is not None:
        on_cycle(start)
    service.run()


class Running:
    """The real loop in a thread, with the real HTTP server on a free loopback port. With a VirtualClock (what
    `make_service` gives) the loop runs its first cycle and then waits for the test: `step(n)`, `until(...)`."""

    def __init__(self, service: Service, address: tuple[str, int] = ("127.0.0.1", 0)) -> None:
        """`address`: where the server listens (a free loopback port by default; a given one lets a Prometheus
        started before the exporter scrape it)."""
        from spreadwatch.edges.collector import Exposition, SnapshotCollector, build_registry
        from spreadwatch.edges.server import ExporterServer

        self.service = service
        collector = SnapshotCollector(lambda: service.snapshot, service.clock.now)
        self.registry = build_registry(collector)
        self.exposition = Exposition(collector)
        self.server = ExporterServer(service, self.exposition, address)
        self.thread = threading.Thread(target=service.run, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.address
        return f"http://{host}:{port}"

    @property
    def clock(self) -> VirtualClock:
        return self.service.clock

    def step(self, waits: int = 1) -> None:
        self.clock.step(waits)

    def until(self, predicate: Callable[[], Any], *, within: float) -> float:
        return self.clock.until(predicate, within=within)

    def start_loop(self) -> None:
        """Start the loop and return after its first cycle."""
        self.thread.start()
        if isinstance(self.service.clock, VirtualClock):
            self.clock.step(0)

    def __enter__(self) -> Running:
        self.server.start()
        self.start_loop()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.service.stop()
        self.thread.join(SAFETY_SECONDS)
        self.server.stop()


def spreadwatch_process(workdir: Path, *args: str) -> ManagedProcess:
    """`python -m spreadwatch ARGS` (e.g. `run ...`) as a child process, its output in `workdir/exporter.log`;
    `stop()` sends SIGTERM (then SIGKILL after 10 s), `proc.returncode` and `log()` say how it ended."""
    return ManagedProcess("exporter", [sys.executable, "-m", "spreadwatch", *args], workdir)


def metrics_or_empty(url: str) -> str:
    """`url`/metrics, or "" while nothing answers there (a process still starting)."""
    try:
        return scrape(url)
    except (OSError, AssertionError):
        return ""


# ---- samples -------------------------------------------------------------------------------------------------
def sample(service: Service, name: str, labels: dict[str, str] | None = None) -> float | None:
    """A sample of the service's current snapshot, through the real collector (no HTTP)."""
    from spreadwatch.edges.collector import SnapshotCollector, build_registry

    registry = build_registry(SnapshotCollector(lambda: service.snapshot, service.clock.now))
    return registry.get_sample_value(name, labels or {})


def http_get(url: str) -> tuple[int, str, str]:
    """(status, body, Content-Type) of a GET, error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode(), response.headers.get("Content-Type")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(), err.headers.get("Content-Type")


def scrape(url: str) -> str:
    """The exposition text of `url`/metrics (which must answer 200)."""
    status, body, _ = http_get(url.rstrip("/") + "/metrics")
    assert status == 200, (status, body)
    return body
