"""Clocks: --at parsing, the replay clock's speed, the fixed clock, and the commands' "now" (SPREADWATCH_NOW)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from spreadwatch.app.clock import ReplayClock, WallClock, command_now, parse_instant
from spreadwatch.errors import InputError


def test_parse_instant_accepts_z_and_offsets_and_returns_utc():
    assert parse_instant("2026-11-27T15:10:00Z") == datetime(2026, 11, 27, 15, 10, tzinfo=UTC)
    assert parse_instant("2026-11-27T07:10:00-08:00") == datetime(2026, 11, 27, 15, 10, tzinfo=UTC)
    assert parse_instant("2026-11-27T15:10:00Z").tzinfo == UTC


@pytest.mark.parametrize("text,message", [("2026-11-27T15:10:00", "no time zone"), ("2026-11-27", "no time zone"),
                                          ("next friday", "not an ISO 8601 instant")])
def test_parse_instant_rejects_naive_or_garbage(text, message):
    with pytest.raises(InputError, match=message):
        parse_instant(text)


def test_replay_clock_runs_at_speed_from_its_start():
    wall = [100.0]
    start = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)
    clock = ReplayClock(start, speed=60, wall=lambda: wall[0])
    assert clock.now() == start
    wall[0] += 2.5
    assert clock.now() == start + timedelta(seconds=150)
    assert clock.label == "replay"


def test_replay_clock_waits_wall_time_divided_by_speed():
    clock = ReplayClock(datetime(2026, 11, 24, tzinfo=UTC), speed=1000)
    stop = threading.Event()
    assert clock.wait(60, stop) is False  # 60 replay seconds = 0.06 wall seconds
    stop.set()
    assert clock.wait(60, stop) is True


def test_a_wait_ends_early_once_its_wake_check_says_so():
    stop = threading.Event()
    answers = iter([False, False, True])
    calls = []

    def wake() -> bool:
        calls.append(1)
        return next(answers)

    clock = ReplayClock(datetime(2026, 11, 24, tzinfo=UTC), speed=1000)
    assert clock.wait(3600, stop, wake, every=1.0) is False  # an hour of replay: ended at the third look
    assert len(calls) == 3
    assert WallClock().wait(3600, stop, lambda: True, every=0.001) is False
    stop.set()
    assert clock.wait(3600, stop, lambda: False) is True


def test_replay_clock_rejects_naive_start_and_bad_speed():
    with pytest.raises(ValueError):
        ReplayClock(datetime(2026, 11, 24), speed=1)
    with pytest.raises(ValueError):
        ReplayClock(datetime(2026, 11, 24, tzinfo=UTC), speed=0)


def test_wall_clock_is_aware_utc():
    now = WallClock().now()
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)
    assert WallClock.label == "live"


def test_command_now_is_the_pinned_instant_when_spreadwatch_now_is_set():
    assert command_now({"SPREADWATCH_NOW": "2027-01-04T07:30:00-08:00"}) == datetime(2027, 1, 4, 15, 30, tzinfo=UTC)
    assert command_now({"SPREADWATCH_NOW": "2030-06-03T13:45:59.75Z"}) == datetime(2030, 6, 3, 13, 45, 59, tzinfo=UTC)


def test_command_now_is_the_wall_clock_without_it():
    for environ in ({}, {"SPREADWATCH_NOW": ""}):
        before = datetime.now(UTC).replace(microsecond=0)
        now = command_now(environ)
        assert before <= now <= datetime.now(UTC) and now.microsecond == 0 and now.tzinfo == UTC


@pytest.mark.parametrize("text,message", [("2026-11-24T15:30:00", "no time zone"), ("today", "not an ISO 8601")])
def test_a_malformed_spreadwatch_now_is_named(text, message):
    with pytest.raises(InputError, match=f"^SPREADWATCH_NOW: .*{message}"):
        command_now({"SPREADWATCH_NOW": text})
