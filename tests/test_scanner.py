"""The scan: filters in order, entry windows on the clock, ranking, strikes, risk, stable identity."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import numpy as np
import pytest

from spreadwatch.config import Config, bundled_path
from spreadwatch.grid import load_grid
from spreadwatch.market_calendar import MarketCalendar
from spreadwatch.scanner import BookState, filter_grid, opportunity_id, scan

CAL = MarketCalendar()
CONFIG = Config()
GRID = load_grid(bundled_path("grid_trading_ready.csv"))
IN_WINDOW = datetime(2026, 11, 24, 15, 30, tzinfo=UTC)  # 07:30 PT, Tuesday
# Trailing closes for bands: a gentle random walk (fixed seed).
CLOSES = tuple(20000 * np.cumprod(1 + np.random.default_rng(7).normal(0, 0.01, 160)))


def run(**kw):
    args = dict(ticker="NDX", now=IN_WINDOW, calendar=CAL, config=CONFIG, regime="low", trend="sideways",
                flow="down", flow_0dte="down", price=20500.0, daily_closes=CLOSES, daily_opens=CLOSES)
    args.update(kw)
    return scan(GRID, **args)


def test_regime_table_limits_bands_dtes_spreads_and_flow_modes():
    result = run(regime="very_low", flow=None, include_all=True)
    rec = CONFIG.regime.recommendations["very_low"]
    assert result.opportunities
    for o in result.opportunities:
        assert o.band in rec.bands and o.dte in rec.dtes and o.spread_type in rec.spread_types
        assert o.flow_mode in rec.flow_modes


def test_unknown_regime_gives_nothing_and_unknown_flow_admits_only_neutral():
    assert run(regime=None).opportunities == ()
    cfg = dataclasses.replace(CONFIG, regime=dataclasses.replace(CONFIG.regime, recommendations={
        **CONFIG.regime.recommendations,
        "low": dataclasses.replace(CONFIG.regime.recommendations["low"],
                                   flow_modes=("neutral", "with_flow", "against_flow"))}))
    modes = {o.flow_mode for o in run(config=cfg, flow=None, include_all=True).opportunities}
    assert modes == {"neutral"}


def test_with_flow_put_spread_needs_a_down_move():
    down = {o.spread_type for o in run(flow="down", include_all=True).opportunities}
    up = {o.spread_type for o in run(flow="up", include_all=True).opportunities}
    assert "put_spread" in down and "put_spread" not in up
    assert "iron_condor" in up  # any non-zero flow


def test_trend_up_replaces_the_regime_spread_types():
    types = {o.spread_type for o in run(trend="up", flow="up", include_all=True).opportunities}
    assert types <= {"call_spread", "iron_condor"} and types


@pytest.mark.parametrize("field,value", [("min_win_rate", 0.99), ("min_roi", 0.40), ("min_sharpe", 0.8),
                                         ("min_composite_score", 85.0), ("min_trades", 60)])
def test_each_quality_threshold_is_applied(field, value):
    base = run(include_all=True).matching_count
    cfg = dataclasses.replace(CONFIG, scan=dataclasses.replace(CONFIG.scan, **{field: value}))
    result = run(config=cfg, include_all=True)
    assert result.matching_count < base
    attr = {"min_win_rate": "win_rate", "min_roi": "roi", "min_sharpe": "sharpe",
            "min_composite_score": "trade_score", "min_trades": "n_trades"}[field]
    assert all(getattr(o, attr) >= value for o in result.opportunities)


@pytest.mark.parametrize("when,expected", [
    (datetime(2026, 11, 24, 15, 30, tzinfo=UTC), True),    # 07:30 PT
    (datetime(2026, 11, 24, 20, 0, tzinfo=UTC), False),    # 12:00 PT: outside preferred hours
    (datetime(2026, 11, 26, 15, 30, tzinfo=UTC), False),   # Thanksgiving: closed
    (datetime(2026, 11, 28, 15, 30, tzinfo=UTC), False),   # Saturday
])
def test_entry_window_respects_the_clock(when, expected):
    result = run(now=when, include_all=True)
    assert any(o.in_window for o in result.opportunities) is expected


def test_in_window_means_within_tolerance_of_the_entry_time():
    for o in run(include_all=True).opportunities:
        h, m = map(int, o.entry_time_et.split(":"))
        distance = abs(h * 60 + m - (10 * 60 + 30))
        assert o.in_window == (distance <= CONFIG.hours.entry_tolerance_minutes)


def test_in_window_setups_are_never_crowded_out_by_top_n():
    cfg = dataclasses.replace(CONFIG, scan=dataclasses.replace(CONFIG.scan, top_n=3))
    everything = run(include_all=True).opportunities
    in_scores = sorted((o.trade_score for o in everything if o.in_window), reverse=True)
    # The premise: a setup hours away scores better than the third in-window one.
    assert max(o.trade_score for o in everything if not o.in_window) > in_scores[2]
    top = run(config=cfg).opportunities
    assert len(top) == 3 and all(o.in_window for o in top)
    assert [o.rank for o in top] == [1, 2, 3]
    scores = [o.trade_score for o in top]
    assert scores == sorted(scores, reverse=True)


def test_identity_is_stable_across_scans_and_prices():
    a = {o.id for o in run(price=20500.0).opportunities}
    b = {o.id for o in run(price=20700.0, now=datetime(2026, 11, 24, 15, 35, tzinfo=UTC)).opportunities}
    assert a & b
    assert opportunity_id("NDX", 1, "P98", "put_spread", "with_flow", 25, "10:30") == \
        opportunity_id("NDX", 1, "P98", "put_spread", "with_flow", 25.0, "10:30")


def test_strikes_are_snapped_away_from_the_money_with_long_legs_one_width_out():
    for o in run(include_all=True).opportunities:
        s = o.strikes
        if s is None:
            continue
        if s.short_put is not None:
            assert s.short_put < 20500 and s.short_put % 10 == 0
            assert s.long_put == s.short_put - o.spread_width
        if s.short_call is not None:
            assert s.short_call > 20500 and s.short_call % 10 == 0
            assert s.long_call == s.short_call + o.spread_width


def test_unknown_price_gives_no_strikes():
    assert all(o.strikes is None for o in run(price=None).opportunities)


def test_blocked_by_risk_at_max_positions_or_over_total_risk():
    assert not any(o.blocked_by_risk for o in run(book=BookState(0, 0.0)).opportunities)
    assert all(o.blocked_by_risk for o in run(book=BookState(5, 0.0)).opportunities)
    near = run(book=BookState(1, 49_000.0)).opportunities
    assert all(o.blocked_by_risk == (49_000 + o.max_risk > 50_000) for o in near)


def test_alert_line_reads_like_the_original():
    o = run().opportunities[0]
    line = o.alert_line()
    assert line.startswith(f"#1: {o.dte}DTE {o.band} {o.spread_type.upper()} @ ")
    assert f"Win:{o.win_rate * 100:.1f}%" in line and "Credit:$" in line and "Risk:$" in line
    if o.strikes is not None:
        assert "| Short " in line


def test_expiry_is_the_nth_session_after_entry():
    for o in run(include_all=True).opportunities:
        assert o.expiry == CAL.expiry_for(CAL.entry_session(IN_WINDOW), o.dte).isoformat()


def test_filter_order_regime_before_quality():
    passing = filter_grid(GRID.frame, ticker="NDX", regime="high", trend="sideways", flow="down",
                          flow_0dte="down", config=CONFIG)
    assert set(passing["spread_type"]) == {"put_spread"} and set(passing["dte"]) == {1}
