"""The `spreadwatch` command line: a thin click layer over the library.

Owns argument parsing, turning `SpreadwatchError` into one-line errors with a non-zero exit, and choosing text or
JSON output. All behaviour lives in the library modules. Imports here stay light (no pandas, yfinance or calendar
at module level) so `positions list` starts fast; heavy modules are imported inside the commands that need them.

Each command group has its own section below; keep edits inside your section.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any

import click

from spreadwatch import __version__
from spreadwatch.errors import SpreadwatchError

# ----------------------------------------------------------------------------------------------------------------
# Shared plumbing


class Context:
    """What every command may need, resolved lazily from the global options."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._config: Any = None

    @property
    def config(self) -> Any:
        if self._config is None:
            from spreadwatch.config import load_config

            self._config = load_config(self.config_path)
        return self._config


pass_ctx = click.make_pass_decorator(Context)


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Expected failures become one line on stderr and exit code 1; no traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SpreadwatchError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def json_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")(func)


def db_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--db",
        "db_path",
        envvar="SPREADWATCH_DB",
        type=click.Path(dir_okay=False),
        help="SQLite position book (default: paths.database from config; env SPREADWATCH_DB).",
    )(func)


def ticker_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--ticker", default=None, help="Ticker from config (default: the first watched ticker).")(func)


def source_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--source, --start: where market data comes from (see DESIGN.md, replay clock). `run` adds --speed."""
    func = click.option(
        "--start", "start_at", default=None, metavar="ISO", help="Replay: clock start (default: first bar's open)."
    )(func)
    func = click.option(
        "--source",
        default=None,
        metavar="yahoo|replay:FILE",
        help="Market data source. Default: the bundled replay day (labelled as replay). Live: --source yahoo.",
    )(func)
    return func


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


# ----------------------------------------------------------------------------------------------------------------
# Root


class OneLineErrors(click.Group):
    """click's usage errors print the usage block and a blank line before the message; here every expected error
    is one line on stderr (the message and where to look), with click's exit codes (2 for usage, 1 otherwise)."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            click.echo(f"Error: {exc.format_message()}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        except BrokenPipeError:  # `spreadwatch positions list | head`
            sys.stderr.close()
            sys.exit(1)
        sys.exit(0)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="spreadwatch")
@click.option(
    "--config",
    "config_path",
    envvar="SPREADWATCH_CONFIG",
    type=click.Path(dir_okay=False),
    help="YAML config file (env SPREADWATCH_CONFIG; default: embedded defaults).",
)
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """spreadwatch: alert-only monitor for index credit spreads. It never places a trade."""
    ctx.obj = Context(config_path)


def main() -> None:
    cli(prog_name="spreadwatch")


# ----------------------------------------------------------------------------------------------------------------
# config


@cli.group("config")
def config_group() -> None:
    """Validate and show the configuration."""


@config_group.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@json_option
@pass_ctx
@handle_errors
def config_check(ctx: Context, file: str | None, as_json: bool) -> None:
    """Validate FILE (or the effective config) and print the effective settings."""
    from spreadwatch.config import load_config, to_plain

    config = load_config(file or ctx.config_path)
    plain = to_plain(config)
    if as_json:
        echo_json(plain)
        return
    import yaml

    origin = str(config.source) if config.source else "embedded defaults"
    click.echo(f"# effective configuration ({origin}): OK")
    click.echo(yaml.safe_dump(plain, sort_keys=False, default_flow_style=None).rstrip())


# ----------------------------------------------------------------------------------------------------------------
# status


@cli.command("status")
@ticker_option
@source_options
@click.option("--at", "at", default=None, metavar="ISO",
              help="Answer as of this instant (e.g. 2026-11-27T15:10:00Z): last bar at or before it, calendar at it.")
@click.option("--trend", type=click.Choice(["up", "down", "sideways", "auto"]), default=None,
              help="Override market.trend for this answer.")
