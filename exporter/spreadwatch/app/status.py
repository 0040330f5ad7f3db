"""One-shot answers (`spreadwatch status`, `scan --at`): the market context at one instant, the status report
(market, opportunities, portfolio) as JSON keys and text lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spreadwatch.app.watcher import MarketContext, MarketWatcher
from spreadwatch.domain.instants import iso_utc
from spreadwatch.errors import DataError, InputError

if TYPE_CHECKING:
    from spreadwatch.config import Config
    from spreadwatch.domain.events import EventCalendar
    from spreadwatch.domain.positions import Position, Summary
    from spreadwatch.edges.calendar import MarketCalendar
    from spreadwatch.edges.providers import Provider


# ------------------------------------------------------------------------------------------------------------
# One-shot answers (`spreadwatch status`, `scan --at`)


def one_shot_now(provider: Provider, calendar: MarketCalendar, at: str | None, start: str | None,
                 config: Config) -> datetime:
    """The instant a one-shot command answers for: --at; else on replay the replay clock's start (--start, or just
    before the replayed day's first entry window, as `run` starts); else the wall clock (read here, at the edge,
    never in the rules)."""
    from spreadwatch.app.clock import WallClock, parse_instant
    from spreadwatch.app.runner import default_replay_start

    if at:
        return parse_instant(at)
    if getattr(provider, "label", "live") == "replay":
        if start:
            return parse_instant(start)
        return default_replay_start(provider, calendar, config)
    return WallClock().now()


def market_context(config: Config, ticker: str | None = None, source_spec: str | None = None, at: str | None = None,
                   start: str | None = None, trend: str | None = None,
                   provider: Provider | None = None) -> tuple[MarketContext, Provider]:
    """What the loop would see at one instant: a fresh watcher (regime rebuilt over the previous and the current
    session) updated once. Returns the context and the provider it came from (for its description)."""
    from spreadwatch.edges.calendar import MarketCalendar
    from spreadwatch.edges.providers import make_provider

    name = ticker or config.watch[0]
    config.ticker(name)  # unknown ticker: ConfigError naming the configured ones
    provider = provider or make_provider(source_spec)
    calendar = MarketCalendar.of(config)
    now = one_shot_now(provider, calendar, at, start, config)
    # A week of margin: the answer also needs the previous and the next session.
    first = calendar.first_day + timedelta(days=7)
    last = calendar.last_day - timedelta(days=7)
    if not first <= now.date() <= last:
        raise InputError(f"{iso_utc(now)} is outside the exchange calendar's range ({first} to {last})")
    watcher = MarketWatcher(config, provider, calendar, name, trend=trend)
    return watcher.update(now), provider


def _fmt(value: float | None, pattern: str = "{:,.2f}", unknown: str = "unknown") -> str:
    return unknown if value is None else pattern.format(value)


def render_text(context: MarketContext, description: str, display_tz: str) -> list[str]:
    """Human lines for `spreadwatch status`: times in the display zone with its abbreviation, and every unknown
    value says why (no bar yet since the open, source down, before the open...)."""
    from zoneinfo import ZoneInfo

    from spreadwatch.domain.display import local_time

    c = context
    zone = ZoneInfo(display_tz)
    lines = [f"{c.ticker} at {local_time(c.time, zone, '%Y-%m-%d %H:%M')} ({iso_utc(c.time)})",
             f"source: {description}"]
    market = f"market: {c.session}"
    if c.seconds_to_close is not None:
        hours, rest = divmod(int(c.seconds_to_close), 3600)
        market += f", closes in {hours}h{rest // 60:02d}m"
    market += f"; trading hours {'open' if c.market_open else 'closed'}"
    market += f"; entry window {'open' if c.entry_window_open else 'closed'}"
    lines.append(market)
    price_unknown = c.unknown("price")
    change = _fmt(c.change_ratio, "{:+.2%}", price_unknown)
    lines.append(f"price: {_fmt(c.price, unknown=price_unknown)}  change: {change} vs previous close "
                 f"{_fmt(c.prev_close, unknown=c.unknown('price'))}  flow: {c.flow or price_unknown} "
                 f"(0 DTE: {c.flow_0dte or _flow_0dte_unknown(c, price_unknown)})")
    regime = c.regime or c.unknown("vix")
    if c.regime_changed_at is not None and c.previous_regime is not None:
        regime += f" (from {c.previous_regime} at {local_time(c.regime_changed_at, zone)})"
    lines.append(f"VIX: {_fmt(c.vix, unknown=c.unknown('vix'))}  regime: {regime}")
    vol_unknown = c.unknown("vol")
    lines.append(f"vol index: {_fmt(c.vol_index, unknown=vol_unknown)}  "
                 f"IV rank: {_fmt(c.iv_rank, '{:.2f}', vol_unknown)}  "
                 f"IV percentile: {_fmt(c.iv_percentile, '{:.2f}', vol_unknown)}")
    lines.append(f"volume ratio: {_fmt(c.volume_ratio, '{:.2f}', c.unknown('volume'))}  "
                 f"trend: {c.trend or 'unknown (not enough history yet)'}")
    lines.append("sources: " + "; ".join(source_text(name, s, c.session) for name, s in c.sources.items()))
    return lines


def _flow_0dte_unknown(c: MarketContext, price_unknown: str) -> str:
    """The 0-DTE flow compares the price with the open: before the open there is none to compare."""
    if c.price is None:
        return price_unknown
    return "unknown (before the open)" if c.session != "open" else "unknown (just after the open)"


def source_text(name: str, s: Any, session: str) -> str:
    """`^GSPC up (age 3 s)`, `^GSPC up (the last close, 41.4 h ago)` outside the session, `^VIX DOWN (no value;
    errors: timeout 3)`: one source for people."""
    from spreadwatch.domain.display import duration_text

    if s.age_seconds is None:
        age = "no value"
    elif session != "open" and s.current:
        age = f"the last close, {duration_text(s.age_seconds)} ago"
    else:
        age = f"age {duration_text(s.age_seconds)}"
    errors = ", ".join(f"{k} {v}" for k, v in sorted(s.errors.items()))
    return f"{name} {'up' if s.up else 'DOWN'} ({age}{'; errors: ' + errors if errors else ''})"




# ------------------------------------------------------------------------------------------------------------
# `spreadwatch status`


def status_report(config: Config, *, ticker: str | None, source_spec: str | None, at: str | None,
                  start: str | None, trend: str | None, db_path: str | None) -> tuple[dict[str, Any], list[str]]:
    """The whole `status` answer: the market context, the opportunities and the portfolio at one instant, as the
    `status --json` object and as text lines. Sections are built as data first, then rendered. The book is read
    once: the portfolio section shows it and the opportunities' risk check uses it."""
    from spreadwatch.app.scan import status_opportunities
    from spreadwatch.domain.scanner import BookState
    from spreadwatch.edges.calendar import MarketCalendar
    from spreadwatch.edges.eventfile import load_event_calendar

    context, provider = market_context(config, ticker=ticker, source_spec=source_spec, at=at, start=start,
                                       trend=trend)
    report: dict[str, Any] = {**context.to_json(), "source_description": provider.description}
    lines = render_text(context, provider.description, config.display_timezone)
    events = load_event_calendar(config, MarketCalendar.of(config))
    book = read_book(Path(db_path or config.paths.database))
    portfolio = status_portfolio(config, book, context.time)
    state = BookState.of(book.summary) if isinstance(book, Book) and book.exists else None
    for keys, section in (status_events(config, context.time, events),
                          status_opportunities(config, context, book=state, events=events),
                          portfolio):
        report.update(keys)
        lines += section
    return report, lines


