"""The live provider: Yahoo Finance through yfinance. The only module that imports yfinance.

Owns: turning yfinance frames into `Quote`/`Bar`/`DailyBar`, a timeout on every call, backoff with tenacity on
rate limits and network errors, a short cache of today's minute bars (so one market cycle makes one request per
symbol), a per-day cache of daily history and older intraday bars (they change once a day), and reporting each
failure with its kind (empty | nan | exception | timeout | rate_limit). Must not: make up a value. An empty frame
is "empty", a NaN close is passed on for the watcher to count as "nan", and nothing stands in for either.

yfinance failure modes handled: `download` returns an empty frame (-> empty), `Ticker.history` raises (-> its
kind, after retries when transient), `fast_info` raises KeyError: fast_info is deliberately not used, because it
carries no timestamp, so the age of its price could not be known; minute bars give price and time together.

Bars are stamped at their END (Yahoo stamps the start): a bar is visible once complete, as in replay files.
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
import time as _time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from spreadwatch.domain.vocabulary import ET
from spreadwatch.edges.providers import Bar, DailyBar, OptionQuote, ProviderError, Quote

log = logging.getLogger(__name__)

MINUTE = timedelta(minutes=1)
FIVE_MINUTES = timedelta(minutes=5)


class _Transient(Exception):
    """A failure worth retrying (rate limit, network); carries the kind reported if retries run out."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def _classify(exc: BaseException) -> tuple[str, bool]:
    """(kind, transient) of an exception raised by yfinance or its HTTP layer."""
    name = type(exc).__name__
    text = str(exc)
    if name == "YFRateLimitError" or "Too Many Requests" in text or "429" in text:
        return "rate_limit", True
    if isinstance(exc, TimeoutError | concurrent.futures.TimeoutError) or "timed out" in text.lower() \
            or "Timeout" in name:
        return "timeout", True
    if isinstance(exc, ConnectionError | OSError) or name in ("ConnectionError", "ProxyError", "SSLError",
                                                               "RequestException", "CurlError"):
        return "exception", True
    if name in ("YFPricesMissingError", "YFTzMissingError", "YFTickerMissingError"):
        return "empty", False
    return "exception", False


