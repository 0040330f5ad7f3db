"""Clocks: the one source of "now" for the loop and one-shot commands.

WallClock is live time; ReplayClock runs from a start instant at `speed` replay seconds per wall second. A wait can
be cut short by a `wake` check asked every `every` clock seconds (the loop's look at the position book).
One-shot commands answer for one instant (`--at`) and need no clock. Everything else takes `now` as an argument.
`command_now()` is the instant the position commands stamp: the wall clock, or `SPREADWATCH_NOW` when set (a testing
aid that pins "now").
"""

from __future__ import annotations

import os
import threading
import time as _time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

ENV_NOW = "SPREADWATCH_NOW"
Wake = Callable[[], bool]


def _wait(seconds: float, stop: threading.Event, wake: Wake | None, every: float) -> bool:
    """Wait `seconds` of wall time; True if `stop` was set meanwhile. With `wake`, ask it every `every` wall seconds
    and return False as soon as it answers True."""
    if wake is None:
        return stop.wait(max(0.0, seconds))
    deadline = _time.monotonic() + max(0.0, seconds)
    while True:
        if stop.wait(max(0.0, min(every, deadline - _time.monotonic()))):
            return True
        if wake() or _time.monotonic() >= deadline:
            return False


class WallClock:
    label = "live"

    def now(self) -> datetime:
        return datetime.now(UTC)

    def wait(self, seconds: float, stop: threading.Event, wake: Wake | None = None, every: float = 1.0) -> bool:
        """Wait `seconds` of clock time; True if `stop` was set meanwhile. With `wake`, ask it every `every` clock
        seconds and return (False) early once it answers True."""
        return _wait(seconds, stop, wake, every)


class ReplayClock:
    label = "replay"

    def __init__(self, start: datetime, speed: float = 1.0, wall: Callable[[], float] = _time.monotonic) -> None:
        if start.tzinfo is None:
            raise ValueError("replay start must be timezone-aware")
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.start = start.astimezone(UTC)
        self.speed = speed
        self._wall = wall
        self._wall0 = wall()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(self._wall() - self._wall0) * self.speed)

    def wait(self, seconds: float, stop: threading.Event, wake: Wake | None = None, every: float = 1.0) -> bool:
        return _wait(max(0.0, seconds) / self.speed, stop, wake, every / self.speed)


def parse_instant(text: str) -> datetime:
    """ISO 8601 with a zone (`2026-11-27T15:10:00Z`) for --at, --start, --entry-time; naive input is rejected, not
    guessed."""
    from spreadwatch.domain import values
    from spreadwatch.domain.instants import InstantError
    from spreadwatch.domain.instants import parse_instant as parse
    from spreadwatch.errors import MalformedValue

    try:
        return values.instant(parse(text))
    except values.ValueRefused as exc:
        raise MalformedValue(f"instant {text!r}: {exc}") from None
    except (InstantError, OverflowError) as exc:
        if isinstance(exc, OverflowError):
            raise MalformedValue(f"instant {text!r} is outside the years {values.MIN_YEAR}-{values.MAX_YEAR}") from None
        if exc.naive:
            raise MalformedValue(f"instant {text!r} has no time zone; add Z for UTC (e.g. 2026-11-27T15:10:00Z)") from None
        raise MalformedValue(f"not an ISO 8601 instant: {text!r} (e.g. 2026-11-27T15:10:00Z)") from None


def command_now(environ: Mapping[str, str] = os.environ) -> datetime:
    """"Now" for the commands that stamp or judge against the present (`positions add|update|close|import`): the
    wall clock, or the instant in `SPREADWATCH_NOW` (ISO 8601 with a zone) when it is set and not empty. A testing
    aid: it makes a test independent of the day it runs on. Whole seconds, UTC."""
    from spreadwatch.errors import InputError

    text = environ.get(ENV_NOW, "")
    if not text:
        return datetime.now(UTC).replace(microsecond=0)
    try:
        return parse_instant(text).replace(microsecond=0)
    except InputError as exc:
        raise InputError(f"{ENV_NOW}: {exc}") from None
