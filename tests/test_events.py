"""The event log on transitions only: market data going stale and fresh again, the regime becoming unknown and known
again, and fetch warnings said once per failure (not once per cycle), all on the replay clock."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from exporter_support import (
    NDX_REPLAY,
    FaultyProvider,
    make_service,
    metrics_or_empty,
    run_replay,
    spreadwatch_process,
)
from exporter_support import sample as value
from realstack import free_port, sample_value, wait_until

EVENTS = "spreadwatch.events"
FETCH = "spreadwatch.app.watcher"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def lines(caplog, logger=EVENTS, level=None):
    """The messages of `logger` (at `level`); for the event log, without the opportunity and exit events."""
    return [r.getMessage() for r in caplog.records
            if r.name == logger and (level is None or r.levelname == level)
            and not re.match(r"\[[^]]*\] \[(OPPORTUNITY|EXIT)\]", r.getMessage())]


def test_data_going_stale_at_the_open_is_logged_once(tmp_path, caplog):
    # The audit's case: the NDX replay's bars end on 2026-11-24; the last close is valid until the 11-25 open
    # (09:30 ET = 06:30 PT), then every value is stale and the regime unknown. The first 3 minutes of a session are
    # the wait for the first bar (as in SpreadwatchMarketDataStale): said at 06:33, once, ten cycles later still once.
    service = make_service(tmp_path, fetch_deadline=30.0)
    with caplog.at_level("DEBUG"):
        run_replay(service, at("2026-11-25T14:25:00Z"), at("2026-11-25T14:45:00Z"))
    assert lines(caplog) == [
        "[2026-11-25 06:33:00 PT] [WARNING] Market data stale: NDX (^NDX 17.6 h old, ^VIX 17.6 h old, ^VXN 17.6 h old, "
        "QQQ 17.6 h old; bound 3 min)",
        "[2026-11-25 06:33:00 PT] [WARNING] Regime unknown: VIX unavailable (^VIX 17.6 h old; last known MEDIUM)",
    ]
    # What the lines say is what the metrics say.
    assert value(service, "spreadwatch_price", {"ticker": "NDX"}) is None
    assert value(service, "spreadwatch_regime", {"regime": "medium"}) == 0
    assert value(service, "spreadwatch_regime_level") is None
    assert service.cycles >= 15


def test_an_ordinary_open_is_not_news(tmp_path, caplog):
    # The NDX day's first bars are stamped 09:31 ET: from 09:30 to 09:31 every source holds the previous close.
    # That is how every session starts, so the log says nothing about staleness or the regime.
    service = make_service(tmp_path, fetch_deadline=30.0)
    with caplog.at_level("DEBUG"):
        run_replay(service, at("2026-11-24T14:25:00Z"), at("2026-11-24T14:40:00Z"))
    assert [line for line in lines(caplog) if "stale" in line or "Regime" in line] == []
    assert value(service, "spreadwatch_price", {"ticker": "NDX"}) is not None


def outage(provider, start: str, end: str):
    """The provider returns nothing (empty) from `start` to `end` on the replay clock."""
    first, last = at(start), at(end)

    def on_cycle(now):
        provider.mode = "empty" if first <= now < last else None
    return on_cycle


def test_outage_then_return_to_the_same_regime_is_not_a_regime_change(tmp_path, caplog):
    # 11:00-11:10 ET on the NDX day, well after the VIX crossed 16 (MEDIUM): every intraday fetch is empty.
    provider = FaultyProvider()
    service = make_service(tmp_path, provider, fetch_deadline=30.0)
    with caplog.at_level("DEBUG"):
        run_replay(service, at("2026-11-24T15:50:00Z"), at("2026-11-24T16:20:00Z"),
                   outage(provider, "2026-11-24T16:00:00Z", "2026-11-24T16:10:00Z"))
    events = lines(caplog)
    symbols = ("^NDX", "^VIX", "^VXN", "QQQ")
    # The last values are from the 10:59 ET bars: stale once older than the bound (180 s), i.e. at 11:03 ET.
    assert events == [
        *(f"[2026-11-24 08:00:00 PT] [WARNING] Market data source {s} is down" for s in sorted(symbols)),
        "[2026-11-24 08:03:00 PT] [WARNING] Market data stale: NDX (^NDX 4 min old, ^VIX 4 min old, ^VXN 4 min old, "
        "QQQ 4 min old; bound 3 min)",
        "[2026-11-24 08:03:00 PT] [WARNING] Regime unknown: VIX unavailable (^VIX 4 min old; last known MEDIUM)",
        "[2026-11-24 08:10:00 PT] [INFO] Market data fresh again: NDX (^NDX, ^VIX, ^VXN, QQQ)",
        events[-5],  # the regime line, checked below: its VIX is the replay's at 11:10 ET
        *(f"[2026-11-24 08:10:00 PT] [INFO] Market data source {s} is back up" for s in sorted(symbols)),
    ]
    assert re.fullmatch(r"\[2026-11-24 08:10:00 PT\] \[INFO\] Regime known again: MEDIUM \(VIX 1\d\.\d\)", events[-5])
    assert not [line for line in events if "Regime change" in line]

    # The fetch warnings: one per symbol when it starts failing, DEBUG while it keeps failing, INFO on recovery.
    warnings = lines(caplog, FETCH, "WARNING")
    assert sorted(warnings) == sorted(f"market data {s}: empty (injected)" for s in symbols)
    assert len(lines(caplog, FETCH, "DEBUG")) >= 9 * len(symbols)  # 10 cycles of failures, the first one warned
    for s in symbols:
        failed = value(service, "spreadwatch_source_errors_total", {"source": s, "kind": "empty"})
        assert failed >= 10  # still counted, every one
        assert lines(caplog, FETCH, "INFO").count(
            f"market data {s}: recovered after {failed:.0f} failed fetches (empty)") == 1


def test_outage_across_a_regime_boundary_reports_the_change_when_the_vix_returns(tmp_path, caplog):
    # The NDX day's VIX crosses 16 at 10:39 ET. Blind from 10:32 to 10:45 ET: unknown from 10:35, and when the
    # VIX returns the rule resumes from LOW over the values it missed, so MEDIUM is a change (and said once).
    provider = FaultyProvider()
    service = make_service(tmp_path, provider, fetch_deadline=30.0)
    with caplog.at_level("INFO", logger=EVENTS):
        run_replay(service, at("2026-11-24T15:25:00Z"), at("2026-11-24T15:55:00Z"),
                   outage(provider, "2026-11-24T15:32:00Z", "2026-11-24T15:45:00Z"))
    regime = [line for line in lines(caplog) if "Regime" in line]
    assert regime[0] == "[2026-11-24 07:35:00 PT] [WARNING] Regime unknown: VIX unavailable (^VIX 4 min old; " \
                        "last known LOW)"
    assert re.fullmatch(r"\[2026-11-24 07:45:00 PT\] \[INFO\] Regime known again: MEDIUM \(VIX 1\d\.\d\)", regime[1])
    assert re.fullmatch(r"\[2026-11-24 07:45:00 PT\] \[WARNING\] Regime change: LOW → MEDIUM \(VIX 1\d\.\d\)",
                        regime[2])
    assert len(regime) == 3, regime


def test_a_source_failing_every_cycle_is_warned_once(tmp_path, caplog):
    # SPX's symbols are not in the NDX replay: the same empty frame every cycle, one warning, all counted.
    service = make_service(tmp_path, tickers=("NDX", "SPX"), fetch_deadline=30.0)
    with caplog.at_level("DEBUG"):
        run_replay(service, at("2026-11-24T15:00:00Z"), at("2026-11-24T15:20:00Z"))
    warnings = lines(caplog, FETCH, "WARNING")
    assert warnings == ["market data ^GSPC: empty (not in replay_sample.csv)",
                        "market data SPY: empty (not in replay_sample.csv)"]
    assert lines(caplog, FETCH, "DEBUG").count("market data ^GSPC: empty (not in replay_sample.csv)") >= 20
    assert value(service, "spreadwatch_source_errors_total", {"source": "^GSPC", "kind": "empty"}) >= 21
    assert value(service, "spreadwatch_source_up", {"source": "^GSPC"}) == 0
    # The ticker's data is unknown from the first cycle on: said once, with what is missing.
    assert lines(caplog).count("[2026-11-24 07:00:00 PT] [WARNING] Market data stale: SPX (^GSPC no value, "
                               "SPY no value; bound 3 min)") == 1
    assert not [line for line in lines(caplog) if "Market data stale: NDX" in line or "Regime" in line]


def test_a_failure_of_another_kind_is_warned_again(tmp_path, caplog):
    provider = FaultyProvider()
    service = make_service(tmp_path, provider, fetch_deadline=30.0)
    modes = [(at("2026-11-24T16:00:00Z"), "raise"), (at("2026-11-24T16:03:00Z"), "empty"),
             (at("2026-11-24T16:06:00Z"), None)]

    def on_cycle(now):
        provider.mode = next((mode for since, mode in reversed(modes) if now >= since), None)
    with caplog.at_level("DEBUG", logger=FETCH):
        run_replay(service, at("2026-11-24T15:58:00Z"), at("2026-11-24T16:10:00Z"), on_cycle)
    ndx = [(r.levelname, r.getMessage()) for r in caplog.records
           if r.name == FETCH and r.levelname != "DEBUG" and "^NDX" in r.getMessage()]
    failed = sum(value(service, "spreadwatch_source_errors_total", {"source": "^NDX", "kind": kind})
                 for kind in ("exception", "empty"))
    assert ndx == [
        ("WARNING", "market data ^NDX: exception (injected)"),
        ("WARNING", "market data ^NDX: empty (injected)"),
        ("INFO", f"market data ^NDX: recovered after {failed:.0f} failed fetches (empty)"),
    ]


@pytest.mark.slow  # over 2 s: a real process or a whole replayed day; the full suite runs it
def test_spreadwatch_run_logs_the_open_once_on_the_console_and_in_the_file(tmp_path, monkeypatch):
    """The audit's commands in one: `spreadwatch run --ticker NDX --ticker SPX` across the 11-25 open."""
    port = free_port()
    log_file = tmp_path / "events.log"
    config = tmp_path / "config.yml"
    config.write_text(f"paths:\n  log_file: {log_file}\n")
    monkeypatch.setenv("SPREADWATCH_DB", str(tmp_path / "book.db"))

    def market_run() -> float | None:
        """When the exporter's market task last ran, on its clock (None while it is not answering)."""
        text = metrics_or_empty(f"http://127.0.0.1:{port}")
        return sample_value(text, "spreadwatch_task_last_run_timestamp_seconds", {"task": "market"})

    with spreadwatch_process(tmp_path, "--config", str(config), "run", "--source", f"replay:{NDX_REPLAY}",
                             "--ticker", "NDX", "--ticker", "SPX", "--listen", f"127.0.0.1:{port}", "--speed", "300",
                             "--start", "2026-11-25T14:28:00Z") as exporter:
        wait_until(lambda: log_file.exists() and "Regime unknown" in log_file.read_text(), 60, "the regime line")
        # Ten more market cycles (each seen by its own run time) must not repeat a line.
        after, runs = wait_until(market_run, 30, "the exporter answering"), set()

        def ten_more_cycles() -> bool:
            run = market_run()
            if run is not None and run > after:
                runs.add(run)
            return len(runs) >= 10
        wait_until(ten_more_cycles, 60, "ten more market cycles", interval=0.1)
    out = exporter.log()
    assert exporter.proc.returncode == 0, out  # SIGTERM: a clean exit
    stamp = r"\[2026-11-25 06:\d\d:\d\d PT\]"  # the display zone, with its abbreviation
    logged = log_file.read_text().splitlines()
    for pattern in (
        rf"{stamp} \[WARNING\] Market data stale: SPX \(\^GSPC no value, SPY no value; bound 3 min\)",
        rf"{stamp} \[WARNING\] Market data stale: NDX \(\^NDX 17\.\d h old, \^VIX 17\.\d h old, \^VXN 17\.\d h old, "
        r"QQQ 17\.\d h old; bound 3 min\)",
        rf"{stamp} \[WARNING\] Market data stale: SPX \(\^VIX 17\.\d h old; bound 3 min\)",
        rf"{stamp} \[WARNING\] Regime unknown: VIX unavailable \(\^VIX 17\.\d h old; last known MEDIUM\)",
    ):
        assert len([line for line in logged if re.fullmatch(pattern, line)]) == 1, (pattern, logged)
        assert len([line for line in out.splitlines() if re.fullmatch(pattern, line)]) == 1, (pattern, out)
    assert out.count("market data ^GSPC: empty (not in replay_sample.csv)") == 1, out
    assert out.count("market data SPY: empty (not in replay_sample.csv)") == 1, out


