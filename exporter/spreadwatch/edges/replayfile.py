"""The replay CSV format, read in one place: the replay provider's bars and the grid builder's `csv:FILE` history.

`timestamp, symbol, open, high, low, close, volume`; timestamps ISO 8601 with a zone (a bare date is a daily bar,
visible from 16:00 ET that day); lines starting with `#` are comments. One rule for a missing number: a blank cell,
`nan` or `null` (any case) is NaN, "no new value", never a number and never an error. Anything else that is not a
number, a bad timestamp, a blank symbol or a short row is a DataError naming the file, line and column.
"""

from __future__ import annotations

import csv
import math
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from spreadwatch.domain.instants import InstantError, parse_instant
from spreadwatch.domain.vocabulary import ET
from spreadwatch.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = ("timestamp", "symbol", "open", "high", "low", "close", "volume")
MISSING = ("", "nan", "null")  # no value (NaN)
_NUMBERS = ("open", "high", "low", "close", "volume")


class ReplayRow(NamedTuple):
    time: datetime
    symbol: str
    open: float
    high: float
    low: float
    close: float
    volume: float  # NaN when absent


def parse_number(text: str) -> float:
    """A cell's number; NaN for a missing one (MISSING). ValueError otherwise."""
    try:
        return float(text)  # ignores surrounding blanks; "nan" in any case is NaN already
    except ValueError:
        if text.strip().lower() in MISSING:
            return math.nan
        raise


def _stamp(text: str, path: Path, line: int) -> datetime:
    raw = text.strip()
    if len(raw) == 10:  # a bare date: a daily bar, visible from 16:00 ET that day
        try:
            return datetime.combine(date.fromisoformat(raw), time(16, 0), tzinfo=ET).astimezone(UTC)
        except ValueError:
            raise DataError(f"{path}:{line}: column timestamp: not ISO 8601: {raw!r}") from None
    try:
        return parse_instant(raw)
    except InstantError as exc:
        if exc.naive:
            raise DataError(f"{path}:{line}: column timestamp: no time zone in {raw!r} (write UTC, e.g. ...Z)") from None
        raise DataError(f"{path}:{line}: column timestamp: not ISO 8601: {raw!r}") from None


def _number(text: str, path: Path, line: int, column: str) -> float:
    try:
        return parse_number(text)
    except ValueError:
        raise DataError(f"{path}:{line}: column {column}: not a number: {text.strip()!r}") from None


def read_rows(path: Path, *, what: str = "replay file") -> list[ReplayRow]:
    """Every row of a replay-format file, in file order. `what` names the file in errors.

    A file whose every row is plain (as many cells as the header, stamps in UTC or bare dates, every number cell a
    number or a missing one) is read column by column by pandas' CSV reader; any other is read row by row, where the
    rules above apply and the first bad cell is named. Both give the same rows."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read {what}: {exc}") from None
    numbers: list[int] = []
    lines: list[str] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            numbers.append(n)
            lines.append(line)
    if not lines:
        raise DataError(f"{path}: empty {what} (no header)")
    header = [c.strip().lower() for c in next(csv.reader(lines[:1]))]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise DataError(f"{path}:{numbers[0]}: missing column(s) {', '.join(missing)} "
                        f"(replay format: {', '.join(COLUMNS)})")
    index = {c: header.index(c) for c in COLUMNS}
    quick = _plain_rows(lines, index) if '"' not in text else None
    return quick if quick is not None else _rows_one_by_one(path, numbers, lines, index, len(header))


def _plain_rows(lines: list[str], index: dict[str, int]) -> list[ReplayRow] | None:
    """The rows of a plain file (see read_rows) read by columns; None when a row is not plain."""
    import io

    import pandas as pd

    commas = lines[0].count(",")
    if any(line.count(",") != commas for line in lines):  # a short or a long row: named row by row
        return None
    number_at = [index[c] for c in _NUMBERS]
    try:
        frame = pd.read_csv(io.StringIO("\n".join(lines[1:])), header=None, keep_default_na=False,
                            na_values={i: list(_MISSING_SPELLINGS) for i in number_at},
                            dtype={i: object for i in range(commas + 1) if i not in number_at})
    except (ValueError, pd.errors.ParserError):
        return None
    columns = []
    for at in number_at:
        if frame[at].dtype.kind not in "if":  # a cell that is neither a number nor a missing one
            return None
        columns.append(frame[at].to_numpy(dtype=float).tolist())
    symbols = [str(s).strip() for s in frame[index["symbol"]].tolist()]
    if not all(symbols):
        return None
    try:
        stamps = [_plain_stamp(str(t)) for t in frame[index["timestamp"]].tolist()]
    except ValueError:
        return None
    return list(map(ReplayRow._make, zip(stamps, symbols, *columns, strict=True)))


# How the missing number is commonly written (`parse_number` takes any case; other spellings go row by row).
_MISSING_SPELLINGS = ("", "nan", "NaN", "NAN", "null", "NULL", "Null")


def _plain_stamp(text: str) -> datetime:
    """A stamp with a zone, as UTC, or a bare date's 16:00 ET; ValueError for anything else."""
    raw = text.strip()
    if len(raw) == 10:
        return datetime.combine(date.fromisoformat(raw), time(16, 0), tzinfo=ET).astimezone(UTC)
    stamp = datetime.fromisoformat(raw)
    if stamp.tzinfo is None:
        raise ValueError(raw)
    return stamp if stamp.tzinfo is UTC else stamp.astimezone(UTC)


