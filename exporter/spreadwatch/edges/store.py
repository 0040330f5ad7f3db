"""The position book on disk: one SQLite file, written by the CLI, read by the CLI and the exporter.

Owns the schema and its migrations, transactions, ids and the append-only history. It never decides whether a
position is valid (positions.py does) and never prints. Guarantees:
- every write is one `BEGIN IMMEDIATE` transaction (a position and its history row land together or not at all),
  in WAL mode with a busy timeout, so concurrent CLI writers queue instead of failing and a reader never blocks;
- `synchronous=FULL`: a write the CLI acknowledged survives a killed process (and a power cut);
- history rows cannot be updated or deleted (triggers), so a P&L is never overwritten without a trace;
- a file that is not a SQLite database, or a SQLite database that is not a spreadwatch book, is a DataError, never
  an empty book; nothing is written to it.

Reads and writes use the standard library's sqlite3 only: sqlite-utils imports pandas when it is installed, which
would multiply the start-up time of `positions list`, `add`, `update` and `close`. sqlite-utils creates the schema
(the migrations), imported only when a book is created or upgraded.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

from spreadwatch.domain.positions import Position
from spreadwatch.domain.records import Record
from spreadwatch.errors import DataError, InputError

TYPE_CHECKING = False  # typing and dataclasses cost start-up time `positions list` feels (domain/records.py)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from spreadwatch.domain.positions import PositionInput

APPLICATION_ID = 0x53505754  # "SPWT" in the SQLite header: this file is a spreadwatch position book
BUSY_TIMEOUT_SECONDS = 30.0
_HEADER = b"SQLite format 3\x00"

COLUMNS = (
    "id", "ticker", "spread", "band", "flow_mode", "dte", "contracts", "entry_time", "expiry", "credit", "risk",
    "pnl", "pnl_updated_at", "status", "short_put", "long_put", "short_call", "long_call", "note", "closed_at",
)


class HistoryEntry(Record):
    seq: int
    position_id: str
    time: datetime
    action: str  # add | update | close | import
    old_pnl: float | None
    new_pnl: float
    note: str


# ---- schema -------------------------------------------------------------------------------------------------
def _v1(db: Any) -> None:
    db["positions"].create(
        {"id": str, "ticker": str, "spread": str, "band": str, "flow_mode": str, "dte": int, "contracts": int,
         "entry_time": str, "expiry": str, "credit": float, "risk": float, "pnl": float, "pnl_updated_at": str,
         "status": str, "short_put": float, "long_put": float, "short_call": float, "long_call": float,
         "note": str, "closed_at": str},
        pk="id", not_null={"ticker", "spread", "band", "flow_mode", "dte", "contracts", "entry_time", "expiry",
                           "credit", "risk", "pnl", "status"},
    )
    db["positions"].create_index(["status"])
    db["history"].create(
        {"seq": int, "position_id": str, "time": str, "action": str, "old_pnl": float, "new_pnl": float,
         "note": str},
        pk="seq", not_null={"position_id", "time", "action", "new_pnl"}, foreign_keys=[("position_id", "positions", "id")],
    )
    db["history"].create_index(["position_id"])
    for event in ("UPDATE", "DELETE"):
        db.execute(f"CREATE TRIGGER history_no_{event.lower()} BEFORE {event} ON history "
                   f"BEGIN SELECT RAISE(ABORT, 'history is append-only'); END")


MIGRATIONS = (_v1,)  # index i upgrades user_version i to i + 1; append, never edit


# ---- opening ------------------------------------------------------------------------------------------------
def _check_header(path: Path) -> None:
    try:
        with path.open("rb") as fh:
            head = fh.read(len(_HEADER))
    except OSError as exc:
        raise DataError(f"position book {path}: cannot read ({exc.strerror})") from None
    if head and head != _HEADER[: len(head)] or 0 < len(head) < len(_HEADER):
        raise DataError(f"position book {path}: not a SQLite database (corrupt or another kind of file)")


def _identify(conn: sqlite3.Connection, path: Path) -> int:
    """user_version of a spreadwatch book; 0 for a brand-new empty file. Raises DataError for anything else."""
    own = not conn.in_transaction  # one snapshot for the three reads: a book being created is never seen half-made
    try:
        if own:
            conn.execute("BEGIN")
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise DataError(f"position book {path}: unreadable ({exc})") from None
    finally:
        if own and conn.in_transaction:
            conn.execute("ROLLBACK")
    if app_id == 0 and tables == 0 and version == 0:
        return 0
    if app_id != APPLICATION_ID:
        raise DataError(f"position book {path}: a SQLite database but not a spreadwatch position book")
    if version > len(MIGRATIONS):
        raise DataError(f"position book {path}: schema version {version} is newer than this spreadwatch "
                        f"understands ({len(MIGRATIONS)}); upgrade spreadwatch")
    return int(version)


FILE_MODE = 0o600  # the book (and so its -wal and -shm files, which SQLite creates alike) is private to its owner


def _create_private(path: Path) -> None:
    """Create the missing book file (and its directory) readable by its owner only; DataError naming the path when
    the parent is a file or not writable."""
    import os

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE))
    except FileExistsError:
        if not path.exists() or not path.parent.is_dir():  # a parent on the way is a file
            raise DataError(f"position book {path}: a parent of it is a file, not a directory") from None
    except NotADirectoryError:
        raise DataError(f"position book {path}: a parent of it is a file, not a directory") from None
    except OSError as exc:
        raise DataError(f"position book {path}: cannot create ({exc.strerror})") from None


def _connect(path: Path, *, create: bool, timeout: float = BUSY_TIMEOUT_SECONDS,
             read_only: bool = False) -> sqlite3.Connection:
    if path.exists():
        if path.is_dir():
            raise DataError(f"position book {path}: is a directory")
        _check_header(path)
    elif not create:
        raise DataError(f"position book {path}: no such file")
    else:
        _create_private(path)
    mode = "ro" if read_only else ("rwc" if create else "rw")
    if read_only and _read_only_wal_without_side_files(path):
        mode = "ro&immutable=1"
    try:
        conn = sqlite3.connect(f"file:{path}?mode={mode}", uri=True, timeout=timeout, isolation_level=None,
                               check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
    except sqlite3.Error as exc:
        raise DataError(f"position book {path}: cannot open ({exc})") from None
    return conn



def _read_only_wal_without_side_files(path: Path) -> bool:
    """A reader that cannot create the -wal/-shm files beside a WAL book (read permission only: another user, a
    read-only mount) cannot open it even read-only. With neither file present no writer has the book open (a writer
    creates them), so the file is read as it stands (`immutable=1`)."""
    import os

    return not _side_files(path) and not os.access(path.parent, os.W_OK)

def _side_files(path: Path) -> bool:
    """Whether the book's -wal or -shm file exists. Tested on the name as a string, not a `Path`: the exporter asks
    every cycle, and each `Path` interns its parts, a churn that grows CPython's table of interned strings for good."""
    import os

    return os.path.exists(f"{path}-wal") or os.path.exists(f"{path}-shm")


