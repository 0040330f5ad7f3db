"""One-shot scans (`spreadwatch scan`, the opportunities section of `status`): the scan the loop would run at one
instant, with the what-if overrides, and its text.

Reads the grid and the book through the edges (gridfile, store); decides nothing the scanner does not.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spreadwatch.errors import SpreadwatchError

if TYPE_CHECKING:
    from spreadwatch.app.watcher import MarketContext
    from spreadwatch.config import Config
    from spreadwatch.domain.events import EventCalendar
    from spreadwatch.domain.scanner import BookState, ScanResult
    from spreadwatch.edges.gridfile import Grid
    from spreadwatch.edges.providers import Provider


def book_state(config: Config, db_path: str | None) -> BookState | None:
    """Open count and open risk of the position book for the scanner's risk check (positions.summarize, as the
    loop sums it); None when there is no book."""
    path = Path(db_path or config.paths.database)
    if not path.exists():
        return None
    from spreadwatch.domain.positions import summarize
    from spreadwatch.domain.scanner import BookState
    from spreadwatch.edges.store import read_positions

    return BookState.of(summarize(read_positions(path, include_closed=False)))


class _Unread:
    """scan_context's `book` when the caller has not read the book: it is read from db_path."""


_UNREAD = _Unread()


def scan_context(config: Config, context: MarketContext, *, grid: Grid | None = None, db_path: str | None = None,
                 include_all: bool = False, events: EventCalendar | None = None,
                 book: BookState | None | _Unread = _UNREAD) -> ScanResult:
    """Scan a loaded grid (default: paths.grid, else the bundled one) for one MarketContext: the mapping of its
    fields onto scanner.scan. `book`: the book's state when the caller has read it already (None: no book),
    else it is read from `db_path` (default: paths.database)."""
    from spreadwatch.domain.scanner import scan
    from spreadwatch.edges import gridstore
    from spreadwatch.edges.calendar import MarketCalendar
    from spreadwatch.edges.eventfile import load_event_calendar
    from spreadwatch.edges.gridfile import grid_path

    if grid is None:
        grid = gridstore.load(grid_path(config.paths.grid), skip_impossible=config.scan.skip_impossible)
    calendar = MarketCalendar.of(config)
    if events is None:
        events = load_event_calendar(config, calendar)
    return scan(
        grid, ticker=context.ticker, now=context.time, calendar=calendar,
        config=config, regime=context.regime, trend=context.trend, flow=context.flow, flow_0dte=context.flow_0dte,
        price=context.price, daily_closes=context.daily_closes, daily_opens=context.daily_opens,
        book=book_state(config, db_path) if isinstance(book, _Unread) else book,
        include_all=include_all, events=events,
    )


def what_if(config: Config, context: MarketContext, *, vix: float | None, price: float | None,
            flow: str | None) -> MarketContext:
    """The context with the --vix (regime from it, no hysteresis), --price and --flow overrides."""
    from spreadwatch.domain import regime as regime_rules

    overrides: dict[str, Any] = {}
    if vix is not None:
        overrides["vix"] = vix
        overrides["regime"] = regime_rules.classify(vix, config.regime.boundaries)
    if price is not None:
        overrides["price"] = price
    if flow is not None:
        overrides["flow"] = overrides["flow_0dte"] = flow
    return dataclasses.replace(context, **overrides) if overrides else context


def run_scan(config: Config, *, ticker: str | None, source_spec: str | None, start_at: str | None, at: str | None,
             trend: str | None, vix: float | None, price: float | None, flow: str | None, grid_file: str | None,
             db_path: str | None, include_all: bool) -> tuple[ScanResult, MarketContext, Provider]:
    """The scan the loop would run at one instant; --vix/--price/--flow override the market context."""
    from spreadwatch.app.status import market_context
    from spreadwatch.edges import gridstore
    from spreadwatch.edges.calendar import MarketCalendar
    from spreadwatch.edges.eventfile import load_event_calendar
    from spreadwatch.edges.gridfile import grid_path

    # Loaded first: a bad grid or event calendar fails before any market data is fetched.
    grid = gridstore.load(grid_path(config.paths.grid, grid_file), skip_impossible=config.scan.skip_impossible)
    events = load_event_calendar(config, MarketCalendar.of(config))
    context, provider = market_context(config, ticker=ticker, source_spec=source_spec, at=at, start=start_at,
                                       trend=trend)
    context = what_if(config, context, vix=vix, price=price, flow=flow)
    result = scan_context(config, context, grid=grid, db_path=db_path, include_all=include_all, events=events)
    return result, context, provider


def status_opportunities(config: Config, context: MarketContext, *, book: BookState | None,
                         events: EventCalendar | None = None) -> tuple[dict[str, Any], list[str]]:
    """The scan section of `status`: JSON keys and text lines, with the risk check on `book` (the book `status`
    shows). A broken grid is reported here, not fatal."""
    try:
        result = scan_context(config, context, book=book, events=events)
    except SpreadwatchError as exc:
        return ({"opportunities": None, "matching_count": None, "skipped_rows": None, "skipped_by_reason": None,
                 "scan_error": str(exc)}, [f"Opportunities: unavailable: {exc}"])
    data = result.to_json()
    return ({"opportunities": data["opportunities"], "matching_count": data["matching_count"],
             "skipped_rows": data["skipped_rows"], "skipped_by_reason": data["skipped_by_reason"],
             "scan_error": None}, render_opportunities(result))


def render_opportunities(result: ScanResult) -> list[str]:
    from spreadwatch.domain.scanner import removed_lines
    from spreadwatch.edges.gridfile import skipped_text

    lines = [f"Opportunities ({result.ticker}, regime {result.regime or 'unknown'}): "
             f"{result.matching_count} configs pass the filters; "
             f"grid: {skipped_text(result.skipped_rows, result.skipped_by_reason)}"]
    if not result.opportunities:
        lines.append("  none; rows removed by each filter:")
        lines += removed_lines(result)
    for opp in result.opportunities:
        flags = []
        if opp.in_window:
            flags.append("IN WINDOW")
        if opp.blocked_by_risk:
            flags.append("BLOCKED BY RISK")
        if opp.held_back:
            flags.append(f"held back: {opp.held_back}")
        suffix = f"  [{', '.join(flags)}]" if flags else ""
        expiry = f"  exp {opp.expiry}" if opp.expiry else ""
        lines.append(f"  {opp.alert_line()}  width {opp.spread_width:g}{expiry}{suffix}")
    return lines
