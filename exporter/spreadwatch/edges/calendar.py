"""The exchange calendar: sessions, phases, early closes, DTE and expiry.

Owns every question of the form "is the market open at t", "which session is that", "what is the expiry of an
N-DTE entry" and "how many sessions to expiry". It wraps exchange_calendars (the exchange named by
`market.calendar`, XNYS by default), so holidays, early closes and DST come from there, never from fixed hours. Takes
instants as arguments; never reads the clock.

DTE is counted in trading sessions: the expiry of an N-DTE entry is the N-th session after the entry session
(0 = the same session). Times are UTC-aware datetimes in and out; `display_tz` is only for showing and for the
configured local hours.

XNYS (the default) is answered from a bundled session table (data/xnys_sessions.json, written from
exchange_calendars by scripts/make_session_table.py and checked against it day by day by the tests): the weekdays
without a session and the early closes over the whole range. A command that needs the expiry of a position then
starts without importing exchange_calendars, pandas and numpy (about half a second). Any other exchange is built
by exchange_calendars, imported when first asked.

The range: every day from CALENDAR_START to CALENDAR_LIMIT can be asked about. The exchange's schedule is built
lazily, EXTENSION beyond the furthest day asked about so far, and built further whenever a day within MARGIN of its
end is asked about (a clock nearing the end, a far expiry): a process that runs for years never meets the end of its
calendar. A day outside the range is a CalendarRangeError (a ValueError and an expected error, one line); an
instant outside it has the session phase `unknown`.
"""

from __future__ import annotations

import bisect
import threading
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from spreadwatch.domain.vocabulary import ET, UNKNOWN_PHASE
from spreadwatch.errors import SpreadwatchError

# Extended-hours boundaries (US equities): pre-market from 04:00 ET, after-hours until 20:00 ET.
PRE_MARKET_START = time(4, 0)
AFTER_HOURS_END = time(20, 0)
# The days the calendar answers for. The limit is far beyond any option expiry; the schedule is built one MARGIN past
# it, so the sessions after the last day can still be named.
CALENDAR_START = date(1995, 1, 1)
CALENDAR_LIMIT = date(2100, 12, 31)
# How far beyond the furthest day asked about the schedule is built, and how close to its end a day may come before
# it is built further. Building ten years costs a fraction of a second, once.
EXTENSION = timedelta(days=3660)
MARGIN = timedelta(days=400)


class CalendarRangeError(ValueError, SpreadwatchError):
    """A day outside CALENDAR_START..CALENDAR_LIMIT (the message names the day and the range)."""

    def __init__(self, day: date) -> None:
        super().__init__(f"{day} is outside the exchange calendar's range ({CALENDAR_START} to {CALENDAR_LIMIT})")
        self.day = day


_build_lock = threading.Lock()
_built: dict[str, tuple[date, Any]] = {}  # exchange name -> (the day its schedule is built to, the calendar)

# The bundled table: sessions open at TABLE_OPEN and close at TABLE_CLOSE (ET) unless listed as early closes.
TABLE_FILE = "xnys_sessions.json"
TABLE_EXCHANGE = "XNYS"
TABLE_OPEN, TABLE_CLOSE = "09:30", "16:00"


