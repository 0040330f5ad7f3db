"""Times for people: every human text (console, event log, CLI, notifications, landing page) writes a time in the
one display zone (`display_timezone`) with the zone's abbreviation, `07:30 PT`, so a trader never converts.
Machine formats (JSON, metrics) stay UTC and do not use this module. Pure: values in, text out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

# Daylight and standard abbreviations of a North American zone (PST/PDT, EST/EDT, AKST/AKDT...) share one
# generic form (PT, ET, AKT): a trader says "10:30 ET" all year.
_NORTH_AMERICAN = re.compile(r"^(A?[A-Z])[SD]T$")


def zone_abbreviation(value: datetime) -> str:
    """`PT`, `ET`... for North American zones (the generic form, the same in summer and winter), else the zone's
    own abbreviation (`UTC`, `CET`), else its UTC offset."""
    name = value.tzname() or ""
    key = getattr(value.tzinfo, "key", "")
    match = _NORTH_AMERICAN.match(name)
    if match and key.startswith("America/"):
        return match[1] + "T"
    if name and name[0] not in "+-":
        return name
    offset = value.strftime("%z")
    return f"UTC{offset[:3]}:{offset[3:]}" if offset else "UTC"


def local_time(value: datetime, zone: tzinfo, fmt: str = "%H:%M") -> str:
    """`value` in `zone` as `fmt` followed by the zone's abbreviation: `07:30 PT`, `2026-11-24 07:30 PT`."""
    local = value.astimezone(zone)
    return f"{local.strftime(fmt)} {zone_abbreviation(local)}"


def duration_text(seconds: float) -> str:
    """`45 s`, `17 min`, `17.6 h`: how ages are shown to people (status, the event log, the landing page)."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass(frozen=True)
class ZoneOffsets:
    """What a notification needs to write an alert's instants in the display zone itself (Alertmanager's templates
    cannot convert zones): the zone's UTC offset and abbreviation at `now`, and, when the offset last changed within
    the past year (a daylight-saving change), that instant and the offset and abbreviation before it."""

    offset_seconds: int
    abbreviation: str
    changed: datetime | None
    previous_offset_seconds: int
    previous_abbreviation: str


def _offset(value: datetime, zone: tzinfo) -> int:
    delta = value.astimezone(zone).utcoffset()
    return int(delta.total_seconds()) if delta is not None else 0


def zone_offsets(now: datetime, zone: tzinfo) -> ZoneOffsets:
    """The display zone's offsets around `now` (an aware instant). The last change is found day by day over the past
    year (offsets change at most a few times a year), then to the second."""
    current = _offset(now, zone)
    local = now.astimezone(zone)
    later = now
    for _ in range(366):
        earlier = later - timedelta(days=1)
        if _offset(earlier, zone) != current:
            while later - earlier > timedelta(seconds=1):  # the offset is `current` at `later`, not at `earlier`
                middle = earlier + (later - earlier) / 2
                earlier, later = (earlier, middle) if _offset(middle, zone) == current else (middle, later)
            changed = later.astimezone(UTC).replace(microsecond=0)
            before = earlier.astimezone(zone)
            return ZoneOffsets(current, zone_abbreviation(local), changed, _offset(earlier, zone),
                               zone_abbreviation(before))
        later = earlier
    return ZoneOffsets(current, zone_abbreviation(local), None, current, zone_abbreviation(local))
