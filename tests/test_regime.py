"""VIX regimes: NaN is unknown (never extreme), boundaries, hysteresis that stops flapping."""

from __future__ import annotations

import math

import pytest

from spreadwatch.config import Config
from spreadwatch.domain.regime import classify, run, step

BOUNDS = Config().regime.boundaries
BUFFER = Config().regime.hysteresis


@pytest.mark.parametrize("vix", [math.nan, None, math.inf, -math.inf])
def test_nan_vix_is_unknown_not_extreme(vix):
    assert classify(vix, BOUNDS) is None
    assert step("extreme", vix, BOUNDS, BUFFER) is None
    assert step(None, vix, BOUNDS, BUFFER) is None


@pytest.mark.parametrize("vix", [0.0, -1.0, -25.0])
def test_a_vix_that_cannot_be_true_is_no_regime(vix):
    # A VIX of -1 (a bad replay row) is no "very_low": the rule leaves the last known regime untouched.
    assert step("medium", vix, BOUNDS, BUFFER) is None
    assert step(None, vix, BOUNDS, BUFFER) is None
    assert run([17.0, vix, 17.1], BOUNDS, BUFFER) == ["medium", None, "medium"]


@pytest.mark.parametrize("vix,regime", [(11.99, "very_low"), (12.0, "low"), (15.99, "low"), (16.0, "medium"),
                                        (19.99, "medium"), (20.0, "high"), (29.99, "high"), (30.0, "extreme"),
                                        (0.0, "very_low")])
def test_boundaries_without_hysteresis(vix, regime):
    assert classify(vix, BOUNDS) == regime


def test_hysteresis_stops_flapping_at_16_plus_minus_0_3():
    flapping = [16.0 + (0.3 if i % 2 else -0.3) for i in range(390)]
    without = run(flapping, BOUNDS, 0.0)
    with_buffer = run(flapping, BOUNDS, BUFFER)
    changes_without = sum(a != b for a, b in zip(without, without[1:], strict=False))
    changes_with = sum(a != b for a, b in zip(with_buffer, with_buffer[1:], strict=False))
    assert changes_without == 389
    assert changes_with == 0
    assert set(with_buffer) == {"low"}  # starts at 15.7 and never gets 0.5 past 16


def test_leaving_a_regime_needs_the_buffer_in_both_directions():
    # The new regime must hold with the VIX moved back by the buffer; regimes are half-open [low, high), so
    # up needs VIX >= 16.5 and down needs VIX < 15.5.
    assert step("low", 16.49, BOUNDS, BUFFER) == "low"
    assert step("low", 16.5, BOUNDS, BUFFER) == "medium"
    assert step("medium", 15.5, BOUNDS, BUFFER) == "medium"
    assert step("medium", 15.49, BOUNDS, BUFFER) == "low"


def test_a_jump_across_regimes_lands_where_the_buffered_value_is():
    assert step("low", 25.0, BOUNDS, BUFFER) == "high"
    assert step("low", 20.3, BOUNDS, BUFFER) == "medium"  # past 16 by the buffer, not past 20
    assert step("extreme", 11.0, BOUNDS, BUFFER) == "very_low"


def test_unknown_vix_keeps_the_last_known_regime_for_when_it_returns():
    out = run([15.0, math.nan, None, 16.3, 16.6], BOUNDS, BUFFER)
    # NaN/None are unknown; 16.3 after "low" stays low (inside the buffer); 16.6 crosses.
    assert out == ["low", None, None, "low", "medium"]


def test_run_starts_from_a_given_regime():
    assert run([16.2], BOUNDS, BUFFER, start="low") == ["low"]
    assert run([16.2], BOUNDS, BUFFER) == ["medium"]
