"""The snapshot: everything the exporter knows at the end of a loop step, immutable.

The loop builds a new Snapshot after each step and swaps it in with one reference assignment; scrapes, the
landing page and /healthz only read the latest one. Holds values only; no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spreadwatch.app.watcher import MarketContext
    from spreadwatch.config import Config
    from spreadwatch.domain.scanner import ScanResult

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


@dataclass(frozen=True)
class GridInfo:
    path: str
    rows: int
    skipped_rows: int
    mtime: float


@dataclass(frozen=True)
class CalendarFacts:
    """The market phase at the snapshot's time, from the exchange calendar (never from market data)."""

    session: str  # closed | pre | open | after
    market_open: bool
    entry_window_open: bool
    seconds_to_close: float | None


@dataclass(frozen=True)
class Snapshot:
    version: str
    source: str  # live | replay
    source_description: str
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