def _tidy_after_read(path: Path, had_side_files: bool) -> None:
    """A read-only connection cannot remove the -wal and -shm files it created on closing; when they were not
    there before and the book is writable, a writable connection opened and closed at once lets SQLite remove
    them (it does so only as the last connection, under its locks), so a read leaves the directory as it was."""
    import os

    if had_side_files or not _side_files(path) or not os.access(path, os.W_OK):
        return
    with contextlib.suppress(sqlite3.Error):  # busy: another process holds the book and will remove them itself
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=0.1)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opens the WAL, so closing ends it
        finally:
            conn.close()


class MalformedRow(ValueError):
    """A row of the book that cannot be read as a position: its id and the field at fault."""

    def __init__(self, position_id: Any, field: str, value: Any) -> None:
        super().__init__(f"position {position_id!r}: field {field} is malformed ({_shown(value)})")
        self.position_id = position_id
        self.field = field


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_TEXT_FIELDS = ("id", "ticker", "spread", "band", "flow_mode", "status")


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(value)
    return value


def _stamp(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _strike(value: Any) -> float | None:
    return None if value is None else _finite(value)


def _note(value: Any) -> str:
    return "" if value is None else _text(value)


def _position(row: sqlite3.Row | tuple[Any, ...]) -> Position:
    """A row as a Position; MalformedRow naming the id and the first field that cannot be read. A well-formed row
    is converted in one pass (1,000 rows are read for `positions list --include-closed`); any other is converted
    field by field to name the one at fault."""
    if len(row) == len(_CONVERSIONS):
        try:
            return Position(*[convert(value) for convert, value in zip(_CONVERSIONS, row, strict=True)])
        except (ValueError, TypeError, OverflowError):
            pass
    return _checked_position(row)


def _checked_position(row: sqlite3.Row | tuple[Any, ...]) -> Position:
    values = dict(zip(COLUMNS, row, strict=True))

    def field(key: str, convert: Any) -> Any:
        value = values[key]
        try:
            return convert(value)
        except (ValueError, TypeError, OverflowError):
            raise MalformedRow(values["id"], key, value) from None

    for key in _TEXT_FIELDS:
        field(key, _text)
    return Position(
        id=values["id"], ticker=values["ticker"], spread=values["spread"], band=values["band"],
        flow_mode=values["flow_mode"], dte=field("dte", int), contracts=field("contracts", int),
        entry_time=field("entry_time", _stamp), expiry=field("expiry", date.fromisoformat),
        credit=field("credit", _finite), risk=field("risk", _finite), pnl=field("pnl", _finite),
        pnl_updated_at=field("pnl_updated_at", _stamp), status=values["status"],
        short_put=field("short_put", _strike), long_put=field("long_put", _strike),
        short_call=field("short_call", _strike), long_call=field("long_call", _strike),
        note=field("note", _note), closed_at=field("closed_at", _stamp),
    )


def _finite(value: Any) -> float:
    if isinstance(value, str | bytes):
        raise TypeError(value)
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(value)
    return number


# Each column's conversion, in COLUMNS order (which is Position's field order): `_checked_position`'s, applied
# in one pass.
_CONVERSIONS: tuple[Callable[[Any], Any], ...] = (
    _text, _text, _text, _text, _text, int, int, _stamp, date.fromisoformat, _finite, _finite, _finite, _stamp, _text,
    _strike, _strike, _strike, _strike, _note, _stamp)


def _readable(rows: list[Any], problems: list[str] | None) -> list[Position]:
    """The rows that read as positions; each malformed one is left out and described once in `problems` (or,
    without a list to collect them, raised as a DataError)."""
    out: list[Position] = []
    for row in rows:
        try:
            out.append(_position(row))
        except MalformedRow as exc:
            if problems is None:
                raise DataError(str(exc)) from None
            problems.append(str(exc))
    return out


_SELECT = f"SELECT {', '.join(COLUMNS)} FROM positions"
_ORDER = " ORDER BY entry_time, id"


def read_positions(path: Path | str, *, include_closed: bool = True, timeout: float = BUSY_TIMEOUT_SECONDS,
                   problems: list[str] | None = None) -> list[Position]:
    """Every position (or the open ones) of the book at `path`, oldest entry first. Read-only; a missing, corrupt,
    foreign or locked-for-longer-than-`timeout` file raises DataError (never an empty list). A file with nothing
    committed yet (another process is creating the book right now) is an empty book, as `PositionBook` sees it.
    Opened read-only (`mode=ro`): reading needs only read access. A malformed row is left out and described in
    `problems` (with no list given, every problem is dropped silently)."""
    path = Path(path)
    had_side_files = _side_files(path)
    conn = _connect(path, create=False, timeout=timeout, read_only=True)
    try:
        conn.execute("BEGIN")  # the identity check and the rows from one snapshot
        version = _identify(conn, path)
        if version == 0:
            return []
        sql = _SELECT + ("" if include_closed else " WHERE status = 'open'") + _ORDER
        try:
            rows = conn.execute(sql).fetchall()
        except sqlite3.DatabaseError as exc:
            raise DataError(f"position book {path}: unreadable ({exc})") from None
        return _readable(rows, [] if problems is None else problems)
    finally:
        conn.close()
        _tidy_after_read(path, had_side_files)


class BookRead(Record):
    """What the exporter needs of the book: the open positions (oldest entry first) and the closed ones as their
    count and the sum of their P&L (malformed rows left out, as `read_positions` leaves them out)."""

    open_positions: tuple[Position, ...]
    closed_count: int
    realized_pnl: float
    # The closed positions, the latest closed first (those without a close time last): the day's closes are a few
    # at the front.
    closed_latest_first: tuple[Position, ...] = ()


class BookReader:
    """The exporter's read of the book, every positions cycle, without re-reading what cannot have changed.

    Each read opens the book as `read_positions` does (so a missing, foreign, corrupt or locked book fails the same
    way) and reads the open rows, parsing only those that differ from the last read. Closed positions are final
    (`set_pnl` refuses a closed one) and every write that closes or imports one appends a history row, so the closed
    ones are kept as they were read and only those named by history rows newer than the last read (the history's
    `seq` watermark) are read. All are read again when the file was replaced, the history moved backwards, or the
    count of closed rows in the book no longer matches what is kept (a row deleted or reopened by hand)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._file: tuple[int, int] | None = None
        self._watermark: int | None = None
        self._closed: dict[str, tuple[str, str, float]] = {}  # id -> (entry_time text, id, pnl): the SQL order
        self._closed_positions: dict[str, Position] = {}
        self._latest_first: tuple[Position, ...] = ()
        self._unreadable: set[str] = set()  # ids of malformed closed rows (left out, as read_positions does)
        self._open: dict[tuple[Any, ...], Position] = {}  # raw row -> its position
        self._realized = 0.0
        self.closed_rows_read = 0  # closed rows the last read fetched (all of them, the new ones, or none)

    def read(self, *, timeout: float = BUSY_TIMEOUT_SECONDS) -> BookRead:
        had_side_files = _side_files(self.path)
        conn = _connect(self.path, create=False, timeout=timeout, read_only=True)
        try:
            conn.execute("BEGIN")  # the identity check and the rows from one snapshot
            if _identify(conn, self.path) == 0:
                self._forget()
                return BookRead((), 0, 0.0)
            try:
                return self._read(conn)
            except sqlite3.DatabaseError as exc:
                raise DataError(f"position book {self.path}: unreadable ({exc})") from None
        finally:
            conn.close()
            _tidy_after_read(self.path, had_side_files)

    def _forget(self) -> None:
        self._file, self._watermark = None, None
        self._closed, self._unreadable, self._open, self._realized = {}, set(), {}, 0.0
        self._closed_positions, self._latest_first = {}, ()

    def _read(self, conn: sqlite3.Connection) -> BookRead:
        st = self.path.stat()
        file = (st.st_dev, st.st_ino)
        watermark, closed_total = conn.execute(
            "SELECT (SELECT max(seq) FROM history), (SELECT count(*) FROM positions) - "
            "(SELECT count(*) FROM positions WHERE status = 'open')").fetchone()
        watermark = watermark or 0
        self.closed_rows_read = 0
        if file != self._file or self._watermark is None or watermark < self._watermark:
            self._forget()
            self._read_closed(conn, "")
        elif watermark > self._watermark:
            self._read_closed(conn, " AND id IN (SELECT position_id FROM history WHERE seq > ?)", self._watermark)
        if len(self._closed) + len(self._unreadable) != closed_total:
            self._forget()
            self._read_closed(conn, "")
        self._file, self._watermark = file, watermark
        return BookRead(self._read_open(conn), len(self._closed), self._realized, self._latest_first)

    def _read_open(self, conn: sqlite3.Connection) -> tuple[Position, ...]:
        """The open rows, oldest entry first; a row unchanged since the last read is not parsed again."""
        kept: dict[tuple[Any, ...], Position] = {}
        for row in conn.execute(_SELECT + " WHERE status = 'open'" + _ORDER).fetchall():
            position = self._open.get(row)
            if position is None:
                try:
                    position = _position(row)
                except MalformedRow:
                    continue  # left out, as read_positions leaves it out
            kept[row] = position
        self._open = kept
        return tuple(kept.values())

    def _read_closed(self, conn: sqlite3.Connection, where: str, *args: Any) -> None:
        rows = conn.execute(_SELECT + " WHERE status != 'open'" + where, args).fetchall()
        self.closed_rows_read += len(rows)
        for row in rows:
            try:
                p = _position(row)
            except MalformedRow:
                self._unreadable.add(row[0])
                continue
            self._unreadable.discard(p.id)
            self._closed[p.id] = (row[COLUMNS.index("entry_time")], p.id, p.pnl)
            self._closed_positions[p.id] = p
        if rows:
            self._realized = sum((pnl for _, _, pnl in sorted(self._closed.values())), 0.0)
            self._latest_first = tuple(sorted(self._closed_positions.values(), key=_closed_key, reverse=True))


def _closed_key(p: Position) -> tuple[bool, str]:
    """Sort key of a closed position by its close time (a row without one sorts before every other)."""
    return (p.closed_at is not None, p.closed_at.isoformat() if p.closed_at is not None else "")


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime")
    return value.astimezone(UTC).isoformat()


def _insert_row(conn: sqlite3.Connection, table: str, row: dict[str, Any]) -> None:
    """INSERT one row; the table and column names are this module's constants, the values are bound."""
    conn.execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))


