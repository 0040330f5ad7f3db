"""Market-data providers: one small interface, a live one (Yahoo) and a replayed one (CSV of bars).

Owns the shape of market data the rest of the code sees (`Quote`, `Bar`, `DailyBar`), the failure report
(`ProviderError` with a kind: empty | nan | invalid | exception | timeout | rate_limit) and `make_provider(spec)`.
`invalid` is a value that cannot be true (a non-positive price, a high below the low): the market watcher judges
every bar it is handed (domain/market_rules.impossible), so a provider passes such bars on as it got them.
Must not: invent a value (a missing or NaN quote is reported, never replaced), read the clock (callers pass
`now`), or import yfinance (only `providers/yahoo.py` does, lazily).

Conventions: instants are UTC-aware datetimes; a bar stamped t is visible from t on; session dates are XNYS
session dates (the US/Eastern calendar date of the bar).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from spreadwatch.errors import MalformedValue

FAILURE_KINDS: tuple[str, ...] = ("empty", "nan", "invalid", "exception", "timeout", "rate_limit")
BUNDLED_REPLAY = "replay_sample.csv"


@dataclass(frozen=True)
class Quote:
    """The newest bar of a symbol at or before some instant: its time and close (the price then), and the bar's
    high and low where the provider has them (so a bar that cannot be true is told apart)."""

    symbol: str
    time: datetime
    price: float
    volume: float | None = None
    high: float | None = None
    low: float | None = None

    @property
    def finite(self) -> bool:
        return _finite(self.price)


@dataclass(frozen=True)
class Bar:
    """An intraday bar; `time` is when it became visible (its end for replay files, see docs/market.md)."""

    time: datetime
    close: float
    volume: float | None = None
    high: float | None = None
    low: float | None = None


@dataclass(frozen=True)
class DailyBar:
    day: date
    open: float
    high: float
    low: float
    close: float
    volume: float | None = None


class ProviderError(Exception):
    """A fetch for one symbol gave no value. `kind` is one of FAILURE_KINDS."""

    def __init__(self, symbol: str, kind: str, detail: str = "") -> None:
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown failure kind {kind!r}")
        self.symbol = symbol
        self.kind = kind
        self.detail = detail
        super().__init__(f"{symbol}: {kind}{': ' + detail if detail else ''}")


@runtime_checkable
class Provider(Protocol):
    """What the market watcher needs. Every method raises ProviderError for a symbol it cannot answer."""

    # "live" or "replay": goes to spreadwatch_build_info{source}, the log and the landing page.
    label: str
    # One line for people: "replay (bundled sample: synthetic ...)", "yahoo (live)".
    description: str

    def latest(self, symbol: str, now: datetime) -> Quote:
        """The newest bar of `symbol` stamped at or before `now` (its close may be NaN: the caller decides)."""
        ...

    def intraday(self, symbol: str, session: date, now: datetime) -> list[Bar]:
        """Intraday bars of `session` stamped at or before `now`, oldest first (empty list: none yet)."""
        ...

    def daily(self, symbol: str, before: date, count: int) -> list[DailyBar]:
        """Up to `count` daily bars of the sessions strictly before `before`, oldest first."""
        ...


@dataclass(frozen=True)
class OptionQuote:
    """One option of a delayed chain: its side and strike, bid and ask per share (None when the chain has none)
    and when it last traded (None when unknown)."""

    right: str  # put | call
    strike: float
    bid: float | None
    ask: float | None
    last_trade: datetime | None


@runtime_checkable
class ChainProvider(Protocol):
    """Delayed option chains for the market mark. Raises ProviderError (with its kind) for a chain it cannot give."""

    description: str

    def option_chain(self, symbol: str, expiry: date) -> list[OptionQuote]:
        """Every quoted put and call of `symbol` expiring on `expiry` (an empty chain raises "empty")."""
        ...


def _finite(value: float | None) -> bool:
    return value is not None and isinstance(value, int | float) and math.isfinite(value)


def make_provider(spec: str | None) -> Provider:
    """`yahoo` (live), `replay:FILE`, or None / `replay` for the bundled sample. A spec that is none of them raises
    MalformedValue (a missing FILE is the replay provider's DataError)."""
    from spreadwatch.config import bundled_path

    text = (spec or "replay").strip()
    if text == "yahoo":
        from spreadwatch.edges.providers.yahoo import YahooProvider

        return YahooProvider()
    if text == "replay":
        from spreadwatch.edges.providers.replay import ReplayProvider

        return ReplayProvider(bundled_path(BUNDLED_REPLAY), bundled=True)
    if text.startswith("replay:"):
        from spreadwatch.edges.providers.replay import ReplayProvider

        path = text[len("replay:"):]
        if not path:
            raise MalformedValue("--source replay:FILE needs a file, e.g. replay:data/day.csv")
        return ReplayProvider(Path(path))
    raise MalformedValue(f"unknown --source {text!r}; use yahoo, replay or replay:FILE")