@pytest.mark.slow  # over 2 s: a real process or a whole replayed day; the full suite runs it
def test_a_hung_fetch_is_warned_once_and_its_recovery_said(tmp_path, caplog):
    # The provider hangs from 11:00 to 11:06 ET (the fetch deadline is 2 s of wall time; a fetch that does not hang
    # takes milliseconds once the watcher has its daily history): the market task fails every cycle, first past its
    # deadline, then with the fetch still running; each said once, then the recovery.
    provider = FaultyProvider()
    service = make_service(tmp_path, provider, fetch_deadline=2.0)
    service.step(at("2026-11-24T15:57:00Z"), {"market"})  # the first fetch reads the daily history

    def on_cycle(now):
        if at("2026-11-24T16:00:00Z") <= now < at("2026-11-24T16:06:00Z"):
            provider.mode = "hang"
            provider.release.clear()
        else:
            provider.mode = None
            provider.release.set()
            provider.wait_idle()  # a released fetch finishes before the next cycle, as it would live
    with caplog.at_level("DEBUG"):
        run_replay(service, at("2026-11-24T15:58:00Z"), at("2026-11-24T16:10:00Z"), on_cycle)
    said = [(r.levelname, r.getMessage()) for r in caplog.records
            if r.name == "spreadwatch.app.service" and r.levelname != "DEBUG"]
    assert said == [
        ("WARNING", "market task failed: NDX: fetch exceeded 2 s"),
        ("WARNING", "market task failed: NDX: previous fetch still running"),
        ("INFO", "market task recovered (was: NDX: previous fetch still running)"),
    ]
    repeats = lines(caplog, "spreadwatch.app.service", "DEBUG")
    assert repeats.count("market task failed: NDX: previous fetch still running") >= 4
    assert value(service, "spreadwatch_task_errors_total", {"task": "market"}) >= 6  # still counted
    # No update for longer than the bound: the data is stale (the context's age counts), said once.
    stale = [line for line in lines(caplog) if "Market data stale" in line or "Regime unknown" in line]
    assert len(stale) == 2, stale