def status_events(config: Config, now: datetime,
                  events: EventCalendar | None = None) -> tuple[dict[str, Any], list[str]]:
    """The scheduled events of `status`: today's and the rest of the week's, each with what its policy does
    (`events`: the calendar loaded already, else the one the settings name)."""
    from spreadwatch.domain.events import week_of
    from spreadwatch.edges.calendar import MarketCalendar
    from spreadwatch.edges.eventfile import load_event_calendar

    calendar = MarketCalendar.of(config)
    if events is None:
        events = load_event_calendar(config, calendar)
    today = calendar.et_date(now)
    rest = events.between(today + timedelta(days=1), week_of(today)[1])

    def as_json(e: Any) -> dict[str, Any]:
        return {"date": e.day.isoformat(), "kind": e.kind, "name": e.name, "policy": events.policy(e.kind)}

    keys = {"events": {"today": [as_json(e) for e in events.on(today)], "this_week": [as_json(e) for e in rest]}}
    return keys, ["", f"Events today: {event_list_text(events, events.on(today))}",
                  f"Events later this week: {event_list_text(events, rest)}"]


def event_list_text(events: Any, chosen: Any) -> str:
    """`FOMC 2026-12-09 (holds entries), Monthly opex 2026-12-18 (marked)`, or `none`."""
    if not chosen:
        return "none"
    return ", ".join(f"{e.label} ({'holds entries' if events.holds(e.kind) else 'marked'})" for e in chosen)


@dataclass(frozen=True)
class Book:
    """The position book as `status` read it: every position and their sums (`exists`: False when there is no book
    file yet, an empty portfolio)."""

    positions: list[Position]
    summary: Summary
    exists: bool


def read_book(path: Path) -> Book | DataError:
    """The book at `path`, or the DataError that says why it cannot be read (a corrupt book is reported, not fatal:
    the market part of `status` is still worth seeing)."""
    from spreadwatch.app.book import read_positions_if_any
    from spreadwatch.domain.positions import summarize

    try:
        positions = read_positions_if_any(path)
    except DataError as exc:
        return exc
    return Book(positions, summarize(positions), path.exists())


def status_portfolio(config: Config, book: Book | DataError, now: datetime) -> tuple[dict[str, Any], list[str]]:
    """The book as `status` shows it: summary, limits and the exit rules met at `now`. A missing book is an empty
    portfolio; a corrupt one is reported in `portfolio_error`, not fatal."""
    from spreadwatch.app.book import exit_lines
    from spreadwatch.domain.positions import money

    if isinstance(book, DataError):
        return {"portfolio": None, "portfolio_error": str(book)}, ["", f"Portfolio: unavailable ({book})"]
    summary = book.summary
    signals = [line for p in book.positions if p.is_open for line in exit_lines(config, p, now)]
    keys = {"portfolio": {**summary.to_json(), "max_positions": config.risk.max_positions,
                          "max_total_risk": config.risk.max_total_risk, "exit_signals": signals},
            "portfolio_error": None}
    lines = ["", f"Portfolio: {summary.open_count} open (max {config.risk.max_positions}), "
                 f"{summary.closed_count} closed | risk {money(summary.total_risk, sign=False)} of "
                 f"{money(config.risk.max_total_risk, sign=False)} | unrealized {money(summary.unrealized_pnl)} "
                 f"realized {money(summary.realized_pnl)}"]
    lines += [f"  {line}" for line in signals]
    return keys, lines
