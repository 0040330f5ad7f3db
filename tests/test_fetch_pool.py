"""The market fetch pool: a cycle's quick fetches run back-to-back on one thread, a fetch that hangs holds only its
own worker while the ones queued behind it are taken by others, and the pool never has more threads than tickers.
Every wait here is on an event the test controls; the wall-clock timeouts are safety nets against a hung test."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from spreadwatch.app.service import FetchBatch, FetchPool, FetchWorker, TickerFetch

NOW = datetime(2019, 1, 2, 15, 0, tzinfo=UTC)
SAFETY_SECONDS = 30.0


class Recorder:
    """Fetch functions that note which thread ran them; the one named in `hang` waits for `release`."""

    def __init__(self, hang: str | None = None) -> None:
        self.hang = hang
        self.release = threading.Event()
        self.hanging = threading.Event()  # set once the hanging fetch has started
        self.threads: dict[str, threading.Thread] = {}

    def func(self, ticker: str):
        def fetch(now: datetime) -> str:
            self.threads[ticker] = threading.current_thread()
            if ticker == self.hang:
                self.hanging.set()
                assert self.release.wait(SAFETY_SECONDS)
            return f"{ticker}@{now:%H:%M}"
        return fetch


def _until_done(fetch: TickerFetch) -> None:
    """Wait until `fetch` has returned (polled: its cycle's batch is held open by a hung fetch)."""
    idle = threading.Event()
    for _ in range(int(SAFETY_SECONDS / 0.01)):
        if not fetch.busy:
            return
        idle.wait(0.01)
    raise AssertionError(f"{fetch.ticker}'s fetch still running after {SAFETY_SECONDS:g} s")


def _queue(pool: FetchPool, fetches: list[TickerFetch]) -> FetchBatch:
    batch = FetchBatch(len(fetches))
    for fetch in fetches:
        fetch.prepare(NOW, batch)
    pool.start(fetches)
    return batch


def test_quick_fetches_run_back_to_back_on_one_worker():
    recorder = Recorder()
    pool = FetchPool({t: recorder.func(t) for t in "ABCDE"})
    fetches = list(pool.fetches.values())
    try:
        for _ in range(3):  # the same worker, cycle after cycle
            batch = _queue(pool, fetches)
            assert batch.done.wait(SAFETY_SECONDS)
            assert [f.result for f in fetches] == [f"{t}@15:00" for t in "ABCDE"]
            assert not any(f.busy for f in fetches) and all(f.error is None for f in fetches)
            assert len(set(recorder.threads.values())) == 1
            assert isinstance(next(iter(recorder.threads.values())), FetchWorker)
        assert pool.started == 1
    finally:
        pool.close()


def test_a_hung_fetch_holds_only_its_worker_and_the_ones_behind_it_are_spread():
    recorder = Recorder(hang="A")
    pool = FetchPool({t: recorder.func(t) for t in "ABC"})
    fetches = list(pool.fetches.values())
    try:
        batch = _queue(pool, fetches)
        assert recorder.hanging.wait(SAFETY_SECONDS)
        # One worker was woken and A holds it: B and C wait in the queue until the pool is told to spread them.
        assert pool.waiting == 2 and pool.started == 1
        pool.spread()
        for fetch in fetches[1:]:
            _until_done(fetch)
        assert [f.result for f in fetches[1:]] == ["B@15:00", "C@15:00"]
        assert fetches[0].busy and not batch.done.is_set()
        assert recorder.threads["B"] is not recorder.threads["A"]
        assert pool.started == 3  # a worker for each fetch that was queued
        recorder.release.set()
        assert batch.done.wait(SAFETY_SECONDS)
        assert fetches[0].result == "A@15:00" and not fetches[0].busy
    finally:
        recorder.release.set()
        pool.close()


def test_the_pool_starts_no_more_threads_than_its_size_and_keeps_them():
    recorder = Recorder(hang="A")
    pool = FetchPool({t: recorder.func(t) for t in "AB"})
    fetches = list(pool.fetches.values())
    try:
        batch = _queue(pool, fetches)
        assert recorder.hanging.wait(SAFETY_SECONDS)
        for _ in range(5):  # spread again and again: one more thread, once
            pool.spread()
        _until_done(fetches[1])
        pool.spread()
        assert pool.started == 2
        # The next cycle asks B alone (A still hangs): a resting worker takes it, none is started.
        batch = _queue(pool, [fetches[1]])
        assert batch.done.wait(SAFETY_SECONDS)
        assert pool.started == 2
    finally:
        recorder.release.set()
        pool.close()


def test_a_fetch_that_raises_hands_its_error_to_the_loop():
    def broken(now: datetime) -> str:
        raise ValueError("a bug in a watcher")

    pool = FetchPool({"A": broken})
    fetch = pool.fetches["A"]
    try:
        batch = _queue(pool, [fetch])
        assert batch.done.wait(SAFETY_SECONDS)
        assert isinstance(fetch.error, ValueError) and fetch.result is None and not fetch.busy
    finally:
        pool.close()


def test_close_ends_resting_workers_and_a_hung_one_once_its_call_returns():
    recorder = Recorder(hang="A")
    pool = FetchPool({t: recorder.func(t) for t in "AB"})
    fetches = list(pool.fetches.values())
    _queue(pool, fetches)
    assert recorder.hanging.wait(SAFETY_SECONDS)
    pool.spread()
    _until_done(fetches[1])
    hung, rested = recorder.threads["A"], recorder.threads["B"]
    assert isinstance(rested, FetchWorker) and rested.wait_idle(SAFETY_SECONDS)
    pool.close()
    rested.join(SAFETY_SECONDS)
    assert not rested.is_alive() and hung.is_alive()
    recorder.release.set()
    hung.join(SAFETY_SECONDS)
    assert not hung.is_alive()
