"""The grid builder's backtest: every config over daily history, vectorized, honest.

Pure: takes arrays (daily bars of the underlying, vol index and VIX closes, the XNYS session list, optional option
chain quotes) and returns the canonical grid rows plus the count of entries that gave no trade and why. No I/O, no
clock, no calendar library (the caller passes the sessions). The method, in the order it runs (docs/grid-builder.md
says the same for people):

- Entry: at the OPEN of every session t (daily bars; `entry_time_et` 09:30, the only instant daily bars can price)
  once 100 trailing moves exist.
- Inputs known at entry only: band edges from moves that ended by the previous close; IV = the ticker's vol index
  at the previous close; regime = the hysteresis rule (regime.py) run over VIX closes, as of the previous close;
  trend = the `auto` rule (market.py) on closes up to the previous close; flow = sign of open[t] / close[t-1] − 1
  with the ±0.1 % dead band (daily bars have no "last 10 minutes", so 0 DTE uses the same gap rule).
- Bands: the tail percentiles (numpy linear method) of the trailing 100 signed moves over the DTE horizon
  (bands.py): close-to-close over N sessions for N ≥ 1, open-to-close for 0 DTE.
- Strikes: short put at open·(1 + lower edge) snapped DOWN, short call at open·(1 + upper edge) snapped UP to the
  strike increment (strikes.py); long legs one width further (the width is a multiple of the increment, so the
  long legs are on the chain too). A short strike not strictly out of the money is no trade (`no_otm_strike`).
- Expiry: the N-th XNYS session after the entry session; the trade needs that session's close in the data.
- Credit: model (pricing.py: Black-Scholes-Merton, vol index as ATM IV plus the skew) rounded DOWN to the 0.05
  tick ($5 per contract) per vertical, minus the slippage of each leg (the fill); a fill below one tick is no
  trade (`no_credit`). Or, with chains, the chosen expiration only: short bid − long ask at the entry session's
  first snapshot (see `ChainBook`), minus the slippage. Commission is paid per contract per leg at entry.
- Held to expiry: P&L = credit − payoff at the expiry close − entry commission (cash settlement at the close,
  no closing trade). A win is P&L ≥ 0 (break-even counts as a win).
- Managed (the config's exit rules), walking the sessions t..expiry: time exit at the open of the first session
  with sessions to expiry ≤ time_exit_dte (only for entries above that DTE, as the exporter's rules do); a stop
  when the open (gap) or the session's worst intraday mark (spread valued at the session's low AND high, with the
  larger of the two surrounding vol index closes and the time left at the open) is at or below −stop_loss_mult ×
  credit, filled at the open's mark for a gap and at the stop level otherwise; profit target when the close mark
  reaches profit_target_pct × credit, filled at that mark. The rules read the mark P&L (as a broker shows it);
  an exit before expiry then pays each leg's commission and slippage again. The stop is checked before the
  target within a session (the pessimistic order).
- Per row: Sharpe = mean / sample std (ddof 1) of per-trade P&L, per trade, not annualized (0 when fewer than 2
  trades or no dispersion), held and managed; expected return on risk = average P&L / average max risk (held
  and managed: what a trade returns on the capital it ties up, not the maximum return credit / risk = ROI);
  max drawdown (held) = the largest peak-to-trough fall of the cumulative P&L of one contract per trade in
  entry order, a positive number of dollars.
- Honest samples (managed outcomes): a loss episode is a run of losing trades whose holding periods (entry
  session to exit session) overlap, chained; it counts once. `n_effective` = n_trades × loss episodes / losses
  (the trade count divided by the mean size of a loss episode; n_trades when nothing was lost), and the 95 %
  interval of the managed win rate is the Wilson score interval on `n_effective` trades. `low_sample` =
  n_effective < `min_sample` (30).
- Window: `data_start`/`data_end` are the first and last entry session tested for the row's DTE.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from spreadwatch.domain import pricing
from spreadwatch.domain import regime as regime_rules
from spreadwatch.domain.bands import band_edges, band_percentiles
from spreadwatch.domain.strikes import snap_down, snap_up
from spreadwatch.domain.vocabulary import FLOW_MODES, REGIMES, SPREAD_TYPES, TRENDS, flow_qualifies_array
from spreadwatch.edges.gridfile import CANONICAL_COLUMNS, original_trade_score

ENTRY_TIME_ET = "09:30"
TICK_DOLLARS = 5.0  # 0.05 per unit of the index x 100
TREND_SMA_SESSIONS = 20  # the `auto` trend rule of market.py
TREND_DEAD_BAND = 0.01
WILSON_Z = 1.959963984540054  # two-sided 95 %
NO_TRADE_REASONS = ("no_otm_strike", "no_credit", "no_long_strike", "no_chain", "impossible_credit", "no_vol")
REGIME_KEYS = (*REGIMES, "all")
TREND_KEYS = (*TRENDS, "all")


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
    """What to backtest and how. Costs default to none here; the CLI passes the config's (grid_build.*)."""

    ticker: str
    dtes: Sequence[int] = (0, 1, 3, 5, 10)
    bands: Sequence[str] = ("P95", "P97", "P98", "P99", "P100")
    spread_types: Sequence[str] = SPREAD_TYPES
    flow_modes: Sequence[str] = FLOW_MODES
    widths: Sequence[float] = (20.0, 50.0, 100.0)
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
    commission_per_leg: float = 0.0  # dollars per contract per leg, paid at entry and at every exit before expiry
    slippage_per_leg: float = 0.0  # dollars per contract per leg given up against the mid at every fill
    first_entry: date | None = None  # entries from this session on (None: as soon as the window allows)
    last_entry: date | None = None

    def __post_init__(self) -> None:
        for width in self.widths:
            if not is_multiple(width, self.strike_increment):
                raise ValueError(f"width {width:g} is not a multiple of {self.ticker}'s strike increment "
                                 f"{self.strike_increment:g}: its long legs would not be listed strikes")


