"""The everyday commands without click (`positions add`, `update`, `close`, `list` and `summary`; `status` and
`scan`): their options, declared once, and what each command does with them.

Two parsers read these declarations: edges/cli.py and edges/cli_positions.py build the click commands from them
(help, usage errors, every unusual command line), and edges/cli_fast.py parses a well-formed command line on its
own, so that these commands start without importing click and building its command tree (benchmarks/bench_cli.py).
Both call the functions below, which print through `echo` and raise the library's errors; each parser turns those
into the same one-line message and exit code (2 for a malformed value, 1 for the others). Imports stay inside the
functions: this module is on the start-up path of every one of these commands.
"""

from __future__ import annotations

import sys

from spreadwatch.errors import SpreadwatchError

TYPE_CHECKING = False  # typing itself costs start-up time; mypy reads the block below all the same
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from typing import Any

    from spreadwatch.domain.positions import Position

MISSING = object()  # an option declared without a default (click's own "no default")


# Kinds of value checked by domain/values.py's validator of the same name (a refused value: exit 2, one line).
CHECKED_KINDS = ("price", "level")


class Opt:
    """One option: its flag, the parameter it fills, its kind (int, float, text, path, flag, choice, or one of
    CHECKED_KINDS) and what click shows. A choice's values are `choices`."""

    __slots__ = ("flag", "dest", "kind", "required", "default", "help", "metavar", "show_default", "envvar",
                 "choices")

    def __init__(self, flag: str, dest: str, kind: str = "text", *, required: bool = False, default: object = MISSING,
                 help: str, metavar: str | None = None, show_default: bool = False, envvar: str | None = None,
                 choices: tuple[str, ...] = ()) -> None:
        self.flag, self.dest, self.kind, self.required, self.default = flag, dest, kind, required, default
        self.help, self.metavar, self.show_default, self.envvar = help, metavar, show_default, envvar
        self.choices = choices

    def value_when_absent(self) -> object:
        if self.default is not MISSING:
            return self.default
        return False if self.kind == "flag" else None


class Command:
    """One command: its help text, its positional arguments, its options (in the order `--help` lists them) and
    the function that does it; `path` is how it is called (`positions add`, `status`)."""

    __slots__ = ("name", "help", "arguments", "options", "run", "path")

    def __init__(self, name: str, help: str, arguments: tuple[str, ...], options: tuple[Opt, ...],
                 run: Callable[..., None], group: str = "positions") -> None:
        self.name, self.help, self.arguments, self.options, self.run = name, help, arguments, options, run
        self.path = f"{group} {name}" if group else name


# ---- options shared with other commands (edges/cli.py's db_option, json_option, ticker_option) ------------------
DB = Opt("--db", "db_path", "path", envvar="SPREADWATCH_DB",
         help="SQLite position book (default: paths.database from config; env SPREADWATCH_DB).")
JSON = Opt("--json", "as_json", "flag", help="Print JSON for scripts instead of a table.")
TICKER = Opt("--ticker", "ticker", default=None, help="Ticker from config (default: the first watched ticker).")
CONFIG = Opt("--config", "config_path", "path",
             help="YAML config file (also before the subcommand; env SPREADWATCH_CONFIG).")
ROOT_CONFIG = Opt("--config", "config_path", "path", envvar="SPREADWATCH_CONFIG",
                  help="YAML config file (env SPREADWATCH_CONFIG; default: embedded defaults).")
NOTE = Opt("--note", "note", default="", help="Free text, kept in the history.")


# ---- what every command may need --------------------------------------------------------------------------------
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


class UsageWithoutHint(Exception):  # noqa: N818  (a usage error, as click's, shown without the --help hint)
    """A malformed value that belongs to no option of the command line (SPREADWATCH_NOW): exit 2, one line."""


def echo(text: str, err: bool = False) -> None:
    """One line (or several) on stdout, or stderr, as click.echo prints a string."""
    stream = sys.stderr if err else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def bold(text: str) -> str:
    """Bold on a terminal, plain text otherwise (as click.style + click.echo do)."""
    return f"\x1b[1m{text}\x1b[0m" if sys.stdout.isatty() else text


