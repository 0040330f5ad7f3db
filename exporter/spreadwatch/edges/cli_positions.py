"""`spreadwatch positions ...`: the position book's commands (decorators, arguments and output only).

`add`, `update`, `close`, `list` and `summary` are built from their declarations in edges/cli_book.py, which also
holds what they do; edges/cli_fast.py runs their well-formed command lines without click, this module everything
else (help, usage errors) and the other commands. None of them imports pandas, numpy, exchange_calendars or
sqlite-utils (the book is read and written through the standard library's sqlite3, the expiry comes from the
bundled session table), so they start within a few times a bare sqlite3 script (benchmarks/bench_cli.py,
benchmarks/bench_positions.py). What the commands decide is app/book.py's.
"""

from __future__ import annotations

import click

from spreadwatch.edges import cli as _cli
from spreadwatch.edges import cli_book
from spreadwatch.edges.cli import (
    FILE,
    Context,
    db_option,
    echo_json,
    handle_errors,
    json_option,
    pass_ctx,
)

_book_path = cli_book.book_path
_position_line = cli_book.position_line
safe = cli_book.safe


@click.group("positions")
def positions_group() -> None:
    """Log trades by hand and follow their P&L (the position book, a SQLite file)."""


for _spec in cli_book.COMMANDS.values():
    positions_group.add_command(_cli.command_from(_spec))


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
@click.argument("file", type=FILE)
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
