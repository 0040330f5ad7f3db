#!/usr/bin/env python3
"""Make tests/data/ndx/strike_walk.csv: a SYNTHETIC replay morning (not market data) on which the index walks down
through a put spread's short strike, for the end-to-end test of the position watch.

2026-11-24 (a normal XNYS session), minute bars from the open (09:31 ET) to 11:45 ET for ^NDX, ^VXN, ^VIX and QQQ,
each stamped at its end (UTC). ^NDX holds 20,600 until 10:05 ET, walks down 10 points a minute to 19,750 (11:30 ET)
and holds there; ^VXN holds 24.0 and ^VIX 17.0 (regime medium); QQQ follows the index at 1/40 with a flat volume.
No history before the day: what needs it (IV rank, volume ratio, flow) is unknown, which the watch does not use.
No randomness: run it again and the file is identical.

    python tests/data/ndx/make_strike_walk.py [OUT]
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

OPEN = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)  # 09:30 ET
LAST = datetime(2026, 11, 24, 16, 45, tzinfo=UTC)  # 11:45 ET
WALK_FROM = datetime(2026, 11, 24, 15, 5, tzinfo=UTC)  # 10:05 ET


def ndx(at: datetime) -> float:
    minutes = max(0.0, (at - WALK_FROM).total_seconds() / 60)
    return max(19750.0, 20600.0 - 10.0 * minutes)


def rows() -> list[str]:
    out = []
    at = OPEN + timedelta(minutes=1)
    while at <= LAST:
        stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        price = ndx(at)
        for symbol, close, volume in (("^NDX", price, 0), ("^VXN", 24.0, 0), ("^VIX", 17.0, 0),
                                      ("QQQ", price / 40, 100000)):
            out.append(f"{stamp},{symbol},{close:.2f},{close:.2f},{close:.2f},{close:.2f},{volume}")
        at += timedelta(minutes=1)
    return out


def main(argv: list[str]) -> None:
    target = Path(argv[1]) if len(argv) > 1 else Path(__file__).with_name("strike_walk.csv")
    header = ["# spreadwatch replay: SYNTHETIC data, NOT market data (tests/data/ndx/make_strike_walk.py).",
              "# Bars are stamped at their end (UTC): a bar stamped t is visible from t on.",
              "timestamp,symbol,open,high,low,close,volume"]
    target.write_text("\n".join(header + rows()) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv)