def echo_json(data: Any) -> None:
    import json

    echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def safe(text: object) -> str:
    """Text from the book or the config as printed: control characters (a terminal's escape sequences) escaped."""
    plain = str(text)
    if plain.isascii() and plain.isprintable():  # nothing to escape: the common case, a table of 1,000 rows
        return plain
    from spreadwatch.domain.values import printable

    return printable(plain)


def now() -> Any:
    from spreadwatch.app.clock import command_now

    try:
        return command_now()  # the wall clock, or SPREADWATCH_NOW (a testing aid)
    except SpreadwatchError as exc:  # a malformed value: exit 2, like a malformed option
        raise UsageWithoutHint(str(exc)) from None


def book_path(ctx: Context, db_path: str | None) -> Path:
    from pathlib import Path

    return Path(db_path or ctx.config.paths.database)


def position_line(p: Position) -> str:
    from spreadwatch.domain.positions import money, strikes_text

    return (f"{p.id}: {p.ticker} {p.dte}DTE {p.band} {p.spread.upper()} x{p.contracts} | "
            f"Credit:{money(p.credit, sign=False)} Risk:{money(p.risk, sign=False)} | {strikes_text(p)} | "
            f"expires {p.expiry.isoformat()}")


# ---- the commands -----------------------------------------------------------------------------------------------
def add(ctx: Context, *, dte: int, band: str, spread: str, flow_mode: str, contracts: int, credit: float,
        risk: float | None, short_put: float | None, long_put: float | None, short_call: float | None,
        long_call: float | None, ticker: str | None, expiry: str | None, entry_time: str | None, note: str,
        db_path: str | None, as_json: bool) -> None:
    from spreadwatch.app.book import add_position
    from spreadwatch.domain.positions import PositionInput

    config = ctx.config
    entry = PositionInput(
        ticker=ticker or config.watch[0], spread=spread, band=band, flow_mode=flow_mode, dte=dte,
        contracts=contracts, credit=credit, risk=risk, short_put=short_put, long_put=long_put,
        short_call=short_call, long_call=long_call, note=note)
    position, warnings = add_position(config, book_path(ctx, db_path), entry, entry_time=entry_time,
                                      expiry=expiry, now=now())
    for line in warnings:
        echo(line, err=True)
    if as_json:
        echo_json(position.to_json())
        return
    echo(safe(f"Added {position_line(position)}"))


def _set_pnl(ctx: Context, ref: str, pnl: float, note: str, db_path: str | None, as_json: bool, close: bool) -> None:
    from spreadwatch.app.book import set_pnl
    from spreadwatch.domain.positions import money

    before, after, signals = set_pnl(ctx.config, book_path(ctx, db_path), ref, pnl, note=note, now=now(),
                                     close=close)
    if as_json:
        echo_json({**after.to_json(), "previous_pnl": before.pnl, "exit_signals": signals})
        return
    verb = "Closed" if close else "Updated"
    echo(f"{verb} {after.id}: P&L {money(before.pnl)} -> {money(after.pnl)}" + (" (realized)" if close else ""))
    for line in signals:
        echo(line)


def update(ctx: Context, *, position_id: str, pnl: float, note: str, db_path: str | None, as_json: bool) -> None:
    _set_pnl(ctx, position_id, pnl, note, db_path, as_json, close=False)


def close(ctx: Context, *, position_id: str, pnl: float, note: str, db_path: str | None, as_json: bool) -> None:
    _set_pnl(ctx, position_id, pnl, note, db_path, as_json, close=True)


def read_book(ctx: Context, db_path: str | None, include_closed: bool) -> list[Position]:
    """Positions for list/summary; a book that does not exist yet is empty (a corrupt one is an error)."""
    from spreadwatch.edges.store import read_positions  # not app/book.py: it imports json and typing

    path = book_path(ctx, db_path)
    if not path.exists():
        echo(f"(no position book at {path} yet: `spreadwatch positions add` creates it)", err=True)
        return []
    problems: list[str] = []
    positions = read_positions(path, include_closed=include_closed, problems=problems)
    for problem in problems:
        echo(f"warning: {safe(problem)}; left out (`spreadwatch positions check` lists such rows)", err=True)
    return positions


