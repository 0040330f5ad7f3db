"""The morning brief and the end-of-day summary: when each is due, and its text, built from a snapshot.

Alertmanager sends alerts, not digests, so a digest is an alert that is up for `digest.window_minutes` from its
time (SpreadwatchMorningBrief, SpreadwatchDaySummary), with the text in the labels of an info metric the rule's
annotations read. The text is written once, when the window opens, and held for the rest of it: what reaches Slack
and email is the state at the digest's time. Only on session days (the exchange calendar): a holiday or a weekend
has no open and no close, so nothing is due. No I/O; the calendar comes in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from spreadwatch.domain.display import local_time, zone_abbreviation
from spreadwatch.domain.positions import money

if TYPE_CHECKING:
    from spreadwatch.app.snapshot import Snapshot
    from spreadwatch.config import Config

DIGEST_KINDS: tuple[str, ...] = ("morning_brief", "day_summary")


@dataclass(frozen=True)
class Digest:
    kind: str  # morning_brief | day_summary
    day: date  # the session it is about
    title: str
    text: str


def windows(config: Config, calendar: Any, day: date) -> dict[str, tuple[datetime, datetime]]:
    """The enabled digests of `day` and when each is up: the brief from `brief_minutes_before_open` before the open,
    the summary from `summary_minutes_after_close` after the close (an early close honoured), each for
    `window_minutes`. Empty on a day without a session."""
    d = config.digest
    try:
        if not calendar.is_session(day):
            return {}
        open_, close = calendar.open_close(day)
    except ValueError:  # outside the exchange calendar's range
        return {}
    span = timedelta(minutes=d.window_minutes)
    out = {}
    if d.morning_brief:
        start = open_ - timedelta(minutes=d.brief_minutes_before_open)
        out["morning_brief"] = (start, start + span)
    if d.day_summary:
        start = close + timedelta(minutes=d.summary_minutes_after_close)
        out["day_summary"] = (start, start + span)
    return out


class DigestTracker:
    """Which digests are up at an instant; each one's text is built once, when its window opens."""

    def __init__(self, config: Config, calendar: Any) -> None:
        self.config = config
        self.calendar = calendar
        self._written: dict[tuple[str, date], Digest] = {}

        self.next_change: datetime | None = None  # the next window start or end after the last observe
        self._looked_on: date | None = None

    def observe(self, snapshot: Snapshot, now: datetime) -> tuple[Digest, ...]:
        """The digests up at `now` (the text written at the first look within each window)."""
        try:
            day = self.calendar.et_date(now)
        except ValueError:
            self.next_change = None
            return ()
        if self._looked_on != day or self.next_change is None or now >= self.next_change:
            self.next_change, self._looked_on = self._next_change(day, now), day
        up = []
        for kind, (start, end) in windows(self.config, self.calendar, day).items():
            if not start <= now < end:
                continue
            key = (kind, day)
            if key not in self._written:
                self._written = {k: v for k, v in self._written.items() if k[1] >= day}  # keep today's only
                self._written[key] = build(kind, snapshot, self.calendar, day)
            up.append(self._written[key])
        return tuple(up)

    def _next_change(self, day: date, now: datetime) -> datetime | None:
        """The next instant after `now` when a digest goes up or down (within the coming week): the loop wakes then,
        so a digest is up from its time whatever the task intervals."""
        times = [t for offset in range(8)
                 for span in windows(self.config, self.calendar, day + timedelta(days=offset)).values()
                 for t in span if t > now]
        return min(times, default=None)


# ---------------------------------------------------------------------------------------------------- text


def build(kind: str, snapshot: Snapshot, calendar: Any, day: date) -> Digest:
    tz = ZoneInfo(snapshot.config.display_timezone)
    when = f"{day:%a %Y-%m-%d}"
    if kind == "morning_brief":
        title = f"[BRIEF] Morning brief for {when}"
        lines = [*_market_lines(snapshot), *_event_lines(snapshot), *_session_lines(snapshot, calendar, day, tz),
                 *_position_lines(snapshot, tz), *_risk_lines(snapshot)]
    else:
        title = f"[SUMMARY] End-of-day summary for {when}"
        lines = [*_market_lines(snapshot), *_realized_lines(snapshot), *_position_lines(snapshot, tz),
                 *_update_lines(snapshot, calendar, day, tz), *_risk_lines(snapshot), *_event_lines(snapshot)]
    return Digest(kind, day, title, "\n".join(lines))