def is_multiple(value: float, increment: float) -> bool:
    """Whether `value` is a whole number of `increment`s (to a millionth of the increment)."""
    steps = value / increment
    return bool(abs(steps - round(steps)) < 1e-6 and round(steps) >= 1)


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
    """domain.flow_qualifies over an array of observed flows, for one config."""
    return flow_qualifies_array(flow_mode, spread_type, flows)


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


@dataclass(frozen=True)
class EntryContext:
    """What is known at each session's open, for every history row, and the group masks over it."""

    dates: np.ndarray
    idx: np.ndarray
    flows: np.ndarray
    iv_at: np.ndarray
    entry_ok: np.ndarray
    rt_masks: np.ndarray  # (len(REGIME_KEYS), n)
    tr_masks: np.ndarray  # (len(TREND_KEYS), n)


def entry_context(hist: History, sessions: np.ndarray, spec: BuildSpec) -> EntryContext:
    n = len(hist.dates)
    dates = hist.dates.astype("datetime64[D]")
    regime_after = regimes_at_close(hist.vix, spec.boundaries, spec.hysteresis)
    trend_after = auto_trends(hist.close)
    # Known at the open of t: the previous row's close state.
    regime_at = np.empty(n, dtype=object)
    trend_at = np.empty(n, dtype=object)
    regime_at[1:], trend_at[1:] = regime_after[:-1], trend_after[:-1]  # row 0: unknown (None)
    entry_ok = np.ones(n, dtype=bool)
    if spec.first_entry is not None:
        entry_ok &= dates >= np.datetime64(spec.first_entry, "D")
    if spec.last_entry is not None:
        entry_ok &= dates <= np.datetime64(spec.last_entry, "D")
    everyone = np.ones(n, dtype=bool)
    return EntryContext(
        dates=dates, idx=calendar_steps(dates, sessions, max(spec.dtes)),
        flows=gap_flows(hist.open, hist.close, spec.flow_dead_band),
        iv_at=np.concatenate(([np.nan], hist.vol_index[:-1])), entry_ok=entry_ok,
        rt_masks=np.array([(regime_at == r) if r != "all" else everyone for r in REGIME_KEYS]),
        tr_masks=np.array([(trend_at == tr) if tr != "all" else everyone for tr in TREND_KEYS]),
    )


# ------------------------------------------------------------------------------------------------------------
# One side (put or call vertical) of one (dte, band, width): credits and the marks the exit rules need