LIST_COLUMNS = (("ID", "<"), ("Ticker", "<"), ("Spread", "<"), ("Band", "<"), ("DTE", ">"), ("Qty", ">"),
                ("Strikes", "<"), ("Credit", ">"), ("Risk", ">"), ("P&L", ">"), ("Expiry", "<"), ("Status", "<"))


def list_positions(ctx: Context, *, include_closed: bool, db_path: str | None, as_json: bool) -> None:
    from spreadwatch.domain.positions import money, strikes_text

    positions = read_book(ctx, db_path, include_closed)
    if as_json:
        echo_json([p.to_json() for p in positions])
        return
    if not positions:
        echo("No open positions." if not include_closed else "No positions.")
        return
    rows = [[safe(cell) for cell in (
                p.id, p.ticker, p.spread, p.band, str(p.dte), str(p.contracts), strikes_text(p),
                money(p.credit, sign=False), money(p.risk, sign=False), money(p.pnl), p.expiry.isoformat(), p.status)]
            for p in positions]
    # Plain fixed-width columns: rich's Table took about 1 s to lay out 1,000 rows (bench_positions.py).
    widths = [max(len(name), *(len(row[i]) for row in rows)) for i, (name, _) in enumerate(LIST_COLUMNS)]

    def line(cells: list[str]) -> str:
        return "  ".join(f"{cell:{align}{width}}" for cell, width, (_, align) in zip(cells, widths, LIST_COLUMNS,
                                                                                   strict=True)).rstrip()

    echo(bold(line([name for name, _ in LIST_COLUMNS])))  # bold on a terminal only
    echo("\n".join(line(row) for row in rows))


def summary(ctx: Context, *, db_path: str | None, as_json: bool) -> None:
    from spreadwatch.domain.positions import money, summarize

    book = summarize(read_book(ctx, db_path, include_closed=True))
    if as_json:
        echo_json(book.to_json())
        return
    echo("\n".join([
        "PORTFOLIO SUMMARY", "===================", "Positions:", f"  Total: {book.total_count}",
        f"  Open: {book.open_count}", f"  Closed: {book.closed_count}", "", "Capital:",
        f"  Total Risk: {money(book.total_risk, sign=False)}", "", "P&L:",
        f"  Unrealized: {money(book.unrealized_pnl)}", f"  Realized: {money(book.realized_pnl)}",
        f"  Total: {money(book.total_pnl)}",
    ]))


def _pnl(help: str) -> Opt:
    return Opt("--pnl", "pnl", "float", required=True, help=help)


COMMANDS: dict[str, Command] = {command.name: command for command in (
    Command("add", "Log a trade you executed at your broker (warns when the book would break a risk limit).", (), (
        Opt("--dte", "dte", "int", required=True, help="Trading sessions to expiry at entry (0 = expires today)."),
        Opt("--band", "band", required=True, help="Percentile band: P95, P97, P98, P99 or P100."),
        Opt("--spread", "spread", required=True, help="iron_condor, put_spread or call_spread."),
        Opt("--flow-mode", "flow_mode", default="neutral", show_default=True,
            help="neutral, with_flow or against_flow."),
        Opt("--contracts", "contracts", "int", required=True, help="Number of spreads (>= 1)."),
        Opt("--credit", "credit", "float", required=True, help="Credit received, dollars for the whole position."),
        Opt("--risk", "risk", "float", default=None,
            help="Max loss, dollars for the whole position (default: width x 100 x contracts - credit)."),
        Opt("--short-put", "short_put", "float", help="Short put strike."),
        Opt("--long-put", "long_put", "float", help="Long put strike."),
        Opt("--short-call", "short_call", "float", help="Short call strike."),
        Opt("--long-call", "long_call", "float", help="Long call strike."),
        TICKER,
        Opt("--expiry", "expiry", default=None, metavar="YYYY-MM-DD",
            help="Expiration date (default: --dte sessions after the entry session, XNYS calendar)."),
        Opt("--entry-time", "entry_time", default=None, metavar="ISO", help="When the trade was entered (default: now)."),
        NOTE, DB, JSON), add),
    Command("update", "Log the current P&L of POSITION_ID (a unique prefix is enough); says when an exit rule is met.",
            ("position_id",),
            (_pnl("Current P&L from your broker, dollars (loss negative)."), NOTE, DB, JSON), update),
    Command("close", "Close POSITION_ID with its final P&L (it leaves the open book and the metrics).",
            ("position_id",), (_pnl("Final P&L, dollars (loss negative)."), NOTE, DB, JSON), close),
    Command("list", "Open positions (and closed ones with --include-closed), oldest entry first.", (), (
        Opt("--include-closed", "include_closed", "flag", help="Also show closed positions."), DB, JSON),
        list_positions),
    Command("summary", "Counts, capital at risk and P&L of the whole book, as the original's PORTFOLIO SUMMARY.", (),
            (DB, JSON), summary),
)}