class PositionBook:
    """The writable book. Opening creates the file when missing and migrates its schema; with `create=False`
    (update, close, history: commands that need an existing position) a missing or never-initialised file is an
    error and is left as it is."""

    def __init__(self, path: Path | str, *, create: bool = True, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._had_side_files = _side_files(self.path)
        self.conn = _connect(self.path, create=create and not read_only, read_only=read_only)
        try:
            # refuse foreign files before touching them
            if _identify(self.conn, self.path) == 0 and (not create or read_only):
                raise DataError(f"position book {self.path}: empty, no position has been added to it")
            if read_only:  # `history`: reading needs read access only; nothing is migrated
                return
            try:
                self.conn.execute("PRAGMA journal_mode = WAL")
                self.conn.execute("PRAGMA synchronous = FULL")
                self.conn.execute("PRAGMA foreign_keys = ON")
            except sqlite3.DatabaseError as exc:
                raise DataError(f"position book {self.path}: cannot open for writing ({exc})") from None
            with self._write():
                version = _identify(self.conn, self.path)  # again, under the write lock: another process may have migrated
                if version == 0:
                    self.conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                if version < len(MIGRATIONS):
                    import sqlite_utils

                    db = sqlite_utils.Database(self.conn)
                for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
                    step(db)
                    self.conn.execute(f"PRAGMA user_version = {number}")
        except BaseException:
            self.close()
            raise

    # ---- plumbing ----------------------------------------------------------------------------------------------
    def close(self) -> None:
        self.conn.close()
        if self.read_only:
            _tidy_after_read(self.path, self._had_side_files)

    def __enter__(self) -> PositionBook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction, taken immediately so two writers queue on the busy timeout instead of deadlocking."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise DataError(f"position book {self.path}: busy for {BUSY_TIMEOUT_SECONDS:g} s ({exc})") from None
        try:
            yield
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        try:
            self.conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise DataError(f"position book {self.path}: write failed ({exc})") from None

    def _row(self, position_id: str) -> Position:
        row = self.conn.execute(_SELECT + " WHERE id = ?", [position_id]).fetchone()
        if row is None:
            raise InputError(f"unknown position id {position_id!r}")
        try:
            return _position(row)
        except MalformedRow as exc:
            raise DataError(f"position book {self.path}: {exc}; `spreadwatch positions check` lists such rows") from None

    def _new_id(self) -> str:
        import secrets  # hashlib and random: a few ms of start-up only the writers need

        while True:
            candidate = secrets.token_hex(3)
            if self.conn.execute("SELECT 1 FROM positions WHERE id = ?", [candidate]).fetchone() is None:
                return candidate

    def _history(self, position_id: str, when: datetime, action: str, old: float | None, new: float,
                  note: str) -> None:
        self.conn.execute("INSERT INTO history (position_id, time, action, old_pnl, new_pnl, note) "
                          "VALUES (?, ?, ?, ?, ?, ?)", [position_id, _iso(when), action, old, new, note])

    # ---- reads -------------------------------------------------------------------------------------------------
    def resolve(self, ref: str) -> str:
        """A full id, or a unique prefix of one (like git)."""
        ref = ref.strip()
        if not ref:
            raise InputError("position id: empty")
        if self.conn.execute("SELECT 1 FROM positions WHERE id = ?", [ref]).fetchone():
            return ref
        matches = [r[0] for r in self.conn.execute(
            "SELECT id FROM positions WHERE substr(id, 1, ?) = ? ORDER BY id LIMIT 6", [len(ref), ref])]
        if not matches:
            raise InputError(f"unknown position id {ref!r}")
        if len(matches) > 1:
            raise InputError(f"ambiguous position id {ref!r}: matches {', '.join(matches[:5])}"
                             f"{' and more' if len(matches) > 5 else ''}; type more characters")
        return matches[0]

    def get(self, ref: str) -> Position:
        return self._row(self.resolve(ref))

    def positions(self, *, include_closed: bool = True, problems: list[str] | None = None) -> list[Position]:
        """The readable positions; a malformed row is left out (and described in `problems` when given)."""
        sql = _SELECT + ("" if include_closed else " WHERE status = 'open'") + _ORDER
        return _readable(self.conn.execute(sql).fetchall(), [] if problems is None else problems)

    def history(self, ref: str) -> list[HistoryEntry]:
        position_id = self.resolve(ref)
        rows = self.conn.execute("SELECT seq, position_id, time, action, old_pnl, new_pnl, note FROM history "
                                 "WHERE position_id = ? ORDER BY seq", [position_id]).fetchall()
        try:
            return [HistoryEntry(r[0], r[1], datetime.fromisoformat(r[2]), r[3], r[4], r[5], r[6] or "")
                    for r in rows]
        except (ValueError, TypeError):
            raise DataError(f"position book {self.path}: a history row of position {position_id!r} is malformed "
                            "(field time)") from None

    # ---- writes ------------------------------------------------------------------------------------------------
    def add(self, entry: PositionInput, *, entry_time: datetime, expiry: date, now: datetime) -> Position:
        """Store a validated position (positions.validate) and its first history row."""
        with self._write():
            position_id = self._new_id()
            self._insert(position_id, entry, entry_time=entry_time, expiry=expiry, pnl=0.0, status="open",
                         pnl_updated_at=now, closed_at=None)
            self._history(position_id, now, "add", None, 0.0, entry.note)
            return self._row(position_id)

    def _insert(self, position_id: str, entry: PositionInput, *, entry_time: datetime, expiry: date, pnl: float,
                status: str, pnl_updated_at: datetime | None, closed_at: datetime | None) -> None:
        _insert_row(self.conn, "positions", {
            "id": position_id, "ticker": entry.ticker, "spread": entry.spread, "band": entry.band,
            "flow_mode": entry.flow_mode, "dte": entry.dte, "contracts": entry.contracts,
            "entry_time": _iso(entry_time), "expiry": expiry.isoformat(), "credit": entry.credit, "risk": entry.risk,
            "pnl": pnl, "pnl_updated_at": _iso(pnl_updated_at), "status": status, "short_put": entry.short_put,
            "long_put": entry.long_put, "short_call": entry.short_call, "long_call": entry.long_call,
            "note": entry.note, "closed_at": _iso(closed_at),
        })

    def set_pnl(self, ref: str, pnl: float, *, now: datetime, note: str | None = None,
                close: bool = False) -> tuple[Position, Position]:
        """Log a P&L (update) or the final P&L (close). Returns (before, after). A closed position is final."""
        with self._write():
            before = self._row(self.resolve(ref))
            if not before.is_open:
                verb = "close" if close else "update"
                raise InputError(f"position {before.id} is already closed; cannot {verb} it")
            changes: dict[str, Any] = {"pnl": pnl, "pnl_updated_at": _iso(now)}
            if note:
                changes["note"] = f"{before.note}\n{note}" if before.note else note
            if close:
                changes.update(status="closed", closed_at=_iso(now))
            self.conn.execute(f"UPDATE positions SET {', '.join(f'{name} = ?' for name in changes)} WHERE id = ?",
                              [*changes.values(), before.id])
            self._history(before.id, now, "close" if close else "update", before.pnl, pnl, note or "")
            return before, self._row(before.id)

    def import_positions(self, records: list[tuple[str | None, PositionInput, dict[str, Any]]], *,
                         now: datetime) -> list[str]:
        """All or nothing: each record is (wanted id or None, validated input, state with entry_time, expiry,
        pnl, status, pnl_updated_at, closed_at). Kept ids must be new; the others get fresh ids."""
        ids = []
        with self._write():
            for wanted, entry, state in records:
                if wanted is not None:
                    if self.conn.execute("SELECT 1 FROM positions WHERE id = ?", [wanted]).fetchone():
                        raise InputError(f"position id {wanted!r} is already in the book; nothing imported")
                    position_id = wanted
                else:
                    position_id = self._new_id()
                self._insert(position_id, entry, **state)
                self._history(position_id, now, "import", None, state["pnl"], entry.note)
                ids.append(position_id)
        return ids


def _wal_stamp(path: str) -> tuple[int, int, int] | None:
    """(inode, size, modification time in ns) of a -wal file with frames in it; None for none or an empty one."""
    import os

    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns) if st.st_size else None


