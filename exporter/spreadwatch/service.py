"""The exporter loop: three cadences on one clock, building immutable snapshots.

Owns scheduling (market data, scan, positions; each at its own interval on the clock, so at --speed 60 a 60 s
cycle takes one wall second), fault containment (a provider that raises, hangs or returns nothing, a locked or
missing database, a broken grid: the error is counted, the last good part is kept, the process never exits),
the event log (changes only, like the original's alerts.log) and the atomic snapshot swap. Scrapes never reach
in here: they read `Service.snapshot`.

COORDINATION NOTE (lead engineer): this module has landed and other modules and tests depend on its names.
If your task lists this file as yours, extend it in place with small edits; do not rewrite or replace it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time as wall
from datetime import datetime
from pathlib import Path
from typing import Any

from spreadwatch import __version__
from spreadwatch.market import duration_text
from spreadwatch.positions import exit_signals
from spreadwatch.snapshot import CalendarFacts, GridInfo, OpenPosition, Portfolio, Snapshot, TaskStatus

log = logging.getLogger(__name__)
events = logging.getLogger("spreadwatch.events")

# Wall seconds a market fetch may take before the cycle gives up on it (the fetch keeps its thread; the next
# cycle will not start another one for that ticker until it returns).
FETCH_DEADLINE_SECONDS = 20.0


class _Fetch:
    """One `MarketWatcher.update` in a daemon thread: a provider call that never returns can neither block the
    loop (it waits with a deadline) nor keep the process alive at SIGTERM (daemon threads do not block exit)."""

    def __init__(self, func: Any, now: datetime, name: str) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.consumed = False  # its result has been taken by the loop
        self.thread = threading.Thread(target=self._run, args=(func, now), name=f"fetch-{name}", daemon=True)
        self.thread.start()

    def _run(self, func: Any, now: datetime) -> None:
        try:
            self.result = func(now)
        except BaseException as exc:  # handed to the loop, which counts it
            self.error = exc
        finally:
            self.done.set()


class Service:
    def __init__(self, config: Any, provider: Any, clock: Any, calendar: Any, *, tickers: tuple[str, ...],
                 db_path: Path, grid_path: Path, trend: str | None = None, scan_interval: float | None = None,
                 fetch_deadline: float = FETCH_DEADLINE_SECONDS) -> None:
        from spreadwatch.grid import GridCache
        from spreadwatch.market import MarketWatcher

        self.config = config
        self.provider = provider
        self.clock = clock
        self.calendar = calendar
        self.tickers = tickers
        self.db_path = Path(db_path)
        self.fetch_deadline = fetch_deadline
        self.stop_event = threading.Event()
        intervals = config.intervals
        self.intervals = {
            "market": float(intervals.market_data_seconds),
            "scan": float(scan_interval or intervals.scan_seconds),
            "positions": float(intervals.positions_seconds),
        }
        self.watchers = {t: MarketWatcher(config, provider, calendar, t, trend=trend) for t in tickers}
        self.grid_cache = GridCache(grid_path, skip_impossible=config.scan.skip_impossible)
        self._pending: dict[str, _Fetch] = {}
        self._timeouts: dict[str, int] = {}  # symbol -> fetches that missed the deadline
        self._hung: frozenset[str] = frozenset()  # symbols whose ticker's fetch is past its deadline now
        self._contexts: dict[str, Any] = {}
        self._scans: dict[str, Any] = {}
        self._grid_info: GridInfo | None = None
        self._open: tuple[OpenPosition, ...] = ()
        self._portfolio: Portfolio | None = None
        self._tasks = {name: TaskStatus(name, self.intervals[name]) for name in self.intervals}
        self._events = EventTracker(config, calendar)
        self.cycles = 0
        self.snapshot: Snapshot = Snapshot(
            version=__version__, source=provider.label, source_description=provider.description, config=config,
            tasks=dict(self._tasks))  # every task known from the start: /healthz is 503 until each has run

    # ---- tasks --------------------------------------------------------------------------------------------
    def _run_task(self, name: str, func: Any, now: datetime) -> None:
        started = wall.perf_counter()
        previous = self._tasks[name]
        try:
            func(now)
        except Exception as exc:  # contained: counted, logged, last good values kept
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            # Said when the task starts failing or fails differently; the same failure again is DEBUG (counted).
            repeat = previous.last_run is not None and not previous.ok and previous.error == reason
            log.log(logging.DEBUG if repeat else logging.WARNING, "%s task failed: %s", name, reason)
            self._tasks[name] = dataclasses.replace(
                previous, last_run=now, duration_seconds=wall.perf_counter() - started, ok=False, error=reason,
                errors_total=previous.errors_total + 1)
            return
        if previous.last_run is not None and not previous.ok:
            log.info("%s task recovered (was: %s)", name, previous.error)
        self._tasks[name] = dataclasses.replace(
            previous, last_run=now, last_success=now, duration_seconds=wall.perf_counter() - started, ok=True,
            error=None)

    def _symbols(self, ticker: str) -> tuple[str, ...]:
        ctx = self._contexts.get(ticker)
        if ctx is not None and ctx.sources:
            return tuple(ctx.sources)
        t = self.config.ticker(ticker)
        return tuple(dict.fromkeys((t.price_symbol, "^VIX", t.vol_index, t.volume_symbol)))

    def market_task(self, now: datetime) -> None:
        """Every ticker's fetch runs at once in its own thread; all share one wall-clock deadline."""
        failures = []
        started: dict[str, _Fetch] = {}
        hung: set[str] = set()
        for ticker, watcher in self.watchers.items():
            pending = self._pending.get(ticker)
            if pending is not None and not pending.done.is_set():
                failures.append(f"{ticker}: previous fetch still running")
                hung.update(self._symbols(ticker))
                continue
            if pending is not None and not pending.consumed and pending.error is None:
                # A fetch that finished after its deadline still brought data (each value carries its own time,
                # staleness judges it): keep it, or a provider slower than the deadline would never be seen.
                self._contexts[ticker] = pending.result
                pending.consumed = True
            started[ticker] = self._pending[ticker] = _Fetch(watcher.update, now, ticker)
        deadline = wall.monotonic() + self.fetch_deadline
        for ticker, fetch in started.items():
            if not fetch.done.wait(max(0.0, deadline - wall.monotonic())):
                failures.append(f"{ticker}: fetch exceeded {self.fetch_deadline:g} s")
                for symbol in self._symbols(ticker):
                    self._timeouts[symbol] = self._timeouts.get(symbol, 0) + 1
                    hung.add(symbol)
            elif fetch.error is not None:
                fetch.consumed = True
                failures.append(f"{ticker}: {fetch.error}")
            else:
                fetch.consumed = True
                self._contexts[ticker] = fetch.result
        self._hung = frozenset(hung)
        if failures:
            raise RuntimeError("; ".join(failures))

    def positions_task(self, now: datetime) -> None:
        from spreadwatch.store import read_positions

        # A short busy timeout: a book locked by someone else is this cycle's error, not a stalled loop.
        positions = read_positions(self.db_path, include_closed=True, timeout=2.0)
        today = self.calendar.et_date(now)
        open_items = []
        for p in positions:
            if p.status != "open":
                continue
            expiry = p.expiry if not isinstance(p.expiry, str) else datetime.fromisoformat(p.expiry).date()
            try:
                sessions = self.calendar.sessions_to_expiry(today, expiry)
                close = self.calendar.open_close(expiry)[1] if self.calendar.is_session(expiry) else None
            except ValueError:
                sessions, close = None, None
            open_items.append(OpenPosition(p, sessions, close))
        closed = [p for p in positions if p.status != "open"]
        self._open = tuple(open_items)
        self._portfolio = Portfolio(
            open_count=len(open_items),
            closed_count=len(closed),
            open_risk=sum(item.position.strikes_risk for item in open_items),  # the strikes' risk
            unrealized_pnl=sum(item.position.pnl for item in open_items),
            realized_pnl=sum(p.pnl for p in closed),
        )

    def scan_task(self, now: datetime) -> None:
        from spreadwatch.scanner import BookState, scan

        grid = self.grid_cache.get()
        self._grid_info = GridInfo(str(grid.path), grid.rows, grid.skipped_rows, grid.mtime)
        book = None
        if self._portfolio is not None:
            book = BookState(self._portfolio.open_count, self._portfolio.open_risk)
        for ticker in self.tickers:
            ctx = self._contexts.get(ticker)
            if ctx is None:
                continue
            self._scans[ticker] = scan(
                grid, ticker=ticker, now=now, calendar=self.calendar, config=self.config, regime=ctx.regime,
                trend=ctx.trend, flow=ctx.flow, flow_0dte=ctx.flow_0dte, price=ctx.price,
                daily_closes=ctx.daily_closes, daily_opens=ctx.daily_opens, book=book)

    # ---- the loop -----------------------------------------------------------------------------------------
    def step(self, now: datetime, due: set[str]) -> None:
        """Run the due tasks at `now` (market, then positions, then scan) and publish a snapshot."""
        order = (("market", self.market_task), ("positions", self.positions_task), ("scan", self.scan_task))
        for name, func in order:
            if name in due:
                self._run_task(name, func, now)
        self.publish(now)
        self.cycles += 1

    def publish(self, now: datetime) -> None:
        hours = self.config.hours
        cal = self.calendar
        facts = CalendarFacts(
            session=cal.session_phase(now),
            market_open=cal.within_local_hours(now, hours.trading_start, hours.trading_end),
            entry_window_open=cal.within_local_hours(now, hours.entry_start, hours.entry_end),
            seconds_to_close=cal.seconds_to_close(now),
        )
        snapshot = dataclasses.replace(
            self.snapshot, time=now, calendar=facts, contexts=dict(self._contexts), scans=dict(self._scans),
            grid=self._grid_info, positions=self._open, portfolio=self._portfolio, tasks=dict(self._tasks),
            today=cal.et_date(now), fetch_timeouts=dict(self._timeouts), hung_sources=self._hung)
        self.snapshot = snapshot  # the atomic swap: one reference assignment
        try:
            self._events.observe(snapshot)
        except Exception:
            log.exception("event log failed")

    def run(self) -> None:
        """Loop until stop_event is set; each task runs when its interval has elapsed on the clock."""
        next_due = {name: self.clock.now() for name in self.intervals}
        while not self.stop_event.is_set():
            now = self.clock.now()
            due = {name for name, at in next_due.items() if now >= at}
            if due:
                self.step(now, due)
                for name in due:
                    next_due[name] = now + _seconds(self.intervals[name])
            wait = min((at - self.clock.now()).total_seconds() for at in next_due.values())
            if self.clock.wait(max(wait, 0.0), self.stop_event):
                break
        self.close()

    def stop(self) -> None:
        self.stop_event.set()

    def close(self) -> None:
        # Nothing to join: fetch threads are daemons, and a hung one must not hold the exit.
        self._pending.clear()

    # ---- health -------------------------------------------------------------------------------------------
    def health(self) -> tuple[bool, list[str]]:
        """Healthy when every task's last run succeeded within three of its intervals (on the clock)."""
        snapshot = self.snapshot
        now = self.clock.now()
        reasons = []
        for name, task in sorted(snapshot.tasks.items()):
            if task.last_success is None:
                reasons.append(f"{name}: no successful run yet" + (f" ({task.error})" if task.error else ""))
            elif not task.ok:
                reasons.append(f"{name}: last run failed: {task.error}")
            elif (now - task.last_success).total_seconds() > 3 * task.interval_seconds:
                reasons.append(f"{name}: last success {(now - task.last_success).total_seconds():.0f} s ago")
        return not reasons, reasons


