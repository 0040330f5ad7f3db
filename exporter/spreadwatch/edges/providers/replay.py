"""The replay provider: a CSV of bars played against a clock.

Owns reading the replay file (`timestamp, symbol, open, high, low, close, volume`; timestamps UTC ISO 8601;
lines starting with `#` are comments) and answering the provider questions as of an instant: a bar stamped t is
visible from t on, so `latest(symbol, now)` is the newest bar at or before `now` and nothing later leaks in.
Must not: read the clock, fill gaps, or turn a blank cell into a number (a blank close is NaN and the watcher
reports it as such).

Minute (or any intraday) bars and daily bars may share a file. Daily history is derived per session date: a date
with one row per symbol is a daily bar (stamp it at the session close, or write a bare date, read as 16:00 ET);
a date with intraday rows is aggregated (first open, max high, min low, last close, summed volume). Do not mix
both kinds for one symbol on one date.
"""

from __future__ import annotations

import bisect
import csv
import math
from collections import defaultdict
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from spreadwatch.edges.providers import Bar, DailyBar, ProviderError, Quote
from spreadwatch.errors import DataError

if TYPE_CHECKING:
    from spreadwatch.edges.calendar import MarketCalendar

COLUMNS = ("timestamp", "symbol", "open", "high", "low", "close", "volume")
ET = ZoneInfo("America/New_York")
# time, open, high, low, close, volume
_Row = tuple[datetime, float, float, float, float, float | None]