@db_option
@json_option
@pass_ctx
@handle_errors
def status(ctx: Context, ticker: str | None, source: str | None, start_at: str | None,
           at: str | None, trend: str | None, db_path: str | None, as_json: bool) -> None:
    """The market context the loop would see now (or --at an instant): price, VIX regime, IV rank, flow."""
    from spreadwatch.market import market_context, render_text

    config = ctx.config
    context, provider = market_context(config, ticker=ticker, source=source, at=at, start=start_at, trend=trend)
    # Sections are built as data first, then rendered: later sections (opportunities, portfolio) add a key here.
    report: dict[str, Any] = {**context.to_json(), "source_description": provider.description}
    lines = render_text(context, provider.description, config.display_timezone)
    scan_keys, scan_lines = status_opportunities(config, context)  # scan section
    report.update(scan_keys)
    lines += scan_lines
    portfolio_keys, portfolio_lines = status_portfolio(ctx, db_path, context.time)  # portfolio section
    report.update(portfolio_keys)
    lines += portfolio_lines
    if as_json:
        echo_json(report)
        return
    click.echo("\n".join(lines))


def status_portfolio(ctx: Context, db_path: str | None, now: Any) -> tuple[dict[str, Any], list[str]]:
    """The book as `status` shows it: summary, limits and the exit rules met at `now`. A missing book is an empty
    portfolio; a corrupt one is reported in `portfolio_error`, not fatal (the market part is still worth seeing)."""
    from spreadwatch.errors import DataError
    from spreadwatch.positions import money, summarize

    config = ctx.config
    path = _book_path(ctx, db_path)
    try:
        positions = read_positions_if_any(path)
    except DataError as exc:
        return {"portfolio": None, "portfolio_error": str(exc)}, ["", f"Portfolio: unavailable ({exc})"]
    summary = summarize(positions)
    signals = [line for p in positions if p.is_open for line in _exit_lines(config, p, now)]
    keys = {"portfolio": {**summary.to_json(), "max_positions": config.risk.max_positions,
                          "max_total_risk": config.risk.max_total_risk, "exit_signals": signals},
            "portfolio_error": None}
    lines = ["", f"Portfolio: {summary.open_count} open (max {config.risk.max_positions}), "
                 f"{summary.closed_count} closed | risk {money(summary.total_risk, sign=False)} of "
                 f"{money(config.risk.max_total_risk, sign=False)} | unrealized {money(summary.unrealized_pnl)} "
                 f"realized {money(summary.realized_pnl)}"]
    lines += [f"  {line}" for line in signals]
    return keys, lines


def read_positions_if_any(path: Any) -> list[Any]:
    from spreadwatch.store import read_positions

    return read_positions(path) if path.exists() else []


# ----------------------------------------------------------------------------------------------------------------
# scan


def book_state(config: Any, db_path: str | None) -> Any:
    """Open count and open risk of the position book for the scanner's risk check; None when there is no book."""
    from pathlib import Path

    from spreadwatch.scanner import BookState

    path = Path(db_path or config.paths.database)
    if not path.exists():
        return None
    from spreadwatch.store import read_positions

    open_positions = [p for p in read_positions(path, include_closed=False) if p.status == "open"]
    return BookState(open_count=len(open_positions), open_risk=sum(p.risk for p in open_positions))


def run_scan(config: Any, *, ticker: str | None, source: str | None, start_at: str | None, at: str | None,
             trend: str | None, vix: float | None, price: float | None, flow: str | None, grid_file: str | None,
             db_path: str | None, include_all: bool) -> tuple[Any, Any, Any]:
    """The scan the loop would run at one instant; --vix/--price/--flow override the market context."""
    import dataclasses

    from spreadwatch import regime as regime_rules
    from spreadwatch.grid import grid_path, load_grid
    from spreadwatch.market import market_context

    # Loaded first: a bad grid fails before any market data is fetched.
    grid = load_grid(grid_path(config.paths.grid, grid_file), skip_impossible=config.scan.skip_impossible)
    context, provider = market_context(config, ticker=ticker, source=source, at=at, start=start_at, trend=trend)
    overrides: dict[str, Any] = {}
    if vix is not None:
        overrides["vix"] = vix
        overrides["regime"] = regime_rules.classify(vix, config.regime.boundaries)
    if price is not None:
        overrides["price"] = price
    if flow is not None:
        overrides["flow"] = overrides["flow_0dte"] = flow
    if overrides:
        context = dataclasses.replace(context, **overrides)
    result = scan_context(config, context, grid=grid, db_path=db_path, include_all=include_all)
    return result, context, provider


