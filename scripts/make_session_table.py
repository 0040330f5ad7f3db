"""Write the bundled XNYS session table (exporter/spreadwatch/data/xnys_sessions.json) from exchange_calendars.

The table lets the CLI answer "which session", "when does it close" and "what is the N-DTE expiry" without
importing exchange_calendars (and with it pandas and numpy), which costs about half a second per command. It holds
what differs from a plain weekday 09:30-16:00 ET session over the calendar's whole range: the weekdays without a
session (holidays, one-off closures) and the early closes. tests/test_session_table.py checks it against
exchange_calendars day by day, so a library upgrade that changes a session fails the suite until this is re-run.

Usage: python scripts/make_session_table.py
"""

from __future__ import annotations

import json
from collections import defaultdict
from importlib.metadata import version
from pathlib import Path

import exchange_calendars
import pandas as pd

from spreadwatch.edges.calendar import CALENDAR_LIMIT, CALENDAR_START, MARGIN, TABLE_CLOSE, TABLE_OPEN

OUT = Path(__file__).resolve().parents[1] / "exporter" / "spreadwatch" / "data" / "xnys_sessions.json"


def main() -> None:
    end = CALENDAR_LIMIT + MARGIN
    cal = exchange_calendars.get_calendar("XNYS", start=CALENDAR_START.isoformat(), end=end.isoformat())
    schedule = cal.schedule
    sessions = {ts.date() for ts in schedule.index}
    weekdays = pd.bdate_range(CALENDAR_START.isoformat(), end.isoformat())
    holidays = sorted(d.date().isoformat() for d in weekdays if d.date() not in sessions)
    opens = schedule["open"].dt.tz_convert("America/New_York")
    closes = schedule["close"].dt.tz_convert("America/New_York")
    odd_opens = [d for d, t in zip(schedule.index, opens, strict=True) if t.strftime("%H:%M") != TABLE_OPEN]
    if odd_opens:
        raise SystemExit(f"sessions opening other than {TABLE_OPEN} ET: {odd_opens[:5]}; the table cannot hold them")
    early: dict[str, list[str]] = defaultdict(list)
    for day, close in zip(schedule.index, closes, strict=True):
        if close.strftime("%H:%M") != TABLE_CLOSE:
            early[close.strftime("%H:%M")].append(day.date().isoformat())
    table = {
        "exchange": "XNYS", "source": f"exchange_calendars {version('exchange_calendars')}",
        "first_day": CALENDAR_START.isoformat(), "last_day": end.isoformat(),
        "timezone": "America/New_York", "open": TABLE_OPEN, "close": TABLE_CLOSE,
        "weekdays_without_session": holidays, "early_closes": dict(early),
    }
    OUT.write_text(json.dumps(table, indent=0) + "\n")
    print(f"{OUT}: {len(sessions):,} sessions {min(sessions)} .. {max(sessions)}, {len(holidays)} weekday closures, "
          f"{sum(map(len, early.values()))} early closes ({table['source']}); through {end}")


if __name__ == "__main__":
    main()
