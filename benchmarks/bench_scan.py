"""Scan speed: the vectorized scan of a 100,000-row grid vs a plain loop over the same rows, same run, same answer.

The grid: the bundled SPX grid's rows repeated to 100,000, their numbers jittered so the copies are distinct
configs with distinct scores (entry times spread over the day so the window matters). The baseline is what a
competent engineer writes without pandas: the rows as plain tuples (converted once, outside the timing, as the
scan's frame is loaded once), one pass for the regime, trend and flow filters and the most specific row per
setup, a second for the quality thresholds and the best width per setup, then a sort and the top-N cut. Both must
return the same opportunities in the same order before the timing counts. Interleaved, median of the repeats.

Also times loading the bundled grid and one CLI scan in a fresh process.
Usage: python benchmarks/bench_scan.py [--rows 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from spreadwatch.config import Config, bundled_path
from spreadwatch.domain.scanner import scan
from spreadwatch.domain.vocabulary import flow_qualifies
from spreadwatch.edges.calendar import ET, MarketCalendar
from spreadwatch.edges.gridfile import Grid, load_grid

NOW = datetime(2019, 1, 2, 14, 35, tzinfo=UTC)
CONTEXT = dict(ticker="SPX", regime="low", trend="sideways", flow="up", flow_0dte="up")
COLUMNS = ("ticker", "dte", "band", "spread_type", "flow_mode", "spread_width", "entry_time_et", "regime", "trend",
           "exit_win_rate", "roi", "exit_sharpe", "exit_trade_score", "n_trades", "entry_minutes", "line")


def big_grid(rows: int) -> Grid:
    seed = load_grid(bundled_path("grid_spx.csv"))
    reps = -(-rows // seed.rows)
    frame = pd.concat([seed.frame] * reps, ignore_index=True).iloc[:rows].copy()
    rng = np.random.default_rng(1)
    copy = np.arange(rows) // seed.rows
    minutes = 9 * 60 + 30 + 15 * (copy % 26)  # each copy at its own entry time, 09:30 .. 15:45 ET
    frame["entry_minutes"] = minutes
    frame["entry_time_et"] = [f"{m // 60:02d}:{m % 60:02d}" for m in minutes]
    frame["exit_win_rate"] = np.clip(frame["exit_win_rate"] + rng.normal(0, 0.02, rows), 0, 1)
    frame["exit_trade_score"] = frame["exit_trade_score"] + rng.normal(0, 5, rows)
    frame["line"] = np.arange(rows) + 2
    return dataclasses.replace(seed, frame=frame, total_rows=rows)


def loop_scan(rows: list[tuple], config: Config, calendar: MarketCalendar) -> list[tuple]:
    """The plain version: (in window, score, identity) of the opportunities, best first, top N."""
    rec = config.regime.recommendations[CONTEXT["regime"]]
    spreads = config.regime.trend_spreads.get(CONTEXT["trend"], rec.spread_types)
    q, h = config.scan, config.hours
    increment = config.tickers["SPX"].strike_increment
    best: dict[tuple, tuple[int, list[tuple]]] = {}
    for row in rows:  # pass 1: regime, trend, on-chain width; the most specific rows of each setup
        (ticker, dte, band, spread, mode, width, entry, regime, trend) = row[:9]
        if ticker not in ("SPX", "all") or abs(width / increment - round(width / increment)) > 1e-6:
            continue
        if regime not in ("low", "all") or band not in rec.bands or dte not in rec.dtes or mode not in rec.flow_modes:
            continue
        if trend not in ("sideways", "all") or spread not in spreads:
            continue
        rank = 4 * (ticker != "all") + 2 * (regime != "all") + (trend != "all")
        key = (dte, band, spread, mode, width, entry)
        held = best.get(key)
        if held is None or rank > held[0]:
            best[key] = (rank, [row])
        elif rank == held[0]:
            held[1].append(row)
    widths: dict[tuple, tuple] = {}
    for _, group in best.values():  # pass 2: flow, quality, the best width of each setup
        for row in group:
            dte, spread, mode = row[1], row[3], row[4]
            flow = CONTEXT["flow_0dte"] if dte == 0 else CONTEXT["flow"]
            if not flow_qualifies(mode, spread, flow):
                continue
            win, roi, sharpe, score, n = row[9:14]
            if win < q.min_win_rate or roi < q.min_roi or sharpe < q.min_sharpe or score < q.min_composite_score \
                    or n < q.min_trades:
                continue
            key = (row[1], row[2], spread, mode, row[6])
            held_row = widths.get(key)
            if held_row is None or (-score, row[15]) < (-held_row[12], held_row[15]):
                widths[key] = row
    window_open = calendar.within_local_hours(NOW, h.entry_start, h.entry_end)
    now_et = NOW.astimezone(ET)
    now_minutes = now_et.hour * 60 + now_et.minute + now_et.second / 60
    out = [(not (window_open and abs(row[14] - now_minutes) <= h.entry_tolerance_minutes), -row[12], row[15], row)
           for row in widths.values()]
    out.sort(key=lambda item: item[:3])
    return [(not item[0], -item[1], item[3][:7]) for item in out[: q.top_n]]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    config, calendar = Config(), MarketCalendar()
    grid = big_grid(args.rows)
    calendar.is_open(NOW)  # warm the calendar
    rows = list(zip(*(grid.frame[c].tolist() for c in COLUMNS), strict=True))

    # Same answer first.
    top = scan(grid, now=NOW, calendar=calendar, config=config, price=None, **CONTEXT)
    looped = loop_scan(rows, config, calendar)
    assert [(o.in_window, o.trade_score) for o in top.opportunities] == [(w, s) for w, s, _ in looped], \
        "scan and loop disagree"
    assert [(o.dte, o.band, o.spread_type, o.flow_mode, o.spread_width, o.entry_time_et) for o in top.opportunities] \
        == [key[1:] for _, _, key in looped], "scan and loop disagree"

    vectorized, baseline = [], []
    for _ in range(args.repeat):  # interleaved
        t0 = time.perf_counter()
        scan(grid, now=NOW, calendar=calendar, config=config, price=2500.0, **CONTEXT)
        vectorized.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        loop_scan(rows, config, calendar)
        baseline.append(time.perf_counter() - t0)
    fast, slow = statistics.median(vectorized), statistics.median(baseline)
    print(f"grid rows: {args.rows:,}; opportunities: {len(top.opportunities)} of {top.matching_count} passing")
    print(f"vectorized scan: {fast * 1000:.1f} ms; plain loop over tuples: {slow * 1000:.1f} ms "
          f"(median of {args.repeat}, interleaved)")
    print(f"speed-up: {slow / fast:.1f}x")

    load = statistics.median([_timed(lambda: load_grid(bundled_path("grid_spx.csv"))) for _ in range(3)])
    print(f"load + validate the bundled grid ({load_grid(bundled_path('grid_spx.csv')).rows:,} rows) in process: "
          f"{load * 1000:.0f} ms")
    cli = [sys.executable, "-m", "spreadwatch", "scan", "--vix", "13.5", "--flow", "up", "--price", "2500",
           "--at", "2019-01-02T14:35:00Z", "--db", "/nonexistent/book.db"]
    walls = [_timed(lambda: subprocess.run(cli, check=True, capture_output=True)) for _ in range(3)]
    print(f"CLI load of the bundled grid + one scan: {statistics.median(walls):.2f} s wall (median of 3)")


def _timed(func) -> float:
    t0 = time.perf_counter()
    func()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
