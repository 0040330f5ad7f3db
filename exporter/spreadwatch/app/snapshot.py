"""The snapshot: everything the exporter knows at the end of a loop step, immutable, with every decided fact.

The loop builds a new Snapshot after each step and swaps it in with one reference assignment; scrapes, the
landing page, the event log and /healthz only read the latest one. Holds values only; no I/O, no clock.

The facts the collector and the event log turn into series and lines are decided here, once per snapshot
(`tickers`, `sources`, `regime_facts`, `position_facts`): which values are still knowledge and until when (the
staleness rule of domain/market_rules.py), which sources are up, the one regime of the process, each position's
exit thresholds. Readers pass an instant (the exporter's clock at a scrape) and get facts; they decide nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from spreadwatch.domain.market_rules import known_at, looked_until
from spreadwatch.domain.notices import WindowSetup, window_setups
from spreadwatch.domain.positions import PnlReading, Summary, exit_pnl, exit_thresholds
from spreadwatch.domain.scanner import BookState
from spreadwatch.domain.watch import StrikeDistance, short_strike_distances

if TYPE_CHECKING:
    from spreadwatch.app.chains import ChainStatus
    from spreadwatch.app.digest import Digest
    from spreadwatch.app.watcher import MarketContext, RegimeReading, SourceStatus
    from spreadwatch.config import Config
    from spreadwatch.domain.events import Event, EventCalendar
    from spreadwatch.domain.marks import MarketMark, ModelMark
    from spreadwatch.domain.scanner import ScanResult

# What a failed task run was (spreadwatch_task_failures_total{kind}; service.fault_kind): an outside-world or input
# fault the loop lives with, keeping the last good values, or a bug (any other exception).
FAULT_KINDS: tuple[str, ...] = ("market", "provider", "data", "database", "os", "error", "bug")


@dataclass(frozen=True)
class TaskStatus:
    name: str
    interval_seconds: float
    last_run: datetime | None = None
    last_success: datetime | None = None
    duration_seconds: float | None = None
    ok: bool = False
    error: str | None = None
    errors_total: int = 0
    faults: dict[str, int] = field(default_factory=dict)  # failed runs by kind (FAULT_KINDS)
    bug: bool = False  # the last run failed with a bug (not an expected fault)


@dataclass(frozen=True)
class OpenPosition:
    """An open position with what the positions task derived from the calendar."""

    position: Any  # positions.Position
    sessions_to_expiry: int | None
    expiry_close: datetime | None


@dataclass(frozen=True)
class Portfolio:
    open_count: int = 0
    closed_count: int = 0
    open_risk: float = 0.0
    unrealized_pnl: float = 0.0
    realized_pnl: float = 0.0

    @classmethod
    def of(cls, summary: Summary) -> Portfolio:
        """The book's sums as positions.summarize computes them (the one implementation)."""
        return cls(summary.open_count, summary.closed_count, summary.total_risk, summary.unrealized_pnl,
                   summary.realized_pnl)

    def book_state(self) -> BookState:
        return BookState(self.open_count, self.open_risk)


@dataclass(frozen=True)
class GridInfo:
    path: str
    rows: int
    skipped_rows: int
    mtime: float


@dataclass(frozen=True)
class CalendarFacts:
    """The market phase at the snapshot's time, from the exchange calendar (never from market data)."""

    session: str  # closed | pre | open | after | unknown (outside the exchange calendar)
    market_open: bool
    entry_window_open: bool
    seconds_to_close: float | None
    session_left: float = 0.0  # the part of today's session still to trade (domain/watch.session_fraction_left)


@dataclass(frozen=True)
class TickerFacts:
    """A ticker's market context and until when it is knowledge (a context the loop could not refresh ages out)."""

    context: MarketContext
    known_until: datetime

    def known_at(self, now: datetime) -> bool:
        return known_at(self.known_until, now)


@dataclass(frozen=True)
class SourceFacts:
    """One data symbol as the exporter reports it."""

    symbol: str
    up: bool  # the last fetch gave a valid value and no fetch of it is stuck now
    value_time: datetime | None  # stamp of its newest valid value
    known_until: datetime  # the loop's last look at it is knowledge until then
    last_success: datetime | None
    errors: dict[str, int]  # failed fetches by kind; the loop's missed deadlines count as `timeout`

    def up_at(self, now: datetime) -> bool:
        return self.up and known_at(self.known_until, now)

    def age_at(self, now: datetime) -> float | None:
        return None if self.value_time is None else max(0.0, (now - self.value_time).total_seconds())


@dataclass(frozen=True)
class RegimeFacts:
    """The one regime of the process (and the VIX it comes from) and until when it is knowledge."""

    symbol: str
    vix: float | None
    regime: str | None
    previous_regime: str | None
    changed_at: datetime | None
    known_until: datetime
    vix_time: datetime | None  # stamp of the newest valid VIX value

    def known_at(self, now: datetime) -> bool:
        return known_at(self.known_until, now)

    def regime_at(self, now: datetime) -> str | None:
        return self.regime if self.known_at(now) else None

    def vix_at(self, now: datetime) -> float | None:
        return self.vix if self.known_at(now) else None

    def vix_age_at(self, now: datetime) -> float | None:
        return None if self.vix_time is None else max(0.0, (now - self.vix_time).total_seconds())


