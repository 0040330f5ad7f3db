#!/usr/bin/env python3
"""Make the NDX replay test fixture: SYNTHETIC bars from a fixed seed. Not market data.

(This was the package's first bundled replay day; the tests of the loop, the market context and the alerts keep
it with its exact NDX values. The bundled demo day is now SPX: scripts/make_replay_sample.py.)

Writes tests/data/ndx/replay_sample.csv (columns timestamp, symbol, open, high, low, close, volume;
timestamps UTC; `#` lines are comments) with:

- 2026-11-24 (a normal XNYS session, Tuesday): minute bars 14:31Z..21:00Z for ^NDX, ^VIX, ^VXN and QQQ. The VIX
  opens at 15.2 (regime low), climbs to about 16.8 between 10:15 and 10:45 ET and stays above 16.5 (medium,
  past the 16 boundary by more than the default 0.5 hysteresis), while ^NDX drifts down (flow "down").
- 2026-11-23 (the previous session): minute bars of all four symbols, VIX in the low regime (about 14.8-15.3),
  so the regime rebuild at start has a previous session to run over.
- QQQ minute bars for the 20 sessions before 2026-11-24 (volume ratio needs up to 20 prior sessions at the same
  time of day).
- One daily bar per symbol (stamped at the session close) for every earlier session back to 300 sessions before
  2026-11-24: enough for IV rank (252 sessions of ^VXN/^VIX) and percentile bands (>= 120 closes of ^NDX).

Each bar is stamped at its END (a minute bar covering 09:30-09:31 ET is stamped 09:31 ET): a bar stamped t is
visible from t on. Index symbols carry volume 0, as Yahoo reports them. Run it again and the file is identical.

    python tests/data/ndx/make_replay_sample.py [OUT]
"""

from __future__ import annotations

import math
import sys
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from spreadwatch.edges.calendar import MarketCalendar

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
from make_replay_sample import bars_rows, iso, volume_profile  # noqa: E402  (the bundled day's bar helpers)
from make_replay_sample import bridge as minute_path  # noqa: E402

SEED = 20261124
DAY = date(2026, 11, 24)
HISTORY_SESSIONS = 300
QQQ_INTRADAY_SESSIONS = 20
OUT = Path(__file__).resolve().parent / "replay_sample.csv"

NDX_END = 20_480.0  # close of 2026-11-23, around which the bundled grid's strikes make sense
VIX_PREV_CLOSE = 15.05
QQQ_PER_NDX = 1 / 40.9


