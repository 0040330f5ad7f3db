"""The position book's one-shot commands (`spreadwatch positions ...`): what the CLI asks, decided here.

Owns the expiry of a new position (from its DTE on the exchange calendar, or a given date checked against it),
adding, updating and closing positions with their exit lines, reading the original system's positions.json for
import, and the book reads of `list`/`summary`. The rules are domain/positions.py's; the file is edges/store.py's.
Must not print: the CLI does.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spreadwatch.errors import InputError, MalformedValue

if TYPE_CHECKING:
    from spreadwatch.config import Config
    from spreadwatch.domain.positions import Position, PositionInput
    from spreadwatch.edges.calendar import MarketCalendar
    from spreadwatch.edges.store import PositionBook


def open_book(path: Path, *, create: bool = True, read_only: bool = False) -> PositionBook:
    """The writable book; `create=False` for commands about an existing position (a mistyped --db must not
    create an empty book); `read_only` for commands that only read (opened `mode=ro`)."""
    from spreadwatch.edges.store import PositionBook

    return PositionBook(path, create=create, read_only=read_only)


def read_positions_if_any(path: Path, *, include_closed: bool = True,
                          problems: list[str] | None = None) -> list[Position]:
    """The book's positions; a book that does not exist yet is empty (a corrupt one is an error). A malformed
    row is left out and described in `problems`."""
    from spreadwatch.edges.store import read_positions

    if not path.exists():
        return []
    return read_positions(path, include_closed=include_closed, problems=problems)


def exit_lines(config: Config, position: Position, now: datetime) -> list[str]:
    """The exit rules an open position meets now, in the words of the loop's event log and the alerts."""
    from spreadwatch.domain.positions import exit_line, exit_signals
    from spreadwatch.edges.calendar import MarketCalendar

    calendar = MarketCalendar.of(config)
    try:
        sessions = calendar.sessions_to_expiry(calendar.et_date(now), position.expiry)
    except ValueError:  # expiry beyond the calendar's range: the time rule cannot be judged
        sessions = None
    return [exit_line(position.id, s) for s in exit_signals(position, sessions, config.exits)]


# ---- positions add ------------------------------------------------------------------------------------------
def resolve_expiry(calendar: MarketCalendar, entered: datetime, dte: int, expiry: str | None,
                   now: datetime) -> tuple[date, list[str]]:
    """The expiry of a position entered at `entered`: `--expiry` checked (a date, a session, not before the entry
    session, not past), else the `dte`-th session after the entry session. Returns it and the warnings to show
    (a given expiry that disagrees with `dte`; both are stored as given). Raises InputError naming the problem."""
    warnings: list[str] = []
    try:
        session = calendar.entry_session(entered)
        if expiry is None:
            expires = calendar.expiry_for(session, dte)
        else:
            expires = _given_expiry(calendar, expiry, session)
            computed = calendar.sessions_to_expiry(session, expires)
            if computed != dte:
                warnings.append(f"warning: --expiry {expires} is {computed} session(s) after the entry session "
                                f"{session}, not --dte {dte}; both stored as given")
    except ValueError as exc:  # outside the calendar's known range
        raise InputError(f"--expiry: {exc}") from None
    if calendar.et_date(now) > expires:
        raise InputError(f"--expiry: {expires} is in the past")
    return expires, warnings


def _given_expiry(calendar: MarketCalendar, expiry: str, session: date) -> date:
    from spreadwatch.domain import values

    try:
        expires = values.day(date.fromisoformat(expiry))
    except values.ValueRefused as exc:
        raise MalformedValue(f"--expiry: {exc}") from None
    except ValueError:
        raise MalformedValue(f"--expiry: {expiry!r} is not a date (YYYY-MM-DD)") from None
    if not calendar.is_session(expires):
        raise InputError(f"--expiry: {expires} is not a trading session (weekend or holiday)")
    if expires < session:
        raise InputError(f"--expiry: {expires} is before the entry session {session}")
    return expires


