"""`spreadwatch run`: the exporter process wired together.

Checks the run's settings, picks the clock for the data source (the wall clock live, the replay clock on a replay),
creates or migrates the position book, starts the HTTP server and the loop, and stops both on SIGTERM/SIGINT.
Bad settings raise InputError before anything starts.
"""

from __future__ import annotations

import logging
import signal
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spreadwatch.errors import InputError, MalformedValue

if TYPE_CHECKING:
    from spreadwatch.config import Config

log = logging.getLogger("spreadwatch")


@dataclass(frozen=True)
class RunRequest:
    """What `spreadwatch run` was asked for (its flags)."""

    tickers: tuple[str, ...] = ()
    trend: str | None = None
    scan_interval: float | None = None
    source_spec: str | None = None  # --source: yahoo | replay | replay:FILE
    speed: float = 1.0
    start_at: str | None = None
    listen: str = "127.0.0.1:9877"
    db_path: str | None = None
    grid_file: str | None = None


def _check(config: Config, request: RunRequest) -> tuple[str, ...]:
    watch = request.tickers or config.watch
    for name in watch:
        config.ticker(name)
    from spreadwatch.domain import values

    try:
        if request.scan_interval is not None:
            values.duration(request.scan_interval)
    except values.ValueRefused as exc:
        raise MalformedValue(f"--scan-interval: {exc}") from None
    try:
        values.speed(request.speed)
    except values.ValueRefused as exc:
        raise MalformedValue(f"--speed: {exc}") from None
    return tuple(watch)


def check_listen(address: tuple[str, int]) -> None:
    """Refuse an address the server could not listen on (a host that does not resolve, a port in use, a port
    that needs privileges) before anything is created or logged: one line naming the address."""
    import socket

    host, port = address
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise InputError(f"--listen {shown}: cannot resolve the host ({exc})") from None
    family, kind, proto, _, sockaddr = infos[0]
    try:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
            probe.bind(sockaddr)
    except OSError as exc:
        raise InputError(f"--listen {shown}: cannot listen there ({exc.strerror or exc})") from None


# How long before the replayed day's first entry window a replay starts without --start: long enough to see the
# market before the open (the last close's prices and regime), short enough that the first setups follow at once.
ENTRY_LEAD = timedelta(minutes=2)


def default_replay_start(provider: Any, calendar: Any, config: Config) -> datetime:
    """Where a replay starts without --start: ENTRY_LEAD before the replayed day's entry hours open
    (hours.entry_start, not before the session's open). A file without intraday bars starts at its last bar."""
    from spreadwatch.domain.vocabulary import ET

    start: datetime = provider.default_start(calendar)
    day = provider.last_intraday_session() if hasattr(provider, "last_intraday_session") else None
    if day is None or not calendar.is_session(day) or start != calendar.open_close(day)[0]:
        return start
    entry = datetime.combine(day, config.hours.entry_start, tzinfo=calendar.display_tz)
    if entry.astimezone(ET).date() != day:  # a display zone far from New York: the hours are the session's
        entry = start
    return max(start, entry) - ENTRY_LEAD


def _clock(provider: Any, calendar: Any, request: RunRequest, config: Config) -> Any:
    """The replay clock on a replay (from --start, else just before the replayed day's first entry window), else
    the wall clock."""
    from spreadwatch.app.clock import ReplayClock, WallClock, parse_instant

    if provider.label == "replay":
        start = parse_instant(request.start_at) if request.start_at else default_replay_start(
            provider, calendar, config)
        return ReplayClock(start, request.speed)
    if request.start_at or request.speed != 1.0:
        raise InputError("--start and --speed apply to a replay source only")
    return WallClock()


def run(config: Config, request: RunRequest) -> None:
    """Run the exporter until SIGTERM/SIGINT: fetch, scan and check exits on the clock, serving /metrics."""
    from spreadwatch.app.service import Service, setup_logging
    from spreadwatch.edges.calendar import MarketCalendar
    from spreadwatch.edges.collector import Exposition, SnapshotCollector
    from spreadwatch.edges.gridfile import grid_path
    from spreadwatch.edges.providers import make_provider
    from spreadwatch.edges.server import ExporterServer, parse_listen
    from spreadwatch.edges.store import PositionBook

    watch = _check(config, request)
    try:
        address = parse_listen(request.listen)
    except InputError as exc:  # not HOST:PORT at all, whatever the network: the command line is wrong
        raise MalformedValue(str(exc)) from None
    check_listen(address)  # before the book, the log or any directory is created
    provider = make_provider(request.source_spec)
    calendar = MarketCalendar.of(config)
    clock = _clock(provider, calendar, request, config)
    db = Path(request.db_path or config.paths.database)
    grid = grid_path(config.paths.grid, request.grid_file)
    if not grid.exists():
        raise InputError(f"{grid}: grid file not found")
    setup_logging(config)
    PositionBook(db).close()  # creates or migrates the book; a corrupt or foreign file stops here, one line
    if provider.label == "replay":
        from zoneinfo import ZoneInfo

        from spreadwatch.domain.display import local_time
        from spreadwatch.domain.instants import iso_utc

        begin = clock.now()
        log.warning("REPLAY, not live data: %s; clock starts %s (%s) at %gx", provider.description,
                    local_time(begin, ZoneInfo(config.display_timezone), "%Y-%m-%d %H:%M"), iso_utc(begin),
                    request.speed)
    else:
        log.info("LIVE data: %s", provider.description)
    service = Service(config, provider, clock, calendar, tickers=watch, db_path=db, grid_path=grid,
                      trend=request.trend, scan_interval=request.scan_interval)
    server = ExporterServer(service, Exposition(SnapshotCollector(lambda: service.snapshot, clock.now)), address)
    server.start()
    host, port = server.address
    log.info("serving http://%s:%d/ (metrics at /metrics, health at /healthz); book %s; grid %s",
             host, port, db, grid)

    def _stop(signum: int, _frame: Any) -> None:
        log.info("signal %d: finishing the current step and exiting", signum)
        service.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        service.run()
    finally:
        server.stop()
    log.info("stopped")
