"""Times for people: every human text (console, event log, CLI, notifications, landing page) writes a time in the
one display zone (`display_timezone`) with the zone's abbreviation, `07:30 PT`, so a trader never converts.
Machine formats (JSON, metrics) stay UTC and do not use this module. Pure: values in, text out.
"""

from __future__ import annotations

import re
from datetime import datetime, tzinfo

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
