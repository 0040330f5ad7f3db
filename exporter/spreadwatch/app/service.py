"""The exporter loop: three cadences on one clock, building immutable snapshots.

Owns scheduling (market data, scan, positions; each at its own interval on the clock, so at --speed 60 a 60 s
cycle takes one wall second; and a look at the book every half second of the clock, which runs the positions task
at once when another process committed to it, so a CLI write reaches /metrics within a second), fault containment (a
provider that raises, hangs or returns nothing, a locked or missing database, a broken grid: the error is counted by
kind, the last good part is kept, the process never exits; a bug is told apart and logged with its traceback),
health, and the atomic snapshot swap (the event log, app/events.py, reads each new snapshot). Scrapes never reach in
here: they read `Service.snapshot`.
"""

from __future__ import annotations

import dataclasses
import logging
import logging.handlers
import sqlite3
import threading
import time as wall
import weakref
from collections import deque
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from spreadwatch import __version__
from spreadwatch.app.digest import DigestTracker
from spreadwatch.app.events import EventTracker, in_opening_grace
from spreadwatch.app.snapshot import (
    CalendarFacts,
    GridInfo,
    OpenPosition,
    Portfolio,
    Snapshot,
    TaskStatus,
)
from spreadwatch.domain.vocabulary import UNKNOWN_PHASE
from spreadwatch.edges.providers import ProviderError
from spreadwatch.errors import DataError, SpreadwatchError

log = logging.getLogger(__name__)


class MarketFetchFailed(SpreadwatchError):
    """A ticker's market fetch missed the deadline, is still running, or failed (an outside-world fault)."""


def fault_kind(exc: BaseException) -> str:
    """The kind of a failed task run (one of FAULT_KINDS). `market`: a market fetch missed its deadline or failed; `provider`: a provider error; `data`: a missing,
    locked or corrupt book, a missing or invalid grid file; `database`: SQLite refused (locked, busy); `os`: a file
    system error; `error`: any other expected error; `bug`: anything else."""
    if isinstance(exc, MarketFetchFailed):
        return "market"
    if isinstance(exc, ProviderError):
        return "provider"
    if isinstance(exc, DataError):
        return "data"
    if isinstance(exc, SpreadwatchError):
        return "error"
    if isinstance(exc, sqlite3.OperationalError):
        return "database"
    if isinstance(exc, OSError):
        return "os"
    return "bug"
events = logging.getLogger("spreadwatch.events")

# Wall seconds a market fetch may take before the cycle gives up on it (the fetch keeps its worker; the next
# cycle will not queue that ticker's fetch again until it returns).
FETCH_DEADLINE_SECONDS = 20.0
# Clock seconds between two looks at the book (`BookWatch`: two stats, microseconds): twice a second, so a write
# reaches /metrics within a second even when it lands just after a look (the look, then the positions task).
BOOK_CHECK_SECONDS = 0.5


# Wall seconds a market cycle's fetches may wait untaken in the queue before more workers are woken: quick fetches
# (data in memory, a provider's cache) run back-to-back on one worker, so a cycle wakes one thread rather than one
# per ticker; a fetch that is slow or hangs holds its worker, and the fetches behind it are taken by others.
FETCH_TAKEN_SECONDS = 0.02


class FetchBatch:
    """The fetches handed out in one market cycle: `done` is set when the last of them has finished, so the loop
    wakes once per cycle, not once per ticker."""

    def __init__(self, count: int) -> None:
        self._left = count
        self._lock = threading.Lock()
        self.done = threading.Event()
        if count == 0:
            self.done.set()

    def finished(self) -> None:
        with self._lock:
            self._left -= 1
            last = self._left == 0
        if last:
            self.done.set()


