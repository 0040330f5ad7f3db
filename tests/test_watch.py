"""Distance to the short strikes (domain/watch.py), checked against numbers worked out by hand."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from spreadwatch.domain.watch import expected_move, session_fraction_left, short_strike_distances


@dataclass(frozen=True)
class Legs:
    short_put: float | None = None
    long_put: float | None = None
    short_call: float | None = None
    long_call: float | None = None


CONDOR = Legs(short_put=19500.0, long_put=19490.0, short_call=20500.0, long_call=20510.0)


def test_expected_move_is_price_times_vol_times_root_of_sessions_over_252():
    # 20,000 x 0.20 x sqrt(4 / 252) = 4,000 x 0.125988... = 503.95 points, worked independently of the formula:
    assert expected_move(20000.0, 20.0, 4.0) == pytest.approx(4000.0 * 0.12598815766974242, rel=1e-12)
    # 252 sessions left: one year, so the move is price x vol exactly.
    assert expected_move(20000.0, 20.0, 252.0) == pytest.approx(4000.0, rel=1e-12)


@pytest.mark.parametrize("price,vol,sessions", [(20000.0, 20.0, 0.0), (20000.0, 0.0, 3.0), (float("nan"), 20.0, 3.0),
                                                 (20000.0, float("nan"), 3.0), (-1.0, 20.0, 3.0)])
def test_expected_move_is_unknown_without_time_vol_or_price(price, vol, sessions):
    assert expected_move(price, vol, sessions) is None


def test_an_iron_condor_has_one_distance_per_short_leg_put_first():
    put, call = short_strike_distances(CONDOR, 20000.0, 20.0, 252.0)
    assert (put.leg, put.strike, put.points, call.leg, call.strike, call.points) == (
        "short_put", 19500.0, 500.0, "short_call", 20500.0, 500.0)
    assert put.ratio == pytest.approx(0.025) and call.ratio == pytest.approx(0.025)
    assert put.expected_moves == pytest.approx(500.0 / 4000.0)  # a one-year move of 4,000 points
    assert not put.breached and not call.breached


def test_a_price_through_the_short_put_is_a_negative_distance():
    [put] = short_strike_distances(Legs(short_put=19500.0, long_put=19400.0), 19450.0, 25.0, 1.0)
    assert put.points == -50.0 and put.breached
    assert put.ratio == pytest.approx(-50.0 / 19450.0)
    assert put.expected_moves == pytest.approx(-50.0 / (19450.0 * 0.25 * math.sqrt(1 / 252)))


def test_a_call_spread_has_only_its_short_call():
    [call] = short_strike_distances(Legs(short_call=6000.0, long_call=6010.0), 6030.0, 15.0, 0.5)
    assert (call.leg, call.points) == ("short_call", -30.0) and call.breached


def test_unknown_price_gives_nothing_and_unknown_vol_or_time_no_expected_moves():
    assert short_strike_distances(CONDOR, None, 20.0, 2.0) == []
    assert [d.expected_moves for d in short_strike_distances(CONDOR, 20000.0, None, 2.0)] == [None, None]
    assert [d.expected_moves for d in short_strike_distances(CONDOR, 20000.0, 20.0, 0.0)] == [None, None]
    assert [d.points for d in short_strike_distances(CONDOR, 20000.0, 20.0, None)] == [500.0, 500.0]


def test_the_part_of_today_still_to_trade():
    assert session_fraction_left(None, None, before_open=True) == 1.0
    assert session_fraction_left(5850.0, 23400.0, before_open=False) == 0.25  # 1 h 37.5 min of 6.5 h
    assert session_fraction_left(None, 23400.0, before_open=False) == 0.0  # after the close


def test_the_part_of_today_on_the_exchange_calendar_honours_the_early_close():
    from datetime import UTC, datetime

    from spreadwatch.app.service import _today_left
    from spreadwatch.edges.calendar import MarketCalendar

    cal = MarketCalendar()
    # 2026-11-27 opens 14:30 UTC and closes early at 18:00 UTC (13:00 ET): 3.5 h, half of it left at 16:15 UTC.
    assert _today_left(cal, datetime(2026, 11, 27, 16, 15, tzinfo=UTC)) == pytest.approx(0.5)
    assert _today_left(cal, datetime(2026, 11, 27, 13, 0, tzinfo=UTC)) == 1.0  # before the open
    assert _today_left(cal, datetime(2026, 11, 27, 18, 30, tzinfo=UTC)) == 0.0  # after the close
    assert _today_left(cal, datetime(2026, 11, 26, 16, 0, tzinfo=UTC)) == 0.0  # Thanksgiving