class YahooProvider:
    label = "live"
    description = "yahoo (live, via yfinance)"

    def __init__(
        self,
        timeout: float = 10.0,
        attempts: int = 3,
        backoff_max: float = 8.0,
        minute_cache_seconds: float = 20.0,
        ticker_factory: Callable[[str], Any] | None = None,
        download: Callable[..., Any] | None = None,
        sleep: Callable[[float], None] = _time.sleep,
        monotonic: Callable[[], float] = _time.monotonic,
    ) -> None:
        self.timeout = timeout
        self.attempts = attempts
        self.backoff_max = backoff_max
        self.minute_cache_seconds = minute_cache_seconds
        self._ticker_factory = ticker_factory
        self._download = download
        self._sleep = sleep
        self._monotonic = monotonic
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="yahoo")
        self._minute: dict[str, tuple[float, list[tuple[datetime, float, float | None]]]] = {}
        self._five: dict[tuple[str, date], list[tuple[datetime, float, float | None]]] = {}
        self._daily: dict[tuple[str, date], list[DailyBar]] = {}

    # ---- yfinance access ------------------------------------------------------------------------------------
    def _ticker(self, symbol: str) -> Any:
        if self._ticker_factory is not None:
            return self._ticker_factory(symbol)
        return _yfinance().Ticker(symbol)

    def _download_fn(self) -> Callable[..., Any]:
        if self._download is not None:
            return self._download
        # download() swallows per-symbol errors into an empty frame whatever the config: that is its "empty".
        return _yfinance().download

    def _call(self, symbol: str, what: str, fn: Callable[[], Any]) -> Any:
        """Run `fn` with a hard timeout, retrying transient failures with exponential backoff."""

        def attempt() -> Any:
            future = self._pool.submit(fn)
            try:
                return future.result(timeout=self.timeout * 1.5)
            except concurrent.futures.TimeoutError:
                future.cancel()
                raise _Transient("timeout", f"{what} took over {self.timeout * 1.5:.0f} s") from None
            except ProviderError:
                raise  # already classified by `fn`
            except Exception as exc:
                kind, transient = _classify(exc)
                if transient:
                    raise _Transient(kind, f"{what}: {type(exc).__name__}: {exc}") from exc
                raise ProviderError(symbol, kind, f"{what}: {type(exc).__name__}: {exc}") from exc

        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=0.5, max=self.backoff_max),
            retry=retry_if_exception(lambda e: isinstance(e, _Transient)),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _Transient as exc:
            raise ProviderError(symbol, exc.kind, exc.detail) from None

    # ---- frames ---------------------------------------------------------------------------------------------
    def _minute_rows(self, symbol: str) -> list[tuple[datetime, float, float | None]]:
        """Minute bars of the last few days (cached briefly: one request per symbol per market cycle)."""
        cached = self._minute.get(symbol)
        if cached is not None and self._monotonic() - cached[0] < self.minute_cache_seconds:
            return cached[1]
        frame = self._call(symbol, "history 1m", lambda: self._ticker(symbol).history(
            period="5d", interval="1m", timeout=self.timeout))
        rows = frame_to_rows(frame, MINUTE)
        if not rows:
            raise ProviderError(symbol, "empty", "history 1m returned no rows")
        self._minute[symbol] = (self._monotonic(), rows)
        return rows

    def _five_minute_rows(self, symbol: str, today: date) -> list[tuple[datetime, float, float | None]]:
        """5-minute bars of the last month, fetched once a day (older sessions' bars do not change)."""
        key = (symbol, today)
        if key not in self._five:
            frame = self._call(symbol, "history 5m", lambda: self._ticker(symbol).history(
                period="1mo", interval="5m", timeout=self.timeout))
            rows = frame_to_rows(frame, FIVE_MINUTES)
            if not rows:
                raise ProviderError(symbol, "empty", "history 5m returned no rows")
            self._five = {k: v for k, v in self._five.items() if k[0] != symbol}
            self._five[key] = rows
        return self._five[key]

    def _daily_bars(self, symbol: str, today: date) -> list[DailyBar]:
        key = (symbol, today)
        if key not in self._daily:
            download = self._download_fn()
            frame = self._call(symbol, "download 1d", lambda: download(
                symbol, period="2y", interval="1d", timeout=self.timeout, progress=False, auto_adjust=False,
                threads=False, multi_level_index=False))
            bars = frame_to_daily(frame)
            if not bars:
                raise ProviderError(symbol, "empty", "download 1d returned an empty frame")
            self._daily = {k: v for k, v in self._daily.items() if k[0] != symbol}
            self._daily[key] = bars
        return self._daily[key]

    # ---- provider interface ---------------------------------------------------------------------------------
    def latest(self, symbol: str, now: datetime) -> Quote:
        rows = [r for r in self._minute_rows(symbol) if r[0] <= now]
        if not rows:
            raise ProviderError(symbol, "empty", f"no minute bar at or before {now.isoformat()}")
        stamp, close, volume = rows[-1]
        return Quote(symbol, stamp, close, volume)

    def intraday(self, symbol: str, session: date, now: datetime) -> list[Bar]:
        rows = self._minute_rows(symbol)
        picked = [r for r in rows if r[0].astimezone(ET).date() == session and r[0] <= now]
        if not picked and rows and session < rows[0][0].astimezone(ET).date():
            # Older than the minute window (about 5 sessions): 5-minute bars reach back a month.
            today = datetime.now(UTC).astimezone(ET).date()  # cache key only: refetch once per calendar day
            rows = self._five_minute_rows(symbol, today)
            picked = [r for r in rows if r[0].astimezone(ET).date() == session and r[0] <= now]
        return [Bar(t, c, v) for t, c, v in picked]

    def daily(self, symbol: str, before: date, count: int) -> list[DailyBar]:
        today = datetime.now(UTC).astimezone(ET).date()  # cache key only: refetch once per calendar day
        bars = [b for b in self._daily_bars(symbol, today) if b.day < before]
        return bars[-count:] if count > 0 else []

    # ---- option chains (the market mark) --------------------------------------------------------------------
    def option_chain(self, symbol: str, expiry: date) -> list[OptionQuote]:
        """The delayed chain of `symbol` for `expiry` (yfinance's option_chain: two requests, the expiry list and
        the chain; the caller rate-limits). An expiry Yahoo does not list, or a chain with no options, is empty."""
        def fetch() -> Any:
            try:
                return self._ticker(symbol).option_chain(expiry.isoformat())
            except ValueError as exc:  # "Expiration `...` cannot be found"
                raise ProviderError(symbol, "empty", f"option chain {expiry.isoformat()}: {exc}") from None

        chain = self._call(symbol, f"option chain {expiry.isoformat()}", fetch)
        quotes = [*frame_to_quotes(getattr(chain, "puts", None), "put"),
                  *frame_to_quotes(getattr(chain, "calls", None), "call")]
        if not quotes:
            raise ProviderError(symbol, "empty", f"option chain {expiry.isoformat()} has no options")
        return quotes