def scan_context(config: Any, context: Any, *, grid: Any = None, db_path: str | None = None,
                 include_all: bool = False) -> Any:
    """Scan a loaded grid (default: paths.grid, else the bundled one) for one MarketContext (market.py): the
    mapping of its fields onto scanner.scan."""
    from spreadwatch.grid import grid_path, load_grid
    from spreadwatch.market_calendar import MarketCalendar
    from spreadwatch.scanner import scan

    if grid is None:
        grid = load_grid(grid_path(config.paths.grid), skip_impossible=config.scan.skip_impossible)
    return scan(
        grid, ticker=context.ticker, now=context.time,
        calendar=MarketCalendar(config.display_timezone, config.market.calendar),
        config=config, regime=context.regime, trend=context.trend, flow=context.flow, flow_0dte=context.flow_0dte,
        price=context.price, daily_closes=context.daily_closes, daily_opens=context.daily_opens,
        book=book_state(config, db_path), include_all=include_all,
    )


def status_opportunities(config: Any, context: Any) -> tuple[dict[str, Any], list[str]]:
    """The scan section of `status`: JSON keys and text lines. A broken grid is reported here, not fatal."""
    try:
        result = scan_context(config, context)
    except SpreadwatchError as exc:
        return ({"opportunities": None, "matching_count": None, "skipped_rows": None, "scan_error": str(exc)},
                [f"Opportunities: unavailable: {exc}"])
    data = result.to_json()
    return ({"opportunities": data["opportunities"], "matching_count": data["matching_count"],
             "skipped_rows": data["skipped_rows"], "scan_error": None}, render_opportunities(result))


def render_opportunities(result: Any) -> list[str]:
    lines = [f"Opportunities ({result.ticker}, regime {result.regime or 'unknown'}): "
             f"{result.matching_count} configs pass the filters; {result.skipped_rows} impossible grid rows skipped"]
    if not result.opportunities:
        lines.append("  none")
    for opp in result.opportunities:
        flags = []
        if opp.in_window:
            flags.append("IN WINDOW")
        if opp.blocked_by_risk:
            flags.append("BLOCKED BY RISK")
        suffix = f"  [{', '.join(flags)}]" if flags else ""
        expiry = f"  exp {opp.expiry}" if opp.expiry else ""
        lines.append(f"  {opp.alert_line()}  width {opp.spread_width:g}{expiry}{suffix}")
    return lines


@cli.command("scan")
@click.option("--grid", "grid_file", type=click.Path(dir_okay=False),
              help="Grid CSV (canonical or an original format; default: paths.grid, else the bundled grid).")
@ticker_option
@click.option("--trend", type=click.Choice(["up", "down", "sideways", "auto"]), default=None,
              help="Override market.trend.")
@source_options
@click.option("--vix", type=float, default=None, help="What-if: use this VIX (regime from it, no hysteresis).")
@click.option("--price", type=float, default=None, help="What-if: use this underlying price for strikes.")
@click.option("--flow", type=click.Choice(["up", "down", "flat"]), default=None, help="What-if: use this flow.")
@click.option("--at", "at", default=None, metavar="ISO", help="Scan as of this instant (e.g. 2026-11-24T15:30:00Z).")
@click.option("--all", "include_all", is_flag=True, help="List every passing config, not just the top N.")
@db_option
@json_option
@pass_ctx
@handle_errors
def scan_command(ctx: Context, grid_file: str | None, ticker: str | None, trend: str | None, source: str | None,
                 start_at: str | None, vix: float | None, price: float | None, flow: str | None,
                 at: str | None, include_all: bool, db_path: str | None, as_json: bool) -> None:
    """The opportunities at one instant: regime-filtered grid configs, in-window first, with suggested strikes."""
    result, context, provider = run_scan(
        ctx.config, ticker=ticker, source=source, start_at=start_at, at=at, trend=trend, vix=vix, price=price,
        flow=flow, grid_file=grid_file, db_path=db_path, include_all=include_all)
    if as_json:
        echo_json(result.to_json())
        return
    click.echo(f"source: {provider.description}; at {context.time.isoformat()}")
    click.echo("\n".join(render_opportunities(result)))


# ----------------------------------------------------------------------------------------------------------------
# run


@cli.command("run")
@click.option("--ticker", "tickers", multiple=True, help="Ticker to watch (repeatable; default: config watch).")
@click.option("--trend", type=click.Choice(["up", "down", "sideways", "auto"]), default=None,
              help="Override market.trend.")
@click.option("--scan-interval", type=float, default=None, help="Seconds between scans (default: intervals.scan_seconds).")
@source_options
@click.option("--speed", type=float, default=1.0, show_default=True,
              help="Replay: replay seconds per wall second (60: a 60 s cycle per wall second).")
