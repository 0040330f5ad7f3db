"""The market watchers: what the loop knows about the market at an instant, honestly, or that it does not know.

Owns `RegimeWatcher` (the VIX and the regime hysteresis state, one per VIX symbol for the whole process, shared by
every ticker) and `MarketWatcher` (one per ticker: last good values with their age, per-source up/errors, cached
daily history), and the immutable `MarketContext` a ticker's `update(now)` returns. The rules they apply (staleness,
IV rank/percentile, flow, trend `auto`) are in domain/market_rules.py. Must not: import yfinance (providers do),
read the clock (callers pass `now`), or put any value in place of a missing one: unknown is None (JSON null).

docs/market.md explains every field and the staleness rule.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from spreadwatch.domain import regime as regime_rules
from spreadwatch.domain.instants import iso_utc
from spreadwatch.domain.market_rules import (
    TREND_SMA_SESSIONS,
    IvWindow,
    PriorVolumes,
    SessionVolume,
    _finite,
    auto_trend,
    current_until,
    flow_of,
    impossible,
    known_at,
    unknown_reason,
)
from spreadwatch.domain.vocabulary import UNKNOWN_PHASE
from spreadwatch.edges.providers import FAILURE_KINDS, Bar, DailyBar, ProviderError, Quote

if TYPE_CHECKING:
    from spreadwatch.config import Config
    from spreadwatch.edges.calendar import MarketCalendar
    from spreadwatch.edges.providers import Provider

log = logging.getLogger(__name__)

# Volume ratio: fewest prior sessions to average over, and how far before the time of day a prior session's
# newest bar may be and still count as "has bars at that time of day" (5-minute bars pass).
VOLUME_MIN_SESSIONS = 5
VOLUME_BAR_TOLERANCE = timedelta(minutes=10)
# Closed sessions' intraday bars kept per symbol by a watcher's fetches (the newest asked).
CLOSED_SESSIONS_KEPT = 3
# Daily closes kept for percentile bands (100 moves over up to 5 sessions need 105; keep a margin).
MIN_DAILY_HISTORY = 120


# ------------------------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True)
class SourceStatus:
    """One data symbol: did the last fetch give a value, how old the newest valid value is, errors by kind."""

    symbol: str
    up: bool
    age_seconds: float | None
    last_success: datetime | None
    errors: dict[str, int] = field(default_factory=dict)
    # Until when its newest valid value is knowledge (the staleness rule, market_rules.current_until); None: not
    # current at the context's time.
    current_until: datetime | None = None

    @property
    def current(self) -> bool:
        """Its newest valid value was current at the context's time."""
        return self.current_until is not None


@dataclass(frozen=True)
class RegimeReading:
    """What the process's regime watcher saw at `time`: the VIX if current, the regime (None while the VIX is
    unknown), the one before the last change and when it changed, and the VIX symbol's health."""

    time: datetime
    symbol: str
    vix: float | None
    regime: str | None
    previous_regime: str | None
    changed_at: datetime | None
    source: SourceStatus

    def source_at(self, now: datetime) -> SourceStatus:
        """The VIX symbol's status as a context built at `now` reports it (its age counted from `now`)."""
        age = self.source.age_seconds
        if age is None or now == self.time:
            return self.source
        return replace(self.source, age_seconds=age + (now - self.time).total_seconds())


