"""Scheduled market events (FOMC decisions, CPI, the jobs report, monthly option expiry, early closes) and the
rule that holds new entries back around them.

Pure: takes events, policies and dates, returns values; reading the calendar file is edges/eventfile.py, the
exchange's sessions come in as a callable. A kind's policy is one of POLICIES:
  hold_day      no new entries on the event's day;
  hold_through  no new entries whose holding period (entry session through expiry) includes the event's day;
  mark          shown (status, scan, metrics, the brief), never held back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta

EVENT_KINDS: tuple[str, ...] = ("fomc", "cpi", "jobs", "opex", "early_close")
# How an event is named to people ("held back: FOMC 2026-12-09").
KIND_LABELS: dict[str, str] = {"fomc": "FOMC", "cpi": "CPI", "jobs": "Jobs report", "opex": "Monthly opex",
                               "early_close": "Early close"}
POLICIES: tuple[str, ...] = ("hold_day", "hold_through", "mark")
HOLDING: frozenset[str] = frozenset({"hold_day", "hold_through"})
# Traders who sell short-dated premium commonly stand aside on the first three; expiry and early closes are marked.
DEFAULT_POLICIES: dict[str, str] = {"fomc": "hold_day", "cpi": "hold_day", "jobs": "hold_day", "opex": "mark",
                                    "early_close": "mark"}


@dataclass(frozen=True, order=True)
class Event:
    day: date
    kind: str
    name: str = ""

    @property
    def label(self) -> str:
        """`FOMC 2026-12-09`."""
        return f"{self.name or KIND_LABELS.get(self.kind, self.kind)} {self.day.isoformat()}"


def monthly_expiries(first: date, last: date, is_session: Callable[[date], bool]) -> list[Event]:
    """Monthly option expiry from `first` to `last`: the third Friday of each month, or the last session before it
    when that Friday is not a session (Good Friday)."""
    out = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        day = date(year, month, 1)
        day += timedelta(days=(4 - day.weekday()) % 7 + 14)  # the third Friday
        for _ in range(7):  # at most a holiday week back
            if is_session(day):
                break
            day -= timedelta(days=1)
        if first <= day <= last:
            out.append(Event(day, "opex", KIND_LABELS["opex"]))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


@dataclass(frozen=True)
class EventCalendar:
    """The known events (sorted, one per day and kind) with each kind's policy. With `is_session` (the exchange's
    sessions), the monthly option expiries of any range asked about are derived as they are asked for."""

    events: tuple[Event, ...] = ()
    policies: dict[str, str] = field(default_factory=dict)
    is_session: Callable[[date], bool] | None = field(default=None, compare=False)

    @classmethod
    def of(cls, events: Iterable[Event], policies: dict[str, str],
           is_session: Callable[[date], bool] | None = None) -> EventCalendar:
        unique = {(e.day, e.kind): e for e in sorted(events)}
        return cls(tuple(sorted(unique.values())), {**DEFAULT_POLICIES, **policies}, is_session)

    def policy(self, kind: str) -> str:
        return self.policies.get(kind, "mark")

    def holds(self, kind: str) -> bool:
        return self.policy(kind) in HOLDING

    def between(self, first: date, last: date) -> tuple[Event, ...]:
        """Events from `first` to `last`, both included, in date order (derived expiries among them)."""
        listed = [e for e in self.events if first <= e.day <= last]
        if self.is_session is not None and first <= last:
            listed += [e for e in monthly_expiries(first, last, self.is_session)
                       if not any(x.day == e.day and x.kind == e.kind for x in listed)]
        return tuple(sorted(listed))

    def on(self, day: date) -> tuple[Event, ...]:
        return self.between(day, day)

    def next_of(self, kind: str, day: date) -> Event | None:
        """The first event of `kind` on or after `day` (an expiry: within the coming 40 days, always one)."""
        if kind == "opex" and self.is_session is not None:
            return next(iter(e for e in self.between(day, day + timedelta(days=40)) if e.kind == kind), None)
        return next((e for e in self.events if e.kind == kind and e.day >= day), None)

    def held_back_by(self, entry: date, expiry: date | None) -> Event | None:
        """The first event that holds back an entry on session `entry` expiring on `expiry` (None: not held)."""
        last = expiry if expiry is not None and expiry > entry else entry
        for event in self.between(entry, last):
            policy = self.policy(event.kind)
            if policy == "hold_through" or (policy == "hold_day" and event.day == entry):
                return event
        return None


def week_of(day: date) -> tuple[date, date]:
    """Monday and Friday of `day`'s week."""
    monday = day - timedelta(days=day.weekday())
    return monday, monday + timedelta(days=4)
