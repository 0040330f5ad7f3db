"""The grid builder's backtest: bands on real data, honest credits, no ITM fallback, outcomes, exits, groups."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from arch.data import nasdaq, sp500, vix

import reference_backtest
from spreadwatch.domain import pricing
from spreadwatch.domain.backtest import (
    BuildSpec,
    ChainBook,
    History,
    auto_trends,
    build_grid,
    calendar_steps,
    gap_flows,
    trailing_edges,
)
from spreadwatch.domain.market_rules import auto_trend
from spreadwatch.domain.vocabulary import BANDS
from spreadwatch.edges.calendar import MarketCalendar

CAL = MarketCalendar()


def independent_percentile(values: np.ndarray, q: float) -> float:
    """numpy's linear method written out: sort, h = (n - 1) q / 100, interpolate between neighbours."""
    xs = sorted(float(v) for v in values)
    h = (len(xs) - 1) * q / 100.0
    lo = int(np.floor(h))
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (h - lo) * (xs[hi] - xs[lo])


def all_sessions(first: date) -> np.ndarray:
    """The exchange's sessions from `first` for a dozen years (more than any history here holds)."""
    return np.array(CAL.sessions_in_range(first, min(CAL.last_day, first + timedelta(days=12 * 366))),
                    dtype="datetime64[D]")


def make_history(close: np.ndarray, *, open_: np.ndarray | None = None, high: np.ndarray | None = None,
                 low: np.ndarray | None = None, vol: float | np.ndarray = 20.0, vix_level: float | np.ndarray = 15.0,
                 start: date = date(2024, 1, 2)) -> History:
    n = close.size
    dates = all_sessions(start)[:n]
    open_ = close.copy() if open_ is None else open_
    high = np.maximum(open_, close) if high is None else high
    low = np.minimum(open_, close) if low is None else low
    return History(dates, open_, high, low, close, np.broadcast_to(vol, (n,)).astype(float),
                   np.broadcast_to(vix_level, (n,)).astype(float))


# ------------------------------------------------------------------------------------------------------------
# Bands on real data


@pytest.mark.parametrize("loader", [sp500, nasdaq], ids=["sp500", "nasdaq"])
@pytest.mark.parametrize("dte", [0, 1, 3, 5, 10])
def test_band_edges_match_independent_percentiles_on_arch_data(loader, dte: int) -> None:
    data = loader.load()
    close, open_ = data["Close"].to_numpy(float), data["Open"].to_numpy(float)
    n = close.size
    if dte == 0:
        moves, offset = close / open_ - 1.0, 0
    else:
        moves, offset = close[dte:] / close[:-dte] - 1.0, dte
    pcts = [p for band in BANDS.values() for p in band]
    edges = trailing_edges(moves, 1, n, offset, 100, pcts)
    checked = 0
    for t in range(0, n, 7):  # every 7th entry keeps the pure-Python reference quick
        if dte == 0:
            window = close[t - 100:t] / open_[t - 100:t] - 1.0 if t >= 100 else None
        else:
            ends = np.arange(dte, t)  # moves ending at rows dte..t-1: known at the open of t
            window = close[ends[-100:]] / close[ends[-100:] - dte] - 1.0 if ends.size >= 100 else None
        if window is None:
            assert np.all(np.isnan(edges[t]))
            continue
        expected = [independent_percentile(window, p) for p in pcts]
        np.testing.assert_allclose(edges[t], expected, rtol=0, atol=1e-9)
        checked += 1
    assert checked > 600


def test_grid_band_moves_are_the_latest_window_edges() -> None:
    data = sp500.load().iloc[-400:]
    hist = History(data.index.values.astype("datetime64[D]"), *(data[c].to_numpy(float) for c in
                   ("Open", "High", "Low", "Close")), np.full(400, 20.0), np.full(400, 15.0))
    res = build_grid(hist, all_sessions(hist.dates[0].item()), BuildSpec("SPX", dtes=(3,), bands=("P97",),
                     widths=(25.0,), strike_increment=5.0))
    close = hist.close
    last = close[3:] / close[:-3] - 1.0
    assert res.frame["band_lower_move"].iloc[0] == pytest.approx(independent_percentile(last[-100:], 1.5), abs=1e-12)
    assert res.frame["band_upper_move"].iloc[0] == pytest.approx(independent_percentile(last[-100:], 98.5), abs=1e-12)