@click.option("--listen", default="127.0.0.1:9877", show_default=True, metavar="HOST:PORT",
              help="Address of /, /metrics and /healthz (loopback by default).")
@db_option
@click.option("--grid", "grid_file", type=click.Path(dir_okay=False),
              help="Grid CSV (default: paths.grid, else the bundled grid).")
@pass_ctx
@handle_errors
def run_command(ctx: Context, tickers: tuple[str, ...], trend: str | None, scan_interval: float | None,
                source: str | None, speed: float, start_at: str | None, listen: str, db_path: str | None,
                grid_file: str | None) -> None:
    """Run the exporter: fetch, scan and check exits on the clock, serving /metrics until stopped."""
    import logging
    import signal
    from pathlib import Path

    from spreadwatch.clock import ReplayClock, WallClock, parse_instant
    from spreadwatch.collector import SnapshotCollector, build_registry
    from spreadwatch.errors import InputError
    from spreadwatch.grid import grid_path
    from spreadwatch.market_calendar import MarketCalendar
    from spreadwatch.providers import make_provider
    from spreadwatch.server import ExporterServer, parse_listen
    from spreadwatch.service import Service, setup_logging

    config = ctx.config
    watch = tickers or config.watch
    for name in watch:
        config.ticker(name)
    if scan_interval is not None and scan_interval <= 0:
        raise InputError("--scan-interval must be > 0")
    if speed <= 0:
        raise InputError("--speed must be > 0")
    address = parse_listen(listen)
    provider = make_provider(source, config)
    calendar = MarketCalendar(config.display_timezone, config.market.calendar)
    if provider.label == "replay":
        start = parse_instant(start_at) if start_at else provider.default_start(calendar)  # type: ignore[attr-defined]
        clock: Any = ReplayClock(start, speed)
    else:
        if start_at or speed != 1.0:
            raise InputError("--start and --speed apply to a replay source only")
        clock = WallClock()
    db = Path(db_path or config.paths.database)
    grid = grid_path(config.paths.grid, grid_file)
    if not grid.exists():
        raise InputError(f"{grid}: grid file not found")
    setup_logging(config)
    log = logging.getLogger("spreadwatch")
    from spreadwatch.store import PositionBook

    PositionBook(db).close()  # creates or migrates the book; a corrupt or foreign file stops here, one line
    if provider.label == "replay":
        log.warning("REPLAY, not live data: %s; clock starts %s at %gx", provider.description,
                    clock.now().isoformat(), speed)
    else:
        log.info("LIVE data: %s", provider.description)
    service = Service(config, provider, clock, calendar, tickers=tuple(watch), db_path=db, grid_path=grid,
                      trend=trend, scan_interval=scan_interval)
    registry = build_registry(SnapshotCollector(lambda: service.snapshot, clock.now))
    server = ExporterServer(service, registry, address)
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


# ----------------------------------------------------------------------------------------------------------------
# grid


def _csv_list(kind: Callable[[str], Any], name: str) -> Callable[[Any, Any, str | None], Any]:
    """A click callback turning `0,1,3` into a tuple, with a one-line error naming the option."""

    def convert(ctx: Any, param: Any, value: str | None) -> Any:
        if value is None:
            return None
        try:
            items = tuple(kind(part.strip()) for part in value.split(",") if part.strip())
        except ValueError:
            raise click.BadParameter(f"{value!r} is not a comma-separated list for {name}") from None
        if not items:
            raise click.BadParameter(f"{name} needs at least one value")
        return items

    return convert


def _iso_date(ctx: Any, param: Any, value: str | None) -> Any:
    if value is None:
        return None
    from datetime import date

    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


@cli.group("grid")
def grid_group() -> None:
    """Build the backtest grid the scanner reads, and show one."""


@grid_group.command("build")
@ticker_option
@click.option("--days", type=int, default=None, help="Entries over the last N sessions (yahoo default: 90).")
@click.option("--start", "start", default=None, callback=_iso_date, metavar="YYYY-MM-DD", help="First entry session.")
@click.option("--end", "end", default=None, callback=_iso_date, metavar="YYYY-MM-DD", help="Last entry session.")
@click.option("--source", default="yahoo", show_default=True, metavar="yahoo|csv:FILE",
              help="Daily history: the yahoo provider, or a CSV in the replay format.")
@click.option("--chains", "chains_dir", type=click.Path(file_okay=False), default=None,
              help="Directory of option chain CSVs (timestamp,type,strike,bid,ask,expiration): credits from "
                   "quotes instead of the model.")
