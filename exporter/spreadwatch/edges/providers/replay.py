"""The replay provider: a CSV of bars played against a clock.

Owns answering the provider questions as of an instant: a bar stamped t is
visible from t on, so `latest(symbol, now)` is the newest bar at or before `now` and nothing later leaks in.
The file is read by edges/replayfile.py (the format, and its one rule: a blank, `nan` or `null` cell is NaN).
Must not: read the clock, fill gaps, or turn a blank cell into a number (a blank close is NaN and the watcher
reports it as such).

Minute (or any intraday) bars and daily bars may share a file. Daily history is derived per session date: a date
with one row per symbol is a daily bar (stamp it at the session close, or write a bare date, read as 16:00 ET);
a date with intraday rows is aggregated (first open, max high, min low, last close, summed volume). Do not mix
both kinds for one symbol on one date.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from spreadwatch.edges.providers import Bar, DailyBar, ProviderError, Quote
from spreadwatch.edges.replayfile import ET, read_rows
from spreadwatch.errors import DataError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from spreadwatch.edges.calendar import MarketCalendar

# Sessions of intraday bars kept made per symbol (today, yesterday, and a margin).
SESSIONS_KEPT = 4
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
        # symbol -> session -> that session's bars and their times, made once while asked (the file does not
        # change); the least recently asked go beyond SESSIONS_KEPT, so a long replay does not keep them all twice.
        self._sessions: dict[str, dict[date, tuple[list[datetime], list[Bar]]]] = defaultdict(dict)
        self._load()

    # ---- loading --------------------------------------------------------------------------------------------
    def _load(self) -> None:
        rows: dict[str, list[_Row]] = defaultdict(list)
        for row in read_rows(self.path):
            volume = row.volume if math.isfinite(row.volume) else None
            rows[row.symbol].append((row.time, row.open, row.high, row.low, row.close, volume))
        for symbol, items in rows.items():
            items.sort(key=lambda item: item[0])
            self._rows[symbol] = items
            self._times[symbol] = [item[0] for item in items]
            counts: dict[date, int] = defaultdict(int)
            for day, _ in _by_et_date(items):
                counts[day] += 1
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
        stamp, _o, high, low, close, volume = rows[i - 1]
        return Quote(symbol, stamp, close, volume, high, low)

    def intraday(self, symbol: str, session: date, now: datetime) -> list[Bar]:
        times, rows = self._symbol_rows(symbol)
        if session not in self._intraday_days[symbol]:
            return []
        kept = self._sessions[symbol]
        made = kept.pop(session, None)
        if made is None:
            # The rows from the session date's ET midnight to the next one's: that date's, and only that date's.
            lo = bisect.bisect_left(times, _et_midnight(session))
            hi = bisect.bisect_left(times, _et_midnight(session + timedelta(days=1)))
            bars = [Bar(r[0], r[4], r[5], r[2], r[3]) for r in rows[lo:hi]]
            made = ([b.time for b in bars], bars)
        kept[session] = made  # the most recently asked last
        for old in list(kept)[:-SESSIONS_KEPT]:
            del kept[old]
        return made[1][:bisect.bisect_right(made[0], now)]

    def daily(self, symbol: str, before: date, count: int) -> list[DailyBar]:
        times, rows = self._symbol_rows(symbol)
        end = datetime.combine(before, time(0, 0), tzinfo=ET).astimezone(UTC)
        hi = bisect.bisect_left(times, end)
        by_day: dict[date, list[_Row]] = {}
        for day, r in _by_et_date(rows[:hi]):
            by_day.setdefault(day, []).append(r)
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


def _by_et_date(rows: list[_Row]) -> Iterator[tuple[date, _Row]]:
    """Each row of time-sorted `rows` with its ET date (worked out once per date, not once per row)."""
    day, day_end = date.min, datetime.min.replace(tzinfo=UTC)
    for row in rows:
        if row[0] >= day_end:
            day = _et_date(row[0])
            day_end = _et_midnight(day + timedelta(days=1))
        yield day, row


def _et_midnight(day: date) -> datetime:
    """The instant (UTC) the ET date `day` begins."""
    return datetime.combine(day, time(0, 0), tzinfo=ET).astimezone(UTC)