class _TableSchedule:
    """Sessions from the bundled table, as plain dates: every weekday from its first to its last day except the
    listed ones. Standard library only."""

    def __init__(self, table: dict[str, Any]) -> None:
        self.first_day = date.fromisoformat(table["first_day"])
        self.last_day = date.fromisoformat(table["last_day"])
        self.zone = ZoneInfo(table["timezone"])
        self.open_time = time.fromisoformat(table["open"])
        self.close_time = time.fromisoformat(table["close"])
        self._closed = sorted(date.fromisoformat(d).toordinal() for d in table["weekdays_without_session"])
        self._closed_set = frozenset(self._closed)
        self._early = {date.fromisoformat(d): time.fromisoformat(hhmm)
                       for hhmm, days in table["early_closes"].items() for d in days}
        self.first_session = self._step(self.first_day, 1, inclusive=True)
        self.last_session = self._step(self.last_day, -1, inclusive=True)

    def is_session(self, day: date) -> bool:
        return (self.first_day <= day <= self.last_day and day.weekday() < 5
                and day.toordinal() not in self._closed_set)

    def open_close(self, day: date) -> tuple[datetime, datetime]:
        if not self.is_session(day):
            raise ValueError(f"{day} is not a session")
        close = self._early.get(day, self.close_time)
        return (datetime.combine(day, self.open_time, self.zone).astimezone(UTC),
                datetime.combine(day, close, self.zone).astimezone(UTC))

    def _step(self, day: date, direction: int, *, inclusive: bool = False) -> date:
        """The first session after (direction 1) or before (-1) `day`, `day` itself when `inclusive`."""
        one = timedelta(days=direction)
        if not inclusive:
            day += one
        while not self.is_session(day):
            if not self.first_day <= day <= self.last_day:
                raise ValueError(f"no session {'after' if direction > 0 else 'before'} {day} in the table")
            day += one
        return day

    def next_session(self, day: date) -> date:
        return self._step(day, 1)

    def previous_session(self, day: date) -> date:
        return self._step(day, -1)

    def _rank(self, day: date) -> int:
        """Sessions strictly before `day` (from the proleptic first day; differences only are meaningful)."""
        ordinal = day.toordinal() - 1  # day 1 (0001-01-01) is a Monday
        weekdays = 5 * (ordinal // 7) + min(ordinal % 7, 5)
        return weekdays - bisect.bisect_left(self._closed, day.toordinal())

    def session_count(self, start: date, end: date) -> int:
        """Sessions with start <= session <= end (both within the table)."""
        return max(self._rank(end + timedelta(days=1)) - self._rank(start), 0)

    def sessions_in_range(self, start: date, end: date) -> list[date]:
        start, end = max(start, self.first_day), min(end, self.last_day)
        days = (start + timedelta(days=i) for i in range((end - start).days + 1))
        return [d for d in days if self.is_session(d)]

    def session_offset(self, session: date, count: int) -> date:
        day = session
        for _ in range(count):
            day = self._step(day, 1)
        return day


class _ExchangeSchedule:
    """An exchange_calendars calendar behind the same date-based questions as the table."""

    def __init__(self, calendar: Any) -> None:
        self.cal = calendar
        self.first_session = calendar.first_session.date()
        self.last_session = calendar.last_session.date()

    def is_session(self, day: date) -> bool:
        return bool(self.cal.is_session(_ts(day)))

    def open_close(self, day: date) -> tuple[datetime, datetime]:
        ts = _ts(day)
        return self.cal.session_open(ts).to_pydatetime(), self.cal.session_close(ts).to_pydatetime()

    def next_session(self, day: date) -> date:
        ts = _ts(day)
        if self.cal.is_session(ts):
            return self.cal.next_session(ts).date()
        return self.cal.date_to_session(ts, direction="next").date()

    def previous_session(self, day: date) -> date:
        ts = _ts(day)
        if self.cal.is_session(ts):
            return self.cal.previous_session(ts).date()
        return self.cal.date_to_session(ts, direction="previous").date()

    def session_count(self, start: date, end: date) -> int:
        return len(self.sessions_in_range(start, end))

    def sessions_in_range(self, start: date, end: date) -> list[date]:
        return [ts.date() for ts in self.cal.sessions_in_range(_ts(start), _ts(end))]

    def session_offset(self, session: date, count: int) -> date:
        return self.cal.session_offset(_ts(session), count).date()


_table: list[_TableSchedule] = []


def _bundled_table() -> _TableSchedule:
    """The XNYS session table, read once per process."""
    with _build_lock:
        if not _table:
            import json

            from spreadwatch.config import bundled_path

            _table.append(_TableSchedule(json.loads(bundled_path(TABLE_FILE).read_text())))
        return _table[0]


def _schedule(name: str, through: date) -> Any:
    """The schedule that answers for exchange `name` through `through`: the bundled table for XNYS, else the
    exchange's calendar from exchange_calendars."""
    if name == TABLE_EXCHANGE:
        return _bundled_table()
    return _ExchangeSchedule(_exchange(name, through))


def _exchange(name: str, through: date) -> Any:
    """The exchange's calendar, built at least MARGIN past `through` (or to its hard end). Shared by every
    MarketCalendar of the process; replaced whole when built further (readers holding the old one are not hurt)."""
    hard_end = CALENDAR_LIMIT + MARGIN
    with _build_lock:
        have = _built.get(name)
        if have is not None and (through + MARGIN <= have[0] or have[0] >= hard_end):
            return have[1]
        import exchange_calendars

        end = min(max(through, have[0] if have else through) + EXTENSION, hard_end)
        end = min(date(end.year, 12, 31), hard_end)
        calendar = exchange_calendars.get_calendar(name, start=CALENDAR_START.isoformat(), end=end.isoformat())
        _built[name] = (end, calendar)
        return calendar


def _in_range(day: date) -> date:
    if not CALENDAR_START <= day <= CALENDAR_LIMIT:
        raise CalendarRangeError(day)
    return day


def _ts(day: date) -> Any:
    import pandas as pd

    return pd.Timestamp(day.isoformat())


MEMO_DAYS = 4096  # days remembered by a calendar's memos (a day a year of a long run: never reached in practice)


def _memo(memo: dict[date, Any], day: date) -> date:
    """`day`, after making room for it in `memo` (emptied when full: the answers are asked again, never wrong)."""
    if len(memo) >= MEMO_DAYS:
        memo.clear()
    return day


def _require_aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("naive datetime: pass UTC-aware instants")
    return now.astimezone(UTC)


class MarketCalendar:
    """An exchange's sessions (`exchange`, an exchange_calendars name: config `market.calendar`) as plain dates and
    UTC datetimes."""

    def __init__(self, display_tz: str = "America/Los_Angeles", exchange: str = "XNYS") -> None:
        self.display_tz = ZoneInfo(display_tz)
        self.exchange = exchange
        # A day's answers never change (a schedule built further only adds days): the loop asks the same few days
        # many times a cycle, per ticker, and each pandas lookup costs tens of microseconds.
        self._is_session: dict[date, bool] = {}
        self._open_close: dict[date, tuple[datetime, datetime]] = {}
        self._previous: dict[date, date] = {}
        self._phase: tuple[datetime, str] | None = None  # the last instant asked and its phase (asked per ticker)

    @classmethod
    def of(cls, config: Any) -> MarketCalendar:
        """The calendar the settings name: `market.calendar`, shown in `display_timezone`."""
        return cls(config.display_timezone, config.market.calendar)

    def _cal(self, through: date) -> Any:
        """The exchange's schedule, built far enough for `through` (CalendarRangeError outside the range)."""
        return _schedule(self.exchange, _in_range(through))

    # ---- sessions -------------------------------------------------------------------------------------------
    @property
    def first_day(self) -> date:
        """The first day the calendar answers for."""
        return CALENDAR_START

    @property
    def last_day(self) -> date:
        """The last day the calendar answers for (its schedule is built that far when a day near it is asked)."""
        return CALENDAR_LIMIT

    @property
    def last_known_session(self) -> date:
        """The last session of the schedule as built so far (it grows as later days are asked about)."""
        return self._cal(CALENDAR_START).last_session  # type: ignore[no-any-return]

    @property
    def first_known_session(self) -> date:
        return self._cal(CALENDAR_START).first_session  # type: ignore[no-any-return]

    def is_session(self, day: date) -> bool:
        known = self._is_session.get(day)
        if known is None:
            known = self._is_session[_memo(self._is_session, day)] = bool(self._cal(day).is_session(day))
        return known

    def open_close(self, day: date) -> tuple[datetime, datetime]:
        """UTC open and close of a session (early closes honoured)."""
        known = self._open_close.get(day)
        if known is None:
            known = self._open_close[_memo(self._open_close, day)] = self._cal(day).open_close(day)
        return known

    def next_session(self, day: date) -> date:
        """The first session strictly after `day` (a session or not)."""
        return self._cal(day).next_session(day)  # type: ignore[no-any-return]

    def previous_session(self, day: date) -> date:
        """The last session strictly before `day` (a session or not)."""
        known = self._previous.get(day)
        if known is None:
            known = self._previous[_memo(self._previous, day)] = self._previous_session(day)
        return known

    def _previous_session(self, day: date) -> date:
        try:
            return self._cal(day).previous_session(day)  # type: ignore[no-any-return]
        except ValueError:  # before the first session
            raise CalendarRangeError(day) from None

    def sessions_in_range(self, start: date, end: date) -> list[date]:
        """Sessions with start <= session <= end."""
        if end < start:
            return []
        _in_range(start)
        return self._cal(end).sessions_in_range(start, end)  # type: ignore[no-any-return]

    def _session_count(self, start: date, end: date) -> int:
        if end < start:
            return 0
        _in_range(start)
        return self._cal(end).session_count(start, end)  # type: ignore[no-any-return]

    def et_date(self, now: datetime) -> date:
        return _require_aware(now).astimezone(ET).date()

    def entry_session(self, now: datetime) -> date:
        """The session an entry at `now` belongs to: today's session, or the next one if today has none
        or it has closed."""
        today = self.et_date(now)
        if self.is_session(today):
            _, close = self.open_close(today)
            if _require_aware(now) < close:
                return today
        return self.next_session(today)

    # ---- DTE ------------------------------------------------------------------------------------------------
    def expiry_for(self, entry_session: date, dte: int) -> date:
        """The N-th session after the entry session (0 = the entry session itself)."""
        if dte < 0:
            raise ValueError("dte must be >= 0")
        if not self.is_session(entry_session):
            raise ValueError(f"{entry_session} is not a trading session")
        # Sessions are at least 5 of every 7 days, and never more than a few holidays apart.
        through = entry_session + timedelta(days=dte * 7 // 5 + 14)
        if through > CALENDAR_LIMIT:
            raise CalendarRangeError(through)
        return self._cal(through).session_offset(entry_session, dte)  # type: ignore[no-any-return]

    def sessions_to_expiry(self, today: date, expiry: date) -> int:
        """Sessions after `today` up to and including `expiry`: 0 on the expiry session only, negative on every day
        after it. Past the expiry, -N means the expiry was N sessions ago, a day without a session counting as the
        session that follows it: a Friday expiry reads -1 on Saturday, Sunday and Monday, -2 on Tuesday (never 0 on
        a weekend or holiday after the expiry, which would read as "expires today")."""
        if expiry >= today:
            return self._session_count(today + timedelta(days=1), expiry)
        return -(self._session_count(expiry + timedelta(days=1), today - timedelta(days=1)) + 1)

    # ---- phases ---------------------------------------------------------------------------------------------
    def session_phase(self, now: datetime) -> str:
        """closed | pre | open | after, from the calendar (holidays closed, early closes honoured); `unknown` for an
        instant outside the calendar's range (no exchange schedule says what it was)."""
        now = _require_aware(now)
        last = self._phase
        if last is not None and last[0] == now:
            return last[1]
        phase = self._session_phase(now)
        self._phase = (now, phase)
        return phase

    def _session_phase(self, now: datetime) -> str:
        local = now.astimezone(ET)
        day = local.date()
        if not self.covers(now):
            return UNKNOWN_PHASE
        if not self.is_session(day):
            return "closed"
        open_, close = self.open_close(day)
        if open_ <= now < close:
            return "open"
        if now < open_:
            return "pre" if local.time() >= PRE_MARKET_START else "closed"
        return "after" if local.time() < AFTER_HOURS_END else "closed"

    def covers(self, now: datetime) -> bool:
        """Whether the calendar answers for `now`'s session date (its phase is known)."""
        return CALENDAR_START <= self.et_date(now) <= CALENDAR_LIMIT

    def is_open(self, now: datetime) -> bool:
        return self.session_phase(now) == "open"

    def seconds_to_close(self, now: datetime) -> float | None:
        """Seconds until the regular session closes, or None when it is not open."""
        now = _require_aware(now)
        if not self.is_open(now):
            return None
        _, close = self.open_close(self.et_date(now))
        return (close - now).total_seconds()

    def current_or_last_session(self, now: datetime) -> date:
        """Today's session once it has opened, else the previous session: the session whose data is current."""
        now = _require_aware(now)
        today = self.et_date(now)
        if self.is_session(today):
            open_, _ = self.open_close(today)
            if now >= open_:
                return today
        return self.previous_session(today)

    # ---- local hours ----------------------------------------------------------------------------------------
    def local(self, now: datetime) -> datetime:
        return _require_aware(now).astimezone(self.display_tz)

    def within_local_hours(self, now: datetime, start: time, end: time) -> bool:
        """Whether `now` is within [start, end] (minute resolution, end inclusive) in the display zone
        AND inside the regular session. Configured hours never make a closed market look open."""
        if not self.is_open(now):
            return False
        local = self.local(now).time().replace(second=0, microsecond=0)
        return start <= local <= end
