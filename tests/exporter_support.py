"""Helpers for the exporter tests: a provider that injects the outside world's failures, and a running service.

Only the outside world (the market-data provider) is faked; the loop, collector and server are the real ones.
"""

from __future__ import annotations

import math
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from spreadwatch.app.clock import ReplayClock
from spreadwatch.app.service import Service
from spreadwatch.config import Config
from spreadwatch.edges.calendar import MarketCalendar
from spreadwatch.edges.providers import DailyBar, ProviderError, Quote
from spreadwatch.edges.providers.replay import ReplayProvider

START = datetime.fromisoformat("2026-11-24T15:20:00+00:00")
# The NDX replay day the loop tests run on (synthetic, 2026-11-24) and the original's grid as their grid.
NDX_REPLAY = Path(__file__).parent / "data" / "ndx" / "replay_sample.csv"
SEED_GRID = Path(__file__).parent / "data" / "grids" / "grid_trading_ready.csv"


class FaultyProvider:
    """Wraps the NDX replay day; `mode` (None | raise | hang | empty | nan) makes every intraday call fail."""

    def __init__(self, inner: Any | None = None) -> None:
        self.inner = inner or ReplayProvider(NDX_REPLAY, bundled=True)
        self.label = self.inner.label
        self.description = self.inner.description
        self.mode: str | None = None
        self.release = threading.Event()
        self.calls = 0

    def default_start(self, calendar: MarketCalendar) -> datetime:
        return self.inner.default_start(calendar)

    def _fault(self, symbol: str) -> None:
        self.calls += 1
        if self.mode == "raise":
            raise ProviderError(symbol, "exception", "injected")
        if self.mode == "empty":
            raise ProviderError(symbol, "empty", "injected")
        if self.mode == "hang":
            self.release.wait(30)

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


def make_service(tmp_path: Path, provider: Any | None = None, *, speed: float = 600.0,
                 start: datetime = START, config: Config | None = None, db: Path | None = None,
                 fetch_deadline: float = 0.2, tickers: tuple[str, ...] = ("NDX",)) -> Service:
    from spreadwatch.edges.store import PositionBook

    config = config or Config()
    provider = provider or FaultyProvider()
    calendar = MarketCalendar(config.display_timezone)
    db = db or tmp_path / "book.db"
    if not db.exists():
        PositionBook(db).close()
    return Service(config, provider, ReplayClock(start, speed), calendar, tickers=tickers, db_path=db,
                   grid_path=SEED_GRID, fetch_deadline=fetch_deadline)


class Running:
    """The real loop in a thread, with the real HTTP server on a free loopback port."""

    def __init__(self, service: Service) -> None:
        from spreadwatch.edges.collector import SnapshotCollector, build_registry
        from spreadwatch.edges.server import ExporterServer

        self.service = service
        self.registry = build_registry(SnapshotCollector(lambda: service.snapshot, service.clock.now))
        self.server = ExporterServer(service, self.registry, ("127.0.0.1", 0))
        self.thread = threading.Thread(target=service.run, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.address
        return f"http://{host}:{port}"

    def __enter__(self) -> Running:
        self.server.start()
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.service.stop()
        self.thread.join(10)
        self.server.stop()
