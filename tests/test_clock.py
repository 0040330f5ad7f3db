"""Clocks: --at parsing, the replay clock's speed, the fixed clock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from spreadwatch.app.clock import ReplayClock, WallClock, parse_instant
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


def test_replay_clock_rejects_naive_start_and_bad_speed():
    with pytest.raises(ValueError):
        ReplayClock(datetime(2026, 11, 24), speed=1)
    with pytest.raises(ValueError):
        ReplayClock(datetime(2026, 11, 24, tzinfo=UTC), speed=0)


def test_wall_clock_is_aware_utc():
    now = WallClock().now()
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)
    assert WallClock.label == "live"
