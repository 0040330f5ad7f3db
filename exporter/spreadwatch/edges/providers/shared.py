"""One provider call per question per market cycle, shared by every ticker that asks it.

Tickers share data symbols (every ticker's regime reads ^VIX; SPX and XSP share ^GSPC and SPY): the tickers' fetch
workers run at once, and without this each would ask the provider the same question in the same cycle. `SharedFetches`
wraps a provider: the first thread to ask a question in a cycle (`latest`, `intraday` or `daily` with the same
arguments) calls the provider; the others wait for that call and get its answer, or its failure (each ticker still
counts the failure of its own source). `begin_cycle()` forgets the answers, so the next cycle asks again.
Must not: change an answer, invent one, or keep answers past the cycle (that is the watchers' caches' job).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from spreadwatch.edges.providers import Bar, DailyBar, Provider, Quote


class _Answer:
    """One question's answer within a cycle. `pending` is held by the thread that asks the provider until the
    answer is in: a plain lock (created held) rather than an Event, which costs a condition and its own lock for
    each of the dozens of questions a cycle asks."""

    __slots__ = ("pending", "value", "error")

    def __init__(self) -> None:
        self.pending = threading.Lock()
        self.pending.acquire()
        self.value: Any = None
        self.error: BaseException | None = None

    def wait(self) -> None:
        with self.pending:  # free once the answer is in; each waiter takes it and lets it go at once
            pass


class SharedFetches:
    """A provider whose answers are shared within one market cycle (see the module docstring)."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self.label = provider.label
        self.description = provider.description
        self._lock = threading.Lock()
        self._answers: dict[tuple[Any, ...], _Answer] = {}

    def begin_cycle(self) -> None:
        """Forget this cycle's answers (a call still running keeps its own and hands it to those waiting on it)."""
        with self._lock:
            self._answers = {}

    def _ask(self, key: tuple[Any, ...], call: Callable[[], Any]) -> Any:
        with self._lock:
            answer = self._answers.get(key)
            asks = answer is None
            if answer is None:
                answer = self._answers[key] = _Answer()
        if asks:
            try:
                answer.value = call()
            except BaseException as exc:  # handed to every thread that asked, each counts it for its source
                answer.error = exc
            finally:
                answer.pending.release()
        else:
            # A call that hangs holds its askers with it: the loop's deadline judges each ticker's fetch.
            answer.wait()
        if answer.error is not None:
            raise answer.error
        return answer.value

    def latest(self, symbol: str, now: datetime) -> Quote:
        return self._ask(("latest", symbol, now), lambda: self.provider.latest(symbol, now))  # type: ignore[no-any-return]

    def intraday(self, symbol: str, session: date, now: datetime) -> list[Bar]:
        return self._ask(("intraday", symbol, session, now),  # type: ignore[no-any-return]
                         lambda: self.provider.intraday(symbol, session, now))

    def daily(self, symbol: str, before: date, count: int) -> list[DailyBar]:
        return self._ask(("daily", symbol, before, count),  # type: ignore[no-any-return]
                         lambda: self.provider.daily(symbol, before, count))
