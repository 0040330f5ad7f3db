"""The market mark on the loop: the delayed option chains the open positions need, fetched within a rate limit,
kept between fetches, and each position marked at its legs' mids (domain/marks.market_mark).

Owns: which chains are needed (each open position's ticker's `chain_symbol` and its expiry), the rate limit (at
most one request per chain per `marks.chain_interval_seconds` on the loop's clock; between two requests the last
chain is reused, so a positions cycle costs no request), and each chain source's state (up, failures by kind, the
last good fetch). A chain that fails is dropped: its positions have no market mark until a later fetch succeeds,
so the model mark stays their estimate, and the source is down with the failure counted, as an index source is.
A quote's instant is the fetch's minus `marks.chain_delay_minutes`, the chain's stated delay (Yahoo gives no quote
time; the last trade time of a far option can be hours old and says nothing about its quote). Must not: make up a
quote, run on replay (the service builds it only for a live provider with `marks.chain` on), or stall the loop
(each request has a wall-clock deadline; a hung one is a timeout and is not asked again while it hangs).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from spreadwatch.domain.marks import LegQuote, MarketMark, market_mark
from spreadwatch.edges.providers import ChainProvider, OptionQuote, ProviderError

log = logging.getLogger(__name__)

LEG_SIDES = {"short_put": "put", "long_put": "put", "short_call": "call", "long_call": "call"}


@dataclass(frozen=True)
class ChainStatus:
    """One chain source (a ticker's options, whatever the expiry) as the exporter reports it."""

    source: str  # e.g. "^NDX options"
    up: bool  # every chain of it fetched at the last attempt
    last_success: datetime | None  # loop clock
    errors: dict[str, int] = field(default_factory=dict)  # failed fetches by kind


class ChainMarker:
    def __init__(self, provider: ChainProvider, config: Any, deadline: float = 20.0) -> None:
        self._provider = provider
        self._deadline = deadline  # wall seconds a chain request may take before it counts as a timeout
        self._running: dict[tuple[str, date], threading.Thread] = {}
        self._config = config
        self._interval = timedelta(seconds=config.marks.chain_interval_seconds)
        self._delay = timedelta(minutes=config.marks.chain_delay_minutes)
        self._tried: dict[tuple[str, date], datetime] = {}
        self._chains: dict[tuple[str, date], tuple[datetime, dict[tuple[str, float], OptionQuote]]] = {}
        self._up: dict[str, bool] = {}
        self._success: dict[str, datetime] = {}
        self._errors: dict[str, dict[str, int]] = {}
        self.requests = 0  # chain requests made (what the rate limit bounds)

    def _symbol(self, ticker: str) -> str:
        t = self._config.tickers.get(ticker)
        return "" if t is None else t.chain_symbol

    def _fetch(self, key: tuple[str, date], now: datetime) -> None:
        symbol, expiry = key
        self._tried[key] = now
        running = self._running.get(key)
        if running is not None and running.is_alive():  # the last request of this chain never came back
            self._failed(key, "timeout")
            return
        self.requests += 1
        result: dict[str, Any] = {}

        def call() -> None:
            try:
                result["quotes"] = self._provider.option_chain(symbol, expiry)
            except ProviderError as exc:
                result["kind"] = exc.kind
            except Exception:  # a provider bug is this chain's failure, never the positions task's
                log.exception("option chain %s %s failed", symbol, expiry.isoformat())
                result["kind"] = "exception"

        thread = threading.Thread(target=call, name=f"chain-{symbol}", daemon=True)
        thread.start()
        thread.join(self._deadline)
        if thread.is_alive():  # a hung request: the loop goes on; the thread ends with its request
            self._running[key] = thread
            self._failed(key, "timeout")
        elif "quotes" in result:
            self._chains[key] = (now, {(q.right, q.strike): q for q in result["quotes"]})
            self._success[symbol] = now
        else:
            self._failed(key, result["kind"])

    def _failed(self, key: tuple[str, date], kind: str) -> None:
        symbol = key[0]
        self._chains.pop(key, None)
        self._up[symbol] = False
        errors = self._errors.setdefault(symbol, {})
        errors[kind] = errors.get(kind, 0) + 1

    def update(self, now: datetime, open_positions: tuple[Any, ...]) -> dict[str, MarketMark]:
        """Fetch the chains that are due, then mark every open position whose chain is held: position id -> mark."""
        needed = {(self._symbol(item.position.ticker), item.position.expiry) for item in open_positions
                  if self._symbol(item.position.ticker)
                  and (item.sessions_to_expiry is None or item.sessions_to_expiry >= 0)}
        due = [key for key in sorted(needed) if key not in self._tried or now - self._tried[key] >= self._interval]
        for symbol in {key[0] for key in due}:
            self._up[symbol] = True  # until one of its chains fails in this round
        for key in due:
            self._fetch(key, now)
        for key in [k for k in self._chains if k not in needed]:  # a closed position's chain is not kept
            del self._chains[key]
            self._tried.pop(key, None)
        marks = {}
        for item in open_positions:
            p = item.position
            chain = self._chains.get((self._symbol(p.ticker), p.expiry))
            if chain is None:
                continue
            fetched, book = chain
            quotes = {}
            for leg, side in LEG_SIDES.items():
                strike = getattr(p, leg)
                quote = None if strike is None else book.get((side, float(strike)))
                if quote is not None:
                    quotes[leg] = LegQuote(quote.bid, quote.ask, fetched - self._delay)
            marks[p.id] = market_mark(p, quotes)
        return marks

    def statuses(self) -> dict[str, ChainStatus]:
        return {f"{symbol} options": ChainStatus(f"{symbol} options", up, self._success.get(symbol),
                                                 dict(self._errors.get(symbol, {})))
                for symbol, up in sorted(self._up.items())}
