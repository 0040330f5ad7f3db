"""Pricing: Black-Scholes-Merton against vollib and blackscholes, the skew's shape, spread payoffs by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from blackscholes import BlackScholesCall, BlackScholesPut
from vollib.black_scholes_merton import black_scholes_merton

from spreadwatch.domain import pricing

CASES = list(itertools.product(
    (4800.0, 21000.0),            # spot
    (0.90, 0.97, 1.0, 1.03, 1.10),  # strike / spot
    (1 / 252, 3 / 252, 11 / 252, 0.5),  # years
    (0.12, 0.25, 0.60),            # sigma
    ((0.0, 0.0), (0.04, 0.013), (0.05, 0.02)),  # (r, q)
))


@pytest.mark.parametrize("is_call", [True, False])
def test_prices_match_vollib_and_blackscholes_to_1e8(is_call: bool) -> None:
    spot = np.array([c[0] for c in CASES])
    strike = np.array([c[0] * c[1] for c in CASES])
    t = np.array([c[2] for c in CASES])
    sigma = np.array([c[3] for c in CASES])
    ours = np.array([
        pricing.bs_price(is_call, s, k, tt, sg, r, q)
        for s, k, tt, sg, (r, q) in zip(spot, strike, t, sigma, [c[4] for c in CASES], strict=True)
    ]).ravel()
    flag = "c" if is_call else "p"
    ref_vollib = np.array([black_scholes_merton(flag, c[0], c[0] * c[1], c[2], c[4][0], c[3], c[4][1])
                           for c in CASES])
    model = BlackScholesCall if is_call else BlackScholesPut
    ref_bs = np.array([model(S=c[0], K=c[0] * c[1], T=c[2], r=c[4][0], sigma=c[3], q=c[4][1]).price()
                       for c in CASES])
    np.testing.assert_allclose(ours, ref_vollib, rtol=0, atol=1e-8)
    np.testing.assert_allclose(ours, ref_bs, rtol=0, atol=1e-8)


def test_vectorized_call_equals_scalar_calls() -> None:
    spot = np.full(5, 20000.0)
    strike = np.array([19000.0, 19500.0, 20000.0, 20500.0, 21000.0])
    is_call = np.array([False, False, True, True, True])
    vec = pricing.bs_price(is_call, spot, strike, 2 / 252, 0.2)
    one = [float(pricing.bs_price(c, 20000.0, k, 2 / 252, 0.2)) for c, k in zip(is_call, strike, strict=True)]
    np.testing.assert_allclose(vec, one, rtol=0, atol=1e-12)


def test_expired_option_is_worth_its_intrinsic_value() -> None:
    assert pricing.bs_price(False, 95.0, 100.0, 0.0, 0.2) == pytest.approx(5.0)
    assert pricing.bs_price(True, 95.0, 100.0, 0.0, 0.2) == pytest.approx(0.0)
    assert pricing.bs_price(True, 105.0, 100.0, -1.0, 0.2) == pytest.approx(5.0)


def test_skew_makes_otm_puts_dearer_and_otm_calls_cheaper_than_atm() -> None:
    t = 3 / 252
    atm = pricing.skewed_vol(20.0, 100.0, 100.0, t)
    put = pricing.skewed_vol(20.0, 100.0, 96.0, t)
    call = pricing.skewed_vol(20.0, 100.0, 104.0, t)
    assert atm == pytest.approx(0.20)
    assert put > atm > call
    m = np.log(96.0 / 100.0) / (0.2 * np.sqrt(t))
    assert put == pytest.approx(0.2 * (1 - pricing.SKEW_SLOPE * m))
    # Clipped far out: never below the floor, never above the cap.
    assert pricing.skewed_vol(20.0, 100.0, 200.0, t) == pytest.approx(0.2 * pricing.SKEW_FLOOR)
    assert pricing.skewed_vol(20.0, 100.0, 10.0, t) == pytest.approx(0.2 * pricing.SKEW_CAP)


def test_vertical_value_is_between_zero_and_the_width() -> None:
    spot = np.linspace(18000, 22000, 41)
    value = pricing.vertical_value(False, spot, 19900.0, 19850.0, 2 / 252, 25.0)
    assert np.all(value > 0) and np.all(value < 50 * 100)
    assert np.all(np.diff(value) < 0)  # a put spread loses value as the index rises


# (spot at expiry, payoff owed in $/contract) for a 100/90 put spread and a 110/120 call spread.
PUT_TABLE = [(80.0, 1000.0), (90.0, 1000.0), (95.0, 500.0), (100.0, 0.0), (105.0, 0.0), (130.0, 0.0)]
CALL_TABLE = [(80.0, 0.0), (110.0, 0.0), (115.0, 500.0), (120.0, 1000.0), (125.0, 1000.0)]


@pytest.mark.parametrize(("spot", "owed"), PUT_TABLE)
def test_put_spread_payoff_hand_table(spot: float, owed: float) -> None:
    assert pricing.put_spread_payoff(spot, 100.0, 90.0) == pytest.approx(owed)
    assert pricing.spread_pnl_at_expiry(250.0, pricing.put_spread_payoff(spot, 100.0, 90.0)) == pytest.approx(
        250.0 - owed)


@pytest.mark.parametrize(("spot", "owed"), CALL_TABLE)
def test_call_spread_payoff_hand_table(spot: float, owed: float) -> None:
    assert pricing.call_spread_payoff(spot, 110.0, 120.0) == pytest.approx(owed)


def test_iron_condor_pnl_is_credit_minus_the_side_in_the_money() -> None:
    spots = np.array([80.0, 90.0, 95.0, 100.0, 105.0, 110.0, 115.0, 120.0, 130.0])
    owed = pricing.put_spread_payoff(spots, 100.0, 90.0) + pricing.call_spread_payoff(spots, 110.0, 120.0)
    pnl = pricing.spread_pnl_at_expiry(300.0, owed)
    np.testing.assert_allclose(pnl, [-700, -700, -200, 300, 300, 300, -200, -700, -700])
    # Never worse than the max risk.
    assert pnl.min() == pytest.approx(-float(pricing.max_risk(300.0, 10.0)))
