"""The event calendar file (`date,kind,name` a line; # comments) and the calendar the settings give: the file
(events.file, else the bundled data/events.csv), events.extra, and the derived monthly option expiries.

A missing or malformed file fails with one line naming the file (and the line); nothing is guessed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from spreadwatch.domain.events import EVENT_KINDS, KIND_LABELS, Event, EventCalendar
from spreadwatch.errors import DataError

if TYPE_CHECKING:
    from spreadwatch.config import Config
    from spreadwatch.edges.calendar import MarketCalendar

BUNDLED = "events.csv"
FILE_KINDS = tuple(k for k in EVENT_KINDS if k != "opex")  # opex is derived, never listed


def event_file_path(config: Config) -> Path:
    from spreadwatch.config import bundled_path

    return Path(config.events.file) if config.events.file else bundled_path(BUNDLED)


def read_event_file(path: Path) -> list[Event]:
    from spreadwatch.config import read_text_file

    text = read_text_file(path, "event calendar", DataError)
    events = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        events.append(_parse_line(path, number, line))
    return events


def _parse_line(path: Path, number: int, line: str) -> Event:
    parts = [p.strip() for p in line.split(",")]
    where = f"{path}: line {number}"
    if len(parts) not in (2, 3):
        raise DataError(f"{where}: expected date,kind,name, got {line[:60]!r}")
    try:
        day = date.fromisoformat(parts[0])
    except ValueError:
        raise DataError(f"{where}: bad date {parts[0][:30]!r} (expected YYYY-MM-DD)") from None
    kind = parts[1]
    if kind not in FILE_KINDS:
        extra = " (opex is derived, not listed)" if kind == "opex" else ""
        raise DataError(f"{where}: unknown event kind {kind[:30]!r} (known: {', '.join(FILE_KINDS)}){extra}")
    name = parts[2] if len(parts) == 3 and parts[2] else KIND_LABELS[kind]
    if any(not ch.isprintable() for ch in name) or len(name) > 40:
        raise DataError(f"{where}: bad name {name[:40]!r} (printable, at most 40 characters)")
    return Event(day, kind, name)


def load_event_calendar(config: Config, calendar: MarketCalendar) -> EventCalendar:
    """The file's events and events.extra; the monthly expiries are derived from the exchange's sessions for any
    day asked about."""
    events = read_event_file(event_file_path(config))
    events += [Event(date.fromisoformat(text), kind, KIND_LABELS[kind])
               for kind, days in config.events.extra.items() for text in days]
    return EventCalendar.of(events, config.events.policy, _sessions_or_none(calendar))


def _sessions_or_none(calendar: MarketCalendar) -> Callable[[date], bool]:
    """The exchange's sessions; a day outside its range is no session (so no expiry is derived there)."""

    def is_session(day: date) -> bool:
        try:
            return calendar.is_session(day)
        except ValueError:
            return False

    return is_session