@click.option("--dte", "dtes", default="0,1,3,5,10", show_default=True, callback=_csv_list(int, "--dte"),
              help="DTEs (trading sessions) to test.")
@click.option("--bands", default="P95,P97,P98,P99,P100", show_default=True, callback=_csv_list(str, "--bands"),
              help="Percentile bands to test.")
@click.option("--widths", default="10,25,50", show_default=True, callback=_csv_list(float, "--widths"),
              help="Spread widths (index points).")
@click.option("--out", default="grid.csv", show_default=True, type=click.Path(dir_okay=False),
              help="Canonical grid CSV to write.")
@click.option("--report", default=None, type=click.Path(dir_okay=False), help="Also write a PNG report here.")
@pass_ctx
@handle_errors
def grid_build(ctx: Context, ticker: str | None, days: int | None, start: Any, end: Any, source: str,
               chains_dir: str | None, dtes: tuple[int, ...], bands: tuple[str, ...], widths: tuple[float, ...],
               out: str, report: str | None) -> None:
    """Backtest every config (DTE x band x spread x flow x width) and write the canonical grid."""
    from spreadwatch.gridbuild import BuildRequest, build, summary_lines

    config = ctx.config
    request = BuildRequest(
        ticker=ticker or config.watch[0], source=source, days=days, start=start, end=end, chains_dir=chains_dir,
        dtes=dtes, bands=bands, widths=widths, out=out, report=report)
    result = build(config, request)
    click.echo("\n".join(summary_lines(result, request)))


@grid_group.command("show")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--top", default=20, show_default=True, type=click.IntRange(min=1), help="Rows to show.")
@click.option("--all-rows", "include_impossible", is_flag=True, help="Keep impossible rows (credit > width...).")
@click.option("--min-trades", type=click.IntRange(min=0), default=None,
              help="Hide rows with fewer trades (default: scan.min_trades; 0 shows all).")
@json_option
@pass_ctx
@handle_errors
def grid_show(ctx: Context, file: str, top: int, include_impossible: bool, min_trades: int | None,
              as_json: bool) -> None:
    """The best rows of a grid (any supported format) by trade score, with each row's credit source (modelled,
    from option chains, or not recorded) and low-sample flag."""
    from spreadwatch.grid import load_grid, show_json, show_lines

    grid = load_grid(file, skip_impossible=not include_impossible)
    floor = ctx.config.scan.min_trades if min_trades is None else min_trades
    if as_json:
        echo_json(show_json(grid, top=top, min_trades=floor))
        return
    click.echo("\n".join(show_lines(grid, top=top, min_trades=floor)))



# ----------------------------------------------------------------------------------------------------------------
# positions
#
# `list` and `summary` stay light: no pandas, exchange_calendars or sqlite-utils import (the read path is the
# standard library's sqlite3), so they start faster than `sqlite-utils rows` (benchmarks/bench_positions.py).
# `history` opens the book through sqlite-utils (store.PositionBook).


def _book_path(ctx: Context, db_path: str | None) -> Any:
    from pathlib import Path

    return Path(db_path or ctx.config.paths.database)


def _open_book(ctx: Context, db_path: str | None, *, create: bool = True) -> Any:
    """The writable book; `create=False` for commands about an existing position (a mistyped --db must not
    create an empty book)."""
    from spreadwatch.store import PositionBook

    return PositionBook(_book_path(ctx, db_path), create=create)


def _now() -> Any:
    from spreadwatch.clock import command_now

    try:
        return command_now()  # the wall clock, or SPREADWATCH_NOW (a testing aid)
    except SpreadwatchError as exc:  # a malformed value: exit 2, like a malformed option
        raise click.UsageError(str(exc)) from None


def _exit_lines(config: Any, position: Any, now: Any) -> list[str]:
    """The exit rules an open position meets now, in the words of the loop's event log and the alerts."""
    from spreadwatch.market_calendar import MarketCalendar
    from spreadwatch.positions import exit_signals

    calendar = MarketCalendar(config.display_timezone, config.market.calendar)
    try:
        sessions = calendar.sessions_to_expiry(calendar.et_date(now), position.expiry)
    except ValueError:  # expiry beyond the calendar's range: the time rule cannot be judged
        sessions = None
    return [f"EXIT SIGNAL - Position {position.id} | Reason: {s.detail}"
            for s in exit_signals(position, sessions, config.exits)]