def _market_lines(s: Snapshot) -> list[str]:
    facts = s.regime_facts
    vix = None if facts is None or s.time is None else facts.vix_at(s.time)
    regime = None if facts is None or s.time is None else facts.regime_at(s.time)
    return [f"Regime: {regime or 'unknown'}, VIX {'unknown' if vix is None else f'{vix:.2f}'}"]


def _event_lines(s: Snapshot) -> list[str]:
    from spreadwatch.app.status import event_list_text

    facts = s.event_facts
    if facts is None or s.events is None:
        return ["Events: no event calendar"]
    return [f"Events today: {event_list_text(s.events, facts.today)}",
            f"Events later this week: {event_list_text(s.events, facts.rest_of_week)}"]


def _session_lines(s: Snapshot, calendar: Any, day: date, tz: ZoneInfo) -> list[str]:
    hours = s.config.hours
    open_, close = calendar.open_close(day)
    start = max(open_.astimezone(tz).time(), hours.entry_start)
    end = min(close.astimezone(tz).time(), hours.entry_end)
    zone = zone_abbreviation(open_.astimezone(tz))
    window = (f"{start:%H:%M}-{end:%H:%M} {zone}" if start <= end else "none (the session closes first)")
    return [f"Session: opens {local_time(open_, tz)}, closes {local_time(close, tz)}; "
            f"entry window {window}, each setup within {hours.entry_tolerance_minutes} min of its entry time"]


def _by_expiry(s: Snapshot) -> list[Any]:
    """The open positions' facts, soonest expiry first (then by id): the same order every time."""
    return sorted(s.position_facts, key=lambda f: (f.item.position.expiry, f.item.position.id))


def _position_lines(s: Snapshot, tz: ZoneInfo) -> list[str]:
    facts = _by_expiry(s)
    if not facts:
        return ["Open positions: none"]
    lines = [f"Open positions ({len(facts)}):"]
    for f in facts:
        p = f.item.position
        sessions = f.item.sessions_to_expiry
        left = "sessions to expiry unknown" if sessions is None else (
            "expires today" if sessions == 0 else "expired" if sessions < 0
            else f"{sessions} session{'s' if sessions > 1 else ''} to expiry")
        logged = f"P&L {money(p.pnl)} logged"
        if p.pnl_updated_at is not None:
            logged += f" {local_time(p.pnl_updated_at, tz, '%m-%d %H:%M')}"
        estimated = "" if f.model is None else f", {money(f.model.pnl)} estimated"
        lines.append(f"  {p.id} {p.ticker} {p.spread} {p.band} x{p.contracts}, expiry {p.expiry} ({left}): "
                     f"{logged}{estimated}")
        for d in f.strike_distances:
            moves = "" if d.expected_moves is None else f", {d.expected_moves:.2f} expected moves"
            state = "BREACHED by" if d.breached else "away"
            lines.append(f"    {d.leg.replace('_', ' ')} {d.strike:g}: {abs(d.points):,.1f} pts {state} "
                         f"({abs(d.ratio):.2%}{moves})")
    return lines


def _risk_lines(s: Snapshot) -> list[str]:
    r = s.config.risk
    p = s.portfolio
    if p is None:
        return ["Risk: unknown (the book has not been read)"]
    share = p.open_risk / r.max_total_risk
    return [f"Risk: {money(p.open_risk, sign=False)} of {money(r.max_total_risk, sign=False)} ({share:.0%}); "
            f"{p.open_count} of {r.max_positions} positions"]


def _realized_lines(s: Snapshot) -> list[str]:
    closed = s.closed_today
    total = sum(p.pnl for p in closed)
    return [f"Realized P&L today: {money(total)} ({len(closed)} closed)"]


def _update_lines(s: Snapshot, calendar: Any, day: date, tz: ZoneInfo) -> list[str]:
    """Open positions whose P&L was not logged within `exits.pnl_stale_after_minutes` of the close."""
    close = calendar.open_close(day)[1]
    bound = timedelta(minutes=s.config.exits.pnl_stale_after_minutes)
    stale = [f.item.position for f in _by_expiry(s)
             if f.item.position.pnl_updated_at is None or close - f.item.position.pnl_updated_at > bound]
    if not stale:
        return ["Needs a P&L update: none"]
    parts = []
    for p in stale:
        at = "never logged" if p.pnl_updated_at is None else f"last {local_time(p.pnl_updated_at, tz, '%m-%d %H:%M')}"
        parts.append(f"{p.id} ({at})")
    return [f"Needs a P&L update: {', '.join(parts)} (spreadwatch positions update ID --pnl ...)"]
