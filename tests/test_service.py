"""The loop: replay clock cadences, CLI changes visible within one position cycle (within a second, by the look at
the book), clean shutdown."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from click.testing import CliRunner

from exporter_support import (
    START,
    Running,
    http_get,
    make_service,
    metrics_or_empty,
    sample,
    scrape,
    spreadwatch_process,
)
from realstack import free_port, sample_value, wait_until
from spreadwatch.app.service import BOOK_CHECK_SECONDS as LOOK
from spreadwatch.config import Config, Intervals
from spreadwatch.edges.cli import cli
from spreadwatch.edges.store import PositionBook


def test_cadences_run_on_the_replay_clock(tmp_path):
    service = make_service(tmp_path)
    with Running(service) as running:
        first = service.snapshot.tasks["market"].last_success
        assert first == START  # the first cycle runs every task at the start instant
        running.step(10)
        runs = service.snapshot.tasks["market"].last_success
        # Ten waits of one market interval (60 s) each: ten market cycles, ten replayed minutes.
        assert 300 <= (runs - first).total_seconds() <= 900
        assert (runs - first).total_seconds() == 10 * service.intervals["market"]
        scan_runs = service.snapshot.tasks["scan"].last_success
        assert scan_runs is not None
        assert (scan_runs - first).total_seconds() == 2 * service.intervals["scan"]  # every 300 s: at +5 and +10 min


def test_cli_add_update_close_show_up_within_one_position_cycle(tmp_path, monkeypatch):
    db = tmp_path / "book.db"
    service = make_service(tmp_path, db=db)
    monkeypatch.setenv("SPREADWATCH_NOW", START.isoformat())  # the CLI's "now": the replayed instant
    runner = CliRunner()
    cycle = service.intervals["positions"]
    with Running(service) as running:
        assert sample(service, "spreadwatch_portfolio_positions", {"status": "open"}) == 0
        result = runner.invoke(cli, ["positions", "add", "--db", str(db), "--dte", "3", "--band", "P98",
                                     "--spread", "put_spread", "--flow-mode", "with_flow", "--contracts", "1",
                                     "--credit", "150", "--short-put", "19800", "--long-put", "19700",
                                     "--expiry", "2026-12-31", "--ticker", "NDX"])
        assert result.exit_code == 0, result.output
        # Within one position cycle, on the replay clock.
        took = running.until(lambda: sample(service, "spreadwatch_portfolio_positions", {"status": "open"}) == 1,
                             within=cycle)
        assert took <= cycle
        ids = [p.position.id for p in service.snapshot.positions]
        labels = {"position_id": ids[0], "ticker": "NDX", "spread_type": "put_spread", "band": "P98"}
        assert sample(service, "spreadwatch_position_credit_dollars", labels) == 150
        assert sample(service, "spreadwatch_position_profit_target_dollars", labels) == 75
        assert sample(service, "spreadwatch_position_stop_loss_dollars", labels) == -300
        runner.invoke(cli, ["positions", "update", ids[0], "--db", str(db), "--pnl", "80"])
        running.until(lambda: sample(service, "spreadwatch_position_pnl_dollars", labels) == 80, within=cycle)
        runner.invoke(cli, ["positions", "close", ids[0], "--db", str(db), "--pnl", "80"])
        # Closed positions vanish from the position series.
        running.until(lambda: sample(service, "spreadwatch_position_pnl_dollars", labels) is None, within=cycle)
        assert sample(service, "spreadwatch_portfolio_realized_pnl_dollars") == 80


@pytest.mark.slow  # over 2 s: a real process or a whole replayed day; the full suite runs it
def test_sigterm_exits_zero_and_replay_is_labelled(tmp_path, monkeypatch):
    port = free_port()
    monkeypatch.setenv("SPREADWATCH_DB", str(tmp_path / "book.db"))
    config = tmp_path / "config.yml"
    config.write_text(f"paths:\n  log_file: {tmp_path / 'events.log'}\n")
    url = f"http://127.0.0.1:{port}"
    with spreadwatch_process(tmp_path, "--config", str(config), "run", "--listen", f"127.0.0.1:{port}",
                             "--speed", "60",
                             "--start", "2019-01-02T14:32:00Z") as exporter:  # the bundled SPX day, in its entry window
        def priced():
            text = metrics_or_empty(url)
            return text if sample_value(text, "spreadwatch_price", {"ticker": "SPX"}) is not None else None
        text = wait_until(priced, 60, "a price on /metrics")
        assert 'spreadwatch_build_info{source="replay",version=' in text
        assert "REPLAY" in http_get(url + "/")[1]
    assert exporter.proc.returncode == 0, exporter.log()  # SIGTERM: a clean exit
    assert "REPLAY, not live data" in exporter.log()
    assert "[OPPORTUNITY]" in (tmp_path / "events.log").read_text()


def test_several_tickers_are_labels_in_one_process_and_a_ticker_without_data_is_down(tmp_path):
    from datetime import datetime

    service = make_service(tmp_path, tickers=("NDX", "SPX"), fetch_deadline=30.0)
    service.step(datetime.fromisoformat("2026-11-24T15:30:00+00:00"), {"market", "positions", "scan"})
    # The NDX replay day has NDX's symbols only: SPX is reported down and unknown, never filled in.
    assert sample(service, "spreadwatch_price", {"ticker": "NDX"}) is not None
    assert sample(service, "spreadwatch_price", {"ticker": "SPX"}) is None
    assert sample(service, "spreadwatch_source_up", {"source": "^NDX"}) == 1
    assert sample(service, "spreadwatch_source_up", {"source": "^GSPC"}) == 0
    assert sample(service, "spreadwatch_opportunities", {"ticker": "NDX"}) is not None


def test_event_log_reads_like_the_original_alerts_log(tmp_path, caplog):
    from datetime import datetime

    service = make_service(tmp_path, fetch_deadline=30.0)
    with caplog.at_level("INFO", logger="spreadwatch.events"):
        for at in ("2026-11-24T15:30:00+00:00", "2026-11-24T15:45:00+00:00"):  # 10:30 and 10:45 ET
            service.step(datetime.fromisoformat(at), {"market", "positions", "scan"})
    lines = [r.getMessage() for r in caplog.records if r.name == "spreadwatch.events"]
    # The NDX day's VIX crosses 16 at 10:39 ET: one change, stamped in the display zone (PST).
    changes = [line for line in lines if "Regime change" in line]
    assert len(changes) == 1, lines
    assert changes[0].startswith("[2026-11-24 07:45:00 PT] [WARNING] Regime change: LOW → MEDIUM (VIX 16.")


ADD = ["positions", "add", "--dte", "3", "--band", "P98", "--spread", "put_spread", "--flow-mode", "with_flow",
       "--contracts", "1", "--credit", "150", "--short-put", "19800", "--long-put", "19700", "--expiry",
       "2026-12-31", "--ticker", "NDX"]


def record_positions_runs(service) -> list:
    """The instants the positions task runs at (the real task still runs)."""
    runs: list = []
    task = service.positions_task

    def recorded(now):
        runs.append(now)
        task(now)

    service.positions_task = recorded
    return runs


def test_a_book_write_reaches_metrics_within_one_second(tmp_path, monkeypatch):
    db = tmp_path / "book.db"
    service = make_service(tmp_path, db=db)
    runs = record_positions_runs(service)
    monkeypatch.setenv("SPREADWATCH_NOW", START.isoformat())
    runner = CliRunner()
    with Running(service) as running:
        def pnl(labels):
            return sample_value(scrape(running.url), "spreadwatch_position_pnl_dollars", labels)

        result = runner.invoke(cli, [*ADD, "--db", str(db)])  # at START, the loop waiting for the next minute
        assert result.exit_code == 0, result.output
        took = running.until(lambda: service.snapshot.positions, within=1.0)
        assert took == LOOK and runs == [START, START + timedelta(seconds=LOOK)]
        position_id = service.snapshot.positions[0].position.id
        labels = {"position_id": position_id, "ticker": "NDX", "spread_type": "put_spread", "band": "P98"}
        assert pnl(labels) == 0
        # `positions update` in the middle of a wait: on /metrics one look (half a clock second) later.
        result = runner.invoke(cli, ["positions", "update", position_id, "--db", str(db), "--pnl", "80"])
        assert result.exit_code == 0, result.output
        assert running.until(lambda: pnl(labels) == 80, within=1.0) == LOOK
        assert service.snapshot.tasks["positions"].last_success == START + timedelta(seconds=2 * LOOK)
        # A write through the book itself, not the CLI, is seen the same way.
        with PositionBook(db) as book:
            book.set_pnl(position_id, -40.0, now=START)
        assert running.until(lambda: pnl(labels) == -40, within=1.0) == LOOK
        assert runs == [START + timedelta(seconds=s * LOOK) for s in (0, 1, 2, 3)]


def test_without_a_write_the_positions_task_runs_only_at_its_interval(tmp_path):
    config = dataclasses.replace(Config(), intervals=Intervals(market_data_seconds=60, scan_seconds=300,
                                                               positions_seconds=180))
    db = tmp_path / "book.db"
    service = make_service(tmp_path, db=db, config=config)
    runs = record_positions_runs(service)
    looks = []
    look = service.book_check
    service.book_check = lambda: looks.append(service.clock.now()) or look()
    with Running(service) as running:
        running.step(9)  # nine market cycles: 540 clock seconds, nothing written
        assert service.clock.now() == START + timedelta(seconds=540)
        assert runs == [START + timedelta(seconds=s) for s in (0, 180, 360, 540)]
        assert len(looks) == 540 / LOOK  # the book was looked at every half second, and never read in between
        assert looks[:2] == [START + timedelta(seconds=LOOK), START + timedelta(seconds=2 * LOOK)]
        # A write: one extra run a look later; the regular cadence stays where it was.
        runner = CliRunner()
        result = runner.invoke(cli, [*ADD, "--db", str(db)], env={"SPREADWATCH_NOW": START.isoformat()})
        assert result.exit_code == 0, result.output
        running.step(4)
        assert runs[4:] == [START + timedelta(seconds=s) for s in (540 + LOOK, 720)]
        assert len(service.snapshot.positions) == 1


def test_a_look_at_the_book_that_fails_is_logged_and_the_positions_cycle_goes_on(tmp_path, caplog):
    service = make_service(tmp_path)
    runs = record_positions_runs(service)

    def broken() -> bool:
        raise RuntimeError("injected")

    service.book_watch.changed = broken
    with caplog.at_level("ERROR"), Running(service) as running:
        running.step(2)
        assert running.thread.is_alive()
        assert runs == [START + timedelta(seconds=s) for s in (0, 60, 120)]
        assert service.snapshot.tasks["positions"].ok
    assert "book check failed" in caplog.text