def _position_line(p: Any) -> str:
    from spreadwatch.positions import money, strikes_text

    return (f"{p.id}: {p.ticker} {p.dte}DTE {p.band} {p.spread.upper()} x{p.contracts} | "
            f"Credit:{money(p.credit, sign=False)} Risk:{money(p.risk, sign=False)} | {strikes_text(p)} | "
            f"expires {p.expiry.isoformat()}")


@cli.group("positions")
def positions_group() -> None:
    """Log trades by hand and follow their P&L (the position book, a SQLite file)."""


@positions_group.command("add")
@click.option("--dte", type=int, required=True, help="Trading sessions to expiry at entry (0 = expires today).")
@click.option("--band", required=True, help="Percentile band: P95, P97, P98, P99 or P100.")
@click.option("--spread", required=True, help="iron_condor, put_spread or call_spread.")
@click.option("--flow-mode", default="neutral", show_default=True, help="neutral, with_flow or against_flow.")
@click.option("--contracts", type=int, required=True, help="Number of spreads (>= 1).")
@click.option("--credit", type=float, required=True, help="Credit received, dollars for the whole position.")
@click.option("--risk", type=float, default=None,
              help="Max loss, dollars for the whole position (default: width x 100 x contracts - credit).")
@click.option("--short-put", type=float, default=None, help="Short put strike.")
@click.option("--long-put", type=float, default=None, help="Long put strike.")
@click.option("--short-call", type=float, default=None, help="Short call strike.")
@click.option("--long-call", type=float, default=None, help="Long call strike.")
@ticker_option
@click.option("--expiry", default=None, metavar="YYYY-MM-DD",
              help="Expiration date (default: --dte sessions after the entry session, XNYS calendar).")
@click.option("--entry-time", default=None, metavar="ISO", help="When the trade was entered (default: now).")
@click.option("--note", default="", help="Free text, kept in the history.")
@db_option
@json_option
@pass_ctx
@handle_errors
def positions_add(ctx: Context, dte: int, band: str, spread: str, flow_mode: str, contracts: int, credit: float,
                  risk: float | None, short_put: float | None, long_put: float | None, short_call: float | None,
                  long_call: float | None, ticker: str | None, expiry: str | None, entry_time: str | None,
                  note: str, db_path: str | None, as_json: bool) -> None:
    """Log a trade you executed at your broker (warns when the book would break a risk limit)."""
    from datetime import date

    from spreadwatch.clock import parse_instant
    from spreadwatch.errors import InputError
    from spreadwatch.market_calendar import MarketCalendar
    from spreadwatch.positions import PositionInput, limit_warnings, validate

    config = ctx.config
    entry, warnings = validate(PositionInput(
        ticker=ticker or config.watch[0], spread=spread, band=band, flow_mode=flow_mode, dte=dte,
        contracts=contracts, credit=credit, risk=risk, short_put=short_put, long_put=long_put,
        short_call=short_call, long_call=long_call, note=note), tickers=config.tickers)
    now = _now()
    entered = parse_instant(entry_time) if entry_time else now
    if entered > now:
        raise InputError(f"--entry-time: {entry_time} is in the future")
    calendar = MarketCalendar(config.display_timezone, config.market.calendar)
    try:
        session = calendar.entry_session(entered)
        if expiry is None:
            expires = calendar.expiry_for(session, dte)
        else:
            try:
                expires = date.fromisoformat(expiry)
            except ValueError:
                raise InputError(f"--expiry: {expiry!r} is not a date (YYYY-MM-DD)") from None
            if not calendar.is_session(expires):
                raise InputError(f"--expiry: {expires} is not a trading session (weekend or holiday)")
            if expires < session:
                raise InputError(f"--expiry: {expires} is before the entry session {session}")
            computed = calendar.sessions_to_expiry(session, expires)
            if computed != dte:
                warnings.append(f"warning: --expiry {expires} is {computed} session(s) after the entry session "
                                f"{session}, not --dte {dte}; both stored as given")
    except ValueError as exc:  # outside the calendar's known range
        raise InputError(f"--expiry: {exc}") from None
    if calendar.et_date(now) > expires:
        raise InputError(f"--expiry: {expires} is in the past")
    with _open_book(ctx, db_path) as book:
        warnings += limit_warnings(book.positions(include_closed=False), entry.risk, config.risk)
        position = book.add(entry, entry_time=entered, expiry=expires, now=now)
    for line in warnings:
        click.echo(line, err=True)
    if as_json:
        echo_json(position.to_json())
        return
    click.echo(f"Added {_position_line(position)}")


