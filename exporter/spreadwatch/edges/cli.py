"""The `spreadwatch` command line: a thin click layer over the library.

Owns argument parsing, turning `SpreadwatchError` into one-line errors with a non-zero exit, and choosing text or
JSON output. All behaviour lives in the library (app/status.py, app/scan.py, app/book.py, app/runner.py,
app/gridbuild.py); the positions group is edges/cli_positions.py. Imports here stay light (no pandas, yfinance or calendar
at module level); heavy modules are imported inside the commands that need them. The console script is
edges/cli_fast.py: it runs the well-formed command lines of the everyday position commands without click and hands
every other command line to `main()` here.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click

from spreadwatch import __version__
from spreadwatch.edges import cli_book
from spreadwatch.edges.cli_book import Context
from spreadwatch.errors import MalformedValue, SpreadwatchError

# ----------------------------------------------------------------------------------------------------------------
# Shared plumbing


pass_ctx = click.make_pass_decorator(Context)


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Expected failures become one line on stderr, no traceback: exit 2 for a malformed value (a usage error, as
    click's own), 1 for the others (docs/positions.md, "Exit codes")."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MalformedValue as exc:
            raise click.UsageError(str(exc), click.get_current_context(silent=True)) from None
        except SpreadwatchError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


class OnDisk(click.Path):
    """A path option or argument. Any text is a well-formed path; what the disk holds there (a directory where a file
    belongs, or the reverse) is refused as a missing or corrupt file is, exit 1, not as a usage error."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter as exc:
            raise click.ClickException(exc.format_message()) from None


# Parameter types hold no state, so every file (or folder) option shares one: click asks gettext for a type's
# name as it is made, a lookup on disk each time, which made a few dozen copies cost every start-up.
FILE = OnDisk(dir_okay=False)
FOLDER = OnDisk(file_okay=False)

_KINDS: dict[str, dict[str, Any]] = {"int": {"type": int}, "float": {"type": float}, "text": {},
                                      "flag": {"is_flag": True}}


def click_option(opt: cli_book.Opt) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The click option of a declaration in edges/cli_book.py (the fast parser reads the same one)."""
    kwargs: dict[str, Any] = {"help": opt.help, **_KINDS.get(opt.kind, {})}
    if opt.kind == "path":
        kwargs["type"] = FILE
    elif opt.kind == "choice":
        kwargs["type"] = click.Choice(opt.choices)
    elif opt.kind in cli_book.CHECKED_KINDS:
        kwargs["type"] = checked(opt.kind)
    if opt.required:
        kwargs["required"] = True
    if opt.default is not cli_book.MISSING:
        kwargs["default"] = opt.default
    if opt.show_default:
        kwargs["show_default"] = True
    if opt.metavar is not None:
        kwargs["metavar"] = opt.metavar
    if opt.envvar is not None:
        kwargs["envvar"] = opt.envvar
    return click.option(opt.flag, opt.dest, **kwargs)


json_option = click_option(cli_book.JSON)
db_option = click_option(cli_book.DB)
ticker_option = click_option(cli_book.TICKER)


def source_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--source, --start: where market data comes from and where a replay's clock starts. `run` adds --speed."""
    return click_option(cli_book.SOURCE)(click_option(cli_book.START)(func))


class Checked(click.ParamType):
    """A number checked by one of domain/values.py's validators (finite, in range, bound named): a value it refuses
    is a malformed value, exit 2, one line."""

    def __init__(self, check: Callable[[Any], Any], name: str) -> None:
        self.check = check
        self.name = name

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from spreadwatch.domain.values import ValueRefused

        try:
            return self.check(value)
        except ValueRefused as exc:
            self.fail(str(exc), param, ctx)


def checked(kind: str) -> Checked:
    """The click type of a kind of value: price, level, speed, duration, sessions, count."""
    from spreadwatch.domain import values

    return Checked(getattr(values, kind), kind)


def _values() -> Any:
    from spreadwatch.domain import values

    return values


echo_json = cli_book.echo_json


# ----------------------------------------------------------------------------------------------------------------
# Root