# ------------------------------------------------------------------------------------------------------------
# Honest rows on real data (S&P 500 with the real VIX as its vol index)


@pytest.fixture(scope="module")
def real_grid() -> pd.DataFrame:
    px = sp500.load()
    v = vix.load()["vix"]
    px = px.loc[px.index >= v.index[0]]
    hist = History(px.index.values.astype("datetime64[D]"), *(px[c].to_numpy(float) for c in
                   ("Open", "High", "Low", "Close")), v.reindex(px.index).to_numpy(float),
                   v.reindex(px.index).to_numpy(float))
    spec = BuildSpec("SPX", widths=(5.0, 10.0, 25.0, 50.0), strike_increment=5.0)
    return build_grid(hist, all_sessions(hist.dates[0].item()), spec).frame


def test_no_row_claims_credit_at_or_above_the_width(real_grid: pd.DataFrame) -> None:
    assert len(real_grid) > 1000
    assert (real_grid["avg_credit"] > 0).all()
    assert (real_grid["avg_credit"] < real_grid["spread_width"] * 100).all()


def test_no_row_has_roi_above_the_arithmetic_maximum(real_grid: pd.DataFrame) -> None:
    width = real_grid["spread_width"] * 100
    arithmetic_max = real_grid["avg_credit"] / (width - real_grid["avg_credit"])
    assert (real_grid["roi"] <= arithmetic_max + 1e-12).all()
    np.testing.assert_allclose(real_grid["avg_credit"] + real_grid["avg_max_risk"], width)
    # The original's shipped grid claimed ROI up to 393 % on impossible credits; here even the richest row is a
    # credit below the width.
    best = real_grid.loc[real_grid["roi"].idxmax()]
    assert best["avg_credit"] < best["spread_width"] * 100


def test_counts_and_ratios_are_consistent(real_grid: pd.DataFrame) -> None:
    g = real_grid
    assert ((g["n_wins"] <= g["n_trades"]) & (g["n_wins"] >= 0)).all()
    np.testing.assert_allclose(g["win_rate"], g["n_wins"] / g["n_trades"])
    assert g["win_rate"].between(0, 1).all() and g["exit_win_rate"].between(0, 1).all()
    assert (g["max_drawdown"] >= 0).all()
    assert (g["low_sample"] == (g["n_effective"] < 30)).all()
    assert ((g["n_effective"] <= g["n_trades"]) & (g["n_effective"] > 0)).all()
    assert ((g["exit_win_rate_low"] <= g["exit_win_rate"]) & (g["exit_win_rate"] <= g["exit_win_rate_high"])).all()
    np.testing.assert_allclose(g["exit_win_rate"], g["exit_n_wins"] / g["n_trades"])
    assert set(g["credit_source"]) == {"model"}
    score = 0.25 * g["roi"] * 100 + 8 * g["sharpe"] + 0.6 * g["win_rate"] * 100 + 20000 / g["avg_max_risk"]
    np.testing.assert_allclose(g["trade_score"], score)
    exit_score = (0.25 * g["roi"] * 100 + 8 * g["exit_sharpe"] + 0.6 * g["exit_win_rate"] * 100
                  + 20000 / g["avg_max_risk"])
    np.testing.assert_allclose(g["exit_trade_score"], exit_score)
    # Expected return on risk is the average P&L over the average max risk, never the maximum credit / risk.
    np.testing.assert_allclose(g["exit_expected_return"], g["exit_avg_pnl"] / g["avg_max_risk"])
    assert (g["exit_expected_return"] <= g["roi"] + 1e-12).all()


