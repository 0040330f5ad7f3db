#!/usr/bin/env python3
"""Make the bundled replay day: a SYNTHETIC SPX session on real daily history. Not a record of any real day.

Writes exporter/spreadwatch/data/replay_sample.csv (columns timestamp, symbol, open, high, low, close, volume;
timestamps UTC, or a bare date for a daily bar; `#` lines are comments) with:

- REAL daily history, from the `arch` package: ^GSPC daily bars (arch.data.sp500) and ^VIX daily closes
  (arch.data.vix) for the 300 sessions up to 2018-12-31, the last session that history has. Bands, IV rank and
  the `auto` trend of the replayed day come from these.
- SYNTHETIC SPY minute bars for the 20 sessions before the replayed day (the volume ratio needs bars at the
  same time of day): each a random path from that session's real ^GSPC open to its close, divided by 10, with a
  U-shaped volume profile summing to 3 % of the real S&P 500 volume of the day.
- The replayed day, 2019-01-02 (the first session after the history ends), SYNTHETIC minute bars 14:31Z..21:00Z
  of ^GSPC, ^VIX and SPY from a fixed seed. ^GSPC starts at the last real close (2,506.85), opens 0.25 % higher
  (flow up), drifts up, then sells off about 1 % from 10:15 ET. The VIX OPENS AT 15.2, far below its real close
  of 25.42 on 2018-12-31 (no real overnight move comes near it): on this history the default recommendations
  of the high regime lose money once managed after costs, so a day opening in the high regime would show no
  setup (correctly); the low regime is the one whose default setups backtest with a positive managed return.
  So the regime turns high -> low at the first bar, and the VIX then climbs to about 16.8 between 10:15 and
  10:45 ET and stays above 16.5: low -> medium mid-morning (past the 16 boundary by more than the default 0.5
  hysteresis). Index symbols carry volume 0, as Yahoo reports them.

Each intraday bar is stamped at its END (a minute bar covering 09:30-09:31 ET is stamped 09:31 ET): a bar stamped
t is visible from t on. Run it again and the file is identical (a test checks it).

    python scripts/make_replay_sample.py [OUT]    (needs the test extras: pip install -e '.[test]')
"""

from __future__ import annotations

import math
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np

from spreadwatch.edges.calendar import MarketCalendar

SEED = 20190102
DAY = date(2019, 1, 2)
HISTORY_SESSIONS = 300
SPY_INTRADAY_SESSIONS = 20
SPY_PER_SPX = 0.1
SPY_VOLUME_SHARE = 0.03  # SPY's daily volume as a share of the S&P 500's (a synthetic, plausible ratio)
OUT = Path(__file__).resolve().parents[1] / "exporter" / "spreadwatch" / "data" / "replay_sample.csv"
VIX_OPEN = 15.2


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def bridge(rng: np.random.Generator, start: float, end: float, n: int, vol: float) -> np.ndarray:
    """A Brownian bridge (in log space) from start to end over n steps: a plausible intraday path."""
    walk = np.cumsum(rng.normal(0.0, vol, n))
    drift = np.linspace(0.0, 1.0, n) * (math.log(end / start) - walk[-1])
    return start * np.exp(walk + drift)


def bars_rows(symbol: str, stamps: list[datetime], closes: np.ndarray, first_open: float,
              volumes: np.ndarray | None, rng: np.random.Generator, decimals: int = 2) -> list[str]:
    rows = []
    prev = first_open
    for i, (stamp, close) in enumerate(zip(stamps, closes, strict=True)):
        wiggle = abs(rng.normal(0.0, 0.0003)) * close
        high = max(prev, close) + wiggle
        low = min(prev, close) - wiggle
        volume = 0 if volumes is None else int(volumes[i])
        rows.append(f"{iso(stamp)},{symbol},{prev:.{decimals}f},{high:.{decimals}f},{low:.{decimals}f},"
                    f"{close:.{decimals}f},{volume}")
        prev = close
    return rows


def volume_profile(n: int) -> np.ndarray:
    """U-shaped share of the day's volume per bar (busy open and close)."""
    x = np.linspace(-1.0, 1.0, n)
    shape = 0.6 + 1.6 * x**4 + 0.4 * np.exp(-((x + 1) * 8) ** 2) + 0.8 * np.exp(-((x - 1) * 10) ** 2)
    return shape / shape.sum()