@dataclass(frozen=True)
class MarketContext:
    ticker: str
    time: datetime
    session: str  # closed | pre | open | after | unknown (outside the exchange calendar)
    market_open: bool
    entry_window_open: bool
    seconds_to_close: float | None
    price: float | None
    prev_close: float | None
    change_ratio: float | None
    vix: float | None
    regime: str | None
    previous_regime: str | None
    regime_changed_at: datetime | None
    iv_rank: float | None
    iv_percentile: float | None
    volume_ratio: float | None
    trend: str | None
    flow: str | None
    flow_0dte: str | None
    daily_closes: tuple[float, ...]
    daily_opens: tuple[float, ...]
    sources: dict[str, SourceStatus]
    vol_index: float | None = None  # level of the ticker's vol index (^VXN for NDX)
    data_mode: str = "live"  # live | replay: the provider's label (`source` in JSON)
    session_open: datetime | None = None  # the open of the session the context is in (None outside a session)
    # Which data symbol each value comes from (price, vix, vol, volume): for saying why a value is unknown.
    roles: dict[str, str] = field(default_factory=dict)

    def unknown(self, role: str) -> str:
        """`unknown (no bar yet since the open)`: an unknown value of `role` (price, vix, vol, volume) with why."""
        status = self.sources.get(self.roles.get(role, ""))
        if status is None:
            return "unknown"
        since_open = None if self.session_open is None else (self.time - self.session_open).total_seconds()
        why = unknown_reason(session=self.session, up=status.up, age_seconds=status.age_seconds,
                             current=status.current, since_open=since_open)
        return f"unknown ({why})"

    def source_current(self, symbol: str, now: datetime) -> bool:
        """Whether `symbol`'s newest valid value is still knowledge at `now` (the staleness rule)."""
        return known_at(self.sources[symbol].current_until, now)

    def source_age(self, symbol: str, now: datetime) -> float | None:
        """Age at `now` of `symbol`'s newest valid value: its age when the context was built plus the context's
        own age (a fetch that hangs keeps an old context); None when the source never gave a value."""
        age = self.sources[symbol].age_seconds
        return None if age is None else max(0.0, age + (now - self.time).total_seconds())

    def to_json(self) -> dict[str, Any]:
        """The `status --json` object: stable keys, null when unknown (docs/market.md)."""
        return {
            "ticker": self.ticker,
            "time": iso_utc(self.time),
            "source": self.data_mode,
            "session": self.session,
            "market_open": self.market_open,
            "entry_window_open": self.entry_window_open,
            "seconds_to_close": self.seconds_to_close,
            "price": self.price,
            "prev_close": self.prev_close,
            "change_ratio": self.change_ratio,
            "vix": self.vix,
            "regime": self.regime,
            "previous_regime": self.previous_regime,
            "regime_changed_at": iso_utc(self.regime_changed_at) if self.regime_changed_at else None,
            "vol_index": self.vol_index,
            "iv_rank": self.iv_rank,
            "iv_percentile": self.iv_percentile,
            "volume_ratio": self.volume_ratio,
            "trend": self.trend,
            "flow": self.flow,
            "flow_0dte": self.flow_0dte,
            "sources": {
                name: {
                    "up": s.up,
                    "age_seconds": None if s.age_seconds is None else round(s.age_seconds, 3),
                    "errors": dict(s.errors),
                }
                for name, s in self.sources.items()
            },
        }


# ------------------------------------------------------------------------------------------------------------
# Fetching