def test_regime_rows_partition_the_all_row(real_grid: pd.DataFrame) -> None:
    g = real_grid[(real_grid["trend"] == "all")]
    key = ["dte", "band", "spread_type", "flow_mode", "spread_width"]
    per_regime = g[g["regime"] != "all"].groupby(key)["n_trades"].sum()
    overall = g[g["regime"] == "all"].set_index(key)["n_trades"]
    # Every entry has a known VIX here except the very first, so the regimes add up to `all`.
    assert (per_regime.reindex(overall.index).fillna(0) == overall).all()
    assert set(g["regime"]) >= {"very_low", "low", "medium", "high", "all"}


# ------------------------------------------------------------------------------------------------------------
# Hand-made histories


def rising(n: int = 60, step: float = 0.004) -> np.ndarray:
    return 1000.0 * (1 + step) ** np.arange(n)


def test_no_otm_strike_beyond_the_band_means_no_trade_not_an_itm_fallback() -> None:
    # Every trailing move is positive, so the put side's band edge is above the price: the "short put" would be
    # in the money. There must be no put trades (and they are counted); call spreads still trade.
    hist = make_history(rising())
    spec = BuildSpec("T", dtes=(1,), bands=("P95",), widths=(10.0,), strike_increment=1.0, window=20)
    res = build_grid(hist, all_sessions(hist.dates[0].item()), spec)
    assert set(res.frame["spread_type"]) == {"call_spread"}
    assert res.no_trade["no_otm_strike"] > 0


def chain_for(entry: date, expiry: date, strikes: list[float], bid: float, ask: float) -> dict:
    arr = np.array(strikes, dtype=float)
    return {"put": (arr, np.full(arr.size, bid), np.full(arr.size, ask)),
            "call": (arr, np.full(arr.size, bid), np.full(arr.size, ask))}


def test_chain_with_only_itm_strikes_beyond_the_band_gives_no_trades() -> None:
    close = 1000.0 + np.tile([0.0, -20.0], 40)[:60]  # alternating moves: band edges about +-2 %
    hist = make_history(close)
    sessions = all_sessions(hist.dates[0].item())
    spec = BuildSpec("T", dtes=(1,), bands=("P95",), spread_types=("put_spread",), flow_modes=("neutral",),
                     widths=(10.0,), strike_increment=1.0, window=20)
    quotes = {}
    for t in range(len(hist.dates) - 1):
        entry, expiry = hist.dates[t].item(), hist.dates[t + 1].item()
        spot = hist.open[t]
        # Puts only ABOVE the spot (in the money), with rich bids: the original's fallback would have sold them.
        quotes[(entry, expiry)] = chain_for(entry, expiry, [spot + 10, spot + 20, spot + 30], 40.0, 1.0)
    res = build_grid(hist, sessions, spec, chains=ChainBook(quotes))
    assert res.frame.empty
    assert res.no_trade["no_otm_strike"] > 20


def test_chain_credit_is_short_bid_minus_long_ask_of_the_chosen_expiration_only() -> None:
    close = 1000.0 + np.tile([0.0, -20.0], 40)[:60]
    hist = make_history(close)
    sessions = all_sessions(hist.dates[0].item())
    spec = BuildSpec("T", dtes=(1,), bands=("P95",), spread_types=("put_spread",), flow_modes=("neutral",),
                     widths=(10.0,), strike_increment=1.0, window=20)
    quotes = {}
    strikes = [float(k) for k in range(900, 1001, 10)]
    for t in range(len(hist.dates) - 2):
        entry = hist.dates[t].item()
        quotes[(entry, hist.dates[t + 1].item())] = {
            "put": (np.array(strikes), np.full(len(strikes), 1.50), np.full(len(strikes), 0.40))}
        # Another expiration with absurd quotes: must never be mixed in.
        quotes[(entry, hist.dates[t + 2].item())] = {
            "put": (np.array(strikes), np.full(len(strikes), 30.0), np.full(len(strikes), 0.0))}
    res = build_grid(hist, sessions, spec, chains=ChainBook(quotes))
    row = res.frame[(res.frame["regime"] == "all") & (res.frame["trend"] == "all")].iloc[0]
    assert row["avg_credit"] == pytest.approx(110.0)  # (1.50 - 0.40) x 100
    assert row["credit_source"] == "chains"