class BookWatch:
    """Whether the book at `path` changed since the last look, cheap enough to ask twice a second (microseconds: two
    `stat`s, nothing of the book is opened or parsed): the book's identity (a book deleted, replaced or created
    since) and the size and modification time of the book and of its -wal file. Every commit moves one of them:
    in WAL mode it writes frames to the -wal (a reader writes none, and an empty -wal is no stamp), otherwise the
    book itself. The watch holds no connection: a connection kept open in this process would keep the WAL index
    (-shm) it mapped after a command in another process removed that file, and SQLite shares that mapping with every
    connection this process opens to the book, so the positions reads would miss commits for as long as a third
    process holds the book open. Never raises: a missing or unreadable file is a state like any other, and a change
    of state is a change."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._book = str(self.path)
        self._wal = f"{self.path}-wal"  # strings, made once: see _side_files
        self._seen: tuple[Any, ...] | None = None

    def _state(self) -> tuple[Any, ...]:
        import os

        try:
            st = os.stat(self._book)
        except OSError:
            return ("missing",)
        return ((st.st_dev, st.st_ino), st.st_size, st.st_mtime_ns, _wal_stamp(self._wal))

    def changed(self) -> bool:
        """True when the book changed since the previous call (the first call only takes the baseline)."""
        state = self._state()
        previous, self._seen = self._seen, state
        return previous is not None and state != previous

    def close(self) -> None:
        """Nothing to release (the watch holds no connection); kept so owners close it like the book's other handles."""