class _Feeds:
    """The fetches of some data symbols: failures counted by kind and warned on transitions only, the newest finite
    quote of each, whether each is up, and caches of bars that no longer change.

    Every bar a provider hands in is judged here (market_rules.impossible; `levels` are the symbols that are
    volatility index levels): one that cannot be true is counted once as `invalid` and passed on with its values
    unknown (NaN), so nothing downstream ever takes it as data."""

    def __init__(self, provider: Provider, symbols: tuple[str, ...], levels: frozenset[str] = frozenset()) -> None:
        self.provider = provider
        self.symbols = symbols
        self.levels = levels
        self._invalid_seen: set[tuple[str, date]] = set()  # (symbol, bar time or day) already counted
        self.last: dict[str, Quote] = {}  # newest finite quote per symbol
        self._errors: dict[str, Counter[str]] = {s: Counter() for s in symbols}
        self._last_success: dict[str, datetime] = {}
        self._up: dict[str, bool] = {s: False for s in symbols}
        self._round_ok: dict[str, bool] = {}
        # Fetch warnings on transitions only: the kinds a failing symbol reported in its last round (a new kind is
        # a warning, a repeat is DEBUG), the kinds seen this round, and failed fetches since it started failing.
        self._failing: dict[str, set[str]] = {}
        self._round_kinds: dict[str, set[str]] = {}
        self._streak: dict[str, int] = {}
        self._daily: dict[tuple[str, date, int], list[DailyBar]] = {}
        self._closed_intraday: dict[tuple[str, date], list[Bar]] = {}
        # The open session's bars as last fetched and as screened, per symbol: a fetch that continues them has only
        # its new bars judged (a session's bars would otherwise be judged again every cycle).
        self._open_intraday: dict[str, tuple[date, list[Bar], list[Bar]]] = {}
        self._judged: dict[str, tuple[tuple[float | None, ...], str | None]] = {}  # the last values judged, verdict

    def begin_round(self) -> None:
        self._round_ok = {s: True for s in self.symbols}
        self._round_kinds = {}

    def fail(self, symbol: str, kind: str, detail: str = "", *, down: bool = True) -> None:
        """Count a failed fetch (`down`: the symbol gave no value this round). Logged as a warning when the symbol
        starts failing or fails with a kind it did not report in its last round; a repeat is DEBUG (the counters
        keep every one), the recovery INFO."""
        self._errors.setdefault(symbol, Counter())[kind] += 1
        if down:
            self._round_ok[symbol] = False
        self._streak[symbol] = self._streak.get(symbol, 0) + 1
        kinds = self._round_kinds.setdefault(symbol, set())
        repeat = kind in kinds or kind in self._failing.get(symbol, ())
        kinds.add(kind)
        log.log(logging.DEBUG if repeat else logging.WARNING, "market data %s: %s%s", symbol, kind,
                f" ({detail})" if detail else "")

    def end_round(self) -> None:
        """After a round's fetches: a failing symbol whose fetches all succeeded this round has recovered."""
        for symbol in self.symbols:
            kinds = self._round_kinds.get(symbol)
            if kinds:
                self._failing[symbol] = kinds
            elif symbol in self._failing:
                was = ", ".join(sorted(self._failing.pop(symbol)))
                count = self._streak.pop(symbol, 0)
                log.info("market data %s: recovered after %d failed fetch%s (%s)", symbol, count,
                         "" if count == 1 else "es", was)
        for symbol in self.symbols:
            self._up[symbol] = self._round_ok.get(symbol, False) and symbol in self._last_success

    def fetch(self, symbol: str, method: str, *args: Any) -> Any:
        """Call a provider method; a failure is counted by kind and gives None."""
        try:
            return getattr(self.provider, method)(symbol, *args)
        except ProviderError as exc:
            self.fail(symbol, exc.kind if exc.kind in FAILURE_KINDS else "exception", exc.detail)
        except TimeoutError as exc:
            self.fail(symbol, "timeout", str(exc))
        except Exception as exc:  # a provider bug or an unexpected library error: no value, not a crash
            self.fail(symbol, "exception", f"{type(exc).__name__}: {exc}")
        return None

    def _impossible(self, symbol: str, close: float | None, high: float | None = None, low: float | None = None,
                    open_: float | None = None) -> str | None:
        # The newest quote is most often the bar that comes next among the session's bars: judged once (the rule
        # is a pure function of the values).
        values = (close, high, low, open_)
        last = self._judged.get(symbol)
        if last is not None and last[0] == values:
            return last[1]
        verdict = impossible(close, open_=open_, high=high, low=low, level=symbol in self.levels)
        self._judged[symbol] = (values, verdict)
        return verdict

    def invalid(self, symbol: str, stamp: date, detail: str, *, down: bool) -> None:
        """A bar that cannot be true: counted as `invalid` the first time it is met (the same bar fetched again, as
        a quote and then among the session's bars, is one bad value), warned on once per episode like any failed
        fetch. `down`: it was the symbol's newest value, so the symbol gave no value this round."""
        if (symbol, stamp) in self._invalid_seen:
            if down:  # still the newest value (no bar since): still down, the episode goes on
                self._round_ok[symbol] = False
                self._round_kinds.setdefault(symbol, set()).add("invalid")
            return
        self._invalid_seen.add((symbol, stamp))
        self.fail(symbol, "invalid", detail, down=down)

    def _screen_bars(self, symbol: str, bars: list[Bar]) -> list[Bar]:
        """The session's bars with each one that cannot be true turned into a bar with no values."""
        out = []
        for bar in bars:
            problem = self._impossible(symbol, bar.close, bar.high, bar.low)
            if problem is None:
                out.append(bar)
                continue
            self.invalid(symbol, bar.time, f"bar at {iso_utc(bar.time)}: {problem}", down=False)
            out.append(Bar(bar.time, math.nan))
        return out

    def _screen_new(self, symbol: str, day: date, bars: list[Bar]) -> list[Bar]:
        """`_screen_bars` of an open session's bars, judging only those that do not continue the ones screened last
        time (equal bars screen alike, and a bad one is counted once whenever it is met)."""
        kept = self._open_intraday.get(symbol)
        same = continued(kept[1], bars) if kept is not None and kept[0] == day else 0
        screened = kept[2][:same] + self._screen_bars(symbol, bars[same:]) if kept is not None and same else \
            self._screen_bars(symbol, bars)
        self._open_intraday[symbol] = (day, bars, screened)
        return screened

    def _screen_daily(self, symbol: str, bars: list[DailyBar]) -> list[DailyBar]:
        """Daily bars with each one that cannot be true turned into a day with no values."""
        out = []
        for bar in bars:
            problem = self._impossible(symbol, bar.close, bar.high, bar.low, bar.open)
            if problem is None:
                out.append(bar)
                continue
            self.invalid(symbol, bar.day, f"daily bar {bar.day.isoformat()}: {problem}", down=False)
            out.append(DailyBar(bar.day, math.nan, math.nan, math.nan, math.nan))
        return out

    def remember(self, symbol: str, quote: Quote) -> None:
        old = self.last.get(symbol)
        if quote.finite and (old is None or quote.time >= old.time):
            self.last[symbol] = quote

    def refresh_quote(self, symbol: str, now: datetime) -> None:
        quote = self.fetch(symbol, "latest", now)
        if quote is None:
            return
        problem = self._impossible(symbol, quote.price, quote.high, quote.low)
        if problem is not None:
            self.invalid(symbol, quote.time, f"bar at {iso_utc(quote.time)}: {problem}", down=True)
            return
        if not quote.finite:
            self.fail(symbol, "nan", f"bar at {iso_utc(quote.time)}")
            return
        self._last_success[symbol] = now
        self.remember(symbol, quote)

    def intraday(self, symbol: str, day: date, now: datetime, closed: bool) -> list[Bar] | None:
        """Intraday bars; a session that has closed is fetched once and cached (its bars no longer change)."""
        if closed and (symbol, day) in self._closed_intraday:
            return self._closed_intraday[(symbol, day)]
        bars = self.fetch(symbol, "intraday", day, now)
        if bars is None:
            return None
        if closed:
            self._open_intraday.pop(symbol, None)
            bars = self._screen_bars(symbol, bars)
        else:
            bars = self._screen_new(symbol, day, bars)
        if closed:
            self._closed_intraday[(symbol, day)] = bars
            # Bounded: the sessions asked again and again are today's and yesterday's (older ones are asked once,
            # then kept by the caller as what it needs), so a loop running for weeks does not keep every session.
            mine = [key for key in self._closed_intraday if key[0] == symbol]
            for key in mine[:-CLOSED_SESSIONS_KEPT]:
                del self._closed_intraday[key]
        return bars

    def daily(self, symbol: str, before: date, count: int) -> list[DailyBar] | None:
        key = (symbol, before, count)
        if key not in self._daily:
            bars = self.fetch(symbol, "daily", before, count)
            if bars is None:
                return None
            bars = self._screen_daily(symbol, bars)
            self._daily = {k: v for k, v in self._daily.items() if k[0] != symbol or k[2] != count}
            self._daily[key] = bars
        return self._daily[key]

    def status(self, symbol: str, now: datetime, until: datetime | None) -> SourceStatus:
        quote = self.last.get(symbol)
        return SourceStatus(
            symbol=symbol,
            up=self._up.get(symbol, False),
            age_seconds=(now - quote.time).total_seconds() if quote is not None else None,
            last_success=self._last_success.get(symbol),
            errors=dict(self._errors.get(symbol, {})),
            current_until=until,
        )


