"""Watching an open position between P&L updates: how far the index is from each short strike.

Pure domain code: values in, values out (no clock, calendar, network or logging). The loop hands in the index
price, the ticker's vol index level and the sessions left; docs/positions.md ("Distance to the short strikes")
documents the definitions:

- points: how far the price is on the safe side of the short strike, price - strike for a short put, strike - price
  for a short call; negative once the price is through the strike (breached).
- ratio: points / price.
- expected moves: points / (price x vol x sqrt(sessions left / 252)), the vol index's implied one-standard-deviation
  move to expiry (vol = vol index level / 100, annualized over 252 sessions, as domain/pricing.py counts time).
- sessions left: the whole sessions after today up to the expiry plus the part of today's session still to trade
  (1 before today's open, the remaining fraction while it is open, 0 after its close or on a day without a
  session). On the expiry session it is the fraction of that session still to trade; once it is 0 (the expiry
  session has closed) there is no move left and the expected moves are unknown (None), never infinite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

SESSIONS_PER_YEAR = 252.0
SHORT_LEGS: tuple[str, ...] = ("short_put", "short_call")


@dataclass(frozen=True)
class StrikeDistance:
    leg: str  # short_put | short_call
    strike: float
    price: float
    points: float  # on the safe side of the strike; negative once breached
    ratio: float  # points / price
    expected_moves: float | None  # points / expected move to expiry; None when unknown

    @property
    def breached(self) -> bool:
        return self.points < 0


def expected_move(price: float, vol_index_level: float, sessions_left: float) -> float | None:
    """The vol index's implied one-standard-deviation move to expiry, in index points:
    price x (level / 100) x sqrt(sessions_left / 252). None when any input is unknown or no time is left."""
    if not (_finite(price) and _finite(vol_index_level) and _finite(sessions_left)):
        return None
    if price <= 0 or vol_index_level <= 0 or sessions_left <= 0:
        return None
    return price * (vol_index_level / 100.0) * math.sqrt(sessions_left / SESSIONS_PER_YEAR)


def short_strike_distances(position: Any, price: float | None, vol_index_level: float | None,
                           sessions_left: float | None) -> list[StrikeDistance]:
    """The distance from `price` to each short strike of `position` (a positions.Position), short put first.
    Empty when the price is unknown; expected moves None when the vol index or the time left is unknown."""
    if price is None or not _finite(price) or price <= 0:
        return []
    move = None
    if vol_index_level is not None and sessions_left is not None:
        move = expected_move(price, vol_index_level, sessions_left)
    out = []
    for leg in SHORT_LEGS:
        strike = getattr(position, leg)
        if strike is None:
            continue
        points = price - strike if leg == "short_put" else strike - price
        out.append(StrikeDistance(leg, float(strike), float(price), points, points / price,
                                  None if move is None else points / move))
    return out


def session_fraction_left(seconds_to_close: float | None, session_seconds: float | None, before_open: bool) -> float:
    """The part of today's session still to trade: 1 before today's open, seconds to close / session length while
    it is open, 0 otherwise (after the close, or no session today)."""
    if before_open:
        return 1.0
    if seconds_to_close is None or not session_seconds:
        return 0.0
    return min(1.0, max(0.0, seconds_to_close / session_seconds))


def _finite(value: float) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