@dataclass(frozen=True)
class PositionFacts:
    """An open position with its exit thresholds (dollars for the whole position) and P&L / credit."""

    item: OpenPosition
    profit_target: float
    stop_loss: float  # negative
    pnl_to_credit: float
    # Distance from the ticker's price to each short strike (domain/watch.py); empty when the price is unknown or
    # the position is past its expiry.
    strike_distances: tuple[StrikeDistance, ...] = ()
    # The pricing model's estimate of the position now (domain/marks.py); None when it cannot be computed.
    model: ModelMark | None = None
    # The delayed option chain's mark (app/chains.py); None without a chain (off, replay, failed, none listed).
    market: MarketMark | None = None
    # The P&L the profit target and the stop evaluate (exits.pnl_sources: logged, market or model), with its source
    # and the instant it describes; None when no source in the order has one.
    exit_pnl: PnlReading | None = None


@dataclass(frozen=True)
class EventFacts:
    """The scheduled events around the snapshot's day (domain/events.py)."""

    today: tuple[Event, ...]
    rest_of_week: tuple[Event, ...]  # after today, through Friday
    coming: tuple[Event, ...]  # today and the next EVENT_HORIZON_DAYS days
    days_to_next: dict[str, int]  # kind -> calendar days to its next event (0: today); kinds with none known absent
    holds: dict[str, bool]  # kind -> its policy holds new entries back


EVENT_HORIZON_DAYS = 7


def _value_time(status: SourceStatus, context_time: datetime) -> datetime | None:
    if status.age_seconds is None:
        return None
    return context_time - timedelta(seconds=status.age_seconds)