def add_position(config: Config, path: Path, entry: PositionInput, *, entry_time: str | None, expiry: str | None,
                 now: datetime) -> tuple[Position, list[str]]:
    """Validate and store a new position. Returns it and the warnings (risk differing from the strikes, an expiry
    that disagrees with the DTE, a risk limit the book would break)."""
    from spreadwatch.app.clock import parse_instant
    from spreadwatch.domain.positions import limit_warnings, validate
    from spreadwatch.edges.calendar import MarketCalendar

    entry, warnings = validate(entry, tickers=config.tickers)
    entered = parse_instant(entry_time) if entry_time is not None else now
    if entered > now:
        raise InputError(f"--entry-time: {entry_time} is in the future")
    expires, expiry_warnings = resolve_expiry(MarketCalendar.of(config), entered, entry.dte, expiry,
                                              now)
    warnings += expiry_warnings
    with open_book(path) as book:
        assert entry.risk is not None  # validate fills it in
        warnings += limit_warnings(book.positions(include_closed=False), entry.risk, config.risk)
        position = book.add(entry, entry_time=entered, expiry=expires, now=now)
    return position, warnings


def checked_text(name: str, value: str) -> str:
    """Free text from the command line (a note): valid UTF-8, bounded; MalformedValue naming `name`."""
    from spreadwatch.domain import values

    try:
        return values.text(value)
    except values.ValueRefused as exc:
        raise MalformedValue(f"{name}: {exc}") from None


# ---- positions update / close -------------------------------------------------------------------------------
def set_pnl(config: Config, path: Path, ref: str, pnl: float, *, note: str, now: datetime,
            close: bool) -> tuple[Position, Position, list[str]]:
    """Log a P&L (or the final one): the position before and after, and the exit lines it now meets."""
    from spreadwatch.domain.positions import checked_id, validate_pnl

    value = validate_pnl(pnl)
    checked_id("position id", ref.strip())  # the book finds "a3f8 " as "a3f8"
    checked_text("--note", note)
    with open_book(path, create=False) as book:
        before, after = book.set_pnl(ref, value, now=now, note=note or None, close=close)
    return before, after, exit_lines(config, after, now)


# ---- positions import ---------------------------------------------------------------------------------------
def read_import_file(file: str) -> Any:
    """The JSON of the original system's positions.json; InputError naming the file for a missing, unreadable or
    malformed one."""
    try:
        return json.loads(Path(file).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{file}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{file}: cannot read ({exc})") from None
    except RecursionError:
        raise InputError(f"{file}: nested too deeply to be a positions file") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{file}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None


def import_original(config: Config, path: Path, file: str, *, now: datetime) -> tuple[int, int, list[str]]:
    """Import the original's positions.json, every record validated, all or nothing: (imported, open, warnings).
    A record whose risk disagrees with its strikes keeps its value; each disagreement is a warning."""
    from zoneinfo import ZoneInfo

    from spreadwatch.domain.positions import parse_original
    from spreadwatch.edges.calendar import MarketCalendar

    data = read_import_file(file)
    calendar = MarketCalendar.of(config)

    def expiry_for(entered: datetime, dte: int) -> date:
        try:
            return calendar.expiry_for(calendar.entry_session(entered), dte)
        except ValueError as exc:
            raise InputError(f"expiry: cannot compute from dte ({exc})") from None

    def is_session(day: date) -> bool:
        try:
            return calendar.is_session(day)
        except ValueError:
            return False

    try:
        records = parse_original(data, tickers=config.tickers, local_tz=ZoneInfo(config.display_timezone),
                                 expiry_for=expiry_for, is_session=is_session, now=now)
    except InputError as exc:
        raise InputError(f"{file}: {exc}; nothing imported") from None
    with open_book(path) as book:
        ids = book.import_positions(records, now=now)
    from spreadwatch.domain.positions import risk_disagreement

    opened = sum(1 for _, _, state in records if state["status"] == "open")
    warnings = []
    for position_id, (_, entry, state) in zip(ids, records, strict=True):
        problems = [risk_disagreement(entry), _expired_problem(calendar, position_id, state, now)]
        warnings += [f"warning: position {position_id}: {problem}" for problem in problems if problem]
    return len(ids), opened, warnings


def _expired_problem(calendar: MarketCalendar, position_id: str, state: dict[str, Any], now: datetime
                     ) -> str | None:
    """For an imported open position already past its expiry session: kept as imported (its final P&L is the
    trader's to log) and flagged (SpreadwatchPositionExpired) until it is closed. None otherwise."""
    from spreadwatch.domain.positions import expired_text

    today = calendar.et_date(now)
    if state["status"] != "open" or state["expiry"] >= today:
        return None
    try:
        sessions = calendar.sessions_to_expiry(today, state["expiry"])
    except ValueError:
        return None
    return (f"open but {expired_text(state['expiry'], sessions)}; kept as imported, close it with its final P&L: "
            f"spreadwatch positions close {position_id} --pnl <P&L>")
