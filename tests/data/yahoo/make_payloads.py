"""Write the Yahoo v8 chart payloads the Yahoo provider tests replay.

These are HAND-WRITTEN, not recorded: this environment has no network. They follow the shape of Yahoo's
`/v8/finance/chart/{symbol}` answers (meta with exchangeTimezoneName, currentTradingPeriod and tradingPeriods;
`timestamp`; `indicators.quote[0]` with open/high/low/close/volume lists, `null` for a missing value), which is
what yfinance parses. Values are made up but fixed; the tests assert on them. Run from the repository root:

    python tests/data/yahoo/make_payloads.py
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
OPEN = int(datetime(2026, 11, 24, 14, 30, tzinfo=UTC).timestamp())
CLOSE = OPEN + 6 * 3600 + 1800


def chart(symbol: str, granularity: str, range_: str, stamps: list[int], closes: list[float | None],
          volumes: list[int | None], instrument: str = "INDEX") -> dict:
    period = {"timezone": "EST", "start": OPEN, "end": CLOSE, "gmtoffset": -18000}
    finite = [c for c in closes if c is not None]
    meta = {
        "currency": "USD", "symbol": symbol, "exchangeName": "NIM", "fullExchangeName": "Nasdaq GIDS",
        "instrumentType": instrument, "firstTradeDate": 1095427800,
        "regularMarketTime": stamps[-1] if stamps else OPEN, "hasPrePostMarketData": False, "gmtoffset": -18000,
        "timezone": "EST", "exchangeTimezoneName": "America/New_York",
        "regularMarketPrice": finite[-1] if finite else None, "chartPreviousClose": finite[0] if finite else None,
        "priceHint": 2,
        "currentTradingPeriod": {
            "pre": {"timezone": "EST", "start": OPEN - 19800, "end": OPEN, "gmtoffset": -18000},
            "regular": period,
            "post": {"timezone": "EST", "start": CLOSE, "end": CLOSE + 14400, "gmtoffset": -18000},
        },
        "tradingPeriods": [[period]],
        "dataGranularity": granularity, "range": range_,
        "validRanges": ["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"],
    }
    result: dict = {"meta": meta, "indicators": {"quote": [{}]}}
    if stamps:
        result["timestamp"] = stamps
        result["indicators"] = {"quote": [{
            "open": closes, "high": [c and round(c + 2.0, 2) for c in closes],
            "low": [c and round(c - 2.0, 2) for c in closes], "close": closes, "volume": volumes}]}
    return {"chart": {"result": [result], "error": None}}


def main() -> None:
    # ^NDX minute bars 09:30..09:34 ET on 2026-11-24; the last one (in progress) has a null close.
    stamps = [OPEN + 60 * i for i in range(5)]
    ndx = chart("^NDX", "1m", "5d", stamps, [20500.5, 20502.25, 20498.0, 20503.75, None], [0, 0, 0, 0, None])
    # ^VIX daily closes of 30 sessions ending 2026-11-23 (stamped at the session open, as Yahoo does).
    days, day = [], date(2026, 11, 23)
    while len(days) < 30:
        if day.weekday() < 5 and day not in (date(2026, 11, 26), date(2026, 9, 7), date(2026, 10, 12)):
            days.append(day)
        day -= timedelta(days=1)
    days.reverse()
    daily_stamps = [int(datetime(d.year, d.month, d.day, 14, 30, tzinfo=UTC).timestamp()) for d in days]
    vix_closes = [round(14.0 + (i % 7) * 0.5, 2) for i in range(30)]
    vix = chart("^VIX", "1d", "2y", daily_stamps, vix_closes, [0] * 30)
    empty = chart("^VXN", "1d", "2y", [], [], [])
    for name, payload in (("ndx_1m.json", ndx), ("vix_1d.json", vix), ("vxn_empty_1d.json", empty)):
        (HERE / name).write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
