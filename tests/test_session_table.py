"""The bundled XNYS session table answers exactly as exchange_calendars does, for every day of the calendar's range:
the same sessions, opens and closes (early closes included), and the same next/previous session, expiry and
session counts. A library upgrade that moves a session fails here until scripts/make_session_table.py is re-run."""

from __future__ import annotations

import json
import random
from datetime import date, timedelta

import pytest

from spreadwatch.config import bundled_path
from spreadwatch.edges import calendar as calendar_module
from spreadwatch.edges.calendar import CALENDAR_LIMIT, CALENDAR_START, MARGIN, MarketCalendar


@pytest.fixture(scope="module")
def both():
    """(the bundled table, exchange_calendars' XNYS) over the table's whole range."""
    import exchange_calendars

    table = calendar_module._bundled_table()
    library = exchange_calendars.get_calendar("XNYS", start=table.first_day.isoformat(),
                                              end=table.last_day.isoformat())
    return table, calendar_module._ExchangeSchedule(library)


def test_the_table_spans_the_whole_range_the_calendar_answers_for():
    raw = json.loads(bundled_path(calendar_module.TABLE_FILE).read_text())
    assert raw["exchange"] == "XNYS" and raw["source"].startswith("exchange_calendars ")
    assert date.fromisoformat(raw["first_day"]) <= CALENDAR_START
    assert date.fromisoformat(raw["last_day"]) >= CALENDAR_LIMIT + MARGIN


def test_every_session_open_and_close_equals_exchange_calendars(both):
    table, library = both
    schedule = library.cal.schedule
    expected = [(ts.date(), o.to_pydatetime(), c.to_pydatetime())
                for ts, o, c in zip(schedule.index, schedule["open"], schedule["close"], strict=True)]
    sessions = table.sessions_in_range(table.first_day, table.last_day)
    assert sessions == [day for day, _, _ in expected]
    assert [(day, *table.open_close(day)) for day in sessions] == expected
    assert (table.first_session, table.last_session) == (library.first_session, library.last_session)


def test_next_previous_offsets_and_counts_equal_exchange_calendars(both):
    table, library = both
    rng = random.Random(16)
    span = (table.last_day - table.first_day).days - 60
    for _ in range(300):
        day = table.first_day + timedelta(days=30 + rng.randrange(span))
        assert table.next_session(day) == library.next_session(day), day
        assert table.previous_session(day) == library.previous_session(day), day
        assert table.is_session(day) == library.is_session(day), day
        end = day + timedelta(days=rng.randrange(400))
        if end <= table.last_day - timedelta(days=10):
            assert table.session_count(day, end) == library.session_count(day, end), (day, end)
        if table.is_session(day):
            count = rng.randrange(60)
            assert table.session_offset(day, count) == library.session_offset(day, count), (day, count)


def test_the_default_exchange_is_answered_without_exchange_calendars():
    cal = MarketCalendar()
    assert isinstance(calendar_module._schedule(cal.exchange, date(2026, 12, 3)), calendar_module._TableSchedule)
    assert cal.expiry_for(date(2026, 11, 25), 1) == date(2026, 11, 27)  # over Thanksgiving
    assert cal.sessions_to_expiry(date(2026, 11, 25), date(2026, 12, 4)) == 6  # 27, 30, 1, 2, 3, 4
    assert cal.sessions_to_expiry(date(2026, 12, 7), date(2026, 12, 4)) == -1  # a Friday expiry, read on Monday
