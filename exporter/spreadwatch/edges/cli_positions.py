"""`spreadwatch positions ...`: the position book's commands (decorators, arguments and output only).

Every command stays light: no pandas, numpy, exchange_calendars or sqlite-utils import (the book is read and written
through the standard library's sqlite3, the expiry comes from the bundled session table), so they start within a
few times a bare sqlite3 script (benchmarks/bench_cli.py, benchmarks/bench_positions.py). What the commands decide
is app/book.py's.
"""

from __future__ import annotations

from typing import Any

import click

from spreadwatch.edges import cli as _cli
from spreadwatch.edges.cli import (
    Context,
    OnDisk,
    db_option,
    echo_json,
    handle_errors,
    json_option,
    pass_ctx,
    ticker_option,
)


def _book_path(ctx: Context, db_path: str | None) -> Any:
    from pathlib import Path

    return Path(db_path or ctx.config.paths.database)


def _position_line(p: Any) -> str:
    from spreadwatch.domain.positions import money, strikes_text

    return (f"{p.id}: {p.ticker} {p.dte}DTE {p.band} {p.spread.upper()} x{p.contracts} | "
            f"Credit:{money(p.credit, sign=False)} Risk:{money(p.risk, sign=False)} | {strikes_text(p)} | "
            f"expires {p.expiry.isoformat()}")


@click.group("positions")
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
    from spreadwatch.app.book import add_position
    from spreadwatch.domain.positions import PositionInput

    config = ctx.config
    entry = PositionInput(
        ticker=ticker or config.watch[0], spread=spread, band=band, flow_mode=flow_mode, dte=dte,
        contracts=contracts, credit=credit, risk=risk, short_put=short_put, long_put=long_put,
        short_call=short_call, long_call=long_call, note=note)
    position, warnings = add_position(config, _book_path(ctx, db_path), entry, entry_time=entry_time,
                                      expiry=expiry, now=_cli._now())
    for line in warnings:
        click.echo(line, err=True)
    if as_json:
        echo_json(position.to_json())
        return
    click.echo(safe(f"Added {_position_line(position)}"))


def _set_pnl(ctx: Context, ref: str, pnl: float, note: str, db_path: str | None, as_json: bool, close: bool) -> None:
    from spreadwatch.app.book import set_pnl
    from spreadwatch.domain.positions import money

    before, after, signals = set_pnl(ctx.config, _book_path(ctx, db_path), ref, pnl, note=note, now=_cli._now(),
                                     close=close)
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
    from spreadwatch.app.book import read_positions_if_any

    path = _book_path(ctx, db_path)
    if not path.exists():
        click.echo(f"(no position book at {path} yet: `spreadwatch positions add` creates it)", err=True)
    problems: list[str] = []
    positions = read_positions_if_any(path, include_closed=include_closed, problems=problems)
    for problem in problems:
        click.echo(f"warning: {safe(problem)}; left out (`spreadwatch positions check` lists such rows)", err=True)
    return positions


def safe(text: Any) -> str:
    """Text from the book or the config as printed: control characters (a terminal's escape sequences) escaped."""
    from spreadwatch.domain.values import printable

    return printable(str(text))


@positions_group.command("list")
@click.option("--include-closed", is_flag=True, help="Also show closed positions.")
@db_option
@json_option
@pass_ctx
@handle_errors
def positions_list(ctx: Context, include_closed: bool, db_path: str | None, as_json: bool) -> None:
    """Open positions (and closed ones with --include-closed), oldest entry first."""
    from spreadwatch.domain.positions import money, strikes_text

    positions = _read_book(ctx, db_path, include_closed)
    if as_json:
        echo_json([p.to_json() for p in positions])
        return
    if not positions:
        click.echo("No open positions." if not include_closed else "No positions.")
        return
    columns = (("ID", "<"), ("Ticker", "<"), ("Spread", "<"), ("Band", "<"), ("DTE", ">"), ("Qty", ">"),
               ("Strikes", "<"), ("Credit", ">"), ("Risk", ">"), ("P&L", ">"), ("Expiry", "<"), ("Status", "<"))
    rows = [[safe(cell) for cell in (
                p.id, p.ticker, p.spread, p.band, str(p.dte), str(p.contracts), strikes_text(p),
                money(p.credit, sign=False), money(p.risk, sign=False), money(p.pnl), p.expiry.isoformat(), p.status)]
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
    from spreadwatch.domain.positions import money, summarize

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
    from spreadwatch.app.book import open_book
    from spreadwatch.domain.positions import checked_id, money

    checked_id("position id", position_id.strip())
    with open_book(_book_path(ctx, db_path), create=False, read_only=True) as book:
        position = book.get(position_id)
        entries = book.history(position.id)
    if as_json:
        echo_json([{"seq": e.seq, "position_id": e.position_id, "time": e.time.isoformat(), "action": e.action,
                    "old_pnl": e.old_pnl, "new_pnl": e.new_pnl, "note": e.note} for e in entries])
        return
    from zoneinfo import ZoneInfo

    from spreadwatch.domain.display import local_time

    zone = ZoneInfo(ctx.config.display_timezone)
    click.echo(safe(_position_line(position) + f" | {position.status}"))
    for e in entries:
        old = money(e.old_pnl) if e.old_pnl is not None else "-"
        note = f"  {safe(e.note)}" if e.note else ""
        when = local_time(e.time, zone, "%Y-%m-%d %H:%M:%S")
        click.echo(f"  {when}  {e.action:<6}  {old:>12} -> {money(e.new_pnl):>12}{note}")


@positions_group.command("check")
@db_option
@pass_ctx
@handle_errors
def positions_check(ctx: Context, db_path: str | None) -> None:
    """List every row of the book that cannot be read as a position (id and field); exit 1 if there is any."""
    from spreadwatch.app.book import read_positions_if_any

    path = _book_path(ctx, db_path)
    if not path.exists():
        raise click.ClickException(f"position book {path}: no such file")
    problems: list[str] = []
    positions = read_positions_if_any(path, include_closed=True, problems=problems)
    for problem in problems:
        click.echo(safe(problem))
    if problems:
        raise click.ClickException(f"{len(problems)} malformed row(s) in {path}; {len(positions)} readable")
    click.echo(f"{path}: {len(positions)} position(s), every row readable")


@positions_group.command("import")
@click.argument("file", type=OnDisk(dir_okay=False))
@db_option
@pass_ctx
@handle_errors
def positions_import(ctx: Context, file: str, db_path: str | None) -> None:
    """Import the original system's positions.json: every record validated, all or nothing."""
    from spreadwatch.app.book import import_original

    imported, opened, warnings = import_original(ctx.config, _book_path(ctx, db_path), file, now=_cli._now())
    click.echo(f"Imported {imported} position(s) from {file} ({opened} open, {imported - opened} closed)")
    for line in warnings:
        click.echo(line, err=True)


_cli.cli.add_command(positions_group)
