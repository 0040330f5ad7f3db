"""The scan: filters in order, entry windows on the clock, ranking, strikes, risk, stable identity."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import numpy as np
import pytest

from spreadwatch.config import Config, bundled_path
from spreadwatch.domain.scanner import BookState, filter_grid, opportunity_id, scan
from spreadwatch.edges.calendar import MarketCalendar
from spreadwatch.edges.gridfile import load_grid

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


# ---- small canonical grids: one behaviour per test ----------------------------------------------------------

HEADER = ("ticker,dte,band,spread_type,flow_mode,spread_width,entry_time_et,regime,trend,n_trades,n_wins,win_rate,"
          "avg_credit,avg_max_risk,roi,avg_pnl,sharpe,max_drawdown,trade_score,exit_win_rate,exit_avg_pnl,"
          "band_lower_move,band_upper_move,credit_source,low_sample,data_start,data_end")
BASE = dict(ticker="NDX", dte=1, band="P98", spread_type="put_spread", flow_mode="with_flow", spread_width=25,
            entry_time_et="10:30", regime="all", trend="all", n_trades=60, n_wins=57, win_rate=0.95,
            avg_credit=450, avg_max_risk=2050, roi=0.2195, avg_pnl=120, sharpe=0.5, max_drawdown=2000,
            trade_score=80, exit_win_rate="", exit_avg_pnl="", band_lower_move=-0.012, band_upper_move=0.011,
            credit_source="model", low_sample="False", data_start="2024-01-02", data_end="2025-12-31")


def small_grid(tmp_path, *rows):
    lines = [HEADER] + [",".join(str({**BASE, **row}[c]) for c in HEADER.split(",")) for row in rows]
    path = tmp_path / "grid.csv"
    path.write_text("\n".join(lines) + "\n")
    return load_grid(path)


def scan_small(grid, **kw):
    args = dict(ticker="NDX", now=IN_WINDOW, calendar=CAL, config=CONFIG, regime="low", trend="sideways",
                flow="down", flow_0dte="down", price=20003.0, include_all=True)
    args.update(kw)
    return scan(grid, **args)


def test_credit_source_is_carried_when_the_grid_records_it(tmp_path):
    built = scan_small(small_grid(tmp_path, {}))
    assert [o.to_json()["credit_source"] for o in built.opportunities] == ["model"]
    chains = scan_small(small_grid(tmp_path, {"credit_source": "chains"}))
    assert chains.opportunities[0].credit_source == "chains"
    unknown = scan_small(small_grid(tmp_path, {"credit_source": ""}))
    assert unknown.opportunities[0].to_json()["credit_source"] is None


def test_alert_line_renders_exactly_like_the_original():
    from spreadwatch.domain.scanner import Opportunity
    from spreadwatch.domain.strikes import Strikes

    o = Opportunity(id="x", rank=1, ticker="NDX", dte=3, band="P98", spread_type="iron_condor",
                    flow_mode="neutral", spread_width=25.0, entry_time_et="10:30", entry_time_local="07:30",
                    win_rate=0.955, roi=0.346, sharpe=0.5, trade_score=90.0, credit=285.0, max_risk=1715.0,
                    n_trades=40, in_window=True, blocked_by_risk=False, expiry="2026-11-27",
                    strikes=Strikes(short_put=19500.0, long_put=19475.0, short_call=20500.0, long_call=20525.0))
    assert o.alert_line() == ("#1: 3DTE P98 IRON_CONDOR @ 07:30 | Win:95.5% ROI:34.6% | Credit:$285 Risk:$1715 | "
                              "Short 19500P/20500C")
    assert o.to_json()["strikes"] == {"short_put": 19500.0, "long_put": 19475.0, "short_call": 20500.0,
                                      "long_call": 20525.0}


@pytest.mark.parametrize("utc,expected", [
    ((15, 15), True),   # 07:15 PT = 10:15 ET: 15 min early, at the tolerance
    ((15, 45), True),   # 07:45 PT: 15 min late
    ((15, 46), False),  # 16 min late
    ((15, 0), False),   # 07:00 PT: inside the hours but 30 min early
])
def test_in_window_only_within_the_tolerance_of_the_entry_time(tmp_path, utc, expected):
    grid = small_grid(tmp_path, {})
    result = scan_small(grid, now=datetime(2026, 11, 24, *utc, tzinfo=UTC))
    assert [o.in_window for o in result.opportunities] == [expected]
    assert result.opportunities[0].entry_time_local == "07:30"  # shown in the display zone


def test_holiday_is_never_in_window_and_expiry_skips_it(tmp_path):
    grid = small_grid(tmp_path, {})
    thanksgiving = scan_small(grid, now=datetime(2026, 11, 26, 15, 30, tzinfo=UTC)).opportunities[0]
    assert thanksgiving.in_window is False
    # The entry session is Friday the 27th (early close); 1 DTE expires Monday the 30th.
    assert thanksgiving.expiry == "2026-11-30"


def test_ticker_and_trend_columns_filter_canonical_rows(tmp_path):
    grid = small_grid(tmp_path, {"ticker": "SPX"}, {"trend": "up"}, {"trend": "sideways"}, {"trend": "all"})
    assert scan_small(grid, trend="sideways").matching_count == 2   # the sideways row + the all row
    assert scan_small(grid, trend="down").matching_count == 1       # the up row is not for a down trend
    assert scan_small(grid, trend=None).matching_count == 1         # unknown trend: only rows valid in every trend
    spx = scan_small(grid, ticker="SPX", trend=None)
    assert spx.matching_count == 1 and spx.opportunities[0].ticker == "SPX"  # NDX rows never apply to SPX


def test_zero_dte_rows_use_the_short_horizon_flow(tmp_path):
    recs = {**CONFIG.regime.recommendations,
            "low": dataclasses.replace(CONFIG.regime.recommendations["low"], dtes=(0, 1))}
    cfg = dataclasses.replace(CONFIG, regime=dataclasses.replace(CONFIG.regime, recommendations=recs))
    grid = small_grid(tmp_path, {"dte": 0}, {"dte": 1})
    dtes = lambda **kw: sorted(o.dte for o in scan_small(grid, config=cfg, **kw).opportunities)  # noqa: E731
    assert dtes(flow="up", flow_0dte="down") == [0]   # put spread with the flow: only the 0 DTE row's flow is down
    assert dtes(flow="down", flow_0dte="up") == [1]
    assert dtes(flow="down", flow_0dte=None) == [1]   # unknown 0 DTE flow: neutral only


def test_strikes_come_from_the_grid_band_columns_snapped_away_from_the_money(tmp_path):
    grid = small_grid(tmp_path, {}, {"spread_type": "iron_condor", "entry_time_et": "10:45"})
    by_type = {o.spread_type: o.strikes for o in scan_small(grid).opportunities}
    # 20003 x (1 - 0.012) = 19762.96 -> down to 19760; 20003 x 1.011 = 20223.03 -> up to 20230 (NDX step 10).
    assert by_type["put_spread"].as_dict() == {"short_put": 19760.0, "long_put": 19735.0}
    assert by_type["iron_condor"].as_dict() == {"short_put": 19760.0, "long_put": 19735.0,
                                                "short_call": 20230.0, "long_call": 20255.0}


def test_strikes_from_trailing_closes_when_the_grid_has_no_band_columns(tmp_path):
    grid = small_grid(tmp_path, {"band_lower_move": "", "band_upper_move": ""})
    from spreadwatch.domain.bands import trailing_band_edges

    lower, _ = trailing_band_edges(np.asarray(CLOSES), 1, "P98")
    o = scan_small(grid, daily_closes=CLOSES).opportunities[0]
    assert o.strikes.short_put == np.floor(20003.0 * (1 + lower) / 10) * 10
    assert scan_small(grid, daily_closes=CLOSES[:50]).opportunities[0].strikes is None  # < 100 moves: unknown


def test_missing_trade_score_ranks_by_the_original_formula(tmp_path):
    grid = small_grid(tmp_path, {"trade_score": "", "entry_time_et": "10:30"},
                      {"trade_score": "", "entry_time_et": "10:45", "win_rate": 0.99, "sharpe": 0.9})
    ranked = scan_small(grid).opportunities
    assert all(o.in_window for o in ranked)
    assert [o.entry_time_et for o in ranked] == ["10:45", "10:30"]  # by the computed score, best first
    expected = 0.25 * 21.95 + 8 * 0.9 + 0.6 * 99 + 20000 / 2050
    assert ranked[0].trade_score == pytest.approx(expected, rel=1e-3)


def test_unknown_regime_admits_no_rows_even_regime_all(tmp_path):
    grid = small_grid(tmp_path, {"regime": "all"}, {"regime": "low", "entry_time_et": "10:45"})
    assert scan_small(grid, regime=None).matching_count == 0
    assert scan_small(grid, regime="low").matching_count == 2
    assert scan_small(grid, regime="medium").matching_count == 1  # the regime-specific row is excluded