def test_held_to_expiry_pnl_follows_the_payoff() -> None:
    # Flat market, then one crash through both put strikes on an expiry day.
    n = 60
    close = np.full(n, 1000.0)
    close[1::2] = 1002.0  # small moves so the band edges are about -0.2 %
    close[-1] = 900.0
    hist = make_history(close)
    spec = BuildSpec("T", dtes=(1,), bands=("P100",), spread_types=("put_spread",), flow_modes=("neutral",),
                     widths=(10.0,), strike_increment=1.0, window=20, stop_loss_mult=100.0)
    res = build_grid(hist, all_sessions(hist.dates[0].item()), spec)
    row = res.frame[(res.frame["regime"] == "all") & (res.frame["trend"] == "all")].iloc[0]
    n_trades = int(row["n_trades"])
    assert int(row["n_wins"]) == n_trades - 1  # only the entry expiring into the crash loses
    total = row["avg_pnl"] * n_trades
    credits = row["avg_credit"] * n_trades
    assert total == pytest.approx(credits - 1000.0)  # the loser paid the full width
    assert row["max_drawdown"] >= 1000.0 - row["avg_credit"] * 2


def test_intraday_breach_triggers_the_stop_even_when_the_close_recovers() -> None:
    n = 60
    close = np.full(n, 1000.0)
    close[1::2] = 1003.0
    low = np.minimum(close, np.roll(close, 1))
    low[-1] = 900.0  # the last session dips through the strikes and closes back at the top of its range
    hist = make_history(close, low=low)
    spec = BuildSpec("T", dtes=(1,), bands=("P100",), spread_types=("put_spread",), flow_modes=("neutral",),
                     widths=(10.0,), strike_increment=1.0, window=20, stop_loss_mult=2.0)
    res = build_grid(hist, all_sessions(hist.dates[0].item()), spec)
    row = res.frame[(res.frame["regime"] == "all") & (res.frame["trend"] == "all")].iloc[0]
    assert row["win_rate"] == 1.0  # held to expiry, nothing was lost at the close
    assert row["exit_win_rate"] < 1.0  # but two trades saw the dip: the stop fired
    assert row["exit_avg_pnl"] < row["avg_pnl"]


def test_profit_target_exits_early_at_the_close_mark() -> None:
    hist = make_history(np.full(60, 1000.0) + np.tile([0.0, 5.0], 30))
    spec = BuildSpec("T", dtes=(5,), bands=("P95",), spread_types=("put_spread",), flow_modes=("neutral",),
                     widths=(10.0,), strike_increment=1.0, window=20, profit_target_pct=0.01, time_exit_dte=0)
    res = build_grid(hist, all_sessions(hist.dates[0].item()), spec)
    row = res.frame[(res.frame["regime"] == "all") & (res.frame["trend"] == "all")].iloc[0]
    assert row["exit_win_rate"] == 1.0
    assert 0 < row["exit_avg_pnl"] < row["avg_pnl"]  # took a small profit early instead of the whole credit


