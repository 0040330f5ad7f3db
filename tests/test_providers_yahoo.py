"""The Yahoo provider, with no network: yfinance parses hand-written v8 chart payloads (tests/data/yahoo/, see
make_payloads.py there: NOT recorded, this environment has no network) served at yfinance's HTTP boundary
(`YfData.get`), and stub tickers stand in for the failure modes (raising history, KeyError fast_info, rate
limits, hangs)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest

from spreadwatch.edges.providers import ProviderError
from spreadwatch.edges.providers.yahoo import YahooProvider, frame_to_daily, frame_to_rows

DATA = Path(__file__).parent / "data" / "yahoo"
PAYLOADS = {"^NDX": "ndx_1m.json", "^VIX": "vix_1d.json", "^VXN": "vxn_empty_1d.json"}
OPTION_PAYLOADS = {"^NDX": "ndx_options_20261125.json"}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


pytestmark = pytest.mark.usefixtures("no_network")


class _Response:
    status_code = 200

    def __init__(self, payload: dict, url: str) -> None:
        self._payload = payload
        self.text = json.dumps(payload)
        self.url = url

    def json(self) -> dict:
        return self._payload


@pytest.fixture
def recorded(monkeypatch, tmp_path):
    """Serve the payloads at yfinance's HTTP boundary; returns the list of requested (symbol, params)."""
    monkeypatch.setenv("YF_DISABLE_CURL_CFFI", "1")
    yf = pytest.importorskip("yfinance")
    import yfinance.data as yf_data

    yf.set_tz_cache_location(str(tmp_path / "tz"))
    requests: list[tuple[str, dict]] = []

    def get(self, url, params=None, timeout=30):
        if "/v7/finance/options/" in url:  # an option chain: the expiry list, then ?date=<expiry>
            symbol, _, query = url.rsplit("/", 1)[1].partition("?")
            requests.append((symbol, {"options": query}))
            return _Response(json.loads((DATA / OPTION_PAYLOADS[symbol]).read_text(encoding="utf-8")), url)
        symbol = url.rsplit("/", 1)[1]
        requests.append((symbol, dict(params or {})))
        return _Response(json.loads((DATA / PAYLOADS[symbol]).read_text(encoding="utf-8")), url)

    monkeypatch.setattr(yf_data.YfData, "get", get)
    monkeypatch.setattr(yf_data.YfData, "cache_get", get)
    return requests


def test_recorded_minute_chart_parses_into_bars_stamped_at_their_end(recorded):
    provider = YahooProvider(timeout=5)
    quote = provider.latest("^NDX", utc("2026-11-24T14:36:00Z"))
    # Bars start 09:30..09:33 ET; the in-progress 09:34 bar has a null close and yfinance drops it.
    assert quote.price == 20503.75
    assert quote.time == utc("2026-11-24T14:34:00Z")
    bars = provider.intraday("^NDX", date(2026, 11, 24), utc("2026-11-24T14:33:00Z"))
    assert [b.close for b in bars] == [20500.5, 20502.25, 20498.0]
    assert bars[0].time == utc("2026-11-24T14:31:00Z")
    # One price request served both calls (the minute cache), with the range and interval asked for. (yfinance
    # also asks once for the exchange time zone: range=1d, interval=1d, no events.)
    history = [(s, p["interval"], p["range"]) for s, p in recorded if "events" in p]
    assert history == [("^NDX", "1m", "5d")]


def test_recorded_daily_chart_parses_through_download(recorded):
    provider = YahooProvider(timeout=5)
    bars = provider.daily("^VIX", date(2026, 11, 23), 3)
    assert [b.day for b in bars] == [date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 20)]
    assert [b.close for b in bars] == [16.5, 17.0, 14.0]
    assert len(provider.daily("^VIX", date(2026, 11, 24), 400)) == 30
    assert len([p for _, p in recorded if "events" in p]) == 1  # daily history is cached for the day


