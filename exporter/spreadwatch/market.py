"""The market context: what the loop knows about the market at an instant, honestly, or that it does not know.

Owns `MarketWatcher` (stateful: last good values with their age, per-source up/errors, regime hysteresis state,
cached daily history) and the immutable `MarketContext` it returns from `update(now)`, plus the small pure rules
it applies (IV rank/percentile, flow, trend `auto`, volume ratio). Must not: import yfinance (providers do), read
the clock (callers pass `now`), or put any value in place of a missing one: unknown is None (JSON null).

Semantics are DESIGN.md's "Clock, replay and staleness"; docs/market.md explains every field.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from spreadwatch import regime as regime_rules
from spreadwatch.errors import InputError
from spreadwatch.providers import FAILURE_KINDS, Bar, DailyBar, ProviderError, Quote

if TYPE_CHECKING:
    from spreadwatch.config import Config
    from spreadwatch.market_calendar import MarketCalendar
    from spreadwatch.providers import Provider

log = logging.getLogger(__name__)

# Trend `auto`: last close vs its 20-session simple moving average, with a +-1 % dead band.
TREND_SMA_SESSIONS = 20
TREND_DEAD_BAND = 0.01
# Volume ratio: fewest prior sessions to average over, and how far before the time of day a prior session's
# newest bar may be and still count as "has bars at that time of day" (5-minute bars pass).
VOLUME_MIN_SESSIONS = 5
VOLUME_BAR_TOLERANCE = timedelta(minutes=10)
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
    current: bool = False  # its newest valid value is current at the context's time (the staleness rule, `_fresh`)


@dataclass(frozen=True)
class MarketContext:
    ticker: str
    time: datetime
    session: str  # closed | pre | open | after
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
    source: str = "live"  # live | replay: the provider's label
    session_date: date | None = None  # the session whose data is current (today's once open, else the last)

    def to_json(self) -> dict[str, Any]:
        """The `status --json` object: stable keys, null when unknown (docs/market.md)."""
        return {
            "ticker": self.ticker,
            "time": iso_utc(self.time),
            "source": self.source,
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


def iso_utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# ------------------------------------------------------------------------------------------------------------
# Pure rules


def _finite(value: float | None) -> bool:
    return value is not None and isinstance(value, int | float) and math.isfinite(value)


def iv_rank_percentile(current: float | None, closes: Sequence[float], window: int = 252
                       ) -> tuple[float | None, float | None]:
    """IV rank = (current - low) / (high - low) over the last `window` closes, clipped to [0, 1]; IV percentile =
    share of those closes strictly below current. Unknown (None, None) without a current value or a full window."""
    values = [c for c in closes if _finite(c)][-window:]
    if not _finite(current) or len(values) < window:
        return None, None
    assert current is not None
    low, high = min(values), max(values)
    rank = None if high == low else min(1.0, max(0.0, (current - low) / (high - low)))
    percentile = sum(1 for v in values if v < current) / len(values)
    return rank, percentile


def flow_of(change: float | None, dead_band: float) -> str | None:
    """up | down | flat from a relative move and a dead band; None when the move is unknown."""
    if not _finite(change):
        return None
    assert change is not None
    if change > dead_band:
        return "up"
    if change < -dead_band:
        return "down"
    return "flat"


def auto_trend(closes: Sequence[float]) -> str | None:
    """Trend `auto`: up when the last close is more than 1 % above the mean of the last 20 closes (itself
    included), down when more than 1 % below, else sideways; None with fewer than 20 closes."""
    values = [c for c in closes if _finite(c)]
    if len(values) < TREND_SMA_SESSIONS:
        return None
    sma = sum(values[-TREND_SMA_SESSIONS:]) / TREND_SMA_SESSIONS
    return flow_of(values[-1] / sma - 1.0, TREND_DEAD_BAND).replace("flat", "sideways")  # type: ignore[union-attr]


def cumulative_volume(bars: Sequence[Bar], until: datetime) -> float | None:
    volumes = [b.volume for b in bars if b.time <= until and _finite(b.volume)]
    return float(sum(volumes)) if volumes else None  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------------------
# The watcher


class MarketWatcher:
    """Keeps the market state of one ticker across updates. Call `update(now)` once per market-data cycle."""

    def __init__(self, config: Config, provider: Provider, calendar: MarketCalendar, ticker: str,
                 trend: str | None = None) -> None:
        self.config = config
        self.provider = provider
        self.calendar = calendar
        self.ticker = ticker
        spec = config.ticker(ticker)
        self.price_symbol = spec.price_symbol
        self.vix_symbol = config.market.vix_symbol
        self.vol_symbol = spec.vol_index
        self.volume_symbol = spec.volume_symbol
        self.symbols: tuple[str, ...] = tuple(dict.fromkeys(
            (self.price_symbol, self.vix_symbol, self.vol_symbol, self.volume_symbol)))
        self.trend_setting = trend or config.market.trend
        self.stale_after = timedelta(seconds=config.market.stale_after_seconds)

        self._last: dict[str, Quote] = {}  # newest finite quote per symbol
        self._errors: dict[str, Counter[str]] = {s: Counter() for s in self.symbols}
        self._last_success: dict[str, datetime] = {}
        self._up: dict[str, bool] = {s: False for s in self.symbols}
        self._round_ok: dict[str, bool] = {}
        # Fetch warnings on transitions only: the kinds a failing symbol reported in its last round (a new kind is
        # a warning, a repeat is DEBUG), the kinds seen this round, and failed fetches since it started failing.
        self._failing: dict[str, set[str]] = {}
        self._round_kinds: dict[str, set[str]] = {}
        self._streak: dict[str, int] = {}
        self._daily: dict[tuple[str, date, int], list[DailyBar]] = {}
        self._closed_intraday: dict[tuple[str, date], list[Bar]] = {}

        self._regime_started = False
        self._regime: str | None = None  # last known regime
        self._regime_seen: datetime | None = None  # time of the newest VIX value stepped
        self._previous_regime: str | None = None
        self._regime_changed_at: datetime | None = None

    # ---- fetching -------------------------------------------------------------------------------------------
    def _fail(self, symbol: str, kind: str, detail: str = "") -> None:
        """Count a failed fetch. Logged as a warning when the symbol starts failing or fails with a kind it did not
        report in its last round; a repeat is DEBUG (the counters keep every one), the recovery INFO."""
        self._errors.setdefault(symbol, Counter())[kind] += 1
        self._round_ok[symbol] = False
        self._streak[symbol] = self._streak.get(symbol, 0) + 1
        kinds = self._round_kinds.setdefault(symbol, set())
        repeat = kind in kinds or kind in self._failing.get(symbol, ())
        kinds.add(kind)
        log.log(logging.DEBUG if repeat else logging.WARNING, "market data %s: %s%s", symbol, kind,
                f" ({detail})" if detail else "")

    def _end_round(self) -> None:
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

    def _fetch(self, symbol: str, method: str, *args: Any) -> Any:
        """Call a provider method; a failure is counted by kind and gives None."""
        try:
            return getattr(self.provider, method)(symbol, *args)
        except ProviderError as exc:
            self._fail(symbol, exc.kind if exc.kind in FAILURE_KINDS else "exception", exc.detail)
        except TimeoutError as exc:
            self._fail(symbol, "timeout", str(exc))
        except Exception as exc:  # a provider bug or an unexpected library error: no value, not a crash
            self._fail(symbol, "exception", f"{type(exc).__name__}: {exc}")
        return None

    def _remember(self, symbol: str, quote: Quote) -> None:
        old = self._last.get(symbol)
        if quote.finite and (old is None or quote.time >= old.time):
            self._last[symbol] = quote

    def _refresh_quote(self, symbol: str, now: datetime) -> None:
        quote = self._fetch(symbol, "latest", now)
        if quote is None:
            return
        if not quote.finite:
            self._fail(symbol, "nan", f"bar at {iso_utc(quote.time)}")
            return
        self._last_success[symbol] = now
        self._remember(symbol, quote)

    def _intraday(self, symbol: str, day: date, now: datetime, closed: bool) -> list[Bar] | None:
        """Intraday bars; a session that has closed is fetched once and cached (its bars no longer change)."""
        if closed and (symbol, day) in self._closed_intraday:
            return self._closed_intraday[(symbol, day)]
        bars = self._fetch(symbol, "intraday", day, now)
        if bars is None:
            return None
        if closed:
            self._closed_intraday[(symbol, day)] = bars
        return bars

    def _daily_bars(self, symbol: str, before: date, count: int) -> list[DailyBar] | None:
        key = (symbol, before, count)
        if key not in self._daily:
            bars = self._fetch(symbol, "daily", before, count)
            if bars is None:
                return None
            self._daily = {k: v for k, v in self._daily.items() if k[0] != symbol or k[2] != count}
            self._daily[key] = bars
        return self._daily[key]

    # ---- staleness ------------------------------------------------------------------------------------------
    def _fresh(self, symbol: str, now: datetime) -> float | None:
        """The newest valid value of `symbol` if it is current: during the regular session at most stale_after
        old; outside it, the last session's close (a value from within stale_after of that close) until the next
        open."""
        quote = self._last.get(symbol)
        if quote is None or quote.time > now:
            return None
        if self.calendar.is_open(now):
            return quote.price if now - quote.time <= self.stale_after else None
        last_session = self.calendar.current_or_last_session(now)
        _, close = self.calendar.open_close(last_session)
        return quote.price if quote.time >= close - self.stale_after else None

    # ---- regime ---------------------------------------------------------------------------------------------
    def _step_regime(self, stamp: datetime, vix: float | None) -> None:
        g = self.config.regime
        new = regime_rules.step(self._regime, vix, g.boundaries, g.hysteresis)
        if new is None:
            return
        if self._regime is not None and new != self._regime:
            self._previous_regime = self._regime
            self._regime_changed_at = stamp
        self._regime = new
        self._regime_seen = stamp

    def _update_regime(self, now: datetime, session: date, session_closed: bool) -> None:
        """Step the hysteresis rule over every VIX value newer than the last one stepped. At start this runs over
        the previous and the current session, so a one-shot answer equals a loop running since yesterday."""
        values: list[tuple[datetime, float]] = []
        if not self._regime_started:
            self._regime_started = True
            previous = self.calendar.previous_session(session)
            bars = self._intraday(self.vix_symbol, previous, now, closed=True)
            if bars:
                values += [(b.time, b.close) for b in bars]
            else:
                daily = self._daily_bars(self.vix_symbol, session, 1) or []
                _, prev_close = self.calendar.open_close(previous)
                values += [(prev_close, d.close) for d in daily if d.day == previous]
        bars = self._intraday(self.vix_symbol, session, now, closed=session_closed) or []
        values += [(b.time, b.close) for b in bars]
        quote = self._last.get(self.vix_symbol)
        if quote is not None and (not values or quote.time > values[-1][0]):
            values.append((quote.time, quote.price))
        for stamp, vix in values:
            if self._regime_seen is None or stamp > self._regime_seen:
                self._step_regime(stamp, vix if _finite(vix) else None)
            if _finite(vix):
                self._remember(self.vix_symbol, Quote(self.vix_symbol, stamp, vix))

    # ---- volume ---------------------------------------------------------------------------------------------
    def _volume_ratio(self, now: datetime, session: date) -> float | None:
        symbol = self.volume_symbol
        open_, close = self.calendar.open_close(session)
        until = min(now, close)
        elapsed = until - open_
        if elapsed <= timedelta(0):
            return None
        today = self._intraday(symbol, session, until, closed=now >= close)
        times = [b.time for b in today or [] if b.time <= until]
        if not times:
            return None
        if self.calendar.is_open(now) and now - max(times) > self.stale_after:
            return None
        current = cumulative_volume(today, until)
        if current is None:
            return None
        # Compare at the time of today's newest bar, so a bar still to come does not count against today.
        elapsed = max(times) - open_
        window = self.config.market.volume_window_sessions
        days = self.calendar.sessions_in_range(session - timedelta(days=3 * window), session - timedelta(days=1))
        history: list[float] = []
        for day in days[-window:]:
            day_open, day_close = self.calendar.open_close(day)
            at = day_open + elapsed
            if at > day_close:
                continue
            bars = self._intraday(symbol, day, day_close, closed=True)
            if not bars:
                continue
            upto = [b for b in bars if b.time <= at]
            if not upto or at - upto[-1].time > VOLUME_BAR_TOLERANCE:
                continue
            total = cumulative_volume(upto, at)
            if total is not None:
                history.append(total)
        if len(history) < VOLUME_MIN_SESSIONS:
            return None
        mean = sum(history) / len(history)
        return current / mean if mean > 0 else None

    # ---- the cycle ------------------------------------------------------------------------------------------
    def update(self, now: datetime) -> MarketContext:
        if now.tzinfo is None:
            raise ValueError("naive datetime: pass UTC-aware instants")
        now = now.astimezone(UTC)
        cal = self.calendar
        m = self.config.market
        self._round_ok = {s: True for s in self.symbols}
        self._round_kinds = {}

        phase = cal.session_phase(now)
        session = cal.current_or_last_session(now)
        _, session_close = cal.open_close(session)
        session_closed = now >= session_close
        entry_session = cal.entry_session(now)

        for symbol in self.symbols:
            self._refresh_quote(symbol, now)

        # Underlying: today's bars seed the newest finite value (the newest bar itself may be blank).
        price_bars = self._intraday(self.price_symbol, session, now, closed=session_closed) or []
        for bar in price_bars:
            if _finite(bar.close):
                self._remember(self.price_symbol, Quote(self.price_symbol, bar.time, bar.close, bar.volume))
        self._update_regime(now, session, session_closed)

        price = self._fresh(self.price_symbol, now)
        vix = self._fresh(self.vix_symbol, now)
        vol_level = self._fresh(self.vol_symbol, now)

        # Daily history of the underlying: sessions that have closed by now.
        count = max(MIN_DAILY_HISTORY, m.band_window_sessions + 20, TREND_SMA_SESSIONS)
        daily = self._daily_bars(self.price_symbol, entry_session, count) or []
        daily = [d for d in daily if _finite(d.close)]
        previous_day = cal.previous_session(session)
        prev_close = next((d.close for d in reversed(daily) if d.day == previous_day), None)
        change = price / prev_close - 1.0 if price is not None and prev_close else None

        # A few extra rows: a provider may carry NaN rows (holidays) that do not count towards the window.
        vol_closes = self._daily_bars(self.vol_symbol, session, m.iv_window_sessions + 30) or []
        iv_rank, iv_percentile = iv_rank_percentile(vol_level, [d.close for d in vol_closes],
                                                    m.iv_window_sessions)

        flow_0dte = None
        if phase == "open" and price is not None:
            back = now - timedelta(minutes=m.flow_0dte_minutes)
            earlier = [b for b in price_bars if b.time <= back and _finite(b.close)]
            if earlier:
                flow_0dte = flow_of(price / earlier[-1].close - 1.0, m.flow_0dte_dead_band)

        trend = auto_trend([d.close for d in daily]) if self.trend_setting == "auto" else self.trend_setting

        volume_ratio = self._volume_ratio(now, session)

        self._end_round()
        for symbol in self.symbols:
            self._up[symbol] = self._round_ok.get(symbol, False) and symbol in self._last_success
        sources = {}
        for symbol in self.symbols:
            quote = self._last.get(symbol)
            sources[symbol] = SourceStatus(
                symbol=symbol,
                up=self._up[symbol],
                age_seconds=(now - quote.time).total_seconds() if quote is not None else None,
                last_success=self._last_success.get(symbol),
                errors=dict(self._errors[symbol]),
                current=self._fresh(symbol, now) is not None,
            )

        hours = self.config.hours
        return MarketContext(
            ticker=self.ticker,
            time=now,
            session=phase,
            market_open=cal.within_local_hours(now, hours.trading_start, hours.trading_end),
            entry_window_open=cal.within_local_hours(now, hours.entry_start, hours.entry_end),
            seconds_to_close=cal.seconds_to_close(now),
            price=price,
            prev_close=prev_close,
            change_ratio=change,
            vix=vix,
            regime=self._regime if vix is not None else None,
            previous_regime=self._previous_regime,
            regime_changed_at=self._regime_changed_at,
            iv_rank=iv_rank,
            iv_percentile=iv_percentile,
            volume_ratio=volume_ratio,
            trend=trend,
            flow=flow_of(change, m.flow_dead_band),
            flow_0dte=flow_0dte,
            daily_closes=tuple(d.close for d in daily),
            daily_opens=tuple(d.open for d in daily),
            sources=sources,
            vol_index=vol_level,
            source=getattr(self.provider, "label", "live"),
            session_date=session,
        )


# ------------------------------------------------------------------------------------------------------------
# One-shot answers (`spreadwatch status`, `scan --at`)


def one_shot_now(provider: Provider, calendar: MarketCalendar, at: str | None, start: str | None) -> datetime:
    """The instant a one-shot command answers for: --at; else on replay the replay clock's start (--start, or the
    open of the replayed day); else the wall clock (read here, at the edge, never in the rules)."""
    from spreadwatch.clock import WallClock, parse_instant

    if at:
        return parse_instant(at)
    if getattr(provider, "label", "live") == "replay":
        if start:
            return parse_instant(start)
        return provider.default_start(calendar)  # type: ignore[attr-defined]
    return WallClock().now()


def market_context(config: Config, ticker: str | None = None, source: str | None = None, at: str | None = None,
                   start: str | None = None, trend: str | None = None,
                   provider: Provider | None = None) -> tuple[MarketContext, Provider]:
    """What the loop would see at one instant: a fresh watcher (regime rebuilt over the previous and the current
    session) updated once. Returns the context and the provider it came from (for its description)."""
    from spreadwatch.market_calendar import MarketCalendar
    from spreadwatch.providers import make_provider

    name = ticker or config.watch[0]
    config.ticker(name)  # unknown ticker: ConfigError naming the configured ones
    provider = provider or make_provider(source, config)
    calendar = MarketCalendar(config.display_timezone, config.market.calendar)
    now = one_shot_now(provider, calendar, at, start)
    # A week of margin: the answer also needs the previous and the next session.
    first = calendar.first_known_session + timedelta(days=7)
    last = calendar.last_known_session - timedelta(days=7)
    if not first <= now.date() <= last:
        raise InputError(f"{iso_utc(now)} is outside the exchange calendar's range ({first} to {last})")
    watcher = MarketWatcher(config, provider, calendar, name, trend=trend)
    return watcher.update(now), provider


def _fmt(value: float | None, pattern: str = "{:,.2f}") -> str:
    return "unknown" if value is None else pattern.format(value)


def render_text(context: MarketContext, description: str, display_tz: str) -> list[str]:
    """Human lines for `spreadwatch status` (unknown values say so)."""
    from zoneinfo import ZoneInfo

    c = context
    local = c.time.astimezone(ZoneInfo(display_tz))
    lines = [f"{c.ticker} at {local:%Y-%m-%d %H:%M %Z} ({iso_utc(c.time)})", f"source: {description}"]
    market = f"market: {c.session}"
    if c.seconds_to_close is not None:
        hours, rest = divmod(int(c.seconds_to_close), 3600)
        market += f", closes in {hours}h{rest // 60:02d}m"
    market += f"; trading hours {'open' if c.market_open else 'closed'}"
    market += f"; entry window {'open' if c.entry_window_open else 'closed'}"
    lines.append(market)
    change = _fmt(c.change_ratio, "{:+.2%}")
    lines.append(f"price: {_fmt(c.price)}  change: {change} vs previous close {_fmt(c.prev_close)}  "
                 f"flow: {c.flow or 'unknown'} (0 DTE: {c.flow_0dte or 'unknown'})")
    regime = c.regime or "unknown"
    if c.regime_changed_at is not None and c.previous_regime is not None:
        regime += f" (from {c.previous_regime} at {c.regime_changed_at.astimezone(ZoneInfo(display_tz)):%H:%M %Z})"
    lines.append(f"VIX: {_fmt(c.vix)}  regime: {regime}")
    lines.append(f"vol index: {_fmt(c.vol_index)}  IV rank: {_fmt(c.iv_rank, '{:.2f}')}  "
                 f"IV percentile: {_fmt(c.iv_percentile, '{:.2f}')}")
    lines.append(f"volume ratio: {_fmt(c.volume_ratio, '{:.2f}')}  trend: {c.trend or 'unknown'}")
    parts = []
    for name, s in c.sources.items():
        age = "no value" if s.age_seconds is None else f"age {duration_text(s.age_seconds)}"
        errors = ", ".join(f"{k} {v}" for k, v in sorted(s.errors.items()))
        parts.append(f"{name} {'up' if s.up else 'DOWN'} ({age}{'; errors: ' + errors if errors else ''})")
    lines.append("sources: " + "; ".join(parts))
    return lines


def duration_text(seconds: float) -> str:
    """`45 s`, `17 min`, `17.6 h`: how ages are shown to people (status, the event log)."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