class TickerFetch:
    """A ticker's market fetch (`MarketWatcher.update`), at most one at a time: `busy` from the moment the loop
    queues it until it has returned, so a ticker whose fetch hangs is not asked again. It keeps the fetch's result
    (or error) for the loop, and tells its cycle's batch when it is done (a fetch that finishes after its cycle's
    deadline tells a batch nobody waits on any more)."""

    def __init__(self, func: Any, ticker: str) -> None:
        self._fetch = func
        self.ticker = ticker
        self.busy = False
        self.result: Any = None
        self.error: BaseException | None = None
        self.consumed = True  # the last fetch's result has been taken by the loop (nothing to take yet)
        self._job: tuple[datetime, FetchBatch] | None = None

    def prepare(self, now: datetime, batch: FetchBatch) -> None:
        """Make this the fetch at `now`, part of `batch` (the previous one must have returned)."""
        self.result, self.error, self.consumed = None, None, False
        self.busy = True
        self._job = (now, batch)

    def run(self) -> None:
        assert self._job is not None
        now, batch = self._job
        try:
            self.result = self._fetch(now)
        except BaseException as exc:  # handed to the loop, which counts it
            self.error = exc
        finally:
            self.busy = False
            batch.finished()


class FetchWorker(threading.Thread):
    """A daemon thread of the fetch pool, for the service's life: it takes queued fetches one after another until
    none is left, then rests until woken. A provider call that never returns holds only this thread: it can neither
    block the loop (it waits with a deadline) nor keep the process alive at SIGTERM (daemon threads do not block
    exit). `wait_idle()` waits until it rests (the fetch in hand, if any, has finished)."""

    def __init__(self, pool: FetchPool, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._pool = pool
        self.wake = threading.Lock()  # held while it rests; released to wake it
        self.wake.acquire()
        self.resting = threading.Event()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until the worker rests; whether it does."""
        return self.resting.wait(timeout)

    def run(self) -> None:
        while (fetch := self._pool.take(self)) is not None:
            fetch.run()


class FetchPool:
    """The market fetches of a cycle, queued in one line and taken by as few threads as keep them moving. `start`
    queues a cycle's fetches and wakes one worker, which runs them back-to-back (on data in memory a fetch costs
    less than waking a thread for it); `spread` wakes a worker for each fetch still queued (the loop calls it when
    fetches stay untaken for FETCH_TAKEN_SECONDS: one is slow or hangs), so a hung provider call holds its own
    worker and the other tickers are still fetched. A ticker is not queued again while its fetch is busy, so at
    most one worker per ticker is ever needed: the pool grows to one thread per ticker at most, started as needed
    and kept. `fetches` holds each ticker's `TickerFetch`."""

    def __init__(self, funcs: dict[str, Any]) -> None:
        self.fetches = {ticker: TickerFetch(func, ticker) for ticker, func in funcs.items()}
        self.size = len(self.fetches)
        self._lock = threading.Lock()
        self._queue: deque[TickerFetch] = deque()
        self._workers: list[FetchWorker] = []
        self._resting: list[FetchWorker] = []
        self._closed = False

    @property
    def started(self) -> int:
        """Threads the pool has started (each kept for the service's life)."""
        return len(self._workers)

    @property
    def waiting(self) -> int:
        """Fetches queued and not yet taken by a worker."""
        return len(self._queue)

    def start(self, fetches: list[TickerFetch]) -> None:
        """Queue `fetches` (each prepared) and wake one worker for them."""
        with self._lock:
            self._queue.extend(fetches)
            if fetches:
                self._wake(1)

    def spread(self) -> None:
        """Wake a worker for each fetch still queued (as many as the pool has or may start)."""
        with self._lock:
            self._wake(len(self._queue))

    def _wake(self, count: int) -> None:
        for _ in range(count):
            if self._resting:
                worker = self._resting.pop()
                worker.resting.clear()
                worker.wake.release()
            elif len(self._workers) < self.size:
                worker = FetchWorker(self, f"fetch-{len(self._workers) + 1}")
                self._workers.append(worker)
                worker.start()
            else:
                return

    def take(self, worker: FetchWorker) -> TickerFetch | None:
        """The next queued fetch for `worker`, resting until one comes; None once the pool is closed."""
        while True:
            with self._lock:
                if self._closed:
                    worker.resting.set()
                    return None
                if self._queue:
                    return self._queue.popleft()
                self._resting.append(worker)
                worker.resting.set()
            worker.wake.acquire()

    def close(self) -> None:
        """End the threads: resting ones now, a busy one when its fetch returns."""
        with self._lock:
            self._closed = True
            self._queue.clear()
            for worker in self._resting:
                worker.wake.release()
            self._resting = []


