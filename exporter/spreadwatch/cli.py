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
    """--source, --speed, --start: where market data comes from (see DESIGN.md, replay clock)."""
    func = click.option(
        "--start", "start_at", default=None, metavar="ISO", help="Replay: clock start (default: first bar's open)."
    )(func)
    func = click.option(
        "--speed", type=float, default=1.0, show_default=True, help="Replay: replay seconds per wall second."
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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
@json_option
@pass_ctx
@handle_errors
def status(ctx: Context, ticker: str | None, source: str | None, speed: float, start_at: str | None,
           at: str | None, trend: str | None, as_json: bool) -> None:
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
    if as_json:
        echo_json(report)
        return
    click.echo("\n".join(lines))


# ----------------------------------------------------------------------------------------------------------------
# scan


def book_state(config: Any, db_path: str | None) -> Any:
    """Open count and open risk of the position book for the scanner's risk check; None when there is no book."""
    from pathlib import Path

    from spreadwatch.scanner import BookState

    path = Path(db_path or config.paths.database)
    if not path.exists():
        return None
    try:
        from spreadwatch.store import read_positions
    except ImportError:  # no position book module yet: the book is unknown, nothing is marked blocked
        return None

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
        grid, ticker=context.ticker, now=context.time, calendar=MarketCalendar(config.display_timezone),
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
                 speed: float, start_at: str | None, vix: float | None, price: float | None, flow: str | None,
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
    calendar = MarketCalendar(config.display_timezone)
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
    if not db.exists():
        try:
            from spreadwatch.store import PositionBook
        except ImportError as exc:  # no position book module: the positions task reports it, the rest runs
            log.error("cannot create the position book %s: %s", db, exc)
        else:
            db.parent.mkdir(parents=True, exist_ok=True)
            PositionBook(db).close()
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
    """The best rows of a grid (any supported format) by trade score."""
    from spreadwatch.grid import load_grid

    grid = load_grid(file, skip_impossible=not include_impossible)
    floor = ctx.config.scan.min_trades if min_trades is None else min_trades
    frame = grid.frame[grid.frame["n_trades"] >= floor]
    frame = frame.sort_values("trade_score", ascending=False, kind="stable").head(top)
    columns = ["ticker", "dte", "band", "spread_type", "flow_mode", "spread_width", "entry_time_et", "regime",
               "trend", "n_trades", "win_rate", "roi", "avg_credit", "avg_max_risk", "sharpe", "trade_score"]
    if as_json:
        echo_json({"file": str(grid.path), "format": grid.format, "rows": grid.total_rows,
                   "skipped_rows": grid.skipped_rows, "min_trades": floor,
                   "top": [{c: _plain(row[c]) for c in columns} for _, row in frame.iterrows()]})
        return
    click.echo(f"{grid.path} ({grid.format}): {grid.total_rows} rows, {grid.skipped_rows} impossible skipped; "
               f"top {len(frame)} by trade score with at least {floor} trades")
    click.echo(f"{'dte':>3} {'band':<5} {'spread':<12} {'flow':<12} {'width':>5} {'ET':<5} {'regime':<8} "
               f"{'trend':<8} {'n':>5} {'win':>6} {'roi':>6} {'credit':>8} {'risk':>8} {'sharpe':>6} {'score':>7}")
    for _, r in frame.iterrows():
        click.echo(f"{int(r.dte):>3} {r.band:<5} {r.spread_type:<12} {r.flow_mode:<12} {r.spread_width:>5g} "
                   f"{r.entry_time_et:<5} {r.regime:<8} {r.trend:<8} {int(r.n_trades):>5} {r.win_rate:>6.1%} "
                   f"{r.roi:>6.1%} {r.avg_credit:>8.2f} {r.avg_max_risk:>8.2f} {r.sharpe:>6.2f} "
                   f"{r.trade_score:>7.1f}")


def _plain(value: Any) -> Any:
    """numpy scalars to plain JSON values."""
    return value.item() if hasattr(value, "item") else value


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