def _seconds(value: float):  # type: ignore[no-untyped-def]
    from datetime import timedelta

    return timedelta(seconds=value)


def _age_text(age: float | None) -> str:
    return "no value" if age is None else f"{duration_text(age)} old"


OPENING_GRACE_SECONDS = 180  # no "stale" event in a session's first 3 minutes (the alert rule waits as long)


class EventTracker:
    """Writes the event log (`[2026-02-21 09:15:00] [WARNING] Regime change: LOW → MEDIUM (VIX 18.5)`) on changes
    only: a ticker's market data going stale and fresh again, the regime becoming unknown and known again, regime
    changes, opportunities entering their window, exits met, risk breaches, sources down and up."""

    def __init__(self, config: Any, calendar: Any) -> None:
        self.config = config
        self.calendar = calendar
        self._regime: str | None = None  # the last known regime
        self._regime_known: bool | None = None  # None until the first snapshot with market data
        self._stale: dict[str, frozenset[str]] = {}  # ticker -> its symbols without a current value
        self._in_window: set[str] = set()
        self._exits: set[tuple[str, str]] = set()
        self._risk: set[str] = set()
        self._down: set[str] = set()
        self._first = True

    def _emit(self, now: datetime, level: str, message: str) -> None:
        stamp = self.calendar.local(now).strftime("%Y-%m-%d %H:%M:%S")
        events.log(getattr(logging, level if level != "OPPORTUNITY" and level != "EXIT" else "WARNING"),
                   "[%s] [%s] %s", stamp, level, message)

    # ---- market data and regime: known or not (DESIGN "Clock, replay and staleness") ---------------------------
    def _ages(self, now: datetime, ctx: Any) -> dict[str, float | None]:
        """Each source's age at `now`: the newest valid value's age when the context was built plus the context's
        own age (a fetch that hangs keeps an old context); None when the source never gave a value."""
        lag = (now - ctx.time).total_seconds()
        return {symbol: None if st.age_seconds is None else st.age_seconds + lag
                for symbol, st in ctx.sources.items()}

    def _current(self, now: datetime, ctx: Any, symbol: str) -> bool:
        """Whether `symbol` had a current value, as the metrics say: current at the context's time (the watcher's
        staleness rule) and, as the collector has it, from a context no older than the bound."""
        bound = float(self.config.market.stale_after_seconds)
        return ctx.sources[symbol].current and (now - ctx.time).total_seconds() <= bound

    def _opening(self, now: datetime) -> bool:
        """The first minutes of a session, before the first bar of the day can be expected: every source still holds
        the previous close. Not news (as in SpreadwatchMarketDataStale's rule)."""
        if not self.calendar.is_open(now):
            return False
        session_open, _ = self.calendar.open_close(self.calendar.current_or_last_session(now))
        return (now - session_open).total_seconds() < OPENING_GRACE_SECONDS

    def _freshness(self, now: datetime, s: Snapshot) -> None:
        """A ticker's sources without a current value: a warning when some become stale (which, how old), INFO when
        they are fresh again. At the first snapshot only what is stale is reported; in the opening minutes only a
        source with no value at all."""
        bound = duration_text(float(self.config.market.stale_after_seconds))
        opening = self._opening(now)
        for ticker, ctx in sorted(s.contexts.items()):
            ages = self._ages(now, ctx)
            before = self._stale.get(ticker, frozenset())
            stale = frozenset(symbol for symbol in ctx.sources if not self._current(now, ctx, symbol)
                              and (not opening or symbol in before or ages[symbol] is None))
            if stale - before:
                listed = ", ".join(f"{symbol} {_age_text(ages[symbol])}" for symbol in ctx.sources
                                   if symbol in stale - before)
                self._emit(now, "WARNING", f"Market data stale: {ticker} ({listed}; bound {bound})")
            if before - stale:
                back = ", ".join(symbol for symbol in ctx.sources if symbol in before - stale)
                still = ", ".join(f"{symbol} {_age_text(ages[symbol])}" for symbol in ctx.sources
                                  if symbol in stale)
                self._emit(now, "INFO", f"Market data fresh again: {ticker} ({back})"
                                        + (f"; still stale: {still}" if still else ""))
            self._stale[ticker] = stale

    def _regime_events(self, now: datetime, ctx: Any) -> None:
        """Unknown VIX is an unknown regime (said once); when the VIX returns the rule has resumed from the last
        known regime, so only a different regime is a change."""
        fresh = (now - ctx.time).total_seconds() <= float(self.config.market.stale_after_seconds)
        regime = ctx.regime if fresh else None
        vix = f" (VIX {ctx.vix:.1f})" if ctx.vix is not None else ""
        if regime is None and self._opening(now) and self._regime_known is not False:
            return  # the previous close's VIX until the first bar of the day: not news
        if regime is None:
            if self._regime_known is not False:
                symbol = self.config.market.vix_symbol
                why = f"{symbol} {_age_text(self._ages(now, ctx).get(symbol))}"
                last = f"; last known {self._regime.upper()}" if self._regime is not None else ""
                self._emit(now, "WARNING", f"Regime unknown: VIX unavailable ({why}{last})")
            self._regime_known = False
            return
        if self._regime_known is False:
            again = " again" if self._regime is not None else ""
            self._emit(now, "INFO", f"Regime known{again}: {regime.upper()}{vix}")
        if self._regime is not None and regime != self._regime:
            self._emit(now, "WARNING", f"Regime change: {self._regime.upper()} → {regime.upper()}{vix}")
        self._regime = regime
        self._regime_known = True

    def observe(self, s: Snapshot) -> None:
        now = s.time
        if now is None:
            return
        self._freshness(now, s)
        ctx = next(iter(sorted(s.contexts.items())), (None, None))[1]
        if ctx is not None:
            self._regime_events(now, ctx)

        entered = []
        current: set[str] = set()
        for result in s.scans.values():
            for o in result.opportunities:
                if o.in_window and not o.blocked_by_risk:
                    current.add(o.id)
                    if o.id not in self._in_window:
                        entered.append(o)
        if entered:
            lines = "\n".join(f"  {o.alert_line()}" for o in entered)
            self._emit(now, "OPPORTUNITY", f"Found {len(entered)} trade opportunity(ies)\n{lines}")
        self._in_window = current

        exits_now: set[tuple[str, str]] = set()
        for item in s.positions:
            for signal in exit_signals(item.position, item.sessions_to_expiry, self.config.exits):
                key = (item.position.id, signal.reason)
                exits_now.add(key)
                if key not in self._exits:
                    self._emit(now, "EXIT", f"EXIT SIGNAL - Position {item.position.id} | Reason: {signal.detail}")
        self._exits = exits_now

        risk_now = set()
        pf = s.portfolio
        if pf is not None:
            limits = self.config.risk
            if pf.open_risk > limits.max_total_risk:
                risk_now.add("risk")
                if "risk" not in self._risk:
                    self._emit(now, "ERROR", f"RISK LIMIT BREACH - Total Capital at Risk: ${pf.open_risk:,.0f} "
                                             f"exceeds ${limits.max_total_risk:,.0f}")
            if pf.open_count > limits.max_positions:
                risk_now.add("count")
                if "count" not in self._risk:
                    self._emit(now, "ERROR", f"POSITION LIMIT BREACH - {pf.open_count} open positions exceed "
                                             f"{limits.max_positions}")
        self._risk = risk_now

        down_now = set()
        for context in s.contexts.values():
            for symbol, st in context.sources.items():
                if not st.up:
                    down_now.add(symbol)
        for symbol in sorted(down_now - self._down):
            self._emit(now, "WARNING", f"Market data source {symbol} is down")
        if not self._first:
            for symbol in sorted(self._down - down_now):
                self._emit(now, "INFO", f"Market data source {symbol} is back up")
        self._down = down_now
        self._first = False


def setup_logging(config: Any) -> None:
    """Console and a rotating event-log file (paths.log_file), as the original's alerts.log."""
    import logging.handlers
    import sys

    root = logging.getLogger()
    root.setLevel(config.logging.level.upper())
    formatter = logging.Formatter("%(message)s")
    plain = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
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
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=config.logging.file_max_bytes, backupCount=config.logging.file_backups,
            encoding="utf-8")
        handler.setFormatter(formatter)
        events.addHandler(handler)
    events.propagate = False