def continued(old: list[Bar], new: list[Bar]) -> int:
    """How many of `old`'s bars `new` starts with: all of them when `new` extends `old`; all but the last when the
    provider has revised its newest bar (a minute still forming); else 0."""
    n = len(old)
    if len(new) >= n and new[:n] == old:
        return n
    if n > 1 and len(new) >= n - 1 and new[:n - 1] == old[:n - 1]:
        return n - 1
    return 0


def _session_facts(calendar: MarketCalendar, now: datetime) -> tuple[bool, datetime]:
    """What the staleness rule needs of the calendar at `now`: whether the session is open, and the close of the
    current or last session. No schedule says whether the market is open outside the calendar: there only a value at
    most stale_after old is current (the session's rule, which holds whatever the phase)."""
    if not calendar.covers(now):
        return True, now
    _, last_close = calendar.open_close(calendar.current_or_last_session(now))
    return calendar.is_open(now), last_close


def _until(calendar: MarketCalendar, stale_after: timedelta, quote: Quote | None, now: datetime,
           facts: tuple[bool, datetime] | None = None) -> datetime | None:
    """`current_until` of a quote at `now`, with the session facts of `now` (`_session_facts`, worked out here when
    not given)."""
    if quote is None:
        return None
    session_open, last_close = facts if facts is not None else _session_facts(calendar, now)
    return current_until(quote.time, now, stale_after, session_open=session_open, last_close=last_close)