def _set_pnl(ctx: Context, ref: str, pnl: float, note: str, db_path: str | None, as_json: bool, close: bool) -> None:
    from spreadwatch.positions import money, validate_pnl

    value = validate_pnl(pnl)
    now = _now()
    with _open_book(ctx, db_path, create=False) as book:
        before, after = book.set_pnl(ref, value, now=now, note=note or None, close=close)
    signals = _exit_lines(ctx.config, after, now)
    if as_json:
        echo_json({**after.to_json(), "previous_pnl": before.pnl, "exit_signals": signals})
        return
    verb = "Closed" if close else "Updated"
    click.echo(f"{verb} {after.id}: P&L {money(before.pnl)} -> {money(after.pnl)}"
               + (" (realized)" if close else ""))
    for line in signals:
        click.echo(line)


@positions_group.command("update")
@click.argument("position_id")
@click.option("--pnl", type=float, required=True, help="Current P&L from your broker, dollars (loss negative).")
@click.option("--note", default="", help="Free text, kept in the history.")
@db_option
@json_option
@pass_ctx
@handle_errors
def positions_update(ctx: Context, position_id: str, pnl: float, note: str, db_path: str | None,
                     as_json: bool) -> None:
    """Log the current P&L of POSITION_ID (a unique prefix is enough); says when an exit rule is met."""
    _set_pnl(ctx, position_id, pnl, note, db_path, as_json, close=False)


@positions_group.command("close")
@click.argument("position_id")
@click.option("--pnl", type=float, required=True, help="Final P&L, dollars (loss negative).")
@click.option("--note", default="", help="Free text, kept in the history.")
@db_option
@json_option
@pass_ctx
@handle_errors
def positions_close(ctx: Context, position_id: str, pnl: float, note: str, db_path: str | None,
                    as_json: bool) -> None:
    """Close POSITION_ID with its final P&L (it leaves the open book and the metrics)."""
    _set_pnl(ctx, position_id, pnl, note, db_path, as_json, close=True)


def _read_book(ctx: Context, db_path: str | None, include_closed: bool) -> list[Any]:
    """Positions for list/summary; a book that does not exist yet is empty (a corrupt one is an error)."""
    from spreadwatch.store import read_positions

    path = _book_path(ctx, db_path)
    if not path.exists():
        click.echo(f"(no position book at {path} yet: `spreadwatch positions add` creates it)", err=True)
        return []
    return read_positions(path, include_closed=include_closed)


@positions_group.command("list")
@click.option("--include-closed", is_flag=True, help="Also show closed positions.")
@db_option
@json_option
@pass_ctx
@handle_errors
def positions_list(ctx: Context, include_closed: bool, db_path: str | None, as_json: bool) -> None:
    """Open positions (and closed ones with --include-closed), oldest entry first."""
    from spreadwatch.positions import money, strikes_text

    positions = _read_book(ctx, db_path, include_closed)
    if as_json:
        echo_json([p.to_json() for p in positions])
        return
    if not positions:
        click.echo("No open positions." if not include_closed else "No positions.")
        return
    columns = (("ID", "<"), ("Ticker", "<"), ("Spread", "<"), ("Band", "<"), ("DTE", ">"), ("Qty", ">"),
               ("Strikes", "<"), ("Credit", ">"), ("Risk", ">"), ("P&L", ">"), ("Expiry", "<"), ("Status", "<"))
    rows = [[p.id, p.ticker, p.spread, p.band, str(p.dte), str(p.contracts), strikes_text(p),
             money(p.credit, sign=False), money(p.risk, sign=False), money(p.pnl), p.expiry.isoformat(), p.status]
            for p in positions]
    # Plain fixed-width columns: rich's Table took about 1 s to lay out 1,000 rows (bench_positions.py).
    widths = [max(len(name), *(len(row[i]) for row in rows)) for i, (name, _) in enumerate(columns)]

    def line(cells: list[str]) -> str:
        return "  ".join(f"{cell:{align}{width}}" for cell, width, (_, align) in zip(cells, widths, columns,
                                                                                   strict=True)).rstrip()

    click.echo(click.style(line([name for name, _ in columns]), bold=True))  # bold on a terminal only
    click.echo("\n".join(line(row) for row in rows))