def _chain_marker(config: Any, provider: Any, deadline: float) -> Any:
    """The chain marker for a live provider that serves option chains, with `marks.chain` on; None otherwise (replay
    is never marked from a chain: its days have none)."""
    from spreadwatch.edges.providers import ChainProvider

    if not config.marks.chain or provider.label != "live" or not isinstance(provider, ChainProvider):
        return None
    from spreadwatch.app.chains import ChainMarker

    return ChainMarker(provider, config, deadline)


class Service:
    def __init__(self, config: Any, provider: Any, clock: Any, calendar: Any, *, tickers: tuple[str, ...],
                 db_path: Path, grid_path: Path, trend: str | None = None, scan_interval: float | None = None,
                 fetch_deadline: float = FETCH_DEADLINE_SECONDS) -> None:
        from spreadwatch.app.watcher import Instants, MarketWatcher, RegimeWatcher
        from spreadwatch.edges.eventfile import load_event_calendar
        from spreadwatch.edges.gridfile import GridCache
        from spreadwatch.edges.providers.shared import SharedFetches
        from spreadwatch.edges.store import BookReader, BookWatch

        self.config = config
        self.provider = provider
        self.clock = clock
        self.calendar = calendar
        self.tickers = tickers
        self.db_path = Path(db_path)
        self.fetch_deadline = fetch_deadline
        self.stop_event = threading.Event()
        intervals = config.intervals
        self.intervals = {"market": float(intervals.market_data_seconds),
                          "scan": float(scan_interval or intervals.scan_seconds),
                          "positions": float(intervals.positions_seconds)}
        # One question to the provider per cycle, whichever tickers ask it (shared symbols are fetched once).
        self.fetches = SharedFetches(provider)
        # One regime watcher for the process: the VIX is fetched and the regime stepped once per cycle, by
        # whichever ticker's fetch comes first; every ticker's context carries that reading.
        self.regime = RegimeWatcher(config, self.fetches, calendar)
        # And the calendar asked once per instant for every ticker's context (session, hours, staleness facts).
        instants = Instants(config, calendar)
        self.watchers = {t: MarketWatcher(config, self.fetches, calendar, t, trend=trend, regime=self.regime,
                                          instants=instants) for t in tickers}
        self.grid_cache = GridCache(grid_path, skip_impossible=config.scan.skip_impossible)
        # The market mark: live data with marks.chain on, else None.
        self.chains = _chain_marker(config, provider, fetch_deadline)
        self._marks: dict[str, Any] = {}
        # Read once at start: a missing or malformed event calendar stops the start with the file and line named.
        self.events = load_event_calendar(config, calendar)
        # The tickers' fetches and the threads that run them, ended by close() or when the service is dropped.
        self.fetch_pool = FetchPool({t: w.update for t, w in self.watchers.items()})
        self._retire_workers = weakref.finalize(self, self.fetch_pool.close)
        self._timeouts: dict[str, int] = {}  # symbol -> fetches that missed the deadline
        self._hung: frozenset[str] = frozenset()  # symbols whose ticker's fetch is past its deadline now
        self._contexts: dict[str, Any] = {}
        self._scans: dict[str, Any] = {}
        self._grid_info: GridInfo | None = None
        self._open: tuple[OpenPosition, ...] = ()
        self._portfolio: Portfolio | None = None
        self._tasks = {name: TaskStatus(name, self.intervals[name]) for name in self.intervals}
        self._events = EventTracker(config, calendar)
        self._digests = DigestTracker(config, calendar)
        self._closed_today: tuple[Any, ...] = ()
        self.book_watch = BookWatch(self.db_path)
        self.book_reader = BookReader(self.db_path)
        self._book_changed = False  # the book changed since the positions task last read it
        self._scanned_on: tuple[Any, ...] | None = None  # _scan_inputs at the last scan
        self.cycles = 0
        self.listeners: list[Any] = []  # told of each snapshot as it is published (the /metrics page renders it)
        self._outside_calendar = False  # the clock is outside the exchange calendar's range (said once)
        self.snapshot: Snapshot = Snapshot(
            version=__version__, data_mode=provider.label, data_description=provider.description, config=config,
            tasks=dict(self._tasks))  # every task known from the start: /healthz is 503 until each has run

    # ---- tasks --------------------------------------------------------------------------------------------
    def _run_task(self, name: str, func: Any, now: datetime) -> None:
        """Run one task. An expected fault (market data, the book, the grid: see `fault_kind`) is counted by kind and
        the last good values are kept; a bug is logged with its traceback, counted as `bug`, and keeps /healthz
        unhealthy until the task succeeds again."""
        started = wall.perf_counter()
        previous = self._tasks[name]
        try:
            func(now)
        except Exception as exc:  # contained: counted, logged, last good values kept
            kind = fault_kind(exc)
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if kind == "bug":
                reason = f"{type(exc).__name__}: {reason}"
            # Said when the task starts failing or fails differently; the same failure again is DEBUG (counted).
            repeat = previous.last_run is not None and not previous.ok and previous.error == reason
            if kind == "bug":
                log.log(logging.DEBUG if repeat else logging.ERROR, "%s task failed with a bug: %s", name, reason,
                        exc_info=exc)
            else:
                log.log(logging.DEBUG if repeat else logging.WARNING, "%s task failed: %s", name, reason)
            faults = dict(previous.faults)
            faults[kind] = faults.get(kind, 0) + 1
            self._tasks[name] = dataclasses.replace(
                previous, last_run=now, duration_seconds=wall.perf_counter() - started, ok=False, error=reason,
                errors_total=previous.errors_total + 1, faults=faults, bug=kind == "bug")
            return
        if previous.last_run is not None and not previous.ok:
            log.info("%s task recovered (was: %s)", name, previous.error)
        self._tasks[name] = dataclasses.replace(
            previous, last_run=now, last_success=now, duration_seconds=wall.perf_counter() - started, ok=True,
            error=None, bug=False)

    def _symbols(self, ticker: str) -> tuple[str, ...]:
        return self.watchers[ticker].symbols

    def market_task(self, now: datetime) -> None:
        """Every idle ticker's fetch of this cycle is queued to the fetch pool at once; all share one wall-clock
        deadline, and each question to the provider is asked once per cycle (`SharedFetches`). A ticker whose
        previous fetch is still running is not asked again: that fetch is this cycle's failure."""
        self.fetches.begin_cycle()
        failures = []
        started: list[TickerFetch] = []
        hung: set[str] = set()
        for ticker, fetch in self.fetch_pool.fetches.items():
            if fetch.busy:
                failures.append(f"{ticker}: previous fetch still running")
                hung.update(self._symbols(ticker))
                continue
            if not fetch.consumed and fetch.error is None:
                # A fetch that finished after its deadline still brought data (each value carries its own time,
                # staleness judges it): keep it, or a provider slower than the deadline would never be seen.
                self._contexts[ticker] = fetch.result
                fetch.consumed = True
            started.append(fetch)
        batch = FetchBatch(len(started))
        for fetch in started:
            fetch.prepare(now, batch)
        self.fetch_pool.start(started)
        self._wait_for(batch)
        errors = []
        for fetch in started:
            ticker = fetch.ticker
            if fetch.busy:
                failures.append(f"{ticker}: fetch exceeded {self.fetch_deadline:g} s")
                for symbol in self._symbols(ticker):
                    self._timeouts[symbol] = self._timeouts.get(symbol, 0) + 1
                    hung.add(symbol)
                continue
            fetch.consumed = True
            if fetch.error is not None:
                errors.append(fetch.error)
                failures.append(f"{ticker}: {fetch.error}")
            else:
                self._contexts[ticker] = fetch.result
        self._hung = frozenset(hung)
        bugs = [error for error in errors if fault_kind(error) == "bug"]
        if bugs:
            raise bugs[0]  # a bug in a watcher: its traceback, not a fetch failure
        if failures:
            raise MarketFetchFailed("; ".join(failures))

    def _wait_for(self, batch: FetchBatch) -> None:
        """Wait until the cycle's fetches are done or the deadline has passed; every FETCH_TAKEN_SECONDS that
        fetches are still queued, untaken, the pool wakes more workers for them (one is slow or hangs)."""
        deadline = wall.monotonic() + self.fetch_deadline
        while not batch.done.wait(max(0.0, min(FETCH_TAKEN_SECONDS, deadline - wall.monotonic()))):
            if wall.monotonic() >= deadline:
                return
            if self.fetch_pool.waiting:
                self.fetch_pool.spread()

    def positions_task(self, now: datetime) -> None:
        from spreadwatch.domain.positions import summarize

        # The watch's baseline is taken before the read: a commit after this look is the next look's change.
        self._look_at_book()
        self._book_changed = False
        # Only the open positions and the closed ones that changed are read (`BookReader`). A short busy timeout:
        # a book locked by someone else is this cycle's error, not a stalled loop.
        book = self.book_reader.read(timeout=2.0)
        today = self.calendar.et_date(now)
        open_items = []
        for p in book.open_positions:
            try:
                sessions = self.calendar.sessions_to_expiry(today, p.expiry)
                close = self.calendar.open_close(p.expiry)[1] if self.calendar.is_session(p.expiry) else None
            except ValueError:
                sessions, close = None, None
            open_items.append(OpenPosition(p, sessions, close))
        self._open = tuple(open_items)
        self._closed_today = self._closed_on(today, book.closed_latest_first)
        self._portfolio = Portfolio.of(summarize(book.open_positions, closed_count=book.closed_count,
                                                 realized_pnl=book.realized_pnl))
        if self.chains is not None:  # a failing chain is its source's state, never this task's failure
            self._marks = self.chains.update(now, self._open)

    def _closed_on(self, today: date, latest_first: tuple[Any, ...]) -> tuple[Any, ...]:
        """The positions closed on `today` (ET), from the closed ones latest first: only the front is looked at."""
        closed = []
        for p in latest_first:
            if p.closed_at is None or self.calendar.et_date(p.closed_at) < today:
                break
            if self.calendar.et_date(p.closed_at) == today:
                closed.append(p)
        return tuple(closed)

    def _scan_inputs(self, now: datetime) -> tuple[Any, ...]:
        """What changes the scan's answer at once: the entry hours opening or closing, a ticker's regime, its price
        becoming known or unknown. When one changes the scan runs in the same cycle, off its cadence (the first
        bar after the open brings the setups then, not up to a scan interval later)."""
        hours = self.config.hours
        window = self.calendar.within_local_hours(now, hours.entry_start, hours.entry_end)
        return window, tuple((t, c.regime, c.price is None) for t, c in sorted(self._contexts.items()))

    def scan_task(self, now: datetime) -> None:
        from spreadwatch.domain.scanner import scan

        self._scanned_on = self._scan_inputs(now)

        grid = self.grid_cache.get()
        self._grid_info = GridInfo(str(grid.path), grid.rows, grid.skipped_rows, grid.mtime)
        book = self._portfolio.book_state() if self._portfolio is not None else None
        for ticker in self.tickers:
            ctx = self._contexts.get(ticker)
            if ctx is None:
                continue
            self._scans[ticker] = scan(
                grid, ticker=ticker, now=now, calendar=self.calendar, config=self.config, regime=ctx.regime,
                trend=ctx.trend, flow=ctx.flow, flow_0dte=ctx.flow_0dte, price=ctx.price,
                daily_closes=ctx.daily_closes, daily_opens=ctx.daily_opens, book=book, events=self.events)

    # ---- the loop -----------------------------------------------------------------------------------------
    def step(self, now: datetime, due: set[str]) -> None:
        """Run the due tasks at `now` (market, then positions, then scan) and publish a snapshot."""
        order = (("market", self.market_task), ("positions", self.positions_task), ("scan", self.scan_task))
        for name, func in order:
            if name in due or (name == "scan" and self._scan_inputs(now) != self._scanned_on):
                self._run_task(name, func, now)
        self.publish(now)
        self.cycles += 1

    def publish(self, now: datetime) -> None:
        hours = self.config.hours
        cal = self.calendar
        session = cal.session_phase(now)
        self._note_calendar_range(now, session)
        facts = CalendarFacts(
            session=session,
            market_open=cal.within_local_hours(now, hours.trading_start, hours.trading_end),
            entry_window_open=cal.within_local_hours(now, hours.entry_start, hours.entry_end),
            seconds_to_close=cal.seconds_to_close(now),
            session_left=_today_left(cal, now),
        )
        snapshot = dataclasses.replace(
            self.snapshot, time=now, calendar=facts, contexts=dict(self._contexts), scans=dict(self._scans),
            grid=self._grid_info, positions=self._open, portfolio=self._portfolio, tasks=dict(self._tasks),
            today=cal.et_date(now), fetch_timeouts=dict(self._timeouts), hung_sources=self._hung,
            regime=self.regime.reading, market_marks=dict(self._marks),
            chains=self.chains.statuses() if self.chains is not None else {},
            events=self.events, closed_today=self._closed_today)
        snapshot = self._with_digests(snapshot, now)
        self.snapshot = snapshot  # the atomic swap: one reference assignment
        try:
            self._events.observe(snapshot)
        except Exception:
            log.exception("event log failed")
        for listener in self.listeners:
            try:
                listener(snapshot)
            except Exception:
                log.exception("snapshot listener failed")

    def _with_digests(self, snapshot: Snapshot, now: datetime) -> Snapshot:
        """The snapshot with the digests up now (their text from this snapshot, written once per window)."""
        try:
            digests = self._digests.observe(snapshot, now)
        except Exception:  # a bug in a digest must not stop the loop
            log.exception("digest failed")
            return snapshot
        return dataclasses.replace(snapshot, digests=digests) if digests or snapshot.digests else snapshot

    def _look_at_book(self) -> bool:
        """Whether the book changed since the last look. Never raises: a look that fails is logged, and the regular
        positions cycle still runs."""
        try:
            return self.book_watch.changed()
        except Exception:  # a bug in the look must not stop the loop
            log.exception("book check failed")
            return False

    def book_check(self) -> bool:
        """The wait's look at the book: True (ending the wait) when the book changed since the positions task read
        it."""
        changed = self._look_at_book()
        self._book_changed = self._book_changed or changed
        return changed

    def _note_calendar_range(self, now: datetime, session: str) -> None:
        """Said once when the clock leaves the exchange calendar's range (the phase is then `unknown`, entry windows
        closed, values judged by the in-session staleness bound), and once when it is back."""
        outside = session == UNKNOWN_PHASE
        if outside == self._outside_calendar:
            return
        self._outside_calendar = outside
        if outside:
            log.warning("the clock (%s) is outside the exchange calendar's range (%s to %s): the session phase is "
                        "unknown until it is back", now.isoformat(), self.calendar.first_day,
                        self.calendar.last_day)
        else:
            log.info("the clock (%s) is within the exchange calendar's range again", now.isoformat())

    def run(self) -> None:
        """Loop until stop_event is set; each task runs when its interval has elapsed on the clock, and the positions
        task also as soon as a look at the book (every BOOK_CHECK_SECONDS while waiting) sees it changed. That extra
        run leaves the regular cadence where it was, so the positions and market cycles stay on one grid."""
        next_due = {name: self.clock.now() for name in self.intervals}
        while not self.stop_event.is_set():
            now = self.clock.now()
            due = {name for name, at in next_due.items() if now >= at}
            extra = {"positions"} if self._book_changed else set()
            if due or extra:
                self.step(now, due | extra)
                for name in due:
                    next_due[name] = now + _seconds(self.intervals[name])
            elif self._digests.next_change is not None and now >= self._digests.next_change:
                # A digest goes up or down now: only the digests change (no task runs, the event log sees nothing).
                self.snapshot = self._with_digests(self.snapshot, now)
            wakes = [*next_due.values(), *([self._digests.next_change] if self._digests.next_change else [])]
            wait = min((at - self.clock.now()).total_seconds() for at in wakes)
            if self.clock.wait(max(wait, 0.0), self.stop_event, self.book_check, BOOK_CHECK_SECONDS):
                break
        self.close()

    def stop(self) -> None:
        self.stop_event.set()

    def close(self) -> None:
        # Nothing to join: fetch workers are daemons, and a hung one must not hold the exit. Resting ones end now,
        # a hung one when its call returns.
        self._retire_workers()
        self.book_watch.close()

    # ---- health -------------------------------------------------------------------------------------------
    def health(self) -> tuple[bool, list[str]]:
        """Healthy when every task has succeeded, the last run of none was a bug, and each succeeded within three
        of its intervals (on the clock). An expected fault alone (a locked book for one cycle) is not unhealthy:
        the last good values are served and the fault is counted; it becomes unhealthy once the last success is
        too old. A bug is unhealthy until that task succeeds again."""
        snapshot = self.snapshot
        now = self.clock.now()
        reasons = []
        for name, task in sorted(snapshot.tasks.items()):
            if task.last_success is None:
                reasons.append(f"{name}: no successful run yet" + (f" ({task.error})" if task.error else ""))
            elif task.bug:
                reasons.append(f"{name}: last run failed with a bug: {task.error} (traceback in the log)")
            elif (now - task.last_success).total_seconds() > 3 * task.interval_seconds:
                failing = f" (failing: {task.error})" if not task.ok else ""
                reasons.append(f"{name}: last success {(now - task.last_success).total_seconds():.0f} s ago{failing}")
        return not reasons, reasons


    def data_health(self) -> list[str]:
        """The market data a trader needs, one line per source that lacks it: during the session (from the opening
        grace on, as the event log and SpreadwatchMarketDataStale), a source that is down, never gave a value or
        gave nothing current within `market.stale_after_seconds` (the staleness rule). Outside the session the
        last close is current, so an empty list. /healthz and the landing page report these as degraded."""
        snapshot, now = self.snapshot, self.clock.now()
        try:
            if not self.calendar.is_open(now) or in_opening_grace(self.calendar, now):
                return []
        except ValueError:  # outside the exchange calendar: no session to judge
            return []
        bound = self.config.market.stale_after_seconds
        seen: set[str] = set()
        out = []
        for ticker, ctx in sorted(snapshot.contexts.items()):
            for symbol in sorted(ctx.sources):
                if symbol in seen or ctx.source_current(symbol, now):
                    continue
                seen.add(symbol)
                age = ctx.source_age(symbol, now)
                state = "down" if not ctx.sources[symbol].up or symbol in snapshot.hung_sources else "up"
                told = "no value yet" if age is None else f"nothing new for {age:.0f} s (bound {bound:.0f} s)"
                out.append(f"{symbol} ({ticker}): {told}, last fetch {state}")
        return out