def _aware_utc(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("naive datetime: pass UTC-aware instants")
    return now.astimezone(UTC)


@dataclass(frozen=True)
class Instant:
    """What the calendar says of one instant that every ticker's context needs (the same for every ticker)."""

    time: datetime
    phase: str  # closed | pre | open | after | unknown (outside the exchange calendar)
    staleness: tuple[bool, datetime]  # the staleness rule's session facts (`_session_facts`)
    # The current or last session with its open and close (None outside the calendar).
    session: tuple[date, datetime, datetime] | None = None
    market_open: bool = False
    entry_window_open: bool = False
    seconds_to_close: float | None = None


class Instants:
    """The calendar asked once per instant for the whole process, not once per ticker: `at(now)` is safe to call
    from every ticker's fetch; the first call for an instant asks, the others get its answer."""

    def __init__(self, config: Config, calendar: MarketCalendar) -> None:
        self.config = config
        self.calendar = calendar
        self._lock = threading.Lock()
        self._kept: Instant | None = None

    def at(self, now: datetime) -> Instant:
        with self._lock:
            kept = self._kept
            if kept is None or kept.time != now:
                kept = self._kept = self._ask(now)
            return kept

    def _ask(self, now: datetime) -> Instant:
        cal, hours = self.calendar, self.config.hours
        phase = cal.session_phase(now)
        if phase == UNKNOWN_PHASE:
            return Instant(now, phase, _session_facts(cal, now))
        session = cal.current_or_last_session(now)
        return Instant(
            now, phase, _session_facts(cal, now), (session, *cal.open_close(session)),
            market_open=cal.within_local_hours(now, hours.trading_start, hours.trading_end),
            entry_window_open=cal.within_local_hours(now, hours.entry_start, hours.entry_end),
            seconds_to_close=cal.seconds_to_close(now))


# ------------------------------------------------------------------------------------------------------------
# The regime


class RegimeWatcher:
    """The VIX regime of the whole process: one per VIX symbol (`market.vix_symbol`), shared by every ticker's
    watcher, so the VIX is fetched and the hysteresis rule stepped once per cycle. `update(now)` is safe to call
    from every ticker's fetch worker: the first call for an instant does the work, the others get its reading."""

    def __init__(self, config: Config, provider: Provider, calendar: MarketCalendar) -> None:
        self.config = config
        self.calendar = calendar
        self.symbol = config.market.vix_symbol
        self.stale_after = timedelta(seconds=config.market.stale_after_seconds)
        self.feeds = _Feeds(provider, (self.symbol,), levels=frozenset((self.symbol,)))
        self.reading: RegimeReading | None = None  # the latest; replaced whole (one reference assignment)
        self._lock = threading.Lock()
        self._started = False
        self._regime: str | None = None  # last known regime
        self._seen: datetime | None = None  # time of the newest VIX value stepped
        self._previous: str | None = None
        self._changed_at: datetime | None = None

    def update(self, now: datetime) -> RegimeReading:
        now = _aware_utc(now)
        with self._lock:
            if self.reading is not None and self.reading.time >= now:
                return self.reading  # another ticker's fetch already read this instant (or a later one)
            self.reading = self._read(now)
            return self.reading

    def _read(self, now: datetime) -> RegimeReading:
        cal = self.calendar
        self.feeds.begin_round()
        self.feeds.refresh_quote(self.symbol, now)
        covered = cal.covers(now)
        if covered:  # outside the calendar no session says which VIX values to step over: the regime is unknown
            session = cal.current_or_last_session(now)
            _, session_close = cal.open_close(session)
            self._step_new_values(now, session, now >= session_close)
        self.feeds.end_round()
        quote = self.feeds.last.get(self.symbol)
        until = _until(cal, self.stale_after, quote, now)
        vix = quote.price if quote is not None and until is not None else None
        regime = self._regime if vix is not None and covered else None
        return RegimeReading(time=now, symbol=self.symbol, vix=vix, regime=regime,
                             previous_regime=self._previous, changed_at=self._changed_at,
                             source=self.feeds.status(self.symbol, now, until))

    def _step(self, stamp: datetime, vix: float | None) -> None:
        g = self.config.regime
        new = regime_rules.step(self._regime, vix, g.boundaries, g.hysteresis)
        if new is None:
            return
        if self._regime is not None and new != self._regime:
            self._previous = self._regime
            self._changed_at = stamp
        self._regime = new
        self._seen = stamp

    def _start_values(self, now: datetime, session: date) -> list[tuple[datetime, float]]:
        """The previous session's VIX values (its intraday bars, else its daily close), stepped over once at start so
        a one-shot answer equals a loop running since yesterday."""
        previous = self.calendar.previous_session(session)
        bars = self.feeds.intraday(self.symbol, previous, now, closed=True)
        if bars:
            return [(b.time, b.close) for b in bars]
        daily = self.feeds.daily(self.symbol, session, 1) or []
        _, prev_close = self.calendar.open_close(previous)
        return [(prev_close, d.close) for d in daily if d.day == previous]

    def _step_new_values(self, now: datetime, session: date, session_closed: bool) -> None:
        """Step the hysteresis rule over every VIX value newer than the last one stepped."""
        values: list[tuple[datetime, float]] = []
        if not self._started:
            self._started = True
            values += self._start_values(now, session)
        bars = self.feeds.intraday(self.symbol, session, now, closed=session_closed) or []
        values += [(b.time, b.close) for b in bars]
        quote = self.feeds.last.get(self.symbol)
        if quote is not None and (not values or quote.time > values[-1][0]):
            values.append((quote.time, quote.price))
        for stamp, vix in values:
            if self._seen is None or stamp > self._seen:
                self._step(stamp, vix if _finite(vix) else None)
            if _finite(vix):
                self.feeds.remember(self.symbol, Quote(self.symbol, stamp, vix))


# ------------------------------------------------------------------------------------------------------------
# A ticker


class MarketWatcher:
    """Keeps the market state of one ticker across updates. Call `update(now)` once per market-data cycle. Without
    a shared `regime` watcher it keeps its own (a one-shot answer, a test)."""

    def __init__(self, config: Config, provider: Provider, calendar: MarketCalendar, ticker: str,
                 trend: str | None = None, regime: RegimeWatcher | None = None,
                 instants: Instants | None = None) -> None:
        self.config = config
        self.provider = provider
        self.calendar = calendar
        self.ticker = ticker
        self.regime = regime if regime is not None else RegimeWatcher(config, provider, calendar)
        self.instants = instants if instants is not None else Instants(config, calendar)
        spec = config.ticker(ticker)
        self.price_symbol = spec.price_symbol
        self.vix_symbol = self.regime.symbol
        self.vol_symbol = spec.vol_index
        self.volume_symbol = spec.volume_symbol
        # Every symbol of the ticker, in the order its context lists them; the VIX's fetches are the regime's.
        self.symbols: tuple[str, ...] = tuple(dict.fromkeys(
            (self.price_symbol, self.vix_symbol, self.vol_symbol, self.volume_symbol)))
        self.own_symbols = tuple(s for s in self.symbols if s != self.vix_symbol)
        self.trend_setting = trend or config.market.trend
        self.stale_after = timedelta(seconds=config.market.stale_after_seconds)
        self.feeds = _Feeds(provider, self.own_symbols, levels=frozenset((self.vix_symbol, self.vol_symbol)))
        self._volume_today: tuple[date, SessionVolume] | None = None
        self._window: tuple[date, list[tuple[date, datetime, datetime]]] | None = None
        self._volume_days: dict[date, SessionVolume] = {}
        # The prior sessions' mean volume by time of day, once every prior session of the window has its bars.
        self._prior: tuple[date, PriorVolumes] | None = None
        # What was worked out of the last daily histories the fetches handed over (kept while they are the same).
        self._daily_kept: tuple[list[DailyBar], list[DailyBar], tuple[float, ...], tuple[float, ...]] | None = None
        self._iv_kept: tuple[list[DailyBar], IvWindow] | None = None

    def _until(self, symbol: str, now: datetime) -> datetime | None:
        return _until(self.calendar, self.stale_after, self.feeds.last.get(symbol), now,
                      self.instants.at(now).staleness)

    def _fresh(self, symbol: str, now: datetime) -> float | None:
        """The newest valid value of `symbol` if it is current (the staleness rule)."""
        quote = self.feeds.last.get(symbol)
        return quote.price if quote is not None and self._until(symbol, now) is not None else None

    # ---- volume ---------------------------------------------------------------------------------------------
    def _volume_ratio(self, now: datetime, session: date) -> float | None:
        open_, close = self.calendar.open_close(session)
        until = min(now, close)
        if until - open_ <= timedelta(0):
            return None
        today = self.feeds.intraday(self.volume_symbol, session, until, closed=now >= close)
        if not today:
            return None
        seen = self._today_volume(session, today).at(until)
        if seen is None:
            return None
        newest, current = seen
        if self.calendar.is_open(now) and now - newest > self.stale_after:
            return None
        if current is None:
            return None
        # Compare at the time of today's newest bar, so a bar still to come does not count against today.
        count, mean = self._prior_mean(session, newest - open_)
        if count < VOLUME_MIN_SESSIONS or mean is None:
            return None
        return current / mean if mean > 0 else None

    def _today_volume(self, session: date, bars: list[Bar]) -> SessionVolume:
        """Today's running volume totals, extended with the bars that came since the last cycle (built afresh on a
        new session, or when the provider's bars no longer continue the kept ones)."""
        kept = self._volume_today
        if kept is None or kept[0] != session or not kept[1].continued_by(bars):
            kept = self._volume_today = (session, SessionVolume(bars))
        else:
            kept[1].extend(bars[len(kept[1]):])
        return kept[1]

    def _volume_window(self, session: date) -> list[tuple[date, datetime, datetime]]:
        """The prior sessions the volume ratio averages over (up to `volume_window_sessions`), with their open and
        close: asked of the calendar once per session."""
        if self._window is None or self._window[0] != session:
            window = self.config.market.volume_window_sessions
            days = self.calendar.sessions_in_range(session - timedelta(days=3 * window), session - timedelta(days=1))
            kept = set(days[-window:])
            self._window = (session, [(day, *self.calendar.open_close(day)) for day in days[-window:]])
            # A session that left the window is not asked again.
            self._volume_days = {d: v for d, v in self._volume_days.items() if d in kept}
        return self._window[1]

    def _prior_profiles(self, session: date) -> list[tuple[datetime, datetime, SessionVolume | None]]:
        """Each prior session of the window with its open, close and running totals (None while its bars could not
        be fetched: asked again next cycle). A prior session's bars are fetched once and kept."""
        out: list[tuple[datetime, datetime, SessionVolume | None]] = []
        for day, day_open, day_close in self._volume_window(session):
            profile = self._volume_days.get(day)
            if profile is None:
                bars = self.feeds.intraday(self.volume_symbol, day, day_close, closed=True)
                if bars is not None:
                    profile = self._volume_days[day] = SessionVolume(bars)
            out.append((day_open, day_close, profile))
        return out

    def _prior_mean(self, session: date, elapsed: timedelta) -> tuple[int, float | None]:
        """How many prior sessions have bars `elapsed` after their open, and the mean of their cumulative volumes
        there: looked up in the session day's `PriorVolumes`, built once every prior session has its bars (until
        then, walked over the sessions that have them)."""
        if self._prior is not None and self._prior[0] == session:
            return self._prior[1].at(elapsed)
        profiles = self._prior_profiles(session)
        if all(p is not None for _, _, p in profiles):
            prior = PriorVolumes([(o, c, p) for o, c, p in profiles if p is not None], VOLUME_BAR_TOLERANCE)
            self._prior = (session, prior)
            return prior.at(elapsed)
        history: list[float] = []
        for day_open, day_close, profile in profiles:
            at = day_open + elapsed
            seen = profile.at(at) if profile is not None and at <= day_close else None
            if seen is not None and at - seen[0] <= VOLUME_BAR_TOLERANCE and seen[1] is not None:
                history.append(seen[1])
        return len(history), (sum(history) / len(history) if history else None)

    # ---- the cycle ------------------------------------------------------------------------------------------
    def _price_bars(self, now: datetime, session: date, session_closed: bool) -> list[Bar]:
        """Refresh the ticker's own quotes; today's bars seed the underlying's newest finite value (the newest bar
        itself may be blank)."""
        for symbol in self.own_symbols:
            self.feeds.refresh_quote(symbol, now)
        price_bars = self.feeds.intraday(self.price_symbol, session, now, closed=session_closed) or []
        # `remember` keeps the newest finite quote: only the newest finite bar can change it.
        bar = next((b for b in reversed(price_bars) if _finite(b.close)), None)
        if bar is not None:
            self.feeds.remember(self.price_symbol, Quote(self.price_symbol, bar.time, bar.close, bar.volume))
        return price_bars

    def _daily(self, entry_session: date) -> tuple[list[DailyBar], tuple[float, ...], tuple[float, ...]]:
        """Daily history of the underlying: sessions that have closed by now, finite closes only; with its closes and
        opens (worked out once for each history the fetches hand over, which changes once a session)."""
        m = self.config.market
        count = max(MIN_DAILY_HISTORY, m.band_window_sessions + 20, TREND_SMA_SESSIONS)
        raw = self.feeds.daily(self.price_symbol, entry_session, count) or []
        if self._daily_kept is None or self._daily_kept[0] is not raw:
            daily = [d for d in raw if _finite(d.close)]
            self._daily_kept = (raw, daily, tuple(d.close for d in daily), tuple(d.open for d in daily))
        return self._daily_kept[1], self._daily_kept[2], self._daily_kept[3]

    def _iv(self, vol_level: float | None, session: date) -> tuple[float | None, float | None]:
        m = self.config.market
        # A few extra rows: a provider may carry NaN rows (holidays) that do not count towards the window.
        vol_closes = self.feeds.daily(self.vol_symbol, session, m.iv_window_sessions + 30) or []
        if self._iv_kept is None or self._iv_kept[0] is not vol_closes:
            self._iv_kept = (vol_closes, IvWindow([d.close for d in vol_closes], m.iv_window_sessions))
        return self._iv_kept[1].rank_percentile(vol_level)

    def _flow_0dte(self, now: datetime, phase: str, price: float | None, price_bars: list[Bar]) -> str | None:
        m = self.config.market
        if phase != "open" or price is None:
            return None
        back = now - timedelta(minutes=m.flow_0dte_minutes)
        # The newest finite bar at or before `back` (bars come oldest first).
        earlier = next((b for b in reversed(price_bars) if b.time <= back and _finite(b.close)), None)
        return flow_of(price / earlier.close - 1.0, m.flow_0dte_dead_band) if earlier is not None else None

    def _sources(self, now: datetime, reading: RegimeReading) -> dict[str, SourceStatus]:
        return {symbol: reading.source_at(now) if symbol == self.vix_symbol
                else self.feeds.status(symbol, now, self._until(symbol, now)) for symbol in self.symbols}

    def _outside_calendar(self, now: datetime, reading: RegimeReading) -> MarketContext:
        """An instant outside the exchange calendar: the quotes are fetched (sources report honestly) and a value at
        most stale_after old is shown; everything that needs a session (previous close, history, volume, flow) is
        unknown."""
        for symbol in self.own_symbols:
            self.feeds.refresh_quote(symbol, now)
        self.feeds.end_round()
        vol_level = reading.vix if self.vol_symbol == self.vix_symbol else self._fresh(self.vol_symbol, now)
        trend = None if self.trend_setting == "auto" else self.trend_setting
        return MarketContext(
            ticker=self.ticker, time=now, session=UNKNOWN_PHASE, market_open=False, entry_window_open=False,
            seconds_to_close=None, price=self._fresh(self.price_symbol, now), prev_close=None, change_ratio=None,
            vix=reading.vix, regime=reading.regime, previous_regime=reading.previous_regime,
            regime_changed_at=reading.changed_at, iv_rank=None, iv_percentile=None, volume_ratio=None, trend=trend,
            flow=None, flow_0dte=None, daily_closes=(), daily_opens=(), sources=self._sources(now, reading),
            vol_index=vol_level, data_mode=getattr(self.provider, "label", "live"), roles=self._roles())

    def update(self, now: datetime) -> MarketContext:
        now = _aware_utc(now)
        cal = self.calendar
        reading = self.regime.update(now)
        self.feeds.begin_round()
        instant = self.instants.at(now)
        if instant.session is None:  # outside the exchange calendar
            return self._outside_calendar(now, reading)
        phase, (session, session_open, session_close) = instant.phase, instant.session
        price_bars = self._price_bars(now, session, now >= session_close)
        price = self._fresh(self.price_symbol, now)
        vol_level = reading.vix if self.vol_symbol == self.vix_symbol else self._fresh(self.vol_symbol, now)
        daily, closes, opens = self._daily(cal.entry_session(now))
        previous_day = cal.previous_session(session)
        prev_close = next((d.close for d in reversed(daily) if d.day == previous_day), None)
        change = price / prev_close - 1.0 if price is not None and prev_close else None
        iv_rank, iv_percentile = self._iv(vol_level, session)
        trend = auto_trend(closes) if self.trend_setting == "auto" else self.trend_setting
        volume_ratio = self._volume_ratio(now, session)
        self.feeds.end_round()
        return MarketContext(
            ticker=self.ticker, time=now, session=phase, market_open=instant.market_open,
            entry_window_open=instant.entry_window_open,
            seconds_to_close=instant.seconds_to_close, price=price, prev_close=prev_close, change_ratio=change,
            vix=reading.vix, regime=reading.regime, previous_regime=reading.previous_regime,
            regime_changed_at=reading.changed_at, iv_rank=iv_rank, iv_percentile=iv_percentile,
            volume_ratio=volume_ratio, trend=trend, flow=flow_of(change, self.config.market.flow_dead_band),
            flow_0dte=self._flow_0dte(now, phase, price, price_bars),
            daily_closes=closes, daily_opens=opens,
            sources=self._sources(now, reading), vol_index=vol_level,
            data_mode=getattr(self.provider, "label", "live"),
            session_open=session_open if phase == "open" else None, roles=self._roles(),
        )

    def _roles(self) -> dict[str, str]:
        return {"price": self.price_symbol, "vix": self.vix_symbol, "vol": self.vol_symbol,
                "volume": self.volume_symbol}