@dataclass(frozen=True)
class Snapshot:
    version: str
    data_mode: str  # live | replay: where market data comes from (the provider's label)
    data_description: str  # one line for people: which provider, which file
    config: Config
    time: datetime | None = None
    calendar: CalendarFacts | None = None
    contexts: dict[str, MarketContext] = field(default_factory=dict)
    scans: dict[str, ScanResult] = field(default_factory=dict)
    grid: GridInfo | None = None
    positions: tuple[OpenPosition, ...] = ()
    portfolio: Portfolio | None = None
    tasks: dict[str, TaskStatus] = field(default_factory=dict)
    today: date | None = None
    # Market fetches that missed the loop's deadline (a hung provider), counted by the loop per data symbol, and
    # the symbols whose fetch is still stuck now: errors of kind "timeout", and down.
    fetch_timeouts: dict[str, int] = field(default_factory=dict)
    hung_sources: frozenset[str] = frozenset()
    # The process's regime reading (one regime watcher for every ticker). A snapshot built without the loop has
    # none: every context then carries the same regime, and `regime_facts` reads it from them.
    regime: RegimeReading | None = None
    # The market marks of the open positions (position id -> mark) and the chain sources' states.
    market_marks: dict[str, MarketMark] = field(default_factory=dict)
    chains: dict[str, ChainStatus] = field(default_factory=dict)
    # The scheduled market events (read once at start); None for a snapshot built without them.
    events: EventCalendar | None = None
    # Positions closed on the snapshot's (ET) day, for the end-of-day summary's realized P&L.
    closed_today: tuple[Any, ...] = ()
    # The morning brief / end-of-day summary up now (app/digest.py), each with its text.
    digests: tuple[Digest, ...] = ()

    @cached_property
    def event_facts(self) -> EventFacts | None:
        """Today's events, the rest of the week's, the coming week's, and how far each kind's next one is."""
        from spreadwatch.domain.events import EVENT_KINDS, week_of

        if self.events is None or self.today is None:
            return None
        cal, today = self.events, self.today
        friday = week_of(today)[1]
        days = {kind: (event.day - today).days for kind in EVENT_KINDS
                if (event := cal.next_of(kind, today)) is not None}
        return EventFacts(cal.on(today), cal.between(today + timedelta(days=1), friday),
                          cal.between(today, today + timedelta(days=EVENT_HORIZON_DAYS)), days,
                          {kind: cal.holds(kind) for kind in EVENT_KINDS})

    @property
    def stale_after(self) -> timedelta:
        return timedelta(seconds=self.config.market.stale_after_seconds)

    @cached_property
    def tickers(self) -> dict[str, TickerFacts]:
        """Every ticker's context, in ticker order, with until when it is knowledge."""
        return {ticker: TickerFacts(ctx, looked_until(ctx.time, self.stale_after))
                for ticker, ctx in sorted(self.contexts.items())}

    @cached_property
    def sources(self) -> dict[str, SourceFacts]:
        """Every data symbol once (the first ticker that lists it, in ticker order), in symbol order."""
        out: dict[str, SourceFacts] = {}
        for facts in self.tickers.values():
            ctx = facts.context
            for symbol, st in sorted(ctx.sources.items()):
                if symbol in out:
                    continue
                errors = dict(st.errors)
                if self.fetch_timeouts.get(symbol):
                    errors["timeout"] = errors.get("timeout", 0) + self.fetch_timeouts[symbol]
                out[symbol] = SourceFacts(symbol, st.up and symbol not in self.hung_sources,
                                          _value_time(st, ctx.time), facts.known_until, st.last_success, errors)
        return dict(sorted(out.items()))

    @cached_property
    def regime_facts(self) -> RegimeFacts | None:
        """The regime of the process: the loop's regime reading, else (no loop) the one every context carries."""
        if self.regime is not None:
            r = self.regime
            return RegimeFacts(r.symbol, r.vix, r.regime, r.previous_regime, r.changed_at,
                               looked_until(r.time, self.stale_after), _value_time(r.source, r.time))
        if not self.tickers:
            return None
        facts = next(iter(self.tickers.values()))
        ctx = facts.context
        symbol = self.config.market.vix_symbol
        status = ctx.sources.get(symbol)
        return RegimeFacts(symbol, ctx.vix, ctx.regime, ctx.previous_regime, ctx.regime_changed_at,
                           facts.known_until, None if status is None else _value_time(status, ctx.time))

    @cached_property
    def window_setups(self) -> tuple[WindowSetup, ...]:
        """Per ticker and entry window, the setups an opportunity notification lists (domain/notices.py)."""
        top = self.config.scan.notify_top
        return tuple(item for _, result in sorted(self.scans.items()) for item in window_setups(result, top))

    @cached_property
    def position_facts(self) -> tuple[PositionFacts, ...]:
        exits = self.config.exits
        out = []
        for item in self.positions:
            p = item.position
            target, stop = exit_thresholds(p, exits)
            model = self._model_mark(item)
            market = self.market_marks.get(p.id)
            out.append(PositionFacts(item, target, stop, p.pnl / p.credit if p.credit else 0.0,
                                     self._strike_distances(item), model, market,
                                     self._exit_pnl(item, model, market)))
        return tuple(out)

    def _exit_pnl(self, item: OpenPosition, model: ModelMark | None, market: MarketMark | None) -> PnlReading | None:
        """The first current P&L in the configured order, at the snapshot's time. A market mark is current when the
        chain it comes from was fetched at the last attempt and every leg had a usable quote."""
        exits = self.config.exits
        p = item.position
        readings = {"logged": PnlReading("logged", p.pnl, p.pnl_updated_at)}
        if market is not None and market.pnl is not None:
            readings["market"] = PnlReading("market", market.pnl, market.as_of)
        if model is not None:
            readings["model"] = PnlReading("model", model.pnl, self._marked_at(p.ticker), model.vol_index,
                                           self._vol_name(p.ticker))
        if self.time is None:
            return readings["logged"] if "logged" in exits.pnl_sources else None
        return exit_pnl(exits.pnl_sources, readings, self.time, exits.pnl_stale_after_minutes * 60)

    def _marked_at(self, ticker: str) -> datetime | None:
        """The stamp of the older of the ticker's price and vol index values (what a mark on them describes)."""
        facts = self.tickers.get(ticker)
        symbols = self.config.tickers.get(ticker)
        if facts is None or symbols is None:
            return None
        ctx = facts.context
        stamps = [_value_time(ctx.sources[sym], ctx.time) for sym in (symbols.price_symbol, symbols.vol_index)
                  if sym in ctx.sources]
        known = [t for t in stamps if t is not None]
        return min(known) if known and len(known) == len(stamps) else None

    def _vol_name(self, ticker: str) -> str:
        symbols = self.config.tickers.get(ticker)
        return "" if symbols is None else symbols.vol_index.lstrip("^")

    def _model_mark(self, item: OpenPosition) -> ModelMark | None:
        """On the ticker's price and vol index at the snapshot's time, over the sessions left."""
        from spreadwatch.domain.marks import model_mark  # numpy and scipy: only where a position is marked

        facts = self.tickers.get(item.position.ticker)
        if facts is None or self.time is None or not facts.known_at(self.time) or self.calendar is None:
            return None
        if item.sessions_to_expiry is None or item.sessions_to_expiry < 0:
            return None
        ctx = facts.context
        return model_mark(item.position, ctx.price, ctx.vol_index,
                          item.sessions_to_expiry + self.calendar.session_left)

    def _strike_distances(self, item: OpenPosition) -> tuple[StrikeDistance, ...]:
        """On the ticker's price at the snapshot's time, with the vol index's move over the sessions left (whole
        sessions after today to the expiry plus the part of today still to trade)."""
        facts = self.tickers.get(item.position.ticker)
        if facts is None or self.time is None or not facts.known_at(self.time):
            return ()
        if item.sessions_to_expiry is not None and item.sessions_to_expiry < 0:
            return ()
        left = None
        if item.sessions_to_expiry is not None and self.calendar is not None:
            left = item.sessions_to_expiry + self.calendar.session_left
        ctx = facts.context
        return tuple(short_strike_distances(item.position, ctx.price, ctx.vol_index, left))
