"""The grid builder's backtest: every config over daily history, vectorized, honest.

Pure: takes arrays (daily bars of the underlying, vol index and VIX closes, the XNYS session list, optional option
chain quotes) and returns the canonical grid rows plus the count of entries that gave no trade and why. No I/O, no
clock, no calendar library (the caller passes the sessions). The method, in the order it runs (docs/grid-builder.md
says the same for people):

- Entry: at the OPEN of every session t (daily bars; `entry_time_et` 09:30) once 100 trailing moves exist.
- Inputs known at entry only: band edges from moves that ended by the previous close; IV = the ticker's vol index
  at the previous close; regime = the hysteresis rule (regime.py) run over VIX closes, as of the previous close;
  trend = the `auto` rule (market.py) on closes up to the previous close; flow = sign of open[t] / close[t-1] − 1
  with the ±0.1 % dead band (daily bars have no "last 10 minutes", so 0 DTE uses the same gap rule).
- Bands: the tail percentiles (numpy linear method) of the trailing 100 signed moves over the DTE horizon
  (bands.py): close-to-close over N sessions for N ≥ 1, open-to-close for 0 DTE. These are the moves the scanner
  uses to suggest strikes, so the backtest tests the scanner's own rule.
- Strikes: short put at open·(1 + lower edge) snapped DOWN, short call at open·(1 + upper edge) snapped UP to the
  strike increment; long legs one width further. A short strike not strictly out of the money is no trade
  (`no_otm_strike`), never an in-the-money fallback.
- Expiry: the N-th XNYS session after the entry session; the trade needs that session's close in the data.
- Credit: model (pricing.py: Black-Scholes-Merton, vol index as ATM IV plus the skew), rounded DOWN to the 0.05
  tick ($5 per contract) per vertical; less than one tick is no trade (`no_credit`). Or, with chains, the chosen
  expiration only: short bid − long ask at the entry session's first snapshot (see `ChainBook`).
- Held to expiry: P&L = credit − payoff at the expiry close. A win is P&L ≥ 0 (break-even counts as a win).
- With exit rules, walking the sessions t..expiry: time exit at the open of the first session with sessions to
  expiry ≤ time_exit_dte (only for entries above that DTE, as the exporter's rules do); a stop when the open (gap)
  or the session's worst intraday mark (spread valued at the session's low AND high, with the larger of the two
  surrounding vol index closes and the time left at the open) is at or below −stop_loss_mult × credit, filled at
  the open's mark for a gap and at the stop level otherwise; profit target when the close mark reaches
  profit_target_pct × credit, filled at that mark. Marks are always the model's. The stop is checked before the
  target within a session (the pessimistic order).
- Per row: Sharpe = mean / sample std (ddof 1) of per-trade P&L held to expiry, per trade, not annualized (0 when
  fewer than 2 trades or no dispersion); max drawdown = the largest peak-to-trough fall of the cumulative P&L of
  one contract per trade in entry order (trades overlap in time for DTE > 0), a positive number of dollars;
  ROI = avg credit / avg max risk; low_sample = n_trades < `min_sample` (30).
- Window: `data_start`/`data_end` are the first and last entry session tested for the row's DTE (inside
  first_entry..last_entry, with a full trailing window and an expiry bar), not the history read: earlier history
  only feeds the bands, later history only the expiries. `BuildResult.history_start/_end` keep the history's span.

COORDINATION NOTE (lead engineer): this module has landed and other modules and tests depend on its names.
If your task lists this file as yours, extend it in place with small edits; do not rewrite or replace it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from spreadwatch.domain import pricing
from spreadwatch.domain import regime as regime_rules
from spreadwatch.domain.bands import band_edges, band_percentiles
from spreadwatch.domain.vocabulary import FLOW_MODES, REGIMES, SPREAD_TYPES, TRENDS
from spreadwatch.edges.gridfile import CANONICAL_COLUMNS, original_trade_score

ENTRY_TIME_ET = "09:30"
TICK_DOLLARS = 5.0  # 0.05 per unit of the index x 100
TREND_SMA_SESSIONS = 20  # the `auto` trend rule of market.py
TREND_DEAD_BAND = 0.01
NO_TRADE_REASONS = ("no_otm_strike", "no_credit", "no_long_strike", "no_chain", "impossible_credit", "no_vol")


@dataclass(frozen=True)
class History:
    """Daily bars of the underlying aligned with the vol index and VIX closes (NaN where missing).

    `dates` are XNYS session dates, ascending, one row per session present in the data."""

    dates: np.ndarray  # datetime64[D]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    vol_index: np.ndarray
    vix: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.dates)
        for name in ("open", "high", "low", "close", "vol_index", "vix"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"history.{name} has {len(getattr(self, name))} values for {n} dates")
        if n > 1 and not np.all(np.diff(self.dates.astype("datetime64[D]").astype(np.int64)) > 0):
            raise ValueError("history dates must be strictly ascending")


@dataclass(frozen=True)
class BuildSpec:
    ticker: str
    dtes: Sequence[int] = (0, 1, 3, 5, 10)
    bands: Sequence[str] = ("P95", "P97", "P98", "P99", "P100")
    spread_types: Sequence[str] = SPREAD_TYPES
    flow_modes: Sequence[str] = FLOW_MODES
    widths: Sequence[float] = (10.0, 25.0, 50.0)
    strike_increment: float = 10.0
    profit_target_pct: float = 0.50
    stop_loss_mult: float = 2.0
    time_exit_dte: int = 1
    boundaries: Mapping[str, float] = field(
        default_factory=lambda: {"low": 12.0, "medium": 16.0, "high": 20.0, "extreme": 30.0})
    hysteresis: float = 0.5
    flow_dead_band: float = 0.001
    window: int = 100
    min_sample: int = 30
    rate: float = pricing.RATE
    dividend_yield: float = pricing.DIVIDEND_YIELD
    first_entry: date | None = None  # entries from this session on (None: as soon as the window allows)
    last_entry: date | None = None


@dataclass(frozen=True)
class ChainBook:
    """Option quotes by (entry session, expiration): for each, puts and calls as sorted strike/bid/ask arrays.

    The builder keeps only the entry session's first snapshot (closest to the 09:30 entry) and only quotes of the
    one expiration the trade uses: expirations are never mixed."""

    quotes: Mapping[tuple[date, date], Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]]]


@dataclass
class BuildResult:
    frame: pd.DataFrame
    no_trade: dict[str, int]
    entries: int
    configs: int
    history_start: str = ""  # the history read (bands look back, expiries forward): not the backtest window
    history_end: str = ""


# ------------------------------------------------------------------------------------------------------------
# Inputs known at entry


def trailing_edges(moves: np.ndarray, first_end: int, n: int, horizon_end_offset: int, window: int,
                   percentiles: Sequence[float]) -> np.ndarray:
    """Band edges for every entry t in [0, n): percentiles of the last `window` moves among those that ended at
    or before t - 1. Move j ends at row j + `horizon_end_offset`. Rows without a full window get NaN.

    Returns shape (n, len(percentiles))."""
    out = np.full((n, len(percentiles)), np.nan)
    if moves.size < window:
        return out
    windows = np.lib.stride_tricks.sliding_window_view(moves, window)  # windows[i] = moves[i : i + window]
    # The window for entry t ends with move j = t - 1 - offset, so starts at i = t - offset - window.
    t = np.arange(n)
    i = t - horizon_end_offset - window
    ok = (i >= 0) & (i < windows.shape[0]) & (t >= first_end)
    if ok.any():
        vals = np.percentile(windows[i[ok]], percentiles, axis=1)  # (len(p), k)
        out[ok] = vals.T
    return out


def regimes_at_close(vix: np.ndarray, boundaries: Mapping[str, float], hysteresis: float) -> np.ndarray:
    """The hysteresis regime after each close (object array; None while unknown)."""
    values = [float(v) if np.isfinite(v) else None for v in vix]
    return np.array(regime_rules.run(values, boundaries, hysteresis), dtype=object)


def auto_trends(close: np.ndarray) -> np.ndarray:
    """market.auto_trend after each close: up/down/sideways vs the 20-close mean (itself included); None early."""
    n = close.size
    out = np.array([None] * n, dtype=object)
    if n < TREND_SMA_SESSIONS:
        return out
    csum = np.concatenate(([0.0], np.cumsum(close)))
    sma = (csum[TREND_SMA_SESSIONS:] - csum[:-TREND_SMA_SESSIONS]) / TREND_SMA_SESSIONS
    rel = close[TREND_SMA_SESSIONS - 1:] / sma - 1.0
    tr = np.where(rel > TREND_DEAD_BAND, "up", np.where(rel < -TREND_DEAD_BAND, "down", "sideways")).astype(object)
    out[TREND_SMA_SESSIONS - 1:] = tr
    return out


def gap_flows(open_: np.ndarray, close: np.ndarray, dead_band: float) -> np.ndarray:
    """Flow at the open: sign of open[t] / close[t-1] - 1 with the dead band; 'unknown' for the first row."""
    out = np.full(open_.size, "unknown", dtype=object)
    with np.errstate(divide="ignore", invalid="ignore"):
        change = open_[1:] / close[:-1] - 1.0
    out[1:] = np.where(change > dead_band, "up", np.where(change < -dead_band, "down",
                       np.where(np.isfinite(change), "flat", "unknown")))
    return out


def flow_mask(flows: np.ndarray, flow_mode: str, spread_type: str) -> np.ndarray:
    """Vectorized domain.flow_qualifies."""
    if flow_mode == "neutral":
        return np.ones(flows.size, dtype=bool)
    up, down = flows == "up", flows == "down"
    if spread_type == "iron_condor":
        return up | down
    if flow_mode == "with_flow":
        return down if spread_type == "put_spread" else up
    return up if spread_type == "put_spread" else down


def calendar_steps(dates: np.ndarray, sessions: np.ndarray, max_dte: int) -> np.ndarray:
    """idx[t, j]: the history row of the j-th XNYS session after row t's session (j = 0..max_dte), -1 where that
    session has no bar (a gap or past the data's end) or row t is not a session."""
    dates = dates.astype("datetime64[D]")
    sessions = np.asarray(sessions).astype("datetime64[D]")
    pos = np.searchsorted(sessions, dates)
    is_session = (pos < sessions.size) & (sessions[np.minimum(pos, sessions.size - 1)] == dates)
    row_of_pos = np.full(sessions.size + max_dte + 1, -1, dtype=np.int64)
    row_of_pos[pos[is_session]] = np.flatnonzero(is_session)
    steps = pos[:, None] + np.arange(max_dte + 1)[None, :]
    idx = row_of_pos[np.minimum(steps, row_of_pos.size - 1)]
    idx[~is_session] = -1
    return idx


# ------------------------------------------------------------------------------------------------------------
# One side (put or call vertical) of one (dte, band, width): credits and the marks the exit rules need


def _side_marks(is_call: bool, hist: History, rows: np.ndarray, idx: np.ndarray, dte: int,
                short: np.ndarray, long_: np.ndarray, spec: BuildSpec) -> dict[str, np.ndarray]:
    """Model values (dollars per contract to buy back) at each step j = 0..dte of each trade: at the open (j >= 1),
    at the session's low and high (worst case) and at the close. Shape (n_trades, dte + 1); NaN where no bar."""
    k = idx[rows, : dte + 1]  # (m, dte + 1)
    have = k >= 0
    kk = np.where(have, k, 0)
    prev = np.maximum(kk - 1, 0)
    steps = np.arange(dte + 1)[None, :]
    t_open = (dte - steps + 1) / pricing.SESSIONS_PER_YEAR
    t_close = (dte - steps) / pricing.SESSIONS_PER_YEAR
    vol_close = hist.vol_index[kk]
    vol_prev = hist.vol_index[prev]
    vol_worst = np.fmax(vol_prev, vol_close)
    s, lg = short[:, None], long_[:, None]

    def value(spot: np.ndarray, t: np.ndarray, vol: np.ndarray) -> np.ndarray:
        v = pricing.vertical_value(is_call, spot, s, lg, np.broadcast_to(t, spot.shape), vol,
                                   spec.rate, spec.dividend_yield)
        return np.where(have, v, np.nan)

    return {
        "open": value(hist.open[kk], t_open, vol_prev),
        "low": value(hist.low[kk], t_open, vol_worst),
        "high": value(hist.high[kk], t_open, vol_worst),
        "close": value(hist.close[kk], t_close, vol_close),
    }


def _exit_pnl(credit: np.ndarray, risk: np.ndarray, marks: dict[str, np.ndarray], dte: int,
              spec: BuildSpec) -> np.ndarray:
    """P&L per trade with the exit rules applied session by session (see the module docstring)."""
    m = credit.size
    done = np.zeros(m, dtype=bool)
    pnl = np.full(m, np.nan)
    stop_level = np.maximum(-spec.stop_loss_mult * credit, -risk)
    target = spec.profit_target_pct * credit
    time_exit_step = dte - spec.time_exit_dte if dte > spec.time_exit_dte else None
    for j in range(dte + 1):
        p_open = credit - marks["open"][:, j]
        p_worst = credit - np.fmax(marks["low"][:, j], marks["high"][:, j])
        p_close = credit - marks["close"][:, j]
        have = np.isfinite(p_close)
        if j >= 1:
            if time_exit_step is not None and j == time_exit_step:
                hit = ~done & have
                pnl[hit] = np.maximum(p_open[hit], -risk[hit])
                done |= hit
            gap = ~done & have & (p_open <= -spec.stop_loss_mult * credit)
            pnl[gap] = np.maximum(p_open[gap], -risk[gap])
            done |= gap
        stop = ~done & have & (p_worst <= -spec.stop_loss_mult * credit)
        pnl[stop] = stop_level[stop]
        done |= stop
        # On expiry day the close is the payoff and every open trade ends there.
        reached = (p_close >= target) if j < dte else np.ones(m, dtype=bool)
        hit = ~done & have & reached
        pnl[hit] = p_close[hit]
        done |= hit
    return pnl


# ------------------------------------------------------------------------------------------------------------
# Aggregation


def _group_stats(masks: np.ndarray, credit: np.ndarray, risk: np.ndarray, pnl: np.ndarray,
                 exit_pnl: np.ndarray) -> dict[str, np.ndarray]:
    """Row statistics for each boolean mask (groups x trades) over trades in entry order."""
    w = masks.astype(float)
    n = w.sum(axis=1)
    safe_n = np.maximum(n, 1)
    wins = w @ (pnl >= 0).astype(float)
    sum_pnl = w @ pnl
    mean_pnl = sum_pnl / safe_n
    ss = w @ (pnl * pnl)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = (ss - n * mean_pnl * mean_pnl) / np.maximum(n - 1, 1)
        std = np.sqrt(np.maximum(var, 0.0))
        sharpe = np.where((n >= 2) & (std > 1e-9 * np.maximum(np.abs(mean_pnl), 1.0)), mean_pnl / std, 0.0)
    cum = np.cumsum(w * pnl[None, :], axis=1)
    peak = np.maximum.accumulate(np.maximum(cum, 0.0), axis=1)
    drawdown = (peak - cum).max(axis=1) if cum.shape[1] else np.zeros(len(n))
    avg_credit = (w @ credit) / safe_n
    avg_risk = (w @ risk) / safe_n
    return {
        "n_trades": n.astype(int),
        "n_wins": wins.astype(int),
        "win_rate": wins / safe_n,
        "avg_credit": avg_credit,
        "avg_max_risk": avg_risk,
        "roi": np.where(avg_risk > 0, avg_credit / np.where(avg_risk > 0, avg_risk, 1.0), np.nan),
        "avg_pnl": mean_pnl,
        "sharpe": sharpe,
        "max_drawdown": drawdown,
        "exit_win_rate": (w @ (exit_pnl >= 0).astype(float)) / safe_n,
        "exit_avg_pnl": (w @ exit_pnl) / safe_n,
    }


# ------------------------------------------------------------------------------------------------------------
# Chains


def _chain_side(chains: ChainBook, entry: date, expiry: date, kind: str, spot: float, edge_price: float,
                width: float) -> tuple[float, float, float] | str:
    """(short strike, long strike, credit $/contract) from one expiration's quotes, or the no-trade reason."""
    quotes = chains.quotes.get((entry, expiry))
    if quotes is None or kind not in quotes:
        return "no_chain"
    strikes, bids, asks = quotes[kind]
    if kind == "put":
        # Beyond the band edge, away from the money, and out of the money: never an ITM fallback.
        ok = (strikes <= edge_price + 1e-9) & (strikes < spot) & np.isfinite(bids)
        if not ok.any():
            return "no_otm_strike"
        i = int(np.flatnonzero(ok)[-1])
        long_strike = strikes[i] - width
    else:
        ok = (strikes >= edge_price - 1e-9) & (strikes > spot) & np.isfinite(bids)
        if not ok.any():
            return "no_otm_strike"
        i = int(np.flatnonzero(ok)[0])
        long_strike = strikes[i] + width
    j = np.flatnonzero(np.abs(strikes - long_strike) < 1e-6)
    if j.size == 0 or not np.isfinite(asks[j[0]]):
        return "no_long_strike"
    credit = pricing.MULTIPLIER * (bids[i] - asks[j[0]])
    if credit <= 0:
        return "no_credit"
    return float(strikes[i]), float(long_strike), float(credit)


# ------------------------------------------------------------------------------------------------------------
# The build


def build_grid(hist: History, sessions: np.ndarray, spec: BuildSpec, chains: ChainBook | None = None,
               progress: Callable[[int, int], None] | None = None) -> BuildResult:
    """Backtest every config of `spec` over `hist` and return the canonical grid rows."""
    n = len(hist.dates)
    dates = hist.dates.astype("datetime64[D]")
    max_dte = max(spec.dtes)
    idx = calendar_steps(dates, sessions, max_dte)
    regime_after = regimes_at_close(hist.vix, spec.boundaries, spec.hysteresis)
    trend_after = auto_trends(hist.close)
    # Known at the open of t: the previous row's close state.
    regime_at = np.concatenate(([None], regime_after[:-1])).astype(object)
    trend_at = np.concatenate(([None], trend_after[:-1])).astype(object)
    flows = gap_flows(hist.open, hist.close, spec.flow_dead_band)
    iv_at = np.concatenate(([np.nan], hist.vol_index[:-1]))

    entry_ok = np.ones(n, dtype=bool)
    if spec.first_entry is not None:
        entry_ok &= dates >= np.datetime64(spec.first_entry, "D")
    if spec.last_entry is not None:
        entry_ok &= dates <= np.datetime64(spec.last_entry, "D")

    # Group masks over entries: flow handled per spread type; regime x trend here.
    regime_keys = (*REGIMES, "all")
    trend_keys = (*TRENDS, "all")
    rt_masks = np.array([(regime_at == r) if r != "all" else np.ones(n, dtype=bool) for r in regime_keys])
    tr_masks = np.array([(trend_at == tr) if tr != "all" else np.ones(n, dtype=bool) for tr in trend_keys])

    pct_list: list[float] = []
    for band in spec.bands:
        pct_list.extend(band_percentiles(band))
    history_start = str(dates[0]) if n else ""
    history_end = str(dates[-1]) if n else ""
    window_by_dte: dict[int, tuple[str, str]] = {}  # first and last entry session tested, per DTE

    rows: list[dict[str, object]] = []
    no_trade = dict.fromkeys(NO_TRADE_REASONS, 0)
    total = len(spec.dtes) * len(spec.bands) * len(spec.widths)
    done_count = 0
    entries_total = 0
    for dte in spec.dtes:
        if dte == 0:
            moves = hist.close / hist.open - 1.0
            offset = 0  # move j ends at row j
        else:
            moves = hist.close[dte:] / hist.close[:-dte] - 1.0 if n > dte else np.empty(0)
            offset = dte  # move j ends at row j + dte
        edges_all = trailing_edges(moves, 1, n, offset, spec.window, pct_list)
        latest_moves = moves[np.isfinite(moves)][-spec.window:]
        # Entry rows: a full window, an expiry bar, the entry's own bar, inside the requested entry range.
        expiry_rows = idx[:, dte]
        base = entry_ok & np.all(np.isfinite(edges_all), axis=1) & (expiry_rows >= 0) & (idx[:, 0] >= 0)
        rows_dte = np.flatnonzero(base)
        entries_total = max(entries_total, rows_dte.size)
        if rows_dte.size:
            window_by_dte[dte] = (str(dates[rows_dte[0]]), str(dates[rows_dte[-1]]))
        spot = hist.open[rows_dte]
        iv = iv_at[rows_dte]
        have_vol = np.isfinite(iv) & (iv > 0)
        t0 = (dte + 1) / pricing.SESSIONS_PER_YEAR
        s_expiry = hist.close[expiry_rows[rows_dte]]
        for b_i, band in enumerate(spec.bands):
            lower = edges_all[rows_dte, 2 * b_i]
            upper = edges_all[rows_dte, 2 * b_i + 1]
            if latest_moves.size >= spec.window:
                band_lo_now, band_hi_now = band_edges(latest_moves, band)
            else:
                band_lo_now = band_hi_now = np.nan
            for width in spec.widths:
                sides: dict[str, dict[str, np.ndarray]] = {}
                for kind in ("put", "call"):
                    is_call = kind == "call"
                    need = ("put_spread" if kind == "put" else "call_spread", "iron_condor")
                    if not any(s in spec.spread_types for s in need):
                        continue
                    edge = upper if is_call else lower
                    edge_price = spot * (1.0 + edge)
                    reason = np.full(rows_dte.size, "", dtype=object)
                    if chains is None:
                        inc = spec.strike_increment
                        if is_call:
                            short = np.ceil(edge_price / inc - 1e-9) * inc
                            otm = short > spot
                            long_ = short + width
                        else:
                            short = np.floor(edge_price / inc + 1e-9) * inc
                            otm = short < spot
                            long_ = short - width
                        reason[~otm] = "no_otm_strike"
                        reason[otm & ~have_vol] = "no_vol"
                        ok = reason == ""
                        raw = np.full(rows_dte.size, np.nan)
                        raw[ok] = pricing.vertical_value(is_call, spot[ok], short[ok], long_[ok], t0, iv[ok],
                                                         spec.rate, spec.dividend_yield)
                        credit = np.floor(np.round(raw / TICK_DOLLARS, 9)) * TICK_DOLLARS
                        reason[ok & ~(credit >= TICK_DOLLARS)] = "no_credit"
                    else:
                        short = np.full(rows_dte.size, np.nan)
                        long_ = np.full(rows_dte.size, np.nan)
                        credit = np.full(rows_dte.size, np.nan)
                        exp_dates = dates[expiry_rows[rows_dte]]
                        for i, r in enumerate(rows_dte):
                            got = _chain_side(chains, dates[r].item(), exp_dates[i].item(), kind,
                                              float(spot[i]), float(edge_price[i]), float(width))
                            if isinstance(got, str):
                                reason[i] = got
                            else:
                                short[i], long_[i], credit[i] = got
                        reason[(reason == "") & ~have_vol] = "no_vol"  # marks need the model
                    bad = (reason == "") & (credit >= pricing.MULTIPLIER * width)
                    reason[bad] = "impossible_credit"
                    ok = reason == ""
                    payoff_fn = pricing.call_spread_payoff if is_call else pricing.put_spread_payoff
                    payoff = np.where(ok, payoff_fn(s_expiry, np.nan_to_num(short), np.nan_to_num(long_)), np.nan)
                    marks = _side_marks(is_call, hist, rows_dte[ok], idx, dte, short[ok], long_[ok], spec)
                    sides[kind] = {"ok": ok, "credit": credit, "payoff": payoff, "reason": reason,
                                   "marks": marks}

                first_row = len(rows)
                for spread_type in spec.spread_types:
                    if spread_type == "iron_condor":
                        p, c = sides["put"], sides["call"]
                        ok = p["ok"] & c["ok"]
                        reason = np.where(p["reason"] != "", p["reason"], c["reason"])
                        credit = p["credit"] + c["credit"]
                        payoff = p["payoff"] + c["payoff"]
                        pos_p = np.cumsum(p["ok"]) - 1
                        pos_c = np.cumsum(c["ok"]) - 1
                        marks = {key: p["marks"][key][pos_p[ok]] + c["marks"][key][pos_c[ok]]
                                 for key in p["marks"]}
                        # Summed side marks: the condor's worst case is everything at the low or at the high.
                        bad = ok & (credit >= pricing.MULTIPLIER * width)
                        reason = np.where(bad, "impossible_credit", reason)
                        if bad.any():
                            keep = ~bad[ok]
                            marks = {key: v[keep] for key, v in marks.items()}
                            ok = ok & ~bad
                    else:
                        side = sides["put" if spread_type == "put_spread" else "call"]
                        ok, reason, credit, payoff, marks = (side["ok"], side["reason"], side["credit"],
                                                             side["payoff"], side["marks"])
                    for r_name in NO_TRADE_REASONS:
                        no_trade[r_name] += int(np.count_nonzero(reason == r_name))
                    trade_rows = rows_dte[ok]
                    if trade_rows.size == 0:
                        continue
                    credit_ok = credit[ok]
                    risk_ok = pricing.max_risk(credit_ok, width)
                    pnl = pricing.spread_pnl_at_expiry(credit_ok, payoff[ok])
                    exit_pnl = _exit_pnl(credit_ok, risk_ok, marks, dte, spec)
                    for flow_mode in spec.flow_modes:
                        fm = flow_mask(flows[trade_rows], flow_mode, spread_type)
                        masks = (rt_masks[:, None, trade_rows] & tr_masks[None, :, trade_rows] & fm[None, None, :])
                        masks = masks.reshape(-1, trade_rows.size)
                        stats = _group_stats(masks, credit_ok, risk_ok, pnl, exit_pnl)
                        for g in np.flatnonzero(stats["n_trades"] > 0):
                            r_key = regime_keys[g // len(trend_keys)]
                            t_key = trend_keys[g % len(trend_keys)]
                            row: dict[str, object] = {
                                "ticker": spec.ticker, "dte": dte, "band": band, "spread_type": spread_type,
                                "flow_mode": flow_mode, "spread_width": float(width),
                                "entry_time_et": ENTRY_TIME_ET, "regime": r_key, "trend": t_key,
                            }
                            for key, values in stats.items():
                                row[key] = values[g]
                            rows.append(row)
                # Band moves as of the data's end: what the scanner uses to suggest strikes for the next entry.
                for row in rows[first_row:]:
                    row["band_lower_move"] = band_lo_now
                    row["band_upper_move"] = band_hi_now
                done_count += 1
                if progress is not None:
                    progress(done_count, total)

    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(columns=list(CANONICAL_COLUMNS))
    else:
        frame["trade_score"] = original_trade_score(frame["roi"], frame["sharpe"], frame["win_rate"],
                                                    frame["avg_max_risk"])
        frame["credit_source"] = "chains" if chains is not None else "model"
        frame["low_sample"] = frame["n_trades"] < spec.min_sample
        frame["data_start"] = frame["dte"].map(lambda d: window_by_dte[d][0])
        frame["data_end"] = frame["dte"].map(lambda d: window_by_dte[d][1])
        frame = frame[list(CANONICAL_COLUMNS)]
    configs = len(spec.dtes) * len(spec.bands) * len(spec.spread_types) * len(spec.flow_modes) * len(spec.widths)
    return BuildResult(frame=frame, no_trade=no_trade, entries=entries_total, configs=configs,
                       history_start=history_start, history_end=history_end)
