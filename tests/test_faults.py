"""Faults from the outside world never stop the exporter: counted, reported, recovered from within one cycle.

The loop runs in its own thread with the real HTTP server, on a virtual clock the test steps: a thousand faulty
cycles are a thousand cycles however fast the machine is, and "within one market cycle" is measured on the replay
clock.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from datetime import datetime

import pytest

from exporter_support import (
    FaultyProvider,
    Running,
    http_get,
    make_service,
    sample,
    scrape,
)
from realstack import exposition_samples, sample_value
from spreadwatch.config import Config, Intervals

DEFAULT_MARKET_CYCLE = Intervals().market_data_seconds  # 60 s


@pytest.mark.slow  # 1,000 cycles through the real loop, collector and server: several seconds of CPU
@pytest.mark.parametrize("mode,kind", [("raise", "exception"), ("empty", "empty"), ("nan", None),
                                       ("hang", None)])
def test_provider_fault_for_1000_cycles_then_recovery(tmp_path, mode, kind):
    provider = FaultyProvider()
    # A 5 s market cycle: 1,000 faulty cycles are 83 replayed minutes, all inside the regular session (10:20 to
    # 11:43 ET), so the staleness bound (180 s) applies and the last close cannot stand in for the price. A hung
    # fetch is given up after 2 s of wall time (a fetch that does not hang takes milliseconds).
    config = dataclasses.replace(Config(), intervals=Intervals(market_data_seconds=5, scan_seconds=300,
                                                               positions_seconds=5))
    service = make_service(tmp_path, provider, fetch_deadline=2.0, config=config)
    try:
        with Running(service) as running:
            running.until(lambda: sample(service, "spreadwatch_price", {"ticker": "NDX"}) is not None,
                          within=DEFAULT_MARKET_CYCLE)
            provider.mode = mode
            start_cycles = service.cycles
            running.step(1000)
            assert service.cycles - start_cycles == 1000
            assert running.thread.is_alive()
            text = scrape(running.url)  # /metrics answers throughout
            assert sample_value(text, "spreadwatch_source_up", {"source": "^NDX"}) == 0.0
            # Past the staleness bound the price is unknown: the series is absent, never frozen.
            assert not [s for s in exposition_samples(text) if s.name in ("spreadwatch_price", "spreadwatch_vix")]
            if kind is not None:
                assert sample(service, "spreadwatch_source_errors_total", {"source": "^NDX", "kind": kind}) >= 1000
            if mode == "hang":
                assert sample(service, "spreadwatch_task_errors_total", {"task": "market"}) >= 900
            # The fault ends: within one market cycle of the default cadence (60 s), measured on the replay clock,
            # the values are back.
            provider.mode = None
            provider.release.set()
            provider.wait_idle()
            took = running.until(lambda: sample(service, "spreadwatch_price", {"ticker": "NDX"}) is not None,
                                 within=DEFAULT_MARKET_CYCLE)
            assert took <= DEFAULT_MARKET_CYCLE
            assert sample(service, "spreadwatch_source_up", {"source": "^NDX"}) == 1.0
    finally:
        provider.release.set()


def test_a_hung_ticker_holds_neither_the_loop_nor_another_ticker_and_no_thread_is_started_per_cycle(tmp_path):
    # NDX's own price calls hang; SPX (absent from the NDX replay day: its own symbols answer "empty" at once) and
    # the shared VIX answer. The cycle gives NDX up at the deadline (0.2 s of wall time) while SPX's fetch of that
    # same cycle completes (queued behind NDX's, it is taken by a second worker); the next cycles skip NDX while
    # its fetch still hangs, and it is back once released.
    provider = FaultyProvider()
    provider.only = {"^NDX"}
    service = make_service(tmp_path, provider, tickers=("NDX", "SPX"), fetch_deadline=0.2)
    now = datetime.fromisoformat("2026-11-24T15:30:00+00:00")
    try:
        service.step(now, {"market"})
        assert service.snapshot.contexts["NDX"].price is not None
        provider.mode = "hang"
        provider.release.clear()
        errors = sample(service, "spreadwatch_source_errors_total", {"source": "^GSPC", "kind": "empty"})
        service.step(now.replace(minute=31), {"market"})
        assert service.snapshot.tasks["market"].error == "NDX: fetch exceeded 0.2 s"
        # NDX's fetch holds one worker and SPX's was taken by another: the pool has at most one per ticker.
        assert service.fetch_pool.started == 2
        threads = threading.active_count()
        # SPX's fetch of this very cycle finished: its context is of this instant, its failures counted.
        assert service.snapshot.contexts["SPX"].time == now.replace(minute=31)
        assert sample(service, "spreadwatch_source_errors_total", {"source": "^GSPC", "kind": "empty"}) > errors
        assert service.snapshot.hung_sources >= {"^NDX"} and "^GSPC" not in service.snapshot.hung_sources
        for minute in (32, 33, 34):
            errors = sample(service, "spreadwatch_source_errors_total", {"source": "^GSPC", "kind": "empty"})
            service.step(now.replace(minute=minute), {"market"})
            assert service.snapshot.tasks["market"].error == "NDX: previous fetch still running"
            assert service.snapshot.contexts["SPX"].time == now.replace(minute=minute)
            assert sample(service, "spreadwatch_source_errors_total", {"source": "^GSPC", "kind": "empty"}) > errors
        assert threading.active_count() == threads  # the same workers every cycle, none started per cycle
        assert service.fetch_pool.started == 2
        provider.mode = None
        provider.release.set()
        provider.wait_idle()
        service.step(now.replace(minute=35), {"market"})
        assert service.snapshot.contexts["NDX"].price is not None
        assert service.snapshot.hung_sources == frozenset()
    finally:
        provider.release.set()
        service.close()


@pytest.mark.slow  # over 2 s: a real process or a whole replayed day; the full suite runs it
def test_missing_database_is_reported_and_recovered(tmp_path):
    db = tmp_path / "book.db"
    service = make_service(tmp_path, db=db)
    with Running(service) as running:
        assert sample(service, "spreadwatch_task_age_seconds", {"task": "positions"}) is not None
        backup = db.read_bytes()
        db.unlink()
        errors_before = sample(service, "spreadwatch_task_errors_total", {"task": "positions"})
        running.step(101)
        assert sample(service, "spreadwatch_task_errors_total", {"task": "positions"}) == errors_before + 101
        assert running.thread.is_alive()
        status, body, _ = http_get(running.url + "/healthz")
        assert status == 503 and "positions" in body
        scrape(running.url)
        db.write_bytes(backup)
        running.until(lambda: service.health()[0], within=service.intervals["positions"])


@pytest.mark.slow  # over 2 s: a real process or a whole replayed day; the full suite runs it
def test_locked_database_is_reported_and_recovered(tmp_path):
    db = tmp_path / "book.db"
    service = make_service(tmp_path, db=db)
    with Running(service) as running:
        running.until(lambda: service.health()[0], within=service.intervals["scan"])
        # Leaving WAL needs the only connection: the loop's look at the book (paused now) lets go of its own.
        service.book_watch.close()
        locker = sqlite3.connect(db, isolation_level=None)
        locker.execute("PRAGMA journal_mode=DELETE")  # a writer holding an exclusive lock blocks readers
        locker.execute("BEGIN EXCLUSIVE")
        try:
            errors_before = sample(service, "spreadwatch_task_errors_total", {"task": "positions"})
            running.step()  # one position run (the look at the book finds it locked): the read fails
            assert sample(service, "spreadwatch_task_errors_total", {"task": "positions"}) == errors_before + 1
            assert sample(service, "spreadwatch_task_failures_total", {"task": "positions", "kind": "data"}) == 1
            task = service.snapshot.tasks["positions"]
            assert not task.ok and "database is locked" in task.error
            # One failed cycle of an expected fault: the last good values stand and /healthz stays 200 until the
            # last success is older than three intervals (the missing-book test above reaches that).
            assert service.health()[0]
            scrape(running.url)
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        running.until(lambda: service.snapshot.tasks["positions"].ok, within=service.intervals["positions"])
        assert service.health()[0]