@dataclass
class Trades:
    """The trades of one config before grouping: per trade, in entry order."""

    ok: np.ndarray  # over the DTE's entry rows: which entries trade
    reason: np.ndarray  # over the DTE's entry rows: "" or the no-trade reason
    credit: np.ndarray  # over the DTE's entry rows: the fill, dollars per contract
    payoff: np.ndarray  # over the DTE's entry rows
    marks: dict[str, np.ndarray]  # over the trades only: (n_trades, dte + 1)


@dataclass(frozen=True)
class DteEntries:
    """The entry rows tested for one DTE and what the pricing needs at them."""

    dte: int
    rows: np.ndarray
    spot: np.ndarray
    iv: np.ndarray
    have_vol: np.ndarray
    s_expiry: np.ndarray
    expiry_dates: np.ndarray
    edges: np.ndarray  # (len(rows), 2 x bands)
    latest_moves: np.ndarray


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


def _model_side(is_call: bool, entries: DteEntries, edge: np.ndarray, width: float,
                spec: BuildSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(short, long, fill credit, reason) of one side priced by the model."""
    edge_price = entries.spot * (1.0 + edge)
    if is_call:
        short = snap_up(edge_price, spec.strike_increment)
        otm = short > entries.spot
        long_ = short + width
    else:
        short = snap_down(edge_price, spec.strike_increment)
        otm = short < entries.spot
        long_ = short - width
    reason = np.full(entries.rows.size, "", dtype=object)
    reason[~otm] = "no_otm_strike"
    reason[otm & ~entries.have_vol] = "no_vol"
    ok = reason == ""
    mid = np.full(entries.rows.size, np.nan)
    t0 = (entries.dte + 1) / pricing.SESSIONS_PER_YEAR
    mid[ok] = pricing.vertical_value(is_call, entries.spot[ok], short[ok], long_[ok], t0, entries.iv[ok],
                                     spec.rate, spec.dividend_yield)
    credit = np.floor(np.round(mid / TICK_DOLLARS, 9)) * TICK_DOLLARS - 2 * spec.slippage_per_leg
    reason[ok & ~(credit >= TICK_DOLLARS)] = "no_credit"
    return short, long_, credit, reason


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


def _quoted_side(chains: ChainBook, kind: str, entries: DteEntries, edge: np.ndarray, width: float,
                 spec: BuildSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(short, long, fill credit, reason) of one side from the chains."""
    m = entries.rows.size
    short, long_, credit = np.full(m, np.nan), np.full(m, np.nan), np.full(m, np.nan)
    reason = np.full(m, "", dtype=object)
    edge_price = entries.spot * (1.0 + edge)
    for i in range(m):
        got = _chain_side(chains, entries.expiry_dates[i][0], entries.expiry_dates[i][1], kind,
                          float(entries.spot[i]), float(edge_price[i]), float(width))
        if isinstance(got, str):
            reason[i] = got
        else:
            short[i], long_[i], credit[i] = got
    credit = credit - 2 * spec.slippage_per_leg
    reason[(reason == "") & ~(credit > 0)] = "no_credit"
    reason[(reason == "") & ~entries.have_vol] = "no_vol"  # marks need the model
    return short, long_, credit, reason


def _side(kind: str, hist: History, ctx: EntryContext, entries: DteEntries, band_i: int, width: float,
          spec: BuildSpec, chains: ChainBook | None) -> Trades:
    is_call = kind == "call"
    edge = entries.edges[:, 2 * band_i + (1 if is_call else 0)]
    if chains is None:
        short, long_, credit, reason = _model_side(is_call, entries, edge, width, spec)
    else:
        short, long_, credit, reason = _quoted_side(chains, kind, entries, edge, width, spec)
    reason[(reason == "") & (credit >= pricing.MULTIPLIER * width)] = "impossible_credit"
    ok = reason == ""
    payoff_fn = pricing.call_spread_payoff if is_call else pricing.put_spread_payoff
    payoff = np.where(ok, payoff_fn(entries.s_expiry, np.nan_to_num(short), np.nan_to_num(long_)), np.nan)
    marks = _side_marks(is_call, hist, entries.rows[ok], ctx.idx, entries.dte, short[ok], long_[ok], spec)
    return Trades(ok=ok, reason=reason, credit=credit, payoff=payoff, marks=marks)


def _condor(put: Trades, call: Trades, width: float) -> Trades:
    """Both sides entered together: one credit, the payoff of the side in the money, marks summed (the condor's
    worst case is everything at the low or everything at the high)."""
    ok = put.ok & call.ok
    reason = np.where(put.reason != "", put.reason, call.reason)
    credit = put.credit + call.credit
    pos_p = np.cumsum(put.ok) - 1
    pos_c = np.cumsum(call.ok) - 1
    marks = {key: put.marks[key][pos_p[ok]] + call.marks[key][pos_c[ok]] for key in put.marks}
    bad = ok & (credit >= pricing.MULTIPLIER * width)
    reason = np.where(bad, "impossible_credit", reason)
    if bad.any():
        keep = ~bad[ok]
        marks = {key: v[keep] for key, v in marks.items()}
        ok = ok & ~bad
    return Trades(ok=ok, reason=reason, credit=credit, payoff=put.payoff + call.payoff, marks=marks)


# ------------------------------------------------------------------------------------------------------------
# Outcomes


def _exit_outcome(credit: np.ndarray, risk: np.ndarray, marks: dict[str, np.ndarray], dte: int, legs: int,
                  spec: BuildSpec) -> tuple[np.ndarray, np.ndarray]:
    """(P&L, exit step) per trade with the exit rules applied session by session (see the module docstring).
    P&L is after the entry commission and, for an exit before expiry, the exit's commission and slippage."""
    m = credit.size
    done = np.zeros(m, dtype=bool)
    pnl = np.full(m, np.nan)
    step = np.full(m, dte, dtype=np.int64)
    stop_trigger = -spec.stop_loss_mult * credit
    stop_level = np.maximum(stop_trigger, -risk)
    target = spec.profit_target_pct * credit
    time_exit_step = dte - spec.time_exit_dte if dte > spec.time_exit_dte else None
    settled = np.zeros(m, dtype=bool)  # held to the expiry close: cash settlement, no closing trade
    for j in range(dte + 1):
        p_close = credit - marks["close"][:, j]
        have = np.isfinite(p_close)
        fills: list[tuple[np.ndarray, np.ndarray, bool]] = []
        if j >= 1:
            raw_open = credit - marks["open"][:, j]
            p_open = np.maximum(raw_open, -risk)
            if j == time_exit_step:
                fills.append((have, p_open, False))
            fills.append((have & (raw_open <= stop_trigger), p_open, False))
        p_worst = credit - np.fmax(marks["low"][:, j], marks["high"][:, j])
        fills.append((have & (p_worst <= stop_trigger), stop_level, False))
        fills.append((have & (p_close >= target), p_close, False) if j < dte else (have, p_close, True))
        for hit, value, at_settlement in fills:
            hit = hit & ~done
            pnl[hit] = value[hit]
            step[hit] = j
            settled |= hit & at_settlement
            done |= hit
    exit_cost = np.where(settled, 0.0, legs * (spec.commission_per_leg + spec.slippage_per_leg))
    return pnl - legs * spec.commission_per_leg - exit_cost, step


def loss_episodes(masks: np.ndarray, lost: np.ndarray, entry_row: np.ndarray, exit_row: np.ndarray) -> np.ndarray:
    """Per group (row of `masks`): losing trades chained by overlapping holding periods count once.

    Trades are in entry order; a losing trade starts a new episode unless it was entered on or before the exit
    session of an earlier losing trade of the same group."""
    members = _Members(masks)
    return members.episodes(lost, entry_row, exit_row)


class _Members:
    """The (group, trade) pairs of boolean group masks, group by group and in entry order within a group, so
    per-group sums, running sums and running maxima cost the pairs, not groups x trades. Running values restart
    at each group by offsetting every group above the one before it."""

    def __init__(self, masks: np.ndarray) -> None:
        self.groups = masks.shape[0]
        self.g, self.t = np.nonzero(masks)
        self.count = np.bincount(self.g, minlength=self.groups)
        self.first = np.concatenate(([True], self.g[1:] != self.g[:-1])) if self.g.size else np.zeros(0, bool)

    def total(self, values: np.ndarray) -> np.ndarray:
        return np.bincount(self.g, weights=values[self.t], minlength=self.groups)

    def running_max(self, values: np.ndarray) -> np.ndarray:
        """Running maximum of per-pair values within each group."""
        if values.size == 0:
            return values
        span = float(values.max() - values.min()) + 1.0
        offset = self.g * span
        return np.maximum.accumulate(values + offset) - offset

    def group_max(self, values: np.ndarray) -> np.ndarray:
        out = np.zeros(self.groups)
        if values.size:
            starts = np.flatnonzero(self.first)
            out[self.g[starts]] = np.maximum.reduceat(values, starts)
        return out

    def drawdown(self, pnl: np.ndarray) -> np.ndarray:
        """Largest peak-to-trough fall of each group's cumulative P&L (the peak starts at 0)."""
        vals = pnl[self.t]
        cum = np.cumsum(vals)
        before = (cum - vals)[self.first]  # the cumulative sum just before each group starts
        cum = cum - np.repeat(before, self.count[self.count > 0])
        peak = self.running_max(np.maximum(cum, 0.0))
        return self.group_max(peak - cum)

    def episodes(self, lost: np.ndarray, entry_row: np.ndarray, exit_row: np.ndarray) -> np.ndarray:
        losing = lost[self.t]
        reach = self.running_max(np.where(losing, exit_row[self.t], -1).astype(float))
        previous = np.concatenate(([-1.0], reach[:-1])) if reach.size else reach
        previous = np.where(self.first, -1.0, previous)
        new = losing & (entry_row[self.t] > previous)
        return np.bincount(self.g, weights=new, minlength=self.groups).astype(int)


def wilson_interval(p: np.ndarray, n: np.ndarray, z: float = WILSON_Z) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a proportion p observed on n (possibly fractional, effective) trials."""
    n = np.maximum(np.asarray(n, dtype=float), 1e-12)
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * np.sqrt(np.maximum(p * (1 - p) / n + z2 / (4 * n * n), 0.0)) / (1 + z2 / n)
    # The interval always holds p (exactly so at p = 0 or 1, where rounding could put a bound a hair inside).
    return np.minimum(np.clip(centre - half, 0.0, 1.0), p), np.maximum(np.clip(centre + half, 0.0, 1.0), p)


# ------------------------------------------------------------------------------------------------------------
# Aggregation


def _sharpe(n: np.ndarray, total: np.ndarray, squares: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, Sharpe) per group: mean / sample std of per-trade P&L; 0 with < 2 trades or no dispersion."""
    mean = total / np.maximum(n, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = (squares - n * mean * mean) / np.maximum(n - 1, 1)
        std = np.sqrt(np.maximum(var, 0.0))
        sharpe = np.where((n >= 2) & (std > 1e-9 * np.maximum(np.abs(mean), 1.0)), mean / std, 0.0)
    return mean, sharpe


def group_stats(masks: np.ndarray, credit: np.ndarray, risk: np.ndarray, pnl: np.ndarray,
                exit_pnl: np.ndarray, entry_row: np.ndarray, exit_row: np.ndarray) -> dict[str, np.ndarray]:
    """Row statistics for each boolean mask (groups x trades) over trades in entry order."""
    members = _Members(masks)
    n = members.count.astype(float)
    safe_n = np.maximum(n, 1)
    wins = members.total((pnl >= 0).astype(float))
    exit_wins = members.total((exit_pnl >= 0).astype(float))
    mean_pnl, sharpe = _sharpe(n, members.total(pnl), members.total(pnl * pnl))
    exit_mean, exit_sharpe = _sharpe(n, members.total(exit_pnl), members.total(exit_pnl * exit_pnl))
    avg_credit = members.total(credit) / safe_n
    avg_risk = np.where(n > 0, members.total(risk) / safe_n, 1.0)  # groups without trades are dropped later
    losses = n - exit_wins
    episodes = members.episodes(exit_pnl < 0, entry_row, exit_row)
    n_effective = np.where(losses > 0, n * episodes / np.maximum(losses, 1), n)
    exit_win_rate = exit_wins / safe_n
    low, high = wilson_interval(exit_win_rate, n_effective)
    return {
        "n_trades": n.astype(int), "n_wins": wins.astype(int), "win_rate": wins / safe_n,
        "avg_credit": avg_credit, "avg_max_risk": avg_risk, "roi": avg_credit / avg_risk,
        "avg_pnl": mean_pnl, "sharpe": sharpe, "max_drawdown": members.drawdown(pnl),
        "expected_return": mean_pnl / avg_risk,
        "exit_n_wins": exit_wins.astype(int), "exit_win_rate": exit_win_rate, "exit_avg_pnl": exit_mean,
        "exit_sharpe": exit_sharpe, "exit_expected_return": exit_mean / avg_risk,
        "exit_loss_episodes": episodes, "n_effective": n_effective,
        "exit_win_rate_low": low, "exit_win_rate_high": high,
    }


def _config_rows(spec: BuildSpec, ctx: EntryContext, entries: DteEntries, trades: Trades, spread_type: str,
                 band: str, width: float) -> list[dict[str, Any]]:
    """The grid rows of one config (every flow mode x regime x trend with trades)."""
    trade_rows = entries.rows[trades.ok]
    if trade_rows.size == 0:
        return []
    legs = 4 if spread_type == "iron_condor" else 2
    credit = trades.credit[trades.ok]
    risk = pricing.max_risk(credit, width)
    pnl = pricing.spread_pnl_at_expiry(credit, trades.payoff[trades.ok]) - legs * spec.commission_per_leg
    exit_pnl, exit_step = _exit_outcome(credit, risk, trades.marks, entries.dte, legs, spec)
    exit_row = ctx.idx[trade_rows, exit_step]  # the history row of the exit session
    rows: list[dict[str, Any]] = []
    base = {"ticker": spec.ticker, "dte": entries.dte, "band": band, "spread_type": spread_type,
            "spread_width": float(width), "entry_time_et": ENTRY_TIME_ET}
    for flow_mode in spec.flow_modes:
        fm = flow_mask(ctx.flows[trade_rows], flow_mode, spread_type)
        masks = ctx.rt_masks[:, None, trade_rows] & ctx.tr_masks[None, :, trade_rows] & fm[None, None, :]
        masks = masks.reshape(-1, trade_rows.size)
        stats = group_stats(masks, credit, risk, pnl, exit_pnl, trade_rows, exit_row)
        for g in np.flatnonzero(stats["n_trades"] > 0):
            row: dict[str, Any] = {**base, "flow_mode": flow_mode, "regime": REGIME_KEYS[g // len(TREND_KEYS)],
                                   "trend": TREND_KEYS[g % len(TREND_KEYS)]}
            row.update({key: values[g] for key, values in stats.items()})
            rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------------------------
# The build


def dte_entries(hist: History, ctx: EntryContext, spec: BuildSpec, dte: int, percentiles: Sequence[float]
                ) -> DteEntries:
    """The entries tested for one DTE: a full trailing window, the entry's bar and an expiry bar, inside the
    requested entry range."""
    n = len(hist.dates)
    if dte == 0:
        moves, offset = hist.close / hist.open - 1.0, 0  # move j ends at row j
    else:
        moves = hist.close[dte:] / hist.close[:-dte] - 1.0 if n > dte else np.empty(0)
        offset = dte  # move j ends at row j + dte
    edges_all = trailing_edges(moves, 1, n, offset, spec.window, percentiles)
    expiry_rows = ctx.idx[:, dte]
    base = ctx.entry_ok & np.all(np.isfinite(edges_all), axis=1) & (expiry_rows >= 0) & (ctx.idx[:, 0] >= 0)
    rows = np.flatnonzero(base)
    iv = ctx.iv_at[rows]
    expiry_dates = np.empty(rows.size, dtype=object)
    expiry_dates[:] = [(ctx.dates[r].item(), ctx.dates[expiry_rows[r]].item()) for r in rows]
    return DteEntries(dte=dte, rows=rows, spot=hist.open[rows], iv=iv, have_vol=np.isfinite(iv) & (iv > 0),
                      s_expiry=hist.close[expiry_rows[rows]], expiry_dates=expiry_dates, edges=edges_all[rows],
                      latest_moves=moves[np.isfinite(moves)][-spec.window:])


def _band_rows(hist: History, ctx: EntryContext, entries: DteEntries, spec: BuildSpec, band_i: int,
               width: float, chains: ChainBook | None, no_trade: dict[str, int]) -> list[dict[str, Any]]:
    """Every spread type and flow mode of one (dte, band, width)."""
    band = spec.bands[band_i]
    sides: dict[str, Trades] = {}
    for kind, spread in (("put", "put_spread"), ("call", "call_spread")):
        if spread in spec.spread_types or "iron_condor" in spec.spread_types:
            sides[kind] = _side(kind, hist, ctx, entries, band_i, width, spec, chains)
    rows: list[dict[str, Any]] = []
    for spread_type in spec.spread_types:
        if spread_type == "iron_condor":
            trades = _condor(sides["put"], sides["call"], width)
        else:
            trades = sides["put" if spread_type == "put_spread" else "call"]
        for r_name in NO_TRADE_REASONS:
            no_trade[r_name] += int(np.count_nonzero(trades.reason == r_name))
        rows += _config_rows(spec, ctx, entries, trades, spread_type, band, width)
    # Band moves as of the data's end: what the scanner uses to suggest strikes for the next entry.
    if entries.latest_moves.size >= spec.window:
        lower, upper = band_edges(entries.latest_moves, band)
    else:
        lower = upper = np.nan
    for row in rows:
        row["band_lower_move"], row["band_upper_move"] = lower, upper
    return rows


def build_grid(hist: History, sessions: np.ndarray, spec: BuildSpec, chains: ChainBook | None = None,
               progress: Callable[[int, int], None] | None = None) -> BuildResult:
    """Backtest every config of `spec` over `hist` and return the canonical grid rows."""
    ctx = entry_context(hist, sessions, spec)
    percentiles = [p for band in spec.bands for p in band_percentiles(band)]
    rows: list[dict[str, Any]] = []
    no_trade = dict.fromkeys(NO_TRADE_REASONS, 0)
    window_by_dte: dict[int, tuple[str, str]] = {}  # first and last entry session tested, per DTE
    total = len(spec.dtes) * len(spec.bands) * len(spec.widths)
    done = entries_total = 0
    for dte in spec.dtes:
        entries = dte_entries(hist, ctx, spec, dte, percentiles)
        entries_total = max(entries_total, entries.rows.size)
        if entries.rows.size:
            window_by_dte[dte] = (str(ctx.dates[entries.rows[0]]), str(ctx.dates[entries.rows[-1]]))
        for band_i in range(len(spec.bands)):
            for width in spec.widths:
                rows += _band_rows(hist, ctx, entries, spec, band_i, width, chains, no_trade)
                done += 1
                if progress is not None:
                    progress(done, total)
    configs = len(spec.dtes) * len(spec.bands) * len(spec.spread_types) * len(spec.flow_modes) * len(spec.widths)
    n = len(hist.dates)
    return BuildResult(frame=_finish(rows, spec, chains, window_by_dte), no_trade=no_trade,
                       entries=entries_total, configs=configs, history_start=str(ctx.dates[0]) if n else "",
                       history_end=str(ctx.dates[-1]) if n else "")


def _finish(rows: list[dict[str, Any]], spec: BuildSpec, chains: ChainBook | None,
            window_by_dte: dict[int, tuple[str, str]]) -> pd.DataFrame:
    """The canonical frame: scores, provenance and the columns in schema order."""
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=list(CANONICAL_COLUMNS))
    frame["trade_score"] = original_trade_score(frame["roi"], frame["sharpe"], frame["win_rate"],
                                                frame["avg_max_risk"])
    frame["exit_trade_score"] = original_trade_score(frame["roi"], frame["exit_sharpe"], frame["exit_win_rate"],
                                                     frame["avg_max_risk"])
    frame["credit_source"] = "chains" if chains is not None else "model"
    frame["low_sample"] = frame["n_effective"] < spec.min_sample
    frame["commission_per_leg"] = spec.commission_per_leg
    frame["slippage_per_leg"] = spec.slippage_per_leg
    frame["data_start"] = frame["dte"].map(lambda d: window_by_dte[d][0])
    frame["data_end"] = frame["dte"].map(lambda d: window_by_dte[d][1])
    return frame[list(CANONICAL_COLUMNS)]
