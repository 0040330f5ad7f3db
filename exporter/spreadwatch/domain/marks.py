"""The model mark of an open position: what the grid builder's pricing model says it is worth now.

Pure domain code (no clock, network or logging); the pricing is domain/pricing.py's, reused as it is: Black-Scholes-
Merton on the index with the ticker's vol index as the at-the-money volatility and the builder's skew, the builder's
rate and dividend yield, time in trading sessions (sessions left / 252; domain/watch.py says what sessions left
are). Everything here is an estimate labelled as one (`source="model"` in the metrics), never the trader's logged
P&L.

- value: what buying the spread back costs, dollars for the whole position: contracts x the model value of each
  short vertical (an iron condor: both).
- estimated P&L: credit - value.
- delta of each short leg: of one short option per unit of the index (a short put's is positive, a short call's
  negative), e^(-qt) N(d1) for a call, -e^(-qt) N(-d1) for a put, sign flipped for the short side.
- probability of finishing with the short strikes out of the money, risk-neutral: N(d2) of the short put (the index
  above it), N(-d2) of the short call (below it), each with its strike's skewed volatility; an iron condor's is
  P(above the put) + P(below the call) - 1 (the two tails do not overlap).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtr

from spreadwatch.domain import pricing


@dataclass(frozen=True)
class ModelMark:
    value: float  # dollars, whole position
    pnl: float  # credit - value
    short_deltas: dict[str, float]  # leg -> delta of the short option (per unit of the index)
    probability_otm: float  # the short strikes all out of the money at expiry
    vol_index: float  # the level the mark used


def _d1_d2(spot: float, strike: float, t: float, sigma: float, rate: float, q: float) -> tuple[float, float]:
    d1 = (math.log(spot / strike) + (rate - q + 0.5 * sigma * sigma) * t) / (sigma * math.sqrt(t))
    return d1, d1 - sigma * math.sqrt(t)


def model_mark(position: Any, price: float | None, vol_index_level: float | None, sessions_left: float | None,
               rate: float = pricing.RATE, dividend_yield: float = pricing.DIVIDEND_YIELD) -> ModelMark | None:
    """The model mark of `position` (a positions.Position), or None when the price, the vol index or the time left
    is unknown or no time is left (after the expiry session's close the spread is worth its intrinsic value, which
    the trader's settlement says better than a model)."""
    if price is None or vol_index_level is None or sessions_left is None:
        return None
    if not (math.isfinite(price) and math.isfinite(vol_index_level) and price > 0 and vol_index_level > 0):
        return None
    if not (math.isfinite(sessions_left) and sessions_left > 0):
        return None
    t = sessions_left / pricing.SESSIONS_PER_YEAR
    value = 0.0
    deltas: dict[str, float] = {}
    prob = 1.0
    sides = (("short_put", "long_put", False), ("short_call", "long_call", True))
    for short_leg, long_leg, is_call in sides:
        short, long_ = getattr(position, short_leg), getattr(position, long_leg)
        if short is None or long_ is None:
            continue
        value += float(pricing.vertical_value(is_call, price, short, long_, t, vol_index_level, rate, dividend_yield))
        sigma = float(pricing.skewed_vol(vol_index_level, price, short, t))
        d1, d2 = _d1_d2(price, short, t, sigma, rate, dividend_yield)
        disc = math.exp(-dividend_yield * t)
        long_delta = disc * float(ndtr(d1)) if is_call else -disc * float(ndtr(-d1))
        deltas[short_leg] = -long_delta
        prob -= float(ndtr(d2)) if is_call else float(ndtr(-d2))  # the tail beyond this short strike
    value *= position.contracts
    return ModelMark(value, position.credit - value, deltas, float(np.clip(prob, 0.0, 1.0)), vol_index_level)

