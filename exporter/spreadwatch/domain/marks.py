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
from datetime import datetime
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



# ---- the market mark: a delayed option chain's mid prices -------------------------------------------------------

@dataclass(frozen=True)
class LegQuote:
    """One option's quote from a chain: bid and ask per share (None when the chain gave none) and when it was
    last traded or quoted (None when unknown)."""

    bid: float | None
    ask: float | None
    time: datetime | None = None


@dataclass(frozen=True)
class MarketMark:
    """A position marked at the mid of each leg's quote. `value`/`pnl` are None when a leg's quote is flagged:
    a crossed (bid > ask), zero or missing quote has no mid worth trusting, and nothing stands in for it."""

    value: float | None  # dollars, whole position: what buying it back at the mids costs
    pnl: float | None  # credit - value
    as_of: datetime | None  # the oldest quote time of the legs (None when any is unknown)
    flags: dict[str, str]  # leg -> crossed | zero | missing, for each leg whose quote was refused


def quote_flag(quote: LegQuote | None) -> str | None:
    """Why a quote has no usable mid: missing (no quote, or a bid or ask absent or not finite), zero (an ask of
    0, or a bid of 0 with no ask above it), crossed (bid above ask); None when it is usable."""
    if quote is None or quote.bid is None or quote.ask is None:
        return "missing"
    if not (math.isfinite(quote.bid) and math.isfinite(quote.ask)) or quote.bid < 0 or quote.ask < 0:
        return "missing"
    if quote.ask == 0:
        return "zero"
    if quote.bid > quote.ask:
        return "crossed"
    return None


def market_mark(position: Any, quotes: dict[str, LegQuote]) -> MarketMark:
    """`position` (a positions.Position) marked at the mids of `quotes` (leg name -> its option's quote): for each
    vertical the short leg's mid minus the long leg's, x 100 per contract x contracts. A bid of 0 under a positive
    ask is a real quote for a far option (its mid is half the ask); an ask of 0 is no quote."""
    legs = [leg for leg in ("short_put", "long_put", "short_call", "long_call") if getattr(position, leg) is not None]
    flags = {}
    for leg in legs:
        flag = quote_flag(quotes.get(leg))
        if flag is not None:
            flags[leg] = flag
    if flags or not legs:
        return MarketMark(None, None, None, flags)
    mids = {leg: (quotes[leg].bid + quotes[leg].ask) / 2 for leg in legs}  # type: ignore[operator]
    per_share = sum(mids[leg] if leg.startswith("short") else -mids[leg] for leg in legs)
    value = round(per_share * 100 * position.contracts, 2)  # quotes are in cents: a mid x 100 is whole cents
    times = [quotes[leg].time for leg in legs]
    as_of = None if any(t is None for t in times) else min(t for t in times if t is not None)
    return MarketMark(value, position.credit - value, as_of, flags)
