"""The scan: filters in order, one row per setup, entry windows on the clock, ranking, strikes, risk, identity."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from spreadwatch.config import Config, bundled_path
from spreadwatch.domain.scanner import FILTERS, BookState, filter_grid, opportunity_id, removed_lines, scan
from spreadwatch.edges.calendar import MarketCalendar
from spreadwatch.edges.gridfile import load_grid

CAL = MarketCalendar()
DEFAULTS = Config()
# The structural tests look at which rows the regime, trend and flow filters admit: quality floors off.
CONFIG = dataclasses.replace(DEFAULTS, scan=dataclasses.replace(
    DEFAULTS.scan, min_win_rate=0.0, min_roi=0.0, min_sharpe=-10.0, min_composite_score=-1000.0, min_trades=0))
GRID = load_grid(bundled_path("grid_spx.csv"))  # the bundled grid: SPX, entries at the open (09:30 ET)
IN_WINDOW = datetime(2019, 1, 2, 14, 35, tzinfo=UTC)  # 06:35 PT, 09:35 ET, Wednesday
# Trailing closes for bands: a gentle random walk (fixed seed).
CLOSES = tuple(20000 * np.cumprod(1 + np.random.default_rng(7).normal(0, 0.01, 160)))


def run(**kw):
    args = dict(ticker="SPX", now=IN_WINDOW, calendar=CAL, config=CONFIG, regime="low", trend="sideways",
                flow="down", flow_0dte="down", price=2500.0, daily_closes=(), daily_opens=())
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


@pytest.mark.parametrize("field,value", [("min_win_rate", 0.75), ("min_roi", 0.10), ("min_sharpe", 0.2),
                                         ("min_composite_score", 70.0), ("min_trades", 150)])
def test_each_quality_threshold_is_applied_to_the_managed_figures(field, value):
    base = run(include_all=True)
    cfg = dataclasses.replace(CONFIG, scan=dataclasses.replace(CONFIG.scan, **{field: value}))
    result = run(config=cfg, include_all=True)
    assert result.matching_count < base.matching_count
    assert result.removed[field] == base.matching_count - result.matching_count
    attr = {"min_win_rate": "exit_win_rate", "min_roi": "roi", "min_sharpe": "exit_sharpe",
            "min_composite_score": "trade_score", "min_trades": "n_trades"}[field]
    assert all(getattr(o, attr) >= value for o in result.opportunities)


@pytest.mark.parametrize("when,expected", [
    (datetime(2019, 1, 2, 14, 35, tzinfo=UTC), True),     # 06:35 PT, 5 minutes after the open
    (datetime(2019, 1, 2, 20, 0, tzinfo=UTC), False),     # 12:00 PT: outside preferred hours
    (datetime(2019, 1, 21, 14, 35, tzinfo=UTC), False),   # Martin Luther King Jr. Day: closed
    (datetime(2019, 1, 5, 14, 35, tzinfo=UTC), False),    # Saturday
])
def test_entry_window_respects_the_clock(when, expected):
    result = run(now=when, include_all=True)
    assert any(o.in_window for o in result.opportunities) is expected


def test_in_window_means_within_tolerance_of_the_entry_time():
    for o in run(include_all=True).opportunities:
        h, m = map(int, o.entry_time_et.split(":"))
        distance = abs(h * 60 + m - (9 * 60 + 35))
        assert o.in_window == (distance <= CONFIG.hours.entry_tolerance_minutes)


def test_identity_is_stable_across_scans_and_prices():
    a = {o.id for o in run(price=2500.0).opportunities}
    b = {o.id for o in run(price=2520.0, now=datetime(2019, 1, 2, 14, 40, tzinfo=UTC)).opportunities}
    assert a & b
    assert opportunity_id("NDX", 1, "P98", "put_spread", "with_flow", 25, "10:30") == \
        opportunity_id("NDX", 1, "P98", "put_spread", "with_flow", 25.0, "10:30")


def test_strikes_are_snapped_away_from_the_money_with_long_legs_one_width_out():
    for o in run(include_all=True).opportunities:
        s = o.strikes
        if s is None:
            continue
        if s.short_put is not None:
            assert s.short_put < 2500 and s.short_put % 5 == 0
            assert s.long_put == s.short_put - o.spread_width
        if s.short_call is not None:
            assert s.short_call > 2500 and s.short_call % 5 == 0
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
    passing = filter_grid(GRID.frame, ticker="SPX", regime="high", trend="sideways", flow="down",
                          flow_0dte="down", config=CONFIG)
    assert set(passing["spread_type"]) == {"put_spread"} and set(passing["dte"]) == {1}


# ---- small canonical grids: one behaviour per test ----------------------------------------------------------

HEADER = ("ticker,dte,band,spread_type,flow_mode,spread_width,entry_time_et,regime,trend,n_trades,n_wins,win_rate,"
          "avg_credit,avg_max_risk,roi,avg_pnl,sharpe,max_drawdown,trade_score,exit_win_rate,exit_avg_pnl,"
          "exit_sharpe,exit_trade_score,band_lower_move,band_upper_move,credit_source,low_sample,data_start,data_end")
BASE = dict(ticker="NDX", dte=1, band="P98", spread_type="put_spread", flow_mode="with_flow", spread_width=20,
            entry_time_et="10:30", regime="all", trend="all", n_trades=60, n_wins=57, win_rate=0.95,
            avg_credit=450, avg_max_risk=1550, roi=0.2903, avg_pnl=120, sharpe=0.5, max_drawdown=2000,
            trade_score=80, exit_win_rate=0.85, exit_avg_pnl=60, exit_sharpe=0.3, exit_trade_score=75,
            band_lower_move=-0.012, band_upper_move=0.011, credit_source="model", low_sample="False",
            data_start="2024-01-02", data_end="2025-12-31")
def small_grid(tmp_path, *rows):
    lines = [HEADER] + [",".join(str({**BASE, **row}[c]) for c in HEADER.split(",")) for row in rows]
    path = tmp_path / "grid.csv"
    path.write_text("\n".join(lines) + "\n")
    return load_grid(path)


def scan_small(grid, **kw):
    args = dict(ticker="NDX", now=datetime(2026, 11, 24, 15, 30, tzinfo=UTC), calendar=CAL, config=DEFAULTS,
                regime="low", trend="sideways", flow="down", flow_0dte="down", price=20003.0, include_all=True)
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
    assert o.alert_line() == ("#1: 3DTE P98 IRON_CONDOR @ 07:30 | Win:95.5% held | ROI:34.6% | Credit:$285 "
                              "Risk:$1715 | Short 19500P/20500C")  # the grid knows no managed figures
    managed = dataclasses.replace(o, exit_win_rate=0.805)
    assert managed.alert_line() == ("#1: 3DTE P98 IRON_CONDOR @ 07:30 | Win:95.5% held 80.5% managed | ROI:34.6% | "
                                    "Credit:$285 Risk:$1715 | Short 19500P/20500C")
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
    # The same setup for sideways and for every trend: the more specific row only.
    sideways = scan_small(grid, trend="sideways")
    assert sideways.matching_count == 1 and sideways.opportunities[0].trend == "sideways"
    assert sideways.removed["less_specific"] == 1
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
    assert by_type["put_spread"].as_dict() == {"short_put": 19760.0, "long_put": 19740.0}
    assert by_type["iron_condor"].as_dict() == {"short_put": 19760.0, "long_put": 19740.0,
                                                "short_call": 20230.0, "long_call": 20250.0}


def test_strikes_from_trailing_closes_when_the_grid_has_no_band_columns(tmp_path):
    grid = small_grid(tmp_path, {"band_lower_move": "", "band_upper_move": ""})
    from spreadwatch.domain.bands import trailing_band_edges

    lower, _ = trailing_band_edges(np.asarray(CLOSES), 1, "P98")
    o = scan_small(grid, daily_closes=CLOSES).opportunities[0]
    assert o.strikes.short_put == np.floor(20003.0 * (1 + lower) / 10) * 10
    assert scan_small(grid, daily_closes=CLOSES[:50]).opportunities[0].strikes is None  # < 100 moves: unknown


def test_missing_trade_score_ranks_by_the_original_formula(tmp_path):
    grid = small_grid(tmp_path, {"trade_score": "", "entry_time_et": "10:30"},
                      {"trade_score": "", "entry_time_et": "10:45", "win_rate": 0.99, "n_wins": "", "sharpe": 0.9})
    held = dataclasses.replace(DEFAULTS, scan=dataclasses.replace(DEFAULTS.scan, win_rate_basis="held"))
    ranked = scan_small(grid, config=held).opportunities
    assert all(o.in_window for o in ranked)
    assert [o.entry_time_et for o in ranked] == ["10:45", "10:30"]  # by the computed score, best first
    expected = 0.25 * 29.03 + 8 * 0.9 + 0.6 * 99 + 20000 / 1550
    assert ranked[0].trade_score == pytest.approx(expected, rel=1e-3)


def test_unknown_regime_admits_no_rows_even_regime_all(tmp_path):
    grid = small_grid(tmp_path, {"regime": "all"}, {"regime": "low", "entry_time_et": "10:45"})
    assert scan_small(grid, regime=None).matching_count == 0
    assert scan_small(grid, regime="low").matching_count == 2
    assert scan_small(grid, regime="medium").matching_count == 1  # the regime-specific row is excluded


def test_in_window_setups_are_never_crowded_out_by_top_n(tmp_path):
    # Four setups in their window (10:30 ET at 07:30 PT) and one hours away with the best score of all.
    grid = small_grid(tmp_path, *({"band": band, "exit_trade_score": score} for band, score in
                                  (("P97", 60), ("P98", 61), ("P99", 62), ("P95", 63))),
                      {"entry_time_et": "12:00", "exit_trade_score": 99})
    cfg = dataclasses.replace(DEFAULTS, scan=dataclasses.replace(DEFAULTS.scan, top_n=3))
    recs = {**cfg.regime.recommendations, "low": dataclasses.replace(cfg.regime.recommendations["low"],
                                                                     bands=("P95", "P97", "P98", "P99"))}
    cfg = dataclasses.replace(cfg, regime=dataclasses.replace(cfg.regime, recommendations=recs))
    top = scan_small(grid, config=cfg, include_all=False).opportunities
    assert [(o.band, o.in_window, o.rank) for o in top] == [("P95", True, 1), ("P99", True, 2), ("P98", True, 3)]


def test_one_opportunity_per_setup_the_most_specific_row_and_the_best_width(tmp_path):
    rows = [{"regime": "all", "trend": "all", "exit_trade_score": 90}, {"regime": "low", "trend": "all"},
            {"regime": "low", "trend": "sideways", "exit_win_rate": 0.8}, {"regime": "medium", "trend": "sideways"},
            {"regime": "low", "trend": "sideways", "spread_width": 10, "avg_credit": 200, "avg_max_risk": 800,
             "roi": 0.25, "exit_trade_score": 70}]
    grid = small_grid(tmp_path, *rows)
    result = scan_small(grid, include_all=False)
    # The (low, sideways) row for the context, of the two widths the better trade score, even though the
    # all-regime row scores higher: a less specific row never stands in for the specific one.
    assert [(o.regime, o.trend, o.spread_width, o.exit_win_rate) for o in result.opportunities] == [
        ("low", "sideways", 20.0, 0.8)]
    assert result.removed["less_specific"] == 2 and result.removed["other_width"] == 1
    every_width = scan_small(grid, include_all=True)
    assert sorted(o.spread_width for o in every_width.opportunities) == [10.0, 20.0]
    assert len({o.id for o in every_width.opportunities}) == 2


def test_removed_counts_add_up_to_the_grid_and_name_every_filter():
    result = run(config=DEFAULTS, regime="medium", include_all=False)
    assert sum(result.removed.values()) + result.matching_count == GRID.rows
    assert list(result.removed) == list(FILTERS)
    assert result.to_json()["removed_by_filter"]["impossible"] == GRID.skipped_rows
    lines = removed_lines(result)
    assert any(line.startswith("  removed by regime: ") for line in lines)
    assert any("outside their entry window" in line for line in lines)


def test_held_basis_and_the_interval_lower_bound_change_what_passes():
    managed = run(config=DEFAULTS, include_all=True)
    held_cfg = dataclasses.replace(DEFAULTS, scan=dataclasses.replace(DEFAULTS.scan, win_rate_basis="held"))
    held = run(config=held_cfg, include_all=True)
    assert {o.basis for o in managed.opportunities} == {"managed"} and held.opportunities
    assert all(o.trade_score == pytest.approx(float(GRID.frame.loc[
        (GRID.frame["dte"] == o.dte) & (GRID.frame["band"] == o.band) & (GRID.frame["spread_type"] == o.spread_type)
        & (GRID.frame["flow_mode"] == o.flow_mode) & (GRID.frame["spread_width"] == o.spread_width)
        & (GRID.frame["regime"] == o.regime) & (GRID.frame["trend"] == o.trend), "trade_score"].iloc[0]))
        for o in held.opportunities)
    strict = dataclasses.replace(DEFAULTS, scan=dataclasses.replace(DEFAULTS.scan, use_interval_lower_bound=True))
    bounded = run(config=strict, include_all=True)
    assert bounded.matching_count < managed.matching_count
    assert all(o.exit_win_rate_low >= DEFAULTS.scan.min_win_rate for o in bounded.opportunities)


def test_widths_off_the_strike_grid_are_refused_naming_both(tmp_path):
    grid = small_grid(tmp_path, {"spread_width": 25, "avg_max_risk": 2050, "roi": 0.2195}, {})
    result = scan_small(grid)
    assert [o.spread_width for o in result.opportunities] == [20.0]
    assert result.removed["off_chain_width"] == 1 and result.refused_widths == (25.0,)
    assert "  refused width(s) 25: not a multiple of NDX's strike increment 10" in removed_lines(result)


@pytest.mark.slow  # over 2 s: a real process or a whole replayed day; the full suite runs it
def test_the_bundled_grid_offers_no_impossible_row_and_no_repeated_setup_at_any_instant():
    # What a scan offers at an instant is the top N of the rows passing for the context, ordered by the window:
    # so every context's full passing list (--all) bounds what any instant can offer, and a spread of instants
    # over a week (every time of day, in and out of the session) checks the top-N cut.
    def check(result):
        ids = [o.id for o in result.opportunities]
        assert len(ids) == len(set(ids))
        for o in result.opportunities:
            assert 0 < o.credit < o.spread_width * 100
            assert abs(o.max_risk - (o.spread_width * 100 - o.credit)) <= 1
            assert 0 <= o.win_rate <= 1 and 0 <= o.exit_win_rate <= 1
        return len(ids)

    contexts = [(regime, trend, flow) for regime in ("very_low", "low", "medium", "high", "extreme")
                for trend, flow in (("sideways", "up"), ("up", "down"), ("down", None))]
    every = sum(check(run(config=DEFAULTS, regime=r, trend=t, flow=f, flow_0dte=f, include_all=True))
                for r, t, f in contexts)
    assert every > 10
    start = datetime(2019, 1, 2, 14, 30, tzinfo=UTC)
    for step in range(0, 7 * 24 * 60, 14 * 60 + 7):  # 12 instants, a different time of day each
        now = start + timedelta(minutes=step)
        for r, t, f in contexts:
            check(run(config=DEFAULTS, now=now, regime=r, trend=t, flow=f, flow_0dte=f))
    assert GRID.skipped_rows == 0 and not GRID.frame["impossible"].any()


def test_a_frame_of_plain_text_columns_filters_as_the_loaded_grid_does():
    """The filters read a text column through its distinct values: a column of plain strings (not a category, as
    a frame built by hand has) passes the same rows, with the same counts."""
    plain = GRID.frame.copy()
    for column in ("ticker", "band", "spread_type", "flow_mode", "regime", "trend", "entry_time_et"):
        plain[column] = plain[column].astype(object)
    for context in (dict(regime="low", trend="sideways", flow="down", flow_0dte="down"),
                    dict(regime="very_low", trend=None, flow=None, flow_0dte=None),
                    dict(regime="high", trend="up", flow="up", flow_0dte="flat")):
        counts, plain_counts = {}, {}
        loaded = filter_grid(GRID.frame, ticker="SPX", config=CONFIG, removed=counts, **context)
        by_hand = filter_grid(plain, ticker="SPX", config=CONFIG, removed=plain_counts, **context)
        assert list(by_hand.index) == list(loaded.index) and plain_counts == counts
        assert sum(counts.values()) + len(loaded) == len(GRID.frame)
