"""The market context's pure rules: staleness, IV rank/percentile, flow, trend `auto`, cumulative volume, and what
market data cannot be true.

Values in, values out: no provider, clock or logging. `current_until` is the one staleness rule every part applies
(the watcher to each value, the snapshot, the event log and the collector through the facts it carries).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from spreadwatch.domain import values

if TYPE_CHECKING:
    from spreadwatch.edges.providers import Bar

# Trend `auto`: last close vs its 20-session simple moving average, with a +-1 % dead band.
TREND_SMA_SESSIONS = 20
TREND_DEAD_BAND = 0.01


# ------------------------------------------------------------------------------------------------------------
# Pure rules


def _finite(value: float | None) -> bool:
    return value is not None and isinstance(value, int | float) and math.isfinite(value)


def impossible(close: float | None, *, open_: float | None = None, high: float | None = None,
               low: float | None = None, level: bool = False) -> str | None:
    """Why a bar cannot be true market data, or None when it can: a price (a volatility index level with `level`)
    that is not > 0, infinite or beyond its bound (domain/values.py: price, level), or a high below the low. A NaN
    or missing field is "no value", judged elsewhere, not here."""
    check = values.level if level else values.price
    for name, value in (("close", close), ("open", open_), ("high", high), ("low", low)):
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
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
    values = [c for c in closes if _finite(c)][-window:]
    if not _finite(current) or len(values) < window:
        return None, None
    assert current is not None
    low, high = min(values), max(values)
    rank = None if high == low else min(1.0, max(0.0, (current - low) / (high - low)))
    percentile = sum(1 for v in values if v < current) / len(values)
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
