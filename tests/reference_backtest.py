"""An independent re-implementation of the grid builder's method for single configs: a plain per-trade loop in
scalar Python (`math` only: no numpy, no spreadwatch pricing, bands or strikes), written from the method as
docs/grid-builder.md states it. Tests hold the vectorized builder to it; run as a script it prints the held and
managed win rates of three configs on real S&P 500 / VIX history next to the builder's.

    python tests/reference_backtest.py
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from datetime import date

RATE = 0.04
DIVIDEND = 0.013
SKEW_SLOPE, SKEW_FLOOR, SKEW_CAP = 0.08, 0.6, 2.0
TICK = 5.0
YEAR = 252.0


@dataclass(frozen=True)
class Config:
    dte: int
    band: tuple[float, float]  # tail percentiles
    spread: str  # put_spread | call_spread | iron_condor
    flow_mode: str  # neutral | with_flow | against_flow
    width: float
    increment: float = 5.0
    profit_target_pct: float = 0.5
    stop_loss_mult: float = 2.0
    time_exit_dte: int = 1
    commission: float = 0.65
    slippage: float = 5.0
    window: int = 100
    dead_band: float = 0.001


@dataclass
class Outcome:
    trades: int = 0
    held_wins: int = 0
    managed_wins: int = 0
    credit_sum: float = 0.0
    held_pnl_sum: float = 0.0
    managed_pnl_sum: float = 0.0

    @property
    def held_win_rate(self) -> float:
        return self.held_wins / self.trades

    @property
    def managed_win_rate(self) -> float:
        return self.managed_wins / self.trades


SQRT2 = math.sqrt(2.0)


def norm_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / SQRT2))


def option_value(is_call: bool, spot: float, strike: float, t: float, level: float,
                 log=math.log, sqrt=math.sqrt, exp=math.exp, erf=math.erf) -> float:
    """Black-Scholes-Merton with the skew: sigma = v * clip(1 - 0.08 * ln(K/S) / (v sqrt t), 0.6, 2.0).

    Written as a scalar loop is written when its speed matters (math functions bound to local names, the normal
    CDF inline, each square root taken once), with the same operations in the same order as the formula, so the
    same answers to the last bit."""
    v = level / 100.0
    if not (v > 0 and t > 0):  # expired (or no volatility): intrinsic value
        return max(spot - strike, 0.0) if is_call else max(strike - spot, 0.0)
    root_t = sqrt(t)
    m = log(strike / spot) / (v * root_t)
    sigma = v * min(max(1.0 - SKEW_SLOPE * m, SKEW_FLOOR), SKEW_CAP)
    if not sigma > 0:  # a NaN price
        return max(spot - strike, 0.0) if is_call else max(strike - spot, 0.0)
    d1 = (log(spot / strike) + (RATE - DIVIDEND + 0.5 * sigma * sigma) * t) / (sigma * root_t)
    d2 = d1 - sigma * root_t
    if is_call:
        return (spot * exp(-DIVIDEND * t) * (0.5 * (1.0 + erf(d1 / SQRT2)))
                - strike * exp(-RATE * t) * (0.5 * (1.0 + erf(d2 / SQRT2))))
    return (strike * exp(-RATE * t) * (0.5 * (1.0 + erf(-d2 / SQRT2)))
            - spot * exp(-DIVIDEND * t) * (0.5 * (1.0 + erf(-d1 / SQRT2))))


def vertical(is_call: bool, spot: float, short: float, long_: float, t: float, level: float) -> float:
    return 100.0 * (option_value(is_call, spot, short, t, level) - option_value(is_call, spot, long_, t, level))


def percentile(values: list[float], q: float) -> float:
    xs = sorted(values)
    h = (len(xs) - 1) * q / 100.0
    lo = int(math.floor(h))
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (h - lo) * (xs[hi] - xs[lo])


def nanmax(a: float, b: float) -> float:
    if math.isnan(a):
        return b
    if math.isnan(b):
        return a
    return max(a, b)


def sides(cfg: Config) -> list[bool]:
    return {"put_spread": [False], "call_spread": [True], "iron_condor": [False, True]}[cfg.spread]


def flow_ok(cfg: Config, gap: float) -> bool:
    flow = "up" if gap > cfg.dead_band else "down" if gap < -cfg.dead_band else "flat"
    if cfg.flow_mode == "neutral":
        return True
    if flow == "flat":
        return False
    if cfg.spread == "iron_condor":
        return True
    wanted_down = (cfg.flow_mode == "with_flow") == (cfg.spread == "put_spread")
    return (flow == "down") == wanted_down


def run(cfg: Config, days: list[date], o: list[float], h: list[float], lo: list[float], c: list[float],
        vol: list[float], sessions: list[date], first_entry: date) -> Outcome:
    """Every entry at the open from `first_entry` on; trades of the config (regime and trend `all`)."""
    row_of = {d: i for i, d in enumerate(days)}
    pos_of = {d: i for i, d in enumerate(sessions)}
    legs = 2 * len(sides(cfg))
    out = Outcome()
    for t in range(max(1, bisect.bisect_left(days, first_entry)), len(days)):
        p = pos_of[days[t]]
        steps = [row_of.get(sessions[p + j]) if p + j < len(sessions) else None for j in range(cfg.dte + 1)]
        if steps[-1] is None:
            continue
        if cfg.dte == 0:
            moves = [c[i] / o[i] - 1.0 for i in range(t - cfg.window, t)] if t >= cfg.window else []
        else:
            moves = [c[e] / c[e - cfg.dte] - 1.0 for e in range(max(cfg.dte, t - cfg.window), t)]
        if len(moves) < cfg.window:
            continue
        if not flow_ok(cfg, o[t] / c[t - 1] - 1.0):
            continue
        trade = price_trade(cfg, moves, o[t], vol[t - 1])
        if trade is None:
            continue
        credit, strikes = trade
        walk_trade(cfg, out, credit, strikes, steps, o, h, lo, c, vol, legs)
    return out


def price_trade(cfg: Config, moves: list[float], spot: float, iv: float
                ) -> tuple[float, list[tuple[bool, float, float]]] | None:
    if not iv > 0:
        return None
    credit = 0.0
    strikes = []
    for is_call in sides(cfg):
        edge = percentile(moves, cfg.band[1] if is_call else cfg.band[0])
        target = spot * (1.0 + edge) / cfg.increment
        short = (math.ceil(target - 1e-9) if is_call else math.floor(target + 1e-9)) * cfg.increment
        if (is_call and short <= spot) or (not is_call and short >= spot):
            return None
        long_ = short + cfg.width if is_call else short - cfg.width
        mid = vertical(is_call, spot, short, long_, (cfg.dte + 1) / YEAR, iv)
        fill = math.floor(round(mid / TICK, 9)) * TICK - 2 * cfg.slippage
        if fill < TICK:
            return None
        credit += fill
        strikes.append((is_call, short, long_))
    if credit >= cfg.width * 100:
        return None
    return credit, strikes


def walk_trade(cfg: Config, out: Outcome, credit: float, strikes: list[tuple[bool, float, float]],
               steps: list[int | None], o: list[float], h: list[float], lo: list[float], c: list[float],
               vol: list[float], legs: int) -> None:
    risk = cfg.width * 100 - credit
    expiry = steps[-1]
    payoff = sum(vertical(is_call, c[expiry], s, lg, 0.0, 1.0) for is_call, s, lg in strikes)
    held = credit - payoff - legs * cfg.commission

    def mark(spot: float, t: float, level: float) -> float:
        return sum(vertical(is_call, spot, s, lg, t, level) for is_call, s, lg in strikes)

    stop = -cfg.stop_loss_mult * credit
    managed = None
    for j, k in enumerate(steps):
        if k is None:
            continue
        t_open, t_close = (cfg.dte - j + 1) / YEAR, (cfg.dte - j) / YEAR
        if j >= 1:
            raw_open = credit - mark(o[k], t_open, vol[k - 1])
            if (cfg.dte > cfg.time_exit_dte and j == cfg.dte - cfg.time_exit_dte) or raw_open <= stop:
                managed = max(raw_open, -risk) - legs * (2 * cfg.commission + cfg.slippage)
                break
        worst_vol = nanmax(vol[k - 1], vol[k])
        worst = credit - max(mark(lo[k], t_open, worst_vol), mark(h[k], t_open, worst_vol))
        if worst <= stop:
            managed = max(stop, -risk) - legs * (2 * cfg.commission + cfg.slippage)
            break
        at_close = credit - mark(c[k], t_close, vol[k])
        if j == cfg.dte:
            managed = at_close - legs * cfg.commission
            break
        if at_close >= cfg.profit_target_pct * credit:
            managed = at_close - legs * (2 * cfg.commission + cfg.slippage)
            break
    assert managed is not None
    out.trades += 1
    out.held_wins += held >= 0
    out.managed_wins += managed >= 0
    out.credit_sum += credit
    out.held_pnl_sum += held
    out.managed_pnl_sum += managed


CONFIGS = {
    "put_spread P98 5DTE neutral w25": Config(5, (1.0, 99.0), "put_spread", "neutral", 25.0),
    "call_spread P99 1DTE neutral w10": Config(1, (0.5, 99.5), "call_spread", "neutral", 10.0),
    "iron_condor P97 1DTE with_flow w25": Config(1, (1.5, 98.5), "iron_condor", "with_flow", 25.0),
}


def arch_history() -> tuple[list[date], list[float], list[float], list[float], list[float], list[float]]:
    from arch.data import sp500, vix

    px = sp500.load()
    v = vix.load()["vix"]
    days = [d.date() for d in px.index]
    levels = {d.date(): float(x) for d, x in v.items()}
    return (days, [float(x) for x in px["Open"]], [float(x) for x in px["High"]], [float(x) for x in px["Low"]],
            [float(x) for x in px["Close"]], [levels.get(d, float("nan")) for d in days])


def main() -> None:
    from spreadwatch.domain.backtest import BuildSpec, History, build_grid
    from spreadwatch.edges.calendar import MarketCalendar

    days, o, h, lo, c, vol = arch_history()
    cal = MarketCalendar()
    sessions = cal.sessions_in_range(days[0], date(2019, 2, 1))
    first = date(2014, 1, 6)
    print(f"{'config':<36} {'trades':>6} {'held ref':>9} {'held grid':>9} {'managed ref':>11} {'managed grid':>12}")
    for name, cfg in CONFIGS.items():
        ref = run(cfg, days, o, h, lo, c, vol, sessions, first)
        row = builder_row(cfg, days, o, h, lo, c, vol, sessions, first, BuildSpec, History, build_grid)
        print(f"{name:<36} {ref.trades:>6} {ref.held_win_rate:>9.2%} {row['win_rate']:>9.2%} "
              f"{ref.managed_win_rate:>11.2%} {row['exit_win_rate']:>12.2%}")


def builder_row(cfg: Config, days, o, h, lo, c, vol, sessions, first, BuildSpec, History, build_grid):  # noqa: N803
    """The builder's regime-all, trend-all row of the same config."""
    import numpy as np

    band = {(2.5, 97.5): "P95", (1.5, 98.5): "P97", (1.0, 99.0): "P98", (0.5, 99.5): "P99"}[cfg.band]
    hist = History(np.array(days, dtype="datetime64[D]"), np.array(o), np.array(h), np.array(lo), np.array(c),
                   np.array(vol), np.array(vol))
    spec = BuildSpec("SPX", dtes=(cfg.dte,), bands=(band,), spread_types=(cfg.spread,),
                     flow_modes=(cfg.flow_mode,), widths=(cfg.width,), strike_increment=cfg.increment,
                     commission_per_leg=cfg.commission, slippage_per_leg=cfg.slippage, first_entry=first)
    frame = build_grid(hist, np.array(sessions, dtype="datetime64[D]"), spec).frame
    return frame[(frame["regime"] == "all") & (frame["trend"] == "all")].iloc[0]


if __name__ == "__main__":
    main()
