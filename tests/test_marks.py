"""The model mark (domain/marks.py) against an independent Black-Scholes-Merton (py_vollib), to 1e-8."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from spreadwatch.domain import pricing
from spreadwatch.domain.marks import model_mark

bsm = pytest.importorskip("py_vollib.black_scholes_merton")
greeks = pytest.importorskip("py_vollib.black_scholes_merton.greeks.analytical")
from scipy.stats import norm  # noqa: E402  (after the skip: py_vollib is a test extra)


@dataclass(frozen=True)
class Pos:
    contracts: int
    credit: float
    short_put: float | None = None
    long_put: float | None = None
    short_call: float | None = None
    long_call: float | None = None


def skew(level: float, spot: float, strike: float, t: float) -> float:
    """The builder's documented skew, written out again: v * clip(1 - 0.08 * ln(K/S) / (v sqrt t), 0.6, 2.0)."""
    v = level / 100
    m = math.log(strike / spot) / (v * math.sqrt(t))
    return v * min(max(1 - 0.08 * m, 0.6), 2.0)


def reference(pos: Pos, spot: float, level: float, sessions: float) -> tuple[float, dict[str, float], float]:
    t = sessions / 252
    r, q = pricing.RATE, pricing.DIVIDEND_YIELD
    value, deltas, prob = 0.0, {}, 1.0
    for short, long_, flag, leg in ((pos.short_put, pos.long_put, "p", "short_put"),
                                    (pos.short_call, pos.long_call, "c", "short_call")):
        if short is None:
            continue
        s_sig, l_sig = skew(level, spot, short, t), skew(level, spot, long_, t)
        value += 100 * (bsm.black_scholes_merton(flag, spot, short, t, r, s_sig, q)
                        - bsm.black_scholes_merton(flag, spot, long_, t, r, l_sig, q))
        deltas[leg] = -greeks.delta(flag, spot, short, t, r, s_sig, q)
        d2 = (math.log(spot / short) + (r - q - 0.5 * s_sig ** 2) * t) / (s_sig * math.sqrt(t))
        prob -= norm.cdf(d2) if flag == "c" else norm.cdf(-d2)
    return value * pos.contracts, deltas, prob


CASES = [
    (Pos(2, 285.0, short_put=19500, long_put=19490, short_call=20500, long_call=20510), 20000.0, 18.2, 2.5),
    (Pos(1, 150.0, short_put=19800, long_put=19750), 19850.0, 25.0, 0.4),
    (Pos(3, 420.0, short_call=6100, long_call=6125), 6030.0, 14.0, 4.0),
    (Pos(1, 300.0, short_put=5900, long_put=5875), 5800.0, 32.0, 1.0),  # in the money
]


@pytest.mark.parametrize("pos,spot,level,sessions", CASES)
def test_model_mark_matches_py_vollib(pos, spot, level, sessions):
    mark = model_mark(pos, spot, level, sessions)
    assert mark is not None
    value, deltas, prob = reference(pos, spot, level, sessions)
    assert abs(mark.value - value) < 1e-8
    assert abs(mark.pnl - (pos.credit - value)) < 1e-8
    assert mark.short_deltas.keys() == deltas.keys()
    for leg, delta in deltas.items():
        assert abs(mark.short_deltas[leg] - delta) < 1e-8
    assert abs(mark.probability_otm - prob) < 1e-8


def test_short_deltas_have_the_short_side_sign():
    mark = model_mark(CASES[0][0], 20000.0, 18.2, 2.5)
    assert mark is not None
    assert mark.short_deltas["short_put"] > 0 > mark.short_deltas["short_call"]
    assert 0 < mark.probability_otm < 1


@pytest.mark.parametrize("price,level,sessions", [(None, 18.0, 1.0), (20000.0, None, 1.0), (20000.0, 18.0, 0.0),
                                                   (20000.0, 18.0, None), (float("nan"), 18.0, 1.0)])
def test_no_mark_without_price_vol_or_time(price, level, sessions):
    assert model_mark(CASES[0][0], price, level, sessions) is None
