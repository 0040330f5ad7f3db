"""The market context's pure rules: staleness, IV rank/percentile, flow, trend `auto`, cumulative volume (a
session's running volume totals, `SessionVolume`; the prior sessions' mean by time of day, `PriorVolumes`), and what
market data cannot be true.

Values in, values out: no provider, clock or logging. `current_until` is the one staleness rule every part applies
(the watcher to each value, the snapshot, the event log and the collector through the facts it carries).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from spreadwatch.domain import values
from spreadwatch.domain.display import duration_text

if TYPE_CHECKING:
    from spreadwatch.edges.providers import Bar

# Trend `auto`: last close vs its 20-session simple moving average, with a +-1 % dead band.
TREND_SMA_SESSIONS = 20
TREND_DEAD_BAND = 0.01


# ------------------------------------------------------------------------------------------------------------
# Pure rules


def unknown_reason(*, session: str, up: bool, age_seconds: float | None, current: bool,
                   since_open: float | None) -> str:
    """Why a market value is unknown, in a few words for people (`status`, the landing page): its source is
    down, has given no value yet, has no bar yet since the open, or its last value is too old; a value whose
    source is current but that is still unknown needs more history than the source has given."""
    if not up:
        return "source down" if age_seconds is None else f"source down, last value {duration_text(age_seconds)} ago"
    if age_seconds is None:
        return "no value yet" if session == "open" else "before the open, no value yet"
    if current:
        return "not enough history yet"
    if session == "open" and since_open is not None and age_seconds >= since_open:
        return "no bar yet since the open"
    return f"stale, last value {duration_text(age_seconds)} ago"


def _finite(value: float | None) -> bool:
    return value is not None and isinstance(value, int | float) and math.isfinite(value)


def impossible(close: float | None, *, open_: float | None = None, high: float | None = None,
               low: float | None = None, level: bool = False) -> str | None:
    """Why a bar cannot be true market data, or None when it can: a price (a volatility index level with `level`)
    that is not > 0, infinite or beyond its bound (domain/values.py: price, level), or a high below the low. A NaN
    or missing field is "no value", judged elsewhere, not here."""
    bound = values.MAX_LEVEL if level else values.MAX_PRICE
    if (type(close) is float and 0 < close <= bound and type(high) is float and type(low) is float
            and 0 < low <= high <= bound and (open_ is None or type(open_) is float and 0 < open_ <= bound)):
        return None  # the common bar, decided at once (every bar of every session the volume ratio reads asks)
    check = values.level if level else values.price
    for name, value in (("close", close), ("open", open_), ("high", high), ("low", low)):
        if value is None or isinstance(value, float) and (math.isnan(value) or 0 < value <= bound):
            continue  # no value, or one `check` accepts
        try:
            check(value)
        except values.ValueRefused as exc:
            return f"{name} {exc}"
    if _finite(high) and _finite(low) and high < low:  # type: ignore[operator]
        return f"high {high:g} below low {low:g}"
    return None


def current_until(stamp: datetime | None, observed_at: datetime, stale_after: timedelta, *, session_open: bool,
                  last_close: datetime) -> datetime | None:
    """The staleness rule (docs/market.md), in one place: until when the newest valid value, stamped `stamp` and seen
    by the loop at `observed_at`, is knowledge; None when it is not current (or there is none).

    At `observed_at` a value is current when, during the regular session (`session_open`), it is at most
    `stale_after` old; outside the session when it is the last session's close (stamped no earlier than
    `stale_after` before `last_close`), which stays valid until the next open. A value the loop saw current stays
    knowledge for one more staleness bound: a look the loop cannot repeat (a fetch that hangs) ages out with it."""
    if stamp is None or stamp > observed_at:
        return None
    # In the session: at most stale_after old. Outside it: the last session's close (or later).
    current = observed_at - stamp <= stale_after if session_open else stamp >= last_close - stale_after
    return looked_until(observed_at, stale_after) if current else None


def looked_until(observed_at: datetime, stale_after: timedelta) -> datetime:
    """What the loop saw at `observed_at` (a context, a regime reading) is knowledge for one staleness bound: a
    context it could not refresh since is no longer believed."""
    return observed_at + stale_after


def known_at(until: datetime | None, now: datetime) -> bool:
    """Whether a fact whose knowledge ends at `until` (`current_until`) still holds at `now`."""
    return until is not None and now <= until


def iv_rank_percentile(current: float | None, closes: Sequence[float], window: int = 252
                       ) -> tuple[float | None, float | None]:
    """IV rank = (current - low) / (high - low) over the last `window` closes, clipped to [0, 1]; IV percentile =
    share of those closes strictly below current. Unknown (None, None) without a current value or a full window."""
    return IvWindow(closes, window).rank_percentile(current)


class IvWindow:
    """The last `window` finite closes of a vol index, sorted once, so the rank and percentile of each new level are
    a bisection (the loop asks every cycle, the closes change once a session)."""

    __slots__ = ("_sorted", "_full")

    def __init__(self, closes: Sequence[float], window: int = 252) -> None:
        values = [c for c in closes if _finite(c)][-window:]
        self._full = len(values) >= window
        self._sorted = sorted(values)

    def rank_percentile(self, current: float | None) -> tuple[float | None, float | None]:
        """`iv_rank_percentile` of `current` over these closes."""
        if not _finite(current) or not self._full:
            return None, None
        assert current is not None
        low, high = self._sorted[0], self._sorted[-1]
        rank = None if high == low else min(1.0, max(0.0, (current - low) / (high - low)))
        # The count of closes strictly below `current`: where it would go in front of its equals.
        percentile = bisect.bisect_left(self._sorted, current) / len(self._sorted)
        return rank, percentile


def flow_of(change: float | None, dead_band: float) -> str | None:
    """up | down | flat from a relative move and a dead band; None when the move is unknown."""
    if not _finite(change):
        return None
    assert change is not None
    if change > dead_band:
        return "up"
    if change < -dead_band:
        return "down"
    return "flat"


def auto_trend(closes: Sequence[float]) -> str | None:
    """Trend `auto`: up when the last close is more than 1 % above the mean of the last 20 closes (itself
    included), down when more than 1 % below, else sideways; None with fewer than 20 closes."""
    values = [c for c in closes if _finite(c)]
    if len(values) < TREND_SMA_SESSIONS:
        return None
    sma = sum(values[-TREND_SMA_SESSIONS:]) / TREND_SMA_SESSIONS
    return flow_of(values[-1] / sma - 1.0, TREND_DEAD_BAND).replace("flat", "sideways")  # type: ignore[union-attr]


def cumulative_volume(bars: Sequence[Bar], until: datetime) -> float | None:
    volumes = [b.volume for b in bars if b.time <= until and _finite(b.volume)]
    return float(sum(volumes)) if volumes else None  # type: ignore[arg-type]


class SessionVolume:
    """One session's bars of a volume symbol as running totals: each bar's time and the cumulative finite volume up
    to it (None before the first finite one), so the cumulative volume at any instant is one bisection instead of a
    walk over the bars. Kept up to date by `extend` with the bars that came since. The totals add the volumes in the
    same order as `cumulative_volume`, so they are the same numbers. Bars must come oldest first."""

    __slots__ = ("times", "totals", "_stamps", "_sum", "_counted", "_last")

    def __init__(self, bars: Sequence[Bar] = ()) -> None:
        self.times: list[datetime] = []
        self.totals: list[float | None] = []
        # The times as POSIX seconds: bisecting floats is many times cheaper than comparing aware datetimes, and
        # distinct instants (a microsecond apart or more) stay distinct and in order.
        self._stamps: list[float] = []
        self._sum: float = 0
        self._counted = False  # a finite volume has been added
        self._last: Bar | None = None
        self.extend(bars)

    def __len__(self) -> int:
        return len(self.times)

    def extend(self, bars: Sequence[Bar]) -> None:
        """Add bars newer than those already kept."""
        for bar in bars:
            if _finite(bar.volume):
                self._sum = self._sum + bar.volume  # type: ignore[operator]
                self._counted = True
            self.times.append(bar.time)
            self._stamps.append(bar.time.timestamp())
            self.totals.append(float(self._sum) if self._counted else None)
        if bars:
            self._last = bars[-1]

    def continued_by(self, bars: Sequence[Bar]) -> bool:
        """Whether `bars` are the kept bars (the newest of them unchanged: a provider may revise a bar still
        filling) followed by newer ones."""
        n = len(self.times)
        return len(bars) >= n and (n == 0 or bars[n - 1] == self._last)

    def at(self, until: datetime) -> tuple[datetime, float | None] | None:
        """The newest bar at or before `until`: its time and the cumulative volume up to it; None without a bar."""
        i = bisect.bisect_right(self._stamps, until.timestamp())
        return (self.times[i - 1], self.totals[i - 1]) if i else None


_MICROSECOND = timedelta(microseconds=1)


class PriorVolumes:
    """The prior sessions' side of the volume ratio, worked out once for a session day: for any time after the open
    (`elapsed`), how many of the prior sessions have a bar at that time of day and the mean of their cumulative
    volumes there, so a cycle costs one bisection instead of a walk over every prior session.

    A prior session counts at `elapsed` when its open + `elapsed` is not after its close, its newest bar at or before
    that instant is at most `tolerance` older and has a cumulative volume. What it counts with changes only at its
    own bar times, `tolerance` after a bar, and after its close, so the answers are kept per interval between those
    instants (as whole microseconds, exact), each the mean of the sessions' totals added in the sessions' order: the
    same number as the walk. `sessions`: each prior session's open, close and running totals, oldest first."""

    __slots__ = ("_starts", "_counts", "_means")

    def __init__(self, sessions: Sequence[tuple[datetime, datetime, SessionVolume]], tolerance: timedelta) -> None:
        tol = tolerance // _MICROSECOND
        offsets = [[(t - open_) // _MICROSECOND for t in profile.times] for open_, _, profile in sessions]
        ends = [(close - open_) // _MICROSECOND for open_, close, _ in sessions]
        changes: dict[int, list[int]] = {}  # microseconds after the open -> the sessions that may change there
        for s, offs in enumerate(offsets):
            for j, o in enumerate(offs):
                changes.setdefault(o, []).append(s)
                if j + 1 == len(offs) or offs[j + 1] > o + tol + 1:
                    changes.setdefault(o + tol + 1, []).append(s)
            changes.setdefault(ends[s] + 1, []).append(s)
        self._starts: list[int] = sorted(changes)
        self._counts: list[int] = []
        self._means: list[float | None] = []
        counted: list[float | None] = [None] * len(sessions)
        for start in self._starts:
            for s in changes[start]:
                counted[s] = self._counted(offsets[s], ends[s], sessions[s][2].totals, start, tol)
            history = [v for v in counted if v is not None]
            self._counts.append(len(history))
            self._means.append(sum(history) / len(history) if history else None)

    @staticmethod
    def _counted(offsets: list[int], end: int, totals: list[float | None], elapsed: int, tol: int) -> float | None:
        i = bisect.bisect_right(offsets, elapsed)
        if not i or elapsed > end or elapsed - offsets[i - 1] > tol:
            return None
        return totals[i - 1]

    def at(self, elapsed: timedelta) -> tuple[int, float | None]:
        """How many prior sessions count `elapsed` after the open, and the mean of their cumulative volumes there
        (None when none does)."""
        i = bisect.bisect_right(self._starts, elapsed // _MICROSECOND)
        return (self._counts[i - 1], self._means[i - 1]) if i else (0, None)
