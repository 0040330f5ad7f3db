"""Faults from the outside world never stop the exporter: counted, reported, recovered from within one cycle."""

from __future__ import annotations

import dataclasses
import sqlite3
import time
import urllib.request

import pytest

from exporter_support import FaultyProvider, Running, make_service
from spreadwatch.config import Config, Intervals
from spreadwatch.edges.collector import SnapshotCollector, build_registry


def sample(service, name, labels=None):
    registry = build_registry(SnapshotCollector(lambda: service.snapshot, service.clock.now))
    return registry.get_sample_value(name, labels or {})


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def scrape(url: str) -> str:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        assert response.status == 200
        return response.read().decode()


@pytest.mark.parametrize("mode,kind", [("raise", "exception"), ("empty", "empty"), ("nan", None),
                                       ("hang", None)])
def test_provider_fault_for_1000_cycles_then_recovery(tmp_path, mode, kind):
    provider = FaultyProvider()
    # A 5 s market cycle at 1,000x is 5 ms of wall time: 1,000 faulty cycles take about five seconds and 83 replayed
    # minutes, all inside the regular session (10:20 to 11:43 ET), so the staleness bound (180 s) applies and
    # the last close cannot stand in for the price.
    config = dataclasses.replace(Config(), intervals=Intervals(market_data_seconds=5, scan_seconds=300,
                                                               positions_seconds=5))
    service = make_service(tmp_path, provider, speed=1_000.0, fetch_deadline=0.05, config=config)
    with Running(service) as running:
        assert wait_for(lambda: sample(service, "spreadwatch_price", {"ticker": "NDX"}) is not None)
        provider.mode = mode
        start_cycles = service.cycles
        assert wait_for(lambda: service.cycles - start_cycles >= 1000, timeout=60)
        assert running.thread.is_alive()
        text = scrape(running.url)  # /metrics answers throughout
        assert 'spreadwatch_source_up{source="^NDX"} 0.0' in text
        # Past the staleness bound the price is unknown: the series is absent, never frozen.
        samples = [line for line in text.splitlines() if not line.startswith("#")]
        assert not [line for line in samples if line.startswith(("spreadwatch_price{", "spreadwatch_vix "))]
        if kind is not None:
            assert sample(service, "spreadwatch_source_errors_total", {"source": "^NDX", "kind": kind}) >= 1000
        if mode == "hang":
            assert sample(service, "spreadwatch_task_errors_total", {"task": "market"}) >= 900
        # The fault ends: within one market cycle the values are back.
        provider.mode = None
        provider.release.set()
        fault_ended = service.clock.now()
        assert wait_for(lambda: sample(service, "spreadwatch_price", {"ticker": "NDX"}) is not None)
        # Within one market cycle of the default cadence (60 s), measured on the replay clock.
        assert (service.clock.now() - fault_ended).total_seconds() <= 60
        assert sample(service, "spreadwatch_source_up", {"source": "^NDX"}) == 1.0


def test_missing_database_is_reported_and_recovered(tmp_path):
    db = tmp_path / "book.db"
    service = make_service(tmp_path, speed=60_000.0, db=db)
    with Running(service) as running:
        assert wait_for(lambda: sample(service, "spreadwatch_task_age_seconds", {"task": "positions"}) is not None)
        backup = db.read_bytes()
        db.unlink()
        errors_before = sample(service, "spreadwatch_task_errors_total", {"task": "positions"})
        assert wait_for(lambda: sample(service, "spreadwatch_task_errors_total", {"task": "positions"})
                        > errors_before + 100)
        assert running.thread.is_alive()
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(running.url + "/healthz", timeout=5)
        assert err.value.code == 503
        assert "positions" in err.value.read().decode()
        scrape(running.url)
        db.write_bytes(backup)
        assert wait_for(lambda: service.health()[0])


def test_locked_database_is_reported_and_recovered(tmp_path):
    db = tmp_path / "book.db"
    service = make_service(tmp_path, speed=60_000.0, db=db)
    with Running(service) as running:
        assert wait_for(lambda: service.health()[0])
        locker = sqlite3.connect(db, isolation_level=None)
        locker.execute("PRAGMA journal_mode=DELETE")  # a writer holding an exclusive lock blocks readers
        locker.execute("BEGIN EXCLUSIVE")
        try:
            errors_before = sample(service, "spreadwatch_task_errors_total", {"task": "positions"})
            assert wait_for(lambda: sample(service, "spreadwatch_task_errors_total", {"task": "positions"})
                            > errors_before, timeout=30)
            scrape(running.url)
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert wait_for(lambda: service.health()[0], timeout=30)