def test_model_credit_is_the_vertical_value_rounded_down_to_the_tick() -> None:
    close = 1000.0 + np.tile([0.0, -20.0], 40)[:60]
    vol = 25.0 + np.arange(60) * 0.1
    hist = make_history(close, vol=vol)
    t = 40
    one_day = hist.dates[t].item()
    spec = BuildSpec("T", dtes=(3,), bands=("P95",), spread_types=("put_spread",), flow_modes=("neutral",),
                     widths=(20.0,), strike_increment=5.0, window=20, first_entry=one_day, last_entry=one_day)
    res = build_grid(hist, all_sessions(hist.dates[0].item()), spec)
    row = res.frame[(res.frame["regime"] == "all") & (res.frame["trend"] == "all")].iloc[0]
    assert row["n_trades"] == 1
    # By hand: spot at the open, edge from the 20 three-session moves known by the previous close, IV from the
    # previous close of the vol index, 3 DTE entered at the open = 4 sessions of variance.
    ends = np.arange(3, t)[-20:]
    edge = independent_percentile(close[ends] / close[ends - 3] - 1.0, 2.5)
    short = np.floor(close[t] * (1 + edge) / 5.0 + 1e-9) * 5.0
    value = float(pricing.vertical_value(False, close[t], short, short - 20, 4 / 252, vol[t - 1]))
    assert value > 5
    assert row["avg_credit"] == pytest.approx(np.floor(value / 5.0) * 5.0)
    assert row["avg_max_risk"] == pytest.approx(2000.0 - row["avg_credit"])


# ------------------------------------------------------------------------------------------------------------
# Entry context


def test_auto_trend_matches_the_market_rule_on_every_prefix() -> None:
    close = sp500.load()["Close"].to_numpy(float)[:300]
    ours = auto_trends(close)
    for t in range(close.size):
        assert ours[t] == auto_trend(list(close[: t + 1]))


def test_gap_flow_uses_the_dead_band() -> None:
    flows = gap_flows(np.array([100.0, 100.05, 101.0, 99.0]), np.array([100.0, 100.0, 100.0, 100.0]), 0.001)
    assert list(flows) == ["unknown", "flat", "up", "down"]


def test_flow_modes_select_entries_by_gap() -> None:
    rng = np.random.default_rng(7)
    close = 1000 * np.exp(np.cumsum(rng.normal(0, 0.01, 200)))
    open_ = np.concatenate(([close[0]], close[:-1] * np.exp(rng.normal(0, 0.004, 199))))
    hist = make_history(close, open_=open_, high=np.maximum(open_, close) * 1.002, low=np.minimum(open_, close) * 0.998)
    spec = BuildSpec("T", dtes=(1,), bands=("P95",), widths=(10.0,), strike_increment=1.0, window=20)
    frame = build_grid(hist, all_sessions(hist.dates[0].item()), spec).frame
    rows = frame[(frame["regime"] == "all") & (frame["trend"] == "all")].set_index(["spread_type", "flow_mode"])
    n = rows["n_trades"]
    assert n["put_spread", "with_flow"] + n["put_spread", "against_flow"] <= n["put_spread", "neutral"]
    assert n["iron_condor", "with_flow"] == n["iron_condor", "against_flow"]
    assert n["put_spread", "with_flow"] != n["put_spread", "against_flow"]


def test_expiry_counts_trading_sessions_across_thanksgiving() -> None:
    dates = np.array(["2025-11-25", "2025-11-26", "2025-11-28", "2025-12-01"], dtype="datetime64[D]")
    idx = calendar_steps(dates, all_sessions(date(2025, 11, 1)), 2)
    assert list(idx[1]) == [1, 2, 3]  # Wednesday + 1 session = Friday (Thursday is a holiday)
    assert idx[3, 1] == -1  # no bar after the data's end


def test_missing_bar_between_entry_and_expiry_is_not_bridged_by_row_offsets() -> None:
    dates = np.array(["2025-11-24", "2025-11-26", "2025-11-28"], dtype="datetime64[D]")  # 11-25 missing
    idx = calendar_steps(dates, all_sessions(date(2025, 11, 1)), 1)
    assert idx[0, 1] == -1  # 1 DTE from the 24th expires the 25th, which has no bar: no trade
    assert idx[1, 1] == 2