@positions_group.command("summary")
@db_option
@json_option
@pass_ctx
@handle_errors
def positions_summary(ctx: Context, db_path: str | None, as_json: bool) -> None:
    """Counts, capital at risk and P&L of the whole book, as the original's PORTFOLIO SUMMARY."""
    from spreadwatch.positions import money, summarize

    summary = summarize(_read_book(ctx, db_path, include_closed=True))
    if as_json:
        echo_json(summary.to_json())
        return
    click.echo("\n".join([
        "PORTFOLIO SUMMARY", "===================", "Positions:", f"  Total: {summary.total_count}",
        f"  Open: {summary.open_count}", f"  Closed: {summary.closed_count}", "", "Capital:",
        f"  Total Risk: {money(summary.total_risk, sign=False)}", "", "P&L:",
        f"  Unrealized: {money(summary.unrealized_pnl)}", f"  Realized: {money(summary.realized_pnl)}",
        f"  Total: {money(summary.total_pnl)}",
    ]))


@positions_group.command("history")
@click.argument("position_id")
@db_option
@json_option
@pass_ctx
@handle_errors
def positions_history(ctx: Context, position_id: str, db_path: str | None, as_json: bool) -> None:
    """Every add/update/close of POSITION_ID: time, old and new P&L, note (append-only)."""
    from spreadwatch.positions import money

    with _open_book(ctx, db_path, create=False) as book:
        position = book.get(position_id)
        entries = book.history(position.id)
    if as_json:
        echo_json([{"seq": e.seq, "position_id": e.position_id, "time": e.time.isoformat(), "action": e.action,
                    "old_pnl": e.old_pnl, "new_pnl": e.new_pnl, "note": e.note} for e in entries])
        return
    click.echo(_position_line(position) + f" | {position.status}")
    for e in entries:
        old = money(e.old_pnl) if e.old_pnl is not None else "-"
        note = f"  {e.note}" if e.note else ""
        click.echo(f"  {e.time.strftime('%Y-%m-%d %H:%M:%S')} UTC  {e.action:<6}  {old:>12} -> {money(e.new_pnl):>12}{note}")


@positions_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@db_option
@pass_ctx
@handle_errors
def positions_import(ctx: Context, file: str, db_path: str | None) -> None:
    """Import the original system's positions.json: every record validated, all or nothing."""
    from pathlib import Path
    from zoneinfo import ZoneInfo

    from spreadwatch.errors import InputError
    from spreadwatch.market_calendar import MarketCalendar
    from spreadwatch.positions import parse_original

    config = ctx.config
    source = Path(file)
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{file}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{file}: cannot read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{file}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    calendar = MarketCalendar(config.display_timezone, config.market.calendar)

    def expiry_for(entered: Any, dte: int) -> Any:
        try:
            return calendar.expiry_for(calendar.entry_session(entered), dte)
        except ValueError as exc:
            raise InputError(f"expiry: cannot compute from dte ({exc})") from None

    def is_session(day: Any) -> bool:
        try:
            return calendar.is_session(day)
        except ValueError:
            return False

    try:
        records = parse_original(data, tickers=config.tickers, local_tz=ZoneInfo(config.display_timezone),
                                 expiry_for=expiry_for, is_session=is_session)
    except InputError as exc:
        raise InputError(f"{file}: {exc}; nothing imported") from None
    with _open_book(ctx, db_path) as book:
        ids = book.import_positions(records, now=_now())
    opened = sum(1 for _, _, state in records if state["status"] == "open")
    click.echo(f"Imported {len(ids)} position(s) from {file} ({opened} open, {len(ids) - opened} closed)")


# ----------------------------------------------------------------------------------------------------------------
# --config after the subcommand too


def _set_config_path(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        obj = ctx.find_object(Context)
        obj.config_path = value
        obj._config = None


def _accept_config_on_every_command(group: click.Group) -> None:
    """`spreadwatch run --config FILE` works like `spreadwatch --config FILE run` (the issue's and the original's
    habit); given in both places, the one after the subcommand wins."""
    for command in group.commands.values():
        if isinstance(command, click.Group):
            _accept_config_on_every_command(command)
        else:
            command.params.insert(0, click.Option(
                ["--config", "config_path"], type=click.Path(dir_okay=False), expose_value=False, is_eager=True,
                callback=_set_config_path, help="YAML config file (also before the subcommand; env SPREADWATCH_CONFIG)."))


_accept_config_on_every_command(cli)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