def _rows_one_by_one(path: Path, numbers: list[int], lines: list[str], index: dict[str, int],
                     width: int) -> list[ReplayRow]:
    """Each row the quick way first (a UTC stamp, five numbers `float` reads), else cell by cell."""
    records = csv.reader(lines)
    next(records)  # the header
    at, sym, o_at, h_at, l_at, c_at, v_at = (index[c] for c in COLUMNS)
    rows = []
    for line_no, record in zip(numbers[1:], records, strict=True):
        if len(record) < width:
            raise DataError(f"{path}:{line_no}: expected {width} fields, got {len(record)}")
        symbol = record[sym].strip()
        if not symbol:
            raise DataError(f"{path}:{line_no}: column symbol: blank")
        try:
            stamp = _utc_stamp(record[at])
            row = ReplayRow(stamp, symbol, float(record[o_at]), float(record[h_at]), float(record[l_at]),
                            float(record[c_at]), float(record[v_at]))
        except ValueError:
            row = _careful_row(record, index, symbol, path, line_no)
        rows.append(row)
    return rows


def _utc_stamp(text: str) -> datetime:
    """The common stamp, `2019-01-02T14:35:00Z` (any instant already in UTC); ValueError for anything else (a bare
    date, another offset, no zone, not a stamp), which `_stamp` then reads or names."""
    stamp = datetime.fromisoformat(text)
    if stamp.tzinfo is not UTC or len(text) == 10:
        raise ValueError(text)
    return stamp


def _careful_row(record: list[str], index: dict[str, int], symbol: str, path: Path, line_no: int) -> ReplayRow:
    """A row read cell by cell: any stamp `_stamp` takes, blank/`nan`/`null` as NaN, the first bad cell named."""
    stamp = _stamp(record[index["timestamp"]], path, line_no)
    try:
        o, h, lo, c, v = [parse_number(record[index[col]]) for col in _NUMBERS]
    except ValueError:  # the first bad cell, named
        o, h, lo, c, v = (_number(record[index[col]], path, line_no, col) for col in _NUMBERS)
    return ReplayRow(stamp, symbol, o, h, lo, c, v)


def history_frame(path: Path) -> pd.DataFrame:
    """The rows as the grid builder's history reads them: UTC `time`, `symbol`, open/high/low/close (NaN where
    missing) and the ET session `day`, sorted by time."""
    import pandas as pd

    rows = read_rows(path, what="history file")
    frame = pd.DataFrame({
        "time": pd.to_datetime([r.time for r in rows], utc=True),
        "symbol": [r.symbol for r in rows],
        **{col: [getattr(r, col) for r in rows] for col in ("open", "high", "low", "close")},
    })
    frame["day"] = frame["time"].dt.tz_convert(ET).dt.date
    return frame.sort_values("time", kind="stable")
