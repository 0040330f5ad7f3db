"""Write the Yahoo v8 chart payloads the Yahoo provider tests replay.

These are HAND-WRITTEN, not recorded: this environment has no network. They follow the shape of Yahoo's
`/v8/finance/chart/{symbol}` answers (meta with exchangeTimezoneName, currentTradingPeriod and tradingPeriods;
`timestamp`; `indicators.quote[0]` with open/high/low/close/volume lists, `null` for a missing value), which is
what yfinance parses; and one `/v7/finance/options/{symbol}` answer (optionChain.result[0] with expirationDates and
options[0].puts/calls, each option with strike, bid, ask, lastTradeDate; a missing bid or ask left out), for the
market mark. Values are made up but fixed; the tests assert on them. Run from the repository root:

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


def option(right: str, strike: float, bid: float | None, ask: float | None, last: float,
           traded: int | None, expiry: int) -> dict:
    symbol = f"NDX261125{'P' if right == 'put' else 'C'}{int(strike * 1000):08d}"
    out: dict = {"contractSymbol": symbol, "strike": float(strike), "currency": "USD", "lastPrice": last,
                 "change": 0.0, "percentChange": 0.0, "volume": 12, "openInterest": 340, "contractSize": "REGULAR",
                 "expiration": expiry, "impliedVolatility": 0.21, "inTheMoney": False}
    for key, value in (("bid", bid), ("ask", ask), ("lastTradeDate", traded)):
        if value is not None:
            out[key] = value
    return out


def options_chain() -> dict:
    """^NDX options expiring 2026-11-25 (Yahoo keys an expiry by its midnight UTC), quoted at 11:02 ET on
    2026-11-24: two usable puts, a crossed put (bid above ask), a zero-quoted put with no trade, a call with no ask."""
    expiry = int(datetime(2026, 11, 25, tzinfo=UTC).timestamp())
    traded = int(datetime(2026, 11, 24, 16, 2, tzinfo=UTC).timestamp())
    puts = [option("put", 19700, 6.1, 6.9, 6.4, traded, expiry), option("put", 19800, 10.2, 11.0, 10.5, traded, expiry),
            option("put", 19850, 14.0, 13.2, 13.6, traded, expiry), option("put", 19600, 0.0, 0.0, 0.05, None, expiry)]
    calls = [option("call", 20500, 4.0, 4.6, 4.3, traded, expiry), option("call", 20600, 1.9, None, 2.0, traded, expiry)]
    result = {"underlyingSymbol": "^NDX", "expirationDates": [expiry, expiry + 2 * 86400],
              "strikes": [19600.0, 19700.0, 19800.0, 19850.0, 20500.0, 20600.0], "hasMiniOptions": False,
              "quote": {"symbol": "^NDX", "regularMarketPrice": 20102.5},
              "options": [{"expirationDate": expiry, "hasMiniOptions": False, "calls": calls, "puts": puts}]}
    return {"optionChain": {"result": [result], "error": None}}


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
    for name, payload in (("ndx_1m.json", ndx), ("vix_1d.json", vix), ("vxn_empty_1d.json", empty),
                          ("ndx_options_20261125.json", options_chain())):
        (HERE / name).write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