def _today_left(cal: Any, now: datetime) -> float:
    """The part of today's session still to trade at `now` (0 on a day without a session or outside the calendar)."""
    from spreadwatch.domain.watch import session_fraction_left

    try:
        today = cal.et_date(now)
        if not cal.is_session(today):
            return 0.0
        open_, close = cal.open_close(today)
    except ValueError:
        return 0.0
    to_close = (close - now).total_seconds() if open_ <= now < close else None
    return session_fraction_left(to_close, (close - open_).total_seconds(), now < open_)


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


LOG_FILE_MODE = 0o600  # the event log names a trader's positions: private to its owner, rotated files too


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating file handler whose files are created 0600, whatever the umask."""

    def _open(self) -> Any:
        import os

        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, LOG_FILE_MODE)
        return open(fd, self.mode, encoding=self.encoding, errors=self.errors)  # noqa: SIM115


class DisplayZoneFormatter(logging.Formatter):
    """Console lines stamped in the display zone with its abbreviation (`2026-11-24 07:30:05 PT`), as every human
    text; the event log's lines carry the exporter's clock in the same zone."""

    def __init__(self, zone: str, fmt: str) -> None:
        super().__init__(fmt)
        from zoneinfo import ZoneInfo

        self.zone = ZoneInfo(zone)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - stdlib name
        from spreadwatch.domain.display import local_time

        return local_time(datetime.fromtimestamp(record.created, UTC), self.zone, datefmt or "%Y-%m-%d %H:%M:%S")


def setup_logging(config: Any) -> None:
    """Console and a rotating event-log file (paths.log_file), as the original's alerts.log."""
    import sys

    root = logging.getLogger()
    root.setLevel(config.logging.level.upper())
    formatter = logging.Formatter("%(message)s")
    plain = DisplayZoneFormatter(config.display_timezone, "%(asctime)s %(levelname)s %(name)s: %(message)s")
    if config.logging.console:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(plain)
        console.addFilter(lambda record: record.name != "spreadwatch.events")
        root.addHandler(console)
        event_console = logging.StreamHandler(sys.stderr)
        event_console.setFormatter(formatter)
        events.addHandler(event_console)
    if config.paths.log_file:
        path = Path(config.paths.log_file)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handler = _PrivateRotatingFileHandler(
                path, maxBytes=config.logging.file_max_bytes, backupCount=config.logging.file_backups,
                encoding="utf-8")
        except OSError as exc:
            from spreadwatch.errors import ConfigError

            raise ConfigError(f"paths.log_file {path}: cannot open the event log ({exc.strerror or exc})") from None
        handler.setFormatter(formatter)
        events.addHandler(handler)
    events.propagate = False