def test_data_window_is_the_entry_sessions_tested_per_dte_not_the_history() -> None:
    hist = make_history(np.full(80, 1000.0) + np.tile([0.0, 5.0], 40))
    d = [h.item() for h in hist.dates]
    spec = BuildSpec("T", dtes=(1, 3), bands=("P95",), spread_types=("put_spread",), flow_modes=("neutral",),
                     widths=(10.0,), strike_increment=1.0, window=20, first_entry=d[30], last_entry=d[77])
    res = build_grid(hist, all_sessions(d[0]), spec)
    window = {dte: (set(rows["data_start"]), set(rows["data_end"])) for dte, rows in res.frame.groupby("dte")}
    # 1 DTE: entries d[30] .. d[77] as asked (expiry d[78]); 3 DTE: the expiry bars end the entries at d[76]
    # (the data's last session d[79] is the 3rd after it). The history read is d[0] .. d[79].
    assert window[1] == ({str(d[30])}, {str(d[77])})
    assert window[3] == ({str(d[30])}, {str(d[76])})
    assert (res.history_start, res.history_end) == (str(d[0]), str(d[79]))
    # Without an entry range the window starts once 20 trailing moves exist (row 20 + DTE) and ends at the data.
    res = build_grid(hist, all_sessions(d[0]), BuildSpec(**{**spec.__dict__, "first_entry": None, "last_entry": None}))
    row = res.frame[res.frame["dte"] == 3].iloc[0]
    assert (row["data_start"], row["data_end"]) == (str(d[23]), str(d[76]))


# ------------------------------------------------------------------------------------------------------------
# Against an independent re-implementation (tests/reference_backtest.py: a scalar per-trade loop, math only)


@pytest.fixture(scope="module")
def arch_lists():
    return reference_backtest.arch_history()


@pytest.mark.parametrize("name", list(reference_backtest.CONFIGS))
def test_held_and_managed_win_rates_match_an_independent_per_trade_loop(arch_lists, name: str) -> None:
    cfg = reference_backtest.CONFIGS[name]
    days, o, h, lo, c, vol = arch_lists
    sessions = CAL.sessions_in_range(days[0], date(2019, 2, 1))
    first = date(2014, 1, 6)
    ref = reference_backtest.run(cfg, days, o, h, lo, c, vol, sessions, first)
    row = reference_backtest.builder_row(cfg, days, o, h, lo, c, vol, sessions, first, BuildSpec, History,
                                         build_grid)
    assert ref.trades > 500 and int(row["n_trades"]) == ref.trades
    assert abs(row["win_rate"] - ref.held_win_rate) <= 0.01
    assert abs(row["exit_win_rate"] - ref.managed_win_rate) <= 0.01
    assert row["avg_credit"] == pytest.approx(ref.credit_sum / ref.trades, abs=0.01)
    assert row["avg_pnl"] == pytest.approx(ref.held_pnl_sum / ref.trades, abs=0.5)
    assert row["exit_avg_pnl"] == pytest.approx(ref.managed_pnl_sum / ref.trades, abs=0.5)
    # Managed figures are the ones the exit rules enforce; with a stop at 2x credit they are lower.
    assert row["exit_win_rate"] < row["win_rate"]


# ------------------------------------------------------------------------------------------------------------
# Costs, episodes and the interval