class ReplayProvider:
    label = "replay"

    def __init__(self, path: Path, bundled: bool = False) -> None:
        self.path = Path(path)
        self.bundled = bundled
        if bundled:
            self.description = f"replay (bundled sample, SYNTHETIC data: {self.path.name})"
        else:
            self.description = f"replay ({self.path})"
        # symbol -> rows sorted by time: (time, open, high, low, close, volume)
        self._rows: dict[str, list[_Row]] = {}
        self._times: dict[str, list[datetime]] = {}
        self._intraday_days: dict[str, set[date]] = {}
        self._load()

    # ---- loading --------------------------------------------------------------------------------------------
    def _load(self) -> None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DataError(f"{self.path}: replay file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{self.path}: cannot read replay file: {exc}") from None
        numbered = [(n, line) for n, line in enumerate(text.splitlines(), start=1)
                    if line.strip() and not line.lstrip().startswith("#")]
        if not numbered:
            raise DataError(f"{self.path}: empty replay file (no header)")
        records = csv.reader(line for _, line in numbered)
        header = [c.strip().lower() for c in next(records)]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise DataError(f"{self.path}:{numbered[0][0]}: missing column(s) {', '.join(missing)}")
        index = {c: header.index(c) for c in COLUMNS}
        rows: dict[str, list[_Row]] = defaultdict(list)
        for (line_no, _), record in zip(numbered[1:], records, strict=True):
            if len(record) < len(header):
                raise DataError(f"{self.path}:{line_no}: expected {len(header)} fields, got {len(record)}")
            stamp = _parse_time(record[index["timestamp"]], self.path, line_no)
            symbol = record[index["symbol"]].strip()
            if not symbol:
                raise DataError(f"{self.path}:{line_no}: column symbol: blank")
            o, h, lo, c, v = (_parse_number(record[index[col]], self.path, line_no, col)
                              for col in ("open", "high", "low", "close", "volume"))
            rows[symbol].append((stamp, o, h, lo, c, v if math.isfinite(v) else None))
        for symbol, items in rows.items():
            items.sort(key=lambda r: r[0])
            self._rows[symbol] = items
            self._times[symbol] = [r[0] for r in items]
            counts: dict[date, int] = defaultdict(int)
            for r in items:
                counts[_et_date(r[0])] += 1
            # One row on a date is a daily bar; several are intraday bars.
            self._intraday_days[symbol] = {d for d, n in counts.items() if n > 1}

    # ---- facts about the file -------------------------------------------------------------------------------
    def last_time(self) -> datetime | None:
        lasts = [times[-1] for times in self._times.values() if times]
        return max(lasts) if lasts else None

    def last_intraday_session(self) -> date | None:
        """The newest session date with intraday bars of any symbol."""
        days = [max(d) for d in self._intraday_days.values() if d]
        return max(days) if days else None

    def default_start(self, calendar: MarketCalendar) -> datetime:
        """Where the replay clock starts without --start: the open of the replayed day (the newest session with
        intraday bars; older rows are history for it). A file of daily bars only starts at its last bar."""
        day = self.last_intraday_session()
        if day is not None and calendar.is_session(day):
            return calendar.open_close(day)[0]
        last = self.last_time()
        if last is None:
            raise DataError(f"{self.path}: no bars")
        return last

    # ---- provider interface ---------------------------------------------------------------------------------
    def _symbol_rows(self, symbol: str) -> tuple[list[datetime], list[_Row]]:
        if symbol not in self._rows:
            raise ProviderError(symbol, "empty", f"not in {self.path.name}")
        return self._times[symbol], self._rows[symbol]

    def latest(self, symbol: str, now: datetime) -> Quote:
        times, rows = self._symbol_rows(symbol)
        i = bisect.bisect_right(times, now)
        if i == 0:
            raise ProviderError(symbol, "empty", f"no bar at or before {now.isoformat()}")
        stamp, _o, _h, _l, close, volume = rows[i - 1]
        return Quote(symbol, stamp, close, volume)

    def intraday(self, symbol: str, session: date, now: datetime) -> list[Bar]:
        times, rows = self._symbol_rows(symbol)
        start = datetime.combine(session, time(0, 0), tzinfo=ET).astimezone(UTC)
        lo = bisect.bisect_left(times, start)
        hi = bisect.bisect_right(times, now)
        if session not in self._intraday_days[symbol]:
            return []
        return [Bar(r[0], r[4], r[5]) for r in rows[lo:hi] if _et_date(r[0]) == session]

    def daily(self, symbol: str, before: date, count: int) -> list[DailyBar]:
        times, rows = self._symbol_rows(symbol)
        end = datetime.combine(before, time(0, 0), tzinfo=ET).astimezone(UTC)
        hi = bisect.bisect_left(times, end)
        by_day: dict[date, list[_Row]] = {}
        for r in rows[:hi]:
            by_day.setdefault(_et_date(r[0]), []).append(r)
        days = sorted(by_day)[-count:] if count > 0 else []
        out: list[DailyBar] = []
        for day in days:
            items = by_day[day]
            volumes = [r[5] for r in items if r[5] is not None]
            out.append(DailyBar(
                day=day,
                open=items[0][1],
                high=max(r[2] for r in items),
                low=min(r[3] for r in items),
                close=items[-1][4],
                volume=sum(volumes) if volumes else None,
            ))
        return out


def _et_date(stamp: datetime) -> date:
    return stamp.astimezone(ET).date()


def _parse_time(text: str, path: Path, line: int) -> datetime:
    raw = text.strip()
    try:
        if len(raw) == 10:  # a bare date: a daily bar, visible from 16:00 ET that day
            day = date.fromisoformat(raw)
            return datetime.combine(day, time(16, 0), tzinfo=ET).astimezone(UTC)
        value = datetime.fromisoformat(raw.replace("Z", "+00:00") if raw.endswith("Z") else raw)
    except ValueError:
        raise DataError(f"{path}:{line}: column timestamp: not ISO 8601: {raw!r}") from None
    if value.tzinfo is None:
        raise DataError(f"{path}:{line}: column timestamp: no time zone in {raw!r} (write UTC, e.g. ...Z)")
    return value.astimezone(UTC)


def _parse_number(text: str, path: Path, line: int, column: str) -> float:
    raw = text.strip()
    if raw == "" or raw.lower() in ("nan", "null"):
        return math.nan
    try:
        return float(raw)
    except ValueError:
        raise DataError(f"{path}:{line}: column {column}: not a number: {raw!r}") from None
