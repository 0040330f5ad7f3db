"""Scan speed: the vectorized scan of a 100,000-row grid vs a straightforward row-by-row loop, same run.

Also times loading the bundled seed grid and scanning it once from the CLI (a fresh process).
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
from spreadwatch.domain.scanner import filter_grid, scan
from spreadwatch.domain.vocabulary import flow_qualifies
from spreadwatch.edges.calendar import ET, MarketCalendar
from spreadwatch.edges.gridfile import Grid, load_grid

NOW = datetime(2026, 11, 24, 15, 30, tzinfo=UTC)
CONTEXT = dict(ticker="NDX", regime="low", trend="sideways", flow="down", flow_0dte="down")


def big_grid(rows: int) -> Grid:
    seed = load_grid(bundled_path("grid_trading_ready.csv"))
    reps = -(-rows // seed.rows)
    frame = pd.concat([seed.frame] * reps, ignore_index=True).iloc[:rows].copy()
    rng = np.random.default_rng(1)
    # Vary the numbers so the rows are distinct configs, not copies.
    frame["win_rate"] = np.clip(frame["win_rate"] + rng.normal(0, 0.02, rows), 0, 1)
    frame["trade_score"] = frame["trade_score"] + rng.normal(0, 5, rows)
    frame["line"] = np.arange(rows) + 2
    return dataclasses.replace(seed, frame=frame, total_rows=rows)


def loop_scan(frame: pd.DataFrame, config: Config, calendar: MarketCalendar) -> list[tuple]:
    """The straightforward version: one row at a time, the same filters, then sort and cut."""
    rec = config.regime.recommendations[CONTEXT["regime"]]
    q = config.scan
    h = config.hours
    window_open = calendar.within_local_hours(NOW, h.entry_start, h.entry_end)
    now_et = NOW.astimezone(ET)
    now_minutes = now_et.hour * 60 + now_et.minute
    out = []
    for _, row in frame.iterrows():
        if row["ticker"] not in ("NDX", "all") or row["regime"] not in ("low", "all"):
            continue
        if row["band"] not in rec.bands or row["dte"] not in rec.dtes or row["flow_mode"] not in rec.flow_modes:
            continue
        if row["trend"] not in ("sideways", "all") or row["spread_type"] not in rec.spread_types:
            continue
        flow = CONTEXT["flow_0dte"] if row["dte"] == 0 else CONTEXT["flow"]
        if not flow_qualifies(row["flow_mode"], row["spread_type"], flow):
            continue
        if (row["win_rate"] < q.min_win_rate or row["roi"] < q.min_roi or row["sharpe"] < q.min_sharpe
                or row["trade_score"] < q.min_composite_score or row["n_trades"] < q.min_trades):
            continue
        in_window = window_open and abs(row["entry_minutes"] - now_minutes) <= h.entry_tolerance_minutes
        out.append((not in_window, -row["trade_score"], row["line"]))
    out.sort()
    return out[: q.top_n]


def best(func, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    config, calendar = Config(), MarketCalendar()
    grid = big_grid(args.rows)
    calendar.is_open(NOW)  # warm the calendar

    # Same answer first: the vectorized filter and the loop pass the same rows.
    passing = filter_grid(grid.frame, config=config, **CONTEXT)
    looped = loop_scan(grid.frame, config, calendar)
    top = scan(grid, now=NOW, calendar=calendar, config=config, price=None, **CONTEXT)
    assert [o.trade_score for o in top.opportunities] == [-s for _, s, _ in looped], "scan and loop disagree"

    vectorized = best(lambda: scan(grid, now=NOW, calendar=calendar, config=config, price=20500.0, **CONTEXT),
                      args.repeat)
    baseline = best(lambda: loop_scan(grid.frame, config, calendar), max(1, args.repeat // 2))
    print(f"grid rows: {args.rows:,}; passing the filters: {len(passing):,}")
    print(f"vectorized scan: {vectorized * 1000:.1f} ms (best of {args.repeat})")
    print(f"row-by-row loop: {baseline * 1000:.1f} ms")
    print(f"speed-up: {baseline / vectorized:.0f}x (target >= 50x)")

    load = best(lambda: load_grid(bundled_path("grid_trading_ready.csv")), args.repeat)
    print(f"load + validate the bundled seed grid (4,872 rows) in process: {load * 1000:.1f} ms")
    every = best(lambda: scan(grid, now=NOW, calendar=calendar, config=config, price=20500.0, include_all=True,
                              **CONTEXT), 1)
    print(f"vectorized scan with --all ({len(passing):,} opportunities built): {every * 1000:.0f} ms")

    cli = [sys.executable, "-m", "spreadwatch", "scan", "--vix", "18.5", "--price", "20100",
           "--at", "2026-11-24T15:30:00Z", "--db", "/nonexistent/book.db"]
    walls = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run(cli, check=True, capture_output=True)
        walls.append(time.perf_counter() - t0)
    print(f"CLI load of the bundled seed grid + one scan: {statistics.median(walls):.2f} s wall (median of 3)")


if __name__ == "__main__":
    main()
