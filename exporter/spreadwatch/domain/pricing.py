"""Option pricing for the grid builder: Black-Scholes-Merton, the skew model, vertical spread credit and payoff.

Pure and vectorized: every function takes numpy arrays (or scalars, broadcast together) and returns arrays; no
I/O, no clock. Must not: fetch rates or volatilities (the caller passes them in).

Conventions
- European options on the index level, continuous compounding. `rate` is the risk-free rate r and `dividend_yield`
  the continuous dividend yield q, both annual fractions. The builder's defaults are `RATE` = 4 % and
  `DIVIDEND_YIELD` = 1.3 % (a broad US index's yield); over the 0-10 session horizons of the grid either moves a
  spread's price by cents.
- Time `t` is in years of TRADING time: one session is 1/252 of a year (`SESSIONS_PER_YEAR`). Volatility indices
  quote annualized volatility, and variance accrues while the market trades, so a session carries 1/252 of it.
- Skew (`skewed_vol`): the ticker's vol index level (VXN, VIX: percent) is the at-the-money implied volatility
  v = level / 100. A strike K at standardized moneyness m = ln(K/S) / (v √t) gets
  σ(K) = v · clip(1 − SKEW_SLOPE · m, SKEW_FLOOR, SKEW_CAP): out-of-the-money puts (m < 0) are dearer, calls
  (m > 0) cheaper, as index options trade. SKEW_SLOPE = 0.08 per standard deviation, floor 0.6, cap 2.0.
- Money: option prices are per unit of the index; a spread's credit, payoff and P&L are dollars per contract
  (multiplier 100).
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

MULTIPLIER = 100.0
SESSIONS_PER_YEAR = 252.0
RATE = 0.04
DIVIDEND_YIELD = 0.013
SKEW_SLOPE = 0.08
SKEW_FLOOR = 0.6
SKEW_CAP = 2.0


def bs_price(is_call: np.ndarray | bool, spot: np.ndarray | float, strike: np.ndarray | float,
             t: np.ndarray | float, sigma: np.ndarray | float, rate: float = RATE,
             dividend_yield: float = DIVIDEND_YIELD) -> np.ndarray:
    """Black-Scholes-Merton price of European calls (`is_call` true) or puts. At t <= 0 the intrinsic value."""
    is_call, spot, strike, t, sigma = np.broadcast_arrays(
        np.asarray(is_call, dtype=bool), np.asarray(spot, dtype=float), np.asarray(strike, dtype=float),
        np.asarray(t, dtype=float), np.asarray(sigma, dtype=float))
    live = (t > 0) & (sigma > 0)
    tt = np.where(live, t, 1.0)
    ss = np.where(live, sigma, 1.0)
    sqrt_t = np.sqrt(tt)
    with np.errstate(divide="ignore", invalid="ignore"):
        d1 = (np.log(spot / strike) + (rate - dividend_yield + 0.5 * ss * ss) * tt) / (ss * sqrt_t)
    d2 = d1 - ss * sqrt_t
    disc_s = spot * np.exp(-dividend_yield * tt)
    disc_k = strike * np.exp(-rate * tt)
    call = disc_s * ndtr(d1) - disc_k * ndtr(d2)
    put = disc_k * ndtr(-d2) - disc_s * ndtr(-d1)
    price = np.where(is_call, call, put)
    intrinsic = np.where(is_call, np.maximum(spot - strike, 0.0), np.maximum(strike - spot, 0.0))
    return np.where(live, price, intrinsic)


def skewed_vol(vol_index_level: np.ndarray | float, spot: np.ndarray | float, strike: np.ndarray | float,
               t: np.ndarray | float) -> np.ndarray:
    """Implied volatility of `strike` from the vol index level (percent) and the documented skew."""
    v = np.asarray(vol_index_level, dtype=float) / 100.0
    tt = np.maximum(np.asarray(t, dtype=float), 1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):
        m = np.log(np.asarray(strike, dtype=float) / np.asarray(spot, dtype=float)) / (v * np.sqrt(tt))
    return v * np.clip(1.0 - SKEW_SLOPE * m, SKEW_FLOOR, SKEW_CAP)


def vertical_value(is_call: np.ndarray | bool, spot: np.ndarray | float, short_strike: np.ndarray | float,
                   long_strike: np.ndarray | float, t: np.ndarray | float, vol_index_level: np.ndarray | float,
                   rate: float = RATE, dividend_yield: float = DIVIDEND_YIELD) -> np.ndarray:
    """Model value in dollars per contract of a short vertical (short `short_strike`, long `long_strike`):
    what it costs to buy it back. The credit at entry is this value at the entry's inputs."""
    short = bs_price(is_call, spot, short_strike, t, skewed_vol(vol_index_level, spot, short_strike, t),
                     rate, dividend_yield)
    long_ = bs_price(is_call, spot, long_strike, t, skewed_vol(vol_index_level, spot, long_strike, t),
                     rate, dividend_yield)
    return MULTIPLIER * (short - long_)


def put_spread_payoff(spot_at_expiry: np.ndarray | float, short_strike: np.ndarray | float,
                      long_strike: np.ndarray | float) -> np.ndarray:
    """What a short put spread owes at expiry, dollars per contract: 100 · (max(Ks − S, 0) − max(Kl − S, 0))."""
    s = np.asarray(spot_at_expiry, dtype=float)
    return MULTIPLIER * (np.maximum(np.asarray(short_strike) - s, 0.0) - np.maximum(np.asarray(long_strike) - s, 0.0))


def call_spread_payoff(spot_at_expiry: np.ndarray | float, short_strike: np.ndarray | float,
                       long_strike: np.ndarray | float) -> np.ndarray:
    """What a short call spread owes at expiry, dollars per contract: 100 · (max(S − Ks, 0) − max(S − Kl, 0))."""
    s = np.asarray(spot_at_expiry, dtype=float)
    return MULTIPLIER * (np.maximum(s - np.asarray(short_strike), 0.0) - np.maximum(s - np.asarray(long_strike), 0.0))


def spread_pnl_at_expiry(credit: np.ndarray | float, payoff: np.ndarray | float) -> np.ndarray:
    """P&L held to expiry, dollars per contract: the credit received minus what the spread owes."""
    return np.asarray(credit, dtype=float) - np.asarray(payoff, dtype=float)


def max_risk(credit: np.ndarray | float, width: np.ndarray | float) -> np.ndarray:
    """Largest possible loss of a vertical (or an iron condor with equal wings), dollars per contract."""
    return MULTIPLIER * np.asarray(width, dtype=float) - np.asarray(credit, dtype=float)