def main(out: Path) -> None:
    rng = np.random.default_rng(SEED)
    cal = MarketCalendar()
    sessions = cal.sessions_in_range(DAY - timedelta(days=HISTORY_SESSIONS * 2), DAY)
    sessions = sessions[-(HISTORY_SESSIONS + 1):]
    assert sessions[-1] == DAY and sessions[-2] == date(2026, 11, 23)
    past = sessions[:-1]
    n = len(past)

    # Daily closes, generated backwards from fixed end levels so the last ones are what the story needs.
    ndx_ret = rng.normal(0.0003, 0.011, n)
    ndx = NDX_END / np.exp(np.cumsum(ndx_ret[::-1]))[::-1] * math.exp(ndx_ret[-1])
    ndx[-1] = NDX_END
    vix = np.empty(n)
    level = 17.0
    for i in range(n):  # mean-reverting log VIX with occasional spikes
        level = math.exp(math.log(level) + 0.08 * (math.log(16.5) - math.log(level)) + rng.normal(0.0, 0.06)
                         + (0.25 if rng.random() < 0.01 else 0.0))
        vix[i] = level
    vix = vix * (VIX_PREV_CLOSE / vix[-1]) ** np.linspace(0.0, 1.0, n)  # end exactly at the previous close
    vxn = vix * 1.22 + rng.normal(0.0, 0.25, n)
    qqq = ndx * QQQ_PER_NDX
    qqq_volume = rng.lognormal(math.log(45e6), 0.2, n)

    rows: list[str] = []
    intraday_all = {past[-1]}
    intraday_qqq = set(past[-QQQ_INTRADAY_SESSIONS:])
    for i, day in enumerate(past):
        open_, close = cal.open_close(day)
        prev = {s: v[i - 1] if i else v[0] for s, v in
                (("^NDX", ndx), ("^VIX", vix), ("^VXN", vxn), ("QQQ", qqq))}
        levels = {"^NDX": ndx[i], "^VIX": vix[i], "^VXN": vxn[i], "QQQ": qqq[i]}
        minutes = int((close - open_).total_seconds() // 60)
        stamps = [open_ + timedelta(minutes=k + 1) for k in range(minutes)]
        for symbol in ("^NDX", "^VIX", "^VXN", "QQQ"):
            wanted = day in intraday_all or (symbol == "QQQ" and day in intraday_qqq)
            decimals = 2 if symbol != "QQQ" else 3
            if wanted:
                vol = 0.0006 if symbol in ("^NDX", "QQQ") else 0.004
                path = minute_path(rng, prev[symbol], levels[symbol], minutes, vol)
                volumes = qqq_volume[i] * volume_profile(minutes) * rng.lognormal(0, 0.15, minutes) \
                    if symbol == "QQQ" else None
                rows += bars_rows(symbol, stamps, path, prev[symbol], volumes, rng, decimals)
            else:
                o = prev[symbol] * (1 + rng.normal(0.0, 0.002))
                c = levels[symbol]
                h = max(o, c) * (1 + abs(rng.normal(0.0, 0.004)))
                lo = min(o, c) * (1 - abs(rng.normal(0.0, 0.004)))
                volume = int(qqq_volume[i]) if symbol == "QQQ" else 0
                rows.append(f"{iso(close)},{symbol},{o:.{decimals}f},{h:.{decimals}f},{lo:.{decimals}f},"
                            f"{c:.{decimals}f},{volume}")

    # The replayed day: VIX 15.2 -> ~16.8 mid-morning (10:15-10:45 ET), NDX drifting down ~0.7 %.
    open_, close = cal.open_close(DAY)
    minutes = int((close - open_).total_seconds() // 60)
    stamps = [open_ + timedelta(minutes=k + 1) for k in range(minutes)]
    t = np.arange(minutes)
    rise = 1.0 / (1.0 + np.exp(-(t - 60) / 6.0))  # centred on 10:30 ET
    vix_day = 15.2 + 1.6 * rise + np.cumsum(rng.normal(0.0, 0.01, minutes)) * 0.5
    vix_day = np.where(t > 80, np.maximum(vix_day, 16.6), vix_day)
    vix_day = np.where(t < 40, np.minimum(vix_day, 15.5), vix_day)
    vxn_day = vix_day * 1.22 + 0.1
    ndx_day = minute_path(rng, NDX_END * 1.001, NDX_END * (1 - 0.0065), minutes, 0.0004)
    ndx_day = ndx_day * (1 - 0.003 * rise)  # the sell-off that lifts the VIX
    qqq_day = ndx_day * QQQ_PER_NDX
    qqq_vol_day = 45e6 * 1.25 * volume_profile(minutes) * rng.lognormal(0, 0.15, minutes)
    rows += bars_rows("^NDX", stamps, ndx_day, NDX_END * 1.001, None, rng)
    rows += bars_rows("^VIX", stamps, vix_day, 15.2, None, rng)
    rows += bars_rows("^VXN", stamps, vxn_day, vxn_day[0], None, rng)
    rows += bars_rows("QQQ", stamps, qqq_day, qqq_day[0], qqq_vol_day, rng, 3)

    rows.sort()  # by timestamp, then symbol
    header = [
        "# spreadwatch replay sample: SYNTHETIC data (seed 20261124), NOT market data.",
        "# Made by scripts/make_replay_sample.py; format and story in docs/market.md.",  # kept: the file's bytes
        "# Bars are stamped at their end (UTC): a bar stamped t is visible from t on.",
        "timestamp,symbol,open,high,low,close,volume",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(header + rows) + "\n", encoding="utf-8")
    print(f"wrote {out}: {len(rows)} bars, {out.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