def real_history() -> tuple[list[str], dict[date, tuple[float, float, float, float, float]]]:
    """Bare-date rows of arch's ^GSPC bars and ^VIX closes for the last HISTORY_SESSIONS sessions."""
    from arch.data import sp500, vix

    px = sp500.load()
    px = px[px.index < str(DAY)].iloc[-HISTORY_SESSIONS:]
    levels = vix.load()["vix"]
    rows, bars = [], {}
    for stamp, bar in px.iterrows():
        day = stamp.date()
        bars[day] = (float(bar.Open), float(bar.High), float(bar.Low), float(bar.Close), float(bar.Volume))
        rows.append(f"{day},^GSPC,{bar.Open:.2f},{bar.High:.2f},{bar.Low:.2f},{bar.Close:.2f},0")
        level = float(levels.get(stamp, float("nan")))
        if math.isfinite(level):  # a missing close stays missing
            rows.append(f"{day},^VIX,{level:.2f},{level:.2f},{level:.2f},{level:.2f},0")
    return rows, bars


def spy_history(rng: np.random.Generator, cal: MarketCalendar, bars: dict) -> list[str]:
    rows = []
    for day in sorted(bars)[-SPY_INTRADAY_SESSIONS:]:
        open_, high, low, close, volume = bars[day]
        start, end = cal.open_close(day)
        n = int((end - start).total_seconds() // 60)
        stamps = [start + timedelta(minutes=k + 1) for k in range(n)]
        path = bridge(rng, open_ * SPY_PER_SPX, close * SPY_PER_SPX, n, 0.0005)
        volumes = volume * SPY_VOLUME_SHARE * volume_profile(n) * rng.lognormal(0, 0.15, n)
        rows += bars_rows("SPY", stamps, path, open_ * SPY_PER_SPX, volumes, rng, 3)
    return rows


def replayed_day(rng: np.random.Generator, cal: MarketCalendar, last_close: float, spy_volume: float
                 ) -> list[str]:
    start, end = cal.open_close(DAY)
    n = int((end - start).total_seconds() // 60)
    stamps = [start + timedelta(minutes=k + 1) for k in range(n)]
    t = np.arange(n)
    rise = 1.0 / (1.0 + np.exp(-(t - 60) / 6.0))  # centred on 10:30 ET
    vix = VIX_OPEN + 1.6 * rise + np.cumsum(rng.normal(0.0, 0.01, n)) * 0.5
    vix = np.where(t > 80, np.maximum(vix, 16.6), vix)
    vix = np.where(t < 40, np.minimum(vix, 15.4), vix)
    open_ = last_close * 1.0025
    spx = bridge(rng, open_, open_ * 1.001, n, 0.0003) * (1 - 0.01 * rise)
    spx = np.where(t < 20, np.maximum(spx, last_close * 1.0015), spx)  # the gap holds through the entry window
    volumes = spy_volume * 1.25 * volume_profile(n) * rng.lognormal(0, 0.15, n)
    return (bars_rows("^GSPC", stamps, spx, open_, None, rng)
            + bars_rows("^VIX", stamps, vix, VIX_OPEN, None, rng)
            + bars_rows("SPY", stamps, spx * SPY_PER_SPX, open_ * SPY_PER_SPX, volumes, rng, 3))


def main(out: Path) -> None:
    rng = np.random.default_rng(SEED)
    cal = MarketCalendar()
    assert cal.previous_session(DAY) == date(2018, 12, 31)
    history, bars = real_history()
    last = bars[max(bars)]
    rows = history + spy_history(rng, cal, bars)
    rows += replayed_day(rng, cal, last[3], float(np.mean([b[4] for b in bars.values()])) * SPY_VOLUME_SHARE)
    header = [
        "# spreadwatch replay sample: SYNTHETIC SPX day 2019-01-02 (seed 20190102) on REAL daily history.",
        "# Daily ^GSPC bars and ^VIX closes to 2018-12-31: the arch package's (real). SPY minute bars before the",
        "# day and every bar of 2019-01-02: synthetic, not market data (the VIX opens at 15.2; its real 2018-12-31",
        "# close was 25.42). Made by scripts/make_replay_sample.py; story in docs/market.md.",
        "# Intraday bars are stamped at their end (UTC); a bare date is a daily bar, visible from 16:00 ET.",
        "timestamp,symbol,open,high,low,close,volume",
    ]
    rows.sort()  # by timestamp (bare dates first within a day's text order), then symbol
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(header + rows) + "\n", encoding="utf-8")
    print(f"wrote {out}: {len(rows)} bars, {out.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