def _yfinance() -> Any:
    """yfinance, set to raise instead of logging and returning an empty frame, so failures keep their kind."""
    import yfinance

    debug = getattr(getattr(yfinance, "config", None), "debug", None)
    if debug is not None and hasattr(debug, "hide_exceptions"):
        debug.hide_exceptions = False
    return yfinance


# ---- frame conversion (pure; tests feed it frames parsed from recorded chart payloads) ----------------------


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


def _flat(frame: Any) -> Any:
    """yfinance may return (field, symbol) column pairs for one symbol; keep the field level."""
    columns = getattr(frame, "columns", None)
    if columns is not None and getattr(columns, "nlevels", 1) > 1:
        return frame.droplevel(list(range(1, columns.nlevels)), axis=1)
    return frame


def frame_to_rows(frame: Any, interval: timedelta) -> list[tuple[datetime, float, float | None]]:
    """(end time UTC, close, volume) per row of a yfinance history frame, oldest first. NaN closes are kept."""
    frame = _flat(frame)
    if frame is None or getattr(frame, "empty", True) or "Close" not in frame.columns:
        return []
    out = []
    volumes = frame["Volume"] if "Volume" in frame.columns else None
    for i, (stamp, close) in enumerate(frame["Close"].items()):
        start = stamp.to_pydatetime()
        if start.tzinfo is None:  # yfinance gives exchange-local aware stamps; naive would be a bug upstream
            start = start.replace(tzinfo=UTC)
        volume = _number(volumes.iloc[i]) if volumes is not None else math.nan
        out.append(((start + interval).astimezone(UTC), _number(close), volume if math.isfinite(volume) else None))
    out.sort(key=lambda r: r[0])
    return out


def frame_to_daily(frame: Any) -> list[DailyBar]:
    """Daily bars of a yfinance download/history frame (session date from the index), oldest first."""
    frame = _flat(frame)
    if frame is None or getattr(frame, "empty", True) or "Close" not in frame.columns:
        return []
    out = []
    for stamp, row in frame.iterrows():
        day = stamp.date() if hasattr(stamp, "date") else date.fromisoformat(str(stamp)[:10])
        volume = _number(row.get("Volume"))
        out.append(DailyBar(day, _number(row.get("Open")), _number(row.get("High")), _number(row.get("Low")),
                            _number(row.get("Close")), volume if math.isfinite(volume) else None))
    out.sort(key=lambda b: b.day)
    return out


def frame_to_quotes(frame: Any, right: str) -> list[OptionQuote]:
    """The options of one side of a yfinance option_chain frame (columns strike, bid, ask, lastTradeDate). A blank
    or non-finite bid or ask is None, not 0: the mark decides what a missing quote means."""
    if frame is None or getattr(frame, "empty", True) or "strike" not in frame.columns:
        return []
    out = []
    for _, row in frame.iterrows():
        strike = _number(row.get("strike"))
        if not math.isfinite(strike):
            continue
        bid, ask = _number(row.get("bid")), _number(row.get("ask"))
        traded = row.get("lastTradeDate")
        when = traded.to_pydatetime().astimezone(UTC) if hasattr(traded, "to_pydatetime") and traded == traded \
            else None
        out.append(OptionQuote(right, strike, bid if math.isfinite(bid) else None, ask if math.isfinite(ask) else None,
                               when))
    return out