def test_a_hand_written_option_chain_parses_into_quotes_with_bid_ask_and_trade_time(recorded):
    quotes = YahooProvider(timeout=5).option_chain("^NDX", date(2026, 11, 25))
    by_key = {(q.right, q.strike): q for q in quotes}
    assert sorted(by_key) == [("call", 20500.0), ("call", 20600.0), ("put", 19600.0), ("put", 19700.0),
                              ("put", 19800.0), ("put", 19850.0)]
    short = by_key[("put", 19800.0)]
    assert (short.bid, short.ask, short.last_trade) == (10.2, 11.0, utc("2026-11-24T16:02:00Z"))
    assert (by_key[("put", 19850.0)].bid, by_key[("put", 19850.0)].ask) == (14.0, 13.2)  # crossed: kept as quoted
    assert by_key[("call", 20600.0)].ask is None  # no ask in the payload: missing, never 0
    assert by_key[("put", 19600.0)].last_trade is None and by_key[("put", 19600.0)].bid == 0.0
    assert [q["options"] for s, q in recorded if "options" in q] == ["", "date=1795564800"]


def test_an_expiry_the_chain_does_not_list_is_empty_and_a_rate_limit_keeps_its_kind(recorded):
    with pytest.raises(ProviderError) as info:
        YahooProvider(timeout=5).option_chain("^NDX", date(2026, 11, 30))
    assert info.value.kind == "empty" and "2026-11-30" in str(info.value)

    class Limited:
        def option_chain(self, expiry):
            raise RuntimeError("Too Many Requests. Rate limited. Try after a while.")

    provider = YahooProvider(timeout=5, attempts=2, ticker_factory=lambda s: Limited(), sleep=lambda s: None)
    with pytest.raises(ProviderError) as info:
        provider.option_chain("^NDX", date(2026, 11, 25))
    assert info.value.kind == "rate_limit"


def test_download_returning_an_empty_frame_is_reported_empty(recorded):
    with pytest.raises(ProviderError) as info:
        YahooProvider(timeout=5).daily("^VXN", date(2026, 11, 24), 252)
    assert info.value.kind == "empty" and info.value.symbol == "^VXN"


class StubTicker:
    def __init__(self, history=None, error: BaseException | None = None,
                 hang_until: threading.Event | None = None) -> None:
        self._history = history
        self._error = error
        self._hang_until = hang_until  # history() blocks until it is set (a safety net of 60 s)
        self.calls = 0

    def history(self, **kwargs):
        self.calls += 1
        if self._hang_until is not None:
            self._hang_until.wait(60)
        if self._error is not None:
            raise self._error
        return self._history if self._history is not None else pd.DataFrame()

    @property
    def fast_info(self):
        raise KeyError("currentTradingPeriod")  # seen in the wild: fast_info raises KeyError


def provider_with(ticker: StubTicker, **kwargs) -> tuple[YahooProvider, list[float]]:
    sleeps: list[float] = []
    provider = YahooProvider(ticker_factory=lambda symbol: ticker, sleep=sleeps.append, **kwargs)
    return provider, sleeps


def test_ticker_history_raising_is_an_exception_failure_not_retried():
    ticker = StubTicker(error=ValueError("unexpected payload"))
    provider, sleeps = provider_with(ticker)
    with pytest.raises(ProviderError) as info:
        provider.latest("^NDX", utc("2026-11-24T15:00:00Z"))
    assert info.value.kind == "exception" and "unexpected payload" in info.value.detail
    assert ticker.calls == 1 and sleeps == []


def test_rate_limits_back_off_then_report_rate_limit():
    from yfinance.exceptions import YFRateLimitError

    ticker = StubTicker(error=YFRateLimitError())
    provider, sleeps = provider_with(ticker, attempts=3)
    with pytest.raises(ProviderError) as info:
        provider.latest("^VIX", utc("2026-11-24T15:00:00Z"))
    assert info.value.kind == "rate_limit"
    assert ticker.calls == 3
    assert len(sleeps) == 2 and sleeps[1] > sleeps[0] > 0  # exponential backoff between attempts


