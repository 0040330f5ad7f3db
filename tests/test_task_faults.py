"""A task's failure is either an expected fault (the outside world, the book, the grid) or a bug. Both keep the last
good values; a fault is counted by kind and is unhealthy only once the last success is too old, a bug is logged
with its traceback, counted as `bug` and unhealthy until the task succeeds again. Every step is pinned."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from exporter_support import FaultyProvider, make_service, sample
from spreadwatch.app.clock import ReplayClock
from spreadwatch.app.service import MarketFetchFailed, fault_kind
from spreadwatch.edges.providers import ProviderError
from spreadwatch.errors import DataError, InputError

T0 = datetime.fromisoformat("2026-11-24T15:30:00+00:00")  # 10:30 ET on the NDX replay day
ALL = {"market", "positions", "scan"}


def pinned(service, at: datetime) -> None:
    """The service's clock (what /healthz ages are measured on) stands at `at`."""
    service.clock = ReplayClock(at, 1.0, wall=lambda: 0.0)


def step(service, at: datetime, due=frozenset(ALL)) -> None:
    pinned(service, at)
    service.step(at, set(due))


class BuggyProvider(FaultyProvider):
    """Breaks the provider interface once `broken` is set: intraday bars that are not bars. The watcher's own code
    then fails (an AttributeError), which is a bug, not a fetch failure."""

    broken = False

    def intraday(self, symbol, session, now):
        bars = super().intraday(symbol, session, now)
        return [object()] if self.broken else bars


def test_fault_kinds():
    assert fault_kind(MarketFetchFailed("NDX: fetch exceeded 20 s")) == "market"
    assert fault_kind(ProviderError("^NDX", "empty")) == "provider"
    assert fault_kind(DataError("position book x: no such file")) == "data"
    assert fault_kind(InputError("bad")) == "error"
    assert fault_kind(PermissionError("grid.csv")) == "os"
    assert fault_kind(TypeError("unsupported operand")) == "bug"
    assert fault_kind(KeyError("price")) == "bug"


def test_a_missing_book_keeps_the_last_portfolio_is_counted_and_unhealthy_only_when_too_old(tmp_path, caplog):
    service = make_service(tmp_path, fetch_deadline=30.0)
    step(service, T0)
    assert service.health() == (True, [])
    portfolio = service.snapshot.portfolio
    (tmp_path / "book.db").unlink()
    with caplog.at_level(logging.WARNING, logger="spreadwatch.app.service"):
        step(service, T0 + timedelta(seconds=60), {"market", "positions"})
    assert service.snapshot.portfolio == portfolio  # the last good value
    assert sample(service, "spreadwatch_task_failures_total", {"task": "positions", "kind": "data"}) == 1
    assert sample(service, "spreadwatch_task_failures_total", {"task": "positions", "kind": "bug"}) is None
    assert sample(service, "spreadwatch_task_errors_total", {"task": "positions"}) == 1
    assert [r.exc_info for r in caplog.records if "positions task failed" in r.getMessage()] == [None]
    assert service.health() == (True, [])  # one failed cycle, last success 60 s ago: a fault the loop lives with
    step(service, T0 + timedelta(seconds=240), {"market", "positions"})
    ok, reasons = service.health()
    assert not ok
    assert [r for r in reasons if r.startswith("positions: last success 240 s ago (failing: position book")], reasons


def test_a_bug_is_logged_with_its_traceback_counted_apart_and_unhealthy_until_the_task_succeeds(tmp_path, caplog):
    provider = BuggyProvider()
    service = make_service(tmp_path, provider, fetch_deadline=30.0)
    step(service, T0)
    price = sample(service, "spreadwatch_price", {"ticker": "NDX"})
    assert price is not None and service.health()[0]
    provider.broken = True
    with caplog.at_level(logging.ERROR, logger="spreadwatch.app.service"):
        step(service, T0 + timedelta(seconds=60), {"market"})
    bugs = [r for r in caplog.records if r.getMessage().startswith("market task failed with a bug: AttributeError")]
    assert len(bugs) == 1 and bugs[0].exc_info is not None  # the traceback is in the log
    assert sample(service, "spreadwatch_task_failures_total", {"task": "market", "kind": "bug"}) == 1
    assert sample(service, "spreadwatch_task_failures_total", {"task": "market", "kind": "market"}) is None
    assert sample(service, "spreadwatch_price", {"ticker": "NDX"}) == price  # the last good context
    ok, reasons = service.health()
    assert not ok and reasons == ["market: last run failed with a bug: AttributeError: 'object' object has no "
                                  "attribute 'close' (traceback in the log)"]
    # Still unhealthy when the other tasks succeed; healthy again once the market task does.
    step(service, T0 + timedelta(seconds=120), {"positions"})
    assert not service.health()[0]
    provider.broken = False
    step(service, T0 + timedelta(seconds=180), {"market"})
    assert service.health() == (True, [])
    assert sample(service, "spreadwatch_task_failures_total", {"task": "market", "kind": "bug"}) == 1
