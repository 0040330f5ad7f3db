"""XNYS calendar: holidays, early closes, DST switch days, pre-market in Pacific time, DTE across a holiday."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest

from exporter_support import utc
from spreadwatch.edges.calendar import MarketCalendar


def test_thanksgiving_2026_is_closed_all_day(cal):
    assert not cal.is_session(date(2026, 11, 26))
    for instant in ("2026-11-26T12:00:00Z", "2026-11-26T15:00:00Z", "2026-11-26T20:00:00Z"):
        assert cal.session_phase(utc(instant)) == "closed"
        assert cal.seconds_to_close(utc(instant)) is None


def test_day_after_thanksgiving_closes_at_13_00_et(cal):
    open_, close = cal.open_close(date(2026, 11, 27))
    assert open_ == utc("2026-11-27T14:30:00Z")
    assert close == utc("2026-11-27T18:00:00Z")  # 13:00 EST
    assert cal.is_open(utc("2026-11-27T17:59:00Z"))
    assert cal.seconds_to_close(utc("2026-11-27T17:59:00Z")) == 60
    at_1330_et = utc("2026-11-27T18:30:00Z")
    assert not cal.is_open(at_1330_et)
    assert cal.session_phase(at_1330_et) == "after"
    # Configured hours (until 13:00 PT) never make the early-closed market look open.
    assert not cal.within_local_hours(at_1330_et, time(6, 30), time(13, 0))


def test_dst_start_monday_opens_at_13_30_utc(cal):
    # DST began Sunday 2026-03-08: the open moves from 14:30 UTC to 13:30 UTC.
    assert cal.open_close(date(2026, 3, 6))[0] == utc("2026-03-06T14:30:00Z")
    assert cal.open_close(date(2026, 3, 9))[0] == utc("2026-03-09T13:30:00Z")
    assert cal.session_phase(utc("2026-03-09T13:45:00Z")) == "open"
    assert cal.session_phase(utc("2026-03-06T13:45:00Z")) == "pre"
    # 06:30 PT is the open on both sides of the switch.
    assert cal.local(cal.open_close(date(2026, 3, 9))[0]).time() == time(6, 30)
    assert cal.local(cal.open_close(date(2026, 3, 6))[0]).time() == time(6, 30)


def test_dst_end_monday_opens_at_14_30_utc(cal):
    # DST ended Sunday 2026-11-01: the open moves from 13:30 UTC to 14:30 UTC.
    assert cal.open_close(date(2026, 10, 30))[0] == utc("2026-10-30T13:30:00Z")
    assert cal.open_close(date(2026, 11, 2))[0] == utc("2026-11-02T14:30:00Z")
    assert cal.session_phase(utc("2026-11-02T14:00:00Z")) == "pre"
    assert cal.session_phase(utc("2026-10-30T14:00:00Z")) == "open"
    assert cal.open_close(date(2026, 11, 2))[1] == utc("2026-11-02T21:00:00Z")


def test_06_15_pacific_is_pre_market_not_open(cal):
    at = datetime(2026, 11, 24, 6, 15, tzinfo=cal.display_tz)
    assert cal.session_phase(at) == "pre"
    assert not cal.is_open(at)
    # The original counted 06:00 PT as open; configured hours from 06:00 must not widen the session.
    assert not cal.within_local_hours(at, time(6, 0), time(13, 0))
    assert cal.within_local_hours(datetime(2026, 11, 24, 6, 31, tzinfo=cal.display_tz), time(6, 0), time(13, 0))


def test_phases_around_a_normal_session(cal):
    assert cal.session_phase(utc("2026-11-24T08:59:00Z")) == "closed"  # 03:59 ET
    assert cal.session_phase(utc("2026-11-24T09:00:00Z")) == "pre"  # 04:00 ET
    assert cal.session_phase(utc("2026-11-24T14:30:00Z")) == "open"
    assert cal.session_phase(utc("2026-11-24T21:00:00Z")) == "after"
    assert cal.session_phase(utc("2026-11-25T01:00:00Z")) == "closed"  # 20:00 ET
    assert cal.session_phase(utc("2026-11-28T15:00:00Z")) == "closed"  # Saturday


def test_expiry_and_dte_count_sessions_across_the_holiday(cal):
    wednesday = date(2026, 11, 25)
    assert cal.expiry_for(wednesday, 0) == wednesday
    assert cal.expiry_for(wednesday, 1) == date(2026, 11, 27)  # Thursday is Thanksgiving
    assert cal.expiry_for(wednesday, 2) == date(2026, 11, 30)
    assert cal.sessions_to_expiry(wednesday, date(2026, 11, 27)) == 1
    assert cal.sessions_to_expiry(date(2026, 11, 27), date(2026, 11, 27)) == 0
    assert cal.sessions_to_expiry(date(2026, 11, 30), date(2026, 11, 27)) == -1


def test_after_the_expiry_every_day_counts_negative_sessions_weekends_and_holidays_included(cal):
    friday = date(2026, 11, 27)  # the early close after Thanksgiving
    assert cal.sessions_to_expiry(friday, friday) == 0  # the expiry session itself, and only it
    # A day without a session counts as the session after it: never 0 ("expires today") after the expiry.
    assert [cal.sessions_to_expiry(date(2026, 11, d), friday) for d in (28, 29, 30)] == [-1, -1, -1]
    assert cal.sessions_to_expiry(date(2026, 12, 1), friday) == -2
    wednesday = date(2026, 11, 25)
    assert cal.sessions_to_expiry(date(2026, 11, 26), wednesday) == -1  # Thanksgiving
    assert cal.sessions_to_expiry(date(2026, 11, 27), wednesday) == -1  # the next session
    assert cal.sessions_to_expiry(date(2026, 11, 28), wednesday) == -2
    # Before the expiry nothing changes: a weekend counts the sessions up to and including the expiry.
    assert cal.sessions_to_expiry(date(2026, 11, 28), date(2026, 11, 30)) == 1
    with pytest.raises(ValueError):
        cal.expiry_for(date(2026, 11, 26), 1)


def test_entry_session_on_the_holiday_is_the_next_session(cal):
    assert cal.entry_session(utc("2026-11-26T16:00:00Z")) == date(2026, 11, 27)
    assert cal.entry_session(utc("2026-11-25T16:00:00Z")) == date(2026, 11, 25)
    assert cal.entry_session(utc("2026-11-25T21:30:00Z")) == date(2026, 11, 27)  # after the close
    assert cal.current_or_last_session(utc("2026-11-26T16:00:00Z")) == date(2026, 11, 25)
    assert cal.current_or_last_session(utc("2026-11-27T12:00:00Z")) == date(2026, 11, 25)  # before its open


def test_naive_instants_are_rejected(cal):
    with pytest.raises(ValueError):
        cal.session_phase(datetime(2026, 11, 24, 15, 0))


def test_the_exchange_comes_from_the_calendar_name():
    # market.calendar names the exchange_calendars calendar; a different exchange has different sessions
    # (London trades on US Thanksgiving and closes for Boxing Day).
    london = MarketCalendar("Europe/London", exchange="XLON")
    assert london.exchange == "XLON" and MarketCalendar().exchange == "XNYS"
    assert london.is_session(date(2026, 11, 26)) and not MarketCalendar().is_session(date(2026, 11, 26))
    assert not london.is_session(date(2026, 12, 28)) and MarketCalendar().is_session(date(2026, 12, 28))