def test_network_errors_are_retried_and_can_recover():
    good = pd.DataFrame({"Close": [20_000.0], "Volume": [0]},
                        index=pd.DatetimeIndex([pd.Timestamp("2026-11-24 09:30", tz="America/New_York")]))

    class Flaky(StubTicker):
        def history(self, **kwargs):
            self.calls += 1
            if self.calls == 1:
                raise ConnectionError("connection reset by peer")
            return good

    ticker = Flaky()
    provider, sleeps = provider_with(ticker)
    quote = provider.latest("^NDX", utc("2026-11-24T15:00:00Z"))
    assert quote.price == 20_000.0 and ticker.calls == 2 and len(sleeps) == 1


def test_a_hanging_call_times_out():
    hung = threading.Event()
    provider, _ = provider_with(StubTicker(hang_until=hung), timeout=0.05, attempts=1)
    try:
        with pytest.raises(ProviderError) as info:
            provider.latest("^NDX", utc("2026-11-24T15:00:00Z"))
        assert info.value.kind == "timeout"
        assert not hung.is_set()  # it returned while the call was still hanging
    finally:
        hung.set()


def test_empty_history_with_a_keyerror_fast_info_is_empty_not_a_crash():
    provider, _ = provider_with(StubTicker(history=pd.DataFrame()))
    with pytest.raises(ProviderError) as info:
        provider.latest("^NDX", utc("2026-11-24T15:00:00Z"))
    assert info.value.kind == "empty"


def test_frame_conversion_keeps_nan_and_stamps_bar_ends():
    index = pd.DatetimeIndex([pd.Timestamp("2026-11-24 09:30", tz="America/New_York"),
                              pd.Timestamp("2026-11-24 09:31", tz="America/New_York")])
    rows = frame_to_rows(pd.DataFrame({"Close": [1.0, float("nan")], "Volume": [10, None]}, index=index),
                         pd.Timedelta(minutes=1).to_pytimedelta())
    assert rows[0] == (utc("2026-11-24T14:31:00Z"), 1.0, 10.0)
    assert rows[1][0] == utc("2026-11-24T14:32:00Z") and rows[1][1] != rows[1][1] and rows[1][2] is None
    columns = pd.MultiIndex.from_tuples([("Close", "^VIX"), ("Open", "^VIX")])
    daily = frame_to_daily(pd.DataFrame([[15.0, 14.0]], columns=columns,
                                        index=pd.DatetimeIndex([pd.Timestamp("2026-11-23")])))
    assert daily[0].day == date(2026, 11, 23) and daily[0].close == 15.0 and daily[0].open == 14.0
    assert frame_to_rows(pd.DataFrame(), pd.Timedelta(minutes=1).to_pytimedelta()) == []


def test_sessions_older_than_the_minute_window_come_from_5_minute_bars():
    def frame(stamps: list[str], closes: list[float]) -> pd.DataFrame:
        index = pd.DatetimeIndex([pd.Timestamp(s, tz="America/New_York") for s in stamps])
        return pd.DataFrame({"Close": closes, "Volume": [100] * len(closes)}, index=index)

    class Both(StubTicker):
        def history(self, **kwargs):
            self.calls += 1
            if kwargs["interval"] == "1m":
                return frame(["2026-11-23 09:30", "2026-11-24 09:30"], [1.0, 2.0])
            return frame(["2026-11-02 09:30", "2026-11-02 09:35"], [3.0, 4.0])

    provider, _ = provider_with(Both())
    old = provider.intraday("QQQ", date(2026, 11, 2), utc("2026-11-02T21:00:00Z"))
    assert [(b.time, b.close) for b in old] == [(utc("2026-11-02T14:35:00Z"), 3.0), (utc("2026-11-02T14:40:00Z"), 4.0)]
    recent = provider.intraday("QQQ", date(2026, 11, 23), utc("2026-11-23T21:00:00Z"))
    assert [b.close for b in recent] == [1.0]
    assert provider.intraday("QQQ", date(2026, 11, 25), utc("2026-11-25T14:00:00Z")) == []  # not yet open