# ---- the market commands: `status` and `scan` ---------------------------------------------------------------------
def status(ctx: Context, *, ticker: str | None, source_spec: str | None, start_at: str | None, at: str | None,
           trend: str | None, db_path: str | None, as_json: bool) -> None:
    from spreadwatch.app.status import status_report

    report, lines = status_report(ctx.config, ticker=ticker, source_spec=source_spec, at=at, start=start_at,
                                  trend=trend, db_path=db_path)
    if as_json:
        echo_json(report)
        return
    from spreadwatch.domain.values import printable

    echo("\n".join(printable(line) for line in lines))


def scan(ctx: Context, *, grid_file: str | None, ticker: str | None, trend: str | None, source_spec: str | None,
         start_at: str | None, vix: float | None, price: float | None, flow: str | None, at: str | None,
         include_all: bool, db_path: str | None, as_json: bool) -> None:
    from spreadwatch.app.scan import render_opportunities, run_scan

    result, context, provider = run_scan(
        ctx.config, ticker=ticker, source_spec=source_spec, start_at=start_at, at=at, trend=trend, vix=vix,
        price=price, flow=flow, grid_file=grid_file, db_path=db_path, include_all=include_all)
    if as_json:
        echo_json(result.to_json())
        return
    from zoneinfo import ZoneInfo

    from spreadwatch.domain.display import local_time
    from spreadwatch.domain.instants import iso_utc

    when = local_time(context.time, ZoneInfo(ctx.config.display_timezone), "%Y-%m-%d %H:%M")
    echo(f"source: {provider.description}; at {when} ({iso_utc(context.time)})")
    echo("\n".join(render_opportunities(result)))


TRENDS = ("up", "down", "sideways", "auto")
SOURCE = Opt("--source", "source_spec", default=None, metavar="yahoo|replay:FILE",
             help="Market data source. Default: the bundled replay day (labelled as replay). Live: --source yahoo.")
START = Opt("--start", "start_at", default=None, metavar="ISO", help="Replay: clock start (default: first bar's open).")
GRID = Opt("--grid", "grid_file", "path",
           help="Grid CSV (canonical or an original format; default: paths.grid, else the bundled grid).")

MARKET_COMMANDS: dict[str, Command] = {command.name: command for command in (
    Command("status", "The market context the loop would see now (or --at an instant): price, VIX regime, IV rank, "
            "flow.", (), (
                TICKER, SOURCE, START,
                Opt("--at", "at", default=None, metavar="ISO",
                    help="Answer as of this instant (e.g. 2026-11-27T15:10:00Z): last bar at or before it, calendar "
                         "at it."),
                Opt("--trend", "trend", "choice", default=None, choices=TRENDS,
                    help="Override market.trend for this answer."),
                DB, JSON), status, group=""),
    Command("scan", "The opportunities at one instant: regime-filtered grid configs, in-window first, with suggested "
            "strikes.", (), (
                GRID, TICKER,
                Opt("--trend", "trend", "choice", default=None, choices=TRENDS, help="Override market.trend."),
                SOURCE, START,
                Opt("--vix", "vix", "level", default=None, help="What-if: use this VIX (regime from it, no hysteresis)."),
                Opt("--price", "price", "price", default=None,
                    help="What-if: use this underlying price for strikes."),
                Opt("--flow", "flow", "choice", default=None, choices=("up", "down", "flat"),
                    help="What-if: use this flow."),
                Opt("--at", "at", default=None, metavar="ISO", help="Scan as of this instant (e.g. 2026-11-24T15:30:00Z)."),
                Opt("--all", "include_all", "flag", help="List every passing config, not just the top N."),
                DB, JSON), scan, group=""),
)}
