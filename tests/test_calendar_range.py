"""The calendar never ends the process: it answers for every day a position or a clock can reach, is built further
as the clock nears its end, and an instant outside its range is the session phase `unknown`, said once in the log,
exported, never an exception. The loop runs on the virtual clock (tests/exporter_support.py)."""

from __future__ import annotations

import dataclasses
import logging
from datetime import date, datetime, timedelta

import pytest

from exporter_support import Running, VirtualClock, http_get, make_service, sample, scrape, utc
from realstack import sample_value
from spreadwatch.config import Config, Intervals
from spreadwatch.edges.calendar import CALENDAR_LIMIT, CalendarRangeError

CYCLE = 2 * 3600  # replay seconds between cycles in the loop tests: a simulated week is 84 cycles




def test_a_day_decades_ahead_is_answered_and_the_schedule_grows_to_it(cal):
    assert cal.is_session(date(2061, 1, 3))  # a Monday
    assert not cal.is_session(date(2061, 12, 25))  # Christmas, by the exchange's rules
    assert cal.last_known_session >= date(2061, 12, 25)
    # 20 sessions from a Monday in 2061: four weeks, plus a day for Martin Luther King Day (Monday 2061-01-17).
    assert not cal.is_session(date(2061, 1, 17))
    assert cal.expiry_for(date(2061, 1, 3), 20) == date(2061, 2, 1)
    assert cal.sessions_to_expiry(date(2061, 1, 3), date(2061, 2, 1)) == 20


def test_the_year_the_old_schedule_ended_is_an_ordinary_year(cal):
    # The schedule used to end one year after the day it was built: 2027-12-03 for a process started 2026-12-03.
    assert cal.session_phase(utc("2027-12-03T15:00:00Z")) == "open"
    assert cal.session_phase(utc("2027-12-04T15:00:00Z")) == "closed"  # a Saturday
    assert cal.next_session(date(2027, 12, 3)) == date(2027, 12, 6)
    assert cal.sessions_to_expiry(date(2026, 12, 3), date(2027, 12, 31)) > 250


@pytest.mark.parametrize("instant", ["1990-01-02T15:00:00Z", "1994-12-30T15:00:00Z", "2101-01-03T15:00:00Z"])
def test_an_instant_outside_the_range_is_an_unknown_phase_not_an_error(cal, instant):
    now = utc(instant)
    assert not cal.covers(now)
    assert cal.session_phase(now) == "unknown"
    assert not cal.is_open(now)
    assert cal.seconds_to_close(now) is None
    assert not cal.within_local_hours(now, datetime.min.time(), datetime.max.time())


def test_a_day_outside_the_range_is_one_line_naming_the_range(cal):
    with pytest.raises(CalendarRangeError, match=r"^2101-01-03 is outside the exchange calendar's range "
                                                 r"\(1995-01-01 to 2100-12-31\)$"):
        cal.is_session(date(2101, 1, 3))
    with pytest.raises(ValueError, match="outside the exchange calendar's range"):
        cal.expiry_for(date(2100, 12, 1), 60)  # its expiry would lie past the last day
    with pytest.raises(CalendarRangeError):
        cal.previous_session(date(1995, 1, 3))  # the first session has none before it
    assert cal.expiry_for(date(2100, 12, 1), 5) <= CALENDAR_LIMIT


def every_two_hours(config: Config | None = None) -> Config:
    """Every task once per two replayed hours (every phase of a day still falls on a cycle)."""
    return dataclasses.replace(config or Config(), intervals=Intervals(
        market_data_seconds=CYCLE, scan_seconds=CYCLE, positions_seconds=CYCLE))


def serving(running: Running) -> tuple[str, int]:
    text = scrape(running.url)
    status, _, _ = http_get(running.url + "/healthz")
    return text, status


@pytest.mark.slow  # a simulated week of cycles: about 10 s on two cores
def test_a_replay_from_2027_12_01_at_3600x_serves_for_a_simulated_week(tmp_path, caplog):
    start = utc("2027-12-01T20:00:00Z")
    service = make_service(tmp_path, start=start, config=every_two_hours())
    service.clock = VirtualClock(start, speed=3600.0)
    phases: set[str] = set()
    with caplog.at_level(logging.WARNING), Running(service) as running:
        while running.clock.now() < start + timedelta(days=7):
            running.step()
            text, status = serving(running)
            assert status in (200, 503)
            phases |= {phase for phase in ("closed", "pre", "open", "after", "unknown")
                       if sample_value(text, "spreadwatch_market_session", {"session": phase}) == 1}
        assert running.thread.is_alive()
        assert running.clock.now() >= utc("2027-12-08T20:00:00Z")
        # Every task keeps succeeding past the day the old schedule ended.
        for task in ("market", "positions", "scan"):
            assert service.snapshot.tasks[task].last_success >= utc("2027-12-08T18:00:00Z"), task
    assert phases == {"closed", "pre", "open", "after"}  # a real week: weekend closed, sessions open, never unknown
    assert "outside the exchange calendar" not in caplog.text


def test_a_replay_from_1990_serves_with_an_unknown_phase_said_once(tmp_path, caplog):
    start = utc("1990-01-02T15:00:00Z")
    service = make_service(tmp_path, start=start, config=every_two_hours())
    with caplog.at_level(logging.INFO), Running(service) as running:
        running.step(12)
        text, status = serving(running)
        assert status in (200, 503)
        assert sample_value(text, "spreadwatch_market_session", {"session": "unknown"}) == 1
        assert sample_value(text, "spreadwatch_market_session", {"session": "open"}) == 0
        assert sample_value(text, "spreadwatch_market_open", {}) == 0
        assert sample_value(text, "spreadwatch_entry_window_open", {}) == 0
        assert sample(service, "spreadwatch_regime_level") is None  # no session, no regime
        for task in ("market", "positions", "scan"):
            assert service.snapshot.tasks[task].ok, (task, service.snapshot.tasks[task].error)
        assert running.thread.is_alive()
    said = [r for r in caplog.records if "outside the exchange calendar's range" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.WARNING
    assert "1995-01-01 to 2100-12-31" in said[0].getMessage()