def test_costs_come_off_the_fill_at_entry_and_every_managed_exit() -> None:
    hist = make_history(np.full(60, 1000.0) + np.tile([0.0, 5.0], 30))
    sessions = all_sessions(hist.dates[0].item())
    base = dict(dtes=(5,), bands=("P95",), spread_types=("put_spread",), flow_modes=("neutral",), widths=(10.0,),
                strike_increment=1.0, window=20, profit_target_pct=1.0, stop_loss_mult=100.0)
    costs = dict(commission_per_leg=0.65, slippage_per_leg=5.0)

    def row(**kw):
        frame = build_grid(hist, sessions, BuildSpec("T", **base, **kw)).frame
        return frame[(frame["regime"] == "all") & (frame["trend"] == "all")].iloc[0]

    # Time exit at 1 session to expiry: every trade closes early, so each pays a closing trade.
    f, p = row(time_exit_dte=1), row(time_exit_dte=1, **costs)
    assert int(p["n_trades"]) == int(f["n_trades"]) > 10
    assert p["avg_credit"] == pytest.approx(f["avg_credit"] - 10.0)  # two legs x $5 off the mid
    assert p["avg_max_risk"] == pytest.approx(1000.0 - p["avg_credit"])
    # Held: the smaller fill and the entry commission; cash settlement, no closing trade.
    assert p["avg_pnl"] == pytest.approx(f["avg_pnl"] - 10.0 - 1.30)
    # Managed: the same, plus the closing trade's commission and slippage (2 legs x $5.65).
    assert p["exit_avg_pnl"] == pytest.approx(f["exit_avg_pnl"] - 10.0 - 1.30 - 11.30)
    # No exit rule met before expiry (target at 100 %, stop at 100x, no time exit): settled, no closing trade.
    f, p = row(time_exit_dte=5), row(time_exit_dte=5, **costs)
    assert p["exit_avg_pnl"] == pytest.approx(p["avg_pnl"]) and f["exit_avg_pnl"] == pytest.approx(f["avg_pnl"])


def test_overlapping_losses_are_one_episode_and_separate_ones_are_not() -> None:
    from spreadwatch.domain.backtest import loss_episodes

    masks = np.ones((1, 6), dtype=bool)
    lost = np.array([True, True, False, True, True, True])
    entry = np.array([0, 1, 2, 10, 11, 20])
    exits = np.array([3, 4, 5, 12, 13, 21])
    # Trades 0 and 1 overlap (1 entered before 0 exited), 3 and 4 overlap, 5 stands alone: 3 episodes.
    assert list(loss_episodes(masks, lost, entry, exits)) == [3]
    # Masked out, trade 1 no longer chains: 0 | 3-4 | 5.
    masks[0, 1] = False
    assert list(loss_episodes(masks, lost, entry, exits)) == [3]
    assert list(loss_episodes(np.ones((1, 6), dtype=bool), np.zeros(6, dtype=bool), entry, exits)) == [0]


def test_wilson_interval_matches_the_formula_and_widens_with_fewer_effective_trades() -> None:
    from spreadwatch.domain.backtest import wilson_interval

    low, high = wilson_interval(np.array([0.966]), np.array([1176.0]))
    z = 1.959963984540054
    n, p = 1176.0, 0.966
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert (low[0], high[0]) == pytest.approx((centre - half, centre + half))
    # 40 losses in 9 episodes: the effective count is 1176 x 9 / 40 = 264.6 and the interval about twice as wide.
    low_e, high_e = wilson_interval(np.array([0.966]), np.array([1176.0 * 9 / 40]))
    assert high_e[0] - low_e[0] > 2 * (high[0] - low[0]) - 1e-9
    assert low_e[0] == pytest.approx(0.937, abs=0.002)


def test_row_effective_count_divides_trades_by_the_mean_loss_episode(real_grid: pd.DataFrame) -> None:
    g = real_grid[real_grid["exit_n_wins"] < real_grid["n_trades"]]
    losses = g["n_trades"] - g["exit_n_wins"]
    np.testing.assert_allclose(g["n_effective"], g["n_trades"] * g["exit_loss_episodes"] / losses)
    assert ((g["exit_loss_episodes"] >= 1) & (g["exit_loss_episodes"] <= losses)).all()
    # Multi-session trades overlap: some of their losses come in runs.
    five = g[(g["dte"] == 5) & (g["regime"] == "all") & (g["trend"] == "all")]
    assert (five["exit_loss_episodes"] < five["n_trades"] - five["exit_n_wins"]).any()


def test_a_width_off_the_strike_grid_is_refused_naming_both() -> None:
    with pytest.raises(ValueError, match=r"width 25 is not a multiple of NDX's strike increment 10"):
        BuildSpec("NDX", widths=(20.0, 25.0), strike_increment=10.0)