class OneLineErrors(click.Group):
    """click's usage errors print the usage block and a blank line before the message; here every expected error
    is one line on stderr (the message and where to look), with click's exit codes (2 for usage, 1 otherwise)."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **kwargs)
        try:
            super().main(args, prog_name, complete_var, standalone_mode=False, **kwargs)
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
@click_option(cli_book.ROOT_CONFIG)
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """spreadwatch: alert-only monitor for index credit spreads. It never places a trade."""
    ctx.obj = Context(config_path)


def main() -> None:
    cli(prog_name="spreadwatch", terminal_width=help_width())


def help_width() -> int:
    """The width click gives help text (the terminal's columns, at most 80, less 2, and at least 50; COLUMNS wins),
    worked out here so that click does not import shutil for it at every start-up."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns if sys.__stdout__ else 0
        except (AttributeError, ValueError, OSError):  # not a terminal, or a stream without a descriptor
            columns = 0
        columns = columns or 80
    return max(min(columns, 80) - 2, 50)


# ----------------------------------------------------------------------------------------------------------------
# config


@cli.group("config")
def config_group() -> None:
    """Validate and show the configuration."""


def check_event_calendar(config: Any) -> None:
    from spreadwatch.edges.calendar import MarketCalendar
    from spreadwatch.edges.eventfile import load_event_calendar

    load_event_calendar(config, MarketCalendar.of(config))


@config_group.command("check")
@click.argument("file", required=False, type=FILE)
@json_option
@pass_ctx
@handle_errors
def config_check(ctx: Context, file: str | None, as_json: bool) -> None:
    """Validate FILE (or the effective config) and print the effective settings."""
    from spreadwatch.config import load_config, to_plain

    config = load_config(file or ctx.config_path)
    check_event_calendar(config)  # the event calendar the settings name must load too
    plain = to_plain(config)
    if as_json:
        echo_json(plain)
        return
    import yaml

    origin = str(config.config_file) if config.config_file else "embedded defaults"
    click.echo(f"# effective configuration ({origin}): OK")
    click.echo(yaml.safe_dump(plain, sort_keys=False, default_flow_style=None).rstrip())


# ----------------------------------------------------------------------------------------------------------------
# status


# status and scan: declared in edges/cli_book.py (the fast parser runs their well-formed command lines)


def command_from(spec: cli_book.Command) -> click.Command:
    """The click command of a declaration in edges/cli_book.py: the same options, help and function as the fast
    parser's (edges/cli_fast.py), which handles the well-formed command lines of these commands without click."""

    @pass_ctx
    @handle_errors
    def callback(ctx: Context, **values: Any) -> None:
        try:
            spec.run(ctx, **values)
        except cli_book.UsageWithoutHint as exc:
            raise click.UsageError(str(exc)) from None

    for opt in reversed(spec.options):
        callback = click_option(opt)(callback)
    for name in reversed(spec.arguments):
        callback = click.argument(name)(callback)
    return click.command(spec.name, help=spec.help)(callback)


for _spec in cli_book.MARKET_COMMANDS.values():
    cli.add_command(command_from(_spec))


# ----------------------------------------------------------------------------------------------------------------
# run


@cli.command("run")
@click.option("--ticker", "tickers", multiple=True, help="Ticker to watch (repeatable; default: config watch).")
@click.option("--trend", type=click.Choice(["up", "down", "sideways", "auto"]), default=None,
              help="Override market.trend.")
@click.option("--scan-interval", type=checked("duration"), default=None, help="Seconds between scans (default: intervals.scan_seconds).")
@source_options
@click.option("--speed", type=checked("speed"), default=1.0, show_default=True,
              help="Replay: replay seconds per wall second (60: a 60 s cycle per wall second).")
@click.option("--listen", default="127.0.0.1:9877", show_default=True, metavar="HOST:PORT",
              help="Address of /, /metrics and /healthz (loopback by default).")
@db_option
@click.option("--grid", "grid_file", type=FILE,
              help="Grid CSV (default: paths.grid, else the bundled grid).")
@pass_ctx
@handle_errors
def run_command(ctx: Context, tickers: tuple[str, ...], trend: str | None, scan_interval: float | None,
                source_spec: str | None, speed: float, start_at: str | None, listen: str, db_path: str | None,
                grid_file: str | None) -> None:
    """Run the exporter: fetch, scan and check exits on the clock, serving /metrics until stopped."""
    from spreadwatch.app.runner import RunRequest, run

    run(ctx.config, RunRequest(tickers=tickers, trend=trend, scan_interval=scan_interval, source_spec=source_spec,
                               speed=speed, start_at=start_at, listen=listen, db_path=db_path,
                               grid_file=grid_file))


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
@click.option("--days", type=Checked(lambda v: _values().count(v, minimum=1, maximum=_values().MAX_SESSIONS),
                                     "sessions"), default=None, help="Entries over the last N sessions (yahoo default: 90).")
@click.option("--start", "start", default=None, callback=_iso_date, metavar="YYYY-MM-DD", help="First entry session.")
@click.option("--end", "end", default=None, callback=_iso_date, metavar="YYYY-MM-DD", help="Last entry session.")
@click.option("--source", "history_spec", default="yahoo", show_default=True, metavar="yahoo|csv:FILE",
              help="Daily history: the yahoo provider, or a CSV in the replay format.")
@click.option("--chains", "chains_dir", type=FOLDER, default=None,
              help="Directory of option chain CSVs (timestamp,type,strike,bid,ask,expiration): credits from "
                   "quotes instead of the model.")
@click.option("--dte", "dtes", default="0,1,3,5,10", show_default=True, callback=_csv_list(int, "--dte"),
              help="DTEs (trading sessions) to test.")
@click.option("--bands", default="P95,P97,P98,P99,P100", show_default=True, callback=_csv_list(str, "--bands"),
              help="Percentile bands to test.")
@click.option("--widths", default=None, callback=_csv_list(float, "--widths"),
              help="Spread widths (index points), multiples of the ticker's strike increment "
                   "(default: 2, 5 and 10 increments: SPX 10,25,50).")
@click.option("--out", default="grid.csv", show_default=True, type=FILE,
              help="Canonical grid CSV to write.")
@click.option("--report", default=None, type=FILE, help="Also write a PNG report here.")
@pass_ctx
@handle_errors
def grid_build(ctx: Context, ticker: str | None, days: int | None, start: Any, end: Any, history_spec: str,
               chains_dir: str | None, dtes: tuple[int, ...], bands: tuple[str, ...], widths: tuple[float, ...] | None,
               out: str, report: str | None) -> None:
    """Backtest every config (DTE x band x spread x flow x width) and write the canonical grid."""
    from spreadwatch.app.gridbuild import BuildRequest, build, summary_lines

    config = ctx.config
    request = BuildRequest(
        ticker=ticker or config.watch[0], source=history_spec, days=days, start=start, end=end, chains_dir=chains_dir,
        dtes=dtes, bands=bands, widths=widths, out=out, report=report)
    result = build(config, request)
    click.echo("\n".join(summary_lines(result, request)))


@grid_group.command("show")
@click.argument("file", type=FILE)
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
    from spreadwatch.edges.gridfile import load_grid, show_json, show_lines

    grid = load_grid(file, skip_impossible=not include_impossible)
    floor = ctx.config.scan.min_trades if min_trades is None else min_trades
    if as_json:
        echo_json(show_json(grid, top=top, min_trades=floor))
        return
    click.echo("\n".join(show_lines(grid, top=top, min_trades=floor)))



# ----------------------------------------------------------------------------------------------------------------
# positions: edges/cli_positions.py (registered below, with --config on every command)


def _now() -> Any:
    from spreadwatch.app.clock import command_now

    try:
        return command_now()  # the wall clock, or SPREADWATCH_NOW (a testing aid)
    except SpreadwatchError as exc:  # a malformed value: exit 2, like a malformed option
        raise click.UsageError(str(exc)) from None


# ----------------------------------------------------------------------------------------------------------------
# --config after the subcommand too


def _set_config_path(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        obj = ctx.find_object(Context)
        assert obj is not None  # the root group's callback made it before any subcommand's options
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
                ["--config", "config_path"], type=FILE, expose_value=False, is_eager=True,
                callback=_set_config_path, help=cli_book.CONFIG.help))


# Register the positions group and check-alerting on `cli`.
from spreadwatch.edges import cli_alerting, cli_positions  # noqa: E402,F401

_accept_config_on_every_command(cli)


if __name__ == "__main__":  # pragma: no cover
    main()
